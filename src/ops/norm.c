/* Normalisation layers as functions, torch.nn.functional's layer_norm,
 * group_norm and batch_norm. The normalisation over trailing dims (layer_norm,
 * and group_norm once reshaped) is one fused op, whose backward is written
 * with ops so that second derivatives are exact; batch_norm and the affine
 * weight and bias are compositions of mean, var and elementwise ops. */
#include "ops.h"

#include <math.h>

/* The row kernels, once per float dtype: layer_norm_rows_f32, ... */
#define KERNELS "ops/norm_kernels.h"
#include "../core/kernels.h"

/* ---- layer_norm: (x - mean) / sqrt(var + eps) over the last k dims, fused ------------------
 * x seen as rows of the last k dims' n elements; biased variance, as torch. The forward is
 * one kernel call per row (mean, rstd = 1 / sqrt(var + eps), then y), in double whatever
 * the dtype. The Jacobian is symmetric: rstd (I - 1/n - y y^T / n) per row.
 * param[0].i: k; [1].f: eps; [2].p: each row's rstd (double, arena), set by the forward
 * and read by the backward's fused kernel. */
// dx = rstd (dy - mean(dy) - y mean(dy y)) over the k dims, rstd = 1 / sqrt(var(x) + eps)
ad_status ad__layer_norm_shape(ad_tensor *y)
{
    return ad__same_shape_rule(y);
}

/* One parallel job over rows: a forward or a backward, of one dtype. */
typedef struct layer_norm_job {
    const ad_tensor *y, *in; /* in: x for the forward, the incoming gradient for the backward */
    ad_tensor *out;          /* y for the forward, dx for the backward */
    int64_t n;
    bool backward;
} layer_norm_job;

static void layer_norm_range(void *ctx, int64_t begin, int64_t end)
{
    const layer_norm_job *j = ctx;
    double eps = j->y->param[1].f, *rstd = j->y->param[2].p;
    switch ((ad_dtype)j->y->dtype) {
    case AD_F32:
        if (j->backward)
            layer_norm_grad_rows_f32(begin, end, j->n, j->in->data, j->y->data, rstd, j->out->data);
        else
            layer_norm_rows_f32(begin, end, j->n, j->in->data, j->out->data, rstd, eps);
        break;
    case AD_F64:
        if (j->backward)
            layer_norm_grad_rows_f64(begin, end, j->n, j->in->data, j->y->data, rstd, j->out->data);
        else
            layer_norm_rows_f64(begin, end, j->n, j->in->data, j->out->data, rstd, eps);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* Runs the job over y's rows, split over threads as a cheap pass is. */
static void layer_norm_rows(layer_norm_job *job)
{
    const ad_tensor *y = job->y;
    job->n = ad__numel((int)y->param[0].i, y->shape + y->ndim - y->param[0].i);
    if (y->numel == 0 || !y->param[2].p)
        return;
    int64_t rows = y->numel / job->n, grain = AD__GRAIN_CHEAP / job->n;
    ad__parallel_for(rows, grain > 1 ? grain : 1, layer_norm_range, job);
}

void ad__layer_norm_forward(ad_tensor *y)
{
    int64_t n = ad__numel((int)y->param[0].i, y->shape + y->ndim - y->param[0].i);
    y->param[2].p = ad__alloc(y->tape, (size_t)(y->numel / n) * sizeof(double));
    layer_norm_job job = {.y = y, .in = y->src[0], .out = y};
    layer_norm_rows(&job); /* out of memory: param[2].p is NULL, the error on the tape */
}

void ad__layer_norm_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    ad_tensor *x = y->src[0];
    if (!y->tape->grad_enabled && y->param[2].p && gy->numel == y->numel && gy->dtype == y->dtype) {
        /* Not recorded (no create_graph): the same rule as one kernel over the rows,
         * with the forward's rstd. */
        ad_tensor *dx = ad__new(y->tape, (ad_dtype)y->dtype, y->ndim, y->shape);
        layer_norm_job job = {.y = y, .in = gy, .out = dx, .backward = true};
        if (dx)
            layer_norm_rows(&job);
        gin[0] = dx;
        return;
    }
    int k = (int)y->param[0].i, axes[AD_MAX_DIMS];
    for (int d = 0; d < k; d++)
        axes[d] = y->ndim - k + d;
    /* rstd from x and y itself, both recorded: their own derivatives give the second order */
    ad_tensor *rstd = ad_rsqrt(ad_add_scalar(ad_var(x, k, axes, true, 0), y->param[1].f));
    ad_tensor *mean_g = ad_mean(gy, k, axes, true);
    ad_tensor *mean_gy = ad_mean(ad_mul(gy, y), k, axes, true);
    gin[0] = ad_mul(ad_sub(ad_sub(gy, mean_g), ad_mul(y, mean_gy)), rstd);
}

// dy = the backward rule applied to dx (a symmetric Jacobian)
ad_tensor *ad__layer_norm_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__jvp_self_adjoint(y, t);
}

