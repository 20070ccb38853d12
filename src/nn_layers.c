/* Layers: each a composition of public core ops. No layer has a hand-written
 * gradient; the engine differentiates what the forward records. */
#include "autodiff/layers.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    MOD_LINEAR,
    MOD_CONV2D,
    MOD_MAXPOOL2D,
    MOD_FLATTEN,
    MOD_DROPOUT,
    MOD_LAYER_NORM,
    MOD_EMBEDDING,
    MOD_ACTIVATION,
    MOD_SEQUENTIAL
} module_kind;

#define MAX_PARAMS 2

struct ad_module {
    module_kind kind;
    bool training;
    int n_params;
    ad_tensor *param[MAX_PARAMS];
    char *param_name[MAX_PARAMS]; /* full name, prefixed by containers */
    /* Configuration (meaning per kind). */
    int64_t in, out;
    int kernel, stride, padding;
    double value; /* dropout p, layer-norm eps */
    ad_activation activation;
    ad_rng rng;
    /* Children of a container. */
    size_t n_children;
    ad_module **children;
    /* Index scratch (conv2d's im2col map, maxpool's argmax), kept between
     * steps so a steady-state step allocates nothing. */
    int64_t *scratch;
    size_t scratch_cap;
    int64_t cached_h, cached_w;
};

static ad_status module_new(ad_module **out, module_kind kind)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return AD_ERR_NOMEM;
    (*out)->kind = kind;
    (*out)->training = true;
    return AD_OK;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

/* Adds a parameter named `name` with the given shape (persistent, requires grad). */
static ad_status add_param(ad_module *m, const char *name, ad_dtype dtype, int ndim,
                           const int64_t *shape)
{
    ad_tensor *t;
    ad_status st = ad_tensor_create(&t, dtype, ndim, shape, true);
    if (st != AD_OK)
        return st;
    char *n = copy_string(name);
    if (!n) {
        ad_tensor_free(t);
        return AD_ERR_NOMEM;
    }
    m->param[m->n_params] = t;
    m->param_name[m->n_params] = n;
    m->n_params++;
    return AD_OK;
}

void ad_nn_free(ad_module *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_params; i++) {
        ad_tensor_free(m->param[i]);
        free(m->param_name[i]);
    }
    for (size_t i = 0; i < m->n_children; i++)
        ad_nn_free(m->children[i]);
    free(m->children);
    free(m->scratch);
    free(m);
}

/* Frees a half-built module and passes the status through. */
static ad_status fail_free(ad_module **out, ad_status st)
{
    ad_nn_free(*out);
    *out = NULL;
    return st;
}

static int64_t *scratch(ad_module *m, size_t n)
{
    if (n == 0)
        n = 1; /* an empty batch still gets a buffer, not a false out-of-memory */
    if (n > m->scratch_cap) {
        int64_t *s = realloc(m->scratch, n * sizeof *s);
        if (!s)
            return NULL;
        m->scratch = s;
        m->scratch_cap = n;
        m->cached_h = m->cached_w = -1;
    }
    return m->scratch;
}

/* Reports input x that does not fit a layer: "conv2d: input [2,3] (expected ...)". */
static ad_tensor *bad_input(ad_tape *tape, const char *layer, const ad_tensor *x,
                            const char *expected, ...)
{
    char shape[96], want[96];
    va_list ap;
    va_start(ap, expected);
    vsnprintf(want, sizeof want, expected, ap);
    va_end(ap);
    ad_shape_string(shape, sizeof shape, ad_tensor_ndim(x), ad_tensor_shape(x));
    ad_tape_set_error(tape, AD_ERR_SHAPE, "%s: input %s does not fit (expected %s)", layer, shape,
                      want);
    return NULL;
}

static ad_tensor *no_memory(ad_tape *tape, const char *layer)
{
    ad_tape_set_error(tape, AD_ERR_NOMEM, "%s: out of memory for its index map", layer);
    return NULL;
}

/* Parameter i of m as a tensor on tape: the caller's replacement when given
 * (ad_nn_forward_with), else a view of the module's own. */
