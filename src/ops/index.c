/* Indexing ops: index_select, index_add, gather, scatter_add. Indices are
 * checked against their dim when the op is made and copied into the arena. */
#include "ops.h"

#include <string.h>

/* Advances a row-major multi-index over shape, keeping offset = sum idx[d] stride[d]. */
static void step_index(int ndim, const int64_t *shape, const int64_t *stride, int64_t *idx,
                       int64_t *offset)
{
    for (int d = ndim - 1; d >= 0; d--) {
        if (++idx[d] < shape[d]) {
            *offset += stride[d];
            return;
        }
        *offset -= (idx[d] - 1) * stride[d];
        idx[d] = 0;
    }
}

/* The kernels, once per dtype: index_select_f32, gather_f64, ... */
#define KERNELS "ops/index_kernels.h"
#include "../core/kernels.h"

/* ---- index_select: y = x[..., index, ...] along axis -------------------------------------
 * param: [0] axis, [1] n, [2] index (n values in the arena). */
// dx = index_add(dy, axis, x.shape[axis], n, index)
ad_status ad__index_select_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = ad__shape_replacing(y->tape, y->src[0], (int)y->param[0].i, y->param[1].i);
    return y->shape ? AD_OK : y->tape->status;
}

void ad__index_select_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i;
    int64_t n = y->param[1].i, dim = x->shape[axis], outer, inner;
    const int64_t *index = y->param[2].p;
    ad__split_at(x, axis, &outer, &inner);
    if (inner == 0)
        return;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        index_select_f32(x->data, y->data, outer, dim, inner, n, index);
        break;
    case AD_F64:
        index_select_f64(x->data, y->data, outer, dim, inner, n, index);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__index_select_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int axis = (int)y->param[0].i;
    gin[0] = ad_index_add(gy, axis, y->src[0]->shape[axis], (size_t)y->param[1].i, y->param[2].p);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__index_select_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

/* Checks n indices against [0, dim) and copies them into the arena; on error
 * reports as op, naming the bad index and x's shape. */
static int64_t *checked_indices(ad_tape *tape, const char *op, const ad_tensor *x, int axis,
                                int64_t dim, size_t n, const int64_t *index)
{
    char s[AD__SHAPE_BUF];
    if (n > (size_t)AD__MAX_NUMEL) {
        ad__fail(tape, AD_ERR_ARG, "%s: %zu indices is too many (x of shape %s)", op, n,
                 AD__SHAPE(x, s));
        return NULL;
    }
    if (n && !index) {
        ad__fail(tape, AD_ERR_ARG, "%s: index is NULL for %zu indices (x of shape %s)", op, n,
                 AD__SHAPE(x, s));
        return NULL;
    }
    for (size_t k = 0; k < n; k++) {
        if (index[k] < 0 || index[k] >= dim) {
            ad__fail(tape, AD_ERR_ARG,
                     "%s: index %lld (entry %zu) out of range [0, %lld) along axis %d (x of "
                     "shape %s)",
                     op, (long long)index[k], k, (long long)dim, axis, AD__SHAPE(x, s));
            return NULL;
        }
    }
    return ad__copy_i64(tape, index, n);
}

ad_tensor *ad_index_select(ad_tensor *x, int axis, size_t n, const int64_t *index)
{
    ad_tape *tape = ad__input_tape(x, "index_select");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    int a = ad__check_axis(tape, "index_select", x, axis);
    if (a < 0)
        return NULL;
    int64_t *copy = checked_indices(tape, "index_select", x, axis, x->shape[a], n, index);
    if (!copy)
        return NULL;
    int64_t out[AD_MAX_DIMS];
    memcpy(out, x->shape, (size_t)x->ndim * sizeof *out);
    out[a] = (int64_t)n;
    if (ad__numel(x->ndim, out) < 0) {
        ad__fail(tape, AD_ERR_SHAPE, "index_select: %zu indices along axis %d of %s is too many", n,
                 axis, AD__SHAPE(x, s));
        return NULL;
    }
    ad__param params[AD_NPARAM] = {{.i = a}, {.i = (int64_t)n}, {.p = copy}};
    return ad__apply(AD_OP_index_select, 1, &x, params);
}

/* ---- index_add: zeros with `length` along axis, x's slice k added at index[k] -----------
 * param: [0] axis, [1] length, [2] n, [3] index (arena). Repeated indices add up. */
// dx = index_select(dy, axis, n, index)
ad_status ad__index_add_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = ad__shape_replacing(y->tape, y->src[0], (int)y->param[0].i, y->param[1].i);
    return y->shape ? AD_OK : y->tape->status;
}

