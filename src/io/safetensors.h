/* What the safetensors reader (safetensors_read.c) and writer
 * (safetensors_write.c) share: the format's dtypes, byte order, UTF-8 and the
 * checks of a load's or save's lists. src/io/ only. */
#ifndef AD_IO_SAFETENSORS_H
#define AD_IO_SAFETENSORS_H

#include "io.h"

#include <errno.h>
#include <string.h>

/* A safetensors dtype. Every one is listed, so that entries we cannot load
 * are still checked for their byte length. Sizes in bits: F4 and F6 are
 * packed. The loadable ones name their ad_dtype: this table is the one
 * place that pairs the two. */
typedef struct ad__safetensors_dtype {
    const char *name;
    int bits;
    bool loadable;
    ad_dtype ad_type; /* when loadable */
} ad__safetensors_dtype;

/* The dtype named by the len bytes at name, or NULL. */
const ad__safetensors_dtype *ad__safetensors_dtype_named(const char *name, size_t len);

/* The dtype that stores an ad_dtype, or NULL when the format has none. */
const ad__safetensors_dtype *ad__safetensors_dtype_of(ad_dtype dtype);

/* Checks names[] and tensors[] of a save or load (fn: the public function,
 * for messages); need_persistent: the tensors are destinations. */
ad_status ad__safetensors_check_lists(const char *fn, const char *path, size_t n,
                                      const char *const *names, ad_tensor *const *tensors,
                                      bool need_persistent, char *err, size_t err_size);

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
size_t ad__utf8_sequence(const unsigned char *s, size_t n);

/* Reverses the bytes of each of count elements of the given size. */
void ad__swap_bytes(void *data, size_t count, size_t size);

/* The file is little-endian; a big-endian host swaps. */
static inline bool host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* The status of a failed open: fopen and fdopen allocate their FILE, so they
 * can fail for lack of memory (errno ENOMEM), which is not an I/O error. */
static inline ad_status open_status(int error)
{
    return error == ENOMEM ? AD_ERR_NOMEM : AD_ERR_IO;
}

#endif
