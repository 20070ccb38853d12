/* safetensors checkpoints: bit-exact round trips, hand-built malformed files
 * refused with the right code and nothing half-loaded, and files with entries
 * we do not load. */
#include "test_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autodiff/nn.h"
#include "fail_each_alloc.h"

#include <errno.h>

/* Opening a file allocates (fopen and fdopen malloc their FILE), so it can
 * fail for lack of memory. tests/meson.build links this test with
 * -Wl,--wrap for fopen and fdopen (and their 64-bit names), which sends the
 * library's calls here: while fail_open is set they fail with errno ENOMEM. */
static bool fail_open;
FILE *__real_fopen(const char *path, const char *mode);
FILE *__real_fopen64(const char *path, const char *mode);
FILE *__real_fdopen(int fd, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);
FILE *__wrap_fopen64(const char *path, const char *mode);
FILE *__wrap_fdopen(int fd, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode)
{
    if (fail_open) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_fopen(path, mode);
}
FILE *__wrap_fopen64(const char *path, const char *mode)
{
    if (fail_open) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_fopen64(path, mode);
}
FILE *__wrap_fdopen(int fd, const char *mode)
{
    if (fail_open) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_fdopen(fd, mode);
}

/* Number of files in the temporary dir (to see that no temp file is left). */
static int files_in_dir(void)
{
    DIR *d = opendir(temp_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* A file of the 8-byte length n_field, h bytes of header and the buffer. */
static const char *make_bytes(char *path, size_t size, uint64_t n_field, const char *header,
                              size_t h, const void *buffer, size_t buffer_len)
{
    new_path(path, size);
    unsigned char *bytes = malloc(8 + h + buffer_len);
    assert_non_null(bytes);
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(n_field >> (8 * i));
    memcpy(bytes + 8, header, h);
    if (buffer_len)
        memcpy(bytes + 8 + h, buffer, buffer_len);
    write_bytes(path, bytes, 8 + h + buffer_len);
    free(bytes);
    return path;
}

static const char *make_raw(char *path, size_t size, uint64_t n_field, const char *header,
                            const void *buffer, size_t buffer_len)
{
    return make_bytes(path, size, n_field, header, strlen(header), buffer, buffer_len);
}

/* A file whose length field is the header's true length. */
static const char *make_file(char *path, size_t size, const char *header, const void *buffer,
                             size_t buffer_len)
{
    return make_raw(path, size, strlen(header), header, buffer, buffer_len);
}

static ad_tensor *persistent(ad_dtype dtype, int ndim, const int64_t *shape)
{
    ad_tensor *t = NULL;
    assert_int_equal(ad_tensor_create(&t, dtype, ndim, shape, false), AD_OK);
    return t;
}

static void fill_pattern(ad_tensor *t, double scale)
{
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        assert_int_equal(ad_tensor_set(t, i, scale * ((double)i - 3.25) / 7.0), AD_OK);
}

static void fill_value(ad_tensor *t, double v)
{
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        ad_tensor_set(t, i, v);
}

static void assert_all(const ad_tensor *t, double v)
{
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        assert_true(ad_tensor_get(t, i) == v);
}

static size_t bytes_of(const ad_tensor *t)
{
    return (size_t)ad_tensor_numel(t) * ad_dtype_size(ad_tensor_dtype(t));
}

/* ---- Round trips ---------------------------------------------------------- */

enum { N_RT = 8 };

static void test_round_trip_is_bit_exact_for_every_shape_and_name(void **state)
{
    (void)state;
    const char *names[N_RT] = {
        "scalar",
        "layer.0/bias",
        "четыре_d \xce\xb2", /* Cyrillic and Greek */
        "quote\" back\\slash",
        "tab\tnewline\ncontrol\x01",
        "emoji \xf0\x9f\x98\x80",
        "empty_f32",
        "empty_f64",
    };
    ad_tensor *t[N_RT] = {
        persistent(AD_F64, 0, NULL),
        persistent(AD_F32, 1, (int64_t[]){5}),
        persistent(AD_F64, 4, (int64_t[]){2, 3, 1, 2}),
        persistent(AD_F32, 2, (int64_t[]){2, 4}),
        persistent(AD_F32, 4, (int64_t[]){1, 2, 2, 2}),
        persistent(AD_F64, 1, (int64_t[]){9}),
        persistent(AD_F32, 2, (int64_t[]){0, 3}),
        persistent(AD_F64, 3, (int64_t[]){4, 0, 2}),
    };
    for (int i = 0; i < N_RT; i++)
        fill_pattern(t[i], i + 1.0);
    /* Values that must survive bit for bit. */
    float *f = ad_tensor_data(t[3]);
    uint32_t nan_payload = 0x7fc12345u;
    memcpy(&f[0], &nan_payload, 4);
    f[1] = -0.0f;
    f[2] = INFINITY;
    f[3] = -INFINITY;
    f[4] = 1e-45f; /* denormal */
    f[5] = 3.4028235e38f;
    double *d = ad_tensor_data(t[5]);
    d[0] = 4.9e-324;
    d[1] = -0.0;
    d[2] = NAN;
    d[3] = 0.1;
    d[4] = 1.0 / 3.0;

    char path[300], err[512];
    new_path(path, sizeof path);
    assert_int_equal(ad_safetensors_save(path, N_RT, names, t, err, sizeof err), AD_OK);
    assert_string_equal(err, "");

    ad_tensor *u[N_RT];
    for (int i = 0; i < N_RT; i++) {
        u[i] = persistent(ad_tensor_dtype(t[i]), ad_tensor_ndim(t[i]), ad_tensor_shape(t[i]));
        fill_value(u[i], 42.0);
    }
    assert_int_equal(ad_safetensors_load(path, N_RT, names, u, err, sizeof err), AD_OK);
    for (int i = 0; i < N_RT; i++)
        if (bytes_of(t[i]))
            assert_memory_equal(ad_tensor_data(t[i]), ad_tensor_data(u[i]), bytes_of(t[i]));

    /* Layout: header padded with spaces to 8 bytes, buffer tiled exactly. */
    size_t len, total = 0;
    unsigned char *bytes = read_all(path, &len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | bytes[i];
    assert_int_equal(n % 8, 0);
    assert_int_equal(bytes[8], '{');
    for (int i = 0; i < N_RT; i++)
        total += bytes_of(t[i]);
    assert_int_equal(len, 8 + n + total);
    size_t last = 8 + (size_t)n - 1;
    while (bytes[last] == ' ')
        last--;
    assert_int_equal(bytes[last], '}');
    free(bytes);

    /* The listing API sees the header order and the exact names. */
    ad_safetensors *st;
    assert_int_equal(ad_safetensors_open(&st, path, err, sizeof err), AD_OK);
    assert_int_equal(ad_safetensors_count(st), N_RT);
    for (int i = 0; i < N_RT; i++) {
        ad_safetensors_entry e;
        assert_true(ad_safetensors_entry_at(st, (size_t)i, &e));
        assert_string_equal(e.name, names[i]);
        assert_string_equal(e.dtype, ad_tensor_dtype(t[i]) == AD_F32 ? "F32" : "F64");
        assert_int_equal(e.ndim, ad_tensor_ndim(t[i]));
        for (int k = 0; k < e.ndim; k++)
            assert_int_equal(e.shape[k], ad_tensor_shape(t[i])[k]);
        assert_int_equal(e.numel, ad_tensor_numel(t[i]));
        assert_true(e.loadable);
        assert_int_equal(e.ad_type, ad_tensor_dtype(t[i]));
        assert_int_equal(e.end - e.begin, bytes_of(t[i]));
        /* float64 data first: every tensor aligned to its element size. */
        assert_int_equal(e.begin % ad_dtype_size(ad_tensor_dtype(t[i])), 0);
        assert_int_equal(ad_safetensors_find(st, names[i]), i);
    }
    ad_safetensors_entry e;
    assert_false(ad_safetensors_entry_at(st, N_RT, &e));
    assert_int_equal(ad_safetensors_find(st, "nope"), -1);
    fill_value(u[2], 0.0);
    assert_int_equal(ad_safetensors_read(st, names[2], u[2], err, sizeof err), AD_OK);
    assert_memory_equal(ad_tensor_data(t[2]), ad_tensor_data(u[2]), bytes_of(t[2]));
    ad_safetensors_close(st);
    ad_safetensors_close(NULL);

    for (int i = 0; i < N_RT; i++) {
        ad_tensor_free(t[i]);
        ad_tensor_free(u[i]);
    }
}

static void test_tape_tensors_can_be_saved_and_an_empty_file_written(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    double v[6] = {1, 2, 3, 4, 5, 6};
    ad_tensor *x = ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){2, 3}, v);
    ad_tensor *y = ad_mul(x, x);
    assert_non_null(y);
    char path[300], err[512];
    new_path(path, sizeof path);
    const char *name = "y";
    assert_int_equal(ad_safetensors_save(path, 1, &name, &y, err, sizeof err), AD_OK);
    ad_tensor *dst = persistent(AD_F64, 2, (int64_t[]){2, 3});
    assert_int_equal(ad_safetensors_load(path, 1, &name, &dst, err, sizeof err), AD_OK);
    for (int i = 0; i < 6; i++)
        assert_true(ad_tensor_get(dst, i) == v[i] * v[i]);
    ad_tensor_free(dst);
    ad_tape_free(tape);

    new_path(path, sizeof path);
    assert_int_equal(ad_safetensors_save(path, 0, NULL, NULL, err, sizeof err), AD_OK);
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    assert_int_equal(len, 16);
    assert_memory_equal(bytes, "\x08\0\0\0\0\0\0\0{}      ", 16);
    free(bytes);
    assert_int_equal(ad_safetensors_load(path, 0, NULL, NULL, err, sizeof err), AD_OK);
}

static void test_saving_over_a_file_replaces_it_and_leaves_no_temporary(void **state)
{
    (void)state;
    char path[300], err[512];
    new_path(path, sizeof path);
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){3});
    fill_value(a, 1.0);
    const char *name = "a";
    int before = files_in_dir();
    assert_int_equal(ad_safetensors_save(path, 1, &name, &a, err, sizeof err), AD_OK);
    fill_value(a, 2.0);
    assert_int_equal(ad_safetensors_save(path, 1, &name, &a, err, sizeof err), AD_OK);
    assert_int_equal(files_in_dir(), before + 1);
    struct stat info;
    assert_int_equal(stat(path, &info), 0);
    assert_int_equal(info.st_mode & 0777, 0644);
    fill_value(a, 0.0);
    assert_int_equal(ad_safetensors_load(path, 1, &name, &a, err, sizeof err), AD_OK);
    assert_all(a, 2.0);
    ad_tensor_free(a);
}

