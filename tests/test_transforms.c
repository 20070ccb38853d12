/* Unit tests of the functional transforms (ad_vjp, ad_jvp, ad_jacobian,
 * ad_hessian, ad_hvp) in float64: against central finite differences of the
 * function's own values and against hand-computed derivatives, in every
 * Jacobian mode, with create_graph (derivatives of derivatives), through
 * persistent inputs and custom ops, and their errors. */
#include "test_util.h"

#include "autodiff/custom.h"

#define MAX_IO 4
#define MAX_NUMEL 512
#define EPS 1e-6

/* A function of n_in tensors to n_out tensors, built with ops from in only. */
typedef void (*multi_fn)(ad_tensor *const *in, ad_tensor **out);

/* ---- Finite differences ---------------------------------------------------------------- */

/* The outputs of f at in[i] + s dir[i] (dir NULL or dir[i] NULL: no move), as
 * doubles in out[j][0..numel), evaluated on a scratch tape. */
static void values_at(multi_fn f, size_t n_in, ad_tensor *const *in, ad_tensor *const *dir,
                      double s, size_t n_out, double out[][MAX_NUMEL])
{
    ad_tape *scratch = test_tape();
    ad_tensor *moved[MAX_IO], *y[MAX_IO];
    for (size_t i = 0; i < n_in; i++) {
        moved[i] =
            ad_tape_tensor(scratch, AD_F64, ad_tensor_ndim(in[i]), ad_tensor_shape(in[i]), NULL);
        assert_non_null(moved[i]);
        double *m = ad_tensor_data(moved[i]);
        for (int64_t e = 0; e < ad_tensor_numel(in[i]); e++)
            m[e] = ad_tensor_get(in[i], e) + (dir && dir[i] ? s * ad_tensor_get(dir[i], e) : 0.0);
    }
    f(moved, y);
    for (size_t j = 0; j < n_out; j++) {
        assert_non_null(y[j]);
        assert_true(ad_tensor_numel(y[j]) <= MAX_NUMEL);
        assert_int_equal(ad_tensor_copy_to_doubles(y[j], out[j]), AD_OK);
    }
    ad_tape_free(scratch);
}

/* d[j] = (f(x + eps dir) - f(x - eps dir))_j / (2 eps): the directional derivative. */
static void central_difference(multi_fn f, size_t n_in, ad_tensor *const *in, ad_tensor *const *dir,
                               size_t n_out, double d[][MAX_NUMEL])
{
    static double plus[MAX_IO][MAX_NUMEL], minus[MAX_IO][MAX_NUMEL];
    values_at(f, n_in, in, dir, EPS, n_out, plus);
    values_at(f, n_in, in, dir, -EPS, n_out, minus);
    for (size_t j = 0; j < n_out; j++)
        for (int e = 0; e < MAX_NUMEL; e++)
            d[j][e] = (plus[j][e] - minus[j][e]) / (2 * EPS);
}

/* Checks jac (one block per output and input, as ad_jacobian lays them out)
 * against central differences, column by column. */
static void assert_jacobian_matches_differences(multi_fn f, size_t n_in, ad_tensor *const *in,
                                                size_t n_out, ad_tensor *const *y,
                                                ad_tensor *const *jac)
{
    ad_tape *tape = ad_tensor_tape(in[0]);
    static double d[MAX_IO][MAX_NUMEL];
    for (size_t i = 0; i < n_in; i++) {
        int64_t n = ad_tensor_numel(in[i]);
        for (int64_t e = 0; e < n; e++) {
            ad_tensor *dir[MAX_IO] = {NULL};
            dir[i] =
                ad_tape_tensor(tape, AD_F64, ad_tensor_ndim(in[i]), ad_tensor_shape(in[i]), NULL);
            assert_non_null(dir[i]);
            ((double *)ad_tensor_data(dir[i]))[e] = 1.0;
            central_difference(f, n_in, in, dir, n_out, d);
            for (size_t j = 0; j < n_out; j++)
                for (int64_t r = 0; r < ad_tensor_numel(y[j]); r++) {
                    double analytic = ad_tensor_get(jac[j * n_in + i], r * n + e);
                    if (fabs(analytic - d[j][r]) > 1e-6 * (1 + fabs(d[j][r])))
                        fail_msg("d out%zu[%lld] / d in%zu[%lld] is %.17g, finite differences "
                                 "%.17g",
                                 j, (long long)r, i, (long long)e, analytic, d[j][r]);
                }
        }
    }
}

static void assert_same_values(const ad_tensor *expected, const ad_tensor *actual, double tol)
{
    assert_non_null(expected);
    assert_non_null(actual);
    assert_int_equal(ad_tensor_ndim(actual), ad_tensor_ndim(expected));
    for (int d = 0; d < ad_tensor_ndim(expected); d++)
        assert_int_equal(ad_tensor_shape(actual)[d], ad_tensor_shape(expected)[d]);
    for (int64_t e = 0; e < ad_tensor_numel(expected); e++)
        assert_close(ad_tensor_get(expected, e), ad_tensor_get(actual, e), tol, tol);
}

static ad_tensor *vector_leaf(ad_tape *tape, int64_t n, const double *values)
{
    return leaf(tape, AD_F64, 1, &n, values);
}

static ad_tensor *vector_of(ad_tape *tape, int64_t n, const double *values)
{
    return tensor(tape, AD_F64, 1, &n, values);
}

/* ---- u = sin(a) b, v = sum(a^2) + b: two inputs, two outputs --------------------------- */

static const double A[3] = {0.3, -1.2, 2.0}, B[3] = {1.5, -0.5, 0.25};
static const double VA[3] = {1.0, -0.5, 2.0}, VB[3] = {0.25, 3.0, -1.0};

