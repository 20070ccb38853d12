/* Layers: each a module type (layers.h) whose forward is a composition of
 * public core ops. No layer has a hand-written gradient; the engine
 * differentiates what the forward records. They are built with the public
 * module interface, as a user's layer would be; the internal calls are the
 * stand-in check of ad_nn_embedding_lookup_with, which takes indices and so
 * cannot go through ad_nn_forward_with, and the heap functions (core/util.h), so
 * that contexts and scratch come from the process-wide allocator. */
#include "nn.h"

#include "../core/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- Linear: y = x W^T + b ------------------------------------------------------------ */

typedef struct linear {
    int64_t in, out;
    bool bias;
} linear;

// x [..., in] -> y [..., out]
static ad_tensor *linear_forward(ad_module_call *call, ad_tensor *x)
{
    const linear *l = ad_module_call_context(call);
    ad_tape *tape = ad_module_call_tape(call);
    if (ad_tensor_ndim(x) < 1 || ad_tensor_dim(x, -1) != l->in)
        return ad__nn_bad_input(tape, "linear", x, "[...,%lld]", (long long)l->in);
    ad_tensor *w = ad_module_call_param(call, 0);
    if (!ad__nn_same_dtype(tape, "linear", x, w))
        return NULL;
    /* A 1-d x is a single row, as in PyTorch: [in] -> [out]. */
    bool row = ad_tensor_ndim(x) == 1;
    if (row)
        x = ad_reshape(x, 2, (int64_t[]){1, l->in});
    ad_tensor *y = ad_matmul_t(x, w, false, true);
    if (l->bias)
        y = ad_add(y, ad_module_call_param(call, 1));
    return row ? ad_reshape(y, 1, &l->out) : y;
}

static const ad_module_type linear_type = {
    .name = "linear", .forward = linear_forward, .free_context = ad__free};

ad_status ad_nn_linear(ad_module **out, int64_t in_features, int64_t out_features, bool bias,
                       ad_dtype dtype, ad_rng *rng)
{
    *out = NULL;
    if (in_features <= 0 || out_features <= 0 || !rng)
        return AD_ERR_ARG;
    linear config = {in_features, out_features, bias};
    ad_status st = ad__nn_module_with(out, &linear_type, &config, sizeof config);
    if (st != AD_OK)
        return st;
    /* PyTorch's default: kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(in)), bias likewise. */
    double bound = 1.0 / sqrt((double)in_features);
    int64_t wshape[2] = {out_features, in_features};
    if ((st = ad__nn_uniform_param(*out, "weight", dtype, 2, wshape, bound, rng)) != AD_OK ||
        (bias &&
         (st = ad__nn_uniform_param(*out, "bias", dtype, 1, &out_features, bound, rng)) != AD_OK))
        return ad__nn_fail_free(out, st);
    return AD_OK;
}

/* ---- Conv2d: ad_conv2d with the module's weight and bias ------------------------------- */

typedef struct conv2d {
    int64_t in, out;
    int kernel, stride, padding;
} conv2d;

// x [N, C, H, W] -> y [N, out, Ho, Wo]
static ad_tensor *conv2d_forward(ad_module_call *call, ad_tensor *x)
{
    const conv2d *m = ad_module_call_context(call);
    ad_tape *tape = ad_module_call_tape(call);
    if (ad_tensor_ndim(x) != 4 || ad_tensor_shape(x)[1] != m->in)
        return ad__nn_bad_input(tape, "conv2d", x, "[N,%lld,H,W]", (long long)m->in);
    ad_tensor *weight = ad_module_call_param(call, 0);
    if (!ad__nn_same_dtype(tape, "conv2d", x, weight))
        return NULL;
    ad_conv2d_opts opts = ad_conv2d_defaults();
    opts.stride[0] = opts.stride[1] = m->stride;
    opts.padding[0] = opts.padding[1] = m->padding;
    return ad_conv2d(x, weight, ad_module_call_param(call, 1), &opts);
}

static const ad_module_type conv2d_type = {
    .name = "conv2d", .forward = conv2d_forward, .free_context = ad__free};

