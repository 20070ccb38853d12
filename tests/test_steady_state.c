/*
 * Zero allocation in steady state: once the first training step of a model
 * has run, every later step of the same size must not call malloc, calloc,
 * realloc, free or an aligned allocator at all.
 *
 * How we count. This executable defines malloc and friends itself. The
 * library is linked in statically and the shared libraries (libc, OpenBLAS)
 * resolve malloc through the dynamic linker, so every call in the process
 * lands here, and we forward it to glibc's own allocator (__libc_malloc and
 * company). A thread-local flag turns counting on for the measured steps in
 * the calling thread only: OpenBLAS's worker threads are not ours to judge
 * (with one thread they do not exist; with two they only wait on a queue).
 * Each counted call keeps a backtrace, printed when the count is not zero, so
 * a failure says where the allocation came from (resolve the addresses with
 * `addr2line -f -e build/tests/test_steady_state ADDRESS`, or run the test
 * under gdb with a breakpoint on count_call).
 *
 * A step here is what the layers.h example loop does: ad_tape_reset, forward,
 * cross-entropy, zero_grad, backward, optimizer step. Step 1 may allocate
 * (the tape grows its arena, OpenBLAS maps its buffers); steps 2..N may not,
 * and that includes the reset at the start of step 2.
 *
 * Under AddressSanitizer the sanitizer owns malloc, so the test skips (77).
 * Valgrind replaces malloc and friends wherever a program defines them, ours
 * included, and then nothing would be counted: run it with
 * --soname-synonyms=somalloc=nouserintercepts (`meson test --setup
 * valgrind` does), which leaves ours in place, while our calls to
 * __libc_malloc and company still reach valgrind's allocator (glibc's
 * malloc and __libc_malloc are one function). Without that option the test
 * skips (77) under valgrind and says why.
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

#include "test_util.h"

#include "autodiff/layers.h"

#ifdef AD_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define STEADY_HOOKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define STEADY_HOOKS 0
#endif
#endif
#ifndef STEADY_HOOKS
#define STEADY_HOOKS 1
#endif

#if !STEADY_HOOKS

int main(void)
{
    return 77; /* skipped: the sanitizer's allocator is not ours to replace */
}

#else

/* ---- The allocation counter ------------------------------------------------ */

enum { MAX_SITES = 16, SITE_DEPTH = 16 };

/* Calls from one place (one return address into the caller of malloc). */
typedef struct alloc_site {
    const void *caller;
    const char *function; /* "malloc", "free", ... */
    size_t size;          /* of the first call */
    size_t calls;
    bool in_blas; /* the caller is in the BLAS library */
    int depth;
    void *frames[SITE_DEPTH]; /* the first call's stack */
} alloc_site;

static _Thread_local bool counting; /* on only in the thread being measured */
static _Thread_local bool in_hook;  /* backtrace() may allocate: do not recurse */
static size_t call_count, unsited_count;
static size_t site_count;
static alloc_site sites[MAX_SITES];

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void __libc_free(void *ptr);
void *__libc_memalign(size_t alignment, size_t size);

/* A named function (not inlined), so `break count_call` works in gdb. */
__attribute__((noinline)) static void count_call(const char *function, size_t size,
                                                 const void *caller)
{
    if (!counting || in_hook)
        return;
    in_hook = true;
    call_count++;
    size_t i = 0;
    while (i < site_count && sites[i].caller != caller)
        i++;
    if (i < site_count) {
        sites[i].calls++;
    } else if (site_count < MAX_SITES) {
        alloc_site *s = &sites[site_count++];
        s->caller = caller;
        s->function = function;
        s->size = size;
        s->calls = 1;
        s->depth = backtrace(s->frames, SITE_DEPTH);
    } else {
        unsited_count++;
    }
    in_hook = false;
}

#define CALLER __builtin_return_address(0)

void *malloc(size_t size)
{
    count_call("malloc", size, CALLER);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    count_call("calloc", count * size, CALLER);
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size)
{
    count_call("realloc", size, CALLER);
    return __libc_realloc(ptr, size);
}

void free(void *ptr)
{
    /* free(NULL) does nothing, and a library may call it freely. */
    if (ptr)
        count_call("free", 0, CALLER);
    __libc_free(ptr);
}

