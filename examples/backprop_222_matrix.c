/*
 * The 2-2-2 network of backprop_222.c in matrix form: two linear layers,
 * sigmoid activations, a sum-of-squares loss and the SGD optimizer.
 *
 *     x [1, 2] = [i1, i2]
 *     net_h = x W1^T + b1, out_h = sigmoid(net_h)      W1 = [[w1, w2], [w3, w4]], b1 = [b1, b1]
 *     net_o = out_h W2^T + b2, out_o = sigmoid(net_o)  W2 = [[w5, w6], [w7, w8]], b2 = [b2, b2]
 *     E_total = 1/2 sum (target - out_o)^2             = 0.5 * mse_loss(sum)
 *
 * The layers are ad_nn_linear modules in float64 whose weights and biases are
 * set by hand; the biases are frozen (ad_tensor_set_requires_grad false), so
 * they stay fixed as in the original, and plain SGD (learning rate 0.5) runs
 * over every parameter of both layers, skipping the frozen ones. The constants and the
 * published figures come from backprop_222_net.h, shared with the scalar
 * version.
 *
 * Prints the forward pass, the gradients and the weights after one update,
 * then the error and outputs after 10,000 steps, and compares them with the
 * published figures and with the scalar version. Exits 0 when all agree, 1
 * otherwise (it runs as a test).
 */
#include "backprop_222_net.h"

#include "autodiff/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TRAINING_STEPS 10000L

typedef struct network {
    ad_module *hidden, *output; /* linear 2 -> 2, both */
    ad_tensor *w1, *b1, *w2, *b2;
    ad_optim *sgd;
} network;

static void network_free(network *net)
{
    ad_optim_free(net->sgd);
    ad_nn_free(net->hidden);
    ad_nn_free(net->output);
}

/* Parameter `index` of a linear layer: 0 is the weight [out, in], 1 the bias [out]. */
static ad_tensor *parameter(const ad_module *layer, size_t index)
{
    ad_nn_param p[2];
    return ad_nn_params(layer, p, 2) == 2 ? p[index].tensor : NULL;
}

static ad_status network_create(network *net)
{
    const double *w = backprop_initial_weights; /* w1..w8: W1 and W2, row by row */
    const double b1[2] = {backprop_b1, backprop_b1}, b2[2] = {backprop_b2, backprop_b2};
    ad_rng rng; /* the layers' random initial values are overwritten below */
    ad_rng_seed(&rng, 0);
    ad_status st;
    if ((st = ad_nn_linear(&net->hidden, 2, 2, true, AD_F64, &rng)) != AD_OK ||
        (st = ad_nn_linear(&net->output, 2, 2, true, AD_F64, &rng)) != AD_OK)
        return st;
    net->w1 = parameter(net->hidden, 0);
    net->b1 = parameter(net->hidden, 1);
    net->w2 = parameter(net->output, 0);
    net->b2 = parameter(net->output, 1);
    if ((st = ad_tensor_copy_from_doubles(net->w1, w)) != AD_OK ||
        (st = ad_tensor_copy_from_doubles(net->b1, b1)) != AD_OK ||
        (st = ad_tensor_copy_from_doubles(net->w2, w + 4)) != AD_OK ||
        (st = ad_tensor_copy_from_doubles(net->b2, b2)) != AD_OK ||
        (st = ad_tensor_set_requires_grad(net->b1, false)) != AD_OK ||
        (st = ad_tensor_set_requires_grad(net->b2, false)) != AD_OK)
        return st;
    ad_tensor *params[4] = {net->w1, net->b1, net->w2, net->b2};
    ad_sgd_config sgd = ad_sgd_defaults(); /* plain SGD: no momentum, no decay */
    sgd.lr = backprop_learning_rate;
    return ad_optim_sgd_params(&net->sgd, 4, params, &sgd);
}

/* One training step: forward, E_total, backward, SGD update. r receives the forward values and
 * dE/dw1..dE/dw8, measured before the update. */
static ad_status train_step(network *net, ad_tape *tape, backprop_step_result *r)
{
    ad_tape_reset(tape);
    int64_t row[2] = {1, 2};
    ad_tensor *x =
        ad_tape_tensor_from_doubles(tape, AD_F64, 2, row, (double[]){backprop_i1, backprop_i2});
    ad_tensor *target = ad_tape_tensor_from_doubles(
        tape, AD_F64, 2, row, (double[]){backprop_target_o1, backprop_target_o2});

    ad_tensor *net_h = ad_nn_forward(net->hidden, tape, x); /* [1, 2] */
    ad_tensor *out_h = ad_sigmoid(net_h);
    ad_tensor *net_o = ad_nn_forward(net->output, tape, out_h); /* [1, 2] */
    ad_tensor *out_o = ad_sigmoid(net_o);
    ad_tensor *error = ad_mul_scalar(ad_nn_mse_loss(out_o, target, AD_REDUCE_SUM), 0.5);

    ad_optim_zero_grad(net->sgd);
    ad_status st = ad_backward(error, NULL); /* also reports any failure above */
    if (st != AD_OK)
        return st;

    *r = (backprop_step_result){
        .net_h1 = ad_tensor_get(net_h, 0),
        .out_h1 = ad_tensor_get(out_h, 0),
        .net_h2 = ad_tensor_get(net_h, 1),
        .out_h2 = ad_tensor_get(out_h, 1),
        .net_o1 = ad_tensor_get(net_o, 0),
        .out_o1 = ad_tensor_get(out_o, 0),
        .net_o2 = ad_tensor_get(net_o, 1),
        .out_o2 = ad_tensor_get(out_o, 1),
        .error = ad_value(error),
    };
    for (int k = 0; k < 4; k++) {
        r->gradient[k] = ad_tensor_get(ad_tensor_grad(net->w1), k);
        r->gradient[k + 4] = ad_tensor_get(ad_tensor_grad(net->w2), k);
    }
    ad_optim_step(net->sgd);
    return AD_OK;
}

