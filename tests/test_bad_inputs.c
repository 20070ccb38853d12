/* Bad inputs for every public op (issue 9, item 5).
 *
 * Each op of autodiff.h, and the custom-op and checkpoint entry points, is
 * given wrong shapes, dtypes, axes, indices, permutations, slice steps and
 * targets: it must return NULL, leave the documented status on the tape with
 * a message naming the op and the shapes, keep that first error (sticky) and
 * compute again once the error is cleared. Every op is also given a NULL
 * input, persistent inputs only, an errored tape and a stale handle. Empty
 * (a 0 dim) and 0-d inputs, NaN and infinities must give PyTorch 1.13's
 * values and gradients, or a clear error where noted.
 *
 * Every expected value and gradient below was computed with PyTorch 1.13
 * (Debian's python3-torch, 1.13.0a0, CPU, float64) through /usr/bin/python3
 * and hard-coded; the gradients are those of sum(y), or of sum(y * seed)
 * where a row gives a seed. Signs of zeros are compared too.
 *
 * The tables are the test: adding an op adds a row. main() makes one CMocka
 * test per row (and per failure mode of a family), named by the sentence
 * that fails. A row whose case shows a library bug not fixed yet carries
 * known_bug: the test is skipped with cmocka's skip() and says why. */
#include "test_util.h"

#include "autodiff/custom.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* DIMS(2, 3) is the two arguments `ndim, shape` of the shape [2,3]. */
// clang-format off
#define DIMS(...) \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}
// clang-format on
/* Tape tensors of ones: F64(tape, 2, 3) is a float64 [2,3]. */
#define F64(tape, ...) ad_full((tape), AD_F64, DIMS(__VA_ARGS__), 1.0)
#define F32(tape, ...) ad_full((tape), AD_F32, DIMS(__VA_ARGS__), 1.0)

/* Relative tolerances against PyTorch's float64 numbers. */
#define RTOL_F64 1e-12
#define RTOL_F32 1e-5

/* ---- One CMocka test per case ----------------------------------------------------------- */

/* A generated test: body runs on row with a fresh tape (made by the setup,
 * freed by the teardown even when the test fails). */
typedef struct run run;
struct run {
    char name[160];
    void (*body)(run *r);
    const void *row;
    ad_dtype dtype;
    ad_tape *tape;
};

static int run_setup(void **state)
{
    run *r = *state;
    return ad_tape_create(&r->tape) == AD_OK ? 0 : -1;
}

static int run_teardown(void **state)
{
    run *r = *state;
    ad_tape_free(r->tape);
    r->tape = NULL;
    return 0;
}

static void run_case(void **state)
{
    run *r = *state;
    r->body(r);
}

#define MAX_RUNS 1024
static run runs[MAX_RUNS];
static size_t n_runs;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static struct CMUnitTest
make_test(void (*body)(run *), const void *row, ad_dtype dtype, const char *format, ...)
{
    if (n_runs == MAX_RUNS) {
        fprintf(stderr, "test_bad_inputs: more than %d cases; raise MAX_RUNS\n", MAX_RUNS);
        exit(1);
    }
    run *r = &runs[n_runs++];
    va_list ap;
    va_start(ap, format);
    vsnprintf(r->name, sizeof r->name, format, ap);
    va_end(ap);
    r->body = body;
    r->row = row;
    r->dtype = dtype;
    return (struct CMUnitTest){r->name, run_case, run_setup, run_teardown, r};
}

/* ---- Checks ------------------------------------------------------------------------------ */

/* A tensor in a table: its shape and its values in row-major order. */
typedef struct spec {
    int ndim;
    int64_t shape[4];
    double v[12];
} spec;

static int64_t spec_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    return n;
}

/* PyTorch's value e against ours a: NaN matches NaN, an infinity itself, a
 * zero a zero of the same sign, anything else within rtol. */
static bool same_value(double e, double a, double rtol)
{
    if (isnan(e))
        return isnan(a);
    if (isinf(e))
        return a == e;
    if (e == 0)
        return a == 0 && signbit(a) == signbit(e);
    return fabs(a - e) <= rtol * fabs(e);
}

/* assert_like_torch(t, ndim, shape, expected, rtol): t has the shape and,
 * element by element, PyTorch's values. Variadic so that DIMS(...) fits. */
#define assert_like_torch(t, ...) assert_like_torch_at((t), __VA_ARGS__, #t, __FILE__, __LINE__)

static void assert_like_torch_at(const ad_tensor *t, int ndim, const int64_t *shape,
                                 const double *expected, double rtol, const char *what,
                                 const char *file, int line)
{
    char s0[96], s1[96];
    if (!t) {
        print_error("%s:%d: %s is NULL\n", file, line, what);
        _fail(file, line);
    }
    bool same_shape = ad_tensor_ndim(t) == ndim;
    for (int d = 0; same_shape && d < ndim; d++)
        same_shape = ad_tensor_shape(t)[d] == shape[d];
    if (!same_shape) {
        print_error("%s:%d: %s has shape %s, PyTorch gives %s\n", file, line, what,
                    ad_shape_string(s0, sizeof s0, ad_tensor_ndim(t), ad_tensor_shape(t)),
                    ad_shape_string(s1, sizeof s1, ndim, shape));
        _fail(file, line);
    }
    for (int64_t i = 0; i < spec_numel(ndim, shape); i++) {
        double a = ad_tensor_get(t, i);
        if (!same_value(expected[i], a, rtol)) {
            print_error("%s:%d: %s[%lld] = %.17g, PyTorch gives %.17g\n", file, line, what,
                        (long long)i, a, expected[i]);
            _fail(file, line);
        }
    }
}

/* The failing op returned NULL, and the tape holds the status and a message
 * containing every one of parts (a NULL-terminated list). */
#define MAX_PARTS 6
#define assert_op_error(tape, y, status, parts)                                                    \
    assert_op_error_at((tape), (y), (status), (parts), __FILE__, __LINE__)

static void assert_op_error_at(const ad_tape *tape, const ad_tensor *y, ad_status status,
                               const char *const *parts, const char *file, int line)
{
    const char *m = ad_tape_message(tape);
    if (y) {
        print_error("%s:%d: the op returned a tensor; expected %s\n", file, line,
                    ad_status_string(status));
        _fail(file, line);
    }
    if (ad_tape_status(tape) != status) {
        print_error("%s:%d: the tape's status is \"%s\", expected \"%s\" (message \"%s\")\n", file,
                    line, ad_status_string(ad_tape_status(tape)), ad_status_string(status), m);
        _fail(file, line);
    }
    for (int i = 0; i < MAX_PARTS && parts[i]; i++)
        if (!strstr(m, parts[i])) {
            print_error("%s:%d: the message \"%s\" does not name \"%s\"\n", file, line, m,
                        parts[i]);
            _fail(file, line);
        }
}

/* A tensor made before the failing op, to show the tape is still usable. */
static ad_tensor *witness(ad_tape *tape)
{
    return leaf(tape, AD_F64, DIMS(3), (double[]){1, 2, 3});
}

/* After an error an op on the witness is NULL and the first error stays
 * (sticky); once cleared, the tape computes sum(x * x) = 14 and its
 * gradient 2x again. */
static void assert_usable_after_clearing(ad_tape *tape, ad_tensor *x)
{
    char first[512];
    ad_status status = ad_tape_status(tape);
    snprintf(first, sizeof first, "%s", ad_tape_message(tape));
    assert_null(ad_neg(x));
    assert_int_equal(ad_tape_status(tape), status);
    assert_string_equal(ad_tape_message(tape), first);
    ad_tape_clear_error(tape);
    assert_int_equal(ad_tape_status(tape), AD_OK);
    assert_string_equal(ad_tape_message(tape), "");
    ad_tensor *y = ad_sum_all(ad_mul(x, x));
    if (!y)
        fail_msg("after clearing: %s", ad_tape_message(tape));
    assert_close(14.0, ad_value(y), 0, 0);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_values(ad_tensor_grad(x), 3, (double[]){2, 4, 6}, 0, 0);
}

/* Gradients of sum(y * seed) (seed NULL: ones) for n inputs, as new tensors. */
static void gradients(ad_tape *tape, ad_tensor *y, const double *seed, int n, ad_tensor **x,
                      ad_tensor **g)
{
    ad_tensor *s =
        seed ? tensor(tape, ad_tensor_dtype(y), ad_tensor_ndim(y), ad_tensor_shape(y), seed)
             : ad_ones_like(tape, y);
    assert_non_null(s);
    if (ad_grad(1, &y, &s, (size_t)n, x, g, NULL) != AD_OK)
        fail_msg("ad_grad: %s", ad_tape_message(tape));
}

/* ---- Custom ops and checkpointed functions the tables use ----------------------------- */

/* cube: y = x^3, dx = 3 x^2 dy, with library ops. */
static ad_status cube_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_mul(in[0], ad_square(in[0]));
    return out[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

static ad_status cube_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
{
    gin[0] = ad_mul(gout[0], ad_mul_scalar(ad_square(ad_custom_input(c, 0)), 3.0));
    return gin[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

/* wrong_grad: the identity, whose backward returns a 0-d gradient. */
static ad_status identity_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    (void)c;
    out[0] = in[0];
    return AD_OK;
}

static ad_status wrong_grad_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
{
    gin[0] = ad_sum_all(gout[0]);
    return gin[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

/* silent: a forward that fails without a message. */
static ad_status silent_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    (void)c, (void)in, (void)out;
    return AD_ERR_ARG;
}

/* null_output: a forward that says AD_OK but sets no output. */
static ad_status null_output_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    (void)c, (void)in;
    out[0] = NULL;
    return AD_OK;
}

/* two: two outputs, both the input. */
static ad_status two_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    (void)c;
    out[0] = out[1] = in[0];
    return AD_OK;
}

static ad_status pass_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
{
    (void)c;
    gin[0] = gout[0];
    return AD_OK;
}

static ad_custom_op *cube_op, *wrong_grad_op, *silent_op, *null_output_op, *two_op;

static int create_custom_ops(void)
{
    ad_custom_op_def cube = {.name = "cube",
                             .n_inputs = 1,
                             .n_outputs = 1,
                             .forward = cube_forward,
                             .backward = cube_backward};
    ad_custom_op_def wrong = cube, silent = cube, null_output = cube, two = cube;
    wrong.name = "wrong_grad";
    wrong.forward = identity_forward;
    wrong.backward = wrong_grad_backward;
    silent.name = "silent";
    silent.forward = silent_forward;
    null_output.name = "null_output";
    null_output.forward = null_output_forward;
    two.name = "two";
    two.n_outputs = 2;
    two.forward = two_forward;
    two.backward = pass_backward;
    return ad_custom_op_create(&cube_op, &cube) != AD_OK ||
           ad_custom_op_create(&wrong_grad_op, &wrong) != AD_OK ||
           ad_custom_op_create(&silent_op, &silent) != AD_OK ||
           ad_custom_op_create(&null_output_op, &null_output) != AD_OK ||
           ad_custom_op_create(&two_op, &two) != AD_OK;
}

static void free_custom_ops(void)
{
    ad_custom_op_free(cube_op);
    ad_custom_op_free(wrong_grad_op);
    ad_custom_op_free(silent_op);
    ad_custom_op_free(null_output_op);
    ad_custom_op_free(two_op);
}

/* Checkpointed functions: sum(x^2); NULL without an error; a shape error
 * inside (x must be [2]); a result on the tape given as ctx. */
static ad_tensor *sum_of_squares(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_sum_all(ad_square(in[0]));
}

static ad_tensor *returns_null(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)in, (void)ctx;
    return NULL;
}

static ad_tensor *adds_a_3_vector(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    return ad_add(in[0], F64(tape, 3));
}

static ad_tensor *result_on_ctx_tape(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)in;
    return F64((ad_tape *)ctx, 2);
}

/* =========================================================================================
 * Elementwise ops of one input: NaN, infinities and zeros, in both dtypes; an
 * empty and a 0-d input. They have no failure mode of their own (cast's is in
 * the error table).
 * ========================================================================================= */

#define N_SPECIAL 7
static const double special_x[N_SPECIAL] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.0, 1.0};

typedef struct unary_row {
    const char *name;
    ad_tensor *(*op)(ad_tensor *x);
    double y[N_SPECIAL], g[N_SPECIAL]; /* at special_x (PyTorch 1.13) */
} unary_row;

static ad_tensor *leaky_relu_01(ad_tensor *x)
{
    return ad_leaky_relu(x, 0.1);
}
static ad_tensor *pow_by_0(ad_tensor *x)
{
    return ad_pow_scalar(x, 0.0);
}
static ad_tensor *pow_by_half(ad_tensor *x)
{
    return ad_pow_scalar(x, 0.5);
}
static ad_tensor *pow_by_minus_half(ad_tensor *x)
{
    return ad_pow_scalar(x, -0.5);
}
static ad_tensor *pow_by_one_and_a_half(ad_tensor *x)
{
    return ad_pow_scalar(x, 1.5);
}
static ad_tensor *pow_by_minus_1(ad_tensor *x)
{
    return ad_pow_scalar(x, -1.0);
}
static ad_tensor *pow_by_2(ad_tensor *x)
{
    return ad_pow_scalar(x, 2.0);
}
static ad_tensor *pow_by_3(ad_tensor *x)
{
    return ad_pow_scalar(x, 3.0);
}

static ad_tensor *logit_none(ad_tensor *x)
{
    return ad_logit(x, -1.0);
}
static ad_tensor *logit_tenth(ad_tensor *x)
{
    return ad_logit(x, 0.1);
}
static ad_tensor *logit_zero(ad_tensor *x)
{
    return ad_logit(x, 0.0);
}

/* PyTorch 1.13 at x = {nan, inf, -inf, 0, -0, -1, 1}: torch.<op>(x) and the
 * gradient of its sum (gelu: approximate='tanh'; leaky_relu: slope 0.1;
 * pow_scalar: torch.pow(x, p); logit: torch.logit(x, eps), each point where
 * PyTorch's vectorised loop computes it: its scalar tail, which a tensor this
 * short gets, gives +inf at -0 without eps and NaN at NaN with one). sinc is
 * not here: sinc(+-1) is -2.8e-8 in float32 and 3.9e-17 in float64 (test_ops
 * has both). */
