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

static void test_float32_and_float64_agree_to_float_precision(void **state)
{
    ad_tape *tape = *state;
    const unary_fn fns[] = {ad_neg,  ad_exp,     ad_square,  ad_sin,       ad_cos,
                            ad_tanh, ad_sigmoid, ad_relu,    ad_abs,       ad_softplus,
                            ad_gelu, reduce_mix, binary_mix, pow_and_leaky};
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
        TAPE_TEST(test_binary_ops_broadcast_rows_with_hand_computed_values),
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
        cmocka_unit_test(test_fused_activation_gradients_match_the_composed_rules_bit_for_bit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
