/* Recurrent layers (torch.nn.RNN, LSTM, GRU) and their cells: compositions of
 * public ops. Each layer and direction projects the whole sequence's input in
 * one matrix product, then runs the cell step by step on the hidden state; the
 * steps are stacked into the output, so a sequence may be of any length. */
#include "nn.h"

#include "../core/util.h"

#include "autodiff/sequence.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- Cells ------------------------------------------------------------------------------ */

/* x W^T (+ b): the projection of a cell's input or state. */
static ad_tensor *project(ad_tensor *x, ad_tensor *w, ad_tensor *b)
{
    ad_tensor *y = ad_matmul_t(x, w, false, true);
    return b ? ad_add(y, b) : y;
}

/* Piece `i` of `n` equal pieces of g's last dim (the gates in torch's order). */
static ad_tensor *gate(ad_tensor *g, int i, int n)
{
    int64_t h = ad_tensor_dim(g, -1) / n;
    return ad_slice(g, -1, i * h, (i + 1) * h, 1);
}

/* RNN: h' = act(gx + h W_hh^T + b_hh), gx = x W_ih^T + b_ih. */
static ad_tensor *rnn_step(ad_tensor *gx, ad_tensor *h, ad_tensor *w_hh, ad_tensor *b_hh, bool relu)
{
    ad_tensor *a = ad_add(gx, project(h, w_hh, b_hh));
    return relu ? ad_relu(a) : ad_tanh(a);
}

/* LSTM: gates = gx + h W_hh^T + b_hh = [i, f, g, o];
 * c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c'), as two
 * fused ops (the composition of slices, sigmoid, tanh, mul and add, to the
 * bit, in two nodes instead of eleven). */
static ad_tensor *lstm_step(ad_tensor *gx, ad_tensor *h, ad_tensor *c, ad_tensor *w_hh,
                            ad_tensor *b_hh, ad_tensor **c_next)
{
    ad_tensor *g = ad_add(gx, project(h, w_hh, b_hh));
    *c_next = ad_lstm_cell_c(g, c);
    return ad_lstm_cell_h(g, *c_next);
}

/* GRU: with gx = x W_ih^T + b_ih and gh = h W_hh^T + b_hh, each [r, z, n]:
 * r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z),
 * n = tanh(gx_n + r gh_n), h' = (1 - z) n + z h = n + z (h - n). */
static ad_tensor *gru_step(ad_tensor *gx, ad_tensor *h, ad_tensor *w_hh, ad_tensor *b_hh)
{
    ad_tensor *gh = project(h, w_hh, b_hh);
    ad_tensor *r = ad_sigmoid(ad_add(gate(gx, 0, 3), gate(gh, 0, 3)));
    ad_tensor *z = ad_sigmoid(ad_add(gate(gx, 1, 3), gate(gh, 1, 3)));
    ad_tensor *n = ad_tanh(ad_add(gate(gx, 2, 3), ad_mul(r, gate(gh, 2, 3))));
    return ad_add(n, ad_mul(z, ad_sub(h, n)));
}

/* The tape of a cell's inputs, after checking the shapes: x [N, I] or [I],
 * h [N, H] or [H] alike, w_ih [G H, I], w_hh [G H, H], biases [G H]. */
