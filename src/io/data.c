/* IDX data sets (MNIST, Fashion-MNIST) through zlib, which reads gzip and
 * plain files alike, and a shuffling minibatch iterator. Uses only the public
 * API, ad__error_message and the process-wide allocator (ad__malloc and
 * friends; zlib's own state still comes from malloc: gzopen takes no
 * allocator). */
#include "io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* ---- Reading -------------------------------------------------------------- */

/* Reads up to n bytes into buf, adding to *got; stops early only at the end of
 * the data. Returns Z_OK, or zlib's error number (Z_ERRNO, Z_BUF_ERROR for a
 * gzip stream that ends early, Z_DATA_ERROR, Z_MEM_ERROR). */
static int read_some(gzFile g, unsigned char *buf, size_t n, size_t *got)
{
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        errno = 0;
        int r = gzread(g, buf, chunk);
        if (r < 0) {
            int code;
            gzerror(g, &code);
            return code == Z_OK ? Z_ERRNO : code;
        }
        if (r == 0)
            break;
        buf += r;
        n -= (size_t)r;
        *got += (size_t)r;
    }
    return Z_OK;
}

/* A zlib error as a status and message. found: bytes read when it happened. */
static ad_status read_error(gzFile g, int code, const char *path, size_t found, char *err,
                            size_t err_size)
{
    int ignored;
    const char *what = gzerror(g, &ignored);
    if (code == Z_ERRNO)
        return ad__error_message(err, err_size, AD_ERR_IO, "ad_idx_load: cannot read '%s': %s",
                                 path, strerror(errno ? errno : EIO));
    if (code == Z_MEM_ERROR)
        return ad__error_message(err, err_size, AD_ERR_NOMEM,
                                 "ad_idx_load: '%s': out of memory in zlib", path);
    if (code == Z_BUF_ERROR)
        return ad__error_message(
            err, err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is truncated: the gzip stream ends after %zu bytes (%s)", path,
            found, what);
    return ad__error_message(err, err_size, AD_ERR_FORMAT,
                             "ad_idx_load: '%s': corrupt gzip data after %zu "
                             "bytes (%s)",
                             path, found, what);
}

/* Element types of the IDX format other than unsigned byte. */
static const char *idx_type_name(unsigned type)
{
    switch (type) {
    case 0x09:
        return "signed byte";
    case 0x0B:
        return "short";
    case 0x0C:
        return "int";
    case 0x0D:
        return "float";
    case 0x0E:
        return "double";
    default:
        return NULL;
    }
}

/* One load: the open stream, and the path and buffer for messages. */
typedef struct loader {
    gzFile g;
    const char *path;
    char *err;
    size_t err_size;
} loader;

/* Reads up to n bytes into buf, adding to *got; found: bytes of the file
 * before buf, for messages. */
static ad_status read_into(const loader *ld, unsigned char *buf, size_t n, size_t *got,
                           size_t found)
{
    int code = read_some(ld->g, buf, n, got);
    if (code != Z_OK)
        return read_error(ld->g, code, ld->path, found + *got, ld->err, ld->err_size);
    return AD_OK;
}

static ad_status open_stream(loader *ld)
{
    errno = 0;
    ld->g = gzopen(ld->path, "rb");
    if (!ld->g) {
        /* zlib's own allocations fail with errno ENOMEM (from malloc) or,
         * with another allocator, with errno untouched. */
        bool nomem = errno == 0 || errno == ENOMEM;
        return ad__error_message(ld->err, ld->err_size, nomem ? AD_ERR_NOMEM : AD_ERR_IO,
                                 "ad_idx_load: cannot open '%s': %s", ld->path,
                                 nomem ? "out of memory" : strerror(errno));
    }
    gzbuffer(ld->g, 1u << 17);
    return AD_OK;
}

/* The magic (0x0000, type 0x08, 1 to 4 dims) and the dims after it into
 * head; *head_size: 4 + 4 * dims. */
