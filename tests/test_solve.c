/* Unit tests of factorizations and solves (src/ops/linalg_solve.c): values
 * and gradients against torch 1.13 (the references below were computed with
 * it in float64), float32 and batched shapes, the LAPACK path against the
 * plain kernels, and every failure mode's message. */
#include "test_util.h"

#include <math.h>
#include <string.h>

/* In the library: true runs the plain kernels even in a LAPACK build. */
extern bool ad__linalg_plain_only;

static const int64_t s33[2] = {3, 3}, s32[2] = {3, 2};
/* An SPD matrix and a nonsymmetric one with det -30. */
static const double spd[9] = {4, 2, -2, 2, 5, 1, -2, 1, 6};
static const double gen[9] = {2, 1, 0, 1, -3, 1, 0, 1, 4};
static const double rhs[6] = {1, 2, 3, 4, 5, 6};

/* Runs f under both paths (LAPACK when built with it, then plain). */
typedef void (*both_fn)(ad_tape *tape, ad_dtype dtype);

static void on_both_paths(ad_tape *tape, both_fn f)
{
    for (int plain = 0; plain < 2; plain++) {
        ad__linalg_plain_only = plain != 0;
        f(tape, AD_F64);
        f(tape, AD_F32);
    }
    ad__linalg_plain_only = false;
}

static double tol(ad_dtype dtype)
{
    return dtype == AD_F32 ? 1e-5 : 1e-12;
}

/* ---- values and gradients against torch ----------------------------------------------------- */

static void cholesky_case(ad_tape *tape, ad_dtype dt)
{
    ad_tensor *a = leaf(tape, dt, 2, s33, spd);
    ad_tensor *l = ad_cholesky(a);
    const double want[9] = {2, 0, 0, 1, 2, 0, -1, 1, 2};
    assert_values(l, 9, want, tol(dt), tol(dt));
    const double grad[9] = {0.296875, 0.21875, 0.3125, 0.21875, 0.1875, 0.125, 0.3125, 0.125, 0.25};
    assert_values(grad_of_sum(l, a), 9, grad, tol(dt), tol(dt));
}

static void test_cholesky_matches_torch_on_both_paths(void **state)
{
    on_both_paths(*state, cholesky_case);
}

static void solves_case(ad_tape *tape, ad_dtype dt)
{
    ad_tensor *m = tensor(tape, dt, 2, s33, gen), *b = tensor(tape, dt, 2, s32, rhs);
    const double x[6] = {2.0 / 3, 1.2, -1.0 / 3, -0.4, 4.0 / 3, 1.6};
    assert_values(ad_solve(m, b), 6, x, tol(dt), tol(dt));
    ad_tensor *a = tensor(tape, dt, 2, s33, spd);
    const double up[6] = {0.45, 0.7, 13.0 / 30, 0.6, 5.0 / 6, 1};
    assert_values(ad_solve_triangular(a, b, true, true, false), 6, up, tol(dt), tol(dt));
    const double unit[6] = {1, 2, 1, 0, 6, 10};
    assert_values(ad_solve_triangular(a, b, false, true, true), 6, unit, tol(dt), tol(dt));
    const double inv[9] = {13.0 / 30, 2.0 / 15,  -1.0 / 30, 2.0 / 15, -4.0 / 15,
                           1.0 / 15,  -1.0 / 30, 1.0 / 15,  7.0 / 30};
    assert_values(ad_inv(m), 9, inv, tol(dt), tol(dt));
}

static void test_solve_triangular_and_inv_match_torch_on_both_paths(void **state)
{
    on_both_paths(*state, solves_case);
}

static void det_case(ad_tape *tape, ad_dtype dt)
{
    ad_tensor *m = leaf(tape, dt, 2, s33, gen), *sign = NULL;
    ad_tensor *d = ad_det(m);
    assert_close(-30, ad_value(d), tol(dt), 0);
    const double grad[9] = {-13, -4, 1, -4, 8, -2, 1, -2, -7};
    assert_values(grad_of_sum(d, m), 9, grad, tol(dt), tol(dt));
    assert_close(3.40119738166215546, ad_value(ad_slogdet(m, &sign)), tol(dt), 0);
    assert_close(-1, ad_value(sign), 0, 0);
    assert_true(isnan(ad_value(ad_logdet(m))));
}

static void test_det_slogdet_and_logdet_match_torch_on_both_paths(void **state)
{
    on_both_paths(*state, det_case);
}

