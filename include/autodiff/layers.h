/*
 * libautodiff layers, losses and optimizers: compositions of the core ops.
 *
 * A module (ad_module) owns its parameters, persistent tensors that live
 * outside every tape, and has a forward function that records ops on a tape
 * given by the caller. Containers (ad_nn_sequential) own their children. A
 * model's parameters can be walked by name ("0.weight", "fc.bias", ...) for
 * optimizers and checkpoints; the names follow PyTorch's state_dict keys.
 *
 *     ad_rng rng; ad_rng_seed(&rng, 42);
 *     ad_module *layers[3], *model;
 *     ad_nn_linear(&layers[0], 784, 256, true, AD_F32, &rng);
 *     ad_nn_activation(&layers[1], AD_ACT_RELU);
 *     ad_nn_linear(&layers[2], 256, 10, true, AD_F32, &rng);
 *     ad_nn_sequential(&model, 3, layers);           // takes ownership
 *     ad_optim *opt; ad_optim_adam(&opt, model, &(ad_adam_config){.lr = 1e-3});
 *     for (each batch) {
 *         ad_tape_reset(tape);
 *         ad_tensor *loss = ad_cross_entropy(ad_nn_forward(model, tape, x), n, y);
 *         ad_optim_zero_grad(opt);
 *         if (ad_backward(loss, NULL) != AD_OK) { report ad_tape_message(tape); }
 *         ad_optim_step(opt);
 *     }
 *     ad_optim_free(opt); ad_nn_free(model);
 */
#ifndef AUTODIFF_LAYERS_H
#define AUTODIFF_LAYERS_H

#include "autodiff/autodiff.h"
#include "autodiff/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Modules ============================================================== */

typedef struct ad_module ad_module;

typedef enum {
    AD_ACT_RELU,
    AD_ACT_TANH,
    AD_ACT_SIGMOID,
    AD_ACT_GELU,
    AD_ACT_SOFTPLUS,
    AD_ACT_LEAKY_RELU /* slope 0.01, as PyTorch's default */
} ad_activation;

/*
 * Every constructor returns AD_OK, AD_ERR_ARG (bad size) or AD_ERR_NOMEM and
 * sets *out (NULL on error). Free a module with ad_nn_free (not needed for
 * children given to a container, which owns them).
 */

/* y = x W^T + b; x [..., in], W [out, in], b [out]. Kaiming-uniform init as
 * PyTorch's Linear: W and b uniform in +-1/sqrt(in). */
AD_API ad_status ad_nn_linear(ad_module **out, int64_t in_features, int64_t out_features, bool bias,
                              ad_dtype dtype, ad_rng *rng);
/* 2-D convolution over x [N, C, H, W] with weight [out, C, k, k], bias [out]:
 * an im2col gather (ad_index_select) and one batched matmul. */
AD_API ad_status ad_nn_conv2d(ad_module **out, int64_t in_channels, int64_t out_channels,
                              int kernel, int stride, int padding, ad_dtype dtype, ad_rng *rng);
/* Max over k x k windows of x [N, C, H, W]; padding acts as -inf; the gradient
 * goes to each window's first maximal element (ad_gather underneath).
 * stride 0 means stride = kernel. */
AD_API ad_status ad_nn_maxpool2d(ad_module **out, int kernel, int stride, int padding);
/* [N, ...] -> [N, prod(...)] */
AD_API ad_status ad_nn_flatten(ad_module **out);
/* Zeroes elements with probability p and scales the rest by 1/(1-p) while
 * training; the identity in eval mode. Owns an ad_rng seeded with seed. */
AD_API ad_status ad_nn_dropout(ad_module **out, double p, uint64_t seed);
/* Normalises over the last dim: (x - mean) / sqrt(var + eps) * gamma + beta,
 * var without correction (as PyTorch). gamma ones, beta zeros; eps 0 means
 * PyTorch's 1e-5. Parameters "weight" (gamma) and "bias" (beta). */
AD_API ad_status ad_nn_layer_norm(ad_module **out, int64_t dim, double eps, ad_dtype dtype);
/* A table [num, dim], N(0, 1) init. Use ad_nn_embedding_lookup, not ad_nn_forward. */
AD_API ad_status ad_nn_embedding(ad_module **out, int64_t num, int64_t dim, ad_dtype dtype,
                                 ad_rng *rng);
