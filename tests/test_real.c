/* Unit tests of the fast scalars (autodiff/real.h): every op against a plain
 * C reference and central finite differences at random points, and against
 * the tensor op of the same name on 0-d float64 tensors at the same points
 * and at kinks, ties and extremes; nodes used twice; constants and no-grad
 * mode; repeated and partial backward; resets, stale handles and memory
 * reuse; a failing-allocator sweep; a chain of a million ops; two tapes in two
 * threads; the bytes a node costs. */
#include "test_util.h"

#include "autodiff/real.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- The op table ------------------------------------------------------------------------
 * Each row: the ad_real op, the tensor op of the same name, a plain C
 * reference for the value, where random points are drawn, and special points
 * (kinks, ties, extremes) where only the tensor op is the reference. A
 * pow_scalar row takes its exponent p as the second input, a constant. */

typedef enum { UNARY, BINARY, POW_SCALAR } op_kind;

#define MAX_SPECIAL 10

typedef struct op_case {
    const char *name;
    op_kind kind;
    ad_real (*real1)(ad_tape *, ad_real);
    ad_real (*real2)(ad_tape *, ad_real, ad_real);
    ad_tensor *(*tensor1)(ad_tensor *);
    ad_tensor *(*tensor2)(ad_tensor *, ad_tensor *);
    double (*reference)(double, double);
    double lo[2], hi[2];
    /* 0: the tensor op must agree exactly. div rounds its db = -a/b^2 in a
     * different order from the tensor op, -(a (1/b)) (1/b): a few ulps. */
    double tensor_rtol;
    int n_special;
    double special[MAX_SPECIAL][2];
} op_case;

/* The references, as plain C on doubles: ref_<op>(a, b); unary ops ignore b
 * and pow_scalar's b is its exponent. */
#define REFERENCE(op, expr)                                                                        \
    static double ref_##op(double a, double b)                                                     \
    {                                                                                              \
        (void)a, (void)b;                                                                          \
        return (expr);                                                                             \
    }

#define UNARY_CASE(op)                                                                             \
    .name = #op, .kind = UNARY, .real1 = ad_real_##op, .tensor1 = ad_##op, .reference = ref_##op
#define BINARY_CASE(op)                                                                            \
    .name = #op, .kind = BINARY, .real2 = ad_real_##op, .tensor2 = ad_##op, .reference = ref_##op

// clang-format off
REFERENCE(add, a + b)
REFERENCE(sub, a - b)
REFERENCE(mul, a * b)
REFERENCE(div, a / b)
REFERENCE(pow, pow(a, b))
REFERENCE(maximum, a > b ? a : b)
REFERENCE(minimum, a < b ? a : b)
REFERENCE(neg, -a)
REFERENCE(exp, exp(a))
REFERENCE(log, log(a))
REFERENCE(log1p, log1p(a))
REFERENCE(sqrt, sqrt(a))
REFERENCE(square, a * a)
REFERENCE(sin, sin(a))
REFERENCE(cos, cos(a))
REFERENCE(tanh, tanh(a))
REFERENCE(sigmoid, 1 / (1 + exp(-a))) /* the textbook form: fine at moderate points */
REFERENCE(relu, a > 0 ? a : 0)
REFERENCE(abs, fabs(a))
REFERENCE(softplus, a > 20 ? a : log1p(exp(a)))
REFERENCE(pow_scalar, pow(a, b))

static const op_case cases[] = {
    {BINARY_CASE(add), .lo = {-3, -3}, .hi = {3, 3},
     .n_special = 4, .special = {{0.0, -0.0}, {1e308, 1e308}, {INFINITY, -INFINITY}, {NAN, 1}}},
    {BINARY_CASE(sub), .lo = {-3, -3}, .hi = {3, 3},
     .n_special = 3, .special = {{0.0, 0.0}, {INFINITY, INFINITY}, {-1e308, 1e308}}},
    {BINARY_CASE(mul), .lo = {-3, -3}, .hi = {3, 3},
     .n_special = 4, .special = {{0.0, INFINITY}, {-0.0, 3}, {1e200, 1e200}, {NAN, 2}}},
    {BINARY_CASE(div), .lo = {-3, 0.5}, .hi = {3, 3}, .tensor_rtol = 1e-15,
     .n_special = 7, .special = {{1, 0.0}, {0.0, 0.0}, {-2, 0.0}, {5, -0.0}, {3, 1e200},
                                 {3, 1e-200}, {-7, -3}}},
    {BINARY_CASE(pow), .lo = {0.5, -2}, .hi = {3, 2},
     .n_special = 10, .special = {{0.0, 0.0}, {0.0, 2}, {0.0, 0.5}, {0.0, -1}, {-0.0, 3},
                                  {2, 0.0}, {-2, 3}, {-2, 0.5}, {1, 1e300}, {0.0, NAN}}},
    {BINARY_CASE(maximum), .lo = {-3, -3}, .hi = {3, 3},
     .n_special = 6, .special = {{1, 1}, {0.0, -0.0}, {-0.0, 0.0}, {INFINITY, INFINITY},
                                 {2, 1}, {1, 2}}},
    {BINARY_CASE(minimum), .lo = {-3, -3}, .hi = {3, 3},
     .n_special = 6, .special = {{1, 1}, {0.0, -0.0}, {-0.0, 0.0}, {-INFINITY, -INFINITY},
                                 {2, 1}, {1, 2}}},
    {UNARY_CASE(neg), .lo = {-3}, .hi = {3},
     .n_special = 3, .special = {{0.0}, {INFINITY}, {NAN}}},
    {UNARY_CASE(exp), .lo = {-3}, .hi = {3},
     .n_special = 4, .special = {{0.0}, {1000}, {-1000}, {NAN}}},
    {UNARY_CASE(log), .lo = {0.2}, .hi = {5},
     .n_special = 5, .special = {{0.0}, {-0.0}, {-1}, {INFINITY}, {1}}},
    {UNARY_CASE(log1p), .lo = {-0.8}, .hi = {5},
     .n_special = 5, .special = {{-1}, {1e-20}, {-1e-20}, {-2}, {0.0}}},
    {UNARY_CASE(sqrt), .lo = {0.1}, .hi = {5},
     .n_special = 5, .special = {{0.0}, {-0.0}, {-1}, {INFINITY}, {1e-300}}},
    {UNARY_CASE(square), .lo = {-3}, .hi = {3},
     .n_special = 3, .special = {{0.0}, {1e200}, {-1e-200}}},
    {UNARY_CASE(sin), .lo = {-5}, .hi = {5},
     .n_special = 3, .special = {{0.0}, {1e22}, {INFINITY}}},
    {UNARY_CASE(cos), .lo = {-5}, .hi = {5},
     .n_special = 3, .special = {{0.0}, {1e22}, {INFINITY}}},
    {UNARY_CASE(tanh), .lo = {-3}, .hi = {3},
     .n_special = 5, .special = {{0.0}, {30}, {-30}, {400}, {NAN}}},
    {UNARY_CASE(sigmoid), .lo = {-6}, .hi = {6},
     .n_special = 7, .special = {{0.0}, {700}, {-700}, {800}, {-800}, {1000}, {-1000}}},
    {UNARY_CASE(relu), .lo = {-3}, .hi = {3},
     .n_special = 7, .special = {{0.0}, {-0.0}, {NAN}, {1e-300}, {-1e-300}, {4.9e-324},
                                 {-INFINITY}}},
    {UNARY_CASE(abs), .lo = {-3}, .hi = {3},
     .n_special = 5, .special = {{0.0}, {-0.0}, {NAN}, {-INFINITY}, {4.9e-324}}},
    {UNARY_CASE(softplus), .lo = {-10}, .hi = {30},
     .n_special = 8, .special = {{20}, {20.000000000000004}, {19.999999999999996}, {21}, {50},
                                 {-50}, {800}, {-800}}},
    {.name = "pow_scalar", .kind = POW_SCALAR, .reference = ref_pow_scalar,
     .lo = {0.2, -2}, .hi = {3, 3},
     .n_special = 10, .special = {{0.0, 0.0}, {0.0, 2}, {0.0, 1}, {0.0, 0.5}, {0.0, -1},
                                  {-2, 3}, {-2, 0.5}, {2, 0.0}, {INFINITY, 0.0}, {NAN, 0.0}}},
};
// clang-format on

