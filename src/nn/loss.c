/* Losses: compositions of core ops, torch.nn.functional's semantics (1.13).
 * Cross-entropy without weights, smoothing or ignored targets is the fused
 * core op, for its stable one-pass forward. Targets are read when the loss is
 * made (they are never differentiated), so index checks happen here. */
#include <math.h>
#include <string.h>

#include "autodiff/layers.h"

/* The tape an error goes to: the first input's, or the other's when the first
 * is persistent (NULL, a per-thread error, when both are). */
static ad_tape *tape_of(const ad_tensor *a, const ad_tensor *b)
{
    ad_tape *tape = a ? ad_tensor_tape(a) : NULL;
    return tape || !b ? tape : ad_tensor_tape(b);
}

static ad_tensor *scalar_like(ad_tensor *x, double value)
{
    return ad_scalar_of(ad_tensor_tape(x), ad_tensor_dtype(x), value);
}

static const char *shape_of(char *buf, size_t size, const ad_tensor *t)
{
    return ad_shape_string(buf, size, ad_tensor_ndim(t), ad_tensor_shape(t));
}

static bool reduction_ok(ad_tape *tape, const char *loss, ad_reduction reduction, bool batchmean)
{
    if (reduction == AD_REDUCE_MEAN || reduction == AD_REDUCE_SUM || reduction == AD_REDUCE_NONE ||
        (batchmean && reduction == AD_REDUCE_BATCHMEAN))
        return true;
    ad_tape_set_error(tape, AD_ERR_ARG, "%s: reduction %d is not mean, sum or none%s", loss,
                      (int)reduction, batchmean ? " or batchmean" : "");
    return false;
}

/* x reduced; checks the reduction (batchmean only where the loss allows it). */
static ad_tensor *reduce(ad_tensor *x, ad_reduction reduction, const char *loss)
{
    if (!x || !reduction_ok(ad_tensor_tape(x), loss, reduction, false))
        return NULL;
    if (reduction == AD_REDUCE_NONE)
        return x;
    return reduction == AD_REDUCE_SUM ? ad_sum_all(x) : ad_mean_all(x);
}

// ---- pointwise regression losses ------------------------------------------

// (a - b)^2
ad_tensor *ad_nn_mse_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction)
{
    return reduce(ad_square(ad_sub(a, b)), reduction, "mse_loss");
}

// |a - b|: gradient sign(a - b), 0 at a = b (abs's convention, torch's too)
ad_tensor *ad_nn_l1_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction)
{
    return reduce(ad_abs(ad_sub(a, b)), reduction, "l1_loss");
}

// 0.5 d^2 / beta for |d| < beta, |d| - 0.5 beta otherwise
ad_tensor *ad_nn_smooth_l1_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction, double beta)
{
    if (!a || !b)
        return NULL;
    if (!(beta >= 0)) {
        ad_tape_set_error(tape_of(a, b), AD_ERR_ARG, "smooth_l1_loss: beta %g is negative", beta);
        return NULL;
    }
    ad_tensor *d = ad_sub(a, b);
    if (!d)
        return NULL;
    if (beta == 0) {
        /* |d| with torch's kernel's gradient, d <= -beta giving -1, which
         * torch applies to the target with the roles swapped: at d = 0 both a
         * and b get -1 (abs would give 0). The middle branch is 0 with that
         * gradient; no quadratic branch, whose 1/beta would poison where. */
        ad_tensor *zero = ad_neg(ad_add(ad_sub(a, ad_detach(a)), ad_sub(b, ad_detach(b))));
        ad_tensor *zero_d = scalar_like(d, 0);
        return reduce(ad_where(ad_lt(d, zero_d), ad_neg(d), ad_where(ad_gt(d, zero_d), d, zero)),
                      reduction, "smooth_l1_loss");
    }
    ad_tensor *size = ad_abs(d);
    ad_tensor *quadratic = ad_mul_scalar(ad_square(d), 0.5 / beta);
    ad_tensor *linear = ad_sub_scalar(size, 0.5 * beta);
    /* At |d| = beta both branches have value beta/2 and slope sign(d). */
    return reduce(ad_where(ad_lt(size, scalar_like(d, beta)), quadratic, linear), reduction,
                  "smooth_l1_loss");
}

