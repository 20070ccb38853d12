/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * An op given a handle that ad_tape_reset made stale reads the tape pointer
 * out of arena memory now holding other data: UBSan/ASan report a wild read in
 * usable_tape (src/ops/shape.c), a crash without sanitizers. (With the memory
 * holding another tensor instead, the handle silently aliases it.) */
#include <autodiff/autodiff.h>
#include <stdio.h>
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_full(tape, AD_F64, 1, (int64_t[]){64}, 0.0);
    ad_tensor *x = ad_full(tape, AD_F32, 2, (int64_t[]){2, 3}, 1.0); /* after 512 bytes of data */
    ad_tape_reset(tape);                                             /* x is now stale */
    ad_full(tape, AD_F64, 1, (int64_t[]){256}, 1e-300);              /* its header is overwritten */
    ad_tensor *y = ad_index_add(x, 0, 4, 1, (int64_t[]){0});         /* reads x->tape->status */
    printf("%p %s\n", (void *)y, ad_tape_message(tape));
    ad_tape_free(tape);
    return 0;
}
