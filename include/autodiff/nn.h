/*
 * libautodiff neural-network support: random numbers, weight initialisers,
 * safetensors checkpoints and IDX (MNIST-style) data with minibatches.
 *
 * Everything here is built on the core's public API (autodiff.h) and works on
 * persistent tensors (ad_tensor_create): initialisers and loaders write into
 * a tensor you own, in place, and never keep a pointer to it.
 *
 * Randomness is owned by the caller: an ad_rng is a small transparent struct
 * (xoshiro256**, seeded through splitmix64). There is no global generator, so
 * the same seed gives the same numbers on every run and every platform, and
 * two threads with two generators never interfere.
 *
 * Errors: every function that can fail returns an ad_status. The file
 * functions also take an optional message buffer (err, err_size; NULL/0 means
 * none) that receives one line naming the function, the file or tensor and
 * what is wrong; it is set to "" on success. Nothing here aborts, exits or
 * prints.
 *
 *     ad_rng rng;
 *     ad_rng_seed(&rng, 42);
 *     ad_tensor *w;
 *     ad_tensor_create(&w, AD_F32, 2, (int64_t[]){256, 784}, true);
 *     ad_init_kaiming_uniform(w, &rng);
 *     char err[256];
 *     const char *names[] = {"fc.weight"};
 *     if (ad_safetensors_save("model.safetensors", 1, names, &w, err, sizeof err) != AD_OK)
 *         fprintf(stderr, "%s\n", err);
 *     ad_tensor_free(w);
 */
#ifndef AUTODIFF_NN_H
#define AUTODIFF_NN_H

#include "autodiff/autodiff.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Random numbers ====================================================== */

/*
 * xoshiro256** state. Copying the struct forks the stream (both copies then
 * produce the same numbers). Seed it with ad_rng_seed before use; a state of
 * all zeros is the one invalid state, and ad_rng_seed never produces it.
 */
typedef struct ad_rng {
    uint64_t s[4];
} ad_rng;

/* Sets the state from a 64-bit seed via splitmix64. Any seed (0 too) is fine. */
AD_API void ad_rng_seed(ad_rng *rng, uint64_t seed);
/* The next 64 random bits (xoshiro256**). */
AD_API uint64_t ad_rng_next(ad_rng *rng);
/* A double uniform in [0, 1), with 53 random bits; uses one ad_rng_next. */
AD_API double ad_rng_uniform(ad_rng *rng);
/*
 * A standard normal double (mean 0, std 1) by Box-Muller; uses exactly two
 * ad_rng_next per call and keeps no cached second value, so the stream stays
 * a pure function of the state.
 */
AD_API double ad_rng_normal(ad_rng *rng);
/* An integer uniform in [0, n), without modulo bias (rejection). n == 0 gives 0. */
AD_API uint64_t ad_rng_below(ad_rng *rng, uint64_t n);
/* Permutes v[0..n) uniformly in place (Fisher-Yates). */
AD_API void ad_rng_shuffle(ad_rng *rng, int64_t *v, size_t n);

/* ==== Weight initialisers ================================================= */

/*
 * Each fills a persistent float32 or float64 tensor in place (its gradient is
 * untouched), drawing elements in row-major order from rng, and follows
 * torch.nn.init. Errors: AD_ERR_ARG for a NULL tensor or rng, a tape tensor,
 * a bad range (lo > hi, std < 0, non-finite) and, for the fan-based
 * initialisers, a tensor with fewer than 2 dims. A tensor with no elements is
 * left alone (AD_OK), as in PyTorch.
 *
 * Fans follow torch.nn.init._calculate_fan_in_and_fan_out: for a weight of
 * shape [out, in, k...], fan_in = in * prod(k), fan_out = out * prod(k).
 */

/* Writes the fans of t (ndim >= 2) to fan_in and fan_out (either may be NULL).
 * Errors: AD_ERR_ARG for NULL t or fewer than 2 dims. */
