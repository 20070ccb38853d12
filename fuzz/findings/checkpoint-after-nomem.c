/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * After an allocation of a new arena block fails, tape->current is left NULL;
 * a later ad_checkpoint's arena mark records block NULL, which
 * ad__arena_release reads as "nothing was allocated" and rewinds the whole
 * first block: live tensors are overwritten (x becomes NaN) and the checkpoint
 * returns NULL with the tape's status OK (tape.c). */
#include <autodiff/autodiff.h>
#include <stdio.h>
#include <stdlib.h>
/* malloc, refusing blocks above 1 MB (a machine short of memory) */
static void *capped(size_t n, void *c)
{
    (void)c;
    return n > (1 << 20) ? NULL : malloc(n);
}
static void release(void *p, void *c)
{
    (void)c;
    free(p);
}
static ad_tensor *f(ad_tape *t, size_t n, ad_tensor *const *in, void *c)
{
    (void)t, (void)n, (void)c;
    return ad_tanh(in[0]);
}
int main(void)
{
    ad_tape *tape;
    ad_tape_create_with(&tape, &(ad_allocator){capped, release, NULL});
    ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, 1, (int64_t[]){4}, 0.5));
    ad_tape_tensor(tape, AD_F64, 1, (int64_t[]){1 << 20}, NULL); /* 8 MB: AD_ERR_NOMEM, and the */
    ad_tape_clear_error(tape);                                  /* arena's current block is lost */
    ad_tensor *y = ad_checkpoint(f, NULL, 1, &x);               /* marks "nothing allocated yet" */
    printf("x[0] = %g (was 0.5), y = %p, tape: %s\n", ad_tensor_get(x, 0), (void *)y,
           ad_status_string(ad_tape_status(tape)));
    ad_tape_free(tape);
    return 0;
}
