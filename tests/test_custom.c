/* Unit tests of custom ops (include/autodiff/custom.h): values and gradients
 * through ad_backward and ad_grad, ad_custom_op_check catching wrong rules,
 * several outputs, no-grad mode, the forward's recording, saved tensors and
 * arguments, persistent inputs, first-order ops, and every error the API
 * promises. The ops are registered once for the whole file (group setup) and
 * freed after every tape that used them (group teardown). */
#include "test_util.h"

#include "autodiff/custom.h"

#include <stdint.h>

/* What a callback saw, one per op (the def's data). */
typedef struct op_log {
    int forward_calls, backward_calls, jvp_calls;
    bool forward_grad_enabled, backward_grad_enabled;
    /* For prod_ratio: the output whose gradient must be all zeros (-1: none),
     * and how many times the backward checked it. */
    int unused_output;
    int zero_checks;
    /* For scaled_exp: what the backward found. */
    bool saved_ok, block_aligned;
} op_log;

enum {
    OP_SQUARE_TIMES,
    OP_SQUARE_TIMES_WRONG_BACKWARD,
    OP_SQUARE_TIMES_WRONG_JVP,
    OP_PROD_RATIO,
    OP_PROBE,
    OP_SCALED_EXP,
    OP_CUBE_FIRST_ORDER,
    OP_CUBE_FIRST_ORDER_JVP,
    OP_CUBE_RAW_UNDECLARED,
    OP_WRONG_SHAPE_BACKWARD,
    OP_FAILING_FORWARD,
    OP_SILENTLY_FAILING_FORWARD,
    OP_IDENTITY,
    OP_SUM_OF_SQUARES,
    N_OPS
};

static ad_custom_op *ops[N_OPS];
static op_log logs[N_OPS];

static void reset_logs(void)
{
    memset(logs, 0, sizeof logs);
    for (int i = 0; i < N_OPS; i++)
        logs[i].unused_output = -1;
}

static op_log *log_of(ad_custom_ctx *c)
{
    op_log *log = ad_custom_op_data(c);
    assert_non_null(log);
    return log;
}

static void log_forward(ad_custom_ctx *c)
{
    op_log *log = log_of(c);
    log->forward_calls++;
    log->forward_grad_enabled = ad_tape_grad_enabled(ad_custom_tape(c));
}

static void log_backward(ad_custom_ctx *c)
{
    op_log *log = log_of(c);
    log->backward_calls++;
    log->backward_grad_enabled = ad_tape_grad_enabled(ad_custom_tape(c));
}

/* ---- square_times: y = a^2 b (a, b of one shape) ----------------------------------------- */

static ad_status square_times_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    log_forward(c);
    out[0] = ad_mul(ad_square(in[0]), in[1]);
    return ad_tape_status(ad_custom_tape(c));
}

// da = dy 2 a b, db = dy a^2
static ad_status square_times_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    log_backward(c);
    ad_tensor *a = ad_custom_input(c, 0), *b = ad_custom_input(c, 1);
    gin[0] = ad_mul(g[0], ad_mul_scalar(ad_mul(a, b), 2.0));
    gin[1] = ad_mul(g[0], ad_square(a));
    return ad_tape_status(ad_custom_tape(c));
}

/* Wrong on purpose: da = dy a b (the factor 2 forgotten). */
static ad_status square_times_wrong_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    log_backward(c);
    ad_tensor *a = ad_custom_input(c, 0), *b = ad_custom_input(c, 1);
    gin[0] = ad_mul(g[0], ad_mul(a, b));
    gin[1] = ad_mul(g[0], ad_square(a));
    return ad_tape_status(ad_custom_tape(c));
}

/* Wrong on purpose: dy = 2 a b ta + 2 a^2 tb (the second term doubled). */
static ad_status square_times_wrong_jvp(ad_custom_ctx *c, ad_tensor *const *t, ad_tensor **out)
{
    log_of(c)->jvp_calls++;
    ad_tensor *a = ad_custom_input(c, 0), *b = ad_custom_input(c, 1);
    ad_tensor *d = NULL;
    if (t[0])
        d = ad_mul(t[0], ad_mul_scalar(ad_mul(a, b), 2.0));
    if (t[1]) {
        ad_tensor *e = ad_mul(t[1], ad_mul_scalar(ad_square(a), 2.0));
        d = d ? ad_add(d, e) : e;
    }
    out[0] = d;
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- prod_ratio: (u, v) = (a b, a / b) ---------------------------------------------------- */

static ad_status prod_ratio_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    log_forward(c);
    out[0] = ad_mul(in[0], in[1]);
    out[1] = ad_div(in[0], in[1]);
    return ad_tape_status(ad_custom_tape(c));
}

// da = du b + dv / b, db = du a - dv a / b^2
static ad_status prod_ratio_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    log_backward(c);
    op_log *log = log_of(c);
    assert_int_equal(ad_custom_n_outputs(c), 2);
    assert_non_null(g[0]);
    assert_non_null(g[1]);
    if (log->unused_output >= 0) {
        const ad_tensor *unused = g[log->unused_output];
        assert_int_equal(ad_tensor_numel(unused), ad_tensor_numel(ad_custom_input(c, 0)));
        for (int64_t i = 0; i < ad_tensor_numel(unused); i++)
            if (!(ad_tensor_get(unused, i) == 0.0))
                fail_msg("gradient of unused output %d has %g at %lld", log->unused_output,
                         ad_tensor_get(unused, i), (long long)i);
        log->zero_checks++;
    }
    ad_tensor *a = ad_custom_input(c, 0), *b = ad_custom_input(c, 1);
    gin[0] = ad_add(ad_mul(g[0], b), ad_div(g[1], b));
    gin[1] = ad_sub(ad_mul(g[0], a), ad_div(ad_mul(g[1], a), ad_square(b)));
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- probe: y = exp(sin(x^2)) + x, four ops in the forward; checks the context ------------ */

static ad_status probe_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    log_forward(c);
    assert_false(ad_tape_grad_enabled(ad_custom_tape(c)));
    assert_int_equal(ad_custom_n_inputs(c), 1);
    assert_int_equal(ad_custom_n_outputs(c), 1);
    assert_ptr_equal(ad_custom_input(c, 0), in[0]);
    assert_null(ad_custom_input(c, 1));
    assert_null(ad_custom_output(c, 0)); /* no outputs while the forward runs */
    assert_null(ad_custom_saved(c, 0));
    ad_tensor *x = in[0];
    out[0] = ad_add(ad_exp(ad_sin(ad_mul(x, x))), x);
    return ad_tape_status(ad_custom_tape(c));
}

// dx = dy ((y - x) cos(x^2) 2 x + 1)
static ad_status probe_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    log_backward(c);
    ad_tensor *x = ad_custom_input(c, 0), *y = ad_custom_output(c, 0);
    assert_non_null(y);
    assert_null(ad_custom_output(c, 1));
    ad_tensor *slope = ad_mul(ad_mul(ad_sub(y, x), ad_cos(ad_square(x))), ad_mul_scalar(x, 2.0));
    gin[0] = ad_mul(g[0], ad_add_scalar(slope, 1.0));
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- scaled_exp: y = factor exp(x) scale, with saved tensors and arena memory ------------- */

typedef struct scaled_exp_args {
    double factor;    /* read by the forward only */
    ad_tensor *scale; /* a persistent constant of x's shape */
    double *block;    /* set by the forward: ad_custom_alloc'd {factor, -7}, also its state */
} scaled_exp_args;

