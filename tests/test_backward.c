/* Unit tests of the backward sweep and of ad_grad: accumulation, functional
 * gradients, higher order, seeds, determinism and deep graphs. */
#include "test_util.h"

#include <string.h>

static ad_tensor *scalar_leaf(ad_tape *tape, double v)
{
    ad_tensor *t = ad_requires_grad(ad_scalar(tape, v));
    assert_non_null(t);
    return t;
}

static void test_micrograd_scalar_example_gives_2x_plus_cos_x(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = scalar_leaf(tape, 3.0);
    ad_tensor *y = ad_add(ad_mul(x, x), ad_sin(x)); /* y = x^2 + sin x */
    assert_close(9.0 + sin(3.0), ad_value(y), 1e-15, 0);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_close(6.0 + cos(3.0), ad_grad_value(x), 1e-15, 0);
    assert_int_equal(ad_tensor_ndim(ad_tensor_grad(x)), 0);
}

static void test_a_node_used_twice_gets_both_contributions(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *a = scalar_leaf(tape, -2.0);
    ad_tensor *b = ad_add(a, a);
    ad_tensor *c = ad_add(b, b);
    assert_close(-8.0, ad_value(c), 0, 0);
    assert_int_equal(ad_backward(c, NULL), AD_OK);
    assert_close(4.0, ad_grad_value(a), 0, 0);
}

static void test_a_node_used_by_many_consumers_sums_all_of_them(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = scalar_leaf(tape, 0.5);
    ad_tensor *s = ad_square(x);
    /* y = s * s + exp(s) + 3 s: dy/dx = (2 s + exp(s) + 3) 2 x */
    ad_tensor *y = ad_add(ad_add(ad_mul(s, s), ad_exp(s)), ad_mul_scalar(s, 3.0));
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    double sv = 0.25;
    assert_close((2 * sv + exp(sv) + 3) * 2 * 0.5, ad_grad_value(x), 1e-15, 0);
}

static void test_ad_grad_returns_gradients_without_touching_stored_grads(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    const double xv[3] = {1.0, 2.0, 3.0};
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, xv);
    ad_tensor *p;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 1, &n, true), AD_OK);
    const double pv[3] = {0.5, -1.0, 2.0};
    assert_int_equal(ad_tensor_copy_from_doubles(p, pv), AD_OK);
    ad_tensor *y = ad_sum_all(ad_mul(x, p)); /* dy/dx = p, dy/dp = x */
    ad_tensor *in[2] = {x, p}, *g[2];
    assert_int_equal(ad_grad(1, &y, NULL, 2, in, g, NULL), AD_OK);
    for (int i = 0; i < 3; i++) {
        assert_close(pv[i], ad_tensor_get(g[0], i), 0, 0);
        assert_close(xv[i], ad_tensor_get(g[1], i), 0, 0);
        assert_close(0.0, ad_tensor_get(ad_tensor_grad(p), i), 0, 0);
    }
    assert_null(ad_tensor_grad(x));
    /* The results live on the tape, shaped like their inputs. */
    assert_ptr_equal(ad_tensor_tape(g[1]), tape);
    assert_int_equal(ad_tensor_numel(g[1]), 3);
    ad_tape_reset(tape); /* the tape's views of p go before p */
    ad_tensor_free(p);
}

