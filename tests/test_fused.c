/* Unit tests of the fused ops (src/ops/fused.c): softmax, log_softmax,
 * cross_entropy and mse against hand-computed values, their stability at
 * logits of magnitude 1000 in both dtypes, gradients at chosen points, empty
 * inputs, and every failure mode's message. */
#include "test_util.h"

#include <string.h>

/* ---- Helpers -------------------------------------------------------------------------------- */

/* Tolerances per dtype: float32 keeps about 7 digits. */
static double rtol_of(int dt)
{
    return dt == AD_F32 ? 1e-6 : 1e-14;
}

/* ---- softmax, log_softmax: values ------------------------------------------------------------ */

static void test_softmax_matches_hand_values_along_the_last_axis(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    const double x[6] = {1, 2, 3, 0, 0, 0};
    double z = 1 + exp(1) + exp(2); /* row 0 shifted by its max 3: e^-2 + e^-1 + 1 */
    const double y[6] = {1 / z, exp(1) / z, exp(2) / z, 1.0 / 3, 1.0 / 3, 1.0 / 3};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *r = ad_softmax(tensor(tape, (ad_dtype)dt, 2, s, x), -1);
        assert_shape(r, 2, s);
        assert_int_equal(ad_tensor_dtype(r), dt);
        assert_values(r, 6, y, rtol_of(dt), 0);
    }
}

static void test_softmax_along_the_first_axis_normalises_columns(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 2, 2};
    const double x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    ad_tensor *r = ad_softmax(tensor(tape, AD_F64, 3, s, x), 0);
    assert_shape(r, 3, s);
    /* every pair (x, x + 4) gives 1 / (1 + e^4) and e^4 / (1 + e^4) */
    double lo = 1 / (1 + exp(4)), hi = exp(4) / (1 + exp(4));
    const double y[8] = {lo, lo, lo, lo, hi, hi, hi, hi};
    assert_values(r, 8, y, 1e-14, 0);
    /* and the middle axis of [2,2,2]: pairs (x, x + 2) */
    ad_tensor *q = ad_softmax(tensor(tape, AD_F64, 3, s, x), -2);
    double l2 = 1 / (1 + exp(2)), h2 = exp(2) / (1 + exp(2));
    const double y2[8] = {l2, l2, h2, h2, l2, l2, h2, h2};
    assert_values(q, 8, y2, 1e-14, 0);
}

static void test_log_softmax_matches_hand_values_and_the_log_of_softmax(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    const double x[6] = {1, 2, 3, -1, 0.5, 4};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *t = tensor(tape, (ad_dtype)dt, 2, s, x);
        ad_tensor *r = ad_log_softmax(t, 1);
        ad_tensor *l = ad_log(ad_softmax(t, 1));
        assert_shape(r, 2, s);
        double lse0 = log(exp(1) + exp(2) + exp(3)), lse1 = log(exp(-1) + exp(0.5) + exp(4));
        const double y[6] = {1 - lse0, 2 - lse0, 3 - lse0, -1 - lse1, 0.5 - lse1, 4 - lse1};
        assert_values(r, 6, y, rtol_of(dt), 1e-6 * (dt == AD_F32));
        for (int64_t i = 0; i < 6; i++)
            assert_close(ad_tensor_get(l, i), ad_tensor_get(r, i), 10 * rtol_of(dt), 0);
    }
}

