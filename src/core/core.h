/* Internal definitions shared by the engine's source files. Not installed. */
#ifndef AD_INTERNAL_H
#define AD_INTERNAL_H

#include "autodiff/autodiff.h"
#include "util.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* ---- Op table --------------------------------------------------------------
 * src/core/ops.def lists every op once: AD_OP(name, arity, flags). Each row needs
 * ad__<name>_shape, _forward, _backward and _jvp, defined in the op's family
 * file; a row without one fails at link time. */

enum {
    AD_OPF_NONDIFF = 1,  /* no gradient: results are never recorded (leaf, view, detach) */
    AD_OPF_ALIAS = 2,    /* output shares its input's data: forward sets y->data */
    AD_OPF_ANY_DTYPE = 4, /* also takes int64 and bool tensors (others: float only) */
    AD_OPF_OWN_DTYPES = 8 /* inputs of several dtypes: the shape rule checks them, sets y's */
};

enum {
#define AD_OP(name, arity, flags) AD_OP_##name,
#include "ops.def"
#undef AD_OP
    AD_OP_COUNT
};

/* Computes y->ndim, y->shape (and y->dtype if it differs from src[0]'s) from
 * y's inputs and parameters; reports bad input with ad__fail. */
typedef ad_status (*ad__shape_fn)(ad_tensor *y);
/* Fills y->data from y's inputs. Cannot fail: shape checked everything. */
typedef void (*ad__forward_fn)(ad_tensor *y);
/* Sets gin[i] = dL/d src[i] for each input that requires grad, given gy =
 * dL/dy, using only differentiable ops; leaves gin[i] NULL for the others.
 * Errors are reported on the tape (ops return NULL). */
typedef void (*ad__backward_fn)(ad_tensor *y, ad_tensor *gy, ad_tensor **gin);
/* Forward mode: returns dy = sum_i (dy/d src[i]) t[i] for tangents t[i] of
 * src[i]'s shape and dtype (NULL means zero; at least one is not), built
 * with differentiable ops like a backward rule. A result that broadcasts to
 * y's shape is expanded by the caller (ad__forward_sweep). NULL on error. */
typedef ad_tensor *(*ad__jvp_fn)(ad_tensor *y, ad_tensor *const *t);

typedef struct ad__op {
    const char *name;
    int arity;
    int flags;
    ad__shape_fn shape;
    ad__forward_fn forward;
    ad__backward_fn backward;
    ad__jvp_fn jvp;
} ad__op;

extern const ad__op ad__ops[AD_OP_COUNT];

#define AD_OP(name, arity, flags)                                                                  \
    ad_status ad__##name##_shape(ad_tensor *y);                                                    \
    void ad__##name##_forward(ad_tensor *y);                                                       \
    void ad__##name##_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin);                      \
    ad_tensor *ad__##name##_jvp(ad_tensor *y, ad_tensor *const *t);
#include "ops.def"
#undef AD_OP

/* ---- Tensors ------------------------------------------------------------- */

enum {
    AD_TF_REQUIRES_GRAD = 1, /* gradients flow to or through this tensor */
    AD_TF_RECORDED = 2,      /* has an id on its tape and takes part in backward */
    AD_TF_LEAF = 4,          /* created, not computed: backward accumulates its grad */
    AD_TF_FREED = 8,         /* backward ran through it without retain_graph */
    AD_TF_PERSISTENT = 16,   /* heap tensor outside any tape */
    AD_TF_HOOKED = 32,       /* tape tensor with gradient hooks (tape->hooks) */
    AD_TF_LAST_USE = 64      /* view: the last one a sweep reaches for its persistent tensor */
};

/* Small op parameters live inline in the node; arrays go to the arena. */
typedef union ad__param {
    double f;
    int64_t i;
    void *p;
} ad__param;

#define AD_NPARAM 4

/* The most inputs one node takes (concat and stack of a long sequence's steps). */
#define AD__MAX_INPUTS (1 << 24)

struct ad_tensor {
    void *data;      /* numel elements, contiguous, row-major */
    int64_t *shape;  /* ndim entries; often shared with an input */
    ad_tensor **src; /* nsrc inputs */
    ad_tape *tape;   /* NULL for persistent tensors */
    ad_tensor *grad; /* leaves: accumulated gradient */
    int64_t numel;
    ad__param param[AD_NPARAM];
    uint32_t id;         /* index in tape->nodes when RECORDED */
    uint32_t generation; /* tape generation at creation */
    uint8_t op, dtype, ndim, flags;
    int32_t nsrc; /* at most AD__MAX_INPUTS */
    const ad_allocator *allocator; /* persistent tensors: how to free */
    struct ad__hook *hooks;        /* persistent tensors: accumulate hooks (heap) */
};