// 0.5 d^2 for |d| < delta, delta (|d| - 0.5 delta) otherwise
ad_tensor *ad_nn_huber_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction, double delta)
{
    if (!a || !b)
        return NULL;
    if (!(delta > 0)) {
        ad_tape_set_error(tape_of(a, b), AD_ERR_ARG, "huber_loss: delta %g is not positive", delta);
        return NULL;
    }
    ad_tensor *d = ad_sub(a, b);
    if (!d)
        return NULL;
    ad_tensor *size = ad_abs(d);
    ad_tensor *quadratic = ad_mul_scalar(ad_square(d), 0.5);
    ad_tensor *linear = ad_mul_scalar(ad_sub_scalar(size, 0.5 * delta), delta);
    return reduce(ad_where(ad_lt(size, scalar_like(d, delta)), quadratic, linear), reduction,
                  "huber_loss");
}

// xlogy(p, p) - p input, or e^target (target - input) with log targets
ad_tensor *ad_nn_kl_div(ad_tensor *input, ad_tensor *target, ad_reduction reduction,
                        bool log_target)
{
    if (!input || !target)
        return NULL;
    ad_tape *tape = tape_of(input, target);
    if (!reduction_ok(tape, "kl_div", reduction, true))
        return NULL;
    ad_tensor *loss = log_target ? ad_mul(ad_exp(target), ad_sub(target, input))
                                 : ad_sub(ad_xlogy(target, target), ad_mul(target, input));
    if (reduction != AD_REDUCE_BATCHMEAN)
        return reduce(loss, reduction, "kl_div");
    /* torch: the sum over input.size(0), for input of any ndim but 0. */
    ad_tensor *sum = ad_sum_all(loss);
    if (ad_tensor_ndim(input) == 0)
        return sum;
    return ad_div_scalar(sum, (double)ad_tensor_shape(input)[0]);
}

// ---- binary cross-entropy ------------------------------------------------------

/* torch's backward divides by max(p (1 - p), 1e-12), so the gradient stays
 * finite at p = 0 and 1 where ln p has been clamped at -100. */
#define BCE_EPSILON ((double)1e-12f) /* torch's float EPSILON */

// -(t max(ln p, -100) + (1 - t) max(ln(1 - p), -100)), times w
// dp = w (p - t) / max(p (1 - p), 1e-12)    dt = w (max(ln(1 - p), -100) - max(ln p, -100))
ad_tensor *ad_nn_binary_cross_entropy(ad_tensor *p, ad_tensor *t, ad_tensor *weight,
                                      ad_reduction reduction)
{
    if (!p || !t)
        return NULL;
    ad_tape *tape = tape_of(p, t);
    char ps[96], ts[96];
    int ndim = ad_tensor_ndim(p);
    if (ad_tensor_ndim(t) != ndim ||
        memcmp(ad_tensor_shape(t), ad_tensor_shape(p), (size_t)ndim * sizeof(int64_t))) {
        ad_tape_set_error(tape, AD_ERR_SHAPE,
                          "binary_cross_entropy: target of shape %s for input of shape %s (they "
                          "must be equal)",
                          shape_of(ts, sizeof ts, t), shape_of(ps, sizeof ps, p));
        return NULL;
    }
    for (int64_t i = 0; i < ad_tensor_numel(p); i++) {
        double v = ad_tensor_get(p, i);
        if (!(v >= 0 && v <= 1)) {
            ad_tape_set_error(tape, AD_ERR_ARG,
                              "binary_cross_entropy: input %g (flat index %lld) of input of "
                              "shape %s is not a probability in [0, 1]",
                              v, (long long)i, shape_of(ps, sizeof ps, p));
            return NULL;
        }
    }
    if (!reduction_ok(tape, "binary_cross_entropy", reduction, false))
        return NULL;
    ad_tensor *q = ad_rsub_scalar(p, 1);
    ad_tensor *inside = ad_ge(ad_mul(p, q), scalar_like(p, BCE_EPSILON));
    /* Inside, ln p > -28 is never clamped; p is replaced by 1/2 outside so
     * that no log of 0 poisons the gradient through where. */
    ad_tensor *safe = ad_where(inside, p, scalar_like(p, 0.5));
    ad_tensor *exact = ad_neg(ad_add(
        ad_mul(t, ad_log(safe)), ad_mul(ad_rsub_scalar(t, 1), ad_log(ad_rsub_scalar(safe, 1)))));
    /* Outside: torch's clamped value of the detached p (differentiable in t),
     * plus a term of value 0 whose gradient in p is (p - t) / 1e-12. */
    ad_tensor *fixed = ad_detach(p);
    ad_tensor *clamped = ad_neg(
        ad_add(ad_mul(t, ad_clamp_min(ad_log(fixed), -100)),
               ad_mul(ad_rsub_scalar(t, 1), ad_clamp_min(ad_log(ad_rsub_scalar(fixed, 1)), -100))));
    ad_tensor *slope = ad_mul_scalar(
        ad_sub(ad_mul_scalar(ad_square(p), 0.5), ad_mul(ad_detach(t), p)), 1 / BCE_EPSILON);
    ad_tensor *edge = ad_add(clamped, ad_sub(slope, ad_detach(slope)));
    ad_tensor *loss = ad_where(inside, exact, edge);
    if (weight)
        loss = ad_mul(loss, weight);
    return reduce(loss, reduction, "binary_cross_entropy");
}

