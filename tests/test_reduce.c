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

/* ---- cumprod ----------------------------------------------------------------------------------
 */

/* d sum(y) / dx and d sum(d sum(y) / dx) / dx of a scan of a vector. */
static void first_and_second(ad_tensor *y, ad_tensor *x, ad_tensor **g, ad_tensor **gg)
{
    ad_tensor *s = ad_sum_all(y);
    assert_int_equal(ad_grad(1, &s, NULL, 1, &x, g, &(ad_backward_opts){.create_graph = true}),
                     AD_OK);
    ad_tensor *sg = ad_sum_all(*g);
    assert_int_equal(ad_grad(1, &sg, NULL, 1, &x, gg, NULL), AD_OK);
}

static void test_cumprod_by_hand(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    ad_tensor *rows = ad_cumprod(x, -1);
    assert_shape(rows, 2, shape23);
    const double want_rows[6] = {1, 5, 15, 4, 8, 48};
    assert_exact(rows, 6, want_rows);
    /* torch: d sum(cumprod(x, 1)) / dx = [[21, 4, 5], [15, 28, 8]] */
    const double g_rows[6] = {21, 4, 5, 15, 28, 8};
    assert_values(grad_of_sum(rows, x), 6, g_rows, 1e-15, 0);
    ad_tensor *cols = ad_cumprod(x, 0);
    const double want_cols[6] = {1, 5, 3, 4, 10, 18}, g_cols[6] = {5, 3, 7, 1, 5, 3};
    assert_exact(cols, 6, want_cols);
    assert_values(grad_of_sum(cols, x), 6, g_cols, 1e-15, 0);
    /* 0-d and empty */
    ad_tensor *s = ad_cumprod(leaf(tape, AD_F64, 0, NULL, (double[]){2.5}), -1);
    assert_int_equal(ad_tensor_ndim(s), 0);
    assert_close(2.5, ad_value(s), 0, 0);
    const int64_t rows0[2] = {0, 3};
    ad_tensor *e = leaf(tape, AD_F64, 2, rows0, NULL);
    ad_tensor *ye = ad_cumprod(e, 1);
    assert_shape(ye, 2, rows0);
    assert_shape(grad_of_sum(ye, e), 2, rows0);
}

/* cumprod of a vector with zeros: its value, gradient and second-order
 * gradient (of sum(grad)) against torch's. */
static void check_cumprod_zeros(ad_tape *tape, int64_t n, const double *x, const double *want_g,
                                const double *want_gg)
{
    ad_tensor *xs = leaf_vec(tape, n, x), *g, *gg;
    ad_tensor *y = ad_cumprod(xs, 0);
    double prod = 1;
    for (int64_t i = 0; i < n; i++) {
        prod *= x[i];
        assert_close(prod, ad_tensor_get(y, i), 0, 0);
    }
    /* without create_graph (zeros after the first skipped), then with it */
    assert_values(grad_of_sum(y, xs), n, want_g, 1e-15, 0);
    first_and_second(ad_cumprod(xs, 0), xs, &g, &gg);
    assert_values(g, n, want_g, 1e-15, 0);
    assert_values(gg, n, want_gg, 1e-14, 1e-14);
}

static void test_cumprod_gradients_with_zeros_match_torch(void **state)
{
    ad_tape *tape = *state;
    /* torch 1.13 (its create_graph path for the second order) */
    check_cumprod_zeros(tape, 4, (double[]){2, 0, 4, 5}, (double[]){1, 50, 0, 0},
                        (double[]){25, 45, 12, 8});
    check_cumprod_zeros(tape, 4, (double[]){0, 3, 4, 5}, (double[]){76, 0, 0, 0},
                        (double[]){55, 25, 18, 12});
    check_cumprod_zeros(tape, 4, (double[]){2, 3, 4, 0}, (double[]){16, 10, 6, 24},
                        (double[]){20, 15, 11, 26});
    check_cumprod_zeros(tape, 3, (double[]){2, 0, 4}, (double[]){1, 10, 0}, (double[]){5, 7, 2});
    /* two zeros: the second still has a slope in the first */
    check_cumprod_zeros(tape, 5, (double[]){2, 0, 4, 0, 3}, (double[]){1, 10, 0, 0, 0},
                        (double[]){5, 39, 2, 32, 0});
    check_cumprod_zeros(tape, 4, (double[]){0, 0, 3, 2}, (double[]){1, 0, 0, 0},
                        (double[]){10, 10, 0, 0});
}