static void eigh_case(ad_tape *tape, ad_dtype dt)
{
    ad_tensor *a = leaf(tape, dt, 2, s33, spd), *v = NULL;
    ad_tensor *w = ad_eigh(a, &v);
    const double want[3] = {1.388141290195955, 6.341324689288879, 7.270534020515166};
    assert_values(w, 3, want, tol(dt), tol(dt));
    /* torch's V, up to each column's sign */
    const double tv[9] = {0.7330614168113073,  -0.3432178482677727, 0.5872158613432024,
                          -0.5254821123705977, -0.8339375805237147, 0.1685724217325809,
                          0.43184431078935537, -0.432145369546745,  -0.7916823042219485};
    for (int c = 0; c < 3; c++) {
        double s = ad_tensor_get(v, c) * tv[c] < 0 ? -1 : 1;
        for (int r = 0; r < 3; r++)
            assert_close(tv[r * 3 + c], s * ad_tensor_get(v, r * 3 + c), 0, 1e3 * tol(dt));
    }
    const double grad[9] = {0.34482246781303905, 0.09898839982640707,  -0.4648884061838627,
                            0.09898839982640707, 0.028416661368787118, -0.13345580326552373,
                            -0.4648884061838627, -0.13345580326552373, 0.6267608708181739};
    ad_tensor *top = ad_slice(w, 0, 2, 3, 1);
    assert_values(grad_of_sum(top, a), 9, grad, 1e3 * tol(dt), 1e3 * tol(dt));
}

static void test_eigh_matches_torch_on_both_paths(void **state)
{
    on_both_paths(*state, eigh_case);
}

static void test_matrix_norms_match_torch(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *m = tensor(tape, AD_F64, 2, s33, gen);
    const struct {
        ad_matrix_norm_ord ord;
        double value;
    } refs[] = {{AD_NORM_FRO, 5.744562646538029},
                {AD_NORM_NUC, 9.648694762142147},
                {AD_NORM_1, 5},
                {AD_NORM_NEG_1, 3},
                {AD_NORM_INF, 5},
                {AD_NORM_NEG_INF, 3},
                {AD_NORM_2, 4.149602065592591},
                {AD_NORM_NEG_2, 2.1747453154784835}};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        assert_close(refs[i].value, ad_value(ad_matrix_norm(m, refs[i].ord)), 1e-12, 0);
}

/* A wide matrix: the singular values come from A A^T (2x2), so the nuclear,
 * 2 and -2 norms and their gradients equal torch's (A^T A would add a zero
 * eigenvalue, whose square root has no derivative). */
static void test_singular_value_norms_of_a_wide_matrix_match_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    const double a[6] = {1, 2, 3, -1, 0.5, 2};
    const struct {
        ad_matrix_norm_ord ord;
        double value, grad[6];
    } refs[] = {{AD_NORM_NUC,
                 5.612258788929453,
                 {0.5055214689464753, 0.5745894821800822, 0.6436574954136887, -0.7601193181123154,
                  -0.05639379665671112, 0.6473317247988936}},
                {AD_NORM_2,
                 4.129246101910078,
                 {0.0945892552724962, 0.43377749734388255, 0.7729657394152688,
                  0.04809348702685639, 0.22055224328546197, 0.3930109995440675}},
                {AD_NORM_NEG_2,
                 1.483012687019375,
                 {0.41093221367397914, 0.14081198483619964, -0.12930824400158009,
                  -0.8082128051391718, -0.2769460399421731, 0.2543207252548261}}};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        ad_tensor *m = leaf(tape, AD_F64, 2, s23, a);
        ad_tensor *n = ad_matrix_norm(m, refs[i].ord);
        assert_close(refs[i].value, ad_value(n), 1e-13, 0);
        assert_values(grad_of_sum(n, m), 6, refs[i].grad, 1e-11, 1e-12);
    }
}

/* torch.linalg.matrix_norm of a zero matrix has gradient 0 (not NaN) for these ords. */
static void test_matrix_norm_gradients_at_zero_are_zero_as_torch(void **state)
{
    ad_tape *tape = *state;
    const double zeros[6] = {0};
    const int64_t s23[2] = {2, 3};
    const ad_matrix_norm_ord ords[] = {AD_NORM_FRO, AD_NORM_1, AD_NORM_NEG_1, AD_NORM_INF,
                                       AD_NORM_NEG_INF};
    for (size_t i = 0; i < sizeof ords / sizeof ords[0]; i++) {
        ad_tensor *a = leaf(tape, AD_F64, 2, s23, zeros);
        ad_tensor *n = ad_matrix_norm(a, ords[i]);
        assert_close(0, ad_value(n), 0, 0);
        assert_values(grad_of_sum(n, a), 6, zeros, 0, 0);
    }
}

/* ---- batches and special values ------------------------------------------------------------- */

