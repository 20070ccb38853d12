/* Unit tests of linear algebra (src/ops/linalg.c): matmul's values and
 * result shapes under torch.matmul's rules, the transpose flags, the BLAS
 * path against our reference kernel, gradients at hand-computed points,
 * permute and transpose, and every failure mode's message. */
#include "test_util.h"

#include <string.h>

#include "../src/ops/ops.h" /* ad__gemm, ad__gemm_reference */

/* ---- Helpers -------------------------------------------------------------------------------- */

/* 0, 1, 2, ... scaled and shifted: distinct values that are easy to follow. */
static ad_tensor *ramp(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape, double scale,
                       double shift)
{
    ad_tensor *t = ad_tape_tensor(tape, dtype, ndim, shape, NULL);
    assert_non_null(t);
    double values[512];
    assert_true(ad_tensor_numel(t) <= 512);
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        values[i] = (double)i * scale + shift;
    return leaf(tape, dtype, ndim, shape, values);
}

/* Element [i][j] of op(x) for a 2-D x, op a transpose when t is set. */
static double at(const ad_tensor *x, bool t, int64_t i, int64_t j)
{
    int64_t cols = ad_tensor_shape(x)[1];
    return t ? ad_tensor_get(x, j * cols + i) : ad_tensor_get(x, i * cols + j);
}

/* ---- matmul: values and shapes ------------------------------------------------------------- */

static void test_matmul_of_two_matrices_matches_hand_values(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[2] = {2, 3}, sb[2] = {3, 2}, sy[2] = {2, 2};
    const double a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
    /* [1 2 3; 4 5 6] [7 8; 9 10; 11 12] */
    const double y[4] = {58, 64, 139, 154};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *r =
            ad_matmul(tensor(tape, (ad_dtype)dt, 2, sa, a), tensor(tape, (ad_dtype)dt, 2, sb, b));
        assert_shape(r, 2, sy);
        assert_int_equal(ad_tensor_dtype(r), dt);
        assert_values(r, 4, y, 0, 0);
    }
}

static void test_matmul_of_two_vectors_is_a_0d_dot_product(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {3};
    const double a[3] = {1, 2, 3}, b[3] = {4, -5, 6};
    ad_tensor *r = ad_matmul(tensor(tape, AD_F64, 1, s, a), tensor(tape, AD_F64, 1, s, b));
    assert_non_null(r);
    assert_int_equal(ad_tensor_ndim(r), 0);
    assert_close(12, ad_value(r), 0, 0);
}

static void test_matmul_of_a_vector_and_a_matrix_drops_the_row_dim(void **state)
{
    ad_tape *tape = *state;
    const int64_t sv[1] = {3}, sm[2] = {3, 2}, sy[1] = {2};
    const double v[3] = {1, 2, 3}, m[6] = {1, 2, 3, 4, 5, 6};
    ad_tensor *r = ad_matmul(tensor(tape, AD_F64, 1, sv, v), tensor(tape, AD_F64, 2, sm, m));
    assert_shape(r, 1, sy);
    const double y[2] = {22, 28};
    assert_values(r, 2, y, 0, 0);
}

static void test_matmul_of_a_matrix_and_a_vector_drops_the_column_dim(void **state)
{
    ad_tape *tape = *state;
    const int64_t sm[2] = {2, 3}, sv[1] = {3}, sy[1] = {2};
    const double m[6] = {1, 2, 3, 4, 5, 6}, v[3] = {1, 0, -1};
    ad_tensor *r = ad_matmul(tensor(tape, AD_F64, 2, sm, m), tensor(tape, AD_F64, 1, sv, v));
    assert_shape(r, 1, sy);
    const double y[2] = {-2, -2};
    assert_values(r, 2, y, 0, 0);
}

static void test_matmul_of_vectors_and_batches_drops_the_vector_dim(void **state)
{
    ad_tape *tape = *state;
    const int64_t sv[1] = {3}, sb[3] = {2, 3, 4}, sc[3] = {2, 2, 3};
    ad_tensor *v = ramp(tape, AD_F64, 1, sv, 1, 1); /* 1 2 3 */
    ad_tensor *r = ad_matmul(v, ramp(tape, AD_F64, 3, sb, 1, 0));
    const int64_t s1[2] = {2, 4};
    assert_shape(r, 2, s1);
    /* batch 0 column 0: 1*0 + 2*4 + 3*8; batch 1 column 3: 1*15 + 2*19 + 3*23 */
    assert_close(32, ad_tensor_get(r, 0), 0, 0);
    assert_close(122, ad_tensor_get(r, 7), 0, 0);
    ad_tensor *q = ad_matmul(ramp(tape, AD_F64, 3, sc, 1, 0), v);
    const int64_t s2[2] = {2, 2};
    assert_shape(q, 2, s2);
    /* row [9 10 11] . [1 2 3] */
    assert_close(62, ad_tensor_get(q, 3), 0, 0);
}

