/* float32 exp, sigmoid and tanh in float arithmetic with no libm call, so
 * that the loops over them vectorise (libm's expf and tanhf are called one
 * element at a time, and were a quarter of an LSTM step). Each is within a
 * few ulps of the correctly rounded value (test_ops checks 4 ulps over the
 * float range), keeps NaN, and gives the limits at +-inf. Used by unary.c's
 * float32 sigmoid and tanh; float64 keeps libm. */
#ifndef AD_OPS_FAST_FLOAT_H
#define AD_OPS_FAST_FLOAT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* 2^k for k in [-126, 127], from the exponent bits. */
static inline float ad__pow2f(int32_t k)
{
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* e^x: x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor polynomial to
 * degree 7 (truncation below 1e-8 relative), times 2^n as two factors so
 * that results down to the smallest subnormal come out right. */
static inline float ad__expf(float x)
{
    const float hi = 88.7228394f, lo = -103.972084f;
    float xc = x != x ? 0.0f : x > hi ? hi : x < lo ? lo : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (xc * 1.44269504f + shifter) - shifter;
    float r = (xc - n * 0.693145752f) - n * 1.42860677e-6f; /* ln 2 in two parts */
    float p = 1.0f +
              r * (1.0f + r * (0.5f + r * (1.66666672e-1f +
                                           r * (4.16666679e-2f +
                                                r * (8.33333377e-3f +
                                                     r * (1.38888892e-3f + r * 1.98412701e-4f))))));
    int32_t k = (int32_t)n, k1 = k / 2;
    float y = p * ad__pow2f(k1) * ad__pow2f(k - k1);
    return x != x ? x : x > hi ? INFINITY : x < lo ? 0.0f : y;
}

/* 1 / (1 + e^-x), from e = e^-|x| <= 1 so nothing overflows. */
static inline float ad__sigmoidf(float x)
{
    float e = ad__expf(-fabsf(x));
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* tanh: its odd Taylor series to x^17 below |x| = 0.55 (where 1 - 2 / (e^2x
 * + 1) would cancel digits), that formula above; the sign of x kept (-0 too). */
static inline float ad__tanhf(float x)
{
    float a = fabsf(x), z = a * a;
    float series =
        a + a * z *
                (-3.33333343e-1f +
                 z * (1.33333340e-1f +
                      z * (-5.39682545e-2f +
                           z * (2.18694881e-2f +
                                z * (-8.86323582e-3f +
                                     z * (3.59212793e-3f +
                                          z * (-1.45583437e-3f + z * 5.90027426e-4f)))))));
    float far = 1.0f - 2.0f / (ad__expf(2.0f * a) + 1.0f);
    return copysignf(a < 0.55f ? series : far, x);
}

#endif
