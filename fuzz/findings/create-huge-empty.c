/* An engine finding of fuzz/fuzz_ops.c (docs/fuzzing.md).
 *
 * A shape with a 0 among dims whose product passes 2^60 has no elements, but
 * ad_tensor_create says AD_ERR_NOMEM (nothing ran out of memory) and
 * ad_tape_tensor refuses it as "too many elements" (tensor.c). */
#include <autodiff/autodiff.h>
#include <stdio.h>
int main(void)
{
    ad_tensor *t;
    ad_status s =
        ad_tensor_create(&t, AD_F32, 3, (int64_t[]){(int64_t)1 << 31, (int64_t)1 << 31, 0}, false);
    printf("persistent [2^31, 2^31, 0]: %s\n", ad_status_string(s)); /* out of memory */
    ad_tape *tape;
    ad_tape_create(&tape);
    ad_tensor *u =
        ad_tape_tensor(tape, AD_F32, 3, (int64_t[]){(int64_t)1 << 31, (int64_t)1 << 31, 0}, NULL);
    printf("tape [2^31, 2^31, 0]: %p %s\n", (void *)u, ad_tape_message(tape)); /* shape error */
    ad_tape_free(tape);
    if (s == AD_OK)
        ad_tensor_free(t);
    return 0;
}
