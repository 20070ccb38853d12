/* The dtype-dependent loops of the fused ops (fused.c): copying one group
 * along an axis to and from the buffer of doubles that the group kernels
 * work in. Written once over T and instantiated for float and double by
 * kernels.h. Not include-guarded: see kernels.h. */

// gather: buf[r] = x[r * stride] converted to double; x: (n) by stride, buf: (n)
static void K(gather)(int64_t n, int64_t stride, const T *restrict x, double *restrict buf)
{
    for (int64_t r = 0; r < n; r++)
        buf[r] = (double)x[r * stride];
}

// scatter: y[r * stride] = buf[r] converted to T; buf: (n), y: (n) by stride
static void K(scatter)(int64_t n, int64_t stride, const double *restrict buf, T *restrict y)
{
    for (int64_t r = 0; r < n; r++)
        y[r * stride] = (T)buf[r];
}
