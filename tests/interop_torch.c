/* safetensors interop with PyTorch: we write a file that torch reads, and
 * load one that torch wrote. The Python half is tests/test_interop_torch.py
 * (argv[1]); both sides compute the same values from one formula, so the
 * comparison is bit for bit. Exits 77 (skip) when /usr/bin/python3 cannot
 * import torch. */
#include "test_util.h" /* remove_tree */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autodiff/nn.h"

#define PYTHON "/usr/bin/python3"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "interop_torch.c:%d: ", __LINE__);                                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* The formula of test_interop_torch.py. */
static double value(int seed, int64_t i)
{
    return (double)(((37 * i + 11 * seed) % 101) - 50) / 3.0;
}

static ad_tensor *pattern(int seed, ad_dtype dtype, int ndim, const int64_t *shape)
{
    ad_tensor *t = NULL;
    if (ad_tensor_create(&t, dtype, ndim, shape, false) != AD_OK)
        return NULL;
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        ad_tensor_set(t, i, value(seed, i));
    return t;
}

enum { N_OUT = 6 };

static void write_c_file(const char *path)
{
    const char *names[N_OUT] = {
        "c.f32.matrix", "c.f64.cube", "c.scalar",
        "c.empty",      "c.special",  "\xc3\xbcn\xc3\xaf\x63ode \"name\"\n"}; /* \x63: 'c' */
    ad_tensor *t[N_OUT] = {
        pattern(1, AD_F32, 2, (int64_t[]){3, 4}),
        pattern(2, AD_F64, 3, (int64_t[]){2, 3, 4}),
        pattern(3, AD_F64, 0, NULL),
        pattern(0, AD_F32, 2, (int64_t[]){0, 5}),
        pattern(0, AD_F32, 1, (int64_t[]){7}),
        pattern(4, AD_F64, 1, (int64_t[]){2}),
    };
    for (int i = 0; i < N_OUT; i++)
        CHECK(t[i], "cannot create tensor %d", i);
    if (!failures) {
        float *s = ad_tensor_data(t[4]);
        const float special[7] = {
            0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f, 3.4028234663852886e38f};
        memcpy(s, special, sizeof special);
        char err[512];
        ad_status st = ad_safetensors_save(path, N_OUT, names, t, err, sizeof err);
        CHECK(st == AD_OK, "save: %s", err);
    }
    for (int i = 0; i < N_OUT; i++)
        ad_tensor_free(t[i]);
}

/* Loads the F32/F64 tensors of a file torch wrote and compares them. */
static void check_torch_file(const char *path)
{
    char err[512];
    ad_tensor *w = NULL, *wt = NULL, *d = NULL, *s = NULL, *e = NULL;
    ad_tensor_create(&w, AD_F32, 2, (int64_t[]){4, 3}, false);
    ad_tensor_create(&wt, AD_F32, 2, (int64_t[]){3, 4}, false);
    ad_tensor_create(&d, AD_F64, 1, (int64_t[]){5}, false);
    ad_tensor_create(&s, AD_F32, 0, NULL, false);
    ad_tensor_create(&e, AD_F64, 2, (int64_t[]){2, 0}, false);
    const char *names[5] = {"py.weight", "py.weight_t", "py.double", "py.scalar", "py.empty"};
    ad_tensor *ts[5] = {w, wt, d, s, e};
    ad_status st = ad_safetensors_load(path, 5, names, ts, err, sizeof err);
    CHECK(st == AD_OK, "load %s: %s", path, err);
    if (st == AD_OK) {
        for (int64_t i = 0; i < 12; i++) {
            CHECK(ad_tensor_get(w, i) == (double)(float)value(5, i), "py.weight[%lld] = %.9g",
                  (long long)i, ad_tensor_get(w, i));
            /* weight_t[r][c] = weight[c][r] */
            int64_t r = i / 4, c = i % 4;
            CHECK(ad_tensor_get(wt, i) == ad_tensor_get(w, c * 3 + r), "py.weight_t[%lld]",
                  (long long)i);
        }
        for (int64_t i = 0; i < 5; i++)
            CHECK(ad_tensor_get(d, i) == value(6, i), "py.double[%lld] = %.17g", (long long)i,
                  ad_tensor_get(d, i));
        CHECK(ad_tensor_get(s, 0) == (double)(float)value(7, 0), "py.scalar = %.9g",
              ad_tensor_get(s, 0));
    }
    /* The entries we skip are listed with their dtypes and shapes. */
    ad_safetensors *f = NULL;
    st = ad_safetensors_open(&f, path, err, sizeof err);
    CHECK(st == AD_OK, "open %s: %s", path, err);
    if (st == AD_OK) {
        CHECK(ad_safetensors_count(f) == 8, "%zu entries", ad_safetensors_count(f));
        ad_safetensors_entry entry;
        int64_t i = ad_safetensors_find(f, "py.ints");
        CHECK(i >= 0 && ad_safetensors_entry_at(f, (size_t)i, &entry) &&
                  strcmp(entry.dtype, "I64") == 0 && entry.ndim == 1 && entry.shape[0] == 3,
              "py.ints entry");
        i = ad_safetensors_find(f, "py.half");
        CHECK(i >= 0 && ad_safetensors_entry_at(f, (size_t)i, &entry) &&
                  strcmp(entry.dtype, "F16") == 0 && !entry.loadable,
              "py.half entry");
        ad_tensor *half = NULL;
        ad_tensor_create(&half, AD_F32, 1, (int64_t[]){2}, false);
        CHECK(ad_safetensors_read(f, "py.half", half, err, sizeof err) == AD_ERR_UNSUPPORTED,
              "F16 must be refused: %s", err);
        ad_tensor_free(half);
        ad_safetensors_close(f);
    }
    ad_tensor_free(w);
    ad_tensor_free(wt);
    ad_tensor_free(d);
    ad_tensor_free(s);
    ad_tensor_free(e);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: interop_torch path/to/test_interop_torch.py\n");
        return 1;
    }
    if (access(PYTHON, X_OK) != 0 || system(PYTHON " -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("skipped: %s cannot import torch\n", PYTHON);
        return 77;
    }
    char dir[] = "/tmp/ad_interop_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512], command[2048];
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    write_c_file(path);
    if (!failures) {
        snprintf(command, sizeof command, "%s '%s' '%s'", PYTHON, argv[1], dir);
        int rc = system(command);
        int code = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        if (code == 77) {
            remove_tree(dir);
            return 77;
        }
        CHECK(code == 0, "%s exited with %d", command, code);
    }
    if (!failures) {
        snprintf(path, sizeof path, "%s/py.safetensors", dir);
        check_torch_file(path);
        snprintf(path, sizeof path, "%s/py_lib.safetensors", dir);
        if (access(path, R_OK) == 0) {
            printf("checking the file written by safetensors.torch.save_file\n");
            check_torch_file(path);
        }
    }
    remove_tree(dir);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
