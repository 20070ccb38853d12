/* Elementwise ops of two inputs with NumPy/PyTorch broadcasting, and their
 * tensor-with-scalar forms. A broadcast operand's gradient is summed back to
 * its own shape in one place, ad__reduce_to. */
#include "ops.h"

#include <tgmath.h>

#define LN2 0.69314718055994530942 /* logaddexp2 */

#define KERNELS "ops/binary_kernels.h"
#include "../core/kernels.h"

/* ---- Broadcast iteration ----------------------------------------------------------- */

void ad__bcast_init(ad__bcast *b, const ad_tensor *y, int n, ad_tensor *const *src)
{
    memset(b, 0, sizeof *b);
    b->ndim = y->ndim;
    b->n = n;
    for (int d = 0; d < y->ndim; d++)
        b->shape[d] = y->shape[d];
    for (int k = 0; k < n; k++) {
        const ad_tensor *x = src[k];
        int lead = y->ndim - x->ndim;
        int64_t s = 1;
        for (int d = y->ndim - 1; d >= 0; d--) {
            int64_t dim = d < lead ? 1 : x->shape[d - lead];
            b->stride[k][d] = dim == 1 ? 0 : s;
            s *= dim;
        }
    }
    b->inner = y->ndim ? y->shape[y->ndim - 1] : 1;
    b->outer = b->inner ? y->numel / b->inner : 0;
    for (int k = 0; k < n; k++)
        b->inner_stride[k] = y->ndim ? b->stride[k][y->ndim - 1] : 0;
}

void ad__bcast_row(const ad__bcast *b, int64_t row, int64_t *offsets)
{
    for (int k = 0; k < b->n; k++)
        offsets[k] = 0;
    for (int d = b->ndim - 2; d >= 0; d--) {
        int64_t i = row % b->shape[d];
        row /= b->shape[d];
        for (int k = 0; k < b->n; k++)
            offsets[k] += i * b->stride[k][d];
    }
}

/* True when each operand is y's size or one element: y is then a flat run,
 * safe to split. */
static bool flat_operands(const ad_tensor *y)
{
    const ad_tensor *a = y->src[0], *b = y->src[1];
    return (a->numel == y->numel || a->numel == 1) && (b->numel == y->numel || b->numel == 1);
}

/* A binary kernel's signature (binary_kernels.h): y = f(a, b) over n
 * elements, a and b stepping by sa and sb (1, or 0 to repeat one element). */
typedef void binary_f32(int64_t n, const float *restrict a, int64_t sa, const float *restrict b,
                        int64_t sb, float *restrict y);
typedef void binary_f64(int64_t n, const double *restrict a, int64_t sa, const double *restrict b,
                        int64_t sb, double *restrict y);

/* A binary op's node, the buffer of its shape and dtype that the kernels fill
 * (y's data in the forward, a constant in a backward rule), and the kernels,
 * one per dtype. */
typedef struct binary_job {
    const ad_tensor *y;
    void *out;
    binary_f32 *f32;
    binary_f64 *f64;
} binary_job;

/* out[yo, yo + n) = f(a from ao by sa, b from bo by sb), a and b being y's
 * operands: the one dtype dispatch of the binary kernels, one call per run. */
