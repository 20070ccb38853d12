/* Layer kernels over T (float or double), instantiated by kernels.h from
 * layers.c, which defines pool_shape first. */

// The maximum of each 2x2, stride-2 window of output row oh, unrolled: the
// same rule as maxpool_argmax, no loops.
// plane: (h, w); idx_row: (wo), positions in the plane.
static void K(argmax_2x2_row)(const T *restrict plane, int64_t w, int64_t oh, int64_t wo,
                              int64_t *restrict idx_row)
{
    const T *r0 = plane + 2 * oh * w, *r1 = r0 + w;
    for (int64_t ow = 0; ow < wo; ow++) {
        const T *q0 = r0 + 2 * ow, *q1 = r1 + 2 * ow;
        int64_t best = 2 * oh * w + 2 * ow;
        T best_v = q0[0];
        bool take = !(q0[1] <= best_v) & (best_v == best_v);
        best = take ? best + 1 : best;
        best_v = take ? q0[1] : best_v;
        take = !(q1[0] <= best_v) & (best_v == best_v);
        best = take ? 2 * oh * w + w + 2 * ow : best;
        best_v = take ? q1[0] : best_v;
        take = !(q1[1] <= best_v) & (best_v == best_v);
        best = take ? 2 * oh * w + w + 2 * ow + 1 : best;
        idx_row[ow] = best;
    }
}

// idx[plane, oh, ow] = position in its plane of the window's maximum: the
// first maximal element in row-major window order, the first NaN if any
// (as PyTorch); padding is -inf, so it is never chosen. The window is
// clipped to the image first, and the comparison is written so that the
// compiler can use conditional moves: data-dependent branches here cost a
// misprediction every few elements.
// x: (planes, h, w); idx: (planes, ho, wo)
static void K(maxpool_argmax)(const T *restrict x, const pool_shape *s, int64_t *restrict idx)
{
    const int64_t h = s->h, w = s->w, ho = s->ho, wo = s->wo;
    const int k = s->kernel, st = s->stride, p = s->padding;
    for (int64_t plane = 0; plane < s->planes; plane++) {
        const T *P = x + plane * h * w;
        for (int64_t oh = 0; oh < ho; oh++) {
            int64_t *idx_row = idx + (plane * ho + oh) * wo;
            if (k == 2 && st == 2 && p == 0) {
                K(argmax_2x2_row)(P, w, oh, wo, idx_row);
                continue;
            }
            int64_t h0 = oh * st - p, h1 = h0 + k;
            h0 = h0 < 0 ? 0 : h0;
            h1 = h1 > h ? h : h1;
            for (int64_t ow = 0; ow < wo; ow++) {
                int64_t w0 = ow * st - p, w1 = w0 + k;
                w0 = w0 < 0 ? 0 : w0;
                w1 = w1 > w ? w : w1;
                int64_t best = h0 * w + w0;
                T best_v = P[best];
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        T v = P[ih * w + iw];
                        bool take = !(v <= best_v) & (best_v == best_v);
                        best = take ? ih * w + iw : best;
                        best_v = take ? v : best_v;
                    }
                idx_row[ow] = best;
            }
        }
    }
}

// mask[i] = 0 with probability p, else keep = 1 / (1 - p), one uniform draw
// per element in row-major order.
// mask: (numel)
static void K(dropout_mask)(int64_t numel, T *restrict mask, double p, double keep, ad_rng *rng)
{
    for (int64_t i = 0; i < numel; i++)
        mask[i] = ad_rng_uniform(rng) < p ? (T)0 : (T)keep;
}