static void two_by_two(ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_mul(ad_sin(in[0]), in[1]);
    out[1] = ad_add(ad_sum_all(ad_square(in[0])), in[1]);
}

/* du = cos(a) va b + sin(a) vb, dv = 2 sum(a va) + vb */
static void two_by_two_tangents(const double *va, const double *vb, double du[3], double dv[3])
{
    double s = 0;
    for (int i = 0; i < 3; i++)
        s += 2 * A[i] * (va ? va[i] : 0);
    for (int i = 0; i < 3; i++) {
        du[i] = cos(A[i]) * (va ? va[i] : 0) * B[i] + sin(A[i]) * (vb ? vb[i] : 0);
        dv[i] = s + (vb ? vb[i] : 0);
    }
}

static void test_jvp_of_two_inputs_and_two_outputs_equals_central_differences(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 3, A), vector_leaf(tape, 3, B)}, *y[2];
    two_by_two(in, y);
    ad_tensor *v[2] = {vector_of(tape, 3, VA), vector_of(tape, 3, VB)}, *t[2];
    assert_int_equal(ad_jvp(2, y, 2, in, v, t, NULL), AD_OK);
    static double d[MAX_IO][MAX_NUMEL];
    central_difference(two_by_two, 2, in, v, 2, d);
    double du[3], dv[3];
    two_by_two_tangents(VA, VB, du, dv);
    for (int i = 0; i < 3; i++) {
        assert_close(d[0][i], ad_tensor_get(t[0], i), 1e-6, 1e-6);
        assert_close(d[1][i], ad_tensor_get(t[1], i), 1e-6, 1e-6);
        assert_close(du[i], ad_tensor_get(t[0], i), 1e-14, 1e-15);
        assert_close(dv[i], ad_tensor_get(t[1], i), 1e-14, 1e-15);
    }
    assert_false(ad_tensor_requires_grad(t[0])); /* no create_graph: plain values */
    assert_null(ad_tensor_grad(in[0]));          /* stored gradients untouched */
}

static void test_jvp_treats_null_tangents_as_zero(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 3, A), vector_leaf(tape, 3, B)}, *y[2], *t[2];
    two_by_two(in, y);
    double du[3], dv[3];
    /* Only a moves. */
    ad_tensor *only_a[2] = {vector_of(tape, 3, VA), NULL};
    assert_int_equal(ad_jvp(2, y, 2, in, only_a, t, NULL), AD_OK);
    two_by_two_tangents(VA, NULL, du, dv);
    assert_values(t[0], 3, du, 1e-14, 1e-15);
    assert_values(t[1], 3, dv, 1e-14, 1e-15);
    /* Only b moves. */
    ad_tensor *only_b[2] = {NULL, vector_of(tape, 3, VB)};
    assert_int_equal(ad_jvp(2, y, 2, in, only_b, t, NULL), AD_OK);
    two_by_two_tangents(NULL, VB, du, dv);
    assert_values(t[0], 3, du, 1e-14, 1e-15);
    assert_values(t[1], 3, dv, 1e-14, 1e-15);
    /* Nothing moves: exact zeros of the outputs' shapes, whether v is NULL or holds NULLs. */
    const double zeros[3] = {0, 0, 0};
    ad_tensor *none[2] = {NULL, NULL};
    assert_int_equal(ad_jvp(2, y, 2, in, none, t, NULL), AD_OK);
    assert_exact(t[0], 3, zeros);
    assert_exact(t[1], 3, zeros);
    assert_int_equal(ad_jvp(2, y, 2, in, NULL, t, NULL), AD_OK);
    assert_exact(t[0], 3, zeros);
    assert_exact(t[1], 3, zeros);
}

static void test_jvp_with_create_graph_gives_tangents_that_can_be_differentiated(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 3, A), vector_leaf(tape, 3, B)}, *y[2], *t[2], *g[2];
    two_by_two(in, y);
    ad_tensor *v[2] = {vector_of(tape, 3, VA), vector_of(tape, 3, VB)};
    ad_backward_opts o = {.create_graph = true};
    assert_int_equal(ad_jvp(2, y, 2, in, v, t, &o), AD_OK);
    assert_true(ad_tensor_requires_grad(t[0]));
    assert_true(ad_tensor_requires_grad(t[1]));
    /* s = sum(du) + sum(dv) = sum(cos(a) va b + sin(a) vb) + 6 sum(a va) + sum(vb):
     * ds/da = -sin(a) va b + cos(a) vb + 6 va, ds/db = cos(a) va */
    ad_tensor *s = ad_add(ad_sum_all(t[0]), ad_sum_all(t[1]));
    assert_int_equal(ad_grad(1, &s, NULL, 2, in, g, NULL), AD_OK);
    for (int i = 0; i < 3; i++) {
        double da = -sin(A[i]) * VA[i] * B[i] + cos(A[i]) * VB[i] + 6 * VA[i];
        assert_close(da, ad_tensor_get(g[0], i), 1e-14, 1e-15);
        assert_close(cos(A[i]) * VA[i], ad_tensor_get(g[1], i), 1e-14, 1e-15);
    }
}

