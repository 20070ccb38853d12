/* Shared helpers for the CMocka tests. */
#ifndef AD_TEST_UTIL_H
#define AD_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autodiff/autodiff.h"

/* CMocka 1.1.5 has no assert_double_equal: one helper that prints both values. */
#define assert_close(expected, actual, rtol, atol)                                                 \
    assert_close_at((expected), (actual), (rtol), (atol), #actual, __FILE__, __LINE__)

static inline void assert_close_at(double expected, double actual, double rtol, double atol,
                                   const char *what, const char *file, int line)
{
    bool ok = fabs(expected - actual) <= atol + rtol * fabs(expected) ||
              (isnan(expected) && isnan(actual)) || (isinf(expected) && expected == actual);
    if (!ok) {
        print_error("%s:%d: %s = %.17g, expected %.17g (rtol %g, atol %g)\n", file, line, what,
                    actual, expected, rtol, atol);
        _fail(file, line);
    }
}

/* A fresh tape; fails the test if it cannot be made. */
static inline ad_tape *test_tape(void)
{
    ad_tape *tape = NULL;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    return tape;
}

/* Each TAPE_TEST gets a fresh tape in *state, freed even when the test fails. */
static inline int tape_setup(void **state)
{
    ad_tape *tape = NULL;
    if (ad_tape_create(&tape) != AD_OK)
        return -1;
    *state = tape;
    return 0;
}

static inline int tape_teardown(void **state)
{
    ad_tape_free(*state);
    return 0;
}

#define TAPE_TEST(f) cmocka_unit_test_setup_teardown(f, tape_setup, tape_teardown)

/* ---- Tensors and their checks ------------------------------------------------------------- */

/* A tape tensor from doubles. */
static inline ad_tensor *tensor(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape,
                                const double *values)
{
    ad_tensor *t = ad_tape_tensor_from_doubles(tape, dtype, ndim, shape, values);
    assert_non_null(t);
    return t;
}

/* A leaf that requires grad, from doubles. */
static inline ad_tensor *leaf(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape,
                              const double *values)
{
    ad_tensor *t = ad_requires_grad(tensor(tape, dtype, ndim, shape, values));
    assert_non_null(t);
    return t;
}

/* g[i] = d sum(y) / d xs[i]. */
static inline void grads_of_sum(ad_tensor *y, size_t n, ad_tensor *const *xs, ad_tensor **g)
{
    assert_non_null(y);
    ad_tensor *loss = ad_sum_all(y);
    assert_non_null(loss);
    assert_int_equal(ad_grad(1, &loss, NULL, n, xs, g, NULL), AD_OK);
    for (size_t i = 0; i < n; i++)
        assert_non_null(g[i]);
}

/* d sum(y) / dx, for one input. */
static inline ad_tensor *grad_of_sum(ad_tensor *y, ad_tensor *x)
{
    ad_tensor *g;
    grads_of_sum(y, 1, &x, &g);
    return g;
}

static inline void assert_shape(const ad_tensor *t, int ndim, const int64_t *shape)
{
    assert_non_null(t);
    assert_int_equal(ad_tensor_ndim(t), ndim);
    for (int d = 0; d < ndim; d++)
        assert_int_equal(ad_tensor_shape(t)[d], shape[d]);
}

/* assert_values(t, n, expected, rtol, atol): the n elements of t against
 * expected[0..n); a failure names t, the element and the caller's line.
 * Variadic so that expected may be a compound literal with commas. */
#define assert_values(t, n, ...) assert_values_at((t), (n), __VA_ARGS__, #t, __FILE__, __LINE__)

static inline void assert_values_at(const ad_tensor *t, int64_t n, const double *expected,
                                    double rtol, double atol, const char *what, const char *file,
                                    int line)
{
    if (!t) {
        print_error("%s:%d: %s is NULL\n", file, line, what);
        _fail(file, line);
    }
    if (ad_tensor_numel(t) != n) {
        print_error("%s:%d: %s has %lld elements, expected %lld\n", file, line, what,
                    (long long)ad_tensor_numel(t), (long long)n);
        _fail(file, line);
    }
    for (int64_t i = 0; i < n; i++) {
        char label[160];
        snprintf(label, sizeof label, "%s[%lld]", what, (long long)i);
        assert_close_at(expected[i], ad_tensor_get(t, i), rtol, atol, label, file, line);
    }
}

/* Exact comparison with == on doubles (+0 and -0 compare equal). */
static inline void assert_exact(const ad_tensor *t, int64_t n, const double *expected)
{
    assert_non_null(t);
    assert_int_equal(ad_tensor_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        double v = ad_tensor_get(t, i);
        if (!(v == expected[i]))
            fail_msg("element %lld is %.17g, expected exactly %.17g", (long long)i, v, expected[i]);
    }
}

static inline void assert_message_has(const ad_tape *tape, const char *part)
{
    const char *m = ad_tape_message(tape);
    if (!strstr(m, part))
        fail_msg("tape message \"%s\" does not mention \"%s\"", m, part);
}

/* ---- A counting, failing allocator -------------------------------------------------------- */

/* An allocator that counts, and can fail: allocation number fail_at (1-based)
 * fails, and with fail_after every later one too; with max_size, so does
 * every request of more than max_size bytes (a system short of memory). */
typedef struct counting_allocator {
    size_t allocs, frees, failures;
    long live;
    size_t fail_at;
    bool fail_after;
    size_t max_size;
} counting_allocator;

static inline void *counting_alloc(size_t size, void *ctx)
{
    counting_allocator *c = ctx;
    c->allocs++;
    if ((c->fail_at && (c->allocs == c->fail_at || (c->fail_after && c->allocs > c->fail_at))) ||
        (c->max_size && size > c->max_size)) {
        c->failures++;
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        c->live++;
    return p;
}

static inline void counting_free(void *ptr, void *ctx)
{
    counting_allocator *c = ctx;
    if (ptr) {
        c->frees++;
        c->live--;
    }
    free(ptr);
}

static inline ad_allocator allocator_of(counting_allocator *c)
{
    return (ad_allocator){counting_alloc, counting_free, c};
}

/* ---- Temporary files ---------------------------------------------------------------------- */

/* Removes the files in dir, then dir itself (one level deep: empty
 * subdirectories go too). Returns 0 on success. */
static inline int remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    char path[600];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    closedir(d);
    return rmdir(dir);
}

/* A test group's temporary directory: temp_dir_create and temp_dir_remove are
 * the group's setup and teardown, new_path names a new file in it. */
__attribute__((unused)) static char temp_dir[256];
__attribute__((unused)) static int temp_file_counter;

static inline int temp_dir_create(void **state)
{
    (void)state;
    snprintf(temp_dir, sizeof temp_dir, "/tmp/ad_test_XXXXXX");
    return mkdtemp(temp_dir) ? 0 : -1;
}

static inline int temp_dir_remove(void **state)
{
    (void)state;
    return remove_tree(temp_dir);
}

/* A new .safetensors file name in temp_dir. */
static inline const char *new_path(char *buf, size_t size)
{
    snprintf(buf, size, "%s/f%d.safetensors", temp_dir, temp_file_counter++);
    return buf;
}

/* Deterministic pseudo-random doubles in [lo, hi) for test inputs. */
static inline double test_uniform(uint64_t *state, double lo, double hi)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) / 9007199254740992.0;
}