static const unary_row unary_rows[] = {
    {"neg", ad_neg, {NAN, -INFINITY, INFINITY, -0.0, 0.0, 1.0, -1.0}, {-1, -1, -1, -1, -1, -1, -1}},
    {"exp",
     ad_exp,
     {NAN, INFINITY, 0.0, 1.0, 1.0, 0.36787944117144233, 2.718281828459045},
     {NAN, INFINITY, 0.0, 1.0, 1.0, 0.36787944117144233, 2.718281828459045}},
    {"log",
     ad_log,
     {NAN, INFINITY, NAN, -INFINITY, -INFINITY, NAN, 0.0},
     {NAN, 0.0, -0.0, INFINITY, -INFINITY, -1.0, 1.0}},
    {"log1p",
     ad_log1p,
     {NAN, INFINITY, NAN, 0.0, -0.0, -INFINITY, 0.6931471805599453},
     {NAN, 0.0, -0.0, 1.0, 1.0, INFINITY, 0.5}},
    {"expm1",
     ad_expm1,
     {NAN, INFINITY, -1.0, 0.0, -0.0, -0.6321205588285577, 1.7182818284590453},
     {NAN, INFINITY, 0.0, 1.0, 1.0, 0.36787944117144233, 2.7182818284590455}},
    {"sqrt",
     ad_sqrt,
     {NAN, INFINITY, NAN, 0.0, -0.0, NAN, 1.0},
     {NAN, 0.0, NAN, INFINITY, -INFINITY, NAN, 0.5}},
    {"square",
     ad_square,
     {NAN, INFINITY, INFINITY, 0.0, 0.0, 1.0, 1.0},
     {NAN, INFINITY, -INFINITY, 0.0, -0.0, -2.0, 2.0}},
    {"sin",
     ad_sin,
     {NAN, NAN, NAN, 0.0, -0.0, -0.8414709848078965, 0.8414709848078965},
     {NAN, NAN, NAN, 1.0, 1.0, 0.5403023058681398, 0.5403023058681398}},
    {"cos",
     ad_cos,
     {NAN, NAN, NAN, 1.0, 1.0, 0.5403023058681398, 0.5403023058681398},
     {NAN, NAN, NAN, -0.0, 0.0, 0.8414709848078965, -0.8414709848078965}},
    {"tanh",
     ad_tanh,
     {NAN, 1.0, -1.0, 0.0, -0.0, -0.7615941559557649, 0.7615941559557649},
     {NAN, 0.0, 0.0, 1.0, 1.0, 0.41997434161402614, 0.41997434161402614}},
    {"sigmoid",
     ad_sigmoid,
     {NAN, 1.0, 0.0, 0.5, 0.5, 0.2689414213699951, 0.7310585786300049},
     {NAN, 0.0, 0.0, 0.25, 0.25, 0.19661193324148185, 0.19661193324148185}},
    /* relu at NaN: NaN with gradient 1 (PyTorch zeroes only x <= 0). */
    {"relu",
     ad_relu,
     {NAN, INFINITY, 0.0, 0.0, -0.0, 0.0, 1.0},
     {1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0}},
    /* abs at NaN: gradient 0 (PyTorch's sgn of NaN is 0). */
    {"abs",
     ad_abs,
     {NAN, INFINITY, INFINITY, 0.0, 0.0, 1.0, 1.0},
     {0.0, 1.0, -1.0, 0.0, 0.0, -1.0, 1.0}},
    {"softplus",
     ad_softplus,
     {NAN, INFINITY, 0.0, 0.6931471805599453, 0.6931471805599453, 0.31326168751822286,
      1.3132616875182228},
     {NAN, 1.0, 0.0, 0.5, 0.5, 0.2689414213699951, 0.7310585786300049}},
    {"gelu",
     ad_gelu,
     {NAN, INFINITY, NAN, 0.0, -0.0, -0.15880800939172324, 0.8411919906082768},
     {NAN, NAN, NAN, 0.5, 0.5, -0.08296408384578252, 1.0829640838457826}},
    {"leaky_relu_with_slope_0.1",
     leaky_relu_01,
     {NAN, INFINITY, -INFINITY, 0.0, -0.0, -0.1, 1.0},
     {0.1, 1.0, 0.1, 0.1, 0.1, 0.1, 1.0}},
    /* pow by 0: 1 everywhere, gradient exactly 0, even at 0 and NaN. */
    {"pow_scalar_by_0", pow_by_0, {1, 1, 1, 1, 1, 1, 1}, {0, 0, 0, 0, 0, 0, 0}},
    /* PyTorch computes x^0.5 as sqrt(x) and x^-0.5 as 1 / sqrt(x): NaN at
     * -inf and -0 at -0, where C's pow gives +inf and +0; x^1.5 is pow, but
     * its gradient holds x^0.5. */
    {"pow_scalar_by_0.5",
     pow_by_half,
     {NAN, INFINITY, NAN, 0.0, -0.0, NAN, 1.0},
     {NAN, 0.0, NAN, INFINITY, -INFINITY, NAN, 0.5}},
    {"pow_scalar_by_-0.5",
     pow_by_minus_half,
     {NAN, 0.0, NAN, INFINITY, -INFINITY, NAN, 1.0},
     {NAN, -0.0, -0.0, -INFINITY, -INFINITY, NAN, -0.5}},
    {"pow_scalar_by_1.5",
     pow_by_one_and_a_half,
     {NAN, INFINITY, INFINITY, 0.0, 0.0, NAN, 1.0},
     {NAN, INFINITY, NAN, 0.0, -0.0, NAN, 1.5}},
    {"pow_scalar_by_-1",
     pow_by_minus_1,
     {NAN, 0.0, -0.0, INFINITY, -INFINITY, -1.0, 1.0},
     {NAN, -0.0, -0.0, -INFINITY, -INFINITY, -1.0, -1.0}},
    {"pow_scalar_by_2",
     pow_by_2,
     {NAN, INFINITY, INFINITY, 0.0, 0.0, 1.0, 1.0},
     {NAN, INFINITY, -INFINITY, 0.0, -0.0, -2.0, 2.0}},
    {"pow_scalar_by_3",
     pow_by_3,
     {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.0, 1.0},
     {NAN, INFINITY, INFINITY, 0.0, 0.0, 3.0, 3.0}},
    {"erfinv",
     ad_erfinv,
     {NAN, NAN, NAN, 0.0, -0.0, -INFINITY, INFINITY},
     {NAN, NAN, NAN, 0.8862269254527579, 0.8862269254527579, INFINITY, INFINITY}},
    /* logit without eps: NaN outside [0, 1]; dy / (x (1 - x)) is -inf at -0. */
    {"logit",
     logit_none,
     {NAN, NAN, NAN, -INFINITY, -INFINITY, NAN, INFINITY},
     {NAN, NAN, NAN, INFINITY, -INFINITY, NAN, INFINITY}},
    /* logit with eps: clamped to [eps, 1 - eps], gradient 0 outside and at NaN. */
    {"logit_with_eps_0.1",
     logit_tenth,
     {NAN, 2.1972245773362196, -2.197224577336219, -2.197224577336219, -2.197224577336219,
      -2.197224577336219, 2.1972245773362196},
     {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"logit_with_eps_0",
     logit_zero,
     {NAN, INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, INFINITY},
     {0.0, 0.0, 0.0, INFINITY, -INFINITY, 0.0, INFINITY}},
    {"softsign",
     ad_softsign,
     {NAN, NAN, NAN, 0.0, -0.0, -0.5, 0.5},
     {NAN, NAN, NAN, 1.0, 1.0, 0.25, 0.25}},
};

static void unary_specials(run *r)
{
    const unary_row *row = r->row;
    double rtol = r->dtype == AD_F64 ? RTOL_F64 : RTOL_F32;
    ad_tensor *x = leaf(r->tape, r->dtype, DIMS(N_SPECIAL), special_x);
    ad_tensor *y = row->op(x);
    assert_like_torch(y, DIMS(N_SPECIAL), row->y, rtol);
    assert_int_equal(ad_tensor_dtype(y), r->dtype);
    assert_like_torch(grad_of_sum(y, x), DIMS(N_SPECIAL), row->g, rtol);
}

static void unary_empty(run *r)
{
    const unary_row *row = r->row;
    ad_tensor *x = leaf(r->tape, AD_F64, DIMS(2, 0), NULL);
    assert_like_torch(row->op(x), DIMS(2, 0), NULL, 0);
    assert_like_torch(grad_of_sum(row->op(x), x), DIMS(2, 0), NULL, 0);
}

/* At x = 1, the last of special_x. */
static void unary_scalar(run *r)
{
    const unary_row *row = r->row;
    ad_tensor *x = ad_requires_grad(ad_scalar(r->tape, 1.0));
    ad_tensor *y = row->op(x);
    assert_like_torch(y, 0, NULL, &row->y[N_SPECIAL - 1], RTOL_F64);
    assert_like_torch(grad_of_sum(y, x), 0, NULL, &row->g[N_SPECIAL - 1], RTOL_F64);
}

static int run_unary_group(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(unary_rows) * 4];
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(unary_rows); i++) {
        const unary_row *row = &unary_rows[i];
        tests[k++] = make_test(unary_specials, row, AD_F64,
                               "test_%s_of_nan_infinities_and_zeros_gives_pytorch_values_and_"
                               "gradients_in_float64",
                               row->name);
        tests[k++] = make_test(unary_specials, row, AD_F32,
                               "test_%s_of_nan_infinities_and_zeros_gives_pytorch_values_and_"
                               "gradients_in_float32",
                               row->name);
        tests[k++] =
            make_test(unary_empty, row, AD_F64,
                      "test_%s_of_an_empty_tensor_is_empty_with_an_empty_gradient", row->name);
        tests[k++] = make_test(unary_scalar, row, AD_F64,
                               "test_%s_of_a_0d_tensor_is_0d_with_its_gradient", row->name);
    }
    return cmocka_run_group_tests_name("elementwise ops", tests, NULL, NULL);
}

/* =========================================================================================
 * Binary ops with broadcasting: shapes that do not broadcast and mixed dtypes
 * are errors; NaN and infinities, empty and 0-d operands give PyTorch's values.
 * ========================================================================================= */

typedef struct binary_row {
    const char *name; /* as the op's messages name it */
    ad_tensor *(*op)(ad_tensor *a, ad_tensor *b);
    int n;
    double a[12], b[12]; /* the last pair is finite: the 0-d cases use it */
    double y[12], ga[12], gb[12];
} binary_row;

// clang-format off
#define SPECIAL_A {NAN, 1.0, INFINITY, INFINITY, -INFINITY, 0.0, 0.0, 2.0}
#define SPECIAL_B {1.0, NAN, INFINITY, -INFINITY, -INFINITY, 0.0, -0.0, 2.0}
// clang-format on

/* PyTorch 1.13: torch.<op>(a, b) and the gradients of its sum. */
static const binary_row binary_rows[] = {
    {"add",
     ad_add,
     8,
     SPECIAL_A,
     SPECIAL_B,
     {NAN, NAN, INFINITY, NAN, -INFINITY, 0.0, 0.0, 4.0},
     {1, 1, 1, 1, 1, 1, 1, 1},
     {1, 1, 1, 1, 1, 1, 1, 1}},
    {"sub",
     ad_sub,
     8,
     SPECIAL_A,
     SPECIAL_B,
     {NAN, NAN, NAN, INFINITY, NAN, 0.0, 0.0, 0.0},
     {1, 1, 1, 1, 1, 1, 1, 1},
     {-1, -1, -1, -1, -1, -1, -1, -1}},
    {"mul",
     ad_mul,
     8,
     SPECIAL_A,
     SPECIAL_B,
     {NAN, NAN, INFINITY, -INFINITY, INFINITY, 0.0, -0.0, 4.0},
     {1.0, NAN, INFINITY, -INFINITY, -INFINITY, 0.0, -0.0, 2.0},
     {NAN, 1.0, INFINITY, INFINITY, -INFINITY, 0.0, 0.0, 2.0}},
    {"div",
     ad_div,
     8,
     SPECIAL_A,
     SPECIAL_B,
     {NAN, NAN, NAN, NAN, NAN, NAN, NAN, 1.0},
     {1.0, NAN, 0.0, -0.0, -0.0, INFINITY, -INFINITY, 0.5},
     {NAN, NAN, NAN, NAN, NAN, NAN, NAN, -0.5}},
    /* pow at 0: d/db is 0 where a = 0 and b >= 0; d/da is 0 where b = 0. */
    {"pow",
     ad_pow,
     12,
     {0.0, 0.0, 0.0, -8.0, 2.0, 0.0, NAN, INFINITY, 1.0, -0.0, 4.0, 2.0},
     {0.0, 0.5, -1.0, 1.0 / 3.0, NAN, 2.0, 0.0, 0.0, INFINITY, 0.5, -INFINITY, 3.0},
     {1.0, 0.0, INFINITY, NAN, NAN, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 8.0},
     {0.0, INFINITY, -INFINITY, NAN, NAN, 0.0, 0.0, 0.0, INFINITY, INFINITY, NAN, 12.0},
     {0.0, 0.0, -INFINITY, NAN, NAN, 0.0, NAN, INFINITY, 0.0, 0.0, 0.0, 5.545177444479562}},
    /* maximum, minimum: NaN wins the value and both operands get the
     * gradient; a tie (inf with inf, 0 with -0) gives each half. */
    {"maximum",
     ad_maximum,
     8,
     SPECIAL_A,
     SPECIAL_B,
     {NAN, NAN, INFINITY, INFINITY, -INFINITY, 0.0, -0.0, 2.0},
     {1.0, 1.0, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5},
     {1.0, 1.0, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5}},
    {"minimum",
     ad_minimum,
     8,
     SPECIAL_A,
     SPECIAL_B,
     {NAN, NAN, INFINITY, -INFINITY, -INFINITY, 0.0, -0.0, 2.0},
     {1.0, 1.0, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5},
     {1.0, 1.0, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5}},
    /* remainder: the sign of b; NaN where b = 0, with d/db = -a / b there; an
     * infinite b of a's sign leaves a, of the other sign gives b; d/db is
     * -floor(a / b), its zeros signed as the quotient. */
    {"remainder",
     ad_remainder,
     12,
     {NAN, 1.0, 0.0, 1.0, -0.0, 5.0, -5.0, 5.0, -5.0, 6.0, -6.0, -7.5},
     {0.0, 0.0, 0.0, INFINITY, 2.0, 3.0, 3.0, -INFINITY, -3.0, -3.0, 3.0, 2.0},
     {NAN, NAN, NAN, 1.0, -0.0, 2.0, 1.0, -INFINITY, -2.0, 0.0, -0.0, 0.5},
     {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0},
     {NAN, -INFINITY, NAN, -0.0, 0.0, -1.0, 2.0, 1.0, -1.0, 2.0, 2.0, 4.0}},
    /* fmod: the sign of a; d/db is -trunc(a / b). */
    {"fmod",
     ad_fmod,
     12,
     {NAN, 1.0, 0.0, 1.0, -0.0, 5.0, -5.0, 5.0, -5.0, 6.0, -6.0, -7.5},
     {0.0, 0.0, 0.0, INFINITY, 2.0, 3.0, 3.0, -INFINITY, -3.0, -3.0, 3.0, 2.0},
     {NAN, NAN, NAN, 1.0, -0.0, 2.0, -2.0, 5.0, -2.0, 0.0, -0.0, -1.5},
     {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0},
     {NAN, -INFINITY, NAN, -0.0, 0.0, -1.0, 1.0, 0.0, -1.0, 2.0, 2.0, 3.0}},
    /* logaddexp, logaddexp2: two equal infinities give that infinity with NaN
     * weights; inf with -inf gives inf with weights 1 and 0; ties weigh 1/2. */
    {"logaddexp",
     ad_logaddexp,
     8,
     SPECIAL_A,
     SPECIAL_B,
     {NAN, NAN, INFINITY, INFINITY, -INFINITY, 0.6931471805599453, 0.6931471805599453,
      2.6931471805599454},
     {NAN, NAN, NAN, 1.0, NAN, 0.5, 0.5, 0.5},
     {NAN, NAN, NAN, 0.0, NAN, 0.5, 0.5, 0.5}},
    {"logaddexp2",
     ad_logaddexp2,
     8,
     SPECIAL_A,
     SPECIAL_B,
     {NAN, NAN, INFINITY, INFINITY, -INFINITY, 1.0, 1.0, 3.0},
     {NAN, NAN, NAN, 1.0, NAN, 0.5, 0.5, 0.5},
     {NAN, NAN, NAN, 0.0, NAN, 0.5, 0.5, 0.5}},
};

static void binary_shapes_do_not_broadcast(run *r)
{
    const binary_row *row = r->row;
    ad_tensor *w = witness(r->tape);
    ad_tensor *y = row->op(F64(r->tape, 2, 3), F64(r->tape, 4));
    assert_op_error(r->tape, y, AD_ERR_SHAPE, ((const char *[]){row->name, "[2,3]", "[4]", NULL}));
    assert_usable_after_clearing(r->tape, w);
}

/* [0] and [2] do not broadcast either: PyTorch raises too. */
static void binary_empty_shapes_do_not_broadcast(run *r)
{
    const binary_row *row = r->row;
    ad_tensor *w = witness(r->tape);
    ad_tensor *y = row->op(F64(r->tape, 0), F64(r->tape, 2));
    assert_op_error(r->tape, y, AD_ERR_SHAPE, ((const char *[]){row->name, "[0]", "[2]", NULL}));
    assert_usable_after_clearing(r->tape, w);
}

static void binary_dtypes_differ(run *r)
{
    const binary_row *row = r->row;
    ad_tensor *w = witness(r->tape);
    ad_tensor *y = row->op(F32(r->tape, 2), F64(r->tape, 2));
    assert_op_error(r->tape, y, AD_ERR_DTYPE,
                    ((const char *[]){row->name, "float32", "float64", "[2]", NULL}));
    assert_usable_after_clearing(r->tape, w);
}

static void binary_specials(run *r)
{
    const binary_row *row = r->row;
    ad_tensor *x[2] = {leaf(r->tape, AD_F64, 1, (int64_t[]){row->n}, row->a),
                       leaf(r->tape, AD_F64, 1, (int64_t[]){row->n}, row->b)};
    ad_tensor *y = row->op(x[0], x[1]), *g[2];
    assert_like_torch(y, 1, (int64_t[]){row->n}, row->y, RTOL_F64);
    grads_of_sum(y, 2, x, g);
    assert_like_torch(g[0], 1, (int64_t[]){row->n}, row->ga, RTOL_F64);
    assert_like_torch(g[1], 1, (int64_t[]){row->n}, row->gb, RTOL_F64);
}

/* [2,0] with [1] is [2,0]: the [1] operand's gradient is a sum over nothing,
 * 0 (PyTorch); with [0] both gradients are empty. */
static void binary_empty(run *r)
{
    const binary_row *row = r->row;
    ad_tensor *x[2] = {leaf(r->tape, AD_F64, DIMS(2, 0), NULL),
                       leaf(r->tape, AD_F64, DIMS(1), (double[]){1.0})};
    ad_tensor *y = row->op(x[0], x[1]), *g[2];
    assert_like_torch(y, DIMS(2, 0), NULL, 0);
    grads_of_sum(y, 2, x, g);
    assert_like_torch(g[0], DIMS(2, 0), NULL, 0);
    assert_like_torch(g[1], DIMS(1), (double[]){0.0}, 0);
    x[1] = leaf(r->tape, AD_F64, DIMS(0), NULL);
    y = row->op(x[0], x[1]);
    assert_like_torch(y, DIMS(2, 0), NULL, 0);
    grads_of_sum(y, 2, x, g);
    assert_like_torch(g[0], DIMS(2, 0), NULL, 0);
    assert_like_torch(g[1], DIMS(0), NULL, 0);
}

