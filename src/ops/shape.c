/* Shape ops: reshape, expand, sum_to, slice, slice_scatter, concat, stack,
 * permute, transpose, flip, roll, and compositions of them. reshape shares its
 * input's data (values on a tape never change); the others copy. They move
 * elements of any dtype: the ones with a row and no arithmetic are flagged
 * AD_OPF_ANY_DTYPE. Indexing ops are in index.c. */
#include "ops.h"

/* The copy kernels, once per dtype: expand_f32, permute_f64, flip_roll_i64, ... */
#define KERNELS "ops/shape_kernels.h"
#define KERNELS_ALL_DTYPES
#include "../core/kernels.h"

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
    ad_tape *tape = ad__input_tape(x, "reshape");
    if (!tape)
        return NULL;
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
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        expand_f32(&bc, y->src[0]->data, y->data);
        break;
    case AD_F64:
        expand_f64(&bc, y->src[0]->data, y->data);
        break;
    case AD_I64:
        expand_i64(&bc, y->src[0]->data, y->data);
        break;
    case AD_BOOL:
        expand_bool(&bc, y->src[0]->data, y->data);
        break;
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
    if (ad__numel(ndim, shape) < 0) {
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

/* Largest number of inputs of concat and stack: those of one node. */
#define MAX_JOINED AD__MAX_INPUTS

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

/* ---- slice: y = x[start:stop:step] along axis -------------------------------------------
 * param: [0] axis, [1] start (normalised to [0, dim]), [2] step, [3] count. */
// dx = slice_scatter(dy, axis, x.shape[axis], start, step)
ad_status ad__slice_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = ad__shape_replacing(y->tape, y->src[0], (int)y->param[0].i, y->param[3].i);
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
    ad__split_at(x, axis, &c.outer, &inner);
    c.row = (size_t)inner * ad_dtype_size((ad_dtype)(x)->dtype);
    copy_rows(y->data, x->data, &c);
}

/* gy added into its region of acc (x's gradient being summed by the sweep). */
static void add_region(ad_tensor *acc, const ad_tensor *y, const ad_tensor *gy)
{
    const ad_tensor *x = y->src[0];
    int axis = (int)y->param[0].i;
    int64_t outer, inner;
    ad__split_at(x, axis, &outer, &inner);
    int64_t count = y->param[3].i, dim = x->shape[axis], start = y->param[1].i;
    switch ((ad_dtype)acc->dtype) {
    case AD_F32:
        add_rows_f32(acc->data, gy->data, outer, count, inner, dim, start, y->param[2].i);
        break;
    case AD_F64:
        add_rows_f64(acc->data, gy->data, outer, count, inner, dim, start, y->param[2].i);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* gradients are floats */
    }
}

void ad__slice_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int axis = (int)y->param[0].i;
    /* Not recorded: add into x's gradient in place, so n slices of x (a
     * sequence's steps) cost their own size, not n zero-padded copies of x. */
    ad_tensor *acc = gy->dtype == y->dtype ? ad__grad_accumulator(y, 0) : NULL;
    if (acc) {
        add_region(acc, y, gy);
        return;
    }
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
    ad_tape *tape = ad__input_tape(x, "slice");
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
    y->shape = ad__shape_replacing(y->tape, y->src[0], (int)y->param[0].i, y->param[1].i);
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
    ad__split_at(x, axis, &c.outer, &inner);
    c.row = (size_t)inner * ad_dtype_size((ad_dtype)(x)->dtype);
    memset(y->data, 0, (size_t)y->numel * ad_dtype_size((ad_dtype)(y)->dtype));
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
    ad_tape *tape = ad__input_tape(x, "slice_scatter");
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
    if (ad__numel(x->ndim, out) < 0) {
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
    y->shape = ad__shape_replacing(y->tape, x0, axis, total);
    if (y->shape && ad__numel(y->ndim, y->shape) < 0)
        return ad__fail(y->tape, AD_ERR_SHAPE, "concat: %d inputs of shape %s... are too long",
                        y->nsrc, AD__SHAPE(x0, s0));
    return y->shape ? AD_OK : y->tape->status;
}

void ad__concat_forward(ad_tensor *y)
{
    int axis = (int)y->param[0].i;
    int64_t inner;
    row_copy c = {.dst_dim = y->shape[axis], .dst_step = 1, .src_step = 1};
    ad__split_at(y, axis, &c.outer, &inner);
    c.row = (size_t)inner * ad_dtype_size((ad_dtype)(y)->dtype);
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
        ad__fail(tape, AD_ERR_ARG, "concat: %zu inputs (at most %d)", n,
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
        ad__fail(tape, AD_ERR_ARG, "stack: %zu inputs (at most %d)", n,
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
    ad_tensor **parts = ad__alloc(tape, n * sizeof *parts);
    if (!parts)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        parts[i] = ad_reshape(ad_tape_use(tape, xs[i]), nd + 1, shape);
        if (!parts[i])
            return NULL;
    }
    return ad_concat(n, parts, a);
}

/* ---- permute: y.shape[i] = x.shape[perm[i]] -----------------------------------------------
 * dx = permute(dy, inverse(perm)). param[0].p: perm (int64, ndim entries, arena). */
ad_status ad__permute_shape(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    const int64_t *perm = y->param[0].p;
    int64_t shape[AD_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = x->shape[perm[d]];
    y->ndim = x->ndim;
    y->shape = ad__copy_i64(y->tape, shape, (size_t)x->ndim);
    return y->shape ? AD_OK : y->tape->status;
}

void ad__permute_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    const int64_t *perm = y->param[0].p;
    int nd = y->ndim;
    if (y->numel == 0)
        return;
    if (nd == 0) {
        memcpy(y->data, x->data, ad_dtype_size((ad_dtype)y->dtype));
        return;
    }
    int64_t xs[AD_MAX_DIMS], stride[AD_MAX_DIMS];
    ad__strides(x->ndim, x->shape, xs);
    for (int d = 0; d < nd; d++)
        stride[d] = xs[perm[d]];
    int64_t rows = y->numel / y->shape[nd - 1];
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        permute_f32(x->data, y->data, rows, nd, y->shape, stride);
        break;
    case AD_F64:
        permute_f64(x->data, y->data, rows, nd, y->shape, stride);
        break;
    case AD_I64:
        permute_i64(x->data, y->data, rows, nd, y->shape, stride);
        break;
    case AD_BOOL:
        permute_bool(x->data, y->data, rows, nd, y->shape, stride);
        break;
    }
}

