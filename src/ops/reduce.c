/* Reductions over all elements or chosen axes, with keepdim. Primitives: sum,
 * max, logsumexp, prod, norm, and the scans cumsum, cumprod and logcumsumexp. mean, var,
 * std, min, amax and amin are compositions of them. */
#include "ops.h"

#include <float.h>
#include <math.h>

void ad__keepdim_shape(const ad_tensor *x, uint32_t mask, int64_t *out)
{
    for (int d = 0; d < x->ndim; d++)
        out[d] = (mask & (1u << d)) ? 1 : x->shape[d];
}

ad_status ad__reduce_plan_make(ad_tape *tape, const ad_tensor *x, uint32_t mask,
                               ad__reduce_plan *plan)
{
    int64_t strides[AD_MAX_DIMS];
    ad__strides(x->ndim, x->shape, strides);
    plan->n_out = 1;
    plan->n_red = 1;
    plan->base = plan->off = NULL;
    bool trailing = true, seen_reduced = false;
    for (int d = 0; d < x->ndim; d++) {
        if (mask & (1u << d)) {
            plan->n_red *= x->shape[d];
            seen_reduced = true;
        } else {
            plan->n_out *= x->shape[d];
            if (seen_reduced)
                trailing = false;
        }
    }
    if (trailing)
        return AD_OK;
    plan->base = ad__alloc(tape, (size_t)(plan->n_out + plan->n_red) * sizeof(int64_t));
    if (!plan->base)
        return tape->status;
    plan->off = plan->base + plan->n_out;
    /* Two odometers: one over the kept dims, one over the reduced dims. */
    for (int pass = 0; pass < 2; pass++) {
        bool want_reduced = pass == 1;
        int64_t *dst = want_reduced ? plan->off : plan->base;
        int64_t n = want_reduced ? plan->n_red : plan->n_out;
        int64_t idx[AD_MAX_DIMS] = {0};
        int64_t offset = 0;
        for (int64_t i = 0; i < n; i++) {
            dst[i] = offset;
            for (int d = x->ndim - 1; d >= 0; d--) {
                if (((mask >> d) & 1u) != (uint32_t)want_reduced)
                    continue;
                if (++idx[d] < x->shape[d]) {
                    offset += strides[d];
                    break;
                }
                offset -= (idx[d] - 1) * strides[d];
                idx[d] = 0;
            }
        }
    }
    return AD_OK;
}

/* Shape rule shared by the reductions: param[0].i is the axis mask,
 * param[1].i keepdim. */
static ad_status reduce_rule(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    uint32_t mask = (uint32_t)y->param[0].i;
    bool keepdim = y->param[1].i != 0;
    int64_t shape[AD_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!(mask & (1u << d)))
            shape[n++] = x->shape[d];
        else if (keepdim)
            shape[n++] = 1;
        else
            continue;
    }
    y->ndim = (uint8_t)n;
    if (n) {
        y->shape = ad__copy_i64(y->tape, shape, (size_t)n);
        if (!y->shape)
            return y->tape->status;
    }
    return AD_OK;
}

/* An empty reduction has no maximum (PyTorch raises too): AD_ERR_SHAPE naming op. */
static ad_status check_nonempty(ad_tape *tape, const char *op, const ad_tensor *x, uint32_t mask)
{
    for (int d = 0; d < x->ndim; d++)
        if ((mask & (1u << d)) && x->shape[d] == 0) {
            char s[AD__SHAPE_BUF];
            return ad__fail(tape, AD_ERR_SHAPE, "%s: cannot reduce over the empty dim %d of %s", op,
                            d, AD__SHAPE(x, s));
        }
    return AD_OK;
}

static ad_status nonempty_rule(ad_tensor *y)
{
    ad_status s = check_nonempty(y->tape, ad__ops[y->op].name, y->src[0], (uint32_t)y->param[0].i);
    return s != AD_OK ? s : reduce_rule(y);
}

static ad_tensor *reduce(int op, ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    if (!ad__input_tape(x, ad__ops[op].name))
        return NULL;
    uint32_t mask;
    if (ad__axes_mask(x->tape, ad__ops[op].name, x, n_axes, axes, &mask) != AD_OK)
        return NULL;
    ad__param params[AD_NPARAM] = {{.i = mask}, {.i = keepdim}};
    return ad__apply(op, 1, &x, params);
}

/* dy reshaped to x's rank with size-1 reduced dims, ready to broadcast on x. */
static ad_tensor *keepdim_view(ad_tensor *g, const ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    if (!g || y->param[1].i || g->ndim == x->ndim)
        return g;
    int64_t shape[AD_MAX_DIMS];
    ad__keepdim_shape(x, (uint32_t)y->param[0].i, shape);
    return ad_reshape(g, x->ndim, shape);
}

/* The kernels, once per dtype: sum_rows_f32, sum_groups_f64, ... */
#define KERNELS "ops/reduce_kernels.h"
#include "../core/kernels.h"

