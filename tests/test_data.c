/* IDX loading (plain and gzip), gathering batches into tensors, and the
 * shuffling minibatch iterator; Fashion-MNIST itself when it is installed. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "autodiff/nn.h"
#include "fail_each_alloc.h"

#include <errno.h>

/* gzopen allocates its state, so it can fail for lack of memory (errno
 * ENOMEM from malloc). tests/meson.build links this test with -Wl,--wrap for
 * gzopen (and its 64-bit name), which sends the library's calls here: while
 * fail_open is set they fail with errno ENOMEM. */
static bool fail_open;
gzFile __real_gzopen(const char *path, const char *mode);
gzFile __real_gzopen64(const char *path, const char *mode);
gzFile __wrap_gzopen(const char *path, const char *mode);
gzFile __wrap_gzopen64(const char *path, const char *mode);
gzFile __wrap_gzopen(const char *path, const char *mode)
{
    if (fail_open) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_gzopen(path, mode);
}
gzFile __wrap_gzopen64(const char *path, const char *mode)
{
    if (fail_open) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_gzopen64(path, mode);
}

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* Writes bytes to a new file in the temporary dir, gzip-compressed or not. */
static const char *write_file(char *path, size_t size, bool gz, const void *bytes, size_t len)
{
    snprintf(path, size, "%s/f%d%s", temp_dir, temp_file_counter++, gz ? ".gz" : ".idx");
    if (gz) {
        gzFile g = gzopen(path, "wb");
        assert_non_null(g);
        if (len)
            assert_int_equal(gzwrite(g, bytes, (unsigned)len), (int)len);
        assert_int_equal(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
    return path;
}

/* An IDX file image: magic 0x0000 type ndim, big-endian dims, then data
 * (byte i is (7 i + 3) mod 256). Returns its size; *out is malloc'd. */
static size_t idx_bytes(unsigned char **out, unsigned type, int ndim, const uint32_t *dims)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= dims[d];
    size_t head = 4 + 4 * (size_t)ndim;
    unsigned char *b = malloc(head + n + 16);
    assert_non_null(b);
    b[0] = 0;
    b[1] = 0;
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) {
        b[4 + 4 * d] = (unsigned char)(dims[d] >> 24);
        b[5 + 4 * d] = (unsigned char)(dims[d] >> 16);
        b[6 + 4 * d] = (unsigned char)(dims[d] >> 8);
        b[7 + 4 * d] = (unsigned char)dims[d];
    }
    for (size_t i = 0; i < n + 16; i++)
        b[head + i] = (unsigned char)((7 * i + 3) % 256);
    *out = b;
    return head + n;
}

static void check_pattern(const ad_idx *idx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(idx->data[i], (7 * i + 3) % 256);
}

static void test_plain_and_gzipped_images_and_labels_load(void **state)
{
    (void)state;
    for (int gz = 0; gz < 2; gz++) {
        unsigned char *bytes;
        size_t len = idx_bytes(&bytes, 0x08, 3, (uint32_t[]){5, 3, 4});
        assert_int_equal(len, 16 + 60);
        char path[300], err[512];
        write_file(path, sizeof path, gz, bytes, len);
        ad_idx images;
        assert_int_equal(ad_idx_load(path, &images, err, sizeof err), AD_OK);
        assert_string_equal(err, "");
        assert_int_equal(images.ndim, 3);
        assert_int_equal(images.dims[0], 5);
        assert_int_equal(images.dims[1], 3);
        assert_int_equal(images.dims[2], 4);
        assert_int_equal(images.dims[3], 0);
        assert_int_equal(images.count, 5);
        assert_int_equal(images.item_size, 12);
        check_pattern(&images, 60);
        ad_idx_free(&images);
        assert_null(images.data);
        ad_idx_free(&images); /* twice is fine */
        ad_idx_free(NULL);
        free(bytes);

        len = idx_bytes(&bytes, 0x08, 1, (uint32_t[]){7});
        write_file(path, sizeof path, gz, bytes, len);
        ad_idx labels;
        assert_int_equal(ad_idx_load(path, &labels, err, sizeof err), AD_OK);
        assert_int_equal(labels.ndim, 1);
        assert_int_equal(labels.count, 7);
        assert_int_equal(labels.item_size, 1);
        check_pattern(&labels, 7);
        ad_idx_free(&labels);
        free(bytes);
    }
}

