/* Elementwise ops of one input. Each op: derivative comment, shape rule,
 * forward, backward, constructor. The numeric loops are in unary_kernels.h,
 * written once over T and instantiated per dtype; the ops dispatch on dtype
 * only through unary_range and fused_grad below. */
#include "ops.h"

#include <string.h>
#include "fast_float.h"

#include <tgmath.h>

/* gelu's constants, shared by its kernel and its backward rule. */
#define GELU_C 0.7978845608028654 /* sqrt(2 / pi) */
#define GELU_A 0.044715

/* The constants of the ops added for issue 11, shared by kernels and rules. */
#define SQRT1_2 0.70710678118654752440          /* 1 / sqrt(2): gelu_erf */
#define INV_SQRT_2PI 0.39894228040143267794     /* 1 / sqrt(2 pi): gelu_erf's density */
#define TWO_OVER_SQRT_PI 1.12837916709551257390 /* erf' (0) */
#define LN2 0.69314718055994530942
#define LN10 2.30258509299404568402
#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946

/* The constants of erfinv, sinc and selu's negative side. */
#define PI 3.14159265358979323846
#define SQRT_PI_2 0.88622692545275801365       /* sqrt(pi) / 2 = 1 / erf'(0) */
#define SINC_CURVATURE -3.28986813369645287294 /* -pi^2 / 3, sinc''(0) */
#define SELU_NEGATIVE (SELU_ALPHA * SELU_SCALE)

#define KERNELS "ops/unary_kernels.h"
#include "../core/kernels.h"

/* The kernels' signatures (unary_kernels.h): a map y = f(x) with the op's
 * scalar parameter p, and a fused gradient dx = g(v, dy). */
typedef void unary_f32(int64_t n, const float *restrict x, float *restrict y, float p);
typedef void unary_f64(int64_t n, const double *restrict x, double *restrict y, double p);
typedef void grad_f32(int64_t n, const float *restrict v, const float *restrict dy,
                      float *restrict dx);
typedef void grad_f64(int64_t n, const double *restrict v, const double *restrict dy,
                      double *restrict dx);

/* A unary map: y = f(x) elementwise, by the kernel of y's dtype; p is the
 * op's scalar parameter (param[0].f), converted to the dtype. */
typedef struct unary_job {
    const ad_tensor *x;
    ad_tensor *y;
    double p;
    unary_f32 *f32;
    unary_f64 *f64;
} unary_job;

/* The map over [begin, end): the one dtype dispatch of the unary forwards,
 * one kernel call per range. */
static void unary_range(void *ctx, int64_t begin, int64_t end)
{
    const unary_job *job = ctx;
    switch ((ad_dtype)job->y->dtype) {
    case AD_F32:
        job->f32(end - begin, (const float *)job->x->data + begin, (float *)job->y->data + begin,
                 (float)job->p);
        return;
    case AD_F64:
        job->f64(end - begin, (const double *)job->x->data + begin, (double *)job->y->data + begin,
                 job->p);
        return;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* The forward of a unary op: in parts on the thread pool when y is large. */
static void unary_forward(ad_tensor *y, int64_t grain, unary_f32 *f32, unary_f64 *f64)
{
    unary_job job = {y->src[0], y, y->param[0].f, f32, f64};
    ad__parallel_for(y->numel, grain, unary_range, &job);
}

/* A constant (never recorded) of x's shape: a mask kernel applied to x, with
 * p as its parameter. Backward rules multiply by it. */
static ad_tensor *mask_of(ad_tensor *x, double p, unary_f32 *f32, unary_f64 *f64)
{
    ad_tensor *m = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!m)
        return NULL;
    unary_job job = {x, m, p, f32, f64};
    unary_range(&job, 0, x->numel);
    return m;
}

/*
 * Fused gradients. With recording off (ad_backward without create_graph) a
 * gradient is a constant, so a rule can run as one pass over its operand and
 * dy instead of a chain of ops, each a pass and a buffer. With create_graph
 * the composed rule runs, recorded, so that it can be differentiated again.
 * Both evaluate the same expression in the same order (and the build does
 * not contract to FMA: c11 mode), so they give the same bits; test_ops
 * checks it. fused_grad returns dx = kernel(v, gy), v being y's input or y
 * as the rule needs; NULL on error.
 */
static ad_tensor *fused_grad(ad_tensor *y, const ad_tensor *v, const ad_tensor *gy, grad_f32 *f32,
                             grad_f64 *f64)
{
    ad_tensor *g = ad__new(y->tape, (ad_dtype)y->dtype, y->ndim, y->shape);
    if (!g)
        return NULL;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        f32(y->numel, v->data, gy->data, g->data);
        break;
    case AD_F64:
        f64(y->numel, v->data, gy->data, g->data);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    return g;
}

/* True when backward runs unrecorded, so a fused gradient may be used. */
static bool fusable(const ad_tensor *y, const ad_tensor *gy)
{
    return !y->tape->grad_enabled && gy->numel == y->numel && gy->dtype == y->dtype;
}

static ad_tensor *unary(int op, ad_tensor *x, double p)
{
    ad__param params[AD_NPARAM] = {{.f = p}};
    return ad__apply(op, 1, &x, params);
}

/* ---- neg: y = -x ------------------------------------------------------------ */
// dx = -dy
ad_status ad__neg_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__neg_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, neg_f32, neg_f64);
}

