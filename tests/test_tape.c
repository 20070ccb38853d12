/* Unit tests of the tape: lifecycle, memory reuse across resets, persistent
 * tensors, no-grad mode, sticky errors, stale handles, several tapes and
 * threads, rank limits, and a failing-allocator sweep over every allocation
 * of a small training step. */
#include "../src/core/core.h" /* the op table, ad__apply */
#include "test_util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- Lifecycle ---------------------------------------------------------------------- */

static void test_tape_create_and_free_with_no_error_and_free_accepts_null(void **state)
{
    (void)state;
    ad_tape *tape = NULL;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    assert_non_null(tape);
    assert_int_equal(ad_tape_status(tape), AD_OK);
    assert_string_equal(ad_tape_message(tape), "");
    assert_true(ad_tape_grad_enabled(tape));
    assert_int_equal(ad_tape_node_count(tape), 0);
    ad_tape_free(tape);
    ad_tape_free(NULL);
    ad_tensor_free(NULL);
    ad_tape_reset(NULL);
}

static void test_tape_with_an_allocator_frees_all_it_allocated(void **state)
{
    (void)state;
    counting_allocator c = {0};
    ad_allocator a = allocator_of(&c);
    ad_tape *tape;
    assert_int_equal(ad_tape_create_with(&tape, &a), AD_OK);
    int64_t n = 1000;
    ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, 1, &n, 2.0));
    assert_int_equal(ad_backward(ad_sum_all(ad_square(x)), NULL), AD_OK);
    assert_true(c.allocs > 0);
    ad_tape_free(tape);
    assert_int_equal(c.live, 0);
    assert_int_equal(c.frees, c.allocs);
}

/* ---- The process-wide allocator -------------------------------------------------------- */

/* Restores malloc even when a test fails midway, so that the next tests do
 * not allocate through a counting allocator left on a dead stack frame. */
static int restore_malloc(void **state)
{
    (void)state;
    ad_set_allocator(NULL);
    return 0;
}

#define ALLOCATOR_TEST(f) cmocka_unit_test_teardown(f, restore_malloc)

static void test_set_allocator_is_copied_and_null_or_half_given_restores_malloc(void **state)
{
    (void)state;
    counting_allocator c = {0};
    ad_allocator a = allocator_of(&c);
    ad_set_allocator(&a);
    a.ctx = NULL; /* the library holds a copy */
    ad_allocator got = ad_get_allocator();
    assert_ptr_equal(got.alloc, counting_alloc);
    assert_ptr_equal(got.free, counting_free);
    assert_ptr_equal(got.ctx, &c);
    ad_set_allocator(&(ad_allocator){counting_alloc, NULL, &c}); /* no free: refused */
    assert_null(ad_get_allocator().alloc);
    ad_set_allocator(&a);
    ad_set_allocator(NULL);
    got = ad_get_allocator();
    assert_null(got.alloc);
    assert_null(got.free);
    assert_int_equal(c.allocs, 0);
}

/* Tapes and persistent tensors keep the allocator they were made with, so
 * each block goes back where it came from whatever the process-wide
 * allocator is when it is freed. */
static void test_tapes_and_tensors_return_memory_to_the_allocator_they_were_made_with(void **state)
{
    (void)state;
    counting_allocator c = {0};
    ad_allocator a = allocator_of(&c);
    int64_t n = 4;

    /* Made under malloc, freed while the counting allocator is set. */
    ad_tape *tape;
    ad_tensor *t;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    assert_non_null(ad_full(tape, AD_F64, 1, &n, 1.0));
    assert_int_equal(ad_tensor_create(&t, AD_F64, 1, &n, true), AD_OK);
    ad_set_allocator(&a);
    ad_tensor_free(t);
    ad_tape_free(tape);
    assert_int_equal(c.frees, 0);

    /* Made under the counting allocator, freed after it was unset. */
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    assert_non_null(ad_full(tape, AD_F64, 1, &n, 1.0));
    assert_int_equal(ad_tensor_create(&t, AD_F64, 1, &n, false), AD_OK);
    ad_set_allocator(NULL);
    assert_int_equal(ad_tensor_set_requires_grad(t, true), AD_OK); /* its gradient too */
    assert_true(c.allocs >= 4);                                    /* tape, block, tensor, grad */
    ad_tensor_free(t);
    ad_tape_free(tape);
    assert_int_equal(c.live, 0);
    assert_int_equal(c.frees, c.allocs);
}

/* One step of a small model: big enough to need several arena blocks. */
static ad_status model_step(ad_tape *tape, ad_tensor *w, ad_tensor *b, const double *xdata,
                            const double *target)
{
    int64_t sx[2] = {128, 64}, st[1] = {128};
    const int last[1] = {-1};
    ad_tensor *x = ad_tape_tensor(tape, AD_F64, 2, sx, xdata);
    ad_tensor *t = ad_tape_tensor(tape, AD_F64, 1, st, target);
    ad_tensor *h = ad_tanh(ad_add(ad_mul(x, w), b));
    ad_tensor *pred = ad_sum(h, 1, last, false);
    ad_tensor *loss = ad_mean_all(ad_square(ad_sub(pred, t)));
    ad_status s = ad_backward(loss, NULL);
    /* A NULL loss means an earlier op failed: the tape says which. */
    return s == AD_ERR_NULL && ad_tape_status(tape) != AD_OK ? ad_tape_status(tape) : s;
}

