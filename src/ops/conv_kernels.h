/* Convolution and pooling kernels over T (float or double), instantiated by
 * kernels.h from conv.c, which defines conv_geom first. Rows of the column
 * matrix are (channel, kernel row, kernel column) in row-major order, its
 * columns the output positions (oh, ow): the layout the GEMMs of conv.c read. */

// cols[(c kh + i) kw + j, oh ow_n + ow] = x[c, oh sh - ph + i dh, ow sw - pw + j dw],
// 0 where that lies in the padding.
// x: (c, h, w); cols: (c kh kw, oh ow)
static void K(im2col)(const T *restrict x, const conv_geom *g, T *restrict cols)
{
    const int64_t h = g->h, w = g->w, oh_n = g->oh, ow_n = g->ow, l = oh_n * ow_n;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                T *row = cols + ((c * g->kh + i) * g->kw + j) * l;
                for (int64_t oh = 0; oh < oh_n; oh++) {
                    int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    T *out = row + oh * ow_n;
                    if (ih < 0 || ih >= h) {
                        for (int64_t ow = 0; ow < ow_n; ow++)
                            out[ow] = 0;
                        continue;
                    }
                    const T *in = x + (c * h + ih) * w;
                    for (int64_t ow = 0; ow < ow_n; ow++) {
                        int64_t iw = ow * g->sw - g->pw + j * g->dw;
                        out[ow] = iw >= 0 && iw < w ? in[iw] : 0;
                    }
                }
            }
}

// The adjoint of im2col: x[c, ih, iw] += every column entry im2col read from it.
// cols: (c kh kw, oh ow); x: (c, h, w), accumulated into
static void K(col2im)(const T *restrict cols, const conv_geom *g, T *restrict x)
{
    const int64_t h = g->h, w = g->w, oh_n = g->oh, ow_n = g->ow, l = oh_n * ow_n;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const T *row = cols + ((c * g->kh + i) * g->kw + j) * l;
                for (int64_t oh = 0; oh < oh_n; oh++) {
                    int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    if (ih < 0 || ih >= h)
                        continue;
                    const T *in = row + oh * ow_n;
                    T *out = x + (c * h + ih) * w;
                    for (int64_t ow = 0; ow < ow_n; ow++) {
                        int64_t iw = ow * g->sw - g->pw + j * g->dw;
                        if (iw >= 0 && iw < w)
                            out[iw] += in[ow];
                    }
                }
            }
}

// The maximum of each 2x2, stride-2 window of output row oh, unrolled: the
// same rule as max_pool_argmax, no loops (the common pooling of a CNN).
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
// first maximal element in row-major window order, the first NaN if any (as
// PyTorch); padding is -inf, so it is never chosen. Returns false when a
// window lies wholly in the padding (it has no element to choose). The
// comparison is written for conditional moves: a data-dependent branch here
// mispredicts every few elements.
// x: (planes = g->n, h, w); idx: (planes, oh, ow)
static bool K(max_pool_argmax)(const T *restrict x, const conv_geom *g, int64_t *restrict idx)
{
    const int64_t h = g->h, w = g->w;
    const bool two_by_two = g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 &&
                            g->pw == 0 && g->dh == 1 && g->dw == 1;
    for (int64_t plane = 0; plane < g->n; plane++) {
        const T *P = x + plane * h * w;
        for (int64_t oh = 0; two_by_two && oh < g->oh; oh++)
            K(argmax_2x2_row)(P, w, oh, g->ow, idx + (plane * g->oh + oh) * g->ow);
        for (int64_t oh = 0; !two_by_two && oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw, best = -1;
                T best_v = 0;
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = h0 + i * g->dh;
                    if (ih < 0 || ih >= h)
                        continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iw = w0 + j * g->dw;
                        if (iw < 0 || iw >= w)
                            continue;
                        T v = P[ih * w + iw];
                        bool take = best < 0 || (!(v <= best_v) & (best_v == best_v));
                        best = take ? ih * w + iw : best;
                        best_v = take ? v : best_v;
                    }
                }
                if (best < 0)
                    return false;
                idx[(plane * g->oh + oh) * g->ow + ow] = best;
            }
    }
    return true;
}