static void test_cumprod_third_order_with_two_zeros_matches_torch(void **state)
{
    ad_tape *tape = *state;
    const double x[5] = {2, 0, 4, 0, 3}, w[5] = {-1.3, -0.3, 0.7, -1.3, -0.3},
                 v[5] = {-1, -0.3, 0.4, 1.1, 1.8};
    ad_tensor *xs = leaf_vec(tape, 5, x), *g, *gg, *ggg;
    int64_t n = 5;
    ad_tensor *ws = tensor(tape, AD_F64, 1, &n, w), *vs = tensor(tape, AD_F64, 1, &n, v);
    ad_backward_opts create = {.create_graph = true};
    ad_tensor *l = ad_sum_all(ad_mul(ad_cumprod(xs, 0), ws));
    assert_int_equal(ad_grad(1, &l, NULL, 1, &xs, &g, &create), AD_OK);
    ad_tensor *lg = ad_sum_all(ad_mul(g, vs));
    assert_int_equal(ad_grad(1, &lg, NULL, 1, &xs, &gg, &create), AD_OK);
    ad_tensor *lgg = ad_sum_all(ad_mul(gg, ws));
    assert_int_equal(ad_grad(1, &lgg, NULL, 1, &xs, &ggg, NULL), AD_OK);
    /* torch: [-0.759, 5.598, 0.219, -3.54, -0.144] */
    const double want[5] = {-0.759, 5.598, 0.219, -3.54, -0.144};
    assert_values(ggg, 5, want, 1e-13, 1e-15);
}

static void test_cumprod_forward_mode_with_zeros_matches_torch(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 5;
    ad_tensor *x = leaf_vec(tape, n, (double[]){2, 0, 4, 0, 3});
    ad_tensor *v = tensor(tape, AD_F64, 1, &n, (double[]){1, 2, 3, 4, 5});
    ad_tensor *y = ad_cumprod(x, 0), *t;
    assert_int_equal(ad_jvp(1, &y, 1, &x, &v, &t, NULL), AD_OK);
    /* torch.autograd.forward_ad: [1, 4, 16, 0, 0] */
    const double want[5] = {1, 4, 16, 0, 0};
    assert_exact(t, 5, want);
}

static void test_cumprod_errors_name_cumprod(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    assert_axis_error(tape, ad_cumprod(x, 2), "cumprod: axis 2");
    assert_axis_error(tape, ad_cumprod(x, -3), "cumprod: axis -3");
}

/* ---- logcumsumexp ---------------------------------------------------------------------------- */

static void test_logcumsumexp_by_hand(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    ad_tensor *rows = ad_logcumsumexp(x, 1);
    assert_shape(rows, 2, shape23);
    /* torch */
    const double want_rows[6] = {1, 5.0181499279178094, 5.142931628499899,
                                 4, 4.126928011042972,  6.142931628499899};
    assert_values(rows, 6, want_rows, 1e-15, 0);
    const double g_rows[6] = {1.0338624499385582, 1.8488271222352435,  0.11731042782619841,
                              1.9981075058040816, 0.13507916199858436, 0.8668133321973351};
    assert_values(grad_of_sum(rows, x), 6, g_rows, 1e-14, 0);
    ad_tensor *cols = ad_logcumsumexp(x, -2);
    const double want_cols[6] = {1, 5, 3, 4.048587351573742, 5.048587351573742, 6.048587351573742};
    assert_values(cols, 6, want_cols, 1e-15, 0);
    const double g_cols[6] = {1.0474258731775667, 1.952574126822434,   1.047425873177567,
                              0.9525741268224333, 0.04742587317756678, 0.9525741268224333};
    assert_values(grad_of_sum(cols, x), 6, g_cols, 1e-14, 0);
    ad_tensor *s = ad_logcumsumexp(leaf(tape, AD_F64, 0, NULL, (double[]){-2.5}), 0);
    assert_int_equal(ad_tensor_ndim(s), 0);
    assert_close(-2.5, ad_value(s), 0, 0);
}

