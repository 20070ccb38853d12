/* libFuzzer target: random op programs on one tape.
 *
 * The input is read as a little program, one byte at a time (bytes past the
 * end read as 0, so every input is a program):
 *
 *     byte 0       flags: bit 0 anomaly mode, bit 1 start in no-grad mode,
 *                  bit 2 allow stale handles (after a reset; strict mode
 *                  only, see below), bit 3 allow NULL out-pointers
 *     then         up to MAX_STEPS instructions: an opcode byte (mod N_CODES,
 *                  the enum below) and its operands: slots (a byte mod the
 *                  number of live tensors), dtypes, dims, axes, indices and
 *                  values, each a byte looked up in a small table of edge
 *                  cases (empty dims, 0-d, size 1 for broadcasting, large
 *                  dims whose product is 0 beside a 0, negative and
 *                  out-of-range axes and indices, NaN, infinities, -0, huge
 *                  and tiny values)
 *
 * Instructions make tape and persistent tensors, apply every public op of
 * autodiff.h (with good and bad axes, indices, shapes and dtypes), run
 * ad_backward (seeds, retain and create_graph), ad_grad, ad_vjp, ad_jvp,
 * ad_jacobian, ad_hessian, ad_hvp, ad_checkpoint and gradient hooks, and
 * reset the tape or clear its error in the middle. Each input runs twice,
 * the second time with one allocation (chosen by the input's hash) failing.
 *
 * Invariants, checked with abort() (and by ASan and UBSan):
 *  - an op that returns NULL leaves a non-OK status and a message on the
 *    tape (unless all its inputs were persistent); an errored tape gives
 *    NULL; a tensor returned is well formed (tape, dtype, dims, numel) and
 *    its data readable;
 *  - a failed backward or transform returns the tape's status, with a
 *    message; gradients, tangents and Jacobians returned have the shapes
 *    the documentation promises;
 *  - an op or transform in which an allocation failed does not succeed;
 *  - after ad_tape_clear_error or ad_tape_reset the tape computes
 *    d(x^2 + 3)/dx at 2 right;
 *  - nothing leaks (the allocator's count, and ASan's leak check). */
#include "fuzz_common.h"

#include <math.h>

enum { MAX_STEPS = 48, N_SLOTS = 16, N_PERSISTENT = 4, N_STALE = 8 };

/* Blocks above this fail (the arena grows by doubling blocks, so this caps a
 * tape near 2 MB): tensors of 128K float64 are plenty to find bugs, and
 * bigger ones only make the runs slow (a matmul of 1000 x 1000 matrices
 * takes a minute under the sanitizers). */
#define OPS_MAX_BLOCK ((size_t)1 << 20)

/* ---- Reading the program ------------------------------------------------------ */

typedef struct program {
    const uint8_t *data;
    size_t size, at;
    ad_tape *tape;
    fuzz_allocator *alloc;
    ad_tensor *slot[N_SLOTS];
    size_t n_slots, next_slot;
    ad_tensor *persistent[N_PERSISTENT];
    size_t n_persistent;
    ad_tensor *stale[N_STALE];
    size_t n_stale;
    bool allow_stale, allow_null_out;
    bool lenient;     /* a known finding (see strict) may fail without a message */
    bool no_tape;     /* its outputs are persistent: there is no tape to tell */
    bool nomem_seen;  /* the tape ran out of memory since it was made or reset */
    ad_status before; /* the tape's status before the current instruction */
    size_t failures_before;
} program;

static uint8_t next(program *p)
{
    return p->at < p->size ? p->data[p->at++] : 0;
}

static bool done(const program *p)
{
    return p->at >= p->size;
}

static const int64_t dim_table[] = {
    0, 1, 2, 3, 1, 2, 4, 5, 0, 1, 6, -1, (int64_t)1 << 31, (int64_t)1 << 40, 7, -3};
static const int64_t index_table[] = {0,  1, 2,    -1,        3,         0,     1, 4,
                                      -2, 5, 1000, INT64_MIN, INT64_MAX, -1000, 2, 6};
static const double value_table[] = {
    0.0, -0.0,  1.0,   -1.0,   0.5,  2.0,    3.0, -2.5, 1e-300, 1e300, INFINITY, -INFINITY,
    NAN, 1e-45, 700.0, -700.0, 20.0, 1000.0, 0.1, -0.5, 1e-8,   4.0,   -1e300,   1e-310};

/* AD_FUZZ_STRICT=1 in the environment also checks the classes of findings
 * that are known and left to the engine's owners (docs/fuzzing.md,
 * fuzz/findings/). It requires a message on the tape when a transform is
 * given NULL for its results, when ad_tensor_register_hook is given a tensor
 * that does not require grad, when an op or backward is given a handle that
 * ad_tape_reset made stale, and when ad_grad or ad_backward is given
 * persistent seeds (added to themselves they give NULL: AD_ERR_NOMEM); it
 * requires ad_tensor_create of a shape with a 0 among dims whose product
 * passes 2^60 not to say AD_ERR_NOMEM, and a reshape that returns its input
 * to set no error. And it lets programs do what crashes the engine or upsets
 * UBSan today: dims of 2^31 and 2^40 and lengths of INT64_MAX beside an
 * empty dim, matrix products of more than 4096 batches, handles made stale by
 * ad_tape_reset, float32 tensors through ad_checkpoint, and checkpoints after
 * the tape ran out of memory. */
static bool strict;

/* A dim. The table's 2^31 and 2^40 (beside a 0, a huge shape of no
 * elements) make the engine's products of dims overflow today (matmul's
 * batch strides): outside strict mode they become 4096 and 1000, still
 * beyond the allocator's cap together but not beyond int64. */
static int64_t dim(program *p)
{
    int64_t d = dim_table[next(p) % (sizeof dim_table / sizeof dim_table[0])];
    if (!strict && d > 4096)
        d = d == (int64_t)1 << 31 ? 4096 : 1000;
    return d;
}

