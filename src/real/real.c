/* Fast scalars (autodiff/real.h): a first-order Wengert list of 24-byte nodes.
 *
 * Each op computes its value and its local partial derivatives at once and
 * appends {da, db, a, b}; the reverse sweep is then one loop of two
 * multiply-adds per node, adj[a] += da adj[y], adj[b] += db adj[y]. Node 0 is
 * a sink that stands for every constant: partials sent to it are never read,
 * which spares a branch per input. An op whose inputs are all constants
 * records nothing, as a tensor op on constants does. */
#include "../core/core.h"

#include "autodiff/real.h"

#include <math.h>
#include <string.h>

/* 2^32 - 1 node numbers; 0 is the sink. */
#define MAX_REALS ((size_t)UINT32_MAX)

/* A recorded ad_real: y's local partials and its inputs' node numbers. */
typedef struct real_node {
    double da, db;
    uint32_t a, b;
} real_node;

/* A tape's fast scalars, kept in its extension slot (tape->ext): made on the
 * first ad_real_var, told of resets, freed with the tape. */
typedef struct real_store {
    real_node *nodes; /* nodes[0] is the constants' sink; nodes from 1 */
    double *adjoints; /* one per node, filled by ad_real_backward */
    size_t n, cap, n_adjoints, cap_adjoints;
    uint32_t tag; /* this tape and generation, in every ad_real it records */
} real_store;

/* A fresh nonzero tag (at the store's creation and each reset). */
static uint32_t next_tag(void)
{
    static _Atomic uint32_t last;
    uint32_t tag;
    while ((tag = ++last) == 0)
        ;
    return tag;
}

static void store_reset(ad_tape *tape, void *data)
{
    (void)tape;
    real_store *s = data;
    s->n = s->n ? 1 : 0;
    s->n_adjoints = 0;
    s->tag = next_tag();
}

static void store_free(ad_tape *tape, void *data)
{
    real_store *s = data;
    ad__heap_free(&tape->allocator, s->nodes);
    ad__heap_free(&tape->allocator, s->adjoints);
    ad__heap_free(&tape->allocator, s);
}

