/* The loops of the fused normalisations (norm.c), written once over T and
 * instantiated for float and double by kernels.h. They accumulate in double
 * whatever T is. Not include-guarded: see kernels.h. */

// layer_norm rows: y[r] = (x[r] - mean) * rstd[r], rstd[r] = 1 / sqrt(var + eps) with the biased
// variance, for rows [begin, end); x, y: (rows, n), n >= 1; rstd: (rows)
static void K(layer_norm_rows)(int64_t begin, int64_t end, int64_t n, const T *restrict x,
                               T *restrict y, double *restrict rstd, double eps)
{
    for (int64_t r = begin; r < end; r++) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        double sum = 0, squares = 0;
        for (int64_t i = 0; i < n; i++)
            sum += xr[i];
        double mean = sum / (double)n;
        /* two passes: the squares of deviations, so a large mean cancels nothing */
        for (int64_t i = 0; i < n; i++) {
            double d = xr[i] - mean;
            squares += d * d;
        }
        double s = 1.0 / sqrt(squares / (double)n + eps);
        rstd[r] = s;
        for (int64_t i = 0; i < n; i++)
            yr[i] = (T)((xr[i] - mean) * s);
    }
}

// layer_norm backward rows: dx[r] = rstd[r] (g[r] - mean(g[r]) - y[r] mean(g[r] y[r])) for rows
// [begin, end); g, y, dx: (rows, n), n >= 1; rstd: (rows)
static void K(layer_norm_grad_rows)(int64_t begin, int64_t end, int64_t n, const T *restrict g,
                                    const T *restrict y, const double *restrict rstd,
                                    T *restrict dx)
{
    for (int64_t r = begin; r < end; r++) {
        const T *gr = g + r * n, *yr = y + r * n;
        T *dr = dx + r * n;
        double sg = 0, sgy = 0;
        for (int64_t i = 0; i < n; i++) {
            sg += gr[i];
            sgy += (double)gr[i] * yr[i];
        }
        double mg = sg / (double)n, mgy = sgy / (double)n, s = rstd[r];
        for (int64_t i = 0; i < n; i++)
            dr[i] = (T)(s * (gr[i] - mg - yr[i] * mgy));
    }
}
