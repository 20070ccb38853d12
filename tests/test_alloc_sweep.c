/*
 * The failing-allocator sweep: every allocation the library makes goes
 * through the process-wide allocator (ad_set_allocator), and each one, failed
 * in turn, gives AD_ERR_NOMEM with a message where the API has one, leaves
 * nothing behind and changes no destination.
 *
 * How we fail. The process-wide allocator here (sweep_alloc) counts the
 * allocations of an operation and fails number k, for k = 1, 2, ... until a
 * run has no failed allocation; a second pass fails every allocation from k
 * on (running out for good). Each run must give AD_ERR_NOMEM, or succeed with
 * the result of a run without failures: the tape's arena makes up for a
 * failed block by asking for a smaller one. The allocator puts a header on
 * every block it gives, so after each run, once the test has freed what it
 * made, it knows that none is left and that it was given back nothing it did
 * not give.
 *
 * How we see what the sweep cannot fail. An allocation that bypasses the
 * allocator is never failed, so a sweep would pass without reaching it. This
 * executable therefore also defines malloc and friends (as test_steady_state
 * does: the library is linked statically, so its direct calls land here)
 * and, while an operation runs, sorts every call by its caller. A caller in
 * this executable is the library itself (the test's callbacks allocate only
 * through ad_get_allocator): that is a bypass, and a bypass fails the test
 * with where it came from. A caller in a shared object is that object's own
 * business and is allowed: libc's fopen, fdopen, qsort and strerror, zlib's
 * gzopen and inflate, OpenBLAS's buffers. They are counted and listed. Since
 * a strdup called by the library would otherwise pass for libc's own
 * malloc, strdup and strndup are defined here too.
 *
 * The loaders (src/io/) allocate through the process-wide allocator like the
 * rest of the library, so a direct call from them is a failure too.
 *
 * Under AddressSanitizer the sanitizer owns malloc: the test skips (77), as
 * it does when the malloc defined here is not the one called. Valgrind
 * replaces it in the executable too unless told not to:
 *     valgrind --soname-synonyms=somalloc=nouserintercepts --leak-check=full \
 *         build/tests/test_alloc_sweep
 * runs it all, valgrind then watching glibc's malloc underneath.
 */
#define _GNU_SOURCE /* dladdr */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <unistd.h>
#include <zlib.h>

#include "test_util.h"

#include "autodiff/custom.h"
#include "autodiff/layers.h"

#if defined(__SANITIZE_ADDRESS__)
#define INTERPOSE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define INTERPOSE 0
#endif
#endif
#ifndef INTERPOSE
#define INTERPOSE 1
#endif

#if !INTERPOSE

int main(void)
{
    fprintf(stderr, "test_alloc_sweep: skipped: under a sanitizer, whose allocator this test "
                    "cannot replace to see allocations that bypass ad_set_allocator\n");
    return 77;
}

#else

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ==== Calls to malloc and friends, sorted by caller ================================== */

enum { MAX_SITES = 32, SITE_DEPTH = 12, MAX_OBJECTS = 8 };

/* Direct calls from one place in this executable (one return address). */
typedef struct bypass_site {
    const void *caller;
    const char *function; /* "malloc", "free", ... */
    size_t size;          /* of the first call */
    size_t calls;
    int depth;
    void *frames[SITE_DEPTH]; /* the first call's stack */
} bypass_site;

/* Calls made by one shared object (libc, zlib, OpenBLAS): allowed. */
typedef struct object_calls {
    char name[64];
    size_t calls;
} object_calls;

static _Thread_local bool watching; /* an operation runs in this thread */
static _Thread_local bool in_hook;  /* dladdr and backtrace may allocate: no recursion */
static const void *exe_base;        /* where this executable is mapped */
static bypass_site sites[MAX_SITES];
static size_t site_count, bypass_calls, unsited_calls;
static object_calls objects[MAX_OBJECTS];
static size_t object_count, object_calls_total;

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void __libc_free(void *ptr);
void *__libc_memalign(size_t alignment, size_t size);

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path ? path : "?";
}

/* A named function (not inlined), so `break note_call` works in gdb. */
__attribute__((noinline)) static void note_call(const char *function, size_t size,
                                                const void *caller)
{
    if (!watching || in_hook)
        return;
    in_hook = true;
    Dl_info info;
    bool found = dladdr(caller, &info) != 0;
    if (found && info.dli_fbase != exe_base) {
        object_calls_total++;
        const char *name = base_name(info.dli_fname);
        size_t i = 0;
        while (i < object_count && strcmp(objects[i].name, name) != 0)
            i++;
        if (i == object_count && object_count < MAX_OBJECTS)
            snprintf(objects[object_count++].name, sizeof objects[0].name, "%s", name);
        if (i < object_count)
            objects[i].calls++;
    } else {
        bypass_calls++;
        size_t i = 0;
        while (i < site_count && sites[i].caller != caller)
            i++;
        if (i < site_count) {
            sites[i].calls++;
        } else if (site_count < MAX_SITES) {
            bypass_site *s = &sites[site_count++];
            s->caller = caller;
            s->function = function;
            s->size = size;
            s->calls = 1;
            s->depth = backtrace(s->frames, SITE_DEPTH);
        } else {
            unsited_calls++;
        }
    }
    in_hook = false;
}

#define CALLER __builtin_return_address(0)

void *malloc(size_t size)
{
    note_call("malloc", size, CALLER);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    note_call("calloc", count * size, CALLER);
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size)
{
    note_call("realloc", size, CALLER);
    return __libc_realloc(ptr, size);
}

void free(void *ptr)
{
    if (ptr)
        note_call("free", 0, CALLER);
    __libc_free(ptr);
}