static ad_tensor *param(const ad_module *m, ad_tape *tape, ad_tensor *const *params, int i)
{
    return ad_tape_use(tape, params ? params[i] : m->param[i]);
}

/* x and the parameters must share a dtype; an op would say so too, but would
 * name itself instead of the layer. */
static bool same_dtype(const ad_module *m, ad_tape *tape, const char *layer, const ad_tensor *x)
{
    if (m->n_params == 0 || ad_tensor_dtype(x) == ad_tensor_dtype(m->param[0]))
        return true;
    ad_tape_set_error(tape, AD_ERR_DTYPE, "%s: input is %s, parameters are %s", layer,
                      ad_dtype_name(ad_tensor_dtype(x)),
                      ad_dtype_name(ad_tensor_dtype(m->param[0])));
    return false;
}

/* ---- Linear: y = x W^T + b ------------------------------------------------------------ */

ad_status ad_nn_linear(ad_module **out, int64_t in_features, int64_t out_features, bool bias,
                       ad_dtype dtype, ad_rng *rng)
{
    *out = NULL;
    if (in_features <= 0 || out_features <= 0 || !rng)
        return AD_ERR_ARG;
    ad_status st = module_new(out, MOD_LINEAR);
    if (st != AD_OK)
        return st;
    ad_module *m = *out;
    m->in = in_features;
    m->out = out_features;
    /* PyTorch's default: kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(in)), bias likewise. */
    double bound = 1.0 / sqrt((double)in_features);
    int64_t wshape[2] = {out_features, in_features};
    if ((st = add_param(m, "weight", dtype, 2, wshape)) != AD_OK ||
        (st = ad_init_uniform(m->param[0], -bound, bound, rng)) != AD_OK)
        return fail_free(out, st);
    if (bias && ((st = add_param(m, "bias", dtype, 1, &out_features)) != AD_OK ||
                 (st = ad_init_uniform(m->param[1], -bound, bound, rng)) != AD_OK))
        return fail_free(out, st);
    return AD_OK;
}

// x [..., in] -> y [..., out]
static ad_tensor *linear_forward(ad_module *m, ad_tape *tape, ad_tensor *x,
                                 ad_tensor *const *params)
{
    if (ad_tensor_ndim(x) < 1 || ad_tensor_dim(x, -1) != m->in)
        return bad_input(tape, "linear", x, "[...,%lld]", (long long)m->in);
    if (!same_dtype(m, tape, "linear", x))
        return NULL;
    /* A 1-d x is a single row, as in PyTorch: [in] -> [out]. */
    bool row = ad_tensor_ndim(x) == 1;
    if (row)
        x = ad_reshape(x, 2, (int64_t[]){1, m->in});
    ad_tensor *y = ad_matmul_t(x, param(m, tape, params, 0), false, true);
    if (m->n_params > 1)
        y = ad_add(y, param(m, tape, params, 1));
    return row ? ad_reshape(y, 1, &m->out) : y;
}

/* ---- Conv2d: im2col by ad_index_select, then one batched matmul ------------------------- */

ad_status ad_nn_conv2d(ad_module **out, int64_t in_channels, int64_t out_channels, int kernel,
                       int stride, int padding, ad_dtype dtype, ad_rng *rng)
{
    *out = NULL;
    if (in_channels <= 0 || out_channels <= 0 || kernel <= 0 || stride <= 0 || padding < 0 || !rng)
        return AD_ERR_ARG;
    ad_status st = module_new(out, MOD_CONV2D);
    if (st != AD_OK)
        return st;
    ad_module *m = *out;
    m->in = in_channels;
    m->out = out_channels;
    m->kernel = kernel;
    m->stride = stride;
    m->padding = padding;
    double bound = 1.0 / sqrt((double)(in_channels * kernel * kernel));
    int64_t wshape[4] = {out_channels, in_channels, kernel, kernel};
    if ((st = add_param(m, "weight", dtype, 4, wshape)) != AD_OK ||
        (st = ad_init_uniform(m->param[0], -bound, bound, rng)) != AD_OK ||
        (st = add_param(m, "bias", dtype, 1, &out_channels)) != AD_OK ||
        (st = ad_init_uniform(m->param[1], -bound, bound, rng)) != AD_OK)
        return fail_free(out, st);
    return AD_OK;
}

