/* Linear algebra beyond products: Cholesky, triangular and general solves,
 * log|det| (and det, slogdet, logdet, inv over it), the symmetric
 * eigenproblem, matrix norms. Leading dims are batch dims, as in
 * torch.linalg. Every backward and jvp rule is written with these ops and
 * matmul, so second derivatives come free.
 *
 * The factorizations run in LAPACK when the build found it in its BLAS
 * (OpenBLAS exports the Fortran symbols, declared below), and in the plain
 * kernels of linalg_solve_kernels.h otherwise. A row-major matrix is its
 * transpose in LAPACK's column-major order; the calls below exploit it. */
#include "ops.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <tgmath.h>

#ifdef AD_HAVE_BLAS
#include <cblas.h>
#endif

/* Set by tests to run the plain kernels in a LAPACK build, so the two paths
 * can be compared (tests/test_solve.c declares it). */
bool ad__linalg_plain_only = false;

/* LAPACK takes int sizes; dsyevd's workspace is 1 + 6n + 2n^2 of them. */
static inline bool lapack_fits(int64_t n)
{
    return !ad__linalg_plain_only && n > 0 && n <= 16384;
}

#ifdef AD_HAVE_LAPACK
/* Fortran LAPACK: every argument by pointer, the hidden lengths of the
 * character arguments last. */
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
void sgetrf_(const int *m, const int *n, float *a, const int *lda, int *ipiv, int *info);
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda, float *w,
             float *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t,
             size_t);
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t,
             size_t);

/* Cholesky of a row-major (n,n) whose lower triangle is read: column-major,
 * that is the upper triangle of the same (symmetric) matrix, and U with
 * U^T U = A stored column-major is L stored row-major. */
static int64_t lapack_potrf_f32(int64_t n, float *a)
{
    int nn = (int)n, info = 0;
    spotrf_("U", &nn, a, &nn, &info, 1);
    return info;
}

static int64_t lapack_potrf_f64(int64_t n, double *a)
{
    int nn = (int)n, info = 0;
    dpotrf_("U", &nn, a, &nn, &info, 1);
    return info;
}

/* LU of a column-major (n,n) (a row-major matrix's transpose): P L U. */
static int64_t lapack_getrf_f32(int64_t n, float *a, int *ipiv)
{
    int nn = (int)n, info = 0;
    sgetrf_(&nn, &nn, a, &nn, ipiv, &info);
    return info;
}

static int64_t lapack_getrf_f64(int64_t n, double *a, int *ipiv)
{
    int nn = (int)n, info = 0;
    dgetrf_(&nn, &nn, a, &nn, ipiv, &info);
    return info;
}

/* Eigenpairs of a symmetric (n,n), column-major upper = row-major lower
 * triangle read; on return a holds the eigenvectors as column-major columns. */
