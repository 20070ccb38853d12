/* The examples' numbers, asserted: the 2-2-2 backpropagation example
 * (examples/backprop_222_net.h, the code examples/backprop_222.c prints)
 * against every published figure, against the same network differentiated by
 * hand, and after training. */
#include "test_util.h"

#include "backprop_222_net.h"

#include <stdlib.h>
#include <string.h>

/* The first step at the initial weights and the weights after its update. */
static void first_step(ad_tape *tape, backprop_step_result *first, double updated[BACKPROP_WEIGHTS])
{
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        updated[k] = backprop_initial_weights[k];
    assert_int_equal(backprop_step(tape, updated, first), AD_OK);
    backprop_update(updated, first);
}

static void test_backprop_reproduces_every_published_figure_to_its_digits(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    backprop_step_result first = {0}, trained = {0};
    double updated[BACKPROP_WEIGHTS], w[BACKPROP_WEIGHTS];
    first_step(tape, &first, updated);
    assert_int_equal(backprop_train(tape, 10000, w, &trained), AD_OK);
    ad_tape_free(tape);

    double ours[BACKPROP_FIGURES];
    backprop_figures(&first, updated, &trained, ours);
    for (size_t k = 0; k < BACKPROP_FIGURES; k++) {
        const backprop_figure *f = &backprop_published[k];
        double tolerance = backprop_tolerance(f->published);
        /* Half a unit in the last digit: 9 decimals give 0.5e-9. */
        assert_true(tolerance > 0.49e-10 && tolerance < 0.51e-8);
        if (!(fabs(ours[k] - strtod(f->published, NULL)) < tolerance))
            fail_msg("%s = %.15g, published %s (tolerance %g)", f->name, ours[k], f->published,
                     tolerance);
    }
}

static void test_backprop_tolerance_is_half_a_unit_in_the_last_digit(void **state)
{
    (void)state;
    assert_close(0.5e-8, backprop_tolerance("0.35891648"), 1e-12, 0);
    assert_close(0.5e-9, backprop_tolerance("0.511301270"), 1e-12, 0);
    assert_close(0.5e-10, backprop_tolerance("0.0000351085"), 1e-12, 0);
    assert_close(0.5, backprop_tolerance("3"), 1e-12, 0);
}

/* The same network and its gradient worked out by hand with the chain rule,
 * as the post does, in plain doubles. */
typedef struct by_hand {
    double out_h1, out_h2, out_o1, out_o2, error, gradient[BACKPROP_WEIGHTS];
} by_hand;

static double sigmoid(double x)
{
    return 1 / (1 + exp(-x));
}

static by_hand differentiate_by_hand(const double *w)
{
    by_hand r;
    const double i1 = backprop_i1, i2 = backprop_i2;
    const double t1 = backprop_target_o1, t2 = backprop_target_o2;
    r.out_h1 = sigmoid(w[0] * i1 + w[1] * i2 + backprop_b1);
    r.out_h2 = sigmoid(w[2] * i1 + w[3] * i2 + backprop_b1);
    r.out_o1 = sigmoid(w[4] * r.out_h1 + w[5] * r.out_h2 + backprop_b2);
    r.out_o2 = sigmoid(w[6] * r.out_h1 + w[7] * r.out_h2 + backprop_b2);
    r.error = 0.5 * (t1 - r.out_o1) * (t1 - r.out_o1) + 0.5 * (t2 - r.out_o2) * (t2 - r.out_o2);
    /* delta = dE/dnet for each unit */
    double d_o1 = (r.out_o1 - t1) * r.out_o1 * (1 - r.out_o1);
    double d_o2 = (r.out_o2 - t2) * r.out_o2 * (1 - r.out_o2);
    double d_h1 = (d_o1 * w[4] + d_o2 * w[6]) * r.out_h1 * (1 - r.out_h1);
    double d_h2 = (d_o1 * w[5] + d_o2 * w[7]) * r.out_h2 * (1 - r.out_h2);
    const double g[BACKPROP_WEIGHTS] = {d_h1 * i1,       d_h1 * i2,       d_h2 * i1,
                                        d_h2 * i2,       d_o1 * r.out_h1, d_o1 * r.out_h2,
                                        d_o2 * r.out_h1, d_o2 * r.out_h2};
    memcpy(r.gradient, g, sizeof g);
    return r;
}

