/* Caller-owned random numbers (xoshiro256**) and torch.nn.init-style weight
 * initialisers. Uses only the public API. */
#include "autodiff/nn.h"

#include <math.h>

/* Not M_PI: c_std=c11 hides it. */
static const double two_pi = 6.283185307179586476925286766559;

/* ---- Generator ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ad_rng_seed(ad_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
    /* splitmix64 is a bijection of its counter, so four zero outputs in a row
     * cannot happen; keep the guard anyway, the all-zero state is absorbing. */
    if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]))
        rng->s[0] = 0x9e3779b97f4a7c15ull;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t ad_rng_next(ad_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ad_rng_uniform(ad_rng *rng)
{
    /* The top 53 bits scaled by 2^-53: every value is exact, 1.0 is never hit. */
    return (double)(ad_rng_next(rng) >> 11) * 0x1.0p-53;
}

double ad_rng_normal(ad_rng *rng)
{
    /* 1 - u lies in (0, 1], so the log is finite. */
    double u1 = 1.0 - ad_rng_uniform(rng);
    double u2 = ad_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}

uint64_t ad_rng_below(ad_rng *rng, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the lowest (2^64 mod n) values so the rest split evenly into n
     * classes; fewer than half are rejected for any n. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t r = ad_rng_next(rng);
        if (r >= threshold)
            return r % n;
    }
}

void ad_rng_shuffle(ad_rng *rng, int64_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ad_rng_below(rng, (uint64_t)i);
        int64_t tmp = v[i - 1];
        v[i - 1] = v[j];
        v[j] = tmp;
    }
}

/* ---- Initialisers --------------------------------------------------------- */

/* A persistent float tensor to fill in place. */
static bool fillable(const ad_tensor *t)
{
    if (!t || ad_tensor_tape(t) || !ad_tensor_data(t))
        return false;
    switch (ad_tensor_dtype(t)) {
    case AD_F32:
    case AD_F64:
        return true; /* fill has a kernel for it */
    case AD_I64:
    case AD_BOOL:
        return false;
    }
    return false;
}

ad_status ad_init_fans(const ad_tensor *t, int64_t *fan_in, int64_t *fan_out)
{
    if (!t || ad_tensor_ndim(t) < 2)
        return AD_ERR_ARG;
    const int64_t *shape = ad_tensor_shape(t);
    int64_t receptive = 1;
    for (int i = 2; i < ad_tensor_ndim(t); i++)
        receptive *= shape[i];
    if (fan_in)
        *fan_in = shape[1] * receptive;
    if (fan_out)
        *fan_out = shape[0] * receptive;
    return AD_OK;
}

typedef enum { UNIFORM, NORMAL } distribution;

#define KERNELS "nn/init_kernels.h"
#include "../core/kernels.h"

/* Fills t with lo + (hi - lo) * u (UNIFORM) or a + b * z (NORMAL), row-major. */
static void fill(ad_tensor *t, distribution kind, double a, double b, ad_rng *rng)
{
    int64_t n = ad_tensor_numel(t);
    switch (ad_tensor_dtype(t)) {
    case AD_F32:
        fill_f32(n, ad_tensor_data(t), kind, a, b, rng);
        break;
    case AD_F64:
        fill_f64(n, ad_tensor_data(t), kind, a, b, rng);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

ad_status ad_init_uniform(ad_tensor *t, double lo, double hi, ad_rng *rng)
{
    if (!fillable(t) || !rng || !isfinite(lo) || !isfinite(hi) || lo > hi)
        return AD_ERR_ARG;
    fill(t, UNIFORM, lo, hi, rng);
    return AD_OK;
}

ad_status ad_init_normal(ad_tensor *t, double mean, double std, ad_rng *rng)
{
    if (!fillable(t) || !rng || !isfinite(mean) || !isfinite(std) || std < 0)
        return AD_ERR_ARG;
    fill(t, NORMAL, mean, std, rng);
    return AD_OK;
}

/* Checks t and rng and gets the fans; *empty is set for a tensor with no
 * elements, which PyTorch leaves alone (its fans may be 0). */
static ad_status fans_for(const ad_tensor *t, const ad_rng *rng, double *fan_in, double *fan_out,
                          bool *empty)
{
    int64_t in, out;
    if (!fillable(t) || !rng || ad_init_fans(t, &in, &out) != AD_OK)
        return AD_ERR_ARG;
    *empty = ad_tensor_numel(t) == 0;
    *fan_in = (double)in;
    *fan_out = (double)out;
    return AD_OK;
}

ad_status ad_init_xavier_uniform(ad_tensor *t, ad_rng *rng)
{
    double fan_in, fan_out;
    bool empty;
    ad_status st = fans_for(t, rng, &fan_in, &fan_out, &empty);
    if (st != AD_OK || empty)
        return st;
    double bound = sqrt(6.0 / (fan_in + fan_out));
    fill(t, UNIFORM, -bound, bound, rng);
    return AD_OK;
}

ad_status ad_init_xavier_normal(ad_tensor *t, ad_rng *rng)
{
    double fan_in, fan_out;
    bool empty;
    ad_status st = fans_for(t, rng, &fan_in, &fan_out, &empty);
    if (st != AD_OK || empty)
        return st;
    fill(t, NORMAL, 0.0, sqrt(2.0 / (fan_in + fan_out)), rng);
    return AD_OK;
}

ad_status ad_init_kaiming_uniform(ad_tensor *t, ad_rng *rng)
{
    double fan_in, fan_out;
    bool empty;
    ad_status st = fans_for(t, rng, &fan_in, &fan_out, &empty);
    if (st != AD_OK || empty)
        return st;
    /* gain sqrt(2) for relu: bound = gain * sqrt(3 / fan_in) = sqrt(6 / fan_in) */
    double bound = sqrt(2.0) * sqrt(3.0 / fan_in);
    fill(t, UNIFORM, -bound, bound, rng);
    return AD_OK;
}

ad_status ad_init_kaiming_normal(ad_tensor *t, ad_rng *rng)
{
    double fan_in, fan_out;
    bool empty;
    ad_status st = fans_for(t, rng, &fan_in, &fan_out, &empty);
    if (st != AD_OK || empty)
        return st;
    fill(t, NORMAL, 0.0, sqrt(2.0) / sqrt(fan_in), rng);
    return AD_OK;
}