/* y[batch] = a[batch] b[batch] checked element by element against sums. */
static void check_batched(ad_tensor *a, ad_tensor *b, ad_tensor *y, int64_t batches,
                          const int64_t *a_batch_of, const int64_t *b_batch_of)
{
    int na = ad_tensor_ndim(a), nb = ad_tensor_ndim(b), ny = ad_tensor_ndim(y);
    int64_t m = ad_tensor_shape(a)[na - 2], k = ad_tensor_shape(a)[na - 1];
    int64_t n = ad_tensor_shape(b)[nb - 1];
    assert_int_equal(ad_tensor_shape(y)[ny - 2], m);
    assert_int_equal(ad_tensor_shape(y)[ny - 1], n);
    for (int64_t t = 0; t < batches; t++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += ad_tensor_get(a, (a_batch_of[t] * m + i) * k + p) *
                         ad_tensor_get(b, (b_batch_of[t] * k + p) * n + j);
                assert_close(s, ad_tensor_get(y, (t * m + i) * n + j), 1e-12, 1e-12);
            }
}

static void test_matmul_broadcasts_batch_dims(void **state)
{
    ad_tape *tape = *state;
    /* [2,1,3,4] . [3,4,2] -> [2,3,3,2]: batch (i, j) uses a[i] and b[j] */
    const int64_t sa[4] = {2, 1, 3, 4}, sb[3] = {3, 4, 2}, sy[4] = {2, 3, 3, 2};
    ad_tensor *a = ramp(tape, AD_F64, 4, sa, 0.5, -3), *b = ramp(tape, AD_F64, 3, sb, -0.25, 2);
    ad_tensor *y = ad_matmul(a, b);
    assert_shape(y, 4, sy);
    const int64_t a_of[6] = {0, 0, 0, 1, 1, 1}, b_of[6] = {0, 1, 2, 0, 1, 2};
    check_batched(a, b, y, 6, a_of, b_of);

    /* [3,4] . [2,4,5] -> [2,3,5]: the matrix meets every batch */
    const int64_t sc[2] = {3, 4}, sd[3] = {2, 4, 5}, sz[3] = {2, 3, 5};
    ad_tensor *c = ramp(tape, AD_F64, 2, sc, 1, -5), *d = ramp(tape, AD_F64, 3, sd, 0.5, 0);
    ad_tensor *z = ad_matmul(c, d);
    assert_shape(z, 3, sz);
    const int64_t c_of[2] = {0, 0}, d_of[2] = {0, 1};
    check_batched(c, d, z, 2, c_of, d_of);

    /* [2,3,4] . [4,5] -> [2,3,5]: one folded GEMM */
    const int64_t se[3] = {2, 3, 4}, sf[2] = {4, 5};
    ad_tensor *e = ramp(tape, AD_F64, 3, se, 1, -5), *f = ramp(tape, AD_F64, 2, sf, 0.5, 0);
    ad_tensor *w = ad_matmul(e, f);
    assert_shape(w, 3, sz);
    const int64_t e_of[2] = {0, 1}, f_of[2] = {0, 0};
    check_batched(e, f, w, 2, e_of, f_of);
}

static void test_matmul_t_flags_match_explicit_transposes(void **state)
{
    ad_tape *tape = *state;
    const int64_t m = 2, k = 3, n = 4;
    for (int flags = 0; flags < 4; flags++) {
        bool ta = flags & 1, tb = flags & 2;
        const int64_t sa[2] = {ta ? k : m, ta ? m : k}, sb[2] = {tb ? n : k, tb ? k : n};
        ad_tensor *a = ramp(tape, AD_F64, 2, sa, 0.5, -1), *b = ramp(tape, AD_F64, 2, sb, -1, 3);
        ad_tensor *y = ad_matmul_t(a, b, ta, tb);
        const int64_t sy[2] = {m, n};
        assert_shape(y, 2, sy);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += at(a, ta, i, p) * at(b, tb, p, j);
                assert_close(s, ad_tensor_get(y, i * n + j), 1e-12, 1e-12);
            }
        ad_tensor *explicit_form =
            ad_matmul(ta ? ad_transpose(a, 0, 1) : a, tb ? ad_transpose(b, 0, 1) : b);
        for (int64_t i = 0; i < m * n; i++)
            assert_close(ad_tensor_get(explicit_form, i), ad_tensor_get(y, i), 1e-12, 0);
    }
}