/* ---- sum ------------------------------------------------------------------------------ */
// dx = expand(dy, x.shape)
ad_status ad__sum_shape(ad_tensor *y)
{
    return reduce_rule(y);
}

/* True if the reduced axes are the leading ones (a bias gradient's sum over
 * the batch): then the sum adds whole contiguous rows. */
static bool reduces_leading(const ad_tensor *x, uint32_t mask)
{
    int d = 0;
    while (d < x->ndim && (mask & (1u << d)))
        d++;
    return d > 0 && (mask >> d) == 0;
}

void ad__sum_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    uint32_t mask = (uint32_t)y->param[0].i;
    /* A sum over the leading axes adds whole rows, accumulating in T; any other
     * accumulates each group in double: float sums of many terms drift. */
    bool rows = reduces_leading(x, mask) && mask != (1u << x->ndim) - 1u;
    int64_t n_out = y->numel, n_rows = n_out ? x->numel / n_out : 0;
    ad__reduce_plan p;
    if (!rows && ad__reduce_plan_make(y->tape, x, mask, &p) != AD_OK)
        return;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        if (rows)
            sum_rows_f32(x->data, y->data, n_rows, n_out);
        else
            sum_groups_f32(x->data, y->data, &p);
        break;
    case AD_F64:
        if (rows)
            sum_rows_f64(x->data, y->data, n_rows, n_out);
        else
            sum_groups_f64(x->data, y->data, &p);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__sum_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    gin[0] = ad_expand(keepdim_view(gy, y), x->ndim, x->shape);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__sum_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_sum(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce(AD_OP_sum, x, n_axes, axes, keepdim);
}

ad_tensor *ad_sum_all(ad_tensor *x)
{
    return ad_sum(x, 0, NULL, false);
}

/* ---- max (amax) ---------------------------------------------------------------------- */
// dx = dy at the maxima; k tied maxima get dy / k each (PyTorch's amax)
ad_status ad__max_shape(ad_tensor *y)
{
    return nonempty_rule(y);
}

void ad__max_forward(ad_tensor *y)
{
    ad__reduce_plan p;
    if (ad__reduce_plan_make(y->tape, y->src[0], (uint32_t)y->param[0].i, &p) != AD_OK)
        return;
    /* NaN wins, as in PyTorch. */
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        max_groups_f32(y->src[0]->data, y->data, &p);
        break;
    case AD_F64:
        max_groups_f64(y->src[0]->data, y->data, &p);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* A constant of x's shape: 1/k at each of the k maxima of a group, 0 elsewhere;
 * NaN across a group whose maximum is NaN (as PyTorch's amax), so that a NaN
 * result never trains on a finite zero gradient. */
static ad_tensor *max_share(ad_tensor *y)
{
    ad_tensor *x = y->src[0];
    ad__reduce_plan p;
    if (ad__reduce_plan_make(y->tape, x, (uint32_t)y->param[0].i, &p) != AD_OK)
        return NULL;
    ad_tensor *share = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!share)
        return NULL;
    memset(share->data, 0, (size_t)x->numel * ad_dtype_size((ad_dtype)x->dtype));
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        max_share_f32(x->data, y->data, share->data, &p);
        break;
    case AD_F64:
        max_share_f64(x->data, y->data, share->data, &p);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    return share;
}

void ad__max_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *share = max_share(y);
    if (share)
        gin[0] = ad_mul(keepdim_view(gy, y), share);
}

// dy = sum(dx share) over the reduced axes
ad_tensor *ad__max_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *w = ad_mul(t[0], max_share(y));
    return w ? ad__apply(AD_OP_sum, 1, &w, y->param) : NULL;
}

ad_tensor *ad_max(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce(AD_OP_max, x, n_axes, axes, keepdim);
}

/* ---- logsumexp: m + log(sum(exp(x - m))), m the max; stable for huge logits ---------- */
// dx = dy exp(x - y)   (the softmax)
ad_status ad__logsumexp_shape(ad_tensor *y)
{
    return reduce_rule(y);
}

void ad__logsumexp_forward(ad_tensor *y)
{
    ad__reduce_plan p;
    if (ad__reduce_plan_make(y->tape, y->src[0], (uint32_t)y->param[0].i, &p) != AD_OK)
        return;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        logsumexp_groups_f32(y->src[0]->data, y->data, &p);
        break;
    case AD_F64:
        logsumexp_groups_f64(y->src[0]->data, y->data, &p);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__logsumexp_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    gin[0] = ad_mul(keepdim_view(gy, y), ad_exp(ad_sub(x, keepdim_view(y, y))));
}

// dy = sum(dx softmax(x)) over the reduced axes
ad_tensor *ad__logsumexp_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *x = y->src[0];
    ad_tensor *w = ad_mul(t[0], ad_exp(ad_sub(x, keepdim_view(y, y))));
    return w ? ad__apply(AD_OP_sum, 1, &w, y->param) : NULL;
}

