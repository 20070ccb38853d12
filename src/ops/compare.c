/* Comparisons, logical ops and float classification: ops that take tensors
 * of any dtype and give bool tensors, as torch's eq, lt, logical_and, isnan.
 * They are never differentiable (the result is a constant, which
 * ad_where can use as its condition). Binary ones broadcast; their inputs
 * share one dtype (no promotion: cast first). */
#include "ops.h"

#include <string.h>

#define KERNELS "ops/compare_kernels.h"
#define KERNELS_ALL_DTYPES
#include "../core/kernels.h"

#define KERNELS "ops/classify_kernels.h"
#include "../core/kernels.h"

/* A binary comparison's kernels, one per input dtype (compare_kernels.h):
 * y = f(a, b) over n elements, a and b stepping by sa and sb (1 or 0). */
typedef void compare_f32(int64_t n, const float *a, int64_t sa, const float *b, int64_t sb,
                         bool *y);
typedef void compare_f64(int64_t n, const double *a, int64_t sa, const double *b, int64_t sb,
                         bool *y);
typedef void compare_i64(int64_t n, const int64_t *a, int64_t sa, const int64_t *b, int64_t sb,
                         bool *y);
typedef void compare_bool(int64_t n, const bool *a, int64_t sa, const bool *b, int64_t sb, bool *y);

typedef struct compare_kernels {
    compare_f32 *f32;
    compare_f64 *f64;
    compare_i64 *i64;
    compare_bool *b;
} compare_kernels;

/* One run of y: the one dtype dispatch of the binary ops of this file. */
static void compare_run(const ad_tensor *y, const compare_kernels *k, int64_t n, int64_t ao,
                        int64_t sa, int64_t bo, int64_t sb, int64_t yo)
{
    const ad_tensor *a = y->src[0], *b = y->src[1];
    bool *out = (bool *)y->data + yo;
    switch ((ad_dtype)a->dtype) {
    case AD_F32:
        k->f32(n, (const float *)a->data + ao, sa, (const float *)b->data + bo, sb, out);
        return;
    case AD_F64:
        k->f64(n, (const double *)a->data + ao, sa, (const double *)b->data + bo, sb, out);
        return;
    case AD_I64:
        k->i64(n, (const int64_t *)a->data + ao, sa, (const int64_t *)b->data + bo, sb, out);
        return;
    case AD_BOOL:
        k->b(n, (const bool *)a->data + ao, sa, (const bool *)b->data + bo, sb, out);
        return;
    }
}

/* The forward of a binary op of this file: row by row over the broadcast. */
static void compare_forward(ad_tensor *y, compare_kernels k)
{
    ad__bcast bc;
    int64_t off[3];
    ad__bcast_init(&bc, y, 2, y->src);
    for (int64_t r = 0; r < bc.outer; r++) {
        ad__bcast_row(&bc, r, off);
        compare_run(y, &k, bc.inner, off[0], bc.inner_stride[0], off[1], bc.inner_stride[1],
                    r * bc.inner);
    }
}

/* The shape rule: the broadcast shape, and a bool result. */
static ad_status compare_shape(ad_tensor *y)
{
    y->dtype = AD_BOOL;
    return ad__broadcast_rule(y);
}

static ad_tensor *compare(int op, ad_tensor *a, ad_tensor *b)
{
    ad_tensor *src[2] = {a, b};
    return ad__apply(op, 2, src, NULL);
}

/* The rules every op of this file shares: no gradient (never recorded, so
 * never asked). */
static void no_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)y, (void)gy, (void)gin;
}

/* ---- eq, ne, lt, le, gt, ge: a OP b, broadcasting, bool ------------------------- */
// no gradient: the result is a bool constant
ad_status ad__eq_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__eq_forward(ad_tensor *y)
{
    compare_forward(y, (compare_kernels){eq_f32, eq_f64, eq_i64, eq_bool});
}

void ad__eq_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__eq_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_eq(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_eq, a, b);
}

ad_status ad__ne_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__ne_forward(ad_tensor *y)
{
    compare_forward(y, (compare_kernels){ne_f32, ne_f64, ne_i64, ne_bool});
}

void ad__ne_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__ne_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_ne(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_ne, a, b);
}

ad_status ad__lt_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__lt_forward(ad_tensor *y)
{
    compare_forward(y, (compare_kernels){lt_f32, lt_f64, lt_i64, lt_bool});
}

void ad__lt_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__lt_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_lt(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_lt, a, b);
}

ad_status ad__le_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__le_forward(ad_tensor *y)
{
    compare_forward(y, (compare_kernels){le_f32, le_f64, le_i64, le_bool});
}