static void binary_run(const binary_job *job, int64_t n, int64_t ao, int64_t sa, int64_t bo,
                       int64_t sb, int64_t yo)
{
    const ad_tensor *y = job->y;
    const ad_tensor *a = y->src[0], *b = y->src[1];
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        job->f32(n, (const float *)a->data + ao, sa, (const float *)b->data + bo, sb,
                 (float *)job->out + yo);
        return;
    case AD_F64:
        job->f64(n, (const double *)a->data + ao, sa, (const double *)b->data + bo, sb,
                 (double *)job->out + yo);
        return;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* [begin, end) of y when its operands are flat: an operand of y's size
 * steps with y, one of a single element repeats it. */
static void binary_range(void *ctx, int64_t begin, int64_t end)
{
    const binary_job *job = ctx;
    const ad_tensor *y = job->y;
    int64_t sa = y->src[0]->numel == y->numel, sb = y->src[1]->numel == y->numel;
    binary_run(job, end - begin, begin * sa, sa, begin * sb, sb, begin);
}

/* out = f(a, b) over y's broadcast, a and b being y's operands: flat cases in
 * parts on the thread pool when y is large, general broadcasting row by row
 * over the iterator. */
static void binary_fill(const ad_tensor *y, void *out, int64_t grain, binary_f32 *f32,
                        binary_f64 *f64)
{
    binary_job job = {y, out, f32, f64};
    if (flat_operands(y)) {
        ad__parallel_for(y->numel, grain, binary_range, &job);
        return;
    }
    ad__bcast bc;
    ad__bcast_init(&bc, y, 2, y->src);
    int64_t off[3];
    for (int64_t r = 0; r < bc.outer; r++) {
        ad__bcast_row(&bc, r, off);
        binary_run(&job, bc.inner, off[0], bc.inner_stride[0], off[1], bc.inner_stride[1],
                   r * bc.inner);
    }
}

/* The forward of a binary op. */
static void binary_forward(ad_tensor *y, int64_t grain, binary_f32 *f32, binary_f64 *f64)
{
    binary_fill(y, y->data, grain, f32, f64);
}

static ad_tensor *binary(int op, ad_tensor *a, ad_tensor *b)
{
    ad_tensor *src[2] = {a, b};
    return ad__apply(op, 2, src, NULL);
}

/* A constant (never recorded) of the broadcast shape of a and b, with value
 * f(a, b) at each element. Used for masks in backward rules. */
static ad_tensor *mask_of(ad_tensor *y, double (*f)(double, double))
{
    ad_tensor *m = ad__new(y->tape, (ad_dtype)y->dtype, y->ndim, y->shape);
    if (!m)
        return NULL;
    ad__bcast bc;
    ad__bcast_init(&bc, y, 2, y->src);
    int64_t off[3];
    for (int64_t r = 0; r < bc.outer; r++) {
        ad__bcast_row(&bc, r, off);
        for (int64_t i = 0; i < bc.inner; i++)
            ad__set(m, r * bc.inner + i,
                    f(ad__get(y->src[0], off[0] + i * bc.inner_stride[0]),
                      ad__get(y->src[1], off[1] + i * bc.inner_stride[1])));
    }
    return m;
}

/* A constant (never recorded) of y's shape and dtype, f(a, b) of y's operands
 * computed by a binary kernel in the dtype, as the forward computes: for the
 * piecewise-constant factors of backward rules that must round as the
 * forward's arithmetic does (remainder's floor of a / b). NULL on error. */
static ad_tensor *typed_const(ad_tensor *y, binary_f32 *f32, binary_f64 *f64)
{
    ad_tensor *m = ad__new(y->tape, (ad_dtype)y->dtype, y->ndim, y->shape);
    if (m)
        binary_fill(y, m->data, AD__GRAIN_COSTLY, f32, f64);
    return m;
}

/* ---- add ---------------------------------------------------------------------------- */
// da = reduce_to(a, dy)      db = reduce_to(b, dy)
ad_status ad__add_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__add_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_CHEAP, add_f32, add_f64);
}

void ad__add_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    if (y->src[0]->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(gy, y->src[0]);
    if (y->src[1]->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(gy, y->src[1]);
}

// dy = da + db (broadcast by the caller)
ad_tensor *ad__add_jvp(ad_tensor *y, ad_tensor *const *t)
{
    (void)y;
    return ad__add_tangents(t[0], t[1]);
}

ad_tensor *ad_add(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_add, a, b);
}

/* ---- sub ---------------------------------------------------------------------------- */
// da = reduce_to(a, dy)      db = reduce_to(b, -dy)
ad_status ad__sub_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__sub_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_CHEAP, sub_f32, sub_f64);
}

void ad__sub_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    if (y->src[0]->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(gy, y->src[0]);
    if (y->src[1]->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_neg(gy), y->src[1]);
}

// dy = da - db
ad_tensor *ad__sub_jvp(ad_tensor *y, ad_tensor *const *t)
{
    (void)y;
    return !t[1] ? t[0] : t[0] ? ad_sub(t[0], t[1]) : ad_neg(t[1]);
}

