/* Reduction kernels over T, instantiated per dtype by kernels.h (reduce.c
 * includes it). A reduction sees x as p->n_out groups of p->n_red elements
 * (ad__reduce_plan): element r of group o is x[ad__plan_base(p, o) +
 * ad__plan_off(p, r)]. Not include-guarded: included once per dtype. */
#include <tgmath.h>

// sum of whole rows: x: (n_rows, n_out) -> y: (n_out); accumulates in T, row by row
static void K(sum_rows)(const T *x, T *y, int64_t n_rows, int64_t n_out)
{
    for (int64_t o = 0; o < n_out; o++)
        y[o] = 0;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t o = 0; o < n_out; o++)
            y[o] += x[r * n_out + o];
}

// sum per group, accumulated in double: x: (groups of p) -> y: (p->n_out)
static void K(sum_groups)(const T *x, T *y, const ad__reduce_plan *p)
{
    for (int64_t o = 0; o < p->n_out; o++) {
        const T *g = x + ad__plan_base(p, o);
        double acc = 0;
        for (int64_t r = 0; r < p->n_red; r++)
            acc += (double)g[ad__plan_off(p, r)];
        y[o] = (T)acc;
    }
}

// the max of one group, NaN wins (the first one ends the scan): g: one group of p
static inline double K(group_max)(const T *g, const ad__reduce_plan *p)
{
    double m = -INFINITY;
    for (int64_t r = 0; r < p->n_red; r++) {
        double v = (double)g[ad__plan_off(p, r)];
        if (v > m || v != v)
            m = v;
        if (m != m)
            break;
    }
    return m;
}

// max per group: x: (groups of p) -> y: (p->n_out)
static void K(max_groups)(const T *x, T *y, const ad__reduce_plan *p)
{
    for (int64_t o = 0; o < p->n_out; o++)
        y[o] = (T)K(group_max)(x + ad__plan_base(p, o), p);
}

// max's gradient share: x: (groups of p), y: (p->n_out) its max -> share: x's shape, 1/k at each
// of a group's k maxima and 0 elsewhere, NaN across a group whose max is NaN; share is zeroed
static void K(max_share)(const T *x, const T *y, T *share, const ad__reduce_plan *p)
{
    for (int64_t o = 0; o < p->n_out; o++) {
        int64_t base = ad__plan_base(p, o), k = 0;
        double m = (double)y[o];
        if (m != m) {
            for (int64_t r = 0; r < p->n_red; r++)
                share[base + ad__plan_off(p, r)] = (T)NAN;
            continue;
        }
        for (int64_t r = 0; r < p->n_red; r++)
            k += (double)x[base + ad__plan_off(p, r)] == m;
        for (int64_t r = 0; r < p->n_red && k; r++)
            if ((double)x[base + ad__plan_off(p, r)] == m)
                share[base + ad__plan_off(p, r)] = (T)(1.0 / (double)k);
    }
}

// logsumexp per group, m + log(sum(exp(x - m))) in double: x: (groups of p) -> y: (p->n_out)
static void K(logsumexp_groups)(const T *x, T *y, const ad__reduce_plan *p)
{
    for (int64_t o = 0; o < p->n_out; o++) {
        const T *g = x + ad__plan_base(p, o);
        double m = K(group_max)(g, p);
        if (isinf(m) || m != m) {
            y[o] = (T)m; /* all -inf gives -inf; +inf or NaN passes through */
            continue;
        }
        double s = 0;
        for (int64_t r = 0; r < p->n_red; r++)
            s += exp((double)g[ad__plan_off(p, r)] - m);
        y[o] = (T)(m + log(s));
    }
}

// the zero mask: m = 1 where x == 0 (either sign), else 0; x, m: (n)
static void K(zero_mask)(const T *x, T *m, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] == 0 ? (T)1 : (T)0;
}

// product per group, accumulated in double: x: (groups of p) -> y: (p->n_out)
static void K(prod_groups)(const T *x, T *y, const ad__reduce_plan *p)
{
    for (int64_t o = 0; o < p->n_out; o++) {
        const T *g = x + ad__plan_base(p, o);
        double acc = 1;
        for (int64_t r = 0; r < p->n_red; r++)
            acc *= (double)g[ad__plan_off(p, r)];
        y[o] = (T)acc;
    }
}