void ad__neg_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)y;
    gin[0] = ad_neg(gy);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__neg_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_neg(ad_tensor *x)
{
    return unary(AD_OP_neg, x, 0);
}

/* ---- exp ---------------------------------------------------------------------- */
// dx = dy * y
ad_status ad__exp_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__exp_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, exp_f32, exp_f64);
}

void ad__exp_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, y);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__exp_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_exp(ad_tensor *x)
{
    return unary(AD_OP_exp, x, 0);
}

/* ---- log ---------------------------------------------------------------------- */
// dx = dy / x
ad_status ad__log_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__log_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, log_f32, log_f64);
}

void ad__log_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_div(gy, y->src[0]);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__log_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_log(ad_tensor *x)
{
    return unary(AD_OP_log, x, 0);
}

/* ---- log1p: log(1 + x), accurate for tiny x --------------------------------------- */
// dx = dy / (1 + x)
ad_status ad__log1p_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__log1p_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, log1p_f32, log1p_f64);
}

void ad__log1p_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_div(gy, ad_add_scalar(y->src[0], 1.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__log1p_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_log1p(ad_tensor *x)
{
    return unary(AD_OP_log1p, x, 0);
}

/* ---- expm1: e^x - 1, accurate for tiny x ------------------------------------------ */
// dx = dy (y + 1)
ad_status ad__expm1_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__expm1_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, expm1_f32, expm1_f64);
}

void ad__expm1_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_add_scalar(y, 1.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__expm1_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_expm1(ad_tensor *x)
{
    return unary(AD_OP_expm1, x, 0);
}

/* ---- sqrt ----------------------------------------------------------------------- */
// dx = dy / (2 y): +inf at x = 0, as PyTorch
ad_status ad__sqrt_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__sqrt_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, sqrt_f32, sqrt_f64);
}

void ad__sqrt_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_div(gy, ad_mul_scalar(y, 2.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__sqrt_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_sqrt(ad_tensor *x)
{
    return unary(AD_OP_sqrt, x, 0);
}

/* ---- square -------------------------------------------------------------------- */
// dx = 2 x dy
ad_status ad__square_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__square_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, square_f32, square_f64);
}

void ad__square_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_mul_scalar(y->src[0], 2.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__square_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_square(ad_tensor *x)
{
    return unary(AD_OP_square, x, 0);
}

/* ---- sin, cos ------------------------------------------------------------------ */
// sin: dx = dy cos x      cos: dx = -dy sin x
ad_status ad__sin_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__sin_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, sin_f32, sin_f64);
}

void ad__sin_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_cos(y->src[0]));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__sin_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_sin(ad_tensor *x)
{
    return unary(AD_OP_sin, x, 0);
}

ad_status ad__cos_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__cos_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, cos_f32, cos_f64);
}

void ad__cos_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_neg(ad_mul(gy, ad_sin(y->src[0])));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__cos_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_cos(ad_tensor *x)
{
    return unary(AD_OP_cos, x, 0);
}

/* ---- tanh ---------------------------------------------------------------------- */
// dx = dy (1 - y^2)
ad_status ad__tanh_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__tanh_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, tanh_f32, tanh_f64);
}

void ad__tanh_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = fusable(y, gy) ? fused_grad(y, y, gy, tanh_grad_f32, tanh_grad_f64)
                            : ad_mul(gy, ad_rsub_scalar(ad_square(y), 1.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__tanh_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_tanh(ad_tensor *x)
{
    return unary(AD_OP_tanh, x, 0);
}

/* ---- sigmoid: stable on both sides (never exp of a large positive number) ----- */
// dx = dy y (1 - y)
ad_status ad__sigmoid_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__sigmoid_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, sigmoid_f32, sigmoid_f64);
}

void ad__sigmoid_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = fusable(y, gy) ? fused_grad(y, y, gy, sigmoid_grad_f32, sigmoid_grad_f64)
                            : ad_mul(gy, ad_mul(y, ad_rsub_scalar(y, 1.0)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__sigmoid_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_sigmoid(ad_tensor *x)
{
    return unary(AD_OP_sigmoid, x, 0);
}

/* ---- relu ---------------------------------------------------------------------- */
// dx = dy [not x <= 0]: 0 at x = 0 (both signs of zero), dy at NaN; relu(-0) = -0 (PyTorch)
ad_status ad__relu_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__relu_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, relu_f32, relu_f64);
}

void ad__relu_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = fusable(y, gy) ? fused_grad(y, y->src[0], gy, relu_grad_f32, relu_grad_f64)
                            : ad_mul(gy, mask_of(y->src[0], 0.0, relu_mask_f32, relu_mask_f64));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__relu_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_relu(ad_tensor *x)
{
    return unary(AD_OP_relu, x, 0);
}

/* ---- leaky_relu ------------------------------------------------------------------ */
// dx = dy (x > 0 ? 1 : slope): slope at x = 0, as PyTorch
ad_status ad__leaky_relu_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__leaky_relu_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, leaky_relu_f32, leaky_relu_f64);
}

void ad__leaky_relu_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] =
        ad_mul(gy, mask_of(y->src[0], y->param[0].f, leaky_relu_mask_f32, leaky_relu_mask_f64));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__leaky_relu_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_leaky_relu(ad_tensor *x, double slope)
{
    return unary(AD_OP_leaky_relu, x, slope);
}

/* ---- abs ------------------------------------------------------------------------ */
// dx = dy sign(x), sign(0) = 0
ad_status ad__abs_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__abs_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, abs_f32, abs_f64);
}

