/*
 * libautodiff layers, losses and optimizers: compositions of the core ops.
 *
 * A module (ad_module) owns its parameters, persistent tensors that live
 * outside every tape, and has a forward function that records ops on a tape
 * given by the caller. Containers (ad_nn_sequential, ad_nn_module_dict) own
 * their children. A model's parameters can be walked by name ("0.weight",
 * "encoder.1.bias", ...) for optimizers and checkpoints; the names follow
 * PyTorch's state_dict keys. Your own layers are modules too, made with
 * ad_module_create from a table of callbacks (docs/modules.md), and work
 * everywhere the built-in ones do.
 *
 *     ad_rng rng; ad_rng_seed(&rng, 42);
 *     ad_module *layers[3], *model;
 *     ad_nn_linear(&layers[0], 784, 256, true, AD_F32, &rng);
 *     ad_nn_activation(&layers[1], AD_ACT_RELU);
 *     ad_nn_linear(&layers[2], 256, 10, true, AD_F32, &rng);
 *     ad_nn_sequential(&model, 3, layers);           // takes ownership
 *     ad_adam_config config = ad_adam_defaults();    // torch's; change fields
 *     config.lr = 1e-3;
 *     ad_optim *opt; ad_optim_adam(&opt, model, &config);
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

/*
 * A module is a node of a tree: a type (a table of callbacks), a context
 * pointer for the type's own data, named parameters and named children. The
 * built-in layers below are made exactly as a user's own layer is (see
 * ad_module_create), and every function that takes a module works the same
 * on both.
 *
 * Ownership. A module owns its parameters (persistent tensors), its children
 * and, when its type has free_context, its context; ad_nn_free frees them
 * all. A module has at most one parent, and a tensor is a parameter of at
 * most one module: either would be freed twice.
 *
 * Names. A parameter's name is the dotted path to it from the module it is
 * listed from, as torch's state_dict keys: "weight" for a lone Linear,
 * "0.weight" for child "0" of a sequential, "encoder.0.weight" deeper down.
 * Names are computed from the tree, so they are right however a model was
 * put together. Local names (of a parameter or a child within its module)
 * must be non-empty, must not contain '.', and must be unique among the
 * module's parameters and children.
 */
typedef struct ad_module ad_module;

/* The per-call handle a forward callback receives: the tape, the module, and
 * the parameters to use for this call. It lives only during the callback. */
typedef struct ad_module_call ad_module_call;

/*
 * A module type: what a kind of module does. Declare one static const table
 * per type; the module keeps a pointer to it, so it must outlive the module.
 */
typedef struct ad_module_type {
    /* The type's name, used in error messages ("linear"). Required. */
    const char *name;
    /*
     * Records y = f(x) on ad_module_call_tape(call) and returns y, or NULL
     * after recording an error on that tape (ad_tape_set_error). x is a
     * tensor on that tape, never NULL. Read parameters only through
     * ad_module_call_param and run children only through
     * ad_module_forward_child, so that ad_nn_forward_with can replace them.
     * NULL for a module with no forward of its own (a plain container):
     * forwarding it is then AD_ERR_UNSUPPORTED.
     */
    ad_tensor *(*forward)(ad_module_call *call, ad_tensor *x);
    /* Optional: told of ad_nn_set_training, after m's own flag is set and
     * before its children are told. */
    void (*set_training)(ad_module *m, bool training);
    /* Optional: frees the context, when the module is freed (before its
     * children and parameters, which are still valid here) or when
     * ad_module_create fails. */
    void (*free_context)(void *context);
    /*
     * Optional, for a module with several inputs or outputs (a recurrent
     * layer's states, attention's query, key, value and masks): records
     * out[0..n_out) from in[0..n_in) on the call's tape. Any input but in[0]
     * may be NULL (left out by the caller: a zero initial state, no mask),
     * and out arrives all NULL; fill what the module produces. Returns AD_OK,
     * or an error recorded on the tape. ad_nn_forward runs it with one input
     * and one output when the type has no forward.
     */
    ad_status (*forward_n)(ad_module_call *call, size_t n_in, ad_tensor *const *in, size_t n_out,
                           ad_tensor **out);
} ad_module_type;