void ad__permute_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    const int64_t *perm = y->param[0].p;
    int inverse[AD_MAX_DIMS];
    for (int d = 0; d < y->ndim; d++)
        inverse[perm[d]] = d;
    gin[0] = ad_permute(gy, inverse);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__permute_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_permute(ad_tensor *x, const int *perm)
{
    if (!ad__input_tape(x, "permute"))
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    int64_t p[AD_MAX_DIMS];
    uint32_t seen = 0;
    bool identity = true;
    if (x->ndim && !perm) {
        ad__fail(x->tape, AD_ERR_ARG, "permute: perm is NULL for shape %s", AD__SHAPE(x, s0));
        return NULL;
    }
    for (int d = 0; d < x->ndim; d++) {
        p[d] = perm[d];
        if (perm[d] < 0 || perm[d] >= x->ndim || (seen & (1u << perm[d]))) {
            for (int e = d + 1; e < x->ndim; e++)
                p[e] = perm[e];
            ad__fail(x->tape, AD_ERR_AXIS, "permute: %s is not a permutation of the axes of %s",
                     ad__shape_str(s1, x->ndim, p), AD__SHAPE(x, s0));
            return NULL;
        }
        seen |= 1u << perm[d];
        identity = identity && perm[d] == d;
    }
    if (identity)
        return x;
    ad__param params[AD_NPARAM] = {{.p = ad__copy_i64(x->tape, p, (size_t)x->ndim)}};
    if (!params[0].p)
        return NULL;
    return ad__apply(AD_OP_permute, 1, &x, params);
}

ad_tensor *ad_transpose(ad_tensor *x, int axis0, int axis1)
{
    if (!ad__input_tape(x, "transpose"))
        return NULL;
    int a0 = ad__check_axis(x->tape, "transpose", x, axis0);
    int a1 = a0 < 0 ? -1 : ad__check_axis(x->tape, "transpose", x, axis1);
    if (a1 < 0)
        return NULL;
    int perm[AD_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        perm[d] = d;
    perm[a0] = a1;
    perm[a1] = a0;
    return ad_permute(x, perm);
}

/* ---- flip and roll: one walk over y, reading x at a reversed or wrapped index ------------
 * Both are permutations of x's entries along some dims, done by one kernel
 * (flip_roll in shape_kernels.h). Before it runs, dims that neither op moves
 * are merged with their outer neighbour when it is not reversed, so that a
 * roll of [64, 128, 128] along dim 0 is two memcpys and a flip along dim 0
 * copies rows of 128 * 128. */

/* The one-pass forward: bit d of reversed flips dim d; shift[d] (NULL: none)
 * rolls it, in [0, dim). */
static void flip_roll_forward(ad_tensor *y, uint32_t reversed, const int64_t *shift)
{
    const ad_tensor *x = y->src[0];
    if (y->numel == 0)
        return;
    int64_t shape[AD_MAX_DIMS], first[AD_MAX_DIMS];
    uint32_t rev = 0;
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        int64_t n = x->shape[d], s = shift ? shift[d] : 0;
        bool r = (reversed >> d) & 1;
        if (nd && !r && s == 0 && !((rev >> (nd - 1)) & 1)) {
            /* untouched after an untouched or rolled dim: one dim, rolled by as many blocks */
            shape[nd - 1] *= n;
            first[nd - 1] *= n;
            continue;
        }
        rev |= (uint32_t)r << nd;
        first[nd] = r ? n - 1 : s ? n - s : 0;
        shape[nd++] = n;
    }
    if (nd == 0) { /* a 0-d x: nothing to move but its one entry */
        memcpy(y->data, x->data, ad_dtype_size((ad_dtype)y->dtype));
        return;
    }
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        flip_roll_f32(x->data, y->data, nd, shape, first, rev);
        break;
    case AD_F64:
        flip_roll_f64(x->data, y->data, nd, shape, first, rev);
        break;
    case AD_I64:
        flip_roll_i64(x->data, y->data, nd, shape, first, rev);
        break;
    case AD_BOOL:
        flip_roll_bool(x->data, y->data, nd, shape, first, rev);
        break;
    }
}

/* ---- flip: reversed along the dims of a mask ----------------------------------------------
 * dx = flip(dy) (self-adjoint). param[0].i: the mask, only dims of size >= 2. */
ad_status ad__flip_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__flip_forward(ad_tensor *y)
{
    flip_roll_forward(y, (uint32_t)y->param[0].i, NULL);
}

void ad__flip_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    gin[0] = ad__reapply(y, 0, gy);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__flip_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_flip(ad_tensor *x, int n_axes, const int *axes)
{
    ad_tape *tape = ad__input_tape(x, "flip");
    if (!tape)
        return NULL;
    if (n_axes == 0) /* torch: no dims, nothing flipped */
        return x;
    if (x->ndim == 0) { /* torch lets a 0-d tensor name axis 0 or -1 */
        for (int i = 0; i < n_axes; i++)
            if (!axes || (axes[i] != 0 && axes[i] != -1)) {
                ad__fail(tape, AD_ERR_AXIS, "flip: axis %d is not 0 or -1 for shape []",
                         axes ? axes[i] : 0);
                return NULL;
            }
        return x;
    }
    uint32_t mask;
    if (ad__axes_mask(tape, "flip", x, n_axes, axes, &mask) != AD_OK)
        return NULL;
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] < 2)
            mask &= ~(1u << d); /* reversing 0 or 1 entries moves nothing */
    if (!mask)
        return x;
    ad__param params[AD_NPARAM] = {{.i = mask}};
    return ad__apply(AD_OP_flip, 1, &x, params);
}

/* ---- roll: shifted along each dim, wrapping around ----------------------------------------
 * dx = roll(dy, -shifts). param[0].p: the shift of each dim, in [0, dim) (int64, arena). */