static int64_t lapack_syevd_f32(int64_t n, float *a, float *w, float *work, int *iwork)
{
    int nn = (int)n, lwork = (int)(1 + 6 * n + 2 * n * n), liwork = (int)(3 + 5 * n), info = 0;
    ssyevd_("V", "U", &nn, a, &nn, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    return info;
}

static int64_t lapack_syevd_f64(int64_t n, double *a, double *w, double *work, int *iwork)
{
    int nn = (int)n, lwork = (int)(1 + 6 * n + 2 * n * n), liwork = (int)(3 + 5 * n), info = 0;
    dsyevd_("V", "U", &nn, a, &nn, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    return info;
}
#endif

#ifdef AD_HAVE_BLAS
/* x <- tri(a)^-1 x, row-major a (n,n), x (n,k), as K(triangular_plain). */
static void blas_trsm_f32(int64_t n, int64_t k, const float *a, float *x, bool upper, bool unit)
{
    cblas_strsm(CblasRowMajor, CblasLeft, upper ? CblasUpper : CblasLower, CblasNoTrans,
                unit ? CblasUnit : CblasNonUnit, (int)n, (int)k, 1.0f, a, (int)n, x, (int)k);
}

static void blas_trsm_f64(int64_t n, int64_t k, const double *a, double *x, bool upper, bool unit)
{
    cblas_dtrsm(CblasRowMajor, CblasLeft, upper ? CblasUpper : CblasLower, CblasNoTrans,
                unit ? CblasUnit : CblasNonUnit, (int)n, (int)k, 1.0, a, (int)n, x, (int)k);
}
#endif

/* Element offset of x's matrix for batch t of y, whose batch dims are x's
 * broadcast (x's size-1 and missing leading dims repeat). */
static int64_t batch_offset(const ad_tensor *x, const ad_tensor *y, int64_t t)
{
    int nb = y->ndim - 2, xb = x->ndim - 2;
    int64_t off = 0, stride = x->shape[xb] * x->shape[xb + 1];
    for (int d = nb - 1; d >= 0 && d - (nb - xb) >= 0; d--) {
        int64_t i = t % y->shape[d], dim = x->shape[d - (nb - xb)];
        t /= y->shape[d];
        off += dim == 1 ? 0 : i * stride;
        stride *= dim;
    }
    return off;
}

#define KERNELS "ops/linalg_solve_kernels.h"
#include "../core/kernels.h"

/* ---- shared checks and constants ------------------------------------------------------------ */

/* x is a batch of square matrices, else AD_ERR_SHAPE naming op. */
static ad_status square_rule(ad_tape *tape, const char *op, const ad_tensor *x)
{
    char s[AD__SHAPE_BUF];
    if (x->ndim < 2 || x->shape[x->ndim - 1] != x->shape[x->ndim - 2])
        return ad__fail(tape, AD_ERR_SHAPE,
                        "%s: shape %s is not a square matrix or a batch of them", op,
                        AD__SHAPE(x, s));
    return AD_OK;
}

/* The first checks of a composition: x's tape, a float dtype, square. */
static ad_tape *square_input(ad_tensor *x, const char *op)
{
    ad_tape *tape = ad__input_tape(x, op);
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    if (!ad__is_float(x->dtype)) {
        ad__fail(tape, AD_ERR_DTYPE, "%s: takes float32 or float64 tensors, not %s %s", op,
                 ad_dtype_name((ad_dtype)x->dtype), AD__SHAPE(x, s));
        return NULL;
    }
    return square_rule(tape, op, x) == AD_OK ? tape : NULL;
}

/* A constant (n,n) of like's dtype: diag on the diagonal, below under it and
 * above over it (an identity, a triangular mask). Never recorded. */
static ad_tensor *pattern(const ad_tensor *like, int64_t n, double diag, double below, double above)
{
    double *v = ad__alloc(like->tape, (size_t)(n * n) * sizeof *v);
    if (!v)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            v[i * n + j] = i == j ? diag : i > j ? below : above;
    int64_t shape[2] = {n, n};
    return ad_tape_tensor_from_doubles(like->tape, (ad_dtype)like->dtype, 2, shape, v);
}

static int64_t last(const ad_tensor *x)
{
    return x->shape[x->ndim - 1];
}

/* Batch dims of a (square) and b broadcast, then b's last two: y's shape. */
static ad_status solve_shape(ad_tensor *y, const char *op)
{
    const ad_tensor *a = y->src[0], *b = y->src[1];
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (square_rule(y->tape, op, a) != AD_OK)
        return y->tape->status;
    if (b->ndim < 2 || b->shape[b->ndim - 2] != last(a))
        return ad__fail(y->tape, AD_ERR_SHAPE, "%s: shapes %s and %s: B needs %lld rows (A's size)",
                        op, AD__SHAPE(a, s0), AD__SHAPE(b, s1), (long long)last(a));
    int64_t shape[AD_MAX_DIMS];
    int nb = ad__broadcast_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape, shape);
    if (nb < 0)
        return ad__fail(y->tape, AD_ERR_SHAPE,
                        "%s: the batch dims of shapes %s and %s do not broadcast", op,
                        AD__SHAPE(a, s0), AD__SHAPE(b, s1));
    shape[nb] = b->shape[b->ndim - 2];
    shape[nb + 1] = last(b);
    y->ndim = (uint8_t)(nb + 2);
    y->shape = ad__copy_i64(y->tape, shape, (size_t)nb + 2);
    return y->shape ? AD_OK : y->tape->status;
}

/* Reports batch element t of x as failing: "op: batch element 1 of A [2,3,3] is singular". */
static void fail_element(const ad_tensor *y, const ad_tensor *x, int64_t t, const char *what)
{
    char s[AD__SHAPE_BUF];
    ad__fail(y->tape, AD_ERR_ARG, "%s: batch element %lld of A %s %s", ad_op_name(y->op),
             (long long)t, AD__SHAPE(x, s), what);
}

/* ---- cholesky: A = L L^T, L lower, A's lower triangle read -------------------------------
 * torch's rule: dA = sym(L^-T Phi(L^T dL) L^-1), sym(X) = (X + X^T)/2, Phi
 * the lower triangle with the diagonal halved. The gradient is symmetric, as
 * torch's (it assumes a symmetric A). */
ad_status ad__cholesky_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = y->src[0]->shape;
    return square_rule(y->tape, "cholesky", y->src[0]);
}

