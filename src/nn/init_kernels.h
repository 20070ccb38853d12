/* Initialiser kernels over T (float or double), instantiated by kernels.h
 * from init.c, which defines distribution first. */

// d[i] = lo + (hi - lo) * u (UNIFORM, a = lo, b = hi) or a + b * z (NORMAL),
// computed in double and rounded to T, one draw per element in row-major order.
// d: (n)
static void K(fill)(int64_t n, T *restrict d, distribution kind, double a, double b, ad_rng *rng)
{
    for (int64_t i = 0; i < n; i++)
        d[i] =
            (T)(kind == UNIFORM ? a + (b - a) * ad_rng_uniform(rng) : a + b * ad_rng_normal(rng));
}