static ad_status scaled_exp_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    log_forward(c);
    scaled_exp_args *args = ad_custom_args(c);
    ad_tape *tape = ad_custom_tape(c);
    ad_tensor *e = ad_exp(in[0]);
    if (!e || ad_custom_save(c, e) != AD_OK || ad_custom_save(c, args->scale) != AD_OK)
        return ad_tape_status(tape);
    double *block = ad_custom_alloc(c, 2 * sizeof *block);
    if (!block)
        return ad_tape_status(tape);
    block[0] = args->factor;
    block[1] = -7.0;
    args->block = block;
    ad_custom_set_state(c, block);
    out[0] = ad_mul_scalar(ad_mul(e, args->scale), args->factor);
    return ad_tape_status(tape);
}

// dx = dy y = dy factor exp(x) scale, from the saved exp(x) and scale
static ad_status scaled_exp_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    log_backward(c);
    op_log *log = log_of(c);
    const scaled_exp_args *args = ad_custom_args(c);
    ad_tensor *e = ad_custom_saved(c, 0), *scale = ad_custom_saved(c, 1);
    ad_tensor *x = ad_custom_input(c, 0);
    /* exp(x) as the forward computed it; the persistent scale as a view on this tape. */
    log->saved_ok = e && scale && !ad_custom_saved(c, 2) &&
                    ad_tensor_tape(scale) == ad_custom_tape(c) &&
                    ad_tensor_numel(e) == ad_tensor_numel(x) &&
                    fabs(ad_tensor_get(e, 1) - exp(ad_tensor_get(x, 1))) < 1e-15 &&
                    ad_tensor_get(scale, 2) == ad_tensor_get(args->scale, 2);
    /* The forward's block comes back through the call's state. */
    const double *block = ad_custom_state(c);
    log->block_aligned = block == args->block && ((uintptr_t)block % 16) == 0 && block[1] == -7.0;
    gin[0] = ad_mul_scalar(ad_mul(ad_mul(g[0], e), scale), block[0]);
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- cube from raw numbers: y = x^3, dx = 3 x^2 dy (float64 only) ---------------------------- */

static ad_tensor *raw_like(ad_custom_ctx *c, const ad_tensor *x)
{
    return ad_tape_tensor(ad_custom_tape(c), AD_F64, ad_tensor_ndim(x), ad_tensor_shape(x), NULL);
}

static ad_status cube_raw_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    log_forward(c);
    if (!(out[0] = raw_like(c, in[0])))
        return ad_tape_status(ad_custom_tape(c));
    const double *x = ad_tensor_data(in[0]);
    double *y = ad_tensor_data(out[0]);
    for (int64_t i = 0; i < ad_tensor_numel(in[0]); i++)
        y[i] = x[i] * x[i] * x[i];
    return AD_OK;
}

/* out = 3 x^2 t elementwise, in raw numbers (the backward and the jvp alike). */
static ad_status cube_raw_slope_times(ad_custom_ctx *c, const ad_tensor *t, ad_tensor **out)
{
    ad_tensor *x = ad_custom_input(c, 0);
    if (!(*out = raw_like(c, x)))
        return ad_tape_status(ad_custom_tape(c));
    const double *xs = ad_tensor_data(x), *ts = ad_tensor_data(t);
    double *d = ad_tensor_data(*out);
    for (int64_t i = 0; i < ad_tensor_numel(x); i++)
        d[i] = 3.0 * xs[i] * xs[i] * ts[i];
    return AD_OK;
}

static ad_status cube_raw_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    log_backward(c);
    return cube_raw_slope_times(c, g[0], &gin[0]);
}

static ad_status cube_raw_jvp(ad_custom_ctx *c, ad_tensor *const *t, ad_tensor **out)
{
    log_of(c)->jvp_calls++;
    return t[0] ? cube_raw_slope_times(c, t[0], &out[0]) : AD_OK;
}

/* ---- Ops that fail -------------------------------------------------------------------------- */

static ad_status twice_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    log_forward(c);
    out[0] = ad_mul_scalar(in[0], 2.0);
    return ad_tape_status(ad_custom_tape(c));
}

/* Wrong on purpose: a gradient of shape [2] whatever the input's shape. */
static ad_status wrong_shape_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    (void)g;
    log_backward(c);
    const int64_t two = 2;
    gin[0] = ad_full(ad_custom_tape(c), AD_F64, 1, &two, 2.0);
    return ad_tape_status(ad_custom_tape(c));
}

static ad_status failing_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    (void)in, (void)out;
    log_forward(c);
    return ad_tape_set_error(ad_custom_tape(c), AD_ERR_DTYPE,
                             "failing_forward: wants float16, got %s", "float64");
}

static ad_status silently_failing_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    (void)in, (void)out;
    log_forward(c);
    return AD_ERR_IO;
}

static ad_status never_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    (void)g, (void)gin;
    log_backward(c);
    return AD_ERR_UNSUPPORTED;
}

/* ---- identity: the output is the input itself ----------------------------------------------- */

static ad_status identity_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    log_forward(c);
    out[0] = in[0];
    return AD_OK;
}

// dx = dy
static ad_status identity_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    log_backward(c);
    gin[0] = g[0];
    return AD_OK;
}

/* ---- sum_of_squares: y = sum_i x_i^2 over any number of inputs of one shape --------------------
 */

static ad_status sum_of_squares_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    log_forward(c);
    out[0] = ad_square(in[0]);
    for (size_t i = 1; i < ad_custom_n_inputs(c); i++)
        out[0] = ad_add(out[0], ad_square(in[i]));
    return ad_tape_status(ad_custom_tape(c));
}

