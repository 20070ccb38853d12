/* The plain factorizations over T, instantiated per dtype by kernels.h
 * (linalg_solve.c includes it). Unblocked and O(n^3): the reference path for
 * builds without LAPACK, and the one tests compare LAPACK's results with.
 * Every matrix is one contiguous row-major (n,n) or (n,k) block. Not
 * include-guarded: included once per dtype. */

// Cholesky in place: a (n,n), its lower triangle read; on return the lower
// triangle holds L (L L^T = a) and the strict upper triangle is 0. Returns 0,
// or j + 1 when the leading minor of order j + 1 is not positive definite.
static int64_t K(cholesky_plain)(int64_t n, T *a)
{
    for (int64_t j = 0; j < n; j++) {
        T d = a[j * n + j];
        for (int64_t p = 0; p < j; p++)
            d -= a[j * n + p] * a[j * n + p];
        if (!(d > 0)) /* NaN too */
            return j + 1;
        T ljj = (T)sqrt(d);
        a[j * n + j] = ljj;
        for (int64_t i = j + 1; i < n; i++) {
            T s = a[i * n + j];
            for (int64_t p = 0; p < j; p++)
                s -= a[i * n + p] * a[j * n + p];
            a[i * n + j] = s / ljj;
        }
        for (int64_t i = 0; i < j; i++)
            a[i * n + j] = 0;
    }
    return 0;
}

// x <- tri(a)^-1 x: a (n,n), its lower (or upper) triangle read, its diagonal
// taken as 1 when unit; x (n,k). No check for a zero diagonal: inf and NaN
// follow, as torch.linalg.solve_triangular gives them.
static void K(triangular_plain)(int64_t n, int64_t k, const T *a, T *x, bool upper, bool unit)
{
    for (int64_t s = 0; s < n; s++) {
        int64_t i = upper ? n - 1 - s : s;
        int64_t p0 = upper ? i + 1 : 0, p1 = upper ? n : i;
        for (int64_t p = p0; p < p1; p++) {
            T f = a[i * n + p];
            for (int64_t c = 0; c < k; c++)
                x[i * k + c] -= f * x[p * k + c];
        }
        if (unit)
            continue;
        T d = a[i * n + i];
        for (int64_t c = 0; c < k; c++)
            x[i * k + c] /= d;
    }
}

// LU with partial pivoting in place: a (n,n) becomes L (unit, below the
// diagonal) and U; row i was swapped with row piv[i] (>= i) at step i, and
// *sign is the permutation's sign. Returns 0, or j + 1 for the first exactly
// zero pivot (the matrix is singular; the factorization stops there).
static int64_t K(lu_plain)(int64_t n, T *a, int64_t *piv, int *sign)
{
    *sign = 1;
    for (int64_t j = 0; j < n; j++) {
        int64_t best = j;
        for (int64_t i = j + 1; i < n; i++)
            if (fabs(a[i * n + j]) > fabs(a[best * n + j]))
                best = i;
        piv[j] = best;
        if (best != j) {
            *sign = -*sign;
            for (int64_t c = 0; c < n; c++) {
                T t = a[j * n + c];
                a[j * n + c] = a[best * n + c];
                a[best * n + c] = t;
            }
        }
        T d = a[j * n + j];
        if (d == 0)
            return j + 1;
        for (int64_t i = j + 1; i < n; i++) {
            T f = a[i * n + j] /= d;
            for (int64_t c = j + 1; c < n; c++)
                a[i * n + c] -= f * a[j * n + c];
        }
    }
    return 0;
}

// One Jacobi rotation of a (n,n) symmetric in rows/columns p < q, which
// zeroes a[p][q]; v (n,n) accumulates the rotations (its columns).
static void K(jacobi_rotate)(int64_t n, T *a, T *v, int64_t p, int64_t q)
{
    T apq = a[p * n + q];
    T theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
    /* The smaller root of t^2 + 2 theta t - 1 = 0: the rotation stays below 45 degrees. */
    T t = (T)((theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1)));
    T c = (T)(1 / sqrt(t * t + 1)), s = t * c;
    for (int64_t r = 0; r < n; r++) {
        T arp = a[r * n + p], arq = a[r * n + q];
        a[r * n + p] = c * arp - s * arq;
        a[r * n + q] = s * arp + c * arq;
    }
    for (int64_t r = 0; r < n; r++) {
        T apr = a[p * n + r], aqr = a[q * n + r];
        a[p * n + r] = c * apr - s * aqr;
        a[q * n + r] = s * apr + c * aqr;
    }
    a[p * n + q] = a[q * n + p] = 0; /* what the rotation was for, exactly */
    for (int64_t r = 0; r < n; r++) {
        T vrp = v[r * n + p], vrq = v[r * n + q];
        v[r * n + p] = c * vrp - s * vrq;
        v[r * n + q] = s * vrp + c * vrq;
    }
}