/* Inputs for model_step, deterministic. */
typedef struct model_data {
    double x[128 * 64], target[128], w[64], b[64];
} model_data;

static void model_data_fill(model_data *d)
{
    uint64_t rng = 2024;
    for (size_t i = 0; i < 128 * 64; i++)
        d->x[i] = test_uniform(&rng, -1, 1);
    for (size_t i = 0; i < 128; i++)
        d->target[i] = test_uniform(&rng, -2, 2);
    for (size_t i = 0; i < 64; i++) {
        d->w[i] = test_uniform(&rng, -0.5, 0.5);
        d->b[i] = test_uniform(&rng, -0.1, 0.1);
    }
}

static void test_reset_keeps_memory_so_later_steps_of_equal_size_allocate_nothing(void **state)
{
    (void)state;
    static model_data d;
    model_data_fill(&d);
    counting_allocator c = {0};
    ad_allocator a = allocator_of(&c);
    ad_tape *tape;
    ad_tensor *w, *b;
    int64_t sw[2] = {1, 64}, sb[1] = {64};
    assert_int_equal(ad_tape_create_with(&tape, &a), AD_OK);
    /* The release-build promise; checked mode adds a step (test below). */
    assert_int_equal(ad_tape_set_checked(tape, 0), AD_OK);
    assert_int_equal(ad_tensor_create(&w, AD_F64, 2, sw, true), AD_OK);
    assert_int_equal(ad_tensor_create(&b, AD_F64, 1, sb, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(w, d.w), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(b, d.b), AD_OK);

    assert_int_equal(model_step(tape, w, b, d.x, d.target), AD_OK);
    size_t used = ad_tape_bytes_used(tape);
    assert_true(used > 64 * 1024); /* more than one first block */
    assert_true(ad_tape_bytes_reserved(tape) >= used);
    ad_tape_reset(tape);
    assert_int_equal(ad_tape_bytes_used(tape), 0);
    assert_int_equal(ad_tape_node_count(tape), 0);
    size_t reserved = ad_tape_bytes_reserved(tape);
    assert_true(reserved >= used);
    size_t allocs = c.allocs, used2 = 0;
    for (int step = 2; step <= 6; step++) {
        assert_int_equal(model_step(tape, w, b, d.x, d.target), AD_OK);
        /* From step 2 on the arena is one block: the same bytes each step. */
        if (step == 2)
            used2 = ad_tape_bytes_used(tape);
        assert_int_equal(ad_tape_bytes_used(tape), used2);
        ad_tape_reset(tape);
        assert_int_equal(ad_tape_bytes_reserved(tape), reserved);
        if (c.allocs != allocs)
            fail_msg("step %d allocated %zu times", step, c.allocs - allocs);
    }
    ad_tape_free(tape);
    assert_int_equal(c.live, 0);
    ad_tensor_free(w);
    ad_tensor_free(b);
}

/* Checked mode (the default with assertions) gives each of its chains one
 * step to grow; from then on a step of the same size allocates nothing. */
static void test_checked_mode_reaches_a_steady_state_once_every_chain_has_grown(void **state)
{
    (void)state;
    static model_data d;
    model_data_fill(&d);
    counting_allocator c = {0};
    ad_allocator a = allocator_of(&c);
    ad_tape *tape;
    ad_tensor *w, *b;
    int64_t sw[2] = {1, 64}, sb[1] = {64};
    assert_int_equal(ad_tape_create_with(&tape, &a), AD_OK);
    assert_int_equal(ad_tape_set_checked(tape, 2), AD_OK);
    assert_int_equal(ad_tensor_create(&w, AD_F64, 2, sw, true), AD_OK);
    assert_int_equal(ad_tensor_create(&b, AD_F64, 1, sb, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(w, d.w), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(b, d.b), AD_OK);
    for (int step = 1; step <= 3; step++) { /* one step per chain */
        assert_int_equal(model_step(tape, w, b, d.x, d.target), AD_OK);
        ad_tape_reset(tape);
    }
    size_t allocs = c.allocs, reserved = ad_tape_bytes_reserved(tape);
    for (int step = 4; step <= 9; step++) {
        assert_int_equal(model_step(tape, w, b, d.x, d.target), AD_OK);
        ad_tape_reset(tape);
        assert_int_equal(ad_tape_bytes_reserved(tape), reserved);
        if (c.allocs != allocs)
            fail_msg("step %d allocated %zu times", step, c.allocs - allocs);
    }
    ad_tape_free(tape);
    assert_int_equal(c.live, 0);
    ad_tensor_free(w);
    ad_tensor_free(b);
}

/* ---- Persistent tensors and gradients ------------------------------------------------ */

static void test_persistent_tensors_survive_resets_and_accumulate_gradients(void **state)
{
    (void)state;
    int64_t n = 3;
    const double wv[3] = {1.0, -2.0, 0.5};
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 1, &n, true), AD_OK);
    assert_null(ad_tensor_tape(w));
    assert_true(ad_tensor_requires_grad(w));
    assert_int_equal(ad_tensor_copy_from_doubles(w, wv), AD_OK);
    ad_tape *tape = test_tape();
    for (int step = 1; step <= 2; step++) {
        ad_tensor *loss = ad_sum_all(ad_mul(ad_tape_use(tape, w), ad_tape_use(tape, w)));
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        ad_tape_reset(tape);
        for (int i = 0; i < 3; i++) {
            assert_close(wv[i], ad_tensor_get(w, i), 0, 0);
            assert_close(2.0 * step * wv[i], ad_tensor_get(ad_tensor_grad(w), i), 0, 0);
        }
    }
    ad_zero_grad(w);
    for (int i = 0; i < 3; i++)
        assert_true(ad_tensor_get(ad_tensor_grad(w), i) == 0.0);
    assert_int_equal(ad_backward(ad_sum_all(ad_mul_scalar(ad_tape_use(tape, w), 3.0)), NULL),
                     AD_OK);
    for (int i = 0; i < 3; i++)
        assert_close(3.0, ad_tensor_get(ad_tensor_grad(w), i), 0, 0);
    ad_tape_free(tape);
    ad_tensor_free(w);
}