/* A 0-d a with a [3] b: y is [3], a's gradient sums three contributions. */
static void binary_scalar(run *r)
{
    const binary_row *row = r->row;
    int k = row->n - 1;
    ad_tensor *x[2] = {ad_requires_grad(ad_scalar(r->tape, row->a[k])),
                       leaf(r->tape, AD_F64, DIMS(3), (double[]){row->b[k], row->b[k], row->b[k]})};
    ad_tensor *y = row->op(x[0], x[1]), *g[2];
    assert_like_torch(y, DIMS(3), ((double[]){row->y[k], row->y[k], row->y[k]}), RTOL_F64);
    grads_of_sum(y, 2, x, g);
    assert_like_torch(g[0], 0, NULL, (double[]){3 * row->ga[k]}, RTOL_F64);
    assert_like_torch(g[1], DIMS(3), ((double[]){row->gb[k], row->gb[k], row->gb[k]}), RTOL_F64);
}

static int run_binary_group(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(binary_rows) * 6];
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(binary_rows); i++) {
        const binary_row *row = &binary_rows[i];
        const char *n = row->name;
        tests[k++] = make_test(binary_shapes_do_not_broadcast, row, AD_F64,
                               "test_%s_of_shapes_that_do_not_broadcast_is_a_shape_error_naming_"
                               "both",
                               n);
        tests[k++] = make_test(binary_empty_shapes_do_not_broadcast, row, AD_F64,
                               "test_%s_of_an_empty_and_a_2_vector_is_a_shape_error", n);
        tests[k++] = make_test(binary_dtypes_differ, row, AD_F64,
                               "test_%s_of_float32_and_float64_is_a_dtype_error_naming_both", n);
        tests[k++] = make_test(binary_specials, row, AD_F64,
                               "test_%s_of_nan_infinities_and_zeros_gives_pytorch_values_and_"
                               "gradients",
                               n);
        tests[k++] = make_test(binary_empty, row, AD_F64,
                               "test_%s_with_an_empty_operand_is_empty_and_sums_nothing_into_the_"
                               "other",
                               n);
        tests[k++] =
            make_test(binary_scalar, row, AD_F64,
                      "test_%s_of_a_0d_and_a_vector_broadcasts_and_sums_the_0d_gradient", n);
    }
    return cmocka_run_group_tests_name("binary ops", tests, NULL, NULL);
}

/* =========================================================================================
 * Tensor-with-scalar forms: NaN, infinities and zeros on either side.
 * ========================================================================================= */

static const double scalar_form_x[N_SPECIAL] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 2.0, -1.0};

typedef struct scalar_form_row {
    const char *name;
    ad_tensor *(*op)(ad_tensor *x);
    double y[N_SPECIAL], g[N_SPECIAL]; /* at scalar_form_x (PyTorch 1.13) */
} scalar_form_row;

static ad_tensor *add_inf(ad_tensor *x)
{
    return ad_add_scalar(x, INFINITY);
}
static ad_tensor *sub_inf(ad_tensor *x)
{
    return ad_sub_scalar(x, INFINITY);
}
static ad_tensor *rsub_1(ad_tensor *x)
{
    return ad_rsub_scalar(x, 1.0);
}
static ad_tensor *mul_0(ad_tensor *x)
{
    return ad_mul_scalar(x, 0.0);
}
static ad_tensor *mul_minus_inf(ad_tensor *x)
{
    return ad_mul_scalar(x, -INFINITY);
}
static ad_tensor *div_0(ad_tensor *x)
{
    return ad_div_scalar(x, 0.0);
}
static ad_tensor *div_inf(ad_tensor *x)
{
    return ad_div_scalar(x, INFINITY);
}
static ad_tensor *rdiv_1(ad_tensor *x)
{
    return ad_rdiv_scalar(x, 1.0);
}
static ad_tensor *rpow_0(ad_tensor *x)
{
    return ad_rpow_scalar(x, 0.0);
}
static ad_tensor *rpow_2(ad_tensor *x)
{
    return ad_rpow_scalar(x, 2.0);
}
static ad_tensor *rpow_minus_8(ad_tensor *x)
{
    return ad_rpow_scalar(x, -8.0);
}
static ad_tensor *maximum_0(ad_tensor *x)
{
    return ad_maximum_scalar(x, 0.0);
}
static ad_tensor *minimum_0(ad_tensor *x)
{
    return ad_minimum_scalar(x, 0.0);
}
static ad_tensor *maximum_nan(ad_tensor *x)
{
    return ad_maximum_scalar(x, NAN);
}
static ad_tensor *remainder_minus_1_5(ad_tensor *x)
{
    return ad_remainder_scalar(x, -1.5);
}
static ad_tensor *remainder_0(ad_tensor *x)
{
    return ad_remainder_scalar(x, 0.0);
}
static ad_tensor *fmod_1_5(ad_tensor *x)
{
    return ad_fmod_scalar(x, 1.5);
}
static ad_tensor *fmod_inf(ad_tensor *x)
{
    return ad_fmod_scalar(x, INFINITY);
}

/* PyTorch 1.13 at x = {nan, inf, -inf, 0, -0, 2, -1}: x + inf, 1 - x,
 * torch.pow(torch.tensor(s), x), torch.maximum(x, torch.tensor(s)), ... */
static const scalar_form_row scalar_form_rows[] = {
    {"add_scalar_inf",
     add_inf,
     {NAN, INFINITY, NAN, INFINITY, INFINITY, INFINITY, INFINITY},
     {1, 1, 1, 1, 1, 1, 1}},
    {"sub_scalar_inf",
     sub_inf,
     {NAN, NAN, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
     {1, 1, 1, 1, 1, 1, 1}},
    {"rsub_scalar_1",
     rsub_1,
     {NAN, -INFINITY, INFINITY, 1.0, 1.0, -1.0, 2.0},
     {-1, -1, -1, -1, -1, -1, -1}},
    {"mul_scalar_0", mul_0, {NAN, NAN, NAN, 0.0, -0.0, 0.0, -0.0}, {0, 0, 0, 0, 0, 0, 0}},
    {"mul_scalar_minus_inf",
     mul_minus_inf,
     {NAN, -INFINITY, INFINITY, NAN, NAN, -INFINITY, INFINITY},
     {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY}},
    {"div_scalar_0",
     div_0,
     {NAN, INFINITY, -INFINITY, NAN, NAN, INFINITY, -INFINITY},
     {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY}},
    {"div_scalar_inf", div_inf, {NAN, NAN, NAN, 0.0, -0.0, 0.0, -0.0}, {0, 0, 0, 0, 0, 0, 0}},
    {"rdiv_scalar_1",
     rdiv_1,
     {NAN, 0.0, -0.0, INFINITY, -INFINITY, 0.5, -1.0},
     {NAN, -0.0, -0.0, -INFINITY, -INFINITY, -0.25, -1.0}},
    /* 0^x: the gradient is 0 where x >= 0 (not 0 * log 0 = NaN). */
    {"rpow_scalar_0",
     rpow_0,
     {NAN, 0.0, INFINITY, 1.0, 1.0, 0.0, INFINITY},
     {NAN, 0.0, -INFINITY, 0.0, 0.0, 0.0, -INFINITY}},
    {"rpow_scalar_2",
     rpow_2,
     {NAN, INFINITY, 0.0, 1.0, 1.0, 4.0, 0.5},
     {NAN, INFINITY, 0.0, 0.6931471805599453, 0.6931471805599453, 2.772588722239781,
      0.34657359027997264}},
    {"rpow_scalar_minus_8",
     rpow_minus_8,
     {NAN, INFINITY, 0.0, 1.0, 1.0, 64.0, -0.125},
     {NAN, NAN, NAN, NAN, NAN, NAN, NAN}},
    /* maximum and minimum of -0 and 0: +0, the second operand, as PyTorch's
     * vectorised loop gives it (its scalar tail gives the first, -0, so
     * torch.maximum(x, 0) at x = -0 depends on where -0 sits in x). */
    {"maximum_scalar_0",
     maximum_0,
     {NAN, INFINITY, 0.0, 0.0, 0.0, 2.0, 0.0},
     {1.0, 1.0, 0.0, 0.5, 0.5, 1.0, 0.0}},
    {"minimum_scalar_0",
     minimum_0,
     {NAN, 0.0, -INFINITY, 0.0, 0.0, 0.0, -1.0},
     {1.0, 0.0, 1.0, 0.5, 0.5, 0.0, 1.0}},
    {"maximum_scalar_nan", maximum_nan, {NAN, NAN, NAN, NAN, NAN, NAN, NAN}, {1, 1, 1, 1, 1, 1, 1}},
    /* remainder and fmod: the gradient is dy wherever the value is NaN too. */
    {"remainder_scalar_minus_1.5",
     remainder_minus_1_5,
     {NAN, NAN, NAN, 0.0, -0.0, -1.0, -1.0},
     {1, 1, 1, 1, 1, 1, 1}},
    {"remainder_scalar_0", remainder_0, {NAN, NAN, NAN, NAN, NAN, NAN, NAN}, {1, 1, 1, 1, 1, 1, 1}},
    {"fmod_scalar_1.5", fmod_1_5, {NAN, NAN, NAN, 0.0, -0.0, 0.5, -1.0}, {1, 1, 1, 1, 1, 1, 1}},
    {"fmod_scalar_inf", fmod_inf, {NAN, NAN, NAN, 0.0, -0.0, 2.0, -1.0}, {1, 1, 1, 1, 1, 1, 1}},
};

static void scalar_form_specials(run *r)
{
    const scalar_form_row *row = r->row;
    ad_tensor *x = leaf(r->tape, AD_F64, DIMS(N_SPECIAL), scalar_form_x);
    ad_tensor *y = row->op(x);
    assert_like_torch(y, DIMS(N_SPECIAL), row->y, RTOL_F64);
    assert_like_torch(grad_of_sum(y, x), DIMS(N_SPECIAL), row->g, RTOL_F64);
}

static void scalar_form_empty(run *r)
{
    const scalar_form_row *row = r->row;
    ad_tensor *x = leaf(r->tape, AD_F64, DIMS(0, 3), NULL);
    ad_tensor *y = row->op(x);
    assert_like_torch(y, DIMS(0, 3), NULL, 0);
    assert_like_torch(grad_of_sum(y, x), DIMS(0, 3), NULL, 0);
}

/* At x = 2, the sixth of scalar_form_x. */
static void scalar_form_scalar(run *r)
{
    const scalar_form_row *row = r->row;
    ad_tensor *x = ad_requires_grad(ad_scalar(r->tape, 2.0));
    ad_tensor *y = row->op(x);
    assert_like_torch(y, 0, NULL, &row->y[5], RTOL_F64);
    assert_like_torch(grad_of_sum(y, x), 0, NULL, &row->g[5], RTOL_F64);
}

static int run_scalar_form_group(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(scalar_form_rows) * 3];
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(scalar_form_rows); i++) {
        const scalar_form_row *row = &scalar_form_rows[i];
        tests[k++] = make_test(scalar_form_specials, row, AD_F64,
                               "test_%s_of_nan_infinities_and_zeros_gives_pytorch_values_and_"
                               "gradients",
                               row->name);
        tests[k++] =
            make_test(scalar_form_empty, row, AD_F64,
                      "test_%s_of_an_empty_tensor_is_empty_with_an_empty_gradient", row->name);
        tests[k++] = make_test(scalar_form_scalar, row, AD_F64,
                               "test_%s_of_a_0d_tensor_is_0d_with_its_gradient", row->name);
    }
    return cmocka_run_group_tests_name("tensor-with-scalar ops", tests, NULL, NULL);
}

/* =========================================================================================
 * Reductions: bad axis lists are AD_ERR_AXIS naming the op and the shape; empty
 * and 0-d inputs as PyTorch.
 * ========================================================================================= */

typedef struct reduce_row {
    const char *name;
    ad_tensor *(*op)(ad_tensor *x, int n_axes, const int *axes, bool keepdim);
    ad_status empty_status;    /* reducing over an empty dim: AD_OK, or max's AD_ERR_SHAPE */
    double empty_all;          /* over all of a [0] tensor */
    double empty_rows[2];      /* over axis 1 of a [2,0] tensor */
    double scalar_y, scalar_g; /* of a 0-d 3 */
    bool scalar_no_grad;       /* PyTorch's own gradient there is not consistent */
} reduce_row;

static ad_tensor *var_1(ad_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return ad_var(x, n_axes, axes, keepdim, 1);
}

/* PyTorch 1.13: x.sum(), x.mean(), x.amax(), x.logsumexp(0), x.var() of a
 * [0] tensor; of a [2,0] tensor over dim 1; of torch.tensor(3.). amax over an
 * empty dim raises ("Expected reduction dim 1 to have non-zero size"). The
 * var of a 0-d tensor is NaN; its gradient (inf from torch.var of a 0-d
 * tensor, an exception from torch.var of a [1] tensor) is not compared. */
static const reduce_row reduce_rows[] = {
    {"sum", ad_sum, AD_OK, 0.0, {0.0, 0.0}, 3.0, 1.0, false},
    {"mean", ad_mean, AD_OK, NAN, {NAN, NAN}, 3.0, 1.0, false},
    {"max", ad_max, AD_ERR_SHAPE, 0, {0, 0}, 3.0, 1.0, false},
    {"logsumexp", ad_logsumexp, AD_OK, -INFINITY, {-INFINITY, -INFINITY}, 3.0, 1.0, false},
    {"var", var_1, AD_OK, NAN, {NAN, NAN}, NAN, 0, true},
};

static void reduce_axis_error(run *r, int n_axes, const int *axes, const char *part)
{
    const reduce_row *row = r->row;
    ad_tensor *w = witness(r->tape);
    ad_tensor *y = row->op(F64(r->tape, 2, 3), n_axes, axes, false);
    assert_op_error(r->tape, y, AD_ERR_AXIS, ((const char *[]){row->name, "[2,3]", part, NULL}));
    assert_usable_after_clearing(r->tape, w);
}

static void reduce_axis_out_of_range(run *r)
{
    reduce_axis_error(r, 1, (int[]){2}, "2");
}

static void reduce_axis_negative_beyond_ndim(run *r)
{
    reduce_axis_error(r, 1, (int[]){-3}, "-3");
}

static void reduce_axis_repeated(run *r)
{
    reduce_axis_error(r, 2, (int[]){0, -2}, "repeated");
}

static void reduce_negative_axis_count(run *r)
{
    reduce_axis_error(r, -1, (int[]){0}, "-1");
}

static void reduce_null_axes(run *r)
{
    reduce_axis_error(r, 1, NULL, "1 axes");
}

/* PyTorch accepts dim 0 (and -1) for a 0-d tensor; we give a clear error. */
static void reduce_axis_of_a_0d_tensor(run *r)
{
    const reduce_row *row = r->row;
    ad_tensor *w = witness(r->tape);
    ad_tensor *y = row->op(ad_scalar(r->tape, 3.0), 1, (int[]){0}, false);
    assert_op_error(r->tape, y, AD_ERR_AXIS, ((const char *[]){row->name, "[]", NULL}));
    assert_usable_after_clearing(r->tape, w);
}

static void reduce_empty_all(run *r)
{
    const reduce_row *row = r->row;
    ad_tensor *x = leaf(r->tape, AD_F64, DIMS(0), NULL);
    ad_tensor *y = row->op(x, 0, NULL, false);
    if (row->empty_status != AD_OK) {
        assert_op_error(r->tape, y, row->empty_status, ((const char *[]){row->name, "[0]", NULL}));
        return;
    }
    assert_like_torch(y, 0, NULL, &row->empty_all, RTOL_F64);
    assert_like_torch(grad_of_sum(y, x), DIMS(0), NULL, 0);
}

static void reduce_empty_rows(run *r)
{
    const reduce_row *row = r->row;
    ad_tensor *x = leaf(r->tape, AD_F64, DIMS(2, 0), NULL);
    ad_tensor *y = row->op(x, 1, (int[]){1}, false);
    if (row->empty_status != AD_OK) {
        assert_op_error(r->tape, y, row->empty_status,
                        ((const char *[]){row->name, "[2,0]", NULL}));
        return;
    }
    assert_like_torch(y, DIMS(2), row->empty_rows, RTOL_F64);
    assert_like_torch(grad_of_sum(y, x), DIMS(2, 0), NULL, 0);
}

/* Over the non-empty dim 0 of [2,0], keepdim: a [1,0] result for every op. */
static void reduce_empty_kept(run *r)
{
    const reduce_row *row = r->row;
    ad_tensor *x = leaf(r->tape, AD_F64, DIMS(2, 0), NULL);
    ad_tensor *y = row->op(x, 1, (int[]){0}, true);
    assert_like_torch(y, DIMS(1, 0), NULL, 0);
    assert_like_torch(grad_of_sum(y, x), DIMS(2, 0), NULL, 0);
}

static void reduce_scalar(run *r)
{
    const reduce_row *row = r->row;
    ad_tensor *x = ad_requires_grad(ad_scalar(r->tape, 3.0));
    ad_tensor *y = row->op(x, 0, NULL, false);
    assert_like_torch(y, 0, NULL, &row->scalar_y, RTOL_F64);
    if (!row->scalar_no_grad)
        assert_like_torch(grad_of_sum(y, x), 0, NULL, &row->scalar_g, RTOL_F64);
}