void ad__cholesky_forward(ad_tensor *y)
{
    const ad_tensor *a = y->src[0];
    int64_t n = last(a), batches = n ? a->numel / (n * n) : 0, minor = 0, bad = -1;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        bad = cholesky_run_f32(batches, n, a->data, y->data, &minor);
        break;
    case AD_F64:
        bad = cholesky_run_f64(batches, n, a->data, y->data, &minor);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    if (bad >= 0) {
        char what[96];
        snprintf(what, sizeof what, "is not positive definite (leading minor of order %lld)",
                 (long long)minor);
        fail_element(y, a, bad, what);
    }
}

void ad__cholesky_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int64_t n = last(y);
    ad_tensor *phi = ad_mul(ad_matmul_t(y, gy, true, false), pattern(y, n, 0.5, 1, 0));
    ad_tensor *left = ad_solve_triangular(ad_transpose(y, -1, -2), phi, true, true, false);
    ad_tensor *x = ad_solve_triangular(y, left, false, false, false); /* x L = left */
    gin[0] = ad_mul_scalar(ad_add(x, ad_transpose(x, -1, -2)), 0.5);
}

// dL = L Phi(L^-1 dA L^-T)
ad_tensor *ad__cholesky_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *w = ad_solve_triangular(y, t[0], false, true, false);
    w = ad_solve_triangular(ad_transpose(y, -1, -2), w, true, false, false); /* w L^T */
    return ad_matmul(y, ad_mul(w, pattern(y, last(y), 0.5, 1, 0)));
}

ad_tensor *ad_cholesky(ad_tensor *a)
{
    ad_tensor *src[1] = {a};
    return ad__apply(AD_OP_cholesky, 1, src, NULL);
}

/* ---- solve_triangular: X = tri(A)^-1 B (left side) -----------------------------------------
 * dB = tri(A)^-T dX (a solve with the other triangle), dA = tri(-dB X^T)
 * (tri: the triangle read; without the diagonal when unitriangular).
 * param[0].i = upper, param[1].i = unitriangular. */
ad_status ad__solve_triangular_shape(ad_tensor *y)
{
    return solve_shape(y, "solve_triangular");
}

void ad__solve_triangular_forward(ad_tensor *y)
{
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        triangular_run_f32(y);
        break;
    case AD_F64:
        triangular_run_f64(y);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* The triangle of A that solve_triangular reads, as a 0/1 mask. */
static ad_tensor *triangle_mask(const ad_tensor *y)
{
    bool upper = y->param[0].i != 0, unit = y->param[1].i != 0;
    return pattern(y, last(y->src[0]), unit ? 0 : 1, upper ? 0 : 1, upper ? 1 : 0);
}

void ad__solve_triangular_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    bool upper = y->param[0].i != 0, unit = y->param[1].i != 0;
    ad_tensor *gb = ad_solve_triangular(ad_transpose(a, -1, -2), gy, !upper, true, unit);
    if (b->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(gb, b);
    if (a->flags & AD_TF_RECORDED) {
        ad_tensor *ga = ad_neg(ad_mul(ad_matmul_t(gb, y, false, true), triangle_mask(y)));
        gin[0] = ad__reduce_to(ga, a);
    }
}

// dX = tri(A)^-1 (dB - tri(dA) X)
ad_tensor *ad__solve_triangular_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *a = y->src[0];
    ad_tensor *da_x = t[0] ? ad_matmul(ad_mul(t[0], triangle_mask(y)), y) : NULL;
    ad_tensor *rhs = t[1] ? (da_x ? ad_sub(t[1], da_x) : t[1]) : ad_neg(da_x);
    return ad_solve_triangular(a, rhs, y->param[0].i != 0, true, y->param[1].i != 0);
}