ad_tensor *ad_logsumexp(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce(AD_OP_logsumexp, x, n_axes, axes, keepdim);
}

/* A constant of x's shape: 1 where x is 0 (either sign), 0 elsewhere (NaN included). */
static ad_tensor *zero_mask(ad_tensor *x)
{
    if (!x)
        return NULL;
    ad_tensor *m = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!m)
        return NULL;
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        zero_mask_f32(x->data, m->data, x->numel);
        break;
    case AD_F64:
        zero_mask_f64(x->data, m->data, x->numel);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    return m;
}

/* ---- prod ------------------------------------------------------------------------------ */
/*
 * dx_j = dy prod_{l != j} x_l, written so that it is exact with zeros and its
 * own derivative is right (second order): with z = [x == 0] and c zeros in the
 * group, x' = x + z (the zeros made 1) and P' = prod(x'),
 *     dx = dy P' / x' Z,   Z_j = the product of the group's zeros other than j
 *                              = a + b S - d x,   S = sum(x z) over the group
 * where a, b, d are the constants of prod_coefficients: Z = 1 without zeros; with
 * one zero, 1 at it and S (its value 0, slope 1 in the zero) elsewhere; with two,
 * S - x_j (the other zero) at each zero and 0 elsewhere; with more, 0. So one
 * zero gives the zero dy times the product of the others and the rest 0, and two
 * or more give 0 everywhere, as PyTorch.
 */
ad_status ad__prod_shape(ad_tensor *y)
{
    return reduce_rule(y);
}

void ad__prod_forward(ad_tensor *y)
{
    ad__reduce_plan p;
    if (ad__reduce_plan_make(y->tape, y->src[0], (uint32_t)y->param[0].i, &p) != AD_OK)
        return;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        prod_groups_f32(y->src[0]->data, y->data, &p);
        break;
    case AD_F64:
        prod_groups_f64(y->src[0]->data, y->data, &p);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* dy/dx of prod as a tensor of x's shape (the rule above with dy = 1). */
static ad_tensor *prod_slope(ad_tensor *y)
{
    ad_tensor *x = y->src[0];
    ad__reduce_plan p;
    if (ad__reduce_plan_make(y->tape, x, (uint32_t)y->param[0].i, &p) != AD_OK)
        return NULL;
    ad_tensor *c[4];
    for (int k = 0; k < 4; k++)
        if (!(c[k] = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape)))
            return NULL;
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        prod_coefficients_f32(x->data, c[0]->data, c[1]->data, c[2]->data, c[3]->data, &p);
        break;
    case AD_F64:
        prod_coefficients_f64(x->data, c[0]->data, c[1]->data, c[2]->data, c[3]->data, &p);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    ad_tensor *nonzero = ad_add(x, c[0]);
    ad_tensor *others =
        ad_div(keepdim_view(ad__apply(AD_OP_prod, 1, &nonzero, y->param), y), nonzero);
    ad_tensor *zeros = ad_mul(x, c[0]);
    ad_tensor *s = keepdim_view(ad__apply(AD_OP_sum, 1, &zeros, y->param), y);
    ad_tensor *rest = ad_sub(ad_add(c[1], ad_mul(c[2], s)), ad_mul(c[3], x));
    return ad_mul(others, rest);
}

void ad__prod_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(keepdim_view(gy, y), prod_slope(y));
}

// dy = sum(dx slope) over the reduced axes
ad_tensor *ad__prod_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *w = ad_mul(t[0], prod_slope(y));
    return w ? ad__apply(AD_OP_sum, 1, &w, y->param) : NULL;
}

ad_tensor *ad_prod(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce(AD_OP_prod, x, n_axes, axes, keepdim);
}

/* ---- norm: vector p-norms over axes, p > 0 or inf --------------------------------------- */
/*
 * p = 1:   dx = dy sign(x)                     (sign(0) = 0)
 * p = 2:   dx = dy x / y, and 0 where y = 0    (as x / (y + [y == 0]))
 * p = inf: dx = dy sign(x) / k at the k elements with |x| = y (ties split as amax)
 * else:    dx = dy sign(x) |x|^(p-1) / y^(p-1), and 0 where x = 0 or y = 0 (as PyTorch)
 */
ad_status ad__norm_shape(ad_tensor *y)
{
    return reduce_rule(y);
}

void ad__norm_forward(ad_tensor *y)
{
    ad__reduce_plan p;
    if (ad__reduce_plan_make(y->tape, y->src[0], (uint32_t)y->param[0].i, &p) != AD_OK)
        return;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        norm_groups_f32(y->src[0]->data, y->data, &p, y->param[2].f);
        break;
    case AD_F64:
        norm_groups_f64(y->src[0]->data, y->data, &p, y->param[2].f);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* A constant of x's shape: sign(x), or for the inf-norm the tie-split slope. */
static ad_tensor *norm_sign(ad_tensor *y)
{
    ad_tensor *x = y->src[0];
    bool inf = isinf(y->param[2].f);
    ad__reduce_plan p;
    if (inf && ad__reduce_plan_make(y->tape, x, (uint32_t)y->param[0].i, &p) != AD_OK)
        return NULL;
    ad_tensor *s = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!s)
        return NULL;
    if (inf)
        memset(s->data, 0, (size_t)x->numel * ad_dtype_size((ad_dtype)x->dtype));
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        if (inf)
            norm_inf_slope_f32(x->data, y->data, s->data, &p);
        else
            sign_f32(x->data, s->data, x->numel);
        break;
    case AD_F64:
        if (inf)
            norm_inf_slope_f64(x->data, y->data, s->data, &p);
        else
            sign_f64(x->data, s->data, x->numel);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    return s;
}