static void test_matmul_of_float32_matches_float64(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[3] = {2, 5, 7}, sb[2] = {7, 3};
    ad_tensor *y32 =
        ad_matmul(ramp(tape, AD_F32, 3, sa, 0.1, -3), ramp(tape, AD_F32, 2, sb, -0.2, 2));
    ad_tensor *y64 =
        ad_matmul(ramp(tape, AD_F64, 3, sa, 0.1, -3), ramp(tape, AD_F64, 2, sb, -0.2, 2));
    assert_non_null(y32);
    assert_int_equal(ad_tensor_dtype(y32), AD_F32);
    assert_int_equal(ad_tensor_numel(y32), 30);
    for (int64_t i = 0; i < 30; i++)
        assert_close(ad_tensor_get(y64, i), ad_tensor_get(y32, i), 1e-5, 1e-5);
}

static void test_matmul_with_zero_size_dims_gives_zeros_of_the_right_shape(void **state)
{
    ad_tape *tape = *state;
    /* k = 0: a sum of nothing, zeros */
    const int64_t sa[2] = {2, 0}, sb[2] = {0, 3}, sy[2] = {2, 3};
    ad_tensor *a = leaf(tape, AD_F64, 2, sa, NULL), *b = leaf(tape, AD_F64, 2, sb, NULL);
    ad_tensor *y = ad_matmul(a, b);
    assert_shape(y, 2, sy);
    for (int64_t i = 0; i < 6; i++)
        assert_true(ad_tensor_get(y, i) == 0);
    ad_tensor *in[2] = {a, b}, *g[2];
    grads_of_sum(y, 2, in, g);
    assert_shape(g[0], 2, sa);
    assert_shape(g[1], 2, sb);

    /* m = 0 and a zero-size batch */
    const int64_t sc[3] = {0, 0, 4}, sd[2] = {4, 5}, sz[3] = {0, 0, 5};
    ad_tensor *c = leaf(tape, AD_F64, 3, sc, NULL), *d = ramp(tape, AD_F64, 2, sd, 1, 0);
    ad_tensor *z = ad_matmul(c, d);
    assert_shape(z, 3, sz);
    ad_tensor *in2[2] = {c, d}, *g2[2];
    grads_of_sum(z, 2, in2, g2);
    assert_shape(g2[0], 3, sc);
    assert_shape(g2[1], 2, sd);
    for (int64_t i = 0; i < 20; i++)
        assert_true(ad_tensor_get(g2[1], i) == 0);
}

/* ---- matmul: gradients ----------------------------------------------------------------------- */

static void test_matmul_gradients_match_hand_values(void **state)
{
    ad_tape *tape = *state;
    /* L = sum(a b): dL/da = 1 b^T (row sums of b), dL/db = a^T 1 (column sums of a) */
    const int64_t sa[2] = {2, 3}, sb[2] = {3, 2};
    const double av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {1, -1, 2, 0, 0.5, 3};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *a = leaf(tape, (ad_dtype)dt, 2, sa, av),
                  *b = leaf(tape, (ad_dtype)dt, 2, sb, bv);
        ad_tensor *in[2] = {a, b}, *g[2];
        grads_of_sum(ad_matmul(a, b), 2, in, g);
        const double ga[6] = {0, 2, 3.5, 0, 2, 3.5}, gb[6] = {5, 5, 7, 7, 9, 9};
        assert_values(g[0], 6, ga, 1e-6, 0);
        assert_values(g[1], 6, gb, 1e-6, 0);
    }
}