static void test_vjp_equals_ad_grad_and_leaves_the_graph_usable(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 3, A), vector_leaf(tape, 3, B)}, *y[2];
    two_by_two(in, y);
    const double WU[3] = {1.0, 2.0, -1.0}, WV[3] = {0.5, -0.25, 1.0};
    ad_tensor *w[2] = {vector_of(tape, 3, WU), vector_of(tape, 3, WV)};
    ad_tensor *first[2], *second[2], *reference[2];
    assert_int_equal(ad_vjp(2, y, w, 2, in, first, NULL), AD_OK);
    assert_int_equal(ad_vjp(2, y, w, 2, in, second, NULL), AD_OK);
    ad_backward_opts keep = {.retain_graph = true};
    assert_int_equal(ad_grad(2, y, w, 2, in, reference, &keep), AD_OK);
    /* ga = cos(a) b wu + 2 a sum(wv), gb = sin(a) wu + wv */
    double swv = WV[0] + WV[1] + WV[2], ga[3], gb[3];
    for (int i = 0; i < 3; i++) {
        ga[i] = cos(A[i]) * B[i] * WU[i] + 2 * A[i] * swv;
        gb[i] = sin(A[i]) * WU[i] + WV[i];
    }
    for (int k = 0; k < 2; k++) {
        double r[3];
        assert_int_equal(ad_tensor_copy_to_doubles(reference[k], r), AD_OK);
        assert_exact(first[k], 3, r);
        assert_exact(second[k], 3, r);
        assert_values(first[k], 3, k == 0 ? ga : gb, 1e-14, 1e-15);
    }
    assert_null(ad_tensor_grad(in[0]));
    /* The graph is still there for a backward without retain_graph. */
    assert_int_equal(ad_backward(ad_sum_all(y[0]), NULL), AD_OK);
    for (int i = 0; i < 3; i++)
        assert_close(cos(A[i]) * B[i], ad_tensor_get(ad_tensor_grad(in[0]), i), 1e-15, 0);
}

/* ---- Jacobians ----------------------------------------------------------------------- */

/* W [2,3], z [3]: o1 = tanh(W z) [2], o2 = sum(W^2 z) 0-d, o3 = exp(z) [3] (not of W). */
static void three_outputs(ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_tanh(ad_matmul(in[0], in[1]));
    out[1] = ad_sum_all(ad_mul(ad_square(in[0]), in[1]));
    out[2] = ad_exp(in[1]);
}

static const double W6[6] = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5}, Z3[3] = {0.2, -0.4, 1.1};

static void three_outputs_problem(ad_tape *tape, ad_tensor **in, ad_tensor **y)
{
    const int64_t sw[2] = {2, 3};
    in[0] = leaf(tape, AD_F64, 2, sw, W6);
    in[1] = vector_leaf(tape, 3, Z3);
    three_outputs(in, y);
}

static void assert_three_outputs_jacobian(ad_tensor *const *y, ad_tensor *const *jac)
{
    /* Shapes: outputs.shape ++ inputs.shape. */
    assert_shape(jac[0], 3, (int64_t[]){2, 2, 3});
    assert_shape(jac[1], 2, (int64_t[]){2, 3});
    assert_shape(jac[2], 2, (int64_t[]){2, 3});
    assert_shape(jac[3], 1, (int64_t[]){3});
    assert_shape(jac[4], 3, (int64_t[]){3, 2, 3});
    assert_shape(jac[5], 2, (int64_t[]){3, 3});
    for (int r = 0; r < 2; r++) {
        double slope = 1 - pow(ad_tensor_get(y[0], r), 2);
        for (int s = 0; s < 2; s++)
            for (int k = 0; k < 3; k++) /* d o1_r / d W_sk = [r = s] (1 - o1_r^2) z_k */
                assert_close(r == s ? slope * Z3[k] : 0.0, ad_tensor_get(jac[0], r * 6 + s * 3 + k),
                             1e-14, 1e-15);
        for (int k = 0; k < 3; k++) /* d o1_r / d z_k = (1 - o1_r^2) W_rk */
            assert_close(slope * W6[r * 3 + k], ad_tensor_get(jac[1], r * 3 + k), 1e-14, 1e-15);
    }
    for (int k = 0; k < 3; k++) {
        double column = W6[k] * W6[k] + W6[3 + k] * W6[3 + k];
        assert_close(column, ad_tensor_get(jac[3], k), 1e-14, 0); /* d o2 / d z_k */
        for (int r = 0; r < 2; r++)                               /* d o2 / d W_rk = 2 W_rk z_k */
            assert_close(2 * W6[r * 3 + k] * Z3[k], ad_tensor_get(jac[2], r * 3 + k), 1e-14, 0);
        for (int q = 0; q < 3; q++) /* d o3 / d z = diag(exp(z)) */
            assert_close(k == q ? exp(Z3[k]) : 0.0, ad_tensor_get(jac[5], k * 3 + q), 1e-14, 0);
    }
    for (int e = 0; e < 18; e++) /* o3 does not depend on W: exact zeros */
        if (!(ad_tensor_get(jac[4], e) == 0.0))
            fail_msg("d o3 / d W has %g at %d", ad_tensor_get(jac[4], e), e);
}

static void
test_jacobian_in_every_mode_matches_differences_hand_values_and_joined_shapes(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2], *y[3];
    three_outputs_problem(tape, in, y);
    const ad_jacobian_mode modes[3] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD, AD_JACOBIAN_AUTO};
    ad_tensor *jac[3][6];
    for (int m = 0; m < 3; m++) {
        assert_int_equal(ad_jacobian(3, y, 2, in, jac[m], modes[m], NULL), AD_OK);
        assert_three_outputs_jacobian(y, jac[m]);
        assert_jacobian_matches_differences(three_outputs, 2, in, 3, y, jac[m]);
        assert_false(ad_tensor_requires_grad(jac[m][0]));
    }
    for (int k = 0; k < 6; k++) {
        assert_same_values(jac[0][k], jac[1][k], 1e-12);
        assert_same_values(jac[0][k], jac[2][k], 1e-12);
    }
    assert_null(ad_tensor_grad(in[0]));
}