/* dy/dx of the norm, x's shape (the rules above with dy = 1). */
static ad_tensor *norm_slope(ad_tensor *y)
{
    ad_tensor *x = y->src[0];
    double p = y->param[2].f;
    if (isinf(p) || p == 1)
        return norm_sign(y);
    ad_tensor *safe_y = ad_add(y, zero_mask(y));
    if (p == 2)
        return ad_div(x, keepdim_view(safe_y, y));
    ad_tensor *mag = ad_pow_scalar(ad_add(ad_abs(x), zero_mask(x)), p - 1);
    return ad_div(ad_mul(norm_sign(y), mag), keepdim_view(ad_pow_scalar(safe_y, p - 1), y));
}

void ad__norm_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(keepdim_view(gy, y), norm_slope(y));
}

// dy = sum(dx slope) over the reduced axes
ad_tensor *ad__norm_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *w = ad_mul(t[0], norm_slope(y));
    return w ? ad__apply(AD_OP_sum, 1, &w, y->param) : NULL;
}

ad_tensor *ad_norm(ad_tensor *x, double p, int n_axes, const int *axes, bool keepdim)
{
    if (!ad__input_tape(x, "norm"))
        return NULL;
    if (!(p > 0)) {
        ad__fail(x->tape, AD_ERR_ARG, "norm: p = %g is not > 0 (use INFINITY for the max norm)", p);
        return NULL;
    }
    uint32_t mask;
    if (ad__axes_mask(x->tape, "norm", x, n_axes, axes, &mask) != AD_OK)
        return NULL;
    ad__param params[AD_NPARAM] = {{.i = mask}, {.i = keepdim}, {.f = p}};
    return ad__apply(AD_OP_norm, 1, &x, params);
}

/* ---- scans: cumsum, cumprod, logcumsumexp along one axis ---------------------------------- */
/* param[0].i is the axis (normalised), param[1].i reverse (from the end). The
 * public ops scan forward; the reverse scans appear in their backward rules. */

/* x seen as (outer, n, inner) around axis; a 0-d x as one element. */
static void scan_extent(const ad_tensor *x, int axis, int64_t *outer, int64_t *n, int64_t *inner)
{
    *outer = *n = *inner = 1;
    if (!x->ndim)
        return;
    *n = x->shape[axis];
    for (int d = 0; d < x->ndim; d++) {
        if (d < axis)
            *outer *= x->shape[d];
        else if (d > axis)
            *inner *= x->shape[d];
    }
}

static ad_tensor *scan(int op, ad_tensor *x, int axis, bool reverse)
{
    if (!ad__input_tape(x, ad__ops[op].name))
        return NULL;
    /* A 0-d tensor scans as one element along axis 0 or -1, as in PyTorch. */
    int a = x->ndim == 0 && (axis == 0 || axis == -1)
                ? 0
                : ad__check_axis(x->tape, ad__ops[op].name, x, axis);
    if (a < 0)
        return NULL;
    ad__param params[AD_NPARAM] = {{.i = a}, {.i = reverse}};
    return ad__apply(op, 1, &x, params);
}

/* True when y's scan runs over one element (0-d x, or a dim of size 1): then
 * y = x, and the gradient is dy itself (PyTorch's shortcut too, for 0-d). */
static bool scans_one(const ad_tensor *y)
{
    return !y->ndim || y->shape[y->param[0].i] == 1;
}

/* op along y's axis over x, forward or from the end. */
static ad_tensor *scan_along(const ad_tensor *y, int op, ad_tensor *x, bool reverse)
{
    ad__param params[AD_NPARAM] = {{.i = y->param[0].i}, {.i = reverse}};
    return ad__apply(op, 1, &x, params);
}

typedef void scan_f32(const float *x, float *y, int64_t outer, int64_t n, int64_t inner,
                      bool reverse);
typedef void scan_f64(const double *x, double *y, int64_t outer, int64_t n, int64_t inner,
                      bool reverse);

