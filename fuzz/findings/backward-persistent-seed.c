/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * A persistent tensor as ad_backward's seed: a backward rule that passes the
 * seed on to two uses makes the sweep add it to itself with ad_add, which
 * returns NULL for two persistent tensors, and the sweep reports AD_ERR_NOMEM
 * with no message (backward.c, accumulate). A tape leaf's gradient becomes
 * the seed itself (the user's tensor), and a second backward then loses it:
 * status OK, gradient NULL (backward.c, deliver). */
#include <autodiff/autodiff.h>
#include <stdio.h>
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_tensor *p;
    ad_tensor_create(&p, AD_F64, 0, NULL, false); /* a persistent seed */
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 1.0));
    ad_backward_opts opts = {.seed = p, .retain_graph = true};
    ad_status s = ad_backward(ad_add(x, x), &opts); /* seed + seed */
    printf("x + x: %s, tape %s: \"%s\"\n", ad_status_string(s),
           ad_status_string(ad_tape_status(tape)), ad_tape_message(tape));
    ad_tape_clear_error(tape);
    ad_backward(x, &opts);
    printf("x: gradient %p, the seed %p\n", (void *)ad_tensor_grad(x), (void *)p);
    s = ad_backward(x, &opts); /* seed + seed again: the gradient is lost */
    printf("x again: %s, gradient %p\n", ad_status_string(s), (void *)ad_tensor_grad(x));
    ad_tape_free(tape);
    ad_tensor_free(p);
    return 0;
}
