/* Unit tests of the shape and indexing ops (src/ops/shape.c): forward values
 * and gradients by hand, result shapes, float32, zero-size tensors, and every
 * error path, whose tape message must name the op and the shapes. */
#include "test_util.h"

#include <string.h>

/* ---- Helpers -------------------------------------------------------------------- */

/* 0, 1, 2, ... as a float64 leaf of the given shape. */
static ad_tensor *iota(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape)
{
    double v[64];
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    assert_true(n <= 64);
    for (int64_t i = 0; i < n; i++)
        v[i] = (double)i;
    return leaf(tape, dtype, ndim, shape, v);
}

/* d sum(w * y) / dx for weights w of y's shape: tells apart which output
 * element each gradient entry came from. */
static ad_tensor *grad_of_weighted(ad_tensor *y, ad_tensor *x, const double *w)
{
    assert_non_null(y);
    ad_tensor *weights =
        tensor(ad_tensor_tape(y), ad_tensor_dtype(y), ad_tensor_ndim(y), ad_tensor_shape(y), w);
    ad_tensor *g = NULL;
    ad_tensor *seed = weights;
    assert_int_equal(ad_grad(1, &y, &seed, 1, &x, &g, NULL), AD_OK);
    assert_non_null(g);
    return g;
}

/* The op failed with code and a message naming every part. */
static void assert_failed(ad_tape *tape, const ad_tensor *y, ad_status code, const char *op,
                          const char *part1, const char *part2)
{
    assert_null(y);
    assert_int_equal(ad_tape_status(tape), code);
    assert_message_has(tape, op);
    if (part1)
        assert_message_has(tape, part1);
    if (part2)
        assert_message_has(tape, part2);
}

/* ---- reshape and expand ---------------------------------------------------------------- */

static void test_reshape_infers_a_minus_one_dim(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, t[3] = {3, -1, 1}, want[3] = {3, 2, 1};
    ad_tensor *x = iota(tape, AD_F64, 2, s23);
    ad_tensor *y = ad_reshape(x, 3, t);
    assert_shape(y, 3, want);
    assert_exact(y, 6, (const double[]){0, 1, 2, 3, 4, 5});
    const int64_t flat[1] = {-1}, six[1] = {6};
    assert_shape(ad_reshape(x, 1, flat), 1, six);
    assert_exact(grad_of_sum(ad_reshape(x, 1, flat), x), 6, (const double[]){1, 1, 1, 1, 1, 1});
}

static void test_reshape_of_a_zero_size_tensor_keeps_zero_elements(void **state)
{
    ad_tape *tape = *state;
    const int64_t s03[2] = {0, 3}, t[3] = {3, 0, 5}, t_infer[2] = {-1, 3};
    ad_tensor *x = leaf(tape, AD_F64, 2, s03, NULL);
    assert_shape(ad_reshape(x, 3, t), 3, t);
    const int64_t want[2] = {0, 3};
    ad_tensor *y = ad_reshape(x, 2, t_infer);
    assert_shape(y, 2, want);
    assert_shape(grad_of_sum(ad_reshape(x, 3, t), x), 2, s03);
}

static void test_reshape_to_a_different_count_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, t[2] = {4, 2};
    ad_tensor *y = ad_reshape(iota(tape, AD_F64, 2, s23), 2, t);
    assert_failed(tape, y, AD_ERR_SHAPE, "reshape", "[2,3]", "[4,2]");
}

static void test_reshape_with_two_inferred_dims_names_the_target(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, t[2] = {-1, -1};
    ad_tensor *y = ad_reshape(iota(tape, AD_F64, 2, s23), 2, t);
    assert_failed(tape, y, AD_ERR_SHAPE, "reshape", "[2,3]", "[-1,-1]");
}

static void test_expand_adds_leading_dims_and_stretches_size_one_dims(void **state)
{
    ad_tape *tape = *state;
    const int64_t s21[2] = {2, 1}, to[3] = {2, 2, 3};
    ad_tensor *x = leaf(tape, AD_F64, 2, s21, (const double[]){1, 2});
    ad_tensor *y = ad_expand(x, 3, to);
    assert_shape(y, 3, to);
    assert_exact(y, 12, (const double[]){1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
    assert_exact(grad_of_sum(y, x), 2, (const double[]){6, 6});
}

static void test_expand_to_a_shape_that_does_not_broadcast_names_both(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2}, to[2] = {2, 3};
    ad_tensor *y = ad_expand(iota(tape, AD_F64, 1, s2), 2, to);
    assert_failed(tape, y, AD_ERR_SHAPE, "expand", "[2]", "[2,3]");
}

static void test_expand_to_a_negative_dim_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s1[1] = {1}, to[2] = {2, -1};
    ad_tensor *y = ad_expand(iota(tape, AD_F64, 1, s1), 2, to);
    assert_failed(tape, y, AD_ERR_SHAPE, "expand", "[1]", "[2,-1]");
}

static void test_shapes_with_too_many_elements_are_shape_errors(void **state)
{
    ad_tape *tape = *state;
    const int64_t s11[2] = {1, 1}, huge[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
    const int64_t wide[3] = {1, INT64_C(1) << 40, 0}, tall[3] = {INT64_C(1) << 40, 1, 0};
    ad_tensor *x = iota(tape, AD_F64, 2, s11);
    assert_failed(tape, ad_expand(x, 2, huge), AD_ERR_SHAPE, "expand", "[1,1]",
                  "[1099511627776,1099511627776]");
    ad_tape_clear_error(tape);

    const int64_t s0[1] = {0}, target[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 0};
    assert_failed(tape, ad_reshape(iota(tape, AD_F64, 1, s0), 3, target), AD_ERR_SHAPE, "reshape",
                  "[0]", "too many");
    ad_tape_clear_error(tape);

    /* Each operand fits (it is empty); the count of their broadcast shape
     * would overflow on the way to its zero. */
    ad_tensor *a = ad_tape_tensor(tape, AD_F64, 3, wide, NULL);
    ad_tensor *b = ad_tape_tensor(tape, AD_F64, 3, tall, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_failed(tape, ad_where(x, a, b), AD_ERR_SHAPE, "where", "[1,1099511627776,0] (a)",
                  "too many");
}

/* ---- slice and slice_scatter --------------------------------------------------------------- */

static void test_slice_follows_python_ranges(void **state)
{
    ad_tape *tape = *state;
    const int64_t s25[2] = {2, 5};
    ad_tensor *x = iota(tape, AD_F64, 2, s25); /* [[0..4], [5..9]] */

    ad_tensor *y = ad_slice(x, 1, 1, 5, 2); /* x[:, 1:5:2] */
    assert_shape(y, 2, (const int64_t[]){2, 2});
    assert_exact(y, 4, (const double[]){1, 3, 6, 8});

    y = ad_slice(x, -1, -2, INT64_MAX, 1); /* x[:, -2:] */
    assert_shape(y, 2, (const int64_t[]){2, 2});
    assert_exact(y, 4, (const double[]){3, 4, 8, 9});

    y = ad_slice(x, 1, -100, 100, 3); /* clamped: columns 0 and 3 */
    assert_exact(y, 4, (const double[]){0, 3, 5, 8});

    y = ad_slice(x, 0, 1, 2, 1); /* x[1:2] */
    assert_shape(y, 2, (const int64_t[]){1, 5});
    assert_exact(y, 5, (const double[]){5, 6, 7, 8, 9});

    y = ad_slice(x, 1, 4, -1, 1); /* x[:, 4:-1] = x[:, 4:4]: empty */
    assert_shape(y, 2, (const int64_t[]){2, 0});
}

static void test_slice_gradient_is_ones_placed_back_into_zeros(void **state)
{
    ad_tape *tape = *state;
    const int64_t s25[2] = {2, 5};
    ad_tensor *x = iota(tape, AD_F64, 2, s25);
    ad_tensor *g = grad_of_weighted(ad_slice(x, 1, 1, 5, 2), x, (const double[]){1, 2, 3, 4});
    assert_shape(g, 2, s25);
    assert_exact(g, 10, (const double[]){0, 1, 0, 2, 0, 0, 3, 0, 4, 0});
}

static void test_empty_slice_gives_a_zero_gradient_of_the_input_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s32[2] = {3, 2};
    ad_tensor *x = iota(tape, AD_F64, 2, s32);
    ad_tensor *y = ad_slice(x, 0, 2, 1, 1);
    assert_shape(y, 2, (const int64_t[]){0, 2});
    ad_tensor *g = grad_of_sum(y, x);
    assert_shape(g, 2, s32);
    assert_exact(g, 6, (const double[]){0, 0, 0, 0, 0, 0});
}

static void test_slice_scatter_places_x_at_start_and_step(void **state)
{
    ad_tape *tape = *state;
    const int64_t s22[2] = {2, 2};
    ad_tensor *x = iota(tape, AD_F64, 2, s22); /* [[0,1],[2,3]] */
    ad_tensor *y = ad_slice_scatter(x, -1, 5, 1, 3);
    assert_shape(y, 2, (const int64_t[]){2, 5});
    assert_exact(y, 10, (const double[]){0, 0, 0, 0, 1, 0, 2, 0, 0, 3});
    ad_tensor *g = grad_of_weighted(y, x, (const double[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    assert_exact(g, 4, (const double[]){2, 5, 7, 10});
}

static void test_slice_scatter_of_an_empty_x_is_all_zeros(void **state)
{
    ad_tape *tape = *state;
    const int64_t s02[2] = {0, 2};
    ad_tensor *x = leaf(tape, AD_F64, 2, s02, NULL);
    ad_tensor *y = ad_slice_scatter(x, 0, 3, 3, 1); /* start = length is fine when empty */
    assert_shape(y, 2, (const int64_t[]){3, 2});
    assert_exact(y, 6, (const double[]){0, 0, 0, 0, 0, 0});
    assert_shape(grad_of_sum(y, x), 2, s02);
}

static void test_slice_with_step_zero_is_an_argument_error_naming_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s25[2] = {2, 5};
    ad_tensor *y = ad_slice(iota(tape, AD_F64, 2, s25), 1, 0, 5, 0);
    assert_failed(tape, y, AD_ERR_ARG, "slice", "step 0", "[2,5]");
}

static void test_slice_with_a_negative_step_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s5[1] = {5};
    ad_tensor *y = ad_slice(iota(tape, AD_F64, 1, s5), 0, 4, 0, -1);
    assert_failed(tape, y, AD_ERR_ARG, "slice", "step -1", "[5]");
}

static void test_slice_axis_out_of_range_names_the_axis_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *y = ad_slice(iota(tape, AD_F64, 2, s23), 3, 0, 1, 1);
    assert_failed(tape, y, AD_ERR_AXIS, "slice: axis 3", "[2,3]", NULL);
}

static void test_slice_of_a_0d_tensor_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *y = ad_slice(ad_scalar(tape, 1.0), 0, 0, 1, 1);
    assert_failed(tape, y, AD_ERR_AXIS, "slice", "[]", NULL);
}

static void test_slice_scatter_that_does_not_fit_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s3[1] = {3};
    /* rows at 1, 3, 5 need length >= 6 */
    ad_tensor *y = ad_slice_scatter(iota(tape, AD_F64, 1, s3), 0, 5, 1, 2);
    assert_failed(tape, y, AD_ERR_SHAPE, "slice_scatter", "[3]", "length 5");
}

static void test_slice_scatter_with_a_negative_start_is_an_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    ad_tensor *y = ad_slice_scatter(iota(tape, AD_F64, 1, s2), 0, 5, -1, 1);
    assert_failed(tape, y, AD_ERR_SHAPE, "slice_scatter", "[2]", "start -1");
}

