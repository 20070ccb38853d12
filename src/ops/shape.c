/* Shape and indexing ops. reshape shares its input's data (values on a tape
 * never change); the others copy. */
#include "ops.h"

/* True if every dim is >= 0 and the shape is within the library's bound on
 * tensor sizes (AD__MAX_NUMEL). */
static bool shape_fits(int ndim, const int64_t *shape)
{
    return ad__numel(ndim, shape) >= 0;
}

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

// dy = the op applied to dx (it is linear)
ad_tensor *ad__reshape_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_reshape(ad_tensor *x, int ndim, const int64_t *shape)
{
    if (!ad__input_tape(x, "reshape"))
        return NULL;
    ad_tape *tape = x->tape;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (ndim < 0 || ndim > AD_MAX_DIMS || (ndim && !shape)) {
        ad__fail(tape, AD_ERR_SHAPE, "reshape: bad target rank %d for %s", ndim, AD__SHAPE(x, s0));
        return NULL;
    }
    int64_t *out = ad__copy_i64(tape, shape, (size_t)ndim);
    if (!out)
        return NULL; /* out of memory, even for a 0-d target (on the tape) */
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        if (out[d] == -1 && infer < 0) {
            infer = d;
        } else if (out[d] < 0) {
            ad__fail(tape, AD_ERR_SHAPE, "reshape: bad target %s for %s",
                     ad__shape_str(s1, ndim, shape), AD__SHAPE(x, s0));
            return NULL;
        } else if (out[d] && known > AD__MAX_NUMEL / out[d]) {
            ad__fail(tape, AD_ERR_SHAPE, "reshape: target %s for %s has too many elements",
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

// dy = the op applied to dx (it is linear)
ad_tensor *ad__expand_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

/* True if a tensor of shape `from` broadcasts to `to` (which has no negative dims). */
static bool broadcasts_to(int nfrom, const int64_t *from, int nto, const int64_t *to)
{
    if (nfrom > nto)
        return false;
    for (int d = 0; d < nto; d++)
        if (to[d] < 0)
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
    if (!ad__input_tape(x, "expand"))
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (ndim < 0 || ndim > AD_MAX_DIMS || (ndim && !shape) ||
        !broadcasts_to(x->ndim, x->shape, ndim, shape)) {
        ad__fail(x->tape, AD_ERR_SHAPE, "expand: shape %s does not broadcast to %s",
                 AD__SHAPE(x, s0), ad__shape_str(s1, ndim, shape));
        return NULL;
    }
    if (!shape_fits(ndim, shape)) {
        ad__fail(x->tape, AD_ERR_SHAPE, "expand: shape %s expanded to %s has too many elements",
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
    if (!ad__input_tape(x, "sum_to"))
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (ndim < 0 || ndim > AD_MAX_DIMS || (ndim && !shape) ||
        !broadcasts_to(ndim, shape, x->ndim, x->shape)) {
        ad__fail(x->tape, AD_ERR_SHAPE, "sum_to: shape %s does not reduce to %s", AD__SHAPE(x, s0),
                 ad__shape_str(s1, ndim, shape));
        return NULL;
    }
    int axes[AD_MAX_DIMS], n = 0, lead = x->ndim - ndim;
    for (int d = 0; d < x->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && x->shape[d] != 1))
            axes[n++] = d;
    ad_tensor *s = n ? ad_sum(x, n, axes, true) : x;
    return ad_reshape(s, ndim, shape);
}

/* ==== Indexing family ======================================================================
 * slice/slice_scatter, index_select/index_add and gather/scatter_add come in
 * adjoint pairs: each op's backward is its partner, so second derivatives need
 * nothing more. concat's backward is slices; where's is where itself. Copies go
 * by element size (a float is 4 bytes, a double 8); only the adding ops and
 * where look at values, once per dtype. */

/* Largest number of inputs of concat and stack: y->nsrc is a uint8_t. */
#define MAX_JOINED 255

/* t's shape seen as [outer, shape[axis], inner]: outer elements before the
 * axis, inner elements per step along it. */
static void split_at(const ad_tensor *t, int axis, int64_t *outer, int64_t *inner)
{
    *outer = ad__numel(axis, t->shape);
    *inner = ad__numel(t->ndim - axis - 1, t->shape + axis + 1);
}

/* t's shape with dim axis set to len, in the arena (NULL after an error). */
static int64_t *shape_replacing(ad_tape *tape, const ad_tensor *t, int axis, int64_t len)
{
    int64_t *shape = ad__copy_i64(tape, t->shape, (size_t)t->ndim);
    if (shape)
        shape[axis] = len;
    return shape;
}

/* The usual first line of a constructor: NULL for a NULL input or a tape
 * that already has an error (persistent inputs must go through ad_tape_use,
 * as for every unary op). */
static ad_tape *usable_tape(const ad_tensor *x, const char *op)
{
    if (!ad__input_tape(x, op))
        return NULL;
    return x->tape;
}

/* Moves `count` rows of `row` bytes, for each of `outer` blocks: row k of
 * block o goes from src row (o * src_dim + src_start + k * src_step) to dst row
 * (o * dst_dim + dst_start + k * dst_step). Unit steps copy whole runs. */
typedef struct row_copy {
    int64_t outer, count;
    size_t row;
    int64_t dst_dim, dst_start, dst_step;
    int64_t src_dim, src_start, src_step;
} row_copy;

static void copy_rows(void *dst, const void *src, const row_copy *c)
{
    unsigned char *D = dst;
    const unsigned char *S = src;
    if (c->row == 0 || c->count == 0)
        return;
    bool runs = c->dst_step == 1 && c->src_step == 1;
    for (int64_t o = 0; o < c->outer; o++) {
        unsigned char *d = D + (size_t)(o * c->dst_dim + c->dst_start) * c->row;
        const unsigned char *s = S + (size_t)(o * c->src_dim + c->src_start) * c->row;
        if (runs) {
            memcpy(d, s, (size_t)c->count * c->row);
            continue;
        }
        for (int64_t k = 0; k < c->count; k++)
            memcpy(d + (size_t)(k * c->dst_step) * c->row, s + (size_t)(k * c->src_step) * c->row,
                   c->row);
    }
}

static size_t elem_size(const ad_tensor *t)
{
    return ad_dtype_size((ad_dtype)t->dtype);
}

/* ---- slice: y = x[start:stop:step] along axis -------------------------------------------
 * param: [0] axis, [1] start (normalised to [0, dim]), [2] step, [3] count. */
// dx = slice_scatter(dy, axis, x.shape[axis], start, step)
ad_status ad__slice_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = shape_replacing(y->tape, y->src[0], (int)y->param[0].i, y->param[3].i);
    return y->shape ? AD_OK : y->tape->status;
}

void ad__slice_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i;
    row_copy c = {.count = y->param[3].i,
                  .dst_dim = y->param[3].i,
                  .dst_step = 1,
                  .src_dim = x->shape[axis],
                  .src_start = y->param[1].i,
                  .src_step = y->param[2].i};
    int64_t inner;
    split_at(x, axis, &c.outer, &inner);
    c.row = (size_t)inner * elem_size(x);
    copy_rows(y->data, x->data, &c);
}

void ad__slice_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int axis = (int)y->param[0].i;
    gin[0] = ad_slice_scatter(gy, axis, y->src[0]->shape[axis], y->param[1].i, y->param[2].i);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__slice_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

/* Python's rule for one bound of a positive-step slice: negative counts from
 * the end, then clamp to [0, dim]. */
static int64_t slice_bound(int64_t v, int64_t dim)
{
    if (v < 0)
        v += dim; /* v >= INT64_MIN and dim >= 0: no overflow */
    return v < 0 ? 0 : v > dim ? dim : v;
}

ad_tensor *ad_slice(ad_tensor *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    ad_tape *tape = usable_tape(x, "slice");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    int a = ad__check_axis(tape, "slice", x, axis);
    if (a < 0)
        return NULL;
    if (step < 1) {
        ad__fail(tape, AD_ERR_ARG, "slice: step %lld must be >= 1 (axis %d of shape %s)",
                 (long long)step, axis, AD__SHAPE(x, s));
        return NULL;
    }
    int64_t dim = x->shape[a];
    int64_t lo = slice_bound(start, dim), hi = slice_bound(stop, dim);
    int64_t count = hi > lo ? (hi - lo - 1) / step + 1 : 0;
    if (count == 0)
        lo = 0; /* any start fits an empty slice; 0 keeps the backward's check simple */
    ad__param params[AD_NPARAM] = {{.i = a}, {.i = lo}, {.i = step}, {.i = count}};
    return ad__apply(AD_OP_slice, 1, &x, params);
}

/* ---- slice_scatter: zeros of `length` along axis, x at start, start + step, ... ----------
 * param: [0] axis, [1] length, [2] start, [3] step. */
// dx = slice(dy, axis, start, start + (n - 1) step + 1, step), n = x.shape[axis]
ad_status ad__slice_scatter_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = shape_replacing(y->tape, y->src[0], (int)y->param[0].i, y->param[1].i);
    return y->shape ? AD_OK : y->tape->status;
}

void ad__slice_scatter_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i;
    row_copy c = {.count = x->shape[axis],
                  .dst_dim = y->param[1].i,
                  .dst_start = y->param[2].i,
                  .dst_step = y->param[3].i,
                  .src_dim = x->shape[axis],
                  .src_step = 1};
    int64_t inner;
    split_at(x, axis, &c.outer, &inner);
    c.row = (size_t)inner * elem_size(x);
    memset(y->data, 0, (size_t)y->numel * elem_size(y));
    copy_rows(y->data, x->data, &c);
}

