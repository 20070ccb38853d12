/* The numeric loops of the binary ops (binary.c), in the order of the ops,
 * written once over T and instantiated for float and double by kernels.h.
 * <tgmath.h> (included by binary.c) makes pow(a, b) call powf for floats.
 *
 * A binary kernel computes y = f(a, b) over n elements of y, where operand a
 * steps by sa and b by sb, each 1 (it has y's elements) or 0 (one element,
 * repeated): a flat run of a broadcast, or one row of it. Each op is its
 * element function f, in T, and a kernel that runs binary_loops with it.
 * Not include-guarded: see kernels.h. */

/* The loops of every binary kernel, one per pair of steps, so that each is a
 * plain loop over restrict pointers that the compiler vectorises. Every
 * caller passes a constant f, which the compiler inlines: no call per
 * element. a, b: (n) or (1) by sa, sb; y: (n). */
static inline void K(binary_loops)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b,
                                   int64_t sb, T *restrict y, T (*f)(T a, T b))
{
    if (sa && sb) {
        for (int64_t i = 0; i < n; i++)
            y[i] = f(a[i], b[i]);
    } else if (sa) {
        const T b0 = b[0];
        for (int64_t i = 0; i < n; i++)
            y[i] = f(a[i], b0);
    } else if (sb) {
        const T a0 = a[0];
        for (int64_t i = 0; i < n; i++)
            y[i] = f(a0, b[i]);
    } else {
        const T a0 = a[0], b0 = b[0];
        for (int64_t i = 0; i < n; i++)
            y[i] = f(a0, b0);
    }
}

// add: a + b
static inline T K(add_element)(T a, T b)
{
    return a + b;
}

// add: y = a + b; a, b: (n) or (1) by sa, sb; y: (n)
static void K(add)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                   T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(add_element));
}

// sub: a - b
static inline T K(sub_element)(T a, T b)
{
    return a - b;
}

// sub: y = a - b; a, b: (n) or (1) by sa, sb; y: (n)
static void K(sub)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                   T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(sub_element));
}

// mul: a b
static inline T K(mul_element)(T a, T b)
{
    return a * b;
}

// mul: y = a b; a, b: (n) or (1) by sa, sb; y: (n)
static void K(mul)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                   T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(mul_element));
}

// div: a / b
static inline T K(div_element)(T a, T b)
{
    return a / b;
}

// div: y = a / b; a, b: (n) or (1) by sa, sb; y: (n)
static void K(div)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                   T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(div_element));
}

// pow: a^b, in T (powf for float)
static inline T K(pow_element)(T a, T b)
{
    return (T)pow(a, b);
}

// pow: y = a^b; a, b: (n) or (1) by sa, sb; y: (n)
static void K(pow)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                   T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(pow_element));
}

// maximum: the larger of a and b; NaN when either is (a + b carries it)
static inline T K(maximum_element)(T a, T b)
{
    return (T)((a != a || b != b) ? a + b : (a > b ? a : b));
}

// maximum: y = max(a, b); a, b: (n) or (1) by sa, sb; y: (n)
static void K(maximum)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                       T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(maximum_element));
}

// minimum: the smaller of a and b; NaN when either is (a + b carries it)
static inline T K(minimum_element)(T a, T b)
{
    return (T)((a != a || b != b) ? a + b : (a < b ? a : b));
}

// minimum: y = min(a, b); a, b: (n) or (1) by sa, sb; y: (n)
static void K(minimum)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                       T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(minimum_element));
}

// where: y = cond != 0 ? a : b (NaN counts as true, as bool(nan) in PyTorch), one
// row of the broadcast; cond, a, b: (n) or (1) by sc, sa, sb; y: (n)
static void K(where)(int64_t n, const T *restrict cond, int64_t sc, const T *restrict a, int64_t sa,
                     const T *restrict b, int64_t sb, T *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = cond[i * sc] != 0 ? a[i * sa] : b[i * sb];
}

// where with a bool condition: y = cond ? a : b; cond, a, b: (n) or (1) by sc, sa, sb; y: (n)
static void K(where_bool)(int64_t n, const bool *restrict cond, int64_t sc, const T *restrict a,
                          int64_t sa, const T *restrict b, int64_t sb, T *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = cond[i * sc] ? a[i * sa] : b[i * sb];
}

// atan2: the angle of the point (b, a), in T
static inline T K(atan2_element)(T a, T b)
{
    return (T)atan2(a, b);
}

// atan2: y = atan2(a, b); a, b: (n) or (1) by sa, sb; y: (n)
static void K(atan2)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                     T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(atan2_element));
}