static void test_zero_grad_forgets_the_gradient_of_a_tape_leaf(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 2.0));
    assert_int_equal(ad_backward(ad_square(x), NULL), AD_OK);
    assert_close(4.0, ad_grad_value(x), 0, 0);
    ad_zero_grad(x);
    assert_null(ad_tensor_grad(x));
    assert_true(isnan(ad_grad_value(x)));
    assert_int_equal(ad_backward(ad_mul_scalar(x, 5.0), NULL), AD_OK);
    assert_close(5.0, ad_grad_value(x), 0, 0);
    ad_tape_free(tape);
}

static void test_no_grad_mode_records_nothing(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t n = 3;
    ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, 1, &n, 0.5));
    ad_tensor *p;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 1, &n, true), AD_OK);
    size_t nodes = ad_tape_node_count(tape);
    assert_true(ad_tape_set_grad_enabled(tape, false));
    assert_false(ad_tape_grad_enabled(tape));
    ad_tensor *y = ad_sum_all(ad_mul(ad_exp(x), p));
    assert_non_null(y);
    assert_close(0.0, ad_value(y), 0, 0);
    assert_false(ad_tensor_requires_grad(y));
    assert_int_equal(ad_tape_node_count(tape), nodes);
    assert_int_equal(ad_backward(y, NULL), AD_ERR_NO_GRAD);
    assert_false(ad_tape_set_grad_enabled(tape, true));
    ad_tape_clear_error(tape);
    ad_tensor *z = ad_exp(x);
    assert_true(ad_tensor_requires_grad(z));
    assert_int_equal(ad_tape_node_count(tape), nodes + 1);
    ad_tape_free(tape);
    ad_tensor_free(p);
}

/* ---- Sticky errors ------------------------------------------------------------------- */

static void test_a_shape_error_is_sticky_and_names_the_op_and_shapes(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t s23[2] = {2, 3}, s4[1] = {4};
    ad_tensor *a = ad_requires_grad(ad_full(tape, AD_F64, 2, s23, 1.0));
    ad_tensor *b = ad_full(tape, AD_F64, 1, s4, 1.0);
    ad_tensor *c = ad_add(a, b);
    assert_null(c);
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "add");
    assert_message_has(tape, "[2,3]");
    assert_message_has(tape, "[4]");
    char first[512];
    snprintf(first, sizeof first, "%s", ad_tape_message(tape));
    /* Every later op returns NULL, even valid ones, and the first message stays. */
    assert_null(ad_exp(a));
    assert_null(ad_mul(a, a));
    assert_null(ad_sum_all(a));
    assert_null(ad_scalar(tape, 1.0));
    assert_null(ad_tape_tensor(tape, AD_F64, 1, s4, NULL));
    assert_null(ad_mul(c, a));
    assert_null(ad_exp(NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_string_equal(ad_tape_message(tape), first);
    assert_int_equal(ad_backward(NULL, NULL), AD_ERR_NULL);
    assert_int_equal(ad_backward(ad_sum_all(ad_exp(a)), NULL), AD_ERR_NULL);
    ad_tape_free(tape);
}

static void test_clear_error_lets_the_tape_be_used_again(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t s2[1] = {2}, s3[1] = {3};
    ad_tensor *a = ad_requires_grad(ad_full(tape, AD_F64, 1, s2, 1.0));
    ad_tensor *b = ad_full(tape, AD_F64, 1, s3, 1.0);
    assert_null(ad_sub(a, b));
    ad_tape_clear_error(tape);
    assert_int_equal(ad_tape_status(tape), AD_OK);
    assert_string_equal(ad_tape_message(tape), "");
    ad_tensor *y = ad_sum_all(ad_mul_scalar(a, 4.0));
    assert_non_null(y);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_close(4.0, ad_tensor_get(ad_tensor_grad(a), 1), 0, 0);
    ad_tape_free(tape);
}

static void test_set_error_records_a_user_error_and_the_first_error_wins(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    assert_int_equal(ad_tape_set_error(tape, AD_ERR_ARG, "my_layer: bad width %d", 7), AD_ERR_ARG);
    assert_int_equal(ad_tape_set_error(tape, AD_ERR_SHAPE, "second"), AD_ERR_SHAPE);
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_string_equal(ad_tape_message(tape), "my_layer: bad width 7");
    assert_null(ad_scalar(tape, 1.0));
    ad_tape_free(tape);
}

static void test_a_tensor_from_before_reset_gives_a_freed_error(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 2.0));
    assert_non_null(ad_exp(x));
    /* A small tape stays in its first block, so the stale handle's memory is
     * still the arena's and can be inspected safely. */
    ad_tape_reset(tape);
    assert_null(ad_exp(x));
    assert_int_equal(ad_tape_status(tape), AD_ERR_FREED);
    assert_message_has(tape, "exp");
    assert_message_has(tape, "reset");
    ad_tape_free(tape);
}

