/*
 * The classic step-by-step backpropagation example, with libautodiff doing
 * the calculus: a 2-2-2 sigmoid network (examples/backprop_222_net.h), one
 * step printed in full, then 10,000 steps of gradient descent.
 *
 * Prints the forward pass, E_total, dE/dw1..dE/dw8 and the weights after one
 * update, then the error and outputs after training, and compares them with
 * the published figures. Exits 0 when every figure agrees to the digits
 * published, 1 otherwise (it runs as a test).
 */
#include "backprop_222_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TRAINING_STEPS 10000L

static int fail(ad_tape *tape, ad_status status)
{
    fprintf(stderr, "backprop_222: %s: %s\n", ad_status_string(status), ad_tape_message(tape));
    ad_tape_free(tape);
    return EXIT_FAILURE;
}

int main(void)
{
    ad_tape *tape;
    if (ad_tape_create(&tape) != AD_OK) {
        fprintf(stderr, "backprop_222: out of memory\n");
        return EXIT_FAILURE;
    }

    /* ---- Step 1, in full ---- */
    double w[BACKPROP_WEIGHTS];
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        w[k] = backprop_initial_weights[k];
    backprop_step_result first;
    ad_status status = backprop_step(tape, w, &first);
    if (status != AD_OK)
        return fail(tape, status);

    printf("Forward pass (i1 = %.2f, i2 = %.2f, targets %.2f and %.2f)\n", backprop_i1, backprop_i2,
           backprop_target_o1, backprop_target_o2);
    printf("  net_h1 = %.9f   out_h1 = %.9f\n", first.net_h1, first.out_h1);
    printf("  net_h2 = %.9f   out_h2 = %.9f\n", first.net_h2, first.out_h2);
    printf("  net_o1 = %.9f   out_o1 = %.9f\n", first.net_o1, first.out_o1);
    printf("  net_o2 = %.9f   out_o2 = %.9f\n", first.net_o2, first.out_o2);
    printf("  E_total = %.9f\n\n", first.error);

    printf("Backward pass (one ad_backward from E_total)\n");
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        printf("  dE/dw%d = %+.9f\n", k + 1, first.gradient[k]);

    backprop_update(w, &first);
    printf("\nWeights after one update (learning rate %.1f, biases fixed)\n",
           backprop_learning_rate);
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        printf("  w%d = %.9f  (was %.2f)\n", k + 1, w[k], backprop_initial_weights[k]);
    double updated[BACKPROP_WEIGHTS];
    for (int k = 0; k < BACKPROP_WEIGHTS; k++)
        updated[k] = w[k];

    /* ---- Training: the same step, 10,000 times from the start ---- */
    backprop_step_result last;
    status = backprop_train(tape, TRAINING_STEPS, w, &last);
    if (status != AD_OK)
        return fail(tape, status);
    printf("\nAfter %ld steps of gradient descent (values of the last step's forward pass)\n",
           TRAINING_STEPS);
    printf("  E_total = %.10f\n", last.error);
    printf("  out_o1  = %.9f  (target %.2f)\n", last.out_o1, backprop_target_o1);
    printf("  out_o2  = %.9f  (target %.2f)\n", last.out_o2, backprop_target_o2);
    printf("  arena: %zu bytes reserved for every step\n", ad_tape_bytes_reserved(tape));
    ad_tape_free(tape);

    /* ---- Against the published figures ---- */
    double ours[BACKPROP_FIGURES];
    backprop_figures(&first, updated, &last, ours);
    int mismatches = 0;
    printf("\nPublished figures\n");
    for (size_t k = 0; k < BACKPROP_FIGURES; k++) {
        const backprop_figure *f = &backprop_published[k];
        double published = strtod(f->published, NULL);
        double tolerance = backprop_tolerance(f->published);
        bool agrees = fabs(ours[k] - published) < tolerance;
        mismatches += !agrees;
        printf("  %-24s published %-14s ours %.12f  %s\n", f->name, f->published, ours[k],
               agrees ? "ok" : "MISMATCH");
    }
    if (mismatches) {
        fprintf(stderr, "backprop_222: %d figure(s) disagree with the published ones\n",
                mismatches);
        return EXIT_FAILURE;
    }
    printf("All %zu figures agree to the digits published.\n", (size_t)BACKPROP_FIGURES);
    return EXIT_SUCCESS;
}