ad_status ad__roll_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

void ad__roll_forward(ad_tensor *y)
{
    flip_roll_forward(y, 0, y->param[0].p);
}

void ad__roll_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    const int64_t *shift = y->param[0].p;
    int64_t *back = ad__alloc(y->tape, (size_t)y->ndim * sizeof *back);
    if (!back)
        return; /* out of memory: the error is on the tape, which the sweep checks */
    for (int d = 0; d < y->ndim; d++)
        back[d] = shift[d] ? y->shape[d] - shift[d] : 0;
    ad__param params[AD_NPARAM] = {{.p = back}};
    gin[0] = ad__apply(AD_OP_roll, 1, &gy, params);
}

// dy = the op applied to dx (it is linear)
ad_tensor *ad__roll_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_linear(y, t);
}

ad_tensor *ad_roll(ad_tensor *x, int n, const int64_t *shifts, const int *axes)
{
    ad_tape *tape = ad__input_tape(x, "roll");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    if (n < 1 || !shifts || (!axes && n != 1)) {
        ad__fail(tape, AD_ERR_ARG,
                 "roll: %d shifts%s for shape %s (one without axes, else one per axis)", n,
                 shifts ? "" : " (NULL)", AD__SHAPE(x, s));
        return NULL;
    }
    if (!axes) { /* torch: rolled as if flattened, then the shape restored (free reshapes) */
        if (x->ndim == 0)
            return x;
        ad_tensor *flat = ad_roll(ad_flatten(x, 0, -1), 1, shifts, (const int[]){0});
        return ad_reshape(flat, x->ndim, x->shape);
    }
    int64_t shift[AD_MAX_DIMS] = {0};
    bool moved = false;
    for (int i = 0; i < n; i++) {
        int a = i < AD_MAX_DIMS ? ad__check_axis(tape, "roll", x, axes[i]) : -1;
        if (a < 0) {
            if (i >= AD_MAX_DIMS)
                ad__fail(tape, AD_ERR_ARG, "roll: %d axes for shape %s (at most %d)", n,
                         AD__SHAPE(x, s), AD_MAX_DIMS);
            return NULL;
        }
        int64_t dim = x->shape[a];
        if (dim == 0)
            continue;
        /* a repeated axis rolls by the sum of its shifts, as torch; kept in [0, dim) */
        int64_t r = shifts[i] % dim;
        r = r < 0 ? r + dim : r;
        shift[a] = shift[a] >= dim - r ? shift[a] - (dim - r) : shift[a] + r;
    }
    for (int d = 0; d < x->ndim; d++)
        moved = moved || shift[d];
    if (!moved)
        return x;
    ad__param params[AD_NPARAM] = {{.p = ad__copy_i64(tape, shift, (size_t)x->ndim)}};
    if (!params[0].p)
        return NULL;
    return ad__apply(AD_OP_roll, 1, &x, params);
}

/* ==== Compositions of the primitives above ===================================================
 * squeeze, unsqueeze, flatten, unflatten and expand_as are reshapes and expands;
 * split, chunk and unbind are slices; repeat is expands; pad (reflect, replicate,
 * circular) is index_selects; constant pad is slices and
 * concats; tril/triu are where with a constant mask; diagonal is a strided slice of the
 * flattened matrix; trace and outer are sums and products of those. None needs a row:
 * each is differentiable to any order because its parts are, and tests/cases_shape.c
 * checks each under the row of the primitive that carries its gradient. */

/* ---- squeeze, unsqueeze, flatten, unflatten, expand_as: reshapes ------------------------- */

ad_tensor *ad_squeeze(ad_tensor *x, int n_axes, const int *axes)
{
    ad_tape *tape = ad__input_tape(x, "squeeze");
    if (!tape)
        return NULL;
    if (x->ndim == 0) {
        /* torch lets a 0-d tensor name axis 0 or -1, as if it had one dim */
        for (int i = 0; i < n_axes; i++)
            if (!axes || (axes[i] != 0 && axes[i] != -1)) {
                ad__fail(tape, AD_ERR_AXIS, "squeeze: axis %d is not 0 or -1 for shape []",
                         axes ? axes[i] : 0);
                return NULL;
            }
        return x;
    }
    uint32_t mask;
    if (ad__axes_mask(tape, "squeeze", x, n_axes, axes, &mask) != AD_OK)
        return NULL;
    int64_t shape[AD_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!(mask & (1u << d)) || x->shape[d] != 1)
            shape[nd++] = x->shape[d];
    return ad_reshape(x, nd, shape);
}

ad_tensor *ad_unsqueeze(ad_tensor *x, int axis)
{
    ad_tape *tape = ad__input_tape(x, "unsqueeze");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    int nd = x->ndim, a = ad__axis(axis, nd + 1);
    if (nd == AD_MAX_DIMS || a < 0) {
        ad__fail(tape, nd == AD_MAX_DIMS ? AD_ERR_SHAPE : AD_ERR_AXIS,
                 "unsqueeze: axis %d out of range [%d, %d] for shape %s%s", axis, -(nd + 1), nd,
                 AD__SHAPE(x, s), nd == AD_MAX_DIMS ? " (it has the most dims)" : "");
        return NULL;
    }
    int64_t shape[AD_MAX_DIMS];
    for (int d = 0, k = 0; d <= nd; d++)
        shape[d] = d == a ? 1 : x->shape[k++];
    return ad_reshape(x, nd + 1, shape);
}

