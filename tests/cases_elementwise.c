/* Gradient-check cases for the elementwise family: the unary ops
 * (src/ops/unary.c) and the broadcasting binary ops with their scalar forms
 * (src/ops/binary.c). Inputs are uniform in [lo, hi); kinks (relu, abs,
 * leaky_relu at 0, softplus at 20) and ties (maximum, minimum) are kept away
 * from the finite-difference stencil by the ranges, or hit on purpose where
 * the convention makes the function smooth (maximum(x, x)). */
#include "grad_cases.h"

#include <stddef.h>

/* ---- Building blocks ------------------------------------------------------------ */

/* One case function per unary op: y = op(x). */
#define UNARY_FN(op)                                                                               \
    static ad_tensor *f_##op(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)             \
    {                                                                                              \
        (void)tape, (void)n, (void)ctx;                                                            \
        return ad_##op(in[0]);                                                                     \
    }

/* One case function per binary op: y = op(a, b). */
#define BINARY_FN(op)                                                                              \
    static ad_tensor *f_##op(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)             \
    {                                                                                              \
        (void)tape, (void)n, (void)ctx;                                                            \
        return ad_##op(in[0], in[1]);                                                              \
    }

/* One case function per tensor-with-scalar form: y = op(x, s), s = *(double *)ctx. */
#define SCALAR_FN(op)                                                                              \
    static ad_tensor *f_##op(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)             \
    {                                                                                              \
        (void)tape, (void)n;                                                                       \
        return ad_##op(in[0], *(const double *)ctx);                                               \
    }

/* x times the constant pattern +1, -1, +1, ...: inputs drawn in [lo, hi) with
 * lo > 0 get mixed signs while staying |x| >= lo away from a kink at 0. */
static ad_tensor *alternate_signs(ad_tape *tape, ad_tensor *x)
{
    if (!x)
        return NULL;
    ad_tensor *signs = ad_tape_tensor(tape, AD_F64, ad_tensor_ndim(x), ad_tensor_shape(x), NULL);
    if (!signs)
        return NULL;
    double *s = ad_tensor_data(signs);
    for (int64_t i = 0; i < ad_tensor_numel(signs); i++)
        s[i] = i % 2 ? -1.0 : 1.0;
    return ad_mul(x, signs);
}

/* ---- Unary ops ------------------------------------------------------------------ */

UNARY_FN(neg)
UNARY_FN(exp)
UNARY_FN(log)
UNARY_FN(log1p)
UNARY_FN(expm1)
UNARY_FN(sqrt)
UNARY_FN(square)
UNARY_FN(sin)
UNARY_FN(cos)
UNARY_FN(tanh)
UNARY_FN(sigmoid)
UNARY_FN(relu)
UNARY_FN(abs)
UNARY_FN(softplus)
UNARY_FN(gelu)

static ad_tensor *f_relu_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_relu(alternate_signs(tape, in[0]));
}

static ad_tensor *f_abs_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_abs(alternate_signs(tape, in[0]));
}

/* leaky_relu with slope *(double *)ctx, on mixed signs away from 0. */
static ad_tensor *f_leaky_relu_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    return ad_leaky_relu(alternate_signs(tape, in[0]), *(const double *)ctx);
}

/* x^p with p = *(double *)ctx. */
static ad_tensor *f_pow_scalar(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_pow_scalar(in[0], *(const double *)ctx);
}

/* A unary op inside a small expression, so its backward runs on a gradient
 * that is not all ones and its result feeds another op. */
static ad_tensor *f_tanh_chain(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mul(ad_tanh(ad_mul(in[0], in[1])), ad_exp(in[1]));
}

/* cast f64 -> f32 -> f64, as it is: the float32 rounding shows in the finite
 * differences (about ulp(x) / 2 eps, a few per cent), hence the loose case. */
static ad_tensor *f_cast_round_trip(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_cast(ad_cast(in[0], AD_F32), AD_F64);
}

/* cast round trip with its rounding removed from the value by a detached
 * correction: y = c(x) - detach(c(x)) + detach(x) equals x exactly, and its
 * analytic gradient flows only through the two casts. First order only: the
 * second-order check differentiates c(v) in the seed v, which rounds again. */
static ad_tensor *f_cast_straight_through(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    ad_tensor *c = ad_cast(ad_cast(in[0], AD_F32), AD_F64);
    return ad_add(ad_sub(c, ad_detach(c)), ad_detach(in[0]));
}

UNARY_FN(tan)
UNARY_FN(atan)
UNARY_FN(asin)
UNARY_FN(acos)
UNARY_FN(sinh)
UNARY_FN(cosh)
UNARY_FN(asinh)
UNARY_FN(acosh)
UNARY_FN(atanh)
UNARY_FN(erf)
UNARY_FN(erfc)
UNARY_FN(log2)
UNARY_FN(log10)
UNARY_FN(exp2)
UNARY_FN(rsqrt)
UNARY_FN(silu)
UNARY_FN(mish)
UNARY_FN(hardswish)
UNARY_FN(hardsigmoid)
UNARY_FN(logsigmoid)
UNARY_FN(gelu_erf)