static void test_slice_scatter_with_step_zero_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    ad_tensor *y = ad_slice_scatter(iota(tape, AD_F64, 1, s2), 0, 5, 0, 0);
    assert_failed(tape, y, AD_ERR_ARG, "slice_scatter", "step 0", "[2]");
}

static void test_slice_and_slice_scatter_reach_the_last_of_eight_dims(void **state)
{
    ad_tape *tape = *state;
    const int64_t s8[8] = {1, 2, 1, 1, 1, 1, 1, 4};
    ad_tensor *x = iota(tape, AD_F64, 8, s8);
    ad_tensor *y = ad_slice(x, 7, 1, 4, 2);
    const int64_t want[8] = {1, 2, 1, 1, 1, 1, 1, 2};
    assert_shape(y, 8, want);
    assert_exact(y, 4, (const double[]){1, 3, 5, 7});
    ad_tensor *back = ad_slice_scatter(y, -1, 4, 1, 2);
    assert_shape(back, 8, s8);
    assert_exact(back, 8, (const double[]){0, 1, 0, 3, 0, 5, 0, 7});
}

/* ---- concat and stack -------------------------------------------------------------------- */

static void test_concat_joins_along_an_axis_and_slices_the_gradient_back(void **state)
{
    ad_tape *tape = *state;
    const int64_t s21[2] = {2, 1}, s22[2] = {2, 2};
    ad_tensor *a = leaf(tape, AD_F64, 2, s21, (const double[]){1, 2});
    ad_tensor *b = leaf(tape, AD_F64, 2, s22, (const double[]){3, 4, 5, 6});
    ad_tensor *xs[3] = {a, b, a};
    ad_tensor *y = ad_concat(3, xs, -1);
    assert_shape(y, 2, (const int64_t[]){2, 4});
    assert_exact(y, 8, (const double[]){1, 3, 4, 1, 2, 5, 6, 2});
    ad_tensor *seed =
        tensor(tape, AD_F64, 2, ad_tensor_shape(y), (const double[]){1, 2, 3, 4, 5, 6, 7, 8});
    ad_tensor *in[2] = {a, b}, *g[2];
    assert_int_equal(ad_grad(1, &y, &seed, 2, in, g, NULL), AD_OK);
    assert_exact(g[0], 2, (const double[]){1 + 4, 5 + 8}); /* a used twice */
    assert_exact(g[1], 4, (const double[]){2, 3, 6, 7});

    y = ad_concat(2, in, 0);
    assert_null(y); /* [2,1] and [2,2] differ on dim 1 */
    ad_tape_clear_error(tape);
    ad_tensor *rows[2] = {b, b};
    y = ad_concat(2, rows, 0);
    assert_shape(y, 2, (const int64_t[]){4, 2});
    assert_exact(y, 8, (const double[]){3, 4, 5, 6, 3, 4, 5, 6});
}

static void test_concat_mismatched_dims_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, s24[2] = {2, 4};
    ad_tensor *xs[2] = {iota(tape, AD_F64, 2, s23), iota(tape, AD_F64, 2, s24)};
    ad_tensor *y = ad_concat(2, xs, 0);
    assert_failed(tape, y, AD_ERR_SHAPE, "concat", "[2,3]", "[2,4]");
}

static void test_concat_of_different_ranks_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, s3[1] = {3};
    ad_tensor *xs[2] = {iota(tape, AD_F64, 2, s23), iota(tape, AD_F64, 1, s3)};
    ad_tensor *y = ad_concat(2, xs, 0);
    assert_failed(tape, y, AD_ERR_SHAPE, "concat", "[2,3]", "[3]");
}

static void test_concat_of_different_dtypes_is_a_dtype_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    ad_tensor *xs[2] = {iota(tape, AD_F64, 1, s2), iota(tape, AD_F32, 1, s2)};
    ad_tensor *y = ad_concat(2, xs, 0);
    assert_failed(tape, y, AD_ERR_DTYPE, "concat", "float32", "float64");
}

static void test_concat_axis_out_of_range_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s23);
    ad_tensor *xs[2] = {x, x};
    ad_tensor *y = ad_concat(2, xs, -3);
    assert_failed(tape, y, AD_ERR_AXIS, "concat: axis -3", "[2,3]", NULL);
}

static void test_concat_of_0d_tensors_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *xs[2] = {ad_scalar(tape, 1.0), ad_scalar(tape, 2.0)};
    ad_tensor *y = ad_concat(2, xs, 0);
    assert_failed(tape, y, AD_ERR_AXIS, "concat", "[]", "0-d");
}

/* One node takes any number of inputs (a long sequence's steps): 1000 here. */
static void test_concat_and_stack_of_a_thousand_inputs_and_their_gradients(void **state)
{
    ad_tape *tape = *state;
    const int64_t s1[1] = {1};
    ad_tensor *x = ad_requires_grad(iota(tape, AD_F64, 1, s1));
    ad_tensor *xs[1000];
    for (int i = 0; i < 1000; i++)
        xs[i] = ad_mul_scalar(x, i);
    ad_tensor *y = ad_concat(1000, xs, 0), *z = ad_stack(1000, xs, 1);
    assert_int_equal(ad_tensor_numel(y), 1000);
    assert_shape(z, 2, (int64_t[]){1, 1000});
    assert_close(999 * ad_value(x), ad_tensor_get(y, 999), 0, 0);
    assert_close(999 * ad_value(x), ad_tensor_get(z, 999), 0, 0);
    /* d sum(y) / dx = 0 + 1 + ... + 999 */
    assert_close(499500, ad_value(grad_of_sum(y, x)), 0, 0);
}

static void test_concat_of_many_inputs_gives_each_its_gradient(void **state)
{
    ad_tape *tape = *state;
    const int64_t s1[1] = {1};
    enum { N = 20 }; /* more than the sweep's 8 inline gradient slots */
    ad_tensor *xs[N], *g[N];
    for (int i = 0; i < N; i++)
        xs[i] = leaf(tape, AD_F64, 1, s1, (const double[]){(double)i});
    ad_tensor *y = ad_concat(N, xs, 0);
    assert_shape(y, 1, (const int64_t[]){N});
    double w[N];
    for (int i = 0; i < N; i++)
        w[i] = 10.0 * i;
    ad_tensor *seed = tensor(tape, AD_F64, 1, ad_tensor_shape(y), w);
    assert_int_equal(ad_grad(1, &y, &seed, N, xs, g, NULL), AD_OK);
    for (int i = 0; i < N; i++) {
        assert_close((double)i, ad_tensor_get(y, i), 0, 0);
        assert_close(w[i], ad_tensor_get(g[i], 0), 0, 0);
    }
}

static void test_concat_of_no_inputs_returns_null(void **state)
{
    ad_tape *tape = *state;
    assert_null(ad_concat(0, NULL, 0));
    assert_null(ad_stack(0, NULL, 0));
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_stack_inserts_a_new_axis(void **state)
{
    ad_tape *tape = *state;
    const int64_t s3[1] = {3};
    ad_tensor *a = leaf(tape, AD_F64, 1, s3, (const double[]){1, 2, 3});
    ad_tensor *b = leaf(tape, AD_F64, 1, s3, (const double[]){4, 5, 6});
    ad_tensor *xs[2] = {a, b};
    ad_tensor *y = ad_stack(2, xs, 0);
    assert_shape(y, 2, (const int64_t[]){2, 3});
    assert_exact(y, 6, (const double[]){1, 2, 3, 4, 5, 6});
    y = ad_stack(2, xs, -1);
    assert_shape(y, 2, (const int64_t[]){3, 2});
    assert_exact(y, 6, (const double[]){1, 4, 2, 5, 3, 6});
    ad_tensor *g = grad_of_weighted(y, b, (const double[]){1, 2, 3, 4, 5, 6});
    assert_exact(g, 3, (const double[]){2, 4, 6});
}

static void test_stack_of_0d_tensors_makes_a_vector(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *xs[3] = {ad_scalar(tape, 1), ad_scalar(tape, 2), ad_scalar(tape, 3)};
    ad_tensor *y = ad_stack(3, xs, 0);
    assert_shape(y, 1, (const int64_t[]){3});
    assert_exact(y, 3, (const double[]){1, 2, 3});
}

static void test_stack_of_unequal_shapes_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    ad_tensor *xs[2] = {iota(tape, AD_F64, 2, s23), iota(tape, AD_F64, 2, s32)};
    ad_tensor *y = ad_stack(2, xs, 0);
    assert_failed(tape, y, AD_ERR_SHAPE, "stack", "[2,3]", "[3,2]");
}

static void test_stack_axis_out_of_range_names_the_range_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s23);
    ad_tensor *xs[2] = {x, x};
    ad_tensor *y = ad_stack(2, xs, 3);
    assert_failed(tape, y, AD_ERR_AXIS, "stack: axis 3", "[-3, 2]", "[2,3]");
}

static void test_stack_of_eight_dim_tensors_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s8[8] = {1, 1, 1, 1, 1, 1, 1, 2};
    ad_tensor *x = iota(tape, AD_F64, 8, s8);
    ad_tensor *xs[2] = {x, x};
    ad_tensor *y = ad_stack(2, xs, 0);
    assert_failed(tape, y, AD_ERR_SHAPE, "stack", "[1,1,1,1,1,1,1,2]", NULL);
}

static void test_stack_brings_a_persistent_tensor_onto_the_tape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    ad_tensor *p;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 1, s2, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(p, (const double[]){7, 8}), AD_OK);
    ad_tensor *t = leaf(tape, AD_F64, 1, s2, (const double[]){1, 2});
    ad_tensor *xs[2] = {p, t};
    ad_tensor *y = ad_stack(2, xs, 1);
    assert_shape(y, 2, (const int64_t[]){2, 2});
    assert_exact(y, 4, (const double[]){7, 1, 8, 2});
    ad_tensor *seed = tensor(tape, AD_F64, 2, ad_tensor_shape(y), (const double[]){1, 2, 3, 4});
    ad_backward_opts o = {.seed = seed};
    assert_int_equal(ad_backward(y, &o), AD_OK);
    assert_exact(ad_tensor_grad(p), 2, (const double[]){1, 3});
    assert_exact(ad_tensor_grad(t), 2, (const double[]){2, 4});
    ad_tape_reset(tape);
    ad_tensor_free(p);
}

/* ---- index_select and index_add ------------------------------------------------------------ */

static void test_index_select_picks_slices_and_repeats_accumulate_in_the_gradient(void **state)
{
    ad_tape *tape = *state;
    const int64_t s32[2] = {3, 2};
    ad_tensor *x = iota(tape, AD_F64, 2, s32); /* [[0,1],[2,3],[4,5]] */
    const int64_t idx[4] = {2, 0, 2, 2};
    ad_tensor *y = ad_index_select(x, 0, 4, idx);
    assert_shape(y, 2, (const int64_t[]){4, 2});
    assert_exact(y, 8, (const double[]){4, 5, 0, 1, 4, 5, 4, 5});
    assert_exact(grad_of_sum(y, x), 6, (const double[]){1, 1, 0, 0, 3, 3});

    const int64_t cols[3] = {1, 1, 0};
    y = ad_index_select(x, -1, 3, cols);
    assert_shape(y, 2, (const int64_t[]){3, 3});
    assert_exact(y, 9, (const double[]){1, 1, 0, 3, 3, 2, 5, 5, 4});
}

static void test_index_select_with_no_indices_gives_an_empty_axis(void **state)
{
    ad_tape *tape = *state;
    const int64_t s32[2] = {3, 2};
    ad_tensor *x = iota(tape, AD_F64, 2, s32);
    ad_tensor *y = ad_index_select(x, 1, 0, NULL);
    assert_shape(y, 2, (const int64_t[]){3, 0});
    ad_tensor *g = grad_of_sum(y, x);
    assert_shape(g, 2, s32);
    assert_exact(g, 6, (const double[]){0, 0, 0, 0, 0, 0});
}

