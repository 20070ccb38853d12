/* The numeric loops of the unary ops (unary.c), in the order of the ops,
 * written once over T and instantiated for float and double by kernels.h.
 * <tgmath.h> (included by unary.c) makes exp(x) call expf for a float x.
 *
 * A forward kernel is y = f(x) over n elements, with p the op's scalar
 * parameter (leaky_relu's slope, pow_scalar's exponent; unused by the rest),
 * so that every forward has one signature and unary.c dispatches them in one
 * place. Each computes the expression in T, as (T)(expr), so float ops stay
 * float arithmetic except where a double constant says otherwise (gelu).
 *
 * A fused gradient kernel is dx = g(v, dy), v being x or y as its rule needs;
 * it evaluates the composed rule's expression in the same order, so the two
 * give the same bits (test_ops checks it). Not include-guarded: see kernels.h. */

// neg: y = -x; x, y: (n)
static void K(neg)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(-x[i]);
}

// exp: y = e^x; x, y: (n)
static void K(exp)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)exp(x[i]);
}

// log: y = ln x; x, y: (n)
static void K(log)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)log(x[i]);
}

// log1p: y = ln(1 + x); x, y: (n)
static void K(log1p)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)log1p(x[i]);
}

// expm1: y = e^x - 1; x, y: (n)
static void K(expm1)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)expm1(x[i]);
}

// sqrt: y = sqrt(x); x, y: (n)
static void K(sqrt)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)sqrt(x[i]);
}

// square: y = x x; x, y: (n)
static void K(square)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] * x[i]);
}

// sin: y = sin x; x, y: (n)
static void K(sin)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)sin(x[i]);
}

// cos: y = cos x; x, y: (n)
static void K(cos)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)cos(x[i]);
}

// tanh: y = tanh x; x, y: (n)
static void K(tanh)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)tanh(x[i]);
}

// tanh's fused gradient: dx = dy (1 - y^2); y, dy, dx: (n)
static void K(tanh_grad)(int64_t n, const T *restrict y, const T *restrict dy, T *restrict dx)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = (T)(dy[i] * ((T)1 - y[i] * y[i]));
}

// sigmoid: y = 1 / (1 + e^-x), never exp of a large positive number; x, y: (n)
static void K(sigmoid)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] >= 0 ? 1 / (1 + exp(-x[i])) : exp(x[i]) / (1 + exp(x[i])));
}

// sigmoid's fused gradient: dx = dy (y (1 - y)); y, dy, dx: (n)
static void K(sigmoid_grad)(int64_t n, const T *restrict y, const T *restrict dy, T *restrict dx)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = (T)(dy[i] * (y[i] * ((T)1 - y[i])));
}

// relu: y = x < 0 ? 0 : x (so relu(-0) = -0); x, y: (n)
static void K(relu)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] < 0 ? 0 : x[i]);
}

// relu's fused gradient: dx = dy [not x <= 0], the int converted to T (no branch);
// x, dy, dx: (n)
static void K(relu_grad)(int64_t n, const T *restrict x, const T *restrict dy, T *restrict dx)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = (T)(dy[i] * ((T)0 + !(x[i] <= 0)));
}

// relu's mask for the composed rule: m = 1 where x > 0 or x is NaN, else 0; x, m: (n)
static void K(relu_mask)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] > 0 || x[i] != x[i] ? (T)1 : (T)0;
}

// leaky_relu: y = x > 0 ? x : x slope; x, y: (n)
static void K(leaky_relu)(int64_t n, const T *restrict x, T *restrict y, T slope)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] > 0 ? x[i] : x[i] * slope);
}

// leaky_relu's mask: m = 1 where x > 0, else slope; x, m: (n)
static void K(leaky_relu_mask)(int64_t n, const T *restrict x, T *restrict m, T slope)
{
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] > 0 ? (T)1 : slope;
}

// abs: y = |x|; x, y: (n)
static void K(abs)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)fabs(x[i]);
}

// abs's mask: m = sign(x), sign(0) = sign(NaN) = 0; x, m: (n)
static void K(sign)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] > 0 ? (T)1 : x[i] < 0 ? (T)-1 : (T)0;
}

// softplus: y = x above 20, else ln(1 + e^x); x, y: (n)
static void K(softplus)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] > 20 ? x[i] : log1p(exp(x[i])));
}