/* A step (zero gradient) or an odd function on mixed signs, |x| >= lo. */
static ad_tensor *f_reciprocal_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_reciprocal(alternate_signs(tape, in[0]));
}

static ad_tensor *f_sign_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_sign(alternate_signs(tape, in[0]));
}

static ad_tensor *f_floor_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_floor(alternate_signs(tape, in[0]));
}

static ad_tensor *f_ceil_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_ceil(alternate_signs(tape, in[0]));
}

static ad_tensor *f_round_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_round(alternate_signs(tape, in[0]));
}

static ad_tensor *f_trunc_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_trunc(alternate_signs(tape, in[0]));
}

/* A step times x, so that the case has a gradient that is not all zero: d/dx
 * floor(x) x = floor(x). */
static ad_tensor *f_floor_times_x(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mul(ad_floor(in[0]), in[0]);
}

/* elu with alpha *(double *)ctx, on mixed signs away from 0. */
static ad_tensor *f_elu_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    return ad_elu(alternate_signs(tape, in[0]), *(const double *)ctx);
}

static ad_tensor *f_selu_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_selu(alternate_signs(tape, in[0]));
}

static ad_tensor *f_hardswish_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_hardswish(alternate_signs(tape, in[0]));
}

static ad_tensor *f_hardsigmoid_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_hardsigmoid(alternate_signs(tape, in[0]));
}

static ad_tensor *f_softsign_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_softsign(alternate_signs(tape, in[0]));
}

/* The clamps at bound 0.2 (and -0.6 below): inputs in [-1, 1) that the seed
 * keeps away from the bounds. */
static ad_tensor *f_clamp_min(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_clamp_min(in[0], 0.2);
}

static ad_tensor *f_clamp_max(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_clamp_max(in[0], 0.2);
}

static ad_tensor *f_clamp(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_clamp(in[0], -0.6, 0.2);
}

static ad_tensor *f_hardtanh(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_hardtanh(in[0], -0.6, 0.2);
}

UNARY_FN(erfinv)
UNARY_FN(sinc)
UNARY_FN(selu)
UNARY_FN(softsign)

static ad_tensor *f_erfinv_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_erfinv(alternate_signs(tape, in[0]));
}

static ad_tensor *f_sinc_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_sinc(alternate_signs(tape, in[0]));
}

/* logit with eps *(double *)ctx (negative: none). */
static ad_tensor *f_logit(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_logit(in[0], *(const double *)ctx);
}

static double alpha_one = 1.0, alpha_half = 0.5;
static double eps_none = -1.0, eps_fifth = 0.2;

static double slope_small = 0.01, slope_large = 0.2;
static double p_zero = 0.0, p_half = 0.5, p_one = 1.0, p_two = 2.0, p_three = 3.0, p_neg = -1.5,
              p_frac = 2.5;

/* ---- Binary ops ----------------------------------------------------------------- */

BINARY_FN(add)
BINARY_FN(sub)
BINARY_FN(mul)
BINARY_FN(div)
BINARY_FN(pow)
BINARY_FN(maximum)
BINARY_FN(minimum)

/* a / (b + 2): inputs in [-1, 1), so the denominator stays in [1, 3). */
static ad_tensor *f_div_shifted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_div(in[0], ad_add_scalar(in[1], 2.0));
}

/* maximum(x, x) and minimum(x, x): a tie everywhere, each operand gets dy / 2,
 * and the two halves add back up to the derivative of x, which is 1. */
static ad_tensor *f_maximum_self(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_maximum(in[0], in[0]);
}

static ad_tensor *f_minimum_self(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_minimum(in[0], in[0]);
}

/* a * a * b: a operand used twice in one op and again in the next. */
static ad_tensor *f_mul_reuse(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mul(ad_mul(in[0], in[0]), in[1]);
}

BINARY_FN(atan2)
BINARY_FN(hypot)
BINARY_FN(xlogy)

/* xlogy(a, b + 2): a of both signs, b in [1, 3). */
static ad_tensor *f_xlogy_shifted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_xlogy(in[0], ad_add_scalar(in[1], 2.0));
}

SCALAR_FN(add_scalar)
SCALAR_FN(sub_scalar)
SCALAR_FN(rsub_scalar)
SCALAR_FN(mul_scalar)
SCALAR_FN(div_scalar)
SCALAR_FN(rdiv_scalar)
SCALAR_FN(rpow_scalar)
SCALAR_FN(maximum_scalar)
SCALAR_FN(minimum_scalar)

BINARY_FN(logaddexp)
BINARY_FN(logaddexp2)

