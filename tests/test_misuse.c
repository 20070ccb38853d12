/* Misuse that must be caught, not crash or answer wrongly (issue 9): NULL
 * out-pointers, stale handles, persistent-only ops, a NaN maximum, double
 * frees, huge empty shapes. Each test failed (or crashed) before its fix. */
#include "test_util.h"

/* ---- NULL out-pointers ----------------------------------------------------------------- */

static void test_create_functions_refuse_a_null_out_pointer(void **state)
{
    (void)state;
    int64_t n = 3;
    assert_int_equal(ad_tape_create(NULL), AD_ERR_ARG);
    assert_int_equal(ad_tape_create_with(NULL, NULL), AD_ERR_ARG);
    assert_int_equal(ad_tensor_create(NULL, AD_F32, 1, &n, true), AD_ERR_ARG);
    assert_int_equal(ad_tensor_create_with(NULL, AD_F64, 1, &n, false, NULL), AD_ERR_ARG);
}

static void test_copy_and_grad_refuse_null_destinations(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, 1, &n, 2.0));
    assert_int_equal(ad_tensor_copy_to_doubles(x, NULL), AD_ERR_ARG);
    ad_tensor *p;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 1, &n, false), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(p, NULL), AD_ERR_ARG);
    ad_tensor *y = ad_sum_all(ad_square(x));
    assert_int_equal(ad_grad(1, &y, NULL, 1, &x, NULL, NULL), AD_ERR_ARG);
    ad_tensor_free(p);
}

static void test_freeing_a_persistent_tensor_twice_does_nothing_the_second_time(void **state)
{
    (void)state;
    int64_t n = 4;
    ad_tensor *a, *b[100];
    assert_int_equal(ad_tensor_create(&a, AD_F32, 1, &n, true), AD_OK);
    for (int i = 0; i < 100; i++) /* enough to grow the set of live tensors */
        assert_int_equal(ad_tensor_create(&b[i], AD_F64, 1, &n, i % 2), AD_OK);
    ad_tensor_free(a);
    ad_tensor_free(a); /* crashed: a double free */
    for (int i = 0; i < 100; i += 2)
        ad_tensor_free(b[i]);
    for (int i = 0; i < 100; i++) /* every other one twice */
        ad_tensor_free(b[i]);
    ad_tensor_free(a);
}

/* ---- Stale handles ---------------------------------------------------------------------- */

static void test_reshape_to_the_same_shape_of_a_stale_handle_is_freed(void **state)
{
    ad_tape *tape = *state;
    int64_t shape[2] = {2, 3};
    ad_tensor *old = ad_full(tape, AD_F64, 2, shape, 1.0);
    ad_tape_reset(tape);
    /* The same-shape fast path returned the stale handle as it was. */
    assert_null(ad_reshape(old, 2, shape));
    assert_int_equal(ad_tape_status(tape), AD_ERR_FREED);
    assert_non_null(strstr(ad_tape_message(tape), "reshape"));
}

static void test_grad_with_a_stale_input_is_freed_not_another_gradient(void **state)
{
    ad_tape *tape = *state;
    assert_int_equal(ad_tape_set_checked(tape, 1), AD_OK);
    int64_t n = 2;
    ad_tensor *old = ad_requires_grad(ad_full(tape, AD_F64, 1, &n, 1.0));
    ad_tape_reset(tape);
    ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, 1, &n, 3.0));
    ad_tensor *y = ad_sum_all(ad_square(x)), *g;
    assert_int_equal(ad_grad(1, &y, NULL, 1, &old, &g, NULL), AD_ERR_FREED);
    assert_null(g);
}

static void test_accessors_of_a_stale_handle_give_nan_and_null(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *old = ad_scalar(tape, 5.0);
    ad_tape_reset(tape);
    assert_true(isnan(ad_value(old)));
    assert_true(isnan(ad_tensor_get(old, 0)));
    assert_null(ad_tensor_data(old));
    double v = 0;
    assert_int_equal(ad_tensor_copy_to_doubles(old, &v), AD_ERR_FREED);
    assert_null(ad_requires_grad(old));
    assert_int_equal(ad_tape_status(tape), AD_ERR_FREED);
}

/* The finding: a handle kept from the last step silently aliased the tensor
 * that took its place (prev * 2 gave 32 instead of an error). */