static int run_reduce_group(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(reduce_rows) * 10];
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(reduce_rows); i++) {
        const reduce_row *row = &reduce_rows[i];
        const char *n = row->name;
        tests[k++] =
            make_test(reduce_axis_out_of_range, row, AD_F64,
                      "test_%s_over_axis_2_of_a_matrix_is_an_axis_error_naming_the_shape", n);
        tests[k++] = make_test(reduce_axis_negative_beyond_ndim, row, AD_F64,
                               "test_%s_over_axis_minus_3_of_a_matrix_is_an_axis_error", n);
        tests[k++] = make_test(reduce_axis_repeated, row, AD_F64,
                               "test_%s_over_axes_0_and_minus_2_is_a_repeated_axis_error", n);
        tests[k++] = make_test(reduce_negative_axis_count, row, AD_F64,
                               "test_%s_with_a_negative_axis_count_is_an_axis_error_naming_the_"
                               "shape",
                               n);
        tests[k++] = make_test(reduce_null_axes, row, AD_F64,
                               "test_%s_with_a_null_axis_list_of_one_axis_is_an_axis_error_naming_"
                               "the_shape",
                               n);
        tests[k++] = make_test(reduce_axis_of_a_0d_tensor, row, AD_F64,
                               "test_%s_of_a_0d_tensor_over_axis_0_is_an_axis_error", n);
        tests[k++] = make_test(reduce_empty_all, row, AD_F64,
                               "test_%s_of_an_empty_tensor_is_pytorchs_value_with_an_empty_"
                               "gradient",
                               n);
        tests[k++] = make_test(reduce_empty_rows, row, AD_F64,
                               "test_%s_over_an_empty_dim_is_pytorchs_value_per_row", n);
        tests[k++] =
            make_test(reduce_empty_kept, row, AD_F64,
                      "test_%s_of_an_empty_tensor_over_its_full_dim_keeps_an_empty_shape", n);
        tests[k++] = make_test(reduce_scalar, row, AD_F64,
                               "test_%s_of_a_0d_tensor_is_the_value_with_gradient_1", n);
    }
    return cmocka_run_group_tests_name("reductions", tests, NULL, NULL);
}

/* =========================================================================================
 * The error table: one row per bad input of the other ops. The builder makes
 * its inputs on the tape and calls the op once; the op must return NULL with
 * the status, and a message holding every part; the tape must then stay
 * usable.
 * ========================================================================================= */

typedef struct error_row {
    const char *name;
    ad_tensor *(*build)(ad_tape *tape);
    ad_status status;
    const char *parts[MAX_PARTS];
    const char *known_bug; /* skipped, and reported, while this is wrong */
} error_row;

/* ---- linear algebra ---- */
static ad_tensor *matmul_inner_mismatch(ad_tape *t)
{
    return ad_matmul(F64(t, 2, 3), F64(t, 4, 5));
}
static ad_tensor *matmul_vectors_of_different_lengths(ad_tape *t)
{
    return ad_matmul(F64(t, 3), F64(t, 4));
}
static ad_tensor *matmul_matrix_and_short_vector(ad_tape *t)
{
    return ad_matmul(F64(t, 2, 3), F64(t, 4));
}
static ad_tensor *matmul_batch_mismatch(ad_tape *t)
{
    return ad_matmul(F64(t, 2, 2, 3), F64(t, 3, 3, 4));
}
static ad_tensor *matmul_0d(ad_tape *t)
{
    return ad_matmul(ad_scalar(t, 2.0), F64(t, 3));
}
static ad_tensor *matmul_dtypes(ad_tape *t)
{
    return ad_matmul(F32(t, 2, 3), F64(t, 3, 2));
}
static ad_tensor *matmul_t_vector(ad_tape *t)
{
    return ad_matmul_t(F64(t, 3), F64(t, 3, 2), false, false);
}
static ad_tensor *matmul_t_transposed_mismatch(ad_tape *t)
{
    return ad_matmul_t(F64(t, 2, 3), F64(t, 3, 4), true, false);
}
static ad_tensor *matmul_t_dtypes(ad_tape *t)
{
    return ad_matmul_t(F64(t, 2, 2), F32(t, 2, 2), false, true);
}
static ad_tensor *permute_repeated(ad_tape *t)
{
    return ad_permute(F64(t, 2, 3), (int[]){0, 0});
}
static ad_tensor *permute_out_of_range(ad_tape *t)
{
    return ad_permute(F64(t, 2, 3), (int[]){0, 2});
}
static ad_tensor *permute_negative(ad_tape *t)
{
    return ad_permute(F64(t, 2, 3), (int[]){-1, 0});
}
static ad_tensor *permute_null(ad_tape *t)
{
    return ad_permute(F64(t, 2, 3), NULL);
}
static ad_tensor *transpose_axis_2(ad_tape *t)
{
    return ad_transpose(F64(t, 2, 3), 0, 2);
}
static ad_tensor *transpose_axis_minus_3(ad_tape *t)
{
    return ad_transpose(F64(t, 2, 3), -3, 1);
}
static ad_tensor *transpose_0d(ad_tape *t)
{
    return ad_transpose(ad_scalar(t, 1.0), 0, 0);
}

/* ---- shape ---- */
static ad_tensor *reshape_wrong_count(ad_tape *t)
{
    return ad_reshape(F64(t, 2, 3), DIMS(4));
}
static ad_tensor *reshape_two_inferred(ad_tape *t)
{
    return ad_reshape(F64(t, 2, 3), DIMS(-1, -1));
}
static ad_tensor *reshape_negative(ad_tape *t)
{
    return ad_reshape(F64(t, 2, 3), DIMS(-2, -3));
}
static ad_tensor *reshape_inferred_not_dividing(ad_tape *t)
{
    return ad_reshape(F64(t, 2, 3), DIMS(-1, 4));
}
static ad_tensor *reshape_rank_9(ad_tape *t)
{
    return ad_reshape(F64(t, 2, 3), DIMS(1, 1, 1, 1, 1, 1, 1, 2, 3));
}
static ad_tensor *reshape_null_shape(ad_tape *t)
{
    return ad_reshape(F64(t, 2, 3), 2, NULL);
}
static ad_tensor *reshape_empty_inferred(ad_tape *t)
{
    return ad_reshape(F64(t, 0, 3), DIMS(-1, 0));
}
static ad_tensor *expand_not_broadcast(ad_tape *t)
{
    return ad_expand(F64(t, 3), DIMS(2));
}
static ad_tensor *expand_fewer_dims(ad_tape *t)
{
    return ad_expand(F64(t, 2, 3), DIMS(3));
}
static ad_tensor *expand_negative(ad_tape *t)
{
    return ad_expand(F64(t, 3), DIMS(-1, 3));
}
static ad_tensor *expand_empty_to_2(ad_tape *t)
{
    return ad_expand(F64(t, 0), DIMS(2));
}
static ad_tensor *expand_null_shape(ad_tape *t)
{
    return ad_expand(F64(t, 3), 2, NULL);
}
static ad_tensor *sum_to_not_broadcast(ad_tape *t)
{
    return ad_sum_to(F64(t, 2, 3), DIMS(4));
}
static ad_tensor *sum_to_more_dims(ad_tape *t)
{
    return ad_sum_to(F64(t, 3), DIMS(2, 3));
}
static ad_tensor *sum_to_null_shape(ad_tape *t)
{
    return ad_sum_to(F64(t, 2, 3), 1, NULL);
}

/* ---- slicing and joining ---- */
static ad_tensor *slice_axis_2(ad_tape *t)
{
    return ad_slice(F64(t, 2, 3), 2, 0, 1, 1);
}
static ad_tensor *slice_step_0(ad_tape *t)
{
    return ad_slice(F64(t, 2, 3), 1, 0, 3, 0);
}
static ad_tensor *slice_step_negative(ad_tape *t)
{
    return ad_slice(F64(t, 2, 3), 1, 2, 0, -1);
}
static ad_tensor *slice_0d(ad_tape *t)
{
    return ad_slice(ad_scalar(t, 1.0), 0, 0, 1, 1);
}
static ad_tensor *slice_scatter_step_0(ad_tape *t)
{
    return ad_slice_scatter(F64(t, 2), 0, 4, 0, 0);
}
static ad_tensor *slice_scatter_does_not_fit(ad_tape *t)
{
    return ad_slice_scatter(F64(t, 3), 0, 2, 0, 1);
}
static ad_tensor *slice_scatter_negative_start(ad_tape *t)
{
    return ad_slice_scatter(F64(t, 2), 0, 4, -1, 1);
}
static ad_tensor *slice_scatter_negative_length(ad_tape *t)
{
    return ad_slice_scatter(F64(t, 0), 0, -1, 0, 1);
}
static ad_tensor *slice_scatter_axis_1(ad_tape *t)
{
    return ad_slice_scatter(F64(t, 2), 1, 4, 0, 1);
}
static ad_tensor *concat_dims_differ(ad_tape *t)
{
    return ad_concat(2, (ad_tensor *[]){F64(t, 2, 3), F64(t, 2, 4)}, 0);
}
static ad_tensor *concat_ranks_differ(ad_tape *t)
{
    return ad_concat(2, (ad_tensor *[]){F64(t, 2, 3), F64(t, 3)}, 0);
}
static ad_tensor *concat_axis_2(ad_tape *t)
{
    return ad_concat(2, (ad_tensor *[]){F64(t, 2, 3), F64(t, 2, 3)}, 2);
}
static ad_tensor *concat_dtypes(ad_tape *t)
{
    return ad_concat(2, (ad_tensor *[]){F64(t, 2, 3), F32(t, 2, 3)}, 0);
}
static ad_tensor *concat_0d(ad_tape *t)
{
    return ad_concat(2, (ad_tensor *[]){ad_scalar(t, 1.0), ad_scalar(t, 2.0)}, 0);
}
static ad_tensor *stack_shapes_differ(ad_tape *t)
{
    return ad_stack(2, (ad_tensor *[]){F64(t, 2), F64(t, 3)}, 0);
}
static ad_tensor *stack_axis_3(ad_tape *t)
{
    return ad_stack(2, (ad_tensor *[]){F64(t, 2, 3), F64(t, 2, 3)}, 3);
}
static ad_tensor *stack_dtypes(ad_tape *t)
{
    return ad_stack(2, (ad_tensor *[]){F64(t, 2), F32(t, 2)}, 0);
}
static ad_tensor *stack_8d(ad_tape *t)
{
    return ad_stack(1, (ad_tensor *[]){F64(t, 1, 1, 1, 1, 1, 1, 1, 2)}, 0);
}

/* ---- indexing ---- */
static ad_tensor *index_select_negative(ad_tape *t)
{
    return ad_index_select(F64(t, 3, 2), 0, 2, (int64_t[]){0, -1});
}
static ad_tensor *index_select_too_large(ad_tape *t)
{
    return ad_index_select(F64(t, 3, 2), 0, 2, (int64_t[]){1, 3});
}
static ad_tensor *index_select_null(ad_tape *t)
{
    return ad_index_select(F64(t, 3, 2), 0, 2, NULL);
}
static ad_tensor *index_select_axis_2(ad_tape *t)
{
    return ad_index_select(F64(t, 3, 2), 2, 1, (int64_t[]){0});
}
static ad_tensor *index_select_0d(ad_tape *t)
{
    return ad_index_select(ad_scalar(t, 1.0), 0, 1, (int64_t[]){0});
}
static ad_tensor *index_add_count_differs(ad_tape *t)
{
    return ad_index_add(F64(t, 3), 0, 5, 2, (int64_t[]){0, 1});
}
static ad_tensor *index_add_too_large(ad_tape *t)
{
    return ad_index_add(F64(t, 2), 0, 5, 2, (int64_t[]){0, 5});
}
static ad_tensor *index_add_negative(ad_tape *t)
{
    return ad_index_add(F64(t, 2), 0, 5, 2, (int64_t[]){-1, 0});
}
static ad_tensor *index_add_null(ad_tape *t)
{
    return ad_index_add(F64(t, 2), 0, 5, 2, NULL);
}
static ad_tensor *index_add_negative_length(ad_tape *t)
{
    return ad_index_add(F64(t, 0), 0, -1, 0, NULL);
}
static ad_tensor *gather_ranks_differ(ad_tape *t)
{
    return ad_gather(F64(t, 2, 3), 1, DIMS(2), (int64_t[]){0, 1});
}
static ad_tensor *gather_too_large(ad_tape *t)
{
    return ad_gather(F64(t, 2, 3), 1, DIMS(2, 1), (int64_t[]){0, 3});
}
static ad_tensor *gather_negative(ad_tape *t)
{
    return ad_gather(F64(t, 2, 3), 1, DIMS(2, 1), (int64_t[]){-1, 0});
}
static ad_tensor *gather_null_index(ad_tape *t)
{
    return ad_gather(F64(t, 2, 3), 1, DIMS(2, 2), NULL);
}
static ad_tensor *gather_null_index_shape(ad_tape *t)
{
    return ad_gather(F64(t, 2, 3), 1, 2, NULL, (int64_t[]){0, 1});
}
static ad_tensor *gather_index_wider(ad_tape *t)
{
    return ad_gather(F64(t, 2, 3), 1, DIMS(3, 1), (int64_t[]){0, 1, 2});
}
static ad_tensor *gather_axis_2(ad_tape *t)
{
    return ad_gather(F64(t, 2, 3), 2, DIMS(2, 1), (int64_t[]){0, 1});
}
static ad_tensor *scatter_add_ranks_differ(ad_tape *t)
{
    return ad_scatter_add(F64(t, 2, 1), 1, DIMS(3), (int64_t[]){0, 1});
}
static ad_tensor *scatter_add_too_large(ad_tape *t)
{
    return ad_scatter_add(F64(t, 2, 1), 1, DIMS(2, 3), (int64_t[]){0, 3});
}
static ad_tensor *scatter_add_x_smaller(ad_tape *t)
{
    return ad_scatter_add(F64(t, 3, 1), 1, DIMS(2, 3), (int64_t[]){0, 1, 2});
}
static ad_tensor *scatter_add_negative_dim(ad_tape *t)
{
    return ad_scatter_add(F64(t, 2, 1), 1, DIMS(-2, 3), (int64_t[]){0, 1});
}
static ad_tensor *scatter_add_null_index(ad_tape *t)
{
    return ad_scatter_add(F64(t, 2, 1), 1, DIMS(2, 3), NULL);
}
static ad_tensor *where_shapes(ad_tape *t)
{
    return ad_where(F64(t, 2), F64(t, 3), F64(t, 2));
}
static ad_tensor *where_cond_dtype(ad_tape *t)
{
    return ad_where(F32(t, 2), F64(t, 2), F64(t, 2));
}
static ad_tensor *where_branch_dtypes(ad_tape *t)
{
    return ad_where(F64(t, 2), F64(t, 2), F32(t, 2));
}

/* ---- scans ---- */
static ad_tensor *cumsum_axis_2(ad_tape *t)
{
    return ad_cumsum(F64(t, 2, 3), 2);
}
static ad_tensor *cumprod_axis_2(ad_tape *t)
{
    return ad_cumprod(F64(t, 2, 3), 2);
}
static ad_tensor *cumprod_axis_minus_3(ad_tape *t)
{
    return ad_cumprod(F64(t, 2, 3), -3);
}
static ad_tensor *cumprod_0d_axis_1(ad_tape *t)
{
    return ad_cumprod(ad_scalar(t, 2.0), 1);
}
static ad_tensor *logcumsumexp_axis_2(ad_tape *t)
{
    return ad_logcumsumexp(F64(t, 2, 3), 2);
}
static ad_tensor *logcumsumexp_axis_minus_3(ad_tape *t)
{
    return ad_logcumsumexp(F64(t, 2, 3), -3);
}