void ad__slice_scatter_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int axis = (int)y->param[0].i;
    int64_t n = y->src[0]->shape[axis], start = y->param[2].i, step = y->param[3].i;
    int64_t stop = n ? start + (n - 1) * step + 1 : start;
    gin[0] = ad_slice(gy, axis, start, stop, step);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__slice_scatter_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_slice_scatter(ad_tensor *x, int axis, int64_t length, int64_t start, int64_t step)
{
    ad_tape *tape = usable_tape(x, "slice_scatter");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    int a = ad__check_axis(tape, "slice_scatter", x, axis);
    if (a < 0)
        return NULL;
    if (step < 1) {
        ad__fail(tape, AD_ERR_ARG, "slice_scatter: step %lld must be >= 1 (x of shape %s)",
                 (long long)step, AD__SHAPE(x, s));
        return NULL;
    }
    /* The n rows land at start + k step, k < n: all of them must be < length. */
    int64_t n = x->shape[a];
    bool fits = length >= 0 && start >= 0 && start <= length;
    if (fits && n > 0)
        fits = start < length && n - 1 <= (length - 1 - start) / step;
    if (!fits) {
        ad__fail(tape, AD_ERR_SHAPE,
                 "slice_scatter: x of shape %s does not fit at start %lld, step %lld in length "
                 "%lld along axis %d",
                 AD__SHAPE(x, s), (long long)start, (long long)step, (long long)length, axis);
        return NULL;
    }
    int64_t out[AD_MAX_DIMS];
    memcpy(out, x->shape, (size_t)x->ndim * sizeof *out);
    out[a] = length;
    if (!shape_fits(x->ndim, out)) {
        ad__fail(tape, AD_ERR_SHAPE, "slice_scatter: length %lld along axis %d of %s is too large",
                 (long long)length, axis, AD__SHAPE(x, s));
        return NULL;
    }
    ad__param params[AD_NPARAM] = {{.i = a}, {.i = length}, {.i = start}, {.i = step}};
    return ad__apply(AD_OP_slice_scatter, 1, &x, params);
}