void ad__abs_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *sign = mask_of(y->src[0], 0.0, sign_f32, sign_f64);
    if (!sign)
        return;
    gin[0] = ad_mul(gy, sign);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__abs_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_abs(ad_tensor *x)
{
    return unary(AD_OP_abs, x, 0);
}

/* ---- softplus: PyTorch's beta = 1, threshold = 20 ------------------------------------ */
// dx = dy sigmoid(x) for x <= 20, dy above (where y is exactly x)
ad_status ad__softplus_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__softplus_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, softplus_f32, softplus_f64);
}

void ad__softplus_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *above = mask_of(x, 0.0, softplus_above_f32, softplus_above_f64);
    ad_tensor *below = mask_of(x, 0.0, softplus_below_f32, softplus_below_f64);
    if (!above || !below)
        return;
    /* sigmoid(x) * below + above: a select that stays differentiable in x. */
    gin[0] = ad_mul(gy, ad_add(ad_mul(ad_sigmoid(x), below), above));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__softplus_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_softplus(ad_tensor *x)
{
    return unary(AD_OP_softplus, x, 0);
}

/* ---- gelu, tanh approximation ------------------------------------------------------
 * y = x/2 (1 + t), t = tanh(u), u = c (x + a x^3), c = sqrt(2/pi), a = 0.044715 */
// dx = dy (1/2 (1 + t) + 1/2 x (1 - t^2) c (1 + 3 a x^2))
ad_status ad__gelu_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__gelu_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, gelu_f32, gelu_f64);
}

void ad__gelu_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *x2 = ad_square(x);
    ad_tensor *u = ad_mul_scalar(ad_add(x, ad_mul_scalar(ad_mul(x, x2), GELU_A)), GELU_C);
    ad_tensor *t = ad_tanh(u);
    ad_tensor *du = ad_mul_scalar(ad_add_scalar(ad_mul_scalar(x2, 3 * GELU_A), 1.0), GELU_C);
    ad_tensor *d =
        ad_add(ad_mul_scalar(ad_add_scalar(t, 1.0), 0.5),
               ad_mul(ad_mul_scalar(x, 0.5), ad_mul(ad_rsub_scalar(ad_square(t), 1.0), du)));
    gin[0] = ad_mul(gy, d);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__gelu_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_gelu(ad_tensor *x)
{
    return unary(AD_OP_gelu, x, 0);
}

/* ---- pow_scalar: y = x^p ------------------------------------------------------------ */
// dx = dy p x^(p-1); exactly 0 when p = 0, even at x = 0
// p = 1/2 is sqrt and p = -1/2 is 1 / sqrt, as PyTorch computes them: NaN at -inf
// and -0 at -0 where C's pow gives +inf and +0.
ad_status ad__pow_scalar_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__pow_scalar_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, pow_scalar_f32, pow_scalar_f64);
}

void ad__pow_scalar_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    double p = y->param[0].f;
    if (p == 0)
        gin[0] = ad_mul_scalar(gy, 0.0);
    else if (p == 1)
        gin[0] = gy;
    else if (p == 2)
        gin[0] = ad_mul(gy, ad_mul_scalar(x, 2.0));
    else
        gin[0] = ad_mul(gy, ad_mul_scalar(ad_pow_scalar(x, p - 1), p));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__pow_scalar_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_pow_scalar(ad_tensor *x, double p)
{
    return unary(AD_OP_pow_scalar, x, p);
}

/* ---- cast: y = x converted to dtype param[0].i ------------------------------------- */
// dx = cast(dy, dtype of x) between float dtypes; a cast to or from int64 or
// bool has no gradient (its result is a constant, as in torch)
ad_status ad__cast_shape(ad_tensor *y)
{
    y->dtype = (uint8_t)y->param[0].i;
    return ad__same_shape_rule(y);
}

/* y = x as float (f32 or f64 kernels by y's dtype), from any source dtype. */
static void cast_to_f32(int64_t n, const ad_tensor *x, float *y)
{
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        cast_f32_f32(n, x->data, y);
        return;
    case AD_F64:
        cast_f64_f32(n, x->data, y);
        return;
    case AD_I64:
        cast_i64_f32(n, x->data, y);
        return;
    case AD_BOOL:
        cast_bool_f32(n, x->data, y);
        return;
    }
}

static void cast_to_f64(int64_t n, const ad_tensor *x, double *y)
{
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        cast_f32_f64(n, x->data, y);
        return;
    case AD_F64:
        cast_f64_f64(n, x->data, y);
        return;
    case AD_I64:
        cast_i64_f64(n, x->data, y);
        return;
    case AD_BOOL:
        cast_bool_f64(n, x->data, y);
        return;
    }
}

static void cast_to_i64(int64_t n, const ad_tensor *x, int64_t *y)
{
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        to_i64_f32(n, x->data, y);
        return;
    case AD_F64:
        to_i64_f64(n, x->data, y);
        return;
    case AD_I64:
        memcpy(y, x->data, (size_t)n * sizeof *y);
        return;
    case AD_BOOL:
        for (int64_t i = 0; i < n; i++)
            y[i] = ((const bool *)x->data)[i];
        return;
    }
}