/*
 * Makes a module of the given type, with no parameters and no children, in
 * training mode. The module owns context when type->free_context is set: it
 * is freed with the module, and also when this function fails (so a caller
 * never frees it). Returns AD_OK, AD_ERR_ARG (NULL out, type or type->name)
 * or AD_ERR_NOMEM; *out is NULL on error. Free it with ad_nn_free.
 */
AD_API ad_status ad_module_create(ad_module **out, const ad_module_type *type, void *context);
/*
 * Registers a persistent tensor (ad_tensor_create) as parameter `name` of m
 * (copied), after m's earlier parameters: its index for ad_module_call_param
 * is the number registered before it. On success m owns the tensor and frees
 * it with itself; on error the caller keeps it. Errors: AD_ERR_ARG for a NULL
 * m or tensor, a tape tensor, a bad or taken name (see Names), or a tensor
 * that already is a parameter anywhere in m's tree; AD_ERR_NOMEM.
 */
AD_API ad_status ad_module_add_param(ad_module *m, const char *name, ad_tensor *tensor);
/*
 * Creates a persistent tensor of zeros that requires grad and registers it as
 * ad_module_add_param does. *out (if out is not NULL) receives it, owned by m
 * and living as long as m; NULL on error. Errors: those of ad_tensor_create
 * and ad_module_add_param (nothing is left behind on error).
 */
AD_API ad_status ad_module_create_param(ad_module *m, const char *name, ad_dtype dtype, int ndim,
                                        const int64_t *shape, ad_tensor **out);
/*
 * Registers child as child `name` of m (copied), after m's earlier children:
 * its index for ad_module_forward_child is the number registered before it.
 * On success m owns the child, and the child's parameters are renamed
 * "<path to m>.<name>.<...>"; on error the caller keeps it, unchanged.
 * Errors: AD_ERR_ARG for a NULL m or child, a bad or taken name, a child that
 * already has a parent (given twice, or to two modules), m itself or a module
 * above m (a cycle), or a child holding a tensor that is already a parameter
 * in m's tree; AD_ERR_NOMEM.
 */
AD_API ad_status ad_module_add_child(ad_module *m, const char *name, ad_module *child);

/* The context given to ad_module_create (NULL for a NULL m). */
AD_API void *ad_module_context(const ad_module *m);
/* The type given to ad_module_create, to check a module's kind by pointer
 * (NULL for a NULL m). */
AD_API const ad_module_type *ad_module_type_of(const ad_module *m);
/* True in training mode (the default), false in eval mode and for NULL. */
AD_API bool ad_module_training(const ad_module *m);
/* Number of children of m itself (not of its descendants); 0 for NULL. */
AD_API size_t ad_module_child_count(const ad_module *m);
/* Child `index` of m in registration order, or NULL if there is none. The
 * child belongs to m. */
AD_API ad_module *ad_module_child(const ad_module *m, size_t index);
/* The child of m registered as `name`, or NULL if there is none. */
AD_API ad_module *ad_module_find_child(const ad_module *m, const char *name);

/* ---- Inside a forward callback ---- */

/* The tape the forward records on. */
AD_API ad_tape *ad_module_call_tape(const ad_module_call *call);
/* The module being run (read its mode with ad_module_training). */
AD_API ad_module *ad_module_call_module(const ad_module_call *call);
/* Its context, as ad_module_context. */
AD_API void *ad_module_call_context(const ad_module_call *call);
/*
 * Parameter `index` of the module being run, as a tensor on the call's tape:
 * a view of the module's own tensor, or the caller's stand-in under
 * ad_nn_forward_with. Gradients flow to whichever it is. Returns NULL, with
 * AD_ERR_ARG on the tape, for an index past the module's own parameters, and
 * NULL when the tape already holds an error.
 */
AD_API ad_tensor *ad_module_call_param(ad_module_call *call, size_t index);
/*
 * Runs child `index` of the module being run on x, on the call's tape, and
 * returns its output: ad_nn_forward of the child, except that under
 * ad_nn_forward_with the child uses its share of the caller's stand-ins.
 * Returns NULL for a NULL x or an error (AD_ERR_ARG on the tape for an index
 * past the module's children, else the child's error).
 */
AD_API ad_tensor *ad_module_forward_child(ad_module_call *call, size_t index, ad_tensor *x);
/* ad_module_forward_child for several inputs and outputs (ad_nn_forward_n). */
AD_API ad_status ad_module_forward_child_n(ad_module_call *call, size_t index, size_t n_in,
                                           ad_tensor *const *in, size_t n_out, ad_tensor **out);