void *memalign(size_t alignment, size_t size);
void *memalign(size_t alignment, size_t size)
{
    note_call("memalign", size, CALLER);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    note_call("aligned_alloc", size, CALLER);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
    note_call("posix_memalign", size, CALLER);
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

char *strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    note_call("strndup", len + 1, CALLER);
    char *c = __libc_malloc(len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

char *strdup(const char *s)
{
    size_t len = strlen(s);
    note_call("strdup", len + 1, CALLER);
    char *c = __libc_malloc(len + 1);
    if (c)
        memcpy(c, s, len + 1);
    return c;
}

static void watch_reset(void)
{
    site_count = bypass_calls = unsited_calls = 0;
    object_count = object_calls_total = 0;
}

/* "in ad_idx_load+0x5c": the innermost frame of a site's stack with a name
 * (this executable exports the library's public functions). */
static void site_origin(const bypass_site *s, char *buf, size_t size)
{
    snprintf(buf, size, "at %s+0x%lx", "test_alloc_sweep",
             (unsigned long)((const char *)s->caller - (const char *)exe_base));
    for (int i = 2; i < s->depth; i++) {
        Dl_info info;
        if (dladdr(s->frames[i], &info) && info.dli_sname) {
            size_t at = strlen(buf);
            snprintf(buf + at, size - at, " in %s+0x%lx", info.dli_sname,
                     (unsigned long)((const char *)s->frames[i] - (const char *)info.dli_saddr));
            return;
        }
    }
}

/* One line per bypassing site; with stacks, the first call's (raw addresses
 * for static functions: `addr2line -f -e build/tests/test_alloc_sweep
 * OFFSET` resolves the +0x offsets). */
static void print_bypasses(const char *what, bool stacks)
{
    print_message("%s: %zu call(s) to the C allocator from inside the library, bypassing "
                  "ad_set_allocator:\n",
                  what, bypass_calls);
    for (size_t i = 0; i < site_count; i++) {
        char origin[160];
        site_origin(&sites[i], origin, sizeof origin);
        print_message("  %zu x %s (first size %zu) %s\n", sites[i].calls, sites[i].function,
                      sites[i].size, origin);
        if (stacks && sites[i].depth > 2) {
            fflush(stdout);
            fflush(stderr);
            backtrace_symbols_fd(sites[i].frames + 2, sites[i].depth - 2, STDOUT_FILENO);
        }
    }
    if (unsited_calls)
        print_message("  %zu more from other places\n", unsited_calls);
}

/* "libc.so.6 x3, libz.so.1 x4", or "none". */
static const char *object_summary(char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < object_count && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s x%zu", i ? ", " : "", objects[i].name,
                               objects[i].calls);
    return object_count ? buf : "none";
}

/* ==== The process-wide allocator of the sweep ========================================== */

typedef struct sweep_heap {
    bool armed;         /* counting and failing: only while an operation runs */
    size_t allocs;      /* armed allocations since the last reset */
    size_t fail_at;     /* 1-based; 0 means never */
    bool fail_after;    /* and every armed allocation after it */
    size_t failures;    /* allocations failed on purpose */
    long live;          /* blocks given and not given back, armed or not */
    size_t stray_frees; /* frees of blocks it never gave (or gave back twice) */
} sweep_heap;

static sweep_heap heap;

enum { BLOCK_HEAD = 16 };
static const uint64_t BLOCK_LIVE = 0x6c697665626c6f63u, BLOCK_DEAD = 0x646561646465616bu;

static void *sweep_alloc(size_t size, void *ctx)
{
    sweep_heap *h = ctx;
    if (h->armed) {
        h->allocs++;
        if (h->fail_at && (h->allocs == h->fail_at || (h->fail_after && h->allocs > h->fail_at))) {
            h->failures++;
            return NULL;
        }
    }
    if (size > SIZE_MAX - BLOCK_HEAD)
        return NULL;
    /* glibc's own malloc: not a call of the library's, nor counted. */
    uint64_t *p = __libc_malloc(size + BLOCK_HEAD);
    if (!p)
        return NULL;
    p[0] = BLOCK_LIVE;
    p[1] = size;
    h->live++;
    return (unsigned char *)p + BLOCK_HEAD;
}

static void sweep_free(void *ptr, void *ctx)
{
    sweep_heap *h = ctx;
    if (!ptr)
        return;
    uint64_t *p = (uint64_t *)(void *)((unsigned char *)ptr - BLOCK_HEAD);
    if (p[0] != BLOCK_LIVE) {
        h->stray_frees++; /* not ours: leak it rather than corrupt the heap */
        return;
    }
    p[0] = BLOCK_DEAD;
    h->live--;
    __libc_free(p);
}

static const ad_allocator sweep_allocator = {sweep_alloc, sweep_free, &heap};

/* Around each operation: from here to disarm, allocations count and fail,
 * and direct calls to malloc are watched. */
static void arm(void)
{
    heap.armed = true;
    watching = true;
}

static void disarm(void)
{
    watching = false;
    heap.armed = false;
}

/* Each test allocates everything through the sweep's allocator. */
static int use_sweep_allocator(void **state)
{
    (void)state;
    memset(&heap, 0, sizeof heap);
    watch_reset();
    ad_set_allocator(&sweep_allocator);
    return 0;
}

/* A failed check may leave blocks behind; the next test starts clean anyway. */
static int restore_malloc(void **state)
{
    (void)state;
    disarm();
    ad_set_allocator(NULL);
    return 0;
}

#define SWEEP_TEST(f) cmocka_unit_test_setup_teardown(f, use_sweep_allocator, restore_malloc)

/* ==== The driver ======================================================================== */

/* What one run of an operation gave: its first error, which call gave it,
 * and that call's message ("" where the API has none). */
typedef struct outcome {
    ad_status status;
    const char *call;
    bool has_message;
    char message[512];
} outcome;

/* Records the first failure of an operation; returns true when st is one. */
static bool failed(outcome *o, ad_status st, const char *call, const char *message)
{
    if (st == AD_OK)
        return false;
    if (o->status == AD_OK) {
        o->status = st;
        o->call = call;
        o->has_message = message != NULL;
        snprintf(o->message, sizeof o->message, "%s", message ? message : "");
    }
    return true;
}

/* An operation: sets up unarmed, runs armed, checks its result (on success)
 * or that no destination changed (on failure) unarmed, frees everything. */
typedef void (*operation)(outcome *o);

/* True during the first run of a sweep, in which nothing fails: operations
 * whose result can be compared keep it as the reference. */
static bool recording_reference;

/* Runs op with allocation k failing (with fail_after, every one from k on)
 * for k = 1, 2, ... until a run has no failed allocation; checks each run
 * and returns the number of allocations of a run without failures. */
static size_t sweep_pass(const char *what, operation op, bool fail_after)
{
    const char *mode = fail_after ? " and every later one" : "";
    for (size_t k = 1;; k++) {
        heap.allocs = heap.failures = 0;
        heap.fail_at = k;
        heap.fail_after = fail_after;
        outcome o = {.status = AD_OK};
        op(&o);
        heap.fail_at = 0;
        if (heap.live != 0)
            fail_msg("%s: allocation %zu%s failed: %ld block(s) not given back", what, k, mode,
                     heap.live);
        if (heap.stray_frees != 0)
            fail_msg("%s: allocation %zu%s failed: %zu block(s) given back that the allocator "
                     "never gave",
                     what, k, mode, heap.stray_frees);
        if (heap.failures == 0) {
            if (o.status != AD_OK)
                fail_msg("%s: %s gave %s (%s) with no allocation failing", what, o.call,
                         ad_status_string(o.status), o.message);
            return heap.allocs;
        }
        if (o.status == AD_OK) {
            /* Made up for (the arena's smaller block): the operation
             * compared its result with the reference. Not when every
             * later allocation fails as well. */
            if (fail_after)
                fail_msg("%s: succeeded although allocation %zu and every later one failed", what,
                         k);
            continue;
        }
        if (o.status != AD_ERR_NOMEM)
            fail_msg("%s: allocation %zu%s failed: %s gave %s (%s), expected out of memory", what,
                     k, mode, o.call, ad_status_string(o.status), o.message);
        if (o.has_message && !o.message[0])
            fail_msg("%s: allocation %zu%s failed: %s gave out of memory with no message", what, k,
                     mode, o.call);
    }
}

/* The whole sweep of an operation: a reference run, then both passes, then
 * the direct calls seen meanwhile (each one a failure). */
static void sweep(const char *what, operation op)
{
    watch_reset();
    heap.allocs = heap.failures = heap.fail_at = 0;
    recording_reference = true;
    outcome ref = {.status = AD_OK};
    op(&ref);
    recording_reference = false;
    if (ref.status != AD_OK)
        fail_msg("%s: %s failed with nothing failing: %s (%s)", what, ref.call,
                 ad_status_string(ref.status), ref.message);
    if (heap.live != 0 || heap.stray_frees != 0) {
        if (bypass_calls)
            print_bypasses(what, true); /* a block from malloc freed through the allocator? */
        fail_msg("%s, nothing failing: %ld block(s) not given back, %zu given back that the "
                 "allocator never gave",
                 what, heap.live, heap.stray_frees);
    }
    size_t n = heap.allocs;

    size_t once = sweep_pass(what, op, false);
    size_t for_good = sweep_pass(what, op, true);
    if (once != n || for_good != n)
        fail_msg("%s: %zu allocations, then %zu and %zu: the operation is not deterministic", what,
                 n, once, for_good);
    char objects_seen[256];
    print_message("%s: %zu allocation points, each failed alone and for good: out of memory, "
                  "nothing left behind (calls from shared objects in all runs, allowed: %s)\n",
                  what, n, object_summary(objects_seen, sizeof objects_seen));
    if (bypass_calls == 0)
        return;
    print_bypasses(what, true);
    fail_msg("%s: the library allocated without the process-wide allocator", what);
}

/* ==== The model: conv2d, maxpool, flatten, linear, layer_norm, tanh, dropout, a user
 * module with a child, linear; float64, input [2, 1, 6, 6], 3 classes ==================== */

enum { BATCH = 2, SIDE = 6, HIDDEN = 8, CLASSES = 3, N_PARAMS = 11 };

/* The user's module: y = x + scale * inner(x), parameter "scale" [1] and child
 * "inner". Its context comes from the process-wide allocator, as a user's
 * should when they want it counted with the rest. */
typedef struct residual {
    double initial_scale;
} residual;

static void residual_free(void *context)
{
    ad_allocator a = ad_get_allocator();
    if (a.free)
        a.free(context, a.ctx);
    else
        free(context);
}

static ad_tensor *residual_forward(ad_module_call *call, ad_tensor *x)
{
    ad_tensor *inner = ad_module_forward_child(call, 0, x);
    return ad_add(x, ad_mul(ad_module_call_param(call, 0), inner));
}

static const ad_module_type residual_type = {
    .name = "residual", .forward = residual_forward, .free_context = residual_free};

/* Takes inner, also on error. */
static ad_status residual_create(ad_module **out, ad_module *inner)
{
    *out = NULL;
    ad_allocator a = ad_get_allocator();
    residual *r = a.alloc ? a.alloc(sizeof *r, a.ctx) : malloc(sizeof *r);
    if (!r) {
        ad_nn_free(inner);
        return AD_ERR_NOMEM;
    }
    r->initial_scale = 0.5;
    ad_tensor *scale = NULL;
    ad_status st = ad_module_create(out, &residual_type, r); /* r is the module's now */
    if (st == AD_OK)
        st = ad_module_create_param(*out, "scale", AD_F64, 1, (int64_t[]){1}, &scale);
    if (st == AD_OK)
        st = ad_tensor_set(scale, 0, r->initial_scale);
    if (st == AD_OK)
        st = ad_module_add_child(*out, "inner", inner);
    if (st != AD_OK) {
        ad_nn_free(inner); /* does nothing once it has a parent */
        ad_nn_free(*out);
        *out = NULL;
    }
    return st;
}

/* The model, all of it or nothing. */
static ad_status model_create(ad_module **out, uint64_t seed)
{
    ad_rng rng;
    ad_rng_seed(&rng, seed);
    ad_module *m[9] = {NULL}, *inner = NULL;
    ad_status st = ad_nn_conv2d(&m[0], 1, 2, 3, 1, 1, AD_F64, &rng); /* [2,2,6,6] */
    if (st == AD_OK)
        st = ad_nn_maxpool2d(&m[1], 2, 2, 0); /* [2,2,3,3] */
    if (st == AD_OK)
        st = ad_nn_flatten(&m[2]); /* [2,18] */
    if (st == AD_OK)
        st = ad_nn_linear(&m[3], 18, HIDDEN, true, AD_F64, &rng);
    if (st == AD_OK)
        st = ad_nn_layer_norm(&m[4], HIDDEN, AD_NORM_EPS, AD_F64);
    if (st == AD_OK)
        st = ad_nn_activation(&m[5], AD_ACT_TANH);
    if (st == AD_OK)
        st = ad_nn_dropout(&m[6], 0.25, seed);
    if (st == AD_OK && (st = ad_nn_linear(&inner, HIDDEN, HIDDEN, true, AD_F64, &rng)) == AD_OK)
        st = residual_create(&m[7], inner);
    if (st == AD_OK)
        st = ad_nn_linear(&m[8], HIDDEN, CLASSES, true, AD_F64, &rng);
    if (st == AD_OK)
        return ad_nn_sequential(out, COUNT(m), m); /* takes the children, also on error */
    for (size_t i = 0; i < COUNT(m); i++)
        ad_nn_free(m[i]);
    *out = NULL;
    return st;
}

static ad_module *model_made(uint64_t seed)
{
    ad_module *m = NULL;
    assert_int_equal(model_create(&m, seed), AD_OK);
    return m;
}

typedef enum { SGD_MOMENTUM, ADAM, ADAMW } optim_kind;

static ad_status optimizer_create(ad_optim **out, ad_module *model, optim_kind kind)
{
    if (kind == SGD_MOMENTUM) {
        ad_sgd_config c = ad_sgd_defaults();
        c.momentum = 0.9;
        return ad_optim_sgd(out, model, &c);
    }
    return kind == ADAM ? ad_optim_adam(out, model, NULL) : ad_optim_adamw(out, model, NULL);
}

static ad_optim *optimizer_made(ad_module *model, optim_kind kind)
{
    ad_optim *opt = NULL;
    assert_int_equal(optimizer_create(&opt, model, kind), AD_OK);
    return opt;
}

/* Every value (and, with grads, every gradient) of tensors[0..n), in order. */
enum { MAX_VALUES = 2048 };
typedef struct values {
    size_t n;
    double v[MAX_VALUES];
} values;

static void values_of(values *out, size_t n, ad_tensor *const *tensors, bool grads)
{
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        ad_tensor *t = tensors[i];
        for (int with_grad = 0; with_grad <= (int)grads; with_grad++) {
            const ad_tensor *u = with_grad ? ad_tensor_grad(t) : t;
            int64_t numel = ad_tensor_numel(t);
            assert_true(out->n + (size_t)numel <= MAX_VALUES);
            for (int64_t e = 0; e < numel; e++)
                out->v[out->n++] = u ? ad_tensor_get(u, e) : 0.0;
        }
    }
}

