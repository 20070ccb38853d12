/* Gradient-check cases for custom ops (src/core/custom.c) and activation
 * checkpointing (src/core/checkpoint.c, a custom op underneath): one output and
 * several, backward written with ops (so second order follows), with and
 * without a jvp callback (forward mode then derived from the backward), a
 * first-order backward of raw numbers, and checkpointed functions. The ops
 * are registered on first use and freed at exit. */
#include "autodiff/custom.h"
#include "grad_cases.h"

#include <math.h>
#include <stdlib.h>

/* ---- y = a * exp(b), broadcasting left to ops; no jvp callback ---------------------- */

static ad_status aexpb_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_mul(in[0], ad_exp(in[1]));
    return out[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

// da = dy exp(b) (summed to a's shape), db = dy y (summed to b's shape)
static ad_status aexpb_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    ad_tensor *a = ad_custom_input(c, 0), *b = ad_custom_input(c, 1);
    ad_tensor *y = ad_custom_output(c, 0);
    gin[0] = ad_sum_to(ad_mul(g[0], ad_exp(b)), ad_tensor_ndim(a), ad_tensor_shape(a));
    gin[1] = ad_sum_to(ad_mul(g[0], y), ad_tensor_ndim(b), ad_tensor_shape(b));
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- y = log(1 + x^2), with a jvp callback --------------------------------------- */

static ad_status log1psq_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_log1p(ad_square(in[0]));
    return out[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

// dx = dy 2x / (1 + x^2)
static ad_tensor *log1psq_slope(ad_custom_ctx *c)
{
    ad_tensor *x = ad_custom_input(c, 0);
    return ad_div(ad_mul_scalar(x, 2.0), ad_add_scalar(ad_square(x), 1.0));
}

static ad_status log1psq_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    gin[0] = ad_mul(g[0], log1psq_slope(c));
    return ad_tape_status(ad_custom_tape(c));
}

static ad_status log1psq_jvp(ad_custom_ctx *c, ad_tensor *const *t, ad_tensor **out)
{
    out[0] = ad_mul(t[0], log1psq_slope(c));
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- (a * b, a + b^2): two outputs --------------------------------------------------- */

static ad_status pair_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_mul(in[0], in[1]);
    out[1] = ad_add(in[0], ad_square(in[1]));
    return ad_tape_status(ad_custom_tape(c));
}

// da = g0 b + g1, db = g0 a + g1 2b
static ad_status pair_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    ad_tensor *a = ad_custom_input(c, 0), *b = ad_custom_input(c, 1);
    gin[0] = ad_add(ad_mul(g[0], b), g[1]);
    gin[1] = ad_add(ad_mul(g[0], a), ad_mul(g[1], ad_mul_scalar(b, 2.0)));
    return ad_tape_status(ad_custom_tape(c));
}

static ad_status pair_jvp(ad_custom_ctx *c, ad_tensor *const *t, ad_tensor **out)
{
    ad_tensor *a = ad_custom_input(c, 0), *b = ad_custom_input(c, 1);
    ad_tensor *ta = t[0], *tb = t[1];
    ad_tensor *d0 = NULL, *d1 = NULL;
    if (ta) {
        d0 = ad_mul(ta, b);
        d1 = ta;
    }
    if (tb) {
        ad_tensor *e0 = ad_mul(a, tb), *e1 = ad_mul(ad_mul_scalar(b, 2.0), tb);
        d0 = d0 ? ad_add(d0, e0) : e0;
        d1 = d1 ? ad_add(d1, e1) : e1;
    }
    out[0] = d0;
    out[1] = d1;
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- y = x^3 from raw numbers, both ways: first order only ------------------------------ */

static ad_status cube_raw_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    ad_tensor *x = in[0];
    out[0] = ad_tape_tensor(ad_custom_tape(c), AD_F64, ad_tensor_ndim(x), ad_tensor_shape(x), NULL);
    if (!out[0])
        return ad_tape_status(ad_custom_tape(c));
    const double *X = ad_tensor_data(x);
    double *Y = ad_tensor_data(out[0]);
    for (int64_t i = 0; i < ad_tensor_numel(x); i++)
        Y[i] = X[i] * X[i] * X[i];
    return AD_OK;
}

// dx = 3 x^2 dy, in raw numbers
static ad_status cube_raw_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    ad_tensor *x = ad_custom_input(c, 0);
    gin[0] = ad_tape_tensor(ad_custom_tape(c), AD_F64, ad_tensor_ndim(x), ad_tensor_shape(x), NULL);
    if (!gin[0])
        return ad_tape_status(ad_custom_tape(c));
    const double *X = ad_tensor_data(x), *G = ad_tensor_data(g[0]);
    double *D = ad_tensor_data(gin[0]);
    for (int64_t i = 0; i < ad_tensor_numel(x); i++)
        D[i] = 3 * X[i] * X[i] * G[i];
    return AD_OK;
}

static ad_status cube_raw_jvp(ad_custom_ctx *c, ad_tensor *const *t, ad_tensor **out)
{
    return cube_raw_backward(c, t, out); /* diagonal Jacobian: the same numbers */
}

/* ---- Registration ---------------------------------------------------------------------- */

enum { OP_AEXPB, OP_LOG1PSQ, OP_PAIR, OP_CUBE_RAW, N_OPS };
static ad_custom_op *ops[N_OPS];

static void free_ops(void)
{
    for (int i = 0; i < N_OPS; i++)
        ad_custom_op_free(ops[i]);
}

