/* Shape-op kernels over T, instantiated for every dtype by kernels.h (shape.c
 * includes it with KERNELS_ALL_DTYPES). They only move elements: a load and
 * store of a float, a double, an int64 or a bool copies its bits unchanged (no
 * arithmetic touches them), so these are bit copies; the one exception,
 * add_rows, sums gradients and is called for float32 and float64 only. Not
 * include-guarded: included once per dtype. */
#include <string.h>

// expand: x broadcast along bc: x: (broadcastable to y) -> y: (bc->outer, bc->inner)
static void K(expand)(const ad__bcast *bc, const T *x, T *y)
{
    int64_t off[3];
    for (int64_t r = 0; r < bc->outer; r++) {
        ad__bcast_row(bc, r, off);
        T *yr = y + r * bc->inner;
        if (bc->inner_stride[0]) {
            memcpy(yr, x + off[0], (size_t)bc->inner * sizeof(T));
        } else {
            T v = x[off[0]];
            for (int64_t i = 0; i < bc->inner; i++)
                yr[i] = v;
        }
    }
}

// permute: y walked in row-major order, rows of its last dim, reading x at stride[d] along
// y's dim d: x: (any) -> y: (rows, shape[nd - 1]), shape of nd >= 1 dims, nonempty
static void K(permute)(const T *x, T *y, int64_t rows, int nd, const int64_t *shape,
                       const int64_t *stride)
{
    int64_t idx[AD_MAX_DIMS] = {0};
    int64_t inner = shape[nd - 1], inner_stride = stride[nd - 1], offset = 0;
    for (int64_t row = 0; row < rows; row++) {
        const T *xr = x + offset;
        T *yr = y + row * inner;
        for (int64_t i = 0; i < inner; i++)
            yr[i] = xr[i * inner_stride];
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < shape[d]) {
                offset += stride[d];
                break;
            }
            offset -= (idx[d] - 1) * stride[d];
            idx[d] = 0;
        }
    }
}

// flip and roll in one pass: along dim d, entry i of y is entry (first[d] - i) of x when bit d
// of reversed is set (first[d] = shape[d] - 1), else entry (first[d] + i) mod shape[d] (a roll
// by shape[d] - first[d]); x, y: (shape), nd >= 1 dims, nonempty
static void K(flip_roll)(const T *x, T *y, int nd, const int64_t *shape, const int64_t *first,
                         uint32_t reversed)
{
    int64_t idx[AD_MAX_DIMS] = {0}, src[AD_MAX_DIMS], stride[AD_MAX_DIMS];
    int64_t n = shape[nd - 1], f = first[nd - 1], rows = 1, offset = 0;
    stride[nd - 1] = 1;
    for (int d = nd - 2; d >= 0; d--)
        stride[d] = stride[d + 1] * shape[d + 1];
    for (int d = 0; d < nd - 1; d++) {
        src[d] = first[d];
        offset += first[d] * stride[d];
        rows *= shape[d];
    }
    bool flip_inner = (reversed >> (nd - 1)) & 1;
    for (int64_t row = 0; row < rows; row++) {
        const T *xr = x + offset; /* entry 0 of the row of x that row of y comes from */
        T *yr = y + row * n;
        if (flip_inner) {
            for (int64_t i = 0; i < n; i++)
                yr[i] = xr[f - i];
        } else { /* two runs: x[f..n) then x[0..f) */
            memcpy(yr, xr + f, (size_t)(n - f) * sizeof(T));
            memcpy(yr + (n - f), xr, (size_t)f * sizeof(T));
        }
        for (int d = nd - 2; d >= 0; d--) { /* the next row: an odometer over the outer dims */
            int64_t s = src[d];
            if (++idx[d] < shape[d]) {
                s = (reversed >> d) & 1 ? s - 1 : s + 1 == shape[d] ? 0 : s + 1;
                offset += (s - src[d]) * stride[d];
                src[d] = s;
                break;
            }
            idx[d] = 0;
            offset += (first[d] - s) * stride[d];
            src[d] = first[d];
        }
    }
}

// add_rows: dst's rows (o dst_dim + dst_start + k dst_step) += src's rows (o count + k), each of
// `inner` elements, for o < outer, k < count: a slice's gradient added into its region
static inline void K(add_rows)(T *dst, const T *src, int64_t outer, int64_t count, int64_t inner,
                               int64_t dst_dim, int64_t dst_start, int64_t dst_step)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < count; k++) {
            T *d = dst + (o * dst_dim + dst_start + k * dst_step) * inner;
            const T *r = src + (o * count + k) * inner;
            for (int64_t i = 0; i < inner; i++)
                d[i] += r[i];
        }
}