AD_API ad_status ad_init_fans(const ad_tensor *t, int64_t *fan_in, int64_t *fan_out);
/* Uniform on [lo, hi) (hi can be reached only by rounding to float32). */
AD_API ad_status ad_init_uniform(ad_tensor *t, double lo, double hi, ad_rng *rng);
/* Normal with the given mean and std (std >= 0). */
AD_API ad_status ad_init_normal(ad_tensor *t, double mean, double std, ad_rng *rng);
/* Glorot, gain 1: uniform on [-b, b), b = sqrt(6 / (fan_in + fan_out)). */
AD_API ad_status ad_init_xavier_uniform(ad_tensor *t, ad_rng *rng);
/* Glorot, gain 1: normal with std = sqrt(2 / (fan_in + fan_out)). */
AD_API ad_status ad_init_xavier_normal(ad_tensor *t, ad_rng *rng);
/* He, fan_in mode, gain sqrt(2) (relu): uniform on [-b, b), b = sqrt(2) * sqrt(3 / fan_in). */
AD_API ad_status ad_init_kaiming_uniform(ad_tensor *t, ad_rng *rng);
/* He, fan_in mode, gain sqrt(2) (relu): normal with std = sqrt(2) / sqrt(fan_in). */
AD_API ad_status ad_init_kaiming_normal(ad_tensor *t, ad_rng *rng);

/* ==== safetensors checkpoints ============================================= */

/*
 * The format (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON
 *     {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...,
 *      "__metadata__": {"key": "value"}}
 * padded with spaces, then the byte buffer. Offsets are relative to the buffer
 * start; tensors are row-major, little-endian and tile the buffer exactly.
 *
 * Reading is strict, and checks everything before using anything: header
 * length at most 100 MB and within the file; the header is one JSON object of
 * valid UTF-8 (only whitespace may follow it); keys unique, in the top level
 * and in each entry; "__metadata__" (an object of strings, or null) is
 * accepted and ignored; each entry has exactly "dtype", "shape" and
 * "data_offsets"; shapes are non-negative integers whose product does not
 * overflow; each entry's byte length is numel times its element size; entries
 * tile the buffer with no gap or overlap; and the file is exactly 8 + N +
 * buffer bytes long. Entries of any safetensors dtype (BOOL, U8, I8, F8_E5M2,
 * F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64, C64,
 * and the sub-byte F4, F6_E2M3, F6_E3M2) pass validation; only F32 and F64
 * can be loaded into tensors.
 *
 * Status codes: AD_ERR_IO (cannot open, read or write; the message has
 * strerror), AD_ERR_FORMAT (malformed or truncated file, or a requested name
 * that is not in it), AD_ERR_UNSUPPORTED (a requested tensor has a dtype
 * other than F32/F64), AD_ERR_SHAPE and AD_ERR_DTYPE (a requested tensor does
 * not match its destination), AD_ERR_ARG (bad arguments), AD_ERR_NOMEM (also
 * when opening the file fails for lack of memory).
 */

/*
 * Writes n tensors (float32 or float64, persistent or on a tape) to path under
 * the given names. The header lists them in the given order; in the buffer the
 * float64 tensors come first, then the float32 ones (each group in the given
 * order), so every tensor is aligned to its element size for readers that map
 * the file. The header is padded with spaces to a multiple of 8 bytes. Data is
 * written little-endian on any host. Names must be non-NULL, valid UTF-8,
 * unique and not "__metadata__" (AD_ERR_ARG otherwise); they are JSON-escaped.
 * The file is written to a temporary file next to path and renamed over it,
 * so a failed save leaves an existing file at path untouched; the new file
 * gets mode 0644. n may be 0 (a file with header "{}").
 */
AD_API ad_status ad_safetensors_save(const char *path, size_t n, const char *const *names,
                                     ad_tensor *const *tensors, char *err, size_t err_size);