/* ---- concat: inputs joined along axis -----------------------------------------------------
 * param: [0] axis (normalised). y->src holds all n inputs. */
// dx_i = slice(dy, axis, offset_i, offset_i + x_i.shape[axis], 1)
ad_status ad__concat_shape(ad_tensor *y)
{
    const ad_tensor *x0 = y->src[0];
    int axis = (int)y->param[0].i;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    int64_t total = 0;
    for (int i = 0; i < y->nsrc; i++) {
        const ad_tensor *x = y->src[i];
        bool agree = x->ndim == x0->ndim;
        for (int d = 0; d < x0->ndim && agree; d++)
            agree = d == axis || x->shape[d] == x0->shape[d];
        if (!agree)
            return ad__fail(y->tape, AD_ERR_SHAPE,
                            "concat: input %d has shape %s but input 0 has %s; all dims but "
                            "axis %d must agree",
                            i, AD__SHAPE(x, s1), AD__SHAPE(x0, s0), axis);
        if (x->shape[axis] > AD__MAX_NUMEL - total)
            return ad__fail(y->tape, AD_ERR_SHAPE, "concat: %d inputs of shape %s... are too long",
                            y->nsrc, AD__SHAPE(x0, s0));
        total += x->shape[axis];
    }
    y->ndim = x0->ndim;
    y->shape = shape_replacing(y->tape, x0, axis, total);
    if (y->shape && !shape_fits(y->ndim, y->shape))
        return ad__fail(y->tape, AD_ERR_SHAPE, "concat: %d inputs of shape %s... are too long",
                        y->nsrc, AD__SHAPE(x0, s0));
    return y->shape ? AD_OK : y->tape->status;
}