void ad__le_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__le_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_le(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_le, a, b);
}

ad_status ad__gt_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__gt_forward(ad_tensor *y)
{
    compare_forward(y, (compare_kernels){gt_f32, gt_f64, gt_i64, gt_bool});
}

void ad__gt_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__gt_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_gt(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_gt, a, b);
}

ad_status ad__ge_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__ge_forward(ad_tensor *y)
{
    compare_forward(y, (compare_kernels){ge_f32, ge_f64, ge_i64, ge_bool});
}

void ad__ge_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__ge_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_ge(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_ge, a, b);
}

/* ---- logical_and, logical_or, logical_xor: nonzero (NaN too) is true ------------- */
// no gradient: the result is a bool constant
ad_status ad__logical_and_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__logical_and_forward(ad_tensor *y)
{
    compare_forward(
        y, (compare_kernels){logical_and_f32, logical_and_f64, logical_and_i64, logical_and_bool});
}

void ad__logical_and_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__logical_and_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_logical_and(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_logical_and, a, b);
}

ad_status ad__logical_or_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__logical_or_forward(ad_tensor *y)
{
    compare_forward(
        y, (compare_kernels){logical_or_f32, logical_or_f64, logical_or_i64, logical_or_bool});
}

void ad__logical_or_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__logical_or_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_logical_or(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_logical_or, a, b);
}

ad_status ad__logical_xor_shape(ad_tensor *y)
{
    return compare_shape(y);
}

void ad__logical_xor_forward(ad_tensor *y)
{
    compare_forward(
        y, (compare_kernels){logical_xor_f32, logical_xor_f64, logical_xor_i64, logical_xor_bool});
}

void ad__logical_xor_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__logical_xor_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_logical_xor(ad_tensor *a, ad_tensor *b)
{
    return compare(AD_OP_logical_xor, a, b);
}

/* ---- logical_not, isnan, isinf, isfinite: one input, bool -------------------------- */
// no gradient: the result is a bool constant
static ad_status classify_shape(ad_tensor *y)
{
    y->dtype = AD_BOOL;
    return ad__same_shape_rule(y);
}

static ad_tensor *classify(int op, ad_tensor *x)
{
    return ad__apply(op, 1, &x, NULL);
}

ad_status ad__logical_not_shape(ad_tensor *y)
{
    return classify_shape(y);
}

void ad__logical_not_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        logical_not_f32(y->numel, x->data, y->data);
        return;
    case AD_F64:
        logical_not_f64(y->numel, x->data, y->data);
        return;
    case AD_I64:
        logical_not_i64(y->numel, x->data, y->data);
        return;
    case AD_BOOL:
        logical_not_bool(y->numel, x->data, y->data);
        return;
    }
}

void ad__logical_not_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__logical_not_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_logical_not(ad_tensor *x)
{
    return classify(AD_OP_logical_not, x);
}

/* isnan, isinf and isfinite: a float kernel, or the constant answer for
 * int64 and bool (never NaN or infinite). */
typedef void classify_f32(int64_t n, const float *x, bool *y);
typedef void classify_f64(int64_t n, const double *x, bool *y);

static void classify_forward(ad_tensor *y, classify_f32 *f32, classify_f64 *f64, bool integers)
{
    const ad_tensor *x = y->src[0];
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        f32(y->numel, x->data, y->data);
        return;
    case AD_F64:
        f64(y->numel, x->data, y->data);
        return;
    case AD_I64:
    case AD_BOOL:
        memset(y->data, integers, (size_t)y->numel);
        return;
    }
}

ad_status ad__isnan_shape(ad_tensor *y)
{
    return classify_shape(y);
}

void ad__isnan_forward(ad_tensor *y)
{
    classify_forward(y, isnan_f32, isnan_f64, false);
}

void ad__isnan_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__isnan_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_isnan(ad_tensor *x)
{
    return classify(AD_OP_isnan, x);
}

ad_status ad__isinf_shape(ad_tensor *y)
{
    return classify_shape(y);
}

void ad__isinf_forward(ad_tensor *y)
{
    classify_forward(y, isinf_f32, isinf_f64, false);
}

void ad__isinf_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__isinf_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_isinf(ad_tensor *x)
{
    return classify(AD_OP_isinf, x);
}

ad_status ad__isfinite_shape(ad_tensor *y)
{
    return classify_shape(y);
}

void ad__isfinite_forward(ad_tensor *y)
{
    classify_forward(y, isfinite_f32, isfinite_f64, true);
}

void ad__isfinite_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_backward(y, gy, gin);
}

ad_tensor *ad__isfinite_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_isfinite(ad_tensor *x)
{
    return classify(AD_OP_isfinite, x);
}
