/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * matmul loops over every batch even when the matrices are empty: 2^40
 * iterations that do nothing (a hang; src/ops/linalg.c ad__matmul_forward). */
#include <autodiff/autodiff.h>
#include <stdio.h>
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    /* a: 2^40 batches of empty 0 x 3 matrices; b: one 3 x 2 matrix, broadcast */
    ad_tensor *a = ad_tape_tensor(tape, AD_F32, 4, (int64_t[]){1 << 20, 1 << 20, 0, 3}, NULL);
    ad_tensor *b = ad_full(tape, AD_F32, 4, (int64_t[]){1, 1, 3, 2}, 1.0);
    ad_tensor *y = ad_matmul(a, b); /* loops 2^40 times over nothing */
    printf("%p %s\n", (void *)y, ad_tape_message(tape));
    ad_tape_free(tape);
    return 0;
}