void ad__concat_forward(ad_tensor *y)
{
    int axis = (int)y->param[0].i;
    int64_t inner;
    row_copy c = {.dst_dim = y->shape[axis], .dst_step = 1, .src_step = 1};
    split_at(y, axis, &c.outer, &inner);
    c.row = (size_t)inner * elem_size(y);
    for (int i = 0; i < y->nsrc; i++) {
        const ad_tensor *x = y->src[i];
        c.count = c.src_dim = x->shape[axis];
        copy_rows(y->data, x->data, &c);
        c.dst_start += c.count;
    }
}

void ad__concat_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int axis = (int)y->param[0].i;
    int64_t offset = 0;
    for (int i = 0; i < y->nsrc; i++) {
        const ad_tensor *x = y->src[i];
        int64_t len = x->shape[axis];
        if (x->flags & AD_TF_RECORDED)
            gin[i] = ad_slice(gy, axis, offset, offset + len, 1);
        offset += len;
    }
}

// dy = the tangents joined, zeros for inputs without one
ad_tensor *ad__concat_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *small[8], **ts = small;
    if (y->nsrc > 8 && !(ts = ad__alloc(y->tape, y->nsrc * sizeof *ts)))
        return NULL;
    for (int i = 0; i < y->nsrc; i++)
        ts[i] = t[i] ? t[i] : ad__const_like(y->src[i], 0.0);
    return ad__apply(AD_OP_concat, y->nsrc, ts, y->param);
}

/* The tape of a list of inputs, or NULL: when one is NULL (an earlier error;
 * nothing recorded), when the tape already has an error, and when there is
 * no tape to report on, for no inputs or only persistent ones (then the
 * thread's error names op). */
static ad_tape *list_tape(const char *op, size_t n, ad_tensor *const *xs)
{
    ad_tape *tape = NULL;
    if (!xs || n == 0) {
        ad__fail(NULL, AD_ERR_ARG, "%s: no inputs (%zu tensors%s)", op, n, xs ? "" : ", NULL list");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!xs[i])
            return NULL;
        if (!tape)
            tape = xs[i]->tape;
    }
    if (!tape) {
        ad__no_tape(op, 1, xs); /* every input persistent (none is NULL) */
        return NULL;
    }
    return tape->status == AD_OK ? tape : NULL;
}