static const ad_custom_op *op(int which)
{
    static const ad_custom_op_def defs[N_OPS] = {
        {.name = "a_exp_b",
         .n_inputs = 2,
         .n_outputs = 1,
         .forward = aexpb_forward,
         .backward = aexpb_backward},
        {.name = "log1p_square",
         .n_inputs = 1,
         .n_outputs = 1,
         .forward = log1psq_forward,
         .backward = log1psq_backward,
         .jvp = log1psq_jvp},
        {.name = "pair",
         .n_inputs = 2,
         .n_outputs = 2,
         .forward = pair_forward,
         .backward = pair_backward,
         .jvp = pair_jvp},
        {.name = "cube_raw",
         .n_inputs = 1,
         .n_outputs = 1,
         .forward = cube_raw_forward,
         .backward = cube_raw_backward,
         .jvp = cube_raw_jvp,
         .flags = AD_CUSTOM_FIRST_ORDER},
    };
    if (!ops[which]) {
        if (ad_custom_op_create(&ops[which], &defs[which]) != AD_OK)
            return NULL;
        if (which == 0)
            atexit(free_ops);
    }
    return ops[which];
}

/* ---- Case functions --------------------------------------------------------------------- */

static ad_tensor *f_aexpb(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    op(OP_AEXPB); /* the first registered: sets up the atexit */
    return ad_custom(op(OP_AEXPB), n, in, NULL);
}

/* Inside an expression: the op's gradient is not all ones, its result feeds tanh. */
static ad_tensor *f_aexpb_chain(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    op(OP_AEXPB);
    ad_tensor *y = ad_custom(op(OP_AEXPB), n, in, NULL);
    return ad_tanh(ad_mul(y, ad_sin(in[0])));
}

static ad_tensor *f_log1psq(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    op(OP_AEXPB);
    return ad_mul(ad_custom(op(OP_LOG1PSQ), n, in, NULL), in[0]);
}

static ad_tensor *f_pair(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    op(OP_AEXPB);
    ad_tensor *y[2];
    if (ad_custom_apply(op(OP_PAIR), n, in, NULL, y) != AD_OK)
        return NULL;
    return ad_add(ad_mul_scalar(ad_sin(y[0]), 2.0), ad_square(y[1]));
}

/* Only the second output used: the first gets a zero gradient. */
static ad_tensor *f_pair_second(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    op(OP_AEXPB);
    ad_tensor *y[2];
    if (ad_custom_apply(op(OP_PAIR), n, in, NULL, y) != AD_OK)
        return NULL;
    return ad_exp(y[1]);
}

static ad_tensor *f_cube_raw(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    op(OP_AEXPB);
    return ad_custom(op(OP_CUBE_RAW), n, in, NULL);
}

/* Checkpointed: tanh(x w) * x for x [2,3], w [3,3], and one nested in another. */
static ad_tensor *layer(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mul(ad_tanh(ad_matmul(in[0], in[1])), in[0]);
}

static ad_tensor *f_checkpoint(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    return ad_sin(ad_checkpoint(layer, NULL, n, in));
}

static ad_tensor *two_layers(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    ad_tensor *h = ad_checkpoint(layer, NULL, 2, in);
    ad_tensor *in2[2] = {h, in[1]};
    return layer(tape, 2, in2, NULL);
}

static ad_tensor *f_checkpoint_nested(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    return ad_checkpoint(two_layers, NULL, n, in);
}

#define SHAPES2(d0, s0, d1, s1) .n_inputs = 2, .ndim = {d0, d1}, .shape = {s0, s1}
#define S(...)                                                                                     \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }

const grad_case cases_custom[] = {
    {.op = "custom",
     .name = "a * exp(b), [2,3] and [3], jvp from the backward",
     .f = f_aexpb,
     SHAPES2(2, S(2, 3), 1, S(3))},
    {.op = "custom",
     .name = "tanh(a_exp_b(a, b) * sin a), [4] and 0-d",
     .f = f_aexpb_chain,
     SHAPES2(1, S(4), 0, S(0))},
    {.op = "custom",
     .name = "log1p(x^2) * x with a jvp callback, [2,3]",
     .f = f_log1psq,
     .n_inputs = 1,
     .ndim = {2},
     .shape = {{2, 3}},
     .lo = -2,
     .hi = 2},
    {.op = "custom",
     .name = "x^3 from raw numbers (first order only)",
     .f = f_cube_raw,
     .n_inputs = 1,
     .ndim = {1},
     .shape = {{5}},
     .first_order_only = true},
    {.op = "custom",
     .name = "checkpoint of tanh(x w) * x, [2,3] [3,3]",
     .f = f_checkpoint,
     SHAPES2(2, S(2, 3), 2, S(3, 3))},
    {.op = "custom",
     .name = "checkpoint nested in a checkpoint",
     .f = f_checkpoint_nested,
     SHAPES2(2, S(2, 3), 2, S(3, 3))},
    {.op = "custom_output",
     .name = "(a b, a + b^2) both used, [2,2]",
     .f = f_pair,
     SHAPES2(2, S(2, 2), 2, S(2, 2))},
    {.op = "custom_output",
     .name = "(a b, a + b^2) second used, [3] and [3]",
     .f = f_pair_second,
     SHAPES2(1, S(3), 1, S(3))},
};
const size_t n_cases_custom = sizeof cases_custom / sizeof cases_custom[0];