static void test_softmax_of_logits_of_magnitude_1000_is_finite(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {4};
    const double x[4] = {1000, 999, -1000, 1000};
    double z = 2 + exp(-1); /* e^-2000 is nothing */
    const double y[4] = {1 / z, exp(-1) / z, 0, 1 / z};
    const double logy[4] = {-log(z), -1 - log(z), -2000 - log(z), -log(z)};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *t = leaf(tape, (ad_dtype)dt, 1, s, x);
        ad_tensor *r = ad_softmax(t, 0), *l = ad_log_softmax(t, 0);
        assert_values(r, 4, y, 1e-6, 1e-30);
        assert_values(l, 4, logy, 1e-6, 0);
        /* and the gradients: no inf - inf anywhere */
        ad_tensor *g;
        ad_tensor *loss = ad_add(ad_sum_all(ad_mul(r, t)), ad_sum_all(l));
        assert_int_equal(ad_grad(1, &loss, NULL, 1, &t, &g, NULL), AD_OK);
        for (int64_t i = 0; i < 4; i++)
            assert_true(isfinite(ad_tensor_get(g, i)));
    }
    /* -1000 everywhere: the max is subtracted, so no underflow to 0 / 0 */
    const double low[4] = {-1000, -1000, -1000, -1000}, quarter[4] = {0.25, 0.25, 0.25, 0.25};
    assert_values(ad_softmax(tensor(tape, AD_F32, 1, s, low), -1), 4, quarter, 1e-7, 0);
}

static void test_softmax_of_a_row_of_minus_infinity_is_nan_as_in_pytorch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 2};
    const double x[4] = {-INFINITY, -INFINITY, 0, -INFINITY};
    ad_tensor *r = ad_softmax(tensor(tape, AD_F64, 2, s, x), 1);
    assert_true(isnan(ad_tensor_get(r, 0)) && isnan(ad_tensor_get(r, 1)));
    /* one -inf among finite logits is just a zero */
    assert_close(1, ad_tensor_get(r, 2), 0, 0);
    assert_close(0, ad_tensor_get(r, 3), 0, 0);
}

static void test_softmax_of_a_zero_size_tensor_is_empty(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {0, 3}, s2[2] = {2, 0};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, NULL);
    ad_tensor *y = ad_softmax(x, 1);
    assert_shape(y, 2, s);
    ad_tensor *g, *loss = ad_sum_all(ad_log_softmax(x, 1));
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, NULL), AD_OK);
    assert_shape(g, 2, s);
    assert_shape(ad_log_softmax(tensor(tape, AD_F32, 2, s2, NULL), 1), 2, s2);
}

/* ---- softmax, log_softmax: gradients ----------------------------------------------------------
 */

static void test_softmax_gradient_matches_its_jacobian(void **state)
{
    ad_tape *tape = *state;
    /* L = sum(w * softmax(x)): dL/dx_i = y_i (w_i - sum_j w_j y_j) */
    const int64_t s[1] = {3};
    const double xv[3] = {0.5, -1, 2}, wv[3] = {1, 2, -3};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *x = leaf(tape, (ad_dtype)dt, 1, s, xv);
        ad_tensor *y = ad_softmax(x, 0);
        ad_tensor *loss = ad_sum_all(ad_mul(y, tensor(tape, (ad_dtype)dt, 1, s, wv)));
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        double z = exp(0.5) + exp(-1) + exp(2), p[3] = {exp(0.5) / z, exp(-1) / z, exp(2) / z};
        double dot = p[0] * wv[0] + p[1] * wv[1] + p[2] * wv[2];
        const double g[3] = {p[0] * (wv[0] - dot), p[1] * (wv[1] - dot), p[2] * (wv[2] - dot)};
        assert_values(ad_tensor_grad(x), 3, g, 10 * rtol_of(dt), 1e-7);
    }
}

static void test_log_softmax_gradient_is_dy_minus_softmax_times_sum_dy(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {1, 3};
    const double xv[3] = {0.5, -1, 2}, wv[3] = {1, 2, -3};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, xv);
    ad_tensor *loss = ad_sum_all(ad_mul(ad_log_softmax(x, -1), tensor(tape, AD_F64, 2, s, wv)));
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    double z = exp(0.5) + exp(-1) + exp(2), sum = wv[0] + wv[1] + wv[2];
    const double g[3] = {wv[0] - exp(0.5) / z * sum, wv[1] - exp(-1) / z * sum,
                         wv[2] - exp(2) / z * sum};
    assert_values(ad_tensor_grad(x), 3, g, 1e-13, 1e-15);
}

/* ---- softmax, log_softmax: errors -------------------------------------------------------------
 */