static void test_backward_twice_without_retain_graph_gives_a_freed_error(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t n = 2;
    const double xv[2] = {1.5, -3.0};
    ad_tensor *x = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, xv));
    ad_tensor *y = ad_sum_all(ad_square(x));
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_int_equal(ad_backward(y, NULL), AD_ERR_FREED);
    assert_message_has(tape, "retain_graph");
    /* The first backward's gradient is still there. */
    for (int i = 0; i < 2; i++)
        assert_close(2 * xv[i], ad_tensor_get(ad_tensor_grad(x), i), 0, 0);
    ad_tape_free(tape);
}

static void test_backward_twice_with_retain_graph_doubles_the_leaf_gradients(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t n = 2;
    const double xv[2] = {1.5, -3.0};
    ad_tensor *x = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, xv));
    ad_tensor *y = ad_sum_all(ad_mul(ad_sin(x), x));
    ad_backward_opts keep = {.retain_graph = true};
    assert_int_equal(ad_backward(y, &keep), AD_OK);
    assert_int_equal(ad_backward(y, &keep), AD_OK);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    for (int i = 0; i < 2; i++)
        assert_close(3 * (cos(xv[i]) * xv[i] + sin(xv[i])), ad_tensor_get(ad_tensor_grad(x), i),
                     1e-15, 0);
    assert_int_equal(ad_backward(y, NULL), AD_ERR_FREED);
    ad_tape_free(tape);
}

static void test_backward_on_a_non_scalar_without_a_seed_names_the_shape(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t s[2] = {2, 3};
    ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, 2, s, 1.0));
    ad_tensor *y = ad_mul_scalar(x, 2.0);
    assert_int_equal(ad_backward(y, NULL), AD_ERR_SHAPE);
    assert_message_has(tape, "[2,3]");
    assert_message_has(tape, "seed");
    ad_tape_clear_error(tape);
    ad_backward_opts o = {.seed = ad_full(tape, AD_F64, 2, s, 1.0)};
    assert_int_equal(ad_backward(y, &o), AD_OK);
    for (int i = 0; i < 6; i++)
        assert_close(2.0, ad_tensor_get(ad_tensor_grad(x), i), 0, 0);
    ad_tape_free(tape);
}

/* ---- dtypes and tapes ------------------------------------------------------------------ */