static void test_generic_unsigned_byte_idx_with_four_dims_and_empty_sets_load(void **state)
{
    (void)state;
    unsigned char *bytes;
    size_t len = idx_bytes(&bytes, 0x08, 4, (uint32_t[]){2, 3, 2, 2});
    char path[300], err[512];
    ad_idx idx;
    assert_int_equal(
        ad_idx_load(write_file(path, sizeof path, true, bytes, len), &idx, err, sizeof err), AD_OK);
    assert_int_equal(idx.ndim, 4);
    assert_int_equal(idx.count, 2);
    assert_int_equal(idx.item_size, 12);
    check_pattern(&idx, 24);
    ad_idx_free(&idx);
    free(bytes);

    len = idx_bytes(&bytes, 0x08, 3, (uint32_t[]){0, 28, 28});
    assert_int_equal(
        ad_idx_load(write_file(path, sizeof path, false, bytes, len), &idx, err, sizeof err),
        AD_OK);
    assert_int_equal(idx.count, 0);
    assert_int_equal(idx.item_size, 784);
    ad_idx_free(&idx);
    free(bytes);
}

/* A set of 3 labels loaded from a file of its own, for a destination that
 * already holds data. */
static void load_three_labels(ad_idx *idx)
{
    unsigned char *bytes;
    size_t len = idx_bytes(&bytes, 0x08, 1, (uint32_t[]){3});
    char path[300], err[512];
    write_file(path, sizeof path, false, bytes, len);
    free(bytes);
    assert_int_equal(ad_idx_load(path, idx, err, sizeof err), AD_OK);
}

/* Loads path expecting code and a message containing needle, into a
 * destination that holds a loaded set: a failed load leaves it exactly as it
 * was (the set stays valid). */
static void expect_refused_at(const char *path, ad_status code, const char *needle,
                              const char *file, int line)
{
    ad_idx idx, before;
    load_three_labels(&idx);
    before = idx;
    char err[512] = "unset";
    ad_status s = ad_idx_load(path, &idx, err, sizeof err);
    if (s != code || (needle && !strstr(err, needle)) || !strstr(err, "ad_idx_load")) {
        print_error("%s:%d: status %s, expected %s; message \"%s\", expected to contain \"%s\"\n",
                    file, line, ad_status_string(s), ad_status_string(code), err,
                    needle ? needle : "");
        if (s == AD_OK)
            ad_idx_free(&idx);
        ad_idx_free(&before);
        _fail(file, line);
    }
    if (memcmp(&idx, &before, sizeof idx) != 0) {
        print_error("%s:%d: the failed load changed its destination\n", file, line);
        ad_idx_free(&before);
        _fail(file, line);
    }
    check_pattern(&idx, 3);
    ad_idx_free(&idx);
}
#define expect_refused(path, code, needle)                                                         \
    expect_refused_at((path), (code), (needle), __FILE__, __LINE__)