static void test_batched_solve_broadcasts_and_matches_each_matrix(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[3] = {2, 3, 3}, sb[2] = {3, 2}, sy[3] = {2, 3, 2};
    double a[18];
    memcpy(a, gen, sizeof gen);
    memcpy(a + 9, spd, sizeof spd);
    ad_tensor *x = ad_solve(tensor(tape, AD_F64, 3, sa, a), tensor(tape, AD_F64, 2, sb, rhs));
    assert_shape(x, 3, sy);
    ad_tensor *x0 = ad_solve(tensor(tape, AD_F64, 2, s33, gen), tensor(tape, AD_F64, 2, s32, rhs));
    ad_tensor *x1 = ad_solve(tensor(tape, AD_F64, 2, s33, spd), tensor(tape, AD_F64, 2, s32, rhs));
    for (int i = 0; i < 6; i++) {
        assert_close(ad_tensor_get(x0, i), ad_tensor_get(x, i), 1e-14, 1e-15);
        assert_close(ad_tensor_get(x1, i), ad_tensor_get(x, 6 + i), 1e-14, 1e-15);
    }
}

static void test_det_of_a_singular_matrix_is_zero_with_zero_gradient_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 2};
    const double m[4] = {1, 2, 2, 4};
    ad_tensor *a = leaf(tape, AD_F64, 2, s, m), *sign = NULL;
    ad_tensor *d = ad_det(a);
    assert_close(0, ad_value(d), 0, 0);
    const double zero[4] = {0, 0, 0, 0};
    assert_values(grad_of_sum(d, a), 4, zero, 0, 0);
    assert_true(isinf(ad_value(ad_slogdet(a, &sign))));
    assert_close(0, ad_value(sign), 0, 0);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_cholesky_of_a_matrix_not_positive_definite_names_the_batch_element(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 2, 2};
    const double m[8] = {1, 0, 0, 1, 1, 2, 2, 1};
    assert_null(ad_cholesky(tensor(tape, AD_F64, 3, s, m)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "cholesky: batch element 1 of A [2,2,2] is not positive definite");
}

static void test_solve_of_a_singular_matrix_is_an_error_naming_it(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 2};
    const double m[4] = {1, 2, 2, 4};
    assert_null(ad_inv(tensor(tape, AD_F64, 2, s, m)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "solve: batch element 0 of A [2,2] is singular");
}

static void test_a_non_square_matrix_is_a_shape_error_naming_the_op(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = tensor(tape, AD_F64, 2, s32, rhs);
    assert_null(ad_det(x));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "slogdet: shape [3,2] is not a square matrix");
    ad_tape_clear_error(tape);
    assert_null(ad_eigvalsh(x));
    assert_message_has(tape, "eigh: shape [3,2] is not a square matrix");
    ad_tape_clear_error(tape);
    assert_null(ad_cholesky(x));
    assert_message_has(tape, "cholesky: shape [3,2]");
}

static void test_solve_with_mismatched_shapes_names_both(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[3] = {2, 3, 3}, sb[3] = {3, 3, 1}, sc[2] = {2, 2};
    double z[18] = {0};
    ad_tensor *a = tensor(tape, AD_F64, 3, sa, z);
    assert_null(ad_solve(a, tensor(tape, AD_F64, 3, sb, z)));
    assert_message_has(tape,
                       "solve: the batch dims of shapes [2,3,3] and [3,3,1] do not broadcast");
    ad_tape_clear_error(tape);
    assert_null(ad_solve_triangular(a, tensor(tape, AD_F64, 2, sc, z), false, true, false));
    assert_message_has(tape, "solve_triangular: shapes [2,3,3] and [2,2]: B needs 3 rows");
}

static void test_integer_matrices_are_a_dtype_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_full(tape, AD_I64, 2, s33, 1);
    assert_null(ad_inv(x));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_message_has(tape, "inv: takes float32 or float64 tensors, not int64 [3,3]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_cholesky_matches_torch_on_both_paths),
        TAPE_TEST(test_solve_triangular_and_inv_match_torch_on_both_paths),
        TAPE_TEST(test_det_slogdet_and_logdet_match_torch_on_both_paths),
        TAPE_TEST(test_eigh_matches_torch_on_both_paths),
        TAPE_TEST(test_matrix_norms_match_torch),
        TAPE_TEST(test_matrix_norm_gradients_at_zero_are_zero_as_torch),
        TAPE_TEST(test_singular_value_norms_of_a_wide_matrix_match_torch),
        TAPE_TEST(test_batched_solve_broadcasts_and_matches_each_matrix),
        TAPE_TEST(test_det_of_a_singular_matrix_is_zero_with_zero_gradient_as_torch),
        TAPE_TEST(test_cholesky_of_a_matrix_not_positive_definite_names_the_batch_element),
        TAPE_TEST(test_solve_of_a_singular_matrix_is_an_error_naming_it),
        TAPE_TEST(test_a_non_square_matrix_is_a_shape_error_naming_the_op),
        TAPE_TEST(test_solve_with_mismatched_shapes_names_both),
        TAPE_TEST(test_integer_matrices_are_a_dtype_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
