/* Losses: compositions of core ops (cross-entropy without smoothing is the
 * fused core op, for its stable one-pass forward). */
#include "autodiff/layers.h"

static ad_tensor *reduce(ad_tensor *x, ad_reduction reduction)
{
    return reduction == AD_REDUCE_SUM ? ad_sum_all(x) : ad_mean_all(x);
}

// mean or sum of (a - b)^2
ad_tensor *ad_nn_mse_loss(ad_tensor *a, ad_tensor *b, ad_reduction reduction)
{
    return reduce(ad_square(ad_sub(a, b)), reduction);
}

// (1 - eps) nll + eps mean_c(-log p_c), per row, then reduced
ad_tensor *ad_nn_cross_entropy(ad_tensor *logits, size_t n, const int64_t *targets,
                               double label_smoothing, ad_reduction reduction)
{
    if (!logits)
        return NULL;
    ad_tape *tape = ad_tensor_tape(logits);
    if (!(label_smoothing >= 0 && label_smoothing < 1)) {
        ad_tape_set_error(tape, AD_ERR_ARG, "cross_entropy: label_smoothing %g not in [0, 1)",
                          label_smoothing);
        return NULL;
    }
    ad_tensor *mean_loss = ad_cross_entropy(logits, n, targets);
    if (!mean_loss)
        return NULL;
    ad_tensor *loss = mean_loss;
    if (label_smoothing > 0) {
        /* mean over rows of mean over classes of -log_softmax */
        ad_tensor *logp = ad_log_softmax(logits, 1);
        ad_tensor *uniform = ad_neg(ad_mean_all(logp));
        loss = ad_add(ad_mul_scalar(mean_loss, 1.0 - label_smoothing),
                      ad_mul_scalar(uniform, label_smoothing));
    }
    if (reduction != AD_REDUCE_SUM)
        return loss;
    /* An empty batch sums to 0 (the mean is NaN there, as PyTorch's); the sum
     * of logits [0, C] is that 0, with a gradient of the right shape. */
    return n ? ad_mul_scalar(loss, (double)n) : ad_sum_all(logits);
}

// softplus(x) - x t: log(1 + e^x) - x t, stable for large |x|
ad_tensor *ad_nn_binary_cross_entropy_with_logits(ad_tensor *logits, ad_tensor *targets,
                                                  ad_reduction reduction)
{
    return reduce(ad_sub(ad_softplus(logits), ad_mul(logits, targets)), reduction);
}