static void test_truncated_or_overlong_files_are_refused_with_both_sizes(void **state)
{
    (void)state;
    unsigned char *bytes;
    size_t len = idx_bytes(&bytes, 0x08, 3, (uint32_t[]){5, 3, 4});
    char path[300], want[400];
    for (int gz = 0; gz < 2; gz++) {
        /* 8 data bytes missing: expected 76, found 68, and the path. */
        write_file(path, sizeof path, gz, bytes, len - 8);
        expect_refused(path, AD_ERR_FORMAT, "expected 76 bytes");
        expect_refused(path, AD_ERR_FORMAT, "found 68");
        snprintf(want, sizeof want, "'%s' is truncated", path);
        expect_refused(path, AD_ERR_FORMAT, want);
        /* Cut inside the dims, inside the magic, and empty. */
        expect_refused(write_file(path, sizeof path, gz, bytes, 10), AD_ERR_FORMAT,
                       "expected a 16-byte header");
        expect_refused(write_file(path, sizeof path, gz, bytes, 2), AD_ERR_FORMAT,
                       "expected a 4-byte magic");
        expect_refused(write_file(path, sizeof path, gz, bytes, 0), AD_ERR_FORMAT, "truncated");
        /* Five bytes too many. */
        expect_refused(write_file(path, sizeof path, gz, bytes, len + 5), AD_ERR_FORMAT,
                       "longer than its header promises: expected 76 bytes, found 81");
    }
    free(bytes);

    /* A header that promises terabytes, on a small file, is a format error. */
    unsigned char huge[16 + 100] = {0, 0, 0x08, 0x03, 0xEE, 0x6B, 0x28, 0x00,  /* 4e9 */
                                    0, 0, 0x03, 0xE8, 0,    0,    0x03, 0xE8}; /* 1000, 1000 */
    write_file(path, sizeof path, false, huge, sizeof huge);
    expect_refused(path, AD_ERR_FORMAT, "expected 4000000000000016 bytes");
    expect_refused(path, AD_ERR_FORMAT, "found 116");

    /* A gzip stream cut short, and a corrupt one. */
    len = idx_bytes(&bytes, 0x08, 3, (uint32_t[]){50, 20, 20});
    write_file(path, sizeof path, true, bytes, len);
    free(bytes);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char gzbytes[4096];
    size_t gzlen = fread(gzbytes, 1, sizeof gzbytes, f);
    fclose(f);
    assert_true(gzlen > 40 && gzlen < sizeof gzbytes);
    snprintf(path, sizeof path, "%s/cut%d.gz", temp_dir, temp_file_counter++);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(gzbytes, 1, gzlen / 2, f);
    fclose(f);
    expect_refused(path, AD_ERR_FORMAT, NULL);
    gzbytes[gzlen / 2] ^= 0x55;
    gzbytes[gzlen / 2 + 1] ^= 0xAA;
    snprintf(path, sizeof path, "%s/bad%d.gz", temp_dir, temp_file_counter++);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(gzbytes, 1, gzlen, f);
    fclose(f);
    expect_refused(path, AD_ERR_FORMAT, NULL);
}

static void test_bad_magic_is_refused(void **state)
{
    (void)state;
    char path[300];
    static const unsigned char magics[][4] = {
        {0x01, 0x00, 0x08, 0x03},                           /* nonzero first byte */
        {0x00, 0x01, 0x08, 0x01}, {0x00, 0x00, 0x07, 0x01}, /* no such type */
        {0x00, 0x00, 0x08, 0x00},                           /* zero dims */
        {0x00, 0x00, 0x08, 0x05},                           /* five dims */
    };
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++) {
        unsigned char b[16] = {0};
        memcpy(b, magics[i], 4);
        b[7] = 1;
        write_file(path, sizeof path, false, b, sizeof b);
        expect_refused(path, AD_ERR_FORMAT, "bad magic");
    }
    /* Real IDX types we do not load: a clear "not supported". */
    unsigned char f32[12] = {0x00, 0x00, 0x0D, 0x01, 0, 0, 0, 1, 0, 0, 0x80, 0x3f};
    expect_refused(write_file(path, sizeof path, false, f32, sizeof f32), AD_ERR_UNSUPPORTED,
                   "type 0x0d (float)");
}