/* The forward of a scan: the kernel of y's dtype over x as (outer, n, inner). */
static void scan_forward(ad_tensor *y, scan_f32 *f32, scan_f64 *f64)
{
    const ad_tensor *x = y->src[0];
    int64_t outer, n, inner;
    scan_extent(x, (int)y->param[0].i, &outer, &n, &inner);
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        f32(x->data, y->data, outer, n, inner, y->param[1].i != 0);
        break;
    case AD_F64:
        f64(x->data, y->data, outer, n, inner, y->param[1].i != 0);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* ---- cumsum: running sums ----------------------------------------------------------------- */
/* The reverse scan is the adjoint of the forward one, so each is the other's backward. */
// dx = cumsum(dy) from the other end
ad_status ad__cumsum_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__cumsum_forward(ad_tensor *y)
{
    scan_forward(y, cumsum_scan_f32, cumsum_scan_f64);
}

void ad__cumsum_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = scan_along(y, AD_OP_cumsum, gy, !y->param[1].i);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__cumsum_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_cumsum(ad_tensor *x, int axis)
{
    return scan(AD_OP_cumsum, x, axis, false);
}

/* ---- cumprod: running products ------------------------------------------------------------ */
/*
 * dx_k = sum_{j >= k} dy_j prod_{i <= j, i != k} x_i, written with ops so that it is
 * exact at zeros and to every order. With constant masks Z = [x == 0] and, for each
 * run along the axis, m_l = its zero number l (0 for the first):
 *     dx = where(Z, 0, rcumsum(dy y) / where(Z, 1, x))           (x_k != 0)
 *     dx = rcumsum(dy cumprod(where(m_l, 1, x)))   at each zero   (x_z made 1)
 * where rcumsum is cumsum from the other end. Each is an identity in x near the
 * point (x_k stays nonzero there; the second does not depend on x_z at all), so its
 * derivatives are those of the true gradient too: with one zero, the elements after
 * it get 0 but keep their slope in the zero, which a constant 0 would lose (PyTorch
 * switches to an O(n^2) rule for the same reason when grad mode is on). Zeros after a
 * run's first have a gradient of exactly 0 for finite x, so an unrecorded backward
 * (no create_graph) skips them; a recorded one takes one term per zero.
 */
ad_status ad__cumprod_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__cumprod_forward(ad_tensor *y)
{
    scan_forward(y, cumprod_scan_f32, cumprod_scan_f64);
}

/* A constant of x's shape: 1 at zero number `level` of each run along y's axis
 * (counted the way y scans), 0 elsewhere; NULL when no run has that many zeros or
 * after an error (which is then on the tape). */
static ad_tensor *nth_zero(const ad_tensor *y, int64_t level)
{
    const ad_tensor *x = y->src[0];
    int64_t outer, n, inner;
    scan_extent(x, (int)y->param[0].i, &outer, &n, &inner);
    ad_tensor *m = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!m)
        return NULL;
    bool any = false, reverse = y->param[1].i != 0;
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        any = nth_zero_f32(x->data, m->data, outer, n, inner, level, reverse);
        break;
    case AD_F64:
        any = nth_zero_f64(x->data, m->data, outer, n, inner, level, reverse);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    return any ? m : NULL;
}

/* The zeros' levels to visit: all when the rule is recorded, else the first. */
static bool more_zeros(const ad_tensor *y, int64_t level)
{
    return level == 0 || y->tape->grad_enabled;
}

void ad__cumprod_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    if (scans_one(y)) {
        gin[0] = gy;
        return;
    }
    ad_tensor *x = y->src[0];
    bool reverse = y->param[1].i != 0;
    ad_tensor *w = scan_along(y, AD_OP_cumsum, ad_mul(gy, y), !reverse);
    ad_tensor *m = nth_zero(y, 0);
    if (!m) {
        gin[0] = ad_div(w, x);
        return;
    }
    ad_tensor *zeros = zero_mask(x), *one = ad__scalar_const(x, 1.0);
    ad_tensor *dx = ad_where(zeros, ad__scalar_const(x, 0.0), ad_div(w, ad_where(zeros, one, x)));
    /* m is the mask of zero number level - 1 */
    for (int64_t level = 1; m; level++) {
        ad_tensor *c = ad__reapply(y, 0, ad_where(m, one, x));
        dx = ad_where(m, scan_along(y, AD_OP_cumsum, ad_mul(gy, c), !reverse), dx);
        m = more_zeros(y, level) ? nth_zero(y, level) : NULL;
    }
    gin[0] = dx;
}