void ad__index_add_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i;
    int64_t length = y->param[1].i, n = y->param[2].i, outer, inner;
    const int64_t *index = y->param[3].p;
    ad__split_at(x, axis, &outer, &inner);
    memset(y->data, 0, (size_t)y->numel * ad_dtype_size((ad_dtype)(y)->dtype));
    /* In index order, so the result is the same bits every run. */
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        index_add_f32(x->data, y->data, outer, length, inner, n, index);
        break;
    case AD_F64:
        index_add_f64(x->data, y->data, outer, length, inner, n, index);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__index_add_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad_index_select(gy, (int)y->param[0].i, (size_t)y->param[2].i, y->param[3].p);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__index_add_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_index_add(ad_tensor *x, int axis, int64_t length, size_t n, const int64_t *index)
{
    ad_tape *tape = ad__input_tape(x, "index_add");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    int a = ad__check_axis(tape, "index_add", x, axis);
    if (a < 0)
        return NULL;
    if ((uint64_t)x->shape[a] != (uint64_t)n) {
        ad__fail(tape, AD_ERR_SHAPE,
                 "index_add: %zu indices for x of shape %s (dim %d must equal the count)", n,
                 AD__SHAPE(x, s), axis);
        return NULL;
    }
    int64_t out[AD_MAX_DIMS];
    memcpy(out, x->shape, (size_t)x->ndim * sizeof *out);
    out[a] = length;
    if (ad__numel(x->ndim, out) < 0) {
        ad__fail(tape, AD_ERR_SHAPE, "index_add: bad length %lld along axis %d for x of shape %s",
                 (long long)length, axis, AD__SHAPE(x, s));
        return NULL;
    }
    int64_t *copy = checked_indices(tape, "index_add", x, axis, length, n, index);
    if (!copy)
        return NULL;
    ad__param params[AD_NPARAM] = {{.i = a}, {.i = length}, {.i = (int64_t)n}, {.p = copy}};
    return ad__apply(AD_OP_index_add, 1, &x, params);
}

/* ---- gather and scatter_add: torch.gather and its adjoint ---------------------------------
 * Both walk the index tensor (shape `part`) in row-major order; element e of it
 * addresses, in the tensor of shape `full`, the same coordinates but with the
 * axis coordinate replaced by index[e]. base tracks that offset without the
 * axis term (its stride is 0 in the walk). */

/* The strides of full with the axis stride set aside in *axis_stride. */
static void walk_strides(int ndim, const int64_t *full, int axis, int64_t *stride,
                         int64_t *axis_stride)
{
    ad__strides(ndim, full, stride);
    *axis_stride = stride[axis];
    stride[axis] = 0;
}

/* Checks an index tensor for gather or scatter_add: `part` (ndim of full's)
 * fits inside `full` on every dim but axis, its values lie in [0, full[axis]).
 * what_part and what_full name the two shapes in messages. Copies the values
 * into the arena. */
static int64_t *checked_index_tensor(ad_tape *tape, const char *op, int axis, int ndim,
                                     const int64_t *part, const char *what_part,
                                     const int64_t *full, const char *what_full,
                                     const int64_t *index)
{
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    for (int d = 0; d < ndim; d++) {
        if (d != axis && part[d] > full[d]) {
            ad__fail(tape, AD_ERR_SHAPE,
                     "%s: %s shape %s is larger than %s shape %s at dim %d (only axis %d may be)",
                     op, what_part, ad__shape_str(s0, ndim, part), what_full,
                     ad__shape_str(s1, ndim, full), d, axis);
            return NULL;
        }
    }
    int64_t numel = ad__numel(ndim, part);
    if (numel && !index) {
        ad__fail(tape, AD_ERR_ARG, "%s: index is NULL for index shape %s", op,
                 ad__shape_str(s0, ndim, part));
        return NULL;
    }
    for (int64_t e = 0; e < numel; e++) {
        if (index[e] < 0 || index[e] >= full[axis]) {
            ad__fail(tape, AD_ERR_ARG,
                     "%s: index %lld (flat entry %lld) out of range [0, %lld) for axis %d of %s "
                     "shape %s",
                     op, (long long)index[e], (long long)e, (long long)full[axis], axis, what_full,
                     ad__shape_str(s1, ndim, full));
            return NULL;
        }
    }
    return ad__copy_i64(tape, index, (size_t)numel);
}