static void cast_to_bool(int64_t n, const ad_tensor *x, bool *y)
{
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        to_bool_f32(n, x->data, y);
        return;
    case AD_F64:
        to_bool_f64(n, x->data, y);
        return;
    case AD_I64:
        for (int64_t i = 0; i < n; i++)
            y[i] = ((const int64_t *)x->data)[i] != 0;
        return;
    case AD_BOOL:
        memcpy(y, x->data, (size_t)n * sizeof *y);
        return;
    }
}

void ad__cast_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        cast_to_f32(y->numel, x, y->data);
        return;
    case AD_F64:
        cast_to_f64(y->numel, x, y->data);
        return;
    case AD_I64:
        cast_to_i64(y->numel, x, y->data);
        return;
    case AD_BOOL:
        cast_to_bool(y->numel, x, y->data);
        return;
    }
}

void ad__cast_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_cast(gy, (ad_dtype)y->src[0]->dtype);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__cast_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_cast(ad_tensor *x, ad_dtype dtype)
{
    if (!x)
        return NULL;
    /* Before the same-dtype shortcut, so that it cannot hand back a stale
     * handle, or a tensor of an errored tape. */
    if (x->tape && !ad__input_tape(x, "cast"))
        return NULL;
    if (x->dtype == dtype)
        return x;
    if (!ad__dtype_valid(dtype)) {
        char s[AD__SHAPE_BUF];
        ad__fail(x->tape, AD_ERR_DTYPE, "cast: unknown dtype %d for %s %s", (int)dtype,
                 ad_dtype_name((ad_dtype)x->dtype), AD__SHAPE(x, s));
        return NULL;
    }
    ad__param params[AD_NPARAM] = {{.i = dtype}};
    return ad__apply(AD_OP_cast, 1, &x, params);
}

/* ---- detach: the same values, cut from the graph ------------------------------------ */
// no gradient: the op is not differentiable, so its result is never recorded
ad_status ad__detach_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__detach_forward(ad_tensor *y)
{
    y->data = y->src[0]->data;
}

void ad__detach_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)y, (void)gy, (void)gin;
}

// no derivative: never recorded, so never asked
ad_tensor *ad__detach_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

ad_tensor *ad_detach(ad_tensor *x)
{
    return ad__apply(AD_OP_detach, 1, &x, NULL);
}

/* ---- tan: tan x ------------------------------------------------------------- */
// dx = dy (1 + y^2)
ad_status ad__tan_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__tan_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, tan_f32, tan_f64);
}

void ad__tan_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_add_scalar(ad_square(y), 1.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__tan_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_tan(ad_tensor *x)
{
    return unary(AD_OP_tan, x, 0);
}

/* ---- atan: atan x ----------------------------------------------------------- */
// dx = dy / (1 + x^2)
ad_status ad__atan_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__atan_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, atan_f32, atan_f64);
}

void ad__atan_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_div(gy, ad_add_scalar(ad_square(y->src[0]), 1.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__atan_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_atan(ad_tensor *x)
{
    return unary(AD_OP_atan, x, 0);
}

/* ---- asin: asin x ----------------------------------------------------------- */
// dx = dy / sqrt(1 - x^2): +inf at x = +-1, NaN for |x| > 1 (PyTorch)
ad_status ad__asin_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__asin_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, asin_f32, asin_f64);
}

void ad__asin_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_rsqrt(ad_rsub_scalar(ad_square(y->src[0]), 1.0)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__asin_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_asin(ad_tensor *x)
{
    return unary(AD_OP_asin, x, 0);
}

/* ---- acos: acos x ----------------------------------------------------------- */
// dx = -dy / sqrt(1 - x^2): -inf at x = +-1, NaN for |x| > 1 (PyTorch)
ad_status ad__acos_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__acos_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, acos_f32, acos_f64);
}

void ad__acos_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_neg(ad_mul(gy, ad_rsqrt(ad_rsub_scalar(ad_square(y->src[0]), 1.0))));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__acos_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_acos(ad_tensor *x)
{
    return unary(AD_OP_acos, x, 0);
}

/* ---- sinh: sinh x ----------------------------------------------------------- */
// dx = dy cosh x
ad_status ad__sinh_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__sinh_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, sinh_f32, sinh_f64);
}

void ad__sinh_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_cosh(y->src[0]));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__sinh_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_sinh(ad_tensor *x)
{
    return unary(AD_OP_sinh, x, 0);
}

/* ---- cosh: cosh x ----------------------------------------------------------- */
// dx = dy sinh x
ad_status ad__cosh_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__cosh_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, cosh_f32, cosh_f64);
}

void ad__cosh_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_sinh(y->src[0]));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__cosh_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_cosh(ad_tensor *x)
{
    return unary(AD_OP_cosh, x, 0);
}

/* ---- asinh: asinh x --------------------------------------------------------- */
// dx = dy / sqrt(x^2 + 1): 0 once x^2 overflows (PyTorch)
ad_status ad__asinh_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__asinh_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, asinh_f32, asinh_f64);
}

void ad__asinh_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_rsqrt(ad_add_scalar(ad_square(y->src[0]), 1.0)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__asinh_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_asinh(ad_tensor *x)
{
    return unary(AD_OP_asinh, x, 0);
}

/* ---- acosh: acosh x --------------------------------------------------------- */
// dx = dy / sqrt(x^2 - 1): +inf at x = +-1, NaN for |x| < 1 (PyTorch)
ad_status ad__acosh_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__acosh_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, acosh_f32, acosh_f64);
}