static void test_save_refuses_bad_names_and_reports_io_errors(void **state)
{
    (void)state;
    char path[300], err[512];
    new_path(path, sizeof path);
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){3});
    ad_tensor *ts[2] = {a, a};
    const char *dup[2] = {"w", "w"};
    assert_int_equal(ad_safetensors_save(path, 2, dup, ts, err, sizeof err), AD_ERR_ARG);
    assert_non_null(strstr(err, "'w' given twice"));
    const char *meta[1] = {"__metadata__"};
    assert_int_equal(ad_safetensors_save(path, 1, meta, ts, err, sizeof err), AD_ERR_ARG);
    const char *bad_utf8[1] = {"bad \xff name"};
    assert_int_equal(ad_safetensors_save(path, 1, bad_utf8, ts, err, sizeof err), AD_ERR_ARG);
    assert_non_null(strstr(err, "UTF-8"));
    const char *null_name[1] = {NULL};
    assert_int_equal(ad_safetensors_save(path, 1, null_name, ts, err, sizeof err), AD_ERR_ARG);
    ad_tensor *null_tensor[1] = {NULL};
    assert_int_equal(ad_safetensors_save(path, 1, dup, null_tensor, err, sizeof err), AD_ERR_ARG);
    assert_int_equal(access(path, F_OK), -1); /* nothing written */

    char missing[400];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.safetensors", temp_dir);
    assert_int_equal(ad_safetensors_save(missing, 1, dup, ts, err, sizeof err), AD_ERR_IO);
    assert_non_null(strstr(err, "No such file"));
    assert_non_null(strstr(err, "ad_safetensors_save"));

    /* Renaming over a directory fails: the error is reported and the
     * temporary file removed. */
    char sub[400];
    snprintf(sub, sizeof sub, "%s/subdir", temp_dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    int before = files_in_dir();
    assert_int_equal(ad_safetensors_save(sub, 1, dup, ts, err, sizeof err), AD_ERR_IO);
    assert_int_equal(files_in_dir(), before);
    assert_int_equal(rmdir(sub), 0);
    ad_tensor_free(a);
    (void)err;
}