// prod's gradient constants, all x's shape, for a group with c zeros: z = [x == 0];
// a = [c == 0 or (c == 1 and z)]; b = [(c == 1 and not z) or (c == 2 and z)]; d = [c == 2 and z]
static void K(prod_coefficients)(const T *x, T *z, T *a, T *b, T *d, const ad__reduce_plan *p)
{
    for (int64_t o = 0; o < p->n_out; o++) {
        int64_t base = ad__plan_base(p, o), c = 0;
        for (int64_t r = 0; r < p->n_red; r++)
            c += x[base + ad__plan_off(p, r)] == 0;
        for (int64_t r = 0; r < p->n_red; r++) {
            int64_t i = base + ad__plan_off(p, r);
            bool zero = x[i] == 0;
            z[i] = (T)zero;
            a[i] = (T)(c == 0 || (c == 1 && zero));
            b[i] = (T)((c == 1 && !zero) || (c == 2 && zero));
            d[i] = (T)(c == 2 && zero);
        }
    }
}

// vector p-norm per group, accumulated in double (p > 0 or inf; inf: max |x|, NaN wins):
// x: (groups of p) -> y: (p->n_out)
static void K(norm_groups)(const T *x, T *y, const ad__reduce_plan *p, double ord)
{
    for (int64_t o = 0; o < p->n_out; o++) {
        const T *g = x + ad__plan_base(p, o);
        double acc = 0;
        for (int64_t r = 0; r < p->n_red; r++) {
            double v = fabs((double)g[ad__plan_off(p, r)]);
            if (isinf(ord))
                acc = v > acc || v != v ? v : acc;
            else if (ord == 1)
                acc += v;
            else if (ord == 2)
                acc += v * v;
            else
                acc += pow(v, ord);
            if (acc != acc)
                break;
        }
        y[o] = (T)(isinf(ord) || ord == 1 ? acc : ord == 2 ? sqrt(acc) : pow(acc, 1 / ord));
    }
}

// sign(x) with sign(0) = 0 and sign(NaN) = NaN: x, s: (n)
static void K(sign)(const T *x, T *s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        s[i] = x[i] > 0 ? (T)1 : x[i] < 0 ? (T)-1 : x[i] == 0 ? (T)0 : x[i];
}

// the inf-norm's slope: x: (groups of p), y: (p->n_out) -> s: x's shape, sign(x) / k at each of
// the k elements with |x| = y, 0 elsewhere (all 0 when y is NaN, as PyTorch); s is zeroed
static void K(norm_inf_slope)(const T *x, const T *y, T *s, const ad__reduce_plan *p)
{
    for (int64_t o = 0; o < p->n_out; o++) {
        int64_t base = ad__plan_base(p, o), k = 0;
        for (int64_t r = 0; r < p->n_red; r++)
            k += fabs(x[base + ad__plan_off(p, r)]) == y[o];
        for (int64_t r = 0; r < p->n_red && k; r++) {
            T v = x[base + ad__plan_off(p, r)];
            if (fabs(v) == y[o])
                s[base + ad__plan_off(p, r)] = (T)((v > 0) - (v < 0)) / (T)k;
        }
    }
}

// running sum along an axis, accumulated in double, from the end when reverse:
// x, y: (outer, n, inner)
static void K(cumsum_scan)(const T *x, T *y, int64_t outer, int64_t n, int64_t inner, bool reverse)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double acc = 0;
            for (int64_t k = 0; k < n; k++) {
                int64_t at = (o * n + (reverse ? n - 1 - k : k)) * inner + i;
                acc += (double)x[at];
                y[at] = (T)acc;
            }
        }
}

// running product along an axis, accumulated in double, from the end when reverse:
// x, y: (outer, n, inner)
static void K(cumprod_scan)(const T *x, T *y, int64_t outer, int64_t n, int64_t inner, bool reverse)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double acc = 1;
            for (int64_t k = 0; k < n; k++) {
                int64_t at = (o * n + (reverse ? n - 1 - k : k)) * inner + i;
                acc *= (double)x[at];
                y[at] = (T)acc;
            }
        }
}

// log(e^a + e^b) as max + log1p(e^(min - max)), so that nothing overflows; two equal
// infinities give themselves (no inf - inf), and a NaN gives NaN
static inline double K(log_add_exp)(double a, double b)
{
    if (a != a || b != b)
        return a + b;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    if (lo == hi && isinf(hi))
        return hi;
    return hi + log1p(exp(lo - hi));
}

