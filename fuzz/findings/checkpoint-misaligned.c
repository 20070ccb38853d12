/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * The backward of a checkpoint keeps the input gradients in one block, each
 * tensor's int64 dims right after the previous one's data: after 3 floats (12
 * bytes) the next dims are misaligned (UBSan in check_shape, tensor.c:53,
 * reached from restore in checkpoint.c). */
#include <autodiff/autodiff.h>
#include <stdio.h>
static ad_tensor *f(ad_tape *t, size_t n, ad_tensor *const *in, void *c)
{
    (void)t, (void)n, (void)c;
    return ad_mul(ad_tanh(in[0]), in[1]);
}
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_tensor *in[2] = {
        ad_requires_grad(ad_full(tape, AD_F32, 1, (int64_t[]){3}, 0.5)), /* 12 bytes */
        ad_requires_grad(ad_full(tape, AD_F32, 1, (int64_t[]){1}, 2.0))};
    ad_tensor *y = ad_sum_all(ad_checkpoint(f, NULL, 2, in));
    ad_status s = ad_backward(
        y, NULL); /* keeps both gradients in one block: the second's dims land 4 bytes off */
    printf("%s\n", ad_status_string(s));
    ad_tape_free(tape);
    return 0;
}