/* ---- Built-in layers ---- */

typedef enum {
    AD_ACT_RELU,
    AD_ACT_TANH,
    AD_ACT_SIGMOID,
    AD_ACT_GELU,
    AD_ACT_SOFTPLUS,
    AD_ACT_LEAKY_RELU /* slope 0.01, as PyTorch's default */
} ad_activation;

/*
 * Every constructor returns AD_OK, AD_ERR_ARG (a bad size or argument) or
 * AD_ERR_NOMEM and sets *out (NULL on error). Free a module with ad_nn_free
 * (not needed for children given to a container, which owns them). No
 * argument takes 0 to mean a default value, except MaxPool2d's stride, for
 * which 0 is not a stride.
 */

/* y = x W^T + b; x [..., in], W [out, in], b [out]. Kaiming-uniform init as
 * PyTorch's Linear: W and b uniform in +-1/sqrt(in). */
AD_API ad_status ad_nn_linear(ad_module **out, int64_t in_features, int64_t out_features, bool bias,
                              ad_dtype dtype, ad_rng *rng);
/* 2-D convolution over x [N, C, H, W] with weight [out, C, k, k], bias [out]:
 * ad_conv2d with stride and padding on both axes. */
AD_API ad_status ad_nn_conv2d(ad_module **out, int64_t in_channels, int64_t out_channels,
                              int kernel, int stride, int padding, ad_dtype dtype, ad_rng *rng);
/* Max over k x k windows of x [N, C, H, W]; padding acts as -inf; the gradient
 * goes to each window's first maximal element (ad_max_pool2d). stride >= 1
 * (PyTorch's default is stride = kernel); 0 or less is AD_ERR_ARG. */
AD_API ad_status ad_nn_maxpool2d(ad_module **out, int kernel, int stride, int padding);
/* [N, ...] -> [N, prod(...)] */
AD_API ad_status ad_nn_flatten(ad_module **out);
/* Zeroes elements with probability p and scales the rest by 1/(1-p) while
 * training; the identity in eval mode. Owns an ad_rng seeded with seed. */
AD_API ad_status ad_nn_dropout(ad_module **out, double p, uint64_t seed);

/* ---- Layers as functions (torch.nn.functional) ---- */

/* F.dropout: while training, each element of x is zeroed with probability p
 * and the rest scaled by 1/(1-p), from rng (advanced); p = 1 gives zeros;
 * not training or p = 0: x itself. dx = dy * the same mask. p outside
 * [0, 1], or training without rng, is AD_ERR_ARG on x's tape. */
AD_API ad_tensor *ad_dropout(ad_tensor *x, double p, bool training, ad_rng *rng);
/* F.embedding: the rows of weight [num, dim] at an int64 index of any shape
 * S (on a tape; weight may be persistent): S + [dim]. dweight gets dy's rows
 * added at each index (repeats accumulate). An index outside [0, num) is
 * AD_ERR_ARG, a non-int64 index AD_ERR_DTYPE. */
AD_API ad_tensor *ad_embedding(ad_tensor *index, ad_tensor *weight);
/* nn.LayerNorm(dim, eps): ad_layer_norm over the last dim,
 * (x - mean) / sqrt(var + eps) * gamma + beta, var without correction (as
 * PyTorch). gamma ones, beta zeros. eps is used as given, 0 meaning 0: pass
 * AD_NORM_EPS (1e-5) for PyTorch's default; AD_ERR_ARG for eps < 0, NaN or
 * inf. Parameters "weight" (gamma) and "bias" (beta). */
AD_API ad_status ad_nn_layer_norm(ad_module **out, int64_t dim, double eps, ad_dtype dtype);
/* A table [num, dim], N(0, 1) init. ad_nn_forward takes an int64 tensor of
 * indices of any shape S (each in [0, num)) and gives S + [dim], as torch's
 * nn.Embedding; ad_nn_embedding_lookup takes a C array. */
AD_API ad_status ad_nn_embedding(ad_module **out, int64_t num, int64_t dim, ad_dtype dtype,
                                 ad_rng *rng);
AD_API ad_status ad_nn_activation(ad_module **out, ad_activation kind);