static int64_t index_value(program *p)
{
    return index_table[next(p) % (sizeof index_table / sizeof index_table[0])];
}

/* A length for slice_scatter or index_add: an index, but outside strict mode
 * not beyond 4096 (INT64_MAX beside an empty dim makes a shape whose strides
 * overflow: the same finding as the huge dims). */
static int64_t length_value(program *p)
{
    int64_t v = index_value(p);
    return !strict && v > 4096 ? 1000 : v;
}

static double value(program *p)
{
    uint8_t b = next(p);
    if (b < 200)
        return value_table[b % (sizeof value_table / sizeof value_table[0])];
    return (double)(b - 228) / 4.0; /* -7 .. 6.75 */
}

/* An axis in -9..8: mostly in range for small tensors, sometimes not. */
static int axis(program *p)
{
    uint8_t b = next(p);
    return b < 192 ? (int)(b % 5) - 2 : (int)(b % 18) - 9;
}

static ad_dtype dtype(program *p)
{
    return next(p) & 1 ? AD_F64 : AD_F32;
}

/* A shape of 0..4 dims (sometimes 9, one more than allowed). */
static int shape(program *p, int64_t *s)
{
    uint8_t b = next(p);
    int ndim = b < 240 ? b % 5 : 9;
    for (int i = 0; i < ndim; i++)
        s[i] = dim(p);
    return ndim;
}

/* Elements of a shape the target may have to supply: -1 when a dim is
 * negative or the product is large (the call is then made without data). */
static int64_t small_numel(int ndim, const int64_t *s, int64_t limit)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (s[i] < 0 || __builtin_mul_overflow(n, s[i], &n))
            return -1;
    }
    return n <= limit ? n : -1;
}

/* ---- Slots ---------------------------------------------------------------- */

static bool is_persistent(const program *p, const ad_tensor *t)
{
    for (size_t i = 0; i < p->n_persistent; i++)
        if (p->persistent[i] == t)
            return true;
    return false;
}

static bool trace;

static void keep(program *p, ad_tensor *t)
{
    if (!t)
        return;
    if (trace)
        fprintf(stderr, "  keep %p\n", (void *)t);
    if (p->n_slots < N_SLOTS) {
        p->slot[p->n_slots++] = t;
        return;
    }
    /* Replace the slots round-robin, but keep the persistent tensors in. */
    for (size_t tries = 0; tries < N_SLOTS; tries++) {
        size_t i = p->next_slot++ % N_SLOTS;
        if (!is_persistent(p, p->slot[i])) {
            p->slot[i] = t;
            return;
        }
    }
}

static bool is_stale(const program *p, const ad_tensor *t)
{
    for (size_t i = 0; i < p->n_stale; i++)
        if (p->stale[i] == t)
            return true;
    return false;
}

/* A live tensor, for calls after which the target reads the tensor itself. */
static ad_tensor *pick_live(program *p)
{
    uint8_t b = next(p);
    if (!p->n_slots) {
        ad_tensor *t = ad_scalar(p->tape, 1.5);
        if (!t)
            return NULL;
        p->slot[p->n_slots++] = t;
    }
    if (trace)
        fprintf(stderr, "  pick %p\n", (void *)p->slot[b % p->n_slots]);
    return p->slot[b % p->n_slots];
}

/* A tensor to give an op: a live one, now and then (when the program allows
 * it) a handle that ad_tape_reset made stale. */
static ad_tensor *pick(program *p)
{
    if (p->allow_stale && p->n_stale && p->at < p->size && p->data[p->at] >= 250)
        return p->stale[next(p) % p->n_stale];
    return pick_live(p);
}

/* ---- Checks --------------------------------------------------------------- */

static bool allocation_failed(const program *p)
{
    return p->alloc->failures > p->failures_before;
}

/* Where check_tensor's reads go, so that they are not optimised away. */
volatile unsigned fuzz_ops_sink;

/* A tensor is well formed: its fields agree and its data can be read. */
static void check_tensor(const program *p, const ad_tensor *t, const char *what)
{
    ad_tape *tape = ad_tensor_tape(t);
    CHECK(tape == p->tape || (!tape && is_persistent(p, t)), "%s: a tensor of another tape", what);
    int ndim = ad_tensor_ndim(t);
    CHECK(ndim >= 0 && ndim <= AD_MAX_DIMS, "%s: %d dims", what, ndim);
    const int64_t *s = ad_tensor_shape(t);
    CHECK(ndim == 0 || s, "%s: no shape for %d dims", what, ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        CHECK(s[i] >= 0, "%s: dim %d is %lld", what, i, (long long)s[i]);
        CHECK(!__builtin_mul_overflow(n, s[i], &n), "%s: numel overflows", what);
    }
    CHECK(ad_tensor_numel(t) == n, "%s: numel %lld, shape gives %lld", what,
          (long long)ad_tensor_numel(t), (long long)n);
    ad_dtype d = ad_tensor_dtype(t);
    CHECK(d == AD_F32 || d == AD_F64, "%s: dtype %d", what, (int)d);
    if (n) {
        const unsigned char *bytes = ad_tensor_data(t);
        CHECK(bytes, "%s: %lld elements and no data", what, (long long)n);
        /* Touch every 8th byte and the last, for ASan (the sum goes to a
         * volatile so that the reads are kept). */
        unsigned sum = 0;
        size_t size = (size_t)n * ad_dtype_size(d);
        for (size_t i = 0; i < size; i += 8)
            sum += bytes[i];
        fuzz_ops_sink = sum + bytes[size - 1];
    }
}

static bool same_shape(const ad_tensor *a, const ad_tensor *b)
{
    if (ad_tensor_ndim(a) != ad_tensor_ndim(b))
        return false;
    for (int i = 0; i < ad_tensor_ndim(a); i++)
        if (ad_tensor_shape(a)[i] != ad_tensor_shape(b)[i])
            return false;
    return true;
}

