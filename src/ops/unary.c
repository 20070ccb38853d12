/* Elementwise ops of one input. Each op: derivative comment, shape rule,
 * forward, backward, constructor. Kernels are written once for both dtypes:
 * <tgmath.h> makes exp(x) call expf for a float x. */
#include "ops.h"

#include <tgmath.h>

/* y = expr(x, p) elementwise over [begin, end), for T in {float, double};
 * p is param[0].f. */
#define UNARY_LOOP(T, expr, begin, end)                                                            \
    do {                                                                                           \
        const T *restrict X_ = y->src[0]->data;                                                    \
        T *restrict Y_ = y->data;                                                                  \
        const T p = (T)y->param[0].f;                                                              \
        const int64_t e_ = (end);                                                                  \
        (void)p;                                                                                   \
        for (int64_t i_ = (begin); i_ < e_; i_++) {                                                \
            const T x = X_[i_];                                                                    \
            Y_[i_] = (T)(expr);                                                                    \
        }                                                                                          \
    } while (0)

/* The forward runs in parts on the thread pool when y is large. */
#define UNARY_OP(name, grain, expr)                                                                \
    ad_status ad__##name##_shape(ad_tensor *y)                                                     \
    {                                                                                              \
        return ad__same_shape_rule(y);                                                             \
    }                                                                                              \
    static void name##_range(void *ctx, int64_t begin, int64_t end)                                \
    {                                                                                              \
        ad_tensor *y = ctx;                                                                        \
        if (y->dtype == AD_F32)                                                                    \
            UNARY_LOOP(float, expr, begin, end);                                                   \
        else                                                                                       \
            UNARY_LOOP(double, expr, begin, end);                                                  \
    }                                                                                              \
    void ad__##name##_forward(ad_tensor *y)                                                        \
    {                                                                                              \
        ad__parallel_for(y->numel, grain, name##_range, y);                                        \
    }

/*
 * Fused gradients. With recording off (ad_backward without create_graph) a
 * gradient is a constant, so a rule can run as one pass over x, y and dy
 * instead of a chain of ops, each a pass and a buffer. With create_graph the
 * composed rule runs, recorded, so that it can be differentiated again.
 * Both evaluate the same expression in the same order (and the build does
 * not contract to FMA: c11 mode), so they give the same bits; test_ops
 * checks it. NAME_fused(y, gy) returns the gradient tensor, NULL on error.
 */
#define FUSED_GRAD(name, expr)                                                                     \
    static ad_tensor *name##_fused(ad_tensor *y, ad_tensor *gy)                                    \
    {                                                                                              \
        ad_tensor *g_ = ad__new(y->tape, (ad_dtype)y->dtype, y->ndim, y->shape);                   \
        if (!g_)                                                                                   \
            return NULL;                                                                           \
        if (y->dtype == AD_F32)                                                                    \
            FUSED_LOOP(float, expr, g_);                                                           \
        else                                                                                       \
            FUSED_LOOP(double, expr, g_);                                                          \
        return g_;                                                                                 \
    }

#define FUSED_LOOP(T, expr, out)                                                                   \
    do {                                                                                           \
        const T *restrict X_ = y->src[0]->data, *restrict Y_ = y->data, *restrict D_ = gy->data;   \
        T *restrict O_ = (out)->data;                                                              \
        const int64_t n_ = y->numel;                                                               \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                                      \
            const T x = X_[i_], yv = Y_[i_], dy = D_[i_], one = 1, zero = 0;                       \
            (void)x;                                                                               \
            (void)yv;                                                                              \
            (void)one;                                                                             \
            (void)zero;                                                                            \
            O_[i_] = (T)(expr);                                                                    \
        }                                                                                          \
    } while (0)

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

/* A constant (never recorded) of x's shape: 1 where x > 0, else `otherwise`;
 * at NaN, 1 when nan_passes (relu, whose rule zeroes only x <= 0). */
static ad_tensor *positive_mask(ad_tensor *x, double otherwise, bool nan_passes)
{
    ad_tensor *m = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!m)
        return NULL;
    if (x->dtype == AD_F32) {
        const float *X = x->data, o = (float)otherwise;
        float *M = m->data;
        for (int64_t i = 0; i < x->numel; i++)
            M[i] = X[i] > 0 || (nan_passes && X[i] != X[i]) ? 1.0f : o;
    } else {
        const double *X = x->data;
        double *M = m->data;
        for (int64_t i = 0; i < x->numel; i++)
            M[i] = X[i] > 0 || (nan_passes && X[i] != X[i]) ? 1.0 : otherwise;
    }
    return m;
}