static void test_a_handle_kept_from_the_last_step_is_freed_in_checked_mode(void **state)
{
    ad_tape *tape = *state;
    assert_int_equal(ad_tape_set_checked(tape, 1), AD_OK);
    ad_tensor *prev = NULL;
    for (int step = 0; step < 4; step++) {
        ad_tape_reset(tape);
        ad_tensor *x = ad_scalar(tape, 16.0 + step);
        if (prev) {
            assert_null(ad_mul_scalar(prev, 2.0));
            assert_int_equal(ad_tape_status(tape), AD_ERR_FREED);
            assert_true(isnan(ad_value(prev)));
            ad_tape_clear_error(tape);
        }
        prev = x;
    }
}

static void test_checked_mode_catches_handles_as_old_as_it_keeps(void **state)
{
    ad_tape *tape = *state;
    assert_int_equal(ad_tape_set_checked(tape, 3), AD_OK);
    assert_int_equal(ad_tape_checked(tape), 3);
    ad_tape_reset(tape);
    ad_tensor *old = ad_scalar(tape, 1.0);
    for (int k = 0; k < 3; k++) {
        ad_tape_reset(tape);
        for (int i = 0; i < 100; i++)
            ad_scalar(tape, 2.0); /* fill the arena the new generation uses */
        assert_null(ad_neg(old));
        assert_int_equal(ad_tape_status(tape), AD_ERR_FREED);
    }
    assert_int_equal(ad_tape_set_checked(tape, 8), AD_ERR_ARG);
}

/* ---- Errors with no tape ------------------------------------------------------------------- */

static void test_an_op_on_persistent_tensors_only_leaves_a_thread_error(void **state)
{
    (void)state;
    int64_t n = 2;
    ad_tensor *a, *b;
    assert_int_equal(ad_tensor_create(&a, AD_F32, 1, &n, false), AD_OK);
    assert_int_equal(ad_tensor_create(&b, AD_F32, 1, &n, false), AD_OK);
    ad_thread_clear_error();
    assert_int_equal(ad_thread_status(), AD_OK);
    assert_string_equal(ad_thread_message(), "");
    assert_null(ad_add(a, b));
    assert_int_equal(ad_thread_status(), AD_ERR_TAPE);
    assert_non_null(strstr(ad_thread_message(), "add"));
    assert_non_null(strstr(ad_thread_message(), "ad_tape_use"));
    /* Sticky: a second error keeps the first message. */
    assert_null(ad_sum_all(a));
    assert_non_null(strstr(ad_thread_message(), "add"));
    ad_thread_clear_error();
    assert_null(ad_reshape(a, 1, &n));
    assert_non_null(strstr(ad_thread_message(), "reshape"));
    ad_thread_clear_error();
    ad_tensor_free(a);
    ad_tensor_free(b);
}

static void test_a_null_input_does_not_set_the_thread_error(void **state)
{
    (void)state;
    ad_thread_clear_error();
    assert_null(ad_exp(NULL));
    assert_null(ad_add(NULL, NULL));
    assert_int_equal(ad_thread_status(), AD_OK);
}

/* ---- A NaN maximum ----------------------------------------------------------------------- */

/* As torch.amax: a group whose maximum is NaN gives NaN gradients to the
 * whole group (it gave all zeros, so a NaN loss trained on finite zeros). */
