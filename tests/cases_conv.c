/* Gradient-check cases for convolution and pooling (src/ops/conv.c):
 * conv2d, conv_transpose2d and conv2d_weight are op-table rows. conv1d and
 * avg_pool2d are compositions over conv2d and filed under it, max_pool2d is
 * filed under gather and adaptive_avg_pool2d under matmul. Images are small
 * (N = 2, 2..4 channels, 5x6) and cover stride 2, padding, dilation 2,
 * groups 2, rectangular kernels and the 1x1 fast path. */
#include "grad_cases.h"

#include <stddef.h>

typedef struct conv_ctx {
    ad_conv2d_opts o;
    bool bias; /* the last input is the bias */
} conv_ctx;

static ad_tensor *f_conv2d(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const conv_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_conv2d(in[0], in[1], c->bias ? in[2] : NULL, &c->o);
}

static ad_tensor *f_conv_transpose2d(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const conv_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_conv_transpose2d(in[0], in[1], c->bias ? in[2] : NULL, &c->o);
}

/* in[0] x, in[1] dy; the kernel size is in ctx's output_padding slot. */
static ad_tensor *f_conv2d_weight(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const conv_ctx *c = ctx;
    ad_conv2d_opts o = c->o;
    (void)tape, (void)n;
    o.output_padding[0] = o.output_padding[1] = 0;
    return ad_conv2d_weight(in[0], in[1], c->o.output_padding[0], c->o.output_padding[1], &o);
}

/* tanh(conv2d(x, w)) then conv2d again: the backward sees a gradient that is
 * not constant, so the second order mixes x and w. */
static ad_tensor *f_conv2d_chain(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const conv_ctx *c = ctx;
    (void)tape, (void)n;
    ad_tensor *h = ad_tanh(ad_conv2d(in[0], in[1], NULL, &c->o));
    return ad_conv2d(h, in[2], NULL, NULL);
}

static ad_tensor *f_conv1d(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const ad_conv1d_opts *o = ctx;
    (void)tape, (void)n;
    return ad_conv1d(in[0], in[1], in[2], o);
}

static ad_tensor *f_max_pool2d(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_max_pool2d(in[0], ctx);
}

static ad_tensor *f_avg_pool2d(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_avg_pool2d(in[0], ctx);
}

/* x squared first, so the pooled values are not linear in x and the second
 * order is not trivially zero. */
static ad_tensor *f_max_pool2d_of_square(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_max_pool2d(ad_mul(in[0], in[0]), ctx);
}

static ad_tensor *f_adaptive_avg_pool2d(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const int64_t *out = ctx;
    (void)tape, (void)n;
    return ad_adaptive_avg_pool2d(in[0], out[0], out[1]);
}