static void model_values(values *out, const ad_module *m, bool grads)
{
    ad_nn_param p[N_PARAMS];
    ad_tensor *t[N_PARAMS];
    assert_int_equal(ad_nn_params(m, p, N_PARAMS), N_PARAMS);
    for (size_t i = 0; i < N_PARAMS; i++)
        t[i] = p[i].tensor;
    values_of(out, N_PARAMS, t, grads);
}

/* Bit for bit: a failed operation must not have touched them. */
static void assert_same_values(const char *what, const values *a, const values *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(&a->v[i], &b->v[i], sizeof a->v[i]) != 0)
            fail_msg("%s: value %zu is %.17g, was %.17g", what, i, b->v[i], a->v[i]);
}

/* The optimizer's state tensors and their names (ad_optim_state). */
enum { MAX_STATE = 2 * N_PARAMS + 1 };
typedef struct optim_state {
    size_t n;
    const char *names[MAX_STATE];
    ad_tensor *tensors[MAX_STATE];
} optim_state;

static void state_of(optim_state *s, const ad_optim *opt)
{
    ad_nn_param p[MAX_STATE];
    s->n = ad_optim_state(opt, p, MAX_STATE);
    assert_true(s->n <= MAX_STATE);
    for (size_t i = 0; i < s->n; i++) {
        s->names[i] = p[i].name;
        s->tensors[i] = p[i].tensor;
    }
}