static void test_softmax_with_an_out_of_range_axis_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    assert_null(ad_softmax(tensor(tape, AD_F64, 2, s, NULL), 2));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "softmax: axis 2");
    assert_message_has(tape, "[2,3]");
}

static void test_log_softmax_with_an_out_of_range_negative_axis_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    assert_null(ad_log_softmax(tensor(tape, AD_F64, 2, s, NULL), -3));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "log_softmax: axis -3");
    assert_message_has(tape, "[2,3]");
}

static void test_softmax_of_a_0d_tensor_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    assert_null(ad_softmax(ad_scalar(tape, 1), 0));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "softmax");
    assert_message_has(tape, "[]");
}

/* ---- cross_entropy -----------------------------------------------------------------------------
 */

static void test_cross_entropy_matches_a_hand_computed_value(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    const double x[6] = {1, 2, 3, 1, 1, 1};
    const int64_t t[2] = {2, 0};
    /* row 0: log(e + e^2 + e^3) - 3; row 1: log 3 */
    double expected = (log(exp(1) + exp(2) + exp(3)) - 3 + log(3)) / 2;
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *r = ad_cross_entropy(tensor(tape, (ad_dtype)dt, 2, s, x), 2, t);
        assert_non_null(r);
        assert_int_equal(ad_tensor_ndim(r), 0);
        assert_int_equal(ad_tensor_dtype(r), dt);
        assert_close(expected, ad_value(r), rtol_of(dt), 0);
    }
}

static void test_cross_entropy_equals_the_mean_of_minus_log_softmax_at_the_targets(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {3, 4};
    const double x[12] = {0.1, -2, 3, 0.5, 1, 1, 1, 1, -4, 2, 0, 7};
    const int64_t t[3] = {3, 1, 3};
    ad_tensor *logits = tensor(tape, AD_F64, 2, s, x);
    ad_tensor *lp = ad_log_softmax(logits, 1);
    double expected = -(ad_tensor_get(lp, 3) + ad_tensor_get(lp, 5) + ad_tensor_get(lp, 11)) / 3;
    assert_close(expected, ad_value(ad_cross_entropy(logits, 3, t)), 1e-14, 0);
}

static void test_cross_entropy_is_stable_for_logits_of_magnitude_1000(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    const double x[6] = {1000, 0, -1000, -1000, 1000, 999};
    const int64_t t[2] = {0, 2};
    /* row 0: the right class by 1000: loss log(1 + e^-1000 + e^-2000) = 0 to double precision;
     * row 1: target 999 against a max of 1000: 1 + log(1 + e^-1) */
    double expected = (0 + 1 + log(1 + exp(-1))) / 2;
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *logits = leaf(tape, (ad_dtype)dt, 2, s, x);
        ad_tensor *r = ad_cross_entropy(logits, 2, t);
        assert_close(expected, ad_value(r), 1e-6, 0);
        assert_int_equal(ad_backward(r, NULL), AD_OK);
        ad_tensor *g = ad_tensor_grad(logits);
        double z = 1 + exp(-1);
        const double ge[6] = {0, 0, 0, 0, 1 / z / 2, (exp(-1) / z - 1) / 2};
        assert_values(g, 6, ge, 1e-5, 1e-7);
    }
    /* a wrong class by 2000 costs 2000, not inf */
    const double far[2] = {1000, -1000};
    const int64_t s1[2] = {1, 2}, t1[1] = {1};
    assert_close(2000, ad_value(ad_cross_entropy(tensor(tape, AD_F32, 2, s1, far), 1, t1)), 1e-7,
                 0);
}

static void test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 2};
    const double x[4] = {0, 0, 1, 3};
    const int64_t t[2] = {1, 1};
    ad_tensor *logits = leaf(tape, AD_F64, 2, s, x);
    /* scaled by 3 to see dy in the rule */
    ad_tensor *loss = ad_mul_scalar(ad_cross_entropy(logits, 2, t), 3);
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    double p = 1 / (1 + exp(2)); /* softmax of (1, 3) at 1 */
    const double g[4] = {3 * 0.5 / 2, 3 * -0.5 / 2, 3 * p / 2, 3 * (1 - p - 1) / 2};
    assert_values(ad_tensor_grad(logits), 4, g, 1e-14, 1e-15);
}