// running log-sum-exp along an axis in one pass, y_k = log_add_exp(y_{k-1}, x_k) in double
// (starting from -inf), from the end when reverse: x, y: (outer, n, inner)
static void K(logcumsumexp_scan)(const T *x, T *y, int64_t outer, int64_t n, int64_t inner,
                                 bool reverse)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double acc = -INFINITY;
            for (int64_t k = 0; k < n; k++) {
                int64_t at = (o * n + (reverse ? n - 1 - k : k)) * inner + i;
                acc = K(log_add_exp)(acc, (double)x[at]);
                y[at] = (T)acc;
            }
        }
}

// the zero number `level` (0 for the first) of each run along the axis, counted from the
// run's start (its end when reverse): m = 1 there and 0 elsewhere; returns true when some
// run has that many zeros. x, m: (outer, n, inner)
static bool K(nth_zero)(const T *x, T *m, int64_t outer, int64_t n, int64_t inner, int64_t level,
                        bool reverse)
{
    bool any = false;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t seen = 0;
            for (int64_t k = 0; k < n; k++) {
                int64_t at = (o * n + (reverse ? n - 1 - k : k)) * inner + i;
                bool hit = x[at] == 0 && seen++ == level;
                m[at] = hit ? (T)1 : (T)0;
                any |= hit;
            }
        }
    return any;
}

// g's sign masks, a NaN counting as both signs (so that it reaches both halves):
// pos = [not g <= 0], neg = [not g >= 0], nonzero = [g != 0]; all (n)
static void K(sign_masks)(const T *g, T *pos, T *neg, T *nonzero, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        pos[i] = !(g[i] <= 0) ? (T)1 : (T)0;
        neg[i] = !(g[i] >= 0) ? (T)1 : (T)0;
        nonzero[i] = g[i] != 0 ? (T)1 : (T)0;
    }
}

// argmax (largest) or argmin along the middle axis: x: (outer, n, inner) -> y: (outer, inner),
// the index of the first extreme element, a NaN counting as the extreme (torch's rule)
static void K(arg_extreme)(const T *x, int64_t outer, int64_t n, int64_t inner, bool largest,
                           int64_t *y)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            const T *s = x + o * n * inner + in;
            int64_t best = 0;
            T v = s[0];
            for (int64_t r = 1; r < n && v == v; r++) {
                T u = s[r * inner];
                if (u != u || (largest ? u > v : u < v)) {
                    best = r;
                    v = u;
                }
            }
            y[o * inner + in] = best;
        }
}

// True when a sorts strictly before b: ascending with NaN last, or descending with NaN first
static inline bool K(sorts_before)(T a, T b, bool descending)
{
    if (descending)
        return a > b || (a != a && b == b);
    return a < b || (a == a && b != b);
}

// argsort along the middle axis, stable (equal elements keep their order, as torch's
// stable sort): x: (outer, n, inner) -> y: (outer, n, inner) indices; scratch: (n) int64
static void K(argsort)(const T *x, int64_t outer, int64_t n, int64_t inner, bool descending,
                       int64_t *y, int64_t *scratch)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            const T *s = x + o * n * inner + in;
            int64_t *idx = y + o * n * inner + in;
            for (int64_t r = 0; r < n; r++)
                idx[r * inner] = r;
            /* bottom-up merge sort of the strided index run, through scratch */
            for (int64_t width = 1; width < n; width *= 2) {
                for (int64_t lo = 0; lo < n; lo += 2 * width) {
                    int64_t mid = lo + width < n ? lo + width : n;
                    int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
                    int64_t i = lo, j = mid, k = 0;
                    while (i < mid && j < hi) {
                        int64_t a = idx[i * inner], b = idx[j * inner];
                        if (K(sorts_before)(s[b * inner], s[a * inner], descending)) {
                            scratch[k++] = b;
                            j++;
                        } else {
                            scratch[k++] = a;
                            i++;
                        }
                    }
                    while (i < mid)
                        scratch[k++] = idx[(i++) * inner];
                    while (j < hi)
                        scratch[k++] = idx[(j++) * inner];
                    for (int64_t t = 0; t < k; t++)
                        idx[(lo + t) * inner] = scratch[t];
                }
            }
        }
}