// dx_i = 2 x_i dy
static ad_status sum_of_squares_backward(ad_custom_ctx *c, ad_tensor *const *g, ad_tensor **gin)
{
    log_backward(c);
    for (size_t i = 0; i < ad_custom_n_inputs(c); i++)
        gin[i] = ad_mul(g[0], ad_mul_scalar(ad_custom_input(c, i), 2.0));
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- Registration (group setup and teardown) ------------------------------------------------ */

static int ops_create(void **state)
{
    (void)state;
    const ad_custom_op_def defs[N_OPS] = {
        [OP_SQUARE_TIMES] = {.name = "square_times",
                             .n_inputs = 2,
                             .n_outputs = 1,
                             .forward = square_times_forward,
                             .backward = square_times_backward},
        [OP_SQUARE_TIMES_WRONG_BACKWARD] = {.name = "square_times_wrong_backward",
                                            .n_inputs = 2,
                                            .n_outputs = 1,
                                            .forward = square_times_forward,
                                            .backward = square_times_wrong_backward},
        [OP_SQUARE_TIMES_WRONG_JVP] = {.name = "square_times_wrong_jvp",
                                       .n_inputs = 2,
                                       .n_outputs = 1,
                                       .forward = square_times_forward,
                                       .backward = square_times_backward,
                                       .jvp = square_times_wrong_jvp},
        [OP_PROD_RATIO] = {.name = "prod_ratio",
                           .n_inputs = 2,
                           .n_outputs = 2,
                           .forward = prod_ratio_forward,
                           .backward = prod_ratio_backward},
        [OP_PROBE] = {.name = "probe",
                      .n_inputs = 1,
                      .n_outputs = 1,
                      .forward = probe_forward,
                      .backward = probe_backward},
        [OP_SCALED_EXP] = {.name = "scaled_exp",
                           .n_inputs = 1,
                           .n_outputs = 1,
                           .forward = scaled_exp_forward,
                           .backward = scaled_exp_backward},
        [OP_CUBE_FIRST_ORDER] = {.name = "cube_first_order",
                                 .n_inputs = 1,
                                 .n_outputs = 1,
                                 .forward = cube_raw_forward,
                                 .backward = cube_raw_backward,
                                 .flags = AD_CUSTOM_FIRST_ORDER},
        [OP_CUBE_FIRST_ORDER_JVP] = {.name = "cube_first_order_jvp",
                                     .n_inputs = 1,
                                     .n_outputs = 1,
                                     .forward = cube_raw_forward,
                                     .backward = cube_raw_backward,
                                     .jvp = cube_raw_jvp,
                                     .flags = AD_CUSTOM_FIRST_ORDER},
        [OP_CUBE_RAW_UNDECLARED] = {.name = "cube_raw_undeclared",
                                    .n_inputs = 1,
                                    .n_outputs = 1,
                                    .forward = cube_raw_forward,
                                    .backward = cube_raw_backward},
        [OP_WRONG_SHAPE_BACKWARD] = {.name = "wrong_shape_backward",
                                     .n_inputs = 1,
                                     .n_outputs = 1,
                                     .forward = twice_forward,
                                     .backward = wrong_shape_backward},
        [OP_FAILING_FORWARD] = {.name = "failing_forward",
                                .n_inputs = 1,
                                .n_outputs = 1,
                                .forward = failing_forward,
                                .backward = never_backward},
        [OP_SILENTLY_FAILING_FORWARD] = {.name = "silently_failing_forward",
                                         .n_inputs = 1,
                                         .n_outputs = 1,
                                         .forward = silently_failing_forward,
                                         .backward = never_backward},
        [OP_IDENTITY] = {.name = "identity",
                         .n_inputs = 1,
                         .n_outputs = 1,
                         .forward = identity_forward,
                         .backward = identity_backward},
        [OP_SUM_OF_SQUARES] = {.name = "sum_of_squares",
                               .n_inputs = -1,
                               .n_outputs = 1,
                               .forward = sum_of_squares_forward,
                               .backward = sum_of_squares_backward},
    };
    for (int i = 0; i < N_OPS; i++) {
        ad_custom_op_def def = defs[i];
        def.data = &logs[i];
        if (ad_custom_op_create(&ops[i], &def) != AD_OK)
            return -1;
    }
    return 0;
}

static int ops_free(void **state)
{
    (void)state;
    for (int i = 0; i < N_OPS; i++) {
        ad_custom_op_free(ops[i]);
        ops[i] = NULL;
    }
    return 0;
}

/* Each test starts with clean logs and a fresh tape. */
static int custom_setup(void **state)
{
    reset_logs();
    return tape_setup(state);
}

#define CUSTOM_TEST(f) cmocka_unit_test_setup_teardown(f, custom_setup, tape_teardown)

/* ---- Helpers ------------------------------------------------------------------------------- */

static ad_tensor *apply1(int which, ad_tensor *x)
{
    return ad_custom(ops[which], 1, &x, NULL);
}

static ad_tensor *apply2(int which, ad_tensor *a, ad_tensor *b)
{
    ad_tensor *in[2] = {a, b};
    return ad_custom(ops[which], 2, in, NULL);
}

static ad_tensor *vector_leaf(ad_tape *tape, ad_dtype dtype, int64_t n, const double *values)
{
    return leaf(tape, dtype, 1, &n, values);
}

static ad_tensor *vector_of(ad_tape *tape, int64_t n, const double *values)
{
    return tensor(tape, AD_F64, 1, &n, values);
}

/* The points most tests use, and y = a^2 b there with its gradients. */
static const double A[3] = {1.0, -2.0, 0.5}, B[3] = {3.0, 0.25, -1.0};
static const double SQUARE_TIMES[3] = {3.0, 1.0, -0.25};    /* a^2 b */
static const double SQUARE_TIMES_DA[3] = {6.0, -1.0, -1.0}; /* 2 a b */
static const double SQUARE_TIMES_DB[3] = {1.0, 4.0, 0.25};  /* a^2 */

/* ---- Value and gradient --------------------------------------------------------------------- */

static void test_custom_op_with_op_backward_gives_hand_computed_values_and_gradients(void **state)
{
    ad_tape *tape = *state;
    const ad_dtype dtypes[2] = {AD_F32, AD_F64};
    for (int d = 0; d < 2; d++) {
        ad_tape_reset(tape);
        double tol = dtypes[d] == AD_F32 ? 1e-6 : 1e-15;
        ad_tensor *a = vector_leaf(tape, dtypes[d], 3, A);
        ad_tensor *b = vector_leaf(tape, dtypes[d], 3, B);
        ad_tensor *y = apply2(OP_SQUARE_TIMES, a, b);
        assert_non_null(y);
        assert_int_equal(ad_tensor_dtype(y), dtypes[d]);
        assert_true(ad_tensor_requires_grad(y));
        assert_values(y, 3, SQUARE_TIMES, tol, 0);

        /* ad_grad: functional, nothing stored. */
        ad_tensor *loss = ad_sum_all(y), *in[2] = {a, b}, *g[2];
        ad_backward_opts keep = {.retain_graph = true};
        assert_int_equal(ad_grad(1, &loss, NULL, 2, in, g, &keep), AD_OK);
        assert_int_equal(ad_tensor_dtype(g[0]), dtypes[d]);
        assert_values(g[0], 3, SQUARE_TIMES_DA, tol, 0);
        assert_values(g[1], 3, SQUARE_TIMES_DB, tol, 0);
        assert_null(ad_tensor_grad(a));

        /* ad_backward: into the leaves' gradients. */
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        assert_values(ad_tensor_grad(a), 3, SQUARE_TIMES_DA, tol, 0);
        assert_values(ad_tensor_grad(b), 3, SQUARE_TIMES_DB, tol, 0);
    }
    assert_int_equal(logs[OP_SQUARE_TIMES].forward_calls, 2);
    assert_int_equal(logs[OP_SQUARE_TIMES].backward_calls, 4);
    assert_false(logs[OP_SQUARE_TIMES].backward_grad_enabled); /* no create_graph */
}

static void test_custom_op_gradient_flows_through_a_chain_with_a_non_unit_seed(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_leaf(tape, AD_F64, 3, A), *b = vector_leaf(tape, AD_F64, 3, B);
    /* L = sum(sin(y) * w): dL/dy = cos(y) w. */
    const double W[3] = {2.0, -1.0, 0.5};
    ad_tensor *y = apply2(OP_SQUARE_TIMES, a, b);
    ad_tensor *loss = ad_sum_all(ad_mul(ad_sin(y), vector_of(tape, 3, W)));
    ad_tensor *in[2] = {a, b}, *g[2];
    assert_int_equal(ad_grad(1, &loss, NULL, 2, in, g, NULL), AD_OK);
    for (int i = 0; i < 3; i++) {
        double gy = cos(SQUARE_TIMES[i]) * W[i];
        assert_close(gy * SQUARE_TIMES_DA[i], ad_tensor_get(g[0], i), 1e-15, 1e-15);
        assert_close(gy * SQUARE_TIMES_DB[i], ad_tensor_get(g[1], i), 1e-15, 1e-15);
    }
}

static void test_custom_op_check_runs_float32_inputs_as_float64_copies(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    ad_tensor *in[2] = {tensor(tape, AD_F32, 1, &n, A), tensor(tape, AD_F32, 1, &n, B)};
    ad_gradcheck_result r;
    assert_int_equal(ad_custom_op_check(ops[OP_SQUARE_TIMES], 2, in, NULL, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("ad_custom_op_check: %s", r.message);
    assert_int_equal(ad_tensor_dtype(in[0]), AD_F32); /* the caller's inputs are untouched */
}

static void
test_custom_op_check_passes_on_a_correct_op_as_do_gradcheck_and_gradgradcheck(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_of(tape, 3, A), vector_of(tape, 3, B)};
    ad_gradcheck_result r;
    assert_int_equal(ad_custom_op_check(ops[OP_SQUARE_TIMES], 2, in, NULL, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("ad_custom_op_check: %s", r.message);
    assert_non_null(strstr(r.message, "square_times"));
    assert_true(r.error <= 1.0);
    /* It ran the forward, the backward (first and second order, and for forward mode). */
    assert_true(logs[OP_SQUARE_TIMES].forward_calls > 0);
    assert_true(logs[OP_SQUARE_TIMES].backward_calls > 0);
}

/* f(a, b) = sin(square_times(a, b)) * a: the op inside an expression. */
static ad_tensor *sin_square_times_times_a(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    ad_tensor *y = ad_custom(ops[OP_SQUARE_TIMES], n, in, NULL);
    return ad_mul(ad_sin(y), in[0]);
}

static void test_gradcheck_and_gradgradcheck_pass_for_a_function_using_a_custom_op(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_of(tape, 3, A), vector_of(tape, 3, B)};
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(sin_square_times_times_a, NULL, 2, in, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("gradcheck: %s", r.message);
    assert_int_equal(ad_gradgradcheck(sin_square_times_times_a, NULL, 2, in, 7, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("gradgradcheck: %s", r.message);
    assert_int_equal(ad_jvpcheck(sin_square_times_times_a, NULL, 2, in, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("jvpcheck: %s", r.message);
}

static void test_second_derivatives_through_a_custom_op_match_hand_values(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_leaf(tape, AD_F64, 3, A), *b = vector_leaf(tape, AD_F64, 3, B);
    ad_tensor *y = apply2(OP_SQUARE_TIMES, a, b), *in[2] = {a, b}, *g[2], *h[2];
    ad_backward_opts o = {.create_graph = true};
    ad_tensor *loss = ad_sum_all(y);
    assert_int_equal(ad_grad(1, &loss, NULL, 2, in, g, &o), AD_OK);
    assert_true(logs[OP_SQUARE_TIMES].backward_grad_enabled);
    assert_true(ad_tensor_requires_grad(g[0]));
    /* d sum(2 a b) / (a, b) = (2 b, 2 a) */
    ad_tensor *ga = ad_sum_all(g[0]);
    assert_int_equal(ad_grad(1, &ga, NULL, 2, in, h, NULL), AD_OK);
    for (int i = 0; i < 3; i++) {
        assert_close(2 * B[i], ad_tensor_get(h[0], i), 1e-15, 0);
        assert_close(2 * A[i], ad_tensor_get(h[1], i), 1e-15, 0);
    }
}

/* ---- ad_custom_op_check catches wrong rules ----------------------------------------------------
 */

static void test_custom_op_check_catches_a_wrong_backward_and_says_it_is_the_backward(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_of(tape, 3, A), vector_of(tape, 3, B)};
    ad_gradcheck_result r;
    assert_int_equal(ad_custom_op_check(ops[OP_SQUARE_TIMES_WRONG_BACKWARD], 2, in, NULL, NULL, &r),
                     AD_OK);
    assert_false(r.passed);
    assert_true(r.error > 1.0);
    /* The worst element: da[0] is a b = 3 against 2 a b = 6. */
    assert_int_equal(r.input, 0);
    assert_int_equal(r.index, 0);
    assert_int_equal(r.output, 0);
    assert_close(3.0, r.analytic, 1e-12, 0);
    assert_close(6.0, r.numeric, 1e-6, 0);
    if (!strstr(r.message, "backward"))
        fail_msg("message \"%s\" does not say the backward failed", r.message);
    assert_null(strstr(r.message, "forward mode"));
    assert_null(strstr(r.message, "second order"));
}

static void test_custom_op_check_catches_a_wrong_jvp_in_its_forward_mode_check(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_of(tape, 3, A), vector_of(tape, 3, B)};
    ad_gradcheck_result r;
    assert_int_equal(ad_custom_op_check(ops[OP_SQUARE_TIMES_WRONG_JVP], 2, in, NULL, NULL, &r),
                     AD_OK);
    assert_false(r.passed);
    assert_true(logs[OP_SQUARE_TIMES_WRONG_JVP].jvp_calls > 0);
    if (!strstr(r.message, "forward mode"))
        fail_msg("message \"%s\" does not say forward mode failed", r.message);
    /* The worst element: d y / d b[1] is a^2 = 4, the jvp says 8. */
    assert_int_equal(r.input, 1);
    assert_int_equal(r.index, 1);
    assert_int_equal(r.output, 1);
    assert_close(8.0, r.analytic, 1e-12, 0);
    assert_close(4.0, r.numeric, 1e-6, 0);
}

/* ---- Several outputs --------------------------------------------------------------------------
 */

/* (u, v) = (a b, a / b) at a = [2, -1], b = [0.5, 4]. */
static const double PA[2] = {2.0, -1.0}, PB[2] = {0.5, 4.0};

static void prod_ratio(ad_tape *tape, ad_tensor **a, ad_tensor **b, ad_tensor **uv)
{
    *a = vector_leaf(tape, AD_F64, 2, PA);
    *b = vector_leaf(tape, AD_F64, 2, PB);
    ad_tensor *in[2] = {*a, *b};
    assert_int_equal(ad_custom_apply(ops[OP_PROD_RATIO], 2, in, NULL, uv), AD_OK);
    assert_values(uv[0], 2, (double[]){1.0, -4.0}, 0, 0);
    assert_values(uv[1], 2, (double[]){4.0, -0.25}, 0, 0);
}

static void test_two_output_custom_op_with_both_outputs_used_sums_their_gradients(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a, *b, *uv[2];
    prod_ratio(tape, &a, &b, uv);
    /* L = sum(u) + 2 sum(v): da = b + 2 / b, db = a - 2 a / b^2 */
    ad_tensor *loss = ad_add(ad_sum_all(uv[0]), ad_mul_scalar(ad_sum_all(uv[1]), 2.0));
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    assert_values(ad_tensor_grad(a), 2, (double[]){4.5, 4.5}, 1e-15, 0);
    assert_values(ad_tensor_grad(b), 2, (double[]){-14.0, -0.875}, 1e-15, 0);
    assert_int_equal(logs[OP_PROD_RATIO].backward_calls, 1); /* once for both outputs */
}

static void test_two_output_custom_op_gives_zeros_for_the_gradient_of_an_unused_output(void **state)
{
    ad_tape *tape = *state;
    for (int unused = 0; unused < 2; unused++) {
        ad_tape_reset(tape);
        ad_tensor *a, *b, *uv[2];
        prod_ratio(tape, &a, &b, uv);
        logs[OP_PROD_RATIO].unused_output = unused;
        ad_tensor *loss = ad_sum_all(uv[1 - unused]);
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        if (unused == 1) { /* L = sum(a b) */
            assert_values(ad_tensor_grad(a), 2, PB, 0, 0);
            assert_values(ad_tensor_grad(b), 2, PA, 0, 0);
        } else { /* L = sum(a / b): da = 1 / b, db = -a / b^2 */
            assert_values(ad_tensor_grad(a), 2, (double[]){2.0, 0.25}, 1e-15, 0);
            assert_values(ad_tensor_grad(b), 2, (double[]){-8.0, 0.0625}, 1e-15, 0);
        }
    }
    assert_int_equal(logs[OP_PROD_RATIO].zero_checks, 2);
}

static void test_two_output_custom_op_has_second_derivatives_with_one_output_unused(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a, *b, *uv[2];
    prod_ratio(tape, &a, &b, uv);
    logs[OP_PROD_RATIO].unused_output = 0;
    /* L = sum(a / b): db = -a / b^2, and d sum(db) / (a, b) = (-1 / b^2, 2 a / b^3) */
    ad_tensor *loss = ad_sum_all(uv[1]), *in[2] = {a, b}, *g[2], *h[2];
    ad_backward_opts o = {.create_graph = true};
    assert_int_equal(ad_grad(1, &loss, NULL, 2, in, g, &o), AD_OK);
    assert_true(ad_tensor_requires_grad(g[1]));
    ad_tensor *gb = ad_sum_all(g[1]);
    assert_int_equal(ad_grad(1, &gb, NULL, 2, in, h, NULL), AD_OK);
    assert_values(h[0], 2, (double[]){-4.0, -0.0625}, 1e-15, 0);
    assert_values(h[1], 2, (double[]){32.0, -0.03125}, 1e-15, 0);
    assert_int_equal(logs[OP_PROD_RATIO].zero_checks, 1);
}

static ad_tensor *prod_ratio_mixed(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    ad_tensor *uv[2];
    if (ad_custom_apply(ops[OP_PROD_RATIO], n, in, NULL, uv) != AD_OK)
        return NULL;
    return ad_add(ad_sin(uv[0]), ad_square(uv[1]));
}

static void test_two_output_custom_op_passes_its_check_and_gradgradcheck(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in[2] = {vector_of(tape, 2, PA), vector_of(tape, 2, PB)};
    ad_gradcheck_result r;
    assert_int_equal(ad_custom_op_check(ops[OP_PROD_RATIO], 2, in, NULL, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("ad_custom_op_check: %s", r.message);
    assert_int_equal(ad_gradgradcheck(prod_ratio_mixed, NULL, 2, in, 3, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("gradgradcheck: %s", r.message);
}

/* ---- Recording ----------------------------------------------------------------------------------
 */

static void test_custom_op_in_no_grad_mode_runs_the_forward_and_never_the_backward(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_leaf(tape, AD_F64, 3, A), *b = vector_leaf(tape, AD_F64, 3, B);
    size_t nodes = ad_tape_node_count(tape);
    assert_true(ad_tape_set_grad_enabled(tape, false));
    ad_tensor *y = apply2(OP_SQUARE_TIMES, a, b);
    assert_false(ad_tape_set_grad_enabled(tape, true));
    assert_values(y, 3, SQUARE_TIMES, 0, 0);
    assert_false(ad_tensor_requires_grad(y));
    assert_int_equal(ad_tape_node_count(tape), nodes);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_ERR_NO_GRAD);
    assert_int_equal(logs[OP_SQUARE_TIMES].forward_calls, 1);
    assert_int_equal(logs[OP_SQUARE_TIMES].backward_calls, 0);
}

static void test_custom_op_of_inputs_that_need_no_grad_records_nothing(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_of(tape, 3, A), *b = vector_of(tape, 3, B);
    size_t nodes = ad_tape_node_count(tape);
    ad_tensor *y = apply2(OP_SQUARE_TIMES, a, b);
    assert_values(y, 3, SQUARE_TIMES, 0, 0);
    assert_false(ad_tensor_requires_grad(y));
    assert_int_equal(ad_tape_node_count(tape), nodes);
}

static void test_custom_forward_runs_with_recording_off_and_records_only_the_op_nodes(void **state)
{
    ad_tape *tape = *state;
    const double xv[3] = {0.5, -1.0, 2.0};
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, xv);
    size_t before = ad_tape_node_count(tape);
    ad_tensor *y = apply1(OP_PROBE, x);
    assert_non_null(y);
    assert_false(logs[OP_PROBE].forward_grad_enabled);
    assert_true(ad_tape_grad_enabled(tape)); /* restored after the forward */
    /* The op's own nodes (today one custom node and one per output), none of
     * the forward's four ops. */
    size_t grown = ad_tape_node_count(tape) - before;
    assert_in_range(grown, 1, 2);
    ad_tensor *direct = ad_add(ad_exp(ad_sin(ad_mul(x, x))), x);
    assert_int_equal(ad_tape_node_count(tape) - before, grown + 4);
    for (int i = 0; i < 3; i++)
        assert_close(ad_tensor_get(direct, i), ad_tensor_get(y, i), 0, 0);
    ad_tensor *g = grad_of_sum(y, x), *gd = grad_of_sum(direct, x);
    for (int i = 0; i < 3; i++) {
        double x2 = xv[i] * xv[i];
        double want = exp(sin(x2)) * cos(x2) * 2 * xv[i] + 1;
        assert_close(want, ad_tensor_get(g, i), 1e-14, 0);
        assert_close(ad_tensor_get(gd, i), ad_tensor_get(g, i), 1e-14, 0);
    }
}

static void test_custom_backward_runs_recorded_only_under_create_graph(void **state)
{
    ad_tape *tape = *state;
    const double xv[2] = {0.3, -0.7};
    ad_tensor *x = vector_leaf(tape, AD_F64, 2, xv);
    ad_tensor *loss = ad_sum_all(apply1(OP_PROBE, x)), *g;
    ad_backward_opts keep = {.retain_graph = true}, create = {.create_graph = true};
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, &keep), AD_OK);
    assert_false(logs[OP_PROBE].backward_grad_enabled);
    assert_false(ad_tensor_requires_grad(g));
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, &create), AD_OK);
    assert_true(logs[OP_PROBE].backward_grad_enabled);
    assert_true(ad_tensor_requires_grad(g));
    assert_true(ad_tape_grad_enabled(tape)); /* the sweep restored recording */
}

/* ---- Saved tensors, arguments, persistent inputs ------------------------------------------------
 */

static void test_saved_tensors_and_custom_alloc_memory_reach_the_backward(void **state)
{
    ad_tape *tape = *state;
    const int64_t n = 3;
    const double xv[3] = {0.0, 1.0, -1.0}, sv[3] = {2.0, 3.0, 0.5};
    ad_tensor *scale;
    assert_int_equal(ad_tensor_create(&scale, AD_F64, 1, &n, false), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(scale, sv), AD_OK);
    scaled_exp_args args = {.factor = 1.5, .scale = scale};
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, xv);
    ad_tensor *y = ad_custom(ops[OP_SCALED_EXP], 1, &x, &args);
    assert_non_null(y);
    assert_non_null(args.block);
    for (int i = 0; i < 3; i++)
        assert_close(1.5 * sv[i] * exp(xv[i]), ad_tensor_get(y, i), 1e-15, 0);
    /* The backward must use what the forward kept, not the caller's struct. */
    args.factor = 100.0;
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    assert_true(logs[OP_SCALED_EXP].saved_ok);
    assert_true(logs[OP_SCALED_EXP].block_aligned);
    for (int i = 0; i < 3; i++)
        assert_close(1.5 * sv[i] * exp(xv[i]), ad_tensor_get(ad_tensor_grad(x), i), 1e-15, 0);
    ad_tape_reset(tape); /* the tape's views of scale go first */
    ad_tensor_free(scale);
}

static void test_custom_save_refuses_null_and_tensors_of_another_tape(void **state)
{
    ad_tape *tape = *state, *other = test_tape();
    /* The forward saves only what args names: here a tensor of another tape. */
    const int64_t n = 3;
    ad_tensor *foreign = ad_full(other, AD_F64, 1, &n, 1.0);
    scaled_exp_args args = {.factor = 1.0, .scale = foreign};
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, A);
    ad_tensor *y = ad_custom(ops[OP_SCALED_EXP], 1, &x, &args);
    assert_null(y);
    assert_int_equal(ad_tape_status(tape), AD_ERR_TAPE);
    assert_message_has(tape, "scaled_exp");
    assert_message_has(tape, "another tape");
    assert_int_equal(ad_custom_save(NULL, x), AD_ERR_NULL);
    ad_tape_free(other);
}

static void test_persistent_input_of_a_custom_op_accumulates_its_gradient(void **state)
{
    ad_tape *tape = *state;
    const int64_t n = 3;
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 1, &n, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(w, B), AD_OK);
    ad_tensor *a = vector_leaf(tape, AD_F64, 3, A);
    for (int step = 1; step <= 2; step++) {
        ad_tensor *y = apply2(OP_SQUARE_TIMES, a, w);
        assert_values(y, 3, SQUARE_TIMES, 0, 0);
        assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
        /* dL/dw = a^2, added in once per backward */
        for (int i = 0; i < 3; i++)
            assert_close(step * SQUARE_TIMES_DB[i], ad_tensor_get(ad_tensor_grad(w), i), 1e-15, 0);
    }
    assert_values(
        ad_tensor_grad(a), 3,
        (double[]){2 * SQUARE_TIMES_DA[0], 2 * SQUARE_TIMES_DA[1], 2 * SQUARE_TIMES_DA[2]}, 1e-15,
        0);
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

static void test_custom_op_whose_output_is_its_input_passes_values_and_gradients(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, A);
    ad_tensor *y = apply1(OP_IDENTITY, x);
    assert_values(y, 3, A, 0, 0);
    assert_ptr_not_equal(y, x); /* a node of its own */
    ad_tensor *g = grad_of_sum(ad_mul(y, y), x);
    assert_values(g, 3, (double[]){2 * A[0], 2 * A[1], 2 * A[2]}, 0, 0);
}

static void test_custom_op_of_any_number_of_inputs_takes_one_or_three_but_not_none(void **state)
{
    ad_tape *tape = *state;
    const double xv[3][2] = {{1.0, -2.0}, {0.5, 3.0}, {-1.5, 0.25}};
    ad_tensor *x[3], *y = NULL;
    for (int i = 0; i < 3; i++)
        x[i] = vector_leaf(tape, AD_F64, 2, xv[i]);
    ad_tensor *one = ad_custom(ops[OP_SUM_OF_SQUARES], 1, x, NULL);
    assert_values(one, 2, (double[]){1.0, 4.0}, 0, 0);
    ad_tensor *three = ad_custom(ops[OP_SUM_OF_SQUARES], 3, x, NULL);
    assert_values(three, 2, (double[]){1.0 + 0.25 + 2.25, 4.0 + 9.0 + 0.0625}, 0, 0);
    ad_tensor *g[3];
    grads_of_sum(three, 3, x, g);
    for (int i = 0; i < 3; i++)
        assert_values(g[i], 2, (double[]){2 * xv[i][0], 2 * xv[i][1]}, 0, 0);
    y = x[0];
    assert_int_equal(ad_custom_apply(ops[OP_SUM_OF_SQUARES], 0, x, NULL, &y), AD_ERR_ARG);
    assert_null(y);
    assert_int_equal(logs[OP_SUM_OF_SQUARES].forward_calls, 2);
}

/* ---- First-order ops
 * ------------------------------------------------------------------------------ */

static const double X3[3] = {1.5, -2.0, 0.5};

static void test_first_order_custom_op_gives_right_first_order_gradients(void **state)
{
    ad_tape *tape = *state;
    for (int which = OP_CUBE_FIRST_ORDER; which <= OP_CUBE_FIRST_ORDER_JVP; which++) {
        ad_tape_reset(tape);
        ad_tensor *x = vector_leaf(tape, AD_F64, 3, X3);
        ad_tensor *y = apply1(which, x);
        assert_values(y, 3, (double[]){3.375, -8.0, 0.125}, 0, 0);
        ad_tensor *loss = ad_sum_all(ad_mul(y, x)); /* sum x^4: 4 x^3, x^3 of it from the op */
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        assert_values(ad_tensor_grad(x), 3, (double[]){13.5, -32.0, 0.5}, 1e-15, 0);
    }
    ad_tensor *in = vector_of(tape, 3, X3);
    ad_gradcheck_result r;
    assert_int_equal(ad_custom_op_check(ops[OP_CUBE_FIRST_ORDER_JVP], 1, &in, NULL, NULL, &r),
                     AD_OK);
    if (!r.passed)
        fail_msg("ad_custom_op_check: %s", r.message);
}

static void
test_custom_op_with_first_order_backward_refuses_create_graph_naming_the_op(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, X3);
    ad_tensor *loss = ad_sum_all(apply1(OP_CUBE_FIRST_ORDER, x)), *g;
    ad_backward_opts o = {.create_graph = true};
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, &o), AD_ERR_UNSUPPORTED);
    assert_null(g);
    assert_message_has(tape, "cube_first_order");
    assert_message_has(tape, "create_graph");
    assert_int_equal(logs[OP_CUBE_FIRST_ORDER].backward_calls, 0); /* refused before the call */

    ad_tape_clear_error(tape);
    assert_int_equal(ad_backward(loss, &o), AD_ERR_UNSUPPORTED);
    assert_message_has(tape, "cube_first_order");
}

