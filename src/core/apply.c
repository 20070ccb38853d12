/* The op table and the one function that makes op nodes (ad__apply), with the
 * shape helpers every family shares. */
#include "core.h"

#include <stdio.h>

const ad__op ad__ops[AD_OP_COUNT] = {
#define AD_OP(name, arity, flags)                                                                  \
    {                                                                                              \
        #name,                                                                                     \
        arity,                                                                                     \
        flags,                                                                                     \
        ad__##name##_shape,                                                                        \
        ad__##name##_forward,                                                                      \
        ad__##name##_backward,                                                                     \
        ad__##name##_jvp},
#include "ops.def"
#undef AD_OP
};

int ad_op_count(void)
{
    return AD_OP_COUNT;
}

const char *ad_op_name(int op)
{
    return op >= 0 && op < AD_OP_COUNT ? ad__ops[op].name : "?";
}

int ad_op_arity(int op)
{
    return op >= 0 && op < AD_OP_COUNT ? ad__ops[op].arity : 0;
}

bool ad_op_differentiable(int op)
{
    return op >= 0 && op < AD_OP_COUNT && !(ad__ops[op].flags & AD_OPF_NONDIFF);
}

/* ---- Shape helpers ---------------------------------------------------------- */

int ad__axis(int axis, int ndim)
{
    if (axis < -ndim || axis >= ndim)
        return -1;
    return axis < 0 ? axis + ndim : axis;
}

int ad__check_axis(ad_tape *tape, const char *op, const ad_tensor *x, int axis)
{
    int a = ad__axis(axis, x->ndim);
    if (a < 0) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_AXIS, "%s: axis %d out of range for shape %s", op, axis,
                 AD__SHAPE(x, s));
    }
    return a;
}

bool ad__same_dtype(ad_tape *tape, const char *op, const ad_tensor *a, const ad_tensor *b)
{
    if (a->dtype == b->dtype)
        return true;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    ad__fail(tape, AD_ERR_DTYPE, "%s: dtypes %s %s and %s %s differ (use ad_cast)", op,
             ad_dtype_name((ad_dtype)a->dtype), AD__SHAPE(a, s0), ad_dtype_name((ad_dtype)b->dtype),
             AD__SHAPE(b, s1));
    return false;
}