static void test_missing_files_and_bad_arguments_are_reported(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/does-not-exist.gz", temp_dir);
    expect_refused(path, AD_ERR_IO, "No such file");
    expect_refused(path, AD_ERR_IO, path);
    expect_refused(temp_dir, AD_ERR_IO, "cannot read");
    ad_idx idx;
    assert_int_equal(ad_idx_load(NULL, &idx, err, sizeof err), AD_ERR_ARG);
    assert_int_equal(ad_idx_load(path, NULL, err, sizeof err), AD_ERR_ARG);
    assert_int_equal(ad_idx_load(path, &idx, NULL, 0), AD_ERR_IO);
}

/* No items, but items of more than 2^63 bytes: the item size cannot be
 * represented, so the file is refused (it used to load with a negative
 * item_size). Huge items that still fit are fine when there are none. */
static void test_an_empty_set_of_items_too_large_to_count_is_refused(void **state)
{
    (void)state;
    char path[300];
    for (int gz = 0; gz < 2; gz++) {
        unsigned char four[20] = {0,    0,    0x08, 0x04, 0,    0,    0,    0, /* 0 items */
                                  0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                  0xFF, 0xFF, 0xFF, 0xFF};
        expect_refused(write_file(path, sizeof path, gz, four, sizeof four), AD_ERR_FORMAT,
                       "too large");
        unsigned char three[16] = {
            0,    0,    0x08, 0x03, 0,    0,    0,    0,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}; /* 2^64 - 2^33 + 1 > INT64_MAX */
        expect_refused(write_file(path, sizeof path, gz, three, sizeof three), AD_ERR_FORMAT,
                       "too large");
    }
    unsigned char fits[20] = {0, 0, 0x08, 0x04, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0};
    char err[512];
    ad_idx idx;
    assert_int_equal(
        ad_idx_load(write_file(path, sizeof path, false, fits, sizeof fits), &idx, err, sizeof err),
        AD_OK);
    assert_int_equal(idx.count, 0);
    assert_int_equal(idx.item_size, (int64_t)1 << 48);
    ad_idx_free(&idx);
}

/* gzopen failing with ENOMEM is out of memory, not an I/O error. */
static void test_running_out_of_memory_in_gzopen_is_nomem_not_io(void **state)
{
    (void)state;
    unsigned char *bytes;
    size_t len = idx_bytes(&bytes, 0x08, 1, (uint32_t[]){4});
    char path[300];
    write_file(path, sizeof path, true, bytes, len);
    free(bytes);
    ad_idx idx, before;
    load_three_labels(&idx);
    before = idx;
    char err[512];
    fail_open = true;
    ad_status s = ad_idx_load(path, &idx, err, sizeof err);
    fail_open = false;
    assert_int_equal(s, AD_ERR_NOMEM);
    assert_non_null(strstr(err, "ad_idx_load: cannot open"));
    assert_non_null(strstr(err, "out of memory"));
    assert_non_null(strstr(err, path));
    assert_memory_equal(&idx, &before, sizeof idx);
    ad_idx_free(&idx);
    /* Without the failure the same file loads. */
    assert_int_equal(ad_idx_load(path, &idx, err, sizeof err), AD_OK);
    assert_int_equal(idx.count, 4);
    ad_idx_free(&idx);
}

/* ---- Out of memory -------------------------------------------------------- */

typedef struct idx_sweep {
    const char *path;
    ad_idx idx, before;
    size_t bytes;
} idx_sweep;

static ad_status run_idx_load(void *ctx, char *err, size_t err_size)
{
    idx_sweep *x = ctx;
    return ad_idx_load(x->path, &x->idx, err, err_size);
}

static void idx_unchanged(void *ctx)
{
    idx_sweep *x = ctx;
    assert_memory_equal(&x->idx, &x->before, sizeof x->idx);
}

/* Checks the loaded set, then frees it through the sweep's allocator. */
static void idx_release(void *ctx)
{
    idx_sweep *x = ctx;
    check_pattern(&x->idx, x->bytes);
    ad_idx_free(&x->idx);
    x->idx = x->before;
}

