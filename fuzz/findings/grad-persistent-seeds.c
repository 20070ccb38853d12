/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * ad_grad with one output given twice and persistent seeds: the two seeds are
 * added with ad_add, which returns NULL for two persistent tensors, and the
 * sweep reports AD_ERR_NOMEM with no message (backward.c, accumulate). */
#include <autodiff/autodiff.h>
#include <stdio.h>
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_tensor *p;
    ad_tensor_create(&p, AD_F64, 0, NULL, true);       /* persistent scalar */
    ad_tensor *x = ad_tape_use(tape, p);               /* its view on the tape */
    ad_tensor *out[2] = {x, x}, *seed[2] = {p, p}, *g; /* one output twice, persistent seeds */
    ad_status s = ad_grad(2, out, seed, 1, &x, &g, NULL);
    printf("status %s, tape %s: \"%s\"\n", ad_status_string(s),
           ad_status_string(ad_tape_status(tape)), ad_tape_message(tape));
    ad_tape_free(tape);
    ad_tensor_free(p);
    return 0;
}