bool ad__same_shape(const ad_tensor *a, const ad_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    if (a->shape == b->shape)
        return true;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

/* ---- Making nodes ------------------------------------------------------------ */

void ad__no_tape(const char *name, int n, ad_tensor *const *ts)
{
    for (int i = 0; i < n; i++)
        if (!ts[i])
            return; /* an earlier error, already on its tape */
    ad__fail(NULL, AD_ERR_TAPE,
             "%s: every input is a persistent tensor, so there is no tape to record on "
             "(bring one onto a tape with ad_tape_use)",
             name);
}

ad_status ad__misuse(size_t n, ad_tensor *const *ts, ad_status code, const char *format, ...)
{
    char message[400];
    va_list ap;
    va_start(ap, format);
    vsnprintf(message, sizeof message, format, ap);
    va_end(ap);
    ad_tape *tape = ts && n && n <= INT32_MAX ? ad__tape_of((int)n, ts) : NULL;
    return ad__fail(tape, code, "%s", message);
}

ad_tape *ad__input_tape(const ad_tensor *x, const char *op)
{
    if (!x)
        return NULL;
    ad_tape *tape = x->tape;
    if (!tape) {
        ad__no_tape(op, 1, (ad_tensor *const *)&x);
        return NULL;
    }
    if (tape->status != AD_OK)
        return NULL;
    if (x->generation != tape->generation) {
        ad__fail(tape, AD_ERR_FREED, "%s: the input was freed by ad_tape_reset", op);
        return NULL;
    }
    return tape;
}

ad_tape *ad__tape_of(int n, ad_tensor *const *ts)
{
    ad_tape *tape = NULL;
    for (int i = 0; i < n; i++) {
        if (!ts[i])
            return NULL;
        if (ts[i]->tape && !tape)
            tape = ts[i]->tape;
    }
    return tape;
}

ad_tape *ad__inputs_tape(const char *op, int n, ad_tensor *const *ts)
{
    ad_tape *tape = ad__tape_of(n, ts);
    if (!tape) {
        ad__no_tape(op, n, ts);
        return NULL;
    }
    return tape->status == AD_OK ? tape : NULL;
}

ad_tensor *ad__node_new(ad_tape *tape, int op, int nsrc, ad_dtype dtype)
{
    ad_tensor *y = ad__alloc(tape, sizeof *y + (size_t)nsrc * sizeof(ad_tensor *));
    if (!y)
        return NULL;
    memset(y, 0, sizeof *y);
    y->src = (ad_tensor **)(y + 1);
    y->nsrc = (int32_t)nsrc;
    y->tape = tape;
    y->op = (uint8_t)op;
    y->dtype = (uint8_t)dtype;
    y->generation = tape->generation;
    return y;
}

/* A persistent tensor enters a tape as a view sharing its data. One that
 * requires grad gets a recorded view, so its gradient is gathered per tape
 * and never races across threads; otherwise the view is a constant. */
ad_tensor *ad__view_of(ad_tape *tape, ad_tensor *p, bool recorded)
{
    if (tape->collect && (p->flags & AD_TF_REQUIRES_GRAD))
        ad__collect_add(tape, p);
    ad_tensor *v = ad__node_new(tape, AD_OP_view, 1, (ad_dtype)p->dtype);
    if (!v)
        return NULL;
    v->src[0] = p;
    v->numel = p->numel;
    ad__view_shape(v);
    ad__view_forward(v);
    if (!recorded)
        return v;
    v->flags = AD_TF_REQUIRES_GRAD;
    return ad__record(tape, v) == AD_OK ? v : NULL;
}

ad_tensor *ad_tape_use(ad_tape *tape, ad_tensor *t)
{
    if (!tape || tape->status != AD_OK || !t)
        return NULL;
    if (t->tape == tape)
        return t;
    if (t->tape) {
        ad__fail(tape, AD_ERR_TAPE, "tape_use: tensor belongs to another tape");
        return NULL;
    }
    return ad__view_of(tape, t, (t->flags & AD_TF_REQUIRES_GRAD) && tape->grad_enabled);
}

/* The dtype rule of the ops without AD_OPF_OWN_DTYPES: one dtype for every
 * input, and a float one unless the op takes any (AD_OPF_ANY_DTYPE). */
static bool inputs_dtype(ad_tape *tape, int op, int nsrc, ad_tensor *const *src)
{
    const char *name = ad__ops[op].name;
    for (int i = 1; i < nsrc; i++)
        if (!ad__same_dtype(tape, name, src[0], src[i]))
            return false;
    if (nsrc && !(ad__ops[op].flags & AD_OPF_ANY_DTYPE) && !ad__is_float(src[0]->dtype)) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_DTYPE, "%s: takes float32 or float64 tensors, not %s %s (use ad_cast)",
                 name, ad_dtype_name((ad_dtype)src[0]->dtype), AD__SHAPE(src[0], s));
        return false;
    }
    return true;
}

