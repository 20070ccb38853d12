/* Forward mode and the functional transforms. The forward sweep walks the
 * recorded nodes in creation order, from the inputs to the outputs, and asks
 * each op's jvp rule for the tangent of its result; Jacobians, Hessians and
 * Hessian-vector products are built from it and from the reverse sweep. */
#include "core.h"

/* The tangent's fit with its input: same dtype and shape. */
static ad_status check_tangent(ad_tape *tape, const char *what, size_t k, const ad_tensor *x,
                               const ad_tensor *v)
{
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (v->tape && v->tape != tape)
        return ad__fail(tape, AD_ERR_TAPE, "%s: tangent %zu is on another tape", what, k);
    if (v->tape && v->generation != tape->generation)
        return ad__fail(tape, AD_ERR_FREED, "%s: tangent %zu was freed by ad_tape_reset", what, k);
    if (v->dtype != x->dtype || !ad__same_shape(v, x))
        return ad__fail(tape, v->dtype != x->dtype ? AD_ERR_DTYPE : AD_ERR_SHAPE,
                        "%s: tangent %zu is %s %s, its input %s %s", what, k,
                        ad_dtype_name((ad_dtype)v->dtype), AD__SHAPE(v, s0),
                        ad_dtype_name((ad_dtype)x->dtype), AD__SHAPE(x, s1));
    return AD_OK;
}

static ad_status check_input(ad_tape *tape, const char *what, size_t k, const ad_tensor *x)
{
    if (!x)
        return ad__fail(tape, AD_ERR_NULL, "%s: input %zu is NULL", what, k);
    if (x->flags & AD_TF_PERSISTENT)
        return AD_OK;
    if (x->tape != tape)
        return ad__fail(tape, AD_ERR_TAPE, "%s: input %zu is on another tape", what, k);
    if (x->generation != tape->generation)
        return ad__fail(tape, AD_ERR_FREED, "%s: input %zu was freed by ad_tape_reset", what, k);
    return AD_OK;
}

/* The state of one forward sweep, shared by its helpers. */
typedef struct sweep {
    ad_tape *tape;
    size_t n_out, n_in;
    ad_tensor *const *outputs, *const *inputs, *const *tangents;
    uint32_t lo, hi; /* the part swept: from the first input to the last output */
    ad_tensor **T;   /* T[id - lo]: the tangent of node id (NULL: zero) */
    bool *given;     /* given[id - lo]: node id is an input, its tangent fixed */
    uint64_t serial; /* tells custom nodes which sweep handed them tangents */
} sweep;

/* Checks every output and finds the last recorded one: the sweep ends there.
 * *any_out: some output is recorded (else every tangent is zero). */
static ad_status check_outputs(sweep *s, bool *any_out)
{
    ad_tape *tape = s->tape;
    for (size_t k = 0; k < s->n_out; k++) {
        ad_tensor *y = s->outputs[k];
        if (!y)
            return ad__fail(tape, AD_ERR_NULL, "jvp: output %zu is NULL", k);
        if (y->tape != tape)
            return ad__fail(tape, AD_ERR_TAPE, "jvp: outputs come from different tapes");
        if (y->generation != tape->generation)
            return ad__fail(tape, AD_ERR_FREED, "jvp: output %zu was freed by ad_tape_reset", k);
        if (y->flags & AD_TF_RECORDED) {
            s->hi = y->id > s->hi ? y->id : s->hi;
            *any_out = true;
        }
    }
    return AD_OK;
}

/* Checks every input and its tangent, and finds the first input: the sweep
 * starts there. */
static ad_status check_inputs(sweep *s)
{
    for (size_t k = 0; k < s->n_in; k++) {
        ad_status st = check_input(s->tape, "jvp", k, s->inputs[k]);
        if (st == AD_OK && s->tangents && s->tangents[k])
            st = check_tangent(s->tape, "jvp", k, s->inputs[k], s->tangents[k]);
        if (st != AD_OK)
            return st;
        const ad_tensor *x = s->inputs[k];
        if (x->flags & AD_TF_PERSISTENT)
            s->lo = 0; /* its views may be anywhere */
        else if ((x->flags & AD_TF_RECORDED) && x->id < s->lo)
            s->lo = x->id;
    }
    return AD_OK;
}

