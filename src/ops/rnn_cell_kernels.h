/* The loops of the fused LSTM cell ops (rnn_cell.c), written once over T and
 * instantiated for float and double by kernels.h. float32 sigmoid and tanh
 * come from fast_float.h, as in unary_kernels.h; <tgmath.h> (included by
 * rnn_cell.c) makes the float64 ones call libm.
 *
 * They evaluate the expressions of the composition they replace (slices,
 * sigmoid, tanh, mul, add; sigmoid and tanh as unary_kernels.h computes them)
 * in T and in the same order, so the fused ops give the composition's bits,
 * values and gradients (test_rnn_cell checks it). Each row r of a gate tensor
 * g is [i, f, g, o], 4 h elements (torch's order); each row of c, c' and h'
 * is h elements. Not include-guarded: see kernels.h. */

// sigmoid as the sigmoid op computes it: never exp of a large positive number; float32
// through fast_float.h, as unary_kernels.h does
static inline T K(lstm_sigmoid)(T x)
{
    if (sizeof(T) == sizeof(float))
        return (T)ad__sigmoidf((float)x);
    return (T)(x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)));
}

// tanh as the tanh op computes it (float32 through fast_float.h)
static inline T K(lstm_tanh)(T x)
{
    if (sizeof(T) == sizeof(float))
        return (T)ad__tanhf((float)x);
    return (T)tanh(x);
}

// lstm_cell_c rows [begin, end): c'[r] = sigmoid(f) c + sigmoid(i) tanh(g); g: (rows, 4h);
// c, y: (rows, h); saved: (rows, 3h) [sigmoid(i), sigmoid(f), tanh(g)] for the backward, or NULL
static void K(lstm_cell_c_rows)(int64_t begin, int64_t end, int64_t h, const T *restrict g,
                                const T *restrict c, T *restrict y, T *restrict saved)
{
    for (int64_t r = begin; r < end; r++) {
        const T *gi = g + r * 4 * h, *gf = gi + h, *gg = gi + 2 * h, *cr = c + r * h;
        T *yr = y + r * h;
        if (!saved) {
            for (int64_t j = 0; j < h; j++)
                yr[j] = (T)(K(lstm_sigmoid)(gf[j]) * cr[j] +
                            K(lstm_sigmoid)(gi[j]) * K(lstm_tanh)(gg[j]));
            continue;
        }
        /* each activation in its own loop (they vectorise), then the sum */
        T *si = saved + r * 3 * h, *sf = si + h, *tg = si + 2 * h;
        for (int64_t j = 0; j < h; j++)
            si[j] = K(lstm_sigmoid)(gi[j]);
        for (int64_t j = 0; j < h; j++)
            sf[j] = K(lstm_sigmoid)(gf[j]);
        for (int64_t j = 0; j < h; j++)
            tg[j] = K(lstm_tanh)(gg[j]);
        for (int64_t j = 0; j < h; j++)
            yr[j] = (T)(sf[j] * cr[j] + si[j] * tg[j]);
    }
}

// lstm_cell_h rows [begin, end): h'[r] = sigmoid(o) tanh(c'); g: (rows, 4h); c, y: (rows, h);
// saved: (rows, 2h) [sigmoid(o), tanh(c')] for the backward, or NULL
static void K(lstm_cell_h_rows)(int64_t begin, int64_t end, int64_t h, const T *restrict g,
                                const T *restrict c, T *restrict y, T *restrict saved)
{
    for (int64_t r = begin; r < end; r++) {
        const T *go = g + r * 4 * h + 3 * h, *cr = c + r * h;
        T *yr = y + r * h;
        if (!saved) {
            for (int64_t j = 0; j < h; j++)
                yr[j] = (T)(K(lstm_sigmoid)(go[j]) * K(lstm_tanh)(cr[j]));
            continue;
        }
        T *so = saved + r * 2 * h, *tc = so + h;
        for (int64_t j = 0; j < h; j++)
            so[j] = K(lstm_sigmoid)(go[j]);
        for (int64_t j = 0; j < h; j++)
            tc[j] = K(lstm_tanh)(cr[j]);
        for (int64_t j = 0; j < h; j++)
            yr[j] = (T)(so[j] * tc[j]);
    }
}

// lstm_cell_c backward rows [begin, end), from the forward's saved [si, sf, tg]:
// dg[r] += [dy tg si (1 - si), dy c sf (1 - sf), dy si (1 - tg^2), 0], dc[r] += dy sf;
// dy, c, dc: (rows, h); saved: (rows, 3h); dg: (rows, 4h); dg or dc NULL: not wanted
static void K(lstm_cell_c_grad_rows)(int64_t begin, int64_t end, int64_t h, const T *restrict dy,
                                     const T *restrict c, const T *restrict saved, T *restrict dg,
                                     T *restrict dc)
{
    for (int64_t r = begin; r < end; r++) {
        const T *dr = dy + r * h, *cr = c + r * h, *si = saved + r * 3 * h, *sf = si + h,
                *tg = si + 2 * h;
        if (dg) {
            T *di = dg + r * 4 * h, *df = di + h, *dgg = di + 2 * h;
            for (int64_t j = 0; j < h; j++) {
                di[j] += (T)(dr[j] * tg[j] * (si[j] * ((T)1 - si[j])));
                df[j] += (T)(dr[j] * cr[j] * (sf[j] * ((T)1 - sf[j])));
                dgg[j] += (T)(dr[j] * si[j] * ((T)1 - tg[j] * tg[j]));
            }
        }
        if (dc)
            for (int64_t j = 0; j < h; j++)
                dc[r * h + j] += (T)(dr[j] * sf[j]);
    }
}

// lstm_cell_h backward rows [begin, end), from the forward's saved [so, tc]:
// dg[r] += [0, 0, 0, dy tc so (1 - so)], dc[r] += dy so (1 - tc^2);
// dy, dc: (rows, h); saved: (rows, 2h); dg: (rows, 4h); dg or dc NULL: not wanted
static void K(lstm_cell_h_grad_rows)(int64_t begin, int64_t end, int64_t h, const T *restrict dy,
                                     const T *restrict saved, T *restrict dg, T *restrict dc)
{
    for (int64_t r = begin; r < end; r++) {
        const T *dr = dy + r * h, *so = saved + r * 2 * h, *tc = so + h;
        if (dg) {
            T *dgo = dg + r * 4 * h + 3 * h;
            for (int64_t j = 0; j < h; j++)
                dgo[j] += (T)(dr[j] * tc[j] * (so[j] * ((T)1 - so[j])));
        }
        if (dc)
            for (int64_t j = 0; j < h; j++)
                dc[r * h + j] += (T)(dr[j] * so[j] * ((T)1 - tc[j] * tc[j]));
    }
}