static conv_ctx plain_bias = {{{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}, true};
static conv_ctx stride2_pad1 = {{{2, 2}, {1, 1}, {1, 1}, 1, {0, 0}}, false};
static conv_ctx dilation2 = {{{1, 1}, {1, 2}, {2, 2}, 1, {0, 0}}, false};
static conv_ctx groups2_bias = {{{2, 1}, {1, 0}, {1, 1}, 2, {0, 0}}, true};
static conv_ctx one_by_one = {{{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}, false};
static conv_ctx all_of_them = {{{2, 1}, {2, 1}, {2, 1}, 2, {0, 0}}, true};
static conv_ctx t_stride2 = {{{2, 2}, {1, 1}, {1, 1}, 1, {1, 0}}, true};
static conv_ctx t_groups2_dilation2 = {{{1, 2}, {0, 1}, {2, 2}, 2, {0, 1}}, false};
static conv_ctx t_one_by_one = {{{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}, false};
/* conv2d_weight: output_padding holds the kernel size (f_conv2d_weight). */
static conv_ctx w_3x2_stride2 = {{{2, 2}, {1, 1}, {1, 1}, 1, {3, 2}}, false};
static conv_ctx w_groups2_dilation2 = {{{1, 1}, {1, 0}, {2, 2}, 2, {2, 3}}, false};
static ad_conv1d_opts c1_groups2 = {2, 1, 1, 2};
static ad_pool2d_opts pool_2x2 = {{2, 2}, {2, 2}, {0, 0}, {1, 1}, true};
static ad_pool2d_opts pool_3x2_pad = {{3, 2}, {2, 1}, {1, 1}, {1, 2}, true};
static ad_pool2d_opts avg_3x3_pad_include = {{3, 3}, {2, 2}, {1, 1}, {1, 1}, true};
static ad_pool2d_opts avg_3x3_pad_exclude = {{3, 3}, {2, 2}, {1, 1}, {1, 1}, false};
static int64_t adaptive_3x4[2] = {3, 4}, adaptive_4x1[2] = {4, 1};

#define S(...)                                                                                     \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }

// clang-format off
const grad_case cases_conv[] = {
    {.op = "conv2d", .name = "[2,2,5,6] * [3,2,3,2] + bias", .f = f_conv2d, .ctx = &plain_bias,
     .n_inputs = 3, .ndim = {4, 4, 1}, .shape = {S(2, 2, 5, 6), S(3, 2, 3, 2), S(3)}},
    {.op = "conv2d", .name = "stride 2 padding 1 [2,3,5,6] * [2,3,3,3]", .f = f_conv2d,
     .ctx = &stride2_pad1, .n_inputs = 2, .ndim = {4, 4}, .shape = {S(2, 3, 5, 6), S(2, 3, 3, 3)}},
    {.op = "conv2d", .name = "dilation 2 padding 1x2 [2,2,5,6] * [2,2,2,3]", .f = f_conv2d,
     .ctx = &dilation2, .n_inputs = 2, .ndim = {4, 4}, .shape = {S(2, 2, 5, 6), S(2, 2, 2, 3)}},
    {.op = "conv2d", .name = "groups 2 stride 2x1 [2,4,5,6] * [4,2,3,3] + bias", .f = f_conv2d,
     .ctx = &groups2_bias, .n_inputs = 3, .ndim = {4, 4, 1},
     .shape = {S(2, 4, 5, 6), S(4, 2, 3, 3), S(4)}},
    {.op = "conv2d", .name = "1x1 kernel [2,3,5,6] * [4,3,1,1]", .f = f_conv2d, .ctx = &one_by_one,
     .n_inputs = 2, .ndim = {4, 4}, .shape = {S(2, 3, 5, 6), S(4, 3, 1, 1)}},
    {.op = "conv2d", .name = "stride, padding, dilation, groups [2,4,5,6] * [2,2,2,3] + bias",
     .f = f_conv2d, .ctx = &all_of_them, .n_inputs = 3, .ndim = {4, 4, 1},
     .shape = {S(2, 4, 5, 6), S(2, 2, 2, 3), S(2)}},
    {.op = "conv2d", .name = "conv2d(tanh(conv2d(x, w1)), w2) [2,2,5,6]", .f = f_conv2d_chain,
     .ctx = &stride2_pad1, .n_inputs = 3, .ndim = {4, 4, 4},
     .shape = {S(2, 2, 5, 6), S(3, 2, 3, 3), S(2, 3, 2, 2)}},
    {.op = "conv2d", .name = "conv1d groups 2 stride 2 padding 1 [2,2,7] * [4,1,3] + bias",
     .f = f_conv1d, .ctx = &c1_groups2, .n_inputs = 3, .ndim = {3, 3, 1},
     .shape = {S(2, 2, 7), S(4, 1, 3), S(4)}},
    {.op = "conv2d", .name = "avg_pool2d 3x3 stride 2 padding 1 count_include_pad [2,2,5,6]",
     .f = f_avg_pool2d, .ctx = &avg_3x3_pad_include, .n_inputs = 1, .ndim = {4},
     .shape = {S(2, 2, 5, 6)}},
    {.op = "conv2d", .name = "avg_pool2d 3x3 stride 2 padding 1 excluding padding [2,2,5,6]",
     .f = f_avg_pool2d, .ctx = &avg_3x3_pad_exclude, .n_inputs = 1, .ndim = {4},
     .shape = {S(2, 2, 5, 6)}},

    {.op = "conv_transpose2d", .name = "stride 2 padding 1 output_padding 1x0 [2,3,3,4] + bias",
     .f = f_conv_transpose2d, .ctx = &t_stride2, .n_inputs = 3, .ndim = {4, 4, 1},
     .shape = {S(2, 3, 3, 4), S(3, 2, 3, 3), S(2)}},
    {.op = "conv_transpose2d", .name = "groups 2 dilation 2 output_padding 0x1 [2,4,3,3]",
     .f = f_conv_transpose2d, .ctx = &t_groups2_dilation2, .n_inputs = 2, .ndim = {4, 4},
     .shape = {S(2, 4, 3, 3), S(4, 1, 2, 2)}},
    {.op = "conv_transpose2d", .name = "1x1 kernel [2,3,5,6] [3,2,1,1]", .f = f_conv_transpose2d,
     .ctx = &t_one_by_one, .n_inputs = 2, .ndim = {4, 4}, .shape = {S(2, 3, 5, 6), S(3, 2, 1, 1)}},

    {.op = "conv2d_weight", .name = "3x2 kernel stride 2 padding 1 [2,2,5,6] dy [2,3,3,4]",
     .f = f_conv2d_weight, .ctx = &w_3x2_stride2, .n_inputs = 2, .ndim = {4, 4},
     .shape = {S(2, 2, 5, 6), S(2, 3, 3, 4)}},
    {.op = "conv2d_weight", .name = "groups 2 dilation 2 2x3 kernel [2,4,5,6] dy [2,2,5,2]",
     .f = f_conv2d_weight, .ctx = &w_groups2_dilation2, .n_inputs = 2, .ndim = {4, 4},
     .shape = {S(2, 4, 5, 6), S(2, 2, 5, 2)}},

    {.op = "gather", .name = "max_pool2d 2x2 [2,2,5,6]", .f = f_max_pool2d, .ctx = &pool_2x2,
     .n_inputs = 1, .ndim = {4}, .shape = {S(2, 2, 5, 6)}},
    {.op = "gather", .name = "max_pool2d 3x2 stride 2x1 padding 1 dilation 1x2 of x^2 [2,3,5,6]",
     .f = f_max_pool2d_of_square, .ctx = &pool_3x2_pad, .n_inputs = 1, .ndim = {4},
     .shape = {S(2, 3, 5, 6)}},
    {.op = "matmul", .name = "adaptive_avg_pool2d 5x6 -> 3x4 [2,2,5,6]",
     .f = f_adaptive_avg_pool2d, .ctx = adaptive_3x4, .n_inputs = 1, .ndim = {4},
     .shape = {S(2, 2, 5, 6)}},
    {.op = "matmul", .name = "adaptive_avg_pool2d 5x6 -> 4x1 [2,3,5,6]",
     .f = f_adaptive_avg_pool2d, .ctx = adaptive_4x1, .n_inputs = 1, .ndim = {4},
     .shape = {S(2, 3, 5, 6)}},
};
// clang-format on

const size_t n_cases_conv = sizeof cases_conv / sizeof cases_conv[0];