ad_tensor *ad_sub(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_sub, a, b);
}

/* ---- mul ---------------------------------------------------------------------------- */
// da = reduce_to(a, dy * b)      db = reduce_to(b, dy * a)
ad_status ad__mul_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__mul_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_CHEAP, mul_f32, mul_f64);
}

void ad__mul_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    if (a->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(ad_mul(gy, b), a);
    if (b->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_mul(gy, a), b);
}

// dy = da b + a db
ad_tensor *ad__mul_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__add_tangents(t[0] ? ad_mul(t[0], y->src[1]) : NULL,
                            t[1] ? ad_mul(y->src[0], t[1]) : NULL);
}

ad_tensor *ad_mul(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_mul, a, b);
}

/* ---- div ---------------------------------------------------------------------------- */
// da = reduce_to(a, dy / b)      db = reduce_to(b, -dy a / b^2)
ad_status ad__div_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__div_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_CHEAP, div_f32, div_f64);
}

void ad__div_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    if (a->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(ad_div(gy, b), a);
    /* Written with a and b, not y, so the rule stays right when recorded. */
    if (b->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_neg(ad_div(ad_mul(gy, a), ad_square(b))), b);
}

// dy = da / b - db a / b^2
ad_tensor *ad__div_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    return ad__add_tangents(t[0] ? ad_div(t[0], b) : NULL,
                            t[1] ? ad_neg(ad_div(ad_mul(t[1], a), ad_square(b))) : NULL);
}

ad_tensor *ad_div(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_div, a, b);
}

/* ---- pow ---------------------------------------------------------------------------- */
// da = reduce_to(a, dy b a^(b-1))    db = reduce_to(b, dy a^b log a), 0 where a = 0, b >= 0
ad_status ad__pow_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__pow_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_COSTLY, pow_f32, pow_f64);
}

/* 0 where PyTorch defines d/db as 0 (a = 0 and b >= 0), else 1. */
static double pow_keep(double a, double b)
{
    return a == 0 && b >= 0 ? 0.0 : 1.0;
}

/* 1 where the exponent is nonzero, else 0: PyTorch defines d/da as 0 there. */
static double exponent_nonzero(double a, double b)
{
    (void)a;
    return b != 0 ? 1.0 : 0.0;
}

void ad__pow_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    if (a->flags & AD_TF_RECORDED) {
        /* b a^(b-1), with the exponent moved to 1 where b = 0 so that
         * 0 * 0^-1 cannot make a NaN: there the product is b * a^0 = 0. */
        ad_tensor *nz = mask_of(y, exponent_nonzero);
        ad_tensor *b1 = ad_add(ad_mul(b, nz), ad_rsub_scalar(nz, 1.0));
        /* times nz as well, so that the term, not only its exponent, is
         * masked: d/db of it is then 0 at b = 0, as PyTorch's masked_fill. */
        ad_tensor *da = ad_mul(nz, ad_mul(b, ad_pow(a, ad_sub_scalar(b1, 1.0))));
        gin[0] = ad__reduce_to(ad_mul(gy, da), a);
    }
    if (b->flags & AD_TF_RECORDED) {
        /* log of a where kept, log 1 = 0 where not: a select that keeps
         * 0 * log 0 out of the gradient and stays differentiable. */
        ad_tensor *keep = mask_of(y, pow_keep);
        ad_tensor *safe_a = ad_add(ad_mul(a, keep), ad_rsub_scalar(keep, 1.0));
        gin[1] = ad__reduce_to(ad_mul(gy, ad_mul(ad_pow(a, b), ad_log(safe_a))), b);
    }
}