/* ---- fused ---- */
static ad_tensor *softmax_axis_2(ad_tape *t)
{
    return ad_softmax(F64(t, 2, 3), 2);
}
static ad_tensor *softmax_axis_minus_3(ad_tape *t)
{
    return ad_softmax(F64(t, 2, 3), -3);
}
static ad_tensor *softmax_0d(ad_tape *t)
{
    return ad_softmax(ad_scalar(t, 1.0), 0);
}
static ad_tensor *log_softmax_axis_2(ad_tape *t)
{
    return ad_log_softmax(F64(t, 2, 3), 2);
}
static ad_tensor *log_softmax_0d(ad_tape *t)
{
    return ad_log_softmax(ad_scalar(t, 1.0), -1);
}
static ad_tensor *cross_entropy_1d(ad_tape *t)
{
    return ad_cross_entropy(F64(t, 3), 3, (int64_t[]){0, 1, 2});
}
static ad_tensor *cross_entropy_3d(ad_tape *t)
{
    return ad_cross_entropy(F64(t, 2, 3, 4), 2, (int64_t[]){0, 1});
}
static ad_tensor *cross_entropy_0d(ad_tape *t)
{
    return ad_cross_entropy(ad_scalar(t, 1.0), 1, (int64_t[]){0});
}
static ad_tensor *cross_entropy_count(ad_tape *t)
{
    return ad_cross_entropy(F64(t, 2, 3), 3, (int64_t[]){0, 1, 2});
}
static ad_tensor *cross_entropy_negative(ad_tape *t)
{
    return ad_cross_entropy(F64(t, 2, 3), 2, (int64_t[]){0, -1});
}
static ad_tensor *cross_entropy_too_large(ad_tape *t)
{
    return ad_cross_entropy(F64(t, 2, 3), 2, (int64_t[]){3, 0});
}
static ad_tensor *cross_entropy_null(ad_tape *t)
{
    return ad_cross_entropy(F64(t, 2, 3), 2, NULL);
}
static ad_tensor *cross_entropy_no_classes(ad_tape *t)
{
    return ad_cross_entropy(F64(t, 2, 0), 2, (int64_t[]){0, 0});
}
static ad_tensor *mse_shapes(ad_tape *t)
{
    return ad_mse_loss(F64(t, 2), F64(t, 3));
}
static ad_tensor *mse_dtypes(ad_tape *t)
{
    return ad_mse_loss(F32(t, 2), F64(t, 2));
}
/* lstm_cell_c, lstm_cell_h: gates [..., 4 H] and a state [..., H], the same leading dims */
static ad_tensor *lstm_cell_c_state_too_wide(ad_tape *t)
{
    return ad_lstm_cell_c(F64(t, 2, 8), F64(t, 2, 3));
}
static ad_tensor *lstm_cell_h_batches_differ(ad_tape *t)
{
    return ad_lstm_cell_h(F64(t, 2, 8), F64(t, 3, 2));
}
static ad_tensor *lstm_cell_c_state_broadcast(ad_tape *t)
{
    return ad_lstm_cell_c(F64(t, 2, 8), F64(t, 1, 2));
}
static ad_tensor *lstm_cell_h_ranks_differ(ad_tape *t)
{
    return ad_lstm_cell_h(F64(t, 2, 8), F64(t, 2));
}
static ad_tensor *lstm_cell_c_0d(ad_tape *t)
{
    return ad_lstm_cell_c(ad_full(t, AD_F64, 0, NULL, 1.0), ad_full(t, AD_F64, 0, NULL, 1.0));
}
static ad_tensor *lstm_cell_h_dtypes(ad_tape *t)
{
    return ad_lstm_cell_h(F32(t, 8), F64(t, 2));
}
static ad_tensor *cast_unknown_dtype(ad_tape *t)
{
    return ad_cast(F64(t, 2), (ad_dtype)7);
}

/* ---- custom ops and checkpoints ---- */
static ad_tensor *custom_two_inputs(ad_tape *t)
{
    return ad_custom(cube_op, 2, (ad_tensor *[]){F64(t, 2), F64(t, 2)}, NULL);
}
static ad_tensor *custom_null_op(ad_tape *t)
{
    return ad_custom(NULL, 1, (ad_tensor *[]){F64(t, 2)}, NULL);
}
static ad_tensor *custom_two_outputs(ad_tape *t)
{
    return ad_custom(two_op, 1, (ad_tensor *[]){F64(t, 2)}, NULL);
}
static ad_tensor *custom_silent_forward(ad_tape *t)
{
    return ad_custom(silent_op, 1, (ad_tensor *[]){F64(t, 2)}, NULL);
}
static ad_tensor *custom_null_output(ad_tape *t)
{
    return ad_custom(null_output_op, 1, (ad_tensor *[]){F64(t, 2)}, NULL);
}
static ad_tensor *custom_apply_two_inputs(ad_tape *t)
{
    ad_tensor *out = NULL;
    ad_status st = ad_custom_apply(cube_op, 2, (ad_tensor *[]){F64(t, 2), F64(t, 2)}, NULL, &out);
    assert_int_equal(st, ad_tape_status(t));
    return out;
}
static ad_tensor *checkpoint_null_function(ad_tape *t)
{
    return ad_checkpoint(NULL, NULL, 1, (ad_tensor *[]){F64(t, 2)});
}
static ad_tensor *checkpoint_function_returns_null(ad_tape *t)
{
    return ad_checkpoint(returns_null, NULL, 1, (ad_tensor *[]){F64(t, 2)});
}
static ad_tensor *checkpoint_function_fails(ad_tape *t)
{
    return ad_checkpoint(adds_a_3_vector, NULL, 1, (ad_tensor *[]){F64(t, 2)});
}
static ad_tensor *checkpoint_result_elsewhere(ad_tape *t)
{
    ad_tape *other = test_tape();
    ad_tensor *y = ad_checkpoint(result_on_ctx_tape, other, 1, (ad_tensor *[]){F64(t, 2)});
    ad_tape_free(other);
    return y;
}

/* A row: the builder (its name is the case's), the status, the message parts. */
#define E(fn, status_, ...)                                                                        \
    .name = #fn, .build = fn, .status = status_, .parts = {__VA_ARGS__, NULL}

static const error_row error_rows[] = {
    /* matmul, matmul_t */
    {E(matmul_inner_mismatch, AD_ERR_SHAPE, "matmul", "[2,3]", "[4,5]", "align")},
    {E(matmul_vectors_of_different_lengths, AD_ERR_SHAPE, "matmul", "[3]", "[4]")},
    {E(matmul_matrix_and_short_vector, AD_ERR_SHAPE, "matmul", "[2,3]", "[4]")},
    {E(matmul_batch_mismatch, AD_ERR_SHAPE, "matmul", "[2,2,3]", "[3,3,4]", "batch")},
    /* PyTorch raises too: "both arguments to matmul need to be at least 1D" */
    {E(matmul_0d, AD_ERR_SHAPE, "matmul", "[]", "[3]")},
    {E(matmul_dtypes, AD_ERR_DTYPE, "matmul", "float32 [2,3]", "float64 [3,2]")},
    {E(matmul_t_vector, AD_ERR_SHAPE, "matmul_t", "[3]", "[3,2]")},
    {E(matmul_t_transposed_mismatch, AD_ERR_SHAPE, "matmul", "[2,3]^T", "[3,4]")},
    {E(matmul_t_dtypes, AD_ERR_DTYPE, "matmul", "float64 [2,2]", "float32 [2,2]")},
    /* permute, transpose */
    {E(permute_repeated, AD_ERR_AXIS, "permute", "[0,0]", "[2,3]")},
    {E(permute_out_of_range, AD_ERR_AXIS, "permute", "[0,2]", "[2,3]")},
    {E(permute_negative, AD_ERR_AXIS, "permute", "[-1,0]", "[2,3]")},
    {E(permute_null, AD_ERR_ARG, "permute", "NULL", "[2,3]")},
    {E(transpose_axis_2, AD_ERR_AXIS, "transpose", "2", "[2,3]")},
    {E(transpose_axis_minus_3, AD_ERR_AXIS, "transpose", "-3", "[2,3]")},
    {E(transpose_0d, AD_ERR_AXIS, "transpose", "[]")},
    /* reshape, expand, sum_to */
    {E(reshape_wrong_count, AD_ERR_SHAPE, "reshape", "[2,3]", "[4]")},
    {E(reshape_two_inferred, AD_ERR_SHAPE, "reshape", "[2,3]", "[-1,-1]")},
    {E(reshape_negative, AD_ERR_SHAPE, "reshape", "[2,3]", "[-2,-3]")},
    {E(reshape_inferred_not_dividing, AD_ERR_SHAPE, "reshape", "[2,3]", "[-1,4]")},
    {E(reshape_rank_9, AD_ERR_SHAPE, "reshape", "[2,3]", "9")},
    {E(reshape_null_shape, AD_ERR_SHAPE, "reshape", "[2,3]")},
    /* PyTorch raises too: the -1 "can be any value" */
    {E(reshape_empty_inferred, AD_ERR_SHAPE, "reshape", "[0,3]", "[-1,0]")},
    {E(expand_not_broadcast, AD_ERR_SHAPE, "expand", "[3]", "[2]")},
    {E(expand_fewer_dims, AD_ERR_SHAPE, "expand", "[2,3]", "[3]")},
    {E(expand_negative, AD_ERR_SHAPE, "expand", "[3]", "[-1,3]")},
    {E(expand_empty_to_2, AD_ERR_SHAPE, "expand", "[0]", "[2]")},
    {E(expand_null_shape, AD_ERR_SHAPE, "expand", "[3]")},
    {E(sum_to_not_broadcast, AD_ERR_SHAPE, "sum_to", "[2,3]", "[4]")},
    {E(sum_to_more_dims, AD_ERR_SHAPE, "sum_to", "[3]", "[2,3]")},
    {E(sum_to_null_shape, AD_ERR_SHAPE, "sum_to", "[2,3]")},
    /* slice, slice_scatter */
    {E(slice_axis_2, AD_ERR_AXIS, "slice", "2", "[2,3]")},
    {E(slice_step_0, AD_ERR_ARG, "slice", "step 0", "[2,3]")},
    {E(slice_step_negative, AD_ERR_ARG, "slice", "step -1", "[2,3]")},
    {E(slice_0d, AD_ERR_AXIS, "slice", "[]")},
    {E(slice_scatter_step_0, AD_ERR_ARG, "slice_scatter", "step 0", "[2]")},
    {E(slice_scatter_does_not_fit, AD_ERR_SHAPE, "slice_scatter", "[3]", "length 2")},
    {E(slice_scatter_negative_start, AD_ERR_SHAPE, "slice_scatter", "[2]", "start -1")},
    {E(slice_scatter_negative_length, AD_ERR_SHAPE, "slice_scatter", "[0]", "length -1")},
    {E(slice_scatter_axis_1, AD_ERR_AXIS, "slice_scatter", "1", "[2]")},
    /* concat, stack */
    {E(concat_dims_differ, AD_ERR_SHAPE, "concat", "[2,4]", "[2,3]")},
    {E(concat_ranks_differ, AD_ERR_SHAPE, "concat", "[3]", "[2,3]")},
    {E(concat_axis_2, AD_ERR_AXIS, "concat", "2", "[2,3]")},
    {E(concat_dtypes, AD_ERR_DTYPE, "concat", "float64 [2,3]", "float32 [2,3]")},
    /* PyTorch raises too: "zero-dimensional tensor cannot be concatenated" */
    {E(concat_0d, AD_ERR_AXIS, "concat", "[]")},
    {E(stack_shapes_differ, AD_ERR_SHAPE, "stack", "[3]", "[2]")},
    {E(stack_axis_3, AD_ERR_AXIS, "stack", "3", "[2,3]")},
    {E(stack_dtypes, AD_ERR_DTYPE, "stack", "float64", "float32", "[2]")},
    {E(stack_8d, AD_ERR_SHAPE, "stack", "[1,1,1,1,1,1,1,2]")},
    /* index_select, index_add */
    {E(index_select_negative, AD_ERR_ARG, "index_select", "-1", "[3,2]")},
    {E(index_select_too_large, AD_ERR_ARG, "index_select", "index 3", "[3,2]")},
    {E(index_select_null, AD_ERR_ARG, "index_select", "NULL", "[3,2]")},
    {E(index_select_axis_2, AD_ERR_AXIS, "index_select", "2", "[3,2]")},
    {E(index_select_0d, AD_ERR_AXIS, "index_select", "[]")},
    {E(index_add_count_differs, AD_ERR_SHAPE, "index_add", "2 indices", "[3]")},
    {E(index_add_too_large, AD_ERR_ARG, "index_add", "index 5", "[2]")},
    {E(index_add_negative, AD_ERR_ARG, "index_add", "-1", "[2]")},
    {E(index_add_null, AD_ERR_ARG, "index_add", "NULL", "[2]")},
    {E(index_add_negative_length, AD_ERR_SHAPE, "index_add", "-1", "[0]")},
    /* gather, scatter_add */
    {E(gather_ranks_differ, AD_ERR_SHAPE, "gather", "1 dims", "[2,3]")},
    {E(gather_too_large, AD_ERR_ARG, "gather", "index 3", "[2,3]")},
    {E(gather_negative, AD_ERR_ARG, "gather", "-1", "[2,3]")},
    {E(gather_null_index, AD_ERR_ARG, "gather", "NULL", "[2,2]")},
    {E(gather_null_index_shape, AD_ERR_ARG, "gather", "NULL", "[2,3]")},
    {E(gather_index_wider, AD_ERR_SHAPE, "gather", "[3,1]", "[2,3]")},
    {E(gather_axis_2, AD_ERR_AXIS, "gather", "2", "[2,3]")},
    {E(scatter_add_ranks_differ, AD_ERR_SHAPE, "scatter_add", "1 dims", "[2,1]")},
    {E(scatter_add_too_large, AD_ERR_ARG, "scatter_add", "index 3", "[2,3]")},
    {E(scatter_add_x_smaller, AD_ERR_SHAPE, "scatter_add", "[3,1]", "[2,3]")},
    {E(scatter_add_negative_dim, AD_ERR_SHAPE, "scatter_add", "[-2,3]", "[2,1]")},
    {E(scatter_add_null_index, AD_ERR_ARG, "scatter_add", "NULL", "[2,1]")},
    /* where */
    {E(where_shapes, AD_ERR_SHAPE, "where", "[2]", "[3]")},
    {E(where_cond_dtype, AD_ERR_DTYPE, "where", "float32 [2]", "float64 [2]")},
    {E(where_branch_dtypes, AD_ERR_DTYPE, "where", "float64 [2]", "float32 [2]")},
    /* cumsum, cumprod, logcumsumexp (a 0-d tensor takes axis 0 or -1, as PyTorch) */
    {E(cumsum_axis_2, AD_ERR_AXIS, "cumsum", "2", "[2,3]")},
    {E(cumprod_axis_2, AD_ERR_AXIS, "cumprod", "2", "[2,3]")},
    {E(cumprod_axis_minus_3, AD_ERR_AXIS, "cumprod", "-3", "[2,3]")},
    {E(cumprod_0d_axis_1, AD_ERR_AXIS, "cumprod", "1", "[]")},
    {E(logcumsumexp_axis_2, AD_ERR_AXIS, "logcumsumexp", "2", "[2,3]")},
    {E(logcumsumexp_axis_minus_3, AD_ERR_AXIS, "logcumsumexp", "-3", "[2,3]")},
    /* softmax, log_softmax (PyTorch takes dim 0 of a 0-d tensor; we refuse it
     * clearly), cross_entropy, mse */
    {E(softmax_axis_2, AD_ERR_AXIS, "softmax", "2", "[2,3]")},
    {E(softmax_axis_minus_3, AD_ERR_AXIS, "softmax", "-3", "[2,3]")},
    {E(softmax_0d, AD_ERR_AXIS, "softmax", "[]")},
    {E(log_softmax_axis_2, AD_ERR_AXIS, "log_softmax", "2", "[2,3]")},
    {E(log_softmax_0d, AD_ERR_AXIS, "log_softmax", "-1", "[]")},
    {E(cross_entropy_1d, AD_ERR_SHAPE, "cross_entropy", "[3]")},
    {E(cross_entropy_3d, AD_ERR_SHAPE, "cross_entropy", "[2,3,4]")},
    {E(cross_entropy_0d, AD_ERR_SHAPE, "cross_entropy", "[]")},
    {E(cross_entropy_count, AD_ERR_SHAPE, "cross_entropy", "3 targets", "[2,3]")},
    {E(cross_entropy_negative, AD_ERR_ARG, "cross_entropy", "-1", "[2,3]")},
    {E(cross_entropy_too_large, AD_ERR_ARG, "cross_entropy", "target 3", "[2,3]")},
    {E(cross_entropy_null, AD_ERR_ARG, "cross_entropy", "NULL", "[2,3]")},
    {E(cross_entropy_no_classes, AD_ERR_ARG, "cross_entropy", "target 0", "[2,0]")},
    {E(mse_shapes, AD_ERR_SHAPE, "mse", "[2]", "[3]")},
    {E(mse_dtypes, AD_ERR_DTYPE, "mse", "float32 [2]", "float64 [2]")},
    {E(cast_unknown_dtype, AD_ERR_DTYPE, "cast", "7", "[2]")},
    {E(lstm_cell_c_state_too_wide, AD_ERR_SHAPE, "lstm_cell_c", "[2,8]", "[2,3]", "4 H")},
    {E(lstm_cell_h_batches_differ, AD_ERR_SHAPE, "lstm_cell_h", "[2,8]", "[3,2]")},
    {E(lstm_cell_c_state_broadcast, AD_ERR_SHAPE, "lstm_cell_c", "[2,8]", "[1,2]")},
    {E(lstm_cell_h_ranks_differ, AD_ERR_SHAPE, "lstm_cell_h", "[2,8]", "[2]")},
    {E(lstm_cell_c_0d, AD_ERR_SHAPE, "lstm_cell_c", "[]")},
    {E(lstm_cell_h_dtypes, AD_ERR_DTYPE, "lstm_cell_h", "float32 [8]", "float64 [2]")},
    /* custom ops and checkpoints */
    {E(custom_two_inputs, AD_ERR_ARG, "cube", "2 inputs")},
    {E(custom_null_op, AD_ERR_ARG, "custom", "NULL", "[2]")},
    {E(custom_two_outputs, AD_ERR_ARG, "two", "2 outputs", "ad_custom_apply")},
    {E(custom_silent_forward, AD_ERR_ARG, "silent", "forward")},
    {E(custom_null_output, AD_ERR_NULL, "null_output", "forward output 0")},
    {E(custom_apply_two_inputs, AD_ERR_ARG, "cube", "2 inputs")},
    {E(checkpoint_null_function, AD_ERR_ARG, "checkpoint", "NULL", "[2]")},
    {E(checkpoint_function_returns_null, AD_ERR_NULL, "checkpoint", "returned NULL")},
    /* the error inside the function is the one kept */
    {E(checkpoint_function_fails, AD_ERR_SHAPE, "add", "[2]", "[3]")},
    {E(checkpoint_result_elsewhere, AD_ERR_TAPE, "checkpoint", "tape")},
};

