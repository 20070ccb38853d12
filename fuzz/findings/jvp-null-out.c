/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * The transforms given NULL for their results (ad_jvp's out, ad_grad's grads,
 * ...) return AD_ERR_ARG with no message anywhere (forward.c, backward.c). */
#include <autodiff/autodiff.h>
#include <stdio.h>
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 1.0)), *y = ad_exp(x),
              *one = ad_scalar(tape, 1.0);
    ad_status s = ad_jvp(1, &y, 1, &x, &one, NULL, NULL); /* out is NULL */
    printf("%s, tape %s: \"%s\"\n", ad_status_string(s), ad_status_string(ad_tape_status(tape)),
           ad_tape_message(tape));
    ad_tape_free(tape);
    return 0;
}
