/* Unit tests of convolution and pooling (src/ops/conv.c): conv2d against a
 * naive direct convolution over stride, padding, dilation, groups and
 * rectangular kernels in float64 and float32; conv_transpose2d, the pools and
 * the max-pool tie rule against values from PyTorch 1.13; and every failure
 * mode's message (the op, the attribute and the shapes). */
#include "test_util.h"

#include <math.h>
#include <string.h>

/* sin(scale i + shift) for element i: distinct, reproducible values. */
static ad_tensor *wave(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape, double scale,
                       double shift)
{
    double values[1024];
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    assert_true(n <= 1024);
    for (int64_t i = 0; i < n; i++)
        values[i] = sin(scale * (double)i + shift);
    return leaf(tape, dtype, ndim, shape, values);
}

/* y[n, o, i, j] by the definition: a sum over the group's channels and the kernel. */
static double direct_conv(const ad_tensor *x, const ad_tensor *w, const ad_conv2d_opts *o,
                          int64_t n, int64_t oc, int64_t i, int64_t j)
{
    const int64_t *xs = ad_tensor_shape(x), *ws = ad_tensor_shape(w);
    int64_t cg = ws[1], og = ws[0] / o->groups, group = oc / og;
    double sum = 0;
    for (int64_t c = 0; c < cg; c++)
        for (int64_t ki = 0; ki < ws[2]; ki++)
            for (int64_t kj = 0; kj < ws[3]; kj++) {
                int64_t ih = i * o->stride[0] - o->padding[0] + ki * o->dilation[0];
                int64_t iw = j * o->stride[1] - o->padding[1] + kj * o->dilation[1];
                if (ih < 0 || ih >= xs[2] || iw < 0 || iw >= xs[3])
                    continue;
                int64_t ic = group * cg + c;
                sum += ad_tensor_get(x, ((n * xs[1] + ic) * xs[2] + ih) * xs[3] + iw) *
                       ad_tensor_get(w, ((oc * cg + c) * ws[2] + ki) * ws[3] + kj);
            }
    return sum;
}

typedef struct conv_config {
    int64_t x[4], w[4];
    ad_conv2d_opts o;
} conv_config;

