/* Custom ops: an op whose forward, backward and jvp are the user's callbacks.
 * A call records one `custom` node, whose inputs are the call's inputs and
 * whose parameter is the call's context (ad_custom_ctx), and one
 * `custom_output` node per output, which shares its output's data. The
 * sweeps hand each output's gradient (or tangent) to the custom node, which
 * calls the user's rule once with all of them. */
#include "core.h"

#include <stdio.h>

struct ad_custom_ctx {
    const ad_custom_op *op;
    void *args;
    ad_tape *tape;
    size_t n_in, n_out;
    ad_tensor **inputs;  /* the node's inputs (views for persistent tensors) */
    ad_tensor **outputs; /* the custom_output nodes; NULL while the forward runs */
    ad_tensor **saved;
    size_t n_saved, cap_saved;
    void *state; /* ad_custom_set_state */
    /* Per output: the gradient and the tangent handed over by the sweep
     * whose serial is in the stamp. */
    ad_tensor **grads, **tangents;
    uint64_t *grad_stamp, *tangent_stamp;
};

/* ---- Registration ------------------------------------------------------------ */

ad_status ad_custom_op_create(ad_custom_op **out, const ad_custom_op_def *def)
{
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (!def || !def->name || !def->name[0] || !def->forward || !def->backward ||
        def->n_outputs < 1 || def->n_outputs > 64 || def->n_inputs < -1 || def->n_inputs == 0 ||
        def->n_inputs > UINT8_MAX || (def->flags & ~(unsigned)AD_CUSTOM_FIRST_ORDER))
        return AD_ERR_ARG;
    ad_custom_op *op = ad__calloc(1, sizeof *op);
    if (!op)
        return AD_ERR_NOMEM;
    op->def = *def;
    snprintf(op->name, sizeof op->name, "%s", def->name);
    op->def.name = op->name;
    *out = op;
    return AD_OK;
}

void ad_custom_op_free(ad_custom_op *op)
{
    ad__free(op);
}

const char *ad_custom_op_name(const ad_custom_op *op)
{
    return op ? op->name : "";
}

const char *ad__custom_name(const ad_tensor *y)
{
    if (y->op == AD_OP_custom_output)
        y = y->src ? y->src[0] : NULL;
    const ad_custom_ctx *c = y && y->op == AD_OP_custom ? y->param[0].p : NULL;
    return c ? c->op->name : "custom";
}

/* ---- Inside a callback ------------------------------------------------------------ */

ad_tape *ad_custom_tape(const ad_custom_ctx *ctx)
{
    return ctx ? ctx->tape : NULL;
}

void *ad_custom_op_data(const ad_custom_ctx *ctx)
{
    return ctx ? ctx->op->def.data : NULL;
}

void *ad_custom_args(const ad_custom_ctx *ctx)
{
    return ctx ? ctx->args : NULL;
}

size_t ad_custom_n_inputs(const ad_custom_ctx *ctx)
{
    return ctx ? ctx->n_in : 0;
}

size_t ad_custom_n_outputs(const ad_custom_ctx *ctx)
{
    return ctx ? ctx->n_out : 0;
}

ad_tensor *ad_custom_input(const ad_custom_ctx *ctx, size_t i)
{
    return ctx && i < ctx->n_in ? ctx->inputs[i] : NULL;
}

ad_tensor *ad_custom_output(const ad_custom_ctx *ctx, size_t i)
{
    return ctx && ctx->outputs && i < ctx->n_out ? ctx->outputs[i] : NULL;
}