static void test_first_order_custom_op_without_jvp_refuses_forward_mode_naming_the_op(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, X3);
    ad_tensor *y = apply1(OP_CUBE_FIRST_ORDER, x), *t;
    ad_tensor *v = ad_full(tape, AD_F64, 1, (int64_t[]){3}, 1.0);
    assert_int_equal(ad_jvp(1, &y, 1, &x, &v, &t, NULL), AD_ERR_UNSUPPORTED);
    assert_null(t);
    assert_message_has(tape, "cube_first_order");
    assert_message_has(tape, "jvp");
}

static void test_first_order_custom_op_with_a_jvp_callback_works_in_forward_mode(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, X3);
    ad_tensor *y = ad_mul(apply1(OP_CUBE_FIRST_ORDER_JVP, x), x), *t; /* x^4 */
    const double vv[3] = {1.0, 0.5, -2.0};
    ad_tensor *v = vector_of(tape, 3, vv);
    assert_int_equal(ad_jvp(1, &y, 1, &x, &v, &t, NULL), AD_OK);
    assert_int_equal(logs[OP_CUBE_FIRST_ORDER_JVP].jvp_calls, 1);
    for (int i = 0; i < 3; i++)
        assert_close(4 * pow(X3[i], 3) * vv[i], ad_tensor_get(t, i), 1e-15, 0);
}

