/* Unit tests of anomaly mode: the first NaN or infinity of a forward or a
 * backward reported with the op, its shapes, the pass and where the node was
 * made; provenance; and what the mode changes (and does not) otherwise. */
#include "autodiff/custom.h"
#include "test_util.h"

#include <string.h>

/* The message names this file and line, as AD_HERE recorded them. */
static void assert_message_has_line(const ad_tape *tape, int line)
{
    char part[64];
    snprintf(part, sizeof part, "test_anomaly.c:%d", line);
    assert_message_has(tape, part);
}

static void assert_message_lacks(const ad_tape *tape, const char *part)
{
    if (strstr(ad_tape_message(tape), part))
        fail_msg("tape message \"%s\" mentions \"%s\"", ad_tape_message(tape), part);
}

static void test_anomaly_mode_is_off_by_default_and_setting_it_returns_the_old_setting(void **state)
{
    ad_tape *tape = *state;
    assert_false(ad_tape_anomaly(tape));
    assert_false(ad_tape_set_anomaly(tape, true));
    assert_true(ad_tape_anomaly(tape));
    assert_true(ad_tape_set_anomaly(tape, false));
    assert_false(ad_tape_anomaly(tape));
    /* A reset keeps the setting: it belongs to the tape, not to a step. */
    ad_tape_set_anomaly(tape, true);
    ad_tape_reset(tape);
    assert_true(ad_tape_anomaly(tape));
    assert_false(ad_tape_anomaly(NULL));
}

static void
test_a_nan_made_in_forward_fails_the_op_naming_op_shapes_location_and_label(void **state)
{
    ad_tape *tape = *state;
    ad_tape_set_anomaly(tape, true);
    int64_t s[2] = {2, 3};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, (double[]){1, 2, 3, 4, -5, 6});
    ad_tape_set_label(tape, "log-likelihood");
    const int line = __LINE__ + 1;
    AD_HERE(tape);
    ad_tensor *y = ad_log(x);
    assert_null(y);
    assert_int_equal(ad_tape_status(tape), AD_ERR_NONFINITE);
    assert_message_has(tape, "anomaly");
    assert_message_has(tape, "forward");
    assert_message_has(tape, "log");
    assert_message_has(tape, "[2,3]");
    assert_message_has(tape, "nan");
    assert_message_has(tape, "element 4");
    assert_message_has_line(tape, line);
    assert_message_has(tape, "log-likelihood");
    /* Sticky, as every error: the program goes on to a NULL loss. */
    assert_null(ad_sum_all(y));
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_ERR_NULL);
    assert_int_equal(ad_tape_status(tape), AD_ERR_NONFINITE);
}

static void test_a_division_by_zero_in_forward_is_reported_as_an_infinity_from_div(void **state)
{
    ad_tape *tape = *state;
    ad_tape_set_anomaly(tape, true);
    int64_t n = 3;
    ad_tensor *a = leaf(tape, AD_F32, 1, &n, (double[]){1, 2, 3});
    ad_tensor *b = tensor(tape, AD_F32, 1, &n, (double[]){1, 0, 2});
    ad_tape_set_label(tape, "normalise");
    const int line = __LINE__ + 1;
    AD_HERE(tape);
    assert_null(ad_div(a, b));
    assert_int_equal(ad_tape_status(tape), AD_ERR_NONFINITE);
    assert_message_has(tape, "div");
    assert_message_has(tape, "forward");
    assert_message_has(tape, "inf");
    assert_message_has(tape, "[3]");
    assert_message_has(tape, "element 1");
    assert_message_has_line(tape, line);
    assert_message_has(tape, "normalise");
}

/* sqrt at 0 is finite; its gradient 1 / (2 sqrt x) is not. The message gives
 * the node's own provenance, not the location current when backward runs. */