void *memalign(size_t alignment, size_t size);
void *memalign(size_t alignment, size_t size)
{
    count_call("memalign", size, CALLER);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    count_call("aligned_alloc", size, CALLER);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
    count_call("posix_memalign", size, CALLER);
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static void counter_start(void)
{
    call_count = unsited_count = 0;
    site_count = 0;
    counting = true;
}

/* The counts since counter_start: calls made by the BLAS library itself
 * (its caller lies in a shared object whose file name has "blas") and all
 * the others. */
typedef struct alloc_counts {
    size_t ours, blas;
} alloc_counts;

static alloc_counts counter_stop(void)
{
    counting = false;
    alloc_counts c = {unsited_count, 0}; /* calls past MAX_SITES count as ours */
    for (size_t i = 0; i < site_count; i++) {
        Dl_info info;
        /* The object's file name, not its path: a build directory may be
         * called build-noblas. */
        const char *object = dladdr(sites[i].caller, &info) && info.dli_fname ? info.dli_fname : "";
        const char *base = strrchr(object, '/');
        sites[i].in_blas = strstr(base ? base + 1 : object, "blas") != NULL;
        if (sites[i].in_blas)
            c.blas += sites[i].calls;
        else
            c.ours += sites[i].calls;
    }
    return c;
}

/* Prints every call site with its count and the first call's stack (raw
 * addresses for the statically linked library: see addr2line above). */
static void print_sites(const char *what, bool blas)
{
    print_error("%s: %zu allocator call(s) in steady state, from:\n", what, call_count);
    for (size_t i = 0; i < site_count; i++) {
        if (sites[i].in_blas != blas)
            continue;
        print_error("  %zu x %s (first size %zu)%s\n", sites[i].calls, sites[i].function,
                    sites[i].size, sites[i].in_blas ? ", inside BLAS" : "");
        fflush(stdout);
        fflush(stderr);
        /* Skip count_call and the hook; backtrace_symbols_fd never allocates. */
        if (sites[i].depth > 2)
            backtrace_symbols_fd(sites[i].frames + 2, sites[i].depth - 2, STDERR_FILENO);
    }
    if (unsited_count)
        print_error("  %zu more from other places\n", unsited_count);
}

/* ---- The model: 784-256-256-10, ReLU, batch 32, float32 --------------------------- */

enum { BATCH = 32, IN = 784, HIDDEN = 256, CLASSES = 10, STEPS = 10 };

typedef enum { OPT_SGD_MOMENTUM, OPT_ADAM } optim_choice;

/* The first step counted: 2 by default; "--from-step 3" on the command line
 * (a second meson test) leaves step 2 out too, so a one-time cost of the
 * second step cannot hide an allocation in every later one. */
static int first_counted_step = 2;

typedef struct training {
    ad_module *model;
    ad_optim *opt;
    ad_tape *tape;
    ad_tensor *x; /* [BATCH, IN], persistent */
    int64_t targets[BATCH];
    ad_rng rng;
} training;

static void training_setup(training *t, optim_choice choice)
{
    memset(t, 0, sizeof *t);
    ad_rng_seed(&t->rng, 7);
    ad_module *layers[5];
    assert_int_equal(ad_nn_linear(&layers[0], IN, HIDDEN, true, AD_F32, &t->rng), AD_OK);
    assert_int_equal(ad_nn_activation(&layers[1], AD_ACT_RELU), AD_OK);
    assert_int_equal(ad_nn_linear(&layers[2], HIDDEN, HIDDEN, true, AD_F32, &t->rng), AD_OK);
    assert_int_equal(ad_nn_activation(&layers[3], AD_ACT_RELU), AD_OK);
    assert_int_equal(ad_nn_linear(&layers[4], HIDDEN, CLASSES, true, AD_F32, &t->rng), AD_OK);
    assert_int_equal(ad_nn_sequential(&t->model, 5, layers), AD_OK);
    if (choice == OPT_SGD_MOMENTUM) {
        ad_sgd_config sgd = ad_sgd_defaults();
        sgd.lr = 0.05;
        sgd.momentum = 0.9;
        assert_int_equal(ad_optim_sgd(&t->opt, t->model, &sgd), AD_OK);
    } else {
        assert_int_equal(ad_optim_adam(&t->opt, t->model, NULL), AD_OK); /* lr 1e-3 */
    }
    assert_int_equal(ad_tape_create(&t->tape), AD_OK);
    /* From step 2, the promise holds without checked mode; with it (the
     * default with assertions), each of its chains first grows in its own
     * step, so the run from step 3 keeps the default. */
    if (first_counted_step == 2)
        assert_int_equal(ad_tape_set_checked(t->tape, 0), AD_OK);
    assert_int_equal(ad_tensor_create(&t->x, AD_F32, 2, (int64_t[]){BATCH, IN}, false), AD_OK);
}

static void training_teardown(training *t)
{
    ad_tape_free(t->tape);
    ad_optim_free(t->opt);
    ad_nn_free(t->model);
    ad_tensor_free(t->x);
}

/* One training step on a fresh random batch; returns the loss. */
static double training_step(training *t)
{
    float *x = ad_tensor_data(t->x);
    for (size_t i = 0; i < (size_t)BATCH * IN; i++)
        x[i] = (float)ad_rng_uniform(&t->rng);
    for (int i = 0; i < BATCH; i++)
        t->targets[i] = (int64_t)ad_rng_below(&t->rng, CLASSES);

    ad_tape_reset(t->tape);
    ad_tensor *logits = ad_nn_forward(t->model, t->tape, t->x);
    ad_tensor *loss = ad_cross_entropy(logits, BATCH, t->targets);
    ad_optim_zero_grad(t->opt);
    ad_status st = ad_backward(loss, NULL);
    if (st != AD_OK) {
        counting = false;
        fail_msg("backward: %s: %s", ad_status_string(st), ad_tape_message(t->tape));
    }
    ad_optim_step(t->opt);
    return ad_value(loss);
}

/* Runs steps 1 .. first_counted_step - 1 uncounted, then the rest up to STEPS
 * counted. Nothing outside BLAS may allocate; BLAS may not either with one
 * thread. With more threads, OpenBLAS 0.3.21's threaded level-3 driver
 * (driver/level3/level3_thread.c, built with USE_ALLOC_HEAP because Debian's
 * MAX_CPU_NUMBER is large) mallocs and frees a job array of MAX_CPU_NUMBER
 * entries (512 KiB here) in the calling thread on every threaded GEMM: we
 * cannot change that, so those calls are reported but not failed. */
static void check_steady_state(optim_choice choice, int threads, const char *what)
{
    ad_set_num_threads(threads);
    training t;
    training_setup(&t, choice);
    double loss = 0;
    for (int step = 1; step < first_counted_step; step++)
        loss = training_step(&t);
    assert_true(isfinite(loss));

    counter_start();
    for (int step = first_counted_step; step <= STEPS; step++)
        loss = training_step(&t);
    alloc_counts calls = counter_stop();

    if (calls.ours != 0)
        print_sites(what, false);
    if (calls.blas != 0 && threads == 1)
        print_sites(what, true);
    if (calls.blas != 0 && threads > 1)
        print_message("note: %s: %zu allocator calls made by threaded BLAS itself (a job array "
                      "per GEMM call); not counted against the library\n",
                      what, calls.blas);
    training_teardown(&t);
    ad_set_num_threads(1);
    assert_true(isfinite(loss));
    assert_int_equal(calls.ours, 0);
    if (threads == 1)
        assert_int_equal(calls.blas, 0);
}

/* ---- Tests ------------------------------------------------------------------------- */

/* One malloc and one free, called as the library calls them: through the
 * functions' addresses. A direct call could be inlined from this file and be
 * counted even where the functions themselves were replaced (valgrind). */
static alloc_counts count_one_malloc_and_free(void)
{
    void *(*volatile allocate)(size_t) = malloc;
    void (*volatile release)(void *) = free;
    counter_start();
    void *volatile p = allocate(100); /* volatile: or the pair may be removed */
    release(p);
    return counter_stop();
}

/* The counter itself must see calls, or a passing test would prove nothing. */
static void test_counter_sees_malloc_and_free(void **state)
{
    (void)state;
    alloc_counts calls = count_one_malloc_and_free();
    assert_int_equal(calls.ours, 2);
    assert_int_equal(calls.blas, 0);
}

static void test_sgd_momentum_steps_after_the_first_allocate_nothing(void **state)
{
    (void)state;
    check_steady_state(OPT_SGD_MOMENTUM, 1, "SGD momentum, 1 thread");
}

static void test_adam_steps_after_the_first_allocate_nothing(void **state)
{
    (void)state;
    check_steady_state(OPT_ADAM, 1, "Adam, 1 thread");
}

/* With 2 threads, OpenBLAS's workers run the products; only the calling
 * thread is counted, and it must not allocate either. */
static void test_sgd_momentum_with_two_threads_allocates_nothing_in_the_caller(void **state)
{
    (void)state;
    check_steady_state(OPT_SGD_MOMENTUM, 2, "SGD momentum, 2 threads");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--from-step") == 0)
        first_counted_step = atoi(argv[2]);
    if (first_counted_step < 2 || first_counted_step > STEPS) {
        fprintf(stderr, "usage: %s [--from-step N], 2 <= N <= %d\n", argv[0], (int)STEPS);
        return 2;
    }

    /* backtrace() loads libgcc_s on first use, which allocates: do it now. */
    void *frames[4];
    (void)backtrace(frames, 4);

#ifdef AD_HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND && count_one_malloc_and_free().ours == 0) {
        fprintf(stderr, "skipped: valgrind replaced this test's malloc, so no call can be counted; "
                        "run valgrind with --soname-synonyms=somalloc=nouserintercepts (as "
                        "`meson test --setup valgrind` does)\n");
        return 77;
    }
#endif

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_sees_malloc_and_free),
        cmocka_unit_test(test_sgd_momentum_steps_after_the_first_allocate_nothing),
        cmocka_unit_test(test_adam_steps_after_the_first_allocate_nothing),
        cmocka_unit_test(test_sgd_momentum_with_two_threads_allocates_nothing_in_the_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif /* STEADY_HOOKS */
