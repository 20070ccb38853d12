/* IDX kernels over T (float or double), instantiated by kernels.h from data.c. */

// out[i, k] = pixels[indices[i], k] / 255 in T: for float32 as torchvision's
// ToTensor, float(x) / 255 in single precision.
// pixels: (images, size) bytes; indices: (count); out: (count, size)
static void K(gather_images)(const uint8_t *restrict pixels, int64_t size,
                             const int64_t *restrict indices, int64_t count, T *restrict out)
{
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *src = pixels + indices[i] * size;
        for (int64_t k = 0; k < size; k++)
            out[i * size + k] = (T)src[k] / (T)255;
    }
}
