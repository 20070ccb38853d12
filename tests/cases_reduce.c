/* Gradient-check cases for the reductions (src/ops/reduce.c): sum, max and
 * logsumexp are op-table rows; mean, var and sum_to are compositions and
 * their cases are filed under "sum", the row they are built on. Random inputs
 * never tie, so max is differentiable at them; the tie cases build their ties
 * from copies, where the even split keeps the derivative exact. */
#include "grad_cases.h"

#include <math.h>
#include <stddef.h>

/* An axis list and the options of one reduction. */
typedef struct axes_ctx {
    int n_axes; /* 0: over all */
    int axes[AD_MAX_DIMS];
    bool keepdim;
    int correction; /* var only */
} axes_ctx;

#define REDUCE_FN(op)                                                                              \
    static ad_tensor *f_##op(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)             \
    {                                                                                              \
        const axes_ctx *a = ctx;                                                                   \
        (void)tape, (void)n;                                                                       \
        return ad_##op(in[0], a->n_axes, a->axes, a->keepdim);                                     \
    }

REDUCE_FN(sum)
REDUCE_FN(mean)
REDUCE_FN(max)
REDUCE_FN(logsumexp)
REDUCE_FN(min)
REDUCE_FN(prod)

static ad_tensor *f_var(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const axes_ctx *a = ctx;
    (void)tape, (void)n;
    return ad_var(in[0], a->n_axes, a->axes, a->keepdim, a->correction);
}

static ad_tensor *f_std(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const axes_ctx *a = ctx;
    (void)tape, (void)n;
    return ad_std(in[0], a->n_axes, a->axes, a->keepdim, a->correction);
}

/* min over two broadcast copies of x: every column is a tie of two minima. */
static ad_tensor *f_min_of_copies(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    static const int axis0[] = {0};
    int64_t shape[2] = {2, ad_tensor_dim(in[0], 0)};
    (void)tape, (void)n, (void)ctx;
    return ad_amin(ad_expand(in[0], 2, shape), 1, axis0, false);
}

/* prod of x + offset over axes: with the inputs all 1 (lo = hi = 1), an
 * offset of -1 makes an exact zero that is still an input's element. */
typedef struct offset_ctx {
    int ndim;
    int64_t shape[AD_MAX_DIMS];
    double offset[12];
    axes_ctx axes;
} offset_ctx;

static ad_tensor *f_prod_offset(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const offset_ctx *o = ctx;
    (void)n;
    ad_tensor *k = ad_tape_tensor_from_doubles(tape, AD_F64, o->ndim, o->shape, o->offset);
    return ad_prod(ad_add(in[0], k), o->axes.n_axes, o->axes.axes, o->axes.keepdim);
}

/* A p-norm over an axis list. */
typedef struct norm_ctx {
    double p;
    axes_ctx axes;
} norm_ctx;

static ad_tensor *f_norm(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const norm_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_norm(in[0], c->p, c->axes.n_axes, c->axes.axes, c->axes.keepdim);
}

/* A scan along axis ctx (an int); squared so that second order has work to do. */
static ad_tensor *f_cumsum(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_mul(ad_cumsum(in[0], *(const int *)ctx), in[0]);
}

/* The scans cumprod and logcumsumexp along axis ctx (an int). */
static ad_tensor *f_cumprod(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_cumprod(in[0], *(const int *)ctx);
}

static ad_tensor *f_logcumsumexp(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_logcumsumexp(in[0], *(const int *)ctx);
}

/* logcumsumexp times x, so that its backward gets a gradient of both signs
 * that depends on x. */
static ad_tensor *f_logcumsumexp_weighted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_mul(ad_logcumsumexp(in[0], *(const int *)ctx), in[0]);
}

/* A scan of x + offset along axis: with the inputs all 1 (lo = hi = 1), an
 * offset of -1 makes an exact zero that is still an input's element; with
 * random inputs, offsets of +-1000 make logits whose exp overflows. */
typedef struct scan_offset_ctx {
    ad_tensor *(*scan)(ad_tensor *x, int axis);
    int ndim;
    int64_t shape[AD_MAX_DIMS];
    double offset[12];
    int axis;
} scan_offset_ctx;