static void test_index_select_copies_the_indices(void **state)
{
    ad_tape *tape = *state;
    const int64_t s3[1] = {3};
    ad_tensor *x = iota(tape, AD_F64, 1, s3);
    int64_t idx[2] = {2, 0};
    ad_tensor *y = ad_index_select(x, 0, 2, idx);
    idx[0] = 1; /* the backward must use the indices given at the call */
    assert_exact(grad_of_sum(y, x), 3, (const double[]){1, 0, 1});
}

static void test_index_select_with_a_negative_index_names_the_index_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s32[2] = {3, 2};
    const int64_t idx[2] = {0, -1};
    ad_tensor *y = ad_index_select(iota(tape, AD_F64, 2, s32), 0, 2, idx);
    assert_failed(tape, y, AD_ERR_ARG, "index_select: index -1", "[0, 3)", "[3,2]");
}

static void test_index_select_with_an_index_past_the_end_names_the_index_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s32[2] = {3, 2};
    const int64_t idx[1] = {2};
    ad_tensor *y = ad_index_select(iota(tape, AD_F64, 2, s32), 1, 1, idx);
    assert_failed(tape, y, AD_ERR_ARG, "index_select: index 2", "[0, 2)", "[3,2]");
}

static void test_index_select_axis_out_of_range_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s32[2] = {3, 2};
    const int64_t idx[1] = {0};
    ad_tensor *y = ad_index_select(iota(tape, AD_F64, 2, s32), -3, 1, idx);
    assert_failed(tape, y, AD_ERR_AXIS, "index_select: axis -3", "[3,2]", NULL);
}

static void test_index_select_with_null_indices_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s3[1] = {3};
    ad_tensor *y = ad_index_select(iota(tape, AD_F64, 1, s3), 0, 2, NULL);
    assert_failed(tape, y, AD_ERR_ARG, "index_select", "NULL", "[3]");
}

static void test_index_add_sums_repeated_indices(void **state)
{
    ad_tape *tape = *state;
    const int64_t s32[2] = {3, 2};
    ad_tensor *x = iota(tape, AD_F64, 2, s32); /* [[0,1],[2,3],[4,5]] */
    const int64_t idx[3] = {1, 3, 1};
    ad_tensor *y = ad_index_add(x, 0, 4, 3, idx);
    assert_shape(y, 2, (const int64_t[]){4, 2});
    assert_exact(y, 8, (const double[]){0, 0, 4, 6, 0, 0, 2, 3});
    ad_tensor *g = grad_of_weighted(y, x, (const double[]){1, 2, 3, 4, 5, 6, 7, 8});
    assert_exact(g, 6, (const double[]){3, 4, 7, 8, 3, 4});
}

static void test_index_add_with_a_count_unlike_the_axis_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s32[2] = {3, 2};
    const int64_t idx[2] = {0, 1};
    ad_tensor *y = ad_index_add(iota(tape, AD_F64, 2, s32), 0, 4, 2, idx);
    assert_failed(tape, y, AD_ERR_SHAPE, "index_add", "2 indices", "[3,2]");
}

static void test_index_add_with_an_index_past_the_length_names_it(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    const int64_t idx[2] = {0, 4};
    ad_tensor *y = ad_index_add(iota(tape, AD_F64, 1, s2), 0, 4, 2, idx);
    assert_failed(tape, y, AD_ERR_ARG, "index_add: index 4", "[0, 4)", "[2]");
}

static void test_index_add_with_a_negative_length_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    const int64_t idx[2] = {0, 0};
    ad_tensor *y = ad_index_add(iota(tape, AD_F64, 1, s2), 0, -1, 2, idx);
    assert_failed(tape, y, AD_ERR_SHAPE, "index_add", "length -1", "[2]");
}

/* ---- gather and scatter_add ------------------------------------------------------------------ */

static void test_gather_picks_along_an_axis_as_torch(void **state)
{
    ad_tape *tape = *state;
    /* torch.gather(torch.tensor([[1,2],[3,4]]), 1, torch.tensor([[0,0],[1,0]])) */
    const int64_t s22[2] = {2, 2};
    ad_tensor *x = leaf(tape, AD_F64, 2, s22, (const double[]){1, 2, 3, 4});
    const int64_t idx[4] = {0, 0, 1, 0};
    ad_tensor *y = ad_gather(x, 1, 2, s22, idx);
    assert_shape(y, 2, s22);
    assert_exact(y, 4, (const double[]){1, 1, 4, 3});
    assert_exact(grad_of_sum(y, x), 4, (const double[]){2, 0, 1, 1});
}

static void test_gather_with_a_smaller_or_longer_index(void **state)
{
    ad_tape *tape = *state;
    const int64_t s34[2] = {3, 4};
    ad_tensor *x = iota(tape, AD_F64, 2, s34); /* rows 0-3, 4-7, 8-11 */
    /* index [2,5] along axis 1: fewer rows than x, more columns than x has. */
    const int64_t ishape[2] = {2, 5}, idx[10] = {3, 2, 1, 0, 3, 0, 0, 1, 1, 2};
    ad_tensor *y = ad_gather(x, -1, 2, ishape, idx);
    assert_shape(y, 2, ishape);
    assert_exact(y, 10, (const double[]){3, 2, 1, 0, 3, 4, 4, 5, 5, 6});
    ad_tensor *g = grad_of_sum(y, x);
    assert_shape(g, 2, s34);
    assert_exact(g, 12, (const double[]){1, 1, 1, 2, 2, 2, 1, 0, 0, 0, 0, 0});
}

static void test_gather_index_out_of_range_names_the_index_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s22[2] = {2, 2};
    const int64_t idx[4] = {0, 1, 2, 0};
    ad_tensor *y = ad_gather(iota(tape, AD_F64, 2, s22), 1, 2, s22, idx);
    assert_failed(tape, y, AD_ERR_ARG, "gather: index 2", "[0, 2)", "[2,2]");
}

static void test_gather_negative_index_names_the_index_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s22[2] = {2, 2};
    const int64_t idx[4] = {0, -1, 1, 0};
    ad_tensor *y = ad_gather(iota(tape, AD_F64, 2, s22), 0, 2, s22, idx);
    assert_failed(tape, y, AD_ERR_ARG, "gather: index -1", "[0, 2)", "[2,2]");
}

static void test_gather_index_larger_off_the_axis_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s22[2] = {2, 2}, ishape[2] = {3, 1};
    const int64_t idx[3] = {0, 0, 0};
    ad_tensor *y = ad_gather(iota(tape, AD_F64, 2, s22), 1, 2, ishape, idx);
    assert_failed(tape, y, AD_ERR_SHAPE, "gather", "[3,1]", "[2,2]");
}

static void test_gather_index_of_another_rank_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s22[2] = {2, 2}, ishape[1] = {2};
    const int64_t idx[2] = {0, 0};
    ad_tensor *y = ad_gather(iota(tape, AD_F64, 2, s22), 1, 1, ishape, idx);
    assert_failed(tape, y, AD_ERR_SHAPE, "gather", "1 dims", "[2,2]");
}

static void test_gather_axis_out_of_range_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s22[2] = {2, 2};
    const int64_t idx[4] = {0, 0, 0, 0};
    ad_tensor *y = ad_gather(iota(tape, AD_F64, 2, s22), 2, 2, s22, idx);
    assert_failed(tape, y, AD_ERR_AXIS, "gather: axis 2", "[2,2]", NULL);
}

static void test_scatter_add_adds_src_at_index_as_torch(void **state)
{
    ad_tape *tape = *state;
    /* torch.zeros(3, 5).scatter_add_(0, index, torch.ones(2, 5)) */
    const int64_t s25[2] = {2, 5}, to[2] = {3, 5};
    ad_tensor *src = leaf(tape, AD_F64, 2, s25, (const double[]){1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
    const int64_t idx[10] = {0, 1, 2, 0, 0, 0, 1, 2, 2, 0};
    ad_tensor *y = ad_scatter_add(src, 0, 2, to, idx);
    assert_shape(y, 2, to);
    assert_exact(y, 15, (const double[]){2, 0, 0, 1, 2, 0, 2, 0, 0, 0, 0, 0, 2, 1, 0});
    double w[15];
    for (int i = 0; i < 15; i++)
        w[i] = (double)i;
    /* dsrc[i][j] = w[idx[i][j]][j] */
    ad_tensor *g = grad_of_weighted(y, src, w);
    assert_exact(g, 10, (const double[]){0, 6, 12, 3, 4, 0, 6, 12, 13, 4});
}

static void test_scatter_add_index_out_of_range_names_the_index_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2}, to[1] = {3};
    const int64_t idx[2] = {0, 3};
    ad_tensor *y = ad_scatter_add(iota(tape, AD_F64, 1, s2), 0, 1, to, idx);
    assert_failed(tape, y, AD_ERR_ARG, "scatter_add: index 3", "[0, 3)", "[3]");
}

static void test_scatter_add_src_larger_off_the_axis_names_both_shapes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, to[2] = {4, 2};
    const int64_t idx[6] = {0, 0, 0, 0, 0, 0};
    ad_tensor *y = ad_scatter_add(iota(tape, AD_F64, 2, s23), 0, 2, to, idx);
    assert_failed(tape, y, AD_ERR_SHAPE, "scatter_add", "[2,3]", "[4,2]");
}

static void test_scatter_add_rank_unlike_src_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, to[1] = {6};
    const int64_t idx[6] = {0, 0, 0, 0, 0, 0};
    ad_tensor *y = ad_scatter_add(iota(tape, AD_F64, 2, s23), 0, 1, to, idx);
    assert_failed(tape, y, AD_ERR_SHAPE, "scatter_add", "1 dims", "[2,3]");
}

static void test_scatter_add_negative_target_dim_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2}, to[1] = {-4};
    const int64_t idx[2] = {0, 0};
    ad_tensor *y = ad_scatter_add(iota(tape, AD_F64, 1, s2), 0, 1, to, idx);
    assert_failed(tape, y, AD_ERR_SHAPE, "scatter_add", "[-4]", NULL);
}

/* ---- where ------------------------------------------------------------------------------------
 */

static void test_where_selects_with_broadcasting(void **state)
{
    ad_tape *tape = *state;
    const int64_t s21[2] = {2, 1}, s3[1] = {3};
    ad_tensor *cond = tensor(tape, AD_F64, 2, s21, (const double[]){1, 0});
    ad_tensor *a = leaf(tape, AD_F64, 1, s3, (const double[]){1, 2, 3});
    ad_tensor *b = leaf(tape, AD_F64, 0, NULL, (const double[]){-1});
    ad_tensor *y = ad_where(cond, a, b);
    assert_shape(y, 2, (const int64_t[]){2, 3});
    assert_exact(y, 6, (const double[]){1, 2, 3, -1, -1, -1});
    ad_tensor *in[2] = {a, b}, *g[2];
    ad_tensor *seed =
        tensor(tape, AD_F64, 2, ad_tensor_shape(y), (const double[]){1, 2, 3, 4, 5, 6});
    assert_int_equal(ad_grad(1, &y, &seed, 2, in, g, NULL), AD_OK);
    assert_exact(g[0], 3, (const double[]){1, 2, 3});
    assert_shape(g[1], 0, NULL);
    assert_exact(g[1], 1, (const double[]){15});
}

