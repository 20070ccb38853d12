/*
 * One MLP training step with libautodiff, the way a user writes it
 * (layers.h): ad_nn_sequential of Linear and ReLU, ad_cross_entropy, SGD.
 * Shapes and timing: bench/mlp_common.h.
 *
 * Usage: mlp_train [--threads N] [--warmup W] [--steps S] [--reps R]
 */
#include "mlp_common.h"

#include "autodiff/layers.h"

typedef struct training {
    ad_module *model;
    ad_optim *opt;
    ad_tape *tape;
    ad_tensor *x; /* [BATCH, IN], persistent */
    int64_t targets[MLP_BATCH];
} training;

static double train_step(void *ctx)
{
    training *t = ctx;
    ad_tape_reset(t->tape);
    ad_tensor *logits = ad_nn_forward(t->model, t->tape, t->x);
    ad_tensor *loss = ad_cross_entropy(logits, MLP_BATCH, t->targets);
    ad_optim_zero_grad(t->opt);
    ad_status st = ad_backward(loss, NULL);
    if (st != AD_OK) {
        fprintf(stderr, "mlp_train: %s: %s\n", ad_status_string(st), ad_tape_message(t->tape));
        exit(1);
    }
    ad_optim_step(t->opt);
    return ad_value(loss);
}

int main(int argc, char **argv)
{
    mlp_options o = mlp_parse(argc, argv);
    ad_set_num_threads(o.threads);

    training t;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *layers[5];
    ad_sgd_config sgd = ad_sgd_defaults(); /* plain SGD, as the hand-written C */
    sgd.lr = MLP_LR;
    if (ad_nn_linear(&layers[0], MLP_IN, MLP_HIDDEN, true, AD_F32, &rng) != AD_OK ||
        ad_nn_activation(&layers[1], AD_ACT_RELU) != AD_OK ||
        ad_nn_linear(&layers[2], MLP_HIDDEN, MLP_HIDDEN, true, AD_F32, &rng) != AD_OK ||
        ad_nn_activation(&layers[3], AD_ACT_RELU) != AD_OK ||
        ad_nn_linear(&layers[4], MLP_HIDDEN, MLP_CLASSES, true, AD_F32, &rng) != AD_OK ||
        ad_nn_sequential(&t.model, 5, layers) != AD_OK ||
        ad_optim_sgd(&t.opt, t.model, &sgd) != AD_OK || ad_tape_create(&t.tape) != AD_OK ||
        ad_tensor_create(&t.x, AD_F32, 2, (int64_t[]){MLP_BATCH, MLP_IN}, false) != AD_OK) {
        fprintf(stderr, "mlp_train: setup failed\n");
        return 1;
    }
    uint64_t seed = 2;
    float *x = ad_tensor_data(t.x);
    for (size_t i = 0; i < (size_t)MLP_BATCH * MLP_IN; i++)
        x[i] = (float)mlp_uniform(&seed);
    for (int i = 0; i < MLP_BATCH; i++)
        t.targets[i] = (int64_t)(mlp_uniform(&seed) * MLP_CLASSES);

    mlp_time("mlp_ours", &o, train_step, &t);

    ad_tape_free(t.tape);
    ad_optim_free(t.opt);
    ad_nn_free(t.model);
    ad_tensor_free(t.x);
    return 0;
}