ad_tensor *ad_flatten(ad_tensor *x, int start, int end)
{
    ad_tape *tape = ad__input_tape(x, "flatten");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    int a, b;
    if (x->ndim) {
        a = ad__check_axis(tape, "flatten", x, start);
        b = a < 0 ? -1 : ad__check_axis(tape, "flatten", x, end);
    } else { /* torch lets a 0-d tensor name axis 0 or -1, and flattens it to [1] */
        a = start == 0 || start == -1 ? 0 : -1;
        b = end == 0 || end == -1 ? 0 : -1;
        if (a < 0 || b < 0)
            ad__fail(tape, AD_ERR_AXIS, "flatten: axis %d is not 0 or -1 for shape []",
                     a < 0 ? start : end);
    }
    if (a < 0 || b < 0)
        return NULL;
    if (a > b) {
        ad__fail(tape, AD_ERR_AXIS, "flatten: start %d comes after end %d for shape %s", start, end,
                 AD__SHAPE(x, s));
        return NULL;
    }
    if (x->ndim == 0) {
        const int64_t one = 1;
        return ad_reshape(x, 1, &one);
    }
    int64_t shape[AD_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d <= a || d > b)
            shape[k++] = x->shape[d];
        else
            shape[k - 1] *= x->shape[d]; /* no overflow: the product is x's numel */
    }
    return ad_reshape(x, k, shape);
}

ad_tensor *ad_unflatten(ad_tensor *x, int axis, int n, const int64_t *sizes)
{
    ad_tape *tape = ad__input_tape(x, "unflatten");
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    int a = ad__check_axis(tape, "unflatten", x, axis);
    if (a < 0)
        return NULL;
    if (n < 1 || !sizes || x->ndim - 1 + n > AD_MAX_DIMS) {
        ad__fail(tape, AD_ERR_SHAPE, "unflatten: %d sizes%s for axis %d of shape %s", n,
                 sizes ? "" : " (NULL)", axis, AD__SHAPE(x, s0));
        return NULL;
    }
    int64_t shape[AD_MAX_DIMS], known = 1, dim = x->shape[a];
    int infer = -1, k = 0;
    bool ok = true;
    for (int d = 0; d < a; d++)
        shape[k++] = x->shape[d];
    for (int i = 0; i < n; i++, k++) {
        shape[k] = sizes[i];
        if (sizes[i] == -1 && infer < 0)
            infer = k;
        else if (sizes[i] < 0 || (sizes[i] && known > AD__MAX_NUMEL / sizes[i]))
            ok = false;
        else
            known *= sizes[i];
    }
    for (int d = a + 1; d < x->ndim; d++)
        shape[k++] = x->shape[d];
    /* -1 with a zero product is ambiguous, as in torch */
    if (infer >= 0 && ok && known && dim % known == 0)
        shape[infer] = dim / known;
    else if (infer >= 0)
        ok = false;
    if (!ok || (infer < 0 && known != dim)) {
        ad__fail(tape, AD_ERR_SHAPE, "unflatten: sizes %s do not multiply to %lld, axis %d of %s",
                 ad__shape_str(s1, n, sizes), (long long)dim, axis, AD__SHAPE(x, s0));
        return NULL;
    }
    return ad_reshape(x, k, shape);
}

ad_tensor *ad_expand_as(ad_tensor *x, ad_tensor *other)
{
    if (!ad__input_tape(x, "expand_as") || !other)
        return NULL;
    return ad_expand(x, other->ndim, other->shape);
}

/* ---- split, chunk, unbind: slices ---------------------------------------------------------
 * Each piece is a slice, so the gradient of x is the sum of each used piece's gradient
 * scattered back into zeros: k pieces cost k passes over x in the backward. */

/* Sets out[0..n) to NULL after an error, and returns 0. */
static size_t pieces_failed(size_t n, ad_tensor **out)
{
    for (size_t i = 0; out && i < n; i++)
        out[i] = NULL;
    return 0;
}

/* The axis of x for a multi-output op, or -1 (the error on the tape). */
static int pieces_axis(ad_tensor *x, const char *op, int axis, ad_tensor **out)
{
    ad_tape *tape = ad__input_tape(x, op);
    if (!tape)
        return -1;
    if (!out) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_ARG, "%s: out is NULL (x of shape %s)", op, AD__SHAPE(x, s));
        return -1;
    }
    return ad__check_axis(tape, op, x, axis);
}

/* n pieces of length `size` along axis a (the last one shorter), or of sizes[i]. */
static size_t slice_pieces(ad_tensor *x, int a, size_t n, int64_t size, const int64_t *sizes,
                           ad_tensor **out)
{
    int64_t start = 0, dim = x->shape[a];
    for (size_t i = 0; i < n; i++) {
        int64_t len = sizes ? sizes[i] : size < dim - start ? size : dim - start;
        out[i] = ad_slice(x, a, start, start + len, 1);
        if (!out[i])
            return pieces_failed(n, out);
        start += len;
    }
    return n;
}

size_t ad_split(ad_tensor *x, int axis, int64_t size, size_t capacity, ad_tensor **out)
{
    int a = pieces_axis(x, "split", axis, out);
    if (a < 0)
        return pieces_failed(capacity, out);
    char s[AD__SHAPE_BUF];
    int64_t dim = x->shape[a];
    if (size < 0 || (size == 0 && dim != 0)) {
        ad__fail(x->tape, AD_ERR_ARG,
                 "split: size %lld along axis %d of shape %s (0 only for an "
                 "empty axis)",
                 (long long)size, axis, AD__SHAPE(x, s));
        return pieces_failed(capacity, out);
    }
    /* torch: an empty axis gives one empty piece */
    size_t n = dim == 0 ? 1 : (size_t)((dim - 1) / size + 1);
    if (n > capacity) {
        ad__fail(x->tape, AD_ERR_ARG,
                 "split: %zu pieces of size %lld along axis %d of shape %s, room for %zu", n,
                 (long long)size, axis, AD__SHAPE(x, s), capacity);
        return pieces_failed(capacity, out);
    }
    return slice_pieces(x, a, n, size, NULL, out);
}

size_t ad_split_sizes(ad_tensor *x, int axis, size_t n, const int64_t *sizes, ad_tensor **out)
{
    int a = pieces_axis(x, "split_sizes", axis, out);
    if (a < 0)
        return pieces_failed(n, out);
    char s[AD__SHAPE_BUF];
    int64_t total = 0;
    bool ok = n > 0 && sizes;
    for (size_t i = 0; ok && i < n; i++) {
        ok = sizes[i] >= 0 && sizes[i] <= x->shape[a] - total;
        total += ok ? sizes[i] : 0;
    }
    if (!ok || total != x->shape[a]) {
        ad__fail(x->tape, AD_ERR_ARG,
                 "split_sizes: %zu sizes%s do not sum to %lld, axis %d of shape %s", n,
                 sizes ? "" : " (NULL)", (long long)x->shape[a], axis, AD__SHAPE(x, s));
        return pieces_failed(n, out);
    }
    return slice_pieces(x, a, n, 0, sizes, out);
}