static ad_tape *cell_check(const char *cell, int gates, ad_tensor *x, ad_tensor *h, ad_tensor *c,
                           ad_tensor *w_ih, ad_tensor *w_hh, ad_tensor *b_ih, ad_tensor *b_hh)
{
    ad_tape *tape = ad_tensor_tape(x) ? ad_tensor_tape(x) : ad_tensor_tape(h);
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (!x || !h || !w_ih || !w_hh || (gates == 4 && !c)) {
        ad_tape_set_error(tape, AD_ERR_NULL, "%s: an input is NULL", cell);
        return NULL;
    }
    int nd = ad_tensor_ndim(x);
    int64_t hid = ad_tensor_ndim(w_hh) == 2 ? ad_tensor_dim(w_hh, 1) : -1;
    bool ok =
        (nd == 1 || nd == 2) && ad_tensor_ndim(h) == nd &&
        (nd == 1 || ad_tensor_dim(h, 0) == ad_tensor_dim(x, 0)) && ad_tensor_dim(h, -1) == hid &&
        ad_tensor_ndim(w_ih) == 2 && ad_tensor_dim(w_ih, 0) == gates * hid &&
        ad_tensor_dim(w_ih, 1) == ad_tensor_dim(x, -1) && ad_tensor_dim(w_hh, 0) == gates * hid &&
        (!c || (ad_tensor_ndim(c) == nd && ad_tensor_dim(c, 0) == ad_tensor_dim(h, 0) &&
                ad_tensor_dim(c, -1) == hid));
    for (int i = 0; ok && i < 2; i++) {
        const ad_tensor *b = i ? b_hh : b_ih;
        ok = !b || (ad_tensor_ndim(b) == 1 && ad_tensor_dim(b, 0) == gates * hid);
    }
    if (!ok) {
        char sx[96], sh[96], si[96], shh[96];
        ad_shape_string(sx, sizeof sx, ad_tensor_ndim(x), ad_tensor_shape(x));
        ad_shape_string(sh, sizeof sh, ad_tensor_ndim(h), ad_tensor_shape(h));
        ad_shape_string(si, sizeof si, ad_tensor_ndim(w_ih), ad_tensor_shape(w_ih));
        ad_shape_string(shh, sizeof shh, ad_tensor_ndim(w_hh), ad_tensor_shape(w_hh));
        ad_tape_set_error(tape, AD_ERR_SHAPE,
                          "%s: x %s, h %s, w_ih %s, w_hh %s do not fit (expected x [N, I], h "
                          "[N, H], w_ih [%d H, I], w_hh [%d H, H], biases [%d H])",
                          cell, sx, sh, si, shh, gates, gates, gates);
        return NULL;
    }
    return tape;
}

ad_tensor *ad_rnn_cell(ad_tensor *x, ad_tensor *h, ad_tensor *w_ih, ad_tensor *w_hh,
                       ad_tensor *b_ih, ad_tensor *b_hh, bool relu)
{
    if (!cell_check("rnn_cell", 1, x, h, NULL, w_ih, w_hh, b_ih, b_hh))
        return NULL;
    return rnn_step(project(x, w_ih, b_ih), h, w_hh, b_hh, relu);
}

ad_tensor *ad_lstm_cell(ad_tensor *x, ad_tensor *h, ad_tensor *c, ad_tensor *w_ih, ad_tensor *w_hh,
                        ad_tensor *b_ih, ad_tensor *b_hh, ad_tensor **c_next)
{
    if (c_next)
        *c_next = NULL;
    ad_tape *tape = cell_check("lstm_cell", 4, x, h, c, w_ih, w_hh, b_ih, b_hh);
    if (!tape)
        return NULL;
    if (!c_next) {
        ad_tape_set_error(tape, AD_ERR_ARG, "lstm_cell: c_next is NULL");
        return NULL;
    }
    ad_tensor *h2 = lstm_step(project(x, w_ih, b_ih), h, c, w_hh, b_hh, c_next);
    if (!h2)
        *c_next = NULL;
    return h2;
}

ad_tensor *ad_gru_cell(ad_tensor *x, ad_tensor *h, ad_tensor *w_ih, ad_tensor *w_hh,
                       ad_tensor *b_ih, ad_tensor *b_hh)
{
    if (!cell_check("gru_cell", 3, x, h, NULL, w_ih, w_hh, b_ih, b_hh))
        return NULL;
    return gru_step(project(x, w_ih, b_ih), h, w_hh, b_hh);
}

/* ---- The layer -------------------------------------------------------------------------- */

typedef struct rnn {
    ad_rnn_config c;
    ad_rng rng;
} rnn;

