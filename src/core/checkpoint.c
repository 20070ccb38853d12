/* Activation checkpointing: a custom op whose forward runs the user's
 * function unrecorded and gives its arena back, keeping only the result, and
 * whose backward runs the function again, recorded, sweeps that part of the
 * tape, and (without create_graph) gives the arena back again, keeping only
 * the input gradients. The persistent tensors the function uses become extra
 * inputs of the node, so their gradients flow as usual. */
#include "core.h"

#include <stdlib.h>

void ad__collect_add(ad_tape *tape, ad_tensor *p)
{
    ad__collect *c = tape->collect;
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i] == p)
            return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        ad_tensor **items = ad__heap_alloc(c->allocator, cap * sizeof *items);
        if (!items) {
            c->failed = true;
            return;
        }
        if (c->n)
            memcpy(items, c->items, c->n * sizeof *items);
        ad__heap_free(c->allocator, c->items);
        c->items = items;
        c->cap = cap;
    }
    c->items[c->n++] = p;
}

typedef struct checkpoint_args {
    ad_function f;
    void *ctx;
    size_t n_inputs;         /* the caller's inputs; the persistent tensors follow */
    const ad_tensor *result; /* during the first forward only: the value to keep */
    const void *result_data;
    ad__where here; /* the tape's location when f first ran: the rerun's too */
} checkpoint_args;