// softplus's masks: m = 1 where x > 20, else 0 (above), and its complement (below);
// x, m: (n)
static void K(softplus_above)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] > 20 ? (T)1 : (T)0;
}

static void K(softplus_below)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] > 20 ? (T)0 : (T)1;
}

// gelu: y = x/2 (1 + tanh(c (x + a x^3))), in double (the constants are
// double) for both dtypes; x, y: (n)
static void K(gelu)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(0.5 * x[i] * (1 + tanh(GELU_C * (x[i] + GELU_A * x[i] * x[i] * x[i]))));
}

// pow_scalar: y = x^p, with PyTorch's sqrt and 1 / sqrt at p = 1/2 and -1/2; x, y: (n)
static void K(pow_scalar)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(p == 0.5 ? sqrt(x[i]) : p == -0.5 ? 1 / sqrt(x[i]) : pow(x[i], p));
}

// cast from float: y = x converted to T; x, y: (n)
static void K(cast_f32)(int64_t n, const float *restrict x, T *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)x[i];
}

// cast from double: y = x converted to T; x, y: (n)
static void K(cast_f64)(int64_t n, const double *restrict x, T *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)x[i];
}

// cast from int64: y = x converted to T (rounded to nearest); x, y: (n)
static void K(cast_i64)(int64_t n, const int64_t *restrict x, T *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)x[i];
}

// cast from bool: y = 0 or 1; x, y: (n)
static void K(cast_bool)(int64_t n, const bool *restrict x, T *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] ? (T)1 : (T)0;
}

// cast to int64 as torch on x86: truncated toward 0, INT64_MIN for NaN, inf and
// values out of range (ad__to_i64); x, y: (n)
static void K(to_i64)(int64_t n, const T *restrict x, int64_t *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = ad__to_i64((double)x[i]);
}

// cast to bool: y = x != 0 (NaN is true, as in torch); x, y: (n)
static void K(to_bool)(int64_t n, const T *restrict x, bool *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] != 0;
}

// tan: y = tan x; x, y: (n)
static void K(tan)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)tan(x[i]);
}

// atan: y = atan x; x, y: (n)
static void K(atan)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)atan(x[i]);
}

// asin: y = asin x; x, y: (n)
static void K(asin)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)asin(x[i]);
}

// acos: y = acos x; x, y: (n)
static void K(acos)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)acos(x[i]);
}

// sinh: y = sinh x; x, y: (n)
static void K(sinh)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)sinh(x[i]);
}

// cosh: y = cosh x; x, y: (n)
static void K(cosh)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)cosh(x[i]);
}

// asinh: y = asinh x; x, y: (n)
static void K(asinh)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)asinh(x[i]);
}

// acosh: y = acosh x; x, y: (n)
static void K(acosh)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)acosh(x[i]);
}

// atanh: y = atanh x; x, y: (n)
static void K(atanh)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)atanh(x[i]);
}

// erf: y = erf x; x, y: (n)
static void K(erf)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)erf(x[i]);
}

// erfc: y = erfc x = 1 - erf x, accurate where erf x is near 1; x, y: (n)
static void K(erfc)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)erfc(x[i]);
}

// log2: y = log2 x; x, y: (n)
static void K(log2)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)log2(x[i]);
}

// log10: y = log10 x; x, y: (n)
static void K(log10)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)log10(x[i]);
}

// exp2: y = 2^x; x, y: (n)
static void K(exp2)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)exp2(x[i]);
}

// rsqrt: y = 1 / sqrt(x); x, y: (n)
static void K(rsqrt)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(1 / sqrt(x[i]));
}

// reciprocal: y = 1 / x; x, y: (n)
static void K(reciprocal)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(1 / x[i]);
}

// floor: y = the largest integer <= x; x, y: (n)
static void K(floor)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)floor(x[i]);
}

// ceil: y = the smallest integer >= x; x, y: (n)
static void K(ceil)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)ceil(x[i]);
}

// round: y = x rounded to the nearest integer, halves to even (nearbyint in the default rounding
// mode, as torch.round); x, y: (n)
static void K(round)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)nearbyint(x[i]);
}

// trunc: y = x rounded toward zero; x, y: (n)
static void K(trunc)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)trunc(x[i]);
}

