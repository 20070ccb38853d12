/* libFuzzer target: the safetensors reader (and the writer, on what it read).
 *
 * The input is the file. Each input runs twice: once as it is, counting the
 * allocations the process-wide allocator sees, and once with one of them
 * (chosen by the input's hash) failing. Invariants, checked with abort():
 *  - a failure has a status other than AD_OK and a message; it is
 *    AD_ERR_NOMEM exactly when an allocation failed;
 *  - open and a load of nothing agree on whether the file is valid;
 *  - a valid file's entries are consistent (numel, offsets tiling the
 *    buffer, lookup by name) and read back the input's bytes;
 *  - a failed read or load changes no destination; a load that names a
 *    missing entry or a mismatched destination fails whole;
 *  - what was read saves and loads back bit for bit; a failed save leaves no
 *    file behind;
 *  - nothing leaks (the allocator's count, and ASan's leak check). */
#include "fuzz_common.h"

#include "autodiff/nn.h"

enum { MAX_PICK = 8 };
#define MAX_NUMEL ((int64_t)1 << 16)
#define SENTINEL 0xA5

typedef struct picked {
    char *name; /* malloc'd copy (the handle's names die with it) */
    ad_dtype dtype;
    int ndim;
    int64_t shape[AD_MAX_DIMS];
    const uint8_t *bytes; /* the entry's bytes in the input */
    size_t size;
} picked;

static bool host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* A status and message that agree with what the allocator saw since `before`. */
static void check_outcome(ad_status s, const char *err, const fuzz_allocator *c, size_t before,
                          const char *what)
{
    bool failed_alloc = c->failures > before;
    if (s != AD_OK)
        CHECK(err[0] != '\0', "%s failed (%s) with no message", what, ad_status_string(s));
    else
        CHECK(err[0] == '\0', "%s succeeded with a message: %s", what, err);
    CHECK((s == AD_ERR_NOMEM) == failed_alloc, "%s: status %s, yet %s allocation failed (%s)", what,
          ad_status_string(s), failed_alloc ? "an" : "no", err);
}

static ad_tensor *sentinel_tensor(ad_dtype dtype, int ndim, const int64_t *shape)
{
    ad_tensor *t;
    ad_status s = ad_tensor_create_with(&t, dtype, ndim, shape, false, &fuzz_plain_allocator);
    CHECK(s == AD_OK, "ad_tensor_create_with: %s", ad_status_string(s));
    size_t bytes = (size_t)ad_tensor_numel(t) * ad_dtype_size(dtype);
    if (bytes)
        memset(ad_tensor_data(t), SENTINEL, bytes);
    return t;
}

static bool untouched(const ad_tensor *t)
{
    const unsigned char *p = ad_tensor_data(t);
    size_t bytes = (size_t)ad_tensor_numel(t) * ad_dtype_size(ad_tensor_dtype(t));
    for (size_t i = 0; i < bytes; i++)
        if (p[i] != SENTINEL)
            return false;
    return true;
}

static bool holds(const ad_tensor *t, const picked *p)
{
    return !p->size || !host_little_endian() || memcmp(ad_tensor_data(t), p->bytes, p->size) == 0;
}