ad_status ad_nn_conv2d(ad_module **out, int64_t in_channels, int64_t out_channels, int kernel,
                       int stride, int padding, ad_dtype dtype, ad_rng *rng)
{
    *out = NULL;
    if (in_channels <= 0 || out_channels <= 0 || kernel <= 0 || stride <= 0 || padding < 0 || !rng)
        return AD_ERR_ARG;
    conv2d config = {in_channels, out_channels, kernel, stride, padding};
    ad_status st = ad__nn_module_with(out, &conv2d_type, &config, sizeof config);
    if (st != AD_OK)
        return st;
    double bound = 1.0 / sqrt((double)(in_channels * kernel * kernel));
    int64_t wshape[4] = {out_channels, in_channels, kernel, kernel};
    if ((st = ad__nn_uniform_param(*out, "weight", dtype, 4, wshape, bound, rng)) != AD_OK ||
        (st = ad__nn_uniform_param(*out, "bias", dtype, 1, &out_channels, bound, rng)) != AD_OK)
        return ad__nn_fail_free(out, st);
    return AD_OK;
}

/* ---- MaxPool2d: ad_max_pool2d ------------------------------------------------------------ */

typedef struct maxpool2d {
    int kernel, stride, padding;
} maxpool2d;

static ad_tensor *maxpool2d_forward(ad_module_call *call, ad_tensor *x)
{
    const maxpool2d *m = ad_module_call_context(call);
    if (ad_tensor_ndim(x) != 4)
        return ad__nn_bad_input(ad_module_call_tape(call), "maxpool2d", x, "[N,C,H,W]");
    ad_pool2d_opts opts = ad_pool2d_defaults(m->kernel, m->kernel);
    opts.stride[0] = opts.stride[1] = m->stride;
    opts.padding[0] = opts.padding[1] = m->padding;
    return ad_max_pool2d(x, &opts);
}

static const ad_module_type maxpool2d_type = {
    .name = "maxpool2d", .forward = maxpool2d_forward, .free_context = ad__free};

ad_status ad_nn_maxpool2d(ad_module **out, int kernel, int stride, int padding)
{
    *out = NULL;
    if (kernel <= 0 || stride <= 0 || padding < 0 || padding > kernel / 2)
        return AD_ERR_ARG;
    maxpool2d config = {kernel, stride, padding};
    return ad__nn_module_with(out, &maxpool2d_type, &config, sizeof config);
}

/* The layer kernels, once per dtype: dropout_mask_f32, dropout_mask_f64. */
#define KERNELS "nn/layers_kernels.h"
#include "../core/kernels.h"

/* ---- Flatten, Dropout, activations ------------------------------------------------------ */

static ad_tensor *flatten_forward(ad_module_call *call, ad_tensor *x)
{
    int ndim = ad_tensor_ndim(x);
    if (ndim < 2)
        return ad__nn_bad_input(ad_module_call_tape(call), "flatten", x,
                                "[N, ...] with at least 2 dims");
    const int64_t *s = ad_tensor_shape(x);
    int64_t rest = 1;
    for (int i = 1; i < ndim; i++)
        rest *= s[i]; /* no overflow: x exists, so its numel fits */
    return ad_reshape(x, 2, (int64_t[]){s[0], rest});
}

static const ad_module_type flatten_type = {.name = "flatten", .forward = flatten_forward};

ad_status ad_nn_flatten(ad_module **out)
{
    return ad_module_create(out, &flatten_type, NULL);
}

typedef struct dropout {
    double p;
    ad_rng rng;
} dropout;

