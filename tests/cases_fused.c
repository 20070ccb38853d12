/* Gradient-check cases for the fused ops (src/ops/fused.c): softmax,
 * log_softmax and cross_entropy are op-table rows. mse is a composition; its
 * cases are filed under "sub", the row it starts from, because test_grad.c
 * requires every case to name a row of the op table. The softmax cases also
 * feed products, so the backward sees a gradient that is not constant
 * (sum(softmax) = 1 would hide a wrong rule), and run over leading, middle,
 * last and negative axes and at logits near 100. */
#include "grad_cases.h"

#include <stddef.h>

/* ---- softmax, log_softmax ----------------------------------------------------------------- */

static ad_tensor *f_softmax(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_softmax(in[0], *(const int *)ctx);
}

static ad_tensor *f_log_softmax(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_log_softmax(in[0], *(const int *)ctx);
}

/* softmax(x, axis) * w: the upstream gradient varies along the axis. */
static ad_tensor *f_softmax_weighted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_mul(ad_softmax(in[0], *(const int *)ctx), in[1]);
}

static ad_tensor *f_log_softmax_weighted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_mul(ad_log_softmax(in[0], *(const int *)ctx), in[1]);
}

/* softmax(x) x: the input also meets its own softmax, so the second
 * derivative crosses the op twice. */
static ad_tensor *f_softmax_times_input(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_mul(ad_softmax(in[0], *(const int *)ctx), in[0]);
}

static const int axis0 = 0, axis1 = 1, axis2 = 2, axis_last = -1, axis_neg3 = -3, axis_neg2 = -2;

/* ---- cross_entropy ------------------------------------------------------------------------ */

typedef struct targets_ctx {
    size_t n;
    int64_t targets[8];
} targets_ctx;

static ad_tensor *f_cross_entropy(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const targets_ctx *t = ctx;
    (void)tape, (void)n;
    return ad_cross_entropy(in[0], t->n, t->targets);
}

/* cross_entropy(x w): the loss of a linear classifier, two inputs. */
static ad_tensor *f_cross_entropy_linear(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const targets_ctx *t = ctx;
    (void)tape, (void)n;
    return ad_cross_entropy(ad_matmul(in[0], in[1]), t->n, t->targets);
}

/* cross_entropy(x) * cross_entropy(x): a non-constant upstream gradient. */
static ad_tensor *f_cross_entropy_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const targets_ctx *t = ctx;
    (void)tape, (void)n;
    return ad_square(ad_cross_entropy(in[0], t->n, t->targets));
}

static targets_ctx t4 = {4, {0, 2, 1, 2}};
static targets_ctx t1 = {1, {4}};
static targets_ctx t3 = {3, {3, 0, 3}};
static targets_ctx t_repeat = {5, {1, 1, 1, 0, 1}};

/* ---- mse --------------------------------------------------------------------------------- */

static ad_tensor *f_mse(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mse_loss(in[0], in[1]);
}

// clang-format off
#define ONE(d0, ...) .n_inputs = 1, .ndim = {d0}, .shape = {{__VA_ARGS__}}
#define TWO(d0, s0, d1, s1) .n_inputs = 2, .ndim = {d0, d1}, .shape = {s0, s1}
#define S(...) {__VA_ARGS__}