// dy = da b a^(b-1) + db y log a, with the backward's masks at b = 0 and a = 0
ad_tensor *ad__pow_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *a = y->src[0], *b = y->src[1], *da = NULL, *db = NULL;
    if (t[0]) {
        ad_tensor *nz = mask_of(y, exponent_nonzero);
        ad_tensor *b1 = ad_add(ad_mul(b, nz), ad_rsub_scalar(nz, 1.0));
        da = ad_mul(t[0], ad_mul(nz, ad_mul(b, ad_pow(a, ad_sub_scalar(b1, 1.0)))));
    }
    if (t[1]) {
        ad_tensor *keep = mask_of(y, pow_keep);
        ad_tensor *safe_a = ad_add(ad_mul(a, keep), ad_rsub_scalar(keep, 1.0));
        db = ad_mul(t[1], ad_mul(ad_pow(a, b), ad_log(safe_a)));
    }
    return ad__add_tangents(da, db);
}

ad_tensor *ad_pow(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_pow, a, b);
}

/* ---- maximum, minimum --------------------------------------------------------------------
 * The gradient goes to the larger (smaller) operand; a tie gives each half, as
 * PyTorch. NaN propagates through the forward value. */
// maximum: da = reduce_to(a, dy [not a < b] - dy/2 [a = b]), db likewise (dy to both at NaN)
ad_status ad__maximum_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__maximum_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_CHEAP, maximum_f32, maximum_f64);
}

/* a's share of the gradient: 1 unless b wins, 1/2 at a tie. With a NaN
 * neither wins, so both operands get the whole gradient (PyTorch's masks
 * zero only where the other operand is strictly larger). */
static double share_if_greater(double a, double b)
{
    return a < b ? 0.0 : a == b ? 0.5 : 1.0;
}

static double share_if_less(double a, double b)
{
    return a > b ? 0.0 : a == b ? 0.5 : 1.0;
}

/* b's shares, from the same rules with the operands swapped. */
static double other_share_if_greater(double a, double b)
{
    return share_if_greater(b, a);
}

static double other_share_if_less(double a, double b)
{
    return share_if_less(b, a);
}

static void select_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin,
                            double (*share_a)(double, double), double (*share_b)(double, double))
{
    if (y->src[0]->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(ad_mul(gy, mask_of(y, share_a)), y->src[0]);
    if (y->src[1]->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_mul(gy, mask_of(y, share_b)), y->src[1]);
}

static ad_tensor *select_jvp(ad_tensor *y, ad_tensor *const *t, double (*share_a)(double, double),
                             double (*share_b)(double, double))
{
    return ad__add_tangents(t[0] ? ad_mul(t[0], mask_of(y, share_a)) : NULL,
                            t[1] ? ad_mul(t[1], mask_of(y, share_b)) : NULL);
}

void ad__maximum_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    select_backward(y, gy, gin, share_if_greater, other_share_if_greater);
}

// dy = da share_a + db share_b (the backward's shares)
ad_tensor *ad__maximum_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return select_jvp(y, t, share_if_greater, other_share_if_greater);
}

ad_tensor *ad_maximum(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_maximum, a, b);
}

// minimum: da = reduce_to(a, dy [a < b] + dy/2 [a = b]), db likewise
ad_status ad__minimum_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__minimum_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_CHEAP, minimum_f32, minimum_f64);
}

void ad__minimum_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    select_backward(y, gy, gin, share_if_less, other_share_if_less);
}

ad_tensor *ad__minimum_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return select_jvp(y, t, share_if_less, other_share_if_less);
}

ad_tensor *ad_minimum(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_minimum, a, b);
}

/* ---- Tensor-with-scalar forms: the scalar becomes a 0-d constant of x's dtype. ---- */

/* NULL for a persistent x, whose op has no tape to record on: then the
 * thread's error names the op (the binary op would see the NULL constant as
 * an earlier error and record nothing). */
static ad_tensor *scalar_for(ad_tensor *x, double s, const char *op)
{
    if (x && !x->tape)
        ad__no_tape(op, 1, &x);
    return x && x->tape ? ad__scalar_const(x, s) : NULL;
}

ad_tensor *ad_add_scalar(ad_tensor *x, double s)
{
    return ad_add(x, scalar_for(x, s, "add_scalar"));
}

ad_tensor *ad_sub_scalar(ad_tensor *x, double s)
{
    return ad_sub(x, scalar_for(x, s, "sub_scalar"));
}

ad_tensor *ad_rsub_scalar(ad_tensor *x, double s)
{
    return ad_sub(scalar_for(x, s, "rsub_scalar"), x);
}

