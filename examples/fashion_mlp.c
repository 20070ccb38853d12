/*
 * A multilayer perceptron on Fashion-MNIST: 784-256-256-10 with ReLU, trained
 * with Adam and a cosine-decayed learning rate on minibatches of 128.
 *
 *     ./build/examples/fashion_mlp                 # the defaults: about 90% test accuracy
 *     ./build/examples/fashion_mlp --help          # the options
 *
 * The data come from the Debian package dataset-fashion-mnist (or --data DIR).
 * Everything but the model is in train_common.c: options, data, the training
 * loop, evaluation, progress, CSV log and checkpoint.
 */
#include "train_common.h"

#include <stdio.h>

static const train_example example = {
    .name = "fashion_mlp",
    .summary = "MLP 784-256-256-10 (ReLU) on Fashion-MNIST",
    .item_ndim = 1,
    .item_shape = {784},
    .input_mean = TRAIN_FASHION_MEAN,
    .input_std = TRAIN_FASHION_STD,
    .defaults =
        {
            .epochs = 20,
            .batch_size = 128,
            .optimizer = TRAIN_ADAM,
            .momentum = 0.9,
            .schedule = TRAIN_LR_COSINE,
            .seed = 1,
            .log_every = 100,
            .data_dir = TRAIN_DEFAULT_DATA_DIR,
        },
};

/* x [B, 784] -> logits [B, 10] */
static ad_status build_model(ad_module **model, ad_rng *rng)
{
    ad_module *layers[5] = {0};
    ad_status st;
    if ((st = ad_nn_linear(&layers[0], 784, 256, true, AD_F32, rng)) == AD_OK &&
        (st = ad_nn_activation(&layers[1], AD_ACT_RELU)) == AD_OK &&
        (st = ad_nn_linear(&layers[2], 256, 256, true, AD_F32, rng)) == AD_OK &&
        (st = ad_nn_activation(&layers[3], AD_ACT_RELU)) == AD_OK)
        st = ad_nn_linear(&layers[4], 256, 10, true, AD_F32, rng);
    /* sequential takes the layers, and frees them all if anything failed */
    ad_status seq = ad_nn_sequential(model, 5, layers);
    return st != AD_OK ? st : seq;
}

int main(int argc, char **argv)
{
    return train_main(&example, build_model, argc, argv);
}