/* Inputs take their tangents, and keep them: an input's own inputs do not
 * count. A persistent input takes its tangent at each of its views. */
static void seed_inputs(const sweep *s)
{
    for (size_t k = 0; k < s->n_in; k++) {
        ad_tensor *x = s->inputs[k];
        for (uint32_t i = s->lo; i <= s->hi; i++) {
            ad_tensor *v = s->tape->nodes[i];
            bool match =
                (x->flags & AD_TF_PERSISTENT) ? v->op == AD_OP_view && v->src[0] == x : v == x;
            if (!match)
                continue;
            s->given[i - s->lo] = true;
            if (s->tangents[k])
                s->T[i - s->lo] = ad__add_tangents(s->T[i - s->lo], s->tangents[k]);
        }
    }
}

/* Calls y's jvp rule on its sources' tangents t: a rule may run a sweep of
 * its own (a custom op's jvp), so the outer rule's node is restored after. */
static ad_tensor *run_rule(ad_tape *tape, ad_tensor *y, ad_tensor **t)
{
    ad_tensor *outer_rule = tape->rule_node;
    bool outer_jvp = tape->rule_is_jvp;
    tape->rule_node = y;
    tape->rule_is_jvp = true;
    ad_tensor *r = ad__ops[y->op].jvp(y, t);
    tape->rule_node = outer_rule;
    tape->rule_is_jvp = outer_jvp;
    return r;
}

/* One node of the forward loop: the tangent of node i from its sources'. */
static ad_status visit(const sweep *s, uint32_t i)
{
    ad_tape *tape = s->tape;
    ad_tensor *y = tape->nodes[i];
    if (s->given[i - s->lo] || y->op == AD_OP_leaf || y->op == AD_OP_view)
        return AD_OK;
    ad_tensor *small[8], **t = small;
    if (y->nsrc > 8 && !(t = ad__alloc(tape, y->nsrc * sizeof *t)))
        return tape->status;
    bool any = false;
    for (int j = 0; j < y->nsrc; j++) {
        ad_tensor *x = y->src[j];
        t[j] = (x->flags & AD_TF_RECORDED) && x->tape == tape && x->id >= s->lo && x->id < i
                   ? s->T[x->id - s->lo]
                   : NULL;
        any |= t[j] != NULL;
    }
    if (!any)
        return AD_OK;
    tape->sweep_serial = s->serial;
    ad_tensor *r = run_rule(tape, y, t);
    if (tape->status != AD_OK)
        return tape->status;
    if (r && y->op != AD_OP_custom) {
        if (!ad__same_shape(r, y))
            r = ad_expand(r, y->ndim, y->shape);
        if (!r)
            return tape->status;
        assert(r->dtype == y->dtype && ad__same_shape(r, y));
        ad_status st;
        if (tape->anomaly && (st = ad__check_finite(y, r, true, -1)) != AD_OK)
            return st;
    }
    s->T[i - s->lo] = r;
    return AD_OK;
}

ad_status ad__forward_sweep(ad_tape *tape, size_t n_out, ad_tensor *const *outputs, size_t n_in,
                            ad_tensor *const *inputs, ad_tensor *const *tangents,
                            ad_tensor **tangents_out)
{
    for (size_t k = 0; k < n_out; k++)
        tangents_out[k] = NULL;
    sweep s = {.tape = tape,
               .n_out = n_out,
               .n_in = n_in,
               .outputs = outputs,
               .inputs = inputs,
               .tangents = tangents,
               .lo = UINT32_MAX,
               .hi = 0};
    bool any_out = false;
    ad_status st = check_outputs(&s, &any_out);
    if (st == AD_OK)
        st = check_inputs(&s);
    if (st != AD_OK)
        return st;
    if (any_out && s.lo <= s.hi && tangents) {
        if (!(s.T = ad__alloc_zero(tape, ((size_t)(s.hi - s.lo) + 1) * sizeof *s.T)))
            return tape->status;
        if (!(s.given = ad__alloc_zero(tape, (size_t)(s.hi - s.lo) + 1)))
            return tape->status;
        seed_inputs(&s);
        s.serial = ++tape->serials;
        for (uint32_t i = s.lo; i <= s.hi && st == AD_OK; i++)
            st = visit(&s, i);
        for (size_t k = 0; k < n_out && st == AD_OK; k++) {
            ad_tensor *y = outputs[k];
            if ((y->flags & AD_TF_RECORDED) && y->id >= s.lo && y->id <= s.hi)
                tangents_out[k] = s.T[y->id - s.lo];
        }
    }
    /* An output the tangents do not reach has a zero tangent, not NULL. */
    for (size_t k = 0; k < n_out && st == AD_OK; k++)
        if (!tangents_out[k] && !(tangents_out[k] = ad__const_like(outputs[k], 0.0)))
            st = tape->status;
    return st != AD_OK ? st : tape->status;
}