ad_tensor *ad_concat(size_t n, ad_tensor *const *xs, int axis)
{
    ad_tape *tape = list_tape("concat", n, xs);
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    if (n > MAX_JOINED) {
        ad__fail(tape, AD_ERR_ARG, "concat: %zu inputs (at most %d; concat in groups)", n,
                 MAX_JOINED);
        return NULL;
    }
    int a = ad__axis(axis, xs[0]->ndim);
    if (a < 0) {
        ad__fail(tape, AD_ERR_AXIS, "concat: axis %d out of range for input 0 of shape %s%s", axis,
                 AD__SHAPE(xs[0], s), xs[0]->ndim ? "" : " (0-d tensors cannot be joined)");
        return NULL;
    }
    ad__param params[AD_NPARAM] = {{.i = a}};
    return ad__apply(AD_OP_concat, (int)n, xs, params);
}

/* stack: each input reshaped with a size-1 dim at axis, then concat. */
ad_tensor *ad_stack(size_t n, ad_tensor *const *xs, int axis)
{
    ad_tape *tape = list_tape("stack", n, xs);
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (n > MAX_JOINED) {
        ad__fail(tape, AD_ERR_ARG, "stack: %zu inputs (at most %d; stack in groups)", n,
                 MAX_JOINED);
        return NULL;
    }
    const ad_tensor *x0 = xs[0];
    int nd = x0->ndim;
    if (nd == AD_MAX_DIMS) {
        ad__fail(tape, AD_ERR_SHAPE, "stack: inputs of shape %s already have %d dims (the most)",
                 AD__SHAPE(x0, s0), AD_MAX_DIMS);
        return NULL;
    }
    int a = ad__axis(axis, nd + 1);
    if (a < 0) {
        ad__fail(tape, AD_ERR_AXIS, "stack: axis %d out of range [%d, %d] for inputs of shape %s",
                 axis, -(nd + 1), nd, AD__SHAPE(x0, s0));
        return NULL;
    }
    for (size_t i = 1; i < n; i++) {
        if (!ad__same_shape(xs[i], x0)) {
            ad__fail(tape, AD_ERR_SHAPE, "stack: input %zu has shape %s but input 0 has %s", i,
                     AD__SHAPE(xs[i], s1), AD__SHAPE(x0, s0));
            return NULL;
        }
        /* Here, so that the message names stack and the shapes as given,
         * not the concat of reshaped inputs that stack is made of. */
        if (!ad__same_dtype(tape, "stack", x0, xs[i]))
            return NULL;
    }
    int64_t shape[AD_MAX_DIMS];
    for (int d = 0, k = 0; d <= nd; d++)
        shape[d] = d == a ? 1 : x0->shape[k++];
    ad_tensor *parts[MAX_JOINED];
    for (size_t i = 0; i < n; i++) {
        parts[i] = ad_reshape(ad_tape_use(tape, xs[i]), nd + 1, shape);
        if (!parts[i])
            return NULL;
    }
    return ad_concat(n, parts, a);
}

/* ---- index_select: y = x[..., index, ...] along axis -------------------------------------
 * param: [0] axis, [1] n, [2] index (n values in the arena). */
// dx = index_add(dy, axis, x.shape[axis], n, index)
ad_status ad__index_select_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = shape_replacing(y->tape, y->src[0], (int)y->param[0].i, y->param[1].i);
    return y->shape ? AD_OK : y->tape->status;
}

