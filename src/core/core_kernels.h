/* The core's own loops over tensor data, written once over T (see kernels.h). */

// dst += src elementwise.  dst, src: (n)
static inline void K(add_into)(T *restrict dst, const T *restrict src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] += src[i];
}

// The index of the first NaN or infinity in x, or -1.  x: (n)
static inline int64_t K(first_nonfinite)(const T *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return -1;
}