// dy_j = sum_{k <= j} dx_k prod_{i <= j, i != k} x_i, split as the backward:
// y cumsum(where(Z, 0, dx / where(Z, 1, x))) + the sum over zeros z of cumsum(dx at z) times
// cumprod(where(m_z, 1, x))
ad_tensor *ad__cumprod_jvp(ad_tensor *y, ad_tensor *const *t)
{
    if (scans_one(y))
        return t[0];
    ad_tensor *x = y->src[0];
    bool reverse = y->param[1].i != 0;
    ad_tensor *m = nth_zero(y, 0);
    if (!m)
        return ad_mul(y, scan_along(y, AD_OP_cumsum, ad_div(t[0], x), reverse));
    ad_tensor *zeros = zero_mask(x), *one = ad__scalar_const(x, 1.0);
    ad_tensor *zero = ad__scalar_const(x, 0.0);
    ad_tensor *ratio = ad_where(zeros, zero, ad_div(t[0], ad_where(zeros, one, x)));
    ad_tensor *dy = ad_mul(y, scan_along(y, AD_OP_cumsum, ratio, reverse));
    for (int64_t level = 1; m; level++) {
        ad_tensor *c = ad__reapply(y, 0, ad_where(m, one, x));
        ad_tensor *at_zero = scan_along(y, AD_OP_cumsum, ad_where(m, t[0], zero), reverse);
        dy = ad_add(dy, ad_mul(at_zero, c));
        m = more_zeros(y, level) ? nth_zero(y, level) : NULL;
    }
    return dy;
}

ad_tensor *ad_cumprod(ad_tensor *x, int axis)
{
    return scan(AD_OP_cumprod, x, axis, false);
}

/* ---- logcumsumexp: running log-sum-exp, stable for any logits ------------------------------ */
/*
 * dx_k = sum_{j >= k} dy_j exp(x_k - y_j), in the log domain as PyTorch does, dy split
 * by sign so that each half is a log-sum-exp of real logs:
 *     dx = exp(rlcse(log dy+ - y) + x) - exp(rlcse(log dy- - y) + x)
 * rlcse being logcumsumexp from the other end, log dy+ = log dy where dy > 0 and the
 * lowest finite number elsewhere (not -inf, whose derivatives would be NaN), and log
 * of 1 standing in for log 0 so that no -inf is made at dy = 0.
 */
ad_status ad__logcumsumexp_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__logcumsumexp_forward(ad_tensor *y)
{
    scan_forward(y, logcumsumexp_scan_f32, logcumsumexp_scan_f64);
}

/* The most negative finite number of a float dtype. */
static double lowest_finite(ad_dtype dtype)
{
    switch (dtype) {
    case AD_F32:
        return -FLT_MAX;
    case AD_F64:
        return -DBL_MAX;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    return -DBL_MAX;
}

/* sum_j w_j exp(a_j) over the js that the scan of y (in direction reverse) has
 * reached, times exp(b): exp(lcse(log w+ + a) + b) - exp(lcse(log w- + a) + b). A
 * NaN in w is in both halves, so that it stays NaN. */
static ad_tensor *signed_scan(const ad_tensor *y, ad_tensor *w, ad_tensor *a, ad_tensor *b,
                              bool reverse)
{
    ad_tensor *mask[3];
    for (int k = 0; k < 3; k++)
        if (!(mask[k] = ad__new(w->tape, (ad_dtype)w->dtype, w->ndim, w->shape)))
            return NULL;
    switch ((ad_dtype)w->dtype) {
    case AD_F32:
        sign_masks_f32(w->data, mask[0]->data, mask[1]->data, mask[2]->data, w->numel);
        break;
    case AD_F64:
        sign_masks_f64(w->data, mask[0]->data, mask[1]->data, mask[2]->data, w->numel);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    ad_tensor *lowest = ad__scalar_const(w, lowest_finite((ad_dtype)w->dtype));
    ad_tensor *log_w = ad_log(ad_where(mask[2], ad_abs(w), ad__scalar_const(w, 1.0)));
    ad_tensor *half[2];
    for (int k = 0; k < 2; k++) {
        ad_tensor *logs = ad_add(ad_where(mask[k], log_w, lowest), a);
        half[k] = ad_exp(ad_add(scan_along(y, AD_OP_logcumsumexp, logs, reverse), b));
    }
    return ad_sub(half[0], half[1]);
}

void ad__logcumsumexp_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = scans_one(y) ? gy : signed_scan(y, gy, ad_neg(y), y->src[0], !y->param[1].i);
}

// dy_k = sum_{j <= k} dx_j exp(x_j - y_k), the same split scanned y's way
ad_tensor *ad__logcumsumexp_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return scans_one(y) ? t[0] : signed_scan(y, t[0], y->src[0], ad_neg(y), y->param[1].i != 0);
}

ad_tensor *ad_logcumsumexp(ad_tensor *x, int axis)
{
    return scan(AD_OP_logcumsumexp, x, axis, false);
}

/* ---- mean, var: compositions ------------------------------------------------------------ */

/* Number of elements reduced over by an axis list, or -1 after an error. */
static int64_t reduced_count(ad_tensor *x, const char *op, int n_axes, const int *axes)
{
    uint32_t mask;
    if (ad__axes_mask(x->tape, op, x, n_axes, axes, &mask) != AD_OK)
        return -1;
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d))
            n *= x->shape[d];
    return n;
}

// mean = sum / N; NaN for an empty tensor (0 * inf)
ad_tensor *ad_mean(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    if (!ad__input_tape(x, "mean"))
        return NULL;
    int64_t n = reduced_count(x, "mean", n_axes, axes);
    if (n < 0)
        return NULL;
    return ad_mul_scalar(ad_sum(x, n_axes, axes, keepdim), n ? 1.0 / (double)n : INFINITY);
}