/* y = C x for C [300,2] and x [2]: 300 rows; z = 3 w for w [300]: 300 columns. */
static void test_jacobian_with_more_than_255_rows_and_columns_works_in_both_modes(void **state)
{
    ad_tape *tape = *state;
    enum { N = 300 };
    static double c[N * 2], w[N];
    for (int r = 0; r < N; r++) {
        c[2 * r] = 0.01 * r;
        c[2 * r + 1] = 1.0 - 0.02 * r;
        w[r] = sin(r);
    }
    const int64_t sc[2] = {N, 2};
    ad_tensor *x = vector_leaf(tape, 2, (double[]){0.5, -1.5});
    ad_tensor *wl = vector_leaf(tape, N, w);
    ad_tensor *y[2] = {ad_matmul(tensor(tape, AD_F64, 2, sc, c), x), ad_mul_scalar(wl, 3.0)};
    ad_tensor *in[2] = {x, wl};
    const ad_jacobian_mode modes[2] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD};
    for (int m = 0; m < 2; m++) {
        ad_tensor *jac[4];
        assert_int_equal(ad_jacobian(2, y, 2, in, jac, modes[m], NULL), AD_OK);
        assert_shape(jac[0], 2, (int64_t[]){N, 2});
        assert_shape(jac[1], 2, (int64_t[]){N, N});
        assert_shape(jac[2], 2, (int64_t[]){N, 2});
        assert_shape(jac[3], 2, (int64_t[]){N, N});
        assert_exact(jac[0], 2 * N, c);
        for (int r = 0; r < N; r++) {
            for (int k = 0; k < 2; k++)
                assert_true(ad_tensor_get(jac[2], 2 * r + k) == 0.0);
            for (int q = 0; q < N; q++) {
                assert_true(ad_tensor_get(jac[1], (int64_t)r * N + q) == 0.0);
                if (!(ad_tensor_get(jac[3], (int64_t)r * N + q) == (r == q ? 3.0 : 0.0)))
                    fail_msg("mode %d: d z_%d / d w_%d is %g", m, r, q,
                             ad_tensor_get(jac[3], (int64_t)r * N + q));
            }
        }
    }
}

static void
test_jacobian_needing_more_than_max_dims_is_a_shape_error_naming_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s4[4] = {1, 1, 1, 2}, s5[5] = {1, 1, 1, 1, 2};
    ad_tensor *x = leaf(tape, AD_F64, 4, s4, (double[]){1.0, 2.0});
    ad_tensor *y4 = ad_mul_scalar(x, 2.0), *y5 = ad_reshape(y4, 5, s5), *jac = x;
    /* 4 + 4 dims is the most there is room for. */
    assert_int_equal(ad_jacobian(1, &y4, 1, &x, &jac, AD_JACOBIAN_AUTO, NULL), AD_OK);
    assert_shape(jac, 8, (int64_t[]){1, 1, 1, 2, 1, 1, 1, 2});
    assert_exact(jac, 4, (double[]){2.0, 0.0, 0.0, 2.0});
    assert_int_equal(ad_jacobian(1, &y5, 1, &x, &jac, AD_JACOBIAN_REVERSE, NULL), AD_ERR_SHAPE);
    assert_null(jac);
    assert_message_has(tape, "[1,1,1,1,2]");
    assert_message_has(tape, "[1,1,1,2]");
}

static void test_jacobian_of_an_output_that_is_its_input_is_the_identity(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 2, (double[]){3.0, 4.0});
    const ad_jacobian_mode modes[2] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD};
    for (int m = 0; m < 2; m++) {
        ad_tensor *jac;
        assert_int_equal(ad_jacobian(1, &x, 1, &x, &jac, modes[m], NULL), AD_OK);
        assert_exact(jac, 4, (double[]){1.0, 0.0, 0.0, 1.0});
    }
}

static void test_jacobian_and_jvp_of_an_output_that_needs_no_grad_are_zeros(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 2, (double[]){3.0, 4.0});
    ad_tensor *c = ad_exp(vector_of(tape, 3, A)); /* computed from constants only */
    assert_false(ad_tensor_requires_grad(c));
    const double zeros[6] = {0};
    const ad_jacobian_mode modes[2] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD};
    for (int m = 0; m < 2; m++) {
        ad_tensor *jac;
        assert_int_equal(ad_jacobian(1, &c, 1, &x, &jac, modes[m], NULL), AD_OK);
        assert_shape(jac, 2, (int64_t[]){3, 2});
        assert_exact(jac, 6, zeros);
    }
    ad_tensor *v = vector_of(tape, 2, (double[]){1.0, 1.0}), *t;
    assert_int_equal(ad_jvp(1, &c, 1, &x, &v, &t, NULL), AD_OK);
    assert_exact(t, 3, zeros);
}

/* ---- Hessians ----------------------------------------------------------------------------- */

static void test_hessian_of_a_linear_function_is_exactly_zero_in_every_mode(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 2, (double[]){3.0, 4.0});
    ad_tensor *f = ad_sum_all(ad_mul_scalar(x, 3.0));
    const ad_jacobian_mode modes[2] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD};
    for (int m = 0; m < 2; m++) {
        ad_tensor *hess;
        assert_int_equal(ad_hessian(f, 1, &x, &hess, modes[m], NULL), AD_OK);
        assert_shape(hess, 2, (int64_t[]){2, 2});
        assert_exact(hess, 4, (double[]){0, 0, 0, 0});
    }
}

/* f(x, y) = x0^2 y0 + sin(x1) y1^3 + x0 x1, for x [2], y [2]; 0-d. */
static ad_tensor *hessian_function(ad_tensor *x, ad_tensor *y)
{
    ad_tensor *x0 = ad_slice(x, 0, 0, 1, 1), *x1 = ad_slice(x, 0, 1, 2, 1);
    ad_tensor *y0 = ad_slice(y, 0, 0, 1, 1), *y1 = ad_slice(y, 0, 1, 2, 1);
    ad_tensor *f = ad_add(ad_mul(ad_square(x0), y0), ad_mul(ad_sin(x1), ad_pow_scalar(y1, 3.0)));
    return ad_sum_all(ad_add(f, ad_mul(x0, x1)));
}