/* Output size of a window op along one dim, or -1 if the window does not fit. */
static int64_t window_out(int64_t size, int kernel, int stride, int padding)
{
    int64_t span = size + 2 * (int64_t)padding - kernel;
    return span < 0 ? -1 : span / stride + 1;
}

// x [N, C, H, W] -> y [N, out, Ho, Wo]
static ad_tensor *conv2d_forward(ad_module *m, ad_tape *tape, ad_tensor *x,
                                 ad_tensor *const *params)
{
    const int64_t *s = ad_tensor_shape(x);
    int k = m->kernel, p = m->padding;
    if (ad_tensor_ndim(x) != 4 || s[1] != m->in)
        return bad_input(tape, "conv2d", x, "[N,%lld,H,W]", (long long)m->in);
    if (!same_dtype(m, tape, "conv2d", x))
        return NULL;
    int64_t n = s[0], c = s[1], h = s[2], w = s[3];
    int64_t ho = window_out(h, k, m->stride, p), wo = window_out(w, k, m->stride, p);
    if (ho <= 0 || wo <= 0)
        return bad_input(tape, "conv2d", x, "H, W of at least %d", k - 2 * p);
    int64_t hp = h + 2 * p, wp = w + 2 * p, l = ho * wo, kk = (int64_t)k * k;
    if (p) {
        x = ad_slice_scatter(x, 2, hp, p, 1);
        x = ad_slice_scatter(x, 3, wp, p, 1);
    }
    x = ad_reshape(x, 3, (int64_t[]){n, c, hp * wp});
    /* idx[(ki k + kj) L + l] = position in the padded image read by kernel
     * tap (ki, kj) at output position l. */
    int64_t *idx = scratch(m, (size_t)(kk * l));
    if (!idx)
        return no_memory(tape, "conv2d");
    if (m->cached_h != h || m->cached_w != w) {
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++)
                for (int64_t oh = 0; oh < ho; oh++)
                    for (int64_t ow = 0; ow < wo; ow++)
                        idx[(ki * k + kj) * l + oh * wo + ow] =
                            (oh * m->stride + ki) * wp + ow * m->stride + kj;
        m->cached_h = h;
        m->cached_w = w;
    }
    ad_tensor *cols = ad_index_select(x, 2, (size_t)(kk * l), idx);
    cols = ad_reshape(cols, 3, (int64_t[]){n, c * kk, l});
    ad_tensor *wm = ad_reshape(param(m, tape, params, 0), 2, (int64_t[]){m->out, c * kk});
    ad_tensor *y = ad_matmul(wm, cols); /* [n, out, l] */
    y = ad_add(y, ad_reshape(param(m, tape, params, 1), 2, (int64_t[]){m->out, 1}));
    return ad_reshape(y, 4, (int64_t[]){n, m->out, ho, wo});
}

/* ---- MaxPool2d: the argmax of each window, then ad_gather --------------------------------- */

ad_status ad_nn_maxpool2d(ad_module **out, int kernel, int stride, int padding)
{
    *out = NULL;
    if (kernel <= 0 || stride < 0 || padding < 0 || padding > kernel / 2)
        return AD_ERR_ARG;
    ad_status st = module_new(out, MOD_MAXPOOL2D);
    if (st != AD_OK)
        return st;
    (*out)->kernel = kernel;
    (*out)->stride = stride ? stride : kernel;
    (*out)->padding = padding;
    return AD_OK;
}

/* idx[plane, oh, ow] = position in its plane of the window's maximum: the
 * first maximal element in row-major window order, the first NaN if any
 * (as PyTorch); padding is -inf, so it is never chosen. The window is
 * clipped to the image first, and the comparison is written so that the
 * compiler can use conditional moves: data-dependent branches here cost a
 * misprediction every few elements. */