/* ---- Containers ---- */

/*
 * Runs children[0..n) in order, named "0", "1", ... (torch.nn.Sequential).
 * Takes ownership of the children, also on error, except a child that
 * already belongs to another module, which stays there. AD_ERR_ARG for a
 * NULL out, a NULL child, one given twice or one that has a parent (each
 * child this call owns is still freed once); AD_ERR_NOMEM. n = 0 gives the
 * identity. More children can be added with ad_module_add_child; they run
 * in registration order.
 */
AD_API ad_status ad_nn_sequential(ad_module **out, size_t n, ad_module *const *children);
/*
 * A container that only groups children under the given names (copied), as
 * torch.nn.ModuleDict: {"encoder", "decoder"} gives "encoder.0.weight", ...
 * It has no forward (ad_nn_forward gives AD_ERR_UNSUPPORTED): run its
 * children, found with ad_module_find_child. Ownership and errors as
 * ad_nn_sequential, plus AD_ERR_ARG for a bad or repeated name. n = 0 gives
 * an empty one, to fill with ad_module_add_child.
 */
AD_API ad_status ad_nn_module_dict(ad_module **out, size_t n, const char *const *names,
                                   ad_module *const *children);

/* ---- Using modules ---- */

/* Records the module's forward on tape. x may be a tape or persistent tensor.
 * Returns NULL on error (the tape's message says which layer and shapes):
 * AD_ERR_SHAPE for an input that does not fit the layer (Linear and LayerNorm
 * need x [..., features], a 1-d x being one row; Conv2d and MaxPool2d need
 * [N, C, H, W] with H, W at least the kernel after padding), AD_ERR_DTYPE for
 * an input whose dtype is not the parameters' (an embedding takes int64
 * indices), AD_ERR_ARG for a NULL module, AD_ERR_UNSUPPORTED for a module with
 * no forward, AD_ERR_NULL for a user forward that returned NULL without
 * recording an error. */
AD_API ad_tensor *ad_nn_forward(ad_module *m, ad_tape *tape, ad_tensor *x);
/*
 * Records a module with several inputs and outputs (ad_module_type's
 * forward_n): in[0..n_in) may be tape or persistent tensors, and any but
 * in[0] may be NULL where the module allows it (each module's constructor
 * says what its inputs and outputs are). out[0..n_out) is set, NULL for an
 * output not produced and on error. A module with only a single-input
 * forward takes n_in = 1 (or more, all NULL after the first) and fills
 * out[0]. Returns AD_OK or the tape's error: AD_ERR_ARG for a NULL module,
 * in[0] or out, or an input the module does not take, and those of
 * ad_nn_forward.
 */
AD_API ad_status ad_nn_forward_n(ad_module *m, ad_tape *tape, size_t n_in, ad_tensor *const *in,
                                 size_t n_out, ad_tensor **out);
/* ad_nn_forward_n with the parameters replaced by params[0..n_params), as
 * ad_nn_forward_with. */
AD_API ad_status ad_nn_forward_n_with(ad_module *m, ad_tape *tape, size_t n_in,
                                      ad_tensor *const *in, size_t n_out, ad_tensor **out,
                                      size_t n_params, ad_tensor *const *params);
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
/* Training mode (the default) or eval mode, for the module and all its
 * descendants, calling each one's set_training callback. Accepts NULL. */
AD_API void ad_nn_set_training(ad_module *m, bool training);
/* Frees a module, its context, parameters and children. Accepts NULL. Does
 * nothing for a module that has a parent: the parent frees it. */
AD_API void ad_nn_free(ad_module *m);

/* A named parameter (see ad_nn_params for how long the name lives). */
typedef struct ad_nn_param {
    const char *name;
    ad_tensor *tensor;
} ad_nn_param;

/* Number of parameter tensors in m and its descendants (0 for NULL). */
AD_API size_t ad_nn_param_count(const ad_module *m);
/*
 * Writes up to max parameters of m and its descendants, named by their path
 * from m (see Names), and returns how many there are (0 for NULL m). The
 * order: m's own parameters in registration order, then each child's, depth
 * first. The names belong to the modules and stay valid until m is freed or
 * m (or a module above it) is added to a container, which renames them.
 */