/* Checks every entry of a valid file and picks up to MAX_PICK loadable ones. */
static size_t check_entries(ad_safetensors *st, const uint8_t *data, size_t size, picked *pick)
{
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--)
        header = header << 8 | data[i];
    CHECK(size >= 8 && header <= size - 8, "a file of %zu bytes with header length %llu opened",
          size, (unsigned long long)header);
    const uint8_t *buffer = data + 8 + header;
    uint64_t buffer_size = size - 8 - header, covered = 0;
    size_t n = ad_safetensors_count(st), m = 0;
    for (size_t i = 0; i < n; i++) {
        ad_safetensors_entry e;
        CHECK(ad_safetensors_entry_at(st, i, &e), "entry %zu of %zu missing", i, n);
        CHECK(e.name && e.dtype && e.ndim >= 0, "entry %zu incomplete", i);
        CHECK((e.shape == NULL) == (e.ndim == 0), "entry '%s': %d dims, shape %p", e.name, e.ndim,
              (const void *)e.shape);
        int64_t numel = 1;
        bool zero = false;
        for (int d = 0; d < e.ndim; d++) {
            CHECK(e.shape[d] >= 0, "entry '%s': dim %d is %lld", e.name, d, (long long)e.shape[d]);
            zero |= e.shape[d] == 0;
        }
        for (int d = 0; d < e.ndim && !zero; d++)
            CHECK(!__builtin_mul_overflow(numel, e.shape[d], &numel), "entry '%s': numel overflows",
                  e.name);
        CHECK(e.numel == (zero ? 0 : numel), "entry '%s': numel %lld", e.name, (long long)e.numel);
        CHECK(e.begin <= e.end && e.end <= buffer_size,
              "entry '%s': offsets [%llu, %llu] in a buffer of %llu", e.name,
              (unsigned long long)e.begin, (unsigned long long)e.end,
              (unsigned long long)buffer_size);
        covered += e.end - e.begin;
        int64_t found = ad_safetensors_find(st, e.name);
        if (found >= 0) {
            ad_safetensors_entry f;
            CHECK(ad_safetensors_entry_at(st, (size_t)found, &f), "find gave %lld",
                  (long long)found);
            CHECK(strcmp(f.name, e.name) == 0, "find('%s') gave '%s'", e.name, f.name);
        } else {
            /* Only a name with an escaped NUL can be missed by its C string. */
            CHECK(memmem(data + 8, (size_t)header, "\\u0000", 6), "find('%s') failed", e.name);
        }
        if ((size_t)found == i && !e.loadable) {
            char err[512];
            ad_tensor *t = sentinel_tensor(AD_F32, 0, NULL);
            ad_status s = ad_safetensors_read(st, e.name, t, err, sizeof err);
            CHECK(s == AD_ERR_UNSUPPORTED && err[0] && untouched(t), "read of a %s entry: %s",
                  e.dtype, ad_status_string(s));
            ad_tensor_free(t);
        }
        if ((size_t)found != i || !e.loadable || e.ndim > AD_MAX_DIMS || e.numel > MAX_NUMEL ||
            m == MAX_PICK)
            continue;
        CHECK(e.end - e.begin == (uint64_t)e.numel * ad_dtype_size(e.ad_type),
              "entry '%s': %lld elements in %llu bytes", e.name, (long long)e.numel,
              (unsigned long long)(e.end - e.begin));
        picked *p = &pick[m++];
        p->name = strdup(e.name);
        CHECK(p->name, "strdup");
        p->dtype = e.ad_type;
        p->ndim = e.ndim;
        for (int d = 0; d < e.ndim; d++)
            p->shape[d] = e.shape[d];
        p->bytes = buffer + e.begin;
        p->size = (size_t)(e.end - e.begin);
    }
    CHECK(covered == buffer_size, "entries cover %llu of %llu buffer bytes",
          (unsigned long long)covered, (unsigned long long)buffer_size);
    return m;
}

/* Loads the picked entries (and, with extra, one that must make the whole
 * load fail) into fresh tensors; returns the status, keeps the tensors in t. */