/* Validates a caller's shape array of ndim dims for op. */
static bool checked_shape(ad_tape *tape, const char *op, const char *what, int ndim,
                          const int64_t *shape, const char *input_name, const ad_tensor *input)
{
    char s[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (ndim > 0 && !shape) {
        ad__fail(tape, AD_ERR_ARG, "%s: %s is NULL for %d dims (%s of shape %s)", op, what, ndim,
                 input_name, AD__SHAPE(input, s1));
        return false;
    }
    if (ad__numel(ndim, shape) < 0) {
        ad__fail(tape, AD_ERR_SHAPE, "%s: bad %s %s for %s of shape %s", op, what,
                 ad__shape_str(s, ndim, shape), input_name, AD__SHAPE(input, s1));
        return false;
    }
    return true;
}

/* gather: param [0] axis, [1] index (arena, numel of y), [2] index shape = y's shape. */
// dx = scatter_add(dy, axis, x.ndim, x.shape, index)
ad_status ad__gather_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = y->param[2].p;
    return AD_OK;
}

void ad__gather_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i, nd = y->ndim;
    const int64_t *index = y->param[1].p;
    int64_t stride[AD_MAX_DIMS], axis_stride;
    walk_strides(nd, x->shape, axis, stride, &axis_stride);
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        gather_f32(x->data, y->data, y->numel, nd, y->shape, stride, axis_stride, index);
        break;
    case AD_F64:
        gather_f64(x->data, y->data, y->numel, nd, y->shape, stride, axis_stride, index);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__gather_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    const ad_tensor *x = y->src[0];
    gin[0] = ad_scatter_add(gy, (int)y->param[0].i, x->ndim, x->shape, y->param[1].p);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__gather_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_gather(ad_tensor *x, int axis, int ndim, const int64_t *index_shape,
                     const int64_t *index)
{
    ad_tape *tape = ad__input_tape(x, "gather");
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF];
    int a = ad__check_axis(tape, "gather", x, axis);
    if (a < 0)
        return NULL;
    if (ndim != x->ndim) {
        ad__fail(tape, AD_ERR_SHAPE, "gather: index has %d dims but x has shape %s", ndim,
                 AD__SHAPE(x, s0));
        return NULL;
    }
    if (!checked_shape(tape, "gather", "index shape", ndim, index_shape, "x", x))
        return NULL;
    int64_t *copy =
        checked_index_tensor(tape, "gather", a, ndim, index_shape, "index", x->shape, "x", index);
    int64_t *shape = copy ? ad__copy_i64(tape, index_shape, (size_t)ndim) : NULL;
    if (!shape)
        return NULL;
    ad__param params[AD_NPARAM] = {{.i = a}, {.p = copy}, {.p = shape}};
    return ad__apply(AD_OP_gather, 1, &x, params);
}

/* scatter_add: param [0] axis, [1] index (arena, numel of src), [2] the output shape. */
// dsrc = gather(dy, axis, src.ndim, src.shape, index)
ad_status ad__scatter_add_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = y->param[2].p;
    return AD_OK;
}

void ad__scatter_add_forward(ad_tensor *y)
{
    const ad_tensor *src = y->src[0];
    int axis = (int)y->param[0].i, nd = y->ndim;
    const int64_t *index = y->param[1].p;
    int64_t stride[AD_MAX_DIMS], axis_stride;
    walk_strides(nd, y->shape, axis, stride, &axis_stride);
    memset(y->data, 0, (size_t)y->numel * ad_dtype_size((ad_dtype)(y)->dtype));
    /* In src order, so repeated targets add up the same way every run. */
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        scatter_add_f32(src->data, y->data, src->numel, nd, src->shape, stride, axis_stride, index);
        break;
    case AD_F64:
        scatter_add_f64(src->data, y->data, src->numel, nd, src->shape, stride, axis_stride, index);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__scatter_add_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    const ad_tensor *src = y->src[0];
    gin[0] = ad_gather(gy, (int)y->param[0].i, src->ndim, src->shape, y->param[1].p);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__scatter_add_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_scatter_add(ad_tensor *src, int axis, int ndim, const int64_t *x_shape,
                          const int64_t *index)
{
    ad_tape *tape = ad__input_tape(src, "scatter_add");
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF];
    if (!(ndim >= 0 && ndim <= AD_MAX_DIMS) || ndim != src->ndim) {
        ad__fail(tape, AD_ERR_SHAPE, "scatter_add: %d dims for the result but src has shape %s",
                 ndim, AD__SHAPE(src, s0));
        return NULL;
    }
    int a = ad__axis(axis, ndim);
    if (a < 0) {
        ad__fail(tape, AD_ERR_AXIS, "scatter_add: axis %d out of range for src of shape %s", axis,
                 AD__SHAPE(src, s0));
        return NULL;
    }
    if (!checked_shape(tape, "scatter_add", "x_shape", ndim, x_shape, "src", src))
        return NULL;
    int64_t *copy =
        checked_index_tensor(tape, "scatter_add", a, ndim, src->shape, "src", x_shape, "x", index);
    int64_t *shape = copy ? ad__copy_i64(tape, x_shape, (size_t)ndim) : NULL;
    if (!shape)
        return NULL;
    ad__param params[AD_NPARAM] = {{.i = a}, {.p = copy}, {.p = shape}};
    return ad__apply(AD_OP_scatter_add, 1, &src, params);
}