/* The batch: a persistent input and its targets. */
typedef struct batch {
    ad_tensor *x; /* [BATCH, 1, SIDE, SIDE] */
    int64_t targets[BATCH];
} batch;

static void batch_made(batch *b)
{
    assert_int_equal(ad_tensor_create(&b->x, AD_F64, 4, (int64_t[]){BATCH, 1, SIDE, SIDE}, false),
                     AD_OK);
    uint64_t s = 99;
    for (int64_t i = 0; i < ad_tensor_numel(b->x); i++)
        assert_int_equal(ad_tensor_set(b->x, i, test_uniform(&s, -1, 1)), AD_OK);
    b->targets[0] = 2;
    b->targets[1] = 0;
}

/* forward, loss, backward and an optimizer step on tape; the first error. */
static ad_status training_step(ad_tape *tape, ad_module *model, ad_optim *opt, const batch *b,
                               double *loss_value)
{
    ad_tensor *logits = ad_nn_forward(model, tape, b->x);
    ad_tensor *loss = ad_nn_cross_entropy(logits, BATCH, b->targets, 0.1, AD_REDUCE_MEAN);
    ad_optim_zero_grad(opt);
    ad_status st = ad_backward(loss, NULL);
    if (st == AD_ERR_NULL && ad_tape_status(tape) != AD_OK)
        st = ad_tape_status(tape); /* an op before the loss failed: the tape says which */
    if (st == AD_OK) {
        *loss_value = ad_value(loss);
        ad_optim_step(opt);
    }
    return st;
}

/* ==== Building ========================================================================== */

static void build_model(outcome *o)
{
    ad_module *model = NULL;
    arm();
    ad_status st = model_create(&model, 11);
    disarm();
    if (failed(o, st, "building the model", NULL)) {
        assert_null(model);
        return;
    }
    ad_nn_param p[N_PARAMS + 1];
    assert_int_equal(ad_nn_params(model, p, COUNT(p)), N_PARAMS);
    assert_string_equal(p[6].name, "7.scale");
    assert_string_equal(p[7].name, "7.inner.weight");
    ad_nn_free(model);
}

static void test_building_a_model_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    sweep("model (conv2d, maxpool, flatten, linear, layer_norm, tanh, dropout, user module "
          "with a child)",
          build_model);
}

/* An optimizer made for a model: on failure, no optimizer and the model's
 * parameters and gradients as they were. */
static void build_optimizer(outcome *o, optim_kind kind)
{
    ad_module *model = model_made(11);
    values before, after;
    model_values(&before, model, true);
    ad_optim *opt = NULL;
    arm();
    ad_status st = optimizer_create(&opt, model, kind);
    disarm();
    model_values(&after, model, true);
    assert_same_values("optimizer construction", &before, &after);
    if (!failed(o, st, "making the optimizer", NULL)) {
        optim_state s;
        state_of(&s, opt);
        assert_int_equal(s.n, (kind == SGD_MOMENTUM ? 1 : 2) * N_PARAMS + 1);
    } else {
        assert_null(opt);
    }
    ad_optim_free(opt);
    ad_nn_free(model);
}

static void build_sgd(outcome *o)
{
    build_optimizer(o, SGD_MOMENTUM);
}

static void build_adam(outcome *o)
{
    build_optimizer(o, ADAM);
}

static void build_adamw(outcome *o)
{
    build_optimizer(o, ADAMW);
}

static void test_building_each_optimizer_fails_cleanly_and_leaves_the_model_alone(void **state)
{
    (void)state;
    sweep("SGD with momentum", build_sgd);
    sweep("Adam", build_adam);
    sweep("AdamW", build_adamw);
}

/* ==== A training step on a fresh tape ============================================== */

static values step_reference;
static double step_reference_loss;