static const double HX[2] = {0.7, -1.3}, HY[2] = {1.2, 0.9};

/* The 4 x 4 Hessian in z = (x0, x1, y0, y1). */
static void hand_hessian(double h[4][4])
{
    double x0 = HX[0], x1 = HX[1], y0 = HY[0], y1 = HY[1];
    const double rows[4][4] = {
        {2 * y0, 1, 2 * x0, 0},
        {1, -sin(x1) * y1 * y1 * y1, 0, 3 * cos(x1) * y1 * y1},
        {2 * x0, 0, 0, 0},
        {0, 3 * cos(x1) * y1 * y1, 0, 6 * sin(x1) * y1},
    };
    memcpy(h, rows, sizeof rows);
}

/* d/dz of s = sum_pq H[p][q] v[q] (third derivatives of f contracted). */
static void hand_third(const double v[4], double g[4])
{
    double x1 = HX[1], y1 = HY[1];
    double c1 = -cos(x1) * y1 * y1 * y1 - 3 * sin(x1) * y1 * y1; /* d c1 / d x1 */
    double c1y = -3 * sin(x1) * y1 * y1 + 6 * cos(x1) * y1;      /* d c1 / d y1 = d c3 / d x1 */
    double c3y = 6 * cos(x1) * y1 + 6 * sin(x1);                 /* d c3 / d y1 */
    g[0] = 2 * v[0] + 2 * v[2];
    g[1] = c1 * v[1] + c1y * v[3];
    g[2] = 2 * v[0];
    g[3] = c1y * v[1] + c3y * v[3];
}

/* Element (p, q) of the Hessian's blocks, in z numbering. */
static double block_element(ad_tensor *const *hess, int p, int q)
{
    return ad_tensor_get(hess[(p / 2) * 2 + q / 2], (p % 2) * 2 + q % 2);
}

static void
test_hessian_equals_the_hand_computed_hessian_and_is_symmetric_in_every_mode(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 2, HX), vector_leaf(tape, 2, HY)};
    ad_tensor *f = hessian_function(in[0], in[1]);
    double h[4][4];
    hand_hessian(h);
    const ad_jacobian_mode modes[3] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD, AD_JACOBIAN_AUTO};
    for (int m = 0; m < 3; m++) {
        ad_tensor *hess[4];
        assert_int_equal(ad_hessian(f, 2, in, hess, modes[m], NULL), AD_OK);
        for (int k = 0; k < 4; k++)
            assert_shape(hess[k], 2, (int64_t[]){2, 2});
        for (int p = 0; p < 4; p++)
            for (int q = 0; q < 4; q++) {
                assert_close(h[p][q], block_element(hess, p, q), 1e-14, 1e-15);
                assert_close(block_element(hess, q, p), block_element(hess, p, q), 1e-14, 1e-15);
            }
    }
    assert_null(ad_tensor_grad(in[0]));
}

static void test_hvp_equals_the_hessian_times_v(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 2, HX), vector_leaf(tape, 2, HY)};
    ad_tensor *f = hessian_function(in[0], in[1]);
    const double v[4] = {0.5, -2.0, 1.0, 3.0};
    ad_tensor *vt[2] = {vector_of(tape, 2, v), vector_of(tape, 2, v + 2)}, *hv[2], *hess[4];
    assert_int_equal(ad_hvp(f, 2, in, vt, hv, NULL), AD_OK);
    assert_int_equal(ad_hessian(f, 2, in, hess, AD_JACOBIAN_REVERSE, NULL), AD_OK);
    double h[4][4];
    hand_hessian(h);
    for (int p = 0; p < 4; p++) {
        double want = 0, from_hessian = 0;
        for (int q = 0; q < 4; q++) {
            want += h[p][q] * v[q];
            from_hessian += block_element(hess, p, q) * v[q];
        }
        double got = ad_tensor_get(hv[p / 2], p % 2);
        assert_close(want, got, 1e-14, 1e-14);
        assert_close(from_hessian, got, 1e-14, 1e-14);
    }
    assert_false(ad_tensor_requires_grad(hv[0]));
}

static void test_hvp_with_create_graph_gives_third_derivatives(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 2, HX), vector_leaf(tape, 2, HY)};
    ad_tensor *f = hessian_function(in[0], in[1]);
    const double v[4] = {0.5, -2.0, 1.0, 3.0};
    ad_tensor *vt[2] = {vector_of(tape, 2, v), vector_of(tape, 2, v + 2)}, *hv[2], *g[2];
    ad_backward_opts o = {.create_graph = true};
    assert_int_equal(ad_hvp(f, 2, in, vt, hv, &o), AD_OK);
    assert_true(ad_tensor_requires_grad(hv[0]));
    ad_tensor *s = ad_add(ad_sum_all(hv[0]), ad_sum_all(hv[1]));
    assert_int_equal(ad_grad(1, &s, NULL, 2, in, g, NULL), AD_OK);
    double want[4];
    hand_third(v, want);
    for (int p = 0; p < 4; p++)
        assert_close(want[p], ad_tensor_get(g[p / 2], p % 2), 1e-13, 1e-14);
}