ad_tensor *ad__apply(int op, int nsrc, ad_tensor *const *src, const ad__param *params)
{
    const char *name = ad__ops[op].name;
    ad_tape *tape = ad__inputs_tape(name, nsrc, src);
    if (!tape)
        return NULL;
    int arity = ad__ops[op].arity;
    if ((arity >= 0 && nsrc != arity) || (arity < 0 && nsrc < 1) || nsrc > AD__MAX_INPUTS) {
        ad__fail(tape, AD_ERR_ARG, "%s: %d inputs (the op takes %s%d)", name, nsrc,
                 arity < 0 ? "1 to " : "", arity < 0 ? AD__MAX_INPUTS : arity);
        return NULL;
    }
    const bool differentiable = !(ad__ops[op].flags & AD_OPF_NONDIFF);
    for (int i = 0; i < nsrc; i++) {
        const ad_tensor *x = src[i];
        if (x->tape && x->tape != tape) {
            ad__fail(tape, AD_ERR_TAPE, "%s: inputs come from different tapes", name);
            return NULL;
        }
        if (x->tape && x->generation != tape->generation) {
            ad__fail(tape, AD_ERR_FREED, "%s: input %d was freed by ad_tape_reset", name, i);
            return NULL;
        }
    }
    if (!(ad__ops[op].flags & AD_OPF_OWN_DTYPES) && !inputs_dtype(tape, op, nsrc, src))
        return NULL;
    ad_tensor *y = ad__node_new(tape, op, nsrc, (ad_dtype)src[0]->dtype);
    if (!y)
        return NULL;
    if (params)
        memcpy(y->param, params, sizeof y->param);
    bool needs_grad = false;
    for (int i = 0; i < nsrc; i++) {
        ad_tensor *x = src[i];
        if ((x->flags & AD_TF_PERSISTENT) && (x->flags & AD_TF_REQUIRES_GRAD) &&
            ((tape->grad_enabled && differentiable) || tape->collect)) {
            x = ad__view_of(tape, x, tape->grad_enabled && differentiable);
            if (!x)
                return NULL;
        }
        y->src[i] = x;
        if ((x->flags & AD_TF_RECORDED) && x->tape == tape)
            needs_grad = true;
    }
    if (ad__ops[op].shape(y) != AD_OK)
        return NULL;
    y->numel = ad__numel(y->ndim, y->shape);
    if (y->numel < 0) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_SHAPE, "%s: result shape %s is too large (2^60 elements at most)",
                 ad__ops[op].name, AD__SHAPE(y, s));
        return NULL;
    }
    bool alias = (ad__ops[op].flags & AD_OPF_ALIAS) != 0;
    if (!alias) {
        y->data = ad__alloc(tape, (size_t)y->numel * ad_dtype_size((ad_dtype)y->dtype));
        if (!y->data)
            return NULL;
    }
    /* An empty result has nothing to compute, and its kernel's loops over
     * the other dims (up to 2^60 of them) would run for nothing. */
    if (y->numel || alias)
        ad__ops[op].forward(y);
    if (tape->status != AD_OK)
        return NULL; /* a forward that needed scratch memory and had none */
    if (tape->anomaly && ad__check_finite(y, y, false, 0) != AD_OK)
        return NULL;
    /* An integer or bool result is never differentiated (a comparison, an
     * argmax, a cast to int64): it is a constant. */
    if (needs_grad && tape->grad_enabled && differentiable && ad__is_float(y->dtype)) {
        y->flags |= AD_TF_REQUIRES_GRAD;
        if (ad__record(tape, y) != AD_OK)
            return NULL;
    } else if (nsrc) {
        /* Nothing flows back through a constant: drop the inputs so the
         * sweep never looks at them. */
        y->nsrc = 0;
    }
    return y;
}

/* ---- Forward-mode rules shared by families ------------------------------------ */

ad_tensor *ad__reapply(const ad_tensor *y, int i, ad_tensor *x)
{
    ad_tensor *small[8], **src = small;
    if (y->nsrc > 8 && !(src = ad__alloc(y->tape, y->nsrc * sizeof *src)))
        return NULL;
    for (int j = 0; j < y->nsrc; j++)
        src[j] = j == i ? x : y->src[j];
    return ad__apply(y->op, y->nsrc, src, y->param);
}

ad_tensor *ad__add_tangents(ad_tensor *a, ad_tensor *b)
{
    return a && b ? ad_add(a, b) : a ? a : b;
}

ad_tensor *ad__jvp_linear(ad_tensor *y, ad_tensor *const *t)
{
    return ad__reapply(y, 0, t[0]);
}

ad_tensor *ad__jvp_self_adjoint(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *gin[1] = {NULL};
    ad__ops[y->op].backward(y, t[0], gin);
    return gin[0];
}

ad_tensor *ad__jvp_scalar(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *small[8] = {NULL}, **gin = small;
    if (y->nsrc > 8 && !(gin = ad__alloc_zero(y->tape, y->nsrc * sizeof *gin)))
        return NULL;
    ad_tensor *one = ad__const_like(y, 1.0);
    if (!one)
        return NULL;
    ad__ops[y->op].backward(y, one, gin);
    ad_tensor *sum = NULL;
    for (int i = 0; i < y->nsrc; i++)
        if (t[i] && gin[i])
            sum = ad__add_tangents(sum, ad_sum_all(ad_mul(gin[i], t[i])));
    return sum ? ad_reshape(sum, y->ndim, y->shape) : NULL;
}

ad_tensor *ad__jvp_none(ad_tensor *y, ad_tensor *const *t)
{
    (void)t;
    ad__fail(y->tape, AD_ERR_UNSUPPORTED, "jvp: %s has no derivative", ad__ops[y->op].name);
    return NULL;
}