static void test_conv2d_matches_a_direct_convolution(void **state)
{
    ad_tape *tape = *state;
    const conv_config configs[] = {
        {{2, 2, 5, 6}, {3, 2, 3, 2}, {{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}},
        {{2, 3, 5, 6}, {2, 3, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 1, {0, 0}}},
        {{2, 2, 5, 6}, {2, 2, 2, 3}, {{1, 1}, {1, 2}, {2, 2}, 1, {0, 0}}},
        {{2, 4, 5, 6}, {4, 2, 3, 3}, {{2, 1}, {1, 0}, {1, 1}, 2, {0, 0}}},
        {{2, 4, 5, 6}, {8, 1, 2, 2}, {{1, 2}, {0, 1}, {2, 1}, 4, {0, 0}}},
        {{2, 3, 5, 6}, {4, 3, 1, 1}, {{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}},
    };
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++)
        for (int dt = 0; dt < 2; dt++) {
            const conv_config *c = &configs[k];
            ad_tensor *x = wave(tape, (ad_dtype)dt, 4, c->x, 0.37, 0.1);
            ad_tensor *w = wave(tape, (ad_dtype)dt, 4, c->w, 0.91, 0.5);
            ad_tensor *y = ad_conv2d(x, w, NULL, &c->o);
            assert_non_null(y);
            const int64_t *ys = ad_tensor_shape(y);
            int64_t oh = (c->x[2] + 2 * c->o.padding[0] - c->o.dilation[0] * (c->w[2] - 1) - 1) /
                             c->o.stride[0] +
                         1;
            assert_int_equal(ys[2], oh);
            double tol = dt == AD_F32 ? 1e-5 : 1e-12;
            for (int64_t n = 0; n < ys[0]; n++)
                for (int64_t o = 0; o < ys[1]; o++)
                    for (int64_t i = 0; i < ys[2]; i++)
                        for (int64_t j = 0; j < ys[3]; j++)
                            assert_close(
                                direct_conv(x, w, &c->o, n, o, i, j),
                                ad_tensor_get(y, ((n * ys[1] + o) * ys[2] + i) * ys[3] + j), 0,
                                tol);
        }
}

static void test_conv2d_with_null_opts_is_stride_1_padding_0_and_adds_the_bias(void **state)
{
    ad_tape *tape = *state;
    const int64_t sx[4] = {1, 1, 2, 3}, sw[4] = {2, 1, 2, 2}, sb[1] = {2}, sy[4] = {1, 2, 1, 2};
    const double x[6] = {1, 2, 3, 4, 5, 6}, w[8] = {1, 0, 0, 1, 0, 1, 1, 0}, b[2] = {10, 20};
    ad_tensor *y = ad_conv2d(tensor(tape, AD_F64, 4, sx, x), tensor(tape, AD_F64, 4, sw, w),
                             tensor(tape, AD_F64, 1, sb, b), NULL);
    assert_shape(y, 4, sy);
    /* [1 2 3; 4 5 6]: diagonals 1 + 5, 2 + 6; antidiagonals 2 + 4, 3 + 5 */
    const double expected[4] = {16, 18, 26, 28};
    assert_values(y, 4, expected, 0, 0);
}

static void test_conv1d_is_conv2d_over_one_row(void **state)
{
    ad_tape *tape = *state;
    const int64_t sx[3] = {2, 2, 7}, sw[3] = {4, 1, 3}, sy[3] = {2, 4, 4};
    ad_tensor *x = wave(tape, AD_F64, 3, sx, 0.3, 0), *w = wave(tape, AD_F64, 3, sw, 0.8, 1);
    ad_conv1d_opts o = {2, 1, 1, 2};
    ad_tensor *y = ad_conv1d(x, w, NULL, &o);
    assert_shape(y, 3, sy);
    ad_conv2d_opts o2 = {{1, 2}, {0, 1}, {1, 1}, 2, {0, 0}};
    ad_tensor *y2 = ad_conv2d(ad_reshape(x, 4, (int64_t[]){2, 2, 1, 7}),
                              ad_reshape(w, 4, (int64_t[]){4, 1, 1, 3}), NULL, &o2);
    for (int64_t i = 0; i < 32; i++)
        assert_close(ad_tensor_get(y2, i), ad_tensor_get(y, i), 0, 0);
}

static void test_conv_transpose2d_matches_pytorch(void **state)
{
    ad_tape *tape = *state;
    const int64_t sx[4] = {1, 2, 2, 3}, sw[4] = {2, 1, 3, 2}, sb[1] = {2}, sy[4] = {1, 2, 4, 5};
    const double b[2] = {0.5, -0.5};
    /* torch.nn.functional.conv_transpose2d(x, w, b, stride=2, padding=1,
     * output_padding=1, groups=2), x = sin(0.7 i), w = cos(0.3 i) */
    const double expected[40] = {0.5,
                                 1.03169580103,
                                 0.900452136123,
                                 1.31332675886,
                                 1.11256537539,
                                 1.32465540571,
                                 1.0684254247,
                                 0.865596559729,
                                 0.506302123619,
                                 0.234591939098,
                                 1.03657954701,
                                 0.776477650896,
                                 0.708231973389,
                                 0.210486109075,
                                 0.281949648966,
                                 0.56106101505,
                                 0.621385553867,
                                 0.523696124334,
                                 0.372890977306,
                                 0.475186576081,
                                 0.287967375496,
                                 0.224454382366,
                                 0.388208037926,
                                 -0.0345079484021,
                                 0.0707105814851,
                                 0.352175011038,
                                 0.323351983349,
                                 0.138474954723,
                                 -0.0995646577982,
                                 -0.375509849245,
                                 -0.515200979027,
                                 -0.98445778909,
                                 -1.09396328158,
                                 -1.22866904556,
                                 -1.39337537187,
                                 -0.516603386582,
                                 -1.1504118031,
                                 -1.14876097534,
                                 -1.47827913692,
                                 -1.47579614022};
    ad_conv2d_opts o = ad_conv2d_defaults();
    o.stride[0] = o.stride[1] = 2;
    o.padding[0] = o.padding[1] = 1;
    o.output_padding[0] = o.output_padding[1] = 1;
    o.groups = 2;
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *x = wave(tape, (ad_dtype)dt, 4, sx, 0.7, 0);
        ad_tensor *w =
            wave(tape, (ad_dtype)dt, 4, sw, 0.3, 1.5707963267948966); /* sin(t + pi/2) = cos t */
        ad_tensor *y = ad_conv_transpose2d(x, w, tensor(tape, (ad_dtype)dt, 1, sb, b), &o);
        assert_shape(y, 4, sy);
        assert_values(y, 40, expected, 0, dt == AD_F32 ? 1e-5 : 1e-10);
    }
}