ad_tensor *ad_mul_scalar(ad_tensor *x, double s)
{
    return ad_mul(x, scalar_for(x, s, "mul_scalar"));
}

ad_tensor *ad_div_scalar(ad_tensor *x, double s)
{
    return ad_div(x, scalar_for(x, s, "div_scalar"));
}

ad_tensor *ad_rdiv_scalar(ad_tensor *x, double s)
{
    return ad_div(scalar_for(x, s, "rdiv_scalar"), x);
}

ad_tensor *ad_rpow_scalar(ad_tensor *x, double s)
{
    return ad_pow(scalar_for(x, s, "rpow_scalar"), x);
}

ad_tensor *ad_maximum_scalar(ad_tensor *x, double s)
{
    return ad_maximum(x, scalar_for(x, s, "maximum_scalar"));
}

ad_tensor *ad_minimum_scalar(ad_tensor *x, double s)
{
    return ad_minimum(x, scalar_for(x, s, "minimum_scalar"));
}

ad_tensor *ad_remainder_scalar(ad_tensor *x, double s)
{
    return ad_remainder(x, scalar_for(x, s, "remainder_scalar"));
}

ad_tensor *ad_fmod_scalar(ad_tensor *x, double s)
{
    return ad_fmod(x, scalar_for(x, s, "fmod_scalar"));
}

/* ---- where: cond ? a : b, all three broadcast -----------------------------------------
 * src: [0] cond (bool, or a's dtype and true where nonzero; never
 * differentiated), [1] a, [2] b (one float dtype, the result's). */
// da = reduce_to(a, where(cond, dy, 0))    db = reduce_to(b, where(cond, 0, dy))
// The untaken branch gets 0 * (its own local derivative) further down the graph:
// a NaN or inf made there still poisons the gradient through 0 * inf, as PyTorch.
ad_status ad__where_shape(ad_tensor *y)
{
    const ad_tensor *c = y->src[0], *a = y->src[1], *b = y->src[2];
    if (!ad__same_dtype(y->tape, "where", a, b))
        return AD_ERR_DTYPE;
    if (!ad__is_float(a->dtype) || (c->dtype != AD_BOOL && c->dtype != a->dtype)) {
        char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
        return ad__fail(y->tape, AD_ERR_DTYPE,
                        "where: cond %s %s and a %s %s: a and b are float32 or float64, and "
                        "cond is bool or their dtype",
                        ad_dtype_name((ad_dtype)c->dtype), AD__SHAPE(c, s0),
                        ad_dtype_name((ad_dtype)a->dtype), AD__SHAPE(a, s1));
    }
    y->dtype = a->dtype;
    int64_t ca[AD_MAX_DIMS], shape[AD_MAX_DIMS];
    int n = ad__broadcast_shape(c->ndim, c->shape, a->ndim, a->shape, ca);
    if (n >= 0)
        n = ad__broadcast_shape(n, ca, b->ndim, b->shape, shape);
    if (n < 0 || ad__numel(n, shape) < 0) {
        char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF], s2[AD__SHAPE_BUF];
        return ad__fail(y->tape, AD_ERR_SHAPE, "where: shapes %s (cond), %s (a) and %s (b) %s",
                        AD__SHAPE(c, s0), AD__SHAPE(a, s1), AD__SHAPE(b, s2),
                        n < 0 ? "do not broadcast" : "broadcast to too many elements");
    }
    y->ndim = (uint8_t)n;
    y->shape = ad__copy_i64(y->tape, shape, (size_t)n);
    return y->shape ? AD_OK : y->tape->status;
}