/* The node's forward: the result computed (and copied out) before. */
static ad_status checkpoint_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    (void)in;
    checkpoint_args *a = ad_custom_args(c);
    const ad_tensor *r = a->result;
    out[0] =
        ad_tape_tensor(ad_custom_tape(c), (ad_dtype)r->dtype, r->ndim, r->shape, a->result_data);
    return out[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

/* Copies of tensors that survive an arena release: one heap block. */
typedef struct kept {
    void *block;
    size_t n;
    ad_tensor **t;
} kept;

/* Each shape and each data array in the block starts on an 8-byte boundary:
 * after a float32 array of odd length, the next shape (int64_t) or float64
 * array would be misaligned, which C does not allow (UBSan reports it). */
static size_t round8(size_t bytes)
{
    return (bytes + 7) & ~(size_t)7;
}

static ad_status keep(ad_tape *tape, kept *k, size_t n, ad_tensor **t)
{
    size_t bytes = round8(n * sizeof(ad_tensor));
    for (size_t i = 0; i < n; i++)
        if (t[i])
            bytes += round8((size_t)t[i]->ndim * sizeof(int64_t)) +
                     round8((size_t)t[i]->numel * ad_dtype_size((ad_dtype)t[i]->dtype));
    unsigned char *p = ad__heap_alloc(&tape->allocator, bytes ? bytes : 1);
    if (!p)
        return ad__fail(tape, AD_ERR_NOMEM, "checkpoint: out of memory keeping %zu bytes", bytes);
    k->block = p;
    k->n = n;
    k->t = t;
    ad_tensor *heads = (ad_tensor *)p;
    p += round8(n * sizeof(ad_tensor));
    for (size_t i = 0; i < n; i++) {
        if (!t[i])
            continue;
        heads[i] = *t[i];
        size_t sb = (size_t)t[i]->ndim * sizeof(int64_t);
        if (sb)
            memcpy(p, t[i]->shape, sb);
        heads[i].shape = (int64_t *)p;
        p += round8(sb);
        size_t db = (size_t)t[i]->numel * ad_dtype_size((ad_dtype)t[i]->dtype);
        if (db)
            memcpy(p, t[i]->data, db);
        heads[i].data = p;
        p += round8(db);
    }
    return AD_OK;
}

/* After the release: fresh constants on the tape from the kept copies. */
static ad_status restore(ad_tape *tape, kept *k)
{
    ad_tensor *heads = k->block;
    ad_status st = AD_OK;
    for (size_t i = 0; i < k->n; i++) {
        if (!k->t[i])
            continue;
        k->t[i] = ad_tape_tensor(tape, (ad_dtype)heads[i].dtype, heads[i].ndim, heads[i].shape,
                                 heads[i].data);
        if (!k->t[i]) {
            st = tape->status;
            break;
        }
    }
    ad__heap_free(&tape->allocator, k->block);
    k->block = NULL;
    return st;
}

// gin = the gradients of a recorded rerun of f, swept down to its inputs
static ad_status checkpoint_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
{
    checkpoint_args *a = ad_custom_args(c);
    ad_tape *tape = ad_custom_tape(c);
    size_t n = a->n_inputs, n_all = ad_custom_n_inputs(c);
    ad_tensor **in = ad__alloc(tape, n_all * sizeof *in);
    ad_tensor **stop_grads = ad__alloc_zero(tape, n_all * sizeof *stop_grads);
    if (!in || !stop_grads)
        return tape->status;
    for (size_t k = 0; k < n_all; k++)
        in[k] = ad_custom_input(c, k);
    bool create_graph = tape->grad_enabled;
    ad__mark mark = ad__arena_mark(tape);
    uint32_t floor = (uint32_t)tape->n_nodes;
    tape->grad_enabled = true;
    /* The rerun's nodes are f's: in anomaly mode, they say where f first ran,
     * not where the backward was called. */
    ad__where caller = tape->here;
    tape->here = a->here;
    ad_tensor *y = a->f(tape, n, in, a->ctx);
    tape->here = caller;
    tape->grad_enabled = create_graph;
    if (!y)
        return tape->status != AD_OK
                   ? tape->status
                   : ad__fail(tape, AD_ERR_NULL, "checkpoint: the function returned NULL");
    if (y->tape != tape || !ad__same_shape(y, ad_custom_output(c, 0)) ||
        y->dtype != ad_custom_output(c, 0)->dtype)
        return ad__fail(tape, AD_ERR_ARG,
                        "checkpoint: the function gave another result when run again");
    if (!(y->flags & AD_TF_RECORDED))
        return AD_OK; /* nothing to differentiate: zero gradients */
    ad_status st = AD_OK;
    if (y->id < floor) {
        /* f returned one of its inputs (or a tape tensor it was not given) */
        for (size_t k = 0; k < n; k++)
            if (in[k] == y)
                stop_grads[k] = gout[0];
    } else {
        ad_tensor **G;
        ad__sweep_args s = {.n_out = 1,
                            .outputs = &y,
                            .seeds = gout,
                            .create_graph = create_graph,
                            .retain_graph = true,
                            .floor = floor,
                            .n_stops = n,
                            .stops = in,
                            .stop_grads = stop_grads,
                            .strict = true};
        if ((st = ad__sweep(tape, &s, &G)) != AD_OK)
            return st;
        bool was = tape->grad_enabled;
        tape->grad_enabled = create_graph;
        for (size_t k = n; k < n_all; k++)
            stop_grads[k] = ad__persistent_grad(tape, G, floor, y->id, in[k]->src[0]);
        tape->grad_enabled = was;
    }
    if (tape->status != AD_OK)
        return tape->status;
    if (!create_graph) {
        /* Give back the rerun's memory, keeping only the gradients. */
        kept k = {0};
        if ((st = keep(tape, &k, n_all, stop_grads)) != AD_OK)
            return st;
        ad__arena_release(tape, &mark);
        if ((st = restore(tape, &k)) != AD_OK)
            return st;
    }
    for (size_t k = 0; k < n_all; k++)
        gin[k] = (ad_custom_input(c, k)->flags & AD_TF_RECORDED) ? stop_grads[k] : NULL;
    return AD_OK;
}

static const ad_custom_op checkpoint_op = {
    .def = {.name = "checkpoint",
            .n_inputs = -1,
            .n_outputs = 1,
            .forward = checkpoint_forward,
            .backward = checkpoint_backward},
    .name = "checkpoint",
};

ad_tensor *ad_checkpoint(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs)
{
    if (!inputs || n == 0) { /* no tape to name it on: the thread's error */
        ad__fail(NULL, AD_ERR_ARG, "checkpoint: no inputs (%zu tensors%s)", n,
                 inputs ? "" : ", NULL list");
        return NULL;
    }
    ad_tape *tape = ad__inputs_tape("checkpoint", (int)n, inputs);
    if (!tape)
        return NULL;
    if (!f) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_ARG,
                 "checkpoint: the function is NULL (%zu inputs, the first of shape %s)", n,
                 AD__SHAPE(inputs[0], s));
        return NULL;
    }
    if (!tape->grad_enabled) {
        /* Nothing is recorded anyway: f just runs. */
        ad_tensor *y = f(tape, n, inputs, ctx);
        if (!y && tape->status == AD_OK)
            ad__fail(tape, AD_ERR_NULL, "checkpoint: the function returned NULL");
        return y;
    }
    /* The first run: unrecorded, noting the persistent tensors it uses. */
    ad__collect used = {.allocator = &tape->allocator};
    ad__collect *outer = tape->collect;
    ad__mark mark = ad__arena_mark(tape);
    ad__where here = tape->here;
    tape->collect = &used;
    tape->grad_enabled = false;
    ad_tensor *y = f(tape, n, inputs, ctx);
    tape->grad_enabled = true;
    tape->collect = outer;
    ad_tensor *result = NULL;
    kept k = {0};
    if (used.failed)
        ad__fail(tape, AD_ERR_NOMEM, "checkpoint: out of memory noting parameters");
    else if (!y && tape->status == AD_OK)
        ad__fail(tape, AD_ERR_NULL, "checkpoint: the function returned NULL");
    else if (y && (y->tape != tape || y->generation != tape->generation))
        ad__fail(tape, AD_ERR_TAPE, "checkpoint: the function's result is not on its tape");
    if (tape->status != AD_OK || keep(tape, &k, 1, &y) != AD_OK)
        goto done;
    ad__arena_release(tape, &mark);
    if (n + used.n > UINT8_MAX) {
        ad__fail(tape, AD_ERR_ARG,
                 "checkpoint: %zu inputs and %zu parameters (at most %d together)", n, used.n,
                 UINT8_MAX);
        goto done;
    }
    ad_tensor **all = ad__alloc(tape, (n + used.n) * sizeof *all);
    checkpoint_args *a = ad__alloc(tape, sizeof *a);
    if (!all || !a)
        goto done;
    memcpy(all, inputs, n * sizeof *all);
    if (used.n)
        memcpy(all + n, used.items, used.n * sizeof *all);
    ad_tensor *kept_y = (ad_tensor *)k.block;
    *a = (checkpoint_args){f, ctx, n, kept_y, kept_y->data, here};
    ad_custom_apply(&checkpoint_op, n + used.n, all, a, &result);
    a->result = NULL;
    a->result_data = NULL;
done:
    ad__heap_free(&tape->allocator, k.block);
    ad__heap_free(&tape->allocator, used.items);
    return result;
}