void ad__index_select_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i;
    int64_t n = y->param[1].i, dim = x->shape[axis], outer, inner;
    const int64_t *index = y->param[2].p;
    split_at(x, axis, &outer, &inner);
    size_t row = (size_t)inner * elem_size(x);
    if (row == 0)
        return;
    /* Single elements (im2col's case): a typed gather, not a memcpy call each. */
    if (inner == 1 && x->dtype == AD_F32) {
        const float *restrict X = x->data;
        float *restrict Y = y->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < n; k++)
                Y[o * n + k] = X[o * dim + index[k]];
        return;
    }
    if (inner == 1) {
        const double *restrict X = x->data;
        double *restrict Y = y->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < n; k++)
                Y[o * n + k] = X[o * dim + index[k]];
        return;
    }
    const unsigned char *X = x->data;
    unsigned char *Y = y->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < n; k++)
            memcpy(Y + (size_t)(o * n + k) * row, X + (size_t)(o * dim + index[k]) * row, row);
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
    ad_tape *tape = usable_tape(x, "index_select");
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
    if (!shape_fits(x->ndim, out)) {
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
    y->shape = shape_replacing(y->tape, y->src[0], (int)y->param[0].i, y->param[1].i);
    return y->shape ? AD_OK : y->tape->status;
}

#define INDEX_ADD(T)                                                                               \
    do {                                                                                           \
        const T *X = x->data;                                                                      \
        T *Y = y->data;                                                                            \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t k = 0; k < n; k++) {                                                      \
                T *yr = Y + (o * length + index[k]) * inner;                                       \
                const T *xr = X + (o * n + k) * inner;                                             \
                for (int64_t i = 0; i < inner; i++)                                                \
                    yr[i] += xr[i];                                                                \
            }                                                                                      \
    } while (0)