/* ---- Malformed files ------------------------------------------------------ */

/* The 8 bytes of two floats, 1.5 and -2.5. */
static const float two_floats[2] = {1.5f, -2.5f};

/* Loads entry "a" (F32 [2]) from path into a sentinel-filled tensor and checks
 * the status, the message and that nothing was written. */
static void expect_refused_at(const char *path, ad_status code, const char *needle,
                              const char *file, int line)
{
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){2});
    fill_value(a, 7.0);
    char err[512] = "unset";
    const char *name = "a";
    ad_status s = ad_safetensors_load(path, 1, &name, &a, err, sizeof err);
    if (s != code || (needle && !strstr(err, needle)) || !strstr(err, "ad_safetensors_load")) {
        print_error("%s:%d: status %s (%d), expected %s; message \"%s\", expected to contain "
                    "\"%s\"\n",
                    file, line, ad_status_string(s), (int)s, ad_status_string(code), err,
                    needle ? needle : "");
        ad_tensor_free(a);
        _fail(file, line);
    }
    for (int i = 0; i < 2; i++)
        if (ad_tensor_get(a, i) != 7.0) {
            print_error("%s:%d: destination changed by a failed load\n", file, line);
            ad_tensor_free(a);
            _fail(file, line);
        }
    ad_tensor_free(a);
    /* The open API refuses the same files, unless only the lookup failed. */
    if (code == AD_ERR_FORMAT && needle && strcmp(needle, "not found") != 0) {
        ad_safetensors *st = NULL;
        ad_status o = ad_safetensors_open(&st, path, err, sizeof err);
        if (o != code) {
            print_error("%s:%d: ad_safetensors_open gave %d\n", file, line, (int)o);
            if (o == AD_OK)
                ad_safetensors_close(st);
            _fail(file, line);
        }
        assert_null(st);
    }
}
#define expect_refused(path, code, needle)                                                         \
    expect_refused_at((path), (code), (needle), __FILE__, __LINE__)

/* A file with header text h and the 8-byte buffer two_floats. */
#define REFUSED(h, code, needle)                                                                   \
    do {                                                                                           \
        char p_[300];                                                                              \
        expect_refused(make_file(p_, sizeof p_, (h), two_floats, 8), (code), (needle));            \
    } while (0)

#define GOOD_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void test_a_well_formed_reference_file_loads(void **state)
{
    (void)state;
    char path[300], err[512];
    make_file(path, sizeof path, "{" GOOD_A "}", two_floats, 8);
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){2});
    const char *name = "a";
    assert_int_equal(ad_safetensors_load(path, 1, &name, &a, err, sizeof err), AD_OK);
    assert_true(ad_tensor_get(a, 0) == 1.5 && ad_tensor_get(a, 1) == -2.5);
    ad_tensor_free(a);
}

static void test_truncated_files_are_refused(void **state)
{
    (void)state;
    char path[300];
    /* The buffer is 4 bytes short of what the header describes. */
    expect_refused(make_file(path, sizeof path, "{" GOOD_A "}", two_floats, 4), AD_ERR_FORMAT,
                   "truncated");
    /* Shorter than the length prefix. */
    new_path(path, sizeof path);
    write_bytes(path, "\x10\0\0", 3);
    expect_refused(path, AD_ERR_FORMAT, "truncated");
    new_path(path, sizeof path);
    write_bytes(path, "", 0);
    expect_refused(path, AD_ERR_FORMAT, "truncated");
    /* Trailing bytes after the buffer. */
    float three[3] = {1, 2, 3};
    expect_refused(make_file(path, sizeof path, "{" GOOD_A "}", three, 12), AD_ERR_FORMAT,
                   "trailing");
}

static void test_header_lengths_beyond_the_file_or_the_limit_are_refused(void **state)
{
    (void)state;
    char path[300];
    const char *h = "{" GOOD_A "}";
    expect_refused(make_raw(path, sizeof path, strlen(h) + 100, h, two_floats, 8), AD_ERR_FORMAT,
                   "exceeds the file");
    expect_refused(make_raw(path, sizeof path, UINT64_MAX, h, two_floats, 8), AD_ERR_FORMAT,
                   "exceeds the limit");
    expect_refused(make_raw(path, sizeof path, 1ull << 63, h, two_floats, 8), AD_ERR_FORMAT,
                   "header length");
    expect_refused(make_raw(path, sizeof path, 200000000, h, two_floats, 8), AD_ERR_FORMAT,
                   "exceeds the limit");
    /* Length shorter than the JSON: the object is cut. */
    expect_refused(make_raw(path, sizeof path, strlen(h) - 1, h, two_floats, 8), AD_ERR_FORMAT,
                   "bad header");
    expect_refused(make_raw(path, sizeof path, 0, "", NULL, 0), AD_ERR_FORMAT, "bad header");
}

