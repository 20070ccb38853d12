/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * With grad disabled, ad_checkpoint returns f's NULL as it is, with no error
 * on the tape; with grad enabled the same call reports AD_ERR_NULL
 * (checkpoint.c). */
#include <autodiff/autodiff.h>
#include <stdio.h>
static ad_tensor *f(ad_tape *t, size_t n, ad_tensor *const *in, void *c)
{
    (void)t, (void)n, (void)c;
    return ad_tanh(in[0]);
}
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_tensor *p;
    ad_tensor_create(&p, AD_F64, 0, NULL, true);
    ad_tensor *in[2] = {p, ad_scalar(tape, 1.0)}; /* f gives NULL: tanh of a persistent */
    ad_tape_set_grad_enabled(tape, false);
    ad_tensor *y = ad_checkpoint(f, NULL, 2, in);
    printf("no grad: %p, tape %s\n", (void *)y, ad_status_string(ad_tape_status(tape)));
    ad_tape_set_grad_enabled(tape, true);
    y = ad_checkpoint(f, NULL, 2, in);
    printf("grad:    %p, tape %s\n", (void *)y, ad_status_string(ad_tape_status(tape)));
    ad_tape_free(tape);
    ad_tensor_free(p);
    return 0;
}