size_t ad_chunk(ad_tensor *x, int axis, size_t chunks, ad_tensor **out)
{
    int a = pieces_axis(x, "chunk", axis, out);
    if (a < 0)
        return pieces_failed(chunks, out);
    char s[AD__SHAPE_BUF];
    int64_t dim = x->shape[a];
    if (chunks == 0 || chunks > (size_t)AD__MAX_NUMEL) {
        ad__fail(x->tape, AD_ERR_ARG, "chunk: %zu chunks along axis %d of shape %s (at least 1)",
                 chunks, axis, AD__SHAPE(x, s));
        return pieces_failed(chunks, out);
    }
    /* torch: pieces of ceil(dim / chunks), so there may be fewer than chunks; an
     * empty axis gives chunks empty pieces */
    if (dim == 0)
        return slice_pieces(x, a, chunks, 0, NULL, out);
    int64_t size = (dim - 1) / (int64_t)chunks + 1;
    size_t n = (size_t)((dim - 1) / size + 1);
    for (size_t i = n; i < chunks; i++)
        out[i] = NULL;
    return slice_pieces(x, a, n, size, NULL, out);
}

size_t ad_unbind(ad_tensor *x, int axis, size_t capacity, ad_tensor **out)
{
    int a = pieces_axis(x, "unbind", axis, out);
    if (a < 0)
        return pieces_failed(capacity, out);
    char s[AD__SHAPE_BUF];
    int64_t dim = x->shape[a];
    if ((uint64_t)dim > capacity) {
        ad__fail(x->tape, AD_ERR_ARG, "unbind: %lld pieces along axis %d of shape %s, room for %zu",
                 (long long)dim, axis, AD__SHAPE(x, s), capacity);
        return pieces_failed(capacity, out);
    }
    int64_t shape[AD_MAX_DIMS];
    for (int d = 0, k = 0; d < x->ndim; d++)
        if (d != a)
            shape[k++] = x->shape[d];
    for (int64_t i = 0; i < dim; i++) {
        out[i] = ad_reshape(ad_slice(x, a, i, i + 1, 1), x->ndim - 1, shape);
        if (!out[i])
            return pieces_failed(capacity, out);
    }
    return (size_t)dim;
}

/* ---- repeat: one expand per repeated dim ----------------------------------------------- */

ad_tensor *ad_repeat(ad_tensor *x, int n, const int64_t *repeats)
{
    ad_tape *tape = ad__input_tape(x, "repeat");
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (n < x->ndim || n > AD_MAX_DIMS || (n && !repeats)) {
        ad__fail(tape, AD_ERR_SHAPE, "repeat: %d repeats for shape %s (from its %d dims to %d)", n,
                 AD__SHAPE(x, s0), x->ndim, AD_MAX_DIMS);
        return NULL;
    }
    int lead = n - x->ndim;
    int64_t cur[AD_MAX_DIMS], out[AD_MAX_DIMS];
    bool ok = true;
    for (int d = 0; d < n; d++) {
        cur[d] = d < lead ? 1 : x->shape[d - lead];
        ok = ok && repeats[d] >= 0 && (!cur[d] || repeats[d] <= AD__MAX_NUMEL / cur[d]);
        out[d] = ok ? cur[d] * repeats[d] : 0;
    }
    if (!ok || ad__numel(n, out) < 0) {
        ad__fail(tape, AD_ERR_SHAPE, "repeat: repeats %s of shape %s (negative or too many)",
                 ad__shape_str(s1, n, repeats), AD__SHAPE(x, s0));
        return NULL;
    }
    /* Dim d repeated: x seen as [A, 1, B] (A the dims before d, B d and after)
     * expanded to [A, r, B], which tiles dims d.. r times, as torch does. */
    ad_tensor *y = ad_reshape(x, n, cur);
    for (int d = 0; d < n && y; d++) {
        if (repeats[d] == 1)
            continue;
        int64_t view[3] = {ad__numel(d, cur), 1, ad__numel(n - d, cur + d)};
        int64_t tiled[3] = {view[0], repeats[d], view[2]};
        y = ad_expand(ad_reshape(y, 3, view), 3, tiled);
        cur[d] *= repeats[d];
        y = ad_reshape(y, n, cur);
    }
    return y;
}

/* ---- pad: constant by slices and concats, the others by index_select --------------------- */

/* An index of n entries in the tape's arena, or NULL (out of memory, on the tape). */
static int64_t *index_buffer(ad_tape *tape, int64_t n)
{
    return ad__alloc(tape, (size_t)(n ? n : 1) * sizeof(int64_t));
}

/* The source index of each entry of a padded dim: out = dim + lo + hi entries. */
static void pad_index(ad_pad_mode mode, int64_t dim, int64_t lo, int64_t out, int64_t *index)
{
    for (int64_t j = 0; j < out; j++) {
        int64_t src = j - lo;
        switch (mode) {
        case AD_PAD_REFLECT: /* edges not repeated; lo, hi < dim */
            src = src < 0 ? -src : src >= dim ? 2 * (dim - 1) - src : src;
            break;
        case AD_PAD_REPLICATE:
            src = src < 0 ? 0 : src >= dim ? dim - 1 : src;
            break;
        case AD_PAD_CIRCULAR: /* lo, hi <= dim: wraps at most once */
            src = src < 0 ? src + dim : src >= dim ? src - dim : src;
            break;
        case AD_PAD_CONSTANT:
            break;
        }
        index[j] = src;
    }
}

/* Constant padding of one dim: x cropped where lo or hi < 0, then joined
 * with blocks of value where they are > 0. */
