/* Shape-op kernels over T, instantiated per dtype by kernels.h (shape.c
 * includes it). They only move elements: a load and store of a float or a
 * double copies its bits unchanged (no arithmetic touches them), so these are
 * bit copies. Not include-guarded: included once per dtype. */
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