static void test_where_counts_any_nonzero_and_nan_as_true(void **state)
{
    ad_tape *tape = *state;
    const int64_t s4[1] = {4};
    ad_tensor *cond = tensor(tape, AD_F64, 1, s4, (const double[]){-0.5, 0, NAN, -0.0});
    ad_tensor *a = tensor(tape, AD_F64, 1, s4, (const double[]){1, 2, 3, 4});
    ad_tensor *b = tensor(tape, AD_F64, 1, s4, (const double[]){5, 6, 7, 8});
    assert_exact(ad_where(cond, a, b), 4, (const double[]){1, 6, 3, 8});
}

static void test_where_gradient_is_poisoned_by_nan_in_the_untaken_branch_as_torch(void **state)
{
    ad_tape *tape = *state;
    /* where(x > 0, sqrt(x), 0) at x = -1: the value is fine, but sqrt's own
     * gradient at -1 is NaN and 0 * NaN is NaN (PyTorch gives NaN too). */
    const int64_t s2[1] = {2};
    ad_tensor *x = leaf(tape, AD_F64, 1, s2, (const double[]){-1, 4});
    ad_tensor *cond = tensor(tape, AD_F64, 1, s2, (const double[]){0, 1});
    ad_tensor *zero = ad_scalar(tape, 0.0);
    ad_tensor *y = ad_where(cond, ad_sqrt(x), zero);
    assert_exact(y, 2, (const double[]){0, 2});
    ad_tensor *g = grad_of_sum(y, x);
    assert_true(isnan(ad_tensor_get(g, 0)));
    assert_close(0.25, ad_tensor_get(g, 1), 1e-15, 0);
}

static void test_where_shapes_that_do_not_broadcast_name_all_three(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2}, s3[1] = {3}, s1[1] = {1};
    ad_tensor *y =
        ad_where(iota(tape, AD_F64, 1, s2), iota(tape, AD_F64, 1, s3), iota(tape, AD_F64, 1, s1));
    assert_failed(tape, y, AD_ERR_SHAPE, "where", "[2] (cond)", "[3] (a)");
    assert_message_has(tape, "[1] (b)");
}

static void test_where_with_a_cond_of_another_dtype_is_a_dtype_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    ad_tensor *y =
        ad_where(iota(tape, AD_F32, 1, s2), iota(tape, AD_F64, 1, s2), iota(tape, AD_F64, 1, s2));
    assert_failed(tape, y, AD_ERR_DTYPE, "where", "float32", "float64");
}

/* ---- float32, zero-size tensors, NULL inputs --------------------------------------------------
 */

static void test_indexing_ops_compute_in_float32(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *x = leaf(tape, AD_F32, 2, s23, (const double[]){0.5, 1.5, 2.5, 3.5, 4.5, 5.5});

    ad_tensor *y = ad_slice(x, 1, 0, 3, 2);
    assert_int_equal(ad_tensor_dtype(y), AD_F32);
    assert_exact(y, 4, (const double[]){0.5, 2.5, 3.5, 5.5});
    ad_tensor *g = grad_of_sum(y, x);
    assert_int_equal(ad_tensor_dtype(g), AD_F32);
    assert_exact(g, 6, (const double[]){1, 0, 1, 1, 0, 1});

    assert_exact(ad_slice_scatter(ad_slice(x, 0, 1, 2, 1), 0, 2, 0, 1), 6,
                 (const double[]){3.5, 4.5, 5.5, 0, 0, 0});

    ad_tensor *xs[2] = {x, x};
    assert_exact(ad_concat(2, xs, 1), 12,
                 (const double[]){0.5, 1.5, 2.5, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 3.5, 4.5, 5.5});
    assert_exact(ad_stack(2, xs, 0), 12,
                 (const double[]){0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5});

    const int64_t idx[3] = {2, 2, 0};
    assert_exact(ad_index_select(x, 1, 3, idx), 6, (const double[]){2.5, 2.5, 0.5, 5.5, 5.5, 3.5});
    assert_exact(ad_index_add(x, 1, 3, 3, idx), 6, (const double[]){2.5, 0, 2, 5.5, 0, 8});
    g = grad_of_sum(ad_index_select(x, 1, 3, idx), x);
    assert_exact(g, 6, (const double[]){1, 0, 2, 1, 0, 2});

    const int64_t gidx[6] = {1, 0, 1, 0, 0, 1};
    assert_exact(ad_gather(x, 0, 2, s23, gidx), 6, (const double[]){3.5, 1.5, 5.5, 0.5, 1.5, 5.5});
    assert_exact(ad_scatter_add(x, 0, 2, s23, gidx), 6,
                 (const double[]){3.5, 1.5 + 4.5, 0, 0.5, 0, 2.5 + 5.5});

    ad_tensor *cond = tensor(tape, AD_F32, 1, (const int64_t[]){3}, (const double[]){1, 0, 1});
    ad_tensor *zero = ad_scalar_of(tape, AD_F32, 0);
    y = ad_where(cond, x, zero);
    assert_int_equal(ad_tensor_dtype(y), AD_F32);
    assert_exact(y, 6, (const double[]){0.5, 0, 2.5, 3.5, 0, 5.5});
    assert_exact(grad_of_sum(y, x), 6, (const double[]){1, 0, 1, 1, 0, 1});
}

static void test_indexing_ops_on_zero_size_tensors_give_empty_gradients(void **state)
{
    ad_tape *tape = *state;
    const int64_t s03[2] = {0, 3}, s23[2] = {2, 3};
    ad_tensor *e = leaf(tape, AD_F64, 2, s03, NULL);
    ad_tensor *x = iota(tape, AD_F64, 2, s23);

    ad_tensor *y = ad_slice(e, 1, 1, 3, 1);
    assert_shape(y, 2, (const int64_t[]){0, 2});
    assert_shape(grad_of_sum(y, e), 2, s03);

    ad_tensor *xs[2] = {e, x}, *g[2];
    y = ad_concat(2, xs, 0);
    assert_shape(y, 2, s23);
    assert_exact(y, 6, (const double[]){0, 1, 2, 3, 4, 5});
    grads_of_sum(y, 2, xs, g);
    assert_shape(g[0], 2, s03);
    assert_exact(g[1], 6, (const double[]){1, 1, 1, 1, 1, 1});

    const int64_t idx[2] = {2, 0};
    y = ad_index_select(e, 1, 2, idx);
    assert_shape(y, 2, (const int64_t[]){0, 2});
    assert_shape(grad_of_sum(y, e), 2, s03);

    y = ad_index_add(e, 0, 2, 0, NULL);
    assert_shape(y, 2, s23);
    assert_exact(y, 6, (const double[]){0, 0, 0, 0, 0, 0});
    assert_shape(grad_of_sum(y, e), 2, s03);

    y = ad_gather(x, 0, 2, s03, NULL);
    assert_shape(y, 2, s03);
    assert_exact(grad_of_sum(y, x), 6, (const double[]){0, 0, 0, 0, 0, 0});

    y = ad_scatter_add(e, 0, 2, s23, NULL);
    assert_shape(y, 2, s23);
    assert_exact(y, 6, (const double[]){0, 0, 0, 0, 0, 0});
    assert_shape(grad_of_sum(y, e), 2, s03);

    ad_tensor *cond = tensor(tape, AD_F64, 1, (const int64_t[]){3}, (const double[]){1, 0, 1});
    y = ad_where(cond, e, ad_scalar(tape, 1));
    assert_shape(y, 2, s03);
    assert_shape(grad_of_sum(y, e), 2, s03);

    const int64_t s0[1] = {0};
    ad_tensor *v = leaf(tape, AD_F64, 1, s0, NULL);
    ad_tensor *vs[2] = {v, v};
    y = ad_stack(2, vs, 0);
    assert_shape(y, 2, (const int64_t[]){2, 0});
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_indexing_ops_given_null_return_null_without_an_error_of_their_own(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    const int64_t idx[1] = {0};
    ad_tensor *x = iota(tape, AD_F64, 1, s2);
    ad_tensor *xs[2] = {x, NULL};
    assert_null(ad_slice(NULL, 0, 0, 1, 1));
    assert_null(ad_slice_scatter(NULL, 0, 1, 0, 1));
    assert_null(ad_concat(2, xs, 0));
    assert_null(ad_stack(2, xs, 0));
    assert_null(ad_index_select(NULL, 0, 1, idx));
    assert_null(ad_index_add(NULL, 0, 1, 1, idx));
    assert_null(ad_gather(NULL, 0, 1, s2, idx));
    assert_null(ad_scatter_add(NULL, 0, 1, s2, idx));
    assert_null(ad_where(NULL, x, x));
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_an_errored_tape_makes_every_indexing_op_return_null(void **state)
{
    ad_tape *tape = *state;
    const int64_t s2[1] = {2};
    const int64_t idx[1] = {0};
    ad_tensor *x = iota(tape, AD_F64, 1, s2);
    ad_tensor *xs[2] = {x, x};
    assert_null(ad_slice(x, 0, 0, 1, 0)); /* the first error */
    assert_null(ad_slice(x, 0, 0, 1, 1));
    assert_null(ad_concat(2, xs, 0));
    assert_null(ad_stack(2, xs, 0));
    assert_null(ad_index_select(x, 0, 1, idx));
    assert_null(ad_gather(x, 0, 1, s2, idx));
    assert_null(ad_where(x, x, x));
    assert_message_has(tape, "slice: step 0");
}

/* ---- Second order, by hand ------------------------------------------------------------------- */

static void test_second_derivative_flows_through_gather_and_where(void **state)
{
    ad_tape *tape = *state;
    /* L = sum(where(c, gather(x)^2, 0)): dL/dx_j = 2 x_j * (taken count of j),
     * d2L/dx_j2 = 2 * count. x = [1, 2, 3], index [2, 2, 0], cond [1, 1, 0]. */
    const int64_t s3[1] = {3};
    ad_tensor *x = leaf(tape, AD_F64, 1, s3, (const double[]){1, 2, 3});
    const int64_t idx[3] = {2, 2, 0};
    ad_tensor *cond = tensor(tape, AD_F64, 1, s3, (const double[]){1, 1, 0});
    ad_tensor *y = ad_where(cond, ad_square(ad_gather(x, 0, 1, s3, idx)), ad_scalar(tape, 0));
    ad_tensor *loss = ad_sum_all(y), *g;
    ad_backward_opts o = {.create_graph = true};
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, &o), AD_OK);
    assert_exact(g, 3, (const double[]){0, 0, 12});
    ad_tensor *gsum = ad_sum_all(g), *h;
    assert_int_equal(ad_grad(1, &gsum, NULL, 1, &x, &h, NULL), AD_OK);
    assert_exact(h, 3, (const double[]){0, 0, 4});
}

/* ---- Compositions: squeeze, unsqueeze, flatten, unflatten, expand_as ------------------ */

static void test_squeeze_drops_size_one_dims_and_keeps_others_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[4] = {1, 3, 1, 2}, all[2] = {3, 2}, one[3] = {1, 3, 2}, same[4] = {1, 3, 1, 2};
    ad_tensor *x = iota(tape, AD_F64, 4, s);
    assert_shape(ad_squeeze(x, 0, NULL), 2, all);
    assert_exact(ad_squeeze(x, 0, NULL), 6, (const double[]){0, 1, 2, 3, 4, 5});
    assert_shape(ad_squeeze(x, 1, (const int[]){-2}), 3, one);
    /* torch: squeezing a dim that is not 1 is a no-op */
    assert_ptr_equal(ad_squeeze(x, 1, (const int[]){1}), x);
    assert_shape(ad_squeeze(x, 1, (const int[]){1}), 4, same);
    ad_tensor *z = leaf(tape, AD_F64, 0, NULL, (const double[]){7});
    assert_ptr_equal(ad_squeeze(z, 1, (const int[]){-1}), z);
    assert_ptr_equal(ad_squeeze(z, 0, NULL), z);
    assert_exact(grad_of_sum(ad_squeeze(x, 0, NULL), x), 6, (const double[]){1, 1, 1, 1, 1, 1});
}