static void train_one_step(outcome *o)
{
    ad_module *model = model_made(11);
    ad_optim *opt = optimizer_made(model, ADAM);
    batch b;
    batch_made(&b);
    values before, after;
    model_values(&before, model, false);
    double loss = 0;

    arm();
    ad_tape *tape = NULL;
    ad_status st = ad_tape_create(&tape);
    bool tape_failed = failed(o, st, "ad_tape_create", NULL);
    if (!tape_failed)
        st = training_step(tape, model, opt, &b, &loss);
    disarm();

    model_values(&after, model, false);
    if (tape_failed || failed(o, st, "the training step", ad_tape_message(tape))) {
        /* No step: the parameters are as they were (gradients may hold part
         * of the backward, as documented). */
        assert_same_values("parameters after a failed step", &before, &after);
    } else if (recording_reference) {
        step_reference = after;
        step_reference_loss = loss;
    } else {
        assert_true(memcmp(&loss, &step_reference_loss, sizeof loss) == 0);
        assert_same_values("parameters after a step", &step_reference, &after);
    }
    ad_tape_free(tape);
    ad_optim_free(opt);
    ad_nn_free(model);
    ad_tensor_free(b.x);
}

static void test_a_training_step_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    sweep("training step (tape, forward, cross-entropy, backward, Adam step)", train_one_step);
}

/* ==== Checkpoints: models and optimizer state ======================================= */

/* What the loaders' probes need: a file name in the test's directory. */
static const char *temp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", temp_dir, name);
    return buf;
}

/* The bytes of a file (at most size); returns how many. */
static size_t file_bytes(const char *path, unsigned char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, size, f);
    assert_true(n < size); /* all of it */
    fclose(f);
    return n;
}

/* The number of entries in the test's directory: a failed save must not
 * leave its temporary file behind. */