static ad_status load_picked(const char *path, const picked *pick, size_t m, ad_tensor **t,
                             fuzz_allocator *c, int extra)
{
    const char *names[MAX_PICK + 1];
    ad_tensor *dst[MAX_PICK + 1];
    for (size_t i = 0; i < m; i++) {
        names[i] = pick[i].name;
        dst[i] = t[i] = sentinel_tensor(pick[i].dtype, pick[i].ndim, pick[i].shape);
    }
    size_t n = m;
    ad_tensor *bad = NULL;
    if (extra == 1) { /* a name the file lacks */
        names[n] = "\x01 not in the file";
        dst[n++] = bad = sentinel_tensor(AD_F32, 0, NULL);
    } else if (extra == 2 && m) { /* the last entry again, with one more dim */
        int64_t shape[AD_MAX_DIMS + 1];
        memcpy(shape, pick[m - 1].shape, sizeof pick[m - 1].shape);
        int ndim = pick[m - 1].ndim < AD_MAX_DIMS ? pick[m - 1].ndim + 1 : pick[m - 1].ndim;
        shape[ndim - 1] = ndim > pick[m - 1].ndim ? 1 : shape[ndim - 1] + 1;
        names[n] = pick[m - 1].name;
        dst[n++] = bad = sentinel_tensor(pick[m - 1].dtype, ndim, shape);
    } else if (extra == 3 && m) { /* the last entry in the other dtype */
        names[n] = pick[m - 1].name;
        dst[n++] = bad = sentinel_tensor(pick[m - 1].dtype == AD_F32 ? AD_F64 : AD_F32,
                                         pick[m - 1].ndim, pick[m - 1].shape);
    }
    char err[512];
    size_t before = c->failures;
    ad_status s = ad_safetensors_load(path, n, names, dst, err, sizeof err);
    check_outcome(s, err, c, before, "ad_safetensors_load");
    if (bad) {
        CHECK(s != AD_OK, "a load with a missing or mismatched entry (extra %d) succeeded", extra);
        CHECK(s == AD_ERR_NOMEM || s == (extra == 1   ? AD_ERR_FORMAT
                                         : extra == 2 ? AD_ERR_SHAPE
                                                      : AD_ERR_DTYPE),
              "extra %d gave %s: %s", extra, ad_status_string(s), err);
        CHECK(untouched(bad), "the mismatched destination changed");
        ad_tensor_free(bad);
    }
    for (size_t i = 0; i < m; i++) {
        if (s == AD_OK)
            CHECK(holds(t[i], &pick[i]), "'%s' loaded other bytes than the file's", pick[i].name);
        else
            CHECK(untouched(t[i]), "a failed load (%s) changed '%s'", err, pick[i].name);
    }
    return s;
}

static void free_tensors(ad_tensor **t, size_t m)
{
    for (size_t i = 0; i < m; i++)
        ad_tensor_free(t[i]);
}

/* Saves the loaded tensors and loads them back. */
static void round_trip(const picked *pick, size_t m, ad_tensor **t, fuzz_allocator *c)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/round-trip.safetensors", fuzz_dir());
    const char *names[MAX_PICK];
    for (size_t i = 0; i < m; i++)
        names[i] = pick[i].name;
    size_t before = c->failures;
    ad_status s = ad_safetensors_save(path, m, names, t, err, sizeof err);
    check_outcome(s, err, c, before, "ad_safetensors_save");
    if (s != AD_OK) {
        CHECK(s == AD_ERR_NOMEM, "saving what was loaded failed: %s", err);
        CHECK(fuzz_dir_count() == 0, "a failed save left a file behind");
        return;
    }
    ad_tensor *back[MAX_PICK];
    for (size_t i = 0; i < m; i++)
        back[i] = sentinel_tensor(pick[i].dtype, pick[i].ndim, pick[i].shape);
    before = c->failures;
    s = ad_safetensors_load(path, m, names, back, err, sizeof err);
    check_outcome(s, err, c, before, "ad_safetensors_load of a saved file");
    for (size_t i = 0; i < m && s == AD_OK; i++) {
        size_t bytes = (size_t)ad_tensor_numel(t[i]) * ad_dtype_size(pick[i].dtype);
        CHECK(!bytes || memcmp(ad_tensor_data(t[i]), ad_tensor_data(back[i]), bytes) == 0,
              "'%s' changed in a save and load", pick[i].name);
    }
    CHECK(s == AD_OK || s == AD_ERR_NOMEM, "a saved file does not load: %s", err);
    free_tensors(back, m);
    CHECK(remove(path) == 0, "remove: %s", strerror(errno));
}