static ad_tensor *f_scan_offset(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const scan_offset_ctx *o = ctx;
    (void)n;
    ad_tensor *k = ad_tape_tensor_from_doubles(tape, AD_F64, o->ndim, o->shape, o->offset);
    return o->scan(ad_add(in[0], k), o->axis);
}

static ad_tensor *f_sum_all(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_sum_all(in[0]);
}

static ad_tensor *f_mean_all(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mean_all(in[0]);
}

/* A target shape for sum_to. */
typedef struct shape_ctx {
    int ndim;
    int64_t shape[AD_MAX_DIMS];
} shape_ctx;

static ad_tensor *f_sum_to(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const shape_ctx *s = ctx;
    (void)tape, (void)n;
    return ad_sum_to(in[0], s->ndim, s->shape);
}

/* max over two broadcast copies of x ([3] -> [2,3], axis 0): every column is a
 * tie of two equal values, each gets dy / 2, and the halves add up to 1. */
static ad_tensor *f_max_of_copies(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    static const int axis0[] = {0};
    int64_t shape[2] = {2, ad_tensor_dim(in[0], 0)};
    (void)tape, (void)n, (void)ctx;
    return ad_max(ad_expand(in[0], 2, shape), 1, axis0, false);
}

/* logsumexp feeding a product, so its backward gets a non-constant gradient. */
static ad_tensor *f_logsumexp_weighted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    static const int last[] = {-1};
    (void)tape, (void)n, (void)ctx;
    return ad_mul(ad_logsumexp(in[0], 1, last, true), in[0]);
}

static axes_ctx all = {0, {0}, false, 1};
static axes_ctx all_keep = {0, {0}, true, 1};
static axes_ctx axis0 = {1, {0}, false, 1};
static axes_ctx axis1 = {1, {1}, false, 1};
static axes_ctx axis1_keep = {1, {1}, true, 1};
static axes_ctx axis_last = {1, {-1}, false, 1};
static axes_ctx axis_last_keep = {1, {-1}, true, 1};
static axes_ctx axes_0_2 = {2, {0, 2}, false, 1};
static axes_ctx axes_0_2_keep = {2, {0, 2}, true, 1};
static axes_ctx axes_neg = {2, {-1, -3}, false, 1};
static axes_ctx axes_neg_keep = {2, {-3, -2}, true, 1};
static axes_ctx axes_2_1 = {2, {2, 1}, false, 1};
static axes_ctx all_c0 = {0, {0}, false, 0};
static axes_ctx axis1_c0_keep = {1, {1}, true, 0};
static axes_ctx axes_neg_c1 = {2, {-1, 0}, false, 1};
static axes_ctx axis_size1 = {1, {1}, false, 1};

/* rows of x + offset, all inputs 1: [0, 1.5, -0.25] (one zero), [0.5, 2, 3] (none) */
static offset_ctx one_zero = {2, {2, 3}, {-1, 0.5, -1.25, -0.5, 1, 2}, {1, {1}, false, 1}};
/* rows [0, 0, 1.5, -0.5] (two zeros), [0.25, 0, 2, 1.5] (one), [0, 0, 0, 3] (three) */
static offset_ctx some_zeros = {
    2, {3, 4}, {-1, -1, 0.5, -1.5, -0.75, -1, 1, 0.5, -1, -1, -1, 2}, {1, {-1}, true, 1}};
/* columns of a [3,2]: [0, 0.5, 2] and [-0.5, 0, 0] */
static offset_ctx columns_zeros = {2, {3, 2}, {-1, -1.5, -0.5, -1, 1, -1}, {1, {0}, false, 1}};

static norm_ctx norm2_all = {2, {0, {0}, false, 1}};
static norm_ctx norm2_frobenius = {2, {2, {-2, -1}, false, 1}};
static norm_ctx norm1_rows = {1, {1, {-1}, true, 1}};
static norm_ctx norm_inf_axes = {INFINITY, {2, {0, 2}, false, 1}};
static norm_ctx norm3_axis0 = {3, {1, {0}, false, 1}};
static norm_ctx norm_half_all = {0.5, {0, {0}, true, 1}};
static norm_ctx norm2_axis1 = {2, {1, {1}, true, 1}};

static int scan_axis0 = 0, scan_axis1 = 1, scan_last = -1;

/* rows of x + offset, all inputs 1: [2, 0, 1.5, -0.5] (a zero inside), [0, 1.5, -2, 0.5]
 * (first), [0.5, 2, -1.5, 0] (last) */