static void test_squeeze_axis_out_of_range_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 1};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_squeeze(x, 1, (const int[]){2}), AD_ERR_AXIS, "squeeze", "axis 2",
                  "[2,1]");
}

static void test_squeeze_of_0d_with_axis_1_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *z = leaf(tape, AD_F64, 0, NULL, (const double[]){7});
    assert_failed(tape, ad_squeeze(z, 1, (const int[]){1}), AD_ERR_AXIS, "squeeze", "axis 1", "[]");
}

static void test_squeeze_with_a_repeated_axis_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {1, 1};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_squeeze(x, 2, (const int[]){0, -2}), AD_ERR_AXIS, "squeeze", "repeated",
                  "[1,1]");
}

static void test_unsqueeze_inserts_a_dim_at_negative_and_positive_axes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3}, front[3] = {1, 2, 3}, back[3] = {2, 3, 1}, mid[3] = {2, 1, 3},
                  one[1] = {1};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_shape(ad_unsqueeze(x, 0), 3, front);
    assert_shape(ad_unsqueeze(x, -1), 3, back);
    assert_shape(ad_unsqueeze(x, 2), 3, back);
    assert_shape(ad_unsqueeze(x, -2), 3, mid);
    assert_exact(ad_unsqueeze(x, 1), 6, (const double[]){0, 1, 2, 3, 4, 5});
    ad_tensor *z = leaf(tape, AD_F32, 0, NULL, (const double[]){7});
    assert_shape(ad_unsqueeze(z, -1), 1, one);
    assert_exact(ad_unsqueeze(z, 0), 1, (const double[]){7});
}

static void test_unsqueeze_axis_out_of_range_names_the_range_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_unsqueeze(x, 3), AD_ERR_AXIS, "unsqueeze", "[-3, 2]", "[2,3]");
}

static void test_unsqueeze_of_eight_dims_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[8] = {1, 1, 1, 1, 1, 1, 1, 2};
    ad_tensor *x = iota(tape, AD_F64, 8, s);
    assert_failed(tape, ad_unsqueeze(x, 0), AD_ERR_SHAPE, "unsqueeze", "most dims", NULL);
}

static void test_flatten_merges_a_range_of_dims_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[4] = {2, 3, 0, 2}, mid[3] = {2, 0, 2}, all[1] = {0}, same[4] = {2, 3, 0, 2},
                  one[1] = {1};
    ad_tensor *x = leaf(tape, AD_F64, 4, s, NULL);
    assert_shape(ad_flatten(x, 1, 2), 3, mid);
    assert_shape(ad_flatten(x, 0, -1), 1, all);
    assert_shape(ad_flatten(x, -2, 2), 4, same);
    assert_shape(grad_of_sum(ad_flatten(x, 0, -1), x), 4, s);
    ad_tensor *z = leaf(tape, AD_F64, 0, NULL, (const double[]){7});
    assert_shape(ad_flatten(z, 0, -1), 1, one);
    const int64_t s23[2] = {2, 3}, six[1] = {6};
    ad_tensor *y = ad_flatten(iota(tape, AD_F32, 2, s23), 0, 1);
    assert_shape(y, 1, six);
    assert_exact(y, 6, (const double[]){0, 1, 2, 3, 4, 5});
}

static void test_flatten_with_start_after_end_names_both(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 3, 4};
    ad_tensor *x = iota(tape, AD_F64, 3, s);
    assert_failed(tape, ad_flatten(x, 2, 1), AD_ERR_AXIS, "flatten", "start 2 comes after end 1",
                  "[2,3,4]");
}

static void test_flatten_axis_out_of_range_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_flatten(x, 0, 2), AD_ERR_AXIS, "flatten", "axis 2", "[2,3]");
}

static void test_unflatten_splits_a_dim_and_infers_minus_one(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 12}, want[3] = {2, 3, 4}, want2[4] = {2, 2, 3, 2};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, NULL);
    assert_shape(ad_unflatten(x, 1, 2, (const int64_t[]){3, -1}), 3, want);
    assert_shape(ad_unflatten(x, -1, 3, (const int64_t[]){2, 3, 2}), 4, want2);
    const int64_t z[2] = {2, 0}, zw[3] = {2, 0, 5};
    assert_shape(ad_unflatten(leaf(tape, AD_F64, 2, z, NULL), 1, 2, (const int64_t[]){0, 5}), 3,
                 zw);
}

static void test_unflatten_with_sizes_that_do_not_multiply_names_them(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 12};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, NULL);
    assert_failed(tape, ad_unflatten(x, 1, 2, (const int64_t[]){5, -1}), AD_ERR_SHAPE, "unflatten",
                  "[5,-1]", "[2,12]");
}

static void test_unflatten_of_zero_with_minus_one_is_ambiguous_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 0};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, NULL);
    assert_failed(tape, ad_unflatten(x, 1, 2, (const int64_t[]){0, -1}), AD_ERR_SHAPE, "unflatten",
                  "[0,-1]", "[2,0]");
}

static void test_unflatten_with_no_sizes_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 12};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, NULL);
    assert_failed(tape, ad_unflatten(x, 1, 0, NULL), AD_ERR_SHAPE, "unflatten", "0 sizes",
                  "[2,12]");
}

static void test_expand_as_takes_the_other_shape_and_sums_the_gradient_back(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 1}, t[3] = {3, 2, 2};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    ad_tensor *other = leaf(tape, AD_F64, 3, t, NULL);
    ad_tensor *y = ad_expand_as(x, other);
    assert_shape(y, 3, t);
    assert_exact(y, 12, (const double[]){0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1});
    assert_exact(grad_of_sum(y, x), 2, (const double[]){6, 6});
    assert_failed(tape, ad_expand_as(other, x), AD_ERR_SHAPE, "expand", "[3,2,2]", "[2,1]");
}

/* ---- Compositions: split, chunk, unbind ------------------------------------------------ */

static void test_split_gives_pieces_of_a_size_the_last_shorter(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {5, 2}, p2[2] = {2, 2}, p1[2] = {1, 2};
    ad_tensor *x = iota(tape, AD_F64, 2, s), *out[4];
    assert_int_equal(ad_split(x, 0, 2, 4, out), 3);
    assert_shape(out[0], 2, p2);
    assert_shape(out[2], 2, p1);
    assert_exact(out[1], 4, (const double[]){4, 5, 6, 7});
    assert_exact(out[2], 2, (const double[]){8, 9});
    /* only the used pieces get a gradient */
    assert_exact(grad_of_sum(out[1], x), 10, (const double[]){0, 0, 0, 0, 1, 1, 1, 1, 0, 0});
    assert_int_equal(ad_split(x, -1, 5, 4, out), 1);
    assert_exact(out[0], 10, (const double[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

static void test_split_of_an_empty_axis_gives_one_empty_piece_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {0, 3};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, NULL), *out[2];
    assert_int_equal(ad_split(x, 0, 2, 2, out), 1);
    assert_shape(out[0], 2, s);
    assert_int_equal(ad_split(x, 0, 0, 2, out), 1);
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_split_into_too_few_slots_names_the_count(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {5};
    ad_tensor *x = iota(tape, AD_F64, 1, s), *out[2] = {x, x};
    assert_int_equal(ad_split(x, 0, 2, 2, out), 0);
    assert_null(out[0]);
    assert_null(out[1]);
    assert_failed(tape, NULL, AD_ERR_ARG, "split", "3 pieces", "room for 2");
}

static void test_split_of_size_zero_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {5};
    ad_tensor *x = iota(tape, AD_F64, 1, s), *out[2];
    assert_int_equal(ad_split(x, 0, 0, 2, out), 0);
    assert_failed(tape, NULL, AD_ERR_ARG, "split", "size 0", "[5]");
}

static void test_split_sizes_gives_pieces_of_the_sizes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 5}, p0[2] = {2, 0};
    ad_tensor *x = iota(tape, AD_F32, 2, s), *out[3];
    assert_int_equal(ad_split_sizes(x, 1, 3, (const int64_t[]){2, 0, 3}, out), 3);
    assert_exact(out[0], 4, (const double[]){0, 1, 5, 6});
    assert_shape(out[1], 2, p0);
    assert_exact(out[2], 6, (const double[]){2, 3, 4, 7, 8, 9});
}

static void test_split_sizes_that_do_not_sum_to_the_dim_name_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {5};
    ad_tensor *x = iota(tape, AD_F64, 1, s), *out[2];
    assert_int_equal(ad_split_sizes(x, 0, 2, (const int64_t[]){2, 2}, out), 0);
    assert_failed(tape, NULL, AD_ERR_ARG, "split_sizes", "sum to 5", "[5]");
}

static void test_chunk_may_give_fewer_pieces_than_asked_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s6[1] = {6}, s5[1] = {5}, two[1] = {2}, one[1] = {1};
    ad_tensor *out[4];
    assert_int_equal(ad_chunk(iota(tape, AD_F64, 1, s6), 0, 4, out), 3);
    assert_exact(out[2], 2, (const double[]){4, 5});
    assert_null(out[3]);
    assert_int_equal(ad_chunk(iota(tape, AD_F64, 1, s5), -1, 4, out), 3);
    assert_shape(out[1], 1, two);
    assert_shape(out[2], 1, one);
    const int64_t s02[2] = {0, 2};
    assert_int_equal(ad_chunk(leaf(tape, AD_F64, 2, s02, NULL), 0, 3, out), 3);
    assert_shape(out[2], 2, s02);
}

static void test_chunk_into_zero_pieces_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {6};
    ad_tensor *out[1];
    assert_int_equal(ad_chunk(iota(tape, AD_F64, 1, s), 0, 0, out), 0);
    assert_failed(tape, NULL, AD_ERR_ARG, "chunk", "0 chunks", "[6]");
}

static void test_unbind_removes_the_axis_and_each_slice_gets_its_gradient(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3}, col[1] = {2};
    ad_tensor *x = iota(tape, AD_F64, 2, s), *out[3];
    assert_int_equal(ad_unbind(x, 1, 3, out), 3);
    assert_shape(out[0], 1, col);
    assert_exact(out[2], 2, (const double[]){2, 5});
    ad_tensor *y = ad_add(out[0], ad_mul_scalar(out[2], 3));
    assert_exact(grad_of_sum(y, x), 6, (const double[]){1, 0, 3, 1, 0, 3});
    const int64_t s02[2] = {0, 2};
    assert_int_equal(ad_unbind(leaf(tape, AD_F64, 2, s02, NULL), 0, 0, NULL), 0);
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG); /* out is NULL */
}

static void test_unbind_of_an_empty_axis_gives_no_pieces_and_no_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s02[2] = {0, 2};
    ad_tensor *out[1] = {NULL};
    assert_int_equal(ad_unbind(leaf(tape, AD_F64, 2, s02, NULL), 0, 1, out), 0);
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_unbind_into_too_few_slots_names_the_count(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s), *out[2];
    assert_int_equal(ad_unbind(x, -1, 2, out), 0);
    assert_failed(tape, NULL, AD_ERR_ARG, "unbind", "3 pieces", "room for 2");
}