static void test_max_pool2d_ties_go_to_the_first_maximum_as_pytorch(void **state)
{
    ad_tape *tape = *state;
    const int64_t sx[4] = {1, 1, 3, 4}, sy[4] = {1, 1, 4, 5};
    const double x[12] = {1, 3, 3, 2, 0, 3, 1, 3, 2, 3, 3, 1};
    /* torch max_pool2d(x, (2, 2), stride=1, padding=1): values and x.grad of y.sum() */
    const double y[20] = {1, 3, 3, 3, 2, 1, 3, 3, 3, 3, 2, 3, 3, 3, 3, 2, 3, 3, 3, 1};
    const double dx[12] = {2, 4, 2, 1, 0, 2, 0, 3, 2, 2, 1, 1};
    ad_pool2d_opts o = ad_pool2d_defaults(2, 2);
    o.stride[0] = o.stride[1] = 1;
    o.padding[0] = o.padding[1] = 1;
    for (int dt = 0; dt < 2; dt++) {
        ad_tensor *xs = leaf(tape, (ad_dtype)dt, 4, sx, x);
        ad_tensor *ys = ad_max_pool2d(xs, &o);
        assert_shape(ys, 4, sy);
        assert_exact(ys, 20, y);
        assert_exact(grad_of_sum(ys, xs), 12, dx);
    }
}

static void test_avg_and_adaptive_avg_pool2d_match_pytorch(void **state)
{
    ad_tape *tape = *state;
    const int64_t sx[4] = {1, 1, 5, 6}, s33[4] = {1, 1, 3, 3}, s34[4] = {1, 1, 3, 4};
    /* avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False) and
     * adaptive_avg_pool2d(x, (3, 4)), x = sin(0.7 i) */
    const double avg[9] = {-0.30245267445,   0.14932857231,     0.418230503699,
                           0.00381028246958, -0.00200643642802, -0.00536089973058,
                           -0.290000057408,  0.162647968161,    0.415324414069};
    const double adaptive[12] = {-0.30245267445,    0.00398704168237,  0.467999504002,
                                 0.407339938766,    0.00381028246958,  -0.000153816584626,
                                 -0.00603463367187, -0.00518551153848, -0.290000057408,
                                 0.0199295725043,   0.470312873941,    0.398944241366};
    ad_pool2d_opts o = ad_pool2d_defaults(3, 3);
    o.stride[0] = o.stride[1] = 2;
    o.padding[0] = o.padding[1] = 1;
    o.count_include_pad = false;
    for (int dt = 0; dt < 2; dt++) {
        double tol = dt == AD_F32 ? 1e-6 : 1e-11;
        ad_tensor *x = wave(tape, (ad_dtype)dt, 4, sx, 0.7, 0);
        ad_tensor *y = ad_avg_pool2d(x, &o);
        assert_shape(y, 4, s33);
        assert_values(y, 9, avg, 0, tol);
        ad_tensor *a = ad_adaptive_avg_pool2d(x, 3, 4);
        assert_shape(a, 4, s34);
        assert_values(a, 12, adaptive, 0, tol);
    }
    /* count_include_pad (the default): the corner window divides by 9 */
    o.count_include_pad = true;
    ad_tensor *x = wave(tape, AD_F64, 4, sx, 0.7, 0);
    ad_tensor *y = ad_avg_pool2d(x, &o);
    assert_close(avg[0] * 4 / 9, ad_tensor_get(y, 0), 1e-12, 0);
}

/* ---- Errors: each names the op, the attribute and the shapes ----------------------------- */

static ad_tensor *zeros(ad_tape *tape, int ndim, const int64_t *shape)
{
    ad_tensor *t = ad_tape_tensor(tape, AD_F64, ndim, shape, NULL);
    assert_non_null(t);
    return t;
}