static ad_status read_head(const loader *ld, unsigned char head[4 + 4 * 4], size_t *head_size)
{
    size_t got = 0;
    ad_status s = read_into(ld, head, 4, &got, 0);
    if (s != AD_OK)
        return s;
    if (got < 4)
        return ad__error_message(
            ld->err, ld->err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is truncated: expected a 4-byte magic, found %zu bytes", ld->path,
            got);
    unsigned type = head[2], ndim = head[3];
    if (head[0] || head[1] || ndim < 1 || ndim > 4 || (type != 0x08 && !idx_type_name(type)))
        return ad__error_message(
            ld->err, ld->err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s': bad magic 0x%02x%02x%02x%02x (expected 0x00000801 for "
            "labels, 0x00000803 for images: 0x0000, type 0x08, 1 to 4 dims)",
            ld->path, head[0], head[1], head[2], head[3]);
    if (type != 0x08)
        return ad__error_message(
            ld->err, ld->err_size, AD_ERR_UNSUPPORTED,
            "ad_idx_load: '%s': IDX elements of type 0x%02x (%s) are not supported, only "
            "0x08 (unsigned byte)",
            ld->path, type, idx_type_name(type));
    *head_size = 4 + 4 * (size_t)ndim;
    if ((s = read_into(ld, head + 4, *head_size - 4, &got, 0)) != AD_OK)
        return s;
    if (got < *head_size)
        return ad__error_message(
            ld->err, ld->err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is truncated: expected a %zu-byte header for %u dims, found "
            "%zu bytes",
            ld->path, *head_size, ndim, got);
    return AD_OK;
}

/* The dims of head into dims[], *total = their product (the data's bytes)
 * and *item = the product of all but the first. */
static ad_status parse_dims(const loader *ld, const unsigned char *head, int64_t dims[4],
                            uint64_t *total, uint64_t *item)
{
    /* Each dim is a big-endian uint32, so a product of two fits in 64 bits;
     * guard the rest. The item size is checked on its own: with no items the
     * total is 0 whatever the other dims are, but item_size must still be
     * representable. */
    *total = 1;
    *item = 1;
    for (unsigned d = 0; d < head[3]; d++) {
        const unsigned char *p = head + 4 + 4 * d;
        uint64_t dim = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
        dims[d] = (int64_t)dim;
        if (dim && (*total > (uint64_t)INT64_MAX / dim || *item > (uint64_t)INT64_MAX / dim))
            return ad__error_message(
                ld->err, ld->err_size, AD_ERR_FORMAT,
                "ad_idx_load: '%s': dims too large: the %s does not fit in 63 bits", ld->path,
                *total > (uint64_t)INT64_MAX / dim ? "size" : "item size");
        *total *= dim;
        if (d)
            *item *= dim;
    }
    return AD_OK;
}

/* Reads up to want bytes of data into *data (the caller frees it), *have of
 * them. The buffer grows as data arrives rather than trusting the header's
 * promise: a short file claiming terabytes is a format error, not an
 * allocation failure. */
static ad_status read_data(const loader *ld, size_t head_size, size_t want, unsigned char **data,
                           size_t *have)
{
    size_t cap = want < (1u << 20) ? want : (1u << 20);
    *have = 0;
    if (!(*data = ad__malloc(cap ? cap : 1)))
        return ad__error_message(ld->err, ld->err_size, AD_ERR_NOMEM,
                                 "ad_idx_load: '%s': out of memory", ld->path);
    for (;;) {
        ad_status s = read_into(ld, *data + *have, cap - *have, have, head_size);
        if (s != AD_OK)
            return s;
        if (*have < cap || *have == want)
            return AD_OK;
        size_t grown = cap > want / 2 ? want : cap * 2;
        unsigned char *bigger = ad__realloc(*data, cap, grown);
        if (!bigger)
            return ad__error_message(ld->err, ld->err_size, AD_ERR_NOMEM,
                                     "ad_idx_load: '%s': out of memory for %zu bytes", ld->path,
                                     grown);
        *data = bigger;
        cap = grown;
    }
}