/* The tape's store, made on first use; NULL when out of memory. */
static real_store *store_get(ad_tape *tape)
{
    if (tape->ext.data)
        return tape->ext.data;
    real_store *s = ad__heap_alloc(&tape->allocator, sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->tag = next_tag();
    tape->ext = (ad__tape_ext){s, store_reset, store_free};
    return s;
}

/* Grows an array of `size`-byte items to hold at least need (doubling). */
static bool grow(ad_tape *tape, void **array, size_t *cap, size_t need, size_t size, size_t keep)
{
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    void *p = ad__heap_alloc(&tape->allocator, n * size);
    if (!p)
        return false;
    if (keep)
        memcpy(p, *array, keep * size);
    ad__heap_free(&tape->allocator, *array);
    *array = p;
    *cap = n;
    return true;
}

static ad_real no_memory(ad_tape *tape, size_t n, double value)
{
    ad__fail(tape, AD_ERR_NOMEM, "real: out of memory recording node %zu", n);
    return ad_real_const(value);
}

/* Stores node {da, db, a, b} in the next free slot (the caller made room)
 * and returns its handle. */
static inline ad_real store(real_store *s, double value, uint32_t a, double da, uint32_t b,
                            double db)
{
    real_node *n = &s->nodes[s->n];
    n->da = da;
    n->db = db;
    n->a = a;
    n->b = b;
    ad_real r = {value, (uint32_t)s->n++, s->tag};
    return r;
}

/* The slow half of record: the first node, and growth. */
static ad_real record_grow(ad_tape *tape, double value, uint32_t a, double da, uint32_t b,
                           double db)
{
    real_store *s = store_get(tape);
    if (!s)
        return no_memory(tape, 1, value);
    if (s->n >= MAX_REALS)
        return no_memory(tape, s->n, value);
    if (s->n == 0) {
        if (!grow(tape, (void **)&s->nodes, &s->cap, 2, sizeof *s->nodes, 0))
            return no_memory(tape, s->n, value);
        memset(&s->nodes[0], 0, sizeof s->nodes[0]);
        s->n = 1;
    }
    if (s->n == s->cap &&
        !grow(tape, (void **)&s->nodes, &s->cap, s->n + 1, sizeof *s->nodes, s->n))
        return no_memory(tape, s->n, value);
    return store(s, value, a, da, b, db);
}

/* Appends y = value with partials (da, db) to inputs a, b, unless recording
 * is off or the tape has an error. */
static inline ad_real append(ad_tape *tape, double value, uint32_t a, double da, uint32_t b,
                             double db)
{
    if (!tape || !tape->grad_enabled || tape->status != AD_OK)
        return ad_real_const(value);
    real_store *s = tape->ext.data;
    if (!s || s->n == 0 || s->n == s->cap)
        return record_grow(tape, value, a, da, b, db);
    return store(s, value, a, da, b, db);
}

/* An input from another tape, or from this one before a reset: its node
 * number would index past (or into the wrong part of) the adjoints. */
static ad_real foreign(ad_tape *tape, double value)
{
    if (tape)
        ad__fail(tape, AD_ERR_ARG,
                 "real: an input is a node of another tape, or of this tape before "
                 "ad_tape_reset");
    return ad_real_const(value);
}

/* As append, but a result of constants alone is a constant. The tag check is
 * one compare per input: a constant has node 0 and tag 0. */
static inline ad_real record(ad_tape *tape, double value, ad_real a, double da, ad_real b,
                             double db)
{
    if ((a.node | b.node) == 0)
        return ad_real_const(value);
    const real_store *s = tape ? tape->ext.data : NULL;
    if (!s || ((a.node && a.tag != s->tag) | (b.node && b.tag != s->tag)))
        return foreign(tape, value);
    return append(tape, value, a.node, da, b.node, db);
}

static inline ad_real unary(ad_tape *tape, double value, ad_real x, double dx)
{
    return record(tape, value, x, dx, ad_real_const(0), 0);
}

ad_real ad_real_var(ad_tape *tape, double value)
{
    return append(tape, value, 0, 0, 0, 0);
}

/* ---- Binary ops ------------------------------------------------------------------------ */

ad_real ad_real_add(ad_tape *tape, ad_real a, ad_real b)
{
    return record(tape, a.value + b.value, a, 1, b, 1);
}

ad_real ad_real_sub(ad_tape *tape, ad_real a, ad_real b)
{
    return record(tape, a.value - b.value, a, 1, b, -1);
}

ad_real ad_real_mul(ad_tape *tape, ad_real a, ad_real b)
{
    return record(tape, a.value * b.value, a, b.value, b, a.value);
}

ad_real ad_real_div(ad_tape *tape, ad_real a, ad_real b)
{
    double inv = 1 / b.value;
    double y = a.value * inv;
    return record(tape, a.value / b.value, a, inv, b, -y * inv);
}

// da = b a^(b-1), 0 where b = 0; db = y log a, 0 where a = 0 and b >= 0 (PyTorch)
ad_real ad_real_pow(ad_tape *tape, ad_real a, ad_real b)
{
    double y = pow(a.value, b.value);
    double da = b.value == 0 ? 0 : b.value * pow(a.value, b.value - 1);
    double db = a.value == 0 && b.value >= 0 ? 0 : y * log(a.value);
    return record(tape, y, a, da, b, db);
}

/* An operand's share of the gradient, PyTorch's rule for maximum and minimum
 * (where(a == b, g/2, g).masked_fill_(a loses, 0)): 0 where it loses, 1/2 at
 * a tie, else 1. Where either is NaN no comparison holds, so each gets 1.
 * NaN goes through the value as a + b. */
static double share_unless_less(double a, double b)
{
    return a < b ? 0.0 : a == b ? 0.5 : 1.0;
}

ad_real ad_real_maximum(ad_tape *tape, ad_real a, ad_real b)
{
    double x = a.value, z = b.value;
    double y = (x != x || z != z) ? x + z : (x > z ? x : z);
    return record(tape, y, a, share_unless_less(x, z), b, share_unless_less(z, x));
}

ad_real ad_real_minimum(ad_tape *tape, ad_real a, ad_real b)
{
    double x = a.value, z = b.value;
    double y = (x != x || z != z) ? x + z : (x < z ? x : z);
    return record(tape, y, a, share_unless_less(z, x), b, share_unless_less(x, z));
}

/* ---- Unary ops ------------------------------------------------------------------------- */

ad_real ad_real_neg(ad_tape *tape, ad_real x)
{
    return unary(tape, -x.value, x, -1);
}

ad_real ad_real_exp(ad_tape *tape, ad_real x)
{
    double y = exp(x.value);
    return unary(tape, y, x, y);
}

ad_real ad_real_log(ad_tape *tape, ad_real x)
{
    return unary(tape, log(x.value), x, 1 / x.value);
}

ad_real ad_real_log1p(ad_tape *tape, ad_real x)
{
    return unary(tape, log1p(x.value), x, 1 / (1 + x.value));
}

ad_real ad_real_sqrt(ad_tape *tape, ad_real x)
{
    double y = sqrt(x.value);
    return unary(tape, y, x, 0.5 / y);
}

ad_real ad_real_square(ad_tape *tape, ad_real x)
{
    return unary(tape, x.value * x.value, x, 2 * x.value);
}

ad_real ad_real_sin(ad_tape *tape, ad_real x)
{
    return unary(tape, sin(x.value), x, cos(x.value));
}

ad_real ad_real_cos(ad_tape *tape, ad_real x)
{
    return unary(tape, cos(x.value), x, -sin(x.value));
}

ad_real ad_real_tanh(ad_tape *tape, ad_real x)
{
    double y = tanh(x.value);
    return unary(tape, y, x, 1 - y * y);
}

/* Two forms so that exp never overflows, as the tensor op. */
static double sigmoid(double x)
{
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

ad_real ad_real_sigmoid(ad_tape *tape, ad_real x)
{
    double y = sigmoid(x.value);
    return unary(tape, y, x, y * (1 - y));
}

/* As the tensor op (PyTorch): relu(-0) = -0 and NaN passes, with gradient
 * [not x <= 0]: 0 at both zeros, 1 at NaN. */
ad_real ad_real_relu(ad_tape *tape, ad_real x)
{
    double v = x.value;
    return unary(tape, v < 0 ? 0 : v, x, v <= 0 ? 0 : 1);
}

ad_real ad_real_abs(ad_tape *tape, ad_real x)
{
    double v = x.value;
    return unary(tape, fabs(v), x, v > 0 ? 1 : v < 0 ? -1 : 0);
}

ad_real ad_real_softplus(ad_tape *tape, ad_real x)
{
    double v = x.value;
    return v > 20 ? unary(tape, v, x, 1) : unary(tape, log1p(exp(v)), x, sigmoid(v));
}

ad_real ad_real_pow_scalar(ad_tape *tape, ad_real x, double p)
{
    double dx = p == 0 ? 0 : p * pow(x.value, p - 1);
    return unary(tape, pow(x.value, p), x, dx);
}

/* ---- The reverse sweep ------------------------------------------------------------------ */

ad_status ad_real_backward(ad_tape *tape, ad_real y)
{
    if (!tape)
        return AD_ERR_NULL;
    real_store *s = tape->ext.data;
    /* Until this sweep succeeds every gradient reads 0, not an earlier sweep's. */
    if (s)
        s->n_adjoints = 0;
    if (tape->status != AD_OK)
        return tape->status;
    /* A constant: every gradient is 0, which needs no adjoints (nor an
     * allocation that could fail). */
    if (y.node == 0)
        return AD_OK;
    if (!s || y.node >= s->n || y.tag != s->tag)
        return ad__fail(tape, AD_ERR_ARG,
                        "real_backward: node %u is not on this tape (%zu nodes; reset since?)",
                        (unsigned)y.node, s ? s->n : 0);
    size_t n = (size_t)y.node + 1;
    if (n > s->cap_adjoints &&
        !grow(tape, (void **)&s->adjoints, &s->cap_adjoints, n, sizeof(double), 0))
        return ad__fail(tape, AD_ERR_NOMEM, "real_backward: out of memory for %zu adjoints", n);
    double *restrict adj = s->adjoints;
    const real_node *restrict node = s->nodes;
    memset(adj, 0, n * sizeof *adj);
    s->n_adjoints = n;
    adj[y.node] = 1;
    for (size_t i = y.node; i > 0; i--) {
        double g = adj[i];
        adj[node[i].a] += node[i].da * g;
        adj[node[i].b] += node[i].db * g;
    }
    adj[0] = 0;
    return AD_OK;
}

double ad_real_grad(const ad_tape *tape, ad_real x)
{
    const real_store *s = tape ? tape->ext.data : NULL;
    if (tape && x.node && (!s || x.tag != s->tag))
        return NAN;
    if (!s || x.node == 0 || x.node >= s->n_adjoints)
        return 0;
    return s->adjoints[x.node];
}

size_t ad_real_count(const ad_tape *tape)
{
    const real_store *s = tape ? tape->ext.data : NULL;
    return s && s->n ? s->n - 1 : 0;
}

size_t ad_real_bytes(const ad_tape *tape)
{
    const real_store *s = tape ? tape->ext.data : NULL;
    if (!s)
        return 0;
    return s->cap * sizeof(real_node) + s->cap_adjoints * sizeof(double);
}