// w ((1 - t) x - l ln sigmoid(x)), l = 1 + (pos_weight - 1) t: torch's form
// dx = w (l sigmoid(x) - pos_weight t)... through logsigmoid: stable for any x
ad_tensor *ad_nn_binary_cross_entropy_with_logits_weighted(ad_tensor *logits, ad_tensor *targets,
                                                           ad_tensor *weight, ad_tensor *pos_weight,
                                                           ad_reduction reduction)
{
    if (!logits || !targets)
        return NULL;
    ad_tensor *log_sigmoid = ad_logsigmoid(logits);
    if (pos_weight)
        log_sigmoid =
            ad_mul(ad_add_scalar(ad_mul(ad_sub_scalar(pos_weight, 1), targets), 1), log_sigmoid);
    ad_tensor *loss = ad_sub(ad_mul(ad_rsub_scalar(targets, 1), logits), log_sigmoid);
    if (weight)
        loss = ad_mul(loss, weight);
    return reduce(loss, reduction, "binary_cross_entropy_with_logits");
}

ad_tensor *ad_nn_binary_cross_entropy_with_logits(ad_tensor *logits, ad_tensor *targets,
                                                  ad_reduction reduction)
{
    return ad_nn_binary_cross_entropy_with_logits_weighted(logits, targets, NULL, NULL, reduction);
}

// ---- cosine similarity ------------------------------------------------------------

/* A norm clamped at eps as torch 1.13 clamps it (in place, without grad): the
 * value max(|x|, eps), the gradient x / max(|x|, eps) even below eps. s is
 * sum(x^2) along dim, kept. */
static ad_tensor *clamped_norm(ad_tensor *s, double eps)
{
    ad_tensor *norm = ad_sqrt(ad_detach(s));
    ad_tensor *above = ad_ge(norm, scalar_like(s, eps));
    /* Above eps, sqrt of s (1 elsewhere, so no 1/0 reaches the gradient). */
    ad_tensor *exact = ad_sqrt(ad_where(above, s, scalar_like(s, 1)));
    /* Below, eps plus a term of value 0 and gradient x / eps. */
    ad_tensor *below = ad_add_scalar(ad_mul_scalar(ad_sub(s, ad_detach(s)), 0.5 / eps), eps);
    return ad_where(above, exact, below);
}

