/* Linear algebra: matmul (the primitive ad_matmul_t with transpose flags, and
 * torch.matmul's rules on top of it). permute and transpose are in shape.c.
 * Transposes inside matmul are never materialised as tensors: BLAS reads a
 * transposed operand through its flags, our blocked kernel through swapped
 * strides (copying at most a small panel of B at a time). */
#include "ops.h"

#include <limits.h>

#ifdef AD_HAVE_BLAS
#include <cblas.h>
#endif

/* ---- GEMM kernels ------------------------------------------------------------------------
 * C[m,n] = op(A)[m,k] op(B)[k,n], row-major, leading dims lda, ldb, ldc; op(A)
 * is A^T (A stored [k,m]) when ta is set, likewise op(B). C is overwritten. */

/* A panel of op(B), TILE_K rows of TILE_N, stays in L1 (16 KiB of doubles)
 * while every row of A and C streams past it. */
enum { TILE_K = 32, TILE_N = 64 };

static inline int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The reference kernel, once per dtype: gemm_reference_f32, gemm_reference_f64. */
#define KERNELS "ops/gemm_kernels.h"
#include "../core/kernels.h"

void ad__gemm_reference(ad_dtype dtype, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                        const void *a, int64_t lda, const void *b, int64_t ldb, void *c,
                        int64_t ldc, bool accumulate)
{
    switch (dtype) {
    case AD_F32:
        gemm_reference_f32(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        break;
    case AD_F64:
        gemm_reference_f64(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* C = op(A) op(B) (+ C when accumulate): BLAS when it can take the sizes. */
static void gemm(ad_dtype dtype, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a,
                 int64_t lda, const void *b, int64_t ldb, void *c, int64_t ldc, bool accumulate)
{
    if (m == 0 || n == 0)
        return;
#ifdef AD_HAVE_BLAS
    /* BLAS takes int sizes and rejects leading dims of 0 (an empty operand):
     * those cases go to our kernel, which handles k = 0 by writing zeros. */
    if (k > 0 && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
        ldc <= INT_MAX) {
        const enum CBLAS_TRANSPOSE ota = ta ? CblasTrans : CblasNoTrans;
        const enum CBLAS_TRANSPOSE otb = tb ? CblasTrans : CblasNoTrans;
        switch (dtype) {
        case AD_F32:
            cblas_sgemm(CblasRowMajor, ota, otb, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b,
                        (int)ldb, accumulate ? 1.0f : 0.0f, c, (int)ldc);
            break;
        case AD_F64:
            cblas_dgemm(CblasRowMajor, ota, otb, (int)m, (int)n, (int)k, 1.0, a, (int)lda, b,
                        (int)ldb, accumulate ? 1.0 : 0.0, c, (int)ldc);
            break;
        case AD_I64:
        case AD_BOOL:
            break; /* not a float: refused before any kernel runs */
        }
        return;
    }
#endif
    ad__gemm_reference(dtype, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

void ad__gemm(ad_dtype dtype, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a,
              int64_t lda, const void *b, int64_t ldb, void *c, int64_t ldc)
{
    gemm(dtype, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, false);
}

void ad__gemm_accumulate(ad_dtype dtype, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                         const void *a, int64_t lda, const void *b, int64_t ldb, void *c,
                         int64_t ldc)
{
    gemm(dtype, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, true);
}

/* ---- matmul_t: y = op(a) op(b), batch dims broadcast ------------------------------------
 * With op(a) [m,k], op(b) [k,n], y [m,n] and the batch dims reduced back to
 * each operand's shape (ad__reduce_to):
 *   ta tb   da                     db
 *   0  0    matmul_t(dy, b, 0, 1)  matmul_t(a, dy, 1, 0)
 *   0  1    matmul_t(dy, b, 0, 0)  matmul_t(dy, a, 1, 0)
 *   1  0    matmul_t(b, dy, 0, 1)  matmul_t(a, dy, 0, 0)
 *   1  1    matmul_t(b, dy, 1, 1)  matmul_t(dy, a, 1, 1)
 * param[0].i = transpose_a, param[1].i = transpose_b. */

/* The two matrix dims of x as (rows, cols) of op(x). */
static void op_dims(const ad_tensor *x, bool transposed, int64_t *rows, int64_t *cols)
{
    int64_t r = x->shape[x->ndim - 2], c = x->shape[x->ndim - 1];
    *rows = transposed ? c : r;
    *cols = transposed ? r : c;
}

ad_status ad__matmul_shape(ad_tensor *y)
{
    const ad_tensor *a = y->src[0], *b = y->src[1];
    bool ta = y->param[0].i != 0, tb = y->param[1].i != 0;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (a->ndim < 2 || b->ndim < 2)
        return ad__fail(y->tape, AD_ERR_SHAPE,
                        "matmul: shapes %s and %s: matmul_t needs matrices (at least 2 dims)",
                        AD__SHAPE(a, s0), AD__SHAPE(b, s1));
    int64_t m, ka, kb, n;
    op_dims(a, ta, &m, &ka);
    op_dims(b, tb, &kb, &n);
    if (ka != kb)
        return ad__fail(y->tape, AD_ERR_SHAPE, "matmul: shapes %s%s and %s%s do not align",
                        AD__SHAPE(a, s0), ta ? "^T" : "", AD__SHAPE(b, s1), tb ? "^T" : "");
    int64_t shape[AD_MAX_DIMS];
    int nb = ad__broadcast_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape, shape);
    if (nb < 0)
        return ad__fail(y->tape, AD_ERR_SHAPE,
                        "matmul: the batch dims of shapes %s and %s do not broadcast",
                        AD__SHAPE(a, s0), AD__SHAPE(b, s1));
    shape[nb] = m;
    shape[nb + 1] = n;
    y->ndim = (uint8_t)(nb + 2);
    y->shape = ad__copy_i64(y->tape, shape, (size_t)nb + 2);
    return y->shape ? AD_OK : y->tape->status;
}

/* Element strides of x's matrices along y's batch dims: 0 where x is broadcast
 * (a size-1 or missing dim). */
static void batch_strides(const ad_tensor *x, int nb, int64_t *strides)
{
    int lead = nb - (x->ndim - 2);
    int64_t s = x->shape[x->ndim - 2] * x->shape[x->ndim - 1];
    for (int d = nb - 1; d >= 0; d--) {
        int64_t dim = d < lead ? 1 : x->shape[d - lead];
        strides[d] = dim == 1 ? 0 : s;
        s *= dim;
    }
}

void ad__matmul_forward(ad_tensor *y)
{
    const ad_tensor *a = y->src[0], *b = y->src[1];
    bool ta = y->param[0].i != 0, tb = y->param[1].i != 0;
    ad_dtype dt = (ad_dtype)y->dtype;
    size_t es = ad_dtype_size(dt);
    int nb = y->ndim - 2;
    int64_t m = y->shape[nb], n = y->shape[nb + 1], k, unused;
    op_dims(a, ta, &unused, &k);
    int64_t lda = a->shape[a->ndim - 1], ldb = b->shape[b->ndim - 1];
    int64_t batches = ad__numel(nb, y->shape);
    if (b->ndim == 2 && !ta) {
        /* A stack of untransposed a against one b (a linear layer on [B,T,C]):
         * a's rows are contiguous across its batch, so one GEMM does it all. */
        ad__gemm(dt, false, tb, batches * m, n, k, a->data, lda, b->data, ldb, y->data, n);
        return;
    }
    int64_t sa[AD_MAX_DIMS], sb[AD_MAX_DIMS];
    batch_strides(a, nb, sa);
    batch_strides(b, nb, sb);
    const unsigned char *A = a->data, *B = b->data;
    unsigned char *Y = y->data;
    for (int64_t t = 0; t < batches; t++) {
        int64_t oa = 0, ob = 0, rest = t;
        for (int d = nb - 1; d >= 0; d--) {
            int64_t i = rest % y->shape[d];
            rest /= y->shape[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        ad__gemm(dt, ta, tb, m, n, k, A + (size_t)oa * es, lda, B + (size_t)ob * es, ldb,
                 Y + (size_t)(t * m * n) * es, n);
    }
}

void ad__matmul_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *a = y->src[0], *b = y->src[1];
    bool ta = y->param[0].i != 0, tb = y->param[1].i != 0;
    if (a->flags & AD_TF_RECORDED) {
        ad_tensor *da = ta ? ad_matmul_t(b, gy, tb, true) : ad_matmul_t(gy, b, false, !tb);
        gin[0] = ad__reduce_to(da, a);
    }
    if (!(b->flags & AD_TF_RECORDED))
        return;
    ad_tensor *sink = b->ndim == 2 && !ta ? ad__grad_sink(b) : NULL;
    if (sink) {
        /* a [rows, k] (batch dims folded into rows), gy [rows, n]:
         * tb: b [n, k] += gy^T a; else b [k, n] += a^T gy. gin[1] stays NULL. */
        int64_t k = a->shape[a->ndim - 1], n = gy->shape[gy->ndim - 1];
        int64_t rows = k ? a->numel / k : ad__numel(a->ndim - 1, a->shape);
        ad_dtype dt = (ad_dtype)y->dtype;
        if (tb)
            ad__gemm_accumulate(dt, true, false, n, k, rows, gy->data, n, a->data, k, sink->data,
                                k);
        else
            ad__gemm_accumulate(dt, true, false, k, n, rows, a->data, k, gy->data, n, sink->data,
                                n);
        return;
    }
    if (b->ndim == 2 && a->ndim > 2 && !ta) {
        /* As in the forward: fold a's batch into its rows, so db is one GEMM
         * straight to b's shape instead of a stack of them summed afterwards. */
        int64_t rows = ad__numel(a->ndim - 1, a->shape); /* no -1: it fails for empties */
        int64_t a2[2] = {rows, a->shape[a->ndim - 1]}, g2[2] = {rows, gy->shape[gy->ndim - 1]};
        ad_tensor *af = ad_reshape(a, 2, a2), *gf = ad_reshape(gy, 2, g2);
        gin[1] = tb ? ad_matmul_t(gf, af, true, false) : ad_matmul_t(af, gf, true, false);
        return;
    }
    ad_tensor *db = tb ? ad_matmul_t(gy, a, true, ta) : ad_matmul_t(a, gy, !ta, false);
    gin[1] = ad__reduce_to(db, b);
}

// dy = op(da) op(b) + op(a) op(db)
ad_tensor *ad__matmul_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__add_tangents(t[0] ? ad__reapply(y, 0, t[0]) : NULL,
                            t[1] ? ad__reapply(y, 1, t[1]) : NULL);
}

ad_tensor *ad_matmul_t(ad_tensor *a, ad_tensor *b, bool transpose_a, bool transpose_b)
{
    ad_tensor *src[2] = {a, b};
    ad__param params[AD_NPARAM] = {{.i = transpose_a}, {.i = transpose_b}};
    return ad__apply(AD_OP_matmul, 2, src, params);
}

/* ---- matmul: torch.matmul's rules over matmul_t ------------------------------------------
 * A 1-D operand becomes a matrix by a (differentiable, free) reshape, a row
 * [1,k] on the left or a column [k,1] on the right, and that dim is reshaped
 * away from the result: the gradient flows back through both reshapes. */
ad_tensor *ad_matmul(ad_tensor *a, ad_tensor *b)
{
    ad_tensor *src[2] = {a, b};
    ad_tape *tape = ad__inputs_tape("matmul", 2, src);
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (a->ndim == 0 || b->ndim == 0) {
        ad__fail(tape, AD_ERR_SHAPE, "matmul: shapes %s and %s: a 0-d operand has no matrix dims",
                 AD__SHAPE(a, s0), AD__SHAPE(b, s1));
        return NULL;
    }
    if (!ad__same_dtype(tape, "matmul", a, b))
        return NULL;
    /* Checked here so the message shows the shapes as given, not as reshaped. */
    int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
    if (ka != kb) {
        ad__fail(tape, AD_ERR_SHAPE, "matmul: shapes %s and %s do not align", AD__SHAPE(a, s0),
                 AD__SHAPE(b, s1));
        return NULL;
    }
    if (a->ndim >= 2 && b->ndim >= 2)
        return ad_matmul_t(a, b, false, false);
    /* Persistent operands come onto the tape first: reshape needs a tape tensor. */
    a = ad_tape_use(tape, a);
    b = ad_tape_use(tape, b);
    if (!a || !b)
        return NULL;
    bool row = a->ndim == 1, col = b->ndim == 1;
    int64_t row_shape[2] = {1, ka}, col_shape[2] = {kb, 1};
    ad_tensor *am = row ? ad_reshape(a, 2, row_shape) : a;
    ad_tensor *bm = col ? ad_reshape(b, 2, col_shape) : b;
    ad_tensor *y = ad_matmul_t(am, bm, false, false);
    if (!y)
        return NULL;
    /* Drop the dim that the 1-D operand contributed (or both). */
    int64_t shape[AD_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < y->ndim; d++) {
        if ((row && d == y->ndim - 2) || (col && d == y->ndim - 1))
            continue;
        shape[nd++] = y->shape[d];
    }
    return ad_reshape(y, nd, shape);
}
