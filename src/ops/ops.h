/* What the op families (src/ops/) share beyond the engine's core.h:
 * broadcasting, reductions, GEMM. Nothing outside src/ops/ includes it. */
#ifndef AD_OPS_H
#define AD_OPS_H

#include "../core/core.h"

/* Normalises an axis list into a bitmask; 0 axes means all. Reports errors as op. */
ad_status ad__axes_mask(ad_tape *tape, const char *op, const ad_tensor *x, int n_axes,
                        const int *axes, uint32_t *mask);
/* Broadcast shape of a and b into out (AD_MAX_DIMS); returns ndim or -1. */
int ad__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int64_t *out);
/* Gradient of a broadcast operand: g summed back to x's shape (g itself if equal). */
ad_tensor *ad__reduce_to(ad_tensor *g, const ad_tensor *x);

/* Sets y to share src[0]'s shape (unary elementwise shape rule). */
ad_status ad__same_shape_rule(ad_tensor *y);
/* The shape rule of an op of two broadcasting inputs: y gets their broadcast
 * shape (an input's own array when it is that shape); fails naming y's op. */
ad_status ad__broadcast_rule(ad_tensor *y);

/* Broadcast iteration over up to 3 operands against an output shape: the
 * output is walked as `outer` rows of `inner` contiguous elements; operand k
 * advances by inner_stride[k] (0 or 1) inside a row, and its offset at the
 * start of row o comes from ad__bcast_row. */
typedef struct ad__bcast {
    int ndim, n;
    int64_t shape[AD_MAX_DIMS];
    int64_t stride[3][AD_MAX_DIMS];
    int64_t inner, outer;
    int64_t inner_stride[3];
} ad__bcast;
void ad__bcast_init(ad__bcast *b, const ad_tensor *y, int n, ad_tensor *const *src);
void ad__bcast_row(const ad__bcast *b, int64_t row, int64_t *offsets);

/* A reduction of x over the axes in mask, as n_out groups of n_red elements:
 * element r of group o is at base[o] + off[r]; base/off NULL mean o * n_red
 * and r (the reduced axes are the trailing ones). */
typedef struct ad__reduce_plan {
    int64_t n_out, n_red;
    int64_t *base, *off;
} ad__reduce_plan;
ad_status ad__reduce_plan_make(ad_tape *tape, const ad_tensor *x, uint32_t mask,
                               ad__reduce_plan *plan);
static inline int64_t ad__plan_base(const ad__reduce_plan *p, int64_t o)
{
    return p->base ? p->base[o] : o * p->n_red;
}
static inline int64_t ad__plan_off(const ad__reduce_plan *p, int64_t r)
{
    return p->off ? p->off[r] : r;
}
/* The shape of x reduced over mask with keepdim (size-1 dims), into out. */
void ad__keepdim_shape(const ad_tensor *x, uint32_t mask, int64_t *out);

/* Row-major strides of a shape. */
void ad__strides(int ndim, const int64_t *shape, int64_t *strides);

/* ---- GEMM (linalg.c) ---------------------------------------------------------
 * C[m,n] = op(A)[m,k] op(B)[k,n] for row-major A, B, C with leading dims lda,
 * ldb, ldc, where op(A) = A^T (A stored [k,m]) when ta is set, likewise B; C is
 * overwritten. ad__gemm uses BLAS when built with it; ad__gemm_reference is our
 * blocked C kernel, used otherwise and kept callable so tests can compare. */
void ad__gemm(ad_dtype dtype, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a,
              int64_t lda, const void *b, int64_t ldb, void *c, int64_t ldc);
void ad__gemm_reference(ad_dtype dtype, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                        const void *a, int64_t lda, const void *b, int64_t ldb, void *c,
                        int64_t ldc, bool accumulate);
/* As ad__gemm, but C += op(A) op(B) (BLAS's beta = 1); the reference kernel
 * does the same with accumulate set. */
void ad__gemm_accumulate(ad_dtype dtype, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                         const void *a, int64_t lda, const void *b, int64_t ldb, void *c,
                         int64_t ldc);

/* t's shape seen as [outer, shape[axis], inner]: outer elements before the
 * axis, inner elements per step along it. */
void ad__split_at(const ad_tensor *t, int axis, int64_t *outer, int64_t *inner);
/* t's shape with dim axis set to len, in the arena (NULL after an error). */
int64_t *ad__shape_replacing(ad_tape *tape, const ad_tensor *t, int axis, int64_t len);

/* The int64 data of an index tensor given to op (named `what` in messages):
 * NULL after recording an error when it is NULL (no new error: an earlier one),
 * on another tape, stale, not int64, or (ndim >= 0) of another ndim. Read at
 * once: the op copies the indices it keeps. */
const int64_t *ad__index_data(ad_tape *tape, const char *op, const char *what,
                              const ad_tensor *index, int ndim);

#endif