static void test_hessian_with_create_graph_gives_third_derivatives_in_both_modes(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 2, HX), vector_leaf(tape, 2, HY)};
    ad_tensor *f = hessian_function(in[0], in[1]);
    const double ones[4] = {1, 1, 1, 1};
    double want[4];
    hand_third(ones, want); /* d/dz of the sum of every Hessian element */
    const ad_jacobian_mode modes[2] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD};
    ad_backward_opts o = {.create_graph = true}, keep = {.retain_graph = true};
    for (int m = 0; m < 2; m++) {
        ad_tensor *hess[4], *g[2];
        assert_int_equal(ad_hessian(f, 2, in, hess, modes[m], &o), AD_OK);
        ad_tensor *s = ad_sum_all(hess[0]);
        for (int k = 1; k < 4; k++)
            s = ad_add(s, ad_sum_all(hess[k]));
        assert_int_equal(ad_grad(1, &s, NULL, 2, in, g, &keep), AD_OK);
        for (int p = 0; p < 4; p++)
            assert_close(want[p], ad_tensor_get(g[p / 2], p % 2), 1e-13, 1e-14);
    }
}

/* ---- Persistent inputs ------------------------------------------------------------------ */

static void test_transforms_work_through_a_persistent_input(void **state)
{
    ad_tape *tape = *state;
    const int64_t n = 2;
    const double wv[2] = {1.5, -0.5}, xv[2] = {0.4, 2.0};
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 1, &n, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(w, wv), AD_OK);
    ad_tensor *x = vector_leaf(tape, 2, xv), *in[2] = {w, x};
    /* f = sum(w^2 sin x), o = w x */
    ad_tensor *f = ad_sum_all(ad_mul(ad_square(ad_tape_use(tape, w)), ad_sin(x)));
    ad_tensor *o = ad_mul(w, x);

    ad_tensor *t, *v[2] = {vector_of(tape, 2, (double[]){1.0, 2.0}),
                           vector_of(tape, 2, (double[]){-1.0, 0.5})};
    assert_int_equal(ad_jvp(1, &f, 2, in, v, &t, NULL), AD_OK);
    double df = 0;
    for (int i = 0; i < 2; i++)
        df += 2 * wv[i] * sin(xv[i]) * ad_tensor_get(v[0], i) +
              wv[i] * wv[i] * cos(xv[i]) * ad_tensor_get(v[1], i);
    assert_close(df, ad_value(t), 1e-14, 0);

    ad_tensor *g[2];
    assert_int_equal(ad_vjp(1, &f, NULL, 2, in, g, NULL), AD_OK);
    for (int i = 0; i < 2; i++) {
        assert_close(2 * wv[i] * sin(xv[i]), ad_tensor_get(g[0], i), 1e-15, 0);
        assert_close(wv[i] * wv[i] * cos(xv[i]), ad_tensor_get(g[1], i), 1e-15, 0);
    }

    const ad_jacobian_mode modes[2] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD};
    for (int m = 0; m < 2; m++) {
        ad_tensor *jac[2], *hess[4];
        assert_int_equal(ad_jacobian(1, &o, 2, in, jac, modes[m], NULL), AD_OK);
        assert_exact(jac[0], 4, (double[]){xv[0], 0, 0, xv[1]});
        assert_exact(jac[1], 4, (double[]){wv[0], 0, 0, wv[1]});
        assert_int_equal(ad_hessian(f, 2, in, hess, modes[m], NULL), AD_OK);
        /* diag(2 sin x), diag(2 w cos x) twice, diag(-w^2 sin x) */
        const double *want[4] = {
            (double[]){2 * sin(xv[0]), 0, 0, 2 * sin(xv[1])},
            (double[]){2 * wv[0] * cos(xv[0]), 0, 0, 2 * wv[1] * cos(xv[1])},
            (double[]){2 * wv[0] * cos(xv[0]), 0, 0, 2 * wv[1] * cos(xv[1])},
            (double[]){-wv[0] * wv[0] * sin(xv[0]), 0, 0, -wv[1] * wv[1] * sin(xv[1])},
        };
        for (int k = 0; k < 4; k++)
            assert_values(hess[k], 4, want[k], 1e-14, 1e-15);
    }

    ad_tensor *hv[2];
    assert_int_equal(ad_hvp(f, 2, in, v, hv, NULL), AD_OK);
    for (int i = 0; i < 2; i++) {
        double vw = ad_tensor_get(v[0], i), vx = ad_tensor_get(v[1], i);
        assert_close(2 * sin(xv[i]) * vw + 2 * wv[i] * cos(xv[i]) * vx, ad_tensor_get(hv[0], i),
                     1e-14, 1e-15);
        assert_close(2 * wv[i] * cos(xv[i]) * vw - wv[i] * wv[i] * sin(xv[i]) * vx,
                     ad_tensor_get(hv[1], i), 1e-14, 1e-15);
    }
    /* Transforms never touch stored gradients. */
    assert_exact(ad_tensor_grad(w), 2, (double[]){0.0, 0.0});
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

/* ---- Custom ops ------------------------------------------------------------------------------ */

/* square_times: y = a^2 b; exp_times: y = exp(a) b, whose backward uses its output.
 * Neither has a jvp callback: forward mode is derived from the backward. */
static ad_status square_times_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_mul(ad_square(in[0]), in[1]);
    return ad_tape_status(ad_custom_tape(c));
}

// da = dy 2 a b, db = dy a^2
static ad_status square_times_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    ad_tensor *a = ad_custom_input(c, 0), *b = ad_custom_input(c, 1);
    gin[0] = ad_mul(g[0], ad_mul_scalar(ad_mul(a, b), 2.0));
    gin[1] = ad_mul(g[0], ad_square(a));
    return ad_tape_status(ad_custom_tape(c));
}

static ad_status exp_times_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_mul(ad_exp(in[0]), in[1]);
    return ad_tape_status(ad_custom_tape(c));
}

// da = dy y, db = dy exp(a)
static ad_status exp_times_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    gin[0] = ad_mul(g[0], ad_custom_output(c, 0));
    gin[1] = ad_mul(g[0], ad_exp(ad_custom_input(c, 0)));
    return ad_tape_status(ad_custom_tape(c));
}