/* ---- Hooks ----------------------------------------------------------------- */

typedef struct ad__hook {
    struct ad__hook *next;
    ad_tensor *tensor;
    ad_grad_hook grad_fn;             /* tape tensors (tape->hooks, arena) */
    ad_accumulate_hook accumulate_fn; /* persistent tensors (tensor->hooks, heap) */
    void *ctx;
    ad_hook_id id;
    uint64_t stamp; /* head of a persistent list: the last sweep that marked a view */
} ad__hook;

/* Number of accumulate hooks alive in the process: sweeps look for them only
 * when there are some. */
extern _Atomic size_t ad__accumulate_hooks;

/* Runs t's gradient hooks on g (registration order); returns the gradient to
 * use, NULL on error (on the tape). */
ad_tensor *ad__run_grad_hooks(ad_tensor *t, ad_tensor *g);
/* Runs the accumulate hooks of persistent p. */
void ad__run_accumulate_hooks(ad_tensor *p);
/* Frees the accumulate hooks of a persistent tensor (ad_tensor_free). */
void ad__free_hooks(ad_tensor *p);

/* ---- Anomaly mode ---------------------------------------------------------- */

/* Where a node was made: the tape's location and label when it was recorded. */
typedef struct ad__where {
    const char *file;
    const char *label;
    int line;
} ad__where;

/* Fails with AD_ERR_NONFINITE when t holds a NaN or infinity: "forward" (t is
 * the result of y's op) or "backward" (t is the gradient of y's input k). */
ad_status ad__check_finite(ad_tensor *y, const ad_tensor *t, bool backward, int k);
/* Stores tape->here as where[n_nodes] for the node about to be recorded. */
ad_status ad__record_where(ad_tape *tape);
/* "file:line (label)" of a recorded node into buf, "" when unknown. */
const char *ad__where_str(const ad_tensor *t, char *buf, size_t size);

/* ---- Arena and tape ------------------------------------------------------- */

#define AD__MAX_CHAINS 8

typedef struct ad__block {
    struct ad__block *next;
    size_t size, used;
    /* data follows, aligned */
} ad__block;

/* What a layer above the core keeps per tape without the core knowing its
 * layout (the fast scalars' store, src/real/): reset is called by
 * ad_tape_reset, free by ad_tape_free; both get the tape and data. */
typedef struct ad__tape_ext {
    void *data;
    void (*reset)(ad_tape *tape, void *data);
    void (*free)(ad_tape *tape, void *data);
} ad__tape_ext;

struct ad_tape {
    ad_allocator allocator;
    ad__tape_ext ext; /* used by src/real/ */
    ad__block *first, *current;
    /* Checked mode (ad_tape_set_checked): generation g allocates from chain
     * g % n_chains, so the memory of the last n_chains - 1 generations is
     * never reused and their stale handles still read as stale. first is
     * the current chain's head; chains[] keeps the heads of the others. */
    ad__block *chains[AD__MAX_CHAINS];
    int n_chains, chain;
    size_t reserved, used_before_current;
    ad_tensor **nodes; /* recorded nodes in creation order */
    size_t n_nodes, cap_nodes;
    uint32_t generation;
    bool grad_enabled;
    /* Set by ad_backward (not ad_grad, not create_graph) during its sweep;
     * read only through ad__grad_sink. */
    bool grads_in_place;
    ad_status status;
    char message[512];
    size_t peak; /* most arena bytes in use at once since the last reset */
    /* Each sweep (backward or forward) takes a serial; custom ops stamp the
     * gradients and tangents they collect for their outputs with it, and
     * sweep_serial says which sweep is calling a rule right now. */
    uint64_t serials, sweep_serial;
    ad__hook *hooks; /* gradient hooks of this generation's tensors (arena) */
    /* Anomaly mode: check every value and gradient; where[id] for nodes. */
    bool anomaly;
    /* The node whose backward (or jvp) rule is running, so that anomaly mode
     * blames it for a NaN made by an op inside the rule. */
    ad_tensor *rule_node;
    bool rule_is_jvp;
    /* The backward sweep running now (backward.c's own state), for
     * ad__grad_accumulator; NULL outside sweeps. */
    struct ad__sweep_state *sweep;
    ad__where here;
    ad__where *where; /* where[0..n_where): where nodes were made */
    size_t n_where, cap_where;
    /* While an activation checkpoint runs its function without recording:
     * the persistent tensors that require grad it brings onto the tape. */
    struct ad__collect *collect;
};