static int files_in_temp_dir(void)
{
    DIR *d = opendir(temp_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static unsigned char old_file[64 * 1024], new_file[64 * 1024];

static void save_model(outcome *o)
{
    char path[300], err[256] = "";
    temp_path(path, sizeof path, "model.safetensors");
    ad_module *old = model_made(12), *model = model_made(11);
    assert_int_equal(ad_nn_save(old, path, NULL, 0), AD_OK);
    size_t old_size = file_bytes(path, old_file, sizeof old_file);
    int files = files_in_temp_dir();

    arm();
    ad_status st = ad_nn_save(model, path, err, sizeof err);
    disarm();

    assert_int_equal(files_in_temp_dir(), files);
    size_t size = file_bytes(path, new_file, sizeof new_file);
    if (failed(o, st, "ad_nn_save", err)) {
        /* The file at path is the old one, byte for byte. */
        assert_int_equal(size, old_size);
        assert_memory_equal(new_file, old_file, size);
    } else {
        assert_string_equal(err, "");
        values want, got;
        model_values(&want, model, false);
        assert_int_equal(ad_nn_load(old, path, NULL, 0), AD_OK);
        model_values(&got, old, false);
        assert_same_values("the saved model", &want, &got);
    }
    ad_nn_free(old);
    ad_nn_free(model);
    remove(path);
}

static void test_saving_a_model_fails_cleanly_and_keeps_the_old_file(void **state)
{
    (void)state;
    sweep("ad_nn_save", save_model);
}

static void load_model(outcome *o)
{
    char path[300], err[256] = "";
    temp_path(path, sizeof path, "model.safetensors");
    ad_module *saved = model_made(11), *model = model_made(12);
    assert_int_equal(ad_nn_save(saved, path, NULL, 0), AD_OK);
    values before, after;
    model_values(&before, model, true);

    arm();
    ad_status st = ad_nn_load(model, path, err, sizeof err);
    disarm();

    model_values(&after, model, true);
    if (failed(o, st, "ad_nn_load", err)) {
        assert_same_values("parameters after a failed load", &before, &after);
    } else {
        values want;
        model_values(&want, saved, true);
        assert_same_values("the loaded model", &want, &after);
    }
    ad_nn_free(saved);
    ad_nn_free(model);
    remove(path);
}

static void test_loading_a_model_fails_cleanly_and_leaves_its_parameters_alone(void **state)
{
    (void)state;
    sweep("ad_nn_load", load_model);
}

/* A model and an Adam optimizer after one step, so that its state is not zero. */
typedef struct trained {
    ad_module *model;
    ad_optim *opt;
    optim_state state;
} trained;

static void trained_made(trained *t, uint64_t seed, bool step)
{
    t->model = model_made(seed);
    t->opt = optimizer_made(t->model, ADAM);
    if (step) {
        batch b;
        batch_made(&b);
        ad_tape *tape = test_tape();
        double loss;
        assert_int_equal(training_step(tape, t->model, t->opt, &b, &loss), AD_OK);
        ad_tape_free(tape);
        ad_tensor_free(b.x);
    }
    state_of(&t->state, t->opt);
}

static void trained_free(trained *t)
{
    ad_optim_free(t->opt);
    ad_nn_free(t->model);
}

static void save_optimizer_state(outcome *o)
{
    char path[300], err[256] = "";
    temp_path(path, sizeof path, "optimizer.safetensors");
    trained fresh, stepped;
    trained_made(&fresh, 11, false);
    trained_made(&stepped, 11, true);
    assert_int_equal(
        ad_safetensors_save(path, fresh.state.n, fresh.state.names, fresh.state.tensors, NULL, 0),
        AD_OK);
    size_t old_size = file_bytes(path, old_file, sizeof old_file);
    int files = files_in_temp_dir();

    arm();
    ad_status st = ad_safetensors_save(path, stepped.state.n, stepped.state.names,
                                       stepped.state.tensors, err, sizeof err);
    disarm();

    assert_int_equal(files_in_temp_dir(), files);
    size_t size = file_bytes(path, new_file, sizeof new_file);
    if (failed(o, st, "ad_safetensors_save", err)) {
        assert_int_equal(size, old_size);
        assert_memory_equal(new_file, old_file, size);
    } else {
        assert_string_equal(err, "");
        values want, got;
        values_of(&want, stepped.state.n, stepped.state.tensors, false);
        assert_int_equal(ad_safetensors_load(path, fresh.state.n, fresh.state.names,
                                             fresh.state.tensors, NULL, 0),
                         AD_OK);
        values_of(&got, fresh.state.n, fresh.state.tensors, false);
        assert_same_values("the saved optimizer state", &want, &got);
    }
    trained_free(&fresh);
    trained_free(&stepped);
    remove(path);
}

static void test_saving_optimizer_state_fails_cleanly_and_keeps_the_old_file(void **state)
{
    (void)state;
    sweep("optimizer state, ad_safetensors_save", save_optimizer_state);
}

static void load_optimizer_state(outcome *o)
{
    char path[300], err[256] = "";
    temp_path(path, sizeof path, "optimizer.safetensors");
    trained fresh, stepped;
    trained_made(&fresh, 11, false);
    trained_made(&stepped, 11, true);
    assert_int_equal(ad_safetensors_save(path, stepped.state.n, stepped.state.names,
                                         stepped.state.tensors, NULL, 0),
                     AD_OK);
    values before, after;
    values_of(&before, fresh.state.n, fresh.state.tensors, false);

    arm();
    ad_status st = ad_safetensors_load(path, fresh.state.n, fresh.state.names, fresh.state.tensors,
                                       err, sizeof err);
    disarm();

    values_of(&after, fresh.state.n, fresh.state.tensors, false);
    if (failed(o, st, "ad_safetensors_load", err)) {
        assert_same_values("optimizer state after a failed load", &before, &after);
    } else {
        values want;
        values_of(&want, stepped.state.n, stepped.state.tensors, false);
        assert_same_values("the loaded optimizer state", &want, &after);
    }
    trained_free(&fresh);
    trained_free(&stepped);
    remove(path);
}

static void test_loading_optimizer_state_fails_cleanly_and_leaves_it_alone(void **state)
{
    (void)state;
    sweep("optimizer state, ad_safetensors_load", load_optimizer_state);
}

/* ==== IDX data and a minibatch ========================================================= */

enum { IDX_COUNT = 10, IDX_BATCH = 4 };

/* images [10, 6, 6] (plain) and labels [10] (gzip), written once. */
static char images_path[300], labels_path[300];

static void idx_files_made(void)
{
    unsigned char images[16 + IDX_COUNT * SIDE * SIDE], labels[8 + IDX_COUNT];
    const unsigned char image_head[16] = {0, 0, 8, 3,    0, 0, 0, IDX_COUNT,
                                          0, 0, 0, SIDE, 0, 0, 0, SIDE};
    const unsigned char label_head[8] = {0, 0, 8, 1, 0, 0, 0, IDX_COUNT};
    memcpy(images, image_head, sizeof image_head);
    memcpy(labels, label_head, sizeof label_head);
    for (size_t i = 0; i < IDX_COUNT * SIDE * SIDE; i++)
        images[16 + i] = (unsigned char)(7 * i + 3);
    for (size_t i = 0; i < IDX_COUNT; i++)
        labels[8 + i] = (unsigned char)(i % 10);

    temp_path(images_path, sizeof images_path, "images.idx");
    FILE *f = fopen(images_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(images, 1, sizeof images, f), sizeof images);
    assert_int_equal(fclose(f), 0);
    temp_path(labels_path, sizeof labels_path, "labels.idx.gz");
    gzFile g = gzopen(labels_path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, labels, sizeof labels), (int)sizeof labels);
    assert_int_equal(gzclose(g), Z_OK);
}

/* A failed load leaves its destination exactly as it was (nn.h): here, the
 * 0x5a garbage it was filled with. */
static bool idx_untouched(const ad_idx *idx)
{
    ad_idx garbage;
    memset(&garbage, 0x5a, sizeof garbage);
    return memcmp(idx, &garbage, sizeof garbage) == 0;
}

static void load_idx_and_make_a_batch(outcome *o)
{
    char err[256] = "", err2[256] = "";
    ad_rng rng;
    ad_rng_seed(&rng, 5);
    /* Filled with garbage: a failed load must leave it as it is (nn.h). */
    ad_idx images, labels;
    memset(&images, 0x5a, sizeof images);
    memset(&labels, 0x5a, sizeof labels);
    ad_batches *batches = NULL;
    ad_tensor *x = NULL;
    const int64_t *indices = NULL;
    int64_t count = 0, targets[IDX_BATCH] = {0};
    bool images_loaded = false, labels_loaded = false;

    arm();
    ad_status st = ad_idx_load(images_path, &images, err, sizeof err);
    if (!failed(o, st, "ad_idx_load (plain)", err)) {
        images_loaded = true;
        st = ad_idx_load(labels_path, &labels, err2, sizeof err2);
        labels_loaded = !failed(o, st, "ad_idx_load (gzip)", err2);
    }
    if (labels_loaded) {
        st = ad_batches_create(&batches, images.count, IDX_BATCH, true, &rng);
        if (!failed(o, st, "ad_batches_create", NULL)) {
            assert_true(ad_batches_next(batches, &indices, &count));
            st = ad_tensor_create(&x, AD_F32, 4, (int64_t[]){IDX_BATCH, 1, SIDE, SIDE}, false);
            if (!failed(o, st, "ad_tensor_create", NULL)) {
                st = ad_idx_gather_images(&images, indices, count, x);
                if (st == AD_OK)
                    st = ad_idx_gather_labels(&labels, indices, count, targets);
                failed(o, st, "gathering the batch", NULL);
            }
        }
    }
    disarm();

    if (!images_loaded)
        assert_true(idx_untouched(&images));
    if (images_loaded && !labels_loaded)
        assert_true(idx_untouched(&labels));
    if (o->status == AD_OK) {
        assert_int_equal(count, IDX_BATCH);
        for (int64_t i = 0; i < count; i++) {
            int64_t item = indices[i];
            assert_int_equal(targets[i], item % 10);
            int64_t pixel = item * SIDE * SIDE + 17;
            assert_close((float)(unsigned char)(7 * pixel + 3) / 255.0f,
                         ad_tensor_get(x, i * SIDE * SIDE + 17), 0, 0);
        }
    }
    ad_tensor_free(x);
    ad_batches_free(batches);
    if (images_loaded)
        ad_idx_free(&images);
    if (labels_loaded)
        ad_idx_free(&labels);
}

static void test_loading_idx_data_and_making_a_minibatch_fails_cleanly(void **state)
{
    (void)state;
    idx_files_made();
    sweep("IDX images and labels, a shuffled minibatch gathered into a tensor",
          load_idx_and_make_a_batch);
}

/* ==== Gradient checks =================================================================== */

/* tanh(x w): x [9, 3], w [3, 8] gives 72 outputs, more than gradcheck's
 * 64 on the stack, so its finite differences take heap memory too. */
static ad_tensor *tanh_of_product(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_tanh(ad_matmul(in[0], in[1]));
}

/* Persistent float64 inputs of the given shapes, random. */
static void inputs_made(ad_tensor **t, size_t n, const int64_t (*shapes)[2], uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ad_tensor_create(&t[i], AD_F64, 2, shapes[i], false), AD_OK);
        for (int64_t e = 0; e < ad_tensor_numel(t[i]); e++)
            assert_int_equal(ad_tensor_set(t[i], e, test_uniform(&seed, -1, 1)), AD_OK);
    }
}