static void test_every_allocation_failure_of_an_idx_load_is_nomem_and_changes_nothing(void **state)
{
    (void)state;
    /* More than the loader's first 1 MiB block, so the buffer grows. */
    unsigned char *bytes;
    size_t len = idx_bytes(&bytes, 0x08, 3, (uint32_t[]){3, 600, 600});
    for (int gz = 0; gz < 2; gz++) {
        char path[300];
        write_file(path, sizeof path, gz, bytes, len);
        idx_sweep x = {.path = path, .bytes = 3 * 600 * 600};
        load_three_labels(&x.idx); /* with malloc, before the sweep */
        x.before = x.idx;
        fail_each_alloc load = {run_idx_load, idx_unchanged, idx_release, &x};
        assert_true(fail_each_alloc_run(&load) >= 2); /* the data, and its growth */
        ad_idx_free(&x.idx);
    }
    free(bytes);
}

static ad_status run_batches_create(void *ctx, char *err, size_t err_size)
{
    ad_batches **b = ctx;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_status s = ad_batches_create(b, 10, 3, true, &rng);
    if (s == AD_ERR_NOMEM)
        snprintf(err, err_size, "out of memory"); /* ad_batches_create has no message buffer */
    return s;
}

static void batches_free(void *ctx)
{
    ad_batches **b = ctx;
    assert_int_equal(ad_batches_count(*b), 4);
    ad_batches_free(*b);
}

static void batches_none(void *ctx)
{
    assert_null(*(ad_batches **)ctx);
}

static void test_every_allocation_failure_of_a_batch_iterator_is_nomem(void **state)
{
    (void)state;
    ad_batches *b = NULL;
    fail_each_alloc create = {run_batches_create, batches_none, batches_free, &b};
    assert_int_equal(fail_each_alloc_run(&create), 2);
}

/* ---- Gathering ------------------------------------------------------------ */

static void load_pattern(ad_idx *idx, int ndim, const uint32_t *dims)
{
    unsigned char *bytes;
    size_t len = idx_bytes(&bytes, 0x08, ndim, dims);
    char path[300], err[512];
    write_file(path, sizeof path, false, bytes, len);
    free(bytes);
    assert_int_equal(ad_idx_load(path, idx, err, sizeof err), AD_OK);
}

static void test_gather_images_scales_bytes_to_unit_range(void **state)
{
    (void)state;
    ad_idx images;
    load_pattern(&images, 3, (uint32_t[]){6, 2, 3});
    const int64_t idx[3] = {4, 0, 4};
    ad_tensor *f = NULL, *d = NULL;
    assert_int_equal(ad_tensor_create(&f, AD_F32, 2, (int64_t[]){4, 6}, false), AD_OK);
    assert_int_equal(ad_tensor_create(&d, AD_F64, 4, (int64_t[]){3, 1, 2, 3}, false), AD_OK);
    for (int64_t i = 0; i < 24; i++)
        ad_tensor_set(f, i, -1.0);
    assert_int_equal(ad_idx_gather_images(&images, idx, 3, f), AD_OK);
    assert_int_equal(ad_idx_gather_images(&images, idx, 3, d), AD_OK);
    const float *fv = ad_tensor_data(f);
    const double *dv = ad_tensor_data(d);
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 6; k++) {
            uint8_t byte = images.data[idx[r] * 6 + k];
            assert_true(fv[r * 6 + k] == (float)byte / 255.0f);
            assert_true(dv[r * 6 + k] == byte / 255.0);
            assert_true(dv[r * 6 + k] >= 0.0 && dv[r * 6 + k] <= 1.0);
        }
    for (int k = 0; k < 6; k++)
        assert_true(fv[3 * 6 + k] == -1.0f); /* rows past count untouched */

    /* Errors write nothing. */
    const int64_t bad[2] = {1, 6};
    assert_int_equal(ad_idx_gather_images(&images, bad, 2, f), AD_ERR_ARG);
    const int64_t negative[1] = {-1};
    assert_int_equal(ad_idx_gather_images(&images, negative, 1, f), AD_ERR_ARG);
    assert_true(fv[0] == (float)images.data[24] / 255.0f);
    ad_tensor *wrong_row = NULL, *too_few = NULL;
    assert_int_equal(ad_tensor_create(&wrong_row, AD_F32, 2, (int64_t[]){3, 5}, false), AD_OK);
    assert_int_equal(ad_tensor_create(&too_few, AD_F32, 2, (int64_t[]){2, 6}, false), AD_OK);
    assert_int_equal(ad_idx_gather_images(&images, idx, 3, wrong_row), AD_ERR_SHAPE);
    assert_int_equal(ad_idx_gather_images(&images, idx, 3, too_few), AD_ERR_SHAPE);
    ad_tape *tape = test_tape();
    ad_tensor *on_tape = ad_tape_tensor(tape, AD_F32, 2, (int64_t[]){3, 6}, NULL);
    assert_int_equal(ad_idx_gather_images(&images, idx, 3, on_tape), AD_ERR_ARG);
    assert_int_equal(ad_idx_gather_images(NULL, idx, 3, f), AD_ERR_ARG);
    assert_int_equal(ad_idx_gather_images(&images, NULL, 3, f), AD_ERR_ARG);
    assert_int_equal(ad_idx_gather_images(&images, idx, -1, f), AD_ERR_ARG);
    assert_int_equal(ad_idx_gather_images(&images, NULL, 0, f), AD_OK);
    ad_tape_free(tape);
    ad_tensor_free(f);
    ad_tensor_free(d);
    ad_tensor_free(wrong_row);
    ad_tensor_free(too_few);
    ad_idx_free(&images);
}

