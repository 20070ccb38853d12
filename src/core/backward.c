/* The backward sweep: one reverse loop over the tape. Creation order is a
 * topological order, so no sort and no recursion. Each node's gradient is
 * complete when the loop reaches it, because every consumer was created later
 * and has already passed its contribution down. */
#include "core.h"

#include <math.h>

#define KERNELS "core/core_kernels.h"
#include "kernels.h"

static ad_status check_output(ad_tape *tape, const ad_tensor *y, const ad_tensor *seed,
                              uint32_t floor)
{
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (y->tape != tape)
        return ad__fail(tape, AD_ERR_TAPE, "backward: outputs come from different tapes");
    if (y->generation != tape->generation)
        return ad__fail(tape, AD_ERR_FREED, "backward: output was freed by ad_tape_reset");
    if (!(y->flags & AD_TF_RECORDED))
        return ad__fail(tape, AD_ERR_NO_GRAD,
                        "backward: output %s does not require grad (no input requires grad, "
                        "or it was computed with grad disabled)",
                        AD__SHAPE(y, s0));
    if (y->id < floor)
        return ad__fail(tape, AD_ERR_ARG, "backward: output made before the part swept");
    if (!seed) {
        if (y->numel != 1)
            return ad__fail(tape, AD_ERR_SHAPE,
                            "backward: output of shape %s is not a scalar; give a seed gradient",
                            AD__SHAPE(y, s0));
        return AD_OK;
    }
    if (seed->tape && seed->tape != tape)
        return ad__fail(tape, AD_ERR_TAPE, "backward: seed comes from another tape");
    if (seed->dtype != y->dtype || !ad__same_shape(seed, y))
        return ad__fail(tape, AD_ERR_SHAPE, "backward: seed %s %s does not match output %s %s",
                        ad_dtype_name((ad_dtype)seed->dtype), AD__SHAPE(seed, s0),
                        ad_dtype_name((ad_dtype)y->dtype), AD__SHAPE(y, s1));
    return AD_OK;
}

/* G[id] += g, recorded when grad is enabled (create_graph). */

/* *slot += g, as a new sum (g itself when *slot is empty). */
static ad_status add_gradient(ad_tensor **slot, ad_tensor *g)
{
    ad_tape *tape = (*slot ? *slot : g)->tape;
    *slot = *slot ? ad_add(*slot, g) : g;
    if (*slot)
        return AD_OK;
    return tape && tape->status != AD_OK
               ? tape->status
               : ad__fail(tape, AD_ERR_NOMEM, "backward: could not add two gradients");
}