// sum(x1 / max(|x1|, eps) * x2 / max(|x2|, eps)) along dim
ad_tensor *ad_nn_cosine_similarity(ad_tensor *x1, ad_tensor *x2, int dim, double eps)
{
    if (!x1 || !x2)
        return NULL;
    ad_tape *tape = tape_of(x1, x2);
    char s1[96], s2[96];
    if (!(eps > 0)) {
        ad_tape_set_error(tape, AD_ERR_ARG, "cosine_similarity: eps %g is not positive", eps);
        return NULL;
    }
    /* torch broadcasts first, so a size-1 dim counts once per broadcast copy. */
    int n1 = ad_tensor_ndim(x1), n2 = ad_tensor_ndim(x2), ndim = n1 > n2 ? n1 : n2;
    int64_t shape[AD_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int64_t a = i < ndim - n1 ? 1 : ad_tensor_shape(x1)[i - (ndim - n1)];
        int64_t b = i < ndim - n2 ? 1 : ad_tensor_shape(x2)[i - (ndim - n2)];
        if (a != b && a != 1 && b != 1) {
            ad_tape_set_error(tape, AD_ERR_SHAPE,
                              "cosine_similarity: shapes %s and %s do not broadcast",
                              shape_of(s1, sizeof s1, x1), shape_of(s2, sizeof s2, x2));
            return NULL;
        }
        shape[i] = a == 1 ? b : a;
    }
    if (dim < -ndim || dim >= ndim) {
        ad_tape_set_error(tape, AD_ERR_AXIS,
                          "cosine_similarity: dim %d is not one of the %d dims of shapes %s and %s",
                          dim, ndim, shape_of(s1, sizeof s1, x1), shape_of(s2, sizeof s2, x2));
        return NULL;
    }
    dim = dim < 0 ? dim + ndim : dim;
    ad_tensor *a = ad_expand(x1, ndim, shape);
    ad_tensor *b = ad_expand(x2, ndim, shape);
    ad_tensor *na = clamped_norm(ad_sum(ad_square(a), 1, &dim, true), eps);
    ad_tensor *nb = clamped_norm(ad_sum(ad_square(b), 1, &dim, true), eps);
    return ad_sum(ad_mul(ad_div(a, na), ad_div(b, nb)), 1, &dim, false);
}

// ---- class-index losses: nll_loss, cross_entropy ----------------------------

ad_nn_class_loss_opts ad_nn_class_loss_defaults(void)
{
    return (ad_nn_class_loss_opts){AD_REDUCE_MEAN, NULL, -100, 0.0};
}

/* What the targets say, read once and checked: the input viewed as [N, C,
 * d...] (a [C] input as [1, C]), the target's shape, the index of each
 * element's class ([N, 1, d...], ignored targets read class 0), a bool mask
 * of the targets not ignored, and their count. */
typedef struct targets {
    ad_tensor *input;
    int ndim; /* of the target, as used */
    int64_t shape[AD_MAX_DIMS];
    int64_t classes;
    ad_tensor *index, *flat_index, *kept;
    int64_t count;
} targets;

static bool read_targets(const char *loss, ad_tensor *input, const ad_tensor *target,
                         const ad_nn_class_loss_opts *o, targets *r)
{
    ad_tape *tape = tape_of(input, target);
    char is[96], ts[96];
    int in_ndim = ad_tensor_ndim(input), t_ndim = ad_tensor_ndim(target);
    const int64_t *in_shape = ad_tensor_shape(input), *t_shape = ad_tensor_shape(target);
    if (ad_tensor_dtype(target) != AD_I64) {
        ad_tape_set_error(tape, AD_ERR_DTYPE,
                          "%s: target is %s %s, not int64 (class indices) for input of shape %s",
                          loss, ad_dtype_name(ad_tensor_dtype(target)),
                          shape_of(ts, sizeof ts, target), shape_of(is, sizeof is, input));
        return false;
    }
    bool fits = in_ndim >= 1 && t_ndim == in_ndim - 1;
    for (int i = 0; fits && i < t_ndim; i++)
        fits = t_shape[i] == in_shape[i == 0 ? 0 : i + 1];
    if (!fits) {
        ad_tape_set_error(tape, AD_ERR_SHAPE,
                          "%s: target of shape %s for input of shape %s (expected input [N, C, "
                          "d...] and target [N, d...], or [C] and [])",
                          loss, shape_of(ts, sizeof ts, target), shape_of(is, sizeof is, input));
        return false;
    }
    r->input = input;
    if (in_ndim == 1) {
        r->input = ad_reshape(input, 2, (int64_t[]){1, in_shape[0]});
        if (!r->input)
            return false;
    }
    const int64_t *shape = ad_tensor_shape(r->input);
    r->ndim = ad_tensor_ndim(r->input) - 1;
    r->classes = shape[1];
    r->shape[0] = shape[0];
    int64_t index_shape[AD_MAX_DIMS] = {shape[0], 1};
    for (int i = 1; i < r->ndim; i++)
        r->shape[i] = index_shape[i + 1] = shape[i + 1];
    ad_tensor *w = o->weight;
    if (w && (ad_tensor_dtype(w) != ad_tensor_dtype(input) || ad_tensor_ndim(w) != 1 ||
              ad_tensor_shape(w)[0] != r->classes)) {
        ad_tape_set_error(
            tape, ad_tensor_dtype(w) != ad_tensor_dtype(input) ? AD_ERR_DTYPE : AD_ERR_SHAPE,
            "%s: weight is %s %s for input %s %s (expected [C] of its dtype)", loss,
            ad_dtype_name(ad_tensor_dtype(w)), shape_of(ts, sizeof ts, w),
            ad_dtype_name(ad_tensor_dtype(input)), shape_of(is, sizeof is, input));
        return false;
    }
    int64_t n = ad_tensor_numel(target);
    tape = ad_tensor_tape(r->input);
    r->flat_index = ad_tape_tensor(tape, AD_I64, 1, &n, NULL);
    r->kept = ad_tape_tensor(tape, AD_BOOL, r->ndim, r->shape, NULL);
    if (!r->flat_index || !r->kept)
        return false;
    const int64_t *y = ad_tensor_data(target);
    int64_t *index = ad_tensor_data(r->flat_index);
    bool *kept = ad_tensor_data(r->kept);
    r->count = 0;
    for (int64_t i = 0; i < n; i++) {
        kept[i] = y[i] != o->ignore_index;
        if (kept[i] && (y[i] < 0 || y[i] >= r->classes)) {
            ad_tape_set_error(tape, AD_ERR_ARG,
                              "%s: target %lld (flat index %lld of target %s) out of range [0, "
                              "%lld) for input of shape %s (ignore_index %lld)",
                              loss, (long long)y[i], (long long)i, shape_of(ts, sizeof ts, target),
                              (long long)r->classes, shape_of(is, sizeof is, input),
                              (long long)o->ignore_index);
            return false;
        }
        index[i] = kept[i] ? y[i] : 0;
        r->count += kept[i];
    }
    r->index = ad_tape_tensor(tape, AD_I64, r->ndim + 1, index_shape, index);
    return r->index != NULL;
}