/* ---- The same ops with int64 index tensors (torch's forms) -------------------------- */

ad_tensor *ad_index_select_tensor(ad_tensor *x, int axis, const ad_tensor *index)
{
    ad_tape *tape = ad__input_tape(x, "index_select");
    const int64_t *idx = tape ? ad__index_data(tape, "index_select", "index", index, 1) : NULL;
    return idx ? ad_index_select(x, axis, (size_t)index->numel, idx) : NULL;
}

ad_tensor *ad_index_add_tensor(ad_tensor *x, int axis, int64_t length, const ad_tensor *index)
{
    ad_tape *tape = ad__input_tape(x, "index_add");
    const int64_t *idx = tape ? ad__index_data(tape, "index_add", "index", index, 1) : NULL;
    return idx ? ad_index_add(x, axis, length, (size_t)index->numel, idx) : NULL;
}

ad_tensor *ad_gather_tensor(ad_tensor *x, int axis, const ad_tensor *index)
{
    ad_tape *tape = ad__input_tape(x, "gather");
    const int64_t *idx = tape ? ad__index_data(tape, "gather", "index", index, x->ndim) : NULL;
    return idx ? ad_gather(x, axis, index->ndim, index->shape, idx) : NULL;
}

ad_tensor *ad_scatter_add_tensor(ad_tensor *src, int axis, const ad_tensor *index, int ndim,
                                 const int64_t *x_shape)
{
    ad_tape *tape = ad__input_tape(src, "scatter_add");
    const int64_t *idx =
        tape ? ad__index_data(tape, "scatter_add", "index", index, src->ndim) : NULL;
    if (!idx)
        return NULL;
    if (!ad__same_shape(index, src)) {
        char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_SHAPE, "scatter_add: index of shape %s for src of shape %s",
                 AD__SHAPE(index, s0), AD__SHAPE(src, s1));
        return NULL;
    }
    return ad_scatter_add(src, axis, ndim, x_shape, idx);
}

/* ---- one_hot and masked_fill: compositions over comparisons and where ------------------ */

ad_tensor *ad_one_hot(ad_tensor *index, int64_t num_classes)
{
    ad_tape *tape = ad__input_tape(index, "one_hot");
    const int64_t *idx = tape ? ad__index_data(tape, "one_hot", "index", index, -1) : NULL;
    if (!idx)
        return NULL;
    int64_t top = -1;
    for (int64_t i = 0; i < index->numel; i++) {
        if (idx[i] < 0 || (num_classes >= 0 && idx[i] >= num_classes)) {
            char s[AD__SHAPE_BUF];
            ad__fail(tape, AD_ERR_ARG,
                     "one_hot: index %lld (entry %lld of %s) out of range for %lld classes",
                     (long long)idx[i], (long long)i, AD__SHAPE(index, s), (long long)num_classes);
            return NULL;
        }
        top = idx[i] > top ? idx[i] : top;
    }
    /* torch: num_classes = -1 means one more than the largest index */
    int64_t classes = num_classes >= 0 ? num_classes : top + 1;
    if (num_classes < -1 || index->ndim >= AD_MAX_DIMS) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_ARG, "one_hot: %lld classes for an index of shape %s",
                 (long long)num_classes, AD__SHAPE(index, s));
        return NULL;
    }
    ad_tensor *classes_row = ad__new(tape, AD_I64, 1, &classes);
    if (!classes_row)
        return NULL;
    for (int64_t c = 0; c < classes; c++)
        ((int64_t *)classes_row->data)[c] = c;
    return ad_cast(ad_eq(ad_unsqueeze(index, -1), classes_row), AD_I64);
}

ad_tensor *ad_masked_fill(ad_tensor *x, ad_tensor *mask, double value)
{
    ad_tape *tape = ad__input_tape(x, "masked_fill");
    if (!tape || !mask)
        return NULL;
    if (mask->dtype != AD_BOOL) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_DTYPE, "masked_fill: mask must be bool, not %s %s",
                 ad_dtype_name((ad_dtype)mask->dtype), AD__SHAPE(mask, s));
        return NULL;
    }
    return ad_where(mask, ad__scalar_const(x, value), x);
}