static void error_case(run *r)
{
    const error_row *row = r->row;
    if (row->known_bug) {
        print_message("known bug: %s\n", row->known_bug);
        skip();
    }
    ad_tensor *w = witness(r->tape);
    ad_tensor *y = row->build(r->tape);
    assert_op_error(r->tape, y, row->status, row->parts);
    assert_usable_after_clearing(r->tape, w);
}

/* The status as words for a test name: AD_ERR_SHAPE is "a_shape_error". */
static const char *error_words(ad_status status)
{
    switch (status) {
    case AD_ERR_SHAPE:
        return "a_shape_error";
    case AD_ERR_DTYPE:
        return "a_dtype_error";
    case AD_ERR_AXIS:
        return "an_axis_error";
    case AD_ERR_ARG:
        return "a_bad_argument";
    case AD_ERR_NULL:
        return "a_null_error";
    case AD_ERR_TAPE:
        return "a_tape_error";
    default:
        return "an_error";
    }
}

static int run_error_group(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(error_rows)];
    for (size_t i = 0; i < ARRAY_SIZE(error_rows); i++) {
        const error_row *row = &error_rows[i];
        tests[i] = make_test(error_case, row, AD_F64, "test_%s_is_%s_naming_the_op_and_shapes",
                             row->name, error_words(row->status));
    }
    return cmocka_run_group_tests_name("bad arguments", tests, NULL, NULL);
}

/* =========================================================================================
 * The value table: NaN, infinities, empty and 0-d inputs of the other ops. Each
 * row's function builds the result from its leaves (constants on their tape);
 * the result and the gradients of sum(y * seed) must be PyTorch's.
 * ========================================================================================= */

typedef struct value_row {
    const char *name;
    ad_tensor *(*f)(ad_tensor *const *x);
    int n;              /* leaves, all differentiated */
    spec x[2];          /* the leaves */
    spec y;             /* PyTorch's result */
    double g[2][12];    /* PyTorch's gradients, in the leaves' shapes */
    const double *seed; /* dL/dy; NULL: ones */
    bool no_grad;       /* the result has no gradient to compare */
    const char *known_bug;
} value_row;

static ad_tape *tape_of(ad_tensor *const *x)
{
    return ad_tensor_tape(x[0]);
}

/* reductions */
static ad_tensor *v_sum_all(ad_tensor *const *x)
{
    return ad_sum_all(x[0]);
}
static ad_tensor *v_mean_all(ad_tensor *const *x)
{
    return ad_mean_all(x[0]);
}
static ad_tensor *v_max_all(ad_tensor *const *x)
{
    return ad_max(x[0], 0, NULL, false);
}
static ad_tensor *v_logsumexp_all(ad_tensor *const *x)
{
    return ad_logsumexp(x[0], 0, NULL, false);
}
static ad_tensor *v_var_all(ad_tensor *const *x)
{
    return ad_var(x[0], 0, NULL, false, 1);
}
/* fused */
static ad_tensor *v_softmax(ad_tensor *const *x)
{
    return ad_softmax(x[0], -1);
}
static ad_tensor *v_log_softmax(ad_tensor *const *x)
{
    return ad_log_softmax(x[0], -1);
}
static ad_tensor *v_softmax_axis_0(ad_tensor *const *x)
{
    return ad_softmax(x[0], 0);
}
static ad_tensor *v_log_softmax_axis_0(ad_tensor *const *x)
{
    return ad_log_softmax(x[0], 0);
}
static ad_tensor *v_cross_entropy_target_0(ad_tensor *const *x)
{
    return ad_cross_entropy(x[0], 1, (int64_t[]){0});
}
static ad_tensor *v_cross_entropy_target_1(ad_tensor *const *x)
{
    return ad_cross_entropy(x[0], 1, (int64_t[]){1});
}
static ad_tensor *v_cross_entropy_no_rows(ad_tensor *const *x)
{
    return ad_cross_entropy(x[0], 0, NULL);
}
static ad_tensor *v_mse_with_inf_and_1(ad_tensor *const *x)
{
    return ad_mse_loss(x[0], tensor(tape_of(x), AD_F64, DIMS(2), (double[]){INFINITY, 1.0}));
}
static ad_tensor *v_mse(ad_tensor *const *x)
{
    return ad_mse_loss(x[0], x[1]);
}
/* linear algebra */
static ad_tensor *v_dot_with_0_1(ad_tensor *const *x)
{
    return ad_matmul(x[0], tensor(tape_of(x), AD_F64, DIMS(2), (double[]){0.0, 1.0}));
}
static ad_tensor *v_row_times_column_0_1(ad_tensor *const *x)
{
    ad_tensor *row = ad_reshape(x[0], DIMS(1, 2));
    return ad_matmul(row, tensor(tape_of(x), AD_F64, DIMS(2, 1), (double[]){0.0, 1.0}));
}
static ad_tensor *v_matmul(ad_tensor *const *x)
{
    return ad_matmul(x[0], x[1]);
}
static ad_tensor *v_matmul_t_both(ad_tensor *const *x)
{
    return ad_matmul_t(x[0], x[1], true, true);
}
static ad_tensor *v_permute_1_0(ad_tensor *const *x)
{
    return ad_permute(x[0], (int[]){1, 0});
}
static ad_tensor *v_permute_0d(ad_tensor *const *x)
{
    return ad_permute(x[0], NULL);
}
static ad_tensor *v_transpose_0_1(ad_tensor *const *x)
{
    return ad_transpose(x[0], 0, 1);
}
/* shape */
static ad_tensor *v_reshape_3_0(ad_tensor *const *x)
{
    return ad_reshape(x[0], DIMS(3, 0));
}
static ad_tensor *v_reshape_flat(ad_tensor *const *x)
{
    return ad_reshape(x[0], DIMS(-1));
}
static ad_tensor *v_reshape_1_1(ad_tensor *const *x)
{
    return ad_reshape(x[0], DIMS(1, 1));
}
static ad_tensor *v_reshape_0d(ad_tensor *const *x)
{
    return ad_reshape(x[0], 0, NULL);
}
static ad_tensor *v_expand_0(ad_tensor *const *x)
{
    return ad_expand(x[0], DIMS(0));
}
static ad_tensor *v_expand_3(ad_tensor *const *x)
{
    return ad_expand(x[0], DIMS(3));
}
static ad_tensor *v_sum_to_3(ad_tensor *const *x)
{
    return ad_sum_to(x[0], DIMS(3));
}
static ad_tensor *v_sum_to_0d(ad_tensor *const *x)
{
    return ad_sum_to(x[0], 0, NULL);
}
static ad_tensor *v_slice_past_the_end(ad_tensor *const *x)
{
    return ad_slice(x[0], 0, 5, 9, 1);
}
static ad_tensor *v_slice_axis_1(ad_tensor *const *x)
{
    return ad_slice(x[0], 1, 0, 4, 2);
}
static ad_tensor *v_slice_step_2(ad_tensor *const *x)
{
    return ad_slice(x[0], 0, 0, INT64_MAX, 2);
}
static ad_tensor *v_slice_scatter_into_3(ad_tensor *const *x)
{
    return ad_slice_scatter(x[0], 0, 3, 1, 1);
}
static ad_tensor *v_concat_axis_0(ad_tensor *const *x)
{
    return ad_concat(2, x, 0);
}
static ad_tensor *v_stack_axis_0(ad_tensor *const *x)
{
    return ad_stack(2, x, 0);
}
static ad_tensor *v_index_select_none(ad_tensor *const *x)
{
    return ad_index_select(x[0], 0, 0, NULL);
}
static ad_tensor *v_index_select_1_1_0(ad_tensor *const *x)
{
    return ad_index_select(x[0], 0, 3, (int64_t[]){1, 1, 0});
}
static ad_tensor *v_index_add_none(ad_tensor *const *x)
{
    return ad_index_add(x[0], 0, 3, 0, NULL);
}
static ad_tensor *v_gather_none(ad_tensor *const *x)
{
    return ad_gather(x[0], 0, DIMS(0), NULL);
}
static ad_tensor *v_scatter_add_none(ad_tensor *const *x)
{
    return ad_scatter_add(x[0], 0, DIMS(3), NULL);
}
static ad_tensor *v_where_empty_cond(ad_tensor *const *x)
{
    return ad_where(ad_tape_tensor(tape_of(x), AD_F64, DIMS(0), NULL), x[0], x[1]);
}
static ad_tensor *v_where_1_0_log(ad_tensor *const *x)
{
    ad_tensor *cond = tensor(tape_of(x), AD_F64, DIMS(2), (double[]){1.0, 0.0});
    return ad_where(cond, x[0], ad_log(x[0]));
}
static ad_tensor *v_where_1_0_ones_sqrt(ad_tensor *const *x)
{
    ad_tensor *cond = tensor(tape_of(x), AD_F64, DIMS(2), (double[]){1.0, 0.0});
    return ad_where(cond, F64(tape_of(x), 2), ad_sqrt(x[0]));
}
static ad_tensor *v_where_nan_0_neg(ad_tensor *const *x)
{
    ad_tensor *cond = tensor(tape_of(x), AD_F64, DIMS(2), (double[]){NAN, 0.0});
    return ad_where(cond, x[0], ad_neg(x[0]));
}
static ad_tensor *v_where_0d_cond(ad_tensor *const *x)
{
    return ad_where(ad_scalar(tape_of(x), 1.0), x[0], x[1]);
}
/* casts, detach */
static ad_tensor *v_cast_f32(ad_tensor *const *x)
{
    return ad_cast(x[0], AD_F32);
}
static ad_tensor *v_detach(ad_tensor *const *x)
{
    return ad_detach(x[0]);
}
/* custom ops, checkpoints */
static ad_tensor *v_cube(ad_tensor *const *x)
{
    return ad_custom(cube_op, 1, x, NULL);
}
static ad_tensor *v_checkpoint_sum_of_squares(ad_tensor *const *x)
{
    return ad_checkpoint(sum_of_squares, NULL, 1, x);
}

/* The fields n and x of a row: ONE(spec) for one leaf, TWO(spec, spec) for two. */
// clang-format off
#define ONE(...) 1, {__VA_ARGS__}
#define TWO(...) 2, {__VA_ARGS__}
// clang-format on

/* PyTorch 1.13 (float64): the torch expression of each row is in its
 * comment; the gradients are of y.sum(), or of (y * seed).sum(). */