static void test_multi_output_ops_given_null_return_zero_and_null_pieces(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *out[2] = {(ad_tensor *)tape, (ad_tensor *)tape};
    assert_int_equal(ad_split(NULL, 0, 1, 2, out), 0);
    assert_null(out[0]);
    assert_null(out[1]);
    assert_int_equal(ad_chunk(NULL, 0, 2, out), 0);
    assert_int_equal(ad_unbind(NULL, 0, 2, out), 0);
    assert_int_equal(ad_split_sizes(NULL, 0, 1, (const int64_t[]){1}, out), 0);
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

/* ---- Compositions: repeat, flip, roll, pad -------------------------------------------- */

static void test_repeat_tiles_as_torch_and_sums_the_gradient_of_the_tiles(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3}, want[3] = {2, 2, 6};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    ad_tensor *y = ad_repeat(x, 3, (const int64_t[]){2, 1, 2});
    assert_shape(y, 3, want);
    assert_exact(y, 24, (const double[]){0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5,
                                         0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5});
    assert_exact(grad_of_sum(y, x), 6, (const double[]){4, 4, 4, 4, 4, 4});
    const int64_t zero[2] = {0, 6}, one23[2] = {2, 3};
    assert_shape(ad_repeat(x, 2, (const int64_t[]){0, 2}), 2, zero);
    ad_tensor *z = leaf(tape, AD_F32, 0, NULL, (const double[]){7});
    ad_tensor *yz = ad_repeat(z, 2, (const int64_t[]){2, 3});
    assert_shape(yz, 2, one23);
    assert_exact(yz, 6, (const double[]){7, 7, 7, 7, 7, 7});
    assert_exact(grad_of_sum(yz, z), 1, (const double[]){6});
}

static void test_repeat_with_fewer_repeats_than_dims_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_repeat(x, 1, (const int64_t[]){2}), AD_ERR_SHAPE, "repeat", "1 repeats",
                  "[2,3]");
}

static void test_repeat_with_a_negative_repeat_names_the_repeats(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_repeat(x, 2, (const int64_t[]){2, -1}), AD_ERR_SHAPE, "repeat", "[2,-1]",
                  "[2,3]");
}

static void test_flip_reverses_the_listed_axes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_exact(ad_flip(x, 2, (const int[]){0, 1}), 6, (const double[]){5, 4, 3, 2, 1, 0});
    ad_tensor *y = ad_flip(x, 1, (const int[]){-1});
    assert_exact(y, 6, (const double[]){2, 1, 0, 5, 4, 3});
    assert_exact(grad_of_weighted(y, x, (const double[]){1, 2, 3, 4, 5, 6}), 6,
                 (const double[]){3, 2, 1, 6, 5, 4});
    assert_ptr_equal(ad_flip(x, 0, NULL), x); /* torch: flip(()) flips nothing */
    ad_tensor *z = leaf(tape, AD_F64, 0, NULL, (const double[]){7});
    assert_ptr_equal(ad_flip(z, 1, (const int[]){0}), z);
    ad_tensor *f = ad_flip(iota(tape, AD_F32, 2, s), 1, (const int[]){0});
    assert_exact(f, 6, (const double[]){3, 4, 5, 0, 1, 2});
}

static void test_flip_with_a_repeated_axis_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_flip(x, 2, (const int[]){0, -2}), AD_ERR_AXIS, "flip", "repeated",
                  "[2,3]");
}

static void test_roll_wraps_around_flattened_or_per_axis_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    ad_tensor *flat = ad_roll(x, 1, (const int64_t[]){1}, NULL);
    assert_shape(flat, 2, s);
    assert_exact(flat, 6, (const double[]){5, 0, 1, 2, 3, 4});
    ad_tensor *y = ad_roll(x, 2, (const int64_t[]){1, -4}, (const int[]){0, 1});
    assert_exact(y, 6, (const double[]){4, 5, 3, 1, 2, 0});
    /* a repeated axis rolls by the sum of its shifts */
    assert_exact(ad_roll(x, 2, (const int64_t[]){1, 1}, (const int[]){1, 1}), 6,
                 (const double[]){1, 2, 0, 4, 5, 3});
    assert_exact(grad_of_weighted(y, x, (const double[]){1, 2, 3, 4, 5, 6}), 6,
                 (const double[]){6, 4, 5, 3, 1, 2});
    ad_tensor *z = leaf(tape, AD_F64, 0, NULL, (const double[]){7});
    assert_ptr_equal(ad_roll(z, 1, (const int64_t[]){3}, NULL), z);
    const int64_t s03[2] = {0, 3};
    assert_shape(ad_roll(leaf(tape, AD_F64, 2, s03, NULL), 1, (const int64_t[]){1}, NULL), 2, s03);
}

static void test_roll_with_shifts_unlike_axes_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_roll(x, 2, (const int64_t[]){1, 2}, NULL), AD_ERR_ARG, "roll",
                  "2 shifts", "[2,3]");
}

static void test_roll_of_0d_along_an_axis_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *z = leaf(tape, AD_F64, 0, NULL, (const double[]){7});
    assert_failed(tape, ad_roll(z, 1, (const int64_t[]){1}, (const int[]){0}), AD_ERR_AXIS, "roll",
                  "axis 0", "[]");
}

/* x = torch.arange(24).reshape(2,3,4): x.flip(...), torch.roll(x, ...), in torch 1.13 */
static const double flip_0_2[24] = {15, 14, 13, 12, 19, 18, 17, 16, 23, 22, 21, 20,
                                    3,  2,  1,  0,  7,  6,  5,  4,  11, 10, 9,  8};
static const double flip_1[24] = {8,  9,  10, 11, 4,  5,  6,  7,  0,  1,  2,  3,
                                  20, 21, 22, 23, 16, 17, 18, 19, 12, 13, 14, 15};
static const double roll_1_m2_over_1_2[24] = {10, 11, 8,  9,  2,  3,  0,  1,  6,  7,  4,  5,
                                              22, 23, 20, 21, 14, 15, 12, 13, 18, 19, 16, 17};
static const double roll_3_over_0[24] = {12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                                         0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11};
static const double roll_1_5_over_0_1[24] = {16, 17, 18, 19, 20, 21, 22, 23, 12, 13, 14, 15,
                                             4,  5,  6,  7,  8,  9,  10, 11, 0,  1,  2,  3};
static const double roll_7_flat[24] = {17, 18, 19, 20, 21, 22, 23, 0,  1,  2,  3,  4,
                                       5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16};

static void test_flip_and_roll_of_3d_tensors_of_every_dtype_match_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 3, 4};
    const ad_dtype dtypes[3] = {AD_F32, AD_F64, AD_I64};
    double v[24];
    for (int i = 0; i < 24; i++)
        v[i] = i;
    for (int k = 0; k < 3; k++) {
        ad_tensor *x = tensor(tape, dtypes[k], 3, s, v);
        ad_tensor *f = ad_flip(x, 2, (const int[]){0, -1});
        assert_int_equal(ad_tensor_dtype(f), dtypes[k]);
        assert_exact(f, 24, flip_0_2);
        assert_exact(ad_flip(x, 1, (const int[]){1}), 24, flip_1);
        assert_exact(ad_roll(x, 2, (const int64_t[]){1, -2}, (const int[]){1, 2}), 24,
                     roll_1_m2_over_1_2);
        assert_exact(ad_roll(x, 1, (const int64_t[]){3}, (const int[]){0}), 24, roll_3_over_0);
        assert_exact(ad_roll(x, 2, (const int64_t[]){1, 5}, (const int[]){0, 1}), 24,
                     roll_1_5_over_0_1);
        assert_exact(ad_roll(x, 1, (const int64_t[]){7}, NULL), 24, roll_7_flat);
        /* flipping back and rolling back give x */
        assert_exact(ad_flip(f, 2, (const int[]){2, 0}), 24, v);
    }
    /* bool: torch.roll(b, -1) and b.flip(0) */
    const int64_t n6 = 6;
    ad_tensor *b = tensor(tape, AD_BOOL, 1, &n6, (const double[]){1, 0, 0, 1, 1, 0});
    assert_exact(ad_roll(b, 1, (const int64_t[]){-1}, NULL), 6, (const double[]){0, 0, 1, 1, 0, 1});
    assert_exact(ad_flip(b, 1, (const int[]){0}), 6, (const double[]){0, 1, 1, 0, 0, 1});
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_roll_by_whole_turns_and_flip_of_size_1_dims_return_x_itself(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_ptr_equal(ad_roll(x, 2, (const int64_t[]){-4, 3}, (const int[]){0, 1}), x);
    assert_ptr_equal(ad_roll(x, 2, (const int64_t[]){2, -2}, (const int[]){1, 1}), x);
    ad_tensor *row = leaf(tape, AD_F64, 2, (const int64_t[]){1, 3}, NULL);
    assert_ptr_equal(ad_flip(row, 1, (const int[]){0}), row); /* a size-1 dim: nothing moves */
}

static void test_pad_constant_pads_last_dim_first_and_crops_negative_pads(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3}, want[2] = {3, 4};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    ad_tensor *y = ad_pad(x, 4, (const int64_t[]){1, 0, 0, 1}, AD_PAD_CONSTANT, 9);
    assert_shape(y, 2, want);
    assert_exact(y, 12, (const double[]){9, 0, 1, 2, 9, 3, 4, 5, 9, 9, 9, 9});
    assert_exact(grad_of_sum(y, x), 6, (const double[]){1, 1, 1, 1, 1, 1});
    ad_tensor *c = ad_pad(x, 2, (const int64_t[]){-1, 1}, AD_PAD_CONSTANT, 0);
    assert_exact(c, 6, (const double[]){1, 2, 0, 4, 5, 0});
    assert_exact(grad_of_sum(c, x), 6, (const double[]){0, 1, 1, 0, 1, 1});
    assert_ptr_equal(ad_pad(x, 0, NULL, AD_PAD_CONSTANT, 0), x);
    const int64_t s120[3] = {1, 2, 0}, w122[3] = {1, 2, 2};
    assert_shape(
        ad_pad(leaf(tape, AD_F32, 3, s120, NULL), 2, (const int64_t[]){1, 1}, AD_PAD_CONSTANT, 0),
        3, w122);
}

static void test_pad_reflect_replicate_and_circular_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {1, 2, 3};
    ad_tensor *x = iota(tape, AD_F64, 3, s);
    ad_tensor *r = ad_pad(x, 2, (const int64_t[]){2, 1}, AD_PAD_REFLECT, 0);
    assert_exact(r, 12, (const double[]){2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4});
    assert_exact(grad_of_sum(r, x), 6, (const double[]){1, 3, 2, 1, 3, 2});
    ad_tensor *p = ad_pad(x, 2, (const int64_t[]){2, 2}, AD_PAD_REPLICATE, 0);
    assert_exact(p, 14, (const double[]){0, 0, 0, 1, 2, 2, 2, 3, 3, 3, 4, 5, 5, 5});
    assert_exact(grad_of_sum(p, x), 6, (const double[]){3, 1, 3, 3, 1, 3});
    ad_tensor *c = ad_pad(x, 2, (const int64_t[]){1, 1}, AD_PAD_CIRCULAR, 0);
    assert_exact(c, 10, (const double[]){2, 0, 1, 2, 0, 5, 3, 4, 5, 3});
    ad_tensor *f =
        ad_pad(iota(tape, AD_F32, 3, s), 4, (const int64_t[]){1, 1, 1, 0}, AD_PAD_REFLECT, 0);
    assert_exact(f, 15, (const double[]){4, 3, 4, 5, 4, 1, 0, 1, 2, 1, 4, 3, 4, 5, 4});
}

static void test_pad_reflect_of_a_pad_not_below_the_dim_names_the_pads_and_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {1, 2, 3};
    ad_tensor *x = iota(tape, AD_F64, 3, s);
    assert_failed(tape, ad_pad(x, 2, (const int64_t[]){3, 1}, AD_PAD_REFLECT, 0), AD_ERR_SHAPE,
                  "pad", "(3, 1)", "[1,2,3]");
}

