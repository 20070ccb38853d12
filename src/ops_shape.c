/* Shape and indexing ops. reshape shares its input's data (values on a tape
 * never change); the others copy. */
#include "internal.h"

/* ---- reshape ------------------------------------------------------------------------ */
// dx = reshape(dy, x.shape)
ad_status ad__reshape_shape(ad_tensor *y)
{
    y->ndim = (uint8_t)y->param[1].i;
    y->shape = y->param[0].p;
    return AD_OK;
}

void ad__reshape_forward(ad_tensor *y)
{
    y->data = y->src[0]->data;
}

void ad__reshape_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    gin[0] = ad_reshape(gy, x->ndim, x->shape);
}

ad_tensor *ad_reshape(ad_tensor *x, int ndim, const int64_t *shape)
{
    if (!x || !x->tape || x->tape->status != AD_OK)
        return NULL;
    ad_tape *tape = x->tape;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (ndim < 0 || ndim > AD_MAX_DIMS || (ndim && !shape)) {
        ad__fail(tape, AD_ERR_SHAPE, "reshape: bad target rank %d for %s", ndim,
                 AD__SHAPE(x, s0));
        return NULL;
    }
    int64_t *out = ad__copy_i64(tape, shape, (size_t)ndim);
    if (ndim && !out)
        return NULL;
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        if (out[d] == -1 && infer < 0) {
            infer = d;
        } else if (out[d] < 0) {
            ad__fail(tape, AD_ERR_SHAPE, "reshape: bad target %s for %s",
                     ad__shape_str(s1, ndim, shape), AD__SHAPE(x, s0));
            return NULL;
        } else {
            known *= out[d];
        }
    }
    if (infer >= 0)
        out[infer] = known ? x->numel / known : -1;
    if (ad__numel(ndim, out) != x->numel || (infer >= 0 && out[infer] < 0)) {
        ad__fail(tape, AD_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) to %s",
                 AD__SHAPE(x, s0), (long long)x->numel, ad__shape_str(s1, ndim, shape));
        return NULL;
    }
    if (ndim == x->ndim && (ndim == 0 || memcmp(out, x->shape, (size_t)ndim * 8) == 0))
        return x;
    ad__param params[AD_NPARAM] = {{.p = out}, {.i = ndim}};
    return ad__apply(AD_OP_reshape, 1, &x, params);
}

/* ---- expand (broadcast_to) ---------------------------------------------------------- */
// dx = sum_to(dy, x.shape)
ad_status ad__expand_shape(ad_tensor *y)
{
    y->ndim = (uint8_t)y->param[1].i;
    y->shape = y->param[0].p;
    return AD_OK;
}

void ad__expand_forward(ad_tensor *y)
{
    ad__bcast bc;
    ad__bcast_init(&bc, y, 1, y->src);
    int64_t off[3];
    size_t es = ad_dtype_size((ad_dtype)y->dtype);
    const unsigned char *X = y->src[0]->data;
    unsigned char *Y = y->data;
    for (int64_t r = 0; r < bc.outer; r++) {
        ad__bcast_row(&bc, r, off);
        unsigned char *yr = Y + (size_t)(r * bc.inner) * es;
        if (bc.inner_stride[0]) {
            memcpy(yr, X + (size_t)off[0] * es, (size_t)bc.inner * es);
        } else if (es == 4) {
            float v = ((const float *)X)[off[0]];
            for (int64_t i = 0; i < bc.inner; i++)
                ((float *)yr)[i] = v;
        } else {
            double v = ((const double *)X)[off[0]];
            for (int64_t i = 0; i < bc.inner; i++)
                ((double *)yr)[i] = v;
        }
    }
}

void ad__expand_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    gin[0] = ad_sum_to(gy, x->ndim, x->shape);
}

/* True if a tensor of shape `from` broadcasts to `to`. */
static bool broadcasts_to(int nfrom, const int64_t *from, int nto, const int64_t *to)
{
    if (nfrom > nto)
        return false;
    for (int d = 0; d < nfrom; d++) {
        int64_t f = from[d], t = to[d + nto - nfrom];
        if (f != t && f != 1)
            return false;
    }
    return true;
}

ad_tensor *ad_expand(ad_tensor *x, int ndim, const int64_t *shape)
{
    if (!x || !x->tape || x->tape->status != AD_OK)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (ndim < 0 || ndim > AD_MAX_DIMS || (ndim && !shape) ||
        !broadcasts_to(x->ndim, x->shape, ndim, shape)) {
        ad__fail(x->tape, AD_ERR_SHAPE, "expand: shape %s does not broadcast to %s",
                 AD__SHAPE(x, s0), ad__shape_str(s1, ndim, shape));
        return NULL;
    }
    if (ndim == x->ndim && (ndim == 0 || memcmp(shape, x->shape, (size_t)ndim * 8) == 0))
        return x;
    int64_t *out = ad__copy_i64(x->tape, shape, (size_t)ndim);
    if (!out)
        return NULL;
    ad__param params[AD_NPARAM] = {{.p = out}, {.i = ndim}};
    return ad__apply(AD_OP_expand, 1, &x, params);
}

/* ---- sum_to: the adjoint of expand, a composition of sum and reshape ----------------- */
ad_tensor *ad_sum_to(ad_tensor *x, int ndim, const int64_t *shape)
{
    if (!x || !x->tape || x->tape->status != AD_OK)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (ndim < 0 || ndim > AD_MAX_DIMS || (ndim && !shape) ||
        !broadcasts_to(ndim, shape, x->ndim, x->shape)) {
        ad__fail(x->tape, AD_ERR_SHAPE, "sum_to: shape %s does not reduce to %s",
                 AD__SHAPE(x, s0), ad__shape_str(s1, ndim, shape));
        return NULL;
    }
    int axes[AD_MAX_DIMS], n = 0, lead = x->ndim - ndim;
    for (int d = 0; d < x->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && x->shape[d] != 1))
            axes[n++] = d;
    ad_tensor *s = n ? ad_sum(x, n, axes, true) : x;
    return ad_reshape(s, ndim, shape);
}