/*
 * Loads the entries names[0..n) of the file at path into the persistent
 * tensors tensors[0..n), which must have exactly the file's dtype (AD_ERR_DTYPE)
 * and shape (AD_ERR_SHAPE; the message names the tensor and both shapes).
 * Other entries of the file are validated but not read. All or nothing: the
 * file and every requested tensor are read and checked into temporary memory
 * first, and the destinations are written only when everything succeeded, so
 * on any error no destination has changed. A missing name is AD_ERR_FORMAT
 * ("not found"); a tape tensor or NULL argument is AD_ERR_ARG.
 */
AD_API ad_status ad_safetensors_load(const char *path, size_t n, const char *const *names,
                                     ad_tensor *const *tensors, char *err, size_t err_size);

/* An open, validated safetensors file, for listing entries and reading them one by one. */
typedef struct ad_safetensors ad_safetensors;

/* One entry of an open file. Its pointers live as long as the handle. */
typedef struct ad_safetensors_entry {
    const char *name;  /* NUL-terminated UTF-8 */
    const char *dtype; /* as in the file: "F32", "F64", "I64", "BF16", ... */
    int ndim;
    const int64_t *shape; /* ndim entries (NULL when ndim is 0) */
    int64_t numel;
    uint64_t begin, end; /* byte range in the buffer (data_offsets) */
    bool loadable;       /* dtype is F32 or F64 */
    ad_dtype ad_type;    /* the matching ad_dtype when loadable */
} ad_safetensors_entry;

/*
 * Opens path and validates its header and size as ad_safetensors_load does
 * (the data is not read yet). On success *out is a handle that owns an open
 * file; close it with ad_safetensors_close. On error *out is NULL and the
 * status is AD_ERR_IO, AD_ERR_FORMAT, AD_ERR_NOMEM or AD_ERR_ARG.
 */
AD_API ad_status ad_safetensors_open(ad_safetensors **out, const char *path, char *err,
                                     size_t err_size);
/* Number of tensor entries (not counting __metadata__); 0 for NULL. */
AD_API size_t ad_safetensors_count(const ad_safetensors *st);
/* Entry i, in the order of the file's header. Returns false if i is out of range. */
AD_API bool ad_safetensors_entry_at(const ad_safetensors *st, size_t i,
                                    ad_safetensors_entry *entry);
/* The index of the entry called name, or -1 if there is none. */
AD_API int64_t ad_safetensors_find(const ad_safetensors *st, const char *name);
/*
 * Reads entry `name` into the persistent tensor t, with the checks of
 * ad_safetensors_load; t is written only if everything succeeded.
 */
AD_API ad_status ad_safetensors_read(ad_safetensors *st, const char *name, ad_tensor *t, char *err,
                                     size_t err_size);
/* Closes the file and frees the handle. Accepts NULL. */
AD_API void ad_safetensors_close(ad_safetensors *st);

/* ==== IDX data sets (MNIST, Fashion-MNIST) ================================ */

/*
 * An IDX file of unsigned bytes held in memory. The loader allocates data
 * from the process-wide allocator (ad_set_allocator); free it with
 * ad_idx_free. A zero-initialised ad_idx is empty and may be
 * freed. Items are the slices along the first dim: images [n, rows, cols] have
 * count = n and item_size = rows * cols; labels [n] have item_size 1.
 */
typedef struct ad_idx {
    uint8_t *data;     /* count * item_size bytes, row-major */
    int ndim;          /* 1..4 */
    int64_t dims[4];   /* dims[0] == count; unused entries are 0 */
    int64_t count;     /* number of items */
    int64_t item_size; /* bytes per item: product of dims[1..ndim) */
} ad_idx;