static void test_gather_labels_copies_bytes_as_int64(void **state)
{
    (void)state;
    ad_idx labels;
    load_pattern(&labels, 1, (uint32_t[]){40});
    const int64_t idx[4] = {39, 0, 37, 0};
    int64_t out[4] = {-1, -1, -1, -1};
    assert_int_equal(ad_idx_gather_labels(&labels, idx, 4, out), AD_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(out[i], (7 * idx[i] + 3) % 256);
    const int64_t bad[2] = {0, 40};
    int64_t untouched[2] = {-5, -5};
    assert_int_equal(ad_idx_gather_labels(&labels, bad, 2, untouched), AD_ERR_ARG);
    assert_int_equal(untouched[0], -5);
    ad_idx images;
    load_pattern(&images, 3, (uint32_t[]){2, 2, 2});
    assert_int_equal(ad_idx_gather_labels(&images, idx + 1, 1, out), AD_ERR_ARG);
    ad_idx_free(&images);
    ad_idx_free(&labels);
}

/* ---- Minibatches ---------------------------------------------------------- */

static void test_batches_in_order_deliver_the_last_partial_batch(void **state)
{
    (void)state;
    ad_batches *b;
    assert_int_equal(ad_batches_create(&b, 10, 3, false, NULL), AD_OK);
    assert_int_equal(ad_batches_count(b), 4);
    for (int epoch = 0; epoch < 2; epoch++) {
        const int64_t *idx;
        int64_t m, seen = 0;
        int batches = 0;
        while (ad_batches_next(b, &idx, &m)) {
            assert_int_equal(m, batches < 3 ? 3 : 1);
            for (int64_t k = 0; k < m; k++)
                assert_int_equal(idx[k], seen + k);
            seen += m;
            batches++;
        }
        assert_int_equal(m, 0);
        assert_int_equal(batches, 4);
        assert_int_equal(seen, 10);
        assert_false(ad_batches_next(b, &idx, &m)); /* stays over */
        ad_batches_reset(b);
    }
    ad_batches_free(b);
    ad_batches_free(NULL);
}

/* Runs one epoch; checks every index appears once; writes the order to out[n]. */
static void one_epoch(ad_batches *b, int64_t n, int64_t batch, int64_t *out)
{
    bool *seen = calloc((size_t)n, 1);
    assert_non_null(seen);
    const int64_t *idx;
    int64_t m, at = 0, batches = 0;
    while (ad_batches_next(b, &idx, &m)) {
        assert_true(m == batch || (m == n % batch && at + m == n));
        for (int64_t k = 0; k < m; k++) {
            assert_in_range(idx[k], 0, n - 1);
            assert_false(seen[idx[k]]);
            seen[idx[k]] = true;
            out[at + k] = idx[k];
        }
        at += m;
        batches++;
    }
    assert_int_equal(at, n);
    assert_int_equal(batches, (n + batch - 1) / batch);
    free(seen);
}

static void test_shuffled_batches_cover_each_index_once_and_reproduce_with_the_seed(void **state)
{
    (void)state;
    enum { N = 1003, B = 64, EPOCHS = 3 };
    int64_t *order[2][EPOCHS];
    for (int run = 0; run < 2; run++) {
        ad_rng rng;
        ad_rng_seed(&rng, 2024);
        ad_batches *b;
        assert_int_equal(ad_batches_create(&b, N, B, true, &rng), AD_OK);
        for (int e = 0; e < EPOCHS; e++) {
            order[run][e] = malloc(N * sizeof(int64_t));
            assert_non_null(order[run][e]);
            one_epoch(b, N, B, order[run][e]);
            ad_batches_reset(b);
        }
        ad_batches_free(b);
    }
    for (int e = 0; e < EPOCHS; e++)
        assert_memory_equal(order[0][e], order[1][e], N * sizeof(int64_t));
    /* Epochs differ from each other and from the identity. */
    int same01 = 0, identity = 0;
    for (int i = 0; i < N; i++) {
        same01 += order[0][0][i] == order[0][1][i];
        identity += order[0][0][i] == i;
    }
    assert_true(same01 < 20 && identity < 20);
    /* Another seed, another order. */
    ad_rng other;
    ad_rng_seed(&other, 2025);
    ad_batches *b;
    assert_int_equal(ad_batches_create(&b, N, B, true, &other), AD_OK);
    int64_t *third = malloc(N * sizeof(int64_t));
    assert_non_null(third);
    one_epoch(b, N, B, third);
    assert_memory_not_equal(third, order[0][0], N * sizeof(int64_t));
    free(third);
    ad_batches_free(b);
    for (int run = 0; run < 2; run++)
        for (int e = 0; e < EPOCHS; e++)
            free(order[run][e]);
}

static void test_batches_handle_empty_sets_big_batches_and_bad_arguments(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_batches *b = NULL;
    const int64_t *idx;
    int64_t m;
    assert_int_equal(ad_batches_create(&b, 0, 8, true, &rng), AD_OK);
    assert_int_equal(ad_batches_count(b), 0);
    assert_false(ad_batches_next(b, &idx, &m));
    assert_int_equal(m, 0);
    ad_batches_reset(b);
    ad_batches_free(b);
    assert_int_equal(ad_batches_create(&b, 5, 100, false, NULL), AD_OK);
    assert_true(ad_batches_next(b, &idx, &m));
    assert_int_equal(m, 5);
    assert_false(ad_batches_next(b, &idx, &m));
    ad_batches_free(b);
    assert_int_equal(ad_batches_create(&b, 5, 0, false, NULL), AD_ERR_ARG);
    assert_null(b);
    assert_int_equal(ad_batches_create(&b, -1, 4, false, NULL), AD_ERR_ARG);
    assert_int_equal(ad_batches_create(&b, 5, 2, true, NULL), AD_ERR_ARG);
    assert_int_equal(ad_batches_create(NULL, 5, 2, false, NULL), AD_ERR_ARG);
    assert_false(ad_batches_next(NULL, &idx, &m));
}

/* ---- Fashion-MNIST -------------------------------------------------------- */

static bool load_fashion(const char *name, ad_idx *out)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/%s", FASHION_DIR, name);
    if (access(path, R_OK) != 0)
        return false;
    ad_status s = ad_idx_load(path, out, err, sizeof err);
    if (s != AD_OK)
        fail_msg("%s", err);
    return true;
}