static void test_pad_with_an_odd_count_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_pad(x, 1, (const int64_t[]){1}, AD_PAD_CONSTANT, 0), AD_ERR_ARG, "pad",
                  "1 pads", "[2,3]");
}

static void test_pad_with_more_pairs_than_dims_names_the_pads(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_pad(x, 6, (const int64_t[]){1, 1, 1, 1, 1, 1}, AD_PAD_CONSTANT, 0),
                  AD_ERR_SHAPE, "pad", "[1,1,1,1,1,1]", "[2,3]");
}

static void test_pad_cropping_more_than_the_dim_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_pad(x, 2, (const int64_t[]){2, -4}, AD_PAD_CONSTANT, 0), AD_ERR_SHAPE,
                  "pad", "(2, -4)", "[2,3]");
}

static void test_pad_circular_wrapping_more_than_once_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    assert_failed(tape, ad_pad(x, 2, (const int64_t[]){4, 0}, AD_PAD_CIRCULAR, 0), AD_ERR_SHAPE,
                  "pad", "(4, 0)", "[2,3]");
}

/* ---- Compositions: tril, triu, diagonal, trace, outer --------------------------------- */

static void test_tril_and_triu_keep_a_triangle_from_an_offset_diagonal(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {3, 4};
    ad_tensor *x = iota(tape, AD_F64, 2, s);
    ad_tensor *lo = ad_tril(x, 1);
    assert_exact(lo, 12, (const double[]){0, 1, 0, 0, 4, 5, 6, 0, 8, 9, 10, 11});
    assert_exact(grad_of_sum(lo, x), 12, (const double[]){1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1});
    assert_exact(ad_triu(x, -1), 12, (const double[]){0, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11});
    assert_exact(ad_triu(x, 100), 12, (const double[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    assert_exact(ad_tril(x, INT64_MAX), 12, (const double[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
    const int64_t b[3] = {2, 2, 2};
    assert_exact(ad_triu(iota(tape, AD_F32, 3, b), 0), 8, (const double[]){0, 1, 0, 3, 4, 5, 0, 7});
    const int64_t e[3] = {2, 0, 3};
    assert_shape(ad_tril(leaf(tape, AD_F64, 3, e, NULL), 0), 3, e);
}

static void test_tril_gives_zero_not_nan_for_an_inf_above_the_diagonal_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 2};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, (const double[]){1, INFINITY, 2, 3});
    assert_exact(ad_tril(x, 0), 4, (const double[]){1, 0, 2, 3});
}

static void test_tril_of_a_vector_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {3};
    ad_tensor *x = iota(tape, AD_F64, 1, s);
    assert_failed(tape, ad_tril(x, 0), AD_ERR_SHAPE, "tril", "[3]", "fewer than 2 dims");
}

static void test_diagonal_puts_the_diagonal_last_as_torch(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 3, 4}, w31[2] = {3, 1}, w22[2] = {2, 2}, w0[1] = {0};
    ad_tensor *x = iota(tape, AD_F64, 3, s);
    ad_tensor *y = ad_diagonal(x, -1, 0, 2);
    assert_shape(y, 2, w31);
    assert_exact(y, 3, (const double[]){12, 16, 20});
    ad_tensor *z = ad_diagonal(x, 1, 2, 1);
    assert_shape(z, 2, w22);
    assert_exact(z, 4, (const double[]){4, 9, 16, 21});
    const int64_t m[2] = {3, 4};
    ad_tensor *xm = iota(tape, AD_F64, 2, m);
    ad_tensor *d = ad_diagonal(xm, 1, 0, 1);
    assert_exact(d, 3, (const double[]){1, 6, 11});
    assert_exact(grad_of_sum(d, xm), 12, (const double[]){0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1});
    assert_exact(ad_diagonal(xm, -1, 0, 1), 2, (const double[]){4, 9});
    assert_shape(ad_diagonal(xm, 5, 0, 1), 1, w0);
    assert_shape(ad_diagonal(xm, INT64_MIN, 0, 1), 1, w0);
    assert_shape(grad_of_sum(ad_diagonal(xm, -5, 0, 1), xm), 2, m);
}

static void test_diagonal_of_one_axis_twice_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[3] = {2, 3, 4};
    ad_tensor *x = iota(tape, AD_F64, 3, s);
    assert_failed(tape, ad_diagonal(x, 0, 1, -2), AD_ERR_AXIS, "diagonal", "same dim", "[2,3,4]");
}

static void test_diagonal_of_a_vector_is_an_axis_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[1] = {3};
    ad_tensor *x = iota(tape, AD_F64, 1, s);
    assert_failed(tape, ad_diagonal(x, 0, 0, 1), AD_ERR_AXIS, "diagonal", "axis 1", "[3]");
}

static void test_trace_sums_the_diagonal_of_a_matrix(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {3, 4}, e[2] = {0, 3};
    ad_tensor *x = iota(tape, AD_F32, 2, s);
    ad_tensor *t = ad_trace(x);
    assert_int_equal(ad_tensor_ndim(t), 0);
    assert_exact(t, 1, (const double[]){15});
    assert_exact(grad_of_sum(t, x), 12, (const double[]){1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0});
    assert_exact(ad_trace(leaf(tape, AD_F64, 2, e, NULL)), 1, (const double[]){0});
    const int64_t v[1] = {3};
    assert_failed(tape, ad_trace(iota(tape, AD_F64, 1, v)), AD_ERR_SHAPE, "trace", "[3]",
                  "not a matrix");
}

static void test_outer_multiplies_a_column_by_a_row(void **state)
{
    ad_tape *tape = *state;
    const int64_t n2[1] = {2}, n3[1] = {3}, want[2] = {2, 3};
    ad_tensor *a = leaf(tape, AD_F64, 1, n2, (const double[]){2, 3});
    ad_tensor *b = leaf(tape, AD_F64, 1, n3, (const double[]){1, 10, 100});
    ad_tensor *y = ad_outer(a, b);
    assert_shape(y, 2, want);
    assert_exact(y, 6, (const double[]){2, 20, 200, 3, 30, 300});
    ad_tensor *g[2], *xs[2] = {a, b};
    grads_of_sum(y, 2, xs, g);
    assert_exact(g[0], 2, (const double[]){111, 111});
    assert_exact(g[1], 3, (const double[]){5, 5, 5});
    const int64_t m[2] = {2, 2};
    assert_failed(tape, ad_outer(leaf(tape, AD_F64, 2, m, NULL), b), AD_ERR_SHAPE, "outer", "[2,2]",
                  "[3]");
}

static void test_compositions_given_null_return_null_without_an_error_of_their_own(void **state)
{
    ad_tape *tape = *state;
    assert_null(ad_squeeze(NULL, 0, NULL));
    assert_null(ad_unsqueeze(NULL, 0));
    assert_null(ad_flatten(NULL, 0, -1));
    assert_null(ad_unflatten(NULL, 0, 1, (const int64_t[]){1}));
    assert_null(ad_expand_as(NULL, NULL));
    assert_null(ad_repeat(NULL, 0, NULL));
    assert_null(ad_flip(NULL, 0, NULL));
    assert_null(ad_roll(NULL, 1, (const int64_t[]){1}, NULL));
    assert_null(ad_pad(NULL, 0, NULL, AD_PAD_CONSTANT, 0));
    assert_null(ad_tril(NULL, 0));
    assert_null(ad_triu(NULL, 0));
    assert_null(ad_diagonal(NULL, 0, 0, 1));
    assert_null(ad_trace(NULL));
    assert_null(ad_outer(NULL, NULL));
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

/* ---- einsum ------------------------------------------------------------------------------ */

static void test_einsum_computes_products_traces_diagonals_and_sums(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s33[2] = {3, 3}, w32[2] = {3, 2};
    ad_tensor *x = iota(tape, AD_F64, 2, s23), *y = iota(tape, AD_F64, 2, s32);
    ad_tensor *xy[2] = {x, y};
    assert_exact(ad_einsum("ij,jk->ik", 2, xy), 4, (const double[]){10, 13, 28, 40});
    assert_exact(ad_einsum("ij, jk", 2, xy), 4, (const double[]){10, 13, 28, 40});
    ad_tensor *t = ad_einsum("ba", 1, &x); /* implicit: "ab", a transpose */
    assert_shape(t, 2, w32);
    assert_exact(t, 6, (const double[]){0, 3, 1, 4, 2, 5});
    assert_exact(ad_einsum("ij->", 1, &x), 1, (const double[]){15});
    assert_exact(ad_einsum("ij->j", 1, &x), 3, (const double[]){3, 5, 7});
    ad_tensor *m = iota(tape, AD_F64, 2, s33);
    assert_exact(ad_einsum("ii", 1, &m), 1, (const double[]){12});
    assert_exact(ad_einsum("ii->i", 1, &m), 3, (const double[]){0, 4, 8});
    ad_tensor *g = grad_of_sum(ad_einsum("ii", 1, &m), m);
    assert_exact(g, 9, (const double[]){1, 0, 0, 0, 1, 0, 0, 0, 1});
    const int64_t n2[1] = {2}, n3[1] = {3};
    ad_tensor *ab[2] = {iota(tape, AD_F32, 1, n2), iota(tape, AD_F32, 1, n3)};
    assert_exact(ad_einsum("i,j->ij", 2, ab), 6, (const double[]){0, 0, 0, 0, 1, 2});
}

static void test_einsum_attention_scores_match_matmul_with_a_transpose(void **state)
{
    ad_tape *tape = *state;
    const int64_t sq[4] = {1, 2, 3, 4}, sk[4] = {1, 2, 2, 4}, want[4] = {1, 2, 3, 2};
    ad_tensor *q = iota(tape, AD_F64, 4, sq), *k = iota(tape, AD_F64, 4, sk);
    ad_tensor *qk[2] = {q, k};
    ad_tensor *y = ad_einsum("bhqd,bhkd->bhqk", 2, qk);
    assert_shape(y, 4, want);
    ad_tensor *ref = ad_matmul_t(q, k, false, true);
    for (int64_t i = 0; i < 12; i++)
        assert_true(ad_tensor_get(y, i) == ad_tensor_get(ref, i));
}

static void test_einsum_label_of_two_sizes_names_the_label_and_sizes(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
    ad_tensor *xs[2] = {iota(tape, AD_F64, 2, s23), iota(tape, AD_F64, 2, s22)};
    assert_failed(tape, ad_einsum("ij,jk->ik", 2, xs), AD_ERR_SHAPE, "einsum", "label j",
                  "sizes 3 and 2");
}

static void test_einsum_with_labels_unlike_the_dims_names_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s23);
    assert_failed(tape, ad_einsum("ijk->i", 1, &x), AD_ERR_SHAPE, "einsum", "3 labels", "[2,3]");
}

static void test_einsum_with_operands_unlike_the_inputs_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s23);
    assert_failed(tape, ad_einsum("ij,jk->ik", 1, &x), AD_ERR_ARG, "einsum", "more operands",
                  "ij,jk->ik");
}

static void test_einsum_output_label_not_in_an_input_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s23);
    assert_failed(tape, ad_einsum("ij->k", 1, &x), AD_ERR_ARG, "einsum", "'k'", "ij->k");
}

static void test_einsum_with_a_repeated_output_label_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s23);
    assert_failed(tape, ad_einsum("ij->jj", 1, &x), AD_ERR_ARG, "einsum", "repeated", "ij->jj");
}

static void test_einsum_with_an_ellipsis_is_an_argument_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s23[2] = {2, 3};
    ad_tensor *x = iota(tape, AD_F64, 2, s23);
    assert_failed(tape, ad_einsum("...j->j", 1, &x), AD_ERR_ARG, "einsum", "'.'", "no ...");
}

