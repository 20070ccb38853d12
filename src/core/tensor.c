/* Tensors: creation on a tape, persistent tensors, accessors, and the two ops
 * that start a graph (leaf, view). */
#include "core.h"

#include <math.h>
#include <pthread.h>

bool ad__dtype_valid(int dtype)
{
    switch ((ad_dtype)dtype) {
    case AD_F32:
    case AD_F64:
    case AD_I64:
    case AD_BOOL:
        return true;
    }
    return false;
}

size_t ad_dtype_size(ad_dtype dtype)
{
    switch (dtype) {
    case AD_F32:
        return sizeof(float);
    case AD_F64:
        return sizeof(double);
    case AD_I64:
        return sizeof(int64_t);
    case AD_BOOL:
        return sizeof(bool);
    }
    return 0;
}

const char *ad_dtype_name(ad_dtype dtype)
{
    switch (dtype) {
    case AD_F32:
        return "float32";
    case AD_F64:
        return "float64";
    case AD_I64:
        return "int64";
    case AD_BOOL:
        return "bool";
    }
    return "unknown";
}

int64_t ad__numel(int ndim, const int64_t *shape)
{
    /* The bound (util.h) holds for the product with each 0 counted as 1. */
    int64_t n = 1, span = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (__builtin_mul_overflow(span, shape[i] ? shape[i] : 1, &span) || span > AD__MAX_NUMEL)
            return -1;
        n *= shape[i];
    }
    return n;
}

int64_t *ad__copy_i64(ad_tape *tape, const int64_t *v, size_t n)
{
    int64_t *p = ad__alloc(tape, n * sizeof *p);
    if (p && n)
        memcpy(p, v, n * sizeof *p);
    return p;
}

ad_status ad__check_shape(ad_tape *tape, const char *op, int ndim, const int64_t *shape)
{
    char s[AD__SHAPE_BUF];
    if (ndim < 0 || ndim > AD_MAX_DIMS)
        return ad__fail(tape, AD_ERR_SHAPE, "%s: %d dims (at most %d)", op, ndim, AD_MAX_DIMS);
    if (ndim > 0 && !shape)
        return ad__fail(tape, AD_ERR_ARG, "%s: shape is NULL for %d dims", op, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return ad__fail(tape, AD_ERR_SHAPE, "%s: negative dim %lld in %s", op,
                            (long long)shape[i], ad__shape_str(s, ndim, shape));
    if (ad__numel(ndim, shape) < 0)
        return ad__fail(tape, AD_ERR_SHAPE, "%s: shape %s is too large (2^60 elements at most)", op,
                        ad__shape_str(s, ndim, shape));
    return AD_OK;
}

ad_tensor *ad__new(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape)
{
    ad_tensor *t = ad__node_new(tape, AD_OP_leaf, 0, dtype);
    if (!t)
        return NULL;
    t->ndim = (uint8_t)ndim;
    if (ndim) {
        t->shape = ad__copy_i64(tape, shape, (size_t)ndim);
        if (!t->shape)
            return NULL;
    }
    t->numel = ad__numel(ndim, shape);
    if (t->numel < 0) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_NOMEM, "tensor: shape %s has too many elements",
                 ad__shape_str(s, ndim, shape));
        return NULL;
    }
    t->data = ad__alloc(tape, (size_t)t->numel * ad_dtype_size(dtype));
    return t->data ? t : NULL;
}