static const char *mode_name(ad_rnn_mode mode)
{
    switch (mode) {
    case AD_RNN_TANH:
    case AD_RNN_RELU:
        return "rnn";
    case AD_LSTM:
        return "lstm";
    case AD_GRU:
        return "gru";
    }
    return "rnn";
}

static int gate_count(ad_rnn_mode mode)
{
    return mode == AD_LSTM ? 4 : mode == AD_GRU ? 3 : 1;
}

ad_rnn_config ad_rnn_defaults(ad_rnn_mode mode, int64_t input_size, int64_t hidden_size)
{
    return (ad_rnn_config){.mode = mode,
                           .input_size = input_size,
                           .hidden_size = hidden_size,
                           .num_layers = 1,
                           .bias = true};
}

/* What one forward works on: the layer, the call, the sizes, and the states
 * h0/c0 given (NULL for zeros) and h_n/c_n being filled ([L D] each). */
typedef struct run {
    rnn *m;
    ad_module_call *call;
    ad_tape *tape;
    int64_t t, n; /* steps, batch */
    int dirs;
    ad_dtype dtype;
    ad_tensor *h0, *c0;
    ad_tensor **h_n, **c_n;
    ad_tensor **steps; /* [t], scratch for one direction's outputs */
} run;

/* The initial state of layer-direction k: its slice of s0 [L D, N, H], or
 * zeros [N, H] when s0 is NULL. */
static ad_tensor *initial(const run *r, ad_tensor *s0, int k)
{
    if (s0)
        return ad_squeeze(ad_slice(s0, 0, k, k + 1, 1), 1, (int[]){0});
    return ad_full(r->tape, r->dtype, 2, (int64_t[]){r->n, r->m->c.hidden_size}, 0);
}

/* Runs layer-direction k over in [T, N, F]; returns its output [T, N, H]. */
static ad_tensor *run_direction(run *r, ad_tensor *in, int k, bool reverse)
{
    size_t per = r->m->c.bias ? 4 : 2, base = (size_t)k * per;
    ad_tensor *w_ih = ad_module_call_param(r->call, base);
    ad_tensor *w_hh = ad_module_call_param(r->call, base + 1);
    ad_tensor *b_ih = r->m->c.bias ? ad_module_call_param(r->call, base + 2) : NULL;
    ad_tensor *b_hh = r->m->c.bias ? ad_module_call_param(r->call, base + 3) : NULL;
    ad_rnn_mode mode = r->m->c.mode;
    ad_tensor *gx = project(in, w_ih, b_ih);
    /* b_hh joins the whole sequence's projection once, except for the GRU,
     * whose reset gate scales h W_hn^T + b_hn */
    if (b_hh && mode != AD_GRU) {
        gx = ad_add(gx, b_hh);
        b_hh = NULL;
    }
    if (!gx || !w_hh)
        return NULL;
    ad_tensor **gxs = r->steps; /* each step's projection, then replaced by its h */
    if (ad_unbind(gx, 0, (size_t)r->t, gxs) != (size_t)r->t)
        return NULL;
    ad_tensor *h = initial(r, r->h0, k);
    ad_tensor *c = mode == AD_LSTM ? initial(r, r->c0, k) : NULL;
    for (int64_t s = 0; s < r->t && h; s++) {
        int64_t i = reverse ? r->t - 1 - s : s;
        if (mode == AD_LSTM)
            h = lstm_step(gxs[i], h, c, w_hh, b_hh, &c);
        else if (mode == AD_GRU)
            h = gru_step(gxs[i], h, w_hh, b_hh);
        else
            h = rnn_step(gxs[i], h, w_hh, b_hh, mode == AD_RNN_RELU);
        gxs[i] = h;
    }
    r->h_n[k] = h;
    if (r->c_n)
        r->c_n[k] = c;
    return h ? ad_stack((size_t)r->t, gxs, 0) : NULL;
}