// silu: y = x / (1 + e^-x), PyTorch's formula: e^-x overflows to inf for x < -709 and y is -0
// there; x, y: (n)
static void K(silu)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] / (1 + exp(-x[i])));
}

// mish: y = x tanh(ln(1 + e^x)), PyTorch's formula; x, y: (n)
static void K(mish)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] * tanh(log1p(exp(x[i]))));
}

// logsigmoid: y = min(x, 0) - ln(1 + e^-|x|), never exp of a large positive number; x, y: (n)
static void K(logsigmoid)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)((x[i] < 0 ? x[i] : 0) - log1p(exp(-fabs(x[i]))));
}

// gelu_erf: y = x/2 (1 + erf(x / sqrt 2)), PyTorch's formula; x, y: (n)
static void K(gelu_erf)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] * (T)0.5 * (1 + erf(x[i] * (T)SQRT1_2)));
}

// elu: y = x <= 0 ? alpha (e^x - 1) : x, with alpha = p (PyTorch's test, so NaN takes
// the x branch); x, y: (n)
static void K(elu)(int64_t n, const T *restrict x, T *restrict y, T alpha)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (T)(x[i] <= 0 ? alpha * expm1(x[i]) : x[i]);
}

// elu's mask: m = 1 where x > 0, else 0, NaN included, so that NaN takes the
// alpha e^x branch and its gradient is NaN, as PyTorch's vectorised kernel (its
// scalar tail, for the last elements of a short tensor, gives 1); x, m: (n)
static void K(elu_mask)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] > 0 ? (T)1 : (T)0;
}

// hardswish: y = x min(max(x + 3, 0), 6) / 6, with PyTorch's std::max and std::min,
// so NaN propagates and -inf gives NaN (-inf 0); x, y: (n)
static void K(hardswish)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++) {
        T r = x[i] + 3;
        r = r < 0 ? (T)0 : r;
        r = 6 < r ? (T)6 : r;
        y[i] = (T)(x[i] * r / 6);
    }
}

// hardswish's masks: the middle, where the slope is x/3 + 1/2 (-3 <= x < 3, and NaN,
// which then gives NaN), and the top, where it is 1 (x >= 3); x, m: (n)
static void K(hardswish_middle)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] < -3 || x[i] >= 3 ? (T)0 : (T)1;
}

static void K(hardswish_top)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] >= 3 ? (T)1 : (T)0;
}

// hardsigmoid: y = min(max(x + 3, 0), 6) / 6, NaN propagating; x, y: (n)
static void K(hardsigmoid)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++) {
        T r = x[i] + 3;
        r = r < 0 ? (T)0 : r;
        r = 6 < r ? (T)6 : r;
        y[i] = (T)(r / 6);
    }
}

// hardsigmoid's slope: m = 1/6 where -3 < x < 3, else 0 (the ends and NaN); x, m: (n)
static void K(hardsigmoid_slope)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] > -3 && x[i] < 3 ? (T)(1.0 / 6.0) : (T)0;
}

// clamp_min: y = x < lo ? lo : x, lo = p; NaN passes; x, y: (n)
static void K(clamp_min)(int64_t n, const T *restrict x, T *restrict y, T lo)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] < lo ? lo : x[i];
}

// clamp_max: y = x > hi ? hi : x, hi = p; NaN passes; x, y: (n)
static void K(clamp_max)(int64_t n, const T *restrict x, T *restrict y, T hi)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > hi ? hi : x[i];
}

// The clamps' masks: 1 where the gradient passes, 0 elsewhere and at NaN. clamp's
// bounds are inclusive (x >= lo, x <= hi), hardtanh's exclusive (x > lo, x < hi), both
// as PyTorch (hardtanh's as its vectorised kernel; its scalar tail passes NaN); x, m: (n)
static void K(at_least)(int64_t n, const T *restrict x, T *restrict m, T lo)
{
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] >= lo ? (T)1 : (T)0;
}

static void K(at_most)(int64_t n, const T *restrict x, T *restrict m, T hi)
{
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] <= hi ? (T)1 : (T)0;
}

static void K(above)(int64_t n, const T *restrict x, T *restrict m, T lo)
{
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] > lo ? (T)1 : (T)0;
}

static void K(below)(int64_t n, const T *restrict x, T *restrict m, T hi)
{
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] < hi ? (T)1 : (T)0;
}
