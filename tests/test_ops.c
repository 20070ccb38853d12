/* Unit tests of the elementwise, binary and reduction ops: forward values by
 * hand, gradients at chosen points, and the PyTorch conventions of
 * /work/shared/SEMANTICS.md at kinks, ties, extremes and empty tensors. */
#include "test_util.h"

#include <string.h>

/* ---- Helpers -------------------------------------------------------------------- */

/* A 1-d leaf of n float64 values. */
static ad_tensor *leaf_vec(ad_tape *tape, int64_t n, const double *values)
{
    return leaf(tape, AD_F64, 1, &n, values);
}

/* ---- Unary ops: values and derivatives against the formulas --------------------------- */

#define GELU_C 0.7978845608028654 /* sqrt(2 / pi) */
#define GELU_A 0.044715
#define PI 3.14159265358979323846

static double r_neg(double x)
{
    return -x;
}
static double d_neg(double x)
{
    (void)x;
    return -1;
}
static double d_exp(double x)
{
    return exp(x);
}
static double d_log(double x)
{
    return 1 / x;
}
static double d_log1p(double x)
{
    return 1 / (1 + x);
}
static double d_sqrt(double x)
{
    return 0.5 / sqrt(x);
}
static double r_square(double x)
{
    return x * x;
}
static double d_square(double x)
{
    return 2 * x;
}
static double d_sin(double x)
{
    return cos(x);
}
static double d_cos(double x)
{
    return -sin(x);
}
static double d_tanh(double x)
{
    return 1 - tanh(x) * tanh(x);
}
static double r_sigmoid(double x)
{
    return 1 / (1 + exp(-x));
}
static double d_sigmoid(double x)
{
    return r_sigmoid(x) * (1 - r_sigmoid(x));
}
static double r_relu(double x)
{
    return x > 0 ? x : 0;
}
static double d_relu(double x)
{
    return x > 0 ? 1 : 0;
}
static double d_abs(double x)
{
    return x > 0 ? 1 : x < 0 ? -1 : 0;
}
static double r_softplus(double x)
{
    return log1p(exp(x));
}
static double r_gelu(double x)
{
    return 0.5 * x * (1 + tanh(GELU_C * (x + GELU_A * x * x * x)));
}
static double d_gelu(double x)
{
    double t = tanh(GELU_C * (x + GELU_A * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * x * x);
}

static double r_erf_slope(double x)
{
    return 1.1283791670955126 * exp(-x * x);
}
static double r_erfc_slope(double x)
{
    return -r_erf_slope(x);
}
static double d_tan(double x)
{
    return 1 + tan(x) * tan(x);
}
static double d_atan(double x)
{
    return 1 / (1 + x * x);
}
static double d_asinh(double x)
{
    return 1 / sqrt(x * x + 1);
}
static double d_log2(double x)
{
    return 1 / (x * 0.6931471805599453);
}
static double d_log10(double x)
{
    return 1 / (x * 2.302585092994046);
}
static double d_exp2(double x)
{
    return exp2(x) * 0.6931471805599453;
}
static double r_rsqrt(double x)
{
    return 1 / sqrt(x);
}
static double d_rsqrt(double x)
{
    return -0.5 / (x * sqrt(x));
}
static double r_reciprocal(double x)
{
    return 1 / x;
}
static double d_reciprocal(double x)
{
    return -1 / (x * x);
}
static double r_silu(double x)
{
    return x / (1 + exp(-x));
}
static double d_silu(double x)
{
    return r_sigmoid(x) * (1 + x * (1 - r_sigmoid(x)));
}
static double r_mish(double x)
{
    return x * tanh(log1p(exp(x)));
}
static double d_mish(double x)
{
    double t = tanh(log1p(exp(x)));
    return t + x * r_sigmoid(x) * (1 - t * t);
}
static double r_logsigmoid(double x)
{
    return fmin(x, 0) - log1p(exp(-fabs(x)));
}
static double d_logsigmoid(double x)
{
    return r_sigmoid(-x);
}
static double r_gelu_erf(double x)
{
    return x * 0.5 * (1 + erf(x * 0.7071067811865476));
}
static double d_gelu_erf(double x)
{
    return 0.5 * (1 + erf(x * 0.7071067811865476)) + x * exp(-0.5 * x * x) * 0.3989422804014327;
}
static double r_softsign(double x)
{
    return x / (1 + fabs(x));
}
static double d_softsign(double x)
{
    return 1 / ((1 + fabs(x)) * (1 + fabs(x)));
}
/* elu with alpha 1 and selu, PyTorch's constants */
static double r_elu(double x)
{
    return x > 0 ? x : expm1(x);
}
static double d_elu(double x)
{
    return x > 0 ? 1 : exp(x);
}
#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946
static double r_selu(double x)
{
    return SELU_SCALE * (x > 0 ? x : SELU_ALPHA * expm1(x));
}
static double d_selu(double x)
{
    return SELU_SCALE * (x > 0 ? 1 : SELU_ALPHA * exp(x));
}
static ad_tensor *ad_elu_1(ad_tensor *x)
{
    return ad_elu(x, 1.0);
}
/* hardswish and hardsigmoid, with the kinks at -3 and 3 (any_x holds 3) */
static double r_hardswish(double x)
{
    return x * fmin(fmax(x + 3, 0), 6) / 6;
}
static double d_hardswish(double x)
{
    return x < -3 ? 0 : x < 3 ? x / 3 + 0.5 : 1;
}
static double r_hardsigmoid(double x)
{
    return fmin(fmax(x + 3, 0), 6) / 6;
}
static double d_hardsigmoid(double x)
{
    return x > -3 && x < 3 ? 1.0 / 6 : 0;
}
/* sinc, normalized, and its slope (cos(pi x) - sinc x) / x; any_x has no 0 */
static double r_sinc(double x)
{
    return sin(PI * x) / (PI * x);
}
static double d_sinc(double x)
{
    return (cos(PI * x) - r_sinc(x)) / x;
}
/* The steps: values from libm, and zero slopes. */
static double d_zero(double x)
{
    (void)x;
    return 0;
}

typedef struct unary_ref {
    const char *name;
    ad_tensor *(*op)(ad_tensor *);
    double (*value)(double);
    double (*slope)(double);
    bool positive; /* domain: x > 0 only */
} unary_ref;

static const unary_ref unary_refs[] = {
    {"neg", ad_neg, r_neg, d_neg, false},
    {"exp", ad_exp, exp, d_exp, false},
    {"log", ad_log, log, d_log, true},
    {"log1p", ad_log1p, log1p, d_log1p, true},
    {"expm1", ad_expm1, expm1, exp, false},
    {"sqrt", ad_sqrt, sqrt, d_sqrt, true},
    {"square", ad_square, r_square, d_square, false},
    {"sin", ad_sin, sin, d_sin, false},
    {"cos", ad_cos, cos, d_cos, false},
    {"tanh", ad_tanh, tanh, d_tanh, false},
    {"sigmoid", ad_sigmoid, r_sigmoid, d_sigmoid, false},
    {"relu", ad_relu, r_relu, d_relu, false},
    {"abs", ad_abs, fabs, d_abs, false},
    {"softplus", ad_softplus, r_softplus, r_sigmoid, false},
    {"gelu", ad_gelu, r_gelu, d_gelu, false},
    {"tan", ad_tan, tan, d_tan, false},
    {"atan", ad_atan, atan, d_atan, false},
    {"sinh", ad_sinh, sinh, cosh, false},
    {"cosh", ad_cosh, cosh, sinh, false},
    {"asinh", ad_asinh, asinh, d_asinh, false},
    {"erf", ad_erf, erf, r_erf_slope, false},
    {"erfc", ad_erfc, erfc, r_erfc_slope, false},
    {"log2", ad_log2, log2, d_log2, true},
    {"log10", ad_log10, log10, d_log10, true},
    {"exp2", ad_exp2, exp2, d_exp2, false},
    {"rsqrt", ad_rsqrt, r_rsqrt, d_rsqrt, true},
    {"reciprocal", ad_reciprocal, r_reciprocal, d_reciprocal, false},
    {"floor", ad_floor, floor, d_zero, false},
    {"ceil", ad_ceil, ceil, d_zero, false},
    {"round", ad_round, nearbyint, d_zero, false},
    {"trunc", ad_trunc, trunc, d_zero, false},
    {"silu", ad_silu, r_silu, d_silu, false},
    {"elu", ad_elu_1, r_elu, d_elu, false},
    {"selu", ad_selu, r_selu, d_selu, false},
    {"mish", ad_mish, r_mish, d_mish, false},
    {"logsigmoid", ad_logsigmoid, r_logsigmoid, d_logsigmoid, false},
    {"softsign", ad_softsign, r_softsign, d_softsign, false},
    {"hardswish", ad_hardswish, r_hardswish, d_hardswish, false},
    {"hardsigmoid", ad_hardsigmoid, r_hardsigmoid, d_hardsigmoid, false},
    {"gelu_erf", ad_gelu_erf, r_gelu_erf, d_gelu_erf, false},
    {"sinc", ad_sinc, r_sinc, d_sinc, false},
};
#define N_UNARY (sizeof unary_refs / sizeof unary_refs[0])

static const double any_x[] = {-2.0, -0.5, 0.25, 1.0, 3.0};
static const double positive_x[] = {0.1, 0.5, 1.0, 2.0, 9.0};

static void test_unary_values_and_gradients_match_their_formulas(void **state)
{
    ad_tape *tape = *state;
    for (size_t k = 0; k < N_UNARY; k++) {
        const unary_ref *u = &unary_refs[k];
        const double *xs = u->positive ? positive_x : any_x;
        ad_tape_reset(tape);
        ad_tensor *x = leaf_vec(tape, 5, xs);
        ad_tensor *y = u->op(x);
        if (!y)
            fail_msg("%s returned NULL: %s", u->name, ad_tape_message(tape));
        ad_tensor *g = grad_of_sum(y, x);
        for (int i = 0; i < 5; i++) {
            double v = ad_tensor_get(y, i), d = ad_tensor_get(g, i);
            if (fabs(v - u->value(xs[i])) > 1e-14 * (1 + fabs(v)) ||
                fabs(d - u->slope(xs[i])) > 1e-12 * (1 + fabs(d)))
                fail_msg("%s(%g) = %.17g with gradient %.17g; expected %.17g and %.17g", u->name,
                         xs[i], v, d, u->value(xs[i]), u->slope(xs[i]));
        }
    }
}

static void test_unary_values_match_hand_computed_numbers(void **state)
{
    ad_tape *tape = *state;
    const double one[1] = {1.0}, two[1] = {2.0}, four[1] = {4.0};
    assert_close(-1.0, ad_value(ad_neg(leaf_vec(tape, 1, one))), 0, 0);
    assert_close(2.718281828459045, ad_value(ad_exp(leaf_vec(tape, 1, one))), 1e-15, 0);
    assert_close(0.6931471805599453, ad_value(ad_log(leaf_vec(tape, 1, two))), 1e-15, 0);
    assert_close(0.6931471805599453, ad_value(ad_log1p(leaf_vec(tape, 1, one))), 1e-15, 0);
    assert_close(2.0, ad_value(ad_sqrt(leaf_vec(tape, 1, four))), 0, 0);
    assert_close(16.0, ad_value(ad_square(leaf_vec(tape, 1, four))), 0, 0);
    assert_close(0.8414709848078965, ad_value(ad_sin(leaf_vec(tape, 1, one))), 1e-15, 0);
    assert_close(0.5403023058681398, ad_value(ad_cos(leaf_vec(tape, 1, one))), 1e-15, 0);
    assert_close(0.7615941559557649, ad_value(ad_tanh(leaf_vec(tape, 1, one))), 1e-15, 0);
    assert_close(0.7310585786300049, ad_value(ad_sigmoid(leaf_vec(tape, 1, one))), 1e-15, 0);
    assert_close(1.3132616875182228, ad_value(ad_softplus(leaf_vec(tape, 1, one))), 1e-15, 0);
    assert_close(8.0, ad_value(ad_pow_scalar(leaf_vec(tape, 1, two), 3.0)), 0, 0);
    assert_close(0.5, ad_value(ad_pow_scalar(leaf_vec(tape, 1, four), -0.5)), 1e-15, 0);
    assert_close(-0.2, ad_value(ad_leaky_relu(ad_neg(leaf_vec(tape, 1, two)), 0.1)), 1e-15, 0);
}

static void test_gelu_matches_hand_computed_values(void **state)
{
    ad_tape *tape = *state;
    const double x[6] = {1.0, -1.0, 2.0, 0.0, -3.0, 0.5};
    /* torch.nn.functional.gelu(x, approximate='tanh') in float64 */
    const double want[6] = {0.8411919906082768,     -0.15880800939172324, 1.954597694087775, 0.0,
                            -0.0036373920817729943, 0.34571400982514394};
    ad_tensor *xs = leaf_vec(tape, 6, x);
    ad_tensor *y = ad_gelu(xs);
    assert_values(y, 6, want, 1e-14, 1e-300);
    ad_tensor *g = grad_of_sum(y, xs);
    /* At 0 the derivative is exactly 1/2. */
    assert_close(0.5, ad_tensor_get(g, 3), 0, 0);
    for (int i = 0; i < 6; i++)
        assert_close(d_gelu(x[i]), ad_tensor_get(g, i), 1e-13, 1e-15);
}

static void test_pow_scalar_value_and_gradient(void **state)
{
    ad_tape *tape = *state;
    const double x[3] = {0.5, 2.0, 3.0};
    const double ps[5] = {0.0, 1.0, 2.0, 3.0, -1.5};
    for (int k = 0; k < 5; k++) {
        double p = ps[k];
        ad_tensor *xs = leaf_vec(tape, 3, x);
        ad_tensor *y = ad_pow_scalar(xs, p);
        ad_tensor *g = grad_of_sum(y, xs);
        for (int i = 0; i < 3; i++) {
            assert_close(pow(x[i], p), ad_tensor_get(y, i), 1e-15, 0);
            assert_close(p == 0 ? 0.0 : p * pow(x[i], p - 1), ad_tensor_get(g, i), 1e-14, 0);
        }
    }
}

static void test_leaky_relu_gradient_is_one_above_zero_and_the_slope_at_or_below(void **state)
{
    ad_tape *tape = *state;
    const double x[5] = {-2.0, -0.0, 0.0, 1e-300, 3.0};
    ad_tensor *xs = leaf_vec(tape, 5, x);
    ad_tensor *y = ad_leaky_relu(xs, 0.1);
    const double want_y[5] = {-0.2, 0.0, 0.0, 1e-300, 3.0};
    const double want_g[5] = {0.1, 0.1, 0.1, 1.0, 1.0};
    assert_values(y, 5, want_y, 1e-15, 0);
    assert_exact(grad_of_sum(y, xs), 5, want_g);
}

/* ---- Conventions at kinks ------------------------------------------------------------- */

static void test_relu_gradient_at_zero_is_zero_for_both_signs_of_zero(void **state)
{
    ad_tape *tape = *state;
    const double x[4] = {0.0, -0.0, 1e-300, -1e-300};
    ad_tensor *xs = leaf_vec(tape, 4, x);
    ad_tensor *y = ad_relu(xs);
    const double want_y[4] = {0.0, 0.0, 1e-300, 0.0};
    const double want_g[4] = {0.0, 0.0, 1.0, 0.0};
    assert_exact(y, 4, want_y);
    assert_exact(grad_of_sum(y, xs), 4, want_g);
}

static void test_abs_gradient_at_zero_is_zero(void **state)
{
    ad_tape *tape = *state;
    const double x[4] = {0.0, -0.0, 2.0, -3.0};
    ad_tensor *xs = leaf_vec(tape, 4, x);
    ad_tensor *y = ad_abs(xs);
    const double want_y[4] = {0.0, 0.0, 2.0, 3.0};
    const double want_g[4] = {0.0, 0.0, 1.0, -1.0};
    assert_exact(y, 4, want_y);
    assert_exact(grad_of_sum(y, xs), 4, want_g);
}

static void test_sqrt_gradient_at_zero_is_positive_infinity(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {0.0, 4.0};
    ad_tensor *xs = leaf_vec(tape, 2, x);
    ad_tensor *y = ad_sqrt(xs);
    ad_tensor *g = grad_of_sum(y, xs);
    assert_true(ad_tensor_get(y, 0) == 0.0);
    double g0 = ad_tensor_get(g, 0);
    if (!(isinf(g0) && g0 > 0))
        fail_msg("sqrt'(0) = %g, expected +inf", g0);
    assert_close(0.25, ad_tensor_get(g, 1), 0, 0);
}

static void test_pow_scalar_with_p_zero_has_exactly_zero_gradient_at_zero(void **state)
{
    ad_tape *tape = *state;
    const double x[3] = {0.0, -0.0, 2.0};
    ad_tensor *xs = leaf_vec(tape, 3, x);
    ad_tensor *y = ad_pow_scalar(xs, 0.0);
    const double ones[3] = {1.0, 1.0, 1.0}, zeros[3] = {0.0, 0.0, 0.0};
    assert_exact(y, 3, ones);
    assert_exact(grad_of_sum(y, xs), 3, zeros);
}

static void test_pow_gradient_in_the_exponent_is_zero_at_a_zero_base(void **state)
{
    ad_tape *tape = *state;
    const double a[3] = {0.0, 0.0, 0.0}, b[3] = {0.0, 2.0, 0.5};
    ad_tensor *in[2] = {leaf_vec(tape, 3, a), leaf_vec(tape, 3, b)};
    ad_tensor *y = ad_pow(in[0], in[1]);
    const double want_y[3] = {1.0, 0.0, 0.0}, zeros[3] = {0.0, 0.0, 0.0};
    assert_exact(y, 3, want_y);
    ad_tensor *g[2];
    grads_of_sum(y, 2, in, g);
    assert_exact(g[1], 3, zeros);
}

/* PyTorch (pow_backward_self): d/da a^b is 0 where b = 0, even at a = 0, where
 * the formula b a^(b-1) would give 0 * inf = NaN. Elsewhere at a = 0 it is
 * b a^(b-1): 0 for b = 2, +inf for b = 0.5. */
static void test_pow_gradient_in_the_base_is_zero_for_a_zero_exponent(void **state)
{
    ad_tape *tape = *state;
    const double a[4] = {0.0, 2.0, 0.0, 0.0}, b[4] = {0.0, 0.0, 2.0, 0.5};
    ad_tensor *in[2] = {leaf_vec(tape, 4, a), leaf_vec(tape, 4, b)};
    ad_tensor *y = ad_pow(in[0], in[1]);
    ad_tensor *g[2];
    grads_of_sum(y, 2, in, g);
    const double want[4] = {0.0, 0.0, 0.0, INFINITY};
    assert_exact(g[0], 4, want);
}

static void test_maximum_and_minimum_ties_give_each_operand_half(void **state)
{
    ad_tape *tape = *state;
    const double a[3] = {1.0, 2.0, 3.0}, b[3] = {1.0, 5.0, -1.0};
    ad_tensor *in[2] = {leaf_vec(tape, 3, a), leaf_vec(tape, 3, b)};
    ad_tensor *g[2];
    ad_tensor *hi = ad_maximum(in[0], in[1]);
    const double want_hi[3] = {1.0, 5.0, 3.0};
    assert_exact(hi, 3, want_hi);
    grads_of_sum(hi, 2, in, g);
    const double hi_a[3] = {0.5, 0.0, 1.0}, hi_b[3] = {0.5, 1.0, 0.0};
    assert_exact(g[0], 3, hi_a);
    assert_exact(g[1], 3, hi_b);

    ad_tensor *lo = ad_minimum(in[0], in[1]);
    const double want_lo[3] = {1.0, 2.0, -1.0};
    assert_exact(lo, 3, want_lo);
    grads_of_sum(lo, 2, in, g);
    const double lo_a[3] = {0.5, 1.0, 0.0}, lo_b[3] = {0.5, 0.0, 1.0};
    assert_exact(g[0], 3, lo_a);
    assert_exact(g[1], 3, lo_b);
}

static void test_maximum_tie_with_a_broadcast_scalar_sums_the_halves(void **state)
{
    ad_tape *tape = *state;
    const double a[3] = {1.0, 1.0, 0.0}, s = 1.0;
    ad_tensor *in[2] = {leaf_vec(tape, 3, a), leaf(tape, AD_F64, 0, NULL, &s)};
    ad_tensor *g[2];
    grads_of_sum(ad_maximum(in[0], in[1]), 2, in, g);
    const double ga[3] = {0.5, 0.5, 0.0}, gs[1] = {2.0};
    assert_exact(g[0], 3, ga);
    assert_exact(g[1], 1, gs);
    assert_int_equal(ad_tensor_ndim(g[1]), 0);
}

static void test_max_reduction_splits_ties_evenly(void **state)
{
    ad_tape *tape = *state;
    const double x[4] = {3.0, 1.0, 3.0, 3.0};
    ad_tensor *xs = leaf_vec(tape, 4, x);
    ad_tensor *m = ad_max(xs, 0, NULL, false);
    assert_close(3.0, ad_value(m), 0, 0);
    const double third = 1.0 / 3.0;
    const double want[4] = {third, 0.0, third, third};
    assert_exact(grad_of_sum(m, xs), 4, want);

    /* Along an axis: each row splits its own ties. */
    int64_t shape[2] = {2, 2};
    const double x2[4] = {2.0, 2.0, 1.0, 3.0};
    ad_tensor *x2s = leaf(tape, AD_F64, 2, shape, x2);
    const int last[1] = {-1};
    ad_tensor *rows = ad_max(x2s, 1, last, true);
    const int64_t kept[2] = {2, 1};
    assert_shape(rows, 2, kept);
    const double want_rows[2] = {2.0, 3.0}, want_g[4] = {0.5, 0.5, 0.0, 1.0};
    assert_exact(rows, 2, want_rows);
    assert_exact(grad_of_sum(rows, x2s), 4, want_g);
}

/* ---- Extremes ------------------------------------------------------------------------- */

static void test_sigmoid_is_finite_and_correct_at_plus_minus_800(void **state)
{
    ad_tape *tape = *state;
    for (int dt = 0; dt < 2; dt++) {
        ad_tape_reset(tape);
        int64_t n = 4;
        const double x[4] = {-800.0, 800.0, -700.0, 700.0};
        ad_tensor *xs = leaf(tape, (ad_dtype)dt, 1, &n, x);
        ad_tensor *y = ad_sigmoid(xs);
        ad_tensor *g = grad_of_sum(y, xs);
        double tiny = dt == AD_F64 ? 9.85967654375977e-305 : 0.0; /* exp(-700) */
        const double want_y[4] = {0.0, 1.0, tiny, 1.0};
        const double want_g[4] = {0.0, 0.0, tiny, 0.0};
        for (int i = 0; i < 4; i++) {
            assert_true(isfinite(ad_tensor_get(y, i)));
            assert_true(isfinite(ad_tensor_get(g, i)));
        }
        assert_values(y, 4, want_y, 1e-13, 0);
        assert_values(g, 4, want_g, 1e-13, 0);
    }
}

static void test_logsumexp_of_plus_minus_1000_is_finite(void **state)
{
    ad_tape *tape = *state;
    int64_t shape[2] = {3, 2};
    const double x[6] = {1000.0, 1000.0, -1000.0, -1000.0, 1000.0, -1000.0};
    ad_tensor *xs = leaf(tape, AD_F64, 2, shape, x);
    const int last[1] = {1};
    ad_tensor *y = ad_logsumexp(xs, 1, last, false);
    const double log2 = 0.6931471805599453;
    const double want_y[3] = {1000.0 + log2, -1000.0 + log2, 1000.0};
    assert_values(y, 3, want_y, 1e-15, 0);
    /* exp(x - y) with y = 1000 + log 2 rounded to ulp(1000) ~ 1e-13: torch
     * gives 0.5000000000000275 too. */
    const double want_g[6] = {0.5, 0.5, 0.5, 0.5, 1.0, 0.0};
    assert_values(grad_of_sum(y, xs), 6, want_g, 1e-12, 0);

    /* float32, all of it: the max is subtracted, so nothing overflows. */
    int64_t n = 2;
    const double big[2] = {1000.0, 1000.0};
    ad_tensor *f = leaf(tape, AD_F32, 1, &n, big);
    assert_close(1000.0 + log2, ad_value(ad_logsumexp(f, 0, NULL, false)), 1e-6, 0);
}

static void test_log1p_is_accurate_for_tiny_inputs(void **state)
{
    ad_tape *tape = *state;
    const double x[1] = {1e-20};
    ad_tensor *xs = leaf_vec(tape, 1, x);
    ad_tensor *y = ad_log1p(xs);
    assert_close(1e-20, ad_value(y), 1e-15, 0);
    assert_close(1.0, ad_value(grad_of_sum(y, xs)), 1e-15, 0);
    int64_t n = 1;
    ad_tensor *f = leaf(tape, AD_F32, 1, &n, x);
    assert_close(1e-20, ad_value(ad_log1p(f)), 1e-6, 0);
}

static void test_expm1_is_accurate_for_tiny_inputs(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {1e-20, -3e-10};
    ad_tensor *xs = leaf_vec(tape, 2, x);
    ad_tensor *y = ad_expm1(xs);
    /* exp(x) - 1 would give 0 and -3.000000248e-10 here */
    assert_close(1e-20, ad_tensor_get(y, 0), 1e-15, 0);
    assert_close(-2.99999999955e-10, ad_tensor_get(y, 1), 1e-11, 0);
    ad_tensor *g = grad_of_sum(y, xs);
    assert_close(1.0, ad_tensor_get(g, 0), 1e-15, 0);
    assert_close(0.9999999997, ad_tensor_get(g, 1), 1e-15, 0);
}

static void test_expm1_of_a_failed_op_is_null_and_keeps_the_first_error(void **state)
{
    ad_tape *tape = *state;
    int64_t n2 = 2, n3 = 3;
    ad_tensor *a = ad_tape_tensor(tape, AD_F64, 1, &n2, NULL);
    ad_tensor *b = ad_tape_tensor(tape, AD_F64, 1, &n3, NULL);
    assert_null(ad_expm1(ad_add(a, b)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_non_null(strstr(ad_tape_message(tape), "add: shapes [2] and [3]"));
}

static void test_softplus_is_exactly_x_above_20(void **state)
{
    ad_tape *tape = *state;
    for (int dt = 0; dt < 2; dt++) {
        ad_tape_reset(tape);
        int64_t n = 5;
        const double x[5] = {20.5, 30.0, 100.0, 1000.0, 20.0};
        ad_tensor *xs = leaf(tape, (ad_dtype)dt, 1, &n, x);
        ad_tensor *y = ad_softplus(xs);
        ad_tensor *g = grad_of_sum(y, xs);
        for (int i = 0; i < 4; i++) {
            assert_true(ad_tensor_get(y, i) == x[i]);
            assert_true(ad_tensor_get(g, i) == 1.0);
        }
        /* At 20 itself: log1p(exp(20)) and sigmoid(20), as torch. */
        assert_close(20.000000002061153, ad_tensor_get(y, 4), dt == AD_F64 ? 1e-15 : 1e-7, 0);
        assert_close(0.9999999979388464, ad_tensor_get(g, 4), dt == AD_F64 ? 1e-15 : 1e-7, 0);
    }
}

/* NaN propagates through relu as through every other op (torch.relu(nan) is
 * nan); its gradient there is 0, as at any x that is not > 0. */
static void test_relu_of_nan_is_nan(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {NAN, 1.0};
    ad_tensor *xs = leaf_vec(tape, 2, x);
    ad_tensor *y = ad_relu(xs);
    assert_true(isnan(ad_tensor_get(y, 0)));
    assert_close(1.0, ad_tensor_get(y, 1), 0, 0);
}

static void test_tanh_and_exp_saturate_without_nan(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {-1000.0, 1000.0};
    ad_tensor *xs = leaf_vec(tape, 2, x);
    ad_tensor *t = ad_tanh(xs);
    const double want_t[2] = {-1.0, 1.0}, want_g[2] = {0.0, 0.0};
    assert_exact(t, 2, want_t);
    assert_exact(grad_of_sum(t, xs), 2, want_g);
}

/* ---- The ops of issue 11 at special points, as PyTorch 1.13 ------------------------------ */

static ad_tensor *elu_half(ad_tensor *x)
{
    return ad_elu(x, 0.5);
}
static ad_tensor *clamp_1(ad_tensor *x)
{
    return ad_clamp(x, -1.0, 1.0);
}
static ad_tensor *clamp_min_half(ad_tensor *x)
{
    return ad_clamp_min(x, 0.5);
}
static ad_tensor *clamp_max_half(ad_tensor *x)
{
    return ad_clamp_max(x, 0.5);
}
static ad_tensor *clamp_crossed(ad_tensor *x)
{
    return ad_clamp(x, 2.0, -1.0);
}
static ad_tensor *hardtanh_1(ad_tensor *x)
{
    return ad_hardtanh(x, -1.0, 1.0);
}
static ad_tensor *logit_none(ad_tensor *x)
{
    return ad_logit(x, -1.0);
}
static ad_tensor *logit_tenth(ad_tensor *x)
{
    return ad_logit(x, 0.1);
}

#define N_SPECIAL 14
static const double special_x[N_SPECIAL] = {NAN, INFINITY, -INFINITY, 0.0,  -0.0, -1.0,   1.0,
                                            3.0, -3.0,     0.5,       -0.5, 2.5,  1000.0, -1000.0};

typedef struct special_row {
    const char *name;
    ad_tensor *(*op)(ad_tensor *);
    double y[N_SPECIAL], g[N_SPECIAL];
} special_row;

/* torch.<op>(x) and the gradient of its sum, float64, at special_x (generated
 * with PyTorch 1.13; elu alpha 1 and 0.5, clamp(-1, 1), clamp_min(0.5),
 * clamp_max(0.5), clamp(2, -1), hardtanh(-1, 1), logit without eps and with
 * eps 0.1, each point taken where PyTorch's vectorised loop computes it, so
 * that logit's gradient at -0 is its -inf: dy / (x (1 - x)); its scalar
 * tail gives +inf). Two deliberate
 * differences: hardsigmoid's slope is exactly 1/6 where PyTorch's float64
 * kernel uses the float 1/6 (0.1666666716337204); and hardswish at x = 3 is
 * 1, as PyTorch's vectorised kernel gives (its scalar tail gives 1.5). */
// clang-format off
static const special_row special_rows[] = {
    {"tan", ad_tan, {NAN, NAN, NAN, 0.0, -0.0, -1.5574077246549023, 1.5574077246549023, -0.1425465430742778, 0.1425465430742778, 0.5463024898437905, -0.5463024898437905, -0.7470222972386603, 1.4703241557027185, -1.4703241557027185}, {NAN, NAN, NAN, 1.0, 1.0, 3.42551882081476, 3.42551882081476, 1.0203195169424268, 1.0203195169424268, 1.2984464104095248, 1.2984464104095248, 1.5580423125717253, 3.161853122842912, 3.161853122842912}},
    {"atan", ad_atan, {NAN, 1.5707963267948966, -1.5707963267948966, 0.0, -0.0, -0.7853981633974483, 0.7853981633974483, 1.2490457723982544, -1.2490457723982544, 0.4636476090008061, -0.4636476090008061, 1.1902899496825317, 1.5697963271282298, -1.5697963271282298}, {NAN, 0.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.1, 0.1, 0.8, 0.8, 0.13793103448275862, 9.99999000001e-07, 9.99999000001e-07}},
    {"asin", ad_asin, {NAN, NAN, NAN, 0.0, -0.0, -1.5707963267948966, 1.5707963267948966, NAN, NAN, 0.5235987755982989, -0.5235987755982989, NAN, NAN, NAN}, {NAN, NAN, NAN, 1.0, 1.0, INFINITY, INFINITY, NAN, NAN, 1.1547005383792517, 1.1547005383792517, NAN, NAN, NAN}},
    {"acos", ad_acos, {NAN, NAN, NAN, 1.5707963267948966, 1.5707963267948966, 3.141592653589793, 0.0, NAN, NAN, 1.0471975511965976, 2.0943951023931957, NAN, NAN, NAN}, {NAN, NAN, NAN, -1.0, -1.0, -INFINITY, -INFINITY, NAN, NAN, -1.1547005383792517, -1.1547005383792517, NAN, NAN, NAN}},
    {"sinh", ad_sinh, {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.1752011936438014, 1.1752011936438014, 10.017874927409903, -10.017874927409903, 0.5210953054937474, -0.5210953054937474, 6.0502044810397875, INFINITY, -INFINITY}, {NAN, INFINITY, INFINITY, 1.0, 1.0, 1.5430806348152437, 1.5430806348152437, 10.067661995777765, 10.067661995777765, 1.1276259652063807, 1.1276259652063807, 6.132289479663686, INFINITY, INFINITY}},
    {"cosh", ad_cosh, {NAN, INFINITY, INFINITY, 1.0, 1.0, 1.5430806348152437, 1.5430806348152437, 10.067661995777765, 10.067661995777765, 1.1276259652063807, 1.1276259652063807, 6.132289479663686, INFINITY, INFINITY}, {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.1752011936438014, 1.1752011936438014, 10.017874927409903, -10.017874927409903, 0.5210953054937474, -0.5210953054937474, 6.0502044810397875, INFINITY, -INFINITY}},
    {"asinh", ad_asinh, {NAN, INFINITY, -INFINITY, 0.0, -0.0, -0.881373587019543, 0.881373587019543, 1.8184464592320668, -1.8184464592320668, 0.48121182505960347, -0.48121182505960347, 1.6472311463710958, 7.600902709541988, -7.600902709541988}, {NAN, 0.0, 0.0, 1.0, 1.0, 0.7071067811865475, 0.7071067811865475, 0.31622776601683794, 0.31622776601683794, 0.8944271909999159, 0.8944271909999159, 0.3713906763541037, 0.000999999500000375, 0.000999999500000375}},
    {"acosh", ad_acosh, {NAN, INFINITY, NAN, NAN, NAN, NAN, 0.0, 1.762747174039086, NAN, NAN, NAN, 1.566799236972411, 7.600902209541989, NAN}, {NAN, 0.0, 0.0, NAN, NAN, INFINITY, INFINITY, 0.35355339059327373, 0.35355339059327373, NAN, NAN, 0.4364357804719848, 0.0010000005000003751, 0.0010000005000003751}},
    {"atanh", ad_atanh, {NAN, NAN, NAN, 0.0, -0.0, -INFINITY, INFINITY, NAN, NAN, 0.5493061443340548, -0.5493061443340548, NAN, NAN, NAN}, {NAN, -0.0, -0.0, 1.0, 1.0, INFINITY, INFINITY, -0.125, -0.125, 1.3333333333333333, 1.3333333333333333, -0.19047619047619047, -1.000001000001e-06, -1.000001000001e-06}},
    {"erf", ad_erf, {NAN, 1.0, -1.0, 0.0, -0.0, -0.8427007929497149, 0.8427007929497149, 0.9999779095030014, -0.9999779095030014, 0.5204998778130465, -0.5204998778130465, 0.999593047982555, 1.0, -1.0}, {NAN, 0.0, 0.0, 1.1283791670955126, 1.1283791670955126, 0.4151074974205947, 0.4151074974205947, 0.00013925305194674786, 0.00013925305194674786, 0.8787825789354448, 0.8787825789354448, 0.00217828423035271, 0.0, 0.0}},
    {"erfc", ad_erfc, {NAN, 0.0, 2.0, 1.0, 1.0, 1.8427007929497148, 0.15729920705028513, 2.209049699858544e-05, 1.9999779095030015, 0.4795001221869535, 1.5204998778130465, 0.0004069520174449589, 0.0, 2.0}, {NAN, -0.0, -0.0, -1.1283791670955126, -1.1283791670955126, -0.4151074974205947, -0.4151074974205947, -0.00013925305194674786, -0.00013925305194674786, -0.8787825789354448, -0.8787825789354448, -0.00217828423035271, -0.0, -0.0}},
    {"log2", ad_log2, {NAN, INFINITY, NAN, -INFINITY, -INFINITY, NAN, 0.0, 1.584962500721156, NAN, -1.0, NAN, 1.3219280948873624, 9.965784284662087, NAN}, {NAN, 0.0, -0.0, INFINITY, -INFINITY, -1.4426950408889634, 1.4426950408889634, 0.48089834696298783, -0.48089834696298783, 2.8853900817779268, -2.8853900817779268, 0.5770780163555853, 0.0014426950408889636, -0.0014426950408889636}},
    {"log10", ad_log10, {NAN, INFINITY, NAN, -INFINITY, -INFINITY, NAN, 0.0, 0.47712125471966244, NAN, -0.3010299956639812, NAN, 0.3979400086720376, 3.0, NAN}, {NAN, 0.0, -0.0, INFINITY, -INFINITY, -0.43429448190325187, 0.43429448190325187, 0.14476482730108395, -0.14476482730108395, 0.8685889638065037, -0.8685889638065037, 0.17371779276130075, 0.00043429448190325184, -0.00043429448190325184}},
    {"exp2", ad_exp2, {NAN, INFINITY, 0.0, 1.0, 1.0, 0.5, 2.0, 8.0, 0.125, 1.4142135623730951, 0.7071067811865476, 5.656854249492381, 1.0715086071862673e+301, 9.332636185032189e-302}, {NAN, INFINITY, 0.0, 0.6931471805599453, 0.6931471805599453, 0.34657359027997264, 1.3862943611198906, 5.545177444479562, 0.08664339756999316, 0.9802581434685472, 0.4901290717342736, 3.921032573874189, 7.427131700168751e+300, 6.468890458846786e-302}},
    {"rsqrt", ad_rsqrt, {NAN, 0.0, NAN, INFINITY, -INFINITY, NAN, 1.0, 0.5773502691896258, NAN, 1.414213562373095, NAN, 0.6324555320336759, 0.03162277660168379, NAN}, {NAN, -0.0, NAN, -INFINITY, INFINITY, NAN, -0.5, -0.09622504486493767, NAN, -1.4142135623730947, NAN, -0.1264911064067352, -1.5811388300841894e-05, NAN}},
    {"reciprocal", ad_reciprocal, {NAN, 0.0, -0.0, INFINITY, -INFINITY, -1.0, 1.0, 0.3333333333333333, -0.3333333333333333, 2.0, -2.0, 0.4, 0.001, -0.001}, {NAN, -0.0, -0.0, -INFINITY, -INFINITY, -1.0, -1.0, -0.1111111111111111, -0.1111111111111111, -4.0, -4.0, -0.16000000000000003, -1e-06, -1e-06}},
    {"sign", ad_sign, {0.0, 1.0, -1.0, 0.0, 0.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"floor", ad_floor, {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.0, 1.0, 3.0, -3.0, 0.0, -1.0, 2.0, 1000.0, -1000.0}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"ceil", ad_ceil, {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.0, 1.0, 3.0, -3.0, 1.0, -0.0, 3.0, 1000.0, -1000.0}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"round", ad_round, {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.0, 1.0, 3.0, -3.0, 0.0, -0.0, 2.0, 1000.0, -1000.0}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"trunc", ad_trunc, {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.0, 1.0, 3.0, -3.0, 0.0, -0.0, 2.0, 1000.0, -1000.0}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"silu", ad_silu, {NAN, INFINITY, NAN, 0.0, -0.0, -0.2689414213699951, 0.7310585786300049, 2.8577223804672998, -0.14227761953270035, 0.3112296656009273, -0.1887703343990727, 2.3103545499468914, 1000.0, -0.0}, {NAN, NAN, NAN, 0.5, 0.5, 0.07232948812851325, 0.9276705118714869, 1.0881041060151693, -0.08810410601516962, 0.7399611873026519, 0.2600388126973482, 1.0994011113415267, 1.0, -0.0}},
    {"elu", ad_elu_1, {NAN, INFINITY, -1.0, 0.0, 0.0, -0.6321205588285577, 1.0, 3.0, -0.950212931632136, 0.5, -0.3934693402873666, 2.5, 1000.0, -1.0}, {NAN, 1.0, 0.0, 1.0, 1.0, 0.36787944117144233, 1.0, 1.0, 0.049787068367863944, 1.0, 0.6065306597126334, 1.0, 1.0, 0.0}},
    {"elu_alpha_0.5", elu_half, {NAN, INFINITY, -0.5, 0.0, 0.0, -0.31606027941427883, 1.0, 3.0, -0.475106465816068, 0.5, -0.1967346701436833, 2.5, 1000.0, -0.5}, {NAN, 1.0, 0.0, 0.5, 0.5, 0.18393972058572117, 1.0, 1.0, 0.024893534183931972, 1.0, 0.3032653298563167, 1.0, 1.0, 0.0}},
    {"selu", ad_selu, {NAN, INFINITY, -1.7580993408473766, 0.0, 0.0, -1.1113307378125625, 1.0507009873554805, 3.1521029620664414, -1.6705687287671118, 0.5253504936777402, -0.6917581878028713, 2.626752468388701, 1050.7009873554805, -1.7580993408473766}, {NAN, 1.0507009873554805, 0.0, 1.7580993408473766, 1.7580993408473766, 0.646768603034814, 1.0507009873554805, 1.0507009873554805, 0.08753061208026487, 1.0507009873554805, 1.0663411530445053, 1.0507009873554805, 1.0507009873554805, 0.0}},
    {"mish", ad_mish, {NAN, INFINITY, NAN, 0.0, -0.0, -0.30340146137410895, 0.8650983882673103, 2.9865350049679575, -0.1456474612756246, 0.3752452113048951, -0.22074377465173, 2.471392304557881, 1000.0, -0.0}, {NAN, NAN, NAN, 0.6, 0.6, 0.059216755877395014, 1.0490362200997922, 1.0211069109294435, -0.09339311453232084, 0.8864243753577272, 0.28951067791351226, 1.041129530131353, 1.0, 0.0}},
    {"softsign", ad_softsign, {NAN, NAN, NAN, 0.0, -0.0, -0.5, 0.5, 0.75, -0.75, 0.3333333333333333, -0.3333333333333333, 0.7142857142857143, 0.999000999000999, -0.999000999000999}, {NAN, NAN, NAN, 1.0, 1.0, 0.25, 0.25, 0.0625, 0.0625, 0.4444444444444444, 0.4444444444444444, 0.08163265306122447, 9.98002996005021e-07, 9.98002996005021e-07}},
    {"logsigmoid", ad_logsigmoid, {NAN, 0.0, -INFINITY, -0.6931471805599453, -0.6931471805599453, -1.3132616875182228, -0.31326168751822286, -0.04858735157374206, -3.048587351573742, -0.4740769841801067, -0.9740769841801067, -0.07888973429254963, 0.0, -1000.0}, {NAN, 0.0, 1.0, 0.5, 0.5, 0.7310585786300049, 0.2689414213699951, 0.04742587317756679, 0.9525741268224333, 0.37754066879814546, 0.6224593312018545, 0.07585818002124356, 0.0, 1.0}},
    {"hardswish", ad_hardswish, {NAN, INFINITY, NAN, 0.0, -0.0, -0.3333333333333333, 0.6666666666666666, 3.0, -0.0, 0.2916666666666667, -0.20833333333333334, 2.2916666666666665, 1000.0, -0.0}, {NAN, 1.0, 0.0, 0.5, 0.5, 0.16666666666666669, 0.8333333333333333, 1.0, -0.5, 0.6666666666666666, 0.33333333333333337, 1.3333333333333335, 1.0, 0.0}},
    {"hardsigmoid", ad_hardsigmoid, {NAN, 1.0, 0.0, 0.5, 0.5, 0.3333333333333333, 0.6666666666666666, 1.0, 0.0, 0.5833333333333334, 0.4166666666666667, 0.9166666666666666, 1.0, 0.0}, {0.0, 0.0, 0.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 0.0, 0.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 0.0, 0.0}},
    {"gelu_erf", ad_gelu_erf, {NAN, INFINITY, NAN, 0.0, -0.0, -0.15865525393145702, 0.841344746068543, 2.99595030590511, -0.00404969409489031, 0.34573123063700656, -0.15426876936299344, 2.4844758366855597, 1000.0, -0.0}, {NAN, NAN, NAN, 0.5, 0.5, -0.08331547058768635, 1.0833154705876864, 1.011945647204184, -0.01194564720418392, 0.8674951246561629, 0.13250487534383712, 1.037611085908145, 1.0, 0.0}},
    {"clamp_-1_1", clamp_1, {NAN, 1.0, -1.0, 0.0, -0.0, -1.0, 1.0, 1.0, -1.0, 0.5, -0.5, 1.0, 1.0, -1.0}, {0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0}},
    {"clamp_min_0.5", clamp_min_half, {NAN, INFINITY, 0.5, 0.5, 0.5, 0.5, 1.0, 3.0, 0.5, 0.5, 0.5, 2.5, 1000.0, 0.5}, {0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0}},
    {"clamp_max_0.5", clamp_max_half, {NAN, 0.5, -INFINITY, 0.0, -0.0, -1.0, 0.5, 0.5, -3.0, 0.5, -0.5, 0.5, 0.5, -1000.0}, {0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0}},
    {"clamp_2_-1", clamp_crossed, {NAN, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"hardtanh", hardtanh_1, {NAN, 1.0, -1.0, 0.0, -0.0, -1.0, 1.0, 1.0, -1.0, 0.5, -0.5, 1.0, 1.0, -1.0}, {0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0}},
    {"erfinv", ad_erfinv, {NAN, NAN, NAN, 0.0, -0.0, -INFINITY, INFINITY, NAN, NAN, 0.4769362762044699, -0.4769362762044699, NAN, NAN, NAN}, {NAN, NAN, NAN, 0.8862269254527579, 0.8862269254527579, INFINITY, INFINITY, NAN, NAN, 1.1125848189719496, 1.1125848189719496, NAN, NAN, NAN}},
    {"sinc", ad_sinc, {NAN, NAN, NAN, 1.0, 1.0, 3.8981718325193755e-17, 3.8981718325193755e-17, 3.8981718325193755e-17, 3.8981718325193755e-17, 0.6366197723675814, 0.6366197723675814, 0.12732395447351627, -1.0231009598277845e-16, -1.0231009598277845e-16}, {NAN, NAN, NAN, 0.0, 0.0, 1.0, -1.0, -0.3333333333333333, 0.3333333333333333, -1.2732395447351625, 1.2732395447351625, -0.05092958178940638, 0.001, -0.001}},
    {"logit", logit_none, {NAN, NAN, NAN, -INFINITY, -INFINITY, NAN, INFINITY, NAN, NAN, 0.0, NAN, NAN, NAN, NAN}, {NAN, NAN, NAN, INFINITY, -INFINITY, NAN, INFINITY, NAN, NAN, 4.0, NAN, NAN, NAN, NAN}},
    {"logit_eps_0.1", logit_tenth, {NAN, 2.1972245773362196, -2.197224577336219, -2.197224577336219, -2.197224577336219, -2.197224577336219, 2.1972245773362196, 2.1972245773362196, -2.197224577336219, 0.0, -2.197224577336219, 2.1972245773362196, 2.1972245773362196, -2.197224577336219}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0}},
};
// clang-format on

static void test_new_unary_ops_match_pytorch_at_special_points(void **state)
{
    ad_tape *tape = *state;
    for (size_t k = 0; k < sizeof special_rows / sizeof special_rows[0]; k++) {
        const special_row *r = &special_rows[k];
        ad_tape_reset(tape);
        int64_t n = N_SPECIAL;
        ad_tensor *x = leaf(tape, AD_F64, 1, &n, special_x);
        ad_tensor *y = r->op(x);
        if (!y)
            fail_msg("%s returned NULL: %s", r->name, ad_tape_message(tape));
        ad_tensor *g = grad_of_sum(y, x);
        for (int i = 0; i < N_SPECIAL; i++) {
            double v = ad_tensor_get(y, i), d = ad_tensor_get(g, i);
            bool ok_v = (isnan(v) && isnan(r->y[i])) || v == r->y[i] ||
                        fabs(v - r->y[i]) <= 1e-13 * fabs(r->y[i]);
            bool ok_d = (isnan(d) && isnan(r->g[i])) || d == r->g[i] ||
                        fabs(d - r->g[i]) <= 1e-12 * fabs(r->g[i]);
            if (!ok_v || !ok_d)
                fail_msg("%s(%g) = %.17g with gradient %.17g; PyTorch gives %.17g and %.17g",
                         r->name, special_x[i], v, d, r->y[i], r->g[i]);
        }
    }
}

/* The steps' signed zeros and ties, as torch: round halves to even, -0 stays -0. */
static void test_rounding_ops_keep_signed_zeros_and_round_halves_to_even(void **state)
{
    ad_tape *tape = *state;
    for (int dt = 0; dt < 2; dt++) {
        ad_tape_reset(tape);
        const double x[6] = {0.5, 1.5, 2.5, -0.5, -2.5, -0.7};
        int64_t n = 6;
        ad_tensor *xs = leaf(tape, (ad_dtype)dt, 1, &n, x);
        const double want_round[6] = {0.0, 2.0, 2.0, -0.0, -2.0, -1.0};
        const double want_ceil[6] = {1.0, 2.0, 3.0, -0.0, -2.0, -0.0};
        const double want_trunc[6] = {0.0, 1.0, 2.0, -0.0, -2.0, -0.0};
        ad_tensor *r = ad_round(xs), *c = ad_ceil(xs), *t = ad_trunc(xs);
        for (int i = 0; i < 6; i++) {
            assert_true(ad_tensor_get(r, i) == want_round[i]);
            assert_true(signbit(ad_tensor_get(r, i)) == signbit(want_round[i]));
            assert_true(ad_tensor_get(c, i) == want_ceil[i]);
            assert_true(signbit(ad_tensor_get(c, i)) == signbit(want_ceil[i]));
            assert_true(ad_tensor_get(t, i) == want_trunc[i]);
            assert_true(signbit(ad_tensor_get(t, i)) == signbit(want_trunc[i]));
        }
        /* sign(-0) is +0, as torch */
        const double z[1] = {-0.0};
        int64_t one = 1;
        ad_tensor *s = ad_sign(leaf(tape, (ad_dtype)dt, 1, &one, z));
        assert_true(ad_tensor_get(s, 0) == 0.0 && !signbit(ad_tensor_get(s, 0)));
    }
}

/* The steps give zeros whatever the incoming gradient, inf and NaN included
 * (PyTorch's zeros_like). */
static void test_rounding_ops_give_zero_gradient_even_for_an_infinite_seed(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *(*const ops[5])(ad_tensor *) = {ad_sign, ad_floor, ad_ceil, ad_round, ad_trunc};
    const double x[3] = {0.3, -1.5, 2.0}, seed_values[3] = {INFINITY, NAN, 1.0};
    for (int k = 0; k < 5; k++) {
        ad_tape_reset(tape);
        int64_t n = 3;
        ad_tensor *xs = leaf(tape, AD_F64, 1, &n, x);
        ad_tensor *seed = tensor(tape, AD_F64, 1, &n, seed_values);
        ad_tensor *y = ops[k](xs), *g = NULL;
        assert_true(ad_tensor_requires_grad(y));
        ad_backward_opts opts = {.seed = seed};
        assert_int_equal(ad_grad(1, &y, &seed, 1, &xs, &g, &opts), AD_OK);
        const double zeros[3] = {0.0, 0.0, 0.0};
        assert_exact(g, 3, zeros);
    }
}

static void test_clamp_without_any_bound_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {1.0, 2.0};
    assert_null(ad_clamp(leaf_vec(tape, 2, x), NAN, NAN));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "clamp");
}

static void test_clamp_with_one_nan_bound_clamps_on_the_other_side_only(void **state)
{
    ad_tape *tape = *state;
    const double x[3] = {-2.0, 0.0, 2.0};
    ad_tensor *xs = leaf_vec(tape, 3, x);
    const double below[3] = {-2.0, 0.0, 1.0}, above[3] = {-1.0, 0.0, 2.0};
    assert_exact(ad_clamp(xs, NAN, 1.0), 3, below);
    assert_exact(ad_clamp(xs, -1.0, NAN), 3, above);
    const double g[3] = {1.0, 1.0, 0.0};
    assert_exact(grad_of_sum(ad_clamp(xs, NAN, 1.0), xs), 3, g);
}

/* elu, silu, mish, logsigmoid, gelu_erf keep finite values and gradients far
 * out, in float32 too. */
static void test_smooth_activations_are_finite_at_plus_minus_100_in_float32(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *(*const ops[7])(ad_tensor *) = {ad_elu_1,      ad_selu,     ad_silu,    ad_mish,
                                               ad_logsigmoid, ad_gelu_erf, ad_softsign};
    const double x[4] = {-100.0, 100.0, -20.0, 20.0};
    for (int k = 0; k < 7; k++) {
        ad_tape_reset(tape);
        int64_t n = 4;
        ad_tensor *xs = leaf(tape, AD_F32, 1, &n, x);
        ad_tensor *y = ops[k](xs);
        ad_tensor *g = grad_of_sum(y, xs);
        for (int i = 0; i < 4; i++) {
            assert_true(isfinite(ad_tensor_get(y, i)));
            assert_true(isfinite(ad_tensor_get(g, i)));
        }
    }
}

static void test_new_ops_of_null_or_mixed_dtypes_fail_like_the_others(void **state)
{
    ad_tape *tape = *state;
    assert_null(ad_tan(NULL));
    assert_null(ad_clamp(NULL, 0.0, 1.0));
    assert_null(ad_hardtanh(NULL, -1.0, 1.0));
    assert_null(ad_selu(NULL));
    assert_null(ad_softsign(NULL));
    assert_null(ad_atan2(NULL, NULL));
    assert_int_equal(ad_tape_status(tape), AD_OK);
    int64_t n = 2;
    const double v[2] = {1.0, 2.0};
    ad_tensor *a = tensor(tape, AD_F64, 1, &n, v), *b = tensor(tape, AD_F32, 1, &n, v);
    ad_tensor *(*const ops[3])(ad_tensor *, ad_tensor *) = {ad_atan2, ad_hypot, ad_xlogy};
    for (int k = 0; k < 3; k++) {
        ad_tape_clear_error(tape);
        assert_null(ops[k](a, b));
        assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    }
    /* NULL after an error: the first error stays. */
    assert_null(ad_xlogy(ad_hypot(a, b), a));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
}

/* ---- erfinv, sinc, logit, selu, softsign ------------------------------------------------- */

/* t against expected[0..n) within rtol, with NaN, infinities and the signs of zeros exact. */
#define assert_like_torch(t, n, expected, rtol)                                                    \
    assert_like_torch_at((t), (n), (expected), (rtol), #t, __LINE__)

static void assert_like_torch_at(const ad_tensor *t, int64_t n, const double *expected, double rtol,
                                 const char *what, int line)
{
    assert_non_null(t);
    assert_int_equal(ad_tensor_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        double e = expected[i], a = ad_tensor_get(t, i);
        bool ok = isnan(e)   ? isnan(a)
                  : e == 0   ? a == 0 && signbit(a) == signbit(e)
                  : isinf(e) ? a == e
                             : fabs(a - e) <= rtol * fabs(e);
        if (!ok)
            fail_msg("line %d: %s[%lld] = %.17g, PyTorch gives %.17g", line, what, (long long)i, a,
                     e);
    }
}

typedef struct float32_row {
    const char *name;
    ad_tensor *(*op)(ad_tensor *);
    int n;
    double x[7], y[7], g[7];
} float32_row;

/* torch.<op>(x) and the gradient of its sum in float32, PyTorch 1.13 (each
 * point where its vectorised loop computes it). sinc(+-1) is sin of pi
 * rounded to float over it, -2.78e-8 (in double 3.9e-17); sinc at 1e-30 has
 * x^2 pi = 0 in float, so its slope is PyTorch's 0 there. */
// clang-format off
static const float32_row float32_rows[] = {
    {"erfinv", ad_erfinv, 6, {-0.8999999761581421, -0.5, 0.0, 1.0000000031710769e-30, 0.30000001192092896, 0.75}, {-1.163087010383606, -0.4769362807273865, 0.0, 8.862269142205257e-31, 0.27246272563934326, 0.8134198784828186}, {3.428041934967041, 1.1125849485397339, 0.8862269520759583, 0.8862269520759583, 0.9545204043388367, 1.7174999713897705}},
    {"sinc", ad_sinc, 7, {-1.0, 1.0, 0.5, 2.5, 0.0, 1.0000000031710769e-30, -7.25}, {-2.7827534054836178e-08, -2.7827534054836178e-08, 0.6366197466850281, 0.1273239552974701, 1.0, 1.0, -0.03104538284242153}, {1.0, -1.0, -1.2732396125793457, -0.0509297139942646, 0.0, 0.0, 0.0932498574256897}},
    {"logit", logit_none, 7, {0.0, 0.10000000149011612, 0.5, 0.8999999761581421, 1.0, -0.5, 1.0000000031710769e-30}, {-INFINITY, -2.1972246170043945, 0.0, 2.1972243785858154, INFINITY, NAN, -69.07755279541016}, {INFINITY, 11.111111640930176, 4.0, 11.111108779907227, INFINITY, NAN, 1.0000000150474662e+30}},
    {"logit_eps_0.1", logit_tenth, 6, {0.10000000149011612, 0.8999999761581421, 0.05000000074505806, 0.949999988079071, 0.5, 0.30000001192092896}, {-2.1972246170043945, 2.1972243785858154, -2.1972246170043945, 2.1972243785858154, 0.0, -0.8472977876663208}, {11.111111640930176, 11.111108779907227, 0.0, 0.0, 4.0, 4.761904716491699}},
    {"selu", ad_selu, 6, {-100.0, -3.0, -0.5, 0.0, 0.5, 100.0}, {-1.7580993175506592, -1.6705687046051025, -0.6917581558227539, 0.0, 0.5253505110740662, 105.07009887695312}, {6.58610278232664e-44, 0.08753060549497604, 1.0663411617279053, 1.7580993175506592, 1.0507010221481323, 1.0507010221481323}},
    /* The gradient at -100 is 1 / 101^2 rounded to float, 9.8029603e-05, where
     * PyTorch's composition cancels to 9.8029152e-05 in float. */
    {"softsign", ad_softsign, 6, {-100.0, -3.0, -0.5, 0.0, 0.5, 3.0}, {-0.9900990128517151, -0.75, -0.3333333432674408, 0.0, 0.3333333432674408, 0.75}, {9.802960266824812e-05, 0.0625, 0.444444477558136, 1.0, 0.444444477558136, 0.0625}},
};
// clang-format on

static void test_new_unary_ops_match_pytorch_in_float32(void **state)
{
    ad_tape *tape = *state;
    for (size_t k = 0; k < sizeof float32_rows / sizeof float32_rows[0]; k++) {
        const float32_row *r = &float32_rows[k];
        ad_tape_reset(tape);
        int64_t n = r->n;
        ad_tensor *x = leaf(tape, AD_F32, 1, &n, r->x);
        ad_tensor *y = r->op(x);
        if (!y)
            fail_msg("%s returned NULL: %s", r->name, ad_tape_message(tape));
        assert_int_equal(ad_tensor_dtype(y), AD_F32);
        /* Within an ulp or two of float: erfinv's algorithm is not PyTorch's. */
        assert_like_torch(y, n, r->y, 3e-7);
        assert_like_torch(grad_of_sum(y, x), n, r->g, 3e-7);
    }
}

/* erfinv against mpmath (200 bits): within an ulp everywhere, 1 - 2^-53 and
 * denormals included, where PyTorch 1.13's refinement through erf loses
 * digits near +-1 (5.863948532247121 at 1 - 2^-53, 6e-5 off; 3.4589107372832
 * at 0.999999) and float32's loses up to a hundred ulps. */
static void test_erfinv_is_within_an_ulp_near_one_and_for_tiny_inputs(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 12;
    // clang-format off
    const double x[12] = {0.9999999999999999, -0.9999999999990905, 0.999999, -0.99, 0.9, 0.7,
                          0.49999999999999994, 0.5, -0.3, 1e-05, 1e-300, 5e-324};
    const double want[12] = {5.8635847487551676, -5.05125408524939, 3.458910737275499,
                             -1.8213863677184494, 1.1630871536766743, 0.7328690779592167,
                             0.4769362762044698, 0.4769362762044699, -0.2724627147267543,
                             8.862269254759594e-06, 8.86226925452758e-301, 5e-324};
    // clang-format on
    ad_tensor *y = ad_erfinv(leaf(tape, AD_F64, 1, &n, x));
    for (int i = 0; i < 12; i++)
        assert_close(want[i], ad_tensor_get(y, i), 2.3e-16, 0);
    int64_t m = 7;
    const double xf[7] = {0.9999999403953552,  -0.9999989867210388,  0.8999999761581421,
                          0.699999988079071,   -0.30000001192092896, 9.999999747378752e-06,
                          9.99994610111476e-41};
    const double wantf[7] = {3.8325068950653076,   -3.4570746421813965,  1.1630871295928955,
                             0.7328690886497498,   -0.27246272563934326, 8.86226916918531e-06,
                             8.862231877929441e-41};
    ad_tensor *yf = ad_erfinv(leaf(tape, AD_F32, 1, &m, xf));
    for (int i = 0; i < 7; i++)
        assert_close(wantf[i], ad_tensor_get(yf, i), i < 6 ? 1.2e-7 : 1e-5, 0);
}

/* sinc's slope is PyTorch's 0 at 0 (and wherever x^2 pi rounds to 0), +0 for
 * either sign of the seed, and its derivative there is sinc''(0) = -pi^2/3,
 * where PyTorch's second derivative is NaN. */
static void test_sinc_slope_is_zero_at_zero_with_curvature_minus_pi_squared_over_3(void **state)
{
    ad_tape *tape = *state;
    for (int dt = 0; dt < 2; dt++) {
        ad_tape_reset(tape);
        int64_t n = 4;
        const double x[4] = {0.0, -0.0, dt == AD_F64 ? 1e-200 : 1e-30, 0.5};
        const double seeds[4] = {-1.0, 1.0, -2.0, 1.0};
        ad_tensor *xs = leaf(tape, (ad_dtype)dt, 1, &n, x);
        ad_tensor *seed = tensor(tape, (ad_dtype)dt, 1, &n, seeds);
        ad_tensor *y = ad_sinc(xs), *g = NULL, *h = NULL;
        ad_backward_opts opts = {.seed = seed, .create_graph = true};
        assert_int_equal(ad_grad(1, &y, &seed, 1, &xs, &g, &opts), AD_OK);
        for (int i = 0; i < 3; i++) {
            assert_true(ad_tensor_get(g, i) == 0);
            assert_false(signbit(ad_tensor_get(g, i)));
        }
        /* sinc'(1/2) = -4 / pi (PyTorch: -1.2732395447351625) */
        assert_close(-1.2732395447351625, ad_tensor_get(g, 3), dt == AD_F64 ? 1e-15 : 1e-7, 0);
        ad_tensor *ones = ad_full(tape, (ad_dtype)dt, 1, &n, 1.0);
        ad_backward_opts again = {.seed = ones};
        assert_int_equal(ad_grad(1, &g, &ones, 1, &xs, &h, &again), AD_OK);
        const double pi2_3 = 3.289868133696453;
        assert_close(pi2_3, ad_tensor_get(h, 0), 1e-7, 0);
        assert_close(-pi2_3, ad_tensor_get(h, 1), 1e-7, 0);
        assert_close(2 * pi2_3, ad_tensor_get(h, 2), 1e-7, 0);
        /* sinc'' = 2 sin(pi x) / (pi x^3) - 2 cos(pi x) / x^2 - pi sin(pi x) / x:
         * 16/pi - 2 pi at 1/2 */
        assert_close(16.0 / PI - 2 * PI, ad_tensor_get(h, 3), dt == AD_F64 ? 1e-14 : 1e-6, 0);
    }
}

/* logit with eps: the bounds eps and 1 - eps (in the dtype) still have the
 * slope, points beyond get 0 (PyTorch's torch.logit(x, eps)); eps < 0 or NaN
 * is no eps, and then x outside [0, 1] is NaN with a NaN gradient. */
static void test_logit_eps_bounds_keep_the_slope_and_a_negative_eps_means_none(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 5;
    const double x[5] = {0.25, 0.75, 0.2499999, 0.7500001, -0.5};
    ad_tensor *xs = leaf(tape, AD_F64, 1, &n, x);
    ad_tensor *y = ad_logit(xs, 0.25);
    assert_like_torch(
        y, 5,
        ((const double[5]){-1.0986122886681098, 1.0986122886681098, -1.0986122886681098,
                           1.0986122886681098, -1.0986122886681098}),
        1e-15);
    assert_like_torch(grad_of_sum(y, xs), 5,
                      ((const double[5]){5.333333333333333, 5.333333333333333, 0.0, 0.0, 0.0}),
                      1e-15);
    for (int k = 0; k < 2; k++) {
        y = ad_logit(xs, k ? NAN : -1e-3);
        assert_like_torch(y, 5,
                          ((const double[5]){-1.0986122886681098, 1.0986122886681098,
                                             -1.0986128220015141, 1.098612822001514, NAN}),
                          1e-15);
        assert_like_torch(grad_of_sum(y, xs), 5,
                          ((const double[5]){5.333333333333333, 5.333333333333333,
                                             5.333334755556219, 5.333334755556218, NAN}),
                          1e-15);
    }
}

/* selu's second derivative, as PyTorch's elu_double_backward: 0 at +-0 (the
 * slope alpha scale is flat there), alpha scale e^x below, 0 above and at
 * +-inf, NaN at NaN. */
static void test_selu_second_derivative_is_zero_at_zero_and_finite_at_infinities(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 7;
    const double x[7] = {0.0, -0.0, -0.5, 0.5, INFINITY, -INFINITY, NAN};
    ad_tensor *xs = leaf(tape, AD_F64, 1, &n, x), *g = NULL, *h = NULL;
    ad_tensor *ones = ad_full(tape, AD_F64, 1, &n, 1.0), *y = ad_selu(xs);
    ad_backward_opts opts = {.seed = ones, .create_graph = true};
    assert_int_equal(ad_grad(1, &y, &ones, 1, &xs, &g, &opts), AD_OK);
    assert_like_torch(g, 7,
                      ((const double[7]){1.7580993408473766, 1.7580993408473766, 1.0663411530445053,
                                         1.0507009873554805, 1.0507009873554805, 0.0, NAN}),
                      1e-15);
    ad_backward_opts again = {.seed = ones};
    assert_int_equal(ad_grad(1, &g, &ones, 1, &xs, &h, &again), AD_OK);
    assert_like_torch(h, 7, ((const double[7]){0.0, 0.0, 1.0663411530445053, 0.0, 0.0, 0.0, NAN}),
                      1e-15);
}

/* selu and softsign keep PyTorch's values where the formulas meet extremes. */
static void test_selu_and_softsign_match_pytorch_at_zero_and_far_out(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 6;
    const double x[6] = {0.0, -1000.0, 1000.0, 1e300, -1e300, -1e-10};
    ad_tensor *xs = leaf(tape, AD_F64, 1, &n, x);
    ad_tensor *y = ad_selu(xs);
    /* At -1e-10 expm1 keeps the digits: PyTorch's exp(x) - 1 gives -1.7580994863e-10. */
    assert_like_torch(
        y, 6,
        ((const double[6]){0.0, -1.7580993408473766, 1050.7009873554805, 1.0507009873554805e+300,
                           -1.7580993408473766, -1.7580993407594716e-10}),
        1e-15);
    assert_like_torch(grad_of_sum(y, xs), 6,
                      ((const double[6]){1.7580993408473766, 0.0, 1.0507009873554805,
                                         1.0507009873554805, 0.0, 1.7580993406715666}),
                      1e-15);
    y = ad_softsign(xs);
    assert_like_torch(y, 6,
                      ((const double[6]){0.0, -0.999000999000999, 0.999000999000999, 1.0, -1.0,
                                         -9.999999999e-11}),
                      1e-15);
    /* 1 / (1 + |x|)^2: 1e-600 underflows to 0 at +-1e300 (PyTorch gives 0 from 1e16 on). */
    assert_like_torch(grad_of_sum(y, xs), 6,
                      ((const double[6]){1.0, 9.98002996004994e-07, 9.98002996004994e-07, 0.0, 0.0,
                                         0.9999999998}),
                      1e-15);
}

/* ---- Binary ops ----------------------------------------------------------------------- */

static const int64_t shape23[2] = {2, 3}, shape3[1] = {3};
static const double a23[6] = {1.0, -2.0, 3.0, 0.5, -1.5, 2.0};
static const double b3[3] = {2.0, 0.5, -1.0};

typedef struct binary_ref {
    const char *name;
    ad_tensor *(*op)(ad_tensor *, ad_tensor *);
    double y[6], ga[6], gb[3];
} binary_ref;

/* a [2,3] op b [3], broadcast over rows; gradients of sum(y), by hand. */
static const binary_ref binary_refs[] = {
    {"add", ad_add, {3, -1.5, 2, 2.5, -1, 1}, {1, 1, 1, 1, 1, 1}, {2, 2, 2}},
    {"sub", ad_sub, {-1, -2.5, 4, -1.5, -2, 3}, {1, 1, 1, 1, 1, 1}, {-2, -2, -2}},
    {"mul", ad_mul, {2, -1, -3, 1, -0.75, -2}, {2, 0.5, -1, 2, 0.5, -1}, {1.5, -3.5, 5}},
    {"div", ad_div, {0.5, -4, -3, 0.25, -3, -2}, {0.5, 2, -1, 0.5, 2, -1}, {-0.375, 14, -5}},
    {"maximum", ad_maximum, {2, 0.5, 3, 2, 0.5, 2}, {0, 0, 1, 0, 0, 1}, {2, 2, 0}},
    {"minimum", ad_minimum, {1, -2, -1, 0.5, -1.5, -1}, {1, 1, 0, 1, 1, 0}, {0, 0, 2}},
};

static void test_binary_ops_broadcast_rows_with_hand_computed_values(void **state)
{
    ad_tape *tape = *state;
    for (size_t k = 0; k < sizeof binary_refs / sizeof binary_refs[0]; k++) {
        const binary_ref *r = &binary_refs[k];
        ad_tape_reset(tape);
        ad_tensor *in[2] = {leaf(tape, AD_F64, 2, shape23, a23), leaf(tape, AD_F64, 1, shape3, b3)};
        ad_tensor *y = r->op(in[0], in[1]);
        if (!y)
            fail_msg("%s: %s", r->name, ad_tape_message(tape));
        assert_shape(y, 2, shape23);
        ad_tensor *g[2];
        grads_of_sum(y, 2, in, g);
        assert_shape(g[0], 2, shape23);
        assert_shape(g[1], 1, shape3);
        for (int i = 0; i < 6; i++) {
            if (fabs(ad_tensor_get(y, i) - r->y[i]) > 1e-15 ||
                fabs(ad_tensor_get(g[0], i) - r->ga[i]) > 1e-15)
                fail_msg("%s element %d: y %g (want %g), da %g (want %g)", r->name, i,
                         ad_tensor_get(y, i), r->y[i], ad_tensor_get(g[0], i), r->ga[i]);
        }
        for (int i = 0; i < 3; i++)
            if (fabs(ad_tensor_get(g[1], i) - r->gb[i]) > 1e-14)
                fail_msg("%s: db[%d] = %g, want %g", r->name, i, ad_tensor_get(g[1], i), r->gb[i]);
    }
}

/* atan2, hypot, xlogy of a [2,3] and b [3], against libm; gradients of sum(y). */
static void test_atan2_hypot_xlogy_broadcast_against_libm(void **state)
{
    ad_tape *tape = *state;
    const double bp[3] = {2.0, 0.5, 3.0}; /* positive, for xlogy */
    for (int k = 0; k < 3; k++) {
        ad_tape_reset(tape);
        ad_tensor *in[2] = {leaf(tape, AD_F64, 2, shape23, a23), leaf(tape, AD_F64, 1, shape3, bp)};
        ad_tensor *y = k == 0   ? ad_atan2(in[0], in[1])
                       : k == 1 ? ad_hypot(in[0], in[1])
                                : ad_xlogy(in[0], in[1]);
        assert_shape(y, 2, shape23);
        ad_tensor *g[2];
        grads_of_sum(y, 2, in, g);
        double gb[3] = {0, 0, 0};
        for (int i = 0; i < 6; i++) {
            double a = a23[i], b = bp[i % 3], r = a * a + b * b;
            double want = k == 0 ? atan2(a, b) : k == 1 ? hypot(a, b) : a * log(b);
            double ga = k == 0 ? b / r : k == 1 ? a / hypot(a, b) : log(b);
            gb[i % 3] += k == 0 ? -a / r : k == 1 ? b / hypot(a, b) : a / b;
            assert_close(want, ad_tensor_get(y, i), 1e-15, 1e-300);
            assert_close(ga, ad_tensor_get(g[0], i), 1e-14, 1e-300);
        }
        assert_values(g[1], 3, gb, 1e-14, 1e-15);
    }
}

/* PyTorch 1.13 at special pairs: torch.atan2/hypot/xlogy and the gradients of the sum. */
static void test_atan2_hypot_xlogy_match_pytorch_at_special_points(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 9;
    const double a1[9] = {0.0, 0.0, -0.0, -0.0, 1.0, 0.0, INFINITY, INFINITY, 3.0};
    const double b1[9] = {0.0, -0.0, 0.0, -0.0, 0.0, 1.0, INFINITY, 1.0, 4.0};
    ad_tensor *in[2] = {leaf(tape, AD_F64, 1, &n, a1), leaf(tape, AD_F64, 1, &n, b1)};
    ad_tensor *g[2];
    ad_tensor *y = ad_atan2(in[0], in[1]);
    assert_values(y, 9,
                  (const double[9]){0.0, 3.141592653589793, -0.0, -3.141592653589793,
                                    1.5707963267948966, 0.0, 0.7853981633974483, 1.5707963267948966,
                                    0.6435011087932844},
                  1e-15, 0);
    grads_of_sum(y, 2, in, g);
    assert_values(g[0], 9, (const double[9]){NAN, NAN, NAN, NAN, 0.0, 1.0, NAN, 0.0, 0.16}, 1e-15,
                  0);
    assert_values(g[1], 9, (const double[9]){NAN, NAN, NAN, NAN, -1.0, -0.0, NAN, NAN, -0.12},
                  1e-15, 0);
    y = ad_hypot(in[0], in[1]);
    assert_values(y, 9, (const double[9]){0.0, 0.0, 0.0, 0.0, 1.0, 1.0, INFINITY, INFINITY, 5.0}, 0,
                  0);
    grads_of_sum(y, 2, in, g);
    assert_values(g[0], 9, (const double[9]){NAN, NAN, NAN, NAN, 1.0, 0.0, NAN, NAN, 0.6}, 1e-15,
                  0);
    assert_values(g[1], 9, (const double[9]){NAN, NAN, NAN, NAN, 0.0, 1.0, NAN, 0.0, 0.8}, 1e-15,
                  0);

    /* xlogy: 0 where a = 0 unless b is NaN; d/da = ln b masked to 0 where
     * a = 0 and b <= 0; d/db = a / b. */
    int64_t m = 8;
    const double a2[8] = {0.0, 0.0, 0.0, NAN, 1.0, 2.0, -0.0, 0.0};
    const double b2[8] = {0.0, NAN, INFINITY, 0.0, 0.0, -1.0, 3.0, -2.0};
    ad_tensor *in2[2] = {leaf(tape, AD_F64, 1, &m, a2), leaf(tape, AD_F64, 1, &m, b2)};
    y = ad_xlogy(in2[0], in2[1]);
    assert_values(y, 8, (const double[8]){0.0, NAN, 0.0, NAN, -INFINITY, NAN, 0.0, 0.0}, 0, 0);
    grads_of_sum(y, 2, in2, g);
    assert_values(
        g[0], 8,
        (const double[8]){0.0, NAN, INFINITY, -INFINITY, -INFINITY, NAN, 1.0986122886681098, 0.0},
        1e-15, 0);
    assert_values(g[1], 8, (const double[8]){NAN, NAN, 0.0, NAN, INFINITY, -2.0, -0.0, -0.0}, 1e-15,
                  0);
}

typedef struct binary_torch_row {
    const char *name;
    ad_tensor *(*op)(ad_tensor *, ad_tensor *);
    double y[8], ga[8], gb[8];
} binary_torch_row;

/* The rows of a [2,3] and b [3] (a = 7.5, -7.5, 2, -0, 1e300, -3.25; b = 2, -2,
 * 0.75): torch.<op>(a, b) and the gradients of its sum, PyTorch 1.13, in
 * float64 then float32 (where 1e300 is inf). remainder takes b's sign and
 * fmod a's; d/db sums -floor(a / b) (-trunc(a / b)) over the rows. */
// clang-format off
static const binary_torch_row broadcast_rows[2][4] = {
    {{"remainder", ad_remainder, {1.5, -1.5, 0.5, -0.0, 0.0, 0.5}, {1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, {-3.0, 5e+299, 3.0}},
     {"fmod", ad_fmod, {1.5, -1.5, 0.5, -0.0, 0.0, -0.25}, {1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, {-3.0, 5e+299, 2.0}},
     {"logaddexp", ad_logaddexp, {7.50407844327057, -1.9959215567294293, 2.2519290813453727, 2.1269280110429727, 1e+300, 0.7681499279178098}, {0.995929862284104, 0.004070137715896128, 0.7772998611746911, 0.11920292202211755, 1.0, 0.01798620996209156}, {0.8848672156937785, 0.995929862284104, 1.2047139288632174}},
     {"logaddexp2", ad_logaddexp2, {7.531532241436055, -1.9684677585639452, 2.5063462289494156, 2.321928094887362, 1e+300, 0.8374628412503394}, {0.9783806380088231, 0.021619361991176863, 0.7040031411428228, 0.2, 1.0, 0.058823529411764705}, {0.8216193619911769, 0.9783806380088231, 1.2371733294454126}}},
    {{"remainder", ad_remainder, {1.5, -1.5, 0.5, -0.0, NAN, 0.5}, {1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, {-3.0, NAN, 3.0}},
     {"fmod", ad_fmod, {1.5, -1.5, 0.5, -0.0, NAN, -0.25}, {1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, {-3.0, INFINITY, 2.0}},
     {"logaddexp", ad_logaddexp, {7.504078388214111, -1.9959216117858887, 2.2519290447235107, 2.1269280910491943, INFINITY, 0.7681499719619751}, {0.9959298968315125, 0.00407013762742281, 0.7772998809814453, 0.11920291930437088, 1.0, 0.01798621006309986}, {0.8848671913146973, 0.9959298968315125, 1.2047139406204224}},
     {"logaddexp2", ad_logaddexp2, {7.531532287597656, -1.9684677124023438, 2.5063462257385254, 2.321928024291992, INFINITY, 0.837462842464447}, {0.9783806204795837, 0.021619362756609917, 0.7040031552314758, 0.20000000298023224, 1.0, 0.05882352963089943}, {0.8216193914413452, 0.9783806204795837, 1.237173318862915}}},
};

/* logaddexp and logaddexp2 at a = 1000, -1000, 1e308, -inf, -inf, 0, -800, 30 and
 * b = 1000, -1000, 1e308, -inf, 5, -0, 0, -30: no overflow, -inf for two -inf,
 * NaN weights there (PyTorch), weights of 1/2 at ties. Float64, then float32.
 * One deliberate difference: logaddexp2(-800, 0) is 2^-800 / ln 2 through
 * log1p, where PyTorch's log2(1 + 2^-800) gives 0. */
static const binary_torch_row extreme_rows[2][2] = {
    {{"logaddexp", ad_logaddexp, {1000.6931471805599, -999.3068528194401, 1e+308, -INFINITY, 5.0, 0.6931471805599453, 0.0, 30.0}, {0.5, 0.5, 0.5, NAN, 0.0, 0.5, 0.0, 1.0}, {0.5, 0.5, 0.5, NAN, 1.0, 0.5, 1.0, 8.75651076269652e-27}},
     {"logaddexp2", ad_logaddexp2, {1001.0, -999.0, 1e+308, -INFINITY, 5.0, 1.0, 2.1636051562442054e-241, 30.0}, {0.5, 0.5, 0.5, NAN, 0.0, 0.5, 1.499696813895631e-241, 1.0}, {0.5, 0.5, 0.5, NAN, 1.0, 0.5, 1.0, 8.673617379884035e-19}}},
    {{"logaddexp", ad_logaddexp, {1000.6931762695312, -999.3068237304688, INFINITY, -INFINITY, 5.0, 0.6931471824645996, 0.0, 30.0}, {0.5, 0.5, NAN, NAN, 0.0, 0.5, 0.0, 1.0}, {0.5, 0.5, NAN, NAN, 1.0, 0.5, 1.0, 8.75651089272076e-27}},
     {"logaddexp2", ad_logaddexp2, {1001.0, -999.0, INFINITY, -INFINITY, 5.0, 1.0, 0.0, 30.0}, {0.5, 0.5, NAN, NAN, 0.0, 0.5, 0.0, 1.0}, {0.5, 0.5, NAN, NAN, 1.0, 0.5, 1.0, 8.673617379884035e-19}}},
};
// clang-format on

static void check_binary_torch_row(ad_tape *tape, ad_dtype dtype, double rtol,
                                   const binary_torch_row *r, int ndim_a, const int64_t *shape_a,
                                   const double *a, int ndim_b, const int64_t *shape_b,
                                   const double *b)
{
    ad_tensor *in[2] = {leaf(tape, dtype, ndim_a, shape_a, a),
                        leaf(tape, dtype, ndim_b, shape_b, b)};
    ad_tensor *y = r->op(in[0], in[1]), *g[2];
    if (!y)
        fail_msg("%s: %s", r->name, ad_tape_message(tape));
    grads_of_sum(y, 2, in, g);
    int64_t n = ad_tensor_numel(y);
    assert_like_torch(y, n, r->y, rtol);
    assert_like_torch(g[0], ad_tensor_numel(g[0]), r->ga, rtol);
    assert_like_torch(g[1], ad_tensor_numel(g[1]), r->gb, rtol);
}

/* Division by zero, as PyTorch 1.13 in both dtypes: NaN values, da = dy, and
 * db = -dy a / 0 (the quotient of a zero divisor is a / b, -inf, inf or NaN). */
static void test_remainder_and_fmod_by_zero_are_nan_with_pytorch_gradients(void **state)
{
    ad_tape *tape = *state;
    const double a[4] = {1.0, -1.0, 0.0, -0.0}, b[4] = {0.0, 0.0, 0.0, -0.0};
    const double nans[4] = {NAN, NAN, NAN, NAN}, ones[4] = {1, 1, 1, 1};
    const double gb[4] = {-INFINITY, INFINITY, NAN, NAN};
    ad_tensor *(*const ops[2])(ad_tensor *, ad_tensor *) = {ad_remainder, ad_fmod};
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 2; k++) {
            ad_tape_reset(tape);
            int64_t n = 4;
            ad_tensor *in[2] = {leaf(tape, (ad_dtype)d, 1, &n, a),
                                leaf(tape, (ad_dtype)d, 1, &n, b)};
            ad_tensor *y = ops[k](in[0], in[1]), *g[2];
            grads_of_sum(y, 2, in, g);
            assert_like_torch(y, 4, nans, 0);
            assert_like_torch(g[0], 4, ones, 0);
            assert_like_torch(g[1], 4, gb, 0);
        }
}

static void test_remainder_fmod_logaddexp_match_pytorch_in_both_dtypes(void **state)
{
    ad_tape *tape = *state;
    const double a[6] = {7.5, -7.5, 2.0, -0.0, 1e300, -3.25}, b[3] = {2.0, -2.0, 0.75};
    const double ea[8] = {1000.0, -1000.0, 1e308, -INFINITY, -INFINITY, 0.0, -800.0, 30.0};
    const double eb[8] = {1000.0, -1000.0, 1e308, -INFINITY, 5.0, -0.0, 0.0, -30.0};
    const int64_t n8 = 8;
    for (int d = 0; d < 2; d++) {
        ad_dtype dtype = d ? AD_F32 : AD_F64;
        for (int k = 0; k < 4; k++) {
            ad_tape_reset(tape);
            check_binary_torch_row(tape, dtype, d ? 3e-7 : 1e-14, &broadcast_rows[d][k], 2, shape23,
                                   a, 1, shape3, b);
        }
        for (int k = 0; k < 2; k++) {
            ad_tape_reset(tape);
            /* logaddexp2's weights are sigmoid((a - b) ln 2): the rounded product
             * costs about |a - b| ulps of a tiny weight, 1.4e-14 at the gap of 800
             * in double and 1.8e-6 at the gap of 60 in float. */
            check_binary_torch_row(tape, dtype, d ? 2e-6 : 1e-13, &extreme_rows[d][k], 1, &n8, ea,
                                   1, &n8, eb);
        }
    }
}

/* x mod -1.5 and fmod(x, 0.7) at x = 7.5, -7.5, 2, -0, 0.1, -3.25 (PyTorch 1.13,
 * float64 then float32): the scalar is a constant of x's dtype, and x's
 * gradient is 1. */
static void test_remainder_and_fmod_scalar_forms_match_pytorch_in_both_dtypes(void **state)
{
    ad_tape *tape = *state;
    const double x[6] = {7.5, -7.5, 2.0, -0.0, 0.1, -3.25}, ones[6] = {1, 1, 1, 1, 1, 1};
    const double remainder_y[2][6] = {{0.0, -0.0, -1.0, -0.0, -1.4, -0.25},
                                      {0.0, -0.0, -1.0, -0.0, -1.399999976158142, -0.25}};
    const double fmod_y[2][6] = {{0.5000000000000004, -0.5000000000000004, 0.6000000000000001, -0.0,
                                  0.1, -0.4500000000000002},
                                 {0.5000001192092896, -0.5000001192092896, 0.6000000238418579, -0.0,
                                  0.10000000149011612, -0.4500000476837158}};
    for (int d = 0; d < 2; d++) {
        ad_tape_reset(tape);
        ad_dtype dtype = d ? AD_F32 : AD_F64;
        int64_t n = 6;
        ad_tensor *xs = leaf(tape, dtype, 1, &n, x);
        ad_tensor *r = ad_remainder_scalar(xs, -1.5), *f = ad_fmod_scalar(xs, 0.7);
        assert_like_torch(r, 6, remainder_y[d], d ? 3e-7 : 1e-15);
        assert_like_torch(f, 6, fmod_y[d], d ? 3e-7 : 1e-15);
        assert_like_torch(grad_of_sum(r, xs), 6, ones, 0);
        assert_like_torch(grad_of_sum(f, xs), 6, ones, 0);
    }
}

static void test_pow_value_and_gradients_by_hand(void **state)
{
    ad_tape *tape = *state;
    const double a[6] = {1.0, 2.0, 3.0, 0.5, 4.0, 2.0};
    ad_tensor *in[2] = {leaf(tape, AD_F64, 2, shape23, a), leaf(tape, AD_F64, 1, shape3, b3)};
    ad_tensor *y = ad_pow(in[0], in[1]);
    const double want_y[6] = {1.0, sqrt(2.0), 1.0 / 3.0, 0.25, 2.0, 0.5};
    assert_values(y, 6, want_y, 1e-15, 0);
    ad_tensor *g[2];
    grads_of_sum(y, 2, in, g);
    /* da = b a^(b-1) */
    const double want_ga[6] = {2.0, 0.5 / sqrt(2.0), -1.0 / 9.0, 1.0, 0.25, -0.25};
    assert_values(g[0], 6, want_ga, 1e-15, 0);
    /* db = sum over rows of a^b log a */
    const double want_gb[3] = {0.25 * log(0.5), sqrt(2.0) * log(2.0) + 2.0 * log(4.0),
                               log(3.0) / 3.0 + 0.5 * log(2.0)};
    assert_values(g[1], 3, want_gb, 1e-14, 0);
}

static void test_broadcasting_size_one_dims_on_both_sides(void **state)
{
    ad_tape *tape = *state;
    const int64_t col[2] = {2, 1}, row[2] = {1, 3}, out[2] = {2, 3};
    const double c[2] = {10.0, 20.0}, r[3] = {1.0, 2.0, 3.0};
    ad_tensor *in[2] = {leaf(tape, AD_F64, 2, col, c), leaf(tape, AD_F64, 2, row, r)};
    ad_tensor *y = ad_mul(in[0], in[1]);
    assert_shape(y, 2, out);
    const double want[6] = {10, 20, 30, 20, 40, 60};
    assert_exact(y, 6, want);
    ad_tensor *g[2];
    grads_of_sum(y, 2, in, g);
    assert_shape(g[0], 2, col);
    assert_shape(g[1], 2, row);
    const double gc[2] = {6.0, 6.0}, gr[3] = {30.0, 30.0, 30.0};
    assert_exact(g[0], 2, gc);
    assert_exact(g[1], 3, gr);

    /* A 0-d operand with a [3] one: the 0-d gradient is the sum, and 0-d. */
    const double s = 2.0;
    ad_tensor *in2[2] = {leaf(tape, AD_F64, 0, NULL, &s), leaf(tape, AD_F64, 1, shape3, r)};
    ad_tensor *z = ad_sub(in2[0], in2[1]);
    assert_shape(z, 1, shape3);
    grads_of_sum(z, 2, in2, g);
    assert_int_equal(ad_tensor_ndim(g[0]), 0);
    assert_close(3.0, ad_value(g[0]), 0, 0);
}

static void test_binary_shape_mismatch_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s4[1] = {4};
    ad_tensor *a = ad_full(tape, AD_F64, 2, shape23, 1.0);
    ad_tensor *b = ad_full(tape, AD_F64, 1, s4, 1.0);
    assert_null(ad_mul(a, b));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "mul");
    assert_message_has(tape, "[2,3]");
    assert_message_has(tape, "[4]");
}

static void test_scalar_forms_compute_and_differentiate(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {2.0, 4.0};
    ad_tensor *xs = leaf_vec(tape, 2, x);
    struct {
        const char *name;
        ad_tensor *y;
        double y0, y1, g0, g1;
    } rows[] = {
        {"add_scalar", ad_add_scalar(xs, 3.0), 5, 7, 1, 1},
        {"sub_scalar", ad_sub_scalar(xs, 3.0), -1, 1, 1, 1},
        {"rsub_scalar", ad_rsub_scalar(xs, 3.0), 1, -1, -1, -1},
        {"mul_scalar", ad_mul_scalar(xs, 3.0), 6, 12, 3, 3},
        {"div_scalar", ad_div_scalar(xs, 4.0), 0.5, 1, 0.25, 0.25},
        {"rdiv_scalar", ad_rdiv_scalar(xs, 8.0), 4, 2, -2, -0.5},
        {"rpow_scalar", ad_rpow_scalar(xs, 2.0), 4, 16, 4 * log(2.0), 16 * log(2.0)},
        {"maximum_scalar", ad_maximum_scalar(xs, 3.0), 3, 4, 0, 1},
        {"minimum_scalar", ad_minimum_scalar(xs, 3.0), 2, 3, 1, 0},
        {"maximum_scalar tie", ad_maximum_scalar(xs, 2.0), 2, 4, 0.5, 1},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        if (!rows[k].y)
            fail_msg("%s returned NULL: %s", rows[k].name, ad_tape_message(tape));
        ad_tensor *g = grad_of_sum(rows[k].y, xs);
        double v[4] = {ad_tensor_get(rows[k].y, 0), ad_tensor_get(rows[k].y, 1),
                       ad_tensor_get(g, 0), ad_tensor_get(g, 1)};
        double w[4] = {rows[k].y0, rows[k].y1, rows[k].g0, rows[k].g1};
        for (int i = 0; i < 4; i++)
            if (fabs(v[i] - w[i]) > 1e-14 * (1 + fabs(w[i])))
                fail_msg("%s: got y = (%g, %g), g = (%g, %g); want (%g, %g), (%g, %g)",
                         rows[k].name, v[0], v[1], v[2], v[3], w[0], w[1], w[2], w[3]);
    }
}

/* ---- Reductions ------------------------------------------------------------------------ */

/* x = [[1, 5, 3], [4, 2, 6]] */
static const double r23[6] = {1.0, 5.0, 3.0, 4.0, 2.0, 6.0};

static void test_sum_and_mean_by_hand(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int ax0[1] = {0}, ax1[1] = {1};
    assert_close(21.0, ad_value(ad_sum_all(x)), 0, 0);
    const double s0[3] = {5, 7, 9}, s1[2] = {9, 12}, m1[2] = {3, 4};
    assert_exact(ad_sum(x, 1, ax0, false), 3, s0);
    assert_exact(ad_sum(x, 1, ax1, false), 2, s1);
    assert_close(3.5, ad_value(ad_mean_all(x)), 0, 0);
    ad_tensor *m = ad_mean(x, 1, ax1, false);
    assert_values(m, 2, m1, 1e-15, 0);
    const double third = 1.0 / 3.0, gm[6] = {third, third, third, third, third, third};
    assert_values(grad_of_sum(m, x), 6, gm, 1e-15, 0);
    const double ones[6] = {1, 1, 1, 1, 1, 1};
    assert_exact(grad_of_sum(ad_sum(x, 1, ax0, false), x), 6, ones);
}

static void test_max_and_logsumexp_by_hand(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int ax0[1] = {0}, ax1[1] = {1};
    ad_tensor *all = ad_max(x, 0, NULL, false);
    assert_close(6.0, ad_value(all), 0, 0);
    const double one_hot[6] = {0, 0, 0, 0, 0, 1};
    assert_exact(grad_of_sum(all, x), 6, one_hot);
    const double m0[3] = {4, 5, 6}, m1[2] = {5, 6};
    assert_exact(ad_max(x, 1, ax0, false), 3, m0);
    assert_exact(ad_max(x, 1, ax1, false), 2, m1);
    const double g0[6] = {0, 1, 0, 1, 0, 1};
    assert_exact(grad_of_sum(ad_max(x, 1, ax0, false), x), 6, g0);

    ad_tensor *l = ad_logsumexp(x, 1, ax1, false);
    double z0 = exp(1.0) + exp(5.0) + exp(3.0), z1 = exp(4.0) + exp(2.0) + exp(6.0);
    const double want_l[2] = {log(z0), log(z1)};
    assert_values(l, 2, want_l, 1e-15, 0);
    const double want_g[6] = {exp(1.0) / z0, exp(5.0) / z0, exp(3.0) / z0,
                              exp(4.0) / z1, exp(2.0) / z1, exp(6.0) / z1};
    assert_values(grad_of_sum(l, x), 6, want_g, 1e-14, 0);
}

static void test_var_by_hand_with_both_corrections(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    /* mean 3.5, squared deviations sum to 17.5 */
    assert_close(3.5, ad_value(ad_var(x, 0, NULL, false, 1)), 1e-15, 0);
    assert_close(17.5 / 6.0, ad_value(ad_var(x, 0, NULL, false, 0)), 1e-15, 0);
    const int ax1[1] = {1};
    ad_tensor *v = ad_var(x, 1, ax1, true, 1);
    const int64_t kept[2] = {2, 1};
    assert_shape(v, 2, kept);
    const double want[2] = {4.0, 4.0};
    assert_values(v, 2, want, 1e-15, 0);
    /* d var / dx_i = 2 (x_i - mean) / (N - 1) */
    const double g[6] = {-2, 2, 0, 0, -2, 2};
    assert_values(grad_of_sum(v, x), 6, g, 1e-15, 1e-15);
}

static void test_keepdim_keeps_reduced_dims_as_size_one(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[3] = {2, 3, 4};
    ad_tensor *x = ad_full(tape, AD_F64, 3, shape, 1.0);
    const int axes[2] = {0, 2};
    const int64_t kept[3] = {1, 3, 1}, dropped[1] = {3}, all_kept[3] = {1, 1, 1};
    ad_tensor *ys[4] = {ad_sum(x, 2, axes, true), ad_max(x, 2, axes, true),
                        ad_logsumexp(x, 2, axes, true), ad_mean(x, 2, axes, true)};
    for (int i = 0; i < 4; i++)
        assert_shape(ys[i], 3, kept);
    assert_shape(ad_sum(x, 2, axes, false), 1, dropped);
    assert_shape(ad_var(x, 2, axes, false, 1), 1, dropped);
    assert_shape(ad_sum(x, 0, NULL, true), 3, all_kept);
    assert_close(8.0, ad_tensor_get(ys[0], 1), 0, 0);
}

static void test_reducing_everything_without_keepdim_gives_a_0d_tensor(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_full(tape, AD_F64, 2, shape23, 2.0);
    const int both[2] = {1, 0};
    ad_tensor *ys[5] = {ad_sum(x, 0, NULL, false), ad_sum(x, 2, both, false),
                        ad_max(x, 0, NULL, false), ad_logsumexp(x, 0, NULL, false), ad_mean_all(x)};
    for (int i = 0; i < 5; i++) {
        assert_non_null(ys[i]);
        assert_int_equal(ad_tensor_ndim(ys[i]), 0);
        assert_int_equal(ad_tensor_numel(ys[i]), 1);
    }
    assert_close(12.0, ad_value(ys[1]), 0, 0);
}

static void test_negative_axes_count_from_the_end(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int neg[1] = {-1}, pos[1] = {1}, neg2[1] = {-2}, pos0[1] = {0};
    ad_tensor *a = ad_sum(x, 1, neg, false), *b = ad_sum(x, 1, pos, false);
    ad_tensor *c = ad_max(x, 1, neg2, false), *d = ad_max(x, 1, pos0, false);
    const double want_ab[2] = {9, 12}, want_cd[3] = {4, 5, 6};
    assert_exact(a, 2, want_ab);
    assert_exact(b, 2, want_ab);
    assert_exact(c, 3, want_cd);
    assert_exact(d, 3, want_cd);
}

static void test_reduction_with_a_repeated_axis_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_full(tape, AD_F64, 2, shape23, 1.0);
    const int dup[2] = {1, -1};
    assert_null(ad_sum(x, 2, dup, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "sum");
    assert_message_has(tape, "[2,3]");
    assert_message_has(tape, "-1");
    /* Every reduction checks its axes. */
    const char *names[4] = {"mean", "max", "logsumexp", "var"};
    for (int k = 0; k < 4; k++) {
        ad_tape_clear_error(tape);
        ad_tensor *y = k == 0   ? ad_mean(x, 2, dup, false)
                       : k == 1 ? ad_max(x, 2, dup, false)
                       : k == 2 ? ad_logsumexp(x, 2, dup, false)
                                : ad_var(x, 2, dup, false, 1);
        assert_null(y);
        assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
        assert_message_has(tape, names[k]);
    }
}

static void test_reduction_with_an_out_of_range_axis_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_full(tape, AD_F64, 2, shape23, 1.0);
    const int big[1] = {2}, small[1] = {-3};
    assert_null(ad_max(x, 1, big, true));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "max");
    assert_message_has(tape, "axis 2");
    assert_message_has(tape, "[2,3]");
    ad_tape_clear_error(tape);
    assert_null(ad_logsumexp(x, 1, small, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "-3");
}

/* ---- Empty tensors ---------------------------------------------------------------------- */

static void test_mean_of_an_empty_tensor_is_nan(void **state)
{
    ad_tape *tape = *state;
    const int64_t empty[1] = {0}, rows0[2] = {0, 3};
    ad_tensor *x = ad_tape_tensor(tape, AD_F64, 1, empty, NULL);
    assert_true(isnan(ad_value(ad_mean_all(x))));
    ad_tensor *y = ad_tape_tensor(tape, AD_F64, 2, rows0, NULL);
    const int ax0[1] = {0}, ax1[1] = {1};
    ad_tensor *m = ad_mean(y, 1, ax0, false);
    assert_shape(m, 1, shape3);
    for (int i = 0; i < 3; i++)
        assert_true(isnan(ad_tensor_get(m, i)));
    assert_shape(ad_mean(y, 1, ax1, false), 1, empty);
}

static void test_ops_on_zero_size_tensors_give_empty_gradients(void **state)
{
    ad_tape *tape = *state;
    const int64_t rows0[2] = {0, 3};
    ad_tensor *in[2] = {leaf(tape, AD_F64, 2, rows0, NULL), leaf(tape, AD_F64, 1, shape3, b3)};
    ad_tensor *y = ad_mul(ad_exp(ad_add(in[0], in[1])), ad_tanh(in[0]));
    assert_shape(y, 2, rows0);
    ad_tensor *s = ad_sum_all(y);
    assert_close(0.0, ad_value(s), 0, 0);
    ad_tensor *g[2];
    grads_of_sum(y, 2, in, g);
    assert_shape(g[0], 2, rows0);
    assert_shape(g[1], 1, shape3);
    const double zeros[3] = {0, 0, 0};
    assert_exact(g[1], 3, zeros);
    /* Through a reduction over the non-empty axis, and backward into a leaf. */
    const int ax1[1] = {1};
    ad_tensor *r = ad_sum(ad_square(in[0]), 1, ax1, false);
    const int64_t empty[1] = {0};
    assert_shape(r, 1, empty);
    assert_int_equal(ad_backward(ad_sum_all(r), NULL), AD_OK);
    assert_shape(ad_tensor_grad(in[0]), 2, rows0);
}

static void test_max_over_an_empty_dim_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t rows0[2] = {0, 3};
    ad_tensor *x = ad_tape_tensor(tape, AD_F64, 2, rows0, NULL);
    assert_null(ad_max(x, 0, NULL, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "max");
    assert_message_has(tape, "[0,3]");
    /* Over the other, non-empty dim, it is fine: an empty result. */
    ad_tape_clear_error(tape);
    const int ax1[1] = {1};
    assert_non_null(ad_max(x, 1, ax1, false));
}

/* ---- cast, detach, dtypes ------------------------------------------------------------------ */

static void test_cast_rounds_to_float32_and_its_gradient_returns_to_float64(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {0.1, 3.0};
    ad_tensor *xs = leaf_vec(tape, 2, x);
    ad_tensor *f = ad_cast(xs, AD_F32);
    assert_int_equal(ad_tensor_dtype(f), AD_F32);
    assert_true(ad_tensor_get(f, 0) == (double)0.1f);
    assert_true(ad_cast(xs, AD_F64) == xs);
    ad_tensor *y = ad_mul_scalar(f, 2.0);
    ad_tensor *g = grad_of_sum(ad_cast(y, AD_F64), xs);
    assert_int_equal(ad_tensor_dtype(g), AD_F64);
    const double two[2] = {2.0, 2.0};
    assert_exact(g, 2, two);
}

static void test_detach_stops_the_gradient(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {3.0, -2.0};
    ad_tensor *xs = leaf_vec(tape, 2, x);
    ad_tensor *d = ad_detach(xs);
    assert_false(ad_tensor_requires_grad(d));
    assert_exact(d, 2, x);
    /* x * detach(x): the detached factor is a constant, so the gradient is x. */
    assert_exact(grad_of_sum(ad_mul(xs, d), xs), 2, x);
}

typedef ad_tensor *(*unary_fn)(ad_tensor *);

static ad_tensor *reduce_mix(ad_tensor *x)
{
    const int last[1] = {-1};
    return ad_add(ad_add(ad_logsumexp(x, 1, last, true), ad_max(x, 1, last, true)),
                  ad_add(ad_mean(x, 1, last, true), ad_var(x, 1, last, true, 1)));
}

static ad_tensor *binary_mix(ad_tensor *x)
{
    /* c in [0.5, inf): a divisor and exponent well away from 0 */
    ad_tensor *c =
        ad_add_scalar(ad_exp(ad_mul_scalar(ad_sum(x, 1, (const int[1]){0}, true), 0.3)), 0.5);
    return ad_add(ad_add(ad_div(x, c), ad_pow(ad_add_scalar(ad_abs(x), 0.5), c)),
                  ad_add(ad_maximum(x, c), ad_sub(ad_minimum(c, x), ad_mul(x, c))));
}

static ad_tensor *pow_and_leaky(ad_tensor *x)
{
    return ad_add(ad_pow_scalar(ad_add_scalar(ad_abs(x), 0.1), 1.5), ad_leaky_relu(x, 0.1));
}

/* The new ops of limited domain, fed from x in [-2, 2) inside it. */
static ad_tensor *domain_mix(ad_tensor *x)
{
    ad_tensor *half = ad_mul_scalar(x, 0.45), *pos = ad_add_scalar(ad_abs(x), 0.5);
    return ad_add(ad_add(ad_add(ad_asin(half), ad_acos(half)), ad_atanh(half)),
                  ad_add(ad_add(ad_acosh(ad_add_scalar(ad_square(x), 1.5)), ad_log2(pos)),
                         ad_add(ad_log10(pos), ad_rsqrt(pos))));
}

static ad_tensor *new_binary_mix(ad_tensor *x)
{
    ad_tensor *c =
        ad_add_scalar(ad_exp(ad_mul_scalar(ad_sum(x, 1, (const int[1]){0}, true), 0.3)), 0.5);
    return ad_add(ad_add(ad_atan2(x, c), ad_hypot(c, x)), ad_xlogy(x, c));
}

static ad_tensor *clamp_mix(ad_tensor *x)
{
    return ad_add(ad_add(ad_clamp(x, -0.7, 0.9), ad_hardtanh(x, -1.1, 0.3)),
                  ad_add(ad_elu(x, 0.5), ad_reciprocal(ad_add_scalar(ad_abs(x), 0.5))));
}

/* erfinv, sinc, logit, remainder, fmod, logaddexp and logaddexp2, fed from x in
 * [-2, 2) inside their domains; remainder and fmod by c >= 0.5 (a quotient within
 * float rounding of an integer would make the two dtypes jump apart). */
static ad_tensor *elementwise_mix(ad_tensor *x)
{
    ad_tensor *c =
        ad_add_scalar(ad_exp(ad_mul_scalar(ad_sum(x, 1, (const int[1]){0}, true), 0.3)), 0.5);
    ad_tensor *unit = ad_add_scalar(ad_mul_scalar(x, 0.2), 0.5); /* in [0.1, 0.9) */
    ad_tensor *unary = ad_add(ad_add(ad_erfinv(ad_mul_scalar(x, 0.45)), ad_sinc(x)),
                              ad_add(ad_logit(unit, -1.0), ad_logit(unit, 0.3)));
    ad_tensor *binary = ad_add(ad_add(ad_remainder(x, c), ad_fmod(x, c)),
                               ad_add(ad_logaddexp(x, c), ad_logaddexp2(c, x)));
    return ad_add(unary, binary);
}

static void test_float32_and_float64_agree_to_float_precision(void **state)
{
    ad_tape *tape = *state;
    const unary_fn fns[] = {ad_neg, ad_exp, ad_square, ad_sin, ad_cos, ad_tanh, ad_sigmoid, ad_relu,
                            ad_abs, ad_softplus, ad_gelu, reduce_mix, binary_mix, pow_and_leaky,
                            /* the ops of issue 11 */
                            ad_tan, ad_atan, ad_sinh, ad_cosh, ad_asinh, ad_erf, ad_erfc, ad_exp2,
                            ad_sign, ad_floor, ad_ceil, ad_round, ad_trunc, ad_silu, ad_selu,
                            ad_mish, ad_softsign, ad_logsigmoid, ad_hardswish, ad_hardsigmoid,
                            ad_gelu_erf, domain_mix, new_binary_mix, clamp_mix,
                            /* erfinv ... logaddexp2 */
                            elementwise_mix};
    const int64_t shape[2] = {3, 4};
    double x[12];
    uint64_t rng = 42;
    for (int i = 0; i < 12; i++)
        x[i] = test_uniform(&rng, -2, 2);
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
        double y[2][12], g[2][12];
        int64_t n = 0;
        for (int dt = 0; dt < 2; dt++) {
            ad_tape_reset(tape);
            ad_tensor *xs = leaf(tape, (ad_dtype)dt, 2, shape, x);
            ad_tensor *ys = fns[k](xs);
            if (!ys)
                fail_msg("function %zu failed: %s", k, ad_tape_message(tape));
            assert_int_equal(ad_tensor_dtype(ys), dt);
            n = ad_tensor_numel(ys);
            assert_true(n <= 12);
            ad_tensor *gs = grad_of_sum(ys, xs);
            assert_int_equal(ad_tensor_dtype(gs), dt);
            ad_tensor_copy_to_doubles(ys, y[dt]);
            ad_tensor_copy_to_doubles(gs, g[dt]);
        }
        for (int64_t i = 0; i < n; i++)
            if (fabs(y[0][i] - y[1][i]) > 1e-5 * (1 + fabs(y[1][i])))
                fail_msg("function %zu value %lld: float32 %.9g, float64 %.17g", k, (long long)i,
                         y[0][i], y[1][i]);
        for (int i = 0; i < 12; i++)
            if (fabs(g[0][i] - g[1][i]) > 1e-5 * (1 + fabs(g[1][i])))
                fail_msg("function %zu gradient %d: float32 %.9g, float64 %.17g", k, i, g[0][i],
                         g[1][i]);
    }
}

/* relu, sigmoid and tanh run a fused gradient kernel when backward is not
 * recorded, and their composed rule with create_graph: the two must give the
 * same bits, at kinks (0, -0), NaN, infinities and saturation included. */
static void fused_and_composed_gradients(ad_dtype dtype, ad_tensor *(*op)(ad_tensor *),
                                         const char *name)
{
    static const double points[] = {-3.5, -1.0, -0.0,  0.0,      1e-30,     0.25, 0.7,
                                    2.0,  40.0, -40.0, INFINITY, -INFINITY, NAN,  1e4};
    enum { COUNT = sizeof points / sizeof points[0] };
    static const double seed_values[COUNT] = {1.5,  -2.0, 3.0, -0.5, 1.0,  -1.0, 0.3,
                                              -0.7, 2.0,  1.0, 1.0,  -1.0, 1.0,  -3.0};
    double fused[COUNT], composed[COUNT];
    for (int create_graph = 0; create_graph < 2; create_graph++) {
        ad_tape *tape = test_tape();
        int64_t shape[1] = {COUNT};
        ad_tensor *x = ad_requires_grad(ad_tape_tensor_from_doubles(tape, dtype, 1, shape, points));
        ad_tensor *seed = ad_tape_tensor_from_doubles(tape, dtype, 1, shape, seed_values);
        ad_tensor *y = op(x), *g = NULL;
        ad_backward_opts opts = {.seed = seed, .create_graph = create_graph != 0};
        assert_int_equal(ad_grad(1, &y, &seed, 1, &x, &g, &opts), AD_OK);
        /* The composed rule is recorded (relu's mask is a constant, so its
         * gradient does not depend on x and is not). */
        if (op != ad_relu)
            assert_int_equal(ad_tensor_requires_grad(g), create_graph != 0);
        assert_int_equal(ad_tensor_copy_to_doubles(g, create_graph ? composed : fused), AD_OK);
        ad_tape_free(tape);
    }
    for (int i = 0; i < COUNT; i++)
        if (memcmp(&fused[i], &composed[i], sizeof fused[i]) != 0)
            fail_msg("%s %s at %g: fused gradient %.17g, composed %.17g", name,
                     dtype == AD_F32 ? "float32" : "float64", points[i], fused[i], composed[i]);
}

static void test_fused_activation_gradients_match_the_composed_rules_bit_for_bit(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        ad_dtype dtype = d ? AD_F64 : AD_F32;
        fused_and_composed_gradients(dtype, ad_relu, "relu");
        fused_and_composed_gradients(dtype, ad_sigmoid, "sigmoid");
        fused_and_composed_gradients(dtype, ad_tanh, "tanh");
    }
}

/* Distance in ulps between two floats of one sign convention (NaN apart). */
static double float_ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia, ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return (double)(oa > ob ? oa - ob : ob - oa);
}