static void check_split(const char *images_name, const char *labels_name, int64_t n)
{
    ad_idx images, labels;
    if (!load_fashion(images_name, &images))
        skip();
    if (!load_fashion(labels_name, &labels)) {
        ad_idx_free(&images);
        skip();
    }
    assert_int_equal(images.ndim, 3);
    assert_int_equal(images.count, n);
    assert_int_equal(images.dims[1], 28);
    assert_int_equal(images.dims[2], 28);
    assert_int_equal(labels.ndim, 1);
    assert_int_equal(labels.count, n);
    int64_t per_class[10] = {0};
    for (int64_t i = 0; i < n; i++) {
        assert_in_range(labels.data[i], 0, 9);
        per_class[labels.data[i]]++;
    }
    for (int c = 0; c < 10; c++)
        assert_int_equal(per_class[c], n / 10); /* Fashion-MNIST is balanced */

    ad_rng rng;
    ad_rng_seed(&rng, 7);
    ad_batches *b;
    assert_int_equal(ad_batches_create(&b, n, 64, true, &rng), AD_OK);
    ad_tensor *x;
    assert_int_equal(ad_tensor_create(&x, AD_F32, 2, (int64_t[]){64, 784}, false), AD_OK);
    const int64_t *idx;
    int64_t m, y[64];
    assert_true(ad_batches_next(b, &idx, &m));
    assert_int_equal(ad_idx_gather_images(&images, idx, m, x), AD_OK);
    assert_int_equal(ad_idx_gather_labels(&labels, idx, m, y), AD_OK);
    double sum = 0;
    for (int64_t i = 0; i < 64 * 784; i++) {
        double v = ad_tensor_get(x, i);
        assert_true(v >= 0.0 && v <= 1.0);
        sum += v;
    }
    assert_true(sum / (64 * 784) > 0.1 && sum / (64 * 784) < 0.6); /* mean pixel ~0.29 */
    ad_tensor_free(x);
    ad_batches_free(b);
    ad_idx_free(&images);
    ad_idx_free(&labels);
}