ad_status ad_jvp(size_t n_outputs, ad_tensor *const *outputs, size_t n_inputs,
                 ad_tensor *const *inputs, ad_tensor *const *v, ad_tensor **out,
                 const ad_backward_opts *opts)
{
    if (n_outputs == 0 || !outputs || !out || (n_inputs && !inputs))
        return ad__misuse(n_outputs, outputs, AD_ERR_ARG, "jvp: %zu outputs, %zu inputs, %s, %s",
                          n_outputs, n_inputs,
                          outputs && n_outputs ? "outputs given" : "no outputs",
                          out ? "with room for the tangents" : "out is NULL");
    for (size_t k = 0; k < n_outputs; k++)
        out[k] = NULL;
    ad_tape *tape = ad__tape_of((int)n_outputs, outputs);
    if (!tape)
        return AD_ERR_NULL;
    if (tape->status != AD_OK)
        return tape->status;
    bool was = tape->grad_enabled;
    tape->grad_enabled = opts && opts->create_graph;
    ad_status st = ad__forward_sweep(tape, n_outputs, outputs, n_inputs, inputs, v, out);
    tape->grad_enabled = was;
    if (st != AD_OK)
        for (size_t k = 0; k < n_outputs; k++)
            out[k] = NULL;
    return st;
}

/* ---- Jacobians ---------------------------------------------------------------- */

/* y's shape followed by x's, into shape; its ndim, or -1 past AD_MAX_DIMS. */
static int joined_shape(const ad_tensor *y, const ad_tensor *x, int64_t *shape)
{
    if (y->ndim + x->ndim > AD_MAX_DIMS)
        return -1;
    for (int d = 0; d < y->ndim; d++)
        shape[d] = y->shape[d];
    for (int d = 0; d < x->ndim; d++)
        shape[y->ndim + d] = x->shape[d];
    return y->ndim + x->ndim;
}

/* A one-hot constant of t's shape and dtype with a 1 at e. */
static ad_tensor *one_hot(ad_tape *tape, const ad_tensor *t, int64_t e)
{
    ad_tensor *h = ad_full(tape, (ad_dtype)t->dtype, t->ndim, t->shape, 0.0);
    if (h)
        ad__set(h, e, 1.0);
    return h;
}

static ad_status jacobian_reverse(ad_tape *tape, size_t n_out, ad_tensor *const *outputs,
                                  size_t n_in, ad_tensor *const *inputs, ad_tensor **jac,
                                  const ad_backward_opts *o)
{
    ad_tensor **g = ad__alloc(tape, (n_in ? n_in : 1) * sizeof *g);
    if (!g)
        return tape->status;
    for (size_t j = 0; j < n_out; j++) {
        ad_tensor *y = outputs[j];
        int64_t m = y->numel;
        if (!(y->flags & AD_TF_RECORDED) || m == 0)
            continue; /* zeros, below */
        ad_tensor **rows = ad__alloc(tape, (size_t)m * (n_in ? n_in : 1) * sizeof *rows);
        if (!rows)
            return tape->status;
        for (int64_t e = 0; e < m; e++) {
            ad_tensor *seed = one_hot(tape, y, e);
            if (!seed)
                return tape->status;
            ad_status st = ad_grad(1, &y, &seed, n_in, inputs, g, o);
            if (st != AD_OK)
                return st;
            for (size_t i = 0; i < n_in; i++)
                rows[i * (size_t)m + (size_t)e] = g[i];
        }
        for (size_t i = 0; i < n_in; i++) {
            int64_t shape[AD_MAX_DIMS];
            int nd = joined_shape(y, inputs[i], shape);
            ad_tensor *stacked = ad_stack((size_t)m, rows + i * (size_t)m, 0);
            jac[j * n_in + i] = ad_reshape(stacked, nd, shape);
            if (!jac[j * n_in + i])
                return tape->status;
        }
    }
    return AD_OK;
}

