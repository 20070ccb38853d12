/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * ad_reshape of a 0-d tensor to 0-d: copying the empty shape takes 16 bytes of
 * arena; when that fails the tape records AD_ERR_NOMEM, but the op still
 * returns x (src/ops/shape.c: the NULL check is skipped for ndim 0). */
#include <autodiff/autodiff.h>
#include <stdio.h>
#include <stdlib.h>
static int fail; /* from now on every allocation fails */
static void *may_fail(size_t n, void *c)
{
    (void)c;
    return fail ? NULL : malloc(n);
}
static void release(void *p, void *c)
{
    (void)c;
    free(p);
}
int main(void)
{
    ad_tape *tape;
    ad_tape_create_with(&tape, &(ad_allocator){may_fail, release, NULL});
    ad_tensor *x = ad_scalar(tape, 1.0), *y;
    fail = 1;
    do                              /* each reshape takes 16 bytes of arena; at the */
        y = ad_reshape(x, 0, NULL); /* end of the block, the copy fails */
    while (ad_tape_status(tape) == AD_OK);
    printf("returned %p (x %p) with error: %s\n", (void *)y, (void *)x, ad_tape_message(tape));
    fail = 0;
    ad_tape_free(tape);
    return 0;
}
