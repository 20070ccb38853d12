/* Layer kernels over T (float or double), instantiated by kernels.h from
 * layers.c. (Pooling and convolution are ops now: src/ops/conv_kernels.h.) */

// mask[i] = 0 with probability p, else keep = 1 / (1 - p), one uniform draw
// per element in row-major order.
// mask: (numel)
static void K(dropout_mask)(int64_t numel, T *restrict mask, double p, double keep, ad_rng *rng)
{
    for (int64_t i = 0; i < numel; i++)
        mask[i] = ad_rng_uniform(rng) < p ? (T)0 : (T)keep;
}