/* One row of where's broadcast: the dtype dispatch of where. */
static void where_row(ad_tensor *y, const ad__bcast *bc, const int64_t *off, int64_t r)
{
    const ad_tensor *c = y->src[0], *a = y->src[1], *b = y->src[2];
    const int64_t *s = bc->inner_stride, n = bc->inner;
    const bool *cb = (const bool *)c->data + off[0];
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        if (c->dtype == AD_BOOL)
            where_bool_f32(n, cb, s[0], (const float *)a->data + off[1], s[1],
                           (const float *)b->data + off[2], s[2], (float *)y->data + r * n);
        else
            where_f32(n, (const float *)c->data + off[0], s[0], (const float *)a->data + off[1],
                      s[1], (const float *)b->data + off[2], s[2], (float *)y->data + r * n);
        return;
    case AD_F64:
        if (c->dtype == AD_BOOL)
            where_bool_f64(n, cb, s[0], (const double *)a->data + off[1], s[1],
                           (const double *)b->data + off[2], s[2], (double *)y->data + r * n);
        else
            where_f64(n, (const double *)c->data + off[0], s[0], (const double *)a->data + off[1],
                      s[1], (const double *)b->data + off[2], s[2], (double *)y->data + r * n);
        return;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__where_forward(ad_tensor *y)
{
    ad__bcast bc;
    int64_t off[3];
    ad__bcast_init(&bc, y, 3, y->src);
    for (int64_t r = 0; r < bc.outer; r++) {
        ad__bcast_row(&bc, r, off);
        where_row(y, &bc, off, r);
    }
}

void ad__where_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *cond = y->src[0], *a = y->src[1], *b = y->src[2];
    /* A 0-d zero, not zeros of y's shape: broadcasting supplies the rest, and
     * where() keeps the rule differentiable in gy for second order. */
    ad_tensor *zero = ad__scalar_const(gy, 0.0);
    if (!zero)
        return;
    if (a->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_where(cond, gy, zero), a);
    if (b->flags & AD_TF_RECORDED)
        gin[2] = ad__reduce_to(ad_where(cond, zero, gy), b);
}

// dy = where(cond, da, db), zero for a missing tangent
ad_tensor *ad__where_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *zero = ad__scalar_const(y, 0.0);
    ad_tensor *src[3] = {y->src[0], t[1] ? t[1] : zero, t[2] ? t[2] : zero};
    return zero ? ad__apply(AD_OP_where, 3, src, y->param) : NULL;
}

ad_tensor *ad_where(ad_tensor *cond, ad_tensor *a, ad_tensor *b)
{
    ad_tensor *src[3] = {cond, a, b};
    return ad__apply(AD_OP_where, 3, src, NULL);
}

/* ---- atan2: the angle of the point (b, a) ---------------------------------------------- */
// da = reduce_to(a, dy b / (a^2 + b^2))    db = reduce_to(b, -dy a / (a^2 + b^2)); NaN at (0, 0)
ad_status ad__atan2_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__atan2_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_COSTLY, atan2_f32, atan2_f64);
}

void ad__atan2_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    /* PyTorch's form: the reciprocal of a^2 + b^2 times each operand. */
    ad_tensor *r = ad_reciprocal(ad_add(ad_square(a), ad_square(b)));
    if (a->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(ad_mul(ad_mul(gy, b), r), a);
    if (b->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_mul(ad_mul(gy, ad_neg(a)), r), b);
}

// dy = (da b - db a) / (a^2 + b^2)
ad_tensor *ad__atan2_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    ad_tensor *r = ad_reciprocal(ad_add(ad_square(a), ad_square(b)));
    return ad__add_tangents(t[0] ? ad_mul(ad_mul(t[0], b), r) : NULL,
                            t[1] ? ad_mul(ad_mul(t[1], ad_neg(a)), r) : NULL);
}

ad_tensor *ad_atan2(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_atan2, a, b);
}

/* ---- hypot: sqrt(a^2 + b^2) without overflow -------------------------------------------- */
// da = reduce_to(a, dy a / y)    db = reduce_to(b, dy b / y); NaN at (0, 0), as PyTorch
ad_status ad__hypot_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__hypot_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_COSTLY, hypot_f32, hypot_f64);
}

void ad__hypot_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    if (a->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(ad_div(ad_mul(gy, a), y), a);
    if (b->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_div(ad_mul(gy, b), y), b);
}

// dy = (da a + db b) / y
ad_tensor *ad__hypot_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    return ad__add_tangents(t[0] ? ad_div(ad_mul(t[0], a), y) : NULL,
                            t[1] ? ad_div(ad_mul(t[1], b), y) : NULL);
}