ad_status ad_custom_save(ad_custom_ctx *ctx, ad_tensor *t)
{
    if (!ctx || !t)
        return AD_ERR_NULL;
    ad_tape *tape = ctx->tape;
    if (t->tape && (t->tape != tape || t->generation != tape->generation))
        return ad__fail(tape, AD_ERR_TAPE, "custom op %s: saved a tensor of another tape",
                        ctx->op->name);
    if (!t->tape && !(t = ad__view_of(tape, t, false)))
        return tape->status;
    if (ctx->n_saved == ctx->cap_saved) {
        size_t cap = ctx->cap_saved ? 2 * ctx->cap_saved : 4;
        ad_tensor **s = ad__alloc(tape, cap * sizeof *s);
        if (!s)
            return tape->status;
        if (ctx->n_saved)
            memcpy(s, ctx->saved, ctx->n_saved * sizeof *s);
        ctx->saved = s;
        ctx->cap_saved = cap;
    }
    ctx->saved[ctx->n_saved++] = t;
    return AD_OK;
}

ad_tensor *ad_custom_saved(const ad_custom_ctx *ctx, size_t i)
{
    return ctx && i < ctx->n_saved ? ctx->saved[i] : NULL;
}

void *ad_custom_alloc(ad_custom_ctx *ctx, size_t size)
{
    return ctx ? ad__alloc(ctx->tape, size) : NULL;
}

void ad_custom_set_state(ad_custom_ctx *ctx, void *state)
{
    if (ctx)
        ctx->state = state;
}

void *ad_custom_state(const ad_custom_ctx *ctx)
{
    return ctx ? ctx->state : NULL;
}

/* ---- Applying an op ----------------------------------------------------------------- */

/* Records a failed callback: its own message if it left one. */
static ad_status callback_failed(ad_custom_ctx *c, const char *what, ad_status st)
{
    if (c->tape->status != AD_OK)
        return c->tape->status;
    return ad__fail(c->tape, st != AD_OK ? st : AD_ERR_ARG, "custom op %s: %s failed (%s)",
                    c->op->name, what, ad_status_string(st));
}

/* t fits as a result: a float tensor of this tape's generation. */
static ad_status check_result(ad_custom_ctx *c, const char *what, size_t i, const ad_tensor *t)
{
    if (!t)
        return ad__fail(c->tape, AD_ERR_NULL, "custom op %s: %s %zu is NULL", c->op->name, what, i);
    if (t->tape != c->tape || t->generation != c->tape->generation)
        return ad__fail(c->tape, AD_ERR_TAPE,
                        "custom op %s: %s %zu is not a tensor of the call's tape", c->op->name,
                        what, i);
    return AD_OK;
}

/* Shape and dtype of a returned gradient or tangent against what it is for. */
static ad_status check_fit(ad_custom_ctx *c, const char *what, size_t i, const ad_tensor *t,
                           const ad_tensor *like)
{
    ad_status st = check_result(c, what, i, t);
    if (st != AD_OK)
        return st;
    if (t->dtype == like->dtype && ad__same_shape(t, like))
        return AD_OK;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    return ad__fail(c->tape, AD_ERR_SHAPE, "custom op %s: %s %zu is %s %s, expected %s %s",
                    c->op->name, what, i, ad_dtype_name((ad_dtype)t->dtype), AD__SHAPE(t, s0),
                    ad_dtype_name((ad_dtype)like->dtype), AD__SHAPE(like, s1));
}

/* A call without an op, outputs or inputs. A NULL op is said on the inputs'
 * tape too, for ad_custom, which has only NULL to return (not when an input
 * is NULL: an earlier error, already on its tape). */
static ad_status bad_call(const ad_custom_op *op, size_t n, ad_tensor *const *inputs)
{
    ad_tape *tape = !op && n && inputs && n <= UINT8_MAX ? ad__tape_of((int)n, inputs) : NULL;
    if (tape) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_ARG, "custom: the op is NULL (%zu inputs, the first of shape %s)", n,
                 AD__SHAPE(inputs[0], s));
    }
    return AD_ERR_ARG;
}

/* The tape to record the call on, in *out, once the call has the op's number
 * of inputs and the tape no error. */
