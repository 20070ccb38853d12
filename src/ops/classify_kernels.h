/* isnan, isinf and isfinite of float tensors (compare.c), written once over T
 * and instantiated for float and double by kernels.h. For int64 and bool
 * tensors the answers are constants, which compare.c fills without a kernel.
 * Not include-guarded: see kernels.h. */

// isnan: y = x != x; x, y: (n)
static void K(isnan)(int64_t n, const T *x, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] != x[i];
}

// isinf: y = x is +-inf: x - x is NaN for inf and NaN alone, and x == x rules out NaN;
// x, y: (n)
static void K(isinf)(int64_t n, const T *x, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] == x[i] && (x[i] - x[i]) != (x[i] - x[i]);
}

// isfinite: y = x - x == 0, false for inf and NaN alone; x, y: (n)
static void K(isfinite)(int64_t n, const T *x, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] - x[i]) == (x[i] - x[i]);
}