static void test_mixing_float32_and_float64_is_a_dtype_error_naming_both(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t n = 2;
    ad_tensor *a = ad_requires_grad(ad_full(tape, AD_F32, 1, &n, 1.5));
    ad_tensor *b = ad_full(tape, AD_F64, 1, &n, 2.0);
    assert_null(ad_mul(a, b));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_message_has(tape, "mul");
    assert_message_has(tape, "float32");
    assert_message_has(tape, "float64");
    ad_tape_clear_error(tape);
    /* ad_cast converts; the gradient comes back as float32. */
    ad_tensor *y = ad_mul(ad_cast(a, AD_F64), b);
    assert_non_null(y);
    assert_int_equal(ad_tensor_dtype(y), AD_F64);
    assert_close(3.0, ad_tensor_get(y, 0), 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    assert_int_equal(ad_tensor_dtype(ad_tensor_grad(a)), AD_F32);
    assert_close(2.0, ad_tensor_get(ad_tensor_grad(a), 1), 0, 0);
    ad_tape_free(tape);
}

static void test_tensors_from_two_tapes_give_a_tape_error(void **state)
{
    (void)state;
    ad_tape *t1 = test_tape(), *t2 = test_tape();
    ad_tensor *a = ad_scalar(t1, 1.0), *b = ad_scalar(t2, 2.0);
    assert_null(ad_add(a, b));
    assert_int_equal(ad_tape_status(t1), AD_ERR_TAPE);
    assert_message_has(t1, "add");
    assert_int_equal(ad_tape_status(t2), AD_OK);
    ad_tape_clear_error(t1);
    assert_null(ad_tape_use(t2, a));
    assert_int_equal(ad_tape_status(t2), AD_ERR_TAPE);
    ad_tape_free(t1);
    ad_tape_free(t2);
}

/* ---- Threads: one tape each, shared read-only persistent tensors ------------------------- */

#define WORK_ROWS 8
#define WORK_COLS 16
#define WORK_STEPS 40

typedef struct work {
    ad_tensor *shared; /* [WORK_COLS], no grad: read by every thread */
    ad_tensor *param;  /* [WORK_COLS], requires grad: gradients via ad_grad only */
    uint64_t seed;
    double checksum[WORK_ROWS * WORK_COLS * 2 + WORK_COLS];
    ad_status status;
} work;

/* No CMocka asserts here: they longjmp, which must not cross threads. */
static void *work_run(void *arg)
{
    work *w = arg;
    ad_tape *tape;
    memset(w->checksum, 0, sizeof w->checksum);
    w->status = ad_tape_create(&tape);
    if (w->status != AD_OK)
        return NULL;
    uint64_t rng = w->seed;
    int64_t sx[2] = {WORK_ROWS, WORK_COLS};
    double xv[WORK_ROWS * WORK_COLS];
    const size_t nx = WORK_ROWS * WORK_COLS;
    for (int step = 0; step < WORK_STEPS && w->status == AD_OK; step++) {
        ad_tape_reset(tape);
        for (size_t i = 0; i < nx; i++)
            xv[i] = test_uniform(&rng, -1, 1);
        ad_tensor *x = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 2, sx, xv));
        ad_tensor *h = ad_tanh(ad_mul(x, w->shared));
        ad_tensor *loss = ad_sum_all(ad_mul(h, w->param));
        ad_tensor *in[2] = {x, w->param}, *g[2];
        ad_backward_opts keep = {.retain_graph = true}; /* h is used again below */
        w->status = ad_grad(1, &loss, NULL, 2, in, g, &keep);
        if (w->status != AD_OK)
            break;
        /* ad_backward into the tape leaf x, on a graph without the shared
         * parameter (its stored gradient would be written by every thread). */
        w->status = ad_backward(ad_sum_all(ad_square(h)), NULL);
        if (w->status != AD_OK)
            break;
        for (size_t i = 0; i < nx; i++) {
            w->checksum[i] += ad_tensor_get(g[0], (int64_t)i);
            w->checksum[nx + i] += ad_tensor_get(ad_tensor_grad(x), (int64_t)i);
        }
        for (size_t i = 0; i < WORK_COLS; i++)
            w->checksum[2 * nx + i] += ad_tensor_get(g[1], (int64_t)i);
    }
    ad_tape_free(tape);
    return NULL;
}

static void test_tapes_in_several_threads_give_the_single_threaded_results(void **state)
{
    (void)state;
    enum { N_THREADS = 4 };
    int64_t n = WORK_COLS;
    ad_tensor *shared, *param;
    assert_int_equal(ad_tensor_create(&shared, AD_F64, 1, &n, false), AD_OK);
    assert_int_equal(ad_tensor_create(&param, AD_F64, 1, &n, true), AD_OK);
    uint64_t rng = 5;
    for (int64_t i = 0; i < n; i++) {
        ad_tensor_set(shared, i, test_uniform(&rng, -2, 2));
        ad_tensor_set(param, i, test_uniform(&rng, -1, 1));
    }
    static work alone[N_THREADS], together[N_THREADS];
    for (int k = 0; k < N_THREADS; k++) {
        alone[k] = (work){.shared = shared, .param = param, .seed = 100 + (uint64_t)k};
        together[k] = alone[k];
        work_run(&alone[k]);
        assert_int_equal(alone[k].status, AD_OK);
    }
    pthread_t threads[N_THREADS];
    for (int k = 0; k < N_THREADS; k++)
        assert_int_equal(pthread_create(&threads[k], NULL, work_run, &together[k]), 0);
    for (int k = 0; k < N_THREADS; k++)
        assert_int_equal(pthread_join(threads[k], NULL), 0);
    for (int k = 0; k < N_THREADS; k++) {
        assert_int_equal(together[k].status, AD_OK);
        assert_memory_equal(alone[k].checksum, together[k].checksum, sizeof alone[k].checksum);
    }
    /* Nobody wrote the shared parameter's stored gradient. */
    for (int64_t i = 0; i < n; i++)
        assert_true(ad_tensor_get(ad_tensor_grad(param), i) == 0.0);
    ad_tensor_free(shared);
    ad_tensor_free(param);
}

/* ---- Rank limits ------------------------------------------------------------------------ */