ad_tensor *ad_hypot(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_hypot, a, b);
}

/* ---- xlogy: a ln b, 0 where a = 0 (unless b is NaN) --------------------------------------
 * PyTorch 1.13's gradients: d/da = ln b, masked to 0 where a = 0 and b <= 0
 * (so xlogy(0, 0) has d/da = 0); d/db = a / b (NaN at a = b = 0). */
// da = reduce_to(a, dy ln b [not (a = 0 and b <= 0)])    db = reduce_to(b, dy a / b)
ad_status ad__xlogy_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__xlogy_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_COSTLY, xlogy_f32, xlogy_f64);
}

/* 0 where PyTorch masks d/da (a = 0 and b <= 0), else 1. */
static double xlogy_keep(double a, double b)
{
    return a == 0 && b <= 0 ? 0.0 : 1.0;
}

/* ln b where kept, ln 1 = 0 where masked: a select, so that the log of a
 * masked b (0, negative, -inf) never enters the gradient; NULL on error. */
static ad_tensor *xlogy_log(ad_tensor *y)
{
    ad_tensor *keep = mask_of(y, xlogy_keep);
    ad_tensor *one = ad__scalar_const(y, 1.0);
    if (!keep || !one)
        return NULL;
    return ad_log(ad_where(keep, y->src[1], one));
}

void ad__xlogy_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    if (a->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(ad_mul(gy, xlogy_log(y)), a);
    if (b->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_div(ad_mul(gy, a), b), b);
}

// dy = da ln b (masked as the backward) + db a / b
ad_tensor *ad__xlogy_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    return ad__add_tangents(t[0] ? ad_mul(t[0], xlogy_log(y)) : NULL,
                            t[1] ? ad_div(ad_mul(t[1], a), b) : NULL);
}

ad_tensor *ad_xlogy(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_xlogy, a, b);
}

/* The rules of y = a - b q(a, b), q a rounded quotient held constant (floor
 * for remainder, trunc for fmod), computed by the kernels q_f32/q_f64 in y's
 * dtype: da = reduce_to(a, dy), db = reduce_to(b, -dy q). */
static void quotient_rest_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin, binary_f32 *q_f32,
                                   binary_f64 *q_f64)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    if (a->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(gy, a);
    if (b->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_mul(ad_neg(gy), typed_const(y, q_f32, q_f64)), b);
}

// dy = da - db q
static ad_tensor *quotient_rest_jvp(ad_tensor *y, ad_tensor *const *t, binary_f32 *q_f32,
                                    binary_f64 *q_f64)
{
    return ad__add_tangents(t[0], t[1] ? ad_mul(ad_neg(t[1]), typed_const(y, q_f32, q_f64)) : NULL);
}

/* ---- remainder: a - b floor(a / b), Python's %: the sign of b ----------------------------
 * PyTorch 1.13's: fmod(a, b), plus b when that is nonzero and its sign differs from
 * b's; so NaN where b = 0 and a stays a for an infinite b of a's sign (b for the
 * other sign). The gradient in b holds the floor quotient, PyTorch's
 * div(a, b, rounding_mode='floor'): a / b where b = 0 (+-inf, or NaN at a = 0). */
// da = reduce_to(a, dy)    db = reduce_to(b, -dy floor_divide(a, b))
ad_status ad__remainder_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__remainder_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_COSTLY, remainder_f32, remainder_f64);
}

void ad__remainder_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    quotient_rest_backward(y, gy, gin, floor_divide_f32, floor_divide_f64);
}

// dy = da - db floor_divide(a, b)
ad_tensor *ad__remainder_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return quotient_rest_jvp(y, t, floor_divide_f32, floor_divide_f64);
}

ad_tensor *ad_remainder(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_remainder, a, b);
}

/* ---- fmod: a - b trunc(a / b), C's fmod: the sign of a ------------------------------------
 * Exact (no rounding); NaN where b = 0 or a is infinite, a where b is infinite.
 * The gradient in b holds trunc(a / b) of the rounded quotient, PyTorch's
 * div(a, b, rounding_mode='trunc'). */