/* The file must hold exactly the head_size + want bytes its header promises;
 * have: the data bytes read. */
static ad_status check_length(const loader *ld, size_t head_size, size_t want, size_t have)
{
    if (have < want)
        return ad__error_message(
            ld->err, ld->err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is truncated: expected %zu bytes (%zu of header + %zu of "
            "data), found %zu",
            ld->path, head_size + want, head_size, want, head_size + have);
    unsigned char extra[256];
    size_t n_extra = 0;
    ad_status s = read_into(ld, extra, sizeof extra, &n_extra, head_size + have);
    if (s != AD_OK)
        return s;
    if (n_extra)
        return ad__error_message(
            ld->err, ld->err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is longer than its header promises: expected %zu bytes, "
            "found %s%zu",
            ld->path, head_size + want, n_extra == sizeof extra ? "more than " : "",
            head_size + want + n_extra - (n_extra == sizeof extra));
    return AD_OK;
}

/* Reads and checks the whole file; *data and dims[] are the caller's. */
static ad_status load(const loader *ld, unsigned char **data, int64_t dims[4], int *ndim,
                      int64_t *item_size)
{
    unsigned char head[4 + 4 * 4];
    size_t head_size = 0, have = 0;
    uint64_t total = 0, item = 0;
    ad_status s = read_head(ld, head, &head_size);
    if (s != AD_OK || (s = parse_dims(ld, head, dims, &total, &item)) != AD_OK)
        return s;
    if (total > SIZE_MAX - head_size)
        return ad__error_message(ld->err, ld->err_size, AD_ERR_NOMEM,
                                 "ad_idx_load: '%s': %" PRIu64 " bytes do not fit in memory",
                                 ld->path, total);
    if ((s = read_data(ld, head_size, (size_t)total, data, &have)) != AD_OK ||
        (s = check_length(ld, head_size, (size_t)total, have)) != AD_OK)
        return s;
    *ndim = head[3];
    *item_size = (int64_t)item;
    return AD_OK;
}

ad_status ad_idx_load(const char *path, ad_idx *out, char *err, size_t err_size)
{
    clear_err(err, err_size);
    if (!out)
        return ad__error_message(err, err_size, AD_ERR_ARG, "ad_idx_load: out is NULL");
    if (!path)
        return ad__error_message(err, err_size, AD_ERR_ARG, "ad_idx_load: path is NULL");
    loader ld = {NULL, path, err, err_size};
    ad_status s = open_stream(&ld);
    if (s != AD_OK)
        return s;
    /* *out is written only once everything has succeeded. */
    unsigned char *data = NULL;
    int64_t dims[4] = {0}, item_size = 0;
    int ndim = 0;
    if ((s = load(&ld, &data, dims, &ndim, &item_size)) == AD_OK) {
        memset(out, 0, sizeof *out);
        out->data = data;
        data = NULL;
        out->ndim = ndim;
        memcpy(out->dims, dims, sizeof dims);
        out->count = dims[0];
        out->item_size = item_size;
    }
    ad__free(data);
    gzclose_r(ld.g);
    return s;
}

void ad_idx_free(ad_idx *idx)
{
    if (!idx)
        return;
    ad__free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* All indices in [0, count of idx). */
static bool indices_valid(const ad_idx *idx, const int64_t *indices, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        if (indices[i] < 0 || indices[i] >= idx->count)
            return false;
    return true;
}

#define KERNELS "io/data_kernels.h"
#include "../core/kernels.h"

/* A dtype gather_images has a kernel for. */
static bool image_dtype(ad_dtype dtype)
{
    switch (dtype) {
    case AD_F32:
    case AD_F64:
        return true;
    case AD_I64:
    case AD_BOOL:
        return false;
    }
    return false;
}

ad_status ad_idx_gather_images(const ad_idx *images, const int64_t *indices, int64_t count,
                               ad_tensor *out)
{
    if (!images || !out || count < 0 || (count && (!indices || !images->data)))
        return AD_ERR_ARG;
    if (!persistent(out) || !image_dtype(ad_tensor_dtype(out)))
        return AD_ERR_ARG;
    if (!indices_valid(images, indices, count))
        return AD_ERR_ARG;
    if (ad_tensor_ndim(out) < 1)
        return AD_ERR_SHAPE;
    int64_t rows = ad_tensor_shape(out)[0], size = images->item_size;
    if (rows < count || (rows && ad_tensor_numel(out) / rows != size))
        return AD_ERR_SHAPE;
    switch (ad_tensor_dtype(out)) {
    case AD_F32:
        gather_images_f32(images->data, size, indices, count, ad_tensor_data(out));
        break;
    case AD_F64:
        gather_images_f64(images->data, size, indices, count, ad_tensor_data(out));
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    return AD_OK;
}

ad_status ad_idx_gather_labels(const ad_idx *labels, const int64_t *indices, int64_t count,
                               int64_t *out)
{
    if (!labels || count < 0 || labels->item_size != 1 ||
        (count && (!indices || !out || !labels->data)))
        return AD_ERR_ARG;
    if (!indices_valid(labels, indices, count))
        return AD_ERR_ARG;
    for (int64_t i = 0; i < count; i++)
        out[i] = labels->data[indices[i]];
    return AD_OK;
}

/* ---- Minibatches ---------------------------------------------------------- */

struct ad_batches {
    int64_t n, batch_size, position;
    bool shuffle;
    ad_rng rng;     /* the iterator's own stream */
    int64_t *order; /* this epoch's permutation of 0..n-1 */
};

ad_status ad_batches_create(ad_batches **out, int64_t n_examples, int64_t batch_size, bool shuffle,
                            ad_rng *rng)
{
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (n_examples < 0 || batch_size < 1 || (shuffle && !rng))
        return AD_ERR_ARG;
    if ((uint64_t)n_examples > SIZE_MAX / sizeof(int64_t))
        return AD_ERR_NOMEM;
    ad_batches *b = ad__calloc(1, sizeof *b);
    if (!b)
        return AD_ERR_NOMEM;
    b->order = ad__malloc(n_examples ? (size_t)n_examples * sizeof *b->order : 1);
    if (!b->order) {
        ad__free(b);
        return AD_ERR_NOMEM;
    }
    b->n = n_examples;
    b->batch_size = batch_size;
    b->shuffle = shuffle;
    for (int64_t i = 0; i < n_examples; i++)
        b->order[i] = i;
    if (shuffle) {
        ad_rng_seed(&b->rng, ad_rng_next(rng));
        ad_rng_shuffle(&b->rng, b->order, (size_t)n_examples);
    }
    *out = b;
    return AD_OK;
}

bool ad_batches_next(ad_batches *b, const int64_t **indices, int64_t *count)
{
    if (!b || b->position >= b->n) {
        if (indices)
            *indices = NULL;
        if (count)
            *count = 0;
        return false;
    }
    int64_t m = b->n - b->position < b->batch_size ? b->n - b->position : b->batch_size;
    if (indices)
        *indices = b->order + b->position;
    if (count)
        *count = m;
    b->position += m;
    return true;
}

void ad_batches_reset(ad_batches *b)
{
    if (!b)
        return;
    b->position = 0;
    /* Shuffling the previous permutation gives a uniform one just the same. */
    if (b->shuffle)
        ad_rng_shuffle(&b->rng, b->order, (size_t)b->n);
}

int64_t ad_batches_count(const ad_batches *b)
{
    return b ? (b->n + b->batch_size - 1) / b->batch_size : 0;
}

void ad_batches_free(ad_batches *b)
{
    if (!b)
        return;
    ad__free(b->order);
    ad__free(b);
}