static void test_six_dimensional_tensors_broadcast_reduce_and_differentiate(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    /* x [2,1,3,1,2,2] * b [3,1,2,1] -> s = sum over axes {1,3,-1} -> [2,3,2] */
    const int64_t sx[6] = {2, 1, 3, 1, 2, 2}, sb[4] = {3, 1, 2, 1};
    double xv[24], bv[6];
    for (int i = 0; i < 24; i++)
        xv[i] = 0.1 * (i + 1) * (i % 3 ? 1 : -1);
    for (int i = 0; i < 6; i++)
        bv[i] = 0.5 + i;
    ad_tensor *x = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 6, sx, xv));
    ad_tensor *b = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 4, sb, bv));
    const int axes[3] = {1, 3, -1};
    ad_tensor *s = ad_sum(ad_mul(x, b), 3, axes, false);
    assert_non_null(s);
    const int64_t ss[3] = {2, 3, 2};
    assert_int_equal(ad_tensor_ndim(s), 3);
    assert_memory_equal(ad_tensor_shape(s), ss, sizeof ss);
    assert_int_equal(ad_backward(ad_sum_all(ad_square(s)), NULL), AD_OK);
    /* x flat = i0 12 + i2 4 + i4 2 + i5, b flat = i2 2 + i4 */
    double sv[12], gb[6] = {0};
    for (int i0 = 0; i0 < 2; i0++)
        for (int i2 = 0; i2 < 3; i2++)
            for (int i4 = 0; i4 < 2; i4++) {
                double acc = 0;
                for (int i5 = 0; i5 < 2; i5++)
                    acc += xv[i0 * 12 + i2 * 4 + i4 * 2 + i5] * bv[i2 * 2 + i4];
                sv[(i0 * 3 + i2) * 2 + i4] = acc;
            }
    for (int i = 0; i < 12; i++)
        assert_close(sv[i], ad_tensor_get(s, i), 1e-15, 1e-15);
    for (int i0 = 0; i0 < 2; i0++)
        for (int i2 = 0; i2 < 3; i2++)
            for (int i4 = 0; i4 < 2; i4++)
                for (int i5 = 0; i5 < 2; i5++) {
                    int xi = i0 * 12 + i2 * 4 + i4 * 2 + i5, bi = i2 * 2 + i4;
                    double si = sv[(i0 * 3 + i2) * 2 + i4];
                    assert_close(2 * si * bv[bi], ad_tensor_get(ad_tensor_grad(x), xi), 1e-14,
                                 1e-14);
                    gb[bi] += 2 * si * xv[xi];
                }
    for (int i = 0; i < 6; i++)
        assert_close(gb[i], ad_tensor_get(ad_tensor_grad(b), i), 1e-14, 1e-14);
    ad_tape_free(tape);
}