static ad_custom_op *square_times_op, *exp_times_op;

static int ops_create(void **state)
{
    (void)state;
    ad_custom_op_def square_times = {.name = "square_times",
                                     .n_inputs = 2,
                                     .n_outputs = 1,
                                     .forward = square_times_forward,
                                     .backward = square_times_backward};
    ad_custom_op_def exp_times = {.name = "exp_times",
                                  .n_inputs = 2,
                                  .n_outputs = 1,
                                  .forward = exp_times_forward,
                                  .backward = exp_times_backward};
    if (ad_custom_op_create(&square_times_op, &square_times) != AD_OK ||
        ad_custom_op_create(&exp_times_op, &exp_times) != AD_OK)
        return -1;
    return 0;
}

static int ops_free(void **state)
{
    (void)state;
    ad_custom_op_free(square_times_op);
    ad_custom_op_free(exp_times_op);
    return 0;
}

/* (sin(square_times(a, b)), exp_times(a, b) a), through the ops or written with library ops. */
static void with_custom_ops(ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_sin(ad_custom(square_times_op, 2, in, NULL));
    out[1] = ad_mul(ad_custom(exp_times_op, 2, in, NULL), in[0]);
}

static void with_library_ops(ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_sin(ad_mul(ad_square(in[0]), in[1]));
    out[1] = ad_mul(ad_mul(ad_exp(in[0]), in[1]), in[0]);
}

static void test_transforms_through_custom_ops_equal_those_through_library_ops(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_leaf(tape, 3, A), vector_leaf(tape, 3, B)}, *y[2], *r[2];
    with_custom_ops(in, y);
    with_library_ops(in, r);
    for (int k = 0; k < 2; k++)
        assert_same_values(r[k], y[k], 1e-15);

    ad_tensor *v[2] = {vector_of(tape, 3, VA), vector_of(tape, 3, VB)}, *t[2], *tr[2];
    assert_int_equal(ad_jvp(2, y, 2, in, v, t, NULL), AD_OK);
    assert_int_equal(ad_jvp(2, r, 2, in, v, tr, NULL), AD_OK);
    for (int k = 0; k < 2; k++)
        assert_same_values(tr[k], t[k], 1e-14);

    const ad_jacobian_mode modes[2] = {AD_JACOBIAN_REVERSE, AD_JACOBIAN_FORWARD};
    for (int m = 0; m < 2; m++) {
        ad_tensor *jac[4], *jr[4];
        assert_int_equal(ad_jacobian(2, y, 2, in, jac, modes[m], NULL), AD_OK);
        assert_int_equal(ad_jacobian(2, r, 2, in, jr, modes[m], NULL), AD_OK);
        for (int k = 0; k < 4; k++)
            assert_same_values(jr[k], jac[k], 1e-14);
        assert_jacobian_matches_differences(with_custom_ops, 2, in, 2, y, jac);
    }

    /* Tangents with create_graph, differentiated again. */
    ad_backward_opts o = {.create_graph = true}, keep = {.retain_graph = true};
    assert_int_equal(ad_jvp(2, y, 2, in, v, t, &o), AD_OK);
    assert_int_equal(ad_jvp(2, r, 2, in, v, tr, &o), AD_OK);
    ad_tensor *st = ad_add(ad_sum_all(t[0]), ad_sum_all(t[1]));
    ad_tensor *str = ad_add(ad_sum_all(tr[0]), ad_sum_all(tr[1])), *g[2], *gr[2];
    assert_int_equal(ad_grad(1, &st, NULL, 2, in, g, &keep), AD_OK);
    assert_int_equal(ad_grad(1, &str, NULL, 2, in, gr, &keep), AD_OK);
    for (int k = 0; k < 2; k++)
        assert_same_values(gr[k], g[k], 1e-13);

    /* Second order: f = sum(y0 y1), through the ops' recorded backwards. */
    ad_tensor *f = ad_sum_all(ad_mul(y[0], y[1])), *fr = ad_sum_all(ad_mul(r[0], r[1]));
    for (int m = 0; m < 2; m++) {
        ad_tensor *hess[4], *hr[4];
        assert_int_equal(ad_hessian(f, 2, in, hess, modes[m], NULL), AD_OK);
        assert_int_equal(ad_hessian(fr, 2, in, hr, modes[m], NULL), AD_OK);
        for (int k = 0; k < 4; k++)
            assert_same_values(hr[k], hess[k], 1e-13);
    }
    ad_tensor *hv[2], *hvr[2];
    assert_int_equal(ad_hvp(f, 2, in, v, hv, NULL), AD_OK);
    assert_int_equal(ad_hvp(fr, 2, in, v, hvr, NULL), AD_OK);
    for (int k = 0; k < 2; k++)
        assert_same_values(hvr[k], hv[k], 1e-13);
}

/* ---- Errors ------------------------------------------------------------------------------------
 */

static void test_jvp_tangent_of_the_wrong_shape_is_a_shape_error_naming_both_shapes(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 3, A), *y = ad_exp(x), *t = x;
    ad_tensor *v = vector_of(tape, 2, (double[]){1.0, 1.0});
    assert_int_equal(ad_jvp(1, &y, 1, &x, &v, &t, NULL), AD_ERR_SHAPE);
    assert_null(t);
    assert_message_has(tape, "[2]");
    assert_message_has(tape, "[3]");
}

static void test_jvp_tangent_of_the_wrong_dtype_is_a_dtype_error_naming_both(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 3, A), *y = ad_exp(x), *t;
    int64_t n = 3;
    ad_tensor *v = tensor(tape, AD_F32, 1, &n, VA);
    assert_int_equal(ad_jvp(1, &y, 1, &x, &v, &t, NULL), AD_ERR_DTYPE);
    assert_message_has(tape, "float32");
    assert_message_has(tape, "float64");
}