// da = reduce_to(a, dy)    db = reduce_to(b, -dy trunc(a / b))
ad_status ad__fmod_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__fmod_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_COSTLY, fmod_f32, fmod_f64);
}

void ad__fmod_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    quotient_rest_backward(y, gy, gin, trunc_divide_f32, trunc_divide_f64);
}

// dy = da - db trunc(a / b)
ad_tensor *ad__fmod_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return quotient_rest_jvp(y, t, trunc_divide_f32, trunc_divide_f64);
}

ad_tensor *ad_fmod(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_fmod, a, b);
}

/* ---- logaddexp: ln(e^a + e^b), stable ---------------------------------------------------
 * max(a, b) + log1p(e^-|a - b|); a where a = b = +-inf (both -inf gives -inf,
 * both +inf gives +inf), NaN where either is NaN. The gradients are the
 * softmax weights of the pair, e^(a - y) and e^(b - y), computed as PyTorch's
 * 1 / (1 + e^(b - a)), that is sigmoid(a - b): 1/2 each at a tie, 1 and 0 for
 * an infinite gap, NaN where a = b = +-inf (PyTorch). */
// da = reduce_to(a, dy sigmoid(a - b))    db = reduce_to(b, dy sigmoid(b - a))
ad_status ad__logaddexp_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__logaddexp_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_COSTLY, logaddexp_f32, logaddexp_f64);
}

/* The weights of a (first) and b of logaddexp, or of logaddexp2 with scale ln 2:
 * sigmoid(scale (a - b)) and sigmoid(scale (b - a)); stable for any gap and
 * differentiable again through sigmoid's own rule. */
static ad_tensor *pair_weight(ad_tensor *y, int k, double scale)
{
    ad_tensor *a = y->src[k], *b = y->src[1 - k];
    ad_tensor *d = ad_sub(a, b);
    return ad_sigmoid(scale == 1 ? d : ad_mul_scalar(d, scale));
}

static void pair_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin, double scale)
{
    for (int k = 0; k < 2; k++)
        if (y->src[k]->flags & AD_TF_RECORDED)
            gin[k] = ad__reduce_to(ad_mul(gy, pair_weight(y, k, scale)), y->src[k]);
}

static ad_tensor *pair_jvp(ad_tensor *y, ad_tensor *const *t, double scale)
{
    return ad__add_tangents(t[0] ? ad_mul(t[0], pair_weight(y, 0, scale)) : NULL,
                            t[1] ? ad_mul(t[1], pair_weight(y, 1, scale)) : NULL);
}

void ad__logaddexp_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    pair_backward(y, gy, gin, 1.0);
}

// dy = da sigmoid(a - b) + db sigmoid(b - a)
ad_tensor *ad__logaddexp_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return pair_jvp(y, t, 1.0);
}

ad_tensor *ad_logaddexp(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_logaddexp, a, b);
}

/* ---- logaddexp2: log2(2^a + 2^b), stable ------------------------------------------------
 * max(a, b) + log2(1 + 2^-|a - b|), with logaddexp's conventions at infinities
 * and NaN. The weights are 2^(a - y) = 1 / (1 + 2^(b - a)) = sigmoid((a - b) ln 2). */
// da = reduce_to(a, dy sigmoid((a - b) ln 2))    db = reduce_to(b, dy sigmoid((b - a) ln 2))
ad_status ad__logaddexp2_shape(ad_tensor *y)
{
    return ad__broadcast_rule(y);
}

void ad__logaddexp2_forward(ad_tensor *y)
{
    binary_forward(y, AD__GRAIN_COSTLY, logaddexp2_f32, logaddexp2_f64);
}

void ad__logaddexp2_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    pair_backward(y, gy, gin, LN2);
}

// dy = da sigmoid((a - b) ln 2) + db sigmoid((b - a) ln 2)
ad_tensor *ad__logaddexp2_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return pair_jvp(y, t, LN2);
}

ad_tensor *ad_logaddexp2(ad_tensor *a, ad_tensor *b)
{
    return binary(AD_OP_logaddexp2, a, b);
}
