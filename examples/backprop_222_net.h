/*
 * The 2-2-2 network of the classic step-by-step backpropagation example
 * (Matt Mazur, "A Step by Step Backpropagation Example", 2015), written with
 * libautodiff's scalar API: every number is a 0-d float64 tensor.
 *
 *     net_h1 = w1 i1 + w2 i2 + b1           out_h1 = sigmoid(net_h1)
 *     net_h2 = w3 i1 + w4 i2 + b1           out_h2 = sigmoid(net_h2)
 *     net_o1 = w5 out_h1 + w6 out_h2 + b2   out_o1 = sigmoid(net_o1)
 *     net_o2 = w7 out_h1 + w8 out_h2 + b2   out_o2 = sigmoid(net_o2)
 *     E_total = 1/2 (target_o1 - out_o1)^2 + 1/2 (target_o2 - out_o2)^2
 *
 * with i1 = 0.05, i2 = 0.10, b1 = 0.35, b2 = 0.60 and targets 0.01, 0.99.
 *
 * The weights are plain doubles kept by the program. Each step brings them
 * onto a freshly reset tape as leaves (micrograd style), runs the forward
 * pass and one backward pass, and reads dE/dw off the leaves. Shared by
 * examples/backprop_222.c and tests/test_examples.c, so the test checks the
 * very code the example prints.
 */
#ifndef BACKPROP_222_NET_H
#define BACKPROP_222_NET_H

#include "autodiff/autodiff.h"

#include <math.h>
#include <stddef.h>

#define BACKPROP_WEIGHTS 8

/* The fixed part of the example: inputs, biases (never updated), targets. */
static const double backprop_i1 = 0.05, backprop_i2 = 0.10;
static const double backprop_b1 = 0.35, backprop_b2 = 0.60;
static const double backprop_target_o1 = 0.01, backprop_target_o2 = 0.99;
static const double backprop_learning_rate = 0.5;

/* w1..w8 before training. */
static const double backprop_initial_weights[BACKPROP_WEIGHTS] = {0.15, 0.20, 0.25, 0.30,
                                                                  0.40, 0.45, 0.50, 0.55};

/* Everything one step computes: the forward values, E and dE/dw1..dE/dw8. */
typedef struct backprop_step_result {
    double net_h1, out_h1, net_h2, out_h2;
    double net_o1, out_o1, net_o2, out_o2;
    double error;                      /* E_total */
    double gradient[BACKPROP_WEIGHTS]; /* gradient[k] = dE/dw(k+1) */
} backprop_step_result;

/* One sigmoid unit: net = wa xa + wb xb + b, returns out = sigmoid(net). */
static inline ad_tensor *backprop_unit(ad_tensor *wa, ad_tensor *xa, ad_tensor *wb, ad_tensor *xb,
                                       ad_tensor *b, ad_tensor **net)
{
    *net = ad_add(ad_add(ad_mul(wa, xa), ad_mul(wb, xb)), b);
    return ad_sigmoid(*net);
}

/* 1/2 (target - out)^2 */
static inline ad_tensor *backprop_half_squared_error(ad_tensor *target, ad_tensor *out)
{
    return ad_mul_scalar(ad_square(ad_sub(target, out)), 0.5);
}

/*
 * One step at weights w[0..8) (w1..w8): resets tape, records the forward
 * pass, backpropagates from E and fills *r. The weights are not changed.
 * Returns AD_OK, or the tape's error (ad_tape_message says which op failed).
 */