/* ---- A raw backward without AD_CUSTOM_FIRST_ORDER ----------------------------------------------
 */

static ad_tensor *cube_raw_undeclared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    return ad_custom(ops[OP_CUBE_RAW_UNDECLARED], n, in, NULL);
}

static void
test_raw_backward_without_first_order_flag_still_gives_first_order_gradients(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, X3);
    ad_tensor *g = grad_of_sum(apply1(OP_CUBE_RAW_UNDECLARED, x), x);
    assert_values(g, 3, (double[]){6.75, 12.0, 0.75}, 1e-15, 0);
}

static void test_raw_backward_without_first_order_flag_is_refused_by_gradgradcheck(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *in = vector_of(tape, 3, X3);
    ad_gradcheck_result r;
    assert_int_equal(ad_gradgradcheck(cube_raw_undeclared, NULL, 1, &in, 1, NULL, &r),
                     AD_ERR_UNSUPPORTED);
    assert_false(r.passed);
    if (!strstr(r.message, "cube_raw_undeclared"))
        fail_msg("message \"%s\" does not name the op", r.message);
}

static void test_raw_backward_without_first_order_flag_is_refused_under_create_graph(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, X3);
    /* sum(x^3 * x): the op's output gradient is x, which requires grad. */
    ad_tensor *loss = ad_sum_all(ad_mul(apply1(OP_CUBE_RAW_UNDECLARED, x), x)), *g;
    ad_backward_opts o = {.create_graph = true};
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, &o), AD_ERR_UNSUPPORTED);
    assert_message_has(tape, "cube_raw_undeclared");
    assert_message_has(tape, "AD_CUSTOM_FIRST_ORDER");

    ad_tape_clear_error(tape);
    ad_tensor *v = vector_of(tape, 3, (double[]){1.0, 1.0, 1.0}), *hv;
    assert_int_equal(ad_hvp(loss, 1, &x, &v, &hv, NULL), AD_ERR_UNSUPPORTED);
    assert_null(hv);
    assert_message_has(tape, "cube_raw_undeclared");
}