/* remainder and fmod of (3 b + a, b) with a of both signs, 0.1 <= |a| < 0.9, and
 * b = +-(b_in + 1), 1.1 <= |b| < 1.9 of both signs: the quotient 3 + a / b stays
 * at least 0.05 away from an integer, where both jump. Equal to op(a, b) in
 * value, and d/db checks -floor (or -trunc) of the quotient plus 3. */
static ad_tensor *rounded_quotient_case(ad_tape *tape, ad_tensor *const *in,
                                        ad_tensor *(*op)(ad_tensor *, ad_tensor *))
{
    ad_tensor *a = alternate_signs(tape, in[0]);
    ad_tensor *b = alternate_signs(tape, ad_add_scalar(in[1], 1.0));
    return op(ad_add(ad_mul_scalar(b, 3.0), a), b);
}

static ad_tensor *f_remainder_shifted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return rounded_quotient_case(tape, in, ad_remainder);
}

static ad_tensor *f_fmod_shifted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return rounded_quotient_case(tape, in, ad_fmod);
}

/* The scalar forms on x of both signs, 0.1 <= |x| < 0.6, by 0.7: |x| / 0.7 stays in
 * (0.14, 0.86). */
static ad_tensor *f_remainder_scalar_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_remainder_scalar(alternate_signs(tape, in[0]), 0.7);
}

static ad_tensor *f_fmod_scalar_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_fmod_scalar(alternate_signs(tape, in[0]), -0.7);
}

/* logaddexp(x, x) = x + ln 2: a tie everywhere, each operand weighs 1/2. */
static ad_tensor *f_logaddexp_self(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_logaddexp(in[0], in[0]);
}

/* logaddexp(a + 30, b) and logaddexp2(a, b - 40): a gap where one weight is
 * e^-30 (2^-40) and the other all but 1. */
static ad_tensor *f_logaddexp_gap(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_logaddexp(ad_add_scalar(in[0], 30.0), in[1]);
}

static ad_tensor *f_logaddexp2_gap(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_logaddexp2(in[0], ad_sub_scalar(in[1], 40.0));
}

static double s_third = 0.3, s_minus = -1.7, s_base = 2.5;

/* ---- The table ------------------------------------------------------------------ */

/* The table is aligned by hand, one case to a row or two. */
// clang-format off
#define ONE(d0, ...)                                                                       \
    .n_inputs = 1, .ndim = {d0}, .shape = {{__VA_ARGS__}}
#define SHAPES2(d0, s0, d1, s1)                                                            \
    .n_inputs = 2, .ndim = {d0, d1}, .shape = {s0, s1}
#define S(...) {__VA_ARGS__}