#define N_CASES (sizeof cases / sizeof cases[0])

static const op_case *find_case(const char *name)
{
    for (size_t i = 0; i < N_CASES; i++)
        if (strcmp(cases[i].name, name) == 0)
            return &cases[i];
    fail_msg("no op case named %s", name);
    return NULL;
}

/* Number of inputs the gradient is taken with respect to. */
static int n_inputs(const op_case *c)
{
    return c->kind == BINARY ? 2 : 1;
}

static ad_real apply_real(const op_case *c, ad_tape *tape, ad_real a, ad_real b)
{
    switch (c->kind) {
    case UNARY:
        return c->real1(tape, a);
    case BINARY:
        return c->real2(tape, a, b);
    case POW_SCALAR:
        return ad_real_pow_scalar(tape, a, b.value);
    }
    return ad_real_const(NAN);
}

static ad_tensor *apply_tensor(const op_case *c, ad_tensor *a, ad_tensor *b, double p)
{
    switch (c->kind) {
    case UNARY:
        return c->tensor1(a);
    case BINARY:
        return c->tensor2(a, b);
    case POW_SCALAR:
        return ad_pow_scalar(a, p);
    }
    return NULL;
}

/* The value of y = op(x) and dy/dx_i, through ad_real on a fresh tape. */
static void eval_real(const op_case *c, const double *x, double *value, double *grad)
{
    ad_tape *tape = test_tape();
    ad_real a = ad_real_var(tape, x[0]);
    ad_real b = c->kind == BINARY ? ad_real_var(tape, x[1]) : ad_real_const(x[1]);
    ad_real y = apply_real(c, tape, a, b);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    *value = y.value;
    grad[0] = ad_real_grad(tape, a);
    grad[1] = ad_real_grad(tape, b);
    ad_tape_free(tape);
}

/* The same through the tensor op on 0-d float64 tensors. */
static void eval_tensor(const op_case *c, const double *x, double *value, double *grad)
{
    ad_tape *tape = test_tape();
    ad_tensor *a = ad_requires_grad(ad_scalar(tape, x[0]));
    ad_tensor *b = c->kind == BINARY ? ad_requires_grad(ad_scalar(tape, x[1])) : NULL;
    ad_tensor *y = apply_tensor(c, a, b, x[1]);
    ad_status s = ad_backward(y, NULL);
    if (s != AD_OK)
        fail_msg("tensor %s(%g, %g): backward gave %s (%s)", c->name, x[0], x[1],
                 ad_status_string(s), ad_tape_message(tape));
    *value = ad_value(y);
    grad[0] = ad_grad_value(a);
    grad[1] = b ? ad_grad_value(b) : 0;
    ad_tape_free(tape);
}

/* Close within rtol (relative to expected) + atol; NaN matches NaN, an
 * infinity only itself. Names the op, its inputs and what differs. */
static void expect_close(const op_case *c, const double *x, const char *what, double expected,
                         double actual, double rtol, double atol)
{
    bool ok = (isnan(expected) && isnan(actual)) ||
              (isinf(expected)
                   ? expected == actual
                   : !isnan(actual) && fabs(expected - actual) <= atol + rtol * fabs(expected));
    if (!ok)
        fail_msg("%s(%.17g, %.17g): %s = %.17g, expected %.17g (rtol %g, atol %g)", c->name, x[0],
                 x[1], what, actual, expected, rtol, atol);
}

/* Random points at which the op is smooth: away from relu's and abs's 0,
 * softplus's threshold, and ties of maximum and minimum. */
