/* The LSTM cell's gate arithmetic as two fused ops. With the gates
 * g = x W_ih^T + b_ih + h W_hh^T + b_hh of shape [..., 4 H], in torch's order
 * [i, f, g, o] along the last axis, one step is
 *
 *     c' = lstm_cell_c(g, c)  = sigmoid(g_f) c + sigmoid(g_i) tanh(g_g)
 *     h' = lstm_cell_h(g, c') = sigmoid(g_o) tanh(c')
 *
 * two recorded nodes instead of the composition's eleven (four slices, three
 * sigmoids, two tanhs, three muls, an add), and two passes over the gates
 * instead of one per node. Each op is single-output, as every table op is; g
 * feeds both, so its gradient is the sum of theirs, which the sweep makes.
 *
 * The forwards compute in the dtype, in the composition's order, so they give
 * its bits. When the node is recorded they keep the activations they computed
 * (param[0].p, in the arena) for a fused backward: when the sweep records
 * nothing, one pass writes the four gate gradients and dc, added in place into
 * the gradients being summed for g and c (ad__grad_accumulator). Under
 * create_graph the backward is built from ops (slices of g, sigmoid, tanh, mul,
 * concat), so second derivatives are exact. */
#include "ops.h"

#include "fast_float.h"

#include <tgmath.h>

/* The cell loops, once per float dtype: lstm_cell_c_rows_f32, ... */
#define KERNELS "ops/rnn_cell_kernels.h"
#include "../core/kernels.h"

/* What one parallel job runs: a forward or a fused backward of either op. */
typedef enum cell_pass {
    CELL_C,      /* c' from g and c */
    CELL_H,      /* h' from g and c' */
    CELL_C_GRAD, /* dg (parts i, f, g) and dc from dc' */
    CELL_H_GRAD, /* dg (part o) and dc' from dh' */
} cell_pass;

/* One pass over the rows of a cell op y (rows of h elements in y, 4 h in g). */
typedef struct cell_job {
    const ad_tensor *y, *dy; /* dy: the incoming gradient (backward passes) */
    ad_tensor *dg, *dc;      /* the gradients added into (backward), either NULL */
    cell_pass pass;
    int64_t h;
} cell_job;

