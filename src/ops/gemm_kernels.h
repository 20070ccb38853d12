/* The reference GEMM over T, instantiated per dtype by kernels.h (linalg.c
 * includes it after defining TILE_K, TILE_N and min64). Not include-guarded:
 * included once per dtype.
 *
 * Element (i,p) of op(A) is at A[i * a_row + p * a_col], so a transposed A is
 * only a swap of strides (one scalar read per inner loop). The inner loop is
 * y += alpha x along a row of the panel and of C: contiguous, and with
 * restrict the compiler vectorises it without -ffast-math, since no sum is
 * reordered (each C element adds its terms in order p = 0, 1, ...). A
 * transposed B has its panel's rows strided, so the panel is first copied
 * into a small buffer of contiguous rows. */

// y += alpha x: x: (n), y: (n)
static void K(gemm_axpy)(int64_t n, T alpha, const T *restrict x, T *restrict y)
{
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) /* fixed-length blocks: vectorised at -O2 too */
        for (int u = 0; u < 8; u++)
            y[j + u] += alpha * x[j + u];
    for (; j < n; j++)
        y[j] += alpha * x[j];
}

// C += op(A) op(B) as BLAS's beta = 1 does: each element's product is summed
// from 0 in the order p = 0, 1, ..., as K(gemm_reference) sums it, and then
// added to C once, so accumulating gives the bits of a product added
// afterwards. Shapes as K(gemm_reference).
static void K(gemm_reference_add)(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T *A,
                                  int64_t lda, const T *B, int64_t ldb, T *C, int64_t ldc)
{
    T row[TILE_N];
    const int64_t a_row = ta ? 1 : lda, a_col = ta ? lda : 1;
    for (int64_t i = 0; i < m; i++) {
        const T *a = A + i * a_row;
        for (int64_t j0 = 0; j0 < n; j0 += TILE_N) {
            const int64_t j1 = min64(j0 + TILE_N, n);
            for (int64_t j = j0; j < j1; j++)
                row[j - j0] = 0;
            for (int64_t p = 0; p < k; p++) {
                if (tb) /* op(B)(p,j) = B[j * ldb + p] */
                    for (int64_t j = j0; j < j1; j++)
                        row[j - j0] += a[p * a_col] * B[j * ldb + p];
                else
                    K(gemm_axpy)(j1 - j0, a[p * a_col], B + p * ldb + j0, row);
            }
            for (int64_t j = j0; j < j1; j++)
                C[i * ldc + j] += row[j - j0];
        }
    }
}

// C = op(A) op(B) (+ C when accumulate, by K(gemm_reference_add)), blocked: A: (m, k) or
// (k, m) if ta, B: (k, n) or (n, k) if tb -> C: (m, n); leading dims lda, ldb, ldc
static void K(gemm_reference)(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T *A,
                              int64_t lda, const T *B, int64_t ldb, T *C, int64_t ldc,
                              bool accumulate)
{
    if (accumulate) {
        K(gemm_reference_add)(ta, tb, m, n, k, A, lda, B, ldb, C, ldc);
        return;
    }
    T pack[TILE_K * TILE_N];
    const int64_t a_row = ta ? 1 : lda, a_col = ta ? lda : 1;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            C[i * ldc + j] = 0;
    for (int64_t p0 = 0; p0 < k; p0 += TILE_K) {
        const int64_t p1 = min64(p0 + TILE_K, k);
        for (int64_t j0 = 0; j0 < n; j0 += TILE_N) {
            const int64_t j1 = min64(j0 + TILE_N, n);
            const T *panel = B + p0 * ldb + j0;
            int64_t panel_ld = ldb;
            if (tb) { /* op(B)(p,j) = B[j * ldb + p] */
                for (int64_t j = j0; j < j1; j++)
                    for (int64_t p = p0; p < p1; p++)
                        pack[(p - p0) * TILE_N + (j - j0)] = B[j * ldb + p];
                panel = pack;
                panel_ld = TILE_N;
            }
            for (int64_t i = 0; i < m; i++) {
                const T *a = A + i * a_row;
                for (int64_t p = p0; p < p1; p++) {
                    const T *panel_row = panel + (p - p0) * panel_ld;
                    K(gemm_axpy)(j1 - j0, a[p * a_col], panel_row, C + i * ldc + j0);
                }
            }
        }
    }
}