void ad__index_add_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i;
    int64_t length = y->param[1].i, n = y->param[2].i, outer, inner;
    const int64_t *index = y->param[3].p;
    split_at(x, axis, &outer, &inner);
    memset(y->data, 0, (size_t)y->numel * elem_size(y));
    /* In index order, so the result is the same bits every run. */
    if (y->dtype == AD_F32)
        INDEX_ADD(float);
    else
        INDEX_ADD(double);
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
    ad_tape *tape = usable_tape(x, "index_add");
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
    if (!shape_fits(x->ndim, out)) {
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
    if (!shape_fits(ndim, shape)) {
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

#define GATHER(U)                                                                                  \
    do {                                                                                           \
        const U *X = x->data;                                                                      \
        U *Y = y->data;                                                                            \
        for (int64_t e = 0; e < y->numel; e++) {                                                   \
            Y[e] = X[base + index[e] * axis_stride];                                               \
            step_index(nd, y->shape, stride, idx, &base);                                          \
        }                                                                                          \
    } while (0)

void ad__gather_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i, nd = y->ndim;
    const int64_t *index = y->param[1].p;
    int64_t stride[AD_MAX_DIMS], idx[AD_MAX_DIMS] = {0}, axis_stride, base = 0;
    walk_strides(nd, x->shape, axis, stride, &axis_stride);
    if (elem_size(y) == 4)
        GATHER(uint32_t);
    else
        GATHER(uint64_t);
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
    ad_tape *tape = usable_tape(x, "gather");
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

#define SCATTER_ADD(T)                                                                             \
    do {                                                                                           \
        const T *S = src->data;                                                                    \
        T *Y = y->data;                                                                            \
        for (int64_t e = 0; e < src->numel; e++) {                                                 \
            Y[base + index[e] * axis_stride] += S[e];                                              \
            step_index(nd, src->shape, stride, idx, &base);                                        \
        }                                                                                          \
    } while (0)

void ad__scatter_add_forward(ad_tensor *y)
{
    const ad_tensor *src = y->src[0];
    int axis = (int)y->param[0].i, nd = y->ndim;
    const int64_t *index = y->param[1].p;
    int64_t stride[AD_MAX_DIMS], idx[AD_MAX_DIMS] = {0}, axis_stride, base = 0;
    walk_strides(nd, y->shape, axis, stride, &axis_stride);
    memset(y->data, 0, (size_t)y->numel * elem_size(y));
    /* In src order, so repeated targets add up the same way every run. */
    if (y->dtype == AD_F32)
        SCATTER_ADD(float);
    else
        SCATTER_ADD(double);
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
    ad_tape *tape = usable_tape(src, "scatter_add");
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

/* ---- where: cond ? a : b, all three broadcast -----------------------------------------
 * src: [0] cond (true where nonzero; never differentiated), [1] a, [2] b. */
// da = reduce_to(a, where(cond, dy, 0))    db = reduce_to(b, where(cond, 0, dy))
// The untaken branch gets 0 * (its own local derivative) further down the graph:
// a NaN or inf made there still poisons the gradient through 0 * inf, as PyTorch.
ad_status ad__where_shape(ad_tensor *y)
{
    const ad_tensor *c = y->src[0], *a = y->src[1], *b = y->src[2];
    int64_t ca[AD_MAX_DIMS], shape[AD_MAX_DIMS];
    int n = ad__broadcast_shape(c->ndim, c->shape, a->ndim, a->shape, ca);
    if (n >= 0)
        n = ad__broadcast_shape(n, ca, b->ndim, b->shape, shape);
    if (n < 0 || !shape_fits(n, shape)) {
        char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF], s2[AD__SHAPE_BUF];
        return ad__fail(y->tape, AD_ERR_SHAPE, "where: shapes %s (cond), %s (a) and %s (b) %s",
                        AD__SHAPE(c, s0), AD__SHAPE(a, s1), AD__SHAPE(b, s2),
                        n < 0 ? "do not broadcast" : "broadcast to too many elements");
    }
    y->ndim = (uint8_t)n;
    y->shape = ad__copy_i64(y->tape, shape, (size_t)n);
    return y->shape ? AD_OK : y->tape->status;
}

#define WHERE_LOOP(T)                                                                              \
    do {                                                                                           \
        const T *C = y->src[0]->data, *A = y->src[1]->data, *B = y->src[2]->data;                  \
        T *Y = y->data;                                                                            \
        for (int64_t r = 0; r < bc.outer; r++) {                                                   \
            ad__bcast_row(&bc, r, off);                                                            \
            T *yr = Y + r * bc.inner;                                                              \
            for (int64_t i = 0; i < bc.inner; i++)                                                 \
                yr[i] = C[off[0] + i * bc.inner_stride[0]] != 0                                    \
                            ? A[off[1] + i * bc.inner_stride[1]]                                   \
                            : B[off[2] + i * bc.inner_stride[2]];                                  \
        }                                                                                          \
    } while (0)

void ad__where_forward(ad_tensor *y)
{
    ad__bcast bc;
    int64_t off[3];
    ad__bcast_init(&bc, y, 3, y->src);
    /* cond is compared with != 0, so NaN counts as true (as bool(nan) in PyTorch). */
    if (y->dtype == AD_F32)
        WHERE_LOOP(float);
    else
        WHERE_LOOP(double);
}

void ad__where_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *cond = y->src[0], *a = y->src[1], *b = y->src[2];
    /* A 0-d zero, not zeros of y's shape: broadcasting supplies the rest, and
     * where() keeps the rule differentiable in gy for second order. */
    ad_tensor *zero = ad__scalar_const(gy, 0.0);
    if (!zero)
        return;
    if (a->flags & AD_TF_RECORDED)
        gin[1] = ad__reduce_to(ad_where(cond, gy, zero), a);
    if (b->flags & AD_TF_RECORDED)
        gin[2] = ad__reduce_to(ad_where(cond, zero, gy), b);
}

// dy = where(cond, da, db), zero for a missing tangent
ad_tensor *ad__where_jvp(ad_tensor *y, ad_tensor *const *t)
{
    ad_tensor *zero = ad__scalar_const(y, 0.0);
    ad_tensor *src[3] = {y->src[0], t[1] ? t[1] : zero, t[2] ? t[2] : zero};
    return zero ? ad__apply(AD_OP_where, 3, src, y->param) : NULL;
}

ad_tensor *ad_where(ad_tensor *cond, ad_tensor *a, ad_tensor *b)
{
    ad_tensor *src[3] = {cond, a, b};
    return ad__apply(AD_OP_where, 3, src, NULL);
}