/* Shared by both losses: -w[y] log_probs[y] per element (0 where ignored),
 * reduced; *denominator gets the mean's divisor (NULL: the count). */
static ad_tensor *nll(ad_tensor *log_probs, const targets *r, const ad_nn_class_loss_opts *o,
                      ad_tensor **denominator)
{
    ad_tensor *zero = scalar_like(log_probs, 0);
    ad_tensor *picked = ad_reshape(ad_gather_tensor(log_probs, 1, r->index), r->ndim, r->shape);
    ad_tensor *weight = NULL;
    *denominator = NULL;
    if (o->weight) {
        weight = ad_reshape(ad_index_select_tensor(o->weight, 0, r->flat_index), r->ndim, r->shape);
        picked = ad_mul(picked, weight);
        if (o->reduction == AD_REDUCE_MEAN)
            *denominator = ad_sum_all(ad_where(r->kept, weight, zero));
    }
    /* where, not a product with the mask: an ignored row's -inf stays out. */
    return ad_neg(ad_where(r->kept, picked, zero));
}

static ad_tensor *reduce_classes(ad_tensor *x, ad_reduction reduction, ad_tensor *denominator,
                                 int64_t count)
{
    if (reduction == AD_REDUCE_NONE)
        return x;
    ad_tensor *sum = ad_sum_all(x);
    if (reduction == AD_REDUCE_SUM)
        return sum;
    /* All ignored: 0 / 0, NaN, as torch. */
    return denominator ? ad_div(sum, denominator) : ad_div_scalar(sum, (double)count);
}

/* A [C] input gives a 0-d result without reduction, as torch. */
static ad_tensor *shape_result(ad_tensor *loss, const ad_tensor *input)
{
    return ad_tensor_ndim(input) == 1 && ad_tensor_ndim(loss) == 1 ? ad_reshape(loss, 0, NULL)
                                                                   : loss;
}