void ad__acosh_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_rsqrt(ad_sub_scalar(ad_square(y->src[0]), 1.0)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__acosh_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_acosh(ad_tensor *x)
{
    return unary(AD_OP_acosh, x, 0);
}

/* ---- atanh: atanh x --------------------------------------------------------- */
// dx = dy / (1 - x^2): +inf at x = +-1, negative for |x| > 1 (PyTorch)
ad_status ad__atanh_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__atanh_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, atanh_f32, atanh_f64);
}

void ad__atanh_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_div(gy, ad_rsub_scalar(ad_square(y->src[0]), 1.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__atanh_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_atanh(ad_tensor *x)
{
    return unary(AD_OP_atanh, x, 0);
}

/* ---- erf: the error function ------------------------------------------------ */
// dx = dy 2/sqrt(pi) e^(-x^2)
ad_status ad__erf_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__erf_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, erf_f32, erf_f64);
}

void ad__erf_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_mul_scalar(ad_exp(ad_neg(ad_square(y->src[0]))), TWO_OVER_SQRT_PI));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__erf_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_erf(ad_tensor *x)
{
    return unary(AD_OP_erf, x, 0);
}

/* ---- erfc: 1 - erf x, accurate in the tail ---------------------------------- */
// dx = -dy 2/sqrt(pi) e^(-x^2)
ad_status ad__erfc_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__erfc_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, erfc_f32, erfc_f64);
}

void ad__erfc_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_mul_scalar(ad_exp(ad_neg(ad_square(y->src[0]))), -TWO_OVER_SQRT_PI));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__erfc_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_erfc(ad_tensor *x)
{
    return unary(AD_OP_erfc, x, 0);
}

/* ---- log2: log base 2 ------------------------------------------------------- */
// dx = dy / (x ln 2): +-inf at +-0, as log
ad_status ad__log2_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__log2_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, log2_f32, log2_f64);
}

void ad__log2_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_div(gy, ad_mul_scalar(y->src[0], LN2));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__log2_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_log2(ad_tensor *x)
{
    return unary(AD_OP_log2, x, 0);
}

/* ---- log10: log base 10 ----------------------------------------------------- */
// dx = dy / (x ln 10): +-inf at +-0, as log
ad_status ad__log10_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__log10_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, log10_f32, log10_f64);
}

void ad__log10_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_div(gy, ad_mul_scalar(y->src[0], LN10));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__log10_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_log10(ad_tensor *x)
{
    return unary(AD_OP_log10, x, 0);
}

/* ---- exp2: 2^x -------------------------------------------------------------- */
// dx = dy y ln 2
ad_status ad__exp2_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__exp2_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, exp2_f32, exp2_f64);
}

void ad__exp2_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_mul_scalar(y, LN2));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__exp2_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_exp2(ad_tensor *x)
{
    return unary(AD_OP_exp2, x, 0);
}

/* ---- rsqrt: 1 / sqrt(x) ----------------------------------------------------- */
// dx = -dy y^3 / 2: -inf at +0, +inf at -0 (y = -inf), as PyTorch
ad_status ad__rsqrt_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__rsqrt_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, rsqrt_f32, rsqrt_f64);
}

void ad__rsqrt_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(ad_mul_scalar(gy, -0.5), ad_pow_scalar(y, 3.0));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__rsqrt_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_rsqrt(ad_tensor *x)
{
    return unary(AD_OP_rsqrt, x, 0);
}

/* ---- reciprocal: 1 / x ------------------------------------------------------ */
// dx = -dy y^2: -inf at +-0, as PyTorch
ad_status ad__reciprocal_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__reciprocal_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, reciprocal_f32, reciprocal_f64);
}

void ad__reciprocal_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_neg(ad_mul(gy, ad_square(y)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__reciprocal_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_reciprocal(ad_tensor *x)
{
    return unary(AD_OP_reciprocal, x, 0);
}

/* ---- sign: x > 0 ? 1 : x < 0 ? -1 : 0 (0 at -0 and NaN, as PyTorch 1.13) ---- */
// dx = 0 everywhere, at the steps too (PyTorch)
ad_status ad__sign_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__sign_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, sign_f32, sign_f64);
}

void ad__sign_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)gy;
    /* Zeros that are never recorded: PyTorch's zeros_like(grad), so an inf or NaN
     * in dy gives 0 too, and the second derivative is 0. */
    gin[0] = ad__const_like(y->src[0], 0.0);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__sign_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_sign(ad_tensor *x)
{
    return unary(AD_OP_sign, x, 0);
}

/* ---- floor: round down ------------------------------------------------------ */
// dx = 0 everywhere, at the steps too (PyTorch)
ad_status ad__floor_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__floor_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, floor_f32, floor_f64);
}

void ad__floor_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)gy;
    /* Zeros that are never recorded: PyTorch's zeros_like(grad), so an inf or NaN
     * in dy gives 0 too, and the second derivative is 0. */
    gin[0] = ad__const_like(y->src[0], 0.0);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__floor_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_floor(ad_tensor *x)
{
    return unary(AD_OP_floor, x, 0);
}

/* ---- ceil: round up --------------------------------------------------------- */
// dx = 0 everywhere, at the steps too (PyTorch)
ad_status ad__ceil_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__ceil_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, ceil_f32, ceil_f64);
}

void ad__ceil_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)gy;
    /* Zeros that are never recorded: PyTorch's zeros_like(grad), so an inf or NaN
     * in dy gives 0 too, and the second derivative is 0. */
    gin[0] = ad__const_like(y->src[0], 0.0);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__ceil_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_ceil(ad_tensor *x)
{
    return unary(AD_OP_ceil, x, 0);
}