/* ---- Runner --------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_reshape_infers_a_minus_one_dim),
        TAPE_TEST(test_reshape_of_a_zero_size_tensor_keeps_zero_elements),
        TAPE_TEST(test_reshape_to_a_different_count_names_both_shapes),
        TAPE_TEST(test_reshape_with_two_inferred_dims_names_the_target),
        TAPE_TEST(test_expand_adds_leading_dims_and_stretches_size_one_dims),
        TAPE_TEST(test_expand_to_a_shape_that_does_not_broadcast_names_both),
        TAPE_TEST(test_expand_to_a_negative_dim_is_a_shape_error),
        TAPE_TEST(test_shapes_with_too_many_elements_are_shape_errors),
        TAPE_TEST(test_slice_follows_python_ranges),
        TAPE_TEST(test_slice_gradient_is_ones_placed_back_into_zeros),
        TAPE_TEST(test_empty_slice_gives_a_zero_gradient_of_the_input_shape),
        TAPE_TEST(test_slice_scatter_places_x_at_start_and_step),
        TAPE_TEST(test_slice_scatter_of_an_empty_x_is_all_zeros),
        TAPE_TEST(test_slice_with_step_zero_is_an_argument_error_naming_the_shape),
        TAPE_TEST(test_slice_with_a_negative_step_is_an_argument_error),
        TAPE_TEST(test_slice_axis_out_of_range_names_the_axis_and_shape),
        TAPE_TEST(test_slice_of_a_0d_tensor_is_an_axis_error),
        TAPE_TEST(test_slice_scatter_that_does_not_fit_names_the_shape),
        TAPE_TEST(test_slice_scatter_with_a_negative_start_is_an_error),
        TAPE_TEST(test_slice_scatter_with_step_zero_is_an_argument_error),
        TAPE_TEST(test_slice_and_slice_scatter_reach_the_last_of_eight_dims),
        TAPE_TEST(test_concat_joins_along_an_axis_and_slices_the_gradient_back),
        TAPE_TEST(test_concat_mismatched_dims_names_both_shapes),
        TAPE_TEST(test_concat_of_different_ranks_names_both_shapes),
        TAPE_TEST(test_concat_of_different_dtypes_is_a_dtype_error),
        TAPE_TEST(test_concat_axis_out_of_range_names_the_shape),
        TAPE_TEST(test_concat_of_0d_tensors_is_an_axis_error),
        TAPE_TEST(test_concat_and_stack_of_a_thousand_inputs_and_their_gradients),
        TAPE_TEST(test_concat_of_many_inputs_gives_each_its_gradient),
        TAPE_TEST(test_concat_of_no_inputs_returns_null),
        TAPE_TEST(test_stack_inserts_a_new_axis),
        TAPE_TEST(test_stack_of_0d_tensors_makes_a_vector),
        TAPE_TEST(test_stack_of_unequal_shapes_names_both_shapes),
        TAPE_TEST(test_stack_axis_out_of_range_names_the_range_and_shape),
        TAPE_TEST(test_stack_of_eight_dim_tensors_is_a_shape_error),
        TAPE_TEST(test_stack_brings_a_persistent_tensor_onto_the_tape),
        TAPE_TEST(test_index_select_picks_slices_and_repeats_accumulate_in_the_gradient),
        TAPE_TEST(test_index_select_with_no_indices_gives_an_empty_axis),
        TAPE_TEST(test_index_select_copies_the_indices),
        TAPE_TEST(test_index_select_with_a_negative_index_names_the_index_and_shape),
        TAPE_TEST(test_index_select_with_an_index_past_the_end_names_the_index_and_shape),
        TAPE_TEST(test_index_select_axis_out_of_range_names_the_shape),
        TAPE_TEST(test_index_select_with_null_indices_is_an_argument_error),
        TAPE_TEST(test_index_add_sums_repeated_indices),
        TAPE_TEST(test_index_add_with_a_count_unlike_the_axis_names_the_shape),
        TAPE_TEST(test_index_add_with_an_index_past_the_length_names_it),
        TAPE_TEST(test_index_add_with_a_negative_length_is_a_shape_error),
        TAPE_TEST(test_gather_picks_along_an_axis_as_torch),
        TAPE_TEST(test_gather_with_a_smaller_or_longer_index),
        TAPE_TEST(test_gather_index_out_of_range_names_the_index_and_shape),
        TAPE_TEST(test_gather_negative_index_names_the_index_and_shape),
        TAPE_TEST(test_gather_index_larger_off_the_axis_names_both_shapes),
        TAPE_TEST(test_gather_index_of_another_rank_names_the_shape),
        TAPE_TEST(test_gather_axis_out_of_range_names_the_shape),
        TAPE_TEST(test_scatter_add_adds_src_at_index_as_torch),
        TAPE_TEST(test_scatter_add_index_out_of_range_names_the_index_and_shape),
        TAPE_TEST(test_scatter_add_src_larger_off_the_axis_names_both_shapes),
        TAPE_TEST(test_scatter_add_rank_unlike_src_names_the_shape),
        TAPE_TEST(test_scatter_add_negative_target_dim_names_the_shape),
        TAPE_TEST(test_where_selects_with_broadcasting),
        TAPE_TEST(test_where_counts_any_nonzero_and_nan_as_true),
        TAPE_TEST(test_where_gradient_is_poisoned_by_nan_in_the_untaken_branch_as_torch),
        TAPE_TEST(test_where_shapes_that_do_not_broadcast_name_all_three),
        TAPE_TEST(test_where_with_a_cond_of_another_dtype_is_a_dtype_error),
        TAPE_TEST(test_indexing_ops_compute_in_float32),
        TAPE_TEST(test_indexing_ops_on_zero_size_tensors_give_empty_gradients),
        TAPE_TEST(test_indexing_ops_given_null_return_null_without_an_error_of_their_own),
        TAPE_TEST(test_an_errored_tape_makes_every_indexing_op_return_null),
        TAPE_TEST(test_second_derivative_flows_through_gather_and_where),
        TAPE_TEST(test_squeeze_drops_size_one_dims_and_keeps_others_as_torch),
        TAPE_TEST(test_squeeze_axis_out_of_range_names_the_shape),
        TAPE_TEST(test_squeeze_of_0d_with_axis_1_is_an_axis_error),
        TAPE_TEST(test_squeeze_with_a_repeated_axis_is_an_axis_error),
        TAPE_TEST(test_unsqueeze_inserts_a_dim_at_negative_and_positive_axes),
        TAPE_TEST(test_unsqueeze_axis_out_of_range_names_the_range_and_shape),
        TAPE_TEST(test_unsqueeze_of_eight_dims_is_a_shape_error),
        TAPE_TEST(test_flatten_merges_a_range_of_dims_as_torch),
        TAPE_TEST(test_flatten_with_start_after_end_names_both),
        TAPE_TEST(test_flatten_axis_out_of_range_names_the_shape),
        TAPE_TEST(test_unflatten_splits_a_dim_and_infers_minus_one),
        TAPE_TEST(test_unflatten_with_sizes_that_do_not_multiply_names_them),
        TAPE_TEST(test_unflatten_of_zero_with_minus_one_is_ambiguous_as_torch),
        TAPE_TEST(test_unflatten_with_no_sizes_is_a_shape_error),
        TAPE_TEST(test_expand_as_takes_the_other_shape_and_sums_the_gradient_back),
        TAPE_TEST(test_split_gives_pieces_of_a_size_the_last_shorter),
        TAPE_TEST(test_split_of_an_empty_axis_gives_one_empty_piece_as_torch),
        TAPE_TEST(test_split_into_too_few_slots_names_the_count),
        TAPE_TEST(test_split_of_size_zero_is_an_argument_error),
        TAPE_TEST(test_split_sizes_gives_pieces_of_the_sizes),
        TAPE_TEST(test_split_sizes_that_do_not_sum_to_the_dim_name_the_shape),
        TAPE_TEST(test_chunk_may_give_fewer_pieces_than_asked_as_torch),
        TAPE_TEST(test_chunk_into_zero_pieces_is_an_argument_error),
        TAPE_TEST(test_unbind_removes_the_axis_and_each_slice_gets_its_gradient),
        TAPE_TEST(test_unbind_of_an_empty_axis_gives_no_pieces_and_no_error),
        TAPE_TEST(test_unbind_into_too_few_slots_names_the_count),
        TAPE_TEST(test_multi_output_ops_given_null_return_zero_and_null_pieces),
        TAPE_TEST(test_repeat_tiles_as_torch_and_sums_the_gradient_of_the_tiles),
        TAPE_TEST(test_repeat_with_fewer_repeats_than_dims_names_the_shape),
        TAPE_TEST(test_repeat_with_a_negative_repeat_names_the_repeats),
        TAPE_TEST(test_flip_reverses_the_listed_axes),
        TAPE_TEST(test_flip_with_a_repeated_axis_is_an_axis_error),
        TAPE_TEST(test_roll_wraps_around_flattened_or_per_axis_as_torch),
        TAPE_TEST(test_roll_with_shifts_unlike_axes_is_an_argument_error),
        TAPE_TEST(test_roll_of_0d_along_an_axis_is_an_axis_error),
        TAPE_TEST(test_flip_and_roll_of_3d_tensors_of_every_dtype_match_torch),
        TAPE_TEST(test_roll_by_whole_turns_and_flip_of_size_1_dims_return_x_itself),
        TAPE_TEST(test_pad_constant_pads_last_dim_first_and_crops_negative_pads),
        TAPE_TEST(test_pad_reflect_replicate_and_circular_as_torch),
        TAPE_TEST(test_pad_reflect_of_a_pad_not_below_the_dim_names_the_pads_and_shape),
        TAPE_TEST(test_pad_with_an_odd_count_is_an_argument_error),
        TAPE_TEST(test_pad_with_more_pairs_than_dims_names_the_pads),
        TAPE_TEST(test_pad_cropping_more_than_the_dim_is_a_shape_error),
        TAPE_TEST(test_pad_circular_wrapping_more_than_once_is_a_shape_error),
        TAPE_TEST(test_tril_and_triu_keep_a_triangle_from_an_offset_diagonal),
        TAPE_TEST(test_tril_gives_zero_not_nan_for_an_inf_above_the_diagonal_as_torch),
        TAPE_TEST(test_tril_of_a_vector_names_the_shape),
        TAPE_TEST(test_diagonal_puts_the_diagonal_last_as_torch),
        TAPE_TEST(test_diagonal_of_one_axis_twice_names_the_shape),
        TAPE_TEST(test_diagonal_of_a_vector_is_an_axis_error),
        TAPE_TEST(test_trace_sums_the_diagonal_of_a_matrix),
        TAPE_TEST(test_outer_multiplies_a_column_by_a_row),
        TAPE_TEST(test_compositions_given_null_return_null_without_an_error_of_their_own),
        TAPE_TEST(test_einsum_computes_products_traces_diagonals_and_sums),
        TAPE_TEST(test_einsum_attention_scores_match_matmul_with_a_transpose),
        TAPE_TEST(test_einsum_label_of_two_sizes_names_the_label_and_sizes),
        TAPE_TEST(test_einsum_with_labels_unlike_the_dims_names_the_shape),
        TAPE_TEST(test_einsum_with_operands_unlike_the_inputs_is_an_argument_error),
        TAPE_TEST(test_einsum_output_label_not_in_an_input_is_an_argument_error),
        TAPE_TEST(test_einsum_with_a_repeated_output_label_is_an_argument_error),
        TAPE_TEST(test_einsum_with_an_ellipsis_is_an_argument_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