const grad_case cases_fused[] = {
    /* softmax */
    {.op = "softmax", .name = "axis 1 of [2,3]", .f = f_softmax, .ctx = (void *)&axis1,
     ONE(2, 2, 3)},
    {.op = "softmax", .name = "axis 0 of [3,2]", .f = f_softmax, .ctx = (void *)&axis0,
     ONE(2, 3, 2)},
    {.op = "softmax", .name = "axis 1 (middle) of [2,3,4]", .f = f_softmax,
     .ctx = (void *)&axis1, ONE(3, 2, 3, 4)},
    {.op = "softmax", .name = "axis -1 of [2,3,4]", .f = f_softmax, .ctx = (void *)&axis_last,
     ONE(3, 2, 3, 4)},
    {.op = "softmax", .name = "axis -3 of [2,3,2]", .f = f_softmax, .ctx = (void *)&axis_neg3,
     ONE(3, 2, 3, 2)},
    {.op = "softmax", .name = "size-1 axis 1 of [3,1]", .f = f_softmax, .ctx = (void *)&axis1,
     ONE(2, 3, 1)},
    {.op = "softmax", .name = "1-D [5]", .f = f_softmax, .ctx = (void *)&axis0, ONE(1, 5)},
    {.op = "softmax", .name = "softmax(x, 2) * w, [2,2,3]", .f = f_softmax_weighted,
     .ctx = (void *)&axis2, TWO(3, S(2, 2, 3), 3, S(2, 2, 3))},
    {.op = "softmax", .name = "softmax(x, -2) * w, [3,4] and [4] broadcast",
     .f = f_softmax_weighted, .ctx = (void *)&axis_neg2, TWO(2, S(3, 4), 1, S(4))},
    {.op = "softmax", .name = "softmax(x, -1) * x, [2,4]", .f = f_softmax_times_input,
     .ctx = (void *)&axis_last, ONE(2, 2, 4)},
    {.op = "softmax", .name = "axis -1 of [2,3], logits in [100,104)", .f = f_softmax,
     .ctx = (void *)&axis_last, ONE(2, 2, 3), .lo = 100, .hi = 104},

    /* log_softmax */
    {.op = "log_softmax", .name = "axis 1 of [2,3]", .f = f_log_softmax, .ctx = (void *)&axis1,
     ONE(2, 2, 3)},
    {.op = "log_softmax", .name = "axis 0 of [3,2]", .f = f_log_softmax,
     .ctx = (void *)&axis0, ONE(2, 3, 2)},
    {.op = "log_softmax", .name = "axis 1 (middle) of [2,3,4]", .f = f_log_softmax,
     .ctx = (void *)&axis1, ONE(3, 2, 3, 4)},
    {.op = "log_softmax", .name = "axis -1 of [2,3,4]", .f = f_log_softmax,
     .ctx = (void *)&axis_last, ONE(3, 2, 3, 4)},
    {.op = "log_softmax", .name = "axis -3 of [2,3,2]", .f = f_log_softmax,
     .ctx = (void *)&axis_neg3, ONE(3, 2, 3, 2)},
    {.op = "log_softmax", .name = "size-1 axis 1 of [3,1]", .f = f_log_softmax,
     .ctx = (void *)&axis1, ONE(2, 3, 1)},
    {.op = "log_softmax", .name = "log_softmax(x, 1) * w, [2,3,2]", .f = f_log_softmax_weighted,
     .ctx = (void *)&axis1, TWO(3, S(2, 3, 2), 3, S(2, 3, 2))},
    {.op = "log_softmax", .name = "axis -1 of [2,3], logits in [100,104)", .f = f_log_softmax,
     .ctx = (void *)&axis_last, ONE(2, 2, 3), .lo = 100, .hi = 104},

    /* cross_entropy */
    {.op = "cross_entropy", .name = "[4,3], targets {0,2,1,2}", .f = f_cross_entropy,
     .ctx = &t4, ONE(2, 4, 3)},
    {.op = "cross_entropy", .name = "one row [1,5], target 4", .f = f_cross_entropy,
     .ctx = &t1, ONE(2, 1, 5)},
    {.op = "cross_entropy", .name = "[3,4], logits in [100,104)", .f = f_cross_entropy,
     .ctx = &t3, ONE(2, 3, 4), .lo = 100, .hi = 104},
    {.op = "cross_entropy", .name = "[5,2], a repeated target", .f = f_cross_entropy,
     .ctx = &t_repeat, ONE(2, 5, 2)},
    {.op = "cross_entropy", .name = "cross_entropy(x)^2 [4,3]", .f = f_cross_entropy_squared,
     .ctx = &t4, ONE(2, 4, 3)},
    {.op = "cross_entropy", .name = "cross_entropy(x w) [4,2] [2,3]",
     .f = f_cross_entropy_linear, .ctx = &t4, TWO(2, S(4, 2), 2, S(2, 3))},

    /* mse: a composition of sub, square and mean */
    {.op = "sub", .name = "mse [2,3] and [2,3]", .f = f_mse, TWO(2, S(2, 3), 2, S(2, 3))},
    {.op = "sub", .name = "mse broadcast [2,3] and [3]", .f = f_mse, TWO(2, S(2, 3), 1, S(3))},
    {.op = "sub", .name = "mse broadcast [2,1] and [1,3]", .f = f_mse, TWO(2, S(2, 1), 2, S(1, 3))},
    {.op = "sub", .name = "mse 0-d and [4]", .f = f_mse, TWO(0, S(0), 1, S(4))},
};
// clang-format on

const size_t n_cases_fused = sizeof cases_fused / sizeof cases_fused[0];