static ad_status call_tape(const ad_custom_op *op, size_t n, ad_tensor *const *inputs,
                           ad_tape **out)
{
    if (n == 0) /* every op takes at least one input: no tape to name it on */
        return ad__fail(NULL, AD_ERR_ARG, "custom op %s: no inputs", op->name);
    ad_tape *tape = ad__tape_of((int)n, inputs);
    if (!tape) {
        for (size_t k = 0; k < n; k++)
            if (!inputs[k])
                return AD_ERR_NULL; /* an earlier error, already on its tape */
        /* Every input persistent: no tape to record on, so the thread's error. */
        char label[96];
        snprintf(label, sizeof label, "custom op %s", op->name);
        ad__no_tape(label, 1, inputs);
        return AD_ERR_TAPE;
    }
    if (tape->status != AD_OK)
        return tape->status;
    if ((op->def.n_inputs >= 0 && n != (size_t)op->def.n_inputs) || n == 0 || n > UINT8_MAX)
        return ad__fail(tape, AD_ERR_ARG, "custom op %s: %zu inputs (it takes %d)", op->name, n,
                        op->def.n_inputs);
    *out = tape;
    return AD_OK;
}

/* c->inputs[k]: inputs[k], or a view of it when it is persistent.
 * *needs_grad: some input is recorded and grad is enabled. */
static ad_status take_inputs(ad_custom_ctx *c, ad_tensor *const *inputs, bool *needs_grad)
{
    ad_tape *tape = c->tape;
    *needs_grad = false;
    for (size_t k = 0; k < c->n_in; k++) {
        ad_tensor *x = inputs[k];
        if (x->tape && x->tape != tape)
            return ad__fail(tape, AD_ERR_TAPE, "custom op %s: inputs come from different tapes",
                            c->op->name);
        if (x->tape && x->generation != tape->generation)
            return ad__fail(tape, AD_ERR_FREED,
                            "custom op %s: input %zu was freed by ad_tape_reset", c->op->name, k);
        if (!x->tape &&
            !(x = ad__view_of(tape, x, (x->flags & AD_TF_REQUIRES_GRAD) && tape->grad_enabled)))
            return tape->status;
        c->inputs[k] = x;
        *needs_grad |= (x->flags & AD_TF_RECORDED) != 0;
    }
    *needs_grad &= tape->grad_enabled;
    return AD_OK;
}

/* Runs the user's forward into results and checks what it returned. */
static ad_status run_forward(ad_custom_ctx *c, ad_tensor **results)
{
    ad_tape *tape = c->tape;
    /* The forward runs unrecorded: only its results matter. */
    bool was = tape->grad_enabled;
    tape->grad_enabled = false;
    ad_status st = c->op->def.forward(c, c->inputs, results);
    tape->grad_enabled = was;
    if (st != AD_OK || tape->status != AD_OK)
        return callback_failed(c, "forward", st);
    for (size_t k = 0; k < c->n_out; k++)
        if ((st = check_result(c, "forward output", k, results[k])) != AD_OK)
            return st;
    return AD_OK;
}

/* Records the custom node, whose inputs are the call's and whose parameter
 * is c, with room in c for each output's gradient and tangent. */
static ad_tensor *record_node(ad_custom_ctx *c, const ad_tensor *first_result, bool needs_grad)
{
    ad_tape *tape = c->tape;
    size_t n_out = c->n_out;
    ad_tensor *node = ad__node_new(tape, AD_OP_custom, (int)c->n_in, (ad_dtype)first_result->dtype);
    c->outputs = ad__alloc(tape, n_out * sizeof *c->outputs);
    c->grads = ad__alloc_zero(tape, 2 * n_out * sizeof *c->grads);
    c->grad_stamp = ad__alloc_zero(tape, 2 * n_out * sizeof *c->grad_stamp);
    if (!node || !c->outputs || !c->grads || !c->grad_stamp)
        return NULL;
    c->tangents = c->grads + n_out;
    c->tangent_stamp = c->grad_stamp + n_out;
    memcpy(node->src, c->inputs, c->n_in * sizeof *c->inputs);
    node->param[0].p = c;
    node->numel = 1;
    if (!(node->data = ad__alloc_zero(tape, sizeof(double))))
        return NULL;
    if (needs_grad) {
        node->flags |= AD_TF_REQUIRES_GRAD;
        if (ad__record(tape, node) != AD_OK)
            return NULL;
    } else {
        node->nsrc = 0;
    }
    return node;
}