/* float32 sigmoid and tanh are computed without libm (src/ops/fast_float.h):
 * within 4 ulps of the correctly rounded value over the whole float range
 * and its subnormal end, with the limits, signed zeros and NaN right. */
static void test_float32_sigmoid_and_tanh_are_within_4_ulps(void **state)
{
    ad_tape *tape = *state;
    enum { N = 200001 };
    static double xs[N + 160];
    int64_t n = 0;
    for (int64_t i = 0; i < N; i++)
        xs[n++] = (float)(-110.0 + 220.0 * (double)i / (N - 1));
    for (int k = -149; k < -140; k += 1)
        xs[n++] = ldexp(1.0, k);
    for (int k = -40; k < 0; k++)
        xs[n++] = -ldexp(1.5, k);
    ad_tensor *x = ad_tape_tensor_from_doubles(tape, AD_F32, 1, (int64_t[]){n}, xs);
    ad_tensor *s = ad_sigmoid(x), *t = ad_tanh(x);
    assert_non_null(s);
    assert_non_null(t);
    const float *sv = ad_tensor_data(s), *tv = ad_tensor_data(t);
    double worst_s = 0, worst_t = 0;
    for (int64_t i = 0; i < n; i++) {
        double xd = (float)xs[i];
        float want_s = (float)(1 / (1 + exp(-xd))), want_t = (float)tanh(xd);
        worst_s = fmax(worst_s, float_ulps(sv[i], want_s));
        worst_t = fmax(worst_t, float_ulps(tv[i], want_t));
    }
    assert_true(worst_s <= 4);
    assert_true(worst_t <= 4);
    const double special[6] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1e-30};
    ad_tensor *sp = ad_tape_tensor_from_doubles(tape, AD_F32, 1, (int64_t[]){6}, special);
    const float *ss = ad_tensor_data(ad_sigmoid(sp)), *ts = ad_tensor_data(ad_tanh(sp));
    assert_true(ss[0] == 0.5f && ss[1] == 0.5f && ss[2] == 1 && ss[3] == 0 && isnan(ss[4]));
    assert_true(ts[0] == 0 && !signbit(ts[0]) && ts[1] == 0 && signbit(ts[1]));
    assert_true(ts[2] == 1 && ts[3] == -1 && isnan(ts[4]) && ts[5] == 1e-30f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_unary_values_and_gradients_match_their_formulas),
        TAPE_TEST(test_unary_values_match_hand_computed_numbers),
        TAPE_TEST(test_gelu_matches_hand_computed_values),
        TAPE_TEST(test_pow_scalar_value_and_gradient),
        TAPE_TEST(test_leaky_relu_gradient_is_one_above_zero_and_the_slope_at_or_below),
        TAPE_TEST(test_relu_gradient_at_zero_is_zero_for_both_signs_of_zero),
        TAPE_TEST(test_abs_gradient_at_zero_is_zero),
        TAPE_TEST(test_sqrt_gradient_at_zero_is_positive_infinity),
        TAPE_TEST(test_pow_scalar_with_p_zero_has_exactly_zero_gradient_at_zero),
        TAPE_TEST(test_pow_gradient_in_the_exponent_is_zero_at_a_zero_base),
        TAPE_TEST(test_pow_gradient_in_the_base_is_zero_for_a_zero_exponent),
        TAPE_TEST(test_maximum_and_minimum_ties_give_each_operand_half),
        TAPE_TEST(test_maximum_tie_with_a_broadcast_scalar_sums_the_halves),
        TAPE_TEST(test_max_reduction_splits_ties_evenly),
        TAPE_TEST(test_sigmoid_is_finite_and_correct_at_plus_minus_800),
        TAPE_TEST(test_logsumexp_of_plus_minus_1000_is_finite),
        TAPE_TEST(test_log1p_is_accurate_for_tiny_inputs),
        TAPE_TEST(test_expm1_is_accurate_for_tiny_inputs),
        TAPE_TEST(test_expm1_of_a_failed_op_is_null_and_keeps_the_first_error),
        TAPE_TEST(test_softplus_is_exactly_x_above_20),
        TAPE_TEST(test_relu_of_nan_is_nan),
        TAPE_TEST(test_tanh_and_exp_saturate_without_nan),
        TAPE_TEST(test_new_unary_ops_match_pytorch_at_special_points),
        TAPE_TEST(test_rounding_ops_keep_signed_zeros_and_round_halves_to_even),
        TAPE_TEST(test_rounding_ops_give_zero_gradient_even_for_an_infinite_seed),
        TAPE_TEST(test_clamp_without_any_bound_is_an_argument_error),
        TAPE_TEST(test_clamp_with_one_nan_bound_clamps_on_the_other_side_only),
        TAPE_TEST(test_smooth_activations_are_finite_at_plus_minus_100_in_float32),
        TAPE_TEST(test_new_ops_of_null_or_mixed_dtypes_fail_like_the_others),
        TAPE_TEST(test_new_unary_ops_match_pytorch_in_float32),
        TAPE_TEST(test_erfinv_is_within_an_ulp_near_one_and_for_tiny_inputs),
        TAPE_TEST(test_sinc_slope_is_zero_at_zero_with_curvature_minus_pi_squared_over_3),
        TAPE_TEST(test_logit_eps_bounds_keep_the_slope_and_a_negative_eps_means_none),
        TAPE_TEST(test_selu_second_derivative_is_zero_at_zero_and_finite_at_infinities),
        TAPE_TEST(test_selu_and_softsign_match_pytorch_at_zero_and_far_out),
        TAPE_TEST(test_binary_ops_broadcast_rows_with_hand_computed_values),
        TAPE_TEST(test_atan2_hypot_xlogy_broadcast_against_libm),
        TAPE_TEST(test_atan2_hypot_xlogy_match_pytorch_at_special_points),
        TAPE_TEST(test_remainder_and_fmod_by_zero_are_nan_with_pytorch_gradients),
        TAPE_TEST(test_remainder_fmod_logaddexp_match_pytorch_in_both_dtypes),
        TAPE_TEST(test_remainder_and_fmod_scalar_forms_match_pytorch_in_both_dtypes),
        TAPE_TEST(test_pow_value_and_gradients_by_hand),
        TAPE_TEST(test_broadcasting_size_one_dims_on_both_sides),
        TAPE_TEST(test_binary_shape_mismatch_names_both_shapes),
        TAPE_TEST(test_scalar_forms_compute_and_differentiate),
        TAPE_TEST(test_sum_and_mean_by_hand),
        TAPE_TEST(test_max_and_logsumexp_by_hand),
        TAPE_TEST(test_var_by_hand_with_both_corrections),
        TAPE_TEST(test_keepdim_keeps_reduced_dims_as_size_one),
        TAPE_TEST(test_reducing_everything_without_keepdim_gives_a_0d_tensor),
        TAPE_TEST(test_negative_axes_count_from_the_end),
        TAPE_TEST(test_reduction_with_a_repeated_axis_is_an_axis_error),
        TAPE_TEST(test_reduction_with_an_out_of_range_axis_is_an_axis_error),
        TAPE_TEST(test_mean_of_an_empty_tensor_is_nan),
        TAPE_TEST(test_ops_on_zero_size_tensors_give_empty_gradients),
        TAPE_TEST(test_max_over_an_empty_dim_is_a_shape_error),
        TAPE_TEST(test_cast_rounds_to_float32_and_its_gradient_returns_to_float64),
        TAPE_TEST(test_detach_stops_the_gradient),
        TAPE_TEST(test_float32_and_float64_agree_to_float_precision),
        TAPE_TEST(test_float32_sigmoid_and_tanh_are_within_4_ulps),
        cmocka_unit_test(test_fused_activation_gradients_match_the_composed_rules_bit_for_bit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