static void test_ad_grad_of_an_input_that_does_not_affect_the_output_is_zeros(void **state)
{
    ad_tape *tape = *state;
    int64_t s2[2] = {2, 3}, s1[1] = {4};
    ad_tensor *x = leaf(tape, AD_F64, 2, s2, NULL);
    ad_tensor *unused = leaf(tape, AD_F64, 1, s1, NULL);
    ad_tensor *constant = ad_full(tape, AD_F64, 2, s2, 1.0);
    ad_tensor *y = ad_sum_all(ad_exp(x));
    ad_tensor *later = leaf(tape, AD_F64, 1, s1, NULL); /* created after y */
    ad_tensor *in[4] = {x, unused, constant, later}, *g[4];
    assert_int_equal(ad_grad(1, &y, NULL, 4, in, g, NULL), AD_OK);
    for (int k = 1; k < 4; k++) {
        assert_non_null(g[k]);
        assert_int_equal(ad_tensor_ndim(g[k]), ad_tensor_ndim(in[k]));
        assert_int_equal(ad_tensor_numel(g[k]), ad_tensor_numel(in[k]));
        for (int64_t i = 0; i < ad_tensor_numel(g[k]); i++)
            assert_true(ad_tensor_get(g[k], i) == 0.0);
    }
    for (int i = 0; i < 6; i++)
        assert_close(1.0, ad_tensor_get(g[0], i), 0, 0);
}

static void test_persistent_parameter_used_twice_gets_both_contributions(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 1, &n, true), AD_OK);
    const double wv[3] = {1.0, -2.0, 0.5};
    assert_int_equal(ad_tensor_copy_from_doubles(w, wv), AD_OK);
    ad_tensor *x = ad_full(tape, AD_F64, 1, &n, 3.0);
    /* y = sum(w * w) + sum(w * x): dy/dw = 2 w + x. w enters the tape three
     * times: twice by ad_tape_use (both inputs of a product are persistent),
     * once on its own as the persistent input of an op with a tape input. */
    ad_tensor *ww = ad_mul(ad_tape_use(tape, w), ad_tape_use(tape, w));
    ad_tensor *y = ad_add(ad_sum_all(ww), ad_sum_all(ad_mul(w, x)));
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    for (int i = 0; i < 3; i++)
        assert_close(2 * wv[i] + 3.0, ad_tensor_get(ad_tensor_grad(w), i), 0, 0);
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

static void test_create_graph_gives_the_second_derivative_of_x_cubed(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = scalar_leaf(tape, 2.0);
    ad_backward_opts o = {.create_graph = true};
    ad_tensor *cubes[2] = {ad_mul(ad_mul(x, x), x), ad_pow_scalar(x, 3.0)};
    for (int k = 0; k < 2; k++) {
        ad_tensor *g, *h, *t;
        assert_int_equal(ad_grad(1, &cubes[k], NULL, 1, &x, &g, &o), AD_OK);
        assert_close(12.0, ad_value(g), 1e-15, 0); /* 3 x^2 */
        assert_true(ad_tensor_requires_grad(g));
        assert_int_equal(ad_grad(1, &g, NULL, 1, &x, &h, &o), AD_OK);
        assert_close(12.0, ad_value(h), 1e-15, 0); /* 6 x */
        assert_int_equal(ad_grad(1, &h, NULL, 1, &x, &t, NULL), AD_OK);
        assert_close(6.0, ad_value(t), 1e-15, 0); /* 6 */
    }
    /* Through ad_backward too: x.grad is itself differentiable. */
    ad_tensor *y = ad_mul(ad_mul(x, x), x);
    assert_int_equal(ad_backward(y, &o), AD_OK);
    ad_tensor *gx = ad_tensor_grad(x);
    assert_close(12.0, ad_value(gx), 1e-15, 0);
    ad_tensor *h;
    assert_int_equal(ad_grad(1, &gx, NULL, 1, &x, &h, NULL), AD_OK);
    assert_close(12.0, ad_value(h), 1e-15, 0);
}

/* f(x) = (sum x)^2 + sum(x^3): H = 2 (1 1^T) + diag(6 x), so
 * H v = 2 sum(v) + 6 x v, with off-diagonal terms from the first part. */