static void test_malformed_json_is_refused(void **state)
{
    (void)state;
    REFUSED("{" GOOD_A, AD_ERR_FORMAT, "expected");
    REFUSED("[" GOOD_A "]", AD_ERR_FORMAT, "expected '{'");
    REFUSED("{\"a\" {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "expected ':'");
    REFUSED("{\"a\":{\"dtype\":F32,\"shape\":[2],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "expected a string");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "not a non-negative integer");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2] \"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "expected '}'");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "leading zero");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "not an integer");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}}", AD_ERR_FORMAT,
            "not an integer");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", AD_ERR_FORMAT,
            "[begin, end]");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", AD_ERR_FORMAT,
            "expected ','");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", AD_ERR_FORMAT,
            "expected a string");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", AD_ERR_FORMAT,
            "end of the header");
    REFUSED("{\"a", AD_ERR_FORMAT, "unterminated string");
    REFUSED("{\"a\\", AD_ERR_FORMAT, "unterminated string");
    /* Strings: escapes, surrogates, control characters and UTF-8. */
    REFUSED("{\"a\\x\":{}}", AD_ERR_FORMAT, "bad escape");
    REFUSED("{\"a\\u12\":{}}", AD_ERR_FORMAT, "bad \\u escape");
    REFUSED("{\"a\\ud800\":{}}", AD_ERR_FORMAT, "unpaired high surrogate");
    REFUSED("{\"a\\udc00\":{}}", AD_ERR_FORMAT, "unpaired low surrogate");
    REFUSED("{\"a\\ud800\\u0041\":{}}", AD_ERR_FORMAT, "unpaired high surrogate");
    REFUSED("{\"a\tb\":{}}", AD_ERR_FORMAT, "control character");
    REFUSED("{\"a\xff\":{}}", AD_ERR_FORMAT, "invalid UTF-8");
    REFUSED("{\"a\xc0\xaf\":{}}", AD_ERR_FORMAT, "invalid UTF-8");     /* overlong '/' */
    REFUSED("{\"a\xed\xa0\x80\":{}}", AD_ERR_FORMAT, "invalid UTF-8"); /* encoded surrogate */
    REFUSED("{\"a\xe2\x82\":{}}", AD_ERR_FORMAT, "invalid UTF-8");     /* cut sequence */
    /* Entries: fields missing, unknown or repeated. */
    REFUSED("{\"a\":{}}", AD_ERR_FORMAT, "empty entry");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", AD_ERR_FORMAT, "lacks \"data_offsets\"");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}",
            AD_ERR_FORMAT, "unknown key \"x\"");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            AD_ERR_FORMAT, "duplicate key \"dtype\"");
    REFUSED("{\"a\":[]}", AD_ERR_FORMAT, "expected '{'");
    REFUSED("{\"a\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "unknown dtype \"F128\"");
    REFUSED("{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "unknown dtype");
    /* Metadata must be an object of strings. */
    REFUSED("{" GOOD_A ",\"__metadata__\":{\"k\":1}}", AD_ERR_FORMAT, "not a string");
    REFUSED("{" GOOD_A ",\"__metadata__\":[]}", AD_ERR_FORMAT, "expected '{'");
    REFUSED("{" GOOD_A ",\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", AD_ERR_FORMAT,
            "duplicate __metadata__ key \"k\"");
    REFUSED("{\"__metadata__\":{}," GOOD_A ",\"__metadata__\":{}}", AD_ERR_FORMAT,
            "duplicate key \"__metadata__\"");
}

static void test_trailing_garbage_after_the_json_is_refused(void **state)
{
    (void)state;
    REFUSED("{" GOOD_A "}x      ", AD_ERR_FORMAT, "after the JSON object");
    REFUSED("{" GOOD_A "}}", AD_ERR_FORMAT, "after the JSON object");
    REFUSED("{" GOOD_A "}{}", AD_ERR_FORMAT, "after the JSON object");
    char path[300], err[512];
    static const char nul[] = "{" GOOD_A "}   \0   ";
    expect_refused(
        make_bytes(path, sizeof path, sizeof nul - 1, nul, sizeof nul - 1, two_floats, 8),
        AD_ERR_FORMAT, "after the JSON object");
    /* Whitespace of every JSON kind is fine, before, inside and after. */
    make_file(path, sizeof path,
              " \n{ \"a\" :\t{\"dtype\" : \"F32\" ,\r\n \"shape\":[ 2 ],\"data_offsets\":[ 0 , 8 ]"
              " } }\n\t  ",
              two_floats, 8);
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){2});
    const char *name = "a";
    assert_int_equal(ad_safetensors_load(path, 1, &name, &a, err, sizeof err), AD_OK);
    assert_true(ad_tensor_get(a, 1) == -2.5);
    ad_tensor_free(a);
}

static void test_duplicate_tensor_names_are_refused(void **state)
{
    (void)state;
    float four[4] = {1, 2, 3, 4};
    char path[300];
    expect_refused(make_file(path, sizeof path,
                             "{" GOOD_A ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                             "\"data_offsets\":[8,16]}}",
                             four, 16),
                   AD_ERR_FORMAT, "duplicate tensor name 'a'");
    /* The same name spelled with an escape is the same key. */
    expect_refused(make_file(path, sizeof path,
                             "{" GOOD_A ",\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[2],"
                             "\"data_offsets\":[8,16]}}",
                             four, 16),
                   AD_ERR_FORMAT, "duplicate tensor name 'a'");
}