static void test_matmul_gradient_of_a_broadcast_matrix_sums_over_the_batch(void **state)
{
    ad_tape *tape = *state;
    /* y = a b with a [2,2] and b [3,2,1]: dL/da = sum over batches of 1 b_t^T */
    const int64_t sa[2] = {2, 2}, sb[3] = {3, 2, 1};
    const double av[4] = {1, 2, 3, 4}, bv[6] = {1, 2, 3, 4, 5, 6};
    ad_tensor *a = leaf(tape, AD_F64, 2, sa, av), *b = leaf(tape, AD_F64, 3, sb, bv);
    ad_tensor *in[2] = {a, b}, *g[2];
    grads_of_sum(ad_matmul(a, b), 2, in, g);
    const double ga[4] = {9, 12, 9, 12}, gb[6] = {4, 6, 4, 6, 4, 6};
    assert_shape(g[0], 2, sa);
    assert_values(g[0], 4, ga, 0, 1e-12);
    assert_values(g[1], 6, gb, 0, 1e-12);
}

static void test_matmul_gradient_of_a_dot_product_is_the_other_vector(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {3};
    const double av[3] = {1, 2, 3}, bv[3] = {-1, 0.5, 4};
    ad_tensor *a = leaf(tape, AD_F64, 1, s, av), *b = leaf(tape, AD_F64, 1, s, bv);
    ad_tensor *y = ad_matmul(a, b);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_values(ad_tensor_grad(a), 3, bv, 0, 0);
    assert_values(ad_tensor_grad(b), 3, av, 0, 0);
}

static void test_matmul_of_a_persistent_weight_accumulates_its_gradient(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *w = NULL, *v = NULL;
    const int64_t sw[2] = {3, 2}, sv[1] = {3};
    assert_int_equal(ad_tensor_create(&w, AD_F64, 2, sw, true), AD_OK);
    assert_int_equal(ad_tensor_create(&v, AD_F64, 1, sv, true), AD_OK);
    const double wv[6] = {1, 2, 3, 4, 5, 6}, vv[3] = {1, 1, 1};
    assert_int_equal(ad_tensor_copy_from_doubles(w, wv), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(v, vv), AD_OK);
    const int64_t sx[2] = {1, 3};
    const double xv[3] = {1, 0, 2};
    ad_tensor *x = tensor(tape, AD_F64, 2, sx, xv), *m = tensor(tape, AD_F64, 2, sw, wv);
    /* a persistent matrix on the right, and a persistent vector through the 1-D rule */
    ad_tensor *y = ad_add(ad_sum_all(ad_matmul(x, w)), ad_sum_all(ad_matmul(v, m)));
    assert_non_null(y);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    /* d/dw = x^T 1: rows (1, 1), (0, 0), (2, 2); d/dv = the row sums of m */
    const double gw[6] = {1, 1, 0, 0, 2, 2}, gv[3] = {3, 7, 11};
    assert_values(ad_tensor_grad(w), 6, gw, 0, 1e-12);
    assert_values(ad_tensor_grad(v), 3, gv, 0, 1e-12);
    ad_tape_reset(tape);
    ad_tensor_free(w);
    ad_tensor_free(v);
}

/* ---- BLAS against the reference kernel ----------------------------------------------------- */

/* Fills n elements of a tape buffer of dtype with values in [-1, 1). */
static void *random_buffer(ad_tape *tape, ad_dtype dtype, int64_t n, uint64_t *rng)
{
    int64_t shape[1] = {n};
    ad_tensor *t = ad_tape_tensor(tape, dtype, 1, shape, NULL);
    assert_non_null(t);
    void *d = ad_tensor_data(t);
    for (int64_t i = 0; i < n; i++) {
        double v = test_uniform(rng, -1, 1);
        if (dtype == AD_F32)
            ((float *)d)[i] = (float)v;
        else
            ((double *)d)[i] = v;
    }
    return d;
}