static scan_offset_ctx cumprod_one_zero = {
    ad_cumprod, 2, {3, 4}, {1, -1, 0.5, -1.5, -1, 0.5, -3, -0.5, -0.5, 1, -2.5, -1}, -1};
/* rows [2, 0, 1.5, 0] (two zeros), [0, 0, -2, 0.5] (two leading), [0, -0.5, 0, 0] (three) */
static scan_offset_ctx cumprod_zeros = {
    ad_cumprod, 2, {3, 4}, {1, -1, 0.5, -1, -1, -1, -3, -0.5, -1, -1.5, -1, -1}, 1};
/* columns of a [3,2]: [1.5, 0, 2] (one zero) and [0, -0.5, 0] (two) */
static scan_offset_ctx cumprod_columns = {ad_cumprod, 2, {3, 2}, {0.5, -1, -1, -1.5, 1, -1}, 0};
/* rows of random logits in [-1, 1) around +-1000: exp overflows at either */
static scan_offset_ctx logcumsumexp_huge = {
    ad_logcumsumexp, 2, {2, 4}, {1000, 1001, 999, 1000.5, -1000, -1003, -999, -1000}, 1};
/* logits 1000 apart in one row: the small ones get gradients of exactly 0 from the large */
static scan_offset_ctx logcumsumexp_spread = {ad_logcumsumexp, 1, {4}, {-1000, 0, 1000, 0}, 0};

static shape_ctx to_row = {2, {1, 3}};
static shape_ctx to_vec = {1, {3}};
static shape_ctx to_col = {2, {2, 1}};
static shape_ctx to_scalar = {0, {0}};
static shape_ctx to_mid = {3, {2, 1, 4}};

/* The table is aligned by hand, one case to a row or two. */
// clang-format off
#define ONE(d0, ...) .n_inputs = 1, .ndim = {d0}, .shape = {{__VA_ARGS__}}