static const int64_t x2256[4] = {2, 2, 5, 6}, w3233[4] = {3, 2, 3, 3};

/* conv2d(x [2,2,5,6], w [3,2,3,3]) with one field of the defaults changed. */
static void expect_conv2d_error(ad_conv2d_opts o, ad_status code, const char *part)
{
    ad_tape *tape = test_tape();
    assert_null(ad_conv2d(zeros(tape, 4, x2256), zeros(tape, 4, w3233), NULL, &o));
    assert_int_equal(ad_tape_status(tape), code);
    assert_message_has(tape, part);
    ad_tape_free(tape);
}

static void test_conv2d_zero_or_negative_attributes_are_errors_not_defaults(void **state)
{
    (void)state;
    ad_conv2d_opts o = ad_conv2d_defaults();
    o.stride[1] = 0;
    expect_conv2d_error(o, AD_ERR_ARG,
                        "conv2d: stride (1, 0) must be at least 1 (input [2,2,5,6])");
    o = ad_conv2d_defaults();
    o.stride[0] = -2;
    expect_conv2d_error(o, AD_ERR_ARG, "conv2d: stride (-2, 1) must be at least 1");
    o = ad_conv2d_defaults();
    o.dilation[0] = 0;
    expect_conv2d_error(o, AD_ERR_ARG, "conv2d: dilation (0, 1) must be at least 1");
    o = ad_conv2d_defaults();
    o.groups = 0;
    expect_conv2d_error(o, AD_ERR_ARG, "conv2d: groups 0 must be at least 1 (input [2,2,5,6])");
    o = ad_conv2d_defaults();
    o.padding[1] = -1;
    expect_conv2d_error(o, AD_ERR_ARG, "conv2d: padding (0, -1) must be at least 0");
    expect_conv2d_error((ad_conv2d_opts){0}, AD_ERR_ARG, "conv2d: stride (0, 0)");
}

static void test_conv2d_channels_not_divisible_by_groups_name_both_shapes(void **state)
{
    (void)state;
    ad_conv2d_opts o = ad_conv2d_defaults();
    o.groups = 2;
    expect_conv2d_error(o, AD_ERR_SHAPE,
                        "conv2d: groups 2 does not fit input [2,2,5,6] and weight [3,2,3,3]");
}

static void test_conv2d_kernel_larger_than_the_padded_input_is_a_shape_error(void **state)
{
    (void)state;
    ad_conv2d_opts o = ad_conv2d_defaults();
    o.dilation[0] = 3; /* 7 rows of 5 */
    expect_conv2d_error(o, AD_ERR_SHAPE,
                        "conv2d: kernel 3x3 (dilation 3x1) is larger than the padded input 5x6 "
                        "(input [2,2,5,6], weight [3,2,3,3], padding 0x0)");
}

static void test_conv_ops_of_the_wrong_ndim_name_the_layout_and_the_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t s3[3] = {2, 5, 6}, s4[4] = {3, 2, 3, 3};
    assert_null(ad_conv2d(zeros(tape, 3, s3), zeros(tape, 4, s4), NULL, NULL));
    assert_message_has(tape, "conv2d: input must be 4d [N, C, H, W], got shape [2,5,6]");
    ad_tape *t2 = test_tape();
    assert_null(ad_conv1d(zeros(t2, 4, s4), zeros(t2, 3, s3), NULL, NULL));
    assert_message_has(t2, "conv1d: input must be 3d [N, C, L], got shape [3,2,3,3]");
    ad_tape_free(t2);
    t2 = test_tape();
    assert_null(
        ad_max_pool2d(zeros(t2, 3, s3), &(ad_pool2d_opts){{2, 2}, {2, 2}, {0, 0}, {1, 1}, true}));
    assert_int_equal(ad_tape_status(t2), AD_ERR_SHAPE);
    assert_message_has(t2, "max_pool2d: input must be 4d [N, C, H, W], got shape [2,5,6]");
    ad_tape_free(t2);
}