static double element(ad_dtype dtype, const void *p, int64_t i)
{
    return dtype == AD_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static void test_blas_gemm_matches_the_reference_kernel_and_a_naive_sum(void **state)
{
    ad_tape *tape = *state;
    /* Sizes around and across the kernel's tiles (64, 128), odd ones, ones. */
    static const int64_t sizes[][3] = {{1, 1, 1},     {3, 5, 7},   {17, 33, 9},  {64, 128, 64},
                                       {70, 130, 65}, {1, 200, 3}, {129, 2, 150}};
    uint64_t rng = 42;
    for (int dt = 0; dt < 2; dt++) {
        ad_dtype dtype = (ad_dtype)dt;
        double tol = dtype == AD_F32 ? 1e-4 : 1e-12;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int64_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
            for (int flags = 0; flags < 4; flags++) {
                bool ta = flags & 1, tb = flags & 2;
                /* Leading dims wider than the matrices: both kernels must honour them. */
                int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
                const void *a = random_buffer(tape, dtype, (ta ? k : m) * lda, &rng);
                const void *b = random_buffer(tape, dtype, (tb ? n : k) * ldb, &rng);
                void *c_fast = random_buffer(tape, dtype, m * ldc, &rng);
                void *c_ref = random_buffer(tape, dtype, m * ldc, &rng);
                /* accumulate: C += op(A) op(B), from the same starting C */
                size_t c_bytes = (size_t)(m * ldc) * (dtype == AD_F32 ? 4 : 8);
                void *c0 = random_buffer(tape, dtype, m * ldc, &rng);
                void *acc_fast = random_buffer(tape, dtype, m * ldc, &rng);
                void *acc_ref = random_buffer(tape, dtype, m * ldc, &rng);
                memcpy(acc_fast, c0, c_bytes);
                memcpy(acc_ref, c0, c_bytes);
                ad__gemm(dtype, ta, tb, m, n, k, a, lda, b, ldb, c_fast, ldc);
                ad__gemm_reference(dtype, ta, tb, m, n, k, a, lda, b, ldb, c_ref, ldc, false);
                ad__gemm_accumulate(dtype, ta, tb, m, n, k, a, lda, b, ldb, acc_fast, ldc);
                ad__gemm_reference(dtype, ta, tb, m, n, k, a, lda, b, ldb, acc_ref, ldc, true);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double sum = 0, mag = 0;
                        for (int64_t p = 0; p < k; p++) {
                            double x = element(dtype, a, ta ? p * lda + i : i * lda + p);
                            double y = element(dtype, b, tb ? j * ldb + p : p * ldb + j);
                            sum += x * y;
                            mag += fabs(x * y);
                        }
                        /* Rounding grows with the sum of magnitudes, not the sum. */
                        assert_close(sum, element(dtype, c_ref, i * ldc + j), 0, tol * (1 + mag));
                        assert_close(element(dtype, c_ref, i * ldc + j),
                                     element(dtype, c_fast, i * ldc + j), 0, tol * (1 + mag));
                        double start = element(dtype, c0, i * ldc + j);
                        assert_close(start + sum, element(dtype, acc_ref, i * ldc + j), 0,
                                     tol * (1 + mag + fabs(start)));
                        assert_close(start + sum, element(dtype, acc_fast, i * ldc + j), 0,
                                     tol * (1 + mag + fabs(start)));
                    }
            }
            ad_tape_reset(tape);
        }
    }
}

/* ad_backward adds a persistent weight's matmul gradient straight into its
 * grad buffer (one GEMM with beta = 1). For every layout that path takes
 * (b transposed or not, a 2-D or batched) and the ones it does not (a
 * transposed, create_graph), the buffer must end as its earlier content plus
 * the gradient ad_grad computes the ordinary way. */
static void weight_gradient_case(ad_dtype dtype, int a_ndim, bool ta, bool tb, bool create_graph)
{
    enum { M = 5, K = 7, N = 3 };
    uint64_t rng = 7;
    double av[2 * M * K], wv[N * K], rv[2 * M * N], g0[N * K];
    for (int i = 0; i < 2 * M * K; i++)
        av[i] = (double)(rng = rng * 6364136223846793005u + 1) / 18446744073709551616.0 - 0.5;
    for (int i = 0; i < N * K; i++) {
        wv[i] = (double)(rng = rng * 6364136223846793005u + 1) / 18446744073709551616.0 - 0.5;
        g0[i] = 0.25 * i - 1;
    }
    for (int i = 0; i < 2 * M * N; i++)
        rv[i] = (double)(rng = rng * 6364136223846793005u + 1) / 18446744073709551616.0 - 0.5;
    int64_t w_shape[2] = {tb ? N : K, tb ? K : N};
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, dtype, 2, w_shape, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(w, wv), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(ad_tensor_grad(w), g0), AD_OK);
    double expected[N * K], got[N * K];
    for (int pass = 0; pass < 2; pass++) { /* 0: ad_grad, 1: ad_backward */
        ad_tape *tape = test_tape();
        int64_t a_shape[3] = {2, ta ? K : M, ta ? M : K}, y_shape[3] = {2, M, N};
        ad_tensor *a = tensor(tape, dtype, a_ndim, a_shape + (3 - a_ndim), av);
        ad_tensor *r = tensor(tape, dtype, a_ndim, y_shape + (3 - a_ndim), rv);
        ad_tensor *y = ad_matmul_t(a, ad_tape_use(tape, w), ta, tb);
        ad_tensor *loss = ad_sum_all(ad_mul(y, r));
        if (pass == 0) {
            ad_tensor *g = NULL, *wt = w;
            assert_int_equal(ad_grad(1, &loss, NULL, 1, &wt, &g, NULL), AD_OK);
            assert_int_equal(ad_tensor_copy_to_doubles(g, expected), AD_OK);
            for (int i = 0; i < N * K; i++)
                expected[i] += g0[i];
        } else {
            ad_backward_opts opts = {.create_graph = create_graph};
            assert_int_equal(ad_backward(loss, &opts), AD_OK);
            assert_int_equal(ad_tensor_copy_to_doubles(ad_tensor_grad(w), got), AD_OK);
        }
        ad_tape_free(tape);
    }
    double tol = dtype == AD_F32 ? 1e-5 : 1e-13;
    for (int i = 0; i < N * K; i++)
        assert_close(expected[i], got[i], 0, tol);
    ad_tensor_free(w);
}