static inline ad_status backprop_step(ad_tape *tape, const double w[BACKPROP_WEIGHTS],
                                      backprop_step_result *r)
{
    ad_tape_reset(tape);

    /* The weights enter the tape as leaves; everything else is a constant. */
    ad_tensor *weight[BACKPROP_WEIGHTS];
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        weight[k] = ad_requires_grad(ad_scalar(tape, w[k]));
    ad_tensor *i1 = ad_scalar(tape, backprop_i1), *i2 = ad_scalar(tape, backprop_i2);
    ad_tensor *b1 = ad_scalar(tape, backprop_b1), *b2 = ad_scalar(tape, backprop_b2);

    /* Forward pass. */
    ad_tensor *net_h1, *net_h2, *net_o1, *net_o2;
    ad_tensor *out_h1 = backprop_unit(weight[0], i1, weight[1], i2, b1, &net_h1);
    ad_tensor *out_h2 = backprop_unit(weight[2], i1, weight[3], i2, b1, &net_h2);
    ad_tensor *out_o1 = backprop_unit(weight[4], out_h1, weight[5], out_h2, b2, &net_o1);
    ad_tensor *out_o2 = backprop_unit(weight[6], out_h1, weight[7], out_h2, b2, &net_o2);
    ad_tensor *error =
        ad_add(backprop_half_squared_error(ad_scalar(tape, backprop_target_o1), out_o1),
               backprop_half_squared_error(ad_scalar(tape, backprop_target_o2), out_o2));

    /* Backward pass: one reverse sweep gives all eight dE/dw. An earlier
     * failure anywhere above makes error NULL and is reported here. */
    ad_status status = ad_backward(error, NULL);
    if (status != AD_OK)
        return status;

    r->net_h1 = ad_value(net_h1);
    r->out_h1 = ad_value(out_h1);
    r->net_h2 = ad_value(net_h2);
    r->out_h2 = ad_value(out_h2);
    r->net_o1 = ad_value(net_o1);
    r->out_o1 = ad_value(out_o1);
    r->net_o2 = ad_value(net_o2);
    r->out_o2 = ad_value(out_o2);
    r->error = ad_value(error);
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        r->gradient[k] = ad_grad_value(weight[k]);
    return AD_OK;
}

/* Plain gradient descent: w -= learning_rate dE/dw, all eight at once. */
static inline void backprop_update(double w[BACKPROP_WEIGHTS], const backprop_step_result *r)
{
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        w[k] -= backprop_learning_rate * r->gradient[k];
}

/*
 * Trains from the initial weights for `iterations` steps (each: forward,
 * backward, update). *last receives the last step's result, measured in its
 * forward pass, before its update (what a training loop logs as its loss).
 * w receives the final weights.
 */
static inline ad_status backprop_train(ad_tape *tape, long iterations, double w[BACKPROP_WEIGHTS],
                                       backprop_step_result *last)
{
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        w[k] = backprop_initial_weights[k];
    for (long it = 0; it < iterations; it++) {
        ad_status status = backprop_step(tape, w, last);
        if (status != AD_OK)
            return status;
        backprop_update(w, last);
    }
    return AD_OK;
}

/* ---- The published figures ------------------------------------------------------
 * As printed in the post; each is reproduced to half a unit in its last digit
 * (backprop_tolerance). The values we compare them with come from
 * backprop_figures, in the same order. */

typedef struct backprop_figure {
    const char *name;
    const char *published; /* exactly as published: its digits set the tolerance */
} backprop_figure;

static const backprop_figure backprop_published[] = {
    {"out_h1", "0.593269992"},
    {"out_o1", "0.75136507"},
    {"out_o2", "0.772928465"},
    {"E_total", "0.298371109"},
    {"dE/dw5", "0.082167041"},
    {"w5 after one update", "0.35891648"},
    {"w6 after one update", "0.408666186"},
    {"w7 after one update", "0.511301270"},
    {"w8 after one update", "0.561370121"},
    {"w1 after one update", "0.149780716"},
    {"w2 after one update", "0.19956143"},
    {"w3 after one update", "0.24975114"},
    {"w4 after one update", "0.29950229"},
    /* "After repeating this process 10,000 times ... the error plummets to
     * 0.0000351085": E measured in the forward pass of the 10,000th step. */
    {"E_total at step 10,000", "0.0000351085"},
};

#define BACKPROP_FIGURES (sizeof backprop_published / sizeof backprop_published[0])

/* Half a unit in the last digit of a decimal figure: "0.35891648" -> 0.5e-8. */
static inline double backprop_tolerance(const char *published)
{
    int digits = 0;
    const char *p = published;
    while (*p && *p != '.')
        p++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    return 0.5 * pow(10.0, -digits);
}

/* Our values for the published figures, in table order: first is the first
 * step at the initial weights, updated the weights after its update, and
 * trained the result of the 10,000th step. */
static inline void backprop_figures(const backprop_step_result *first,
                                    const double updated[BACKPROP_WEIGHTS],
                                    const backprop_step_result *trained,
                                    double values[BACKPROP_FIGURES])
{
    const double ours[] = {
        first->out_h1, first->out_o1, first->out_o2, first->error,   first->gradient[4],
        updated[4],    updated[5],    updated[6],    updated[7],     updated[0],
        updated[1],    updated[2],    updated[3],    trained->error,
    };
    _Static_assert(sizeof ours / sizeof ours[0] == BACKPROP_FIGURES,
                   "one value per published figure");
    for (size_t k = 0; k < BACKPROP_FIGURES; k++)
        values[k] = ours[k];
}

#endif