static void cell_range(void *ctx, int64_t begin, int64_t end)
{
    const cell_job *j = ctx;
    const ad_tensor *y = j->y, *g = y->src[0], *c = y->src[1];
    void *saved = y->param[0].p, *dg = j->dg ? j->dg->data : NULL;
    void *dc = j->dc ? j->dc->data : NULL;
    const void *dy = j->dy ? j->dy->data : NULL;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        if (j->pass == CELL_C)
            lstm_cell_c_rows_f32(begin, end, j->h, g->data, c->data, y->data, saved);
        else if (j->pass == CELL_H)
            lstm_cell_h_rows_f32(begin, end, j->h, g->data, c->data, y->data, saved);
        else if (j->pass == CELL_C_GRAD)
            lstm_cell_c_grad_rows_f32(begin, end, j->h, dy, c->data, saved, dg, dc);
        else
            lstm_cell_h_grad_rows_f32(begin, end, j->h, dy, saved, dg, dc);
        break;
    case AD_F64:
        if (j->pass == CELL_C)
            lstm_cell_c_rows_f64(begin, end, j->h, g->data, c->data, y->data, saved);
        else if (j->pass == CELL_H)
            lstm_cell_h_rows_f64(begin, end, j->h, g->data, c->data, y->data, saved);
        else if (j->pass == CELL_C_GRAD)
            lstm_cell_c_grad_rows_f64(begin, end, j->h, dy, c->data, saved, dg, dc);
        else
            lstm_cell_h_grad_rows_f64(begin, end, j->h, dy, saved, dg, dc);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* Runs the job over y's rows on the thread pool. A forward row costs h
 * libm calls per activation (3 for c', 2 for h'), a backward row 4 h cheap
 * elements. */
static void cell_rows(cell_job *job)
{
    const ad_tensor *y = job->y;
    job->h = y->ndim ? y->shape[y->ndim - 1] : 0;
    if (y->numel == 0)
        return;
    int64_t rows = y->numel / job->h, grain;
    if (job->pass == CELL_C || job->pass == CELL_H)
        grain = AD__GRAIN_COSTLY / ((job->pass == CELL_C ? 3 : 2) * job->h);
    else
        grain = AD__GRAIN_CHEAP / (4 * job->h);
    ad__parallel_for(rows, grain > 1 ? grain : 1, cell_range, job);
}

/* The shape rule of both ops: g [..., 4 H] and a state s [..., H] with the
 * same leading dims (no broadcasting); y gets s's shape. */
static ad_status cell_shape(ad_tensor *y)
{
    const ad_tensor *g = y->src[0], *s = y->src[1];
    bool ok =
        g->ndim >= 1 && g->ndim == s->ndim && g->shape[g->ndim - 1] == 4 * s->shape[s->ndim - 1];
    for (int d = 0; ok && d + 1 < g->ndim; d++)
        ok = g->shape[d] == s->shape[d];
    if (!ok) {
        char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
        return ad__fail(y->tape, AD_ERR_SHAPE,
                        "%s: gates of shape %s and state of shape %s do not fit (expected gates "
                        "[..., 4 H] and state [..., H], the same leading dims)",
                        ad__ops[y->op].name, AD__SHAPE(g, s0), AD__SHAPE(s, s1));
    }
    y->ndim = s->ndim;
    y->shape = s->shape;
    return AD_OK;
}

/* The forward of either op; the activations are kept (arena, param[0].p)
 * only when the node will be recorded, for its fused backward. */
static void cell_forward(ad_tensor *y, cell_pass pass)
{
    ad_tape *tape = y->tape;
    y->param[0].p = NULL;
    bool recorded = false;
    for (int k = 0; k < 2; k++)
        recorded |= (y->src[k]->flags & AD_TF_RECORDED) && y->src[k]->tape == tape;
    if (recorded && tape->grad_enabled) {
        size_t per = pass == CELL_C ? 3 : 2;
        y->param[0].p = ad__alloc(tape, per * (size_t)y->numel * ad_dtype_size((ad_dtype)y->dtype));
        if (!y->param[0].p)
            return; /* the error is on the tape */
    }
    cell_job job = {.y = y, .pass = pass};
    cell_rows(&job);
}

/* True when the backward runs unrecorded and the forward kept its
 * activations, so that the fused kernel may run. */
static bool fusable(const ad_tensor *y, const ad_tensor *gy)
{
    return !y->tape->grad_enabled && y->param[0].p && gy->numel == y->numel &&
           gy->dtype == y->dtype;
}

/* Where the fused backward adds input j's gradient: the one being summed for
 * it when the sweep allows (gin[j] left NULL), else a new zero gin[j]; NULL
 * when input j needs none (or out of memory, with the error on the tape). */
static ad_tensor *grad_target(ad_tensor *y, int j, ad_tensor **gin)
{
    ad_tensor *x = y->src[j];
    if (!(x->flags & AD_TF_RECORDED))
        return NULL;
    ad_tensor *acc = ad__grad_accumulator(y, j);
    if (acc || y->tape->status != AD_OK)
        return acc;
    return gin[j] = ad__const_like(x, 0.0);
}

/* The fused backward of either op: one pass adds its gradients of g and of
 * the state. */
static void fused_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin, cell_pass pass)
{
    cell_job job = {.y = y, .dy = gy, .pass = pass};
    job.dg = grad_target(y, 0, gin);
    job.dc = grad_target(y, 1, gin);
    if (y->tape->status == AD_OK && (job.dg || job.dc))
        cell_rows(&job);
}

/* Part k of g's last axis (0 i, 1 f, 2 g, 3 o), h wide. */
static ad_tensor *part(ad_tensor *g, int k, int64_t h)
{
    return ad_slice(g, -1, k * h, (k + 1) * h, 1);
}

/* s (1 - s): sigmoid's derivative from its value. */
static ad_tensor *sigmoid_slope(ad_tensor *s)
{
    return ad_mul(s, ad_rsub_scalar(s, 1.0));
}

/* 1 - t^2: tanh's derivative from its value. */
static ad_tensor *tanh_slope(ad_tensor *t)
{
    return ad_rsub_scalar(ad_square(t), 1.0);
}

/* ---- lstm_cell_c: c' = sigmoid(g_f) c + sigmoid(g_i) tanh(g_g) ----------------------------
 * g [..., 4 H], c [..., H] -> c' [..., H]. param[0].p: the forward's [si, sf, tg] per row,
 * when recorded. */
// dg = [dy tg si (1 - si), dy c sf (1 - sf), dy si (1 - tg^2), 0], dc = dy sf
ad_status ad__lstm_cell_c_shape(ad_tensor *y)
{
    return cell_shape(y);
}

void ad__lstm_cell_c_forward(ad_tensor *y)
{
    cell_forward(y, CELL_C);
}