static void test_weight_gradients_added_in_place_match_the_ordinary_path(void **state)
{
    (void)state;
    for (int dt = 0; dt < 2; dt++)
        for (int a_ndim = 2; a_ndim <= 3; a_ndim++)
            for (int flags = 0; flags < 8; flags++)
                weight_gradient_case((ad_dtype)dt, a_ndim, flags & 1, flags & 2, flags & 4);
}

static void test_reference_gemm_with_k_zero_writes_zeros(void **state)
{
    (void)state;
    double c[6] = {1, 2, 3, 4, 5, 6}, unused = 0;
    ad__gemm_reference(AD_F64, false, false, 2, 3, 0, &unused, 1, &unused, 3, c, 3, false);
    for (int i = 0; i < 6; i++)
        assert_true(c[i] == 0);
    /* Accumulating an empty product leaves C as it was. */
    double d[6] = {1, 2, 3, 4, 5, 6};
    ad__gemm_reference(AD_F64, false, false, 2, 3, 0, &unused, 1, &unused, 3, d, 3, true);
    ad__gemm_accumulate(AD_F64, false, false, 2, 3, 0, &unused, 1, &unused, 3, d, 3);
    for (int i = 0; i < 6; i++)
        assert_true(d[i] == i + 1);
    float cf[4] = {1, 2, 3, 4}, unusedf = 0;
    ad__gemm(AD_F32, true, true, 2, 2, 0, &unusedf, 2, &unusedf, 1, cf, 2);
    for (int i = 0; i < 4; i++)
        assert_true(cf[i] == 0);
}

/* ---- matmul: errors -------------------------------------------------------------------------- */

static void test_matmul_shape_mismatch_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[2] = {2, 3}, sb[2] = {4, 5};
    ad_tensor *a = tensor(tape, AD_F64, 2, sa, NULL), *b = tensor(tape, AD_F64, 2, sb, NULL);
    assert_null(ad_matmul(a, b));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "matmul");
    assert_message_has(tape, "[2,3]");
    assert_message_has(tape, "[4,5]");
    /* sticky: the next op gives NULL without touching the message */
    assert_null(ad_matmul(a, a));
    assert_message_has(tape, "[4,5]");
}