ad_tensor *ad_mean_all(ad_tensor *x)
{
    return ad_mean(x, 0, NULL, false);
}

// var = sum((x - mean(x))^2) / (N - correction)
ad_tensor *ad_var(ad_tensor *x, int n_axes, const int *axes, bool keepdim, int correction)
{
    if (!ad__input_tape(x, "var"))
        return NULL;
    int64_t n = reduced_count(x, "var", n_axes, axes);
    if (n < 0)
        return NULL;
    ad_tensor *centred = ad_sub(x, ad_mean(x, n_axes, axes, true));
    ad_tensor *ss = ad_sum(ad_square(centred), n_axes, axes, keepdim);
    double dof = (double)n - correction;
    return ad_div(ss, ss ? ad__scalar_const(ss, dof > 0 ? dof : 0.0) : NULL);
}

// std = sqrt(v + m) - m with v the var and m = [v == 0]: sqrt(v) where v > 0, and at zero
// variance the value 0 with gradient 0 (PyTorch masks it so), not sqrt's 0 * inf = NaN
ad_tensor *ad_std(ad_tensor *x, int n_axes, const int *axes, bool keepdim, int correction)
{
    if (!ad__input_tape(x, "std") || reduced_count(x, "std", n_axes, axes) < 0)
        return NULL;
    ad_tensor *v = ad_var(x, n_axes, axes, keepdim, correction);
    ad_tensor *m = zero_mask(v);
    return ad_sub(ad_sqrt(ad_add(v, m)), m);
}

/* ---- min, amax, amin: compositions of max -------------------------------------------- */

// amax is max, PyTorch's name for the reduction that splits ties (max's own name is kept)
ad_tensor *ad_amax(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return ad_max(x, n_axes, axes, keepdim);
}

// min = -max(-x): dx = dy at the minima, k tied minima get dy / k each; NaN wins
ad_tensor *ad_min(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    /* Checked here so that an error names min, not max. */
    uint32_t mask;
    if (!ad__input_tape(x, "min") ||
        ad__axes_mask(x->tape, "min", x, n_axes, axes, &mask) != AD_OK ||
        check_nonempty(x->tape, "min", x, mask) != AD_OK)
        return NULL;
    return ad_neg(ad_max(ad_neg(x), n_axes, axes, keepdim));
}

ad_tensor *ad_amin(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return ad_min(x, n_axes, axes, keepdim);
}

/* ---- argmax, argmin, argsort: int64 indices along one axis, no gradient -----------------
 * param: [0] axis (normalised), [1] keepdim (arg_extreme) or descending (argsort), [2]
 * largest (arg_extreme). max/min along an axis with their indices, sort and topk are
 * compositions: the values are a gather of x at the indices, so the gradient goes to the
 * selected elements, as torch's. */
// no gradient: the result is an int64 constant
static ad_status arg_extreme_shape(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i;
    bool keepdim = y->param[1].i != 0;
    if (x->ndim && x->shape[axis] == 0) {
        char s[AD__SHAPE_BUF];
        return ad__fail(y->tape, AD_ERR_SHAPE, "%s: axis %d of shape %s is empty",
                        ad__ops[y->op].name, axis, AD__SHAPE(x, s));
    }
    y->dtype = AD_I64;
    if (x->ndim == 0)
        return ad__same_shape_rule(y);
    if (keepdim) {
        y->ndim = x->ndim;
        y->shape = ad__shape_replacing(y->tape, x, axis, 1);
        return y->shape ? AD_OK : y->tape->status;
    }
    int64_t shape[AD_MAX_DIMS] = {0}; /* zeroed: gcc cannot see that n entries are set */
    int n = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != axis)
            shape[n++] = x->shape[d];
    y->ndim = (uint8_t)n;
    y->shape = ad__copy_i64(y->tape, shape, (size_t)n);
    return y->shape || n == 0 ? AD_OK : y->tape->status;
}

static void arg_extreme_forward(ad_tensor *y, bool largest)
{
    const ad_tensor *x = y->src[0];
    int64_t outer = 1, inner = 1, n = 1;
    if (x->ndim) {
        ad__split_at(x, (int)y->param[0].i, &outer, &inner);
        n = x->shape[y->param[0].i];
    }
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        arg_extreme_f32(x->data, outer, n, inner, largest, y->data);
        break;
    case AD_F64:
        arg_extreme_f64(x->data, outer, n, inner, largest, y->data);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

static void no_gradient(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)y, (void)gy, (void)gin;
}

/* The axis of x for an op along one axis: a 0-d x takes 0 or -1, as torch. */
static int one_axis(ad_tape *tape, const char *op, const ad_tensor *x, int axis)
{
    if (x->ndim == 0 && (axis == 0 || axis == -1))
        return 0;
    return ad__check_axis(tape, op, x, axis);
}