/* One run over the input with allocation fail_at failing (0: none). Returns
 * the number of allocations. */
static size_t run(const uint8_t *data, size_t size, const char *path, size_t fail_at)
{
    fuzz_allocator c = {.fail_at = fail_at};
    ad_allocator a = fuzz_allocator_of(&c);
    ad_set_allocator(&a);

    char err[512];
    ad_safetensors *st = (ad_safetensors *)&st;
    size_t before = c.failures;
    ad_status s = ad_safetensors_open(&st, path, err, sizeof err);
    check_outcome(s, err, &c, before, "ad_safetensors_open");
    CHECK((s == AD_OK) == (st != NULL), "open gave %s and a handle %p", ad_status_string(s),
          (void *)st);
    CHECK(s == AD_OK || s == AD_ERR_FORMAT || s == AD_ERR_NOMEM, "open gave %s: %s",
          ad_status_string(s), err);
    if (!fail_at) {
        /* A load of nothing validates the same way. */
        char err2[512];
        ad_status s2 = ad_safetensors_load(path, 0, NULL, NULL, err2, sizeof err2);
        CHECK(s2 == s, "open gave %s (%s) but a load of nothing %s (%s)", ad_status_string(s), err,
              ad_status_string(s2), err2);
    }
    if (s == AD_OK) {
        picked pick[MAX_PICK];
        size_t m = check_entries(st, data, size, pick);
        /* Read each entry through the handle, then into a mismatched tensor. */
        for (size_t i = 0; i < m; i++) {
            ad_tensor *t = sentinel_tensor(pick[i].dtype, pick[i].ndim, pick[i].shape);
            before = c.failures;
            s = ad_safetensors_read(st, pick[i].name, t, err, sizeof err);
            check_outcome(s, err, &c, before, "ad_safetensors_read");
            CHECK(s == AD_OK || s == AD_ERR_NOMEM, "reading '%s' failed: %s", pick[i].name, err);
            CHECK(s == AD_OK ? holds(t, &pick[i]) : untouched(t), "read of '%s' (%s)", pick[i].name,
                  ad_status_string(s));
            ad_tensor_free(t);
            t = sentinel_tensor(pick[i].dtype == AD_F32 ? AD_F64 : AD_F32, pick[i].ndim,
                                pick[i].shape);
            s = ad_safetensors_read(st, pick[i].name, t, err, sizeof err);
            CHECK(s == AD_ERR_DTYPE && err[0] && untouched(t), "mismatched read of '%s': %s",
                  pick[i].name, ad_status_string(s));
            ad_tensor_free(t);
        }
        s = ad_safetensors_read(st, "\x01 not in the file", NULL, err, sizeof err);
        CHECK(s == AD_ERR_ARG && err[0], "read into NULL: %s", ad_status_string(s));
        ad_safetensors_close(st);

        ad_tensor *t[MAX_PICK];
        int extra = (int)(fuzz_hash(data, size) % 4);
        if (extra) {
            load_picked(path, pick, m, t, &c, extra);
            free_tensors(t, m);
        }
        if (m && load_picked(path, pick, m, t, &c, 0) == AD_OK)
            round_trip(pick, m, t, &c);
        if (m)
            free_tensors(t, m);
        for (size_t i = 0; i < m; i++)
            free(pick[i].name);
    }
    ad_set_allocator(NULL);
    CHECK(c.live == 0, "%ld blocks leaked", c.live);
    return c.allocs;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    size_t allocs = run(data, size, path, 0);
    if (allocs)
        run(data, size, path, 1 + (size_t)(fuzz_hash(data, size) >> 8) % allocs);
    return 0;
}