/* ---- round: round half to even ---------------------------------------------- */
// dx = 0 everywhere, at the steps too (PyTorch)
ad_status ad__round_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__round_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, round_f32, round_f64);
}

void ad__round_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)gy;
    /* Zeros that are never recorded: PyTorch's zeros_like(grad), so an inf or NaN
     * in dy gives 0 too, and the second derivative is 0. */
    gin[0] = ad__const_like(y->src[0], 0.0);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__round_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_round(ad_tensor *x)
{
    return unary(AD_OP_round, x, 0);
}

/* ---- trunc: round toward zero ----------------------------------------------- */
// dx = 0 everywhere, at the steps too (PyTorch)
ad_status ad__trunc_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__trunc_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, trunc_f32, trunc_f64);
}

void ad__trunc_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)gy;
    /* Zeros that are never recorded: PyTorch's zeros_like(grad), so an inf or NaN
     * in dy gives 0 too, and the second derivative is 0. */
    gin[0] = ad__const_like(y->src[0], 0.0);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__trunc_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_trunc(ad_tensor *x)
{
    return unary(AD_OP_trunc, x, 0);
}

/* ---- silu: x sigmoid(x), PyTorch's x / (1 + e^-x) --------------------------- */
// dx = dy s (1 + x (1 - s)), s = sigmoid(x)
ad_status ad__silu_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__silu_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, silu_f32, silu_f64);
}

void ad__silu_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *s = ad_sigmoid(x);
    gin[0] = ad_mul(gy, ad_mul(s, ad_add_scalar(ad_mul(x, ad_rsub_scalar(s, 1.0)), 1.0)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__silu_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_silu(ad_tensor *x)
{
    return unary(AD_OP_silu, x, 0);
}

/* ---- elu: x > 0 ? x : alpha (e^x - 1), alpha = param[0] --------------------- */
// dx = dy (x > 0 ? 1 : alpha e^x): alpha at x = 0, NaN at NaN (PyTorch)
ad_status ad__elu_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__elu_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, elu_f32, elu_f64);
}

void ad__elu_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *above = mask_of(x, 0.0, elu_mask_f32, elu_mask_f64);
    ad_tensor *one = ad__scalar_const(x, 1.0);
    if (!above || !one)
        return;
    /* e^x of x where x <= 0 and of 0 elsewhere, so that the branch where()
     * leaves out is never e^x of a large x: at second order its 0 gradient
     * would meet inf there and make NaN. */
    ad_tensor *below = ad_exp(ad_mul(x, ad_rsub_scalar(above, 1.0)));
    gin[0] = ad_mul(gy, ad_where(above, one, ad_mul_scalar(below, y->param[0].f)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__elu_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_elu(ad_tensor *x, double alpha)
{
    return unary(AD_OP_elu, x, alpha);
}

/* ---- selu: scale elu(x, alpha), PyTorch's constants, in one pass ---------------------- */
// dx = dy scale for x > 0, dy alpha scale e^x for x <= 0: alpha scale at 0, NaN at NaN
ad_status ad__selu_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__selu_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, selu_f32, selu_f64);
}

void ad__selu_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *above = mask_of(x, 0.0, above_f32, above_f64);
    ad_tensor *below = mask_of(x, 0.0, selu_below_f32, selu_below_f64);
    ad_tensor *zero = ad__scalar_const(x, 0.0);
    if (!above || !below || !zero)
        return;
    /* e^x of x where x < 0 (or NaN, which stays NaN) and of 0 elsewhere: the
     * branch where() leaves out is never e^x of a large x (inf, then NaN at
     * second order through 0 inf), and at x = 0 the slope alpha scale has
     * derivative 0, as PyTorch's second derivative (elu_double_backward) has. */
    ad_tensor *e = ad_exp(ad_where(below, x, zero));
    gin[0] =
        ad_where(above, ad_mul_scalar(gy, SELU_SCALE), ad_mul(ad_mul_scalar(gy, SELU_NEGATIVE), e));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__selu_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_selu(ad_tensor *x)
{
    return unary(AD_OP_selu, x, 0);
}

/* ---- mish: x tanh(softplus(x)), PyTorch's x tanh(ln(1 + e^x)) --------------- */
// dx = dy (t + x sigmoid(x) (1 - t^2)), t = tanh(softplus(x))
ad_status ad__mish_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__mish_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, mish_f32, mish_f64);
}

void ad__mish_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *t = ad_tanh(ad_softplus(x));
    ad_tensor *slope = ad_mul(ad_mul(x, ad_sigmoid(x)), ad_rsub_scalar(ad_square(t), 1.0));
    gin[0] = ad_mul(gy, ad_add(t, slope));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__mish_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_mish(ad_tensor *x)
{
    return unary(AD_OP_mish, x, 0);
}

/* ---- hardswish: x relu6(x + 3) / 6 ------------------------------------------ */
// dx = dy (x < -3 ? 0 : x < 3 ? x/3 + 1/2 : 1): -1/2 at -3, 1 at 3, NaN at NaN
ad_status ad__hardswish_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__hardswish_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, hardswish_f32, hardswish_f64);
}