/* The plain case: y = sum(op(x)), whose output gradient is the constant seed.
 * Second derivatives through the op would be 0 if its raw gradient were
 * taken for a recorded one; they must be refused instead. */
static void
test_raw_backward_without_first_order_flag_is_refused_by_hessian_and_hvp_of_a_sum(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, X3);
    ad_tensor *loss = ad_sum_all(apply1(OP_CUBE_RAW_UNDECLARED, x));
    ad_tensor *v = vector_of(tape, 3, (double[]){1.0, -1.0, 0.5}), *hv = x, *h = x;
    assert_int_equal(ad_hvp(loss, 1, &x, &v, &hv, NULL), AD_ERR_UNSUPPORTED);
    assert_null(hv);
    assert_message_has(tape, "cube_raw_undeclared");
    ad_tape_clear_error(tape);
    assert_int_equal(ad_hessian(loss, 1, &x, &h, AD_JACOBIAN_AUTO, NULL), AD_ERR_UNSUPPORTED);
    assert_null(h);
    ad_tape_clear_error(tape);
    ad_tensor *g;
    ad_backward_opts o = {.create_graph = true};
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, &o), AD_ERR_UNSUPPORTED);
}

/* ---- Errors
 * ------------------------------------------------------------------------------------------ */

static void test_custom_op_create_rejects_bad_definitions_with_arg_errors(void **state)
{
    (void)state;
    const ad_custom_op_def good = {.name = "good",
                                   .n_inputs = 1,
                                   .n_outputs = 1,
                                   .forward = twice_forward,
                                   .backward = identity_backward};
    static int dummy;
    ad_custom_op *op = (ad_custom_op *)&dummy; /* any non-NULL value: it must be reset */
    assert_int_equal(ad_custom_op_create(&op, NULL), AD_ERR_ARG);
    assert_null(op);
    ad_custom_op_def bad[8];
    for (int i = 0; i < 8; i++)
        bad[i] = good;
    bad[0].name = NULL;
    bad[1].name = "";
    bad[2].forward = NULL;
    bad[3].backward = NULL;
    bad[4].n_outputs = 0;
    bad[5].n_inputs = 0;
    bad[6].flags = 2;
    bad[7].n_inputs = -2;
    for (int i = 0; i < 8; i++) {
        op = (ad_custom_op *)&dummy;
        if (ad_custom_op_create(&op, &bad[i]) != AD_ERR_ARG)
            fail_msg("bad definition %d was accepted", i);
        assert_null(op);
    }
    assert_int_equal(ad_custom_op_create(NULL, &good), AD_ERR_ARG);
    /* The good one is accepted, its name copied. */
    char name[8] = "good";
    ad_custom_op_def copy = good;
    copy.name = name;
    assert_int_equal(ad_custom_op_create(&op, &copy), AD_OK);
    strcpy(name, "gone");
    assert_string_equal(ad_custom_op_name(op), "good");
    ad_custom_op_free(op);
    ad_custom_op_free(NULL);
}