/* The tape reports a failure: a status and a message. */
static void check_failed(const program *p, const char *what)
{
    ad_status s = ad_tape_status(p->tape);
    CHECK(s != AD_OK, "%s failed with the tape's status OK%s", what,
          allocation_failed(p) ? " (an allocation failed in it)" : "");
    CHECK(ad_tape_message(p->tape)[0] != '\0', "%s failed (%s) with no message", what,
          ad_status_string(s));
    /* (An allocation that fails need not give the first error: a checkpoint
     * notes it while its function runs, and an error of the function comes
     * first. Only that it is not lost is checked: see result().) */
}

/* The result y of an op on inputs in[0..n): NULL with the tape's error, or a
 * well-formed tensor on an error-free tape. Keeps y in a slot. */
static ad_tensor *result(program *p, ad_tensor *y, size_t n, ad_tensor *const *in, const char *what)
{
    bool all_persistent = n > 0, any_stale = false;
    for (size_t i = 0; i < n; i++) {
        all_persistent &= in[i] && is_persistent(p, in[i]);
        any_stale |= is_stale(p, in[i]);
    }
    if (!y) {
        /* A stale input may be taken for a persistent one (known: see strict). */
        if ((!all_persistent && (!any_stale || strict)) || p->before != AD_OK)
            check_failed(p, what);
        return NULL;
    }
    CHECK(p->before == AD_OK, "%s returned a tensor on a tape with error %s", what,
          ad_status_string(p->before));
    CHECK(ad_tape_status(p->tape) == AD_OK, "%s returned a tensor but set error %s: %s", what,
          ad_status_string(ad_tape_status(p->tape)), ad_tape_message(p->tape));
    /* An op may succeed although an allocation failed: the arena, refused
     * a block as large as all it holds, retries with just what is needed. */
    check_tensor(p, y, what);
    keep(p, y);
    return y;
}

/* A status returned by a backward or transform agrees with the tape. */
static void check_status(program *p, ad_status s, const char *what)
{
    if ((p->lenient && !strict) || p->no_tape) {
        CHECK(s != AD_OK || !p->no_tape, "%s succeeded with persistent outputs", what);
        if (s != AD_OK)
            return;
    }
    if (s == AD_OK) {
        CHECK(ad_tape_status(p->tape) == AD_OK, "%s gave OK, the tape %s", what,
              ad_status_string(ad_tape_status(p->tape)));
        return; /* possibly after a failed allocation the arena retried smaller */
    }
    CHECK(ad_tape_status(p->tape) != AD_OK, "%s returned %s with the tape's status OK", what,
          ad_status_string(s));
    check_failed(p, what);
    CHECK(s == ad_tape_status(p->tape) || p->before != AD_OK, "%s gave %s, the tape says %s: %s",
          what, ad_status_string(s), ad_status_string(ad_tape_status(p->tape)),
          ad_tape_message(p->tape));
}

/* d(x^2 + 3)/dx at 2 is 4, and the value 7: the tape works. */
static void check_usable(program *p, const char *after)
{
    CHECK(ad_tape_status(p->tape) == AD_OK, "after %s the tape says %s", after,
          ad_status_string(ad_tape_status(p->tape)));
    size_t failures = p->alloc->failures;
    bool grad = ad_tape_set_grad_enabled(p->tape, true);
    ad_tensor *x = ad_requires_grad(ad_scalar(p->tape, 2.0));
    ad_tensor *y = ad_add_scalar(ad_mul(x, x), 3.0);
    ad_status s = y ? ad_backward(y, NULL) : ad_tape_status(p->tape);
    ad_tape_set_grad_enabled(p->tape, grad);
    if (p->alloc->failures > failures && s != AD_OK) {
        /* (It may also succeed: the arena retries smaller after a refusal.) */
        CHECK(s == AD_ERR_NOMEM, "after %s, with an allocation failing: %s (%s)", after,
              ad_status_string(s), ad_tape_message(p->tape));
        p->nomem_seen = true;
        ad_tape_clear_error(p->tape);
        return;
    }
    CHECK(s == AD_OK, "after %s the tape fails: %s", after, ad_tape_message(p->tape));
    CHECK(ad_value(y) == 7.0 && ad_grad_value(x) == 4.0, "after %s: y = %g, dy/dx = %g", after,
          ad_value(y), ad_grad_value(x));
}

/* ---- Hooks and checkpointed functions ------------------------------------------- */

static ad_tensor *hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    (void)t;
    switch ((uintptr_t)ctx % 4) {
    case 0:
        return NULL;
    case 1:
        return ad_mul_scalar(grad, 2.0);
    case 2:
        ad_tape_set_error(ad_tensor_tape(grad), AD_ERR_ARG, "fuzz hook: refused");
        return NULL;
    default:
        return ad_sum_all(grad); /* the wrong shape, unless grad has one element */
    }
}

/* (Inputs through ad_tape_use: an op on a persistent input alone gives NULL
 * with no error, which the checkpoint reports only when grad is enabled.) */
static ad_tensor *checkpointed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    uintptr_t mode = (uintptr_t)ctx;
    ad_tensor *y = ad_tanh(ad_tape_use(tape, in[0]));
    if (n > 1)
        y = mode & 1 ? ad_mul(y, in[1]) : ad_add(y, in[1]);
    return mode & 2 ? ad_sum_all(y) : ad_exp(y);
}

/* ---- Instructions ----------------------------------------------------------------- */

typedef ad_tensor *(*unary_fn)(ad_tensor *);
typedef ad_tensor *(*scalar_fn)(ad_tensor *, double);
typedef ad_tensor *(*binary_fn)(ad_tensor *, ad_tensor *);
typedef ad_tensor *(*reduce_fn)(ad_tensor *, int, const int *, bool);
typedef ad_tensor *(*reshape_fn)(ad_tensor *, int, const int64_t *);