/* The fused normalisation over the last k dims of x (checked by the caller). */
static ad_tensor *normalise_last(ad_tensor *x, int k, double eps)
{
    ad__param params[AD_NPARAM] = {{.i = k}, {.f = eps}};
    return ad__apply(AD_OP_layer_norm, 1, &x, params);
}

/* (x - mean) / sqrt(var + eps) over the axes, biased variance (as torch). */
static ad_tensor *normalise(ad_tensor *x, int n_axes, const int *axes, double eps)
{
    ad_tensor *mean = ad_mean(x, n_axes, axes, true);
    ad_tensor *var = ad_var(x, n_axes, axes, true, 0);
    return ad_mul(ad_sub(x, mean), ad_rsqrt(ad_add_scalar(var, eps)));
}

/* y * weight + bias, either of them NULL for none. */
static ad_tensor *affine(ad_tensor *y, ad_tensor *weight, ad_tensor *bias)
{
    if (weight)
        y = ad_mul(y, weight);
    if (bias)
        y = ad_add(y, bias);
    return y;
}

/* False (with the error on tape) unless t is NULL or has the given shape. */
static bool optional_shape(ad_tape *tape, const char *op, const char *what, const ad_tensor *t,
                           int ndim, const int64_t *shape, const ad_tensor *x)
{
    if (!t || (t->ndim == ndim && (ndim == 0 || memcmp(t->shape, shape, (size_t)ndim * 8) == 0)))
        return true;
    char s0[AD__SHAPE_BUF], s1[AD__SHAPE_BUF], s2[AD__SHAPE_BUF];
    ad__fail(tape, AD_ERR_SHAPE, "%s: %s of shape %s, expected %s for x of shape %s", op, what,
             AD__SHAPE(t, s0), ad__shape_str(s1, ndim, shape), AD__SHAPE(x, s2));
    return false;
}

static bool eps_ok(ad_tape *tape, const char *op, double eps)
{
    if (eps >= 0 && eps < INFINITY)
        return true;
    ad__fail(tape, AD_ERR_ARG, "%s: eps %g must be finite and >= 0", op, eps);
    return false;
}

ad_tensor *ad_layer_norm(ad_tensor *x, int n_dims, ad_tensor *weight, ad_tensor *bias, double eps)
{
    ad_tape *tape = ad__input_tape(x, "layer_norm");
    if (!tape || !eps_ok(tape, "layer_norm", eps))
        return NULL;
    if (n_dims < 1 || n_dims > x->ndim) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_SHAPE, "layer_norm: %d normalised dims for x of shape %s", n_dims,
                 AD__SHAPE(x, s));
        return NULL;
    }
    const int64_t *last = x->shape + x->ndim - n_dims;
    if (!optional_shape(tape, "layer_norm", "weight", weight, n_dims, last, x) ||
        !optional_shape(tape, "layer_norm", "bias", bias, n_dims, last, x))
        return NULL;
    return affine(normalise_last(x, n_dims, eps), weight, bias);
}

/* weight or bias [C] as [C, 1, ..., 1] for x [N, C, *]. */
static ad_tensor *per_channel(ad_tensor *t, const ad_tensor *x)
{
    if (!t)
        return NULL;
    int64_t shape[AD_MAX_DIMS];
    t = ad_tape_use(x->tape, t); /* a persistent parameter: its view on x's tape */
    shape[0] = x->shape[1];
    for (int d = 2; d < x->ndim; d++)
        shape[d - 1] = 1;
    return ad_reshape(t, x->ndim - 1, shape);
}

