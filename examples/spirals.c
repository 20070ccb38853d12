/*
 * Two interleaved spirals, one per class, told apart by a small MLP:
 *
 *     x [N, 2] -> linear 2->32, tanh -> linear 32->32, tanh -> linear 32->2 -> logits [N, 2]
 *
 * trained full-batch with Adam on cross-entropy. The data are made here with
 * ad_rng (nothing to download); it takes well under a second. Prints the loss
 * and accuracy as it goes, then the learnt regions as a picture. Exits 0 when
 * the training accuracy reaches 95%, 1 otherwise (it runs as a test).
 */
#include "autodiff/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define POINTS 200 /* per spiral */
#define N (2 * POINTS)
#define TURNS 1.5
#define NOISE 0.02
#define STEPS 1000
#define TARGET 0.95

/* Point i of a spiral: radius r in (0, 1] and angle 2 pi TURNS r, at a random place along it,
 * with a little normal noise. The second spiral is the first turned by half a turn. */
static void make_spirals(ad_rng *rng, double x[N][2], int64_t label[N])
{
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < POINTS; i++) {
        double r = 0.05 + 0.95 * ad_rng_uniform(rng), angle = 2 * pi * TURNS * r;
        for (int c = 0; c < 2; c++) {
            double sign = c == 0 ? 1 : -1;
            x[2 * i + c][0] = sign * r * cos(angle) + NOISE * ad_rng_normal(rng);
            x[2 * i + c][1] = sign * r * sin(angle) + NOISE * ad_rng_normal(rng);
            label[2 * i + c] = c;
        }
    }
}

/* The fraction of rows of logits [n, 2] whose larger entry is at the label. */
static double accuracy(const ad_tensor *logits, const int64_t *label, int64_t n)
{
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++)
        correct += (ad_tensor_get(logits, 2 * i + 1) > ad_tensor_get(logits, 2 * i)) == label[i];
    return (double)correct / (double)n;
}

/* The plane [-1.1, 1.1]^2 as the model sees it: '.' for class 0, 'x' for class 1. */
static void draw_regions(ad_module *model, ad_tape *tape)
{
    enum { COLUMNS = 64, ROWS = 24 };
    static double grid[ROWS * COLUMNS][2];
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLUMNS; c++) {
            grid[r * COLUMNS + c][0] = -1.1 + 2.2 * (c + 0.5) / COLUMNS;
            grid[r * COLUMNS + c][1] = 1.1 - 2.2 * (r + 0.5) / ROWS;
        }
    ad_tape_reset(tape);
    ad_tensor *points =
        ad_tape_tensor_from_doubles(tape, AD_F32, 2, (int64_t[]){ROWS * COLUMNS, 2}, &grid[0][0]);
    ad_tensor *logits = ad_nn_forward(model, tape, points);
    if (!logits)
        return;
    for (int r = 0; r < ROWS; r++) {
        for (int c = 0; c < COLUMNS; c++) {
            int64_t i = r * COLUMNS + c;
            putchar(ad_tensor_get(logits, 2 * i + 1) > ad_tensor_get(logits, 2 * i) ? 'x' : '.');
        }
        putchar('\n');
    }
}

static int fail(const char *what, ad_status status, ad_tape *tape)
{
    fprintf(stderr, "spirals: %s: %s %s\n", what, ad_status_string(status),
            tape ? ad_tape_message(tape) : "");
    return EXIT_FAILURE;
}

int main(void)
{
    ad_rng rng;
    ad_rng_seed(&rng, 7);
    static double points[N][2];
    static int64_t label[N];
    make_spirals(&rng, points, label);

    /* The model: three linear layers with tanh between; the optimizer: Adam over all of it. */
    ad_module *layers[5] = {0}, *model = NULL;
    ad_nn_linear(&layers[0], 2, 32, true, AD_F32, &rng);
    ad_nn_activation(&layers[1], AD_ACT_TANH);
    ad_nn_linear(&layers[2], 32, 32, true, AD_F32, &rng);
    ad_nn_activation(&layers[3], AD_ACT_TANH);
    ad_nn_linear(&layers[4], 32, 2, true, AD_F32, &rng);
    ad_status st = ad_nn_sequential(&model, 5, layers); /* AD_ERR_ARG if a layer failed */
    ad_optim *adam = NULL;
    ad_adam_config adam_config = ad_adam_defaults(); /* torch's, with a larger rate */
    adam_config.lr = 0.01;
    if (st == AD_OK)
        st = ad_optim_adam(&adam, model, &adam_config);
    ad_tape *tape = NULL;
    if (st == AD_OK)
        st = ad_tape_create(&tape);
    ad_tensor *x = NULL; /* [N, 2], persistent: made once, used by every step */
    if (st == AD_OK)
        st = ad_tensor_create(&x, AD_F32, 2, (int64_t[]){N, 2}, false);
    if (st == AD_OK)
        st = ad_tensor_copy_from_doubles(x, &points[0][0]);

    int code = st == AD_OK ? EXIT_SUCCESS : fail("setting up", st, NULL);
    double acc = 0;
    for (int step = 1; step <= STEPS && code == EXIT_SUCCESS; step++) {
        ad_tape_reset(tape);
        ad_tensor *logits = ad_nn_forward(model, tape, x);
        ad_tensor *loss = ad_cross_entropy(logits, N, label);
        ad_optim_zero_grad(adam);
        if ((st = ad_backward(loss, NULL)) != AD_OK) {
            code = fail("training", st, tape);
            break;
        }
        ad_optim_step(adam);
        acc = accuracy(logits, label, N); /* of the weights before this step */
        if (step == 1 || step % 200 == 0)
            printf("step %4d  loss %.4f  accuracy %5.1f%%\n", step, ad_value(loss), 100 * acc);
    }
    if (code == EXIT_SUCCESS) {
        draw_regions(model, tape);
        printf("training accuracy %.1f%% (target %.0f%%)\n", 100 * acc, 100 * TARGET);
        if (!(acc >= TARGET))
            code = EXIT_FAILURE;
    }
    ad_tape_free(tape);
    ad_tensor_free(x);
    ad_optim_free(adam);
    ad_nn_free(model);
    return code;
}