/* dst += src elementwise; both of one dtype and size. */
static void add_into(ad_tensor *dst, const ad_tensor *src)
{
    switch ((ad_dtype)dst->dtype) {
    case AD_F32:
        add_into_f32(dst->data, src->data, dst->numel);
        break;
    case AD_F64:
        add_into_f64(dst->data, src->data, dst->numel);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* Marks, for each persistent tensor with accumulate hooks, its view that the
 * sweep reaches last (the first created): its gradient is final there. The
 * stamp is unique in the process, not the tape's serial: a persistent tensor
 * is shared by tapes, and every tape's serials start at 1. */
static void mark_last_uses(ad_tape *tape, uint32_t floor, uint32_t max_id)
{
    static _Atomic uint64_t marks;
    uint64_t stamp = ++marks;
    for (uint32_t i = floor; i <= max_id; i++) {
        ad_tensor *v = tape->nodes[i];
        if (v->op != AD_OP_view || !v->src[0]->hooks)
            continue;
        ad__hook *head = v->src[0]->hooks;
        v->flags &= (uint8_t)~AD_TF_LAST_USE; /* left by a sweep that failed midway */
        if (head->stamp != stamp) {
            head->stamp = stamp;
            v->flags |= AD_TF_LAST_USE;
        }
    }
}

/* Hands a gradient that leaves the swept part (x below the floor) to the
 * caller's stops. */
static ad_status to_stop(ad_tape *tape, const ad__sweep_args *a, ad_tensor *x, ad_tensor *g,
                         const char *op)
{
    for (size_t k = 0; k < a->n_stops; k++)
        if (a->stops[k] == x)
            return add_gradient(&a->stop_grads[k], g);
    if (a->strict)
        return ad__fail(tape, AD_ERR_ARG,
                        "checkpoint: the function used a tape tensor it was not given as an "
                        "input (through %s); pass it in inputs",
                        op);
    return AD_OK;
}

/* The leaf end of an ad_backward: a tape leaf keeps its gradient (recorded
 * under create_graph), a persistent tensor adds it into its buffer. */
static ad_status deliver(ad_tape *tape, ad_tensor *x, ad_tensor *g)
{
    if (x->op == AD_OP_view) {
        ad_tensor *p = x->src[0];
        if (g && p->grad && (p->flags & AD_TF_REQUIRES_GRAD))
            add_into(p->grad, g);
        if (x->flags & AD_TF_LAST_USE) {
            x->flags &= (uint8_t)~AD_TF_LAST_USE;
            ad__run_accumulate_hooks(p);
        }
        return tape->status;
    }
    if (g && (x->flags & AD_TF_LEAF)) {
        x->grad = x->grad ? ad_add(x->grad, g) : g;
        if (!x->grad)
            return tape->status;
    }
    return AD_OK;
}

/* Under create_graph, a seed that requires grad: then every gradient of the
 * sweep does too, however constant, and a custom op whose backward cuts its
 * gradient off the output gradients (raw numbers) is caught at once instead
 * of giving second derivatives of 0 (ad__custom_backward). */
static ad_tensor *recorded_copy(ad_tape *tape, const ad_tensor *seed)
{
    return ad_requires_grad(
        ad_tape_tensor(tape, (ad_dtype)seed->dtype, seed->ndim, seed->shape, seed->data));
}

/* The state of one backward sweep, shared by its helpers. */
typedef struct ad__sweep_state {
    ad_tape *tape;
    const ad__sweep_args *a;
    uint32_t floor, max_id; /* the part swept: from floor to the last output */
    ad_tensor **G;          /* G[id - floor]: the gradient of node id so far */
    /* owned[id - floor]: G's tensor was made by the sweep for that node alone,
     * so more gradient may be added into it in place. NULL when the sweep
     * records (create_graph) or checks (anomaly mode) every gradient. */
    bool *owned;
    uint64_t serial; /* tells custom nodes which sweep handed them gradients */
} sweep;

/* G[slot] += g: in place when the sweep owns G[slot], else a new sum (which
 * it then owns); g itself when G[slot] is empty (g may be shared). */
static ad_status accumulate(const sweep *s, uint32_t slot, ad_tensor *g)
{
    ad_tensor **G = &s->G[slot];
    if (*G && s->owned && s->owned[slot]) {
        add_into(*G, g);
        return AD_OK;
    }
    ad_status st = add_gradient(G, g);
    if (s->owned)
        s->owned[slot] = st == AD_OK && *G != g;
    return st;
}

ad_tensor *ad__grad_accumulator(ad_tensor *y, int j)
{
    ad_tape *tape = y->tape;
    sweep *s = tape->sweep;
    ad_tensor *x = y->src[j];
    if (!s || !s->owned || tape->grad_enabled || tape->anomaly || x->tape != tape ||
        !(x->flags & AD_TF_RECORDED) || x->id < s->floor || x->id > s->max_id)
        return NULL;
    uint32_t slot = x->id - s->floor;
    ad_tensor *g = s->G[slot];
    if (g && s->owned[slot])
        return g;
    ad_tensor *fresh = ad__new(tape, (ad_dtype)x->dtype, x->ndim, x->shape);
    if (!fresh)
        return NULL;
    size_t bytes = (size_t)x->numel * ad_dtype_size((ad_dtype)x->dtype);
    if (g)
        memcpy(fresh->data, g->data, bytes);
    else
        memset(fresh->data, 0, bytes);
    s->G[slot] = fresh;
    s->owned[slot] = true;
    return fresh;
}

/* Checks every output (and its seed) before anything is allocated, and finds
 * the last output: the sweep starts there. */
static ad_status check_outputs(sweep *s)
{
    const ad__sweep_args *a = s->a;
    s->max_id = a->floor;
    for (size_t k = 0; k < a->n_out; k++) {
        ad_status st =
            check_output(s->tape, a->outputs[k], a->seeds ? a->seeds[k] : NULL, a->floor);
        if (st != AD_OK)
            return st;
        if (a->outputs[k]->id > s->max_id)
            s->max_id = a->outputs[k]->id;
    }
    return AD_OK;
}

/* G[output] += its seed (1 for a scalar output without one), in output order. */
static ad_status seed_outputs(const sweep *s)
{
    ad_tape *tape = s->tape;
    const ad__sweep_args *a = s->a;
    ad_status st = AD_OK;
    for (size_t k = 0; k < a->n_out && st == AD_OK; k++) {
        ad_tensor *y = a->outputs[k];
        ad_tensor *seed = a->seeds && a->seeds[k] ? a->seeds[k] : ad__const_like(y, 1.0);
        if (seed && !seed->tape)
            seed = ad__view_of(tape, seed, false); /* a persistent seed, as a constant */
        if (seed && a->create_graph && !(seed->flags & AD_TF_RECORDED))
            seed = recorded_copy(tape, seed);
        if (!seed)
            st = tape->status;
        else
            st = accumulate(s, y->id - s->floor, seed);
    }
    return st;
}

/* Without retain_graph (and create_graph), y's backward runs only once. */
static void release(const sweep *s, ad_tensor *y)
{
    if (!s->a->retain_graph && !s->a->create_graph)
        y->flags |= AD_TF_FREED;
}

/* Calls op's backward rule as y's: a rule may run a sweep of its own (a
 * custom op's backward), so the outer rule's node is restored after. */
static void run_rule(ad_tape *tape, const ad__op *op, ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *outer_rule = tape->rule_node;
    bool outer_jvp = tape->rule_is_jvp;
    tape->rule_node = y;
    tape->rule_is_jvp = false;
    op->backward(y, gy, gin);
    tape->rule_node = outer_rule;
    tape->rule_is_jvp = outer_jvp;
}

/* Hands the gradients gin[j] of y's sources down, in source order (the order
 * in which contributions are summed): into G, or to a stop below the floor. */
static ad_status pass_down(const sweep *s, ad_tensor *y, ad_tensor **gin, const char *op)
{
    ad_tape *tape = s->tape;
    for (int j = 0; j < y->nsrc; j++) {
        ad_tensor *x = y->src[j];
        if (!gin[j] || !(x->flags & AD_TF_RECORDED) || x->tape != tape)
            continue;
        assert(gin[j]->dtype == x->dtype && ad__same_shape(gin[j], x));
        ad_status st;
        if (tape->anomaly && (st = ad__check_finite(y, gin[j], true, j)) != AD_OK)
            return st;
        if (x->id < s->floor)
            st = to_stop(tape, s->a, x, gin[j], op);
        else
            st = accumulate(s, x->id - s->floor, gin[j]);
        if (st != AD_OK)
            return st;
    }
    return AD_OK;
}

/* Runs y's backward rule on its gradient gy and passes the result down. The
 * graph through y is released once the rule has run, even when passing down
 * fails. */
static ad_status backpropagate(const sweep *s, ad_tensor *y, ad_tensor *gy)
{
    ad_tape *tape = s->tape;
    const ad__op *op = &ad__ops[y->op];
    ad_tensor *gin_small[8], **gin = gin_small;
    if (y->nsrc > 8 && !(gin = ad__alloc(tape, y->nsrc * sizeof *gin)))
        return tape->status;
    for (int j = 0; j < y->nsrc; j++)
        gin[j] = NULL;
    tape->sweep_serial = s->serial;
    run_rule(tape, op, y, gy, gin);
    if (tape->status != AD_OK)
        return tape->status;
    ad_status st = pass_down(s, y, gin, op->name);
    release(s, y);
    return st;
}

/* One node of the reverse loop: its gradient is complete here. */
static ad_status visit(const sweep *s, uint32_t i)
{
    ad_tape *tape = s->tape;
    ad_tensor *y = tape->nodes[i], **gy = &s->G[i - s->floor];
    if (*gy && (y->flags & AD_TF_HOOKED) && !(*gy = ad__run_grad_hooks(y, *gy)))
        return tape->status != AD_OK ? tape->status : AD_ERR_NULL;
    if (y->op == AD_OP_leaf || y->op == AD_OP_view)
        return s->a->accumulate ? deliver(tape, y, *gy) : AD_OK;
    if (!*gy)
        return AD_OK;
    if (y->flags & AD_TF_FREED) {
        bool custom = y->op == AD_OP_custom || y->op == AD_OP_custom_output;
        return ad__fail(tape, AD_ERR_FREED,
                        "backward: the graph through %s was freed by an earlier backward "
                        "(set retain_graph to go through it twice)",
                        custom ? ad__custom_name(y) : ad__ops[y->op].name);
    }
    if (y->op == AD_OP_custom_output) {
        /* The custom node collects its outputs' gradients itself. */
        ad__custom_collect(y, *gy, s->serial, false);
        ad_tensor *parent = y->src[0];
        if (parent->id >= s->floor && !s->G[parent->id - s->floor])
            s->G[parent->id - s->floor] = *gy;
        release(s, y);
        return AD_OK;
    }
    return backpropagate(s, y, *gy);
}

ad_status ad__sweep(ad_tape *tape, const ad__sweep_args *a, ad_tensor ***grads_out)
{
    *grads_out = NULL;
    if (tape->status != AD_OK)
        return tape->status;
    if (tape->n_nodes == 0)
        return ad__fail(tape, AD_ERR_NO_GRAD, "backward: nothing on the tape requires grad");
    sweep s = {.tape = tape, .a = a, .floor = a->floor};
    ad_status st = check_outputs(&s);
    if (st != AD_OK)
        return st;
    size_t span = (size_t)(s.max_id - s.floor) + 1;
    s.G = ad__alloc_zero(tape, span * sizeof *s.G);
    if (!s.G)
        return tape->status;
    if (!a->create_graph && !tape->anomaly && !(s.owned = ad__alloc_zero(tape, span)))
        return tape->status;
    s.serial = ++tape->serials;
    if (a->accumulate && ad__accumulate_hooks)
        mark_last_uses(tape, s.floor, s.max_id);
    bool was_enabled = tape->grad_enabled;
    sweep *outer = tape->sweep; /* a custom op's backward runs a sweep inside one */
    tape->grad_enabled = a->create_graph;
    tape->sweep = &s;
    st = seed_outputs(&s);
    for (int64_t i = (int64_t)s.max_id; i >= (int64_t)s.floor && st == AD_OK; i--)
        st = visit(&s, (uint32_t)i);
    tape->grad_enabled = was_enabled;
    tape->sweep = outer;
    if (st != AD_OK)
        return tape->status != AD_OK ? tape->status : st;
    *grads_out = s.G;
    return AD_OK;
}

ad_tensor *ad__persistent_grad(ad_tape *tape, ad_tensor **g, uint32_t floor, uint32_t max_id,
                               ad_tensor *p)
{
    (void)tape;
    ad_tensor *sum = NULL;
    for (uint32_t i = floor; i <= max_id; i++) {
        ad_tensor *v = tape->nodes[i];
        if (g[i - floor] && v->op == AD_OP_view && v->src[0] == p)
            sum = sum ? ad_add(sum, g[i - floor]) : g[i - floor];
    }
    return sum;
}

/* See core.h. Only ad_backward sets grads_in_place, and only for its own
 * sweep: not under create_graph (the gradient must be recorded), not in
 * anomaly mode (which checks every gradient), not for a hooked view (its
 * hooks must see the gradient). */
ad_tensor *ad__grad_sink(const ad_tensor *b)
{
    const ad_tape *tape = b->tape;
    if (!tape->grads_in_place || tape->grad_enabled || b->op != AD_OP_view ||
        (b->flags & AD_TF_HOOKED))
        return NULL;
    const ad_tensor *p = b->src[0];
    ad_tensor *g = p->grad;
    if (!(p->flags & AD_TF_REQUIRES_GRAD) || !g || g->dtype != b->dtype || g->numel != b->numel)
        return NULL;
    return g;
}

ad_status ad_backward(ad_tensor *y, const ad_backward_opts *opts)
{
    if (!y)
        return AD_ERR_NULL;
    ad_tape *tape = y->tape;
    if (!tape)
        return ad__misuse(0, NULL, AD_ERR_NO_GRAD,
                          "backward: the output is a persistent tensor (no graph leads to it)");
    ad_backward_opts o = opts ? *opts : (ad_backward_opts){0};
    ad_tensor **G;
    ad_tensor *seeds[1] = {o.seed};
    ad__sweep_args a = {.n_out = 1,
                        .outputs = &y,
                        .seeds = o.seed ? seeds : NULL,
                        .create_graph = o.create_graph,
                        .retain_graph = o.retain_graph,
                        .accumulate = true};
    /* See ad__matmul_backward; anomaly mode checks every gradient instead. */
    tape->grads_in_place = !o.create_graph && !tape->anomaly;
    ad_status st = ad__sweep(tape, &a, &G);
    tape->grads_in_place = false;
    return st != AD_OK ? st : tape->status;
}

ad_status ad_grad(size_t n_outputs, ad_tensor *const *outputs, ad_tensor *const *seeds,
                  size_t n_inputs, ad_tensor *const *inputs, ad_tensor **grads,
                  const ad_backward_opts *opts)
{
    if ((n_inputs && !grads) || n_outputs == 0 || !outputs || (n_inputs && !inputs)) {
        for (size_t k = 0; grads && k < n_inputs; k++)
            grads[k] = NULL;
        return ad__misuse(n_outputs, outputs, AD_ERR_ARG, "grad: %zu outputs, %zu inputs, %s",
                          n_outputs, n_inputs, grads ? "a NULL list" : "grads is NULL");
    }
    for (size_t k = 0; k < n_inputs; k++)
        grads[k] = NULL;
    ad_tape *tape = ad__tape_of((int)n_outputs, outputs);
    if (!tape)
        return AD_ERR_NULL;
    for (size_t k = 0; k < n_inputs; k++) {
        if (!inputs[k])
            return ad__fail(tape, AD_ERR_NULL, "grad: input %zu is NULL", k);
        if (inputs[k]->tape && inputs[k]->generation != inputs[k]->tape->generation)
            return ad__fail(tape, AD_ERR_FREED, "grad: input %zu was freed by ad_tape_reset", k);
    }
    ad_backward_opts o = opts ? *opts : (ad_backward_opts){0};
    ad_tensor **G;
    ad__sweep_args a = {.n_out = n_outputs,
                        .outputs = outputs,
                        .seeds = seeds,
                        .create_graph = o.create_graph,
                        .retain_graph = o.retain_graph};
    /* A sweep nested in another one's rule (a custom op's backward) must not
     * add weight gradients in place. */
    bool in_place = tape->grads_in_place;
    tape->grads_in_place = false;
    ad_status st = ad__sweep(tape, &a, &G);
    tape->grads_in_place = in_place;
    if (st != AD_OK)
        return st;
    uint32_t max_id = 0;
    for (size_t k = 0; k < n_outputs; k++)
        if (outputs[k]->id > max_id)
            max_id = outputs[k]->id;
    bool was_enabled = tape->grad_enabled;
    tape->grad_enabled = o.create_graph;
    for (size_t k = 0; k < n_inputs; k++) {
        ad_tensor *x = inputs[k], *g = NULL;
        if (x->flags & AD_TF_PERSISTENT) {
            /* A persistent tensor may have entered the tape through several views. */
            g = ad__persistent_grad(tape, G, 0, max_id, x);
        } else if (x->tape == tape && (x->flags & AD_TF_RECORDED) && x->id <= max_id) {
            g = G[x->id];
        } else if (x->tape != tape) {
            st = ad__fail(tape, AD_ERR_TAPE, "grad: input %zu is on another tape", k);
            break;
        }
        grads[k] = g ? g : ad_zeros_like(tape, x);
        if (!grads[k]) {
            st = tape->status;
            break;
        }
    }
    tape->grad_enabled = was_enabled;
    return st != AD_OK ? st : tape->status;
}

ad_status ad_vjp(size_t n_outputs, ad_tensor *const *outputs, ad_tensor *const *v, size_t n_inputs,
                 ad_tensor *const *inputs, ad_tensor **grads, const ad_backward_opts *opts)
{
    ad_backward_opts o = opts ? *opts : (ad_backward_opts){0};
    o.retain_graph = true;
    return ad_grad(n_outputs, outputs, v, n_inputs, inputs, grads, &o);
}
