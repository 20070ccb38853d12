/* Normalisation layers as functions, torch.nn.functional's layer_norm,
 * group_norm and batch_norm: compositions of mean, var and elementwise ops,
 * so their gradients (to any order) are those of the parts. */
#include "ops.h"

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
    int axes[AD_MAX_DIMS];
    for (int k = 0; k < n_dims; k++)
        axes[k] = x->ndim - n_dims + k;
    return affine(normalise(x, n_dims, axes, eps), weight, bias);
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
    ad_tensor *y = ad_reshape(normalise(g, 1, (int[]){2}, eps), x->ndim, x->shape);
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