AD_API ad_status ad_nn_activation(ad_module **out, ad_activation kind);
/* Runs children in order; takes ownership of children[0..n) (also on error).
 * AD_ERR_ARG for a NULL child or one given twice (each child is still freed once). */
AD_API ad_status ad_nn_sequential(ad_module **out, size_t n, ad_module *const *children);

/* Records the module's forward on tape. x may be a tape or persistent tensor.
 * Returns NULL on error (the tape's message says which layer and shapes):
 * AD_ERR_SHAPE for an input that does not fit the layer (Linear and LayerNorm
 * need x [..., features], a 1-d x being one row; Conv2d and MaxPool2d need
 * [N, C, H, W] with H, W at least the kernel after padding), AD_ERR_DTYPE for
 * an input whose dtype is not the parameters', AD_ERR_ARG for an embedding
 * (it takes indices) or a NULL module. */
AD_API ad_tensor *ad_nn_forward(ad_module *m, ad_tape *tape, ad_tensor *x);
/* Rows of the embedding table for indices[0..n): [n, dim]. An index outside
 * [0, num) is AD_ERR_ARG on the tape. */
AD_API ad_tensor *ad_nn_embedding_lookup(ad_module *m, ad_tape *tape, size_t n,
                                         const int64_t *indices);
/*
 * The forward of m with its parameters replaced by params[0..n) (as
 * torch.func.functional_call): n is ad_nn_param_count(m), params in the order
 * of ad_nn_params, each of its parameter's shape and dtype, on tape or
 * persistent. The module's own parameters are not read. Gradients flow to
 * params, so a layer can be gradchecked in its parameters, or its weights
 * made by another network. Errors on the tape: AD_ERR_ARG (wrong count),
 * AD_ERR_SHAPE, AD_ERR_DTYPE (a parameter that does not fit; the message
 * names it and both shapes), and those of ad_nn_forward.
 */
AD_API ad_tensor *ad_nn_forward_with(ad_module *m, ad_tape *tape, ad_tensor *x, size_t n,
                                     ad_tensor *const *params);
/* ad_nn_embedding_lookup reading the table weight [num, dim] instead of m's own. */
AD_API ad_tensor *ad_nn_embedding_lookup_with(ad_module *m, ad_tape *tape, size_t n,
                                              const int64_t *indices, ad_tensor *weight);
/* Training mode (the default) or eval mode, for the module and its children. */
AD_API void ad_nn_set_training(ad_module *m, bool training);
/* Frees a module, its parameters and children. Accepts NULL. */
AD_API void ad_nn_free(ad_module *m);

/* A named parameter: the name lives as long as the module. */
typedef struct ad_nn_param {
    const char *name;
    ad_tensor *tensor;
} ad_nn_param;

/* Number of parameter tensors in m and its children. */
AD_API size_t ad_nn_param_count(const ad_module *m);
/* Writes up to max parameters in a fixed order; returns how many there are. */
AD_API size_t ad_nn_params(const ad_module *m, ad_nn_param *out, size_t max);
/* Total number of scalar parameters. */
AD_API int64_t ad_nn_param_numel(const ad_module *m);
/* Saves / loads every parameter by name (safetensors; see nn.h for errors). */
AD_API ad_status ad_nn_save(const ad_module *m, const char *path, char *err, size_t err_size);
AD_API ad_status ad_nn_load(ad_module *m, const char *path, char *err, size_t err_size);

/* ==== Losses ================================================================= */

typedef enum { AD_REDUCE_MEAN = 0, AD_REDUCE_SUM = 1 } ad_reduction;

/* mean or sum of (a - b)^2, broadcasting */
AD_API ad_tensor *ad_nn_mse_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction);
/*
 * Cross-entropy from logits [N, C] and class indices targets[N], with label
 * smoothing eps in [0, 1) as PyTorch: (1 - eps) nll + eps mean_c(-log p_c).
 * With eps = 0 and mean it is the fused ad_cross_entropy.
 */
AD_API ad_tensor *ad_nn_cross_entropy(ad_tensor *logits, size_t n, const int64_t *targets,
                                      double label_smoothing, ad_reduction reduction);