static ad_status jacobian_forward(ad_tape *tape, size_t n_out, ad_tensor *const *outputs,
                                  size_t n_in, ad_tensor *const *inputs, ad_tensor **jac,
                                  const ad_backward_opts *o)
{
    ad_tensor **v = ad__alloc_zero(tape, (n_in ? n_in : 1) * sizeof *v);
    ad_tensor **t = ad__alloc(tape, n_out * sizeof *t);
    if (!v || !t)
        return tape->status;
    for (size_t i = 0; i < n_in; i++) {
        const ad_tensor *x = inputs[i];
        int64_t n = x->numel;
        if (n == 0)
            continue;
        ad_tensor **cols = ad__alloc(tape, (size_t)n * n_out * sizeof *cols);
        if (!cols)
            return tape->status;
        for (int64_t e = 0; e < n; e++) {
            if (!(v[i] = one_hot(tape, x, e)))
                return tape->status;
            ad_status st = ad_jvp(n_out, outputs, n_in, inputs, v, t, o);
            if (st != AD_OK)
                return st;
            for (size_t j = 0; j < n_out; j++)
                cols[j * (size_t)n + (size_t)e] = t[j];
        }
        v[i] = NULL;
        for (size_t j = 0; j < n_out; j++) {
            const ad_tensor *y = outputs[j];
            int64_t shape[AD_MAX_DIMS];
            int nd = joined_shape(y, x, shape);
            ad_tensor *stacked = ad_stack((size_t)n, cols + j * (size_t)n, y->ndim);
            jac[j * n_in + i] = ad_reshape(stacked, nd, shape);
            if (!jac[j * n_in + i])
                return tape->status;
        }
    }
    return AD_OK;
}

ad_status ad_jacobian(size_t n_outputs, ad_tensor *const *outputs, size_t n_inputs,
                      ad_tensor *const *inputs, ad_tensor **jac, ad_jacobian_mode mode,
                      const ad_backward_opts *opts)
{
    if (n_outputs == 0 || !outputs || !jac || (n_inputs && !inputs))
        return ad__misuse(n_outputs, outputs, AD_ERR_ARG, "jacobian: %zu outputs, %zu inputs, %s",
                          n_outputs, n_inputs, jac ? "a NULL list" : "jac is NULL");
    for (size_t k = 0; k < n_outputs * n_inputs; k++)
        jac[k] = NULL;
    ad_tape *tape = ad__tape_of((int)n_outputs, outputs);
    if (!tape)
        return AD_ERR_NULL;
    if (tape->status != AD_OK)
        return tape->status;
    if (mode < AD_JACOBIAN_AUTO || mode > AD_JACOBIAN_FORWARD)
        return ad__fail(tape, AD_ERR_ARG, "jacobian: unknown mode %d", (int)mode);
    int64_t rows = 0, cols = 0;
    for (size_t j = 0; j < n_outputs; j++)
        rows += outputs[j]->numel;
    for (size_t i = 0; i < n_inputs; i++) {
        ad_status st = check_input(tape, "jacobian", i, inputs[i]);
        if (st != AD_OK)
            return st;
        cols += inputs[i]->numel;
        for (size_t j = 0; j < n_outputs; j++) {
            int64_t shape[AD_MAX_DIMS];
            char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
            if (joined_shape(outputs[j], inputs[i], shape) < 0)
                return ad__fail(tape, AD_ERR_SHAPE,
                                "jacobian: output %s and input %s need more than %d dims",
                                AD__SHAPE(outputs[j], s0), AD__SHAPE(inputs[i], s1), AD_MAX_DIMS);
        }
    }
    ad_backward_opts o = opts ? *opts : (ad_backward_opts){0};
    o.retain_graph = true;
    o.seed = NULL;
    if (mode == AD_JACOBIAN_AUTO)
        mode = rows <= cols ? AD_JACOBIAN_REVERSE : AD_JACOBIAN_FORWARD;
    ad_status st = mode == AD_JACOBIAN_REVERSE
                       ? jacobian_reverse(tape, n_outputs, outputs, n_inputs, inputs, jac, &o)
                       : jacobian_forward(tape, n_outputs, outputs, n_inputs, inputs, jac, &o);
    /* Blocks nothing flowed through are zeros. */
    for (size_t j = 0; j < n_outputs && st == AD_OK; j++)
        for (size_t i = 0; i < n_inputs && st == AD_OK; i++) {
            if (jac[j * n_inputs + i])
                continue;
            int64_t shape[AD_MAX_DIMS];
            int nd = joined_shape(outputs[j], inputs[i], shape);
            if (!(jac[j * n_inputs + i] =
                      ad_full(tape, (ad_dtype)outputs[j]->dtype, nd, shape, 0.0)))
                st = tape->status;
        }
    if (st != AD_OK)
        for (size_t k = 0; k < n_outputs * n_inputs; k++)
            jac[k] = NULL;
    return st != AD_OK ? st : tape->status;
}