// hypot: sqrt(a^2 + b^2) without overflow or underflow, in T
static inline T K(hypot_element)(T a, T b)
{
    return (T)hypot(a, b);
}

// hypot: y = hypot(a, b); a, b: (n) or (1) by sa, sb; y: (n)
static void K(hypot)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                     T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(hypot_element));
}

// xlogy: a ln b, PyTorch's: NaN where b is NaN, else 0 where a = 0 (whatever b is)
static inline T K(xlogy_element)(T a, T b)
{
    return b != b ? b : a == 0 ? (T)0 : (T)(a * log(b));
}

// xlogy: y = xlogy(a, b); a, b: (n) or (1) by sa, sb; y: (n)
static void K(xlogy)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                     T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(xlogy_element));
}

// remainder: Python's a % b, the sign of b: fmod(a, b) (exact), plus b when it is nonzero
// and its sign differs from b's (PyTorch's kernel), in T
static inline T K(remainder_element)(T a, T b)
{
    const T r = (T)fmod(a, b);
    return r != 0 && (r < 0) != (b < 0) ? (T)(r + b) : r;
}

// remainder: y = a mod b, the sign of b; a, b: (n) or (1) by sa, sb; y: (n)
static void K(remainder)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b,
                         int64_t sb, T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(remainder_element));
}

// fmod: C's fmod, the sign of a, exact, in T
static inline T K(fmod_element)(T a, T b)
{
    return (T)fmod(a, b);
}

// fmod: y = fmod(a, b); a, b: (n) or (1) by sa, sb; y: (n)
static void K(fmod)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b, int64_t sb,
                    T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(fmod_element));
}

// floor_divide: floor(a / b) as Python's a // b and PyTorch's rounding_mode='floor' compute
// it, in T: the exact (a - r) / b with r = fmod(a, b) the remainder, less 1 when r's sign
// differs from b's, then rounded to the nearest integer (the division may land just off
// one); a zero quotient takes the sign of a / b; a / b itself where b = 0
static inline T K(floor_divide_element)(T a, T b)
{
    if (b == 0)
        return a / b;
    const T r = (T)fmod(a, b);
    T q = (a - r) / b;
    if (r != 0 && (r < 0) != (b < 0))
        q -= 1;
    if (q == 0)
        return (T)copysign((T)0, a / b);
    const T f = (T)floor(q);
    return q - f > (T)0.5 ? f + 1 : f;
}

// floor_divide: y = floor_divide(a, b), for remainder's gradient; a, b: (n) or (1) by sa, sb;
// y: (n)
static void K(floor_divide)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b,
                            int64_t sb, T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(floor_divide_element));
}

// trunc_divide: trunc of the rounded quotient, as PyTorch's rounding_mode='trunc', in T
static inline T K(trunc_divide_element)(T a, T b)
{
    return (T)trunc(a / b);
}

// trunc_divide: y = trunc(a / b), for fmod's gradient; a, b: (n) or (1) by sa, sb; y: (n)
static void K(trunc_divide)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b,
                            int64_t sb, T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(trunc_divide_element));
}

// logaddexp: ln(e^a + e^b) = m + log1p(e^-|a - b|), m the larger, so that no exp overflows;
// a where a = b = +-inf (the gap would be NaN); NaN where either is NaN (the gap is), in T
static inline T K(logaddexp_element)(T a, T b)
{
    if (isinf(a) && a == b)
        return a;
    const T m = a < b ? b : a;
    return (T)(m + log1p(exp(-fabs(a - b))));
}

// logaddexp: y = logaddexp(a, b); a, b: (n) or (1) by sa, sb; y: (n)
static void K(logaddexp)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b,
                         int64_t sb, T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(logaddexp_element));
}

// logaddexp2: log2(2^a + 2^b) = m + log1p(2^-|a - b|) / ln 2, as logaddexp, in T
static inline T K(logaddexp2_element)(T a, T b)
{
    if (isinf(a) && a == b)
        return a;
    const T m = a < b ? b : a;
    return (T)(m + log1p(exp2(-fabs(a - b))) / (T)LN2);
}

// logaddexp2: y = logaddexp2(a, b); a, b: (n) or (1) by sa, sb; y: (n)
static void K(logaddexp2)(int64_t n, const T *restrict a, int64_t sa, const T *restrict b,
                          int64_t sb, T *restrict y)
{
    K(binary_loops)(n, a, sa, b, sb, y, K(logaddexp2_element));
}