ad_tensor *ad_dropout(ad_tensor *x, double p, bool training, ad_rng *rng)
{
    ad_tape *tape = ad_tensor_tape(x);
    if (!x || !tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (!(p >= 0 && p <= 1) || (training && p > 0 && !rng)) {
        ad_tape_set_error(tape, AD_ERR_ARG, "dropout: p = %g must be in [0, 1]%s", p,
                          rng ? "" : ", and training needs an ad_rng");
        return NULL;
    }
    if (!training || p == 0)
        return x;
    ad_tensor *mask =
        ad_tape_tensor(tape, ad_tensor_dtype(x), ad_tensor_ndim(x), ad_tensor_shape(x), NULL);
    if (!mask)
        return NULL;
    /* p = 1 keeps nothing: the mask stays zero (as torch), never 1/0 */
    double keep = p < 1 ? 1.0 / (1.0 - p) : 0.0;
    int64_t numel = ad_tensor_numel(mask);
    /* A fresh constant: filling it before any op reads it is safe. */
    switch (ad_tensor_dtype(mask)) {
    case AD_F32:
        dropout_mask_f32(numel, ad_tensor_data(mask), p, keep, rng);
        break;
    case AD_F64:
        dropout_mask_f64(numel, ad_tensor_data(mask), p, keep, rng);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: ad_mul below refuses x */
    }
    return ad_mul(x, mask);
}

static ad_tensor *dropout_forward(ad_module_call *call, ad_tensor *x)
{
    dropout *m = ad_module_call_context(call);
    return ad_dropout(x, m->p, ad_module_training(ad_module_call_module(call)), &m->rng);
}

static const ad_module_type dropout_type = {
    .name = "dropout", .forward = dropout_forward, .free_context = ad__free};

ad_status ad_nn_dropout(ad_module **out, double p, uint64_t seed)
{
    *out = NULL;
    if (!(p >= 0 && p < 1))
        return AD_ERR_ARG;
    dropout config = {.p = p};
    ad_rng_seed(&config.rng, seed);
    return ad__nn_module_with(out, &dropout_type, &config, sizeof config);
}

/* One type per activation: the kind is chosen once, at construction. */
static ad_tensor *relu_forward(ad_module_call *call, ad_tensor *x)
{
    (void)call;
    return ad_relu(x);
}

static ad_tensor *tanh_forward(ad_module_call *call, ad_tensor *x)
{
    (void)call;
    return ad_tanh(x);
}

static ad_tensor *sigmoid_forward(ad_module_call *call, ad_tensor *x)
{
    (void)call;
    return ad_sigmoid(x);
}

static ad_tensor *gelu_forward(ad_module_call *call, ad_tensor *x)
{
    (void)call;
    return ad_gelu(x);
}

static ad_tensor *softplus_forward(ad_module_call *call, ad_tensor *x)
{
    (void)call;
    return ad_softplus(x);
}

static ad_tensor *leaky_relu_forward(ad_module_call *call, ad_tensor *x)
{
    (void)call;
    return ad_leaky_relu(x, 0.01);
}

/* Indexed by ad_activation. */
static const ad_module_type activation_types[] = {
    [AD_ACT_RELU] = {.name = "relu", .forward = relu_forward},
    [AD_ACT_TANH] = {.name = "tanh", .forward = tanh_forward},
    [AD_ACT_SIGMOID] = {.name = "sigmoid", .forward = sigmoid_forward},
    [AD_ACT_GELU] = {.name = "gelu", .forward = gelu_forward},
    [AD_ACT_SOFTPLUS] = {.name = "softplus", .forward = softplus_forward},
    [AD_ACT_LEAKY_RELU] = {.name = "leaky_relu", .forward = leaky_relu_forward},
};

ad_status ad_nn_activation(ad_module **out, ad_activation kind)
{
    *out = NULL;
    if (kind < AD_ACT_RELU || kind > AD_ACT_LEAKY_RELU)
        return AD_ERR_ARG;
    return ad_module_create(out, &activation_types[kind], NULL);
}

/* ---- LayerNorm: ad_layer_norm over the last dim, with its weight and bias ------------------ */

typedef struct layer_norm {
    int64_t dim;
    double eps;
} layer_norm;

// x [..., dim] -> y [..., dim]
static ad_tensor *layer_norm_forward(ad_module_call *call, ad_tensor *x)
{
    const layer_norm *m = ad_module_call_context(call);
    ad_tape *tape = ad_module_call_tape(call);
    /* Checked here, not left to ad_layer_norm, so that the messages name the layer. */
    if (ad_tensor_ndim(x) < 1 || ad_tensor_dim(x, -1) != m->dim)
        return ad__nn_bad_input(tape, "layer_norm", x, "[...,%lld]", (long long)m->dim);
    ad_tensor *gamma = ad_module_call_param(call, 0);
    if (!ad__nn_same_dtype(tape, "layer_norm", x, gamma))
        return NULL;
    return ad_layer_norm(x, 1, gamma, ad_module_call_param(call, 1), m->eps);
}

static const ad_module_type layer_norm_type = {
    .name = "layer_norm", .forward = layer_norm_forward, .free_context = ad__free};

ad_status ad_nn_layer_norm(ad_module **out, int64_t dim, double eps, ad_dtype dtype)
{
    *out = NULL;
    /* eps is used as given: 0 means 0 (AD_NORM_EPS is torch's 1e-5) */
    if (dim <= 0 || !(eps >= 0 && eps < INFINITY))
        return AD_ERR_ARG;
    layer_norm config = {dim, eps};
    ad_status st = ad__nn_module_with(out, &layer_norm_type, &config, sizeof config);
    if (st != AD_OK)
        return st;
    ad_tensor *gamma;
    if ((st = ad_module_create_param(*out, "weight", dtype, 1, &dim, &gamma)) != AD_OK ||
        (st = ad_module_create_param(*out, "bias", dtype, 1, &dim, NULL)) != AD_OK)
        return ad__nn_fail_free(out, st);
    for (int64_t i = 0; i < dim; i++)
        ad_tensor_set(gamma, i, 1.0);
    return AD_OK;
}

/* ---- Embedding ---------------------------------------------------------------------------- */

typedef struct embedding {
    int64_t num, dim;
} embedding;

static ad_tensor *lookup(ad_module *m, ad_tape *tape, size_t n, const int64_t *indices,
                         ad_tensor *weight);

/* As torch's nn.Embedding: x an int64 tensor of indices, any shape; the
 * result has x's shape and one more dim, the table's rows. */
static ad_tensor *embedding_forward(ad_module_call *call, ad_tensor *x)
{
    ad_tape *tape = ad_module_call_tape(call);
    if (!x)
        return NULL;
    int nd = ad_tensor_ndim(x);
    if (ad_tensor_dtype(x) != AD_I64 || nd >= AD_MAX_DIMS) {
        char shape[96];
        ad_shape_string(shape, sizeof shape, nd, ad_tensor_shape(x));
        ad_tape_set_error(tape, ad_tensor_dtype(x) != AD_I64 ? AD_ERR_DTYPE : AD_ERR_SHAPE,
                          "embedding: takes an int64 tensor of indices with fewer than %d dims, "
                          "not %s %s",
                          AD_MAX_DIMS, ad_dtype_name(ad_tensor_dtype(x)), shape);
        return NULL;
    }
    ad_tensor *weight = ad_module_call_param(call, 0);
    ad_tensor *rows = lookup(ad_module_call_module(call), tape, (size_t)ad_tensor_numel(x),
                             ad_tensor_data(x), weight);
    int64_t shape[AD_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        shape[d] = ad_tensor_shape(x)[d];
    shape[nd] = ad_tensor_dim(weight, 1);
    return ad_reshape(rows, nd + 1, shape);
}

static const ad_module_type embedding_type = {
    .name = "embedding", .forward = embedding_forward, .free_context = ad__free};

ad_status ad_nn_embedding(ad_module **out, int64_t num, int64_t dim, ad_dtype dtype, ad_rng *rng)
{
    *out = NULL;
    if (num <= 0 || dim <= 0 || !rng)
        return AD_ERR_ARG;
    embedding config = {num, dim};
    ad_status st = ad__nn_module_with(out, &embedding_type, &config, sizeof config);
    if (st != AD_OK)
        return st;
    ad_tensor *table;
    if ((st = ad_module_create_param(*out, "weight", dtype, 2, (int64_t[]){num, dim}, &table)) !=
            AD_OK ||
        (st = ad_init_normal(table, 0.0, 1.0, rng)) != AD_OK)
        return ad__nn_fail_free(out, st);
    return AD_OK;
}

static ad_tensor *lookup(ad_module *m, ad_tape *tape, size_t n, const int64_t *indices,
                         ad_tensor *weight)
{
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (ad_module_type_of(m) != &embedding_type) {
        ad_tape_set_error(tape, AD_ERR_ARG, "embedding_lookup: the module is %s",
                          m ? "not an embedding" : "NULL");
        return NULL;
    }
    if (n && !indices) {
        ad_tape_set_error(tape, AD_ERR_ARG, "embedding: indices is NULL for %zu indices", n);
        return NULL;
    }
    const embedding *e = ad_module_context(m);
    for (size_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= e->num) {
            ad_tape_set_error(tape, AD_ERR_ARG,
                              "embedding: index %lld (entry %zu) out of range [0, %lld)",
                              (long long)indices[i], i, (long long)e->num);
            return NULL;
        }
    return ad_index_select(ad_tape_use(tape, weight), 0, n, indices);
}

ad_tensor *ad_nn_embedding_lookup(ad_module *m, ad_tape *tape, size_t n, const int64_t *indices)
{
    ad_nn_param table = {0};
    if (ad_module_type_of(m) == &embedding_type)
        ad_nn_params(m, &table, 1);
    return lookup(m, tape, n, indices, table.tensor);
}

ad_tensor *ad_nn_embedding_lookup_with(ad_module *m, ad_tape *tape, size_t n,
                                       const int64_t *indices, ad_tensor *weight)
{
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (ad_module_type_of(m) == &embedding_type && !ad__module_params_fit(m, tape, 1, &weight))
        return NULL;
    return lookup(m, tape, n, indices, weight);
}

ad_tensor *ad_embedding(ad_tensor *index, ad_tensor *weight)
{
    ad_tape *tape = ad_tensor_tape(index);
    if (!index || !weight || !tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    int nd = ad_tensor_ndim(index);
    if (ad_tensor_dtype(index) != AD_I64 || nd >= AD_MAX_DIMS || ad_tensor_ndim(weight) != 2) {
        char is[96], ws[96];
        ad_shape_string(is, sizeof is, nd, ad_tensor_shape(index));
        ad_shape_string(ws, sizeof ws, ad_tensor_ndim(weight), ad_tensor_shape(weight));
        ad_tape_set_error(tape, ad_tensor_dtype(index) != AD_I64 ? AD_ERR_DTYPE : AD_ERR_SHAPE,
                          "embedding: index %s %s must be int64 with fewer than %d dims, and "
                          "weight %s a [num, dim] table",
                          ad_dtype_name(ad_tensor_dtype(index)), is, AD_MAX_DIMS, ws);
        return NULL;
    }
    int64_t num = ad_tensor_dim(weight, 0), n = ad_tensor_numel(index);
    const int64_t *idx = ad_tensor_data(index);
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= num) {
            ad_tape_set_error(tape, AD_ERR_ARG,
                              "embedding: index %lld (entry %lld) out of range [0, %lld)",
                              (long long)idx[i], (long long)i, (long long)num);
            return NULL;
        }
    ad_tensor *rows =
        ad_index_select_tensor(ad_tape_use(tape, weight), 0, ad_reshape(index, 1, (int64_t[]){n}));
    int64_t shape[AD_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        shape[d] = ad_tensor_shape(index)[d];
    shape[nd] = ad_tensor_dim(weight, 1);
    return ad_reshape(rows, nd + 1, shape);
}

/* ---- Containers ----------------------------------------------------------------------------- */

static ad_tensor *sequential_forward(ad_module_call *call, ad_tensor *x)
{
    size_t n = ad_module_child_count(ad_module_call_module(call));
    for (size_t i = 0; i < n && x; i++)
        x = ad_module_forward_child(call, i, x);
    return x;
}

static const ad_module_type sequential_type = {.name = "sequential", .forward = sequential_forward};

/* A module dict only groups: no forward. */
static const ad_module_type module_dict_type = {.name = "module_dict"};

/* True when children[i] also appears earlier in the list. */
static bool seen_before(ad_module *const *children, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (children[j] == children[i])
            return true;
    return false;
}

/* A container of type holding children[0..n) under names[i] ("0", "1", ...
 * when names is NULL). It owns every child it was given, also on error,
 * except those that already had a parent: they stay with it. */
static ad_status container(ad_module **out, const ad_module_type *type, size_t n,
                           const char *const *names, ad_module *const *children)
{
    ad_module *m = NULL;
    ad_status st = !out || (n && !children) ? AD_ERR_ARG : ad_module_create(&m, type, NULL);
    for (size_t i = 0; i < n && st == AD_OK; i++) {
        char digits[24];
        snprintf(digits, sizeof digits, "%zu", i);
        const char *name = names ? names[i] : digits;
        st = children[i] ? ad_module_add_child(m, name, children[i]) : AD_ERR_ARG;
    }
    if (out)
        *out = st == AD_OK ? m : NULL;
    if (st != AD_OK) {
        /* ad_nn_free skips modules that have a parent: those adopted by m go
         * with m, those of other modules stay, the rest are freed once. */
        for (size_t i = 0; children && i < n; i++)
            if (!seen_before(children, i))
                ad_nn_free(children[i]);
        ad_nn_free(m);
    }
    return st;
}

ad_status ad_nn_sequential(ad_module **out, size_t n, ad_module *const *children)
{
    return container(out, &sequential_type, n, NULL, children);
}

ad_status ad_nn_module_dict(ad_module **out, size_t n, const char *const *names,
                            ad_module *const *children)
{
    if (n && !names) {
        container(NULL, &module_dict_type, n, NULL, children); /* frees the children */
        if (out)
            *out = NULL;
        return AD_ERR_ARG;
    }
    return container(out, &module_dict_type, n, names, children);
}