/* Records one custom_output node per result, sharing the result's data, in
 * c->outputs. */
static ad_status record_outputs(ad_custom_ctx *c, ad_tensor *node, ad_tensor *const *results,
                                bool needs_grad)
{
    ad_tape *tape = c->tape;
    for (size_t k = 0; k < c->n_out; k++) {
        const ad_tensor *r = results[k];
        ad_tensor *y = ad__node_new(tape, AD_OP_custom_output, 1, (ad_dtype)r->dtype);
        if (!y)
            return tape->status;
        y->src[0] = node;
        y->param[0].i = (int64_t)k;
        y->data = r->data;
        y->shape = r->shape;
        y->ndim = r->ndim;
        y->numel = r->numel;
        if (tape->anomaly && ad__check_finite(y, y, false, 0) != AD_OK)
            return tape->status;
        if (needs_grad) {
            y->flags |= AD_TF_REQUIRES_GRAD;
            if (ad__record(tape, y) != AD_OK)
                return tape->status;
        } else {
            y->nsrc = 0;
        }
        c->outputs[k] = y;
    }
    return AD_OK;
}

ad_status ad_custom_apply(const ad_custom_op *op, size_t n, ad_tensor *const *inputs, void *args,
                          ad_tensor **outputs)
{
    if (!op || !outputs || (n && !inputs))
        return bad_call(op, n, inputs);
    size_t n_out = (size_t)op->def.n_outputs;
    for (size_t k = 0; k < n_out; k++)
        outputs[k] = NULL;
    ad_tape *tape = NULL;
    ad_status st = call_tape(op, n, inputs, &tape);
    if (st != AD_OK)
        return st;
    ad_custom_ctx *c = ad__alloc_zero(tape, sizeof *c);
    if (!c)
        return tape->status;
    c->op = op;
    c->args = args;
    c->tape = tape;
    c->n_in = n;
    c->n_out = n_out;
    c->inputs = ad__alloc(tape, n * sizeof *c->inputs);
    ad_tensor **results = ad__alloc_zero(tape, n_out * sizeof *results);
    if (!c->inputs || !results)
        return tape->status;
    bool needs_grad;
    if ((st = take_inputs(c, inputs, &needs_grad)) != AD_OK)
        return st;
    if ((st = run_forward(c, results)) != AD_OK)
        return st;
    ad_tensor *node = record_node(c, results[0], needs_grad);
    if (!node)
        return tape->status;
    if ((st = record_outputs(c, node, results, needs_grad)) != AD_OK)
        return st;
    memcpy(outputs, c->outputs, n_out * sizeof *outputs);
    return AD_OK;
}

ad_tensor *ad_custom(const ad_custom_op *op, size_t n, ad_tensor *const *inputs, void *args)
{
    if (op && op->def.n_outputs != 1) {
        ad_tape *tape = inputs ? ad__tape_of((int)n, inputs) : NULL;
        ad__fail(tape, AD_ERR_ARG, "custom op %s: has %d outputs (use ad_custom_apply)", op->name,
                 op->def.n_outputs);
        return NULL;
    }
    ad_tensor *y = NULL;
    ad_custom_apply(op, n, inputs, args, &y);
    return y;
}

/* ---- The rows of the op table ----------------------------------------------------- */

void ad__custom_collect(ad_tensor *y, ad_tensor *g, uint64_t serial, bool tangent)
{
    ad_custom_ctx *c = y->src[0]->param[0].p;
    size_t k = (size_t)y->param[0].i;
    (tangent ? c->tangents : c->grads)[k] = g;
    (tangent ? c->tangent_stamp : c->grad_stamp)[k] = serial;
}