static void test_cross_entropy_copies_the_targets(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {1, 2};
    const double x[2] = {0, 0};
    int64_t t[1] = {0};
    ad_tensor *logits = leaf(tape, AD_F64, 2, s, x);
    ad_tensor *loss = ad_cross_entropy(logits, 1, t);
    t[0] = 1; /* after the call: must not change the backward */
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    const double g[2] = {-0.5, 0.5};
    assert_values(ad_tensor_grad(logits), 2, g, 0, 1e-15);
}

static void test_cross_entropy_of_zero_rows_is_nan_with_an_empty_gradient(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {0, 3};
    ad_tensor *logits = leaf(tape, AD_F64, 2, s, NULL);
    ad_tensor *loss = ad_cross_entropy(logits, 0, NULL);
    assert_non_null(loss);
    assert_true(isnan(ad_value(loss)));
    ad_tensor *g;
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &logits, &g, NULL), AD_OK);
    assert_shape(g, 2, s);
}

static void test_cross_entropy_with_a_target_out_of_range_names_it_and_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    const int64_t t[2] = {0, 3};
    assert_null(ad_cross_entropy(tensor(tape, AD_F64, 2, s, NULL), 2, t));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "cross_entropy: target 3 of row 1");
    assert_message_has(tape, "[2,3]");
}

static void test_cross_entropy_with_a_negative_target_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {1, 3};
    const int64_t t[1] = {-1};
    assert_null(ad_cross_entropy(tensor(tape, AD_F32, 2, s, NULL), 1, t));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "cross_entropy: target -1");
    assert_message_has(tape, "[1,3]");
}

static void test_cross_entropy_with_a_wrong_target_count_names_both(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {4, 3};
    const int64_t t[3] = {0, 1, 2};
    assert_null(ad_cross_entropy(tensor(tape, AD_F64, 2, s, NULL), 3, t));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "cross_entropy: 3 targets");
    assert_message_has(tape, "[4,3]");
}

static void test_cross_entropy_of_3d_logits_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 3, 4};
    const int64_t t[2] = {0, 1};
    assert_null(ad_cross_entropy(tensor(tape, AD_F64, 3, s, NULL), 2, t));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "cross_entropy");
    assert_message_has(tape, "[2,3,4]");
}

static void test_cross_entropy_with_null_targets_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    assert_null(ad_cross_entropy(tensor(tape, AD_F64, 2, s, NULL), 2, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "cross_entropy");
    assert_message_has(tape, "[2,3]");
}

/* ---- mse
 * ------------------------------------------------------------------------------------------ */

static void test_mse_matches_hand_values_with_broadcasting(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[2] = {2, 2}, sb[1] = {2};
    const double a[4] = {1, 2, 3, 4}, b[2] = {1, 0};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *x = leaf(tape, (ad_dtype)dt, 2, sa, a), *y = leaf(tape, (ad_dtype)dt, 1, sb, b);
        ad_tensor *r = ad_mse_loss(x, y);
        assert_non_null(r);
        assert_int_equal(ad_tensor_ndim(r), 0);
        /* differences 0, 2, 2, 4: (0 + 4 + 4 + 16) / 4 */
        assert_close(6, ad_value(r), rtol_of(dt), 0);
        ad_tensor *in[2] = {x, y}, *g[2];
        assert_int_equal(ad_grad(1, &r, NULL, 2, in, g, NULL), AD_OK);
        const double ga[4] = {0, 1, 1, 2}, gb[2] = {-1, -3};
        assert_values(g[0], 4, ga, rtol_of(dt), 0);
        assert_values(g[1], 2, gb, rtol_of(dt), 0);
    }
}

