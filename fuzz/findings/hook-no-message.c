/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * ad_tensor_register_hook on a tensor that does not require grad returns
 * AD_ERR_NO_GRAD (and AD_ERR_ARG for a persistent tensor or NULL fn) with no
 * message anywhere (hooks.c); AD_ERR_FREED goes through the tape. */
#include <autodiff/autodiff.h>
#include <stdio.h>
static ad_tensor *hook(ad_tensor *t, ad_tensor *g, void *ctx)
{
    (void)t, (void)ctx;
    return g;
}
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_tensor *x = ad_scalar(tape, 1.0); /* does not require grad */
    ad_status s = ad_tensor_register_hook(x, hook, NULL, NULL);
    printf("%s, tape %s: \"%s\"\n", ad_status_string(s), ad_status_string(ad_tape_status(tape)),
           ad_tape_message(tape)); /* no message anywhere */
    ad_tape_free(tape);
    return 0;
}
