/* Unit tests of the reductions and scans added for issue 11 (min, amax, amin,
 * std, prod, norm, cumsum, cumprod, logcumsumexp): forward values by hand,
 * gradients at zeros, ties and extremes as PyTorch 1.13 gives them (the
 * values were confirmed with torch), float32, and the error messages. */
#include "test_util.h"

#include <string.h>

static const int64_t shape23[2] = {2, 3};
/* x = [[1, 5, 3], [4, 2, 6]] */
static const double r23[6] = {1.0, 5.0, 3.0, 4.0, 2.0, 6.0};

static ad_tensor *leaf_vec(ad_tape *tape, int64_t n, const double *values)
{
    return leaf(tape, AD_F64, 1, &n, values);
}

/* A bad axis fails with AD_ERR_AXIS, and the message names the op and the shape. */
static void assert_axis_error(ad_tape *tape, ad_tensor *y, const char *op)
{
    assert_null(y);
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, op);
    assert_message_has(tape, "[2,3]");
    ad_tape_clear_error(tape);
}

/* ---- min, amax, amin -------------------------------------------------------------------- */

static void test_min_by_hand_and_ties_split_evenly(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int ax0[1] = {0}, ax1[1] = {-1};
    assert_close(1.0, ad_value(ad_min(x, 0, NULL, false)), 0, 0);
    const double m0[3] = {1, 2, 3}, m1[2] = {1, 2};
    assert_exact(ad_min(x, 1, ax0, false), 3, m0);
    ad_tensor *rows = ad_amin(x, 1, ax1, true);
    const int64_t kept[2] = {2, 1};
    assert_shape(rows, 2, kept);
    assert_exact(rows, 2, m1);
    const double g1[6] = {1, 0, 0, 0, 1, 0};
    assert_exact(grad_of_sum(rows, x), 6, g1);

    /* torch.amin([1, 3, 1, 1]): each tied minimum gets 1/3 */
    const double t[4] = {1.0, 3.0, 1.0, 1.0};
    ad_tensor *ts = leaf_vec(tape, 4, t);
    const double third = 1.0 / 3.0, want[4] = {third, 0.0, third, third};
    assert_exact(grad_of_sum(ad_min(ts, 0, NULL, false), ts), 4, want);
}

static void test_min_of_nan_is_nan_with_a_nan_gradient(void **state)
{
    ad_tape *tape = *state;
    const double x[3] = {1.0, NAN, 0.0};
    ad_tensor *xs = leaf_vec(tape, 3, x);
    ad_tensor *m = ad_amin(xs, 0, NULL, false);
    assert_true(isnan(ad_value(m)));
    /* torch.amin gives grad [nan, nan, nan] */
    ad_tensor *g = grad_of_sum(m, xs);
    for (int i = 0; i < 3; i++)
        assert_true(isnan(ad_tensor_get(g, i)));
}

static void test_amax_is_max(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int ax0[1] = {0};
    const double m0[3] = {4, 5, 6};
    assert_exact(ad_amax(x, 1, ax0, false), 3, m0);
    assert_close(6.0, ad_value(ad_amax(x, 0, NULL, false)), 0, 0);
}