/* Persistent tensors collected for a checkpoint (ops.c appends to it). */
typedef struct ad__collect {
    ad_tensor **items;
    size_t n, cap;
    const ad_allocator *allocator;
    bool failed; /* out of memory */
} ad__collect;
void ad__collect_add(ad_tape *tape, ad_tensor *p);

/* A position in the arena, to roll back to: everything allocated after the
 * mark is given back (ad__arena_release), and nodes recorded after it are
 * forgotten. Handles to them become invalid. */
typedef struct ad__mark {
    struct ad__block *block;
    size_t used, used_before, n_nodes;
    /* The id of the tape's last gradient hook (0: none): hooks are appended
     * with increasing ids, so those registered after the mark are the ones
     * with larger ids, a tail of the list living in the given-back arena. */
    ad_hook_id last_hook;
} ad__mark;
ad__mark ad__arena_mark(const ad_tape *tape);
void ad__arena_release(ad_tape *tape, const ad__mark *mark);

void *ad__alloc(ad_tape *tape, size_t size); /* 64-byte aligned; NULL + error on OOM */
void *ad__alloc_zero(ad_tape *tape, size_t size);
/* Heap memory (ad__heap_alloc, ad__malloc and company) is declared in util.h. */

/* Runs fn(ctx, begin, end) over [0, n) in parts on the thread pool
 * (threads.c) when n >= grain and ad_set_num_threads asked for more than
 * one thread, else as fn(ctx, 0, n). fn must only write elements of its own
 * range. Allocates nothing once the workers have started. The grain is where
 * splitting pays: waking a worker costs some 20 us, the time of a
 * memory-bound pass over ~1M floats (which a second core barely speeds up)
 * or of exp over ~30K. */
#define AD__GRAIN_CHEAP ((int64_t)1 << 21)  /* add, mul, relu: memory-bound */
#define AD__GRAIN_COSTLY ((int64_t)1 << 15) /* exp, tanh, pow: libm per element */
typedef void (*ad__range_fn)(void *ctx, int64_t begin, int64_t end);
void ad__parallel_for(int64_t n, int64_t grain, ad__range_fn fn, void *ctx);

/* Records an error on the tape (first one wins) and returns code. */
#define ad__fail ad_tape_set_error

#define AD__SHAPE(t, buf) ad__shape_str((buf), (t)->ndim, (t)->shape)

/*
 * The one way to make an op node: validates inputs (NULL, tapes, dtypes),
 * brings persistent inputs onto the tape as views, fills params, runs the
 * op's shape rule, allocates and computes the value, and records the node if
 * it requires grad. params may be NULL. Returns NULL on error.
 */
ad_tensor *ad__apply(int op, int nsrc, ad_tensor *const *src, const ad__param *params);

/* A zeroed node of op with room for nsrc inputs, on tape's current generation. */
ad_tensor *ad__node_new(ad_tape *tape, int op, int nsrc, ad_dtype dtype);
/* A persistent tensor's view on tape (recorded: its gradient reaches it). */
ad_tensor *ad__view_of(ad_tape *tape, ad_tensor *p, bool recorded);

/* ---- Custom ops (custom.c) ---------------------------------------------------------- */

#include "autodiff/custom.h"

struct ad_custom_op {
    ad_custom_op_def def;
    char name[64]; /* def.name points here */
};

/* Hands the gradient (or, tangent: the forward-mode tangent) g of custom_output
 * node y to its custom node, for the sweep with this serial. */
void ad__custom_collect(ad_tensor *y, ad_tensor *g, uint64_t serial, bool tangent);
/* The user's name of a custom or custom_output node. */
const char *ad__custom_name(const ad_tensor *y);

/* Records t on its tape: an id in creation order, flag RECORDED. */
ad_status ad__record(ad_tape *tape, ad_tensor *t);
/* A fresh, unrecorded tensor on tape with the given shape (copied) and dtype. */
ad_tensor *ad__new(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape);
/* Copies n int64 values into the tape's arena. */
int64_t *ad__copy_i64(ad_tape *tape, const int64_t *v, size_t n);