static void test_hvp_vector_of_the_wrong_shape_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 3, A), *f = ad_sum_all(ad_exp(x)), *hv = x;
    ad_tensor *v = ad_full(tape, AD_F64, 2, (int64_t[]){3, 1}, 1.0);
    assert_int_equal(ad_hvp(f, 1, &x, &v, &hv, NULL), AD_ERR_SHAPE);
    assert_null(hv);
    assert_message_has(tape, "[3,1]");
    assert_message_has(tape, "[3]");
}

static void test_transforms_of_a_null_output_are_null_errors_that_leave_the_tape_alone(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 3, A), *y = NULL, *out = x, *jac = x, *hess = x;
    ad_tensor *v = vector_of(tape, 3, VA);
    assert_int_equal(ad_jvp(1, &y, 1, &x, &v, &out, NULL), AD_ERR_NULL);
    assert_null(out);
    out = x;
    assert_int_equal(ad_vjp(1, &y, NULL, 1, &x, &out, NULL), AD_ERR_NULL);
    assert_null(out);
    assert_int_equal(ad_jacobian(1, &y, 1, &x, &jac, AD_JACOBIAN_AUTO, NULL), AD_ERR_NULL);
    assert_null(jac);
    assert_int_equal(ad_hessian(NULL, 1, &x, &hess, AD_JACOBIAN_AUTO, NULL), AD_ERR_NULL);
    assert_null(hess);
    out = x;
    assert_int_equal(ad_hvp(NULL, 1, &x, &v, &out, NULL), AD_ERR_NULL);
    assert_null(out);
    /* An earlier error on the tape is what a NULL output means: nothing new is recorded. */
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_jacobian_of_a_null_input_is_a_null_error_naming_it(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 3, A), *y = ad_exp(x), *in[2] = {x, NULL}, *jac[2];
    assert_int_equal(ad_jacobian(1, &y, 2, in, jac, AD_JACOBIAN_AUTO, NULL), AD_ERR_NULL);
    assert_null(jac[0]);
    assert_null(jac[1]);
    assert_message_has(tape, "input 1");
}

static void test_hessian_and_hvp_of_a_non_scalar_are_shape_errors(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 3, A), *y = ad_exp(x), *hess = x, *hv = x;
    assert_int_equal(ad_hessian(y, 1, &x, &hess, AD_JACOBIAN_REVERSE, NULL), AD_ERR_SHAPE);
    assert_null(hess);
    assert_message_has(tape, "3 elements");
    ad_tape_clear_error(tape);
    ad_tensor *v = vector_of(tape, 3, VA);
    assert_int_equal(ad_hvp(y, 1, &x, &v, &hv, NULL), AD_ERR_SHAPE);
    assert_null(hv);
    assert_message_has(tape, "3 elements");
}

static void test_jacobian_with_an_unknown_mode_is_an_arg_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, 3, A), *y = ad_exp(x), *jac = x;
    assert_int_equal(ad_jacobian(1, &y, 1, &x, &jac, (ad_jacobian_mode)7, NULL), AD_ERR_ARG);
    assert_null(jac);
    assert_message_has(tape, "mode");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_jvp_of_two_inputs_and_two_outputs_equals_central_differences),
        TAPE_TEST(test_jvp_treats_null_tangents_as_zero),
        TAPE_TEST(test_jvp_with_create_graph_gives_tangents_that_can_be_differentiated),
        TAPE_TEST(test_vjp_equals_ad_grad_and_leaves_the_graph_usable),
        TAPE_TEST(test_jacobian_in_every_mode_matches_differences_hand_values_and_joined_shapes),
        TAPE_TEST(test_jacobian_with_more_than_255_rows_and_columns_works_in_both_modes),
        TAPE_TEST(test_jacobian_needing_more_than_max_dims_is_a_shape_error_naming_both_shapes),
        TAPE_TEST(test_jacobian_of_an_output_that_is_its_input_is_the_identity),
        TAPE_TEST(test_jacobian_and_jvp_of_an_output_that_needs_no_grad_are_zeros),
        TAPE_TEST(test_hessian_of_a_linear_function_is_exactly_zero_in_every_mode),
        TAPE_TEST(test_hessian_equals_the_hand_computed_hessian_and_is_symmetric_in_every_mode),
        TAPE_TEST(test_hvp_equals_the_hessian_times_v),
        TAPE_TEST(test_hvp_with_create_graph_gives_third_derivatives),
        TAPE_TEST(test_hessian_with_create_graph_gives_third_derivatives_in_both_modes),
        TAPE_TEST(test_transforms_work_through_a_persistent_input),
        TAPE_TEST(test_transforms_through_custom_ops_equal_those_through_library_ops),
        TAPE_TEST(test_jvp_tangent_of_the_wrong_shape_is_a_shape_error_naming_both_shapes),
        TAPE_TEST(test_jvp_tangent_of_the_wrong_dtype_is_a_dtype_error_naming_both),
        TAPE_TEST(test_hvp_vector_of_the_wrong_shape_is_a_shape_error),
        TAPE_TEST(test_transforms_of_a_null_output_are_null_errors_that_leave_the_tape_alone),
        TAPE_TEST(test_jacobian_of_a_null_input_is_a_null_error_naming_it),
        TAPE_TEST(test_hessian_and_hvp_of_a_non_scalar_are_shape_errors),
        TAPE_TEST(test_jacobian_with_an_unknown_mode_is_an_arg_error),
    };
    return cmocka_run_group_tests(tests, ops_create, ops_free);
}