// Symmetric eigenproblem by cyclic Jacobi: a (n,n), its lower triangle read
// (and overwritten); w (n) the eigenvalues, unsorted; v (n,n) the
// eigenvectors as columns. Sweeps until the off-diagonal part is negligible.
static void K(eigh_plain)(int64_t n, T *a, T *w, T *v)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            if (j > i)
                a[i * n + j] = a[j * n + i];
            v[i * n + j] = i == j;
        }
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, all = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double e = (double)a[i * n + j] * (double)a[i * n + j];
                all += e;
                off += i == j ? 0 : e;
            }
        /* Converged when the off-diagonal part is below T's precision squared. */
        if (off <= all * (sizeof(T) < sizeof(double) ? 1e-15 : 1e-31))
            break;
        for (int64_t p = 0; p < n; p++)
            for (int64_t q = p + 1; q < n; q++)
                if (a[p * n + q] != 0)
                    K(jacobi_rotate)(n, a, v, p, q);
    }
    for (int64_t i = 0; i < n; i++)
        w[i] = a[i * n + i];
}

// Eigenpairs put in ascending order, each eigenvector's largest entry (the
// first of equal ones) made positive, so the result is deterministic and
// continuous where the eigenvalues are distinct: w (n), v (n,n) columns.
static void K(eigh_normalize)(int64_t n, T *w, T *v)
{
    for (int64_t i = 1; i < n; i++) /* insertion sort of the pairs: n is small */
        for (int64_t j = i; j > 0 && w[j] < w[j - 1]; j--) {
            T t = w[j];
            w[j] = w[j - 1];
            w[j - 1] = t;
            for (int64_t r = 0; r < n; r++) {
                t = v[r * n + j];
                v[r * n + j] = v[r * n + j - 1];
                v[r * n + j - 1] = t;
            }
        }
    for (int64_t c = 0; c < n; c++) {
        int64_t big = 0;
        for (int64_t r = 1; r < n; r++)
            if (fabs(v[r * n + c]) > fabs(v[big * n + c]) * (1 + 1e-6))
                big = r;
        if (v[big * n + c] < 0)
            for (int64_t r = 0; r < n; r++)
                v[r * n + c] = -v[r * n + c];
    }
}

/* ---- batches: one factorization per matrix, LAPACK when it takes the size ---------------- */

// Cholesky of each matrix: a, l (batches,n,n). Returns -1, or the first
// batch element that is not positive definite (*minor: its failing order).
static int64_t K(cholesky_run)(int64_t batches, int64_t n, const T *a, T *l, int64_t *minor)
{
    memcpy(l, a, (size_t)(batches * n * n) * sizeof(T));
    for (int64_t t = 0; t < batches; t++) {
        T *m = l + t * n * n;
        int64_t info = -1;
#ifdef AD_HAVE_LAPACK
        if (lapack_fits(n))
            info = K(lapack_potrf)(n, m);
#endif
        if (info < 0)
            info = K(cholesky_plain)(n, m);
        if (info) {
            *minor = info;
            return t;
        }
        for (int64_t i = 0; i < n; i++) /* LAPACK leaves the other triangle as it was */
            for (int64_t j = i + 1; j < n; j++)
                m[i * n + j] = 0;
    }
    return -1;
}

// x <- tri(a)^-1 x: a (n,n), x (n,k); BLAS's trsm when there is one.
static void K(triangular_one)(int64_t n, int64_t k, const T *a, T *x, bool upper, bool unit)
{
#ifdef AD_HAVE_BLAS
    if (lapack_fits(n) && k > 0 && k <= INT_MAX) {
        K(blas_trsm)(n, k, a, x, upper, unit);
        return;
    }
#endif
    K(triangular_plain)(n, k, a, x, upper, unit);
}

// y = solve_triangular(a, b): a (..,n,n), b (..,n,k), y (..,n,k) batch-broadcast.
static void K(triangular_run)(ad_tensor *y)
{
    const ad_tensor *a = y->src[0], *b = y->src[1];
    int nb = y->ndim - 2;
    int64_t n = y->shape[nb], k = y->shape[nb + 1], batches = ad__numel(nb, y->shape);
    bool upper = y->param[0].i != 0, unit = y->param[1].i != 0;
    for (int64_t t = 0; t < batches; t++) {
        T *x = (T *)y->data + t * n * k;
        memcpy(x, (const T *)b->data + batch_offset(b, y, t), (size_t)(n * k) * sizeof(T));
        K(triangular_one)(n, k, (const T *)a->data + batch_offset(a, y, t), x, upper, unit);
    }
}