static const unary_fn unary_ops[] = {ad_neg,     ad_exp,     ad_log,     ad_log1p,    ad_expm1,
                                     ad_sqrt,    ad_square,  ad_sin,     ad_cos,      ad_tanh,
                                     ad_sigmoid, ad_relu,    ad_abs,     ad_softplus, ad_gelu,
                                     ad_detach,  ad_sum_all, ad_mean_all};
static const scalar_fn scalar_ops[] = {ad_leaky_relu,     ad_pow_scalar,    ad_add_scalar,
                                       ad_sub_scalar,     ad_rsub_scalar,   ad_mul_scalar,
                                       ad_div_scalar,     ad_rdiv_scalar,   ad_rpow_scalar,
                                       ad_maximum_scalar, ad_minimum_scalar};
static const binary_fn binary_ops[] = {ad_add,     ad_sub,     ad_mul, ad_div,   ad_pow,
                                       ad_maximum, ad_minimum, ad_mse_loss, ad_matmul};
static const reduce_fn reduce_ops[] = {ad_sum, ad_mean, ad_max, ad_logsumexp};
static const reshape_fn reshape_ops[] = {ad_reshape, ad_expand, ad_sum_to};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void make_tensor(program *p)
{
    int64_t s[9];
    ad_dtype d = dtype(p);
    int ndim = shape(p, s);
    uint8_t how = next(p);
    int64_t n = small_numel(ndim, s, 64);
    ad_tensor *t;
    if (how % 4 == 0 && n >= 0) {
        double v[64];
        for (int64_t i = 0; i < n; i++)
            v[i] = value(p);
        t = ad_tape_tensor_from_doubles(p->tape, d, ndim, s, v);
    } else if (how % 4 == 1) {
        t = ad_full(p->tape, d, ndim, s, value(p));
    } else if (how % 4 == 2 && ndim == 0) {
        t = ad_scalar_of(p->tape, d, value(p));
    } else {
        t = ad_tape_tensor(p->tape, d, ndim, s, NULL);
    }
    if (!t) {
        if (p->before == AD_OK)
            check_failed(p, "making a tensor");
        return;
    }
    if (how & 0x10)
        t = ad_requires_grad(t);
    if (t && p->before == AD_OK)
        result(p, t, 0, NULL, "making a tensor");
}

static void make_persistent(program *p)
{
    if (p->n_persistent == N_PERSISTENT)
        return;
    int64_t s[9];
    ad_dtype d = dtype(p);
    int ndim = shape(p, s);
    bool requires_grad = next(p) & 1;
    if (small_numel(ndim, s, 1 << 12) < 0)
        return; /* kept small: persistent tensors take no tape's arena */
    ad_tensor *t;
    ad_status st = ad_tensor_create(&t, d, ndim, s, requires_grad);
    if (st != AD_OK) {
        CHECK(!t, "ad_tensor_create failed (%s) with a tensor", ad_status_string(st));
        /* A shape of no elements whose other dims multiply past 2^60 gives
         * AD_ERR_NOMEM though nothing failed (known: see strict). */
        bool huge_empty = false;
        int64_t n = 1;
        for (int i = 0; i < ndim; i++)
            huge_empty |= s[i] && (n > ((int64_t)1 << 60) / s[i] || (n *= s[i]) > (int64_t)1 << 60);
        CHECK(st == AD_ERR_SHAPE ||
                  (st == AD_ERR_NOMEM && (allocation_failed(p) || (huge_empty && !strict))),
              "ad_tensor_create gave %s", ad_status_string(st));
        return;
    }
    for (int64_t i = 0; i < ad_tensor_numel(t) && i < 16; i++)
        CHECK(ad_tensor_set(t, i, value(p)) == AD_OK, "ad_tensor_set");
    CHECK(ad_tensor_set(t, ad_tensor_numel(t), 1.0) == AD_ERR_ARG, "ad_tensor_set out of range");
    p->persistent[p->n_persistent++] = t;
    check_tensor(p, t, "ad_tensor_create");
    keep(p, t);
}

static void reduce(program *p)
{
    ad_tensor *x = pick(p);
    uint8_t b = next(p);
    int n_axes = b % 4, axes[4];
    for (int i = 0; i < n_axes; i++)
        axes[i] = axis(p);
    bool keepdim = b & 0x10;
    ad_tensor *y;
    if (b & 0x20)
        y = ad_var(x, n_axes, n_axes ? axes : NULL, keepdim, (int)(next(p) % 4) - 1);
    else
        y = reduce_ops[(b >> 6) % COUNT(reduce_ops)](x, n_axes, n_axes ? axes : NULL, keepdim);
    result(p, y, 1, &x, "a reduction");
}

static void reshape(program *p)
{
    ad_tensor *x = pick(p);
    int64_t s[9];
    int ndim = shape(p, s);
    uint8_t b = next(p);
    if (b & 0x80 && x) { /* the shape of another tensor, or x's own, so that some succeed */
        ad_tensor *o = b & 0x40 ? pick_live(p) : x;
        if (o && !is_stale(p, o)) {
            ndim = ad_tensor_ndim(o);
            if (ndim)
                memcpy(s, ad_tensor_shape(o), (size_t)ndim * sizeof *s);
        }
    }
    ad_tensor *y = reshape_ops[b % COUNT(reshape_ops)](x, ndim, s);
    /* A reshape of a 0-d tensor to 0-d returns x even when copying the
     * (empty) shape ran out of memory and set the error (known: see strict). */
    if (y && y == x && !strict && p->before == AD_OK && ad_tape_status(p->tape) == AD_ERR_NOMEM)
        return;
    result(p, y, 1, &x, "a reshape");
}