ad_tensor *ad_solve_triangular(ad_tensor *a, ad_tensor *b, bool upper, bool left,
                               bool unitriangular)
{
    ad__param params[AD_NPARAM] = {{.i = upper}, {.i = unitriangular}};
    if (left) {
        ad_tensor *src[2] = {a, b};
        return ad__apply(AD_OP_solve_triangular, 2, src, params);
    }
    /* X A = B is A^T X^T = B^T: the other triangle, on the left. */
    ad_tensor *src[2] = {ad_transpose(a, -1, -2), ad_transpose(b, -1, -2)};
    if (!src[0] || !src[1])
        return NULL;
    params[0].i = !upper;
    return ad_transpose(ad__apply(AD_OP_solve_triangular, 2, src, params), -1, -2);
}

/* ---- solve: X = A^-1 B by LU with partial pivoting -----------------------------------------
 * dB = A^-T dX (a solve with A^T), dA = -dB X^T. */
ad_status ad__solve_shape(ad_tensor *y)
{
    return solve_shape(y, "solve");
}

void ad__solve_forward(ad_tensor *y)
{
    int64_t n = last(y->src[0]), bad = -1;
    size_t es = ad_dtype_size((ad_dtype)y->dtype);
    void *lu = ad__alloc(y->tape, (size_t)(n * n) * es + 1);
    int64_t *piv = ad__alloc(y->tape, (size_t)n * sizeof *piv + 1);
    int *ipiv = ad__alloc(y->tape, (size_t)n * sizeof *ipiv + 1);
    if (!lu || !piv || !ipiv)
        return;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        bad = solve_run_f32(y, lu, piv, ipiv);
        break;
    case AD_F64:
        bad = solve_run_f64(y, lu, piv, ipiv);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
    if (bad >= 0)
        fail_element(y, y->src[0], bad, "is singular");
}

void ad__solve_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    ad_tensor *src[2] = {ad_transpose(a, -1, -2), gy};
    ad_tensor *gb = src[0] ? ad__apply(AD_OP_solve, 2, src, NULL) : NULL;
    if (b->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(gb, b);
    if (a->flags & AD_TF_RECORDED)
        gin[0] = ad__reduce_to(ad_neg(ad_matmul_t(gb, y, false, true)), a);
}

// dX = A^-1 (dB - dA X)
ad_tensor *ad__solve_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *da_x = t[0] ? ad_matmul(t[0], y) : NULL;
    ad_tensor *rhs = t[1] ? (da_x ? ad_sub(t[1], da_x) : t[1]) : ad_neg(da_x);
    ad_tensor *src[2] = {y->src[0], rhs};
    return rhs ? ad__apply(AD_OP_solve, 2, src, NULL) : NULL;
}

/* torch.linalg.solve: B is a vector (or a batch of them) when it is 1-D or
 * has A's shape without its last dim; then so is X. */
ad_tensor *ad_solve(ad_tensor *a, ad_tensor *b)
{
    ad_tensor *src[2] = {a, b};
    ad_tape *tape = ad__inputs_tape("solve", 2, src);
    if (!tape)
        return NULL;
    bool vector =
        b->ndim == 1 || (b->ndim == a->ndim - 1 && b->ndim >= 1 &&
                         memcmp(a->shape, b->shape, (size_t)b->ndim * sizeof *b->shape) == 0);
    if (!vector)
        return ad__apply(AD_OP_solve, 2, src, NULL);
    if (a->ndim < 2 || b->shape[b->ndim - 1] != last(a)) {
        char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_SHAPE, "solve: shapes %s and %s: B needs %lld rows (A's size)",
                 AD__SHAPE(a, s0), AD__SHAPE(b, s1), a->ndim ? (long long)last(a) : 0LL);
        return NULL;
    }
    src[1] = ad_unsqueeze(ad_tape_use(tape, b), -1);
    if (!src[1])
        return NULL;
    ad_tensor *x = ad__apply(AD_OP_solve, 2, src, NULL);
    int axis = -1;
    return x ? ad_squeeze(x, 1, &axis) : NULL;
}

