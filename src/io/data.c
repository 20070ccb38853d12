/* IDX data sets (MNIST, Fashion-MNIST) through zlib, which reads gzip and
 * plain files alike, and a shuffling minibatch iterator. Uses only the public
 * API, ad__error_message and the process-wide allocator (ad__malloc and
 * friends; zlib's own state still comes from malloc: gzopen takes no
 * allocator). */
#include "../core/util.h"
#include "autodiff/nn.h"

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

ad_status ad_idx_load(const char *path, ad_idx *out, char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = '\0';
    if (!out)
        return ad__error_message(err, err_size, AD_ERR_ARG, "ad_idx_load: out is NULL");
    if (!path)
        return ad__error_message(err, err_size, AD_ERR_ARG, "ad_idx_load: path is NULL");
    errno = 0;
    gzFile g = gzopen(path, "rb");
    if (!g) {
        /* zlib's own allocations fail with errno ENOMEM (from malloc) or,
         * with another allocator, with errno untouched. */
        bool nomem = errno == 0 || errno == ENOMEM;
        return ad__error_message(err, err_size, nomem ? AD_ERR_NOMEM : AD_ERR_IO,
                                 "ad_idx_load: cannot open '%s': %s", path,
                                 nomem ? "out of memory" : strerror(errno));
    }
    gzbuffer(g, 1u << 17);

    /* *out is written only once everything has succeeded. */
    ad_status s = AD_OK;
    unsigned char *data = NULL;
    int64_t dims[4] = {0};
    unsigned char head[4 + 4 * 4];
    size_t got = 0;
    int code = read_some(g, head, 4, &got);
    if (code != Z_OK) {
        s = read_error(g, code, path, got, err, err_size);
        goto done;
    }
    if (got < 4) {
        s = ad__error_message(
            err, err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is truncated: expected a 4-byte magic, found %zu bytes", path, got);
        goto done;
    }
    unsigned type = head[2], ndim = head[3];
    if (head[0] || head[1] || ndim < 1 || ndim > 4 || (type != 0x08 && !idx_type_name(type))) {
        s = ad__error_message(
            err, err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s': bad magic 0x%02x%02x%02x%02x (expected 0x00000801 for "
            "labels, 0x00000803 for images: 0x0000, type 0x08, 1 to 4 dims)",
            path, head[0], head[1], head[2], head[3]);
        goto done;
    }
    if (type != 0x08) {
        s = ad__error_message(
            err, err_size, AD_ERR_UNSUPPORTED,
            "ad_idx_load: '%s': IDX elements of type 0x%02x (%s) are not supported, only "
            "0x08 (unsigned byte)",
            path, type, idx_type_name(type));
        goto done;
    }
    size_t head_size = 4 + 4 * (size_t)ndim;
    if ((code = read_some(g, head + 4, head_size - 4, &got)) != Z_OK) {
        s = read_error(g, code, path, got, err, err_size);
        goto done;
    }
    if (got < head_size) {
        s = ad__error_message(
            err, err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is truncated: expected a %zu-byte header for %u dims, found "
            "%zu bytes",
            path, head_size, ndim, got);
        goto done;
    }
    /* Each dim is a big-endian uint32, so a product of two fits in 64 bits;
     * guard the rest. The item size is checked on its own: with no items the
     * total is 0 whatever the other dims are, but item_size must still be
     * representable. */
    uint64_t total = 1, item = 1;
    for (unsigned d = 0; d < ndim; d++) {
        const unsigned char *p = head + 4 + 4 * d;
        uint64_t dim = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
        dims[d] = (int64_t)dim;
        if (dim && (total > (uint64_t)INT64_MAX / dim || item > (uint64_t)INT64_MAX / dim)) {
            s = ad__error_message(err, err_size, AD_ERR_FORMAT,
                                  "ad_idx_load: '%s': dims too large: the %s does not fit in "
                                  "63 bits",
                                  path, total > (uint64_t)INT64_MAX / dim ? "size" : "item size");
            goto done;
        }
        total *= dim;
        if (d)
            item *= dim;
    }
    if (total > SIZE_MAX - head_size) {
        s = ad__error_message(err, err_size, AD_ERR_NOMEM,
                              "ad_idx_load: '%s': %" PRIu64 " bytes do not fit "
                              "in memory",
                              path, total);
        goto done;
    }
    /* Grow the buffer as data arrives rather than trusting the header's
     * promise: a short file claiming terabytes is a format error, not an
     * allocation failure. */
    size_t want = (size_t)total, cap = want < (1u << 20) ? want : (1u << 20), have = 0;
    data = ad__malloc(cap ? cap : 1);
    if (!data) {
        s = ad__error_message(err, err_size, AD_ERR_NOMEM, "ad_idx_load: '%s': out of memory",
                              path);
        goto done;
    }
    for (;;) {
        if ((code = read_some(g, data + have, cap - have, &have)) != Z_OK) {
            s = read_error(g, code, path, head_size + have, err, err_size);
            goto done;
        }
        if (have < cap || have == want)
            break;
        size_t grown = cap > want / 2 ? want : cap * 2;
        unsigned char *bigger = ad__realloc(data, cap, grown);
        if (!bigger) {
            s = ad__error_message(err, err_size, AD_ERR_NOMEM,
                                  "ad_idx_load: '%s': out of memory for %zu "
                                  "bytes",
                                  path, grown);
            goto done;
        }
        data = bigger;
        cap = grown;
    }
    if (have < want) {
        s = ad__error_message(
            err, err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is truncated: expected %zu bytes (%zu of header + %zu of "
            "data), found %zu",
            path, head_size + want, head_size, want, head_size + have);
        goto done;
    }
    unsigned char extra[256];
    size_t n_extra = 0;
    if ((code = read_some(g, extra, sizeof extra, &n_extra)) != Z_OK) {
        s = read_error(g, code, path, head_size + have + n_extra, err, err_size);
        goto done;
    }
    if (n_extra) {
        s = ad__error_message(
            err, err_size, AD_ERR_FORMAT,
            "ad_idx_load: '%s' is longer than its header promises: expected %zu bytes, "
            "found %s%zu",
            path, head_size + want, n_extra == sizeof extra ? "more than " : "",
            head_size + want + n_extra - (n_extra == sizeof extra));
        goto done;
    }
    memset(out, 0, sizeof *out);
    out->data = data;
    data = NULL;
    out->ndim = (int)ndim;
    memcpy(out->dims, dims, sizeof dims);
    out->count = dims[0];
    out->item_size = (int64_t)item;
done:
    ad__free(data);
    gzclose_r(g);
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

ad_status ad_idx_gather_images(const ad_idx *images, const int64_t *indices, int64_t count,
                               ad_tensor *out)
{
    if (!images || !out || count < 0 || (count && (!indices || !images->data)))
        return AD_ERR_ARG;
    if (ad_tensor_tape(out) || !ad_tensor_data(out) ||
        (ad_tensor_dtype(out) != AD_F32 && ad_tensor_dtype(out) != AD_F64))
        return AD_ERR_ARG;
    if (!indices_valid(images, indices, count))
        return AD_ERR_ARG;
    if (ad_tensor_ndim(out) < 1)
        return AD_ERR_SHAPE;
    int64_t rows = ad_tensor_shape(out)[0];
    if (rows < count || (rows && ad_tensor_numel(out) / rows != images->item_size))
        return AD_ERR_SHAPE;
    int64_t size = images->item_size;
    if (ad_tensor_dtype(out) == AD_F32) {
        float *d = ad_tensor_data(out);
        /* As torchvision's ToTensor: float(x) / 255 in single precision. */
        for (int64_t i = 0; i < count; i++) {
            const uint8_t *src = images->data + indices[i] * size;
            for (int64_t k = 0; k < size; k++)
                d[i * size + k] = (float)src[k] / 255.0f;
        }
    } else {
        double *d = ad_tensor_data(out);
        for (int64_t i = 0; i < count; i++) {
            const uint8_t *src = images->data + indices[i] * size;
            for (int64_t k = 0; k < size; k++)
                d[i * size + k] = (double)src[k] / 255.0;
        }
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