static void permute(program *p)
{
    ad_tensor *x = pick(p);
    uint8_t b = next(p);
    if (b & 1) {
        int a0 = axis(p), a1 = axis(p);
        result(p, ad_transpose(x, a0, a1), 1, &x, "ad_transpose");
        return;
    }
    int perm[AD_MAX_DIMS];
    for (int i = 0; i < AD_MAX_DIMS; i++)
        perm[i] = b & 2 ? (int)(AD_MAX_DIMS - 1 - i) : axis(p);
    if (b & 2 && x && !is_stale(p, x)) /* a valid reversal */
        for (int i = 0; i < ad_tensor_ndim(x); i++)
            perm[i] = ad_tensor_ndim(x) - 1 - i;
    result(p, ad_permute(x, perm), 1, &x, "ad_permute");
}

static void slice(program *p)
{
    ad_tensor *x = pick(p);
    uint8_t b = next(p);
    int ax = axis(p);
    int64_t a = index_value(p), c = b & 1 ? length_value(p) : index_value(p), step = index_value(p);
    ad_tensor *y = b & 1 ? ad_slice_scatter(x, ax, c, a, step) : ad_slice(x, ax, a, c, step);
    result(p, y, 1, &x, b & 1 ? "ad_slice_scatter" : "ad_slice");
}

static void join(program *p)
{
    uint8_t b = next(p);
    size_t n = b % 4; /* 0 is an error too */
    ad_tensor *xs[3];
    for (size_t i = 0; i < n && i < 3; i++)
        xs[i] = pick(p);
    n = n > 3 ? 3 : n;
    int ax = axis(p);
    ad_tensor *y = b & 0x10 ? ad_stack(n, xs, ax) : ad_concat(n, xs, ax);
    if (n == 0) {
        CHECK(!y, "a join of nothing gave a tensor");
        return;
    }
    result(p, y, n, xs, b & 0x10 ? "ad_stack" : "ad_concat");
}

static void index_ops(program *p)
{
    ad_tensor *x = pick(p);
    uint8_t b = next(p);
    int ax = axis(p);
    size_t n = next(p) % 6;
    int64_t index[6];
    for (size_t i = 0; i < n; i++)
        index[i] = index_value(p);
    if (b & 1) {
        int64_t length = length_value(p);
        result(p, ad_index_add(x, ax, length, n, n ? index : NULL), 1, &x, "ad_index_add");
    } else {
        result(p, ad_index_select(x, ax, n, n ? index : NULL), 1, &x, "ad_index_select");
    }
}

static void gather_ops(program *p)
{
    ad_tensor *x = pick(p);
    uint8_t b = next(p);
    int ax = axis(p);
    int64_t s[9];
    int ndim = shape(p, s);
    if (b & 0x80 && x && !is_stale(p, x)) { /* x's own shape */
        ndim = ad_tensor_ndim(x);
        if (ndim)
            memcpy(s, ad_tensor_shape(x), (size_t)ndim * sizeof *s);
    }
    int64_t index[256];
    for (size_t i = 0; i < 256; i++)
        index[i] = b & 0x40 ? (int64_t)(i % 2) : index_value(p);
    if (b & 1) {
        /* scatter_add reads one index per element of src (x). */
        if (x && (is_stale(p, x) || ad_tensor_numel(x) > 256))
            return;
        result(p, ad_scatter_add(x, ax, ndim, s, index), 1, &x, "ad_scatter_add");
    } else {
        /* gather reads one index per element of the index shape. */
        if (small_numel(ndim, s, 256) < 0 && ndim <= AD_MAX_DIMS) {
            bool negative = false;
            for (int i = 0; i < ndim; i++)
                negative |= s[i] < 0;
            if (!negative)
                return;
        }
        result(p, ad_gather(x, ax, ndim, s, index), 1, &x, "ad_gather");
    }
}

static void cross_entropy(program *p)
{
    ad_tensor *x = pick_live(p);
    uint8_t b = next(p);
    size_t n = b & 0x80 && x && ad_tensor_ndim(x) >= 1 && ad_tensor_shape(x)[0] < 16
                   ? (size_t)ad_tensor_shape(x)[0]
                   : b % 5;
    int64_t targets[16];
    for (size_t i = 0; i < n; i++)
        targets[i] = b & 0x40 ? 0 : index_value(p);
    result(p, ad_cross_entropy(x, n, n ? targets : NULL), 1, &x, "ad_cross_entropy");
}

/* Gradient results: each non-NULL and of its input's shape and dtype. */
static void check_grads(program *p, ad_status s, size_t n, ad_tensor *const *like,
                        ad_tensor **grads, const char *what)
{
    check_status(p, s, what);
    if (s != AD_OK || !grads)
        return;
    for (size_t i = 0; i < n; i++) {
        CHECK(grads[i], "%s: result %zu is NULL", what, i);
        check_tensor(p, grads[i], what);
        CHECK(same_shape(grads[i], like[i]) &&
                  ad_tensor_dtype(grads[i]) == ad_tensor_dtype(like[i]),
              "%s: result %zu has another shape or dtype than its tensor", what, i);
        keep(p, grads[i]);
    }
}

static void backward(program *p)
{
    ad_tensor *y = pick(p);
    uint8_t b = next(p);
    ad_backward_opts opts = {NULL, b & 1, b & 2};
    if (b & 4)
        opts.seed = pick(p);
    if (!y)
        return;
    p->no_tape = is_persistent(p, y);
    /* (a persistent seed: see ad_grad in transform()) */
    p->lenient =
        is_stale(p, y) || is_stale(p, opts.seed) || (opts.seed && is_persistent(p, opts.seed));
    ad_status s = ad_backward(y, b & 8 ? &opts : NULL);
    check_status(p, s, "ad_backward");
    if (s != AD_OK)
        return;
    /* Leaves' gradients have their shapes. */
    for (size_t i = 0; i < p->n_slots; i++) {
        ad_tensor *g = ad_tensor_grad(p->slot[i]);
        if (g) {
            /* (a persistent tensor's gradient, also seen through its views,
             * is a persistent tensor of its own) */
            CHECK(!ad_tensor_tape(g) || ad_tensor_tape(g) == p->tape, "a gradient on another tape");
            CHECK(!ad_tensor_tape(g) || !is_persistent(p, p->slot[i]),
                  "a persistent tensor's gradient on a tape");
            CHECK(same_shape(g, p->slot[i]), "a gradient of another shape than its tensor");
            if (ad_tensor_tape(g)) {
                check_tensor(p, g, "ad_tensor_grad");
                keep(p, g);
            }
        }
    }
}