void ad__lstm_cell_c_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    if (fusable(y, gy)) {
        fused_backward(y, gy, gin, CELL_C_GRAD);
        return;
    }
    ad_tensor *g = y->src[0], *c = y->src[1];
    int64_t h = c->shape[c->ndim - 1];
    ad_tensor *si = ad_sigmoid(part(g, 0, h)), *sf = ad_sigmoid(part(g, 1, h));
    if (g->flags & AD_TF_RECORDED) {
        ad_tensor *tg = ad_tanh(part(g, 2, h));
        ad_tensor *parts[3] = {ad_mul(ad_mul(gy, tg), sigmoid_slope(si)),
                               ad_mul(ad_mul(gy, c), sigmoid_slope(sf)),
                               ad_mul(ad_mul(gy, si), tanh_slope(tg))};
        gin[0] = ad_slice_scatter(ad_concat(3, parts, -1), -1, 4 * h, 0, 1);
    }
    if (c->flags & AD_TF_RECORDED)
        gin[1] = ad_mul(gy, sf);
}

// dc' = dg_i tg si (1 - si) + dg_f c sf (1 - sf) + dg_g si (1 - tg^2) + dc sf
ad_tensor *ad__lstm_cell_c_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *g = y->src[0], *c = y->src[1];
    int64_t h = c->shape[c->ndim - 1];
    ad_tensor *si = ad_sigmoid(part(g, 0, h)), *sf = ad_sigmoid(part(g, 1, h));
    ad_tensor *dc = t[1] ? ad_mul(t[1], sf) : NULL;
    if (!t[0])
        return dc;
    ad_tensor *tg = ad_tanh(part(g, 2, h));
    ad_tensor *di = ad_mul(ad_mul(part(t[0], 0, h), tg), sigmoid_slope(si));
    ad_tensor *df = ad_mul(ad_mul(part(t[0], 1, h), c), sigmoid_slope(sf));
    ad_tensor *dg = ad_mul(ad_mul(part(t[0], 2, h), si), tanh_slope(tg));
    return ad__add_tangents(ad_add(ad_add(di, df), dg), dc);
}

ad_tensor *ad_lstm_cell_c(ad_tensor *gates, ad_tensor *c)
{
    return ad__apply(AD_OP_lstm_cell_c, 2, (ad_tensor *[]){gates, c}, NULL);
}

/* ---- lstm_cell_h: h' = sigmoid(g_o) tanh(c') ------------------------------------------------
 * g [..., 4 H], c' [..., H] -> h' [..., H]. param[0].p: the forward's [so, tc] per row, when
 * recorded. */
// dg = [0, 0, 0, dy tc so (1 - so)], dc' = dy so (1 - tc^2), tc = tanh(c')
ad_status ad__lstm_cell_h_shape(ad_tensor *y)
{
    return cell_shape(y);
}

void ad__lstm_cell_h_forward(ad_tensor *y)
{
    cell_forward(y, CELL_H);
}

void ad__lstm_cell_h_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    if (fusable(y, gy)) {
        fused_backward(y, gy, gin, CELL_H_GRAD);
        return;
    }
    ad_tensor *g = y->src[0], *c = y->src[1];
    int64_t h = c->shape[c->ndim - 1];
    ad_tensor *so = ad_sigmoid(part(g, 3, h)), *tc = ad_tanh(c);
    if (g->flags & AD_TF_RECORDED)
        gin[0] = ad_slice_scatter(ad_mul(ad_mul(gy, tc), sigmoid_slope(so)), -1, 4 * h, 3 * h, 1);
    if (c->flags & AD_TF_RECORDED)
        gin[1] = ad_mul(ad_mul(gy, so), tanh_slope(tc));
}

// dh' = dg_o tc so (1 - so) + dc' so (1 - tc^2)
ad_tensor *ad__lstm_cell_h_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *g = y->src[0], *c = y->src[1];
    int64_t h = c->shape[c->ndim - 1];
    ad_tensor *so = ad_sigmoid(part(g, 3, h)), *tc = ad_tanh(c);
    return ad__add_tangents(t[0] ? ad_mul(ad_mul(part(t[0], 3, h), tc), sigmoid_slope(so)) : NULL,
                            t[1] ? ad_mul(ad_mul(t[1], so), tanh_slope(tc)) : NULL);
}

ad_tensor *ad_lstm_cell_h(ad_tensor *gates, ad_tensor *c_next)
{
    return ad__apply(AD_OP_lstm_cell_h, 2, (ad_tensor *[]){gates, c_next}, NULL);
}