static void test_offsets_out_of_range_or_not_tiling_are_refused(void **state)
{
    (void)state;
    float four[4] = {1, 2, 3, 4};
    char path[300];
    /* End beyond the buffer that is there. */
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[100,108]}}",
                             two_floats, 8),
                   AD_ERR_FORMAT, "begins at byte 100");
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
                             two_floats, 8),
                   AD_ERR_FORMAT, "end before begin");
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,"
                             "18446744073709551615]}}",
                             two_floats, 8),
                   AD_ERR_FORMAT, "too large");
    /* A gap between two tensors, and an overlap. */
    expect_refused(make_file(path, sizeof path,
                             "{" GOOD_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
                             "\"data_offsets\":[12,16]}}",
                             four, 16),
                   AD_ERR_FORMAT, "(gap)");
    expect_refused(make_file(path, sizeof path,
                             "{" GOOD_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                             "\"data_offsets\":[4,12]}}",
                             four, 12),
                   AD_ERR_FORMAT, "(overlap)");
    /* A buffer that does not start at 0. */
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                             four, 12),
                   AD_ERR_FORMAT, "buffer starts at byte 0");
    /* Two tensors on the same bytes. */
    expect_refused(make_file(path, sizeof path,
                             "{" GOOD_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                             "\"data_offsets\":[0,8]}}",
                             two_floats, 8),
                   AD_ERR_FORMAT, "(overlap)");
}

static void test_shapes_that_disagree_with_the_bytes_are_refused(void **state)
{
    (void)state;
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "needs 12 bytes but data_offsets [0, 8] hold 8");
    REFUSED("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "needs 16 bytes");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "negative dim");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,8]}}", AD_ERR_FORMAT,
            "negative begin offset");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}",
            AD_ERR_FORMAT, "dim is too large");
    REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,4],"
            "\"data_offsets\":[0,8]}}",
            AD_ERR_FORMAT, "overflows");
    REFUSED("{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
            "\"data_offsets\":[0,8]}}",
            AD_ERR_FORMAT, "overflows");
    /* Packed 4-bit values must fill whole bytes. */
    REFUSED("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,8]}}", AD_ERR_FORMAT,
            "not whole bytes");
}

static void test_requested_tensors_must_match_dtype_and_shape(void **state)
{
    (void)state;
    char path[300];
    double one = 1.0;
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                             &one, 8),
                   AD_ERR_DTYPE, "tensor 'a' is F64 in the file but the destination is F32");
    float four[4] = {1, 2, 3, 4};
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                             four, 16),
                   AD_ERR_SHAPE, "tensor 'a': expected shape [2] (destination), found [4]");
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]}}",
                             two_floats, 8),
                   AD_ERR_SHAPE, "found [2,1]");
    expect_refused(make_file(path, sizeof path,
                             "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                             two_floats, 8),
                   AD_ERR_FORMAT, "not found");
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                             two_floats, 8),
                   AD_ERR_UNSUPPORTED, "tensor 'a' has dtype I32");
    expect_refused(make_file(path, sizeof path,
                             "{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}",
                             two_floats, 8),
                   AD_ERR_UNSUPPORTED, "BF16");
}

static void test_a_failing_load_of_several_tensors_changes_none(void **state)
{
    (void)state;
    float six[6] = {1, 2, 3, 4, 5, 6};
    char path[300], err[512];
    make_file(path, sizeof path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
              six, 24);
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){2});
    ad_tensor *b = persistent(AD_F32, 1, (int64_t[]){3}); /* wrong */
    fill_value(a, 7.0);
    fill_value(b, 7.0);
    const char *names[3] = {"a", "b", "c"};
    ad_tensor *ts[3] = {a, b, a};
    assert_int_equal(ad_safetensors_load(path, 2, names, ts, err, sizeof err), AD_ERR_SHAPE);
    assert_non_null(strstr(err, "'b'"));
    assert_all(a, 7.0);
    assert_all(b, 7.0);
    /* A missing name after a good one. */
    ts[1] = a;
    names[1] = "c";
    assert_int_equal(ad_safetensors_load(path, 2, names, ts, err, sizeof err), AD_ERR_FORMAT);
    assert_non_null(strstr(err, "tensor 'c' not found"));
    assert_all(a, 7.0);
    /* Tape tensors, NULLs, missing files. */
    ad_tape *tape = test_tape();
    ad_tensor *on_tape = ad_tape_tensor(tape, AD_F32, 1, (int64_t[]){2}, NULL);
    assert_int_equal(ad_safetensors_load(path, 1, names, &on_tape, err, sizeof err), AD_ERR_ARG);
    assert_non_null(strstr(err, "tape tensor"));
    assert_int_equal(ad_safetensors_load(path, 1, NULL, ts, err, sizeof err), AD_ERR_ARG);
    const char *null_name = NULL;
    assert_int_equal(ad_safetensors_load(path, 1, &null_name, ts, err, sizeof err), AD_ERR_ARG);
    assert_int_equal(ad_safetensors_load(NULL, 1, names, ts, err, sizeof err), AD_ERR_ARG);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", temp_dir);
    assert_int_equal(ad_safetensors_load(missing, 1, names, ts, err, sizeof err), AD_ERR_IO);
    assert_non_null(strstr(err, "No such file"));
    assert_non_null(strstr(err, missing));
    assert_int_equal(ad_safetensors_load(temp_dir, 1, names, ts, err, sizeof err), AD_ERR_IO);
    /* No message buffer is fine. */
    assert_int_equal(ad_safetensors_load(missing, 1, names, ts, NULL, 0), AD_ERR_IO);
    assert_all(a, 7.0);
    ad_tape_free(tape);
    ad_tensor_free(a);
    ad_tensor_free(b);
}