/* The tape shared by inputs, NULL (no error recorded) if one is NULL. */
ad_tape *ad__tape_of(int n, ad_tensor *const *ts);
/* The first lines of an op of several inputs: their tape, or NULL when one
 * is NULL (an earlier error), when the tape has an error, or when every input
 * is persistent (then the thread's error names op, as ad__no_tape). */
ad_tape *ad__inputs_tape(const char *op, int n, ad_tensor *const *ts);
/* For an op that found no tape (ad__tape_of NULL): when no input is NULL
 * (every one is persistent), records the error as the thread's
 * (ad_thread_status), since no tape can hold it. */
void ad__no_tape(const char *name, int n, ad_tensor *const *ts);
/* Records a caller's mistake that is not an op's: on the tape of ts[0..n)
 * when they have one (and none is NULL), else as the thread's error.
 * Returns code. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
ad_status
ad__misuse(size_t n, ad_tensor *const *ts, ad_status code, const char *format, ...);
/* For a constructor that checks its arguments before ad__apply: x's tape, or
 * NULL when x is NULL (an earlier error), persistent (the thread's error, as
 * ad__no_tape), stale (AD_ERR_FREED on its tape) or on an errored tape. */
ad_tape *ad__input_tape(const ad_tensor *x, const char *op);

/* True for a dtype of the ad_dtype enum (a caller may pass any int). */
bool ad__dtype_valid(int dtype);
/* Normalises a possibly negative axis; returns -1 if out of range. */
int ad__axis(int axis, int ndim);
/* As ad__axis for an axis of x, but an axis out of range also fails on tape
 * with AD_ERR_AXIS: "op: axis 3 out of range for shape [2,3]". */
int ad__check_axis(ad_tape *tape, const char *op, const ad_tensor *x, int axis);
/* True when a and b have one dtype; else fails on tape with AD_ERR_DTYPE:
 * "op: dtypes float32 [2] and float64 [2] differ (use ad_cast)". */
bool ad__same_dtype(ad_tape *tape, const char *op, const ad_tensor *a, const ad_tensor *b);
/* Checks a shape given by a caller: ndim in [0, AD_MAX_DIMS], shape not NULL
 * when ndim > 0, no negative dim, and at most AD__MAX_NUMEL elements
 * (ad__numel); fails on tape naming op. */
ad_status ad__check_shape(ad_tape *tape, const char *op, int ndim, const int64_t *shape);
bool ad__same_shape(const ad_tensor *a, const ad_tensor *b);

/* Internal constant tensors (never recorded), on the tape of like. */
ad_tensor *ad__const_like(const ad_tensor *like, double value);
ad_tensor *ad__scalar_const(const ad_tensor *like, double value); /* 0-d, like's dtype */

/* True for a tape tensor of an earlier generation of its tape (its handle
 * was kept across ad_tape_reset): reliable while the memory it points to has
 * not been reused, which checked mode guarantees (ad_tape_set_checked). */
static inline bool ad__is_stale(const ad_tensor *t)
{
    return t->tape && t->generation != t->tape->generation;
}

/* Reads element i of t as double (slow paths: checks, gradcheck). */
static inline double ad__get(const ad_tensor *t, int64_t i)
{
    switch ((ad_dtype)t->dtype) {
    case AD_F32:
        return ((const float *)t->data)[i];
    case AD_F64:
        return ((const double *)t->data)[i];
    case AD_I64:
        return (double)((const int64_t *)t->data)[i];
    case AD_BOOL:
        return ((const bool *)t->data)[i] ? 1.0 : 0.0;
    }
    return NAN;
}
/* v as an int64 the way torch's cast does it on x86: truncated toward 0, and
 * INT64_MIN for NaN, infinities and values out of range (which C leaves
 * undefined). */
static inline int64_t ad__to_i64(double v)
{
    return v >= -0x1p63 && v < 0x1p63 ? (int64_t)v : INT64_MIN;
}
/* Stores v (converted to t's dtype: rounded, ad__to_i64, or v != 0 for bool,
 * NaN being true as in torch) as element i of t. */
