/* The loops of the comparisons and logical ops (compare.c), written once over
 * T and instantiated for every dtype (kernels.h with KERNELS_ALL_DTYPES). Each
 * writes bools. A binary kernel covers n elements of the result, operand a
 * stepping by sa and b by sb, each 1 or 0 (one element repeated): a flat run
 * of a broadcast or one row of it. Not include-guarded: see kernels.h. */

// eq: y = a == b (NaN equals nothing); a, b: (n) or (1) by sa, sb; y: (n)
static void K(eq)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i * sa] == b[i * sb];
}

// ne: y = a != b (true where either is NaN); shapes as eq
static void K(ne)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i * sa] != b[i * sb];
}

// lt: y = a < b (false with a NaN); shapes as eq
static void K(lt)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i * sa] < b[i * sb];
}

// le: y = a <= b; shapes as eq
static void K(le)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i * sa] <= b[i * sb];
}

// gt: y = a > b; shapes as eq
static void K(gt)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i * sa] > b[i * sb];
}

// ge: y = a >= b; shapes as eq
static void K(ge)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i * sa] >= b[i * sb];
}

// logical_and: y = (a != 0) && (b != 0) (NaN is true); shapes as eq
static void K(logical_and)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb,
                           bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (a[i * sa] != 0) & (b[i * sb] != 0);
}

// logical_or: y = (a != 0) || (b != 0); shapes as eq
static void K(logical_or)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb,
                          bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (a[i * sa] != 0) | (b[i * sb] != 0);
}

// logical_xor: y = (a != 0) != (b != 0); shapes as eq
static void K(logical_xor)(int64_t n, const T *a, int64_t sa, const T *b, int64_t sb,
                           bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (a[i * sa] != 0) != (b[i * sb] != 0);
}

// logical_not: y = x == 0; x, y: (n)
static void K(logical_not)(int64_t n, const T *x, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] == 0;
}