static void test_conv2d_bias_of_the_wrong_size_names_its_shape(void **state)
{
    ad_tape *tape = *state;
    const int64_t sb[1] = {2};
    assert_null(ad_conv2d(zeros(tape, 4, x2256), zeros(tape, 4, w3233), zeros(tape, 1, sb), NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "conv2d: bias of shape [2], expected [3]");
}

static void test_conv_transpose2d_output_padding_must_be_below_stride_or_dilation(void **state)
{
    ad_tape *tape = *state;
    const int64_t sx[4] = {1, 2, 3, 3}, sw[4] = {2, 1, 2, 2};
    ad_conv2d_opts o = ad_conv2d_defaults();
    o.output_padding[0] = 1;
    assert_null(ad_conv_transpose2d(zeros(tape, 4, sx), zeros(tape, 4, sw), NULL, &o));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "conv_transpose2d: output_padding (1, 0) must be smaller than the "
                             "stride or the dilation (input [1,2,3,3])");
}

static void test_pool_attributes_are_checked_by_name(void **state)
{
    (void)state;
    const struct {
        ad_pool2d_opts o;
        bool max;
        const char *part;
    } cases[] = {
        {{{2, 2}, {0, 2}, {0, 0}, {1, 1}, true},
         true,
         "max_pool2d: stride (0, 2) must be at least 1 (input [2,2,5,6])"},
        {{{0, 2}, {1, 1}, {0, 0}, {1, 1}, true},
         false,
         "avg_pool2d: kernel (0, 2) must be at least 1"},
        {{{2, 2}, {1, 1}, {2, 0}, {1, 1}, true},
         true,
         "max_pool2d: padding (2, 0) must be at most half the kernel 2x2"},
        {{{2, 2}, {1, 1}, {0, 0}, {0, 1}, true},
         true,
         "max_pool2d: dilation (0, 1) must be at least 1"},
        {{{2, 2}, {1, 1}, {0, 0}, {2, 1}, true}, false, "avg_pool2d: dilation (2, 1) must be 1"},
        {{{6, 2}, {1, 1}, {0, 0}, {1, 1}, true},
         true,
         "max_pool2d: kernel 6x2 (dilation 1x1) is larger than the padded input 5x6"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ad_tape *tape = test_tape();
        ad_tensor *x = zeros(tape, 4, x2256);
        assert_null(cases[k].max ? ad_max_pool2d(x, &cases[k].o) : ad_avg_pool2d(x, &cases[k].o));
        assert_message_has(tape, cases[k].part);
        ad_tape_free(tape);
    }
}

static void test_pool_without_opts_and_adaptive_pool_to_zero_are_argument_errors(void **state)
{
    ad_tape *tape = *state;
    assert_null(ad_max_pool2d(zeros(tape, 4, x2256), NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "max_pool2d: opts is NULL");
    ad_tape *t2 = test_tape();
    assert_null(ad_adaptive_avg_pool2d(zeros(t2, 4, x2256), 0, 3));
    assert_message_has(t2, "adaptive_avg_pool2d: output size 0x3 must be at least 1x1");
    ad_tape_free(t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_conv2d_matches_a_direct_convolution),
        TAPE_TEST(test_conv2d_with_null_opts_is_stride_1_padding_0_and_adds_the_bias),
        TAPE_TEST(test_conv1d_is_conv2d_over_one_row),
        TAPE_TEST(test_conv_transpose2d_matches_pytorch),
        TAPE_TEST(test_max_pool2d_ties_go_to_the_first_maximum_as_pytorch),
        TAPE_TEST(test_avg_and_adaptive_avg_pool2d_match_pytorch),
        cmocka_unit_test(test_conv2d_zero_or_negative_attributes_are_errors_not_defaults),
        cmocka_unit_test(test_conv2d_channels_not_divisible_by_groups_name_both_shapes),
        cmocka_unit_test(test_conv2d_kernel_larger_than_the_padded_input_is_a_shape_error),
        TAPE_TEST(test_conv_ops_of_the_wrong_ndim_name_the_layout_and_the_shape),
        TAPE_TEST(test_conv2d_bias_of_the_wrong_size_names_its_shape),
        TAPE_TEST(test_conv_transpose2d_output_padding_must_be_below_stride_or_dilation),
        cmocka_unit_test(test_pool_attributes_are_checked_by_name),
        TAPE_TEST(test_pool_without_opts_and_adaptive_pool_to_zero_are_argument_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