/*
 * Reads an IDX file, gzip-compressed (.gz) or plain (zlib reads both). The
 * magic is big-endian 0x00 0x00 type ndim: the type must be 0x08 (unsigned
 * byte) and ndim 1..4 (0x00000801 labels, 0x00000803 images); the dims follow
 * as big-endian uint32. The file must hold exactly the promised bytes.
 * On success *out owns the data (any earlier content of *out is overwritten,
 * not freed). On error *out is left exactly as it was, so a set loaded into
 * it earlier stays valid (and is still yours to free). Errors: AD_ERR_IO
 * (cannot open or read), AD_ERR_FORMAT (bad magic, truncated or longer than
 * promised, corrupt gzip, dims whose product or item size does not fit in
 * 63 bits; the message has the path and the expected and found sizes),
 * AD_ERR_UNSUPPORTED (an IDX element type other than unsigned byte),
 * AD_ERR_NOMEM (also when opening fails for lack of memory), AD_ERR_ARG.
 */
AD_API ad_status ad_idx_load(const char *path, ad_idx *out, char *err, size_t err_size);
/* Frees the data and zeroes *idx. Accepts NULL and an already freed idx. */
AD_API void ad_idx_free(ad_idx *idx);

/*
 * Writes items indices[0..count) of images, scaled from 0..255 to [0, 1], as
 * rows 0..count-1 of the persistent float32/float64 tensor out. out's first
 * dim must be >= count and each row must hold one item: numel / shape[0] ==
 * item_size (so [B, 784], [B, 28, 28] and [B, 1, 28, 28] all fit 28x28
 * images). Rows from count on are left unchanged. Errors: AD_ERR_ARG (NULL
 * arguments, tape tensor, index out of [0, images->count)), AD_ERR_SHAPE.
 * Nothing is written on error.
 */
AD_API ad_status ad_idx_gather_images(const ad_idx *images, const int64_t *indices, int64_t count,
                                      ad_tensor *out);
/*
 * Writes labels of items indices[0..count) to out[0..count) (caller-owned).
 * labels must have item_size 1. Errors: AD_ERR_ARG (NULL arguments, an index
 * out of range, item_size != 1). Nothing is written on error.
 */
AD_API ad_status ad_idx_gather_labels(const ad_idx *labels, const int64_t *indices, int64_t count,
                                      int64_t *out);

/* ==== Minibatches ========================================================= */

/*
 * An epoch iterator over example indices 0..n-1 in batches of batch_size; the
 * last batch of an epoch may be smaller. With shuffle, each epoch visits a
 * fresh random permutation from the iterator's own generator, which is
 * seeded from one ad_rng_next(rng) at creation: the same rng state gives the
 * same batches, and rng is not kept.
 *
 *     ad_batches *b; ad_batches_create(&b, train.count, 64, true, &rng);
 *     for (int epoch = 0; epoch < 10; epoch++, ad_batches_reset(b))
 *         while (ad_batches_next(b, &idx, &m)) { gather, forward, backward, step }
 *     ad_batches_free(b);
 */
typedef struct ad_batches ad_batches;

/*
 * Creates the iterator, positioned at the start of the first epoch. rng may
 * be NULL without shuffle. Errors: AD_ERR_ARG (n_examples < 0, batch_size < 1,
 * shuffle without rng, NULL out), AD_ERR_NOMEM; *out is NULL on error.
 */
AD_API ad_status ad_batches_create(ad_batches **out, int64_t n_examples, int64_t batch_size,
                                   bool shuffle, ad_rng *rng);
/*
 * Gives the next batch of the epoch: *indices points to *count example
 * indices (owned by the iterator, valid until the next reset or free).
 * Returns false, with *count 0, when the epoch is over.
 */
AD_API bool ad_batches_next(ad_batches *batches, const int64_t **indices, int64_t *count);
/* Starts the next epoch (a new permutation when shuffling). */
AD_API void ad_batches_reset(ad_batches *batches);
/* Batches per epoch: ceil(n_examples / batch_size). */
AD_API int64_t ad_batches_count(const ad_batches *batches);
/* Frees the iterator. Accepts NULL. */
AD_API void ad_batches_free(ad_batches *batches);

#ifdef __cplusplus
}
#endif

#endif /* AUTODIFF_NN_H */
