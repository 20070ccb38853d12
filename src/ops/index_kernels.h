/* Indexing kernels over T, instantiated per dtype by kernels.h (index.c
 * includes it after step_index). The selecting ones only move elements (bit
 * copies: no arithmetic touches them); the adding ones add in index order, so
 * repeated targets sum the same way every run. Not include-guarded: included
 * once per dtype. */
#include <string.h>

// index_select: x: (outer, dim, inner) -> y: (outer, n, inner), y[o, k] = x[o, index[k]]
static void K(index_select)(const T *restrict x, T *restrict y, int64_t outer, int64_t dim,
                            int64_t inner, int64_t n, const int64_t *index)
{
    /* Single elements (im2col's case): a typed gather, not a memcpy call each. */
    if (inner == 1) {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < n; k++)
                y[o * n + k] = x[o * dim + index[k]];
        return;
    }
    size_t row = (size_t)inner * sizeof(T);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < n; k++)
            memcpy(y + (o * n + k) * inner, x + (o * dim + index[k]) * inner, row);
}

// index_add: x: (outer, n, inner) -> y: (outer, length, inner) zeroed, y[o, index[k]] += x[o, k]
static void K(index_add)(const T *x, T *y, int64_t outer, int64_t length, int64_t inner, int64_t n,
                         const int64_t *index)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < n; k++) {
            T *yr = y + (o * length + index[k]) * inner;
            const T *xr = x + (o * n + k) * inner;
            for (int64_t i = 0; i < inner; i++)
                yr[i] += xr[i];
        }
}

// gather: x: (full) -> y: (part, nd dims, numel elements), y[e] = x[base(e) + index[e] *
// axis_stride], base(e) walked by step_index over part with stride (axis stride 0)
static void K(gather)(const T *x, T *y, int64_t numel, int nd, const int64_t *part,
                      const int64_t *stride, int64_t axis_stride, const int64_t *index)
{
    int64_t idx[AD_MAX_DIMS] = {0}, base = 0;
    for (int64_t e = 0; e < numel; e++) {
        y[e] = x[base + index[e] * axis_stride];
        step_index(nd, part, stride, idx, &base);
    }
}

// scatter_add: src: (part, nd dims, numel elements) -> y: (full) zeroed,
// y[base(e) + index[e] * axis_stride] += src[e], base(e) as in gather
static void K(scatter_add)(const T *src, T *y, int64_t numel, int nd, const int64_t *part,
                           const int64_t *stride, int64_t axis_stride, const int64_t *index)
{
    int64_t idx[AD_MAX_DIMS] = {0}, base = 0;
    for (int64_t e = 0; e < numel; e++) {
        y[base + index[e] * axis_stride] += src[e];
        step_index(nd, part, stride, idx, &base);
    }
}