static void
test_an_infinity_made_only_in_backward_names_sqrt_backward_and_its_provenance(void **state)
{
    ad_tape *tape = *state;
    ad_tape_set_anomaly(tape, true);
    int64_t n = 2;
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){4.0, 0.0});
    ad_tape_set_label(tape, "root");
    const int line = __LINE__ + 1;
    AD_HERE(tape);
    ad_tensor *y = ad_sqrt(x);
    assert_non_null(y);
    assert_values(y, 2, (double[]){2.0, 0.0}, 0, 0);
    ad_tape_set_label(tape, "elsewhere");
    AD_HERE(tape);
    ad_tensor *loss = ad_sum_all(ad_mul_scalar(y, 3.0));
    assert_non_null(loss);
    assert_int_equal(ad_backward(loss, NULL), AD_ERR_NONFINITE);
    assert_int_equal(ad_tape_status(tape), AD_ERR_NONFINITE);
    assert_message_has(tape, "backward");
    assert_message_has(tape, "sqrt");
    assert_message_has(tape, "inf");
    assert_message_has(tape, "[2]");
    assert_message_has_line(tape, line);
    assert_message_has(tape, "root");
    assert_message_lacks(tape, "elsewhere");
    assert_message_lacks(tape, "forward of");
    assert_null(ad_tensor_grad(x));
}

/* a^b at a = 0, b = 1/2: y = 0, but da = b a^(b - 1) is infinite. */
static void test_an_infinity_made_only_in_backward_names_pow_backward(void **state)
{
    ad_tape *tape = *state;
    ad_tape_set_anomaly(tape, true);
    int64_t n = 2;
    ad_tensor *a = leaf(tape, AD_F64, 1, &n, (double[]){0.0, 1.0});
    ad_tensor *b = tensor(tape, AD_F64, 1, &n, (double[]){0.5, 2.0});
    ad_tape_set_label(tape, "power law");
    const int line = __LINE__ + 1;
    AD_HERE(tape);
    ad_tensor *y = ad_pow(a, b);
    assert_values(y, 2, (double[]){0.0, 1.0}, 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_ERR_NONFINITE);
    assert_message_has(tape, "backward");
    assert_message_has(tape, "pow");
    assert_message_has_line(tape, line);
    assert_message_has(tape, "power law");
}

/* A custom op y = 2 x whose (first-order) backward returns NaN, raw numbers. */
static ad_status double_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    out[0] = ad_mul_scalar(in[0], 2.0);
    return out[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

static ad_status nan_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
{
    const ad_tensor *g = gout[0];
    gin[0] = ad_tape_tensor(ad_custom_tape(c), ad_tensor_dtype(g), ad_tensor_ndim(g),
                            ad_tensor_shape(g), NULL);
    if (!gin[0])
        return ad_tape_status(ad_custom_tape(c));
    double *d = ad_tensor_data(gin[0]);
    for (int64_t i = 0; i < ad_tensor_numel(g); i++)
        d[i] = i == 1 ? NAN : 2.0 * ((const double *)ad_tensor_data(g))[i];
    return AD_OK;
}

static void test_a_nan_from_a_custom_ops_backward_names_the_op_and_backward(void **state)
{
    ad_tape *tape = *state;
    ad_custom_op *op;
    ad_custom_op_def def = {.name = "nan_backward",
                            .n_inputs = 1,
                            .n_outputs = 1,
                            .forward = double_forward,
                            .backward = nan_backward,
                            .flags = AD_CUSTOM_FIRST_ORDER};
    assert_int_equal(ad_custom_op_create(&op, &def), AD_OK);
    int64_t n = 3;
    for (int anomaly = 0; anomaly < 2; anomaly++) {
        ad_tape_reset(tape);
        ad_tape_set_anomaly(tape, anomaly);
        ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){1, 2, 3});
        ad_tape_set_label(tape, "custom");
        const int line = __LINE__ + 1;
        AD_HERE(tape);
        ad_tensor *y = ad_custom(op, 1, &x, NULL);
        assert_values(y, 3, (double[]){2, 4, 6}, 0, 0);
        ad_status st = ad_backward(ad_sum_all(y), NULL);
        if (!anomaly) {
            /* Silently, as PyTorch: the NaN is in the gradient. */
            assert_int_equal(st, AD_OK);
            assert_values(ad_tensor_grad(x), 3, (double[]){2, NAN, 2}, 0, 0);
            continue;
        }
        assert_int_equal(st, AD_ERR_NONFINITE);
        assert_message_has(tape, "nan_backward");
        assert_message_has(tape, "backward");
        assert_message_has(tape, "element 1");
        assert_message_has_line(tape, line);
        assert_message_has(tape, "custom");
        assert_null(ad_tensor_grad(x));
    }
    ad_tape_reset(tape);
    ad_custom_op_free(op);
}