/* ---- neg: y = -x ------------------------------------------------------------ */
// dx = -dy
UNARY_OP(neg, AD__GRAIN_CHEAP, -x)

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
UNARY_OP(exp, AD__GRAIN_COSTLY, exp(x))

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
UNARY_OP(log, AD__GRAIN_COSTLY, log(x))

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
UNARY_OP(log1p, AD__GRAIN_COSTLY, log1p(x))

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
UNARY_OP(expm1, AD__GRAIN_COSTLY, expm1(x))

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
UNARY_OP(sqrt, AD__GRAIN_COSTLY, sqrt(x))

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
UNARY_OP(square, AD__GRAIN_CHEAP, x *x)

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
UNARY_OP(sin, AD__GRAIN_COSTLY, sin(x))

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

UNARY_OP(cos, AD__GRAIN_COSTLY, cos(x))

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
UNARY_OP(tanh, AD__GRAIN_COSTLY, tanh(x))

FUSED_GRAD(tanh, dy *(one - yv * yv))

void ad__tanh_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = fusable(y, gy) ? tanh_fused(y, gy) : ad_mul(gy, ad_rsub_scalar(ad_square(y), 1.0));
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
UNARY_OP(sigmoid, AD__GRAIN_COSTLY, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)))

FUSED_GRAD(sigmoid, dy *(yv *(one - yv)))

void ad__sigmoid_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = fusable(y, gy) ? sigmoid_fused(y, gy) : ad_mul(gy, ad_mul(y, ad_rsub_scalar(y, 1.0)));
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
UNARY_OP(relu, AD__GRAIN_CHEAP, x < 0 ? 0 : x)

FUSED_GRAD(relu, dy *(zero + !(x <= 0))) /* int to T: no branch */

void ad__relu_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = fusable(y, gy) ? relu_fused(y, gy) : ad_mul(gy, positive_mask(y->src[0], 0.0, true));
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
UNARY_OP(leaky_relu, AD__GRAIN_CHEAP, x > 0 ? x : x * p)

void ad__leaky_relu_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_mul(gy, positive_mask(y->src[0], y->param[0].f, false));
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
UNARY_OP(abs, AD__GRAIN_CHEAP, fabs(x))

void ad__abs_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *sign = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!sign)
        return;
    for (int64_t i = 0; i < x->numel; i++) {
        double v = ad__get(x, i);
        ad__set(sign, i, v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0);
    }
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
UNARY_OP(softplus, AD__GRAIN_COSTLY, x > 20 ? x : log1p(exp(x)))

void ad__softplus_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    ad_tensor *above = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    ad_tensor *below = ad__new(x->tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!above || !below)
        return;
    for (int64_t i = 0; i < x->numel; i++) {
        bool over = ad__get(x, i) > 20;
        ad__set(above, i, over ? 1.0 : 0.0);
        ad__set(below, i, over ? 0.0 : 1.0);
    }
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
#define GELU_C 0.7978845608028654 /* sqrt(2 / pi) */
#define GELU_A 0.044715
UNARY_OP(gelu, AD__GRAIN_COSTLY, 0.5 * x * (1 + tanh(GELU_C * (x + GELU_A * x * x * x))))

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
UNARY_OP(pow_scalar, AD__GRAIN_COSTLY, p == 0.5 ? sqrt(x) : p == -0.5 ? 1 / sqrt(x) : pow(x, p))

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
// dx = cast(dy, dtype of x)
ad_status ad__cast_shape(ad_tensor *y)
{
    y->dtype = (uint8_t)y->param[0].i;
    return ad__same_shape_rule(y);
}

void ad__cast_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    if (y->dtype == AD_F32) {
        const double *X = x->data;
        float *Y = y->data;
        for (int64_t i = 0; i < y->numel; i++)
            Y[i] = (float)X[i];
    } else {
        const float *X = x->data;
        double *Y = y->data;
        for (int64_t i = 0; i < y->numel; i++)
            Y[i] = X[i];
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
    if (dtype != AD_F32 && dtype != AD_F64) {
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