static void test_unrequested_entries_of_other_dtypes_and_metadata_load_fine(void **state)
{
    (void)state;
    /* Buffer: i64 [2] (16) | bf16 [3] (6) | u8 [2] (2) | bool [0] | f32 "é" [2] (8)
     * | f4 [4] (2) | f64 "😀" [1] (8) = 42 bytes. */
    unsigned char buf[42] = {0};
    int64_t ints[2] = {-1, 1234567890123};
    memcpy(buf, ints, 16);
    memcpy(buf + 24, two_floats, 8);
    double pi = 3.141592653589793;
    memcpy(buf + 34, &pi, 8);
    const char *header =
        "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"esc \\\" \\u00e9 \\ud83d\\ude00\"},"
        "\"ints\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
        "\"half\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
        "\"bytes\":{\"dtype\":\"U8\",\"shape\":[1,2],\"data_offsets\":[22,24]},"
        "\"flags\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[24,24]},"
        "\"\\u00e9\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"nibbles\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[32,34]},"
        "\"\\ud83d\\ude00\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[34,42]}}    ";
    char path[300], err[512];
    make_file(path, sizeof path, header, buf, sizeof buf);
    ad_tensor *e = persistent(AD_F32, 1, (int64_t[]){2});
    ad_tensor *s = persistent(AD_F64, 0, NULL);
    const char *names[2] = {"\xf0\x9f\x98\x80", "\xc3\xa9"};
    ad_tensor *ts[2] = {s, e};
    assert_int_equal(ad_safetensors_load(path, 2, names, ts, err, sizeof err), AD_OK);
    assert_true(ad_tensor_get(s, 0) == pi);
    assert_true(ad_tensor_get(e, 0) == 1.5 && ad_tensor_get(e, 1) == -2.5);

    ad_safetensors *st;
    assert_int_equal(ad_safetensors_open(&st, path, err, sizeof err), AD_OK);
    assert_int_equal(ad_safetensors_count(st), 7);
    ad_safetensors_entry entry;
    assert_true(ad_safetensors_entry_at(st, 0, &entry));
    assert_string_equal(entry.name, "ints");
    assert_string_equal(entry.dtype, "I64");
    assert_false(entry.loadable);
    assert_true(ad_safetensors_entry_at(st, 2, &entry));
    assert_int_equal(entry.ndim, 2);
    assert_int_equal(entry.shape[1], 2);
    assert_true(ad_safetensors_entry_at(st, 6, &entry));
    assert_int_equal(entry.ndim, 0);
    assert_null(entry.shape);
    assert_int_equal(entry.numel, 1);
    assert_int_equal(ad_safetensors_find(st, "__metadata__"), -1);
    assert_int_equal(ad_safetensors_find(st, "\xc3\xa9"), 4);
    /* Reading an entry we cannot convert. */
    ad_tensor *i64 = persistent(AD_F64, 1, (int64_t[]){2});
    assert_int_equal(ad_safetensors_read(st, "ints", i64, err, sizeof err), AD_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "'ints' has dtype I64"));
    ad_safetensors_close(st);
    ad_tensor_free(i64);
    ad_tensor_free(e);
    ad_tensor_free(s);

    /* "__metadata__": null, and an empty object. */
    make_file(path, sizeof path, "{\"__metadata__\":null," GOOD_A "}", two_floats, 8);
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){2});
    const char *name = "a";
    assert_int_equal(ad_safetensors_load(path, 1, &name, &a, err, sizeof err), AD_OK);
    make_file(path, sizeof path, "{" GOOD_A ",\"__metadata__\":{}}", two_floats, 8);
    assert_int_equal(ad_safetensors_load(path, 1, &name, &a, err, sizeof err), AD_OK);
    ad_tensor_free(a);
}

/* Every entry 0-d: the reader holds no dims at all, and must not compute
 * NULL + 0 from its empty dim list (clang's UBSan: pointer-overflow). */
static void test_a_file_whose_entries_are_all_0d_loads(void **state)
{
    (void)state;
    unsigned char buf[12];
    double pi = 3.141592653589793;
    float e = 2.7182817f;
    memcpy(buf, &pi, 8);
    memcpy(buf + 8, &e, 4);
    char path[300], err[512];
    make_file(path, sizeof path,
              "{\"pi\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
              "\"e\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}",
              buf, sizeof buf);
    ad_tensor *ts[2] = {persistent(AD_F64, 0, NULL), persistent(AD_F32, 0, NULL)};
    const char *names[2] = {"pi", "e"};
    assert_int_equal(ad_safetensors_load(path, 2, names, ts, err, sizeof err), AD_OK);
    assert_true(ad_tensor_get(ts[0], 0) == pi);
    assert_true(ad_tensor_get(ts[1], 0) == (double)e);

    /* A 0-d entry against a destination with dims names both shapes. */
    ad_tensor *v = persistent(AD_F64, 1, (int64_t[]){1});
    assert_int_equal(ad_safetensors_load(path, 1, names, &v, err, sizeof err), AD_ERR_SHAPE);
    assert_non_null(strstr(err, "expected shape [1] (destination), found []"));
    assert_true(ad_tensor_get(v, 0) == 0.0);

    ad_safetensors *st;
    assert_int_equal(ad_safetensors_open(&st, path, err, sizeof err), AD_OK);
    ad_safetensors_entry entry;
    assert_true(ad_safetensors_entry_at(st, 1, &entry));
    assert_int_equal(entry.ndim, 0);
    assert_null(entry.shape);
    assert_int_equal(entry.numel, 1);
    fill_value(ts[0], 0.0);
    assert_int_equal(ad_safetensors_read(st, "pi", ts[0], err, sizeof err), AD_OK);
    assert_true(ad_tensor_get(ts[0], 0) == pi);
    ad_safetensors_close(st);

    /* And the writer's output of such tensors reads back. */
    new_path(path, sizeof path);
    assert_int_equal(ad_safetensors_save(path, 2, names, ts, err, sizeof err), AD_OK);
    fill_value(ts[0], 0.0);
    fill_value(ts[1], 0.0);
    assert_int_equal(ad_safetensors_load(path, 2, names, ts, err, sizeof err), AD_OK);
    assert_true(ad_tensor_get(ts[0], 0) == pi);
    assert_true(ad_tensor_get(ts[1], 0) == (double)e);
    ad_tensor_free(v);
    ad_tensor_free(ts[0]);
    ad_tensor_free(ts[1]);
}