ad_tensor *ad_nn_nll_loss(ad_tensor *log_probs, const ad_tensor *target,
                          const ad_nn_class_loss_opts *opts)
{
    ad_nn_class_loss_opts o = opts ? *opts : ad_nn_class_loss_defaults();
    if (!log_probs || !target)
        return NULL;
    ad_tape *tape = tape_of(log_probs, target);
    if (!reduction_ok(tape, "nll_loss", o.reduction, false))
        return NULL;
    if (o.label_smoothing != 0) {
        ad_tape_set_error(tape, AD_ERR_ARG,
                          "nll_loss: label_smoothing %g given (only cross_entropy smooths)",
                          o.label_smoothing);
        return NULL;
    }
    targets r;
    if (!read_targets("nll_loss", log_probs, target, &o, &r))
        return NULL;
    ad_tensor *denominator;
    ad_tensor *loss = nll(r.input, &r, &o, &denominator);
    return shape_result(reduce_classes(loss, o.reduction, denominator, r.count), log_probs);
}

// (1 - eps) nll + (eps / C) sum_c(-w_c log p_c), per element, 0 where ignored
ad_tensor *ad_nn_cross_entropy_tensor(ad_tensor *logits, const ad_tensor *target,
                                      const ad_nn_class_loss_opts *opts)
{
    ad_nn_class_loss_opts o = opts ? *opts : ad_nn_class_loss_defaults();
    if (!logits || !target)
        return NULL;
    ad_tape *tape = tape_of(logits, target);
    if (!reduction_ok(tape, "cross_entropy", o.reduction, false))
        return NULL;
    double eps = o.label_smoothing;
    if (!(eps >= 0 && eps <= 1)) {
        ad_tape_set_error(tape, AD_ERR_ARG, "cross_entropy: label_smoothing %g not in [0, 1]", eps);
        return NULL;
    }
    targets r;
    if (!read_targets("cross_entropy", logits, target, &o, &r))
        return NULL;
    int64_t n = ad_tensor_numel(target);
    if (!o.weight && eps == 0 && o.reduction == AD_REDUCE_MEAN && ad_tensor_ndim(logits) == 2 &&
        r.count == n && n > 0)
        return ad_cross_entropy_tensor(logits, target);
    ad_tensor *log_probs = ad_log_softmax(r.input, 1);
    ad_tensor *denominator;
    ad_tensor *loss = nll(log_probs, &r, &o, &denominator);
    loss = reduce_classes(loss, o.reduction, denominator, r.count);
    if (eps > 0) {
        /* torch 1.13 (cross_entropy_loss_label_smoothing): the smoothing term is
         * weighted per class, masked where ignored, and its mean divided by
         * the same sum of w[y] as nll's. */
        ad_tensor *weighted = log_probs;
        if (o.weight) {
            int64_t view[AD_MAX_DIMS];
            for (int i = 0; i <= r.ndim; i++)
                view[i] = i == 1 ? r.classes : 1;
            weighted = ad_mul(log_probs, ad_reshape(o.weight, r.ndim + 1, view));
        }
        int axis = 1;
        ad_tensor *smooth = ad_neg(ad_sum(weighted, 1, &axis, false));
        smooth = ad_where(r.kept, smooth, scalar_like(log_probs, 0));
        smooth = reduce_classes(smooth, o.reduction, denominator, r.count);
        loss = ad_add(ad_mul_scalar(loss, 1 - eps), ad_mul_scalar(smooth, eps / (double)r.classes));
    }
    return shape_result(loss, logits);
}

ad_tensor *ad_nn_cross_entropy(ad_tensor *logits, size_t n, const int64_t *targets,
                               double label_smoothing, ad_reduction reduction)
{
    if (!logits)
        return NULL;
    ad_tape *tape = ad_tensor_tape(logits);
    /* [0, 1) as before the tensor form, which takes torch's [0, 1]. */
    if (!(label_smoothing >= 0 && label_smoothing < 1)) {
        ad_tape_set_error(tape, AD_ERR_ARG, "cross_entropy: label_smoothing %g not in [0, 1)",
                          label_smoothing);
        return NULL;
    }
    if (n && !targets) {
        ad_tape_set_error(tape, AD_ERR_ARG, "cross_entropy: targets is NULL for %zu rows", n);
        return NULL;
    }
    int64_t length = (int64_t)n;
    ad_tensor *target = ad_tape_tensor(tape, AD_I64, 1, &length, targets);
    ad_nn_class_loss_opts o = ad_nn_class_loss_defaults();
    o.label_smoothing = label_smoothing;
    o.reduction = reduction;
    o.ignore_index = INT64_MIN; /* the C-array form has no ignore_index */
    return ad_nn_cross_entropy_tensor(logits, target, &o);
}