static void test_custom_op_given_the_wrong_number_of_inputs_is_an_arg_error_naming_it(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_leaf(tape, AD_F64, 3, A), *y = a;
    assert_int_equal(ad_custom_apply(ops[OP_SQUARE_TIMES], 1, &a, NULL, &y), AD_ERR_ARG);
    assert_null(y);
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "square_times");
    assert_message_has(tape, "1 inputs");
    assert_int_equal(logs[OP_SQUARE_TIMES].forward_calls, 0);
}

static void
test_custom_backward_of_the_wrong_shape_is_a_shape_error_naming_op_and_shapes(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, A);
    ad_tensor *y = apply1(OP_WRONG_SHAPE_BACKWARD, x);
    assert_values(y, 3, (double[]){2.0, -4.0, 1.0}, 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_ERR_SHAPE);
    assert_message_has(tape, "wrong_shape_backward");
    assert_message_has(tape, "[2]");
    assert_message_has(tape, "[3]");
    assert_null(ad_tensor_grad(x));
}

static void test_custom_forward_error_is_returned_with_its_own_message(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, A), *y = x;
    assert_int_equal(ad_custom_apply(ops[OP_FAILING_FORWARD], 1, &x, NULL, &y), AD_ERR_DTYPE);
    assert_null(y);
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_string_equal(ad_tape_message(tape), "failing_forward: wants float16, got float64");
    assert_int_equal(logs[OP_FAILING_FORWARD].forward_calls, 1);
    /* Sticky: the next op is not even called. */
    assert_null(apply1(OP_FAILING_FORWARD, x));
    assert_int_equal(logs[OP_FAILING_FORWARD].forward_calls, 1);
}

static void test_custom_forward_error_without_a_message_gets_one_naming_the_op(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = vector_leaf(tape, AD_F64, 3, A);
    ad_tensor *y = apply1(OP_SILENTLY_FAILING_FORWARD, x);
    assert_null(y);
    assert_int_equal(ad_tape_status(tape), AD_ERR_IO);
    assert_message_has(tape, "silently_failing_forward");
    assert_message_has(tape, "forward");
}

static void test_custom_op_given_a_null_input_passes_null_through_without_a_new_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *b = vector_leaf(tape, AD_F64, 3, B), *y = b;
    /* On a clean tape: NULL out, nothing recorded, the tape untouched. */
    ad_tensor *in[2] = {NULL, b};
    assert_int_equal(ad_custom_apply(ops[OP_SQUARE_TIMES], 2, in, NULL, &y), AD_ERR_NULL);
    assert_null(y);
    assert_int_equal(ad_tape_status(tape), AD_OK);
    /* After an earlier error: that error's message stays. */
    const int64_t two = 2;
    ad_tensor *bad = ad_add(b, ad_full(tape, AD_F64, 1, &two, 1.0));
    assert_null(bad);
    char message[256];
    snprintf(message, sizeof message, "%s", ad_tape_message(tape));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_null(apply2(OP_SQUARE_TIMES, bad, b));
    assert_null(apply2(OP_SQUARE_TIMES, b, bad));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_string_equal(ad_tape_message(tape), message);
    assert_int_equal(logs[OP_SQUARE_TIMES].forward_calls, 0);
}