/* Binary cross-entropy with logits, stable: softplus(x) - x t, reduced. */
AD_API ad_tensor *ad_nn_bce_with_logits(ad_tensor *logits, ad_tensor *targets,
                                        ad_reduction reduction);

/* ==== Optimizers ============================================================= */

typedef struct ad_optim ad_optim;

/* Zero means the default shown. PyTorch's torch.optim.SGD rules:
 * g += wd p; v = momentum v + (1 - dampening) g (v = g at the first step);
 * g = nesterov ? g + momentum v : v; p -= lr g. */
typedef struct ad_sgd_config {
    double lr;           /* 0.01 */
    double momentum;     /* 0 */
    double dampening;    /* 0 */
    double weight_decay; /* 0 */
    bool nesterov;
} ad_sgd_config;

/* torch.optim.Adam / AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). Adam adds wd p to g;
 * AdamW first multiplies p by (1 - lr wd). */
typedef struct ad_adam_config {
    double lr;           /* 0.001 */
    double beta1;        /* 0.9 */
    double beta2;        /* 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0 for Adam, 0.01 for AdamW */
} ad_adam_config;

/* Optimizers over every parameter of m (which must outlive the optimizer).
 * State is allocated here, once: a step allocates nothing. Errors: AD_ERR_ARG
 * for a NULL module, a parameter that is not a persistent tensor requiring
 * grad, or a config torch.optim refuses (a negative or NaN setting, a beta
 * outside [0, 1), nesterov without momentum or with dampening); AD_ERR_NOMEM. */
AD_API ad_status ad_optim_sgd(ad_optim **out, ad_module *m, const ad_sgd_config *config);
AD_API ad_status ad_optim_adam(ad_optim **out, ad_module *m, const ad_adam_config *config);
AD_API ad_status ad_optim_adamw(ad_optim **out, ad_module *m, const ad_adam_config *config);
/* Over an explicit list of persistent tensors (copied). Tensors that do not
 * require grad (ad_tensor_set_requires_grad false: frozen) are skipped by
 * step, zero_grad and clip_grad_norm, as torch skips parameters without grad. */
AD_API ad_status ad_optim_sgd_params(ad_optim **out, size_t n, ad_tensor *const *params,
                                     const ad_sgd_config *config);
AD_API ad_status ad_optim_adam_params(ad_optim **out, size_t n, ad_tensor *const *params,
                                      const ad_adam_config *config, bool decoupled);
AD_API void ad_optim_step(ad_optim *opt);
AD_API void ad_optim_zero_grad(ad_optim *opt);
AD_API void ad_optim_set_lr(ad_optim *opt, double lr);
AD_API double ad_optim_lr(const ad_optim *opt);
AD_API void ad_optim_free(ad_optim *opt);
/* The optimizer's state as named persistent tensors, for checkpoints: SGD's
 * "state.<param>.momentum_buffer", Adam's "state.<param>.exp_avg" and
 * "state.<param>.exp_avg_sq", then "state.step" (a 0-d float64 step count),
 * where <param> is the parameter's name in the module ("0.weight"), or its
 * index for the _params constructors. The tensors belong to the optimizer;
 * save them with ad_safetensors_save and restore them with
 * ad_safetensors_load. Returns the count; writes up to max. */
AD_API size_t ad_optim_state(const ad_optim *opt, ad_nn_param *out, size_t max);

/* Scales all gradients so their global L2 norm is at most max_norm; returns
 * the norm before clipping (as torch.nn.utils.clip_grad_norm_). */
AD_API double ad_nn_clip_grad_norm(size_t n, ad_tensor *const *params, double max_norm);

/* Learning-rate schedules, pure functions of the step/epoch. */
/* base * gamma^(floor(epoch / step_size)) */
AD_API double ad_lr_step(double base, int64_t epoch, int64_t step_size, double gamma);
/* Linear warm-up over steps 0..warmup-1, base (step + 1) / warmup (so the first
 * step is not wasted at lr 0), then cosine from base at step `warmup` to min_lr
 * at step `total`, and min_lr after it. */
AD_API double ad_lr_cosine(double base, double min_lr, int64_t step, int64_t warmup, int64_t total);

#ifdef __cplusplus
}
#endif

#endif