/* ---- logabsdet: log|det A| by LU ------------------------------------------------------------
 * dA = dy A^-T (a solve with A^T against the identity); dy I at a singular A. param[0].p, when
 * set, receives the signs (a tensor of y's shape and dtype: -1, 0 or 1). */
ad_status ad__logabsdet_shape(ad_tensor *y)
{
    const ad_tensor *a = y->src[0];
    y->ndim = (uint8_t)(a->ndim >= 2 ? a->ndim - 2 : 0);
    y->shape = a->shape;
    return square_rule(y->tape, "slogdet", a);
}

void ad__logabsdet_forward(ad_tensor *y)
{
    int64_t n = last(y->src[0]);
    size_t es = ad_dtype_size((ad_dtype)y->dtype);
    void *lu = ad__alloc(y->tape, (size_t)(n * n) * es + 1);
    int64_t *piv = ad__alloc(y->tape, (size_t)n * sizeof *piv + 1);
    int *ipiv = ad__alloc(y->tape, (size_t)n * sizeof *ipiv + 1);
    if (!lu || !piv || !ipiv)
        return;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        logabsdet_run_f32(y, lu, piv, ipiv);
        break;
    case AD_F64:
        logabsdet_run_f64(y, lu, piv, ipiv);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* I of A's size, broadcast against A's batch. */
static ad_tensor *identity_of(const ad_tensor *a)
{
    return pattern(a, last(a), 1, 0, 0);
}

/* A with its singular matrices (log|det| = -inf) replaced by I: a constant
 * choice, so that det's gradient there is 0 * I = 0, as torch gives it. */
static ad_tensor *nonsingular(ad_tensor *y)
{
    ad_tensor *a = y->src[0];
    ad_tensor *singular = ad_unsqueeze(ad_unsqueeze(ad_isinf(y), -1), -1);
    return ad_where(singular, identity_of(a), a);
}

void ad__logabsdet_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = nonsingular(y);
    ad_tensor *src[2] = {ad_transpose(a, -1, -2), identity_of(y->src[0])};
    ad_tensor *inv_t = src[0] && src[1] ? ad__apply(AD_OP_solve, 2, src, NULL) : NULL;
    gin[0] = ad_mul(ad_unsqueeze(ad_unsqueeze(gy, -1), -1), inv_t);
}

// dy = trace(A^-1 dA)
ad_tensor *ad__logabsdet_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *src[2] = {nonsingular(y), t[0]};
    int axis = -1;
    return ad_sum(ad_diagonal(ad__apply(AD_OP_solve, 2, src, NULL), 0, -2, -1), 1, &axis, false);
}

/* log|det A| and, when sign is not NULL, its sign as a constant tensor. */
ad_tensor *ad_slogdet(ad_tensor *a, ad_tensor **sign)
{
    if (sign)
        *sign = NULL;
    ad_tape *tape = square_input(a, "slogdet");
    if (!tape)
        return NULL;
    ad_tensor *s = ad__new(tape, (ad_dtype)a->dtype, a->ndim - 2, a->shape);
    if (!s)
        return NULL;
    ad__param params[AD_NPARAM] = {{.p = s->data}};
    ad_tensor *src[1] = {a};
    ad_tensor *y = ad__apply(AD_OP_logabsdet, 1, src, params);
    if (y && sign)
        *sign = s;
    return y;
}

/* log det A = log|det A| + log(sign): NaN for a negative determinant, -inf
 * for a singular A, as torch.logdet. The added constant has no gradient. */