const grad_case cases_elementwise[] = {
    /* unary */
    {.op = "neg", .name = "[2,3]", .f = f_neg, ONE(2, 2, 3)},
    {.op = "neg", .name = "0-d", .f = f_neg, ONE(0, 0)},
    {.op = "exp", .name = "[2,3]", .f = f_exp, ONE(2, 2, 3)},
    {.op = "exp", .name = "[4] in [-3,3)", .f = f_exp, ONE(1, 4), .lo = -3, .hi = 3},
    {.op = "log", .name = "[2,3] positive", .f = f_log, ONE(2, 2, 3), .lo = 0.2, .hi = 3},
    {.op = "log1p", .name = "[2,3] above -1", .f = f_log1p, ONE(2, 2, 3), .lo = -0.8, .hi = 2},
    {.op = "log1p", .name = "[5] tiny", .f = f_log1p, ONE(1, 5), .lo = -1e-3, .hi = 1e-3},
    {.op = "expm1", .name = "[2,3] in [-2,2)", .f = f_expm1, ONE(2, 2, 3), .lo = -2, .hi = 2},
    {.op = "expm1", .name = "[5] tiny", .f = f_expm1, ONE(1, 5), .lo = -1e-3, .hi = 1e-3},
    {.op = "sqrt", .name = "[2,3] positive", .f = f_sqrt, ONE(2, 2, 3), .lo = 0.1, .hi = 4},
    {.op = "square", .name = "[2,3]", .f = f_square, ONE(2, 2, 3)},
    {.op = "square", .name = "[1,1,3] size-1 dims", .f = f_square, ONE(3, 1, 1, 3)},
    {.op = "sin", .name = "[2,3] in [-4,4)", .f = f_sin, ONE(2, 2, 3), .lo = -4, .hi = 4},
    {.op = "cos", .name = "[2,3] in [-4,4)", .f = f_cos, ONE(2, 2, 3), .lo = -4, .hi = 4},
    {.op = "tanh", .name = "[2,3] in [-2,2)", .f = f_tanh, ONE(2, 2, 3), .lo = -2, .hi = 2},
    {.op = "tanh", .name = "tanh(a * b) * exp(b), [3]", .f = f_tanh_chain,
     SHAPES2(1, S(3), 1, S(3))},
    {.op = "sigmoid", .name = "[2,3] in [-4,4)", .f = f_sigmoid, ONE(2, 2, 3), .lo = -4,
     .hi = 4},
    {.op = "sigmoid", .name = "[3] in [-30,-20) (the exp(x) / (1 + exp(x)) branch)",
     .f = f_sigmoid, ONE(1, 3), .lo = -30, .hi = -20, .atol = 1e-12},
    {.op = "relu", .name = "[2,3] positive", .f = f_relu, ONE(2, 2, 3), .lo = 0.1, .hi = 1},
    {.op = "relu", .name = "[2,3] negative", .f = f_relu, ONE(2, 2, 3), .lo = -1, .hi = -0.1},
    {.op = "relu", .name = "[2,3] mixed signs, |x| >= 0.1", .f = f_relu_mixed, ONE(2, 2, 3),
     .lo = 0.1, .hi = 1},
    {.op = "abs", .name = "[2,3] mixed signs, |x| >= 0.1", .f = f_abs_mixed, ONE(2, 2, 3),
     .lo = 0.1, .hi = 1},
    {.op = "abs", .name = "[4] negative", .f = f_abs, ONE(1, 4), .lo = -2, .hi = -0.1},
    {.op = "softplus", .name = "[2,3] in [-5,5)", .f = f_softplus, ONE(2, 2, 3), .lo = -5,
     .hi = 5},
    {.op = "softplus", .name = "[8] in [15,25), both sides of the threshold 20",
     .f = f_softplus, ONE(1, 8), .lo = 15, .hi = 25},
    {.op = "gelu", .name = "[2,3] in [-3,3)", .f = f_gelu, ONE(2, 2, 3), .lo = -3, .hi = 3},
    {.op = "leaky_relu", .name = "[2,3] slope 0.01, mixed signs, |x| >= 0.1",
     .f = f_leaky_relu_mixed, .ctx = &slope_small, ONE(2, 2, 3), .lo = 0.1, .hi = 1},
    {.op = "leaky_relu", .name = "[5] slope 0.2, mixed signs, |x| >= 0.1",
     .f = f_leaky_relu_mixed, .ctx = &slope_large, ONE(1, 5), .lo = 0.1, .hi = 2},
    {.op = "pow_scalar", .name = "p = 0, any sign", .f = f_pow_scalar, .ctx = &p_zero,
     ONE(2, 2, 3)},
    {.op = "pow_scalar", .name = "p = 0.5, positive", .f = f_pow_scalar, .ctx = &p_half,
     ONE(2, 2, 3), .lo = 0.2, .hi = 2},
    {.op = "pow_scalar", .name = "p = 1", .f = f_pow_scalar, .ctx = &p_one, ONE(1, 4)},
    {.op = "pow_scalar", .name = "p = 2", .f = f_pow_scalar, .ctx = &p_two, ONE(1, 4)},
    {.op = "pow_scalar", .name = "p = 3, any sign", .f = f_pow_scalar, .ctx = &p_three,
     ONE(2, 2, 3)},
    {.op = "pow_scalar", .name = "p = -1.5, positive", .f = f_pow_scalar, .ctx = &p_neg,
     ONE(1, 4), .lo = 0.5, .hi = 2},
    {.op = "pow_scalar", .name = "p = 2.5, positive", .f = f_pow_scalar, .ctx = &p_frac,
     ONE(1, 4), .lo = 0.1, .hi = 2},
    {.op = "cast", .name = "f64 -> f32 -> f64, rounding removed by a detached correction "
                           "(first order only: the second order rounds the seed)",
     .f = f_cast_straight_through, ONE(2, 2, 3), .first_order_only = true},
    {.op = "cast", .name = "f64 -> f32 -> f64 as it is, loose tolerance for float32 rounding",
     .f = f_cast_round_trip, ONE(1, 4), .lo = 0.5, .hi = 1, .atol = 1e-3, .rtol = 0.15},

    {.op = "tan", .name = "[2,3] in [-1.2,1.2)", .f = f_tan, ONE(2, 2, 3), .lo = -1.2, .hi = 1.2},
    {.op = "atan", .name = "[2,3] in [-3,3)", .f = f_atan, ONE(2, 2, 3), .lo = -3, .hi = 3},
    {.op = "asin", .name = "[2,3] in [-0.9,0.9)", .f = f_asin, ONE(2, 2, 3), .lo = -0.9,
     .hi = 0.9},
    {.op = "acos", .name = "[2,3] in [-0.9,0.9)", .f = f_acos, ONE(2, 2, 3), .lo = -0.9,
     .hi = 0.9},
    {.op = "sinh", .name = "[2,3] in [-2,2)", .f = f_sinh, ONE(2, 2, 3), .lo = -2, .hi = 2},
    {.op = "cosh", .name = "[2,3] in [-2,2)", .f = f_cosh, ONE(2, 2, 3), .lo = -2, .hi = 2},
    {.op = "asinh", .name = "[2,3] in [-3,3)", .f = f_asinh, ONE(2, 2, 3), .lo = -3, .hi = 3},
    {.op = "acosh", .name = "[2,3] in [1.2,4)", .f = f_acosh, ONE(2, 2, 3), .lo = 1.2, .hi = 4},
    {.op = "atanh", .name = "[2,3] in [-0.8,0.8)", .f = f_atanh, ONE(2, 2, 3), .lo = -0.8,
     .hi = 0.8},
    {.op = "erf", .name = "[2,3] in [-2,2)", .f = f_erf, ONE(2, 2, 3), .lo = -2, .hi = 2},
    {.op = "erfc", .name = "[2,3] in [-2,2)", .f = f_erfc, ONE(2, 2, 3), .lo = -2, .hi = 2},
    {.op = "log2", .name = "[2,3] positive", .f = f_log2, ONE(2, 2, 3), .lo = 0.2, .hi = 3},
    {.op = "log10", .name = "[2,3] positive", .f = f_log10, ONE(2, 2, 3), .lo = 0.2, .hi = 3},
    {.op = "exp2", .name = "[2,3] in [-2,2)", .f = f_exp2, ONE(2, 2, 3), .lo = -2, .hi = 2},
    {.op = "rsqrt", .name = "[2,3] positive", .f = f_rsqrt, ONE(2, 2, 3), .lo = 0.3, .hi = 3},
    {.op = "reciprocal", .name = "[2,3] mixed signs, |x| >= 0.3", .f = f_reciprocal_mixed,
     ONE(2, 2, 3), .lo = 0.3, .hi = 2},
    {.op = "sign", .name = "[2,3] mixed signs, |x| >= 0.1 (zero gradient)", .f = f_sign_mixed,
     ONE(2, 2, 3), .lo = 0.1, .hi = 2},
    {.op = "floor", .name = "[2,3] mixed signs, 0.1 <= |x| < 0.9 (zero gradient)",
     .f = f_floor_mixed, ONE(2, 2, 3), .lo = 0.1, .hi = 0.9},
    {.op = "floor", .name = "floor(x) x on [1.1,1.9)", .f = f_floor_times_x, ONE(1, 4),
     .lo = 1.1, .hi = 1.9},
    {.op = "ceil", .name = "[2,3] mixed signs, 0.1 <= |x| < 0.9 (zero gradient)",
     .f = f_ceil_mixed, ONE(2, 2, 3), .lo = 0.1, .hi = 0.9},
    {.op = "round", .name = "[2,3] mixed signs, 0.6 <= |x| < 1.4 (zero gradient)",
     .f = f_round_mixed, ONE(2, 2, 3), .lo = 0.6, .hi = 1.4},
    {.op = "trunc", .name = "[2,3] mixed signs, 0.1 <= |x| < 0.9 (zero gradient)",
     .f = f_trunc_mixed, ONE(2, 2, 3), .lo = 0.1, .hi = 0.9},
    {.op = "silu", .name = "[2,3] in [-4,4)", .f = f_silu, ONE(2, 2, 3), .lo = -4, .hi = 4},
    {.op = "elu", .name = "[2,3] alpha 1, mixed signs, |x| >= 0.1", .f = f_elu_mixed,
     .ctx = &alpha_one, ONE(2, 2, 3), .lo = 0.1, .hi = 2},
    {.op = "elu", .name = "[5] alpha 0.5, mixed signs, |x| >= 0.1", .f = f_elu_mixed,
     .ctx = &alpha_half, ONE(1, 5), .lo = 0.1, .hi = 2},
    {.op = "selu", .name = "[2,3] mixed signs, |x| >= 0.1", .f = f_selu_mixed, ONE(2, 2, 3),
     .lo = 0.1, .hi = 2},
    {.op = "selu", .name = "[5] in [-3,-0.1)", .f = f_selu, ONE(1, 5), .lo = -3, .hi = -0.1},
    {.op = "mish", .name = "[2,3] in [-4,4)", .f = f_mish, ONE(2, 2, 3), .lo = -4, .hi = 4},
    {.op = "hardswish", .name = "[2,3] in [-2.5,2.5)", .f = f_hardswish, ONE(2, 2, 3),
     .lo = -2.5, .hi = 2.5},
    {.op = "hardswish", .name = "[2,3] mixed signs, 3.5 <= |x| < 5", .f = f_hardswish_mixed,
     ONE(2, 2, 3), .lo = 3.5, .hi = 5},
    {.op = "hardsigmoid", .name = "[2,3] in [-2.5,2.5)", .f = f_hardsigmoid, ONE(2, 2, 3),
     .lo = -2.5, .hi = 2.5},
    {.op = "hardsigmoid", .name = "[2,3] mixed signs, 3.5 <= |x| < 5 (flat)",
     .f = f_hardsigmoid_mixed, ONE(2, 2, 3), .lo = 3.5, .hi = 5},
    {.op = "logsigmoid", .name = "[2,3] in [-5,5)", .f = f_logsigmoid, ONE(2, 2, 3), .lo = -5,
     .hi = 5},
    {.op = "logsigmoid", .name = "[3] in [-30,-20)", .f = f_logsigmoid, ONE(1, 3), .lo = -30,
     .hi = -20},
    {.op = "softsign", .name = "[2,3] mixed signs, |x| >= 0.1", .f = f_softsign_mixed,
     ONE(2, 2, 3), .lo = 0.1, .hi = 3},
    {.op = "softsign", .name = "[4] in [20,200)", .f = f_softsign, ONE(1, 4), .lo = 20,
     .hi = 200},
    {.op = "gelu_erf", .name = "[2,3] in [-3,3)", .f = f_gelu_erf, ONE(2, 2, 3), .lo = -3,
     .hi = 3},
    {.op = "clamp_min", .name = "[2,3] in [-1,1), min 0.2", .f = f_clamp_min, ONE(2, 2, 3),
     .lo = -1, .hi = 1},
    {.op = "clamp_max", .name = "[2,3] in [-1,1), max 0.2", .f = f_clamp_max, ONE(2, 2, 3),
     .lo = -1, .hi = 1},
    {.op = "clamp_max", .name = "clamp [3,3] in [-1,1) to [-0.6, 0.2]", .f = f_clamp,
     ONE(2, 3, 3), .lo = -1, .hi = 1},
    {.op = "clamp_min", .name = "hardtanh [3,3] in [-1,1) to (-0.6, 0.2)", .f = f_hardtanh,
     ONE(2, 3, 3), .lo = -1, .hi = 1},
    {.op = "erfinv", .name = "[2,3] in [-0.9,0.9)", .f = f_erfinv, ONE(2, 2, 3), .lo = -0.9,
     .hi = 0.9},
    {.op = "erfinv", .name = "[4] mixed signs, 0.9 <= |x| < 0.99 (the erfc branch)",
     .f = f_erfinv_mixed, ONE(1, 4), .lo = 0.9, .hi = 0.99},
    {.op = "erfinv", .name = "[5] tiny", .f = f_erfinv, ONE(1, 5), .lo = -1e-3, .hi = 1e-3},
    {.op = "sinc", .name = "[2,3] in [-3,3)", .f = f_sinc, ONE(2, 2, 3), .lo = -3, .hi = 3},
    {.op = "sinc", .name = "[4] mixed signs, 1e-3 <= |x| < 0.1", .f = f_sinc_mixed, ONE(1, 4),
     .lo = 1e-3, .hi = 0.1},
    {.op = "sinc", .name = "[3] in [0,1e-300): x^2 pi is 0, the slope's Taylor branch",
     .f = f_sinc, ONE(1, 3), .lo = 0, .hi = 1e-300},
    {.op = "logit", .name = "[2,3] in [0.05,0.95), no eps", .f = f_logit, .ctx = &eps_none,
     ONE(2, 2, 3), .lo = 0.05, .hi = 0.95},
    {.op = "logit", .name = "[3,3] in [-0.5,1.5), eps 0.2: clamped on both sides",
     .f = f_logit, .ctx = &eps_fifth, ONE(2, 3, 3), .lo = -0.5, .hi = 1.5},

    /* binary, same shapes and broadcasting on either side */
    {.op = "add", .name = "[2,3] + [2,3]", .f = f_add, SHAPES2(2, S(2, 3), 2, S(2, 3))},
    {.op = "add", .name = "[2,3] + [3]", .f = f_add, SHAPES2(2, S(2, 3), 1, S(3))},
    {.op = "add", .name = "[3] + [2,3]", .f = f_add, SHAPES2(1, S(3), 2, S(2, 3))},
    {.op = "add", .name = "[1] + [2,2]", .f = f_add, SHAPES2(1, S(1), 2, S(2, 2))},
    {.op = "add", .name = "0-d + [3]", .f = f_add, SHAPES2(0, S(0), 1, S(3))},
    {.op = "add", .name = "[2,1] + [1,3]", .f = f_add, SHAPES2(2, S(2, 1), 2, S(1, 3))},
    {.op = "add", .name = "[9,8] + [8] (more than 64 outputs)", .f = f_add,
     SHAPES2(2, S(9, 8), 1, S(8))},
    {.op = "add", .name = "add_scalar [2,3] + 0.3", .f = f_add_scalar, .ctx = &s_third,
     ONE(2, 2, 3)},
    {.op = "sub", .name = "[2,3] - [2,3]", .f = f_sub, SHAPES2(2, S(2, 3), 2, S(2, 3))},
    {.op = "sub", .name = "[2,3] - [3]", .f = f_sub, SHAPES2(2, S(2, 3), 1, S(3))},
    {.op = "sub", .name = "[3] - [2,1,3]", .f = f_sub, SHAPES2(1, S(3), 3, S(2, 1, 3))},
    {.op = "sub", .name = "[3] - 0-d", .f = f_sub, SHAPES2(1, S(3), 0, S(0))},
    {.op = "sub", .name = "sub_scalar [2,3] - 0.3", .f = f_sub_scalar, .ctx = &s_third,
     ONE(2, 2, 3)},
    {.op = "sub", .name = "rsub_scalar -1.7 - [2,3]", .f = f_rsub_scalar, .ctx = &s_minus,
     ONE(2, 2, 3)},
    {.op = "mul", .name = "[2,3] * [2,3]", .f = f_mul, SHAPES2(2, S(2, 3), 2, S(2, 3))},
    {.op = "mul", .name = "[2,1,3] * [4,1]", .f = f_mul, SHAPES2(3, S(2, 1, 3), 2, S(4, 1))},
    {.op = "mul", .name = "0-d * [3]", .f = f_mul, SHAPES2(0, S(0), 1, S(3))},
    {.op = "mul", .name = "[2,2] * [1]", .f = f_mul, SHAPES2(2, S(2, 2), 1, S(1))},
    {.op = "mul", .name = "a * a * b, [3] used twice", .f = f_mul_reuse,
     SHAPES2(1, S(3), 1, S(3))},
    {.op = "mul", .name = "mul_scalar [2,3] * -1.7", .f = f_mul_scalar, .ctx = &s_minus,
     ONE(2, 2, 3)},
    {.op = "div", .name = "[2,3] / [2,3] positive", .f = f_div,
     SHAPES2(2, S(2, 3), 2, S(2, 3)), .lo = 0.5, .hi = 2},
    {.op = "div", .name = "[2,3] / ([3] + 2)", .f = f_div_shifted,
     SHAPES2(2, S(2, 3), 1, S(3))},
    {.op = "div", .name = "[3] / ([2,1] + 2)", .f = f_div_shifted,
     SHAPES2(1, S(3), 2, S(2, 1))},
    {.op = "div", .name = "0-d / ([3] + 2)", .f = f_div_shifted, SHAPES2(0, S(0), 1, S(3))},
    {.op = "div", .name = "div_scalar [2,3] / -1.7", .f = f_div_scalar, .ctx = &s_minus,
     ONE(2, 2, 3)},
    {.op = "div", .name = "rdiv_scalar 0.3 / [2,3] positive", .f = f_rdiv_scalar,
     .ctx = &s_third, ONE(2, 2, 3), .lo = 0.5, .hi = 2},
    {.op = "pow", .name = "[2,3] ^ [2,3], positive base", .f = f_pow,
     SHAPES2(2, S(2, 3), 2, S(2, 3)), .lo = 0.5, .hi = 2},
    {.op = "pow", .name = "[2,3] ^ [3], positive base", .f = f_pow,
     SHAPES2(2, S(2, 3), 1, S(3)), .lo = 0.5, .hi = 2},
    {.op = "pow", .name = "0-d ^ [2,2], positive base", .f = f_pow,
     SHAPES2(0, S(0), 2, S(2, 2)), .lo = 0.5, .hi = 2},
    {.op = "pow", .name = "rpow_scalar 2.5 ^ [2,3]", .f = f_rpow_scalar, .ctx = &s_base,
     ONE(2, 2, 3)},
    {.op = "maximum", .name = "[2,3] vs [2,3]", .f = f_maximum,
     SHAPES2(2, S(2, 3), 2, S(2, 3))},
    {.op = "maximum", .name = "[2,3] vs [3]", .f = f_maximum, SHAPES2(2, S(2, 3), 1, S(3))},
    {.op = "maximum", .name = "[4,1] vs [2,1,3]", .f = f_maximum,
     SHAPES2(2, S(4, 1), 3, S(2, 1, 3))},
    {.op = "maximum", .name = "maximum(x, x): ties split in halves that add up to 1",
     .f = f_maximum_self, ONE(2, 2, 3)},
    {.op = "maximum", .name = "maximum_scalar [2,3] vs 0.3", .f = f_maximum_scalar,
     .ctx = &s_third, ONE(2, 2, 3)},
    {.op = "minimum", .name = "[2,3] vs [2,3]", .f = f_minimum,
     SHAPES2(2, S(2, 3), 2, S(2, 3))},
    {.op = "minimum", .name = "0-d vs [3]", .f = f_minimum, SHAPES2(0, S(0), 1, S(3))},
    {.op = "minimum", .name = "[2,1] vs [1,3]", .f = f_minimum,
     SHAPES2(2, S(2, 1), 2, S(1, 3))},
    {.op = "minimum", .name = "minimum(x, x): ties split in halves that add up to 1",
     .f = f_minimum_self, ONE(2, 2, 3)},
    {.op = "minimum", .name = "minimum_scalar [2,3] vs 0.3", .f = f_minimum_scalar,
     .ctx = &s_third, ONE(2, 2, 3)},
    {.op = "atan2", .name = "[2,3] vs [2,3]", .f = f_atan2, SHAPES2(2, S(2, 3), 2, S(2, 3))},
    {.op = "atan2", .name = "[2,3] vs [3]", .f = f_atan2, SHAPES2(2, S(2, 3), 1, S(3))},
    {.op = "atan2", .name = "0-d vs [2,2]", .f = f_atan2, SHAPES2(0, S(0), 2, S(2, 2))},
    {.op = "hypot", .name = "[2,3] vs [2,3]", .f = f_hypot, SHAPES2(2, S(2, 3), 2, S(2, 3))},
    {.op = "hypot", .name = "[2,1] vs [1,3]", .f = f_hypot, SHAPES2(2, S(2, 1), 2, S(1, 3))},
    {.op = "xlogy", .name = "[2,3] vs [2,3] positive", .f = f_xlogy,
     SHAPES2(2, S(2, 3), 2, S(2, 3)), .lo = 0.2, .hi = 2},
    {.op = "xlogy", .name = "[2,3] vs [3] + 2, a of both signs", .f = f_xlogy_shifted,
     SHAPES2(2, S(2, 3), 1, S(3))},
    {.op = "xlogy", .name = "[3] vs [2,1] + 2", .f = f_xlogy_shifted,
     SHAPES2(1, S(3), 2, S(2, 1))},
    {.op = "remainder", .name = "(3b + a) mod b, [2,3] vs [2,3], mixed signs",
     .f = f_remainder_shifted, SHAPES2(2, S(2, 3), 2, S(2, 3)), .lo = 0.1, .hi = 0.9},
    {.op = "remainder", .name = "(3b + a) mod b, [2,3] vs [3], mixed signs",
     .f = f_remainder_shifted, SHAPES2(2, S(2, 3), 1, S(3)), .lo = 0.1, .hi = 0.9},
    {.op = "remainder", .name = "(3b + a) mod b, 0-d vs [2,1]", .f = f_remainder_shifted,
     SHAPES2(0, S(0), 2, S(2, 1)), .lo = 0.1, .hi = 0.9},
    {.op = "remainder", .name = "remainder_scalar [2,3] mixed signs mod 0.7",
     .f = f_remainder_scalar_mixed, ONE(2, 2, 3), .lo = 0.1, .hi = 0.6},
    {.op = "fmod", .name = "fmod(3b + a, b), [2,3] vs [2,3], mixed signs",
     .f = f_fmod_shifted, SHAPES2(2, S(2, 3), 2, S(2, 3)), .lo = 0.1, .hi = 0.9},
    {.op = "fmod", .name = "fmod(3b + a, b), [3] vs [2,1], mixed signs",
     .f = f_fmod_shifted, SHAPES2(1, S(3), 2, S(2, 1)), .lo = 0.1, .hi = 0.9},
    {.op = "fmod", .name = "fmod_scalar [2,3] mixed signs by -0.7",
     .f = f_fmod_scalar_mixed, ONE(2, 2, 3), .lo = 0.1, .hi = 0.6},
    {.op = "logaddexp", .name = "[2,3] vs [2,3] in [-3,3)", .f = f_logaddexp,
     SHAPES2(2, S(2, 3), 2, S(2, 3)), .lo = -3, .hi = 3},
    {.op = "logaddexp", .name = "[2,3] vs [3]", .f = f_logaddexp, SHAPES2(2, S(2, 3), 1, S(3))},
    {.op = "logaddexp", .name = "0-d vs [2,2]", .f = f_logaddexp, SHAPES2(0, S(0), 2, S(2, 2))},
    {.op = "logaddexp", .name = "logaddexp(x, x): ties weigh 1/2 each", .f = f_logaddexp_self,
     ONE(2, 2, 3)},
    {.op = "logaddexp", .name = "a gap of 30, [2,3] vs [2,3]", .f = f_logaddexp_gap,
     SHAPES2(2, S(2, 3), 2, S(2, 3))},
    {.op = "logaddexp2", .name = "[2,3] vs [2,3] in [-3,3)", .f = f_logaddexp2,
     SHAPES2(2, S(2, 3), 2, S(2, 3)), .lo = -3, .hi = 3},
    {.op = "logaddexp2", .name = "[2,1] vs [1,3]", .f = f_logaddexp2,
     SHAPES2(2, S(2, 1), 2, S(1, 3))},
    {.op = "logaddexp2", .name = "a gap of 40, [3] vs [2,3]", .f = f_logaddexp2_gap,
     SHAPES2(1, S(3), 2, S(2, 3))},
};
// clang-format on

const size_t n_cases_elementwise = sizeof cases_elementwise / sizeof cases_elementwise[0];