static const value_row value_rows[] = {
    /* ---- reductions ---- */
    /* torch.tensor([inf, -inf]).sum() */
    {"test_sum_of_inf_and_minus_inf_is_nan_with_gradient_1",
     v_sum_all,
     ONE({1, {2}, {INFINITY, -INFINITY}}),
     {0, {0}, {NAN}},
     .g = {{1, 1}}},
    /* .amax(): tied maxima share the gradient */
    {"test_max_of_two_infinities_and_1_splits_the_gradient_between_the_infinities",
     v_max_all,
     ONE({1, {3}, {INFINITY, INFINITY, 1.0}}),
     {0, {0}, {INFINITY}},
     .g = {{0.5, 0.5, 0.0}}},
    {"test_max_of_minus_infinities_is_minus_inf_with_the_gradient_split",
     v_max_all,
     ONE({1, {2}, {-INFINITY, -INFINITY}}),
     {0, {0}, {-INFINITY}},
     .g = {{0.5, 0.5}}},
    {"test_max_with_nan_is_nan_with_nan_gradients",
     v_max_all,
     ONE({1, {3}, {1.0, NAN, 3.0}}),
     {0, {0}, {NAN}},
     .g = {{NAN, NAN, NAN}}},
    /* .logsumexp(0) */
    {"test_logsumexp_with_inf_is_inf_with_gradient_nan_at_the_inf",
     v_logsumexp_all,
     ONE({1, {2}, {INFINITY, 1.0}}),
     {0, {0}, {INFINITY}},
     .g = {{NAN, 0.0}}},
    {"test_logsumexp_of_minus_infinities_is_minus_inf_with_nan_gradients",
     v_logsumexp_all,
     ONE({1, {2}, {-INFINITY, -INFINITY}}),
     {0, {0}, {-INFINITY}},
     .g = {{NAN, NAN}}},
    {"test_logsumexp_with_nan_is_nan_with_nan_gradients",
     v_logsumexp_all,
     ONE({1, {2}, {NAN, 1.0}}),
     {0, {0}, {NAN}},
     .g = {{NAN, NAN}}},
    {"test_logsumexp_with_minus_inf_ignores_it",
     v_logsumexp_all,
     ONE({1, {2}, {-INFINITY, 0.0}}),
     {0, {0}, {0.0}},
     .g = {{0.0, 1.0}}},
    /* .mean() */
    {"test_mean_with_inf_is_inf_with_gradient_one_half",
     v_mean_all,
     ONE({1, {2}, {INFINITY, 1.0}}),
     {0, {0}, {INFINITY}},
     .g = {{0.5, 0.5}}},
    {"test_mean_of_inf_and_minus_inf_is_nan_with_gradient_one_half",
     v_mean_all,
     ONE({1, {2}, {INFINITY, -INFINITY}}),
     {0, {0}, {NAN}},
     .g = {{0.5, 0.5}}},
    /* .var(): PyTorch's gradient is 2 (x - mean) / (n - 1) = [nan, -inf] */
    {"test_var_with_inf_is_nan_with_gradient_minus_inf_at_the_finite_element",
     v_var_all,
     ONE({1, {2}, {INFINITY, 1.0}}),
     {0, {0}, {NAN}},
     .g = {{NAN, -INFINITY}},
     .known_bug = "var is a composition, sum((x - mean)^2) / (n - 1): the gradient through the "
                  "mean adds -mean(2 (x - mean)) = nan to every element, so the finite element "
                  "gets nan where PyTorch's fused rule gives -inf"},
    /* var of one element: nan (PyTorch's backward raises here, so no gradient) */
    {"test_var_of_one_element_is_nan",
     v_var_all,
     ONE({1, {1}, {3.0}}),
     {0, {0}, {NAN}},
     .no_grad = true},
    /* ---- softmax, log_softmax: (y * [1, 2]).sum() ---- */
    {"test_softmax_with_inf_is_nan",
     v_softmax,
     ONE({1, {2}, {INFINITY, 1.0}}),
     {1, {2}, {NAN, NAN}},
     .g = {{NAN, NAN}},
     .seed = (const double[]){1, 2}},
    {"test_softmax_of_minus_infinities_is_nan",
     v_softmax,
     ONE({1, {2}, {-INFINITY, -INFINITY}}),
     {1, {2}, {NAN, NAN}},
     .g = {{NAN, NAN}},
     .seed = (const double[]){1, 2}},
    {"test_softmax_with_minus_inf_gives_it_0",
     v_softmax,
     ONE({1, {2}, {-INFINITY, 0.0}}),
     {1, {2}, {0.0, 1.0}},
     .g = {{-0.0, 0.0}},
     .seed = (const double[]){1, 2}},
    {"test_softmax_with_nan_is_nan",
     v_softmax,
     ONE({1, {2}, {NAN, 0.0}}),
     {1, {2}, {NAN, NAN}},
     .g = {{NAN, NAN}},
     .seed = (const double[]){1, 2}},
    {"test_softmax_of_1000_and_0_is_1_and_0",
     v_softmax,
     ONE({1, {2}, {1000.0, 0.0}}),
     {1, {2}, {1.0, 0.0}},
     .g = {{0.0, 0.0}},
     .seed = (const double[]){1, 2}},
    {"test_log_softmax_with_inf_is_nan",
     v_log_softmax,
     ONE({1, {2}, {INFINITY, 1.0}}),
     {1, {2}, {NAN, NAN}},
     .g = {{NAN, NAN}},
     .seed = (const double[]){1, 2}},
    {"test_log_softmax_of_minus_infinities_is_nan",
     v_log_softmax,
     ONE({1, {2}, {-INFINITY, -INFINITY}}),
     {1, {2}, {NAN, NAN}},
     .g = {{NAN, NAN}},
     .seed = (const double[]){1, 2}},
    {"test_log_softmax_with_minus_inf_gives_it_minus_inf",
     v_log_softmax,
     ONE({1, {2}, {-INFINITY, 0.0}}),
     {1, {2}, {-INFINITY, 0.0}},
     .g = {{1.0, -1.0}},
     .seed = (const double[]){1, 2}},
    {"test_log_softmax_with_nan_is_nan",
     v_log_softmax,
     ONE({1, {2}, {NAN, 0.0}}),
     {1, {2}, {NAN, NAN}},
     .g = {{NAN, NAN}},
     .seed = (const double[]){1, 2}},
    {"test_softmax_of_an_empty_row_dim_is_empty",
     v_softmax,
     ONE({2, {2, 0}, {0}}),
     {2, {2, 0}, {0}},
     .g = {{0}}},
    {"test_softmax_of_no_rows_is_empty",
     v_softmax,
     ONE({2, {0, 3}, {0}}),
     {2, {0, 3}, {0}},
     .g = {{0}}},
    {"test_log_softmax_over_an_empty_dim_is_empty",
     v_log_softmax_axis_0,
     ONE({2, {0, 3}, {0}}),
     {2, {0, 3}, {0}},
     .g = {{0}}},
    {"test_softmax_of_a_0_by_0_matrix_over_axis_0_is_empty",
     v_softmax_axis_0,
     ONE({2, {0, 0}, {0}}),
     {2, {0, 0}, {0}},
     .g = {{0}}},
    /* ---- cross_entropy: F.cross_entropy(x, target) ---- */
    {"test_cross_entropy_with_inf_at_the_target_is_nan",
     v_cross_entropy_target_0,
     ONE({2, {1, 2}, {INFINITY, 1.0}}),
     {0, {0}, {NAN}},
     .g = {{NAN, NAN}}},
    {"test_cross_entropy_with_inf_off_the_target_is_nan",
     v_cross_entropy_target_1,
     ONE({2, {1, 2}, {INFINITY, 1.0}}),
     {0, {0}, {NAN}},
     .g = {{NAN, NAN}}},
    {"test_cross_entropy_with_minus_inf_at_the_target_is_inf_with_finite_gradients",
     v_cross_entropy_target_0,
     ONE({2, {1, 2}, {-INFINITY, 0.0}}),
     {0, {0}, {INFINITY}},
     .g = {{-1.0, 1.0}}},
    {"test_cross_entropy_with_minus_inf_off_the_target_is_0",
     v_cross_entropy_target_0,
     ONE({2, {1, 2}, {0.0, -INFINITY}}),
     {0, {0}, {0.0}},
     .g = {{0.0, 0.0}}},
    {"test_cross_entropy_with_nan_is_nan",
     v_cross_entropy_target_1,
     ONE({2, {1, 2}, {NAN, 0.0}}),
     {0, {0}, {NAN}},
     .g = {{NAN, NAN}}},
    {"test_cross_entropy_of_no_rows_is_nan_with_an_empty_gradient",
     v_cross_entropy_no_rows,
     ONE({2, {0, 3}, {0}}),
     {0, {0}, {NAN}},
     .g = {{0}}},
    /* ---- mse: F.mse_loss(x, t) ---- */
    {"test_mse_of_inf_against_inf_is_nan",
     v_mse_with_inf_and_1,
     ONE({1, {2}, {INFINITY, 1.0}}),
     {0, {0}, {NAN}},
     .g = {{NAN, 0.0}}},
    {"test_mse_of_empty_tensors_is_nan_with_empty_gradients",
     v_mse,
     TWO({1, {0}, {0}}, {1, {0}, {0}}),
     {0, {0}, {NAN}},
     .g = {{0}, {0}}},
    {"test_mse_of_0d_tensors_is_the_square",
     v_mse,
     TWO({0, {0}, {3.0}}, {0, {0}, {1.0}}),
     {0, {0}, {4.0}},
     .g = {{4.0}, {-4.0}}},
    /* ---- matmul: x @ t ---- */
    {"test_dot_of_inf_and_0_is_nan",
     v_dot_with_0_1,
     ONE({1, {2}, {INFINITY, 0.0}}),
     {0, {0}, {NAN}},
     .g = {{0.0, 1.0}}},
    {"test_matmul_of_inf_and_0_is_nan",
     v_row_times_column_0_1,
     ONE({1, {2}, {INFINITY, 0.0}}),
     {2, {1, 1}, {NAN}},
     .g = {{0.0, 1.0}}},
    {"test_matmul_with_nan_is_nan",
     v_row_times_column_0_1,
     ONE({1, {2}, {NAN, 0.0}}),
     {2, {1, 1}, {NAN}},
     .g = {{0.0, 1.0}}},
    {"test_matmul_over_an_empty_inner_dim_is_zeros",
     v_matmul,
     TWO({2, {2, 0}, {0}}, {2, {0, 3}, {0}}),
     {2, {2, 3}, {0, 0, 0, 0, 0, 0}},
     .g = {{0}, {0}}},
    {"test_dot_of_empty_vectors_is_0",
     v_matmul,
     TWO({1, {0}, {0}}, {1, {0}, {0}}),
     {0, {0}, {0.0}},
     .g = {{0}, {0}}},
    {"test_matmul_of_no_rows_is_empty_with_zero_gradient_for_the_other",
     v_matmul,
     TWO({2, {0, 2}, {0}}, {2, {2, 3}, {1, 2, 3, 4, 5, 6}}),
     {2, {0, 3}, {0}},
     .g = {{0}, {0, 0, 0, 0, 0, 0}}},
    {"test_matmul_t_of_transposed_empty_operands_is_zeros",
     v_matmul_t_both,
     TWO({2, {0, 2}, {0}}, {2, {3, 0}, {0}}),
     {2, {2, 3}, {0, 0, 0, 0, 0, 0}},
     .g = {{0}, {0}}},
    {"test_matmul_of_a_batch_of_none_is_empty",
     v_matmul,
     TWO({3, {0, 2, 2}, {0}}, {2, {2, 2}, {1, 2, 3, 4}}),
     {3, {0, 2, 2}, {0}},
     .g = {{0}, {0, 0, 0, 0}}},
    /* ---- permute, transpose ---- */
    {"test_permute_of_an_empty_matrix_swaps_its_dims",
     v_permute_1_0,
     ONE({2, {0, 2}, {0}}),
     {2, {2, 0}, {0}},
     .g = {{0}}},
    {"test_permute_of_a_0d_tensor_is_itself",
     v_permute_0d,
     ONE({0, {0}, {3.0}}),
     {0, {0}, {3.0}},
     .g = {{1.0}}},
    {"test_transpose_of_an_empty_matrix_swaps_its_dims",
     v_transpose_0_1,
     ONE({2, {2, 0}, {0}}),
     {2, {0, 2}, {0}},
     .g = {{0}}},
    {"test_transpose_keeps_nan_and_infinities_in_place",
     v_transpose_0_1,
     ONE({2, {2, 2}, {NAN, INFINITY, -INFINITY, 0.0}}),
     {2, {2, 2}, {NAN, -INFINITY, INFINITY, 0.0}},
     .g = {{1, 1, 1, 1}}},
    /* ---- reshape, expand, sum_to ---- */
    {"test_reshape_of_an_empty_tensor_to_another_empty_shape",
     v_reshape_3_0,
     ONE({2, {0, 3}, {0}}),
     {2, {3, 0}, {0}},
     .g = {{0}}},
    {"test_reshape_of_an_empty_tensor_infers_0",
     v_reshape_flat,
     ONE({2, {0, 3}, {0}}),
     {1, {0}, {0}},
     .g = {{0}}},
    {"test_reshape_of_a_0d_tensor_to_1_by_1",
     v_reshape_1_1,
     ONE({0, {0}, {3.0}}),
     {2, {1, 1}, {3.0}},
     .g = {{1.0}}},
    {"test_reshape_of_a_1_by_1_matrix_to_0d",
     v_reshape_0d,
     ONE({2, {1, 1}, {3.0}}),
     {0, {0}, {3.0}},
     .g = {{1.0}}},
    /* torch.ones(1).expand(0): empty, the gradient a sum over nothing */
    {"test_expand_of_a_1_vector_to_0_is_empty_with_gradient_0",
     v_expand_0,
     ONE({1, {1}, {5.0}}),
     {1, {0}, {0}},
     .g = {{0.0}}},
    {"test_expand_of_a_0d_tensor_to_3_repeats_it",
     v_expand_3,
     ONE({0, {0}, {NAN}}),
     {1, {3}, {NAN, NAN, NAN}},
     .g = {{3.0}}},
    {"test_sum_to_of_no_rows_is_zeros",
     v_sum_to_3,
     ONE({2, {0, 3}, {0}}),
     {1, {3}, {0, 0, 0}},
     .g = {{0}}},
    {"test_sum_to_a_0d_tensor_sums_everything",
     v_sum_to_0d,
     ONE({1, {3}, {1.0, INFINITY, 2.0}}),
     {0, {0}, {INFINITY}},
     .g = {{1, 1, 1}}},
    /* ---- slice, slice_scatter: x[5:9], x[:, 0:4:2], x[::2] ---- */
    {"test_slice_past_the_end_is_empty_with_zero_gradient",
     v_slice_past_the_end,
     ONE({1, {3}, {1, 2, 3}}),
     {1, {0}, {0}},
     .g = {{0, 0, 0}}},
    {"test_slice_of_an_empty_dim_is_empty",
     v_slice_axis_1,
     ONE({2, {2, 0}, {0}}),
     {2, {2, 0}, {0}},
     .g = {{0}}},
    {"test_slice_keeps_nan_and_infinities",
     v_slice_step_2,
     ONE({1, {3}, {NAN, INFINITY, -INFINITY}}),
     {1, {2}, {NAN, -INFINITY}},
     .g = {{1, 0, 1}}},
    {"test_slice_scatter_of_an_empty_tensor_is_zeros",
     v_slice_scatter_into_3,
     ONE({1, {0}, {0}}),
     {1, {3}, {0, 0, 0}},
     .g = {{0}}},
    /* ---- concat, stack ---- */
    {"test_concat_with_an_empty_tensor_keeps_the_other",
     v_concat_axis_0,
     TWO({2, {0, 3}, {0}}, {2, {2, 3}, {1, NAN, 3, 4, INFINITY, 6}}),
     {2, {2, 3}, {1, NAN, 3, 4, INFINITY, 6}},
     .g = {{0}, {1, 1, 1, 1, 1, 1}}},
    {"test_concat_of_empty_tensors_is_empty",
     v_concat_axis_0,
     TWO({2, {0, 3}, {0}}, {2, {0, 3}, {0}}),
     {2, {0, 3}, {0}},
     .g = {{0}, {0}}},
    {"test_stack_of_0d_tensors_is_a_vector",
     v_stack_axis_0,
     TWO({0, {0}, {NAN}}, {0, {0}, {-INFINITY}}),
     {1, {2}, {NAN, -INFINITY}},
     .g = {{1}, {1}}},
    {"test_stack_of_empty_tensors_is_empty",
     v_stack_axis_0,
     TWO({1, {0}, {0}}, {1, {0}, {0}}),
     {2, {2, 0}, {0}},
     .g = {{0}, {0}}},
    /* ---- index_select, index_add, gather, scatter_add with no indices ---- */
    {"test_index_select_of_no_indices_is_empty_with_zero_gradient",
     v_index_select_none,
     ONE({1, {3}, {1, 2, 3}}),
     {1, {0}, {0}},
     .g = {{0, 0, 0}}},
    {"test_index_select_of_empty_rows_is_empty",
     v_index_select_1_1_0,
     ONE({2, {2, 0}, {0}}),
     {2, {3, 0}, {0}},
     .g = {{0}}},
    {"test_index_add_of_no_indices_is_zeros",
     v_index_add_none,
     ONE({1, {0}, {0}}),
     {1, {3}, {0, 0, 0}},
     .g = {{0}}},
    {"test_gather_of_an_empty_index_is_empty_with_zero_gradient",
     v_gather_none,
     ONE({1, {3}, {1, 2, 3}}),
     {1, {0}, {0}},
     .g = {{0, 0, 0}}},
    {"test_scatter_add_of_an_empty_source_is_zeros",
     v_scatter_add_none,
     ONE({1, {0}, {0}}),
     {1, {3}, {0, 0, 0}},
     .g = {{0}}},
    /* ---- where ---- */
    {"test_where_of_an_empty_cond_is_empty",
     v_where_empty_cond,
     TWO({1, {0}, {0}}, {1, {1}, {2.0}}),
     {1, {0}, {0}},
     .g = {{0}, {0.0}}},
    /* torch.where(c, x, torch.log(x)) at x = [1, 0]: 1/0 reaches the gradient */
    {"test_where_passes_inf_from_the_untaken_branch_into_the_gradient",
     v_where_1_0_log,
     ONE({1, {2}, {1.0, 0.0}}),
     {1, {2}, {1.0, -INFINITY}},
     .g = {{1.0, INFINITY}}},
    /* torch.where(c, ones, torch.sqrt(x)) at x = [0, 0]: 0 * inf = nan */
    {"test_where_passes_nan_from_the_untaken_branch_into_the_gradient",
     v_where_1_0_ones_sqrt,
     ONE({1, {2}, {0.0, 0.0}}),
     {1, {2}, {1.0, 0.0}},
     .g = {{NAN, INFINITY}}},
    /* bool(nan) is True */
    {"test_where_counts_a_nan_cond_as_true",
     v_where_nan_0_neg,
     ONE({1, {2}, {2.0, 3.0}}),
     {1, {2}, {2.0, -3.0}},
     .g = {{1.0, -1.0}}},
    {"test_where_of_a_0d_cond_broadcasts",
     v_where_0d_cond,
     TWO({1, {2}, {NAN, 1.0}}, {0, {0}, {7.0}}),
     {1, {2}, {NAN, 1.0}},
     .g = {{1, 1}, {0.0}}},
    /* ---- cast, detach: x.float() (y * [1, 2, 3, 4]).sum() ---- */
    {"test_cast_to_float32_keeps_nan_and_infinities_and_overflows_to_inf",
     v_cast_f32,
     ONE({1, {4}, {NAN, 1e300, -INFINITY, 0.5}}),
     {1, {4}, {NAN, INFINITY, -INFINITY, 0.5}},
     .g = {{1, 2, 3, 4}},
     .seed = (const double[]){1, 2, 3, 4}},
    {"test_cast_of_an_empty_tensor_is_empty",
     v_cast_f32,
     ONE({2, {2, 0}, {0}}),
     {2, {2, 0}, {0}},
     .g = {{0}}},
    {"test_cast_of_a_0d_tensor_is_0d",
     v_cast_f32,
     ONE({0, {0}, {-0.0}}),
     {0, {0}, {-0.0}},
     .g = {{1.0}}},
    {"test_detach_keeps_nan_and_infinities_without_a_gradient",
     v_detach,
     ONE({1, {3}, {NAN, INFINITY, -0.0}}),
     {1, {3}, {NAN, INFINITY, -0.0}},
     .no_grad = true},
    {"test_detach_of_an_empty_tensor_is_empty",
     v_detach,
     ONE({2, {0, 2}, {0}}),
     {2, {0, 2}, {0}},
     .no_grad = true},
    /* ---- custom ops (cube: x^3, as torch.pow(x, 3)) and checkpoints ---- */
    {"test_custom_op_of_an_empty_tensor_is_empty",
     v_cube,
     ONE({2, {2, 0}, {0}}),
     {2, {2, 0}, {0}},
     .g = {{0}}},
    {"test_custom_op_of_a_0d_tensor_is_0d",
     v_cube,
     ONE({0, {0}, {2.0}}),
     {0, {0}, {8.0}},
     .g = {{12.0}}},
    {"test_custom_op_of_nan_and_infinities",
     v_cube,
     ONE({1, {3}, {NAN, INFINITY, -INFINITY}}),
     {1, {3}, {NAN, INFINITY, -INFINITY}},
     .g = {{NAN, INFINITY, INFINITY}}},
    {"test_checkpoint_of_an_empty_tensor_is_0_with_an_empty_gradient",
     v_checkpoint_sum_of_squares,
     ONE({1, {0}, {0}}),
     {0, {0}, {0.0}},
     .g = {{0}}},
    {"test_checkpoint_of_a_0d_tensor",
     v_checkpoint_sum_of_squares,
     ONE({0, {0}, {3.0}}),
     {0, {0}, {9.0}},
     .g = {{6.0}}},
    {"test_checkpoint_of_nan_and_inf",
     v_checkpoint_sum_of_squares,
     ONE({1, {2}, {INFINITY, NAN}}),
     {0, {0}, {NAN}},
     .g = {{INFINITY, NAN}}},
};

static void value_case(run *r)
{
    const value_row *row = r->row;
    if (row->known_bug) {
        print_message("known bug: %s\n", row->known_bug);
        skip();
    }
    ad_tensor *x[2], *g[2];
    for (int i = 0; i < row->n; i++)
        x[i] = leaf(r->tape, AD_F64, row->x[i].ndim, row->x[i].shape, row->x[i].v);
    ad_tensor *y = row->f(x);
    if (!y)
        fail_msg("%s", ad_tape_message(r->tape));
    assert_like_torch(y, row->y.ndim, row->y.shape, row->y.v, RTOL_F64);
    if (row->no_grad) {
        if (row->f == v_detach)
            assert_false(ad_tensor_requires_grad(y));
        return;
    }
    gradients(r->tape, y, row->seed, row->n, x, g);
    for (int i = 0; i < row->n; i++)
        assert_like_torch(g[i], row->x[i].ndim, row->x[i].shape, row->g[i], RTOL_F64);
}