static void random_point(const op_case *c, uint64_t *rng, double *x)
{
    for (;;) {
        x[0] = test_uniform(rng, c->lo[0], c->hi[0]);
        x[1] = c->kind == UNARY ? 0 : test_uniform(rng, c->lo[1], c->hi[1]);
        bool kink = (fabs(x[0]) < 1e-3 && (!strcmp(c->name, "relu") || !strcmp(c->name, "abs"))) ||
                    (fabs(x[0] - 20) < 1e-3 && !strcmp(c->name, "softplus")) ||
                    (fabs(x[0] - x[1]) < 1e-3 && c->kind == BINARY);
        if (!kink)
            return;
    }
}

#define N_RANDOM 8
#define FD_EPS 1e-6

/* Value against the C reference; gradient against central differences of the
 * reference (truncation ~eps^2 f''' and rounding ~1e-16 |f| / eps, both far
 * below the tolerance). Also: the op on constants gives the same value. */
static void check_finite_differences(const op_case *c)
{
    uint64_t rng = 0x5eed0000u + (uint64_t)(c - cases);
    for (int k = 0; k < N_RANDOM; k++) {
        double x[2], value, grad[2];
        random_point(c, &rng, x);
        eval_real(c, x, &value, grad);
        double f = c->reference(x[0], x[1]);
        expect_close(c, x, "value", f, value, 1e-14, 0);
        ad_real constant = apply_real(c, NULL, ad_real_const(x[0]), ad_real_const(x[1]));
        expect_close(c, x, "value on constants", value, constant.value, 0, 0);
        for (int i = 0; i < n_inputs(c); i++) {
            double up[2] = {x[0], x[1]}, down[2] = {x[0], x[1]};
            up[i] += FD_EPS;
            down[i] -= FD_EPS;
            double fd =
                (c->reference(up[0], up[1]) - c->reference(down[0], down[1])) / (up[i] - down[i]);
            expect_close(c, x, i == 0 ? "d/da (finite differences)" : "d/db (finite differences)",
                         fd, grad[i], 1e-7, 1e-9 * (1 + fabs(f)));
        }
    }
}

/* The tensor op is the reference at random points and at every special one. */
static void check_against_tensor(const op_case *c)
{
    uint64_t rng = 0x7e500000u + (uint64_t)(c - cases);
    for (int k = 0; k < N_RANDOM + c->n_special; k++) {
        double x[2];
        if (k < N_RANDOM) {
            random_point(c, &rng, x);
        } else {
            x[0] = c->special[k - N_RANDOM][0];
            x[1] = c->special[k - N_RANDOM][1];
        }
        double rv, rg[2], tv, tg[2];
        eval_real(c, x, &rv, rg);
        eval_tensor(c, x, &tv, tg);
        expect_close(c, x, "value (tensor op)", tv, rv, 0, 0);
        /* Values keep the sign of zero (relu(-0) = -0). Gradients need not:
         * adjoints start at +0, and +0 + -0 is +0. */
        if (tv == 0 && signbit(tv) != signbit(rv))
            fail_msg("%s(%.17g, %.17g): value %g, tensor op gives %g", c->name, x[0], x[1], rv, tv);
        expect_close(c, x, "d/da (tensor op)", tg[0], rg[0], c->tensor_rtol, 0);
        if (c->kind == BINARY)
            expect_close(c, x, "d/db (tensor op)", tg[1], rg[1], c->tensor_rtol, 0);
    }
}