/* ad_gradcheck, or ad_gradgradcheck, of tanh(x w): on failure, a message
 * and not passed; the inputs unchanged either way. */
static void check_gradients_of(outcome *o, bool second_order)
{
    static const int64_t big[2][2] = {{9, 3}, {3, 8}}, small[2][2] = {{2, 3}, {3, 2}};
    ad_tensor *in[2];
    inputs_made(in, 2, second_order ? small : big, 3);
    values before, after;
    values_of(&before, 2, in, false);
    ad_gradcheck_result r;

    arm();
    ad_status st = second_order ? ad_gradgradcheck(tanh_of_product, NULL, 2, in, 7, NULL, &r)
                                : ad_gradcheck(tanh_of_product, NULL, 2, in, NULL, &r);
    disarm();

    values_of(&after, 2, in, false);
    assert_same_values("gradcheck's inputs", &before, &after);
    if (failed(o, st, second_order ? "ad_gradgradcheck" : "ad_gradcheck", r.message))
        assert_false(r.passed);
    else if (!r.passed)
        fail_msg("the check itself failed: %s", r.message);
    ad_tensor_free(in[0]);
    ad_tensor_free(in[1]);
}

static void gradcheck_once(outcome *o)
{
    check_gradients_of(o, false);
}

static void gradgradcheck_once(outcome *o)
{
    check_gradients_of(o, true);
}

static void test_gradcheck_and_gradgradcheck_fail_cleanly_at_every_allocation(void **state)
{
    (void)state;
    sweep("ad_gradcheck (72 outputs)", gradcheck_once);
    sweep("ad_gradgradcheck", gradgradcheck_once);
}

/* ==== Custom ops ======================================================================== */

/* powers(x) = (x^2, x^3), x saved by the forward; with a jvp. */
static ad_status powers_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_square(in[0]);
    out[1] = ad_mul(out[0], in[0]);
    ad_status st = ad_custom_save(c, in[0]);
    return out[1] && st == AD_OK ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

// dx = g0 2x + g1 3x^2
static ad_status powers_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
{
    ad_tensor *x = ad_custom_input(c, 0);
    gin[0] = ad_add(ad_mul(gout[0], ad_mul_scalar(x, 2.0)),
                    ad_mul(gout[1], ad_mul_scalar(ad_square(x), 3.0)));
    return gin[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

static ad_status powers_jvp(ad_custom_ctx *c, ad_tensor *const *tin, ad_tensor **tout)
{
    ad_tensor *x = ad_custom_saved(c, 0);
    tout[0] = ad_mul(tin[0], ad_mul_scalar(x, 2.0));
    tout[1] = ad_mul(tin[0], ad_mul_scalar(ad_square(x), 3.0));
    return tout[1] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

static const ad_custom_op_def powers_def = {.name = "powers",
                                            .n_inputs = 1,
                                            .n_outputs = 2,
                                            .forward = powers_forward,
                                            .backward = powers_backward,
                                            .jvp = powers_jvp};

static void check_custom_op(outcome *o)
{
    ad_custom_op *op;
    assert_int_equal(ad_custom_op_create(&op, &powers_def), AD_OK);
    ad_tensor *x; /* float32: the check makes a float64 copy */
    assert_int_equal(ad_tensor_create(&x, AD_F32, 1, (int64_t[]){3}, false), AD_OK);
    for (int64_t i = 0; i < 3; i++)
        assert_int_equal(ad_tensor_set(x, i, 0.5 * (double)i - 0.75), AD_OK);
    ad_gradcheck_result r;

    arm();
    ad_status st = ad_custom_op_check(op, 1, &x, NULL, NULL, &r);
    disarm();

    if (failed(o, st, "ad_custom_op_check", r.message))
        assert_false(r.passed);
    else if (!r.passed)
        fail_msg("the check itself failed: %s", r.message);
    ad_tensor_free(x);
    ad_custom_op_free(op);
}

static void test_custom_op_check_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    sweep("ad_custom_op_check (float32 input, two outputs, jvp)", check_custom_op);
}

static double custom_reference[4];

static void create_and_apply_custom_op(outcome *o)
{
    const double xv[4] = {-1.5, -0.25, 0.5, 2.0};
    double grad[4];
    arm();
    ad_custom_op *op = NULL;
    ad_tape *tape = NULL;
    ad_status st = ad_custom_op_create(&op, &powers_def);
    if (!failed(o, st, "ad_custom_op_create", NULL))
        st = ad_tape_create(&tape);
    if (op && !failed(o, st, "ad_tape_create", NULL)) {
        ad_tensor *x =
            ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){4}, xv));
        ad_tensor *y[2] = {NULL, NULL};
        st = ad_custom_apply(op, 1, &x, NULL, y);
        if (st == AD_ERR_NULL && ad_tape_status(tape) != AD_OK)
            st = ad_tape_status(tape); /* x failed: the tape says why */
        if (!failed(o, st, "ad_custom_apply", ad_tape_message(tape))) {
            st = ad_backward(ad_sum_all(ad_add(y[0], y[1])), NULL);
            if (st == AD_ERR_NULL && ad_tape_status(tape) != AD_OK)
                st = ad_tape_status(tape);
            if (!failed(o, st, "backward through the custom op", ad_tape_message(tape)))
                st = ad_tensor_copy_to_doubles(ad_tensor_grad(x), grad);
        }
    }
    disarm();

    if (o->status == AD_OK) {
        assert_int_equal(st, AD_OK);
        for (int i = 0; i < 4; i++)
            assert_close(2 * xv[i] + 3 * xv[i] * xv[i], grad[i], 1e-15, 0);
        if (recording_reference)
            memcpy(custom_reference, grad, sizeof grad);
        else
            assert_memory_equal(custom_reference, grad, sizeof grad);
    }
    ad_tape_free(tape);
    ad_custom_op_free(op);
}

static void test_creating_and_applying_a_custom_op_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    sweep("custom op: create, apply on a fresh tape, backward", create_and_apply_custom_op);
}

/* ==== Activation checkpointing ====================================================== */

/* tanh(x w), with w persistent: the checkpoint collects it as an input. */
static ad_tensor *layer(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_tanh(ad_matmul(in[0], ctx));
}

static values checkpoint_reference;