/* Runs every layer over x [T, N, I]; returns the last layer's output. */
static ad_tensor *run_layers(run *r, ad_tensor *x)
{
    const ad_rnn_config *c = &r->m->c;
    bool training = ad_module_training(ad_module_call_module(r->call));
    for (int l = 0; l < c->num_layers && x; l++) {
        ad_tensor *outs[2] = {NULL, NULL};
        for (int d = 0; d < r->dirs; d++)
            outs[d] = run_direction(r, x, l * r->dirs + d, d == 1);
        x = r->dirs == 2 ? ad_concat(2, outs, -1) : outs[0];
        if (c->dropout > 0 && l + 1 < c->num_layers)
            x = ad_dropout(x, c->dropout, training, &r->m->rng);
    }
    return x;
}

/* Checks a state s0 [L D, N, H] ([L D, H] unbatched); names it on error. */
static bool state_fits(const run *r, const char *layer, const char *name, ad_tensor *s0,
                       bool batched, ad_tensor *x)
{
    if (!s0)
        return true;
    int64_t want[3] = {r->m->c.num_layers * r->dirs, r->n, r->m->c.hidden_size};
    if (!batched)
        want[1] = want[2];
    int nd = batched ? 3 : 2;
    bool ok = ad_tensor_ndim(s0) == nd;
    for (int d = 0; ok && d < nd; d++)
        ok = ad_tensor_dim(s0, d) == want[d];
    if (ok)
        return ad__nn_same_dtype(r->tape, layer, x, s0);
    char given[96], expected[96];
    ad_shape_string(given, sizeof given, ad_tensor_ndim(s0), ad_tensor_shape(s0));
    ad_shape_string(expected, sizeof expected, nd, want);
    ad_tape_set_error(r->tape, AD_ERR_SHAPE, "%s: %s %s does not fit (expected %s)", layer, name,
                      given, expected);
    return false;
}

/* x as [T, N, F] (batch_first and unbatched undone); NULL after an error. */
static ad_tensor *time_major(const rnn *m, ad_tape *tape, ad_tensor *x, bool *batched)
{
    const char *name = mode_name(m->c.mode);
    int nd = ad_tensor_ndim(x);
    if ((nd != 2 && nd != 3) || ad_tensor_dim(x, -1) != m->c.input_size ||
        ad_tensor_dim(x, m->c.batch_first && nd == 3 ? 1 : 0) < 1)
        return ad__nn_bad_input(tape, name, x, "[T >= 1, %lld] or [T, N, %lld]%s",
                                (long long)m->c.input_size, (long long)m->c.input_size,
                                m->c.batch_first ? " batch first" : "");
    *batched = nd == 3;
    if (!*batched)
        return ad_unsqueeze(x, 1);
    return m->c.batch_first ? ad_transpose(x, 0, 1) : x;
}

/* Gives a result back in the caller's layout: [T, N, .] -> as x came. */
static ad_tensor *caller_layout(const rnn *m, ad_tensor *y, bool batched)
{
    if (!batched)
        return ad_squeeze(y, 1, (int[]){1});
    return m->c.batch_first ? ad_transpose(y, 0, 1) : y;
}