AD_API size_t ad_nn_params(const ad_module *m, ad_nn_param *out, size_t max);
/* Total number of scalar parameters (0 for NULL). */
AD_API int64_t ad_nn_param_numel(const ad_module *m);
/* Saves / loads every parameter of m under its ad_nn_params name
 * (safetensors; see nn.h for errors). AD_ERR_ARG for a NULL m. */
AD_API ad_status ad_nn_save(const ad_module *m, const char *path, char *err, size_t err_size);
AD_API ad_status ad_nn_load(ad_module *m, const char *path, char *err, size_t err_size);

/* ==== Losses ================================================================= */
/*
 * torch.nn.functional's losses, as compositions of the core ops: first and
 * second derivatives come from the ops' own rules. Each returns a tape tensor
 * (0-d when reduced) or NULL with the error on the tape, naming the loss and
 * the shapes. docs/layers.md gives each formula and its conventions at kinks.
 */

/* How a loss reduces its elements: the mean (the default), the sum, none (the
 * elementwise loss, of the broadcast or target shape), or, for kl_div only,
 * the sum divided by the batch size (dim 0). Another loss given
 * AD_REDUCE_BATCHMEAN fails with AD_ERR_ARG. */
typedef enum {
    AD_REDUCE_MEAN = 0,
    AD_REDUCE_SUM = 1,
    AD_REDUCE_NONE = 2,
    AD_REDUCE_BATCHMEAN = 3
} ad_reduction;

/* (a - b)^2, broadcasting, reduced */
AD_API ad_tensor *ad_nn_mse_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction);
/* |a - b|, broadcasting, reduced; gradient sign(a - b), 0 at a = b */
AD_API ad_tensor *ad_nn_l1_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction);
/*
 * d = a - b (broadcasting): 0.5 d^2 / beta for |d| < beta, |d| - 0.5 beta
 * otherwise; beta >= 0 (AD_ERR_ARG below). beta = 0 is |d|, with gradient -1
 * for both a and b at d = 0 (torch 1.13's kernel: d <= -beta gives -1, and
 * b's gradient is the kernel with the roles swapped).
 */
AD_API ad_tensor *ad_nn_smooth_l1_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction,
                                       double beta);
/* d = a - b: 0.5 d^2 for |d| < delta, delta (|d| - 0.5 delta) otherwise; delta > 0. */
AD_API ad_tensor *ad_nn_huber_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction,
                                   double delta);
/*
 * KL divergence with input = log q (log-probabilities) and target p:
 * xlogy(p, p) - p input, or with log_target (target = log p) e^target (target
 * - input). Broadcasting. AD_REDUCE_BATCHMEAN is the sum over input.shape[0]
 * (torch's 'batchmean', the true KL divergence per sample); AD_REDUCE_MEAN
 * averages over every element, as torch's 'mean'.
 */
AD_API ad_tensor *ad_nn_kl_div(ad_tensor *input, ad_tensor *target, ad_reduction reduction,
                               bool log_target);
/*
 * Binary cross-entropy on probabilities p in [0, 1] (AD_ERR_ARG outside),
 * target t of p's shape (AD_ERR_SHAPE otherwise):
 * -w (t max(ln p, -100) + (1 - t) max(ln(1 - p), -100)), w the optional
 * weight (NULL, or broadcasting to p). dp = w (p - t) / max(p (1 - p), 1e-12)
 * as torch's backward, so finite at p = 0 and 1.
 */
AD_API ad_tensor *ad_nn_binary_cross_entropy(ad_tensor *p, ad_tensor *t, ad_tensor *weight,
                                             ad_reduction reduction);
/* Binary cross-entropy with logits, stable: (1 - t) x - ln sigmoid(x), broadcasting. */
AD_API ad_tensor *ad_nn_binary_cross_entropy_with_logits(ad_tensor *logits, ad_tensor *targets,
                                                         ad_reduction reduction);
/*
 * The same with torch's weight and pos_weight (either NULL; both broadcast,
 * pos_weight usually [C] along the last dim): w ((1 - t) x - l ln sigmoid(x))
 * with l = 1 + (pos_weight - 1) t.
 */
AD_API ad_tensor *ad_nn_binary_cross_entropy_with_logits_weighted(ad_tensor *logits,
                                                                  ad_tensor *targets,
                                                                  ad_tensor *weight,
                                                                  ad_tensor *pos_weight,
                                                                  ad_reduction reduction);