static void transform(program *p)
{
    uint8_t b = next(p);
    size_t n_out = 1 + (b & 1), n_in = 1 + ((b >> 1) & 1);
    ad_tensor *out[2], *in[2], *v[2], *res[4] = {0};
    for (size_t i = 0; i < n_out; i++)
        out[i] = pick_live(p);
    for (size_t i = 0; i < n_in; i++)
        in[i] = pick_live(p);
    uint8_t c = next(p);
    ad_backward_opts opts = {NULL, c & 1, c & 2};
    const ad_backward_opts *o = c & 4 ? &opts : NULL;
    bool null_out = p->lenient = p->allow_null_out && (c & 0x80);
    for (size_t i = 0; i < n_out; i++)
        if (!out[i])
            return;
    for (size_t i = 0; i < n_in; i++)
        if (!in[i])
            return;
    p->no_tape = true;
    for (size_t i = 0; i < n_out; i++)
        p->no_tape &= is_persistent(p, out[i]);
    /* Small enough for one sweep per element. */
    int64_t elements = 0;
    for (size_t i = 0; i < n_out; i++)
        elements += ad_tensor_numel(out[i]);
    for (size_t i = 0; i < n_in; i++)
        elements += ad_tensor_numel(in[i]);
    ad_status s;
    switch ((b >> 2) % 7) {
    case 0: /* ad_grad, seeds NULL or tensors */
    case 1:
        for (size_t i = 0; i < n_out; i++) {
            v[i] = c & 8 ? pick(p) : NULL;
            /* Two persistent seeds of one output add to NULL: AD_ERR_NOMEM
             * with no message (known: see strict). */
            p->lenient |= v[i] && is_persistent(p, v[i]);
        }
        s = (b >> 2) % 7 == 0
                ? ad_grad(n_out, out, c & 8 ? v : NULL, n_in, in, null_out ? NULL : res, o)
                : ad_vjp(n_out, out, c & 8 ? v : NULL, n_in, in, null_out ? NULL : res, o);
        check_grads(p, s, n_in, in, null_out ? NULL : res, "ad_grad/ad_vjp");
        break;
    case 2: /* ad_jvp, tangents of the inputs' shapes or others */
        for (size_t i = 0; i < n_in; i++)
            v[i] = c & 8 ? pick(p) : c & 0x10 ? NULL : ad_ones_like(p->tape, in[i]);
        if (!(c & 8) && !(c & 0x10) && (!v[0] || (n_in > 1 && !v[1])))
            return;
        s = ad_jvp(n_out, out, n_in, in, v, null_out ? NULL : res, o);
        check_grads(p, s, n_out, out, null_out ? NULL : res, "ad_jvp");
        break;
    case 3: /* ad_jacobian */
        if (elements > 24)
            return;
        s = ad_jacobian(n_out, out, n_in, in, null_out ? NULL : res,
                        (ad_jacobian_mode)(next(p) % 4), o);
        check_status(p, s, "ad_jacobian");
        for (size_t i = 0; s == AD_OK && !null_out && i < n_out * n_in; i++) {
            CHECK(res[i], "ad_jacobian: block %zu is NULL", i);
            check_tensor(p, res[i], "ad_jacobian");
            CHECK(ad_tensor_numel(res[i]) ==
                      ad_tensor_numel(out[i / n_in]) * ad_tensor_numel(in[i % n_in]),
                  "ad_jacobian: block %zu has the wrong size", i);
            keep(p, res[i]);
        }
        break;
    case 4: /* ad_hessian */
        p->no_tape = is_persistent(p, out[0]);
        if (elements > 16)
            return;
        s = ad_hessian(out[0], n_in, in, null_out ? NULL : res, (ad_jacobian_mode)(next(p) % 4), o);
        check_status(p, s, "ad_hessian");
        for (size_t i = 0; s == AD_OK && !null_out && i < n_in * n_in; i++) {
            CHECK(res[i], "ad_hessian: block %zu is NULL", i);
            check_tensor(p, res[i], "ad_hessian");
            keep(p, res[i]);
        }
        break;
    case 5: /* ad_hvp */
        p->no_tape = is_persistent(p, out[0]);
        for (size_t i = 0; i < n_in; i++)
            v[i] = c & 8 ? pick(p) : ad_ones_like(p->tape, in[i]);
        if (!v[0] || (n_in > 1 && !v[1]))
            return;
        s = ad_hvp(out[0], n_in, in, v, null_out ? NULL : res, o);
        check_grads(p, s, n_in, in, null_out ? NULL : res, "ad_hvp");
        break;
    default: { /* a gradient hook on an output, then ad_grad through it */
        p->no_tape = is_persistent(p, out[0]);
        ad_hook_id id = 0;
        p->lenient = true; /* AD_ERR_NO_GRAD and AD_ERR_ARG come without a message */
        s = ad_tensor_register_hook(out[0], hook, (void *)(uintptr_t)next(p), &id);
        if (s != AD_OK) /* (registering on an errored tape may succeed: it is no op) */
            check_status(p, s, "ad_tensor_register_hook");
        p->lenient = false;
        if (s != AD_OK)
            return;
        ad_tensor *g = NULL;
        ad_tensor *loss = ad_sum_all(out[0]);
        if (!result(p, loss, 1, out, "ad_sum_all"))
            return;
        s = ad_grad(1, &loss, NULL, 1, in, &g, o);
        check_grads(p, s, 1, in, &g, "ad_grad through a hook");
        if (c & 0x40)
            ad_tensor_remove_hook(out[0], id);
        break;
    }
    }
}