void ad__hardswish_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *middle = mask_of(x, 0.0, hardswish_middle_f32, hardswish_middle_f64);
    ad_tensor *top = mask_of(x, 0.0, hardswish_top_f32, hardswish_top_f64);
    if (!middle || !top)
        return;
    /* A select, not a masked sum, so that x/3 + 1/2 of an infinite x is left out. */
    gin[0] = ad_mul(gy, ad_where(middle, ad_add_scalar(ad_div_scalar(x, 3.0), 0.5), top));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__hardswish_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_hardswish(ad_tensor *x)
{
    return unary(AD_OP_hardswish, x, 0);
}

/* ---- hardsigmoid: relu6(x + 3) / 6 ------------------------------------------ */
// dx = dy / 6 where -3 < x < 3, else 0 (the ends and NaN included)
ad_status ad__hardsigmoid_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__hardsigmoid_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, hardsigmoid_f32, hardsigmoid_f64);
}

void ad__hardsigmoid_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, mask_of(y->src[0], 0.0, hardsigmoid_slope_f32, hardsigmoid_slope_f64));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__hardsigmoid_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_hardsigmoid(ad_tensor *x)
{
    return unary(AD_OP_hardsigmoid, x, 0);
}

/* ---- logsigmoid: ln sigmoid(x), stable on both sides ------------------------ */
// dx = dy sigmoid(-x)
ad_status ad__logsigmoid_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__logsigmoid_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, logsigmoid_f32, logsigmoid_f64);
}

void ad__logsigmoid_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, ad_sigmoid(ad_neg(y->src[0])));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__logsigmoid_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_logsigmoid(ad_tensor *x)
{
    return unary(AD_OP_logsigmoid, x, 0);
}

/* ---- softsign: x / (1 + |x|), in one pass ------------------------------------------- */
// dx = dy / (1 + |x|)^2: 1 at x = 0; NaN at +-inf, where the value is NaN (inf / inf)
ad_status ad__softsign_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__softsign_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, softsign_f32, softsign_f64);
}

void ad__softsign_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    /* The exact slope, where PyTorch's composition (x / (|x| + 1) through div
     * and abs) computes 1 / (1 + |x|) - |x| / (1 + |x|)^2, which cancels: a
     * relative error of about 1e-16 |x|, and 0 from |x| = 1e16 on. The mask
     * keeps PyTorch's NaN at +-inf. */
    ad_tensor *finite = mask_of(x, 0.0, softsign_finite_f32, softsign_finite_f64);
    if (!finite)
        return;
    gin[0] = ad_mul(ad_div(gy, ad_square(ad_add_scalar(ad_abs(x), 1.0))), finite);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__softsign_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_softsign(ad_tensor *x)
{
    return unary(AD_OP_softsign, x, 0);
}

/* ---- gelu_erf: x Phi(x), Phi the normal CDF (exact gelu) -------------------- */
// dx = dy (Phi(x) + x phi(x)), phi the normal density
ad_status ad__gelu_erf_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__gelu_erf_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, gelu_erf_f32, gelu_erf_f64);
}

void ad__gelu_erf_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *cdf = ad_mul_scalar(ad_add_scalar(ad_erf(ad_mul_scalar(x, SQRT1_2)), 1.0), 0.5);
    ad_tensor *pdf = ad_mul_scalar(ad_exp(ad_mul_scalar(ad_square(x), -0.5)), INV_SQRT_2PI);
    gin[0] = ad_mul(gy, ad_add(cdf, ad_mul(x, pdf)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__gelu_erf_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_gelu_erf(ad_tensor *x)
{
    return unary(AD_OP_gelu_erf, x, 0);
}

/* ---- clamp_min, clamp_max: one bound (param[0]); param[1].i = 1 for hardtanh's
 * exclusive gradient. clamp, hardtanh are compositions of the two. ------------------- */

/* A one-sided clamp at bound, with PyTorch's clamp gradient (inclusive) or
 * hardtanh's (exclusive); 0 at NaN for both. */
static ad_tensor *clamp_bound(int op, ad_tensor *x, double bound, bool exclusive)
{
    ad__param params[AD_NPARAM] = {{.f = bound}, {.i = exclusive}};
    return ad__apply(op, 1, &x, params);
}

// clamp_min: dx = dy [x >= lo] (clamp), dy [x > lo] (hardtanh); 0 at NaN
ad_status ad__clamp_min_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__clamp_min_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, clamp_min_f32, clamp_min_f64);
}

void ad__clamp_min_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    double lo = y->param[0].f;
    gin[0] = ad_mul(gy, y->param[1].i ? mask_of(x, lo, above_f32, above_f64)
                                      : mask_of(x, lo, at_least_f32, at_least_f64));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__clamp_min_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_clamp_min(ad_tensor *x, double min)
{
    return clamp_bound(AD_OP_clamp_min, x, min, false);
}

// clamp_max: dx = dy [x <= hi] (clamp), dy [x < hi] (hardtanh); 0 at NaN
ad_status ad__clamp_max_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__clamp_max_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_CHEAP, clamp_max_f32, clamp_max_f64);
}

void ad__clamp_max_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    double hi = y->param[0].f;
    gin[0] = ad_mul(gy, y->param[1].i ? mask_of(x, hi, below_f32, below_f64)
                                      : mask_of(x, hi, at_most_f32, at_most_f64));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__clamp_max_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_clamp_max(ad_tensor *x, double max)
{
    return clamp_bound(AD_OP_clamp_max, x, max, false);
}

