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