/* fopen failing with ENOMEM is out of memory, not an I/O error; nothing is
 * changed, and a failed save leaves no temporary file. */
static void test_running_out_of_memory_in_fopen_is_nomem_not_io(void **state)
{
    (void)state;
    char path[300], err[512];
    make_file(path, sizeof path, "{" GOOD_A "}", two_floats, 8);
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){2});
    fill_value(a, 7.0);
    const char *name = "a";
    fail_open = true;
    ad_status load = ad_safetensors_load(path, 1, &name, &a, err, sizeof err);
    fail_open = false;
    assert_int_equal(load, AD_ERR_NOMEM);
    assert_non_null(strstr(err, "ad_safetensors_load: cannot open"));
    assert_non_null(strstr(err, path));
    assert_all(a, 7.0);

    ad_safetensors *st = (ad_safetensors *)&st;
    fail_open = true;
    ad_status open = ad_safetensors_open(&st, path, err, sizeof err);
    fail_open = false;
    assert_int_equal(open, AD_ERR_NOMEM);
    assert_null(st);
    assert_non_null(strstr(err, "cannot open"));

    char other[300];
    new_path(other, sizeof other);
    int before = files_in_dir();
    fail_open = true;
    ad_status save = ad_safetensors_save(other, 1, &name, &a, err, sizeof err);
    fail_open = false;
    assert_int_equal(save, AD_ERR_NOMEM);
    assert_non_null(strstr(err, "ad_safetensors_save"));
    assert_int_equal(files_in_dir(), before);

    /* Other open failures stay I/O errors. */
    char missing[400];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", temp_dir);
    assert_int_equal(ad_safetensors_load(missing, 1, &name, &a, err, sizeof err), AD_ERR_IO);
    ad_tensor_free(a);
}

/* A read that fails midway (the file was cut after it was opened) writes
 * nothing into its destination. */
static void test_a_read_cut_short_by_a_changed_file_changes_nothing(void **state)
{
    (void)state;
    float six[6] = {1, 2, 3, 4, 5, 6};
    char path[300], err[512];
    make_file(path, sizeof path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
              six, 24);
    ad_safetensors *st;
    assert_int_equal(ad_safetensors_open(&st, path, err, sizeof err), AD_OK);
    struct stat info;
    assert_int_equal(stat(path, &info), 0);
    assert_int_equal(truncate(path, info.st_size - 6), 0); /* half of b's data */
    ad_tensor *b = persistent(AD_F32, 1, (int64_t[]){4});
    fill_value(b, 7.0);
    assert_int_equal(ad_safetensors_read(st, "b", b, err, sizeof err), AD_ERR_FORMAT);
    assert_non_null(strstr(err, "truncated"));
    assert_all(b, 7.0);
    ad_tensor *a = persistent(AD_F32, 1, (int64_t[]){2});
    assert_int_equal(ad_safetensors_read(st, "a", a, err, sizeof err), AD_OK);
    assert_true(ad_tensor_get(a, 1) == 2.0);
    ad_safetensors_close(st);
    ad_tensor_free(a);
    ad_tensor_free(b);
}

/* ---- Out of memory -------------------------------------------------------- */

enum { SWEEP_N = 20 }; /* more entries, dims and metadata keys than the first capacities */

/* A file of SWEEP_N F32 tensors "t0".."t19" of shape [1,1,1,k+1] (more dims
 * than the reader's first block) and as many metadata keys. */
static void make_sweep_file(char *path, size_t size, ad_tensor **t, const char **names,
                            char (*name_buf)[8])
{
    for (int i = 0; i < SWEEP_N; i++) {
        snprintf(name_buf[i], 8, "t%d", i);
        names[i] = name_buf[i];
        t[i] = persistent(AD_F32, 4, (int64_t[]){1, 1, 1, i + 1});
        fill_pattern(t[i], i + 1.0);
    }
    new_path(path, size);
    char err[512];
    assert_int_equal(ad_safetensors_save(path, SWEEP_N, names, t, err, sizeof err), AD_OK);
}

typedef struct sweep_ctx {
    const char *path;
    const char **names;
    ad_tensor **src, **dst;
    ad_safetensors *st;
    unsigned char *old_file;
    size_t old_len;
    int files;
} sweep_ctx;

static ad_status run_load(void *ctx, char *err, size_t err_size)
{
    sweep_ctx *x = ctx;
    return ad_safetensors_load(x->path, SWEEP_N, x->names, x->dst, err, err_size);
}

static ad_status run_open(void *ctx, char *err, size_t err_size)
{
    sweep_ctx *x = ctx;
    ad_status s = ad_safetensors_open(&x->st, x->path, err, err_size);
    assert_true((s == AD_OK) == (x->st != NULL));
    return s;
}

static void close_handle(void *ctx)
{
    sweep_ctx *x = ctx;
    ad_safetensors_close(x->st);
    x->st = NULL;
}

/* Opens with the sweep's allocator, reads an entry, closes. */
static ad_status run_open_read(void *ctx, char *err, size_t err_size)
{
    sweep_ctx *x = ctx;
    ad_status s = ad_safetensors_open(&x->st, x->path, err, err_size);
    if (s == AD_OK)
        s = ad_safetensors_read(x->st, "t19", x->dst[19], err, err_size);
    ad_safetensors_close(x->st);
    x->st = NULL;
    return s;
}