#define MAXPOOL_ARGMAX(T)                                                                          \
    do {                                                                                           \
        const T *restrict X = ad_tensor_data(x);                                                   \
        for (int64_t plane = 0; plane < n * c; plane++) {                                          \
            const T *P = X + plane * h * w;                                                        \
            for (int64_t oh = 0; oh < ho; oh++) {                                                  \
                int64_t h0 = oh * st - p, h1 = h0 + k;                                             \
                h0 = h0 < 0 ? 0 : h0;                                                              \
                h1 = h1 > h ? h : h1;                                                              \
                if (k == 2 && st == 2 && p == 0) {                                                 \
                    /* The common 2x2 window, unrolled: same rule, no loops. */                    \
                    const T *r0 = P + 2 * oh * w, *r1 = r0 + w;                                    \
                    for (int64_t ow = 0; ow < wo; ow++) {                                          \
                        const T *q0 = r0 + 2 * ow, *q1 = r1 + 2 * ow;                              \
                        int64_t best = 2 * oh * w + 2 * ow;                                        \
                        T best_v = q0[0];                                                          \
                        bool take = !(q0[1] <= best_v) & (best_v == best_v);                       \
                        best = take ? best + 1 : best;                                             \
                        best_v = take ? q0[1] : best_v;                                            \
                        take = !(q1[0] <= best_v) & (best_v == best_v);                            \
                        best = take ? 2 * oh * w + w + 2 * ow : best;                              \
                        best_v = take ? q1[0] : best_v;                                            \
                        take = !(q1[1] <= best_v) & (best_v == best_v);                            \
                        best = take ? 2 * oh * w + w + 2 * ow + 1 : best;                          \
                        idx[(plane * ho + oh) * wo + ow] = best;                                   \
                    }                                                                              \
                    continue;                                                                      \
                }                                                                                  \
                for (int64_t ow = 0; ow < wo; ow++) {                                              \
                    int64_t w0 = ow * st - p, w1 = w0 + k;                                         \
                    w0 = w0 < 0 ? 0 : w0;                                                          \
                    w1 = w1 > w ? w : w1;                                                          \
                    int64_t best = h0 * w + w0;                                                    \
                    T best_v = P[best];                                                            \
                    for (int64_t ih = h0; ih < h1; ih++)                                           \
                        for (int64_t iw = w0; iw < w1; iw++) {                                     \
                            T v = P[ih * w + iw];                                                  \
                            bool take = !(v <= best_v) & (best_v == best_v);                       \
                            best = take ? ih * w + iw : best;                                      \
                            best_v = take ? v : best_v;                                            \
                        }                                                                          \
                    idx[(plane * ho + oh) * wo + ow] = best;                                       \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static ad_tensor *maxpool2d_forward(ad_module *m, ad_tape *tape, ad_tensor *x)
{
    if (ad_tensor_ndim(x) != 4)
        return bad_input(tape, "maxpool2d", x, "[N,C,H,W]");
    const int64_t *s = ad_tensor_shape(x);
    int64_t n = s[0], c = s[1], h = s[2], w = s[3];
    int k = m->kernel, st = m->stride, p = m->padding;
    int64_t ho = window_out(h, k, st, p), wo = window_out(w, k, st, p);
    if (ho <= 0 || wo <= 0)
        return bad_input(tape, "maxpool2d", x, "H, W of at least %d", k - 2 * p);
    int64_t *idx = scratch(m, (size_t)(n * c * ho * wo));
    if (!idx)
        return no_memory(tape, "maxpool2d");
    if (ad_tensor_dtype(x) == AD_F32)
        MAXPOOL_ARGMAX(float);
    else
        MAXPOOL_ARGMAX(double);
    ad_tensor *flat = ad_reshape(x, 3, (int64_t[]){n, c, h * w});
    ad_tensor *y = ad_gather(flat, 2, 3, (int64_t[]){n, c, ho * wo}, idx);
    return ad_reshape(y, 4, (int64_t[]){n, c, ho, wo});
}

/* ---- Flatten, Dropout, activations ------------------------------------------------------ */

ad_status ad_nn_flatten(ad_module **out)
{
    return module_new(out, MOD_FLATTEN);
}

static ad_tensor *flatten_forward(ad_tape *tape, ad_tensor *x)
{
    int ndim = ad_tensor_ndim(x);
    if (ndim < 2)
        return bad_input(tape, "flatten", x, "[N, ...] with at least 2 dims");
    const int64_t *s = ad_tensor_shape(x);
    int64_t rest = 1;
    for (int i = 1; i < ndim; i++)
        rest *= s[i]; /* no overflow: x exists, so its numel fits */
    return ad_reshape(x, 2, (int64_t[]){s[0], rest});
}

ad_status ad_nn_dropout(ad_module **out, double p, uint64_t seed)
{
    *out = NULL;
    if (!(p >= 0 && p < 1))
        return AD_ERR_ARG;
    ad_status st = module_new(out, MOD_DROPOUT);
    if (st != AD_OK)
        return st;
    (*out)->value = p;
    ad_rng_seed(&(*out)->rng, seed);
    return AD_OK;
}

static ad_tensor *dropout_forward(ad_module *m, ad_tape *tape, ad_tensor *x)
{
    if (!m->training || m->value == 0)
        return x;
    ad_tensor *mask =
        ad_tensor_new(tape, ad_tensor_dtype(x), ad_tensor_ndim(x), ad_tensor_shape(x), NULL);
    if (!mask)
        return NULL;
    double keep = 1.0 / (1.0 - m->value);
    int64_t numel = ad_tensor_numel(mask);
    /* A fresh constant: filling it before any op reads it is safe. */
    if (ad_tensor_dtype(mask) == AD_F32) {
        float *d = ad_tensor_data(mask);
        for (int64_t i = 0; i < numel; i++)
            d[i] = ad_rng_uniform(&m->rng) < m->value ? 0.0f : (float)keep;
    } else {
        double *d = ad_tensor_data(mask);
        for (int64_t i = 0; i < numel; i++)
            d[i] = ad_rng_uniform(&m->rng) < m->value ? 0.0 : keep;
    }
    return ad_mul(x, mask);
}

ad_status ad_nn_activation(ad_module **out, ad_activation kind)
{
    *out = NULL;
    if (kind < AD_ACT_RELU || kind > AD_ACT_LEAKY_RELU)
        return AD_ERR_ARG;
    ad_status st = module_new(out, MOD_ACTIVATION);
    if (st == AD_OK)
        (*out)->activation = kind;
    return st;
}

static ad_tensor *activation_forward(ad_module *m, ad_tensor *x)
{
    switch (m->activation) {
    case AD_ACT_RELU:
        return ad_relu(x);
    case AD_ACT_TANH:
        return ad_tanh(x);
    case AD_ACT_SIGMOID:
        return ad_sigmoid(x);
    case AD_ACT_GELU:
        return ad_gelu(x);
    case AD_ACT_SOFTPLUS:
        return ad_softplus(x);
    case AD_ACT_LEAKY_RELU:
        return ad_leaky_relu(x, 0.01);
    }
    return NULL;
}

/* ---- LayerNorm ---------------------------------------------------------------------------- */

ad_status ad_nn_layer_norm(ad_module **out, int64_t dim, double eps, ad_dtype dtype)
{
    *out = NULL;
    if (dim <= 0 || eps < 0)
        return AD_ERR_ARG;
    ad_status st = module_new(out, MOD_LAYER_NORM);
    if (st != AD_OK)
        return st;
    ad_module *m = *out;
    m->in = dim;
    m->value = eps > 0 ? eps : 1e-5;
    if ((st = add_param(m, "weight", dtype, 1, &dim)) != AD_OK ||
        (st = add_param(m, "bias", dtype, 1, &dim)) != AD_OK)
        return fail_free(out, st);
    for (int64_t i = 0; i < dim; i++)
        ad_tensor_set(m->param[0], i, 1.0);
    return AD_OK;
}

// x [..., dim] -> y [..., dim]
static ad_tensor *layer_norm_forward(ad_module *m, ad_tape *tape, ad_tensor *x,
                                     ad_tensor *const *params)
{
    if (ad_tensor_ndim(x) < 1 || ad_tensor_dim(x, -1) != m->in)
        return bad_input(tape, "layer_norm", x, "[...,%lld]", (long long)m->in);
    if (!same_dtype(m, tape, "layer_norm", x))
        return NULL;
    int last[1] = {-1};
    ad_tensor *mu = ad_mean(x, 1, last, true);
    ad_tensor *var = ad_var(x, 1, last, true, 0);
    ad_tensor *xhat = ad_div(ad_sub(x, mu), ad_sqrt(ad_add_scalar(var, m->value)));
    return ad_add(ad_mul(xhat, param(m, tape, params, 0)), param(m, tape, params, 1));
}

/* ---- Embedding ---------------------------------------------------------------------------- */

ad_status ad_nn_embedding(ad_module **out, int64_t num, int64_t dim, ad_dtype dtype, ad_rng *rng)
{
    *out = NULL;
    if (num <= 0 || dim <= 0 || !rng)
        return AD_ERR_ARG;
    ad_status st = module_new(out, MOD_EMBEDDING);
    if (st != AD_OK)
        return st;
    (*out)->in = num;
    (*out)->out = dim;
    if ((st = add_param(*out, "weight", dtype, 2, (int64_t[]){num, dim})) != AD_OK ||
        (st = ad_init_normal((*out)->param[0], 0.0, 1.0, rng)) != AD_OK)
        return fail_free(out, st);
    return AD_OK;
}

static ad_tensor *lookup(ad_module *m, ad_tape *tape, size_t n, const int64_t *indices,
                         ad_tensor *weight)
{
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (!m || m->kind != MOD_EMBEDDING) {
        ad_tape_set_error(tape, AD_ERR_ARG, "embedding_lookup: the module is %s",
                          m ? "not an embedding" : "NULL");
        return NULL;
    }
    if (n && !indices) {
        ad_tape_set_error(tape, AD_ERR_ARG, "embedding: indices is NULL for %zu indices", n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= m->in) {
            ad_tape_set_error(tape, AD_ERR_ARG,
                              "embedding: index %lld (entry %zu) out of range [0, %lld)",
                              (long long)indices[i], i, (long long)m->in);
            return NULL;
        }
    return ad_index_select(ad_tape_use(tape, weight), 0, n, indices);
}

ad_tensor *ad_nn_embedding_lookup(ad_module *m, ad_tape *tape, size_t n, const int64_t *indices)
{
    return lookup(m, tape, n, indices, m ? m->param[0] : NULL);
}

/* ---- Sequential --------------------------------------------------------------------------- */

/* Prefixes every parameter name in m and its children with "<index>.". */
static ad_status prefix_names(ad_module *m, size_t index)
{
    for (int i = 0; i < m->n_params; i++) {
        size_t len = strlen(m->param_name[i]) + 24;
        char *name = malloc(len);
        if (!name)
            return AD_ERR_NOMEM;
        snprintf(name, len, "%zu.%s", index, m->param_name[i]);
        free(m->param_name[i]);
        m->param_name[i] = name;
    }
    for (size_t c = 0; c < m->n_children; c++) {
        ad_status st = prefix_names(m->children[c], index);
        if (st != AD_OK)
            return st;
    }
    return AD_OK;
}

/* True when children[i] also appears earlier in the list. */
static bool seen_before(ad_module *const *children, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (children[j] == children[i])
            return true;
    return false;
}

ad_status ad_nn_sequential(ad_module **out, size_t n, ad_module *const *children)
{
    /* The same module twice would be freed twice: refuse it, freeing each
     * distinct child once (ownership was given). */
    for (size_t i = 0; i < n; i++)
        if (children[i] && seen_before(children, i)) {
            for (size_t j = 0; j < n; j++)
                if (!seen_before(children, j))
                    ad_nn_free(children[j]);
            *out = NULL;
            return AD_ERR_ARG;
        }
    ad_status st = module_new(out, MOD_SEQUENTIAL);
    ad_module *m = *out;
    if (st == AD_OK && n && !(m->children = calloc(n, sizeof *m->children)))
        st = AD_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (st == AD_OK && children[i]) {
            m->children[m->n_children++] = children[i];
            st = prefix_names(children[i], i);
        } else {
            ad_nn_free(children[i]); /* ownership was given: free on error */
        }
    }
    if (st == AD_OK)
        for (size_t i = 0; i < n; i++)
            if (!children[i])
                st = AD_ERR_ARG;
    if (st != AD_OK && m) {
        ad_nn_free(m);
        *out = NULL;
    }
    return st;
}

/* ---- Forward, modes, parameters ----------------------------------------------------------- */

/* params: NULL, or replacements for the parameters of m and its children, in
 * ad_nn_params order (already checked against them). */
static ad_tensor *forward(ad_module *m, ad_tape *tape, ad_tensor *x, ad_tensor *const *params)
{
    x = ad_tape_use(tape, x);
    if (!x)
        return NULL;
    switch (m->kind) {
    case MOD_LINEAR:
        return linear_forward(m, tape, x, params);
    case MOD_CONV2D:
        return conv2d_forward(m, tape, x, params);
    case MOD_MAXPOOL2D:
        return maxpool2d_forward(m, tape, x);
    case MOD_FLATTEN:
        return flatten_forward(tape, x);
    case MOD_DROPOUT:
        return dropout_forward(m, tape, x);
    case MOD_LAYER_NORM:
        return layer_norm_forward(m, tape, x, params);
    case MOD_ACTIVATION:
        return activation_forward(m, x);
    case MOD_EMBEDDING:
        ad_tape_set_error(tape, AD_ERR_ARG,
                          "embedding: takes indices (use ad_nn_embedding_lookup), not a tensor");
        return NULL;
    case MOD_SEQUENTIAL:
        for (size_t i = 0; i < m->n_children && x; i++) {
            x = forward(m->children[i], tape, x, params);
            if (params)
                params += ad_nn_param_count(m->children[i]);
        }
        return x;
    }
    return NULL;
}

ad_tensor *ad_nn_forward(ad_module *m, ad_tape *tape, ad_tensor *x)
{
    if (!tape)
        return NULL;
    if (!m) {
        ad_tape_set_error(tape, AD_ERR_ARG, "nn_forward: the module is NULL");
        return NULL;
    }
    return forward(m, tape, x, NULL);
}

/* The i-th parameter of m in ad_nn_params order; counts *i down as it walks. */
static bool nth_param(const ad_module *m, size_t *i, ad_nn_param *out)
{
    if (*i < (size_t)m->n_params) {
        *out = (ad_nn_param){m->param_name[*i], m->param[*i]};
        return true;
    }
    *i -= (size_t)m->n_params;
    for (size_t c = 0; c < m->n_children; c++)
        if (nth_param(m->children[c], i, out))
            return true;
    return false;
}

/* Checks that params[0..n) can stand in for m's parameters. */
static bool params_fit(const ad_module *m, ad_tape *tape, size_t n, ad_tensor *const *params)
{
    size_t count = ad_nn_param_count(m);
    if (n != count || (n && !params)) {
        ad_tape_set_error(tape, AD_ERR_ARG,
                          "nn_forward_with: %zu parameters given, the module has %zu",
                          params ? n : 0, count);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        ad_nn_param own = {0};
        size_t at = i;
        nth_param(m, &at, &own);
        const ad_tensor *p = params[i];
        if (!p) {
            ad_tape_set_error(tape, AD_ERR_NULL, "nn_forward_with: parameter %s is NULL", own.name);
            return false;
        }
        int nd = ad_tensor_ndim(p);
        bool same = nd == ad_tensor_ndim(own.tensor) &&
                    (nd == 0 || memcmp(ad_tensor_shape(p), ad_tensor_shape(own.tensor),
                                       (size_t)nd * sizeof(int64_t)) == 0);
        if (!same || ad_tensor_dtype(p) != ad_tensor_dtype(own.tensor)) {
            char given[96], want[96];
            ad_shape_string(given, sizeof given, nd, ad_tensor_shape(p));
            ad_shape_string(want, sizeof want, ad_tensor_ndim(own.tensor),
                            ad_tensor_shape(own.tensor));
            ad_tape_set_error(tape, same ? AD_ERR_DTYPE : AD_ERR_SHAPE,
                              "nn_forward_with: parameter %s given %s %s, expected %s %s", own.name,
                              ad_dtype_name(ad_tensor_dtype(p)), given,
                              ad_dtype_name(ad_tensor_dtype(own.tensor)), want);
            return false;
        }
    }
    return true;
}

ad_tensor *ad_nn_forward_with(ad_module *m, ad_tape *tape, ad_tensor *x, size_t n,
                              ad_tensor *const *params)
{
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (!m) {
        ad_tape_set_error(tape, AD_ERR_ARG, "nn_forward_with: the module is NULL");
        return NULL;
    }
    if (!params_fit(m, tape, n, params))
        return NULL;
    return forward(m, tape, x, n ? params : NULL);
}

ad_tensor *ad_nn_embedding_lookup_with(ad_module *m, ad_tape *tape, size_t n,
                                       const int64_t *indices, ad_tensor *weight)
{
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (m && m->kind == MOD_EMBEDDING && !params_fit(m, tape, 1, &weight))
        return NULL;
    return lookup(m, tape, n, indices, weight);
}

void ad_nn_set_training(ad_module *m, bool training)
{
    if (!m)
        return;
    m->training = training;
    for (size_t i = 0; i < m->n_children; i++)
        ad_nn_set_training(m->children[i], training);
}

static size_t collect(const ad_module *m, ad_nn_param *out, size_t max, size_t at)
{
    for (int i = 0; i < m->n_params; i++, at++)
        if (at < max)
            out[at] = (ad_nn_param){m->param_name[i], m->param[i]};
    for (size_t c = 0; c < m->n_children; c++)
        at = collect(m->children[c], out, max, at);
    return at;
}

size_t ad_nn_params(const ad_module *m, ad_nn_param *out, size_t max)
{
    return m ? collect(m, out, out ? max : 0, 0) : 0;
}

size_t ad_nn_param_count(const ad_module *m)
{
    return ad_nn_params(m, NULL, 0);
}

int64_t ad_nn_param_numel(const ad_module *m)
{
    size_t n = ad_nn_param_count(m);
    ad_nn_param *p = calloc(n ? n : 1, sizeof *p);
    if (!p)
        return -1;
    ad_nn_params(m, p, n);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ad_tensor_numel(p[i].tensor);
    free(p);
    return total;
}

/* Runs io over the parameters as (names, tensors) arrays. */
static ad_status with_params(const ad_module *m, const char *path, char *err, size_t err_size,
                             bool save)
{
    size_t n = ad_nn_param_count(m);
    ad_nn_param *p = calloc(n ? n : 1, sizeof *p);
    const char **names = calloc(n ? n : 1, sizeof *names);
    ad_tensor **tensors = calloc(n ? n : 1, sizeof *tensors);
    ad_status st = AD_ERR_NOMEM;
    if (p && names && tensors) {
        ad_nn_params(m, p, n);
        for (size_t i = 0; i < n; i++) {
            names[i] = p[i].name;
            tensors[i] = p[i].tensor;
        }
        st = save ? ad_safetensors_save(path, n, names, tensors, err, err_size)
                  : ad_safetensors_load(path, n, names, tensors, err, err_size);
    }
    free(p);
    free(names);
    free(tensors);
    return st;
}

ad_status ad_nn_save(const ad_module *m, const char *path, char *err, size_t err_size)
{
    return m ? with_params(m, path, err, err_size, true) : AD_ERR_ARG;
}

ad_status ad_nn_load(ad_module *m, const char *path, char *err, size_t err_size)
{
    return m ? with_params(m, path, err, err_size, false) : AD_ERR_ARG;
}