static void checkpoint_forward_and_backward(outcome *o)
{
    static const int64_t shapes[2][2] = {{4, 8}, {8, 8}};
    ad_tensor *in[2];
    inputs_made(in, 2, shapes, 17);
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 2, shapes[1], true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(w, ad_tensor_data(in[1])), AD_OK);
    values before, after;
    values_of(&before, 1, &w, false);
    ad_tensor *x_grad = NULL;

    arm();
    ad_tape *tape = NULL;
    ad_status st = ad_tape_create(&tape);
    if (!failed(o, st, "ad_tape_create", NULL)) {
        ad_tensor *x = ad_requires_grad(ad_tape_use(tape, in[0]));
        ad_tensor *h = ad_checkpoint(layer, w, 1, &x);
        ad_tensor *y = ad_checkpoint(layer, w, 1, &h); /* two in a row share w */
        st = ad_backward(ad_sum_all(ad_square(y)), NULL);
        if (st == AD_ERR_NULL && ad_tape_status(tape) != AD_OK)
            st = ad_tape_status(tape);
        if (!failed(o, st, "checkpoint forward and backward", ad_tape_message(tape)))
            x_grad = ad_tensor_grad(x);
    }
    disarm();

    values_of(&after, 1, &w, false);
    assert_same_values("the checkpointed layer's weight", &before, &after);
    if (o->status == AD_OK) {
        values got;
        ad_tensor *grads[2] = {x_grad, ad_tensor_grad(w)};
        values_of(&got, 2, grads, false);
        if (recording_reference)
            checkpoint_reference = got;
        else
            assert_same_values("the checkpoint's gradients", &checkpoint_reference, &got);
    }
    ad_tape_free(tape);
    ad_tensor_free(w);
    ad_tensor_free(in[0]);
    ad_tensor_free(in[1]);
}

static void test_checkpoint_forward_and_backward_fail_cleanly_at_every_allocation(void **state)
{
    (void)state;
    sweep("ad_checkpoint twice, forward and backward", checkpoint_forward_and_backward);
}

/* ==== The thread pool =============================================================== */

/* tanh of 2^16 elements on two threads: the pool's workers start in the
 * first run (pthread_create's stacks and thread data are libc's); the pool
 * itself allocates nothing, so only the tape's allocations remain. */
static void parallel_tanh(outcome *o)
{
    int64_t n = (int64_t)1 << 16;
    double last = 0;
    ad_set_num_threads(2);

    arm();
    ad_tape *tape = NULL;
    ad_status st = ad_tape_create(&tape);
    if (!failed(o, st, "ad_tape_create", NULL)) {
        ad_tensor *y = ad_tanh(ad_full(tape, AD_F64, 1, &n, 0.5));
        if (!failed(o, y ? AD_OK : ad_tape_status(tape), "tanh on two threads",
                    ad_tape_message(tape)))
            last = ad_tensor_get(y, n - 1);
    }
    disarm();

    ad_set_num_threads(1);
    if (o->status == AD_OK)
        assert_close(tanh(0.5), last, 1e-15, 0);
    ad_tape_free(tape);
}

static void test_the_thread_pool_allocates_nothing_of_its_own(void **state)
{
    (void)state;
    sweep("thread pool: tanh of 2^16 elements on two threads, on a fresh tape", parallel_tanh);
}

/* ==== The watch itself ================================================================ */

/* Without this, a sweep that never saw a call would prove nothing. */
static void test_direct_calls_from_here_are_bypasses_and_calls_from_libc_are_not(void **state)
{
    (void)state;
    watch_reset();
    void *(*volatile allocate)(size_t) = malloc; /* a real call, not folded */
    char *(*volatile duplicate)(const char *) = strdup;
    watching = true;
    void *p = allocate(24);
    char *s = duplicate("name");
    FILE *f = fopen("/dev/null", "r"); /* its FILE comes from libc's own malloc */
    watching = false;
    assert_non_null(f);
    fclose(f);
    free(p);
    free(s);
    assert_int_equal(bypass_calls, 2);
    assert_int_equal(site_count, 2);
    assert_string_equal(sites[0].function, "malloc");
    assert_int_equal(sites[0].size, 24);
    assert_string_equal(sites[1].function, "strdup");
    assert_true(object_calls_total >= 1);
    assert_non_null(strstr(objects[0].name, "libc"));
    watch_reset();
}

int main(void)
{
    Dl_info self;
    if (!dladdr(&heap, &self)) { /* any object of this executable */
        fprintf(stderr, "test_alloc_sweep: skipped: dladdr cannot place this executable\n");
        return 77;
    }
    exe_base = self.dli_fbase;
    /* backtrace() loads libgcc_s on first use, which allocates: do it now. */
    void *frames[4];
    (void)backtrace(frames, 4);
    /* The malloc above must be the one called: not so when a tool replaces
     * it in the executable too. */
    void *(*volatile allocate)(size_t) = malloc;
    watch_reset();
    watching = true;
    void *p = allocate(8);
    watching = false;
    free(p);
    if (bypass_calls != 1) {
        fprintf(stderr, "test_alloc_sweep: skipped: the malloc defined here is not the one "
                        "called, so calls that bypass ad_set_allocator cannot be seen (under "
                        "valgrind, add --soname-synonyms=somalloc=nouserintercepts)\n");
        return 77;
    }
    watch_reset();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_calls_from_here_are_bypasses_and_calls_from_libc_are_not),
        SWEEP_TEST(test_building_a_model_fails_cleanly_at_every_allocation),
        SWEEP_TEST(test_building_each_optimizer_fails_cleanly_and_leaves_the_model_alone),
        SWEEP_TEST(test_a_training_step_fails_cleanly_at_every_allocation),
        SWEEP_TEST(test_gradcheck_and_gradgradcheck_fail_cleanly_at_every_allocation),
        SWEEP_TEST(test_custom_op_check_fails_cleanly_at_every_allocation),
        SWEEP_TEST(test_creating_and_applying_a_custom_op_fails_cleanly_at_every_allocation),
        SWEEP_TEST(test_checkpoint_forward_and_backward_fail_cleanly_at_every_allocation),
        SWEEP_TEST(test_the_thread_pool_allocates_nothing_of_its_own),
        /* These need the loaders' conversion (another branch): skipped, with
         * what bypassed the allocator, until it is merged. */
        SWEEP_TEST(test_saving_a_model_fails_cleanly_and_keeps_the_old_file),
        SWEEP_TEST(test_loading_a_model_fails_cleanly_and_leaves_its_parameters_alone),
        SWEEP_TEST(test_saving_optimizer_state_fails_cleanly_and_keeps_the_old_file),
        SWEEP_TEST(test_loading_optimizer_state_fails_cleanly_and_leaves_it_alone),
        SWEEP_TEST(test_loading_idx_data_and_making_a_minibatch_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, temp_dir_create, temp_dir_remove);
}

#endif /* INTERPOSE */