/*
 * torch 1.13's cosine_similarity along dim (negative counts from the end),
 * x1 and x2 broadcast: sum(x1 / max(|x1|, eps) * x2 / max(|x2|, eps)), each
 * norm clamped on its own (eps > 0; torch's default 1e-8). The result drops
 * dim. Below eps the gradient is torch's: the norm's derivative x / eps.
 */
AD_API ad_tensor *ad_nn_cosine_similarity(ad_tensor *x1, ad_tensor *x2, int dim, double eps);

/*
 * Options of the class-index losses (nll_loss, cross_entropy). Start from
 * ad_nn_class_loss_defaults(): a zeroed struct means ignore_index 0, class 0
 * ignored.
 */
typedef struct ad_nn_class_loss_opts {
    ad_reduction reduction; /* mean (default), sum or none */
    ad_tensor *weight;      /* NULL, or [C] of the input's dtype: class c's loss times weight[c] */
    int64_t ignore_index;   /* targets equal to it add nothing, nor count in the mean (-100) */
    double label_smoothing; /* cross_entropy only: eps in [0, 1] (0) */
} ad_nn_class_loss_opts;

/* {AD_REDUCE_MEAN, NULL, -100, 0}: torch's defaults. */
AD_API ad_nn_class_loss_opts ad_nn_class_loss_defaults(void);
/*
 * Negative log-likelihood: log_probs [N, C] or [N, C, d...] (or [C] with a
 * 0-d target), target an int64 tensor [N] or [N, d...] of classes in [0, C)
 * or ignore_index. Each element is -w[y] log_probs[n, y]; the mean divides the
 * sum by the sum of w[y] over the targets not ignored (their count without
 * weights): NaN when all are ignored. opts NULL means the defaults.
 * AD_ERR_DTYPE for a target that is not int64 or a weight of another dtype,
 * AD_ERR_SHAPE for their shapes, AD_ERR_ARG for a target out of range.
 */
AD_API ad_tensor *ad_nn_nll_loss(ad_tensor *log_probs, const ad_tensor *target,
                                 const ad_nn_class_loss_opts *opts);
/*
 * Cross-entropy of logits [N, C] or [N, C, d...] with int64 class targets, as
 * torch 1.13: (1 - eps) nll_loss(log_softmax(logits), target, w) + (eps / C)
 * s, with s the sum over classes of -w[c] log p[c] per element, 0 where
 * ignored, reduced as nll_loss reduces (the mean divides by the same sum of
 * w[y]). Without weights, smoothing or ignored targets the mean is the fused
 * ad_cross_entropy_tensor. Errors as ad_nn_nll_loss, and AD_ERR_ARG for eps.
 */
AD_API ad_tensor *ad_nn_cross_entropy_tensor(ad_tensor *logits, const ad_tensor *target,
                                             const ad_nn_class_loss_opts *opts);
/*
 * ad_nn_cross_entropy_tensor with targets[0..n) in a C array (copied), no
 * weights and no ignore_index: logits [N, C], n = N.
 */
AD_API ad_tensor *ad_nn_cross_entropy(ad_tensor *logits, size_t n, const int64_t *targets,
                                      double label_smoothing, ad_reduction reduction);

/* ==== Optimizers ============================================================= */

typedef struct ad_optim ad_optim;

/*
 * Optimizer settings. Start from a defaults function and change the fields
 * you need; every field is then used exactly as given (0 is a setting, not
 * "the default": Adam with beta1 = 0 and AdamW with weight_decay = 0 are
 * what they say):
 *
 *     ad_adam_config c = ad_adamw_defaults();
 *     c.lr = 3e-4;
 *     ad_optim_adamw(&opt, model, &c);
 *
 * A config that no defaults function made, such as a compound literal
 * (ad_adam_config){.lr = 1e-3} or a zeroed struct, is refused with
 * AD_ERR_ARG: its unset fields would be zeros, and Adam with beta2 = 0
 * trains, just wrongly. The `version` field is how it is told apart; leave
 * it as the defaults function set it. A NULL config means the defaults.
 */

/* torch.optim.SGD's rules: g += wd p; v = momentum v + (1 - dampening) g
 * (v = g at the first step); g = nesterov ? g + momentum v : v; p -= lr g. */