ad_tensor *ad_tape_tensor(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape,
                          const void *data)
{
    if (!tape || tape->status != AD_OK)
        return NULL;
    if (!ad__dtype_valid(dtype)) {
        ad__fail(tape, AD_ERR_DTYPE, "tape_tensor: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (ad__check_shape(tape, "tape_tensor", ndim, shape) != AD_OK)
        return NULL;
    ad_tensor *t = ad__new(tape, dtype, ndim, shape);
    if (!t)
        return NULL;
    size_t bytes = (size_t)t->numel * ad_dtype_size(dtype);
    if (data)
        memcpy(t->data, data, bytes);
    else
        memset(t->data, 0, bytes);
    return t;
}

ad_tensor *ad_full(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape, double value)
{
    ad_tensor *t = ad_tape_tensor(tape, dtype, ndim, shape, NULL);
    if (t)
        for (int64_t i = 0; i < t->numel; i++)
            ad__set(t, i, value);
    return t;
}

ad_tensor *ad_tape_tensor_from_doubles(ad_tape *tape, ad_dtype dtype, int ndim,
                                       const int64_t *shape, const double *values)
{
    ad_tensor *t = ad_tape_tensor(tape, dtype, ndim, shape, NULL);
    if (t && values)
        for (int64_t i = 0; i < t->numel; i++)
            ad__set(t, i, values[i]);
    return t;
}

ad_tensor *ad_scalar_of(ad_tape *tape, ad_dtype dtype, double value)
{
    return ad_full(tape, dtype, 0, NULL, value);
}

ad_tensor *ad_scalar(ad_tape *tape, double value)
{
    return ad_full(tape, AD_F64, 0, NULL, value);
}

static ad_tape *tape_for(ad_tape *tape, const ad_tensor *t)
{
    return t && t->tape ? t->tape : tape;
}

ad_tensor *ad_zeros_like(ad_tape *tape, const ad_tensor *t)
{
    if (!t)
        return NULL;
    return ad_full(tape_for(tape, t), (ad_dtype)t->dtype, t->ndim, t->shape, 0.0);
}

ad_tensor *ad_ones_like(ad_tape *tape, const ad_tensor *t)
{
    if (!t)
        return NULL;
    return ad_full(tape_for(tape, t), (ad_dtype)t->dtype, t->ndim, t->shape, 1.0);
}

ad_tensor *ad__const_like(const ad_tensor *like, double value)
{
    return ad_full(like->tape, (ad_dtype)like->dtype, like->ndim, like->shape, value);
}

ad_tensor *ad__scalar_const(const ad_tensor *like, double value)
{
    return ad_full(like->tape, (ad_dtype)like->dtype, 0, NULL, value);
}

ad_status ad__record(ad_tape *tape, ad_tensor *t)
{
    if (tape->n_nodes == tape->cap_nodes) {
        size_t cap = tape->cap_nodes ? tape->cap_nodes * 2 : 1024;
        ad_tensor **nodes = ad__heap_alloc(&tape->allocator, cap * sizeof *nodes);
        if (!nodes)
            return ad__fail(tape, AD_ERR_NOMEM, "tape: out of memory recording node %zu",
                            tape->n_nodes);
        if (tape->n_nodes)
            memcpy(nodes, tape->nodes, tape->n_nodes * sizeof *nodes);
        ad__heap_free(&tape->allocator, tape->nodes);
        tape->nodes = nodes;
        tape->cap_nodes = cap;
    }
    if (tape->anomaly && ad__record_where(tape) != AD_OK)
        return tape->status;
    t->id = (uint32_t)tape->n_nodes;
    tape->nodes[tape->n_nodes++] = t;
    t->flags |= AD_TF_RECORDED;
    return AD_OK;
}

ad_tensor *ad_requires_grad(ad_tensor *t)
{
    if (!t || !t->tape || t->tape->status != AD_OK)
        return t;
    if (ad__is_stale(t)) {
        ad__fail(t->tape, AD_ERR_FREED, "requires_grad: the tensor was freed by ad_tape_reset");
        return NULL;
    }
    if (t->flags & AD_TF_REQUIRES_GRAD)
        return t;
    if (!ad__is_float(t->dtype)) {
        char s[AD__SHAPE_BUF];
        ad__fail(t->tape, AD_ERR_DTYPE,
                 "requires_grad: only float tensors can require grad, not %s %s",
                 ad_dtype_name((ad_dtype)t->dtype), AD__SHAPE(t, s));
        return NULL;
    }
    /* A tensor that needs no grad is a constant, whatever made it: it can
     * become a leaf (as torch's requires_grad_ on such a tensor). */
    t->op = AD_OP_leaf;
    t->nsrc = 0;
    t->src = NULL;
    if (ad__record(t->tape, t) != AD_OK)
        return NULL;
    t->flags |= AD_TF_REQUIRES_GRAD | AD_TF_LEAF;
    return t;
}

/* ---- Persistent tensors --------------------------------------------------- */

/* ---- The live persistent tensors ---------------------------------------------
 * A set of every persistent tensor not yet freed, so that ad_tensor_free of
 * one already freed (or of a pointer that never was one) does nothing
 * instead of freeing twice, and checked mode can refuse a freed tensor given
 * to an op. Open addressing with linear probing, deletion by shifting back;
 * its storage is freed when the last tensor is. */
static struct {
    pthread_mutex_t lock;
    const ad_tensor **slot;
    size_t cap, n;
    ad_allocator allocator; /* the process-wide allocator that gave slot */
} live = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t live_hash(const ad_tensor *t, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

/* Index of t's slot, or of the empty slot where it would go. Lock held. */
static size_t live_find(const ad_tensor *t)
{
    size_t i = live_hash(t, live.cap);
    while (live.slot[i] && live.slot[i] != t)
        i = (i + 1) & (live.cap - 1);
    return i;
}

/* Adds t, growing the set with t's own allocator a (a tensor made with an
 * allocator of its own takes no memory from any other). */
static ad_status live_add(const ad_tensor *t, const ad_allocator *a)
{
    ad_status st = AD_OK;
    pthread_mutex_lock(&live.lock);
    if (2 * (live.n + 1) > live.cap) {
        size_t cap = live.cap ? 2 * live.cap : 64;
        /* The storage goes back to the allocator that gave it, whatever the
         * process-wide one is by then. */
        ad_allocator now = *a;
        const ad_tensor **slot = ad__heap_alloc(&now, cap * sizeof *slot);
        if (!slot) {
            st = AD_ERR_NOMEM;
            goto done;
        }
        memset(slot, 0, cap * sizeof *slot);
        const ad_tensor **old = live.slot;
        size_t old_cap = live.cap;
        ad_allocator old_allocator = live.allocator;
        live.slot = slot;
        live.cap = cap;
        live.allocator = now;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i])
                live.slot[live_find(old[i])] = old[i];
        if (old)
            ad__heap_free(&old_allocator, old);
    }
    live.slot[live_find(t)] = t;
    live.n++;
done:
    pthread_mutex_unlock(&live.lock);
    return st;
}

/* Removes t; false if it was not there. */
static bool live_remove(const ad_tensor *t)
{
    bool found = false;
    pthread_mutex_lock(&live.lock);
    if (live.cap) {
        size_t i = live_find(t);
        if (live.slot[i]) {
            found = true;
            live.slot[i] = NULL;
            live.n--;
            /* Shift back the run after i so that every entry stays reachable. */
            for (size_t j = (i + 1) & (live.cap - 1); live.slot[j]; j = (j + 1) & (live.cap - 1)) {
                const ad_tensor *e = live.slot[j];
                live.slot[j] = NULL;
                live.slot[live_find(e)] = e;
            }
            if (live.n == 0) {
                ad__heap_free(&live.allocator, live.slot);
                live.slot = NULL;
                live.cap = 0;
            }
        }
    }
    pthread_mutex_unlock(&live.lock);
    return found;
}

ad_status ad_tensor_create(ad_tensor **out, ad_dtype dtype, int ndim, const int64_t *shape,
                           bool requires_grad)
{
    return ad_tensor_create_with(out, dtype, ndim, shape, requires_grad, NULL);
}

/* One allocation holds the header, a copy of the allocator, the shape and the data. */
static ad_tensor *persistent_new(ad_dtype dtype, int ndim, const int64_t *shape,
                                 const ad_allocator *allocator)
{
    int64_t numel = ad__numel(ndim, shape);
    if (numel < 0)
        return NULL;
    size_t head = (sizeof(ad_tensor) + sizeof(ad_allocator) + (size_t)ndim * sizeof(int64_t) + 63) &
                  ~(size_t)63;
    size_t bytes = head + (size_t)numel * ad_dtype_size(dtype) + 64;
    unsigned char *mem = ad__heap_alloc(allocator, bytes);
    if (!mem)
        return NULL;
    memset(mem, 0, bytes);
    ad_tensor *t = (ad_tensor *)mem;
    ad_allocator *a = (ad_allocator *)(mem + sizeof(ad_tensor));
    if (allocator)
        *a = *allocator;
    t->allocator = a;
    t->shape = (int64_t *)(mem + sizeof(ad_tensor) + sizeof(ad_allocator));
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    uintptr_t d = ((uintptr_t)mem + head + 63) & ~(uintptr_t)63;
    t->data = (void *)d;
    t->numel = numel;
    t->ndim = (uint8_t)ndim;
    t->dtype = (uint8_t)dtype;
    t->op = AD_OP_leaf;
    t->flags = AD_TF_PERSISTENT | AD_TF_LEAF;
    return t;
}

ad_status ad_tensor_create_with(ad_tensor **out, ad_dtype dtype, int ndim, const int64_t *shape,
                                bool requires_grad, const ad_allocator *allocator)
{
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (!ad__dtype_valid(dtype) || (requires_grad && !ad__is_float(dtype)))
        return AD_ERR_DTYPE;
    if (ndim < 0 || ndim > AD_MAX_DIMS || (ndim && !shape) || ad__numel(ndim, shape) < 0)
        return AD_ERR_SHAPE; /* including a shape of more than 2^60 elements */
    /* The tensor keeps the allocator it was made with (its own, else the
     * process-wide one of the moment, malloc included), so it is freed where
     * it came from even if the process-wide allocator changes meanwhile. */
    ad_allocator current = ad_get_allocator();
    if (allocator && (!allocator->alloc || !allocator->free))
        allocator = NULL;
    if (!allocator)
        allocator = current.alloc ? &current : &ad__malloc_allocator;
    ad_tensor *t = persistent_new(dtype, ndim, shape, allocator);
    if (!t)
        return AD_ERR_NOMEM;
    if (requires_grad) {
        t->grad = persistent_new(dtype, ndim, shape, allocator);
        if (!t->grad) {
            ad__heap_free(allocator, t);
            return AD_ERR_NOMEM;
        }
        t->flags |= AD_TF_REQUIRES_GRAD;
    }
    if (live_add(t, allocator) != AD_OK) {
        if (t->grad)
            ad__heap_free(allocator, t->grad);
        ad__heap_free(allocator, t);
        return AD_ERR_NOMEM;
    }
    *out = t;
    return AD_OK;
}

static const ad_allocator *allocator_of(const ad_tensor *t);

ad_status ad_tensor_set_requires_grad(ad_tensor *t, bool requires_grad)
{
    if (!t || t->tape || !(t->flags & AD_TF_PERSISTENT))
        return AD_ERR_ARG;
    if (requires_grad && !ad__is_float(t->dtype))
        return AD_ERR_DTYPE;
    if (requires_grad && !t->grad) {
        t->grad = persistent_new((ad_dtype)t->dtype, t->ndim, t->shape, allocator_of(t));
        if (!t->grad)
            return AD_ERR_NOMEM;
    }
    if (requires_grad)
        t->flags |= AD_TF_REQUIRES_GRAD;
    else
        t->flags &= (uint8_t)~AD_TF_REQUIRES_GRAD;
    return AD_OK;
}

static const ad_allocator *allocator_of(const ad_tensor *t)
{
    return t->allocator->alloc ? t->allocator : NULL;
}

void ad_tensor_free(ad_tensor *t)
{
    /* Not a live persistent tensor (NULL, freed already, a tape tensor): nothing to do. */
    if (!t || !live_remove(t))
        return;
    ad__free_hooks(t);
    if (t->grad)
        ad__heap_free(allocator_of(t->grad), t->grad);
    ad__heap_free(allocator_of(t), t);
}

/* ---- Accessors ------------------------------------------------------------ */

ad_dtype ad_tensor_dtype(const ad_tensor *t)
{
    return t ? (ad_dtype)t->dtype : AD_F64;
}

int ad_tensor_ndim(const ad_tensor *t)
{
    return t ? t->ndim : 0;
}

const int64_t *ad_tensor_shape(const ad_tensor *t)
{
    return t ? t->shape : NULL;
}

int64_t ad_tensor_dim(const ad_tensor *t, int axis)
{
    if (!t)
        return 0;
    int a = ad__axis(axis, t->ndim);
    return a < 0 ? 0 : t->shape[a];
}

int64_t ad_tensor_numel(const ad_tensor *t)
{
    return t ? t->numel : 0;
}

void *ad_tensor_data(const ad_tensor *t)
{
    return t && !ad__is_stale(t) ? t->data : NULL;
}

ad_tape *ad_tensor_tape(const ad_tensor *t)
{
    return t ? t->tape : NULL;
}

bool ad_tensor_requires_grad(const ad_tensor *t)
{
    return t && (t->flags & AD_TF_REQUIRES_GRAD);
}

ad_tensor *ad_tensor_grad(const ad_tensor *t)
{
    return t && !ad__is_stale(t) ? t->grad : NULL;
}

void ad_zero_grad(ad_tensor *t)
{
    if (!t || !t->grad)
        return;
    if (t->flags & AD_TF_PERSISTENT)
        memset(t->grad->data, 0, (size_t)t->numel * ad_dtype_size((ad_dtype)t->dtype));
    else
        t->grad = NULL;
}

double ad_tensor_get(const ad_tensor *t, int64_t i)
{
    if (!t || i < 0 || i >= t->numel || ad__is_stale(t))
        return NAN;
    return ad__get(t, i);
}

ad_status ad_tensor_set(ad_tensor *t, int64_t i, double value)
{
    if (!t || !(t->flags & AD_TF_PERSISTENT) || i < 0 || i >= t->numel)
        return AD_ERR_ARG;
    ad__set(t, i, value);
    return AD_OK;
}

ad_status ad_tensor_copy_to_doubles(const ad_tensor *t, double *out)
{
    if (!t)
        return AD_ERR_NULL;
    if (!out && t->numel)
        return AD_ERR_ARG;
    if (ad__is_stale(t))
        return AD_ERR_FREED;
    for (int64_t i = 0; i < t->numel; i++)
        out[i] = ad__get(t, i);
    return AD_OK;
}

ad_status ad_tensor_copy_from_doubles(ad_tensor *t, const double *values)
{
    if (!t)
        return AD_ERR_NULL;
    if (!values && t->numel)
        return AD_ERR_ARG;
    if (!(t->flags & AD_TF_PERSISTENT))
        return AD_ERR_ARG;
    for (int64_t i = 0; i < t->numel; i++)
        ad__set(t, i, values[i]);
    return AD_OK;
}

ad_status ad_tensor_assign(ad_tensor *dst, const ad_tensor *src)
{
    if (!dst || !src)
        return AD_ERR_NULL;
    if (ad__is_stale(dst) || ad__is_stale(src))
        return AD_ERR_FREED;
    if (!(dst->flags & AD_TF_PERSISTENT))
        return AD_ERR_ARG;
    if (dst->dtype != src->dtype)
        return AD_ERR_DTYPE;
    if (!ad__same_shape(dst, src))
        return AD_ERR_SHAPE;
    if (dst->data != src->data)
        memmove(dst->data, src->data, (size_t)dst->numel * ad_dtype_size((ad_dtype)dst->dtype));
    return AD_OK;
}

double ad_value(const ad_tensor *t)
{
    return t && t->numel && !ad__is_stale(t) ? ad__get(t, 0) : NAN;
}

double ad_grad_value(const ad_tensor *t)
{
    return t && !ad__is_stale(t) && t->grad && t->grad->numel ? ad__get(t->grad, 0) : NAN;
}

int ad_tensor_op(const ad_tensor *t)
{
    return t ? t->op : -1;
}

/* ---- leaf: a tensor that was created, not computed ------------------------- */
// Never applied as an op; its row exists so every tensor has an op id.

ad_status ad__leaf_shape(ad_tensor *y)
{
    (void)y;
    return AD_OK;
}

void ad__leaf_forward(ad_tensor *y)
{
    (void)y;
}

void ad__leaf_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)y, (void)gy, (void)gin;
}

// no derivative: never recorded, so never asked
ad_tensor *ad__leaf_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}

/* ---- view: a persistent tensor brought onto a tape --------------------------
 * Shares the persistent tensor's data and shape. It is a leaf of the tape's
 * graph: the sweep hands its gradient to the persistent tensor. */

ad_status ad__view_shape(ad_tensor *y)
{
    y->ndim = y->src[0]->ndim;
    y->shape = y->src[0]->shape;
    return AD_OK;
}

void ad__view_forward(ad_tensor *y)
{
    y->data = y->src[0]->data;
}

void ad__view_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    (void)y, (void)gy, (void)gin;
}

// no derivative: never recorded, so never asked
ad_tensor *ad__view_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_none(y, t);
}