static void test_max_over_a_group_holding_nan_gives_nan_gradients_to_the_group(void **state)
{
    ad_tape *tape = *state;
    int64_t shape[2] = {2, 2};
    ad_tensor *x = ad_requires_grad(
        ad_tape_tensor_from_doubles(tape, AD_F64, 2, shape, (double[]){1.0, NAN, 2.0, 5.0}));
    int axis = 1;
    ad_tensor *y = ad_max(x, 1, &axis, false);
    assert_true(isnan(ad_tensor_get(y, 0)));
    assert_close(5.0, ad_tensor_get(y, 1), 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    ad_tensor *g = ad_tensor_grad(x);
    assert_true(isnan(ad_tensor_get(g, 0)) && isnan(ad_tensor_get(g, 1)));
    assert_close(0.0, ad_tensor_get(g, 2), 0, 0);
    assert_close(1.0, ad_tensor_get(g, 3), 0, 0);
}

/* ---- Huge shapes, empty or not -------------------------------------------------------------- */

static void test_shapes_beyond_2_to_the_60_are_shape_errors_even_when_empty(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *p = NULL;
    int64_t huge[2] = {(int64_t)1 << 32, (int64_t)1 << 32};
    assert_int_equal(ad_tensor_create(&p, AD_F32, 2, huge, false), AD_ERR_SHAPE);
    assert_null(p);
    int64_t empty_huge[2] = {0, INT64_MAX};
    assert_int_equal(ad_tensor_create(&p, AD_F32, 2, empty_huge, false), AD_ERR_SHAPE);
    assert_null(ad_tape_tensor(tape, AD_F32, 2, empty_huge, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_non_null(strstr(ad_tape_message(tape), "too large"));
    ad_tape_clear_error(tape);
    /* A result shape past the bound, from shapes within it. */
    int64_t half = (int64_t)1 << 31;
    ad_tensor *a = ad_tape_tensor(tape, AD_F32, 3, (int64_t[]){half, 1, 0}, NULL);
    ad_tensor *b = ad_tape_tensor(tape, AD_F32, 3, (int64_t[]){1, half, 0}, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(ad_add(a, b)); /* [2^31, 2^31, 0]: empty, but 2^62 counting the 0 as 1 */
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_non_null(strstr(ad_tape_message(tape), "add"));
}

/* Empty tensors whose other dims are huge: each op used to loop over those
 * dims (2^40 iterations: hours); now an empty result computes nothing. */
static void test_ops_on_empty_tensors_with_huge_dims_finish_at_once(void **state)
{
    ad_tape *tape = *state;
    int64_t big = (int64_t)1 << 40;
    ad_tensor *a = ad_requires_grad(ad_tape_tensor(tape, AD_F32, 3, (int64_t[]){big, 0, 3}, NULL));
    ad_tensor *b = ad_requires_grad(ad_tape_tensor(tape, AD_F32, 2, (int64_t[]){3, 4}, NULL));
    ad_tensor *y = ad_matmul(a, b);
    assert_non_null(y);
    assert_int_equal(ad_tensor_dim(y, 0), big);
    assert_int_equal(ad_tensor_numel(y), 0);
    ad_tensor *x = ad_requires_grad(ad_tape_tensor(tape, AD_F32, 2, (int64_t[]){big, 0}, NULL));
    ad_tensor *s = ad_index_select(x, 1, 0, NULL);
    assert_non_null(s);
    ad_tensor *t = ad_index_select(x, 0, 2, (int64_t[]){0, big - 1});
    assert_non_null(t);
    assert_int_equal(ad_tensor_numel(t), 0);
    ad_tensor *loss = ad_add(ad_add(ad_sum_all(y), ad_sum_all(s)), ad_sum_all(t));
    if (ad_backward(loss, NULL) != AD_OK)
        fail_msg("%s", ad_tape_message(tape));
    assert_close(0.0, ad_value(loss), 0, 0);
    assert_int_equal(ad_tensor_numel(ad_tensor_grad(a)), 0);
    /* b's gradient is a real [3,4] zero: the sum over 2^40 empty batches. */
    assert_int_equal(ad_tensor_numel(ad_tensor_grad(b)), 12);
    assert_close(0.0, ad_tensor_get(ad_tensor_grad(b), 5), 0, 0);
}

/* ---- Found by fuzz/fuzz_ops.c (fuzz/findings/) ------------------------------------------ */

static int fail_from_now;
static void *maybe_alloc(size_t n, void *ctx)
{
    (void)ctx;
    return fail_from_now ? NULL : malloc(n);
}
static void plain_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

static void test_a_0d_reshape_that_runs_out_of_memory_returns_null(void **state)
{
    (void)state;
    ad_tape *tape;
    ad_allocator a = {maybe_alloc, plain_free, NULL};
    assert_int_equal(ad_tape_create_with(&tape, &a), AD_OK);
    ad_tensor *x = ad_scalar(tape, 1.0), *y;
    fail_from_now = 1;
    do /* each reshape takes 16 bytes of the arena until the block is full */
        y = ad_reshape(x, 0, NULL);
    while (ad_tape_status(tape) == AD_OK);
    fail_from_now = 0;
    assert_null(y); /* it returned x although the tape had the error */
    assert_int_equal(ad_tape_status(tape), AD_ERR_NOMEM);
    ad_tape_free(tape);
}

static ad_tensor *tanh_of_first(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_tanh(in[0]);
}

static void test_a_checkpoint_without_grad_whose_function_fails_says_so_on_the_tape(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *p;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 0, NULL, true), AD_OK);
    ad_tensor *in[2] = {p, ad_scalar(tape, 1.0)}; /* tanh of a persistent: NULL */
    ad_tape_set_grad_enabled(tape, false);
    assert_null(ad_checkpoint(tanh_of_first, NULL, 2, in));
    assert_int_equal(ad_tape_status(tape), AD_ERR_NULL);
    assert_non_null(strstr(ad_tape_message(tape), "checkpoint"));
    ad_thread_clear_error();
    ad_tensor_free(p);
}

static void test_grad_with_persistent_seeds_for_one_output_given_twice_works(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *p;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 0, NULL, true), AD_OK);
    assert_int_equal(ad_tensor_set(p, 0, 3.0), AD_OK);
    ad_tensor *x = ad_tape_use(tape, p);
    ad_tensor *y = ad_square(x);
    ad_tensor *out[2] = {y, y}, *seed[2] = {p, p}, *g;
    assert_int_equal(ad_grad(2, out, seed, 1, &x, &g, NULL), AD_OK);
    assert_close(36.0, ad_value(g), 0, 0); /* (3 + 3) 2x */
    ad_tape_reset(tape);
    ad_tensor_free(p);
}