static ad_tensor *pad_constant(ad_tensor *x, int d, int64_t lo, int64_t hi, double value)
{
    int64_t dim = x->shape[d];
    int64_t start = lo < 0 ? -lo : 0, stop = hi < 0 ? dim + hi : dim;
    ad_tensor *y = start || stop < dim ? ad_slice(x, d, start, stop, 1) : x;
    ad_tensor *parts[3];
    size_t k = 0;
    int64_t shape[AD_MAX_DIMS];
    memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
    for (int side = 0; side < 2 && y; side++) {
        int64_t width = side ? hi : lo;
        if (side)
            parts[k++] = y;
        if (width <= 0)
            continue;
        shape[d] = width;
        parts[k++] = ad_expand(ad__scalar_const(x, value), x->ndim, shape);
    }
    return !y ? NULL : k == 1 ? y : ad_concat(k, parts, d);
}

/* Whether one pair of pads fits a dim of the mode: the padded dim not
 * negative, within the dim for reflect (< dim) and circular (<= dim). */
static bool pad_fits(ad_pad_mode mode, int64_t dim, int64_t lo, int64_t hi)
{
    int64_t crop = (lo < 0 ? -lo : 0) + (hi < 0 ? -hi : 0);
    if (lo < -AD__MAX_NUMEL || hi < -AD__MAX_NUMEL || lo > AD__MAX_NUMEL || hi > AD__MAX_NUMEL ||
        crop > dim)
        return false;
    switch (mode) {
    case AD_PAD_REFLECT:
        return lo < dim && hi < dim;
    case AD_PAD_REPLICATE:
        return dim > 0 || (lo <= 0 && hi <= 0);
    case AD_PAD_CIRCULAR:
        return lo <= dim && hi <= dim;
    case AD_PAD_CONSTANT:
        return true;
    }
    return false;
}

ad_tensor *ad_pad(ad_tensor *x, int n, const int64_t *pad, ad_pad_mode mode, double value)
{
    ad_tape *tape = ad__input_tape(x, "pad");
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if ((unsigned)mode > AD_PAD_CIRCULAR || n < 0 || n % 2 || (n && !pad)) {
        ad__fail(tape, AD_ERR_ARG, "pad: mode %d with %d pads for shape %s (an even count)",
                 (int)mode, n, AD__SHAPE(x, s0));
        return NULL;
    }
    if (n / 2 > x->ndim) {
        ad__fail(tape, AD_ERR_SHAPE, "pad: pads %s for shape %s: more pairs than dims",
                 ad__shape_str(s1, n, pad), AD__SHAPE(x, s0));
        return NULL;
    }
    int64_t shape[AD_MAX_DIMS];
    memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
    for (int i = 0; i < n / 2; i++) {
        int d = x->ndim - 1 - i; /* pairs from the last dim, as torch */
        if (!pad_fits(mode, x->shape[d], pad[2 * i], pad[2 * i + 1])) {
            ad__fail(tape, AD_ERR_SHAPE,
                     "pad: pads (%lld, %lld) do not fit dim %d of shape %s in mode %d "
                     "(reflect needs pads < dim, circular <= dim)",
                     (long long)pad[2 * i], (long long)pad[2 * i + 1], d, AD__SHAPE(x, s0),
                     (int)mode);
            return NULL;
        }
        shape[d] += pad[2 * i] + pad[2 * i + 1];
    }
    if (ad__numel(x->ndim, shape) < 0) {
        ad__fail(tape, AD_ERR_SHAPE, "pad: pads %s of shape %s give too many elements",
                 ad__shape_str(s1, n, pad), AD__SHAPE(x, s0));
        return NULL;
    }
    ad_tensor *y = x;
    for (int i = 0; i < n / 2 && y; i++) {
        int d = x->ndim - 1 - i;
        int64_t lo = pad[2 * i], hi = pad[2 * i + 1], dim = y->shape[d];
        if (lo == 0 && hi == 0)
            continue;
        if (mode == AD_PAD_CONSTANT) {
            y = pad_constant(y, d, lo, hi, value);
            continue;
        }
        int64_t *index = index_buffer(tape, shape[d]);
        if (!index)
            return NULL;
        pad_index(mode, dim, lo, shape[d], index);
        y = ad_index_select(y, d, (size_t)shape[d], index);
    }
    return y;
}

/* ---- tril, triu: where with a constant mask on the last two dims ------------------------ */

static ad_tensor *triangle(ad_tensor *x, int64_t k, bool lower, const char *op)
{
    ad_tape *tape = ad__input_tape(x, op);
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    if (x->ndim < 2) {
        ad__fail(tape, AD_ERR_SHAPE, "%s: x of shape %s has fewer than 2 dims", op,
                 AD__SHAPE(x, s));
        return NULL;
    }
    int64_t rows = x->shape[x->ndim - 2], cols = x->shape[x->ndim - 1];
    ad_tensor *mask = ad__new(tape, AD_BOOL, 2, x->shape + x->ndim - 2);
    if (!mask)
        return NULL;
    /* k is clamped, so that j - i never meets an overflowing k */
    k = k < -rows ? -rows : k > cols ? cols : k;
    bool *m = mask->data; /* true where column - row <= k (lower) or >= k (upper) */
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            m[i * cols + j] = lower ? j - i <= k : j - i >= k;
    /* where, not a product with the mask: an inf outside the triangle gives 0, as torch */
    return ad_where(mask, x, ad__scalar_const(x, 0.0));
}

ad_tensor *ad_tril(ad_tensor *x, int64_t diagonal)
{
    return triangle(x, diagonal, true, "tril");
}

ad_tensor *ad_triu(ad_tensor *x, int64_t diagonal)
{
    return triangle(x, diagonal, false, "triu");
}

/* ---- diagonal, trace: a strided slice of the flattened matrix ----------------------------- */