const grad_case cases_reduce[] = {
    /* sum */
    {.op = "sum", .name = "all of [2,3,4]", .f = f_sum, .ctx = &all, ONE(3, 2, 3, 4)},
    {.op = "sum", .name = "all of [2,3] keepdim", .f = f_sum, .ctx = &all_keep, ONE(2, 2, 3)},
    {.op = "sum", .name = "sum_all of [5]", .f = f_sum_all, ONE(1, 5)},
    {.op = "sum", .name = "0-d", .f = f_sum, .ctx = &all, ONE(0, 0)},
    {.op = "sum", .name = "axis 0 of [2,3] (leading rows)", .f = f_sum, .ctx = &axis0,
     ONE(2, 2, 3)},
    {.op = "sum", .name = "axis 0 of [3,2,2] (leading rows, 3-d)", .f = f_sum, .ctx = &axis0,
     ONE(3, 3, 2, 2)},
    {.op = "sum", .name = "axis 1 of [2,3,4]", .f = f_sum, .ctx = &axis1, ONE(3, 2, 3, 4)},
    {.op = "sum", .name = "axis 1 of [2,3,4] keepdim", .f = f_sum, .ctx = &axis1_keep,
     ONE(3, 2, 3, 4)},
    {.op = "sum", .name = "axis -1 of [2,3]", .f = f_sum, .ctx = &axis_last, ONE(2, 2, 3)},
    {.op = "sum", .name = "axes {0,2} of [2,3,4]", .f = f_sum, .ctx = &axes_0_2,
     ONE(3, 2, 3, 4)},
    {.op = "sum", .name = "axes {0,2} of [2,3,4] keepdim", .f = f_sum, .ctx = &axes_0_2_keep,
     ONE(3, 2, 3, 4)},
    {.op = "sum", .name = "axes {-1,-3} of [2,3,4]", .f = f_sum, .ctx = &axes_neg,
     ONE(3, 2, 3, 4)},
    {.op = "sum", .name = "axes {2,1} of [2,3,4] (unsorted)", .f = f_sum, .ctx = &axes_2_1,
     ONE(3, 2, 3, 4)},
    {.op = "sum", .name = "size-1 axis 1 of [3,1,2]", .f = f_sum, .ctx = &axis_size1,
     ONE(3, 3, 1, 2)},

    /* mean: sum times 1/N */
    {.op = "sum", .name = "mean of all of [2,3]", .f = f_mean, .ctx = &all, ONE(2, 2, 3)},
    {.op = "sum", .name = "mean_all of [4]", .f = f_mean_all, ONE(1, 4)},
    {.op = "sum", .name = "mean over axis -1 of [2,3] keepdim", .f = f_mean,
     .ctx = &axis_last_keep, ONE(2, 2, 3)},
    {.op = "sum", .name = "mean over axes {-3,-2} of [2,3,2] keepdim", .f = f_mean,
     .ctx = &axes_neg_keep, ONE(3, 2, 3, 2)},

    /* var: sum((x - mean)^2) / (N - correction) */
    {.op = "sum", .name = "var of all of [2,3], correction 1", .f = f_var, .ctx = &all,
     ONE(2, 2, 3)},
    {.op = "sum", .name = "var of all of [5], correction 0", .f = f_var, .ctx = &all_c0,
     ONE(1, 5)},
    {.op = "sum", .name = "var over axis 1 of [3,4] keepdim, correction 0", .f = f_var,
     .ctx = &axis1_c0_keep, ONE(2, 3, 4)},
    {.op = "sum", .name = "var over axes {-1,0} of [2,2,3]", .f = f_var, .ctx = &axes_neg_c1,
     ONE(3, 2, 2, 3)},

    /* sum_to: the adjoint of broadcasting */
    {.op = "sum", .name = "sum_to [2,3] -> [1,3]", .f = f_sum_to, .ctx = &to_row,
     ONE(2, 2, 3)},
    {.op = "sum", .name = "sum_to [2,3] -> [3]", .f = f_sum_to, .ctx = &to_vec, ONE(2, 2, 3)},
    {.op = "sum", .name = "sum_to [2,3] -> [2,1]", .f = f_sum_to, .ctx = &to_col,
     ONE(2, 2, 3)},
    {.op = "sum", .name = "sum_to [2,3] -> 0-d", .f = f_sum_to, .ctx = &to_scalar,
     ONE(2, 2, 3)},
    {.op = "sum", .name = "sum_to [3,2,3,4] -> [2,1,4]", .f = f_sum_to, .ctx = &to_mid,
     ONE(4, 3, 2, 3, 4)},

    /* max: random inputs, no ties */
    {.op = "max", .name = "all of [2,3]", .f = f_max, .ctx = &all, ONE(2, 2, 3)},
    {.op = "max", .name = "all of [2,3] keepdim", .f = f_max, .ctx = &all_keep, ONE(2, 2, 3)},
    {.op = "max", .name = "axis 0 of [3,4]", .f = f_max, .ctx = &axis0, ONE(2, 3, 4)},
    {.op = "max", .name = "axis 1 of [2,3,4] keepdim", .f = f_max, .ctx = &axis1_keep,
     ONE(3, 2, 3, 4)},
    {.op = "max", .name = "axis -1 of [3,4]", .f = f_max, .ctx = &axis_last, ONE(2, 3, 4)},
    {.op = "max", .name = "axes {-1,-3} of [2,3,4]", .f = f_max, .ctx = &axes_neg,
     ONE(3, 2, 3, 4)},
    {.op = "max", .name = "axes {0,2} of [2,3,4] keepdim", .f = f_max, .ctx = &axes_0_2_keep,
     ONE(3, 2, 3, 4)},
    {.op = "max", .name = "over two broadcast copies: tied maxima share", .f = f_max_of_copies,
     ONE(1, 3)},

    /* logsumexp */
    {.op = "logsumexp", .name = "all of [2,3]", .f = f_logsumexp, .ctx = &all, ONE(2, 2, 3)},
    {.op = "logsumexp", .name = "all of [2,3] keepdim", .f = f_logsumexp, .ctx = &all_keep,
     ONE(2, 2, 3)},
    {.op = "logsumexp", .name = "axis 1 of [2,3,4]", .f = f_logsumexp, .ctx = &axis1,
     ONE(3, 2, 3, 4)},
    {.op = "logsumexp", .name = "axis -1 of [3,4] keepdim", .f = f_logsumexp,
     .ctx = &axis_last_keep, ONE(2, 3, 4)},
    {.op = "logsumexp", .name = "axes {-1,-3} of [2,3,4]", .f = f_logsumexp,
     .ctx = &axes_neg, ONE(3, 2, 3, 4)},
    {.op = "logsumexp", .name = "axis 0 of [3,2], logits in [100,104)", .f = f_logsumexp,
     .ctx = &axis0, ONE(2, 3, 2), .lo = 100, .hi = 104},
    {.op = "logsumexp", .name = "logsumexp(x, -1, keepdim) * x, [2,3]",
     .f = f_logsumexp_weighted, ONE(2, 2, 3)},

    /* prod: away from 0 so that products stay near 1; exact zeros from offsets */
    {.op = "prod", .name = "all of [2,3]", .f = f_prod, .ctx = &all, ONE(2, 2, 3), .lo = 0.5,
     .hi = 1.5},
    {.op = "prod", .name = "0-d", .f = f_prod, .ctx = &all, ONE(0, 0)},
    {.op = "prod", .name = "axis 1 of [2,3,4] keepdim", .f = f_prod, .ctx = &axis1_keep,
     ONE(3, 2, 3, 4), .lo = -1.5, .hi = -0.5},
    {.op = "prod", .name = "axes {-1,-3} of [2,3,4]", .f = f_prod, .ctx = &axes_neg,
     ONE(3, 2, 3, 4), .lo = 0.5, .hi = 1.5},
    {.op = "prod", .name = "axis 0 of [3,4] (strided groups)", .f = f_prod, .ctx = &axis0,
     ONE(2, 3, 4), .lo = 0.5, .hi = 1.5},
    {.op = "prod", .name = "rows with one zero and none", .f = f_prod_offset, .ctx = &one_zero,
     ONE(2, 2, 3), .lo = 1, .hi = 1},
    {.op = "prod", .name = "rows with two, one and three zeros", .f = f_prod_offset,
     .ctx = &some_zeros, ONE(2, 3, 4), .lo = 1, .hi = 1},
    {.op = "prod", .name = "columns with one and two zeros", .f = f_prod_offset,
     .ctx = &columns_zeros, ONE(2, 3, 2), .lo = 1, .hi = 1},

    /* norm: inputs away from 0 (the kink of |x|) */
    {.op = "norm", .name = "p = 2 of all of [2,3]", .f = f_norm, .ctx = &norm2_all,
     ONE(2, 2, 3), .lo = 0.2, .hi = 1},
    {.op = "norm", .name = "p = 2 over axis 1 of [2,3,4] keepdim, signs", .f = f_norm,
     .ctx = &norm2_axis1, ONE(3, 2, 3, 4)},
    {.op = "norm", .name = "Frobenius: p = 2 over axes {-2,-1} of [2,3,2]", .f = f_norm,
     .ctx = &norm2_frobenius, ONE(3, 2, 3, 2)},
    {.op = "norm", .name = "p = 1 over axis -1 of [3,4] keepdim", .f = f_norm,
     .ctx = &norm1_rows, ONE(2, 3, 4)},
    {.op = "norm", .name = "p = inf over axes {0,2} of [2,3,4]", .f = f_norm,
     .ctx = &norm_inf_axes, ONE(3, 2, 3, 4)},
    {.op = "norm", .name = "p = 3 over axis 0 of [3,2], signs", .f = f_norm, .ctx = &norm3_axis0,
     ONE(2, 3, 2)},
    {.op = "norm", .name = "p = 0.5 of all of [4] keepdim", .f = f_norm, .ctx = &norm_half_all,
     ONE(1, 4), .lo = 0.3, .hi = 1},
    {.op = "norm", .name = "p = 2 of 0-d", .f = f_norm, .ctx = &norm2_all, ONE(0, 0), .lo = 0.2,
     .hi = 1},

    /* cumsum, times x */
    {.op = "cumsum", .name = "axis 0 of [4]", .f = f_cumsum, .ctx = &scan_axis0, ONE(1, 4)},
    {.op = "cumsum", .name = "axis 1 of [2,3,2]", .f = f_cumsum, .ctx = &scan_axis1,
     ONE(3, 2, 3, 2)},
    {.op = "cumsum", .name = "axis -1 of [3,4]", .f = f_cumsum, .ctx = &scan_last, ONE(2, 3, 4)},
    {.op = "cumsum", .name = "0-d", .f = f_cumsum, .ctx = &scan_last, ONE(0, 0)},

    /* cumprod: away from 0 so that products stay near 1; exact zeros from offsets */
    {.op = "cumprod", .name = "axis 0 of [5]", .f = f_cumprod, .ctx = &scan_axis0, ONE(1, 5),
     .lo = 0.5, .hi = 1.5},
    {.op = "cumprod", .name = "axis 1 of [2,3,2], signs", .f = f_cumprod, .ctx = &scan_axis1,
     ONE(3, 2, 3, 2), .lo = -1.5, .hi = 1.5},
    {.op = "cumprod", .name = "axis -1 of [3,4]", .f = f_cumprod, .ctx = &scan_last, ONE(2, 3, 4),
     .lo = -1.5, .hi = -0.5},
    {.op = "cumprod", .name = "axis 0 of [3,4] (strided runs)", .f = f_cumprod,
     .ctx = &scan_axis0, ONE(2, 3, 4), .lo = 0.5, .hi = 1.5},
    {.op = "cumprod", .name = "0-d", .f = f_cumprod, .ctx = &scan_last, ONE(0, 0)},
    {.op = "cumprod", .name = "rows with one zero: inside, first, last", .f = f_scan_offset,
     .ctx = &cumprod_one_zero, ONE(2, 3, 4), .lo = 1, .hi = 1},
    {.op = "cumprod", .name = "rows with two and three zeros", .f = f_scan_offset,
     .ctx = &cumprod_zeros, ONE(2, 3, 4), .lo = 1, .hi = 1},
    {.op = "cumprod", .name = "columns with one and two zeros", .f = f_scan_offset,
     .ctx = &cumprod_columns, ONE(2, 3, 2), .lo = 1, .hi = 1},

    /* logcumsumexp */
    {.op = "logcumsumexp", .name = "axis 0 of [5]", .f = f_logcumsumexp, .ctx = &scan_axis0,
     ONE(1, 5), .lo = -3, .hi = 3},
    {.op = "logcumsumexp", .name = "axis 1 of [2,3,2]", .f = f_logcumsumexp,
     .ctx = &scan_axis1, ONE(3, 2, 3, 2)},
    {.op = "logcumsumexp", .name = "axis 0 of [3,4] (strided runs)", .f = f_logcumsumexp,
     .ctx = &scan_axis0, ONE(2, 3, 4), .lo = -2, .hi = 2},
    {.op = "logcumsumexp", .name = "0-d", .f = f_logcumsumexp, .ctx = &scan_last, ONE(0, 0)},
    {.op = "logcumsumexp", .name = "logcumsumexp(x, -1) * x, [3,4]",
     .f = f_logcumsumexp_weighted, .ctx = &scan_last, ONE(2, 3, 4)},
    {.op = "logcumsumexp", .name = "rows of logits near 1000 and -1000", .f = f_scan_offset,
     .ctx = &logcumsumexp_huge, ONE(2, 2, 4)},
    {.op = "logcumsumexp", .name = "logits 1000 apart", .f = f_scan_offset,
     .ctx = &logcumsumexp_spread, ONE(1, 4)},

    /* min, amin: -max(-x), filed under max */
    {.op = "max", .name = "min of all of [2,3]", .f = f_min, .ctx = &all, ONE(2, 2, 3)},
    {.op = "max", .name = "min over axes {-1,-3} of [2,3,4]", .f = f_min, .ctx = &axes_neg,
     ONE(3, 2, 3, 4)},
    {.op = "max", .name = "min over axis 1 of [2,3,4] keepdim", .f = f_min, .ctx = &axis1_keep,
     ONE(3, 2, 3, 4)},
    {.op = "max", .name = "amin over two broadcast copies: tied minima share",
     .f = f_min_of_copies, ONE(1, 3)},

    /* std: sqrt of var, filed under sum */
    {.op = "sum", .name = "std of all of [2,3], correction 1", .f = f_std, .ctx = &all,
     ONE(2, 2, 3)},
    {.op = "sum", .name = "std over axis 1 of [3,4] keepdim, correction 0", .f = f_std,
     .ctx = &axis1_c0_keep, ONE(2, 3, 4)},
    {.op = "sum", .name = "std over axes {-1,0} of [2,2,3]", .f = f_std, .ctx = &axes_neg_c1,
     ONE(3, 2, 2, 3)},
};
// clang-format on

const size_t n_cases_reduce = sizeof cases_reduce / sizeof cases_reduce[0];