static ad_status rnn_forward_n(ad_module_call *call, size_t n_in, ad_tensor *const *in,
                               size_t n_out, ad_tensor **out)
{
    rnn *m = ad_module_call_context(call);
    ad_tape *tape = ad_module_call_tape(call);
    const char *name = mode_name(m->c.mode);
    bool lstm = m->c.mode == AD_LSTM, batched = true;
    if (n_in > (lstm ? 3u : 2u) && in[lstm ? 3 : 2])
        return ad_tape_set_error(tape, AD_ERR_ARG, "%s: takes %d inputs, given more", name,
                                 lstm ? 3 : 2);
    ad_tensor *w = ad_module_call_param(call, 0);
    ad_tensor *x =
        ad__nn_same_dtype(tape, name, in[0], w) ? time_major(m, tape, in[0], &batched) : NULL;
    if (!x)
        return ad_tape_status(tape);
    run r = {.m = m,
             .call = call,
             .tape = tape,
             .dirs = m->c.bidirectional ? 2 : 1,
             .dtype = ad_tensor_dtype(x)};
    r.t = ad_tensor_dim(x, 0);
    r.n = ad_tensor_dim(x, 1);
    r.h0 = n_in > 1 ? in[1] : NULL;
    r.c0 = lstm && n_in > 2 ? in[2] : NULL;
    if (!state_fits(&r, name, "h0", r.h0, batched, in[0]) ||
        !state_fits(&r, name, "c0", r.c0, batched, in[0]))
        return ad_tape_status(tape);
    if (!batched) {
        r.h0 = r.h0 ? ad_unsqueeze(r.h0, 1) : NULL;
        r.c0 = r.c0 ? ad_unsqueeze(r.c0, 1) : NULL;
    }
    size_t k = (size_t)(m->c.num_layers * r.dirs);
    ad_tensor **states = ad__calloc(2 * k + (size_t)r.t, sizeof *states);
    if (!states)
        return ad_tape_set_error(tape, AD_ERR_NOMEM, "%s: out of memory for %lld steps", name,
                                 (long long)r.t);
    r.h_n = states;
    r.c_n = lstm ? states + k : NULL;
    r.steps = states + 2 * k;
    ad_tensor *y = run_layers(&r, x);
    if (y) {
        out[0] = caller_layout(m, y, batched);
        ad_tensor *hn = ad_stack(k, r.h_n, 0), *cn = lstm ? ad_stack(k, r.c_n, 0) : NULL;
        if (n_out > 1)
            out[1] = batched ? hn : ad_squeeze(hn, 1, (int[]){1});
        if (n_out > 2 && lstm)
            out[2] = batched ? cn : ad_squeeze(cn, 1, (int[]){1});
    }
    ad__free(states);
    return ad_tape_status(tape);
}

static const ad_module_type rnn_type = {
    .name = "rnn", .forward_n = rnn_forward_n, .free_context = ad__free};

/* Registers layer-direction (l, suffix)'s parameters, uniform in +-1/sqrt(H). */
static ad_status add_direction(ad_module *mod, const ad_rnn_config *c, int l, bool reverse,
                               ad_dtype dtype, ad_rng *rng)
{
    int64_t g = gate_count(c->mode) * c->hidden_size;
    int64_t in = l == 0 ? c->input_size : (c->bidirectional ? 2 : 1) * c->hidden_size;
    double bound = 1.0 / sqrt((double)c->hidden_size);
    const char *kinds[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    const int64_t shapes[4][2] = {{g, in}, {g, c->hidden_size}, {g, 0}, {g, 0}};
    ad_status st = AD_OK;
    for (int i = 0; i < (c->bias ? 4 : 2) && st == AD_OK; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s_l%d%s", kinds[i], l, reverse ? "_reverse" : "");
        st = ad__nn_uniform_param(mod, name, dtype, i < 2 ? 2 : 1, shapes[i], bound, rng);
    }
    return st;
}

ad_status ad_nn_rnn(ad_module **out, const ad_rnn_config *config, ad_dtype dtype, ad_rng *rng)
{
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (!config || !rng || config->input_size < 1 || config->hidden_size < 1 ||
        config->num_layers < 1 || !(config->dropout >= 0 && config->dropout < 1) ||
        gate_count(config->mode) * config->hidden_size > INT64_MAX / 4)
        return AD_ERR_ARG;
    switch (config->mode) {
    case AD_RNN_TANH:
    case AD_RNN_RELU:
    case AD_LSTM:
    case AD_GRU:
        break;
    default:
        return AD_ERR_ARG;
    }
    rnn m = {.c = *config};
    ad_rng_seed(&m.rng, config->seed);
    ad_status st = ad__nn_module_with(out, &rnn_type, &m, sizeof m);
    for (int l = 0; l < config->num_layers && st == AD_OK; l++)
        for (int d = 0; d < (config->bidirectional ? 2 : 1) && st == AD_OK; d++)
            st = add_direction(*out, config, l, d == 1, dtype, rng);
    return st == AD_OK ? AD_OK : ad__nn_fail_free(out, st);
}