#define OP_TESTS(op)                                                                               \
    static void test_real_##op##_value_and_gradient_match_finite_differences(void **state)         \
    {                                                                                              \
        (void)state;                                                                               \
        check_finite_differences(find_case(#op));                                                  \
    }                                                                                              \
    static void test_real_##op##_matches_the_tensor_op_at_random_points_and_kinks(void **state)    \
    {                                                                                              \
        (void)state;                                                                               \
        check_against_tensor(find_case(#op));                                                      \
    }

#define OP_TEST_ENTRIES(op)                                                                        \
    cmocka_unit_test(test_real_##op##_value_and_gradient_match_finite_differences),                \
        cmocka_unit_test(test_real_##op##_matches_the_tensor_op_at_random_points_and_kinks)

OP_TESTS(add)
OP_TESTS(sub)
OP_TESTS(mul)
OP_TESTS(div)
OP_TESTS(pow)
OP_TESTS(maximum)
OP_TESTS(minimum)
OP_TESTS(neg)
OP_TESTS(exp)
OP_TESTS(log)
OP_TESTS(log1p)
OP_TESTS(sqrt)
OP_TESTS(square)
OP_TESTS(sin)
OP_TESTS(cos)
OP_TESTS(tanh)
OP_TESTS(sigmoid)
OP_TESTS(relu)
OP_TESTS(abs)
OP_TESTS(softplus)
OP_TESTS(pow_scalar)

/* ---- Conventions spelled out (SEMANTICS.md) ------------------------------------------ */

static void test_real_var_has_its_value_and_gradient_one_like_a_tensor_leaf(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real x = ad_real_var(tape, -2.5);
    assert_close(-2.5, x.value, 0, 0);
    assert_int_not_equal(x.node, 0);
    assert_int_equal(ad_real_count(tape), 1);
    assert_int_equal(ad_real_backward(tape, x), AD_OK);
    assert_close(1.0, ad_real_grad(tape, x), 0, 0);

    ad_tensor *t = ad_requires_grad(ad_scalar(tape, -2.5));
    assert_int_equal(ad_backward(t, NULL), AD_OK);
    assert_close(ad_grad_value(t), ad_real_grad(tape, x), 0, 0);
    ad_tape_free(tape);
}

static void test_real_conventions_at_kinks_and_ties_follow_pytorch(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real zero = ad_real_var(tape, 0.0), two = ad_real_var(tape, 2.0);
    ad_real y;

    y = ad_real_relu(tape, zero); /* relu(0) = 0, gradient 0 */
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(y.value == 0 && ad_real_grad(tape, zero) == 0);

    y = ad_real_abs(tape, zero); /* sign(0) = 0 */
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(ad_real_grad(tape, zero) == 0);

    ad_real a = ad_real_var(tape, 1.5), b = ad_real_var(tape, 1.5);
    y = ad_real_maximum(tape, a, b); /* a tie: half each */
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(0.5, ad_real_grad(tape, a), 0, 0);
    assert_close(0.5, ad_real_grad(tape, b), 0, 0);
    y = ad_real_minimum(tape, a, b);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(0.5, ad_real_grad(tape, a), 0, 0);
    assert_close(0.5, ad_real_grad(tape, b), 0, 0);

    ad_real zero_b = ad_real_var(tape, 0.0);
    y = ad_real_pow(tape, zero, zero_b); /* 0^0 = 1, both partials 0 */
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(1.0, y.value, 0, 0);
    assert_true(ad_real_grad(tape, zero) == 0 && ad_real_grad(tape, zero_b) == 0);

    y = ad_real_pow(tape, zero, two); /* d/db = 0 where a = 0, b >= 0 (not NaN) */
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(ad_real_grad(tape, zero) == 0 && ad_real_grad(tape, two) == 0);

    y = ad_real_pow_scalar(tape, zero, 0.0); /* exactly 0 when p = 0, even at 0 */
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(1.0, y.value, 0, 0);
    assert_true(ad_real_grad(tape, zero) == 0);

    y = ad_real_sqrt(tape, zero); /* +inf at 0 */
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(isinf(ad_real_grad(tape, zero)) && ad_real_grad(tape, zero) > 0);

    ad_real big = ad_real_var(tape, 25.0); /* softplus is exactly x above 20 */
    y = ad_real_softplus(tape, big);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(y.value == 25.0 && ad_real_grad(tape, big) == 1.0);

    for (double v = -1000; v <= 1000; v += 100) { /* sigmoid never overflows */
        ad_real x = ad_real_var(tape, v);
        y = ad_real_sigmoid(tape, x);
        assert_int_equal(ad_real_backward(tape, y), AD_OK);
        assert_true(y.value >= 0 && y.value <= 1);
        assert_true(isfinite(ad_real_grad(tape, x)) && ad_real_grad(tape, x) >= 0);
    }

    ad_real nan = ad_real_var(tape, NAN); /* relu propagates NaN; gradient [not x <= 0] */
    y = ad_real_relu(tape, nan);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(isnan(y.value) && ad_real_grad(tape, nan) == 1);

    ad_real minus_zero = ad_real_var(tape, -0.0); /* relu(-0) = -0, gradient 0 */
    y = ad_real_relu(tape, minus_zero);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(y.value == 0 && signbit(y.value) && ad_real_grad(tape, minus_zero) == 0);

    ad_real tiny = ad_real_var(tape, 1e-300); /* tiny positive: gradient 1 */
    y = ad_real_relu(tape, tiny);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(ad_real_grad(tape, tiny) == 1);
    ad_tape_free(tape);
}

/* PyTorch's rule, where(a == b, g/2, g).masked_fill_(a < b, 0) for maximum's
 * a, gives every operand the whole gradient where a NaN makes each
 * comparison false. (The tensor op, src/ops/binary.c select_backward, gives
 * (0, 1) there: compared here for the value only.) */
static void
test_real_maximum_and_minimum_with_nan_give_nan_and_each_input_gradient_one(void **state)
{
    (void)state;
    const double points[3][2] = {{NAN, 1}, {1, NAN}, {NAN, NAN}};
    for (int k = 0; k < 3; k++) {
        for (int m = 0; m < 2; m++) {
            const op_case *c = find_case(m ? "minimum" : "maximum");
            double rv, rg[2], tv, tg[2];
            eval_real(c, points[k], &rv, rg);
            eval_tensor(c, points[k], &tv, tg);
            assert_true(isnan(rv) && isnan(tv));
            expect_close(c, points[k], "d/da", 1.0, rg[0], 0, 0);
            expect_close(c, points[k], "d/db", 1.0, rg[1], 0, 0);
        }
    }
}

/* ---- A node used twice -------------------------------------------------------------------- */

static void test_real_a_node_used_twice_gets_both_contributions(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real a = ad_real_var(tape, 0.75);
    ad_real b = ad_real_add(tape, a, a);
    ad_real c = ad_real_add(tape, b, b);
    assert_int_equal(ad_real_backward(tape, c), AD_OK);
    assert_close(4.0, ad_real_grad(tape, a), 0, 0);
    assert_close(2.0, ad_real_grad(tape, b), 0, 0);

    ad_real x = ad_real_var(tape, -1.25);
    ad_real xx = ad_real_mul(tape, x, x);
    assert_int_equal(ad_real_backward(tape, xx), AD_OK);
    assert_close(2 * -1.25, ad_real_grad(tape, x), 0, 0);

    ad_real d = ad_real_sub(tape, x, x); /* contributions that cancel */
    assert_int_equal(ad_real_backward(tape, d), AD_OK);
    assert_true(ad_real_grad(tape, x) == 0);

    ad_real m = ad_real_maximum(tape, x, x); /* half twice */
    assert_int_equal(ad_real_backward(tape, m), AD_OK);
    assert_close(1.0, ad_real_grad(tape, x), 0, 0);

    /* x / x through both inputs of div, and a diamond: (x + 1)(x - 1) = x^2 - 1. */
    ad_real q = ad_real_div(tape, x, x);
    assert_int_equal(ad_real_backward(tape, q), AD_OK);
    assert_close(0.0, ad_real_grad(tape, x), 0, 1e-16);
    ad_real one = ad_real_const(1.0);
    ad_real diamond = ad_real_mul(tape, ad_real_add(tape, x, one), ad_real_sub(tape, x, one));
    assert_int_equal(ad_real_backward(tape, diamond), AD_OK);
    assert_close(2 * -1.25, ad_real_grad(tape, x), 0, 0);
    ad_tape_free(tape);
}

/* ---- Constants and no-grad mode ----------------------------------------------------------- */

static void test_real_ops_on_constants_record_nothing_and_have_gradient_zero(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real v = ad_real_var(tape, 0.5);
    size_t before = ad_real_count(tape);
    for (size_t i = 0; i < N_CASES; i++) {
        const op_case *c = &cases[i];
        ad_real p = ad_real_const(0.7), q = ad_real_const(1.3);
        ad_real y = apply_real(c, tape, p, q);
        assert_int_equal(y.node, 0);
        if (ad_real_count(tape) != before)
            fail_msg("%s on constants recorded a node", c->name);
        expect_close(c, (double[2]){0.7, 1.3}, "value on constants", c->reference(0.7, 1.3),
                     y.value, 1e-14, 0);
        assert_int_equal(ad_real_backward(tape, y), AD_OK);
        assert_true(ad_real_grad(tape, y) == 0 && ad_real_grad(tape, p) == 0);
        assert_true(ad_real_grad(tape, v) == 0); /* a constant y: every gradient 0 */
    }
    /* One recorded input and one constant: one node, the same partial. */
    ad_real k = ad_real_const(3.0);
    ad_real y = ad_real_mul(tape, v, k);
    assert_int_equal(ad_real_count(tape), before + 1);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(3.0, ad_real_grad(tape, v), 0, 0);
    assert_true(ad_real_grad(tape, k) == 0);
    y = ad_real_pow(tape, k, v);
    assert_int_equal(ad_real_count(tape), before + 2);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(pow(3.0, 0.5) * log(3.0), ad_real_grad(tape, v), 1e-15, 0);
    assert_int_equal(ad_tape_status(tape), AD_OK);
    ad_tape_free(tape);
}

static void test_real_no_grad_mode_records_nothing_but_computes_values(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real w = ad_real_var(tape, 2.0);
    size_t before = ad_real_count(tape);
    assert_true(ad_tape_set_grad_enabled(tape, false));
    ad_real x = ad_real_var(tape, 3.0);
    assert_int_equal(x.node, 0);
    for (size_t i = 0; i < N_CASES; i++) {
        const op_case *c = &cases[i];
        ad_real y = apply_real(c, tape, w, x);
        assert_int_equal(y.node, 0);
        expect_close(c, (double[2]){2.0, 3.0}, "value in no-grad mode", c->reference(2.0, 3.0),
                     y.value, 1e-14, 0);
    }
    assert_int_equal(ad_real_count(tape), before);
    ad_real y = ad_real_mul(tape, w, w);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(ad_real_grad(tape, w) == 0);

    assert_false(ad_tape_set_grad_enabled(tape, true));
    y = ad_real_mul(tape, w, w);
    assert_int_equal(ad_real_count(tape), before + 1);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(4.0, ad_real_grad(tape, w), 0, 0);
    ad_tape_free(tape);
}

/* ---- Repeated and partial backward -------------------------------------------------------- */

static void test_real_backward_twice_replaces_the_gradients_instead_of_adding(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real x = ad_real_var(tape, 0.3), w = ad_real_var(tape, -1.7);
    ad_real y = ad_real_tanh(tape, ad_real_mul(tape, x, w));
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    double gx = ad_real_grad(tape, x), gw = ad_real_grad(tape, w);
    double t = tanh(0.3 * -1.7);
    assert_close((1 - t * t) * -1.7, gx, 1e-15, 0);
    assert_close((1 - t * t) * 0.3, gw, 1e-15, 0);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(gx, ad_real_grad(tape, x), 0, 0);
    assert_close(gw, ad_real_grad(tape, w), 0, 0);
    ad_tape_free(tape);
}

static void test_real_backward_from_an_intermediate_node_gives_its_gradients(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real x = ad_real_var(tape, 1.1), w = ad_real_var(tape, 0.4);
    ad_real u = ad_real_mul(tape, x, w);                    /* u = x w */
    ad_real y = ad_real_exp(tape, u);                       /* y = exp(u) */
    ad_real z = ad_real_add(tape, y, ad_real_sin(tape, x)); /* recorded after y */
    double e = exp(1.1 * 0.4);
    assert_int_equal(ad_real_backward(tape, z), AD_OK);
    assert_close(e * 0.4 + cos(1.1), ad_real_grad(tape, x), 1e-15, 0);
    assert_close(1.0, ad_real_grad(tape, z), 0, 0);

    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(e * 0.4, ad_real_grad(tape, x), 1e-15, 0);
    assert_close(e * 1.1, ad_real_grad(tape, w), 1e-15, 0);
    assert_close(e, ad_real_grad(tape, u), 0, 0);
    assert_close(1.0, ad_real_grad(tape, y), 0, 0);
    /* z came after y: dy/dz is 0, not the 1 the first sweep left there. */
    assert_true(ad_real_grad(tape, z) == 0);

    assert_int_equal(ad_real_backward(tape, u), AD_OK);
    assert_close(0.4, ad_real_grad(tape, x), 0, 0);
    assert_true(ad_real_grad(tape, y) == 0 && ad_real_grad(tape, z) == 0);

    ad_real later = ad_real_square(tape, z); /* recorded after every sweep so far */
    assert_true(ad_real_grad(tape, later) == 0);
    ad_tape_free(tape);
}

static void test_real_functions_accept_null_tapes_and_constants(void **state)
{
    (void)state;
    ad_real x = ad_real_var(NULL, 2.0);
    assert_int_equal(x.node, 0);
    ad_real y = ad_real_mul(NULL, x, ad_real_const(4.0));
    assert_close(8.0, y.value, 0, 0);
    assert_int_equal(y.node, 0);
    assert_int_equal(ad_real_backward(NULL, y), AD_ERR_NULL);
    assert_true(ad_real_grad(NULL, y) == 0);
    assert_int_equal(ad_real_count(NULL), 0);
    assert_int_equal(ad_real_bytes(NULL), 0);

    ad_tape *tape = test_tape();
    assert_int_equal(ad_real_count(tape), 0);
    assert_int_equal(ad_real_bytes(tape), 0);
    assert_int_equal(ad_real_backward(tape, ad_real_const(1.0)), AD_OK); /* nothing recorded */
    assert_true(ad_real_grad(tape, ad_real_const(1.0)) == 0);
    assert_int_equal(ad_real_bytes(tape), 0); /* and nothing allocated for it */
    ad_tape_free(tape);
}

/* ---- Resets: stale handles and memory reuse ------------------------------------------------ */

/* sum_i sin(x_i) x_{i+1} over n vars: 3n - 1 nodes after the vars. */
static ad_real record_sum(ad_tape *tape, size_t n, ad_real *first)
{
    ad_real prev = ad_real_var(tape, 0.5), sum = ad_real_const(0);
    *first = prev;
    for (size_t i = 1; i < n; i++) {
        ad_real x = ad_real_var(tape, 0.5 + 0.001 * (double)i);
        sum = ad_real_add(tape, sum, ad_real_mul(tape, ad_real_sin(tape, prev), x));
        prev = x;
    }
    return sum;
}

/* Regression (issue 9): a node of another tape, or kept across a reset, was
 * recorded unchecked, and the sweep then wrote past its adjoints. */
static void test_real_op_on_a_node_of_another_tape_is_an_argument_error(void **state)
{
    (void)state;
    ad_tape *a = test_tape(), *b = test_tape();
    ad_real big = ad_real_const(0);
    for (int i = 0; i < 1000; i++)
        big = ad_real_add(a, big, ad_real_var(a, 1.0)); /* node ~2000 on a */
    ad_real x = ad_real_var(b, 2.0);
    ad_real y = ad_real_mul(b, x, big); /* big's node number is past b's adjoints */
    assert_int_equal(ad_tape_status(b), AD_ERR_ARG);
    assert_non_null(strstr(ad_tape_message(b), "another tape"));
    assert_int_equal(ad_real_backward(b, y), AD_ERR_ARG);
    assert_true(isnan(ad_real_grad(b, big)));
    ad_tape_free(a);
    ad_tape_free(b);
}

static void test_real_op_on_a_node_kept_across_a_reset_is_an_argument_error(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real old = ad_real_var(tape, 3.0);
    for (int i = 0; i < 10; i++)
        old = ad_real_mul(tape, old, old);
    ad_tape_reset(tape);
    ad_real x = ad_real_var(tape, 1.0);
    ad_real y = ad_real_add(tape, x, old);
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_int_equal(ad_real_backward(tape, y), AD_ERR_ARG);
    /* Cleared, the tape works again. */
    ad_tape_reset(tape);
    x = ad_real_var(tape, 1.0);
    assert_int_equal(ad_real_backward(tape, ad_real_mul(tape, x, x)), AD_OK);
    assert_close(2.0, ad_real_grad(tape, x), 0, 0);
    ad_tape_free(tape);
}

static void test_real_reset_makes_a_stale_handle_an_argument_error_with_a_message(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real first;
    ad_real y = record_sum(tape, 100, &first);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_true(ad_real_count(tape) > 100);
    ad_tape_reset(tape);
    assert_int_equal(ad_real_count(tape), 0);
    assert_true(isnan(ad_real_grad(tape, first))); /* a node of the last generation */

    ad_real x = ad_real_var(tape, 1.0);
    ad_real z = ad_real_exp(tape, x);
    assert_int_equal(ad_real_count(tape), 2);
    assert_true(y.node > 2);
    assert_int_equal(ad_real_backward(tape, z), AD_OK);
    assert_close(exp(1.0), ad_real_grad(tape, x), 0, 0);
    assert_int_equal(ad_real_backward(tape, y), AD_ERR_ARG);
    assert_true(ad_real_grad(tape, x) == 0); /* not the gradients of the sweep before */
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "real_backward");
    assert_message_has(tape, "not on this tape");
    /* Sticky: even a valid sweep now reports the error, until a reset. */
    assert_int_equal(ad_real_backward(tape, z), AD_ERR_ARG);
    ad_tape_reset(tape);
    assert_int_equal(ad_tape_status(tape), AD_OK);
    x = ad_real_var(tape, 1.0);
    z = ad_real_exp(tape, x);
    assert_int_equal(ad_real_backward(tape, z), AD_OK);
    assert_close(exp(1.0), ad_real_grad(tape, x), 0, 0);
    ad_tape_free(tape);
}

static void test_real_reset_keeps_memory_so_equal_steps_allocate_nothing(void **state)
{
    (void)state;
    counting_allocator c = {0};
    ad_allocator a = allocator_of(&c);
    ad_tape *tape;
    assert_int_equal(ad_tape_create_with(&tape, &a), AD_OK);
    ad_real first;
    ad_real y = record_sum(tape, 20000, &first);
    size_t count = ad_real_count(tape);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    double g = ad_real_grad(tape, first);
    size_t bytes = ad_real_bytes(tape), allocs = c.allocs;
    assert_true(bytes > 0);
    for (int step = 2; step <= 4; step++) {
        ad_tape_reset(tape);
        y = record_sum(tape, 20000, &first);
        assert_int_equal(ad_real_count(tape), count);
        assert_int_equal(ad_real_backward(tape, y), AD_OK);
        assert_close(g, ad_real_grad(tape, first), 0, 0);
        assert_int_equal(ad_real_bytes(tape), bytes);
        if (c.allocs != allocs)
            fail_msg("step %d allocated %zu times", step, c.allocs - allocs);
    }
    ad_tape_free(tape);
    assert_int_equal(c.live, 0);
}

/* ---- Out of memory --------------------------------------------------------------------- */

#define OOM_VARS 40000 /* about 120000 nodes: several doublings of the node array */

static void test_real_out_of_memory_is_a_sticky_error_at_backward_for_every_allocation(void **state)
{
    (void)state;
    /* The value every run computes, recorded or not. */
    ad_real first;
    double expected = record_sum(NULL, OOM_VARS, &first).value;
    bool succeeded = false;
    size_t failing_runs = 0;
    for (size_t k = 1; !succeeded && k < 100; k++) {
        counting_allocator c = {.fail_at = k, .fail_after = true};
        ad_allocator a = allocator_of(&c);
        ad_tape *tape;
        ad_status s = ad_tape_create_with(&tape, &a);
        if (s != AD_OK) {
            assert_int_equal(s, AD_ERR_NOMEM);
            assert_null(tape);
            assert_int_equal(c.live, 0);
            continue;
        }
        ad_real y = record_sum(tape, OOM_VARS, &first);
        size_t count = ad_real_count(tape);
        /* Ops compute their values whether or not they could be recorded. */
        assert_close(expected, y.value, 0, 0);
        s = ad_real_backward(tape, y);
        if (c.failures == 0) {
            assert_int_equal(s, AD_OK);
            assert_int_equal(ad_tape_status(tape), AD_OK);
            succeeded = true;
        } else {
            failing_runs++;
            assert_int_equal(s, AD_ERR_NOMEM);
            assert_int_equal(ad_tape_status(tape), AD_ERR_NOMEM);
            assert_message_has(tape, "real");
            assert_message_has(tape, "out of memory");
            /* Sticky: nothing more is recorded and every sweep says so. */
            ad_real more = ad_real_exp(tape, first);
            assert_int_equal(ad_real_count(tape), count);
            assert_int_equal(more.node, 0);
            assert_int_equal(ad_real_backward(tape, more), AD_ERR_NOMEM);
        }
        ad_tape_free(tape);
        if (c.live != 0)
            fail_msg("failing allocation %zu: %ld blocks leaked", k, c.live);
    }
    assert_true(succeeded);
    assert_true(failing_runs >= 5); /* the node array's doublings and the adjoints */
}

static void test_real_a_reset_after_out_of_memory_lets_recording_succeed(void **state)
{
    (void)state;
    /* Fail only the allocation of the third doubling of the node array. */
    counting_allocator probe = {0};
    ad_allocator pa = allocator_of(&probe);
    ad_tape *tape;
    assert_int_equal(ad_tape_create_with(&tape, &pa), AD_OK);
    size_t at_create = probe.allocs;
    ad_tape_free(tape);

    counting_allocator c = {.fail_at = at_create + 3};
    ad_allocator a = allocator_of(&c);
    assert_int_equal(ad_tape_create_with(&tape, &a), AD_OK);
    ad_real first;
    ad_real y = record_sum(tape, OOM_VARS, &first);
    assert_int_equal(c.failures, 1);
    assert_int_equal(ad_real_backward(tape, y), AD_ERR_NOMEM);
    assert_message_has(tape, "real");
    ad_tape_reset(tape);
    assert_int_equal(ad_tape_status(tape), AD_OK);
    y = record_sum(tape, OOM_VARS, &first);
    assert_int_equal(ad_real_backward(tape, y), AD_OK);
    assert_close(cos(0.5) * 0.501, ad_real_grad(tape, first), 1e-15, 0);
    ad_tape_free(tape);
    assert_int_equal(c.live, 0);
}

/* ---- A long chain ---------------------------------------------------------------------- */

/* x_{k+1} = a x_k + b for k < n steps from x_0: 2n nodes after the inputs. */
static ad_real affine_chain(ad_tape *tape, ad_real a, ad_real b, ad_real x0, size_t n)
{
    ad_real x = x0;
    for (size_t k = 0; k < n; k++)
        x = ad_real_add(tape, ad_real_mul(tape, a, x), b);
    return x;
}

/* The closed forms: x_n = a^n x0 + b S with S = (1 - a^n) / (1 - a), so
 * dx_n/db = S, dx_n/dx0 = a^n, dx_n/da = n a^(n-1) x0 + b dS/da. */
typedef struct chain_result {
    double value, da, db, dx0;
} chain_result;

static chain_result chain_closed_form(double a, double b, double x0, size_t n)
{
    double nd = (double)n, an = pow(a, nd), an1 = pow(a, nd - 1), d = 1 - a;
    double s = (1 - an) / d;
    double ds = (-nd * an1 * d + (1 - an)) / (d * d);
    return (chain_result){an * x0 + b * s, nd * an1 * x0 + b * ds, s, an};
}

#define CHAIN_STEPS 500000 /* 10^6 ops */

static void test_real_a_chain_of_a_million_ops_matches_the_closed_form(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    /* n (1 - a) = 1: a^n is about 1/e, so nothing vanishes or explodes. */
    double av = 1 - 1.0 / CHAIN_STEPS, bv = 0.25, xv = 2.0;
    ad_real a = ad_real_var(tape, av), b = ad_real_var(tape, bv), x0 = ad_real_var(tape, xv);
    ad_real x = affine_chain(tape, a, b, x0, CHAIN_STEPS);
    assert_int_equal(ad_real_count(tape), 3 + 2 * (size_t)CHAIN_STEPS);
    assert_int_equal(ad_real_backward(tape, x), AD_OK);
    chain_result want = chain_closed_form(av, bv, xv, CHAIN_STEPS);
    assert_close(want.value, x.value, 1e-9, 0);
    assert_close(want.db, ad_real_grad(tape, b), 1e-9, 0);
    assert_close(want.dx0, ad_real_grad(tape, x0), 1e-9, 0);
    assert_close(want.da, ad_real_grad(tape, a), 1e-8, 0);
    ad_tape_free(tape);
}

/* ---- Bytes per node --------------------------------------------------------------------- */

static size_t next_power_of_two(size_t n)
{
    size_t p = 1;
    while (p < n)
        p *= 2;
    return p;
}

static void test_real_a_node_costs_32_bytes_up_to_capacity_rounding(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_real a = ad_real_var(tape, 0.5), b = ad_real_var(tape, 0.5), x0 = ad_real_var(tape, 0.5);
    ad_real x = affine_chain(tape, a, b, x0, CHAIN_STEPS);
    assert_int_equal(ad_real_backward(tape, x), AD_OK);
    size_t count = ad_real_count(tape), bytes = ad_real_bytes(tape);
    assert_int_equal(count, 3 + 2 * (size_t)CHAIN_STEPS);
    /* Node 0 is the constants' sink: count + 1 slots of 24 + 8 bytes at least,
     * and at most the power-of-two capacity they round up to. */
    size_t capacity = next_power_of_two(count + 1);
    assert_true(bytes >= 32 * (count + 1));
    if (bytes > 32 * capacity)
        fail_msg("%zu bytes for %zu nodes: more than 32 per slot of %zu", bytes, count, capacity);
    assert_true((double)bytes / (double)count <= 34);
    ad_tape_free(tape);
}

/* ---- Two tapes in two threads --------------------------------------------------------- */

#define THREAD_ROUNDS 8
#define THREAD_STEPS 100000

typedef struct chain_work {
    double a, b, x0;
    chain_result result;
    ad_status status;
    bool consistent; /* every round gave bitwise the same result */
} chain_work;

static chain_result run_chain(ad_tape *tape, const chain_work *w, ad_status *status)
{
    ad_real a = ad_real_var(tape, w->a), b = ad_real_var(tape, w->b), x0 = ad_real_var(tape, w->x0);
    ad_real x = affine_chain(tape, a, b, x0, THREAD_STEPS);
    *status = ad_real_backward(tape, x);
    return (chain_result){x.value, ad_real_grad(tape, a), ad_real_grad(tape, b),
                          ad_real_grad(tape, x0)};
}

/* No CMocka asserts here: they longjmp, which must not cross threads. */
static void *chain_thread(void *arg)
{
    chain_work *w = arg;
    ad_tape *tape;
    w->consistent = true;
    w->status = ad_tape_create(&tape);
    if (w->status != AD_OK)
        return NULL;
    for (int round = 0; round < THREAD_ROUNDS && w->status == AD_OK; round++) {
        ad_tape_reset(tape);
        chain_result r = run_chain(tape, w, &w->status);
        if (round > 0 && memcmp(&r, &w->result, sizeof r) != 0)
            w->consistent = false;
        w->result = r;
    }
    ad_tape_free(tape);
    return NULL;
}

static void test_real_two_tapes_in_two_threads_give_independent_correct_results(void **state)
{
    (void)state;
    chain_work work[2] = {{.a = 1 - 1.0 / THREAD_STEPS, .b = 0.25, .x0 = 2.0},
                          {.a = 1 - 0.5 / THREAD_STEPS, .b = -1.5, .x0 = -0.75}};
    pthread_t threads[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&threads[k], NULL, chain_thread, &work[k]), 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_join(threads[k], NULL), 0);
    ad_tape *tape = test_tape();
    for (int k = 0; k < 2; k++) {
        assert_int_equal(work[k].status, AD_OK);
        assert_true(work[k].consistent);
        /* Bitwise the single-threaded result, and the closed form. */
        ad_status s;
        ad_tape_reset(tape);
        chain_result alone = run_chain(tape, &work[k], &s);
        assert_int_equal(s, AD_OK);
        assert_memory_equal(&alone, &work[k].result, sizeof alone);
        chain_result want = chain_closed_form(work[k].a, work[k].b, work[k].x0, THREAD_STEPS);
        assert_close(want.value, work[k].result.value, 1e-9, 0);
        assert_close(want.da, work[k].result.da, 1e-8, 0);
        assert_close(want.db, work[k].result.db, 1e-9, 0);
        assert_close(want.dx0, work[k].result.dx0, 1e-9, 0);
    }
    ad_tape_free(tape);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST_ENTRIES(add),
        OP_TEST_ENTRIES(sub),
        OP_TEST_ENTRIES(mul),
        OP_TEST_ENTRIES(div),
        OP_TEST_ENTRIES(pow),
        OP_TEST_ENTRIES(maximum),
        OP_TEST_ENTRIES(minimum),
        OP_TEST_ENTRIES(neg),
        OP_TEST_ENTRIES(exp),
        OP_TEST_ENTRIES(log),
        OP_TEST_ENTRIES(log1p),
        OP_TEST_ENTRIES(sqrt),
        OP_TEST_ENTRIES(square),
        OP_TEST_ENTRIES(sin),
        OP_TEST_ENTRIES(cos),
        OP_TEST_ENTRIES(tanh),
        OP_TEST_ENTRIES(sigmoid),
        OP_TEST_ENTRIES(relu),
        OP_TEST_ENTRIES(abs),
        OP_TEST_ENTRIES(softplus),
        OP_TEST_ENTRIES(pow_scalar),
        cmocka_unit_test(test_real_var_has_its_value_and_gradient_one_like_a_tensor_leaf),
        cmocka_unit_test(test_real_conventions_at_kinks_and_ties_follow_pytorch),
        cmocka_unit_test(
            test_real_maximum_and_minimum_with_nan_give_nan_and_each_input_gradient_one),
        cmocka_unit_test(test_real_a_node_used_twice_gets_both_contributions),
        cmocka_unit_test(test_real_ops_on_constants_record_nothing_and_have_gradient_zero),
        cmocka_unit_test(test_real_no_grad_mode_records_nothing_but_computes_values),
        cmocka_unit_test(test_real_backward_twice_replaces_the_gradients_instead_of_adding),
        cmocka_unit_test(test_real_backward_from_an_intermediate_node_gives_its_gradients),
        cmocka_unit_test(test_real_functions_accept_null_tapes_and_constants),
        cmocka_unit_test(test_real_reset_makes_a_stale_handle_an_argument_error_with_a_message),
        cmocka_unit_test(test_real_op_on_a_node_of_another_tape_is_an_argument_error),
        cmocka_unit_test(test_real_op_on_a_node_kept_across_a_reset_is_an_argument_error),
        cmocka_unit_test(test_real_reset_keeps_memory_so_equal_steps_allocate_nothing),
        cmocka_unit_test(
            test_real_out_of_memory_is_a_sticky_error_at_backward_for_every_allocation),
        cmocka_unit_test(test_real_a_reset_after_out_of_memory_lets_recording_succeed),
        cmocka_unit_test(test_real_a_chain_of_a_million_ops_matches_the_closed_form),
        cmocka_unit_test(test_real_a_node_costs_32_bytes_up_to_capacity_rounding),
        cmocka_unit_test(test_real_two_tapes_in_two_threads_give_independent_correct_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