static void test_matmul_vector_mismatch_names_the_shapes_as_given(void **state)
{
    ad_tape *tape = *state;
    const int64_t sv[1] = {3}, sm[2] = {4, 2};
    assert_null(ad_matmul(tensor(tape, AD_F64, 1, sv, NULL), tensor(tape, AD_F64, 2, sm, NULL)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "matmul: shapes [3] and [4,2]");
}

static void test_matmul_t_misalignment_names_both_shapes_and_the_transpose(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[2] = {2, 3}, sb[2] = {3, 2}; /* [3,2] . [3,2] */
    assert_null(ad_matmul_t(tensor(tape, AD_F64, 2, sa, NULL), tensor(tape, AD_F64, 2, sb, NULL),
                            true, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "matmul: shapes [2,3]^T and [3,2] do not align");
}

static void test_matmul_batch_dims_that_do_not_broadcast_name_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[3] = {2, 3, 4}, sb[3] = {3, 4, 5};
    assert_null(ad_matmul(tensor(tape, AD_F64, 3, sa, NULL), tensor(tape, AD_F64, 3, sb, NULL)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "matmul");
    assert_message_has(tape, "[2,3,4]");
    assert_message_has(tape, "[3,4,5]");
}

static void test_matmul_of_a_0d_operand_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {3};
    assert_null(ad_matmul(ad_scalar(tape, 2), tensor(tape, AD_F64, 1, s, NULL)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "matmul: shapes [] and [3]");
}

static void test_matmul_t_of_a_vector_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t sv[1] = {3}, sm[2] = {3, 2};
    assert_null(ad_matmul_t(tensor(tape, AD_F64, 1, sv, NULL), tensor(tape, AD_F64, 2, sm, NULL),
                            false, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "[3]");
    assert_message_has(tape, "[3,2]");
}

static void test_matmul_of_mixed_dtypes_is_a_dtype_error_naming_both(void **state)
{
    ad_tape *tape = *state;
    const int64_t sa[2] = {2, 3}, sb[1] = {3};
    assert_null(ad_matmul(tensor(tape, AD_F32, 2, sa, NULL), tensor(tape, AD_F64, 1, sb, NULL)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_message_has(tape, "matmul");
    assert_message_has(tape, "float32 [2,3]");
    assert_message_has(tape, "float64 [3]");
}

static void test_matmul_of_null_returns_null_and_leaves_the_tape_alone(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 2};
    assert_null(ad_matmul(NULL, tensor(tape, AD_F64, 2, s, NULL)));
    assert_null(ad_matmul_t(tensor(tape, AD_F64, 2, s, NULL), NULL, false, true));
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

/* ---- permute, transpose ---------------------------------------------------------------------- */

static void test_permute_reorders_axes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 3, 4}, sy[3] = {4, 2, 3};
    static const int perm[3] = {2, 0, 1};
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *x = ramp(tape, (ad_dtype)dt, 3, s, 1, 0);
        ad_tensor *y = ad_permute(x, perm);
        assert_shape(y, 3, sy);
        /* y[k][i][j] = x[i][j][k] = 12 i + 4 j + k */
        for (int64_t k = 0; k < 4; k++)
            for (int64_t i = 0; i < 2; i++)
                for (int64_t j = 0; j < 3; j++)
                    assert_close((double)(12 * i + 4 * j + k),
                                 ad_tensor_get(y, (k * 2 + i) * 3 + j), 0, 0);
    }
}

static void test_permute_gradient_is_the_inverse_permutation(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 3, 4}, sw[3] = {3, 4, 2};
    static const int perm[3] = {1, 2, 0};
    ad_tensor *x = ramp(tape, AD_F64, 3, s, 1, 0);
    ad_tensor *w = ramp(tape, AD_F64, 3, sw, 1, 100); /* weights: element e of y gets 100 + e */
    ad_tensor *in[1] = {x}, *g[1];
    grads_of_sum(ad_mul(ad_permute(x, perm), w), 1, in, g);
    assert_shape(g[0], 3, s);
    /* x[i][j][k] went to y[j][k][i] = flat (j * 4 + k) * 2 + i */
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 3; j++)
            for (int64_t k = 0; k < 4; k++)
                assert_close((double)(100 + (j * 4 + k) * 2 + i),
                             ad_tensor_get(g[0], (i * 3 + j) * 4 + k), 0, 0);
}

static void test_transpose_accepts_negative_axes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3}, sy[2] = {3, 2};
    ad_tensor *x = ramp(tape, AD_F64, 2, s, 1, 1);
    ad_tensor *y = ad_transpose(x, -1, 0);
    assert_shape(y, 2, sy);
    const double v[6] = {1, 4, 2, 5, 3, 6};
    assert_values(y, 6, v, 0, 0);
}

static void test_permute_by_the_identity_returns_the_input(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    static const int perm[2] = {0, 1};
    ad_tensor *x = ramp(tape, AD_F64, 2, s, 1, 0);
    assert_ptr_equal(ad_permute(x, perm), x);
    assert_ptr_equal(ad_transpose(x, 1, 1), x);
    ad_tensor *s0 = ad_scalar(tape, 1); /* a 0-d tensor has one, empty, permutation */
    assert_ptr_equal(ad_permute(s0, NULL), s0);
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_permute_of_a_zero_size_tensor_gives_an_empty_result(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 0, 3}, sy[3] = {3, 2, 0};
    static const int perm[3] = {2, 0, 1};
    ad_tensor *x = leaf(tape, AD_F32, 3, s, NULL);
    ad_tensor *y = ad_permute(x, perm);
    assert_shape(y, 3, sy);
    ad_tensor *in[1] = {x}, *g[1];
    grads_of_sum(y, 1, in, g);
    assert_shape(g[0], 3, s);
}