ad_tensor *ad_diagonal(ad_tensor *x, int64_t offset, int axis1, int axis2)
{
    ad_tape *tape = ad__input_tape(x, "diagonal");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    int a1 = ad__check_axis(tape, "diagonal", x, axis1);
    int a2 = a1 < 0 ? -1 : ad__check_axis(tape, "diagonal", x, axis2);
    if (a2 < 0)
        return NULL;
    if (a1 == a2) {
        ad__fail(tape, AD_ERR_AXIS, "diagonal: axes %d and %d are the same dim of shape %s", axis1,
                 axis2, AD__SHAPE(x, s));
        return NULL;
    }
    /* The two dims moved last (torch puts the diagonal last), merged, and
     * every (m + 1)-th entry taken from the diagonal's start. */
    int nd = x->ndim, perm[AD_MAX_DIMS], k = 0;
    int64_t shape[AD_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        if (d != a1 && d != a2) {
            shape[k] = x->shape[d];
            perm[k++] = d;
        }
    perm[k] = a1;
    perm[k + 1] = a2;
    int64_t n = x->shape[a1], m = x->shape[a2], start = 0, len = 0;
    if (offset >= 0 && offset < m) {
        start = offset;
        len = n < m - offset ? n : m - offset;
    } else if (offset < 0 && offset > -n) {
        start = -offset * m;
        len = n + offset < m ? n + offset : m;
    }
    shape[k] = n * m;
    ad_tensor *flat = ad_reshape(ad_permute(x, perm), nd - 1, shape);
    return ad_slice(flat, nd - 2, start, len ? start + (len - 1) * (m + 1) + 1 : start, m + 1);
}

ad_tensor *ad_trace(ad_tensor *x)
{
    ad_tape *tape = ad__input_tape(x, "trace");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    if (x->ndim != 2) {
        ad__fail(tape, AD_ERR_SHAPE, "trace: x of shape %s is not a matrix", AD__SHAPE(x, s));
        return NULL;
    }
    return ad_sum_all(ad_diagonal(x, 0, 0, 1));
}

/* ---- outer: a column times a row -------------------------------------------------------- */

ad_tensor *ad_outer(ad_tensor *a, ad_tensor *b)
{
    ad_tensor *in[2] = {a, b};
    ad_tape *tape = ad__inputs_tape("outer", 2, in);
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    if (a->ndim != 1 || b->ndim != 1) {
        ad__fail(tape, AD_ERR_SHAPE, "outer: shapes %s and %s are not both 1-D", AD__SHAPE(a, s0),
                 AD__SHAPE(b, s1));
        return NULL;
    }
    int64_t column[2] = {a->shape[0], 1};
    return ad_mul(ad_reshape(ad_tape_use(tape, a), 2, column), b);
}

/* ---- einsum: diagonals, sums, permutes and a batched matmul per pair of operands -------
 * Each operand's repeated labels become diagonals and its labels used nowhere else are
 * summed out; operands are then contracted left to right, each pair as one matmul of
 * [batch, M, K] by [batch, K, N]; the result is summed and permuted to the output. */

typedef struct labeled {
    ad_tensor *t;
    int nd;
    char label[AD_MAX_DIMS];
} labeled;

/* Largest number of einsum operands. */
#define EINSUM_MAX_INPUTS 16

static bool einsum_label_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Repeated labels of one operand reduced to their diagonal (the new dim last). */
static bool einsum_diagonals(ad_tape *tape, labeled *x, const char *equation)
{
    for (int p = 0; p < x->nd; p++) {
        for (int q = p + 1; q < x->nd; q++) {
            if (x->label[p] != x->label[q])
                continue;
            if (x->t->shape[p] != x->t->shape[q]) {
                ad__fail(tape, AD_ERR_SHAPE, "einsum: label %c has sizes %lld and %lld in \"%s\"",
                         x->label[p], (long long)x->t->shape[p], (long long)x->t->shape[q],
                         equation);
                return false;
            }
            char c = x->label[p];
            int k = 0;
            for (int d = 0; d < x->nd; d++)
                if (d != p && d != q)
                    x->label[k++] = x->label[d];
            x->label[k++] = c;
            x->nd = k;
            x->t = ad_diagonal(x->t, 0, p, q);
            if (!x->t)
                return false;
            p = -1; /* start again: dims have moved */
            break;
        }
    }
    return true;
}

/* The labels of x not in keep summed out. */
static bool einsum_sum_out(labeled *x, const char *keep)
{
    int axes[AD_MAX_DIMS], n = 0, k = 0;
    for (int d = 0; d < x->nd; d++) {
        if (!strchr(keep, x->label[d]))
            axes[n++] = d;
        else
            x->label[k++] = x->label[d];
    }
    if (n == 0)
        return true;
    x->nd = k;
    x->t = ad_sum(x->t, n, axes, false);
    return x->t != NULL;
}

/* The product of the sizes of x's dims picked by perm[0..n). */
static int64_t einsum_size(const labeled *x, const int *perm, int n)
{
    int64_t size = 1;
    for (int i = 0; i < n; i++)
        size *= x->t->shape[perm[i]];
    return size;
}

/* The dim of x labelled c, or -1. */
static int einsum_find(const labeled *x, char c)
{
    for (int d = 0; d < x->nd; d++)
        if (x->label[d] == c)
            return d;
    return -1;
}

/* a and b contracted over their shared labels that are not in keep (labels
 * of either that are in neither keep nor the other were summed out): the
 * result, labelled batch, a only, b only, in a. */
static bool einsum_pair(ad_tape *tape, labeled *a, const labeled *b, const char *keep,
                        const char *equation)
{
    int pa[AD_MAX_DIMS], pb[AD_MAX_DIMS], na = 0, nb = 0, nout = 0, count[4] = {0};
    int64_t shape[2 * AD_MAX_DIMS];
    char label[2 * AD_MAX_DIMS];
    /* group 0: batch (shared, kept); 1: a only; 2: contracted (shared, not kept) */
    for (int group = 0; group < 3; group++)
        for (int i = 0; i < a->nd; i++) {
            int j = einsum_find(b, a->label[i]);
            bool kept = strchr(keep, a->label[i]) != NULL;
            if ((j < 0 ? 1 : kept ? 0 : 2) != group)
                continue;
            if (j >= 0 && b->t->shape[j] != a->t->shape[i]) {
                ad__fail(tape, AD_ERR_SHAPE, "einsum: label %c has sizes %lld and %lld in \"%s\"",
                         a->label[i], (long long)a->t->shape[i], (long long)b->t->shape[j],
                         equation);
                return false;
            }
            pa[na++] = i;
            if (j >= 0)
                pb[nb++] = j;
            if (group < 2) {
                label[nout] = a->label[i];
                shape[nout++] = a->t->shape[i];
            }
            count[group]++;
        }
    for (int j = 0; j < b->nd; j++)
        if (einsum_find(a, b->label[j]) < 0) {
            pb[nb++] = j;
            label[nout] = b->label[j];
            shape[nout++] = b->t->shape[j];
            count[3]++;
        }
    if (nout > AD_MAX_DIMS) {
        ad__fail(tape, AD_ERR_SHAPE, "einsum: \"%s\" needs %d dims (at most %d)", equation, nout,
                 AD_MAX_DIMS);
        return false;
    }
    int64_t sa[3] = {einsum_size(a, pa, count[0]), einsum_size(a, pa + count[0], count[1]),
                     einsum_size(a, pa + count[0] + count[1], count[2])};
    int64_t sb[3] = {sa[0], sa[2], einsum_size(b, pb + count[0] + count[2], count[3])};
    ad_tensor *ma = ad_reshape(ad_permute(a->t, pa), 3, sa);
    ad_tensor *mb = ad_reshape(ad_permute(b->t, pb), 3, sb);
    a->t = ad_reshape(ad_matmul(ma, mb), nout, shape);
    a->nd = nout;
    memcpy(a->label, label, (size_t)nout);
    return a->t != NULL;
}

/* Parses "ij,jk->ik": each operand's labels into x[i].label (checked against
 * its dims), the output's into out (implicit: the labels used once, in ASCII
 * order, as torch). Returns the output's count, or -1 after an error. */
static int einsum_parse(ad_tape *tape, const char *equation, size_t n, labeled *x, char *out)
{
    char s[AD__SHAPE_BUF];
    size_t i = 0;
    int used[128] = {0};
    const char *c = equation;
    x[0].nd = 0;
    for (; *c && !(c[0] == '-' && c[1] == '>'); c++) {
        if (*c == ' ')
            continue;
        if (*c == ',') {
            if (++i >= n)
                break;
            x[i].nd = 0;
            continue;
        }
        if (!einsum_label_ok(*c) || x[i].nd == AD_MAX_DIMS) {
            ad__fail(tape, AD_ERR_ARG, "einsum: \"%s\": '%c' is not a label (a-z, A-Z; no ...)",
                     equation, *c);
            return -1;
        }
        x[i].label[x[i].nd++] = *c;
        used[(int)*c]++;
    }
    if (i + 1 != n) {
        ad__fail(tape, AD_ERR_ARG, "einsum: \"%s\" has %s operands than the %zu inputs", equation,
                 i + 1 < n ? "fewer" : "more", n);
        return -1;
    }
    for (i = 0; i < n; i++)
        if (x[i].nd != x[i].t->ndim) {
            ad__fail(tape, AD_ERR_SHAPE, "einsum: \"%s\": operand %zu has %d labels for shape %s",
                     equation, i, x[i].nd, AD__SHAPE(x[i].t, s));
            return -1;
        }
    int nout = 0;
    if (!*c) {
        for (int l = 0; l < 128; l++)
            if (used[l] == 1)
                out[nout++] = (char)l;
        out[nout] = 0;
        return nout;
    }
    for (c += 2; *c; c++) {
        if (*c == ' ')
            continue;
        if (!einsum_label_ok(*c) || !used[(int)*c] || strchr(out, *c) || nout == AD_MAX_DIMS) {
            ad__fail(tape, AD_ERR_ARG,
                     "einsum: \"%s\": output label '%c' is not an input label, or repeated",
                     equation, *c);
            return -1;
        }
        out[nout++] = *c;
        out[nout] = 0;
    }
    return nout;
}

/* The labels to keep in operand i: the output's and those of the other operands. */
static void einsum_keep(const labeled *x, size_t n, size_t i, const char *out, char *keep)
{
    size_t k = strlen(out);
    memcpy(keep, out, k);
    for (size_t j = 0; j < n; j++)
        if (j != i) {
            memcpy(keep + k, x[j].label, (size_t)x[j].nd);
            k += (size_t)x[j].nd;
        }
    keep[k] = 0;
}

ad_tensor *ad_einsum(const char *equation, size_t n, ad_tensor *const *xs)
{
    ad_tape *tape = list_tape("einsum", n, xs);
    if (!tape)
        return NULL;
    if (!equation || n > EINSUM_MAX_INPUTS) {
        ad__fail(tape, AD_ERR_ARG, "einsum: %zu inputs%s (at most %d)", n,
                 equation ? "" : " and no equation", EINSUM_MAX_INPUTS);
        return NULL;
    }
    labeled x[EINSUM_MAX_INPUTS];
    char out[AD_MAX_DIMS + 1] = {0}, keep[AD_MAX_DIMS * (EINSUM_MAX_INPUTS + 1) + 1];
    for (size_t i = 0; i < n; i++) {
        if (!ad__same_dtype(tape, "einsum", xs[0], xs[i]))
            return NULL;
        x[i].t = ad_tape_use(tape, xs[i]);
        if (!x[i].t)
            return NULL;
    }
    int nout = einsum_parse(tape, equation, n, x, out);
    if (nout < 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        einsum_keep(x, n, i, out, keep);
        if (!einsum_diagonals(tape, &x[i], equation) || !einsum_sum_out(&x[i], keep))
            return NULL;
    }
    for (size_t i = 1; i < n; i++) {
        /* keep the output's labels and those of operands still to come */
        einsum_keep(x + i, n - i, 0, out, keep);
        if (!einsum_pair(tape, &x[0], &x[i], keep, equation))
            return NULL;
    }
    /* Sum what the output drops (after the pairs, shared labels may remain
     * only when kept for a later operand), then permute to the output. */
    if (!einsum_sum_out(&x[0], out))
        return NULL;
    int perm[AD_MAX_DIMS];
    for (int d = 0; d < nout; d++)
        perm[d] = einsum_find(&x[0], out[d]);
    return ad_permute(x[0].t, perm);
}