ad_tensor *ad_logdet(ad_tensor *a)
{
    ad_tensor *sign = NULL, *y = ad_slogdet(a, &sign);
    if (!y)
        return NULL;
    ad_tensor *zero = ad__scalar_const(y, 0.0), *nan = ad__scalar_const(y, NAN);
    /* sign >= 0: add 0 (a singular A has log|det| = -inf already); < 0: NaN. */
    return ad_add(y, ad_where(ad_lt(sign, zero), nan, zero));
}

/* det A = sign exp(log|det A|): dA = dy det(A) A^-T. */
ad_tensor *ad_det(ad_tensor *a)
{
    ad_tensor *sign = NULL, *y = ad_slogdet(a, &sign);
    return y ? ad_mul(sign, ad_exp(y)) : NULL;
}

/* inv A = solve(A, I): dA = -A^-T dY A^-T. */
ad_tensor *ad_inv(ad_tensor *a)
{
    ad_tape *tape = square_input(a, "inv");
    if (!tape)
        return NULL;
    ad_tensor *src[2] = {a, identity_of(a)};
    return src[1] ? ad__apply(AD_OP_solve, 2, src, NULL) : NULL;
}

/* ---- eigh: A = V diag(w) V^T, w ascending, A's lower triangle read --------------------------
 * The result is packed [..., n+1, n]: row 0 holds w, rows 1..n hold V (its
 * columns the eigenvectors, each with its largest entry positive). With
 * E[j][k] = w[k] - w[j] and skew(M) = (M - M^T)/2, torch's rule:
 *   dA = V (diag(dw) + skew(V^T dV) / E) V^T   (0 on E's diagonal)
 * symmetric, as torch's (it assumes a symmetric A). */
ad_status ad__eigh_shape(ad_tensor *y)
{
    const ad_tensor *a = y->src[0];
    if (square_rule(y->tape, "eigh", a) != AD_OK)
        return y->tape->status;
    int64_t shape[AD_MAX_DIMS];
    memcpy(shape, a->shape, (size_t)a->ndim * sizeof *shape);
    shape[a->ndim - 2] += 1;
    y->ndim = a->ndim;
    y->shape = ad__copy_i64(y->tape, shape, (size_t)a->ndim);
    return y->shape ? AD_OK : y->tape->status;
}

void ad__eigh_forward(ad_tensor *y)
{
    int64_t n = last(y);
    size_t es = ad_dtype_size((ad_dtype)y->dtype);
    void *a = ad__alloc(y->tape, (size_t)(n * n) * es + 1);
    void *work = ad__alloc(y->tape, (size_t)(1 + 6 * n + 2 * n * n) * es);
    int *iwork = ad__alloc(y->tape, (size_t)(3 + 5 * n) * sizeof *iwork);
    if (!a || !work || !iwork)
        return;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        eigh_run_f32(y, a, work, iwork);
        break;
    case AD_F64:
        eigh_run_f64(y, a, work, iwork);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* Rows [start, stop) of the packed eigh result. */
static ad_tensor *rows(ad_tensor *packed, int64_t start, int64_t stop)
{
    return ad_slice(packed, -2, start, stop, 1);
}

/* 1 / E off the diagonal, 0 on it: E + I keeps the division finite. */
static ad_tensor *inverse_gaps(ad_tensor *w)
{
    int64_t n = last(w);
    ad_tensor *gaps = ad_sub(w, ad_transpose(w, -1, -2)); /* [.., j, k] = w[k] - w[j] */
    return ad_div(pattern(w, n, 0, 1, 1), ad_add(gaps, pattern(w, n, 1, 0, 0)));
}

void ad__eigh_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int64_t n = last(y);
    ad_tensor *w = rows(y, 0, 1), *v = rows(y, 1, n + 1);
    ad_tensor *vg = ad_matmul_t(v, rows(gy, 1, n + 1), true, false);
    ad_tensor *skew = ad_mul_scalar(ad_sub(vg, ad_transpose(vg, -1, -2)), 0.5);
    ad_tensor *inner =
        ad_add(ad_mul(skew, inverse_gaps(w)), ad_mul(rows(gy, 0, 1), pattern(y, n, 1, 0, 0)));
    gin[0] = ad_matmul_t(ad_matmul(v, inner), v, false, true);
}

