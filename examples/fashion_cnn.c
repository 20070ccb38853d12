/*
 * A small convolutional network on Fashion-MNIST, trained with Adam and a
 * cosine-decayed learning rate on minibatches of 128:
 *
 *     x [B, 1, 28, 28]
 *     conv 3x3, 1 -> 16, pad 1, ReLU, max-pool 2   -> [B, 16, 14, 14]
 *     conv 3x3, 16 -> 32, pad 1, ReLU, max-pool 2  -> [B, 32, 7, 7]
 *     flatten, linear 1568 -> 128, ReLU            -> [B, 128]
 *     linear 128 -> 10                             -> logits [B, 10]
 *
 *     ./build/examples/fashion_cnn                 # the defaults: about 91% test accuracy
 *     ./build/examples/fashion_cnn --help          # the options
 *
 * The data come from the Debian package dataset-fashion-mnist (or --data DIR).
 * Everything but the model is in train_common.c: options, data, the training
 * loop, evaluation, progress, CSV log and checkpoint.
 */
#include "train_common.h"

#include <stdio.h>

static const train_example example = {
    .name = "fashion_cnn",
    .summary = "CNN conv16-pool-conv32-pool-128-10 (ReLU) on Fashion-MNIST",
    .item_ndim = 3,
    .item_shape = {1, 28, 28},
    .input_mean = TRAIN_FASHION_MEAN,
    .input_std = TRAIN_FASHION_STD,
    .defaults =
        {
            .epochs = 6,
            .batch_size = 128,
            .lr = 0.002,
            .optimizer = TRAIN_ADAM,
            .momentum = 0.9,
            .schedule = TRAIN_LR_COSINE,
            .seed = 1,
            .log_every = 50,
            .data_dir = TRAIN_DEFAULT_DATA_DIR,
        },
};

#define LAYERS 10

static ad_status build_model(ad_module **model, ad_rng *rng)
{
    ad_module *layers[LAYERS] = {0};
    ad_status st;
    if ((st = ad_nn_conv2d(&layers[0], 1, 16, 3, 1, 1, AD_F32, rng)) == AD_OK &&
        (st = ad_nn_activation(&layers[1], AD_ACT_RELU)) == AD_OK &&
        (st = ad_nn_maxpool2d(&layers[2], 2, 2, 0)) == AD_OK &&
        (st = ad_nn_conv2d(&layers[3], 16, 32, 3, 1, 1, AD_F32, rng)) == AD_OK &&
        (st = ad_nn_activation(&layers[4], AD_ACT_RELU)) == AD_OK &&
        (st = ad_nn_maxpool2d(&layers[5], 2, 2, 0)) == AD_OK &&
        (st = ad_nn_flatten(&layers[6])) == AD_OK &&
        (st = ad_nn_linear(&layers[7], 32 * 7 * 7, 128, true, AD_F32, rng)) == AD_OK &&
        (st = ad_nn_activation(&layers[8], AD_ACT_RELU)) == AD_OK)
        st = ad_nn_linear(&layers[9], 128, 10, true, AD_F32, rng);
    /* sequential takes the layers, and frees them all if anything failed */
    ad_status seq = ad_nn_sequential(model, LAYERS, layers);
    return st != AD_OK ? st : seq;
}

int main(int argc, char **argv)
{
    return train_main(&example, build_model, argc, argv);
}
