/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * ad_slice_scatter (and ad_index_add) take a length of INT64_MAX beside an
 * empty dim: the result [0, INT64_MAX, 6] has no elements, but the strides of
 * a reduction over it overflow int64 (UBSan in ad__strides, tensor.c:32, from
 * ad__reduce_plan_make). */
#include <autodiff/autodiff.h>
#include <stdint.h>
#include <stdio.h>
int main(void)
{
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_tensor *x = ad_tape_tensor(tape, AD_F32, 3, (int64_t[]){0, 1, 6}, NULL);
    ad_tensor *y = ad_slice_scatter(x, 1, INT64_MAX, 0, 1); /* [0, INT64_MAX, 6] */
    ad_tensor *s = ad_sum_all(y);                           /* INT64_MAX * 6 */
    printf("%p %p %s\n", (void *)y, (void *)s, ad_tape_message(tape));
    ad_tape_free(tape);
    return 0;
}
