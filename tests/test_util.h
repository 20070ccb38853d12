/* Shared helpers for the CMocka tests. */
#ifndef AD_TEST_UTIL_H
#define AD_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "autodiff/autodiff.h"

/* CMocka 1.1.5 has no assert_double_equal: one helper that prints both values. */
#define assert_close(expected, actual, rtol, atol)                                         \
    assert_close_at((expected), (actual), (rtol), (atol), #actual, __FILE__, __LINE__)

static inline void assert_close_at(double expected, double actual, double rtol, double atol,
                                   const char *what, const char *file, int line)
{
    bool ok = fabs(expected - actual) <= atol + rtol * fabs(expected) ||
              (isnan(expected) && isnan(actual)) ||
              (isinf(expected) && expected == actual);
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
static inline ad_tensor *test_random(ad_tape *tape, uint64_t *state, int ndim,
                                     const int64_t *shape, double lo, double hi)
{
    ad_tensor *t = ad_tensor_new(tape, AD_F64, ndim, shape, NULL);
    assert_non_null(t);
    double *d = ad_tensor_data(t);
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        d[i] = test_uniform(state, lo, hi);
    return t;
}

#endif