// Never applied through ad__apply: ad_custom_apply makes these nodes.
ad_status ad__custom_shape(ad_tensor *y)
{
    return ad__fail(y->tape, AD_ERR_UNSUPPORTED, "custom: made by ad_custom_apply only");
}

void ad__custom_forward(ad_tensor *y)
{
    (void)y;
}

ad_status ad__custom_output_shape(ad_tensor *y)
{
    return ad__custom_shape(y);
}

void ad__custom_output_forward(ad_tensor *y)
{
    (void)y;
}

// gin = the user's backward of the outputs' gradients (zeros where none came)
void ad__custom_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)gy;
    ad_custom_ctx *c = y->param[0].p;
    ad_tape *tape = c->tape;
    const char *name = c->op->name;
    if (tape->grad_enabled && (c->op->def.flags & AD_CUSTOM_FIRST_ORDER)) {
        ad__fail(tape, AD_ERR_UNSUPPORTED,
                 "custom op %s: its backward is first-order only (AD_CUSTOM_FIRST_ORDER), so "
                 "create_graph cannot go through it",
                 name);
        return;
    }
    uint64_t serial = tape->sweep_serial;
    ad_tensor **gout = ad__alloc(tape, c->n_out * sizeof *gout);
    ad_tensor **g = ad__alloc_zero(tape, c->n_in * sizeof *g);
    if (!gout || !g)
        return;
    bool gout_recorded = false;
    for (size_t k = 0; k < c->n_out; k++) {
        gout[k] = c->grad_stamp[k] == serial ? c->grads[k] : ad__const_like(c->outputs[k], 0.0);
        if (!gout[k])
            return;
        gout_recorded |= (gout[k]->flags & AD_TF_RECORDED) != 0;
    }
    ad_status st = c->op->def.backward(c, gout, g);
    if (st != AD_OK || tape->status != AD_OK) {
        callback_failed(c, "backward", st);
        return;
    }
    for (size_t k = 0; k < c->n_in; k++) {
        if (!g[k])
            continue;
        if (check_fit(c, "backward's gradient for input", k, g[k], c->inputs[k]) != AD_OK)
            return;
        /* A gradient made from raw numbers is cut off from the output
         * gradients: under create_graph its derivative would silently be 0. */
        if (tape->grad_enabled && gout_recorded && (c->inputs[k]->flags & AD_TF_RECORDED) &&
            !(g[k]->flags & AD_TF_RECORDED)) {
            ad__fail(tape, AD_ERR_UNSUPPORTED,
                     "custom op %s: under create_graph, its backward returned a gradient for "
                     "input %zu that was not built with library ops from the output gradients "
                     "(build it with ops, or declare AD_CUSTOM_FIRST_ORDER; return NULL for a "
                     "zero gradient)",
                     name, k);
            return;
        }
        gin[k] = g[k];
    }
}

void ad__custom_output_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    /* The sweep hands the gradient over itself (ad__custom_collect). */
    (void)y, (void)gy, (void)gin;
}

/* Forward mode from the backward, for ops without a jvp callback: the
 * backward is linear in the output gradients u, B(u) = J^T u, so the
 * derivative of <B(u), t> in u is J t. Costs one recorded backward of the op
 * and one small reverse sweep over it. */
