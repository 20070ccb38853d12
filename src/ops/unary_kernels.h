/* The numeric loops of the unary ops (unary.c), in the order of the ops,
 * written once over T and instantiated for float and double by kernels.h.
 * <tgmath.h> (included by unary.c) makes exp(x) call expf for a float x.
 * float32 sigmoid and tanh use fast_float.h's libm-free versions instead.
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
    if (sizeof(T) == sizeof(float)) { /* float32: fast_float.h, which vectorises */
        for (int64_t i = 0; i < n; i++)
            y[i] = (T)ad__tanhf((float)x[i]);
        return;
    }
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
    if (sizeof(T) == sizeof(float)) { /* float32: fast_float.h, which vectorises */
        for (int64_t i = 0; i < n; i++)
            y[i] = (T)ad__sigmoidf((float)x[i]);
        return;
    }
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

// erfinv of one element: the x with erf x = y, for T. A first guess refined by Halley steps on
// f(x) = erf x - |y|, whose derivatives are f' = 2/sqrt(pi) e^(-x^2) and f'' = -2 x f'; a step
// from x is x - u / (1 + x u) with u = f / f'. The guess: for |y| < 1/2 the Maclaurin series of
// erfinv to the ninth power (relative error below 1e-4); above, Winitzki's closed form with
// a = 0.147 (below 2e-3), written as q / (c + sqrt(c^2 + q)) so that it does not cancel. Each
// step cubes the relative error: two steps reach float's precision and three double's. In the
// tail f is computed as (1 - |y|) - erfc x: 1 - |y| is exact there and erfc x keeps its
// relative precision where erf x rounds to 1, so the root is found to an ulp of the true
// erfinv up to |y| = 1 - 2^-53. |y| = 1 gives +-inf, |y| > 1 and NaN give NaN; the sign of y
// (that of -0 included) is the sign of the result.
static inline T K(erfinv_element)(T y)
{
    const T a = fabs(y);
    if (!(a < 1))
        return a == 1 ? copysign((T)INFINITY, y) : (T)NAN;
    const bool tail = a >= (T)0.5;
    T x;
    if (!tail) {
        const T t = (T)SQRT_PI_2 * a, t2 = t * t;
        x = t * (1 + t2 * ((T)(1.0 / 3.0) +
                           t2 * ((T)(7.0 / 30.0) +
                                 t2 * ((T)(127.0 / 630.0) + t2 * (T)(4369.0 / 22680.0)))));
    } else {
        const T log_1_y2 = (T)(log(1 - a) + log1p(a)); /* ln(1 - y^2) */
        const T c = (T)(2.0 / (PI * 0.147)) + log_1_y2 / 2, q = -log_1_y2 / (T)0.147;
        x = (T)sqrt(q / (c + sqrt(c * c + q)));
    }
    const int steps = sizeof(T) < sizeof(double) ? 2 : 3;
    for (int k = 0; k < steps; k++) {
        const T f = tail ? (1 - a) - (T)erfc(x) : (T)erf(x) - a;
        const T u = f / ((T)TWO_OVER_SQRT_PI * (T)exp(-x * x));
        x -= u / (1 + x * u);
    }
    return (T)copysign(x, y);
}

// erfinv: y = the inverse of erf on (-1, 1), +-inf at +-1, NaN beyond; x, y: (n)
static void K(erfinv)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = K(erfinv_element)(x[i]);
}

// sinc: y = sin(pi x) / (pi x), 1 at x = 0, with pi x rounded to T first (PyTorch's
// formula, so that sinc(1) is sin(pi rounded) / pi, about 4e-17 in double); x, y: (n)
static void K(sinc)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++) {
        const T px = (T)PI * x[i];
        y[i] = x[i] == 0 ? (T)1 : (T)(sin(px) / px);
    }
}

// sinc's mask: m = 1 where x x pi rounds to 0 in T (x = 0 and |x| below about 1e-154 in
// double, 1e-23 in float), where the slope's formula is 0 / 0 and PyTorch gives 0, else 0;
// x, m: (n)
static void K(sinc_near_zero)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] * x[i] * (T)PI == 0 ? (T)1 : (T)0;
}

// logit: y = ln(x / (1 - x)), x first clamped to [eps, 1 - eps] when eps = p is not NaN
// (NaN stays NaN); +inf at x = 1, -inf at 0, NaN outside [0, 1] without eps; x, y: (n)
static void K(logit)(int64_t n, const T *restrict x, T *restrict y, T eps)
{
    const T hi = 1 - eps;
    for (int64_t i = 0; i < n; i++) {
        T v = x[i];
        if (eps == eps)
            v = v < eps ? eps : v > hi ? hi : v;
        y[i] = (T)log(v / (1 - v));
    }
}

// logit's masks. Without eps: 1 on [0, 1], NaN outside (and at NaN), so that the gradient
// is NaN there (PyTorch). With eps = p: 1 on [eps, 1 - eps], 0 outside and at NaN, the
// clamped points (PyTorch's vectorised kernel; its scalar tail gives NaN at NaN); x, m: (n)
static void K(logit_domain)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] >= 0 && x[i] <= 1 ? (T)1 : (T)NAN;
}

static void K(logit_inside)(int64_t n, const T *restrict x, T *restrict m, T eps)
{
    const T hi = 1 - eps;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] >= eps && x[i] <= hi ? (T)1 : (T)0;
}

// selu: y = x <= 0 ? (e^x - 1) alpha scale : x scale, PyTorch's elu kernel with its
// constants (alpha scale rounded to T once), NaN staying NaN; x, y: (n)
static void K(selu)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    const T negative = (T)SELU_ALPHA * (T)SELU_SCALE, positive = (T)SELU_SCALE;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] <= 0 ? (T)(expm1(x[i]) * negative) : x[i] * positive;
}

// selu's mask: m = 1 where x < 0 or x is NaN, the points whose slope holds e^x; x, m: (n)
static void K(selu_below)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = x[i] < 0 || x[i] != x[i] ? (T)1 : (T)0;
}

// softsign: y = x / (|x| + 1), PyTorch's composition: NaN at +-inf (inf / inf); x, y: (n)
static void K(softsign)(int64_t n, const T *restrict x, T *restrict y, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] / (T)(fabs(x[i]) + 1);
}

// softsign's mask: m = NaN at +-inf (where the value is NaN), 1 elsewhere; x, m: (n)
static void K(softsign_finite)(int64_t n, const T *restrict x, T *restrict m, T p)
{
    (void)p;
    for (int64_t i = 0; i < n; i++)
        m[i] = isinf(x[i]) ? (T)NAN : (T)1;
}