static void test_with_anomaly_mode_off_nans_and_infinities_propagate_without_error(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    AD_HERE(tape);
    ad_tape_set_label(tape, "unused");
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){-1.0, 0.0});
    ad_tensor *lg = ad_log(x);
    assert_non_null(lg);
    assert_true(isnan(ad_tensor_get(lg, 0)));
    assert_true(isinf(ad_tensor_get(lg, 1)) && ad_tensor_get(lg, 1) < 0);
    ad_tensor *q = ad_div(ad_scalar(tape, 1.0), ad_scalar(tape, 0.0));
    assert_true(isinf(ad_value(q)));
    /* sqrt at 0: an infinite gradient, stored. */
    ad_tensor *r = ad_sqrt(ad_mul(x, x));
    assert_int_equal(ad_backward(ad_sum_all(r), NULL), AD_OK);
    assert_int_equal(ad_tape_status(tape), AD_OK);
    assert_string_equal(ad_tape_message(tape), "");
    /* d sqrt(x^2)/dx = x / |x|: -1 at -1, and 0 * inf = NaN at 0. */
    assert_close(-1.0, ad_tensor_get(ad_tensor_grad(x), 0), 0, 0);
    assert_true(isnan(ad_tensor_get(ad_tensor_grad(x), 1)));
}

static void test_provenance_is_file_line_and_label_in_anomaly_mode_and_empty_otherwise(void **state)
{
    ad_tape *tape = *state;
    char buf[256], expected[256];
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 2.0));

    /* Anomaly mode off: nothing is recorded, whatever the location says. */
    AD_HERE(tape);
    ad_tape_set_label(tape, "off");
    ad_tensor *off = ad_exp(x);
    assert_string_equal(ad_tensor_provenance(off, buf, sizeof buf), "");

    ad_tape_set_anomaly(tape, true);
    ad_tape_set_label(tape, "encoder");
    const int line = __LINE__ + 1;
    AD_HERE(tape);
    ad_tensor *both = ad_sin(x);
    ad_tape_set_label(tape, NULL);
    ad_tensor *file_only = ad_cos(x);
    ad_tape_set_location(tape, NULL, 0);
    ad_tape_set_label(tape, "decoder");
    ad_tensor *label_only = ad_tanh(x);
    ad_tape_set_label(tape, NULL);
    ad_tensor *none = ad_square(x);

    snprintf(expected, sizeof expected, "%s:%d encoder", __FILE__, line);
    assert_string_equal(ad_tensor_provenance(both, buf, sizeof buf), expected);
    snprintf(expected, sizeof expected, "%s:%d", __FILE__, line);
    assert_string_equal(ad_tensor_provenance(file_only, buf, sizeof buf), expected);
    assert_string_equal(ad_tensor_provenance(label_only, buf, sizeof buf), "decoder");
    assert_string_equal(ad_tensor_provenance(none, buf, sizeof buf), "");
    /* The node made before the mode was on stays without provenance. */
    assert_string_equal(ad_tensor_provenance(off, buf, sizeof buf), "");
    assert_string_equal(ad_tensor_provenance(NULL, buf, sizeof buf), "");
    /* A short buffer gets a truncated, terminated string. */
    char small[8];
    memset(small, 'x', sizeof small);
    assert_ptr_equal(ad_tensor_provenance(both, small, sizeof small), small);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, expected, sizeof small - 1);
}