static void test_max_dims_work_and_one_more_is_a_shape_error(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    int64_t shape[AD_MAX_DIMS + 1];
    for (int d = 0; d <= AD_MAX_DIMS; d++)
        shape[d] = d % 3 == 0 ? 2 : 1;
    ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, AD_MAX_DIMS, shape, 1.5));
    assert_non_null(x);
    ad_tensor *y = ad_sum_all(ad_mul(x, x));
    assert_non_null(y);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_close(3.0, ad_tensor_get(ad_tensor_grad(x), 0), 0, 0);

    assert_null(ad_tape_tensor(tape, AD_F64, AD_MAX_DIMS + 1, shape, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    char dims[16];
    snprintf(dims, sizeof dims, "%d", AD_MAX_DIMS + 1);
    assert_message_has(tape, dims);
    ad_tape_clear_error(tape);
    assert_null(ad_reshape(x, AD_MAX_DIMS + 1, shape));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    ad_tape_clear_error(tape);
    assert_null(ad_expand(x, AD_MAX_DIMS + 1, shape));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    ad_tensor *q, *p;
    assert_int_equal(ad_tensor_create(&q, AD_F64, AD_MAX_DIMS, shape, true), AD_OK);
    p = q; /* must be overwritten with NULL */
    assert_int_equal(ad_tensor_create(&p, AD_F64, AD_MAX_DIMS + 1, shape, true), AD_ERR_SHAPE);
    assert_null(p);
    ad_tensor_free(q);
    ad_tape_free(tape);
}

/* ---- Out of memory ----------------------------------------------------------------------- */

/* Two training steps of model_step, everything from allocator c, after pad
 * doubles of other data on the tape (which moves the arena's block boundaries
 * to other ops); returns the first error or AD_OK, and the parameters'
 * gradients in grads[128]. Frees everything it made. */
static ad_status train_with(counting_allocator *c, const model_data *d, int64_t pad, double *grads)
{
    ad_allocator a = allocator_of(c);
    ad_tape *tape = NULL;
    ad_tensor *w = NULL, *b = NULL;
    int64_t sw[2] = {1, 64}, sb[1] = {64};
    ad_status st = ad_tape_create_with(&tape, &a);
    if (st == AD_OK)
        st = ad_tensor_create_with(&w, AD_F64, 2, sw, true, &a);
    if (st == AD_OK)
        st = ad_tensor_create_with(&b, AD_F64, 1, sb, true, &a);
    if (st == AD_OK) {
        ad_tensor_copy_from_doubles(w, d->w);
        ad_tensor_copy_from_doubles(b, d->b);
    }
    for (int step = 0; step < 2 && st == AD_OK; step++) {
        if (pad && !ad_tape_tensor(tape, AD_F64, 1, &pad, NULL)) {
            st = ad_tape_status(tape);
            break;
        }
        st = model_step(tape, w, b, d->x, d->target);
        ad_tape_reset(tape);
    }
    if (st == AD_OK) {
        ad_tensor_copy_to_doubles(ad_tensor_grad(w), grads);
        ad_tensor_copy_to_doubles(ad_tensor_grad(b), grads + 64);
    }
    ad_tape_free(tape);
    ad_tensor_free(w);
    ad_tensor_free(b);
    return st;
}

/* For each padding (so each op in turn meets the end of an arena block), fail
 * allocation k for k = 1, 2, ... past the last one: every run must succeed
 * with the reference gradients or report AD_ERR_NOMEM, and free everything. */
static void allocation_sweep(bool fail_after)
{
    static model_data d;
    model_data_fill(&d);
    double want[128], got[128];
    for (int64_t pad = 0; pad <= 8192; pad += 256) {
        counting_allocator ref = {0};
        assert_int_equal(train_with(&ref, &d, pad, want), AD_OK);
        assert_int_equal(ref.live, 0);
        assert_true(ref.allocs >= 5);
        size_t succeeded = 0;
        for (size_t k = 1; k <= ref.allocs + 1; k++) {
            counting_allocator c = {.fail_at = k, .fail_after = fail_after};
            ad_status st = train_with(&c, &d, pad, got);
            if (c.live != 0)
                fail_msg("pad %lld, failing allocation %zu: %ld allocations not freed",
                         (long long)pad, k, c.live);
            if (st == AD_OK) {
                succeeded++;
                if (memcmp(want, got, sizeof want) != 0)
                    fail_msg("pad %lld, failing allocation %zu: succeeded with different "
                             "gradients",
                             (long long)pad, k);
            } else if (st != AD_ERR_NOMEM) {
                fail_msg("pad %lld, failing allocation %zu: status %s, expected out of memory",
                         (long long)pad, k, ad_status_string(st));
            } else if (c.failures == 0) {
                fail_msg("pad %lld, failing allocation %zu: out of memory without a failed "
                         "allocation",
                         (long long)pad, k);
            }
        }
        /* Past the last allocation nothing fails; failing for good never succeeds before. */
        assert_true(succeeded >= 1);
        if (fail_after)
            assert_int_equal(succeeded, 1);
    }
}

/* x [10000] float64, 0.5 everywhere, on a tape of allocator c whose arena is
 * two blocks (the first 64 KiB, the second exactly x's 80000 bytes, full);
 * then requests of more than 100 KiB start to fail, so the arena's next
 * block (as large as all it holds, 140 KiB) cannot be had, and a 160 KB
 * tensor fails even at its own size. */
static ad_tensor *arena_out_of_memory(ad_tape **tape, counting_allocator *c, ad_allocator *a)
{
    *a = allocator_of(c);
    assert_int_equal(ad_tape_create_with(tape, a), AD_OK);
    int64_t n = 10000, huge = 20000;
    ad_tensor *x = ad_requires_grad(ad_full(*tape, AD_F64, 1, &n, 0.5));
    assert_non_null(x);
    assert_true(ad_tape_bytes_reserved(*tape) > 100 * 1024);
    c->max_size = 100 * 1024;
    assert_null(ad_full(*tape, AD_F64, 1, &huge, 1.0));
    assert_int_equal(ad_tape_status(*tape), AD_ERR_NOMEM);
    assert_message_has(*tape, "out of memory");
    ad_tape_clear_error(*tape);
    return x;
}

/* After an out-of-memory error the arena used to ask again for a block as
 * large as all it holds, and only for that: even a scalar failed until the
 * tape was reset. */
static void
test_after_running_out_of_memory_a_small_op_works_once_the_error_is_cleared(void **state)
{
    (void)state;
    counting_allocator c = {0};
    ad_allocator a;
    ad_tape *tape;
    ad_tensor *x = arena_out_of_memory(&tape, &c, &a);
    size_t reserved = ad_tape_bytes_reserved(tape);

    ad_tensor *s = ad_requires_grad(ad_scalar(tape, 3.0));
    assert_non_null(s);
    /* What the scalar needed, not another arena's worth. */
    assert_true(ad_tape_bytes_reserved(tape) - reserved <= 16 * 1024);
    ad_tensor *y = ad_add(ad_mul(s, s), ad_sum_all(x));
    assert_non_null(y);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_close(6.0, ad_grad_value(s), 0, 0);
    assert_close(1.0, ad_tensor_get(ad_tensor_grad(x), 9999), 0, 0);
    assert_close(5000.0 + 9.0, ad_value(y), 0, 0);
    ad_tape_free(tape);
    assert_int_equal(c.live, 0);
}

static ad_tensor *square(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mul(in[0], in[0]);
}

/* A failed allocation changes nothing in the arena: it used to leave the
 * tape with no current block, so that a mark taken next (a checkpoint's)
 * looked like an empty arena, and giving back to it gave back x as well. */
static void
test_a_checkpoint_after_running_out_of_memory_keeps_the_tensors_made_before(void **state)
{
    (void)state;
    counting_allocator c = {0};
    ad_allocator a;
    ad_tape *tape;
    ad_tensor *x = arena_out_of_memory(&tape, &c, &a);
    ad_tensor *y = ad_checkpoint(square, NULL, 1, &x);
    if (!y)
        fail_msg("checkpoint: %s: %s", ad_status_string(ad_tape_status(tape)),
                 ad_tape_message(tape));
    for (int64_t i = 0; i < 10000; i += 999) {
        assert_close(0.5, ad_tensor_get(x, i), 0, 0);
        assert_close(0.25, ad_tensor_get(y, i), 0, 0);
    }
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    assert_close(1.0, ad_tensor_get(ad_tensor_grad(x), 1234), 0, 0);
    ad_tape_free(tape);
    assert_int_equal(c.live, 0);
}

static void test_every_failing_allocation_gives_nomem_or_success_and_frees_all(void **state)
{
    (void)state;
    allocation_sweep(false);
}

static void test_running_out_of_memory_for_good_gives_nomem_and_frees_all(void **state)
{
    (void)state;
    allocation_sweep(true);
}

/* Every column of the op table is used, so every row must make sense: a
 * unique name, an arity of -1 (variadic) to 3, an alias only of one input. */
static void test_every_row_of_the_op_table_is_well_formed(void **state)
{
    (void)state;
    assert_int_equal(ad_op_count(), AD_OP_COUNT);
    for (int op = 0; op < AD_OP_COUNT; op++) {
        const ad__op *row = &ad__ops[op];
        assert_non_null(row->name);
        assert_true(row->name[0] != '\0');
        assert_string_equal(ad_op_name(op), row->name);
        for (int other = 0; other < op; other++)
            assert_true(strcmp(ad__ops[other].name, row->name) != 0);
        assert_in_range(row->arity + 1, 0, 4);
        assert_int_equal(ad_op_arity(op), row->arity);
        assert_int_equal(row->flags & ~(AD_OPF_NONDIFF | AD_OPF_ALIAS | AD_OPF_ANY_DTYPE | AD_OPF_OWN_DTYPES), 0);
        if (row->flags & AD_OPF_ALIAS)
            assert_int_equal(row->arity, 1);
        assert_int_equal(ad_op_differentiable(op), !(row->flags & AD_OPF_NONDIFF));
        assert_non_null(row->shape);
        assert_non_null(row->forward);
        assert_non_null(row->backward);
        assert_non_null(row->jvp);
    }
}

/* The arity column is checked where nodes are made: a constructor that
 * passes another number of inputs (a bug of ours) gets an error, not a node
 * whose rules read past its inputs. */
static void test_applying_an_op_to_the_wrong_number_of_inputs_is_refused(void **state)
{
    (void)state;
    ad_tape *tape;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    ad_tensor *x = ad_scalar(tape, 1.0);
    ad_tensor *src[3] = {x, x, x};
    assert_null(ad__apply(AD_OP_add, 3, src, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_non_null(strstr(ad_tape_message(tape), "add: 3 inputs (the op takes 2)"));
    ad_tape_clear_error(tape);
    assert_null(ad__apply(AD_OP_concat, 0, src, NULL));
    ad_tape_free(tape);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tape_create_and_free_with_no_error_and_free_accepts_null),
        cmocka_unit_test(test_tape_with_an_allocator_frees_all_it_allocated),
        ALLOCATOR_TEST(test_set_allocator_is_copied_and_null_or_half_given_restores_malloc),
        ALLOCATOR_TEST(test_tapes_and_tensors_return_memory_to_the_allocator_they_were_made_with),
        cmocka_unit_test(test_reset_keeps_memory_so_later_steps_of_equal_size_allocate_nothing),
        cmocka_unit_test(test_checked_mode_reaches_a_steady_state_once_every_chain_has_grown),
        cmocka_unit_test(test_persistent_tensors_survive_resets_and_accumulate_gradients),
        cmocka_unit_test(test_zero_grad_forgets_the_gradient_of_a_tape_leaf),
        cmocka_unit_test(test_no_grad_mode_records_nothing),
        cmocka_unit_test(test_a_shape_error_is_sticky_and_names_the_op_and_shapes),
        cmocka_unit_test(test_clear_error_lets_the_tape_be_used_again),
        cmocka_unit_test(test_set_error_records_a_user_error_and_the_first_error_wins),
        cmocka_unit_test(test_a_tensor_from_before_reset_gives_a_freed_error),
        cmocka_unit_test(test_backward_twice_without_retain_graph_gives_a_freed_error),
        cmocka_unit_test(test_backward_twice_with_retain_graph_doubles_the_leaf_gradients),
        cmocka_unit_test(test_backward_on_a_non_scalar_without_a_seed_names_the_shape),
        cmocka_unit_test(test_mixing_float32_and_float64_is_a_dtype_error_naming_both),
        cmocka_unit_test(test_tensors_from_two_tapes_give_a_tape_error),
        cmocka_unit_test(test_tapes_in_several_threads_give_the_single_threaded_results),
        cmocka_unit_test(test_six_dimensional_tensors_broadcast_reduce_and_differentiate),
        cmocka_unit_test(test_max_dims_work_and_one_more_is_a_shape_error),
        cmocka_unit_test(
            test_after_running_out_of_memory_a_small_op_works_once_the_error_is_cleared),
        cmocka_unit_test(
            test_a_checkpoint_after_running_out_of_memory_keeps_the_tensors_made_before),
        cmocka_unit_test(test_every_failing_allocation_gives_nomem_or_success_and_frees_all),
        cmocka_unit_test(test_running_out_of_memory_for_good_gives_nomem_and_frees_all),
        cmocka_unit_test(test_every_row_of_the_op_table_is_well_formed),
        cmocka_unit_test(test_applying_an_op_to_the_wrong_number_of_inputs_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
