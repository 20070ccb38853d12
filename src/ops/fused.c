/* Fused ops for numerics: softmax, log_softmax and cross_entropy have their
 * own kernels, stable for logits of any magnitude (the max is subtracted
 * before exp, so exp never sees a large positive number), and backward rules
 * written with ops; mse is a composition. Both dtypes compute in double. */
#include "ops.h"

#include "fast_float.h"

#include <math.h>

#define KERNELS "ops/fused_kernels.h"
#include "../core/kernels.h"

/* ---- Groups along one axis ------------------------------------------------------------
 * x seen as [outer, n, inner] around the axis: group (o, i) is the n elements
 * x[o, r, i], at (o * n + r) * inner + i. A kernel copies a group into a
 * buffer of doubles, works there, and writes the result back: gather and
 * scatter deal with dtypes (fused_kernels.h) and strides, the arithmetic
 * is plain double loops. */
typedef struct axis_groups {
    int64_t outer, n, inner;
} axis_groups;

static axis_groups groups_along(const ad_tensor *x, int axis)
{
    axis_groups g = {1, x->shape[axis], 1};
    for (int d = 0; d < axis; d++)
        g.outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++)
        g.inner *= x->shape[d];
    return g;
}

/* Group (o, i) of x into buf, as doubles. */
static void gather(const ad_tensor *x, const axis_groups *g, int64_t o, int64_t i, double *buf)
{
    int64_t start = o * g->n * g->inner + i;
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        gather_f32(g->n, g->inner, (const float *)x->data + start, buf);
        return;
    case AD_F64:
        gather_f64(g->n, g->inner, (const double *)x->data + start, buf);
        return;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* buf into group (o, i) of y, converted to y's dtype. */
static void scatter(ad_tensor *y, const axis_groups *g, int64_t o, int64_t i, const double *buf)
{
    int64_t start = o * g->n * g->inner + i;
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        scatter_f32(g->n, g->inner, buf, (float *)y->data + start);
        return;
    case AD_F64:
        scatter_f64(g->n, g->inner, buf, (double *)y->data + start);
        return;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* The max of v[0..n) (NaN wins, as in PyTorch) and the sum of exp(v - max).
 * A max of +-inf or NaN is returned with *sum = NaN: then v - max is NaN, as
 * PyTorch's softmax gives for a row of all -inf or one with +inf. */
static double max_and_sum_exp(const double *v, int64_t n, double *sum)
{
    double m = -INFINITY;
    for (int64_t r = 0; r < n; r++)
        if (v[r] > m || v[r] != v[r])
            m = v[r];
    if (!isfinite(m)) {
        *sum = NAN;
        return m;
    }
    double s = 0;
    for (int64_t r = 0; r < n; r++)
        s += exp(v[r] - m);
    *sum = s;
    return m;
}

/* The shared part of softmax and log_softmax: param[0].i is the axis. */
static ad_tensor *along_axis(int op, ad_tensor *x, int axis)
{
    if (!ad__input_tape(x, ad__ops[op].name))
        return NULL;
    int a = ad__check_axis(x->tape, ad__ops[op].name, x, axis);
    if (a < 0)
        return NULL;
    ad__param params[AD_NPARAM] = {{.i = a}};
    return ad__apply(op, 1, &x, params);
}

/* Groups [begin, end) of a for_each_group, in a buffer on this thread's
 * stack (groups of at most GROUP_ON_STACK elements) or job->buf. */
#define GROUP_ON_STACK 2048

typedef struct group_job {
    ad_tensor *y;
    axis_groups g;
    void (*kernel)(double *buf, int64_t n);
    double *buf; /* NULL: use the stack */
} group_job;

static void group_range(void *ctx, int64_t begin, int64_t end)
{
    const group_job *j = ctx;
    double stack[GROUP_ON_STACK];
    double *buf = j->buf ? j->buf : stack;
    for (int64_t k = begin; k < end; k++) {
        int64_t o = k / j->g.inner, i = k % j->g.inner;
        gather(j->y->src[0], &j->g, o, i, buf);
        j->kernel(buf, j->g.n);
        scatter(j->y, &j->g, o, i, buf);
    }
}

/* Runs a group kernel over every group of y's input along param[0].i:
 * kernel(buf, n) turns the input group in buf into the output group. Short
 * groups are split among the threads (each a group's exps at least), long
 * ones run on this thread with a buffer from the arena. */
static void for_each_group(ad_tensor *y, void (*kernel)(double *buf, int64_t n))
{
    group_job job = {y, groups_along(y->src[0], (int)y->param[0].i), kernel, NULL};
    if (y->numel == 0)
        return;
    int64_t count = job.g.outer * job.g.inner;
    if (job.g.n <= GROUP_ON_STACK) {
        int64_t grain = AD__GRAIN_COSTLY / job.g.n;
        ad__parallel_for(count, grain > 1 ? grain : 1, group_range, &job);
        return;
    }
    job.buf = ad__alloc(y->tape, (size_t)job.g.n * sizeof *job.buf);
    if (job.buf) /* else the tape has the error; ad__apply sees it */
        group_range(&job, 0, count);
}

/* ---- softmax: exp(x - max) / sum(exp(x - max)) along an axis ----------------------------
 * dx = y * (dy - sum(dy * y, axis, keepdim)) */
ad_status ad__softmax_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

/* The max of v[0..n), NaN winning, as in PyTorch. */
static double group_max(const double *v, int64_t n)
{
    double m = -INFINITY;
    for (int64_t r = 0; r < n; r++)
        if (v[r] > m || v[r] != v[r])
            m = v[r];
    return m;
}

/* exp(v - max) in v, divided by its sum (NaN throughout for a max of +-inf or
 * NaN, as max_and_sum_exp says); one exp per element. */
static void softmax_group(double *v, int64_t n)
{
    double m = group_max(v, n), s = 0;
    if (!isfinite(m)) {
        for (int64_t r = 0; r < n; r++)
            v[r] = NAN;
        return;
    }
    for (int64_t r = 0; r < n; r++)
        s += v[r] = exp(v[r] - m);
    for (int64_t r = 0; r < n; r++)
        v[r] /= s;
}

/* softmax_group for a float32 result: the exps in float (fast_float.h, whose
 * loop vectorises; within an ulp of float's own), the sum and the division
 * still in double. */
static void softmax_group_f32(double *v, int64_t n)
{
    double m = group_max(v, n), s = 0;
    if (!isfinite(m)) {
        for (int64_t r = 0; r < n; r++)
            v[r] = NAN;
        return;
    }
    for (int64_t r = 0; r < n; r++)
        v[r] = ad__expf((float)(v[r] - m));
    for (int64_t r = 0; r < n; r++)
        s += v[r];
    for (int64_t r = 0; r < n; r++)
        v[r] /= s;
}

void ad__softmax_forward(ad_tensor *y)
{
    switch ((ad_dtype)y->dtype) {
    case AD_F32:
        for_each_group(y, softmax_group_f32);
        break;
    case AD_F64:
        for_each_group(y, softmax_group);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

void ad__softmax_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int axis = (int)y->param[0].i;
    ad_tensor *dot = ad_sum(ad_mul(gy, y), 1, &axis, true);
    gin[0] = ad_mul(y, ad_sub(gy, dot));
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__softmax_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

ad_tensor *ad_softmax(ad_tensor *x, int axis)
{
    return along_axis(AD_OP_softmax, x, axis);
}

/* ---- log_softmax: x - max - log(sum(exp(x - max))) along an axis ------------------------
 * dx = dy - exp(y) * sum(dy, axis, keepdim) */
ad_status ad__log_softmax_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

static void log_softmax_group(double *v, int64_t n)
{
    double s, m = max_and_sum_exp(v, n, &s);
    double shift = m + log(s);
    for (int64_t r = 0; r < n; r++)
        v[r] -= shift;
}

void ad__log_softmax_forward(ad_tensor *y)
{
    for_each_group(y, log_softmax_group);
}

void ad__log_softmax_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    int axis = (int)y->param[0].i;
    gin[0] = ad_sub(gy, ad_mul(ad_exp(y), ad_sum(gy, 1, &axis, true)));
}

// dy = dx - sum(softmax(x) dx)
ad_tensor *ad__log_softmax_jvp(ad_tensor *y, ad_tensor *const *t)
{
    int axis = (int)y->param[0].i;
    return ad_sub(t[0], ad_sum(ad_mul(ad_exp(y), t[0]), 1, &axis, true));
}

ad_tensor *ad_log_softmax(ad_tensor *x, int axis)
{
    return along_axis(AD_OP_log_softmax, x, axis);
}

/* ---- cross_entropy: mean over rows i of logsumexp(x_i) - x[i, t_i] ----------------------
 * dx = dy * (softmax(x, 1) - onehot(t)) / N; N = 0 gives NaN (an empty mean)
 * and an empty gradient. param[0].p: the N targets (int64, arena); param[1].i: N. */
ad_status ad__cross_entropy_shape(ad_tensor *y)
{
    y->ndim = 0;
    y->shape = NULL;
    return AD_OK;
}

void ad__cross_entropy_forward(ad_tensor *y)
{
    const ad_tensor *x = y->src[0];
    const int64_t *targets = y->param[0].p;
    axis_groups g = groups_along(x, 1); /* rows: inner is 1 */
    double total = 0;
    double *buf = g.n ? ad__alloc(y->tape, (size_t)g.n * sizeof *buf) : NULL;
    if (g.n && !buf)
        return;
    for (int64_t o = 0; o < g.outer; o++) {
        gather(x, &g, o, 0, buf);
        double s, m = max_and_sum_exp(buf, g.n, &s);
        /* logsumexp - x_t as (m - x_t) + log s: both terms are small for
         * huge logits, so nothing cancels. */
        total += (m - buf[targets[o]]) + log(s);
    }
    ad__set(y, 0, g.outer ? total / (double)g.outer : NAN);
}

void ad__cross_entropy_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    const int64_t *targets = y->param[0].p;
    int64_t rows = x->shape[0], classes = x->shape[1];
    /* A constant: never recorded, so nothing flows into it. */
    ad_tensor *onehot = ad__new(x->tape, (ad_dtype)x->dtype, 2, x->shape);
    if (!onehot)
        return;
    memset(onehot->data, 0, (size_t)x->numel * ad_dtype_size((ad_dtype)x->dtype));
    for (int64_t i = 0; i < rows; i++)
        ad__set(onehot, i * classes + targets[i], 1.0);
    ad_tensor *scale = ad_mul_scalar(gy, rows ? 1.0 / (double)rows : 0.0);
    gin[0] = ad_mul(ad_sub(ad_softmax(x, 1), onehot), scale);
}

// dy = sum(backward(y, 1) * dx) (one output element)
ad_tensor *ad__cross_entropy_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_scalar(y, t);
}

ad_tensor *ad_cross_entropy(ad_tensor *logits, size_t n, const int64_t *targets)
{
    ad_tape *tape = ad__input_tape(logits, "cross_entropy");
    if (!tape)
        return NULL;
    char s[AD__SHAPE_BUF];
    if (logits->ndim != 2) {
        ad__fail(tape, AD_ERR_SHAPE, "cross_entropy: logits %s must be 2-D [N, C]",
                 AD__SHAPE(logits, s));
        return NULL;
    }
    int64_t rows = logits->shape[0], classes = logits->shape[1];
    if ((uint64_t)rows != (uint64_t)n) {
        ad__fail(tape, AD_ERR_SHAPE, "cross_entropy: %zu targets for logits %s", n,
                 AD__SHAPE(logits, s));
        return NULL;
    }
    if (n && !targets) {
        ad__fail(tape, AD_ERR_ARG, "cross_entropy: targets is NULL for logits %s",
                 AD__SHAPE(logits, s));
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (targets[i] < 0 || targets[i] >= classes) {
            ad__fail(tape, AD_ERR_ARG,
                     "cross_entropy: target %lld of row %zu is outside [0, %lld) for logits %s",
                     (long long)targets[i], i, (long long)classes, AD__SHAPE(logits, s));
            return NULL;
        }
    int64_t *copy = ad__copy_i64(tape, targets, n);
    if (!copy)
        return NULL;
    ad__param params[AD_NPARAM] = {{.p = copy}, {.i = rows}};
    return ad__apply(AD_OP_cross_entropy, 1, &logits, params);
}

/* ---- mse_loss: mean((a - b)^2), broadcasting; a composition -----------------------------------
 * da = 2 (a - b) dy / N, summed back to a's shape; db = -(that, for b) */
ad_tensor *ad_mse_loss(ad_tensor *a, ad_tensor *b)
{
    ad_tensor *src[2] = {a, b};
    ad_tape *tape = ad__inputs_tape("mse_loss", 2, src);
    if (!tape)
        return NULL;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF];
    /* Checked here so the message names mse_loss, not the sub inside it. */
    if (!ad__same_dtype(tape, "mse_loss", a, b))
        return NULL;
    int64_t shape[AD_MAX_DIMS];
    if (ad__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, shape) < 0) {
        ad__fail(tape, AD_ERR_SHAPE, "mse_loss: shapes %s and %s do not broadcast",
                 AD__SHAPE(a, s0), AD__SHAPE(b, s1));
        return NULL;
    }
    return ad_mean_all(ad_square(ad_sub(a, b)));
}

ad_tensor *ad_cross_entropy_tensor(ad_tensor *logits, const ad_tensor *targets)
{
    ad_tape *tape = ad__input_tape(logits, "cross_entropy");
    const int64_t *t = tape ? ad__index_data(tape, "cross_entropy", "targets", targets, 1) : NULL;
    return t ? ad_cross_entropy(logits, (size_t)targets->numel, t) : NULL;
}