static void test_hessian_vector_product_matches_the_hand_computed_value(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 4;
    const double xv[4] = {1.0, -2.0, 0.5, 3.0}, vv[4] = {0.25, 1.0, -1.0, 2.0};
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, xv);
    ad_tensor *v = ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, vv);
    ad_tensor *f = ad_add(ad_square(ad_sum_all(x)), ad_sum_all(ad_pow_scalar(x, 3.0)));
    ad_backward_opts o = {.create_graph = true};
    ad_tensor *g, *hv;
    assert_int_equal(ad_grad(1, &f, NULL, 1, &x, &g, &o), AD_OK);
    double sx = 1.0 - 2.0 + 0.5 + 3.0, sv = 0.25 + 1.0 - 1.0 + 2.0;
    for (int i = 0; i < 4; i++)
        assert_close(2 * sx + 3 * xv[i] * xv[i], ad_tensor_get(g, i), 1e-15, 0);
    /* Hv = d<g, v>/dx, as a vector-Jacobian product of g with seed v. */
    assert_int_equal(ad_grad(1, &g, &v, 1, &x, &hv, NULL), AD_OK);
    for (int i = 0; i < 4; i++)
        assert_close(2 * sv + 6 * xv[i] * vv[i], ad_tensor_get(hv, i), 1e-14, 0);
}

static void test_a_zero_seed_gives_exactly_zero_gradients(void **state)
{
    ad_tape *tape = *state;
    int64_t s[2] = {2, 3};
    uint64_t rng = 3;
    ad_tensor *x = ad_requires_grad(test_random(tape, &rng, 2, s, -2, 2));
    ad_tensor *y = ad_mul(ad_exp(x), ad_tanh(ad_mul_scalar(x, 3.0)));
    ad_tensor *seed = ad_full(tape, AD_F64, 2, s, 0.0);
    ad_backward_opts o = {.seed = seed};
    assert_int_equal(ad_backward(y, &o), AD_OK);
    ad_tensor *g = ad_tensor_grad(x);
    assert_non_null(g);
    for (int i = 0; i < 6; i++)
        if (!(ad_tensor_get(g, i) == 0.0))
            fail_msg("gradient %d is %g with a zero seed", i, ad_tensor_get(g, i));
}

/* One program: a small two-layer computation with broadcasting and reductions. */
static void run_program(ad_tape *tape, double *grad_out, double *value_out)
{
    ad_tape_reset(tape);
    int64_t sx[2] = {4, 5}, sw[2] = {1, 5}, sb[1] = {5};
    uint64_t rng = 99;
    ad_tensor *x = test_random(tape, &rng, 2, sx, -1, 1);
    ad_tensor *w = ad_requires_grad(test_random(tape, &rng, 2, sw, -1, 1));
    ad_tensor *b = ad_requires_grad(test_random(tape, &rng, 1, sb, -1, 1));
    const int last[1] = {-1};
    ad_tensor *h = ad_tanh(ad_add(ad_mul(x, w), b));
    ad_tensor *loss = ad_add(ad_mean_all(ad_logsumexp(h, 1, last, false)),
                             ad_var(ad_sigmoid(h), 0, NULL, false, 1));
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    *value_out = ad_value(loss);
    ad_tensor_copy_to_doubles(ad_tensor_grad(w), grad_out);
    ad_tensor_copy_to_doubles(ad_tensor_grad(b), grad_out + 5);
}

static void test_the_same_program_twice_gives_bitwise_the_same_gradients(void **state)
{
    ad_tape *tape = *state, *other = test_tape();
    double g1[10], g2[10], g3[10], v1, v2, v3;
    run_program(tape, g1, &v1);
    run_program(tape, g2, &v2);
    run_program(other, g3, &v3);
    ad_tape_free(other);
    assert_memory_equal(&v1, &v3, sizeof v1);
    assert_memory_equal(g1, g3, sizeof g1);
    assert_memory_equal(&v1, &v2, sizeof v1);
    assert_memory_equal(g1, g2, sizeof g1);
}