// C = V^T dA V: dw = diag(C), dV = V (C / E) (0 on E's diagonal)
ad_tensor *ad__eigh_jvp(ad_tensor *y, ad_tensor *const *t)
{
    int64_t n = last(y);
    ad_tensor *w = rows(y, 0, 1), *v = rows(y, 1, n + 1);
    ad_tensor *c = ad_matmul(ad_matmul_t(v, t[0], true, false), v);
    ad_tensor *dw = ad_unsqueeze(ad_diagonal(c, 0, -2, -1), -2);
    ad_tensor *dv = ad_matmul(v, ad_mul(c, inverse_gaps(w)));
    ad_tensor *parts[2] = {dw, dv};
    return dw && dv ? ad_concat(2, parts, -2) : NULL;
}

ad_tensor *ad_eigh(ad_tensor *a, ad_tensor **eigenvectors)
{
    if (eigenvectors)
        *eigenvectors = NULL;
    ad_tensor *src[1] = {a};
    ad_tensor *y = ad__apply(AD_OP_eigh, 1, src, NULL);
    if (!y)
        return NULL;
    int64_t n = last(y);
    if (eigenvectors && !(*eigenvectors = rows(y, 1, n + 1)))
        return NULL;
    int axis = -2;
    return ad_squeeze(rows(y, 0, 1), 1, &axis);
}

ad_tensor *ad_eigvalsh(ad_tensor *a)
{
    return ad_eigh(a, NULL);
}

/* ---- matrix norms: compositions of reductions (and eigvalsh) ------------------------------ */

/* Singular values of each matrix, ascending: the square roots of the
 * eigenvalues of the smaller Gram matrix (A^T A for a tall A, A A^T for a wide
 * one, so a full-rank A has no zero eigenvalue), with rounding's tiny negative
 * eigenvalues clamped to 0. A singular value of exactly 0 has no derivative
 * here: its gradient is NaN (documented in the header). */
static ad_tensor *singular_values(ad_tensor *a)
{
    bool tall = a->shape[a->ndim - 2] >= a->shape[a->ndim - 1];
    ad_tensor *gram = tall ? ad_matmul_t(a, a, true, false) : ad_matmul_t(a, a, false, true);
    return ad_sqrt(ad_clamp_min(ad_eigvalsh(gram), 0.0));
}

ad_tensor *ad_matrix_norm(ad_tensor *a, ad_matrix_norm_ord ord)
{
    ad_tape *tape = ad__input_tape(a, "matrix_norm");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    if (a->ndim < 2) {
        ad__fail(tape, AD_ERR_SHAPE, "matrix_norm: shape %s has no matrix dims", AD__SHAPE(a, s));
        return NULL;
    }
    int both[2] = {-2, -1}, rows_axis = -2, cols_axis = -1, one = -1;
    switch (ord) {
    case AD_NORM_FRO: /* the 2-norm of the entries: its gradient at 0 is 0, as torch's */
        return ad_norm(a, 2, 2, both, false);
    case AD_NORM_NUC:
        return ad_sum(singular_values(a), 1, &one, false);
    case AD_NORM_2:
        return ad_max(singular_values(a), 1, &one, false);
    case AD_NORM_NEG_2:
        return ad_neg(ad_max(ad_neg(singular_values(a)), 1, &one, false));
    case AD_NORM_1: /* the largest column sum */
        return ad_max(ad_sum(ad_abs(a), 1, &rows_axis, false), 1, &one, false);
    case AD_NORM_NEG_1:
        return ad_neg(ad_max(ad_neg(ad_sum(ad_abs(a), 1, &rows_axis, false)), 1, &one, false));
    case AD_NORM_INF: /* the largest row sum */
        return ad_max(ad_sum(ad_abs(a), 1, &cols_axis, false), 1, &one, false);
    case AD_NORM_NEG_INF:
        return ad_neg(ad_max(ad_neg(ad_sum(ad_abs(a), 1, &cols_axis, false)), 1, &one, false));
    }
    ad__fail(tape, AD_ERR_ARG, "matrix_norm: unknown ord %d", (int)ord);
    return NULL;
}