/* ---- Hessians ------------------------------------------------------------------- */

/* The gradient of y in inputs, recorded so that it can be differentiated:
 * *g receives n_in tensors on y's tape (the shared first half of ad_hessian
 * and ad_hvp). */
static ad_status recorded_grad(ad_tensor *y, size_t n_in, ad_tensor *const *inputs, ad_tensor ***g)
{
    if (!y || !y->tape)
        return AD_ERR_NULL;
    if (y->numel != 1)
        return ad__fail(y->tape, AD_ERR_SHAPE, "hessian: the output has %lld elements, not one",
                        (long long)y->numel);
    if (!(*g = ad__alloc(y->tape, n_in * sizeof **g)))
        return y->tape->status;
    ad_backward_opts o = {.create_graph = true, .retain_graph = true};
    return ad_grad(1, &y, NULL, n_in, inputs, *g, &o);
}

ad_status ad_hessian(ad_tensor *y, size_t n_inputs, ad_tensor *const *inputs, ad_tensor **hess,
                     ad_jacobian_mode mode, const ad_backward_opts *opts)
{
    if (!hess || n_inputs == 0 || !inputs)
        return ad__misuse(y ? 1 : 0, &y, AD_ERR_ARG, "hessian: %zu inputs, %s", n_inputs,
                          hess ? "a NULL list" : "hess is NULL");
    for (size_t k = 0; k < n_inputs * n_inputs; k++)
        hess[k] = NULL;
    ad_tensor **g;
    ad_status st = recorded_grad(y, n_inputs, inputs, &g);
    if (st != AD_OK)
        return st;
    return ad_jacobian(n_inputs, g, n_inputs, inputs, hess, mode, opts);
}

ad_status ad_hvp(ad_tensor *y, size_t n_inputs, ad_tensor *const *inputs, ad_tensor *const *v,
                 ad_tensor **out, const ad_backward_opts *opts)
{
    if (!out || n_inputs == 0 || !inputs)
        return ad__misuse(y ? 1 : 0, &y, AD_ERR_ARG, "hvp: %zu inputs, %s", n_inputs,
                          out ? "a NULL list" : "out is NULL");
    for (size_t k = 0; k < n_inputs; k++)
        out[k] = NULL;
    ad_tensor **g;
    ad_status st = recorded_grad(y, n_inputs, inputs, &g);
    if (st != AD_OK)
        return st;
    /* Forward over reverse: the tangent of the gradient along v. */
    return ad_jvp(n_inputs, g, n_inputs, inputs, v, out, opts);
}