static ad_status jvp_from_backward(ad_custom_ctx *c, ad_tensor *const *t, ad_tensor **out)
{
    ad_tape *tape = c->tape;
    bool create_graph = tape->grad_enabled;
    tape->grad_enabled = true;
    ad_tensor **u = ad__alloc(tape, c->n_out * sizeof *u);
    ad_tensor **g = ad__alloc_zero(tape, c->n_in * sizeof *g);
    ad_status st = tape->status;
    if (!u || !g)
        goto done;
    uint32_t floor = (uint32_t)tape->n_nodes;
    for (size_t k = 0; k < c->n_out && st == AD_OK; k++)
        if (!(u[k] = ad_requires_grad(ad__const_like(c->outputs[k], 0.0))))
            st = tape->status;
    if (st != AD_OK)
        goto done;
    st = c->op->def.backward(c, u, g);
    if (st != AD_OK || tape->status != AD_OK) {
        st = callback_failed(c, "backward (for forward mode)", st);
        goto done;
    }
    ad_tensor *s = NULL;
    for (size_t k = 0; k < c->n_in; k++) {
        if (!g[k] || !t[k])
            continue;
        if ((st = check_fit(c, "backward's gradient for input", k, g[k], c->inputs[k])) != AD_OK)
            goto done;
        s = ad__add_tangents(s, ad_sum_all(ad_mul(g[k], t[k])));
    }
    if (tape->status != AD_OK || !s || !(s->flags & AD_TF_RECORDED)) {
        st = tape->status; /* no path from u: every tangent is zero */
        goto done;
    }
    ad_tensor **G;
    ad__sweep_args a = {.n_out = 1,
                        .outputs = &s,
                        .create_graph = create_graph,
                        .retain_graph = true,
                        .floor = floor,
                        .n_stops = 0};
    st = ad__sweep(tape, &a, &G);
    for (size_t k = 0; k < c->n_out && st == AD_OK; k++)
        out[k] = G[u[k]->id - floor];
done:
    tape->grad_enabled = create_graph;
    return st;
}

// dy_k = the user's jvp (or one derived from the backward) of the inputs' tangents
ad_tensor *ad__custom_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_custom_ctx *c = y->param[0].p;
    ad_tape *tape = c->tape;
    uint64_t serial = tape->sweep_serial;
    ad_tensor **out = ad__alloc_zero(tape, c->n_out * sizeof *out);
    if (!out)
        return NULL;
    ad_status st;
    if (c->op->def.jvp) {
        st = c->op->def.jvp(c, t, out);
        if (st != AD_OK || tape->status != AD_OK) {
            callback_failed(c, "jvp", st);
            return NULL;
        }
    } else if (c->op->def.flags & AD_CUSTOM_FIRST_ORDER) {
        ad__fail(tape, AD_ERR_UNSUPPORTED,
                 "custom op %s: no jvp callback, and its backward is first-order only: forward "
                 "mode cannot go through it",
                 c->op->name);
        return NULL;
    } else if ((st = jvp_from_backward(c, t, out)) != AD_OK) {
        return NULL;
    }
    for (size_t k = 0; k < c->n_out; k++) {
        if (out[k] && check_fit(c, "jvp's tangent for output", k, out[k], c->outputs[k]) != AD_OK)
            return NULL;
        c->tangents[k] = out[k];
        c->tangent_stamp[k] = serial;
    }
    tape->sweep_serial = serial; /* the derived jvp ran a sweep of its own */
    return y;                    /* a marker: the outputs pick their tangents up */
}

// dy = the tangent the custom node computed for this output
ad_tensor *ad__custom_output_jvp(ad_tensor *y, ad_tensor *const *t)
{
    (void)t;
    ad_custom_ctx *c = y->src[0]->param[0].p;
    size_t k = (size_t)y->param[0].i;
    return c->tangent_stamp[k] == y->tape->sweep_serial ? c->tangents[k] : NULL;
}

/* ---- Checking ---------------------------------------------------------------------- */

typedef struct op_call {
    const ad_custom_op *op;
    void *args;
} op_call;

/* The op's outputs flattened and joined: the checks see every output's
 * Jacobian in full. */
static ad_tensor *call_flat(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const op_call *call = ctx;
    size_t n_out = (size_t)call->op->def.n_outputs;
    ad_tensor **out = ad__alloc(tape, n_out * sizeof *out);
    if (!out || ad_custom_apply(call->op, n, in, call->args, out) != AD_OK)
        return NULL;
    for (size_t k = 0; k < n_out; k++) {
        int64_t all = -1;
        if (!(out[k] = ad_reshape(out[k], 1, &all)))
            return NULL;
        if (out[k]->dtype != AD_F64)
            out[k] = ad_cast(out[k], AD_F64);
    }
    return n_out == 1 ? out[0] : ad_concat(n_out, out, 0);
}