static void checkpoint(program *p)
{
    uint8_t b = next(p);
    /* After a failed block allocation the arena has no current block, and a
     * checkpoint's mark then releases the whole first block, live tensors
     * and all (known: see strict). */
    if (p->nomem_seen && !strict)
        return;
    size_t n = 1 + (b & 1);
    ad_tensor *in[2];
    for (size_t i = 0; i < n; i++) {
        in[i] = pick(p);
        /* The backward of a checkpoint packs float32 data and int64 dims in
         * one block, misaligned (UBSan, today): float64 outside strict mode. */
        if (!strict && in[i] && !is_stale(p, in[i]) && ad_tensor_dtype(in[i]) == AD_F32 &&
            !is_persistent(p, in[i]))
            in[i] = ad_cast(in[i], AD_F64);
    }
    if (!strict && ((in[0] && ad_tensor_dtype(in[0]) == AD_F32) ||
                    (n > 1 && in[1] && ad_tensor_dtype(in[1]) == AD_F32)))
        return;
    result(p, ad_checkpoint(checkpointed, (void *)(uintptr_t)(b >> 1), n, in), n, in,
           "ad_checkpoint");
}

enum {
    OP_MAKE,
    OP_PERSISTENT,
    OP_UNARY,
    OP_SCALAR,
    OP_CAST,
    OP_BINARY,
    OP_MATMUL_T,
    OP_REDUCE,
    OP_RESHAPE,
    OP_PERMUTE,
    OP_SLICE,
    OP_JOIN,
    OP_INDEX,
    OP_GATHER,
    OP_WHERE,
    OP_SOFTMAX,
    OP_CROSS_ENTROPY,
    OP_LIKE,
    OP_USE,
    OP_BACKWARD,
    OP_TRANSFORM,
    OP_CHECKPOINT,
    OP_ZERO_GRAD,
    OP_GET,
    OP_GRAD_MODE,
    OP_RESET,
    OP_CLEAR_ERROR,
    N_CODES
};

/* A matmul loops over every batch even when its matrices are empty: with
 * batch dims of 4096 x 1000 and an empty matrix dim, seconds for no work.
 * Outside strict mode such products are skipped. */
static bool many_batches(const program *p, ad_tensor *const *in)
{
    if (strict)
        return false;
    int64_t batches = 1; /* at least the broadcast batch count */
    for (int k = 0; k < 2; k++) {
        if (!in[k] || is_stale(p, in[k]))
            continue;
        for (int d = 0; d + 2 < ad_tensor_ndim(in[k]); d++)
            if (ad_tensor_shape(in[k])[d] &&
                (__builtin_mul_overflow(batches, ad_tensor_shape(in[k])[d], &batches) ||
                 batches > 4096))
                return true;
    }
    return false;
}

static const char *const code_names[N_CODES] = {
    "make",       "persistent", "unary",         "scalar",    "cast",  "binary",     "matmul_t",
    "reduce",     "reshape",    "permute",       "slice",     "join",  "index",      "gather",
    "where",      "softmax",    "cross_entropy", "like",      "use",   "backward",   "transform",
    "checkpoint", "zero_grad",  "get",           "grad_mode", "reset", "clear_error"};

/* AD_FUZZ_TRACE=1: each instruction and the tape's status after it, and
 * each tensor kept, on stderr (for turning a finding into a small program). */

