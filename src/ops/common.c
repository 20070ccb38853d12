/* Helpers shared by the op families: axes, broadcasting, strides. */
#include "ops.h"

void ad__strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i];
    }
}

ad_status ad__axes_mask(ad_tape *tape, const char *op, const ad_tensor *x, int n_axes,
                        const int *axes, uint32_t *mask)
{
    char s[AD__SHAPE_BUF];
    *mask = 0;
    if (n_axes == 0) {
        *mask = (uint32_t)((1u << x->ndim) - 1u);
        return AD_OK;
    }
    if (n_axes < 0 || !axes)
        return ad__fail(tape, AD_ERR_AXIS, "%s: bad axis list (%d axes%s) for shape %s", op, n_axes,
                        axes ? "" : ", NULL", AD__SHAPE(x, s));
    for (int i = 0; i < n_axes; i++) {
        int a = ad__check_axis(tape, op, x, axes[i]);
        if (a < 0)
            return AD_ERR_AXIS;
        if (*mask & (1u << a))
            return ad__fail(tape, AD_ERR_AXIS, "%s: axis %d repeated for shape %s", op, axes[i],
                            AD__SHAPE(x, s));
        *mask |= 1u << a;
    }
    return AD_OK;
}

int ad__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da != db && da != 1 && db != 1)
            return -1;
        out[i] = da == 1 ? db : da;
    }
    return n;
}

ad_status ad__broadcast_rule(ad_tensor *y)
{
    const ad_tensor *a = y->src[0], *b = y->src[1];
    if (ad__same_shape(a, b))
        return ad__same_shape_rule(y);
    int64_t shape[AD_MAX_DIMS];
    int n = ad__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, shape);
    if (n < 0) {
        char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
        return ad__fail(y->tape, AD_ERR_SHAPE, "%s: shapes %s and %s do not broadcast",
                        ad__ops[y->op].name, AD__SHAPE(a, s0), AD__SHAPE(b, s1));
    }
    /* Reuse an operand's shape array when it already is the result. */
    if (a->ndim == n && memcmp(a->shape, shape, (size_t)n * sizeof *shape) == 0) {
        y->shape = a->shape;
    } else if (b->ndim == n && memcmp(b->shape, shape, (size_t)n * sizeof *shape) == 0) {
        y->shape = b->shape;
    } else {
        y->shape = ad__copy_i64(y->tape, shape, (size_t)n);
        if (!y->shape)
            return y->tape->status;
    }
    y->ndim = (uint8_t)n;
    return AD_OK;
}

ad_status ad__same_shape_rule(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = y->src[0]->shape;
    return AD_OK;
}

ad_tensor *ad__reduce_to(ad_tensor *g, const ad_tensor *x)
{
    if (!g)
        return NULL;
    if (ad__same_shape(g, x))
        return g;
    return ad_sum_to(g, x->ndim, x->shape);
}

/* t's shape seen as [outer, shape[axis], inner]: outer elements before the
 * axis, inner elements per step along it. */
void ad__split_at(const ad_tensor *t, int axis, int64_t *outer, int64_t *inner)
{
    *outer = ad__numel(axis, t->shape);
    *inner = ad__numel(t->ndim - axis - 1, t->shape + axis + 1);
}

/* t's shape with dim axis set to len, in the arena (NULL after an error). */
int64_t *ad__shape_replacing(ad_tape *tape, const ad_tensor *t, int axis, int64_t len)
{
    int64_t *shape = ad__copy_i64(tape, t->shape, (size_t)t->ndim);
    if (shape)
        shape[axis] = len;
    return shape;
}

const int64_t *ad__index_data(ad_tape *tape, const char *op, const char *what,
                              const ad_tensor *index, int ndim)
{
    if (!index)
        return NULL; /* an earlier error */
    if (index->tape && index->tape != tape) {
        ad__fail(tape, AD_ERR_TAPE, "%s: %s is on another tape", op, what);
        return NULL;
    }
    if (ad__is_stale(index)) {
        ad__fail(tape, AD_ERR_FREED, "%s: %s was freed by ad_tape_reset", op, what);
        return NULL;
    }
    char s[AD__SHAPE_BUF];
    if (index->dtype != AD_I64) {
        ad__fail(tape, AD_ERR_DTYPE, "%s: %s must be an int64 tensor, not %s %s", op, what,
                 ad_dtype_name((ad_dtype)index->dtype), AD__SHAPE(index, s));
        return NULL;
    }
    if (ndim >= 0 && index->ndim != ndim) {
        ad__fail(tape, AD_ERR_SHAPE, "%s: %s must have %d dim%s, not shape %s", op, what, ndim,
                 ndim == 1 ? "" : "s", AD__SHAPE(index, s));
        return NULL;
    }
    return index->data;
}