/* A float64 tape tensor of the given shape with values in [lo, hi). */
static inline ad_tensor *test_random(ad_tape *tape, uint64_t *state, int ndim, const int64_t *shape,
                                     double lo, double hi)
{
    ad_tensor *t = ad_tape_tensor(tape, AD_F64, ndim, shape, NULL);
    assert_non_null(t);
    double *d = ad_tensor_data(t);
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        d[i] = test_uniform(state, lo, hi);
    return t;
}

/* A gradcheck passes trivially for an input f ignores (both Jacobians are
 * zero), as when a layer reads its own parameters instead of the given ones:
 * demand a nonzero gradient of <f, v>, v random, in every input. */
static inline void assert_every_input_matters(const char *what, ad_function f, void *ctx, size_t n,
                                              ad_tensor *const *inputs, uint64_t seed)
{
    ad_tape *tape = test_tape();
    ad_tensor *leaves[17], *grads[17];
    assert_true(n <= sizeof leaves / sizeof leaves[0]);
    for (size_t i = 0; i < n; i++)
        leaves[i] =
            ad_requires_grad(ad_tape_tensor(tape, AD_F64, ad_tensor_ndim(inputs[i]),
                                           ad_tensor_shape(inputs[i]), ad_tensor_data(inputs[i])));
    ad_tensor *y = f(tape, n, leaves, ctx);
    if (!y)
        fail_msg("%s: %s", what, ad_tape_message(tape));
    ad_tensor *v = test_random(tape, &seed, ad_tensor_ndim(y), ad_tensor_shape(y), -1, 1);
    assert_int_equal(ad_grad(1, &y, &v, n, leaves, grads, NULL), AD_OK);
    for (size_t i = 0; i < n; i++) {
        bool nonzero = false;
        for (int64_t e = 0; e < ad_tensor_numel(grads[i]) && !nonzero; e++)
            nonzero = ad_tensor_get(grads[i], e) != 0;
        if (!nonzero)
            fail_msg("%s: the output does not depend on input %zu", what, i);
    }
    ad_tape_free(tape);
}

/* Gradchecks and gradgradchecks f at inputs[0..n); fails the test with both messages. */
static inline void check_gradients(const char *what, ad_function f, void *ctx, size_t n,
                                   ad_tensor *const *inputs, uint64_t seed)
{
    assert_every_input_matters(what, f, ctx, n, inputs, seed);
    ad_gradcheck_result r;
    ad_status st = ad_gradcheck(f, ctx, n, inputs, NULL, &r);
    if (st != AD_OK || !r.passed)
        fail_msg("%s: gradcheck (%s): %s", what, ad_status_string(st), r.message);
    st = ad_gradgradcheck(f, ctx, n, inputs, seed, NULL, &r);
    if (st != AD_OK || !r.passed)
        fail_msg("%s: gradgradcheck (%s): %s", what, ad_status_string(st), r.message);
}

#endif