static ad_tensor *arg_op(int op, ad_tensor *x, int axis, bool flag)
{
    ad_tape *tape = ad__input_tape(x, ad__ops[op].name);
    int a = tape ? one_axis(tape, ad__ops[op].name, x, axis) : -1;
    if (a < 0)
        return NULL;
    ad__param params[AD_NPARAM] = {{.i = a}, {.i = flag}};
    return ad__apply(op, 1, &x, params);
}

ad_status ad__argmax_shape(ad_tensor *y)
{
    return arg_extreme_shape(y);
}

void ad__argmax_forward(ad_tensor *y)
{
    arg_extreme_forward(y, true);
}

void ad__argmax_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_gradient(y, gy, gin);
}

ad_tensor *ad__argmax_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_argmax(ad_tensor *x, int axis, bool keepdim)
{
    return arg_op(AD_OP_argmax, x, axis, keepdim);
}

ad_status ad__argmin_shape(ad_tensor *y)
{
    return arg_extreme_shape(y);
}

void ad__argmin_forward(ad_tensor *y)
{
    arg_extreme_forward(y, false);
}

void ad__argmin_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_gradient(y, gy, gin);
}

ad_tensor *ad__argmin_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_argmin(ad_tensor *x, int axis, bool keepdim)
{
    return arg_op(AD_OP_argmin, x, axis, keepdim);
}

// no gradient: the result is an int64 constant
ad_status ad__argsort_shape(ad_tensor *y)
{
    y->dtype = AD_I64;
    return ad__same_shape_rule(y);
}

void ad__argsort_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int64_t outer = 1, inner = 1, n = 1;
    if (x->ndim) {
        ad__split_at(x, (int)y->param[0].i, &outer, &inner);
        n = x->shape[y->param[0].i];
    }
    int64_t *scratch = ad__alloc(y->tape, (size_t)n * sizeof *scratch);
    if (!scratch)
        return; /* the error is on the tape, which ad__apply checks */
    bool descending = y->param[1].i != 0;
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        argsort_f32(x->data, outer, n, inner, descending, y->data, scratch);
        break;
    case AD_F64:
        argsort_f64(x->data, outer, n, inner, descending, y->data, scratch);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__argsort_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    no_gradient(y, gy, gin);
}

ad_tensor *ad__argsort_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_argsort(ad_tensor *x, int axis, bool descending)
{
    return arg_op(AD_OP_argsort, x, axis, descending);
}

/* values = x gathered at index along axis (index has x's ndim); with drop, the axis
 * (of size 1 in index) is removed from values and index. */
static ad_tensor *gathered(ad_tensor *x, int axis, ad_tensor *index, bool drop, ad_tensor **indices)
{
    ad_tensor *values = x && x->ndim ? ad_gather_tensor(x, axis, index) : x;
    if (drop && x && x->ndim) {
        int ax[1] = {axis};
        values = ad_squeeze(values, 1, ax);
        index = ad_squeeze(index, 1, ax);
    }
    if (indices)
        *indices = values ? index : NULL;
    return values;
}

static ad_tensor *extreme_along(int op, ad_tensor *x, int axis, bool keepdim, ad_tensor **indices)
{
    if (indices)
        *indices = NULL;
    ad_tensor *index = arg_op(op, x, axis, true);
    if (!index)
        return NULL;
    return gathered(x, (int)index->param[0].i, index, !keepdim, indices);
}

ad_tensor *ad_max_along(ad_tensor *x, int axis, bool keepdim, ad_tensor **indices)
{
    return extreme_along(AD_OP_argmax, x, axis, keepdim, indices);
}

ad_tensor *ad_min_along(ad_tensor *x, int axis, bool keepdim, ad_tensor **indices)
{
    return extreme_along(AD_OP_argmin, x, axis, keepdim, indices);
}

ad_tensor *ad_sort(ad_tensor *x, int axis, bool descending, ad_tensor **indices)
{
    if (indices)
        *indices = NULL;
    ad_tensor *index = arg_op(AD_OP_argsort, x, axis, descending);
    if (!index)
        return NULL;
    return gathered(x, (int)index->param[0].i, index, false, indices);
}

ad_tensor *ad_topk(ad_tensor *x, int64_t k, int axis, bool largest, ad_tensor **indices)
{
    if (indices)
        *indices = NULL;
    ad_tensor *order = arg_op(AD_OP_argsort, x, axis, largest);
    if (!order)
        return NULL;
    int a = (int)order->param[0].i;
    int64_t n = x->ndim ? x->shape[a] : 1;
    if (k < 0 || k > n) {
        char s[AD__SHAPE_BUF];
        ad__fail(x->tape, AD_ERR_ARG, "topk: k = %lld out of range [0, %lld] for axis %d of %s",
                 (long long)k, (long long)n, axis, AD__SHAPE(x, s));
        return NULL;
    }
    ad_tensor *index = x->ndim ? ad_slice(order, a, 0, k, 1) : order;
    return gathered(x, a, index, false, indices);
}