/* A constant is not a recorded node: it has no provenance, even while the
 * tape has a location (the one current now says nothing of where it was made). */
static void test_a_tensor_that_is_not_a_recorded_node_has_no_provenance(void **state)
{
    ad_tape *tape = *state;
    char buf[256];
    ad_tape_set_anomaly(tape, true);
    ad_tensor *c = ad_exp(ad_scalar(tape, 1.0));
    assert_non_null(c);
    AD_HERE(tape);
    ad_tape_set_label(tape, "later");
    assert_string_equal(ad_tensor_provenance(c, buf, sizeof buf), "");
}

/* A linear layer's weight gradient: one GEMM into the buffer normally, a
 * checked tape gradient added into it in anomaly mode. The same bits. */
static void
test_anomaly_mode_gives_the_weight_gradients_of_in_place_accumulation_bit_for_bit(void **state)
{
    ad_tape *tape = *state;
    int64_t sw[2] = {16, 8}, sb[1] = {16}, sx[2] = {4, 8};
    ad_tensor *w, *b;
    assert_int_equal(ad_tensor_create(&w, AD_F32, 2, sw, true), AD_OK);
    assert_int_equal(ad_tensor_create(&b, AD_F32, 1, sb, true), AD_OK);
    uint64_t seed = 4;
    for (int i = 0; i < 128; i++)
        ad_tensor_set(w, i, test_uniform(&seed, -0.5, 0.5));
    for (int i = 0; i < 16; i++)
        ad_tensor_set(b, i, test_uniform(&seed, -0.5, 0.5));
    double xv[32];
    for (int i = 0; i < 32; i++)
        xv[i] = test_uniform(&seed, -1, 1);
    float grads[2][128 + 16];
    for (int anomaly = 0; anomaly < 2; anomaly++) {
        ad_tape_reset(tape);
        ad_tape_set_anomaly(tape, anomaly);
        ad_zero_grad(w);
        ad_zero_grad(b);
        /* Twice through the same weight, so the buffer accumulates. */
        ad_tensor *x = tensor(tape, AD_F32, 2, sx, xv);
        ad_tensor *h = ad_tanh(ad_add(ad_matmul_t(x, w, false, true), b));
        ad_tensor *h2 = ad_matmul_t(ad_slice(h, 1, 0, 8, 1), w, false, true);
        ad_tensor *loss = ad_add(ad_sum_all(ad_square(h)), ad_sum_all(h2));
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        memcpy(grads[anomaly], ad_tensor_data(ad_tensor_grad(w)), 128 * sizeof(float));
        memcpy(grads[anomaly] + 128, ad_tensor_data(ad_tensor_grad(b)), 16 * sizeof(float));
    }
    assert_true(grads[0][0] != 0);
    assert_memory_equal(grads[0], grads[1], sizeof grads[0]);
    ad_tape_reset(tape);
    ad_tensor_free(w);
    ad_tensor_free(b);
}

/* y = x W^T in float32 with a huge seed: dx = seed W is finite, dW = seed^T x
 * overflows. Normally added into W's buffer in place; anomaly mode sees it. */