static void test_min_errors_name_min(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int bad[1] = {2}, twice[2] = {1, -1};
    assert_axis_error(tape, ad_min(x, 1, bad, false), "min: axis 2");
    assert_axis_error(tape, ad_amin(x, 2, twice, false), "min");
    assert_axis_error(tape, ad_amax(x, 1, bad, false), "max: axis 2");
    const int64_t rows0[2] = {0, 3};
    ad_tensor *e = ad_tape_tensor(tape, AD_F64, 2, rows0, NULL);
    assert_null(ad_min(e, 0, NULL, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "min: cannot reduce over the empty dim 0 of [0,3]");
    ad_tape_clear_error(tape);
    const int ax1[1] = {1};
    const int64_t empty[1] = {0};
    assert_shape(ad_min(e, 1, ax1, false), 1, empty);
}

/* ---- std ------------------------------------------------------------------------------------ */

static void test_std_by_hand_with_both_corrections(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int ax1[1] = {1};
    /* each row: mean 3, squared deviations 8: var 4 (correction 1), 8/3 (0) */
    ad_tensor *s1 = ad_std(x, 1, ax1, false, 1);
    const double want1[2] = {2.0, 2.0};
    assert_values(s1, 2, want1, 1e-15, 0);
    /* torch: [[-0.5, 0.5, 0], [0, -0.5, 0.5]] */
    const double g1[6] = {-0.5, 0.5, 0, 0, -0.5, 0.5};
    assert_values(grad_of_sum(s1, x), 6, g1, 1e-15, 1e-16);
    ad_tensor *s0 = ad_std(x, 1, ax1, true, 0);
    const int64_t kept[2] = {2, 1};
    assert_shape(s0, 2, kept);
    const double r = sqrt(8.0 / 3.0), want0[2] = {r, r};
    assert_values(s0, 2, want0, 1e-15, 0);
    /* (x - mean) / (N std) = +-2 / (3 * 1.63299) = +-0.408248 */
    const double q = 2.0 / (3.0 * r), g0[6] = {-q, q, 0, 0, -q, q};
    assert_values(grad_of_sum(s0, x), 6, g0, 1e-14, 1e-16);
    assert_close(sqrt(3.5), ad_value(ad_std(x, 0, NULL, false, 1)), 1e-15, 0);
}

static void test_std_at_zero_variance_has_a_zero_gradient(void **state)
{
    ad_tape *tape = *state;
    const double x[2] = {2.0, 2.0};
    ad_tensor *xs = leaf_vec(tape, 2, x);
    ad_tensor *s = ad_std(xs, 0, NULL, false, 1);
    assert_close(0.0, ad_value(s), 0, 0);
    /* torch.std([2., 2.]) backward gives [0, 0], not NaN */
    const double zeros[2] = {0, 0};
    assert_exact(grad_of_sum(s, xs), 2, zeros);
    /* one element, correction 1: 0 / 0 = NaN, as torch */
    assert_true(isnan(ad_value(ad_std(ad_slice(xs, 0, 0, 1, 1), 0, NULL, false, 1))));
}

static void test_std_errors_name_std(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int bad[1] = {-3};
    assert_axis_error(tape, ad_std(x, 1, bad, false, 1), "std: axis -3");
}

/* ---- prod ------------------------------------------------------------------------------------ */

static void test_prod_by_hand(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int ax0[1] = {0}, ax1[1] = {-1};
    assert_close(720.0, ad_value(ad_prod(x, 0, NULL, false)), 0, 0);
    const double p0[3] = {4, 10, 18}, p1[2] = {15, 48};
    ad_tensor *cols = ad_prod(x, 1, ax0, false);
    assert_exact(cols, 3, p0);
    ad_tensor *rows = ad_prod(x, 1, ax1, true);
    const int64_t kept[2] = {2, 1};
    assert_shape(rows, 2, kept);
    assert_exact(rows, 2, p1);
    const double g1[6] = {15, 3, 5, 12, 24, 8};
    assert_values(grad_of_sum(rows, x), 6, g1, 1e-15, 0);
    const double g0[6] = {4, 2, 6, 1, 5, 3};
    assert_values(grad_of_sum(cols, x), 6, g0, 1e-15, 0);
}

static void test_prod_gradient_with_zeros_is_the_product_of_the_others(void **state)
{
    ad_tape *tape = *state;
    int64_t shape[2] = {3, 3};
    /* torch: [2, 0, 4] -> [0, 8, 0]; [0, 0, 4] -> [0, 0, 0]; [2, 3, 4] -> [12, 8, 6] */
    const double x[9] = {2, 0, 4, 0, -0.0, 4, 2, 3, 4};
    ad_tensor *xs = leaf(tape, AD_F64, 2, shape, x);
    const int ax1[1] = {1};
    ad_tensor *y = ad_prod(xs, 1, ax1, false);
    const double want_y[3] = {0, 0, 24};
    assert_exact(y, 3, want_y);
    const double want_g[9] = {0, 8, 0, 0, 0, 0, 12, 8, 6};
    assert_exact(grad_of_sum(y, xs), 9, want_g);
}

static void test_prod_second_order_with_one_zero_matches_torch(void **state)
{
    ad_tape *tape = *state;
    const double x[3] = {2, 0, 4};
    ad_tensor *xs = leaf_vec(tape, 3, x);
    ad_tensor *p = ad_prod(xs, 0, NULL, false), *g, *gg;
    assert_int_equal(ad_grad(1, &p, NULL, 1, &xs, &g, &(ad_backward_opts){.create_graph = true}),
                     AD_OK);
    ad_tensor *s = ad_sum_all(g);
    assert_int_equal(ad_grad(1, &s, NULL, 1, &xs, &gg, NULL), AD_OK);
    /* torch: d sum(grad) / dx = [x1 + x2, x0 + x2, x0 + x1] = [4, 6, 2] */
    const double want[3] = {4, 6, 2};
    assert_exact(gg, 3, want);
}

/* A group holding inf or NaN: its product is inf or NaN and every gradient in
 * it NaN (documented; torch gives inf to some), never a finite number. */
static void test_prod_gradient_of_a_group_with_inf_or_nan_is_nan(void **state)
{
    ad_tape *tape = *state;
    const int64_t shape[2] = {3, 3};
    const double x[9] = {0, INFINITY, 2, 1, NAN, 2, 1, INFINITY, 2};
    ad_tensor *xs = leaf(tape, AD_F64, 2, shape, x);
    const int ax1[1] = {1};
    ad_tensor *y = ad_prod(xs, 1, ax1, false);
    assert_true(isnan(ad_tensor_get(y, 0)) && isnan(ad_tensor_get(y, 1)));
    assert_true(isinf(ad_tensor_get(y, 2)));
    ad_tensor *g = grad_of_sum(y, xs);
    for (int i = 0; i < 9; i++)
        assert_true(isnan(ad_tensor_get(g, i)));
}

static void test_prod_of_an_empty_dim_is_one(void **state)
{
    ad_tape *tape = *state;
    const int64_t rows0[2] = {0, 3};
    ad_tensor *x = leaf(tape, AD_F64, 2, rows0, NULL);
    const int ax0[1] = {0}, ax1[1] = {1};
    const double ones[3] = {1, 1, 1};
    assert_exact(ad_prod(x, 1, ax0, false), 3, ones);
    const int64_t empty[1] = {0};
    ad_tensor *y = ad_prod(x, 1, ax1, false);
    assert_shape(y, 1, empty);
    assert_shape(grad_of_sum(y, x), 2, rows0);
}

static void test_prod_errors_name_prod(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int bad[1] = {5};
    assert_axis_error(tape, ad_prod(x, 1, bad, false), "prod: axis 5");
}

/* ---- norm ------------------------------------------------------------------------------------ */

/* norm(v, p) of a vector and its gradient, against torch.linalg.vector_norm. */
static void check_norm(ad_tape *tape, int64_t n, const double *v, double p, double want,
                       const double *want_g)
{
    ad_tensor *x = leaf_vec(tape, n, v);
    ad_tensor *y = ad_norm(x, p, 0, NULL, false);
    assert_int_equal(ad_tensor_ndim(y), 0);
    assert_close(want, ad_value(y), 1e-15, 0);
    assert_values(grad_of_sum(y, x), n, want_g, 1e-15, 0);
}

static void test_norm_values_and_gradients_match_torch(void **state)
{
    ad_tape *tape = *state;
    check_norm(tape, 2, (double[]){3, -4}, 2, 5, (double[]){0.6, -0.8});
    check_norm(tape, 3, (double[]){3, -4, 0}, 1, 7, (double[]){1, -1, 0});
    check_norm(tape, 3, (double[]){1, -2, 0}, 3, 2.080083823051904,
               (double[]){0.2311204247835449, -0.9244816991341795, 0});
    check_norm(tape, 3, (double[]){1, -2, 0}, 0.5, 5.82842712474619,
               (double[]){2.414213562373095, -1.7071067811865472, 0});
    /* inf: tied |x| split the gradient evenly, with their signs */
    check_norm(tape, 3, (double[]){3, -3, 1}, INFINITY, 3, (double[]){0.5, -0.5, 0});
}

static void test_norm_of_a_zero_vector_has_a_zero_gradient(void **state)
{
    ad_tape *tape = *state;
    const double ps[4] = {1, 2, 3, INFINITY};
    for (int i = 0; i < 4; i++)
        check_norm(tape, 2, (double[]){0, 0}, ps[i], 0, (double[]){0, 0});
}

static void test_norm_over_axes_and_frobenius(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int ax1[1] = {-1}, both[2] = {0, 1};
    ad_tensor *rows = ad_norm(x, 1, 1, ax1, true);
    const int64_t kept[2] = {2, 1};
    assert_shape(rows, 2, kept);
    const double want_rows[2] = {9, 12};
    assert_exact(rows, 2, want_rows);
    /* Frobenius: sqrt(1 + 25 + 9 + 16 + 4 + 36) = sqrt(91) */
    ad_tensor *f = ad_norm(x, 2, 2, both, false);
    assert_close(sqrt(91.0), ad_value(f), 1e-15, 0);
    double g[6];
    for (int i = 0; i < 6; i++)
        g[i] = r23[i] / sqrt(91.0);
    assert_values(grad_of_sum(f, x), 6, g, 1e-15, 0);
}

static void test_norm_extremes_follow_torch(void **state)
{
    ad_tape *tape = *state;
    /* p = 2 of [inf, 1]: inf, gradient [nan, 0]; of [nan, 1]: nan, [nan, nan] */
    ad_tensor *x = leaf_vec(tape, 2, (double[]){INFINITY, 1});
    ad_tensor *y = ad_norm(x, 2, 0, NULL, false);
    assert_true(isinf(ad_value(y)));
    ad_tensor *g = grad_of_sum(y, x);
    assert_true(isnan(ad_tensor_get(g, 0)));
    assert_close(0.0, ad_tensor_get(g, 1), 0, 0);
    /* p = inf of [nan, 1]: nan, and torch's gradient is [0, 0] */
    ad_tensor *n = leaf_vec(tape, 2, (double[]){NAN, 1});
    ad_tensor *m = ad_norm(n, INFINITY, 0, NULL, false);
    assert_true(isnan(ad_value(m)));
    const double zeros[2] = {0, 0};
    assert_exact(grad_of_sum(m, n), 2, zeros);
}

static void test_norm_errors_name_norm(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    const int bad[1] = {2};
    assert_axis_error(tape, ad_norm(x, 2, 1, bad, false), "norm: axis 2");
    assert_null(ad_norm(x, 0, 0, NULL, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "norm: p = 0");
    ad_tape_clear_error(tape);
    assert_null(ad_norm(x, NAN, 0, NULL, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
}

/* ---- cumsum ------------------------------------------------------------------------------------
 */

static void test_cumsum_by_hand(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    ad_tensor *rows = ad_cumsum(x, -1);
    assert_shape(rows, 2, shape23);
    const double want_rows[6] = {1, 6, 9, 4, 6, 12};
    assert_exact(rows, 6, want_rows);
    /* d sum(cumsum) / dx_k = the number of outputs that include x_k */
    const double g_rows[6] = {3, 2, 1, 3, 2, 1};
    assert_exact(grad_of_sum(rows, x), 6, g_rows);
    const double want_cols[6] = {1, 5, 3, 5, 7, 9}, g_cols[6] = {2, 2, 2, 1, 1, 1};
    ad_tensor *cols = ad_cumsum(x, 0);
    assert_exact(cols, 6, want_cols);
    assert_exact(grad_of_sum(cols, x), 6, g_cols);
    /* 0-d and empty */
    ad_tensor *s = ad_cumsum(leaf(tape, AD_F64, 0, NULL, (double[]){2.5}), 0);
    assert_int_equal(ad_tensor_ndim(s), 0);
    assert_close(2.5, ad_value(s), 0, 0);
    const int64_t rows0[2] = {0, 3};
    assert_shape(ad_cumsum(ad_tape_tensor(tape, AD_F64, 2, rows0, NULL), 1), 2, rows0);
}

static void test_cumsum_errors_name_cumsum(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    assert_axis_error(tape, ad_cumsum(x, 2), "cumsum: axis 2");
    assert_axis_error(tape, ad_cumsum(x, -3), "cumsum: axis -3");
}

/* ---- float32 ----------------------------------------------------------------------------------
 */

static void test_float32_reductions_agree_with_float64(void **state)
{
    ad_tape *tape = *state;
    const int ax1[1] = {1};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *x = leaf(tape, (ad_dtype)dt, 2, shape23, r23);
        const double mins[2] = {1, 2};
        assert_values(ad_min(x, 1, ax1, false), 2, mins, 0, 0);
        const double stds[2] = {2, 2};
        assert_values(ad_std(x, 1, ax1, false, 1), 2, stds, 1e-6, 0);
        ad_tensor *p = ad_prod(x, 1, ax1, false);
        const double prods[2] = {15, 48}, gp[6] = {15, 3, 5, 12, 24, 8};
        assert_values(p, 2, prods, 0, 0);
        assert_values(grad_of_sum(p, x), 6, gp, 1e-6, 0);
        ad_tensor *nx = ad_norm(x, 2, 1, ax1, false);
        const double norms[2] = {sqrt(35.0), sqrt(56.0)};
        assert_values(nx, 2, norms, 1e-7, 0);
        const double gn[6] = {1 / sqrt(35.0), 5 / sqrt(35.0), 3 / sqrt(35.0),
                              4 / sqrt(56.0), 2 / sqrt(56.0), 6 / sqrt(56.0)};
        assert_values(grad_of_sum(nx, x), 6, gn, 1e-6, 0);
        const double sums[6] = {1, 6, 9, 4, 6, 12};
        assert_values(ad_cumsum(x, 1), 6, sums, 0, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_min_by_hand_and_ties_split_evenly),
        TAPE_TEST(test_min_of_nan_is_nan_with_a_nan_gradient),
        TAPE_TEST(test_amax_is_max),
        TAPE_TEST(test_min_errors_name_min),
        TAPE_TEST(test_std_by_hand_with_both_corrections),
        TAPE_TEST(test_std_at_zero_variance_has_a_zero_gradient),
        TAPE_TEST(test_std_errors_name_std),
        TAPE_TEST(test_prod_by_hand),
        TAPE_TEST(test_prod_gradient_with_zeros_is_the_product_of_the_others),
        TAPE_TEST(test_prod_second_order_with_one_zero_matches_torch),
        TAPE_TEST(test_prod_gradient_of_a_group_with_inf_or_nan_is_nan),
        TAPE_TEST(test_prod_of_an_empty_dim_is_one),
        TAPE_TEST(test_prod_errors_name_prod),
        TAPE_TEST(test_norm_values_and_gradients_match_torch),
        TAPE_TEST(test_norm_of_a_zero_vector_has_a_zero_gradient),
        TAPE_TEST(test_norm_over_axes_and_frobenius),
        TAPE_TEST(test_norm_extremes_follow_torch),
        TAPE_TEST(test_norm_errors_name_norm),
        TAPE_TEST(test_cumsum_by_hand),
        TAPE_TEST(test_cumsum_errors_name_cumsum),
        TAPE_TEST(test_float32_reductions_agree_with_float64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