static void step(program *p)
{
    uint8_t code = next(p) % N_CODES;
    size_t at = p->at;
    p->before = ad_tape_status(p->tape);
    p->failures_before = p->alloc->failures;
    p->lenient = p->no_tape = false;
    switch (code) {
    case OP_MAKE:
        make_tensor(p);
        break;
    case OP_PERSISTENT:
        make_persistent(p);
        break;
    case OP_UNARY: {
        ad_tensor *x = pick(p);
        unary_fn f = unary_ops[next(p) % COUNT(unary_ops)];
        ad_tensor *y = result(p, f(x), 1, &x, "a unary op");
        if (y && !is_stale(p, x) && f != ad_sum_all && f != ad_mean_all)
            CHECK(same_shape(x, y) && ad_tensor_dtype(x) == ad_tensor_dtype(y),
                  "an elementwise op changed the shape or dtype");
        break;
    }
    case OP_SCALAR: {
        ad_tensor *x = pick(p);
        scalar_fn f = scalar_ops[next(p) % COUNT(scalar_ops)];
        ad_tensor *y = result(p, f(x, value(p)), 1, &x, "a tensor-scalar op");
        if (y && !is_stale(p, x))
            CHECK(same_shape(x, y), "a tensor-scalar op changed the shape");
        break;
    }
    case OP_CAST: {
        ad_tensor *x = pick(p);
        ad_dtype d = dtype(p);
        ad_tensor *y = ad_cast(x, d);
        if (y && y == x) { /* the same dtype: x itself, as documented */
            if (!is_stale(p, x))
                CHECK(ad_tensor_dtype(x) == d, "ad_cast to another dtype returned its input");
            break;
        }
        y = result(p, y, 1, &x, "ad_cast");
        if (y && !is_stale(p, x))
            CHECK(ad_tensor_dtype(y) == d && same_shape(x, y), "ad_cast");
        break;
    }
    case OP_BINARY: {
        ad_tensor *in[2] = {pick(p), pick(p)};
        binary_fn f = binary_ops[next(p) % COUNT(binary_ops)];
        if (f == ad_matmul && many_batches(p, in))
            break;
        result(p, f(in[0], in[1]), 2, in, "a binary op");
        break;
    }
    case OP_MATMUL_T: {
        ad_tensor *in[2] = {pick(p), pick(p)};
        uint8_t b = next(p);
        if (many_batches(p, in))
            break;
        result(p, ad_matmul_t(in[0], in[1], b & 1, b & 2), 2, in, "ad_matmul_t");
        break;
    }
    case OP_REDUCE:
        reduce(p);
        break;
    case OP_RESHAPE:
        reshape(p);
        break;
    case OP_PERMUTE:
        permute(p);
        break;
    case OP_SLICE:
        slice(p);
        break;
    case OP_JOIN:
        join(p);
        break;
    case OP_INDEX:
        index_ops(p);
        break;
    case OP_GATHER:
        gather_ops(p);
        break;
    case OP_WHERE: {
        ad_tensor *in[3] = {pick(p), pick(p), pick(p)};
        result(p, ad_where(in[0], in[1], in[2]), 3, in, "ad_where");
        break;
    }
    case OP_SOFTMAX: {
        ad_tensor *x = pick(p);
        int ax = axis(p);
        result(p, next(p) & 1 ? ad_log_softmax(x, ax) : ad_softmax(x, ax), 1, &x, "softmax");
        break;
    }
    case OP_CROSS_ENTROPY:
        cross_entropy(p);
        break;
    case OP_LIKE: {
        ad_tensor *x = pick(p);
        ad_tensor *y = next(p) & 1 ? ad_ones_like(p->tape, x) : ad_zeros_like(p->tape, x);
        if (y && p->before == AD_OK) {
            check_tensor(p, y, "zeros/ones_like");
            keep(p, y);
        }
        break;
    }
    case OP_USE: {
        ad_tensor *x = pick(p);
        ad_tensor *y = ad_tape_use(p->tape, x);
        if (y && p->before == AD_OK) {
            check_tensor(p, y, "ad_tape_use");
            keep(p, y);
        }
        break;
    }
    case OP_BACKWARD:
        backward(p);
        break;
    case OP_TRANSFORM:
        transform(p);
        break;
    case OP_CHECKPOINT:
        checkpoint(p);
        break;
    case OP_ZERO_GRAD:
        ad_zero_grad(pick_live(p));
        break;
    case OP_GET: {
        ad_tensor *x = pick_live(p);
        int64_t i = index_value(p);
        double v = ad_tensor_get(x, i);
        if (x && (i < 0 || i >= ad_tensor_numel(x)))
            CHECK(isnan(v), "ad_tensor_get out of range gave %g", v);
        (void)ad_value(x);
        (void)ad_grad_value(x);
        break;
    }
    case OP_GRAD_MODE:
        ad_tape_set_grad_enabled(p->tape, next(p) & 1);
        break;
    case OP_RESET: {
        ad_tape_reset(p->tape);
        /* Tape handles die; persistent tensors stay. */
        size_t kept = 0;
        for (size_t i = 0; i < p->n_slots; i++) {
            if (is_persistent(p, p->slot[i]))
                p->slot[kept++] = p->slot[i];
            else if (p->n_stale < N_STALE)
                p->stale[p->n_stale++] = p->slot[i];
        }
        p->n_slots = kept;
        p->nomem_seen = false;
        check_usable(p, "ad_tape_reset");
        break;
    }
    case OP_CLEAR_ERROR:
        ad_tape_clear_error(p->tape);
        check_usable(p, "ad_tape_clear_error");
        break;
    }
    p->nomem_seen |= ad_tape_status(p->tape) == AD_ERR_NOMEM;
    if (trace) {
        fprintf(stderr, "%-13s", code_names[code]);
        for (size_t i = at; i < p->at; i++)
            fprintf(stderr, " %3u", p->data[i]);
        fprintf(stderr, "  -> %s %s\n", ad_status_string(ad_tape_status(p->tape)),
                ad_tape_message(p->tape));
    }
}

/* Runs the program with allocation fail_at failing (0: none); returns the
 * number of allocations. */
static size_t run(const uint8_t *data, size_t size, size_t fail_at)
{
    fuzz_allocator c = {.fail_at = fail_at, .max_block = OPS_MAX_BLOCK, .trace = trace};
    ad_allocator a = fuzz_allocator_of(&c);
    ad_set_allocator(&a);
    program p = {.data = data, .size = size, .alloc = &c};
    ad_status s = ad_tape_create(&p.tape);
    if (s != AD_OK) {
        CHECK(s == AD_ERR_NOMEM && c.failures && !p.tape, "ad_tape_create: %s",
              ad_status_string(s));
    } else {
        uint8_t flags = next(&p);
        ad_tape_set_anomaly(p.tape, flags & 1);
        ad_tape_set_grad_enabled(p.tape, !(flags & 2));
        /* Stale handles crash the engine today (ops read the tape pointer of
         * a tensor whose arena memory was reused): only in strict mode. */
        p.allow_stale = (flags & 4) && strict;
        p.allow_null_out = flags & 8;
        for (int i = 0; i < MAX_STEPS && !done(&p); i++)
            step(&p);
        ad_tape_free(p.tape);
    }
    for (size_t i = 0; i < p.n_persistent; i++)
        ad_tensor_free(p.persistent[i]);
    ad_set_allocator(NULL);
    CHECK(c.live == 0, "%ld blocks leaked", c.live);
    return c.allocs;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *s = getenv("AD_FUZZ_STRICT");
    strict = s && *s && strcmp(s, "0") != 0;
    s = getenv("AD_FUZZ_TRACE");
    trace = s && *s && strcmp(s, "0") != 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t allocs = run(data, size, 0);
    if (allocs)
        run(data, size, 1 + (size_t)(fuzz_hash(data, size) >> 8) % allocs);
    return 0;
}