static ad_status custom_checks(const ad_custom_op *op, op_call *call, size_t n,
                               ad_tensor *const *inputs, const ad_gradcheck_opts *opts,
                               ad_gradcheck_result *result);

ad_status ad_custom_op_check(const ad_custom_op *op, size_t n, ad_tensor *const *inputs, void *args,
                             const ad_gradcheck_opts *opts, ad_gradcheck_result *result)
{
    if (!result)
        return AD_ERR_ARG;
    memset(result, 0, sizeof *result);
    if (!op) {
        snprintf(result->message, sizeof result->message, "custom_op_check: no op");
        return AD_ERR_ARG;
    }
    op_call call = {op, args};
    /* The checks run in float64: float32 inputs get float64 copies. */
    ad_tape *scratch = NULL;
    ad_tensor **in64 = NULL;
    ad_status st = AD_OK;
    for (size_t i = 0; i < n && inputs; i++)
        if (inputs[i] && inputs[i]->dtype != AD_F64 && !in64) {
            in64 = ad__calloc(n, sizeof *in64);
            if (!in64 || ad_tape_create(&scratch) != AD_OK) {
                ad__free(in64);
                snprintf(result->message, sizeof result->message, "custom_op_check: out of memory");
                return AD_ERR_NOMEM;
            }
            for (size_t k = 0; k < n; k++) {
                ad_tensor *x = inputs[k];
                in64[k] = !x || x->dtype == AD_F64
                              ? x
                              : ad_tape_tensor(scratch, AD_F64, x->ndim, x->shape, NULL);
                for (int64_t e = 0; in64[k] && in64[k] != x && e < x->numel; e++)
                    ad__set(in64[k], e, ad__get(x, e));
            }
            if (scratch->status != AD_OK) {
                st = scratch->status;
                snprintf(result->message, sizeof result->message,
                         "custom_op_check: converting the inputs to float64: %.200s",
                         scratch->message);
            }
        }
    if (st == AD_OK)
        st = custom_checks(op, &call, n, in64 ? in64 : inputs, opts, result);
    ad__free(in64);
    ad_tape_free(scratch);
    return st;
}

static ad_status custom_checks(const ad_custom_op *op, op_call *call, size_t n,
                               ad_tensor *const *inputs, const ad_gradcheck_opts *opts,
                               ad_gradcheck_result *result)
{
    ad_status st = ad_gradcheck(call_flat, call, n, inputs, opts, result);
    if (st == AD_OK && !result->passed) {
        /* Say which check failed, as the second-order and forward-mode ones do. */
        char msg[sizeof result->message];
        snprintf(msg, sizeof msg, "backward, first order: %.200s", result->message);
        memcpy(result->message, msg, sizeof msg);
    }
    if (st != AD_OK || !result->passed)
        return st;
    if (!(op->def.flags & AD_CUSTOM_FIRST_ORDER)) {
        st = ad_gradgradcheck(call_flat, call, n, inputs, 0x5eed, opts, result);
        if (st != AD_OK || !result->passed)
            return st;
    }
    if (op->def.jvp || !(op->def.flags & AD_CUSTOM_FIRST_ORDER)) {
        st = ad_jvpcheck(call_flat, call, n, inputs, opts, result);
        if (st != AD_OK || !result->passed)
            return st;
    }
    snprintf(result->message, sizeof result->message,
             "custom op %s: backward%s%s agree with finite differences", op->name,
             op->def.flags & AD_CUSTOM_FIRST_ORDER ? "" : ", second order",
             op->def.jvp || !(op->def.flags & AD_CUSTOM_FIRST_ORDER) ? " and jvp" : "");
    return AD_OK;
}