static void assert_matches_hand(const backprop_step_result *r, const double *w)
{
    by_hand h = differentiate_by_hand(w);
    assert_close(h.out_h1, r->out_h1, 1e-14, 0);
    assert_close(h.out_h2, r->out_h2, 1e-14, 0);
    assert_close(h.out_o1, r->out_o1, 1e-14, 0);
    assert_close(h.out_o2, r->out_o2, 1e-14, 0);
    assert_close(h.error, r->error, 1e-13, 0);
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        assert_close(h.gradient[k], r->gradient[k], 1e-12, 1e-18);
}

static void test_backprop_gradients_equal_the_chain_rule_by_hand(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    backprop_step_result r = {0};
    double w[BACKPROP_WEIGHTS];
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        w[k] = backprop_initial_weights[k];
    /* At the start, and at a few points along the training path. */
    for (int step = 0; step < 2000; step++) {
        assert_int_equal(backprop_step(tape, w, &r), AD_OK);
        if (step % 500 == 0 || step == 1)
            assert_matches_hand(&r, w);
        backprop_update(w, &r);
    }
    ad_tape_free(tape);
}

static void test_backprop_net_values_are_the_weighted_sums(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    backprop_step_result r = {0};
    assert_int_equal(backprop_step(tape, backprop_initial_weights, &r), AD_OK);
    ad_tape_free(tape);
    assert_close(0.3775, r.net_h1, 1e-15, 0); /* 0.15 * 0.05 + 0.2 * 0.1 + 0.35 */
    assert_close(0.3925, r.net_h2, 1e-15, 0);
    assert_close(1.10590596705977, r.net_o1, 1e-13, 0);
    assert_close(1.2249214040964653, r.net_o2, 1e-13, 0);
}

static void test_backprop_training_drives_the_error_below_its_bound(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    backprop_step_result r = {0};
    double w[BACKPROP_WEIGHTS];
    assert_int_equal(backprop_train(tape, 10000, w, &r), AD_OK);
    ad_tape_free(tape);
    /* It converges to E = 3.5108548e-5 at step 10,000 (out 0.015914, 0.984064):
     * the bounds leave room only for rounding. */
    assert_true(r.error < 3.52e-5);
    assert_true(r.error > 3.50e-5);
    assert_close(0.015914185034957177, r.out_o1, 1e-9, 0);
    assert_close(0.9840637123033571, r.out_o2, 1e-9, 0);
    /* The error decreases: the step after it is smaller still. */
    backprop_step_result next = {0};
    tape = test_tape();
    assert_int_equal(backprop_step(tape, w, &next), AD_OK);
    ad_tape_free(tape);
    assert_true(next.error < r.error);
}

static void test_backprop_training_is_bitwise_deterministic(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    backprop_step_result a = {0}, b = {0};
    double wa[BACKPROP_WEIGHTS], wb[BACKPROP_WEIGHTS];
    assert_int_equal(backprop_train(tape, 300, wa, &a), AD_OK);
    assert_int_equal(backprop_train(tape, 300, wb, &b), AD_OK);
    ad_tape_free(tape);
    assert_memory_equal(wa, wb, sizeof wa);
    assert_memory_equal(a.gradient, b.gradient, sizeof a.gradient);
}

static void test_backprop_steps_reuse_the_tape_memory(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    backprop_step_result r = {0};
    double w[BACKPROP_WEIGHTS];
    assert_int_equal(backprop_train(tape, 2, w, &r), AD_OK);
    size_t reserved = ad_tape_bytes_reserved(tape), nodes = ad_tape_node_count(tape);
    assert_int_equal(backprop_train(tape, 1000, w, &r), AD_OK);
    assert_int_equal(ad_tape_bytes_reserved(tape), reserved);
    assert_int_equal(ad_tape_node_count(tape), nodes);
    ad_tape_free(tape);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backprop_reproduces_every_published_figure_to_its_digits),
        cmocka_unit_test(test_backprop_tolerance_is_half_a_unit_in_the_last_digit),
        cmocka_unit_test(test_backprop_gradients_equal_the_chain_rule_by_hand),
        cmocka_unit_test(test_backprop_net_values_are_the_weighted_sums),
        cmocka_unit_test(test_backprop_training_drives_the_error_below_its_bound),
        cmocka_unit_test(test_backprop_training_is_bitwise_deterministic),
        cmocka_unit_test(test_backprop_steps_reuse_the_tape_memory),
    };
    return cmocka_run_group_tests_name("examples", tests, NULL, NULL);
}