/* x [N, C, *] checked for op, and its weight, bias (and more) of shape [C]. */
static bool channels_ok(ad_tape *tape, const char *op, const ad_tensor *x, ad_tensor *const *per_c,
                        const char *const *names, int n)
{
    if (x->ndim < 2) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_SHAPE, "%s: x of shape %s needs [N, C, ...]", op, AD__SHAPE(x, s));
        return false;
    }
    for (int k = 0; k < n; k++)
        if (!optional_shape(tape, op, names[k], per_c[k], 1, x->shape + 1, x))
            return false;
    return true;
}

ad_tensor *ad_group_norm(ad_tensor *x, int64_t groups, ad_tensor *weight, ad_tensor *bias,
                         double eps)
{
    ad_tape *tape = ad__input_tape(x, "group_norm");
    ad_tensor *per_c[2] = {weight, bias};
    if (!tape || !eps_ok(tape, "group_norm", eps) ||
        !channels_ok(tape, "group_norm", x, per_c, (const char *[]){"weight", "bias"}, 2))
        return NULL;
    if (groups < 1 || x->shape[1] % groups != 0) {
        char s[AD__SHAPE_BUF];
        ad__fail(tape, AD_ERR_ARG, "group_norm: %lld groups do not divide the channels of %s",
                 (long long)groups, AD__SHAPE(x, s));
        return NULL;
    }
    /* [N, G, C/G * rest], normalised over the last axis, and back */
    int64_t grouped[3] = {x->shape[0], groups, x->numel ? -1 : 0};
    ad_tensor *g = ad_reshape(x, 3, grouped);
    ad_tensor *y = ad_reshape(normalise_last(g, 1, eps), x->ndim, x->shape);
    return affine(y, per_channel(weight, x), per_channel(bias, x));
}

/* running = (1 - momentum) running + momentum stat, in place (no gradient). */
static void update_running(ad_tensor *running, const ad_tensor *stat, double momentum)
{
    for (int64_t c = 0; c < running->numel; c++)
        ad__set(running, c, (1 - momentum) * ad__get(running, c) + momentum * ad__get(stat, c));
}

ad_tensor *ad_batch_norm(ad_tensor *x, ad_tensor *running_mean, ad_tensor *running_var,
                         ad_tensor *weight, ad_tensor *bias, bool training, double momentum,
                         double eps)
{
    ad_tape *tape = ad__input_tape(x, "batch_norm");
    ad_tensor *per_c[4] = {weight, bias, running_mean, running_var};
    const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
    if (!tape || !eps_ok(tape, "batch_norm", eps) ||
        !channels_ok(tape, "batch_norm", x, per_c, names, 4))
        return NULL;
    if (!(momentum >= 0 && momentum <= 1) || (!training && (!running_mean || !running_var)) ||
        (running_mean && !(running_mean->flags & AD_TF_PERSISTENT)) ||
        (running_var && !(running_var->flags & AD_TF_PERSISTENT))) {
        ad__fail(tape, AD_ERR_ARG,
                 "batch_norm: momentum %g must be in [0, 1], eval mode needs running stats, and "
                 "running stats must be persistent tensors",
                 momentum);
        return NULL;
    }
    int axes[AD_MAX_DIMS], n = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != 1)
            axes[n++] = d;
    ad_tensor *y;
    if (training) {
        y = normalise(x, n, axes, eps);
        if (y && running_mean && running_var) {
            /* torch updates the running variance with the unbiased estimate */
            ad_tensor *mean = ad_detach(ad_mean(x, n, axes, false));
            ad_tensor *var = ad_detach(ad_var(x, n, axes, false, 1));
            if (!mean || !var)
                return NULL;
            update_running(running_mean, mean, momentum);
            update_running(running_var, var, momentum);
        }
    } else {
        ad_tensor *mean = per_channel(running_mean, x);
        ad_tensor *var = per_channel(running_var, x);
        y = ad_mul(ad_sub(x, ad_detach(mean)), ad_rsqrt(ad_add_scalar(ad_detach(var), eps)));
    }
    return affine(y, per_channel(weight, x), per_channel(bias, x));
}
