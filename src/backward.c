/* The backward sweep: one reverse loop over the tape. Creation order is a
 * topological order, so no sort and no recursion. Each node's gradient is
 * complete when the loop reaches it, because every consumer was created later
 * and has already passed its contribution down. */
#include "internal.h"

static ad_status check_output(ad_tape *tape, const ad_tensor *y, const ad_tensor *seed)
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
static ad_status accumulate(ad_tensor **slot, ad_tensor *g)
{
    *slot = *slot ? ad_add(*slot, g) : g;
    return *slot ? AD_OK : AD_ERR_NOMEM;
}

ad_status ad__sweep(ad_tape *tape, size_t n_out, ad_tensor *const *outputs, ad_tensor *const *seeds,
                    bool create_graph, bool retain_graph, ad_tensor ***grads_out)
{
    *grads_out = NULL;
    if (tape->status != AD_OK)
        return tape->status;
    if (tape->n_nodes == 0)
        return ad__fail(tape, AD_ERR_NO_GRAD, "backward: nothing on the tape requires grad");
    uint32_t max_id = 0;
    for (size_t k = 0; k < n_out; k++) {
        ad_status st = check_output(tape, outputs[k], seeds ? seeds[k] : NULL);
        if (st != AD_OK)
            return st;
        if (outputs[k]->id > max_id)
            max_id = outputs[k]->id;
    }
    ad_tensor **G = ad__alloc_zero(tape, ((size_t)max_id + 1) * sizeof *G);
    if (!G)
        return tape->status;
    bool was_enabled = tape->grad_enabled;
    tape->grad_enabled = create_graph;
    ad_status st = AD_OK;
    for (size_t k = 0; k < n_out && st == AD_OK; k++) {
        ad_tensor *y = outputs[k];
        ad_tensor *seed = seeds && seeds[k] ? seeds[k] : ad__const_like(y, 1.0);
        if (!seed)
            st = tape->status;
        else
            st = accumulate(&G[y->id], seed);
    }
    ad_tensor *gin_small[8];
    for (int64_t i = (int64_t)max_id; i >= 0 && st == AD_OK; i--) {
        ad_tensor *y = tape->nodes[i], *gy = G[i];
        if (!gy || y->op == AD_OP_leaf || y->op == AD_OP_view)
            continue;
        const ad__op *op = &ad__ops[y->op];
        if (y->flags & AD_TF_FREED) {
            st = ad__fail(tape, AD_ERR_FREED,
                          "backward: the graph through %s was freed by an earlier backward "
                          "(set retain_graph to go through it twice)",
                          op->name);
            break;
        }
        if (create_graph && (op->flags & AD_OPF_NO_DOUBLE)) {
            st = ad__fail(tape, AD_ERR_UNSUPPORTED,
                          "backward: %s has no second derivative (create_graph)", op->name);
            break;
        }
        ad_tensor **gin = gin_small;
        if (y->nsrc > 8 && !(gin = ad__alloc(tape, y->nsrc * sizeof *gin))) {
            st = tape->status;
            break;
        }
        for (int j = 0; j < y->nsrc; j++)
            gin[j] = NULL;
        op->backward(y, gy, gin);
        if (tape->status != AD_OK) {
            st = tape->status;
            break;
        }
        for (int j = 0; j < y->nsrc && st == AD_OK; j++) {
            ad_tensor *x = y->src[j];
            if (!gin[j] || !(x->flags & AD_TF_RECORDED) || x->tape != tape)
                continue;
            assert(gin[j]->dtype == x->dtype && ad__same_shape(gin[j], x));
            st = accumulate(&G[x->id], gin[j]);
        }
        if (!retain_graph && !create_graph)
            y->flags |= AD_TF_FREED;
    }
    tape->grad_enabled = was_enabled;
    if (st != AD_OK)
        return tape->status != AD_OK ? tape->status : st;
    *grads_out = G;
    return AD_OK;
}

/* dst += src elementwise; both of one dtype and size. */
static void add_into(ad_tensor *dst, const ad_tensor *src)
{
    if (dst->dtype == AD_F32) {
        float *d = dst->data;
        const float *s = src->data;
        for (int64_t i = 0; i < dst->numel; i++)
            d[i] += s[i];
    } else {
        double *d = dst->data;
        const double *s = src->data;
        for (int64_t i = 0; i < dst->numel; i++)
            d[i] += s[i];
    }
}

ad_status ad_backward(ad_tensor *y, const ad_backward_opts *opts)
{
    if (!y)
        return AD_ERR_NULL;
    ad_tape *tape = y->tape;
    if (!tape)
        return AD_ERR_NO_GRAD;
    ad_backward_opts o = opts ? *opts : (ad_backward_opts){0};
    ad_tensor **G;
    ad_tensor *seeds[1] = {o.seed};
    tape->grads_in_place = !o.create_graph; /* see ad__matmul_backward */
    ad_status st =
        ad__sweep(tape, 1, &y, o.seed ? seeds : NULL, o.create_graph, o.retain_graph, &G);
    tape->grads_in_place = false;
    if (st != AD_OK)
        return st;
    bool was_enabled = tape->grad_enabled;
    tape->grad_enabled = o.create_graph;
    for (uint32_t i = 0; i <= y->id; i++) {
        ad_tensor *x = tape->nodes[i];
        if (!G[i])
            continue;
        if (x->op == AD_OP_view) {
            ad_tensor *p = x->src[0];
            if (p->grad)
                add_into(p->grad, G[i]);
        } else if (x->flags & AD_TF_LEAF) {
            /* A tape leaf keeps a tensor; with create_graph it stays in the graph. */
            x->grad = x->grad ? ad_add(x->grad, G[i]) : G[i];
            if (!x->grad)
                break;
        }
    }
    tape->grad_enabled = was_enabled;
    return tape->status;
}

ad_status ad_grad(size_t n_outputs, ad_tensor *const *outputs, ad_tensor *const *seeds,
                  size_t n_inputs, ad_tensor *const *inputs, ad_tensor **grads,
                  const ad_backward_opts *opts)
{
    for (size_t k = 0; k < n_inputs; k++)
        grads[k] = NULL;
    if (n_outputs == 0)
        return AD_ERR_ARG;
    ad_tape *tape = ad__tape_of((int)n_outputs, outputs);
    if (!tape)
        return AD_ERR_NULL;
    for (size_t k = 0; k < n_inputs; k++)
        if (!inputs[k])
            return ad__fail(tape, AD_ERR_NULL, "grad: input %zu is NULL", k);
    ad_backward_opts o = opts ? *opts : (ad_backward_opts){0};
    ad_tensor **G;
    ad_status st = ad__sweep(tape, n_outputs, outputs, seeds, o.create_graph, o.retain_graph, &G);
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
            for (uint32_t i = 0; i <= max_id; i++) {
                ad_tensor *v = tape->nodes[i];
                if (G[i] && v->op == AD_OP_view && v->src[0] == x)
                    g = g ? ad_add(g, G[i]) : G[i];
            }
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