static void test_ad_custom_on_a_two_output_op_is_an_arg_error_naming_it(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_leaf(tape, AD_F64, 2, PA), *b = vector_leaf(tape, AD_F64, 2, PB);
    assert_null(apply2(OP_PROD_RATIO, a, b));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "prod_ratio");
    assert_message_has(tape, "ad_custom_apply");
    assert_int_equal(logs[OP_PROD_RATIO].forward_calls, 0);
}

/* ---- Accumulation and freed graphs
 * ----------------------------------------------------------------- */

static void test_custom_op_output_used_twice_gets_both_contributions(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_leaf(tape, AD_F64, 3, A), *b = vector_leaf(tape, AD_F64, 3, B);
    ad_tensor *y = apply2(OP_SQUARE_TIMES, a, b);
    ad_tensor *z = ad_add(y, y);
    assert_int_equal(ad_backward(ad_sum_all(z), NULL), AD_OK);
    assert_values(
        ad_tensor_grad(a), 3,
        (double[]){2 * SQUARE_TIMES_DA[0], 2 * SQUARE_TIMES_DA[1], 2 * SQUARE_TIMES_DA[2]}, 1e-15,
        0);
    assert_values(
        ad_tensor_grad(b), 3,
        (double[]){2 * SQUARE_TIMES_DB[0], 2 * SQUARE_TIMES_DB[1], 2 * SQUARE_TIMES_DB[2]}, 1e-15,
        0);
    assert_int_equal(logs[OP_SQUARE_TIMES].backward_calls, 1);
}

static void test_second_backward_through_a_custom_op_without_retain_graph_is_freed(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_leaf(tape, AD_F64, 3, A), *b = vector_leaf(tape, AD_F64, 3, B);
    ad_tensor *y = apply2(OP_SQUARE_TIMES, a, b);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    /* A new loss on the same y goes back through the freed custom nodes. */
    assert_int_equal(ad_backward(ad_sum_all(ad_mul_scalar(y, 2.0)), NULL), AD_ERR_FREED);
    assert_message_has(tape, "square_times");
    assert_message_has(tape, "retain_graph");
    assert_int_equal(logs[OP_SQUARE_TIMES].backward_calls, 1);
    assert_values(ad_tensor_grad(a), 3, SQUARE_TIMES_DA, 0, 0); /* the first one's only */
}

static void test_second_backward_through_a_custom_op_with_retain_graph_accumulates(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = vector_leaf(tape, AD_F64, 3, A), *b = vector_leaf(tape, AD_F64, 3, B);
    ad_tensor *y = apply2(OP_SQUARE_TIMES, a, b);
    ad_backward_opts keep = {.retain_graph = true};
    assert_int_equal(ad_backward(ad_sum_all(y), &keep), AD_OK);
    assert_int_equal(ad_backward(ad_sum_all(ad_mul_scalar(y, 2.0)), NULL), AD_OK);
    assert_values(
        ad_tensor_grad(a), 3,
        (double[]){3 * SQUARE_TIMES_DA[0], 3 * SQUARE_TIMES_DA[1], 3 * SQUARE_TIMES_DA[2]}, 1e-15,
        0);
    assert_int_equal(logs[OP_SQUARE_TIMES].backward_calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CUSTOM_TEST(test_custom_op_with_op_backward_gives_hand_computed_values_and_gradients),
        CUSTOM_TEST(test_custom_op_gradient_flows_through_a_chain_with_a_non_unit_seed),
        CUSTOM_TEST(test_custom_op_check_passes_on_a_correct_op_as_do_gradcheck_and_gradgradcheck),
        CUSTOM_TEST(test_custom_op_check_runs_float32_inputs_as_float64_copies),
        CUSTOM_TEST(test_gradcheck_and_gradgradcheck_pass_for_a_function_using_a_custom_op),
        CUSTOM_TEST(test_second_derivatives_through_a_custom_op_match_hand_values),
        CUSTOM_TEST(test_custom_op_check_catches_a_wrong_backward_and_says_it_is_the_backward),
        CUSTOM_TEST(test_custom_op_check_catches_a_wrong_jvp_in_its_forward_mode_check),
        CUSTOM_TEST(test_two_output_custom_op_with_both_outputs_used_sums_their_gradients),
        CUSTOM_TEST(test_two_output_custom_op_gives_zeros_for_the_gradient_of_an_unused_output),
        CUSTOM_TEST(test_two_output_custom_op_has_second_derivatives_with_one_output_unused),
        CUSTOM_TEST(test_two_output_custom_op_passes_its_check_and_gradgradcheck),
        CUSTOM_TEST(test_custom_op_in_no_grad_mode_runs_the_forward_and_never_the_backward),
        CUSTOM_TEST(test_custom_op_of_inputs_that_need_no_grad_records_nothing),
        CUSTOM_TEST(test_custom_forward_runs_with_recording_off_and_records_only_the_op_nodes),
        CUSTOM_TEST(test_custom_backward_runs_recorded_only_under_create_graph),
        CUSTOM_TEST(test_saved_tensors_and_custom_alloc_memory_reach_the_backward),
        CUSTOM_TEST(test_custom_save_refuses_null_and_tensors_of_another_tape),
        CUSTOM_TEST(test_persistent_input_of_a_custom_op_accumulates_its_gradient),
        CUSTOM_TEST(test_custom_op_whose_output_is_its_input_passes_values_and_gradients),
        CUSTOM_TEST(test_custom_op_of_any_number_of_inputs_takes_one_or_three_but_not_none),
        CUSTOM_TEST(test_first_order_custom_op_gives_right_first_order_gradients),
        CUSTOM_TEST(test_custom_op_with_first_order_backward_refuses_create_graph_naming_the_op),
        CUSTOM_TEST(test_first_order_custom_op_without_jvp_refuses_forward_mode_naming_the_op),
        CUSTOM_TEST(test_first_order_custom_op_with_a_jvp_callback_works_in_forward_mode),
        CUSTOM_TEST(test_raw_backward_without_first_order_flag_still_gives_first_order_gradients),
        CUSTOM_TEST(test_raw_backward_without_first_order_flag_is_refused_by_gradgradcheck),
        CUSTOM_TEST(test_raw_backward_without_first_order_flag_is_refused_under_create_graph),
        CUSTOM_TEST(
            test_raw_backward_without_first_order_flag_is_refused_by_hessian_and_hvp_of_a_sum),
        CUSTOM_TEST(test_custom_op_create_rejects_bad_definitions_with_arg_errors),
        CUSTOM_TEST(test_custom_op_given_the_wrong_number_of_inputs_is_an_arg_error_naming_it),
        CUSTOM_TEST(test_custom_backward_of_the_wrong_shape_is_a_shape_error_naming_op_and_shapes),
        CUSTOM_TEST(test_custom_forward_error_is_returned_with_its_own_message),
        CUSTOM_TEST(test_custom_forward_error_without_a_message_gets_one_naming_the_op),
        CUSTOM_TEST(test_custom_op_given_a_null_input_passes_null_through_without_a_new_error),
        CUSTOM_TEST(test_ad_custom_on_a_two_output_op_is_an_arg_error_naming_it),
        CUSTOM_TEST(test_custom_op_output_used_twice_gets_both_contributions),
        CUSTOM_TEST(test_second_backward_through_a_custom_op_without_retain_graph_is_freed),
        CUSTOM_TEST(test_second_backward_through_a_custom_op_with_retain_graph_accumulates),
    };
    return cmocka_run_group_tests(tests, ops_create, ops_free);
}