// LU of a (n,n) into lu (n,n) as K(lu_plain) leaves it (ipiv: n ints of scratch).
static int64_t K(lu_one)(int64_t n, const T *a, T *lu, int64_t *piv, int *ipiv, int *sign)
{
#ifdef AD_HAVE_LAPACK
    if (lapack_fits(n)) {
        /* Column-major A is row-major A^T: factor it, then transpose back. */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                lu[j * n + i] = a[i * n + j];
        int64_t info = K(lapack_getrf)(n, lu, ipiv);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i + 1; j < n; j++) {
                T t = lu[i * n + j];
                lu[i * n + j] = lu[j * n + i];
                lu[j * n + i] = t;
            }
        *sign = 1;
        for (int64_t i = 0; i < n; i++) {
            piv[i] = ipiv[i] - 1;
            *sign = piv[i] != i ? -*sign : *sign;
        }
        return info;
    }
#else
    (void)ipiv;
#endif
    memcpy(lu, a, (size_t)(n * n) * sizeof(T));
    return K(lu_plain)(n, lu, piv, sign);
}

// y = solve(a, b), shapes as K(triangular_run); lu (n,n), piv, ipiv (n):
// scratch. Returns -1, or the first batch element whose A is singular.
static int64_t K(solve_run)(ad_tensor *y, T *lu, int64_t *piv, int *ipiv)
{
    const ad_tensor *a = y->src[0], *b = y->src[1];
    int nb = y->ndim - 2;
    int64_t n = y->shape[nb], k = y->shape[nb + 1], batches = ad__numel(nb, y->shape);
    for (int64_t t = 0; t < batches; t++) {
        int sign;
        if (K(lu_one)(n, (const T *)a->data + batch_offset(a, y, t), lu, piv, ipiv, &sign))
            return t;
        T *x = (T *)y->data + t * n * k;
        memcpy(x, (const T *)b->data + batch_offset(b, y, t), (size_t)(n * k) * sizeof(T));
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < k && piv[i] != i; c++) {
                T s = x[i * k + c];
                x[i * k + c] = x[piv[i] * k + c];
                x[piv[i] * k + c] = s;
            }
        K(triangular_one)(n, k, lu, x, false, true);
        K(triangular_one)(n, k, lu, x, true, false);
    }
    return -1;
}

// y = log|det a| for a (..,n,n), y (..); the signs go to y->param[0].p when
// set. A singular matrix gives -inf and sign 0.
static void K(logabsdet_run)(ad_tensor *y, T *lu, int64_t *piv, int *ipiv)
{
    const ad_tensor *a = y->src[0];
    int64_t n = a->shape[a->ndim - 1];
    T *out = y->data, *signs = y->param[0].p;
    for (int64_t t = 0; t < y->numel; t++) {
        int sign;
        T sum = 0;
        if (K(lu_one)(n, (const T *)a->data + t * n * n, lu, piv, ipiv, &sign)) {
            sign = 0;
            sum = -(T)INFINITY;
        }
        for (int64_t i = 0; i < n && sign; i++) {
            T d = lu[i * n + i];
            sum += (T)log(fabs(d));
            sign = d < 0 ? -sign : sign;
        }
        out[t] = sum;
        if (signs)
            signs[t] = (T)sign;
    }
}

// Packed eigh of a (..,n,n) into y (..,n+1,n): row 0 the eigenvalues, rows
// 1..n the eigenvectors as columns. a: (n,n) scratch; work, iwork: dsyevd's.
static void K(eigh_run)(ad_tensor *y, T *a, T *work, int *iwork)
{
    const ad_tensor *x = y->src[0];
    int64_t n = x->shape[x->ndim - 1], batches = n ? x->numel / (n * n) : 0;
    for (int64_t t = 0; t < batches; t++) {
        T *w = (T *)y->data + t * (n + 1) * n, *v = w + n;
        memcpy(a, (const T *)x->data + t * n * n, (size_t)(n * n) * sizeof(T));
        int64_t info = -1;
#ifdef AD_HAVE_LAPACK
        if (lapack_fits(n) && (info = K(lapack_syevd)(n, a, w, work, iwork)) == 0)
            for (int64_t i = 0; i < n; i++) /* column-major eigenvectors: transpose */
                for (int64_t j = 0; j < n; j++)
                    v[i * n + j] = a[j * n + i];
#else
        (void)work, (void)iwork;
#endif
        if (info != 0) { /* no LAPACK, or it did not converge: Jacobi always does */
            memcpy(a, (const T *)x->data + t * n * n, (size_t)(n * n) * sizeof(T));
            K(eigh_plain)(n, a, w, v);
        }
        K(eigh_normalize)(n, w, v);
    }
}