static void test_a_chain_of_100000_ops_backpropagates_without_recursion(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = scalar_leaf(tape, 1.5);
    ad_tensor *y = x;
    const double c = 1.0 + 1e-6;
    for (int i = 0; i < 100000; i++)
        y = ad_mul_scalar(y, c);
    assert_non_null(y);
    assert_true(ad_tape_node_count(tape) >= 100001);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_close(pow(c, 100000), ad_grad_value(x), 1e-9, 0);
    assert_close(1.5 * pow(c, 100000), ad_value(y), 1e-9, 0);
}

static void test_backward_accumulates_into_a_tape_leaf_across_outputs(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = scalar_leaf(tape, 2.0);
    assert_int_equal(ad_backward(ad_square(x), NULL), AD_OK);
    assert_int_equal(ad_backward(ad_exp(x), NULL), AD_OK);
    assert_close(4.0 + exp(2.0), ad_grad_value(x), 1e-15, 0);
}

static void test_ad_grad_sums_over_several_outputs_with_their_seeds(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    const double xv[2] = {1.0, 3.0}, s1[2] = {1.0, 2.0};
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, xv);
    ad_tensor *outs[2] = {ad_square(x), ad_sum_all(ad_mul_scalar(x, 5.0))};
    ad_tensor *seeds[2] = {ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, s1),
                           ad_scalar(tape, -1.0)};
    ad_tensor *g;
    assert_int_equal(ad_grad(2, outs, seeds, 1, &x, &g, NULL), AD_OK);
    /* 2 x s1 - 5 */
    assert_close(2.0 * 1.0 * 1.0 - 5.0, ad_tensor_get(g, 0), 0, 0);
    assert_close(2.0 * 3.0 * 2.0 - 5.0, ad_tensor_get(g, 1), 0, 0);
}

static void test_backward_with_a_seed_of_the_wrong_shape_is_a_shape_error(void **state)
{
    ad_tape *tape = *state;
    int64_t s[2] = {2, 3}, t[1] = {3};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, NULL);
    ad_tensor *y = ad_exp(x);
    ad_backward_opts o = {.seed = ad_full(tape, AD_F64, 1, t, 1.0)};
    assert_int_equal(ad_backward(y, &o), AD_ERR_SHAPE);
    assert_non_null(strstr(ad_tape_message(tape), "[2,3]"));
    assert_non_null(strstr(ad_tape_message(tape), "[3]"));
}

static void test_backward_of_an_output_that_needs_no_grad_is_a_no_grad_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *c = ad_exp(ad_scalar(tape, 1.0));
    assert_int_equal(ad_backward(c, NULL), AD_ERR_NO_GRAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_micrograd_scalar_example_gives_2x_plus_cos_x),
        TAPE_TEST(test_a_node_used_twice_gets_both_contributions),
        TAPE_TEST(test_a_node_used_by_many_consumers_sums_all_of_them),
        TAPE_TEST(test_ad_grad_returns_gradients_without_touching_stored_grads),
        TAPE_TEST(test_ad_grad_of_an_input_that_does_not_affect_the_output_is_zeros),
        TAPE_TEST(test_persistent_parameter_used_twice_gets_both_contributions),
        TAPE_TEST(test_create_graph_gives_the_second_derivative_of_x_cubed),
        TAPE_TEST(test_hessian_vector_product_matches_the_hand_computed_value),
        TAPE_TEST(test_a_zero_seed_gives_exactly_zero_gradients),
        TAPE_TEST(test_the_same_program_twice_gives_bitwise_the_same_gradients),
        TAPE_TEST(test_a_chain_of_100000_ops_backpropagates_without_recursion),
        TAPE_TEST(test_backward_accumulates_into_a_tape_leaf_across_outputs),
        TAPE_TEST(test_ad_grad_sums_over_several_outputs_with_their_seeds),
        TAPE_TEST(test_backward_with_a_seed_of_the_wrong_shape_is_a_shape_error),
        TAPE_TEST(test_backward_of_an_output_that_needs_no_grad_is_a_no_grad_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