static void test_logcumsumexp_of_huge_logits_does_not_overflow(void **state)
{
    ad_tape *tape = *state;
    /* exp(1000) overflows a double: a naive log(cumsum(exp(x))) gives inf */
    for (int dt = 0; dt < 2; dt++) {
        int64_t n = 3;
        ad_tensor *x = leaf(tape, (ad_dtype)dt, 1, &n, (double[]){1000, 1001, 999});
        ad_tensor *y = ad_logcumsumexp(x, 0);
        /* torch: float64 [1000, 1001.3132616875182, 1001.4076059644443], and
         * float32 [1000, 1001.313232421875, 1001.4075927734375] */
        const double want64[3] = {1000, 1001.3132616875182, 1001.4076059644443};
        const double want32[3] = {1000, 1001.313232421875, 1001.4075927734375};
        assert_values(y, 3, dt ? want64 : want32, dt ? 1e-15 : 0, 0);
        const double g64[3] = {1.5136698924247556, 1.396299534404897, 0.09003057317038635};
        const double g32[3] = {1.5136905908584595, 1.3963508605957031, 0.09003175795078278};
        assert_values(grad_of_sum(y, x), 3, dt ? g64 : g32, dt ? 1e-13 : 1e-6, 0);
    }
    ad_tensor *neg = leaf_vec(tape, 3, (double[]){-1000, -999.5, -1001});
    ad_tensor *yn = ad_logcumsumexp(neg, 0);
    const double want_neg[3] = {-1000, -999.0259230158199, -998.8958693946632};
    assert_values(yn, 3, want_neg, 1e-15, 0);
    const double g_neg[3] = {1.7090396292222514, 1.1690087184680795, 0.12195165230972457};
    assert_values(grad_of_sum(yn, neg), 3, g_neg, 1e-13, 0);
}

static void test_logcumsumexp_of_infinities_and_nan_follows_torch(void **state)
{
    ad_tape *tape = *state;
    /* torch: [-inf, -inf, 2] -> [-inf, -inf, 2]; [1, inf, 2] -> [1, inf, inf];
     * [1, nan, 2] -> [1, nan, nan]; all -inf stays -inf */
    const double in[4][3] = {{-INFINITY, -INFINITY, 2},
                             {1, INFINITY, 2},
                             {1, NAN, 2},
                             {-INFINITY, -INFINITY, -INFINITY}};
    const double want[4][3] = {{-INFINITY, -INFINITY, 2},
                               {1, INFINITY, INFINITY},
                               {1, NAN, NAN},
                               {-INFINITY, -INFINITY, -INFINITY}};
    for (int dt = 0; dt < 2; dt++)
        for (int k = 0; k < 4; k++) {
            int64_t n = 3;
            assert_values(ad_logcumsumexp(tensor(tape, (ad_dtype)dt, 1, &n, in[k]), 0), 3, want[k],
                          0, 0);
        }
    /* torch's gradient at [-inf, 0, 1]: [nan, 1.2689414213699952, 0.7310585786300049] */
    ad_tensor *x = leaf_vec(tape, 3, (double[]){-INFINITY, 0, 1});
    const double g[3] = {NAN, 1.2689414213699952, 0.7310585786300049};
    assert_values(grad_of_sum(ad_logcumsumexp(x, 0), x), 3, g, 1e-15, 0);
    /* and at [1, inf, 2]: [1, nan, 0] */
    ad_tensor *xi = leaf_vec(tape, 3, (double[]){1, INFINITY, 2});
    const double gi[3] = {1, NAN, 0};
    assert_values(grad_of_sum(ad_logcumsumexp(xi, 0), xi), 3, gi, 0, 0);
}