static void test_anomaly_mode_checks_a_weight_gradient_that_would_be_added_in_place(void **state)
{
    ad_tape *tape = *state;
    int64_t sw[2] = {2, 2}, sx[2] = {1, 2};
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, AD_F32, 2, sw, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(w, (double[]){1e-20, 0, 0, 1e-20}), AD_OK);
    for (int anomaly = 0; anomaly < 2; anomaly++) {
        ad_tape_reset(tape);
        ad_tape_set_anomaly(tape, anomaly);
        ad_zero_grad(w);
        ad_tensor *x = leaf(tape, AD_F32, 2, sx, (double[]){1e20, 1e20});
        ad_tape_set_label(tape, "projection");
        const int line = __LINE__ + 1;
        AD_HERE(tape);
        ad_tensor *y = ad_matmul_t(x, w, false, true);
        assert_values(y, 2, (double[]){1.0, 1.0}, 1e-6, 0);
        ad_backward_opts o = {.seed = ad_full(tape, AD_F32, 2, sx, 1e30)};
        ad_status st = ad_backward(y, &o);
        if (!anomaly) {
            assert_int_equal(st, AD_OK);
            assert_true(isinf(ad_tensor_get(ad_tensor_grad(w), 0)));
            assert_close(1e10, ad_tensor_get(ad_tensor_grad(x), 0), 1e-6, 0);
            continue;
        }
        assert_int_equal(st, AD_ERR_NONFINITE);
        assert_message_has(tape, "backward");
        assert_message_has(tape, "matmul");
        assert_message_has(tape, "[2,2]");
        assert_message_has_line(tape, line);
        assert_message_has(tape, "projection");
        assert_true(ad_tensor_get(ad_tensor_grad(w), 0) == 0);
    }
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

/* sqrt inside a checkpointed function: its rerun in backward is where the
 * infinity appears, and it is still reported as sqrt's backward. */
static ad_tensor *root_of(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    (void)ctx;
    return ad_sqrt(inputs[0]);
}

static void
test_an_infinity_in_the_backward_of_a_checkpointed_function_names_the_inner_op(void **state)
{
    ad_tape *tape = *state;
    ad_tape_set_anomaly(tape, true);
    int64_t n = 2;
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){1.0, 0.0});
    ad_tape_set_label(tape, "checkpointed root");
    const int line = __LINE__ + 1;
    AD_HERE(tape);
    ad_tensor *y = ad_checkpoint(root_of, NULL, 1, &x);
    assert_values(y, 2, (double[]){1.0, 0.0}, 0, 0);
    ad_tape_set_label(tape, "elsewhere");
    AD_HERE(tape);
    ad_tensor *loss = ad_sum_all(y);
    assert_int_equal(ad_backward(loss, NULL), AD_ERR_NONFINITE);
    assert_message_has(tape, "backward");
    assert_message_has(tape, "sqrt");
    assert_message_has_line(tape, line);
    assert_message_has(tape, "checkpointed root");
    assert_message_lacks(tape, "elsewhere");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_anomaly_mode_is_off_by_default_and_setting_it_returns_the_old_setting),
        TAPE_TEST(test_a_nan_made_in_forward_fails_the_op_naming_op_shapes_location_and_label),
        TAPE_TEST(test_a_division_by_zero_in_forward_is_reported_as_an_infinity_from_div),
        TAPE_TEST(test_an_infinity_made_only_in_backward_names_sqrt_backward_and_its_provenance),
        TAPE_TEST(test_an_infinity_made_only_in_backward_names_pow_backward),
        TAPE_TEST(test_a_nan_from_a_custom_ops_backward_names_the_op_and_backward),
        TAPE_TEST(test_with_anomaly_mode_off_nans_and_infinities_propagate_without_error),
        TAPE_TEST(test_provenance_is_file_line_and_label_in_anomaly_mode_and_empty_otherwise),
        TAPE_TEST(test_a_tensor_that_is_not_a_recorded_node_has_no_provenance),
        TAPE_TEST(
            test_anomaly_mode_gives_the_weight_gradients_of_in_place_accumulation_bit_for_bit),
        TAPE_TEST(test_anomaly_mode_checks_a_weight_gradient_that_would_be_added_in_place),
        TAPE_TEST(test_an_infinity_in_the_backward_of_a_checkpointed_function_names_the_inner_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
