/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * Shapes of no elements with huge dims: matmul's batch_strides multiplies the
 * matrix dims, 2^40 * 2^40, and overflows int64 (UBSan, src/ops/linalg.c:177). */
#include <autodiff/autodiff.h>
#include <stdio.h>
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    /* x [0, 1, 2^40]: no elements; x^T x is [0, 2^40, 2^40], no elements either */
    ad_tensor *x = ad_tape_tensor(tape, AD_F32, 3, (int64_t[]){0, 1, (int64_t)1 << 40}, NULL);
    ad_tensor *y = ad_matmul_t(x, x, true, false);
    ad_tensor *z = ad_matmul(y, y); /* batch_strides: 2^40 * 2^40 overflows int64 */
    printf("%p %p %s\n", (void *)y, (void *)z, ad_tape_message(tape));
    ad_tape_free(tape);
    return 0;
}