/* The weights w1..w8 as they are now. */
static void read_weights(const network *net, double w[BACKPROP_WEIGHTS])
{
    ad_tensor_copy_to_doubles(net->w1, w);
    ad_tensor_copy_to_doubles(net->w2, w + 4);
}

static int fail(network *net, ad_tape *tape, ad_status st)
{
    fprintf(stderr, "backprop_222_matrix: %s: %s\n", ad_status_string(st),
            tape ? ad_tape_message(tape) : "");
    network_free(net);
    ad_tape_free(tape);
    return EXIT_FAILURE;
}

int main(void)
{
    network net = {0};
    ad_tape *tape = NULL;
    ad_status st = network_create(&net);
    if (st != AD_OK || (st = ad_tape_create(&tape)) != AD_OK)
        return fail(&net, tape, st);

    /* ---- Step 1, in full ---- */
    backprop_step_result first;
    if ((st = train_step(&net, tape, &first)) != AD_OK)
        return fail(&net, tape, st);
    printf("Forward pass in matrix form (x = [%.2f, %.2f], targets [%.2f, %.2f])\n", backprop_i1,
           backprop_i2, backprop_target_o1, backprop_target_o2);
    printf("  net_h = [%.9f, %.9f]   out_h = [%.9f, %.9f]\n", first.net_h1, first.net_h2,
           first.out_h1, first.out_h2);
    printf("  net_o = [%.9f, %.9f]   out_o = [%.9f, %.9f]\n", first.net_o1, first.net_o2,
           first.out_o1, first.out_o2);
    printf("  E_total = %.9f\n\n", first.error);
    printf("Backward pass: dE/dW1 and dE/dW2\n");
    printf("  dE/dW1 = [[%+.9f, %+.9f], [%+.9f, %+.9f]]\n", first.gradient[0], first.gradient[1],
           first.gradient[2], first.gradient[3]);
    printf("  dE/dW2 = [[%+.9f, %+.9f], [%+.9f, %+.9f]]\n", first.gradient[4], first.gradient[5],
           first.gradient[6], first.gradient[7]);
    double updated[BACKPROP_WEIGHTS];
    read_weights(&net, updated);
    printf("\nWeights after one SGD step (learning rate %.1f, biases fixed)\n",
           backprop_learning_rate);
    printf("  W1 = [[%.9f, %.9f], [%.9f, %.9f]]\n", updated[0], updated[1], updated[2], updated[3]);
    printf("  W2 = [[%.9f, %.9f], [%.9f, %.9f]]\n", updated[4], updated[5], updated[6], updated[7]);

    /* ---- Training: steps 2 to 10,000 ---- */
    backprop_step_result last = first;
    for (long it = 2; it <= TRAINING_STEPS; it++)
        if ((st = train_step(&net, tape, &last)) != AD_OK)
            return fail(&net, tape, st);
    printf("\nAfter %ld steps (values of the last step's forward pass)\n", TRAINING_STEPS);
    printf("  E_total = %.10f\n", last.error);
    printf("  out_o   = [%.9f, %.9f]  (targets %.2f, %.2f)\n", last.out_o1, last.out_o2,
           backprop_target_o1, backprop_target_o2);
    double b[4];
    ad_tensor_copy_to_doubles(net.b1, b);
    ad_tensor_copy_to_doubles(net.b2, b + 2);
    int mismatches = 0;
    if (b[0] != backprop_b1 || b[1] != backprop_b1 || b[2] != backprop_b2 || b[3] != backprop_b2) {
        fprintf(stderr, "backprop_222_matrix: the biases moved\n");
        mismatches++;
    }

    /* ---- The scalar version's first step, for comparison ---- */
    backprop_step_result scalar;
    if ((st = backprop_step(tape, backprop_initial_weights, &scalar)) != AD_OK)
        return fail(&net, tape, st);
    network_free(&net);
    ad_tape_free(tape);
    double largest = fabs(scalar.error - first.error);
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        largest = fmax(largest, fabs(scalar.gradient[k] - first.gradient[k]));
    printf("\nLargest difference from the scalar version's E and dE/dw: %.3g\n", largest);
    if (!(largest < 1e-15))
        mismatches++;

    /* ---- Against the published figures ---- */
    double ours[BACKPROP_FIGURES];
    backprop_figures(&first, updated, &last, ours);
    printf("\nPublished figures\n");
    for (size_t k = 0; k < BACKPROP_FIGURES; k++) {
        const backprop_figure *f = &backprop_published[k];
        bool agrees = fabs(ours[k] - strtod(f->published, NULL)) < backprop_tolerance(f->published);
        mismatches += !agrees;
        printf("  %-24s published %-14s ours %.12f  %s\n", f->name, f->published, ours[k],
               agrees ? "ok" : "MISMATCH");
    }
    if (mismatches) {
        fprintf(stderr, "backprop_222_matrix: %d check(s) failed\n", mismatches);
        return EXIT_FAILURE;
    }
    printf("All %zu figures agree to the digits published.\n", (size_t)BACKPROP_FIGURES);
    return EXIT_SUCCESS;
}