static void test_mse_of_empty_tensors_is_nan(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {0};
    ad_tensor *r = ad_mse_loss(tensor(tape, AD_F64, 1, s, NULL), tensor(tape, AD_F64, 1, s, NULL));
    assert_non_null(r);
    assert_true(isnan(ad_value(r)));
}

static void test_mse_shape_mismatch_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[2] = {2, 3}, sb[1] = {4};
    assert_null(ad_mse_loss(tensor(tape, AD_F64, 2, sa, NULL), tensor(tape, AD_F64, 1, sb, NULL)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "mse_loss: shapes [2,3] and [4]");
}

static void test_mse_of_mixed_dtypes_is_a_dtype_error_naming_both(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {3};
    assert_null(ad_mse_loss(tensor(tape, AD_F64, 1, s, NULL), tensor(tape, AD_F32, 1, s, NULL)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_message_has(tape, "mse");
    assert_message_has(tape, "float64 [3]");
    assert_message_has(tape, "float32 [3]");
}

static void test_fused_ops_given_null_return_null_and_leave_the_tape_alone(void **state)
{
    ad_tape *tape = *state;
    const int64_t t[1] = {0};
    assert_null(ad_softmax(NULL, 0));
    assert_null(ad_log_softmax(NULL, 0));
    assert_null(ad_cross_entropy(NULL, 1, t));
    assert_null(ad_mse_loss(NULL, ad_scalar(tape, 1)));
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

/* ---- Runner -----------------------------------------------------------------------------------
 */

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_softmax_matches_hand_values_along_the_last_axis),
        TAPE_TEST(test_softmax_along_the_first_axis_normalises_columns),
        TAPE_TEST(test_log_softmax_matches_hand_values_and_the_log_of_softmax),
        TAPE_TEST(test_softmax_of_logits_of_magnitude_1000_is_finite),
        TAPE_TEST(test_softmax_of_a_row_of_minus_infinity_is_nan_as_in_pytorch),
        TAPE_TEST(test_softmax_of_a_zero_size_tensor_is_empty),
        TAPE_TEST(test_softmax_gradient_matches_its_jacobian),
        TAPE_TEST(test_log_softmax_gradient_is_dy_minus_softmax_times_sum_dy),
        TAPE_TEST(test_softmax_with_an_out_of_range_axis_names_the_shape),
        TAPE_TEST(test_log_softmax_with_an_out_of_range_negative_axis_names_the_shape),
        TAPE_TEST(test_softmax_of_a_0d_tensor_is_an_axis_error),
        TAPE_TEST(test_cross_entropy_matches_a_hand_computed_value),
        TAPE_TEST(test_cross_entropy_equals_the_mean_of_minus_log_softmax_at_the_targets),
        TAPE_TEST(test_cross_entropy_is_stable_for_logits_of_magnitude_1000),
        TAPE_TEST(test_cross_entropy_gradient_is_softmax_minus_onehot_over_n),
        TAPE_TEST(test_cross_entropy_copies_the_targets),
        TAPE_TEST(test_cross_entropy_of_zero_rows_is_nan_with_an_empty_gradient),
        TAPE_TEST(test_cross_entropy_with_a_target_out_of_range_names_it_and_the_shape),
        TAPE_TEST(test_cross_entropy_with_a_negative_target_is_an_argument_error),
        TAPE_TEST(test_cross_entropy_with_a_wrong_target_count_names_both),
        TAPE_TEST(test_cross_entropy_of_3d_logits_is_a_shape_error),
        TAPE_TEST(test_cross_entropy_with_null_targets_is_an_argument_error),
        TAPE_TEST(test_mse_matches_hand_values_with_broadcasting),
        TAPE_TEST(test_mse_of_empty_tensors_is_nan),
        TAPE_TEST(test_mse_shape_mismatch_names_both_shapes),
        TAPE_TEST(test_mse_of_mixed_dtypes_is_a_dtype_error_naming_both),
        TAPE_TEST(test_fused_ops_given_null_return_null_and_leave_the_tape_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