static void test_logcumsumexp_second_order_at_a_zero_gradient_is_finite(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 4;
    ad_tensor *x = leaf_vec(tape, n, (double[]){3, -2, 0.1, 5}), *g, *gg;
    /* dy has zeros: log |dy| would be -inf there, and its derivatives NaN */
    ad_tensor *w = tensor(tape, AD_F64, 1, &n, (double[]){1, 0, -2, 0});
    ad_tensor *v = tensor(tape, AD_F64, 1, &n, (double[]){1, 2, 3, 4});
    ad_tensor *l = ad_sum_all(ad_mul(ad_logcumsumexp(x, 0), w));
    assert_int_equal(ad_grad(1, &l, NULL, 1, &x, &g, &(ad_backward_opts){.create_graph = true}),
                     AD_OK);
    ad_tensor *lg = ad_sum_all(ad_mul(g, v));
    assert_int_equal(ad_grad(1, &lg, NULL, 1, &x, &gg, NULL), AD_OK);
    /* torch */
    const double want_g[4] = {-0.8836627878814387, -0.012692020028894706, -0.10364519208966595, 0};
    const double want_gg[4] = {0.20718633439786482, -0.011296009488787102, -0.19589032490907782, 0};
    assert_values(g, 4, want_g, 1e-14, 0);
    assert_values(gg, 4, want_gg, 1e-13, 1e-16);
}

static void test_logcumsumexp_errors_name_logcumsumexp(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = leaf(tape, AD_F64, 2, shape23, r23);
    assert_axis_error(tape, ad_logcumsumexp(x, 2), "logcumsumexp: axis 2");
    assert_axis_error(tape, ad_logcumsumexp(x, -3), "logcumsumexp: axis -3");
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
        ad_tensor *c = ad_cumprod(x, 1);
        const double cprods[6] = {1, 5, 15, 4, 8, 48}, gc[6] = {21, 4, 5, 15, 28, 8};
        assert_values(c, 6, cprods, 0, 0);
        assert_values(grad_of_sum(c, x), 6, gc, 0, 0);
        /* torch's float32 logcumsumexp rounds the float64 result (it runs in double) */
        ad_tensor *l = ad_logcumsumexp(x, 1);
        const double lse[6] = {1, 5.0181499279178094, 5.142931628499899,
                               4, 4.126928011042972,  6.142931628499899};
        for (int i = 0; i < 6; i++)
            assert_close(dt ? lse[i] : (double)(float)lse[i], ad_tensor_get(l, i), 1e-15, 0);
        const double gl[6] = {1.0338624715805054, 1.8488272428512573,  0.11731044948101044,
                              1.99810791015625,   0.13507920503616333, 0.8668134808540344};
        assert_values(grad_of_sum(l, x), 6, gl, dt ? 1e-6 : 1e-7, 0);
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
        TAPE_TEST(test_cumprod_by_hand),
        TAPE_TEST(test_cumprod_gradients_with_zeros_match_torch),
        TAPE_TEST(test_cumprod_third_order_with_two_zeros_matches_torch),
        TAPE_TEST(test_cumprod_forward_mode_with_zeros_matches_torch),
        TAPE_TEST(test_cumprod_errors_name_cumprod),
        TAPE_TEST(test_logcumsumexp_by_hand),
        TAPE_TEST(test_logcumsumexp_of_huge_logits_does_not_overflow),
        TAPE_TEST(test_logcumsumexp_of_infinities_and_nan_follows_torch),
        TAPE_TEST(test_logcumsumexp_second_order_at_a_zero_gradient_is_finite),
        TAPE_TEST(test_logcumsumexp_errors_name_logcumsumexp),
        TAPE_TEST(test_float32_reductions_agree_with_float64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