static inline void ad__set(ad_tensor *t, int64_t i, double v)
{
    switch ((ad_dtype)t->dtype) {
    case AD_F32:
        ((float *)t->data)[i] = (float)v;
        break;
    case AD_F64:
        ((double *)t->data)[i] = v;
        break;
    case AD_I64:
        ((int64_t *)t->data)[i] = ad__to_i64(v);
        break;
    case AD_BOOL:
        ((bool *)t->data)[i] = v != 0;
        break;
    }
}
/* True for float32 and float64, the dtypes that can be differentiated. */
static inline bool ad__is_float(int dtype)
{
    switch ((ad_dtype)dtype) {
    case AD_F32:
    case AD_F64:
        return true;
    case AD_I64:
    case AD_BOOL:
        return false;
    }
    return false;
}

/* The reverse sweep shared by ad_backward, ad_grad and the checkpoint. */
typedef struct ad__sweep_args {
    size_t n_out;
    ad_tensor *const *outputs;
    ad_tensor *const *seeds; /* NULL, or one per output (NULL entries mean 1) */
    bool create_graph, retain_graph;
    /* ad_backward: leaves and persistent tensors receive their gradients
     * during the sweep, and accumulate hooks run. */
    bool accumulate;
    /* Nodes with ids below floor are not visited: a gradient that reaches
     * one goes to stop_grads[k] when it is stops[k], and is an error when
     * strict (a checkpointed function that used a tape tensor it was not
     * given), else dropped. */
    uint32_t floor;
    size_t n_stops;
    ad_tensor *const *stops;
    ad_tensor **stop_grads;
    bool strict;
} ad__sweep_args;
/* On success *grads_out[id - floor] is the gradient of node id (NULL: none),
 * for ids up to the largest output id. */
ad_status ad__sweep(ad_tape *tape, const ad__sweep_args *args, ad_tensor ***grads_out);
/* For a backward rule: the grad buffer of the persistent tensor that b views,
 * when the running sweep lets the rule add b's gradient into it directly
 * instead of returning it (ad_backward, unrecorded; then the rule leaves its
 * gin entry NULL), else NULL. A linear layer's weight gradient is then one
 * GEMM with beta = 1 into the buffer, as hand-written code does. */
ad_tensor *ad__grad_sink(const ad_tensor *b);
/* During a backward sweep that records nothing (no create_graph, no anomaly
 * mode): the gradient being summed for y's input j, owned by the sweep (zeros
 * if nothing was summed yet), so that y's rule can add its part into it in
 * place (a slice adds its region only, not a zero-padded copy of the whole
 * input) and leave gin[j] NULL. NULL where that is not allowed; the rule then
 * returns gin[j] as usual. */
ad_tensor *ad__grad_accumulator(ad_tensor *y, int j);
/* Sums the gradients g[id - floor] of the views of persistent p with ids in
 * [floor, max_id]; NULL when none. */
ad_tensor *ad__persistent_grad(ad_tape *tape, ad_tensor **g, uint32_t floor, uint32_t max_id,
                               ad_tensor *p);
/* The forward (tangent) sweep: tangents_out[k] = d outputs[k] given tangents
 * of inputs (NULL entries are zero). Recorded when grad is enabled. */
ad_status ad__forward_sweep(ad_tape *tape, size_t n_out, ad_tensor *const *outputs, size_t n_in,
                            ad_tensor *const *inputs, ad_tensor *const *tangents,
                            ad_tensor **tangents_out);

/* ---- Helpers for jvp rules ------------------------------------------------------ */

/* The rule of an op whose Jacobian is symmetric (elementwise, softmax): the
 * backward rule applied to the tangent. */
ad_tensor *ad__jvp_self_adjoint(ad_tensor *y, ad_tensor *const *t);
/* The rule of an op linear in its one input: the op again, on the tangent. */
ad_tensor *ad__jvp_linear(ad_tensor *y, ad_tensor *const *t);
/* The rule of an op with one output element: sum(backward(y, 1) * t). */
ad_tensor *ad__jvp_scalar(ad_tensor *y, ad_tensor *const *t);
/* y's op applied again with src[i] replaced by x (and y's parameters). */
ad_tensor *ad__reapply(const ad_tensor *y, int i, ad_tensor *x);
/* a + b where either may be NULL (a zero tangent). */
ad_tensor *ad__add_tangents(ad_tensor *a, ad_tensor *b);
/* For ops without a gradient (never recorded, so never asked). */
ad_tensor *ad__jvp_none(ad_tensor *y, ad_tensor *const *t);

#endif