/* clamp(x, min, max) = clamp_max(clamp_min(x, min), max); a NaN bound is no
 * bound. The gradient is the product of the two masks: dy where
 * min <= x <= max, 0 outside and at NaN. min > max gives max everywhere,
 * with gradient 0 (PyTorch). */
ad_tensor *ad_clamp(ad_tensor *x, double min, double max)
{
    if (isnan(min) && isnan(max)) {
        ad_tape *tape = ad__input_tape(x, "clamp");
        if (tape)
            ad__fail(tape, AD_ERR_ARG, "clamp: at least one of min and max must not be NaN");
        return NULL;
    }
    ad_tensor *y = isnan(min) ? x : ad_clamp_min(x, min);
    return isnan(max) ? y : ad_clamp_max(y, max);
}

/* hardtanh: clamp's values with PyTorch's exclusive gradient: dy where
 * min < x < max, 0 at the bounds and at NaN. */
ad_tensor *ad_hardtanh(ad_tensor *x, double min, double max)
{
    return clamp_bound(AD_OP_clamp_max, clamp_bound(AD_OP_clamp_min, x, min, true), max, true);
}

/* ---- erfinv: the inverse of erf on (-1, 1) ---------------------------------------- */
// dx = dy sqrt(pi)/2 e^(y^2): +inf at x = +-1 (y = +-inf), NaN beyond
ad_status ad__erfinv_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__erfinv_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, erfinv_f32, erfinv_f64);
}

void ad__erfinv_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    /* With y itself, recorded: at second order its own derivative enters. */
    gin[0] = ad_mul(ad_mul_scalar(gy, SQRT_PI_2), ad_exp(ad_square(y)));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__erfinv_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_erfinv(ad_tensor *x)
{
    return unary(AD_OP_erfinv, x, 0);
}

/* ---- sinc: sin(pi x) / (pi x), 1 at 0 (normalized, as torch.sinc) ------------------ */
// dx = dy (pi x cos(pi x) - sin(pi x)) / (pi x^2), PyTorch's form of (cos(pi x) - y) / x;
// 0 at x = 0 and wherever x^2 pi rounds to 0 (PyTorch), with derivative -pi^2/3 there
ad_status ad__sinc_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__sinc_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, sinc_f32, sinc_f64);
}

void ad__sinc_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *zero = mask_of(x, 0.0, sinc_near_zero_f32, sinc_near_zero_f64);
    ad_tensor *one = ad__scalar_const(x, 1.0);
    if (!zero || !one)
        return;
    /* Away from 0: PyTorch's expression, of x moved to 1 where the mask is set,
     * so that the branch where() leaves out stays finite to any order. */
    ad_tensor *xs = ad_where(zero, one, x), *pix = ad_mul_scalar(xs, PI);
    ad_tensor *away = ad_div(ad_mul(gy, ad_sub(ad_mul(pix, ad_cos(pix)), ad_sin(pix))),
                             ad_mul_scalar(ad_square(xs), PI));
    /* At 0: the slope's first-order Taylor term -pi^2/3 (x - x0) about the point
     * itself, x0 = x detached: its value is exactly 0 (+0 for any finite dy and
     * either sign of x, as PyTorch's zeros), and its derivative is the true
     * sinc''(0), where PyTorch's second derivative is NaN. */
    ad_tensor *taylor = ad_mul_scalar(ad_sub(x, ad_detach(x)), SINC_CURVATURE);
    ad_tensor *near = ad_add_scalar(ad_mul(gy, taylor), 0.0);
    gin[0] = ad_where(zero, near, away);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__sinc_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_sinc(ad_tensor *x)
{
    return unary(AD_OP_sinc, x, 0);
}

/* ---- logit: ln(x / (1 - x)), x clamped to [eps, 1 - eps] when eps = param[0] is not NaN */
// dx = dy / (x (1 - x)); without eps NaN outside [0, 1] and +-inf at 0 and 1; with eps 0
// outside [eps, 1 - eps] (the bounds themselves included in the slope) and at NaN (PyTorch)
ad_status ad__logit_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__logit_forward(ad_tensor *y)
{
    unary_forward(y, AD__GRAIN_COSTLY, logit_f32, logit_f64);
}

void ad__logit_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    double eps = y->param[0].f;
    if (isnan(eps)) {
        ad_tensor *domain = mask_of(x, 0.0, logit_domain_f32, logit_domain_f64);
        if (domain)
            gin[0] = ad_mul(ad_div(gy, ad_mul(x, ad_rsub_scalar(x, 1.0))), domain);
        return;
    }
    ad_tensor *inside = mask_of(x, eps, logit_inside_f32, logit_inside_f64);
    ad_tensor *half = ad__scalar_const(x, 0.5), *zero = ad__scalar_const(x, 0.0);
    if (!inside || !half || !zero)
        return;
    /* A select of +0 where x was clamped, with x moved to 1/2 there so that
     * the branch left out stays finite at second order (x = 0, 1, +-inf). */
    ad_tensor *xs = ad_where(inside, x, half);
    gin[0] = ad_where(inside, ad_div(gy, ad_mul(xs, ad_rsub_scalar(xs, 1.0))), zero);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__logit_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

/* eps < 0 or NaN means none (PyTorch's None, which its kernel passes as NaN). */
ad_tensor *ad_logit(ad_tensor *x, double eps)
{
    return unary(AD_OP_logit, x, eps < 0 || isnan(eps) ? NAN : eps);
}