static void test_permute_with_a_repeated_axis_names_the_perm_and_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 3, 4};
    static const int perm[3] = {0, 2, 0};
    assert_null(ad_permute(tensor(tape, AD_F64, 3, s, NULL), perm));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "permute");
    assert_message_has(tape, "[0,2,0]");
    assert_message_has(tape, "[2,3,4]");
}

static void test_permute_with_an_out_of_range_axis_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    static const int perm[2] = {1, -1};
    assert_null(ad_permute(tensor(tape, AD_F64, 2, s, NULL), perm));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "permute");
    assert_message_has(tape, "[2,3]");
}

static void test_permute_with_a_null_perm_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    assert_null(ad_permute(tensor(tape, AD_F64, 2, s, NULL), NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "permute");
}

static void test_transpose_with_an_out_of_range_axis_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    assert_null(ad_transpose(tensor(tape, AD_F64, 2, s, NULL), 0, 2));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    assert_message_has(tape, "transpose");
    assert_message_has(tape, "[2,3]");
}

/* ---- Runner -----------------------------------------------------------------------------------
 */

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_matmul_of_two_matrices_matches_hand_values),
        TAPE_TEST(test_matmul_of_two_vectors_is_a_0d_dot_product),
        TAPE_TEST(test_matmul_of_a_vector_and_a_matrix_drops_the_row_dim),
        TAPE_TEST(test_matmul_of_a_matrix_and_a_vector_drops_the_column_dim),
        TAPE_TEST(test_matmul_of_vectors_and_batches_drops_the_vector_dim),
        TAPE_TEST(test_matmul_broadcasts_batch_dims),
        TAPE_TEST(test_matmul_t_flags_match_explicit_transposes),
        TAPE_TEST(test_matmul_of_float32_matches_float64),
        TAPE_TEST(test_matmul_with_zero_size_dims_gives_zeros_of_the_right_shape),
        TAPE_TEST(test_matmul_gradients_match_hand_values),
        TAPE_TEST(test_matmul_gradient_of_a_broadcast_matrix_sums_over_the_batch),
        TAPE_TEST(test_matmul_gradient_of_a_dot_product_is_the_other_vector),
        TAPE_TEST(test_matmul_of_a_persistent_weight_accumulates_its_gradient),
        TAPE_TEST(test_blas_gemm_matches_the_reference_kernel_and_a_naive_sum),
        cmocka_unit_test(test_weight_gradients_added_in_place_match_the_ordinary_path),
        TAPE_TEST(test_reference_gemm_with_k_zero_writes_zeros),
        TAPE_TEST(test_matmul_shape_mismatch_names_both_shapes),
        TAPE_TEST(test_matmul_vector_mismatch_names_the_shapes_as_given),
        TAPE_TEST(test_matmul_t_misalignment_names_both_shapes_and_the_transpose),
        TAPE_TEST(test_matmul_batch_dims_that_do_not_broadcast_name_both_shapes),
        TAPE_TEST(test_matmul_of_a_0d_operand_is_a_shape_error),
        TAPE_TEST(test_matmul_t_of_a_vector_is_a_shape_error),
        TAPE_TEST(test_matmul_of_mixed_dtypes_is_a_dtype_error_naming_both),
        TAPE_TEST(test_matmul_of_null_returns_null_and_leaves_the_tape_alone),
        TAPE_TEST(test_permute_reorders_axes),
        TAPE_TEST(test_permute_gradient_is_the_inverse_permutation),
        TAPE_TEST(test_transpose_accepts_negative_axes),
        TAPE_TEST(test_permute_by_the_identity_returns_the_input),
        TAPE_TEST(test_permute_of_a_zero_size_tensor_gives_an_empty_result),
        TAPE_TEST(test_permute_with_a_repeated_axis_names_the_perm_and_the_shape),
        TAPE_TEST(test_permute_with_an_out_of_range_axis_is_an_axis_error),
        TAPE_TEST(test_permute_with_a_null_perm_is_an_argument_error),
        TAPE_TEST(test_transpose_with_an_out_of_range_axis_names_the_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
