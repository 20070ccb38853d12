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
        ad_tensor_from_doubles(tape, AD_F64, 2, shape, (double[]){1.0, NAN, 2.0, 5.0}));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_functions_refuse_a_null_out_pointer),
        TAPE_TEST(test_copy_and_grad_refuse_null_destinations),
        TAPE_TEST(test_reshape_to_the_same_shape_of_a_stale_handle_is_freed),
        TAPE_TEST(test_grad_with_a_stale_input_is_freed_not_another_gradient),
        TAPE_TEST(test_accessors_of_a_stale_handle_give_nan_and_null),
        TAPE_TEST(test_a_handle_kept_from_the_last_step_is_freed_in_checked_mode),
        TAPE_TEST(test_checked_mode_catches_handles_as_old_as_it_keeps),
        cmocka_unit_test(test_an_op_on_persistent_tensors_only_leaves_a_thread_error),
        cmocka_unit_test(test_a_null_input_does_not_set_the_thread_error),
        TAPE_TEST(test_max_over_a_group_holding_nan_gives_nan_gradients_to_the_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