static void test_fashion_mnist_train_split_loads_with_balanced_labels(void **state)
{
    (void)state;
    check_split("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000);
}

static void test_fashion_mnist_test_split_loads_with_balanced_labels(void **state)
{
    (void)state;
    check_split("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_gzipped_images_and_labels_load),
        cmocka_unit_test(test_generic_unsigned_byte_idx_with_four_dims_and_empty_sets_load),
        cmocka_unit_test(test_truncated_or_overlong_files_are_refused_with_both_sizes),
        cmocka_unit_test(test_bad_magic_is_refused),
        cmocka_unit_test(test_an_empty_set_of_items_too_large_to_count_is_refused),
        cmocka_unit_test(test_missing_files_and_bad_arguments_are_reported),
        cmocka_unit_test(test_running_out_of_memory_in_gzopen_is_nomem_not_io),
        cmocka_unit_test(test_every_allocation_failure_of_an_idx_load_is_nomem_and_changes_nothing),
        cmocka_unit_test(test_every_allocation_failure_of_a_batch_iterator_is_nomem),
        cmocka_unit_test(test_gather_images_scales_bytes_to_unit_range),
        cmocka_unit_test(test_gather_labels_copies_bytes_as_int64),
        cmocka_unit_test(test_batches_in_order_deliver_the_last_partial_batch),
        cmocka_unit_test(test_shuffled_batches_cover_each_index_once_and_reproduce_with_the_seed),
        cmocka_unit_test(test_batches_handle_empty_sets_big_batches_and_bad_arguments),
        cmocka_unit_test(test_fashion_mnist_train_split_loads_with_balanced_labels),
        cmocka_unit_test(test_fashion_mnist_test_split_loads_with_balanced_labels),
    };
    return cmocka_run_group_tests(tests, temp_dir_create, temp_dir_remove);
}
