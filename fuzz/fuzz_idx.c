/* libFuzzer target: the IDX loader, on plain and gzip-compressed files.
 *
 * The input is the file. An input that starts with the gzip magic is loaded
 * as it is (the fuzzer mutates the compressed stream); any other is loaded
 * plain and also gzip-compressed here, and both loads must agree on the
 * status and the data. Each load runs twice: as it is, counting allocations,
 * and with one of them (chosen by the input's hash) failing. Invariants,
 * checked with abort():
 *  - a failure has a message naming ad_idx_load and is AD_ERR_NOMEM exactly
 *    when an allocation failed; the destination keeps what it held;
 *  - a loaded set matches its header (dims, count, item_size, no negative
 *    sizes) and the input's bytes;
 *  - gathering indices in range writes the scaled bytes; an index out of
 *    range writes nothing;
 *  - nothing leaks. */
#include "fuzz_common.h"

#include "autodiff/nn.h"

#include <zlib.h>

/* What the destination holds before a load: a set of its own (3 labels). */
static uint8_t held_data[3] = {1, 2, 3};
static const ad_idx held = {held_data, 1, {3, 0, 0, 0}, 3, 1};

/* The header's dims, when the input has a whole one (ndim 0 otherwise). */
static int header_dims(const uint8_t *data, size_t size, int64_t *dims)
{
    if (size < 4 || data[0] || data[1] || data[2] != 0x08 || data[3] < 1 || data[3] > 4 ||
        size < 4 + 4 * (size_t)data[3])
        return 0;
    for (int d = 0; d < data[3]; d++) {
        const uint8_t *p = data + 4 + 4 * d;
        dims[d] =
            (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    }
    return data[3];
}

/* Gathers from a loaded set, in range and out of it. */
static void gather(const ad_idx *idx)
{
    if (idx->count == 0 || idx->item_size > 4096)
        return;
    ad_tensor *t;
    int64_t shape[2] = {2, idx->item_size};
    CHECK(ad_tensor_create_with(&t, AD_F32, 2, shape, false, &fuzz_plain_allocator) == AD_OK,
          "ad_tensor_create_with");
    float *v = ad_tensor_data(t);
    int64_t in_range[2] = {idx->count - 1, 0};
    CHECK(ad_idx_gather_images(idx, in_range, 2, t) == AD_OK, "gather of items in range");
    for (int64_t i = 0; i < 2; i++)
        for (int64_t k = 0; k < idx->item_size; k++)
            CHECK(v[i * idx->item_size + k] ==
                      (float)idx->data[in_range[i] * idx->item_size + k] / 255.0f,
                  "gathered element %lld of row %lld", (long long)k, (long long)i);
    memset(v, 0x7f, (size_t)(2 * idx->item_size) * sizeof *v);
    int64_t out_of_range[2] = {0, idx->count};
    CHECK(ad_idx_gather_images(idx, out_of_range, 2, t) == AD_ERR_ARG, "gather out of range");
    const unsigned char *bytes = (const unsigned char *)v;
    for (size_t i = 0; i < (size_t)(2 * idx->item_size) * sizeof *v; i++)
        CHECK(bytes[i] == 0x7f, "a refused gather wrote byte %zu", i);
    ad_tensor_free(t);
    if (idx->item_size == 1) {
        int64_t labels[2] = {-1, -1};
        CHECK(ad_idx_gather_labels(idx, in_range, 2, labels) == AD_OK, "gather of labels");
        CHECK(labels[0] == idx->data[idx->count - 1] && labels[1] == idx->data[0], "labels");
        labels[0] = labels[1] = -1;
        CHECK(ad_idx_gather_labels(idx, out_of_range, 2, labels) == AD_ERR_ARG && labels[0] == -1 &&
                  labels[1] == -1,
              "labels out of range");
    }
}

/* One load of path with allocation fail_at failing (0: none). content is
 * the uncompressed file when known (NULL for an input that is gzip). Writes
 * the status to *status and the allocation count to *allocs; the loaded set
 * (if any) goes to *out, which the caller frees. */
static void load(const char *path, const uint8_t *content, size_t size, size_t fail_at,
                 ad_status *status, size_t *allocs, ad_idx *out)
{
    fuzz_allocator c = {.fail_at = fail_at};
    ad_allocator a = fuzz_allocator_of(&c);
    ad_set_allocator(&a);
    ad_idx idx = held;
    char err[512] = "unset";
    ad_status s = ad_idx_load(path, &idx, err, sizeof err);
    bool failed_alloc = c.failures > 0;
    if (s != AD_OK) {
        CHECK(strstr(err, "ad_idx_load") != NULL, "status %s, message \"%s\"", ad_status_string(s),
              err);
        CHECK(memcmp(&idx, &held, sizeof idx) == 0, "a failed load (%s) changed its destination",
              err);
        CHECK(s == AD_ERR_FORMAT || s == AD_ERR_UNSUPPORTED || s == AD_ERR_NOMEM,
              "unexpected status %s: %s", ad_status_string(s), err);
    } else {
        CHECK(err[0] == '\0', "success with a message: %s", err);
        CHECK(idx.ndim >= 1 && idx.ndim <= 4, "ndim %d", idx.ndim);
        CHECK(idx.count == idx.dims[0] && idx.count >= 0, "count %lld", (long long)idx.count);
        CHECK(idx.item_size >= 0, "item_size %lld", (long long)idx.item_size);
        int64_t item = 1;
        for (int d = 0; d < 4; d++) {
            CHECK(d < idx.ndim ? idx.dims[d] >= 0 : idx.dims[d] == 0, "dims[%d] = %lld", d,
                  (long long)idx.dims[d]);
            if (d >= 1 && d < idx.ndim)
                CHECK(!__builtin_mul_overflow(item, idx.dims[d], &item), "item size overflows");
        }
        CHECK(item == idx.item_size, "item_size %lld, dims give %lld", (long long)idx.item_size,
              (long long)item);
        CHECK(idx.data != NULL, "no data");
        if (content) {
            int64_t dims[4];
            int ndim = header_dims(content, size, dims);
            CHECK(ndim == idx.ndim, "ndim %d, header %d", idx.ndim, ndim);
            for (int d = 0; d < ndim; d++)
                CHECK(dims[d] == idx.dims[d], "dims[%d]", d);
            size_t head = 4 + 4 * (size_t)ndim;
            CHECK((uint64_t)idx.count * (uint64_t)idx.item_size == size - head,
                  "%lld items of %lld bytes from %zu data bytes", (long long)idx.count,
                  (long long)idx.item_size, size - head);
            CHECK(size == head || memcmp(idx.data, content + head, size - head) == 0,
                  "data differs from the file");
        }
        gather(&idx);
    }
    CHECK((s == AD_ERR_NOMEM) == failed_alloc, "status %s, yet %s allocation failed: %s",
          ad_status_string(s), failed_alloc ? "an" : "no", err);
    if (s == AD_OK && out) {
        *out = idx; /* still from this allocator: freed below, copied first */
        uint8_t *copy = malloc(idx.count * idx.item_size ? (size_t)(idx.count * idx.item_size) : 1);
        CHECK(copy, "malloc");
        memcpy(copy, idx.data, (size_t)(idx.count * idx.item_size));
        out->data = copy;
    }
    if (s == AD_OK)
        ad_idx_free(&idx);
    ad_set_allocator(NULL);
    CHECK(c.live == 0, "%ld blocks leaked", c.live);
    *status = s;
    *allocs = c.allocs;
}

/* Loads path twice: plainly, then with one allocation failing. */
static ad_status load_both_ways(const char *path, const uint8_t *content, size_t size,
                                uint64_t hash, ad_idx *out)
{
    ad_status s, again;
    size_t allocs, ignored;
    load(path, content, size, 0, &s, &allocs, out);
    if (allocs)
        load(path, content, size, 1 + (size_t)(hash >> 8) % allocs, &again, &ignored, NULL);
    return s;
}

/* The input gzip-compressed (a whole gzip member). */
static uint8_t *gzip_of(const uint8_t *data, size_t size, size_t *out_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
    size_t cap = deflateBound(&z, (uLong)size);
    uint8_t *buf = malloc(cap);
    CHECK(buf, "malloc");
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    *out_size = cap - z.avail_out;
    deflateEnd(&z);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t hash = fuzz_hash(data, size);
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        load_both_ways(fuzz_file(0, data, size), NULL, size, hash, NULL);
        return 0;
    }
    ad_idx plain = {0}, compressed = {0};
    ad_status p = load_both_ways(fuzz_file(0, data, size), data, size, hash, &plain);
    size_t gz_size;
    uint8_t *gz = gzip_of(data, size, &gz_size);
    ad_status g = load_both_ways(fuzz_file(1, gz, gz_size), data, size, hash, &compressed);
    free(gz);
    CHECK(p == g, "plain gives %s, gzip %s", ad_status_string(p), ad_status_string(g));
    if (p == AD_OK) {
        CHECK(plain.ndim == compressed.ndim && plain.count == compressed.count &&
                  plain.item_size == compressed.item_size &&
                  memcmp(plain.dims, compressed.dims, sizeof plain.dims) == 0,
              "plain and gzip give other headers");
        CHECK(memcmp(plain.data, compressed.data, (size_t)(plain.count * plain.item_size)) == 0,
              "plain and gzip give other data");
        free(plain.data);
        free(compressed.data);
    }
    return 0;
}