static ad_tensor *keep(ad_tensor *t, ad_tensor *g, void *ctx)
{
    (void)t, (void)ctx;
    return g;
}

static void test_refused_hooks_and_null_results_leave_a_message(void **state)
{
    ad_tape *tape = *state;
    ad_thread_clear_error();
    ad_tensor *c = ad_scalar(tape, 1.0); /* does not require grad */
    assert_int_equal(ad_tensor_register_hook(c, keep, NULL, NULL), AD_ERR_NO_GRAD);
    assert_non_null(strstr(ad_thread_message(), "register_hook"));
    assert_int_equal(ad_tape_status(tape), AD_OK); /* the graph is fine */
    ad_thread_clear_error();
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 1.0)), *y = ad_exp(x),
              *one = ad_scalar(tape, 1);
    assert_int_equal(ad_jvp(1, &y, 1, &x, &one, NULL, NULL), AD_ERR_ARG);
    assert_non_null(strstr(ad_tape_message(tape), "jvp"));
    ad_tape_clear_error(tape);
    assert_int_equal(ad_grad(1, &y, NULL, 1, &x, NULL, NULL), AD_ERR_ARG);
    assert_non_null(strstr(ad_tape_message(tape), "grad"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_functions_refuse_a_null_out_pointer),
        TAPE_TEST(test_copy_and_grad_refuse_null_destinations),
        cmocka_unit_test(test_freeing_a_persistent_tensor_twice_does_nothing_the_second_time),
        TAPE_TEST(test_reshape_to_the_same_shape_of_a_stale_handle_is_freed),
        TAPE_TEST(test_grad_with_a_stale_input_is_freed_not_another_gradient),
        TAPE_TEST(test_accessors_of_a_stale_handle_give_nan_and_null),
        TAPE_TEST(test_a_handle_kept_from_the_last_step_is_freed_in_checked_mode),
        TAPE_TEST(test_checked_mode_catches_handles_as_old_as_it_keeps),
        cmocka_unit_test(test_an_op_on_persistent_tensors_only_leaves_a_thread_error),
        cmocka_unit_test(test_a_null_input_does_not_set_the_thread_error),
        TAPE_TEST(test_max_over_a_group_holding_nan_gives_nan_gradients_to_the_group),
        TAPE_TEST(test_shapes_beyond_2_to_the_60_are_shape_errors_even_when_empty),
        TAPE_TEST(test_ops_on_empty_tensors_with_huge_dims_finish_at_once),
        cmocka_unit_test(test_a_0d_reshape_that_runs_out_of_memory_returns_null),
        TAPE_TEST(test_a_checkpoint_without_grad_whose_function_fails_says_so_on_the_tape),
        TAPE_TEST(test_grad_with_persistent_seeds_for_one_output_given_twice_works),
        TAPE_TEST(test_refused_hooks_and_null_results_leave_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