static void dst_unchanged(void *ctx)
{
    sweep_ctx *x = ctx;
    for (int i = 0; i < SWEEP_N; i++)
        assert_all(x->dst[i], 7.0);
}

static void dst_loaded(sweep_ctx *x)
{
    for (int i = 0; i < SWEEP_N; i++)
        assert_memory_equal(ad_tensor_data(x->dst[i]), ad_tensor_data(x->src[i]),
                            bytes_of(x->src[i]));
}

static void test_every_allocation_failure_of_a_load_is_nomem_and_changes_nothing(void **state)
{
    (void)state;
    ad_tensor *t[SWEEP_N], *u[SWEEP_N];
    const char *names[SWEEP_N];
    char name_buf[SWEEP_N][8], path[300];
    make_sweep_file(path, sizeof path, t, names, name_buf);
    /* Destinations made before the allocator is set keep malloc. */
    for (int i = 0; i < SWEEP_N; i++) {
        u[i] = persistent(AD_F32, 4, (int64_t[]){1, 1, 1, i + 1});
        fill_value(u[i], 7.0);
    }
    sweep_ctx x = {.path = path, .names = names, .src = t, .dst = u};
    fail_each_alloc load = {run_load, dst_unchanged, NULL, &x};
    assert_true(fail_each_alloc_run(&load) > 3); /* the allocator sees the reader's allocations */
    dst_loaded(&x);

    /* The open-and-read API. */
    fail_each_alloc open = {run_open, NULL, close_handle, &x};
    assert_true(fail_each_alloc_run(&open) > 3);
    for (int i = 0; i < SWEEP_N; i++)
        fill_value(u[i], 7.0);
    fail_each_alloc read = {run_open_read, dst_unchanged, NULL, &x};
    fail_each_alloc_run(&read);
    assert_memory_equal(ad_tensor_data(u[19]), ad_tensor_data(t[19]), bytes_of(t[19]));
    for (int i = 0; i < SWEEP_N; i++) {
        ad_tensor_free(t[i]);
        ad_tensor_free(u[i]);
    }
}

static ad_status run_save(void *ctx, char *err, size_t err_size)
{
    sweep_ctx *x = ctx;
    return ad_safetensors_save(x->path, SWEEP_N, x->names, x->src, err, err_size);
}

static void old_file_kept(void *ctx)
{
    sweep_ctx *x = ctx;
    size_t len;
    unsigned char *now = read_all(x->path, &len);
    assert_int_equal(len, x->old_len);
    assert_memory_equal(now, x->old_file, len);
    free(now);
    assert_int_equal(files_in_dir(), x->files); /* no temporary file left */
}

static void test_every_allocation_failure_of_a_save_is_nomem_and_keeps_the_old_file(void **state)
{
    (void)state;
    ad_tensor *t[SWEEP_N];
    const char *names[SWEEP_N];
    char name_buf[SWEEP_N][8], path[300], err[512];
    make_sweep_file(path, sizeof path, t, names, name_buf);
    sweep_ctx x = {.path = path, .names = names, .src = t, .files = files_in_dir()};
    x.old_file = read_all(path, &x.old_len);
    for (int i = 0; i < SWEEP_N; i++)
        fill_value(t[i], -1.0);
    fail_each_alloc save = {run_save, old_file_kept, NULL, &x};
    assert_true(fail_each_alloc_run(&save) > 3);
    assert_int_equal(files_in_dir(), x.files);
    ad_tensor *u = persistent(AD_F32, 4, (int64_t[]){1, 1, 1, 20});
    assert_int_equal(ad_safetensors_load(path, 1, &names[19], &u, err, sizeof err), AD_OK);
    assert_all(u, -1.0);
    ad_tensor_free(u);
    free(x.old_file);
    for (int i = 0; i < SWEEP_N; i++)
        ad_tensor_free(t[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_is_bit_exact_for_every_shape_and_name),
        cmocka_unit_test(test_tape_tensors_can_be_saved_and_an_empty_file_written),
        cmocka_unit_test(test_saving_over_a_file_replaces_it_and_leaves_no_temporary),
        cmocka_unit_test(test_save_refuses_bad_names_and_reports_io_errors),
        cmocka_unit_test(test_a_well_formed_reference_file_loads),
        cmocka_unit_test(test_truncated_files_are_refused),
        cmocka_unit_test(test_header_lengths_beyond_the_file_or_the_limit_are_refused),
        cmocka_unit_test(test_malformed_json_is_refused),
        cmocka_unit_test(test_trailing_garbage_after_the_json_is_refused),
        cmocka_unit_test(test_duplicate_tensor_names_are_refused),
        cmocka_unit_test(test_offsets_out_of_range_or_not_tiling_are_refused),
        cmocka_unit_test(test_shapes_that_disagree_with_the_bytes_are_refused),
        cmocka_unit_test(test_requested_tensors_must_match_dtype_and_shape),
        cmocka_unit_test(test_a_failing_load_of_several_tensors_changes_none),
        cmocka_unit_test(test_unrequested_entries_of_other_dtypes_and_metadata_load_fine),
        cmocka_unit_test(test_a_file_whose_entries_are_all_0d_loads),
        cmocka_unit_test(test_running_out_of_memory_in_fopen_is_nomem_not_io),
        cmocka_unit_test(test_a_read_cut_short_by_a_changed_file_changes_nothing),
        cmocka_unit_test(test_every_allocation_failure_of_a_load_is_nomem_and_changes_nothing),
        cmocka_unit_test(test_every_allocation_failure_of_a_save_is_nomem_and_keeps_the_old_file),
    };
    return cmocka_run_group_tests(tests, temp_dir_create, temp_dir_remove);
}