typedef struct ad_sgd_config {
    double lr;           /* 0.01 (torch.optim.SGD has no default rate) */
    double momentum;     /* 0 */
    double dampening;    /* 0 */
    double weight_decay; /* 0 */
    bool nesterov;       /* false */
    uint32_t version;    /* set by ad_sgd_defaults */
} ad_sgd_config;

/* torch.optim.Adam / AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). Adam adds wd p to g;
 * AdamW first multiplies p by (1 - lr wd). */
typedef struct ad_adam_config {
    double lr;           /* 0.001 */
    double beta1;        /* 0.9 */
    double beta2;        /* 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0 from ad_adam_defaults, 0.01 from ad_adamw_defaults */
    uint32_t version;    /* set by the defaults functions */
} ad_adam_config;

/* torch.optim.SGD's settings, with lr 0.01. */
AD_API ad_sgd_config ad_sgd_defaults(void);
/* torch.optim.Adam's defaults: lr 1e-3, betas 0.9 and 0.999, eps 1e-8, weight decay 0. */
AD_API ad_adam_config ad_adam_defaults(void);
/* torch.optim.AdamW's defaults: those of Adam with weight decay 0.01. */
AD_API ad_adam_config ad_adamw_defaults(void);

/* Optimizers over every parameter of m (which must outlive the optimizer).
 * State is allocated here, once: a step allocates nothing. A NULL config
 * means the defaults of the matching function above. Errors: AD_ERR_ARG for
 * a NULL out or module, a parameter that is not a persistent tensor, a config
 * not made by a defaults function, or one torch.optim refuses (a negative or
 * NaN setting, a beta outside [0, 1), nesterov without momentum or with
 * dampening); AD_ERR_NOMEM. *out is NULL on error. */
AD_API ad_status ad_optim_sgd(ad_optim **out, ad_module *m, const ad_sgd_config *config);
AD_API ad_status ad_optim_adam(ad_optim **out, ad_module *m, const ad_adam_config *config);
AD_API ad_status ad_optim_adamw(ad_optim **out, ad_module *m, const ad_adam_config *config);
/* Over an explicit list of persistent tensors (copied). Tensors that do not
 * require grad (ad_tensor_set_requires_grad false: frozen) are skipped by
 * step, zero_grad and clip_grad_norm, as torch skips parameters without grad.
 * decoupled: AdamW (NULL config: ad_adamw_defaults) instead of Adam. Errors
 * as above. */
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
AD_API double ad_optim_clip_grad_norm(size_t n, ad_tensor *const *params, double max_norm);

/* Learning-rate schedules, pure functions of the step/epoch. */
/* base * gamma^(floor(epoch / step_size)) */
AD_API double ad_optim_lr_step(double base, int64_t epoch, int64_t step_size, double gamma);
/* Linear warm-up over steps 0..warmup-1, base (step + 1) / warmup (so the first
 * step is not wasted at lr 0), then cosine from base at step `warmup` to min_lr
 * at step `total`, and min_lr after it. */
AD_API double ad_optim_lr_cosine(double base, double min_lr, int64_t step, int64_t warmup,
                                 int64_t total);

/* ==== Renamed (docs/names.md): the old names, for one release ============== */

AD_DEPRECATED("ad_nn_binary_cross_entropy_with_logits")
static inline ad_tensor *ad_nn_bce_with_logits(ad_tensor *logits, ad_tensor *targets,
                                               ad_reduction reduction)
{
    return ad_nn_binary_cross_entropy_with_logits(logits, targets, reduction);
}
AD_DEPRECATED("ad_optim_clip_grad_norm")
static inline double ad_nn_clip_grad_norm(size_t n, ad_tensor *const *params, double max_norm)
{
    return ad_optim_clip_grad_norm(n, params, max_norm);
}
AD_DEPRECATED("ad_optim_lr_step")
static inline double ad_lr_step(double base, int64_t epoch, int64_t step_size, double gamma)
{
    return ad_optim_lr_step(base, epoch, step_size, gamma);
}
AD_DEPRECATED("ad_optim_lr_cosine")
static inline double ad_lr_cosine(double base, double min_lr, int64_t step, int64_t warmup,
                                  int64_t total)
{
    return ad_optim_lr_cosine(base, min_lr, step, warmup, total);
}

#ifdef __cplusplus
}
#endif

#endif