static int run_value_group(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(value_rows)];
    for (size_t i = 0; i < ARRAY_SIZE(value_rows); i++)
        tests[i] = make_test(value_case, &value_rows[i], AD_F64, "%s", value_rows[i].name);
    return cmocka_run_group_tests_name("special values", tests, NULL, NULL);
}

/* =========================================================================================
 * Every op's handles: a NULL input (an earlier error) gives NULL and records
 * nothing; inputs that are all persistent leave AD_ERR_TAPE as the thread's
 * error naming the op; an errored tape gives NULL and keeps its first error;
 * a handle from before ad_tape_reset is AD_ERR_FREED. Each op is called on
 * float64 [2] inputs a (and b), and must succeed on a fresh tape first.
 * ========================================================================================= */

typedef struct handle_row {
    const char *name;
    const char *says; /* the name the thread's message uses, when not name */
    int arity;        /* 1: b is not used */
    ad_tensor *(*f)(ad_tensor *a, ad_tensor *b);
    bool returns_persistent; /* returns a persistent a as it is (documented) */
    bool matrix;             /* a and b are [1,2], not [2] */
} handle_row;

#define H1(op, expr)                                                                               \
    static ad_tensor *h_##op(ad_tensor *a, ad_tensor *b)                                           \
    {                                                                                              \
        (void)b;                                                                                   \
        return expr;                                                                               \
    }
#define H2(op, expr)                                                                               \
    static ad_tensor *h_##op(ad_tensor *a, ad_tensor *b)                                           \
    {                                                                                              \
        return expr;                                                                               \
    }

H1(neg, ad_neg(a))
H1(exp, ad_exp(a))
H1(log, ad_log(a))
H1(log1p, ad_log1p(a))
H1(expm1, ad_expm1(a))
H1(sqrt, ad_sqrt(a))
H1(square, ad_square(a))
H1(sin, ad_sin(a))
H1(cos, ad_cos(a))
H1(tanh, ad_tanh(a))
H1(sigmoid, ad_sigmoid(a))
H1(relu, ad_relu(a))
H1(abs, ad_abs(a))
H1(softplus, ad_softplus(a))
H1(gelu, ad_gelu(a))
H1(leaky_relu, ad_leaky_relu(a, 0.01))
H1(pow_scalar, ad_pow_scalar(a, 3.0))
H1(detach, ad_detach(a))
H1(cast, ad_cast(a, AD_F32))
H1(cast_to_its_own_dtype, ad_cast(a, AD_F64))
H2(add, ad_add(a, b))
H2(sub, ad_sub(a, b))
H2(mul, ad_mul(a, b))
H2(div, ad_div(a, b))
H2(pow, ad_pow(a, b))
H2(maximum, ad_maximum(a, b))
H2(minimum, ad_minimum(a, b))
H1(add_scalar, ad_add_scalar(a, 1.0))
H1(sub_scalar, ad_sub_scalar(a, 1.0))
H1(rsub_scalar, ad_rsub_scalar(a, 1.0))
H1(mul_scalar, ad_mul_scalar(a, 2.0))
H1(div_scalar, ad_div_scalar(a, 2.0))
H1(rdiv_scalar, ad_rdiv_scalar(a, 2.0))
H1(rpow_scalar, ad_rpow_scalar(a, 2.0))
H1(maximum_scalar, ad_maximum_scalar(a, 0.0))
H1(minimum_scalar, ad_minimum_scalar(a, 0.0))
H1(erfinv, ad_erfinv(a))
H1(sinc, ad_sinc(a))
H1(logit, ad_logit(a, 0.1))
H1(selu, ad_selu(a))
H1(softsign, ad_softsign(a))
H2(remainder, ad_remainder(a, b))
H2(fmod, ad_fmod(a, b))
H2(logaddexp, ad_logaddexp(a, b))
H2(logaddexp2, ad_logaddexp2(a, b))
H1(remainder_scalar, ad_remainder_scalar(a, 1.5))
H1(fmod_scalar, ad_fmod_scalar(a, 1.5))
H1(sum, ad_sum(a, 1, (int[]){0}, false))
H1(mean, ad_mean(a, 1, (int[]){-1}, true))
H1(max, ad_max(a, 0, NULL, false))
H1(logsumexp, ad_logsumexp(a, 0, NULL, false))
H1(var, ad_var(a, 0, NULL, false, 1))
H1(sum_all, ad_sum_all(a))
H1(mean_all, ad_mean_all(a))
H2(matmul, ad_matmul(a, b))
H2(matmul_t, ad_matmul_t(a, b, false, true))
H1(permute, ad_permute(a, (int[]){0}))
H1(transpose, ad_transpose(a, 0, -1))
H1(reshape, ad_reshape(a, DIMS(2, 1)))
H1(expand, ad_expand(a, DIMS(3, 2)))
H1(sum_to, ad_sum_to(a, DIMS(1)))
H1(slice, ad_slice(a, 0, 1, 2, 1))
H1(slice_scatter, ad_slice_scatter(a, 0, 4, 1, 2))
H2(concat, ad_concat(2, (ad_tensor *[]){a, b}, 0))
H2(stack, ad_stack(2, (ad_tensor *[]){a, b}, 1))
H1(index_select, ad_index_select(a, 0, 3, (int64_t[]){1, 0, 1}))
H1(index_add, ad_index_add(a, 0, 3, 2, (int64_t[]){2, 2}))
H1(gather, ad_gather(a, 0, DIMS(3), (int64_t[]){1, 1, 0}))
H1(scatter_add, ad_scatter_add(a, 0, DIMS(3), (int64_t[]){0, 2}))
H2(where, ad_where(a, a, b))
H1(softmax, ad_softmax(a, 0))
H1(log_softmax, ad_log_softmax(a, -1))
H1(cross_entropy, ad_cross_entropy(a, 1, (int64_t[]){1}))
H2(mse, ad_mse_loss(a, b))
H1(custom, ad_custom(cube_op, 1, &a, NULL))
H1(checkpoint, ad_checkpoint(sum_of_squares, NULL, 1, &a))

static ad_tensor *h_custom_apply(ad_tensor *a, ad_tensor *b)
{
    (void)b;
    ad_tensor *out = NULL;
    ad_custom_apply(cube_op, 1, &a, NULL, &out);
    return out;
}

/* Ops of one input (b is not used) and of two. */
#define UNARY(op)                                                                                  \
    {                                                                                              \
        .name = #op, .arity = 1, .f = h_##op                                                       \
    }
#define BINARY(op)                                                                                 \
    {                                                                                              \
        .name = #op, .arity = 2, .f = h_##op                                                       \
    }

static const handle_row handle_rows[] = {
    UNARY(neg),
    UNARY(exp),
    UNARY(log),
    UNARY(log1p),
    UNARY(expm1),
    UNARY(sqrt),
    UNARY(square),
    UNARY(sin),
    UNARY(cos),
    UNARY(tanh),
    UNARY(sigmoid),
    UNARY(relu),
    UNARY(abs),
    UNARY(softplus),
    UNARY(gelu),
    UNARY(leaky_relu),
    UNARY(pow_scalar),
    UNARY(detach),
    UNARY(cast),
    {.name = "cast_to_its_own_dtype",
     .says = "cast",
     .arity = 1,
     .f = h_cast_to_its_own_dtype,
     .returns_persistent = true},
    BINARY(add),
    BINARY(sub),
    BINARY(mul),
    BINARY(div),
    BINARY(pow),
    BINARY(maximum),
    BINARY(minimum),
    UNARY(add_scalar),
    UNARY(sub_scalar),
    UNARY(rsub_scalar),
    UNARY(mul_scalar),
    UNARY(div_scalar),
    UNARY(rdiv_scalar),
    UNARY(rpow_scalar),
    UNARY(maximum_scalar),
    UNARY(minimum_scalar),
    UNARY(erfinv),
    UNARY(sinc),
    UNARY(logit),
    UNARY(selu),
    UNARY(softsign),
    BINARY(remainder),
    BINARY(fmod),
    BINARY(logaddexp),
    BINARY(logaddexp2),
    UNARY(remainder_scalar),
    UNARY(fmod_scalar),
    UNARY(sum),
    UNARY(mean),
    UNARY(max),
    UNARY(logsumexp),
    UNARY(var),
    {.name = "sum_all", .says = "sum", .arity = 1, .f = h_sum_all},
    {.name = "mean_all", .says = "mean", .arity = 1, .f = h_mean_all},
    BINARY(matmul),
    {.name = "matmul_t", .says = "matmul", .arity = 2, .f = h_matmul_t, .matrix = true},
    UNARY(permute),
    UNARY(transpose),
    UNARY(reshape),
    UNARY(expand),
    UNARY(sum_to),
    UNARY(slice),
    UNARY(slice_scatter),
    BINARY(concat),
    BINARY(stack),
    UNARY(index_select),
    UNARY(index_add),
    UNARY(gather),
    UNARY(scatter_add),
    BINARY(where),
    UNARY(softmax),
    UNARY(log_softmax),
    {.name = "cross_entropy", .arity = 1, .f = h_cross_entropy, .matrix = true},
    BINARY(mse),
    {.name = "custom", .says = "cube", .arity = 1, .f = h_custom},
    {.name = "custom_apply", .says = "cube", .arity = 1, .f = h_custom_apply},
    UNARY(checkpoint),
};

/* float64 [2] (or [1,2]) tape tensors a = [1, 2] and b = [3, 4]; the op works on them. */
static void handle_inputs(const handle_row *row, ad_tape *tape, ad_tensor **a, ad_tensor **b)
{
    int ndim = row->matrix ? 2 : 1;
    const int64_t *shape = row->matrix ? (int64_t[]){1, 2} : (int64_t[]){2};
    *a = ad_requires_grad(tensor(tape, AD_F64, ndim, shape, (double[]){1, 2}));
    *b = ad_requires_grad(tensor(tape, AD_F64, ndim, shape, (double[]){3, 4}));
    if (!row->f(*a, *b))
        fail_msg("%s on [2] inputs: %s", row->name, ad_tape_message(tape));
}

static void handle_null(run *r)
{
    const handle_row *row = r->row;
    ad_tensor *a, *b;
    handle_inputs(row, r->tape, &a, &b);
    ad_thread_clear_error();
    assert_null(row->f(NULL, NULL));
    if (row->arity == 2) {
        assert_null(row->f(a, NULL));
        assert_null(row->f(NULL, b));
    }
    assert_int_equal(ad_thread_status(), AD_OK);
    assert_int_equal(ad_tape_status(r->tape), AD_OK);
    assert_string_equal(ad_tape_message(r->tape), "");
}

static void handle_persistent(run *r)
{
    const handle_row *row = r->row;
    ad_tensor *a = NULL, *b = NULL;
    int ndim = row->matrix ? 2 : 1;
    const int64_t *shape = row->matrix ? (int64_t[]){1, 2} : (int64_t[]){2};
    assert_int_equal(ad_tensor_create(&a, AD_F64, ndim, shape, true), AD_OK);
    assert_int_equal(ad_tensor_create(&b, AD_F64, ndim, shape, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(a, (double[]){1, 2}), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(b, (double[]){3, 4}), AD_OK);
    ad_thread_clear_error();
    ad_tensor *y = row->f(a, b);
    ad_status status = ad_thread_status();
    char message[512];
    snprintf(message, sizeof message, "%s", ad_thread_message());
    ad_thread_clear_error();
    ad_tensor_free(a);
    ad_tensor_free(b);
    if (row->returns_persistent) {
        assert_ptr_equal(y, a);
        assert_int_equal(status, AD_OK);
        return;
    }
    if (y)
        fail_msg("%s of persistent tensors returned a tensor", row->name);
    if (status != AD_ERR_TAPE)
        fail_msg("%s of persistent tensors left the thread's status \"%s\" (\"%s\"), expected "
                 "\"%s\"",
                 row->name, ad_status_string(status), message, ad_status_string(AD_ERR_TAPE));
    const char *says = row->says ? row->says : row->name;
    if (!strstr(message, says) || !strstr(message, "ad_tape_use"))
        fail_msg("the thread's message \"%s\" does not name \"%s\" and ad_tape_use", message, says);
}

static void handle_errored_tape(run *r)
{
    const handle_row *row = r->row;
    ad_tensor *a, *b;
    handle_inputs(row, r->tape, &a, &b);
    ad_tape_set_error(r->tape, AD_ERR_ARG, "an earlier error");
    assert_null(row->f(a, b));
    assert_int_equal(ad_tape_status(r->tape), AD_ERR_ARG);
    assert_string_equal(ad_tape_message(r->tape), "an earlier error");
    ad_tape_clear_error(r->tape);
    assert_non_null(row->f(a, b));
}

static void handle_stale(run *r)
{
    const handle_row *row = r->row;
    ad_tensor *a, *b;
    assert_int_equal(ad_tape_set_checked(r->tape, 1), AD_OK);
    ad_tape_reset(r->tape); /* checked mode takes effect here */
    handle_inputs(row, r->tape, &a, &b);
    ad_tape_reset(r->tape);
    assert_null(row->f(a, b));
    assert_op_error(r->tape, NULL, AD_ERR_FREED, ((const char *[]){"ad_tape_reset", NULL}));
}

static int run_handle_group(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(handle_rows) * 4];
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(handle_rows); i++) {
        const handle_row *row = &handle_rows[i];
        const char *n = row->name;
        tests[k++] = make_test(handle_null, row, AD_F64,
                               "test_%s_of_a_null_input_is_null_and_records_nothing", n);
        tests[k++] =
            make_test(handle_persistent, row, AD_F64,
                      "test_%s_of_persistent_tensors_only_leaves_a_thread_error_naming_it", n);
        tests[k++] = make_test(handle_errored_tape, row, AD_F64,
                               "test_%s_on_an_errored_tape_is_null_and_keeps_the_first_error", n);
        tests[k++] = make_test(handle_stale, row, AD_F64,
                               "test_%s_of_a_handle_from_before_a_reset_is_freed", n);
    }
    return cmocka_run_group_tests_name("handles", tests, NULL, NULL);
}

/* =========================================================================================
 * Errors that no row above can express.
 * ========================================================================================= */

/* The backward of a custom op returns a 0-d gradient for a [2] input. */
static void test_a_custom_gradient_of_the_wrong_shape_fails_the_backward_naming_both(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *w = witness(tape);
    ad_tensor *x = leaf(tape, AD_F64, DIMS(2), (double[]){1, 2});
    ad_tensor *y = ad_custom(wrong_grad_op, 1, &x, NULL);
    assert_non_null(y);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_ERR_SHAPE);
    assert_op_error(tape, NULL, AD_ERR_SHAPE,
                    ((const char *[]){"wrong_grad", "float64 []", "float64 [2]", NULL}));
    assert_usable_after_clearing(tape, w);
}

/* Joining no tensors, or calling a custom op or a checkpoint on none, leaves
 * a thread error: there is no tape to hold it. */
static ad_tensor *concat_of_none(void)
{
    return ad_concat(0, NULL, 0);
}
static ad_tensor *stack_of_none(void)
{
    return ad_stack(0, NULL, 0);
}
static ad_tensor *custom_of_none(void)
{
    ad_tensor *out = NULL;
    assert_int_equal(ad_custom_apply(cube_op, 0, NULL, NULL, &out), AD_ERR_ARG);
    return out;
}
static ad_tensor *checkpoint_of_none(void)
{
    return ad_checkpoint(sum_of_squares, NULL, 0, NULL);
}

static void test_ops_given_no_inputs_leave_a_thread_error_naming_them(void **state)
{
    (void)state;
    const struct {
        const char *name;
        ad_tensor *(*call)(void);
    } calls[] = {{"concat", concat_of_none},
                 {"stack", stack_of_none},
                 {"cube", custom_of_none},
                 {"checkpoint", checkpoint_of_none}};
    for (size_t i = 0; i < ARRAY_SIZE(calls); i++) {
        ad_thread_clear_error();
        if (calls[i].call())
            fail_msg("%s of no inputs returned a tensor", calls[i].name);
        if (ad_thread_status() != AD_ERR_ARG || !strstr(ad_thread_message(), calls[i].name))
            fail_msg("%s of no inputs left the thread's status \"%s\" (\"%s\")", calls[i].name,
                     ad_status_string(ad_thread_status()), ad_thread_message());
    }
    ad_thread_clear_error();
}

int main(void)
{
    if (create_custom_ops()) {
        fprintf(stderr, "test_bad_inputs: cannot create the custom ops\n");
        return 1;
    }
    const struct CMUnitTest single_tests[] = {
        TAPE_TEST(test_a_custom_gradient_of_the_wrong_shape_fails_the_backward_naming_both),
        cmocka_unit_test(test_ops_given_no_inputs_leave_a_thread_error_naming_them),
    };
    int failed = 0;
    failed += run_unary_group();
    failed += run_binary_group();
    failed += run_scalar_form_group();
    failed += run_reduce_group();
    failed += run_error_group();
    failed += run_value_group();
    failed += run_handle_group();
    failed += cmocka_run_group_tests_name("other errors", single_tests, NULL, NULL);
    free_custom_ops();
    return failed ? 1 : 0;
}
