/* Layers, losses and optimizers: every layer and loss gradchecked to first and
 * second order in its input and its parameters, forward values against
 * PyTorch 1.13, optimizer steps against torch.optim, a small network that
 * learns, bit-exact seeded runs and checkpoints, and errors that name the
 * layer instead of aborting.
 *
 * Reference numbers were computed once with PyTorch 1.13 in float64
 * (torch.set_default_dtype(torch.float64)); each block gives its snippet. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autodiff/layers.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ==== Helpers ================================================================== */

/* The i-th parameter of m (in ad_nn_params order). */
static ad_tensor *param_at(const ad_module *m, size_t i)
{
    ad_nn_param p[16];
    size_t n = ad_nn_params(m, p, COUNT(p));
    assert_true(i < n && n <= COUNT(p));
    return p[i].tensor;
}

static void set_param(ad_module *m, size_t i, const double *values)
{
    assert_int_equal(ad_tensor_copy_from_doubles(param_at(m, i), values), AD_OK);
}

/* A byte copy of every parameter of m, to see that a failed load changed nothing. */
typedef struct snapshot {
    size_t n;
    size_t bytes[16];
    unsigned char *data[16];
} snapshot;

static void snapshot_take(snapshot *s, const ad_module *m)
{
    ad_nn_param p[16];
    s->n = ad_nn_params(m, p, COUNT(p));
    assert_true(s->n <= COUNT(p));
    for (size_t i = 0; i < s->n; i++) {
        s->bytes[i] =
            (size_t)ad_tensor_numel(p[i].tensor) * ad_dtype_size(ad_tensor_dtype(p[i].tensor));
        s->data[i] = malloc(s->bytes[i] + 1);
        assert_non_null(s->data[i]);
        memcpy(s->data[i], ad_tensor_data(p[i].tensor), s->bytes[i]);
    }
}

/* True if m's parameters hold exactly the snapshot's bytes. */
static bool snapshot_equal(const snapshot *s, const ad_module *m)
{
    ad_nn_param p[16];
    if (ad_nn_params(m, p, COUNT(p)) != s->n)
        return false;
    for (size_t i = 0; i < s->n; i++) {
        size_t bytes =
            (size_t)ad_tensor_numel(p[i].tensor) * ad_dtype_size(ad_tensor_dtype(p[i].tensor));
        if (bytes != s->bytes[i] || memcmp(s->data[i], ad_tensor_data(p[i].tensor), bytes))
            return false;
    }
    return true;
}

static void snapshot_free(snapshot *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->data[i]);
    s->n = 0;
}

/* Bit-exact equality of every parameter of two models of one architecture. */
static bool params_identical(const ad_module *a, const ad_module *b)
{
    snapshot s;
    snapshot_take(&s, a);
    bool same = snapshot_equal(&s, b);
    snapshot_free(&s);
    return same;
}

static ad_module *make_linear(int64_t in, int64_t out, bool bias, ad_dtype dtype, ad_rng *rng)
{
    ad_module *m = NULL;
    assert_int_equal(ad_nn_linear(&m, in, out, bias, dtype, rng), AD_OK);
    return m;
}

static ad_module *make_activation(ad_activation kind)
{
    ad_module *m = NULL;
    assert_int_equal(ad_nn_activation(&m, kind), AD_OK);
    return m;
}

/* Linear(3, 4) -> ReLU -> Linear(4, 2): parameters 0.weight 0.bias 2.weight 2.bias. */
static ad_module *make_mlp(ad_dtype dtype, uint64_t seed)
{
    ad_rng rng;
    ad_rng_seed(&rng, seed);
    ad_module *layers[3] = {make_linear(3, 4, true, dtype, &rng), make_activation(AD_ACT_RELU),
                            make_linear(4, 2, true, dtype, &rng)};
    ad_module *model = NULL;
    assert_int_equal(ad_nn_sequential(&model, 3, layers), AD_OK);
    return model;
}

/* ==== Gradient checks ============================================================ */

/* The module's forward with its parameters taken from the checked inputs:
 * inputs[0] is x, inputs[1..] the parameters in ad_nn_params order. */
static ad_tensor *module_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_nn_forward_with(ctx, tape, in[0], n - 1, in + 1);
}

/* Checks module m (float64) at input x and random parameter values, in x and
 * in every parameter. */
static void check_module_at(const char *what, ad_module *m, ad_tape *tape, ad_tensor *x,
                            uint64_t seed)
{
    ad_tensor *inputs[17] = {x};
    ad_nn_param p[16];
    size_t n = ad_nn_params(m, p, COUNT(p));
    assert_true(n <= COUNT(p));
    for (size_t i = 0; i < n; i++)
        inputs[1 + i] = test_random(tape, &seed, ad_tensor_ndim(p[i].tensor),
                                    ad_tensor_shape(p[i].tensor), -1, 1);
    check_gradients(what, module_function, m, n + 1, inputs, seed);
}

/* As check_module_at, with x uniform in [-1, 1) of the given shape; frees m. */
static void check_module(const char *what, ad_module *m, int ndim, const int64_t *shape)
{
    ad_tape *tape = test_tape();
    uint64_t seed = 0x5eed0000u + (uint64_t)strlen(what) * 977u + (uint64_t)what[0];
    ad_tensor *x = test_random(tape, &seed, ndim, shape, -1, 1);
    check_module_at(what, m, tape, x, seed);
    ad_tape_free(tape);
    ad_nn_free(m);
}

static void test_linear_gradients_in_input_weight_and_bias(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    check_module("linear 3->2 with bias", make_linear(3, 2, true, AD_F64, &rng), 2,
                 (int64_t[]){4, 3});
    check_module("linear 3->2 without bias", make_linear(3, 2, false, AD_F64, &rng), 2,
                 (int64_t[]){4, 3});
    check_module("linear on a 3-d input", make_linear(3, 2, true, AD_F64, &rng), 3,
                 (int64_t[]){2, 2, 3});
    check_module("linear on a 1-d input", make_linear(3, 2, true, AD_F64, &rng), 1, (int64_t[]){3});
}

static void test_conv2d_gradients_for_strides_and_paddings(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 2);
    static const struct {
        int kernel, stride, padding;
    } configs[] = {{3, 1, 0}, {3, 2, 1}, {3, 1, 1}, {3, 2, 0}, {2, 2, 1}, {1, 1, 0}};
    for (size_t i = 0; i < COUNT(configs); i++) {
        char what[96];
        snprintf(what, sizeof what, "conv2d 2->3 kernel %d stride %d padding %d", configs[i].kernel,
                 configs[i].stride, configs[i].padding);
        ad_module *m = NULL;
        assert_int_equal(ad_nn_conv2d(&m, 2, 3, configs[i].kernel, configs[i].stride,
                                      configs[i].padding, AD_F64, &rng),
                         AD_OK);
        /* Non-square, with a batch of 2. */
        check_module(what, m, 4, (int64_t[]){2, 2, 5, 4});
    }
}

/* x [2, 2, 5, 5] holding distinct values 0.02 apart: no ties in any window,
 * and finite differences never change an argmax. */
static ad_tensor *distinct_image(ad_tape *tape)
{
    double v[100];
    for (int i = 0; i < 100; i++)
        v[i] = ((i * 37) % 100) * 0.02 - 1.0;
    return ad_tape_tensor_from_doubles(tape, AD_F64, 4, (int64_t[]){2, 2, 5, 5}, v);
}

static void test_maxpool2d_gradients_with_padding_and_overlapping_windows(void **state)
{
    (void)state;
    static const struct {
        int kernel, stride, padding;
    } configs[] = {{2, 2, 0}, {3, 2, 1}, {2, 1, 1}, {3, 1, 0}, {3, 3, 1}};
    for (size_t i = 0; i < COUNT(configs); i++) {
        char what[96];
        snprintf(what, sizeof what, "maxpool2d kernel %d stride %d padding %d", configs[i].kernel,
                 configs[i].stride, configs[i].padding);
        ad_module *m = NULL;
        assert_int_equal(
            ad_nn_maxpool2d(&m, configs[i].kernel, configs[i].stride, configs[i].padding), AD_OK);
        ad_tape *tape = test_tape();
        check_module_at(what, m, tape, distinct_image(tape), 11 + i);
        ad_tape_free(tape);
        ad_nn_free(m);
    }
}

static void test_flatten_gradients(void **state)
{
    (void)state;
    ad_module *m = NULL;
    assert_int_equal(ad_nn_flatten(&m), AD_OK);
    check_module("flatten", m, 3, (int64_t[]){2, 3, 2});
}

static void test_every_activation_gradients(void **state)
{
    (void)state;
    static const char *names[] = {"relu", "tanh", "sigmoid", "gelu", "softplus", "leaky_relu"};
    for (int kind = AD_ACT_RELU; kind <= AD_ACT_LEAKY_RELU; kind++) {
        char what[64];
        snprintf(what, sizeof what, "activation %s", names[kind]);
        check_module(what, make_activation((ad_activation)kind), 2, (int64_t[]){3, 4});
    }
}

static void test_layer_norm_gradients_in_input_gamma_and_beta(void **state)
{
    (void)state;
    ad_module *m = NULL;
    assert_int_equal(ad_nn_layer_norm(&m, 4, 1e-5, AD_F64), AD_OK);
    check_module("layer_norm over 4", m, 2, (int64_t[]){3, 4});
    assert_int_equal(ad_nn_layer_norm(&m, 3, AD_NORM_EPS, AD_F64), AD_OK);
    check_module("layer_norm over 3 of a 3-d input", m, 3, (int64_t[]){2, 2, 3});
}

/* Dropout in training mode with a fixed seed: a fresh module per evaluation,
 * so every evaluation draws the same mask. */
static ad_tensor *dropout_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    ad_module *d = NULL;
    if (ad_nn_dropout(&d, 0.4, 77) != AD_OK)
        return NULL;
    ad_tensor *y = ad_nn_forward(d, tape, in[0]);
    ad_nn_free(d);
    return y;
}

static ad_tensor *dropout_eval_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    ad_nn_set_training(ctx, false);
    /* Identity in eval mode: a product keeps the check from being trivial. */
    return ad_mul(ad_nn_forward(ctx, tape, in[0]), in[0]);
}

static void test_dropout_gradients_in_train_and_eval_mode(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    uint64_t seed = 21;
    ad_tensor *x = test_random(tape, &seed, 2, (int64_t[]){4, 5}, -1, 1);
    check_gradients("dropout train p=0.4", dropout_function, NULL, 1, &x, seed);
    ad_module *d = NULL;
    assert_int_equal(ad_nn_dropout(&d, 0.4, 77), AD_OK);
    check_gradients("dropout eval", dropout_eval_function, d, 1, &x, seed);
    ad_nn_free(d);
    ad_tape_free(tape);
}

typedef struct lookup_case {
    ad_module *m;
    size_t n;
    const int64_t *indices;
} lookup_case;

static ad_tensor *embedding_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    const lookup_case *c = ctx;
    return ad_nn_embedding_lookup_with(c->m, tape, c->n, c->indices, in[0]);
}

static void test_embedding_gradients_accumulate_repeated_rows(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 5);
    ad_module *m = NULL;
    assert_int_equal(ad_nn_embedding(&m, 5, 3, AD_F64, &rng), AD_OK);
    static const int64_t indices[] = {2, 0, 2, 4, 2};
    lookup_case c = {m, COUNT(indices), indices};
    ad_tape *tape = test_tape();
    uint64_t seed = 9;
    ad_tensor *table = test_random(tape, &seed, 2, (int64_t[]){5, 3}, -1, 1);
    check_gradients("embedding lookup", embedding_function, &c, 1, &table, seed);

    /* The module's own table: row 2 is used three times, row 1 and 3 never. */
    ad_tape_reset(tape);
    ad_tensor *y = ad_nn_embedding_lookup(m, tape, COUNT(indices), indices);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    const double expected[15] = {1, 1, 1, 0, 0, 0, 3, 3, 3, 0, 0, 0, 1, 1, 1};
    assert_values(ad_tensor_grad(param_at(m, 0)), COUNT(expected), expected, 0, 1e-15);
    ad_tape_free(tape);
    ad_nn_free(m);
}

static void test_sequential_gradients_in_input_and_all_parameters(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 6);
    ad_module *layers[3] = {make_linear(3, 4, true, AD_F64, &rng), make_activation(AD_ACT_TANH),
                            make_linear(4, 2, true, AD_F64, &rng)};
    ad_module *mlp = NULL;
    assert_int_equal(ad_nn_sequential(&mlp, 3, layers), AD_OK);
    assert_int_equal(ad_nn_param_count(mlp), 4);
    check_module("sequential mlp", mlp, 2, (int64_t[]){3, 3});

    /* A small CNN: conv (padding 1) -> tanh -> maxpool -> flatten -> linear -> layer norm. */
    ad_module *conv = NULL, *pool = NULL, *flat = NULL, *norm = NULL;
    assert_int_equal(ad_nn_conv2d(&conv, 1, 2, 3, 1, 1, AD_F64, &rng), AD_OK);
    assert_int_equal(ad_nn_maxpool2d(&pool, 2, 2, 0), AD_OK);
    assert_int_equal(ad_nn_flatten(&flat), AD_OK);
    assert_int_equal(ad_nn_layer_norm(&norm, 3, AD_NORM_EPS, AD_F64), AD_OK);
    ad_module *cnn_layers[6] = {conv, make_activation(AD_ACT_TANH),          pool,
                                flat, make_linear(8, 3, true, AD_F64, &rng), norm};
    ad_module *cnn = NULL;
    assert_int_equal(ad_nn_sequential(&cnn, 6, cnn_layers), AD_OK);
    assert_int_equal(ad_nn_param_count(cnn), 6);
    check_module("sequential cnn", cnn, 4, (int64_t[]){2, 1, 4, 4});
}

/* forward_with the module's own parameters is the module's forward, bit for bit. */
static void test_forward_with_own_parameters_equals_forward(void **state)
{
    (void)state;
    ad_module *m = make_mlp(AD_F64, 3);
    ad_tape *tape = test_tape();
    uint64_t seed = 4;
    ad_tensor *x = test_random(tape, &seed, 2, (int64_t[]){5, 3}, -1, 1);
    ad_nn_param p[4];
    assert_int_equal(ad_nn_params(m, p, 4), 4);
    ad_tensor *own[4] = {p[0].tensor, p[1].tensor, p[2].tensor, p[3].tensor};
    ad_tensor *a = ad_nn_forward(m, tape, x);
    ad_tensor *b = ad_nn_forward_with(m, tape, x, 4, own);
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(ad_tensor_data(a), ad_tensor_data(b), 10 * sizeof(double));
    ad_tape_free(tape);
    ad_nn_free(m);
}

/* ---- Losses ----------------------------------------------------------------------- */

typedef struct loss_case {
    ad_reduction reduction;
    double smoothing;
} loss_case;

static const int64_t ce_targets[4] = {1, 2, 0, 0};

static ad_tensor *mse_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_nn_mse_loss(in[0], in[1], ((const loss_case *)ctx)->reduction);
}

static ad_tensor *cross_entropy_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    const loss_case *c = ctx;
    return ad_nn_cross_entropy(in[0], 4, ce_targets, c->smoothing, c->reduction);
}

static ad_tensor *bce_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n;
    return ad_nn_binary_cross_entropy_with_logits(in[0], in[1],
                                                  ((const loss_case *)ctx)->reduction);
}

static void test_loss_gradients_for_both_reductions(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    uint64_t seed = 31;
    for (int r = 0; r < 2; r++) {
        ad_reduction red = r ? AD_REDUCE_SUM : AD_REDUCE_MEAN;
        const char *rname = r ? "sum" : "mean";
        char what[96];
        loss_case c = {red, 0};

        ad_tensor *ab[2] = {test_random(tape, &seed, 2, (int64_t[]){3, 2}, -2, 2),
                            test_random(tape, &seed, 2, (int64_t[]){3, 2}, -2, 2)};
        snprintf(what, sizeof what, "mse_loss %s", rname);
        check_gradients(what, mse_function, &c, 2, ab, seed);
        /* Broadcast target: [3, 2] against [2]. */
        ad_tensor *ab_broadcast[2] = {ab[0], test_random(tape, &seed, 1, (int64_t[]){2}, -2, 2)};
        snprintf(what, sizeof what, "mse_loss %s broadcast", rname);
        check_gradients(what, mse_function, &c, 2, ab_broadcast, seed);

        ad_tensor *logits = test_random(tape, &seed, 2, (int64_t[]){4, 3}, -3, 3);
        for (int s = 0; s < 2; s++) {
            c.smoothing = s ? 0.1 : 0;
            snprintf(what, sizeof what, "cross_entropy %s smoothing %g", rname, c.smoothing);
            check_gradients(what, cross_entropy_function, &c, 1, &logits, seed);
        }

        ad_tensor *bce[2] = {test_random(tape, &seed, 2, (int64_t[]){3, 2}, -3, 3),
                             test_random(tape, &seed, 2, (int64_t[]){3, 2}, 0, 1)};
        snprintf(what, sizeof what, "bce_with_logits %s", rname);
        check_gradients(what, bce_function, &c, 2, bce, seed);
    }
    ad_tape_free(tape);
}

/* ==== Forward values against PyTorch ================================================ */

/*
 * x = torch.tensor([(i % 7) * 0.25 - 0.75 for i in range(80)]).reshape(2,2,4,5)
 * w = torch.tensor([((i * 5) % 11) * 0.1 - 0.5 for i in range(54)]).reshape(3,2,3,3)
 * b = torch.tensor([0.1, -0.2, 0.3])
 * F.conv2d(x, w, b, stride=1, padding=0); F.conv2d(x, w, b, stride=2, padding=1)
 */
static const double conv_s1_p0[36] = {0.79999999999999993,
                                      1.075,
                                      0.12499999999999994,
                                      -1.325,
                                      -0.34999999999999987,
                                      0.79999999999999993,
                                      -0.17499999999999988,
                                      0.77499999999999969,
                                      0.49999999999999994,
                                      -0.14999999999999994,
                                      -0.074999999999999845,
                                      -0.17499999999999988,
                                      -0.35000000000000003,
                                      -0.37499999999999983,
                                      0.29999999999999993,
                                      1.2749999999999999,
                                      0.72500000000000009,
                                      -0.35000000000000003,
                                      -1.325,
                                      -0.34999999999999987,
                                      0.79999999999999993,
                                      0.22500000000000001,
                                      0.14999999999999997,
                                      -1.325,
                                      -0.14999999999999994,
                                      -0.074999999999999845,
                                      -0.17499999999999988,
                                      -0.65000000000000013,
                                      -1.6249999999999998,
                                      -0.14999999999999994,
                                      1.2749999999999999,
                                      0.72500000000000009,
                                      -0.35000000000000003,
                                      0.099999999999999784,
                                      0.42499999999999993,
                                      1.2749999999999999};
static const double conv_s2_p1[36] = {
    0.44999999999999996,  2.7755575615628914e-17, -0.075000000000000039, 0.17499999999999991,
    -0.34999999999999987, 0.47499999999999998,    0.29999999999999988,   -0.47500000000000014,
    -0.22500000000000003, -0.67500000000000004,   -0.074999999999999845, 0.22499999999999981,
    -0.42499999999999988, 0.12499999999999992,    0.42499999999999993,   0.64999999999999991,
    0.72500000000000009,  0.50000000000000011,    0.32500000000000007,   0.45000000000000007,
    0.30000000000000004,  -0.52500000000000002,   0.14999999999999997,   -0.32499999999999996,
    -0.39999999999999997, 0.60000000000000009,    0.12499999999999994,   0.12499999999999994,
    -1.6249999999999998,  -0.64999999999999991,   0.22500000000000006,   -0.099999999999999922,
    -0.35000000000000014, 0.47499999999999987,    0.42499999999999993,   0.375};

static void test_conv2d_forward_matches_pytorch(void **state)
{
    (void)state;
    double x[80], w[54];
    for (int i = 0; i < 80; i++)
        x[i] = (i % 7) * 0.25 - 0.75;
    for (int i = 0; i < 54; i++)
        w[i] = ((i * 5) % 11) * 0.1 - 0.5;
    const double b[3] = {0.1, -0.2, 0.3};
    ad_rng rng;
    ad_rng_seed(&rng, 0);
    ad_tape *tape = test_tape();
    ad_tensor *xt = ad_tape_tensor_from_doubles(tape, AD_F64, 4, (int64_t[]){2, 2, 4, 5}, x);
    for (int config = 0; config < 2; config++) {
        ad_module *m = NULL;
        int stride = config ? 2 : 1, padding = config ? 1 : 0;
        assert_int_equal(ad_nn_conv2d(&m, 2, 3, 3, stride, padding, AD_F64, &rng), AD_OK);
        set_param(m, 0, w);
        set_param(m, 1, b);
        ad_tensor *y = ad_nn_forward(m, tape, xt);
        /* Both give 2 x 3: (4 - 3) / 1 + 1 and (4 + 2 - 3) / 2 + 1 rows. */
        assert_shape(y, 4, (int64_t[]){2, 3, 2, 3});
        if (config)
            assert_values(y, COUNT(conv_s2_p1), conv_s2_p1, 1e-12, 1e-15);
        else
            assert_values(y, COUNT(conv_s1_p0), conv_s1_p0, 1e-12, 1e-15);
        /* Twice on the same module (the cached index map is reused). */
        ad_tensor *again = ad_nn_forward(m, tape, xt);
        assert_memory_equal(ad_tensor_data(y), ad_tensor_data(again), 36 * sizeof(double));
        ad_nn_free(m);
    }
    ad_tape_free(tape);
}

/*
 * x = torch.tensor([((i * 7) % 25) * 0.1 - 1.2 for i in range(25)]).reshape(1,1,5,5)
 * y = F.max_pool2d(x.requires_grad_(), 3, stride=2, padding=1); y.sum().backward()
 * F.max_pool2d(x, 2, stride=1, padding=1)
 */
static const double pool_k3_s2_p1[9] = {
    0.50000000000000022, 1.2000000000000004, 0.90000000000000013,
    0.80000000000000004, 1.2000000000000004, 1.1000000000000003,
    1.0000000000000002,  1.0000000000000002, 0.60000000000000009};
/* Windows that share an argmax accumulate (the 2s). */
static const double pool_k3_s2_p1_grad[25] = {0, 0, 0, 1, 0, 0, 1, 2, 0, 0, 1, 0, 0,
                                              0, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 1};
static const double pool_k2_s1_p1[36] = {-1.2,
                                         -0.49999999999999989,
                                         0.20000000000000018,
                                         0.90000000000000013,
                                         0.90000000000000013,
                                         -0.89999999999999991,
                                         -0.19999999999999996,
                                         0.50000000000000022,
                                         1.2000000000000004,
                                         1.2000000000000004,
                                         0.90000000000000013,
                                         0.10000000000000009,
                                         0.80000000000000004,
                                         0.80000000000000004,
                                         1.2000000000000004,
                                         1.2000000000000004,
                                         1.1000000000000003,
                                         1.1000000000000003,
                                         0.80000000000000004,
                                         0.80000000000000004,
                                         0.70000000000000018,
                                         0.70000000000000018,
                                         1.1000000000000003,
                                         1.1000000000000003,
                                         0.30000000000000004,
                                         1.0000000000000002,
                                         1.0000000000000002,
                                         0.70000000000000018,
                                         0.60000000000000009,
                                         0.60000000000000009,
                                         0.30000000000000004,
                                         1.0000000000000002,
                                         1.0000000000000002,
                                         -0.099999999999999867,
                                         0.60000000000000009,
                                         0.60000000000000009};

static void test_maxpool2d_forward_and_gradient_match_pytorch(void **state)
{
    (void)state;
    double x[25];
    for (int i = 0; i < 25; i++)
        x[i] = ((i * 7) % 25) * 0.1 - 1.2;
    ad_tape *tape = test_tape();
    ad_tensor *xt =
        ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 4, (int64_t[]){1, 1, 5, 5}, x));
    ad_module *m = NULL;
    assert_int_equal(ad_nn_maxpool2d(&m, 3, 2, 1), AD_OK);
    ad_tensor *y = ad_nn_forward(m, tape, xt);
    assert_shape(y, 4, (int64_t[]){1, 1, 3, 3});
    assert_values(y, COUNT(pool_k3_s2_p1), pool_k3_s2_p1, 0, 1e-15);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    assert_values(ad_tensor_grad(xt), COUNT(pool_k3_s2_p1_grad), pool_k3_s2_p1_grad, 0, 1e-15);
    ad_nn_free(m);

    assert_int_equal(ad_nn_maxpool2d(&m, 2, 1, 1), AD_OK);
    y = ad_nn_forward(m, tape, xt);
    assert_shape(y, 4, (int64_t[]){1, 1, 6, 6});
    assert_values(y, COUNT(pool_k2_s1_p1), pool_k2_s1_p1, 0, 1e-15);
    ad_nn_free(m);
    ad_tape_free(tape);
}

/* A tie inside a window sends the whole gradient to the first maximal element. */
static void test_maxpool2d_tie_goes_to_the_first_maximum(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    const double x[8] = {1, 3, 3, 0, 2, 2, 2, 2};
    ad_tensor *xt =
        ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 4, (int64_t[]){1, 2, 2, 2}, x));
    ad_module *m = NULL;
    assert_int_equal(ad_nn_maxpool2d(&m, 2, 2, 0), AD_OK);
    ad_tensor *y = ad_nn_forward(m, tape, xt);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    const double values[2] = {3, 2}, grad[8] = {0, 1, 0, 0, 1, 0, 0, 0};
    assert_values(y, COUNT(values), values, 0, 1e-15);
    assert_values(ad_tensor_grad(xt), COUNT(grad), grad, 0, 1e-15);
    ad_nn_free(m);
    ad_tape_free(tape);
}

/* The unrolled 2x2 / stride 2 path and the general path (2x2 / stride 1)
 * must follow one rule: on many ties and NaNs, compare both with a
 * brute-force argmax (first maximum, first NaN), in float32 and float64. */
static void brute_force_pool(const double *x, int64_t h, int64_t w, int k, int st, double *y,
                             int64_t *arg)
{
    int64_t ho = (h - k) / st + 1, wo = (w - k) / st + 1;
    for (int64_t oh = 0; oh < ho; oh++)
        for (int64_t ow = 0; ow < wo; ow++) {
            int64_t best = -1;
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) {
                    int64_t at = (oh * st + i) * w + ow * st + j;
                    if (best < 0 || (!isnan(x[best]) && (isnan(x[at]) || x[at] > x[best])))
                        best = at;
                }
            y[oh * wo + ow] = x[best];
            arg[oh * wo + ow] = best;
        }
}

/* A child given twice would be freed twice: refused, each child freed once
 * (ASan would report a double free). */
static void test_sequential_refuses_the_same_child_twice(void **state)
{
    (void)state;
    ad_module *relu = NULL, *flat = NULL, *seq = (ad_module *)&seq;
    assert_int_equal(ad_nn_activation(&relu, AD_ACT_RELU), AD_OK);
    assert_int_equal(ad_nn_flatten(&flat), AD_OK);
    ad_module *children[3] = {relu, flat, relu};
    assert_int_equal(ad_nn_sequential(&seq, 3, children), AD_ERR_ARG);
    assert_null(seq);
}

static void test_maxpool2d_fast_and_general_paths_agree_on_ties_and_nans(void **state)
{
    (void)state;
    enum { H = 6, W = 8 };
    ad_rng rng;
    ad_rng_seed(&rng, 21);
    double x[H * W];
    for (int i = 0; i < H * W; i++)
        x[i] = ad_rng_below(&rng, 7) == 0 ? NAN : (double)ad_rng_below(&rng, 3);
    const int configs[2][2] = {{2, 2}, {2, 1}}; /* kernel, stride */
    for (int dt = 0; dt < 2; dt++)
        for (int c = 0; c < 2; c++) {
            int k = configs[c][0], st = configs[c][1];
            int64_t ho = (H - k) / st + 1, wo = (W - k) / st + 1;
            double expected[H * W];
            int64_t arg[H * W];
            brute_force_pool(x, H, W, k, st, expected, arg);
            ad_tape *tape = test_tape();
            ad_dtype dtype = dt ? AD_F64 : AD_F32;
            ad_tensor *xt = ad_requires_grad(
                ad_tape_tensor_from_doubles(tape, dtype, 4, (int64_t[]){1, 1, H, W}, x));
            ad_module *m = NULL;
            assert_int_equal(ad_nn_maxpool2d(&m, k, st, 0), AD_OK);
            ad_tensor *y = ad_nn_forward(m, tape, xt);
            assert_non_null(y);
            assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
            double grad[H * W] = {0};
            for (int64_t i = 0; i < ho * wo; i++) {
                double v = ad_tensor_get(y, i);
                if (isnan(expected[i]))
                    assert_true(isnan(v));
                else
                    assert_true(v == expected[i]);
                grad[arg[i]] += 1;
            }
            for (int i = 0; i < H * W; i++)
                assert_true(ad_tensor_get(ad_tensor_grad(xt), i) == grad[i]);
            ad_nn_free(m);
            ad_tape_free(tape);
        }
}

/*
 * x = torch.tensor([[0.5, -1.0, 2.0, 0.25], [3.0, 3.5, -2.0, 0.0]])
 * F.layer_norm(x, (4,), torch.tensor([1.5, 0.5, -1.0, 2.0]),
 *              torch.tensor([0.1, 0.2, 0.3, 0.4]), eps=1e-5)
 */
static void test_layer_norm_forward_matches_pytorch(void **state)
{
    (void)state;
    static const double expected[8] = {
        0.18793117048865043, -0.47413897374632014, -1.165519508144174, 0.048275318045398197,
        1.351932248864198,   0.72859361618710583,  1.6910358320713315, -0.60154579909135852};
    const double x[8] = {0.5, -1.0, 2.0, 0.25, 3.0, 3.5, -2.0, 0.0};
    ad_module *m = NULL;
    assert_int_equal(ad_nn_layer_norm(&m, 4, 1e-5, AD_F64), AD_OK);
    /* Fresh: gamma ones, beta zeros, names as PyTorch's state_dict. */
    ad_nn_param p[2];
    assert_int_equal(ad_nn_params(m, p, 2), 2);
    assert_string_equal(p[0].name, "weight");
    assert_string_equal(p[1].name, "bias");
    const double ones[4] = {1, 1, 1, 1}, zeros[4] = {0, 0, 0, 0};
    assert_values(p[0].tensor, COUNT(ones), ones, 0, 1e-15);
    assert_values(p[1].tensor, COUNT(zeros), zeros, 0, 1e-15);
    set_param(m, 0, (double[]){1.5, 0.5, -1.0, 2.0});
    set_param(m, 1, (double[]){0.1, 0.2, 0.3, 0.4});
    ad_tape *tape = test_tape();
    ad_tensor *y =
        ad_nn_forward(m, tape, ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){2, 4}, x));
    assert_shape(y, 2, (int64_t[]){2, 4});
    assert_values(y, COUNT(expected), expected, 1e-12, 1e-15);
    ad_tape_free(tape);
    ad_nn_free(m);
}

/* nn.LayerNorm(4, eps=0.0).double()([[0.5, -1, 2, 0.25], [1, 1, 1, 1]]): eps 0 is
 * used as 0, so the constant row divides 0 by 0, as in PyTorch; the module is
 * ad_layer_norm with its weight and bias, bit for bit. */
static void test_layer_norm_module_uses_eps_as_given_zero_included(void **state)
{
    (void)state;
    static const double expected[8] = {0.05862103817605491,
                                       -1.3482838780492632,
                                       1.465525954401373,
                                       -0.17586311452816478,
                                       NAN,
                                       NAN,
                                       NAN,
                                       NAN};
    const double x[8] = {0.5, -1.0, 2.0, 0.25, 1.0, 1.0, 1.0, 1.0};
    ad_module *m = NULL;
    assert_int_equal(ad_nn_layer_norm(&m, 4, 0.0, AD_F64), AD_OK);
    ad_tape *tape = test_tape();
    ad_tensor *xs = ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){2, 4}, x);
    ad_tensor *y = ad_nn_forward(m, tape, xs);
    assert_values(y, COUNT(expected), expected, 1e-14, 1e-15);
    ad_nn_param p[2];
    assert_int_equal(ad_nn_params(m, p, 2), 2);
    ad_tensor *f = ad_layer_norm(xs, 1, p[0].tensor, p[1].tensor, 0.0);
    assert_memory_equal(ad_tensor_data(f), ad_tensor_data(y), 4 * sizeof(double));
    ad_tape_free(tape);
    ad_nn_free(m);
    /* eps < 0, NaN or inf is refused, never read as a default */
    assert_int_equal(ad_nn_layer_norm(&m, 4, -1e-5, AD_F64), AD_ERR_ARG);
    assert_int_equal(ad_nn_layer_norm(&m, 4, NAN, AD_F64), AD_ERR_ARG);
    assert_int_equal(ad_nn_layer_norm(&m, 4, INFINITY, AD_F64), AD_ERR_ARG);
    assert_null(m);
}

/*
 * F.linear(torch.tensor([[1.0, -2.0, 0.5], [0.25, 0.75, -1.5]]),
 *          torch.tensor([[0.1, 0.2, 0.3], [-0.4, 0.5, -0.6]]), torch.tensor([0.05, -0.05]))
 */
static void test_linear_forward_matches_pytorch(void **state)
{
    (void)state;
    static const double expected[4] = {-0.10000000000000005, -1.75, -0.22499999999999998, 1.125};
    const double x[6] = {1.0, -2.0, 0.5, 0.25, 0.75, -1.5};
    ad_rng rng;
    ad_rng_seed(&rng, 0);
    ad_module *m = make_linear(3, 2, true, AD_F64, &rng);
    /* PyTorch's init: everything within +-1/sqrt(in). */
    for (size_t i = 0; i < 2; i++)
        for (int64_t e = 0; e < ad_tensor_numel(param_at(m, i)); e++)
            assert_true(fabs(ad_tensor_get(param_at(m, i), e)) <= 1 / sqrt(3.0));
    set_param(m, 0, (double[]){0.1, 0.2, 0.3, -0.4, 0.5, -0.6});
    set_param(m, 1, (double[]){0.05, -0.05});
    ad_tape *tape = test_tape();
    ad_tensor *y =
        ad_nn_forward(m, tape, ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){2, 3}, x));
    assert_shape(y, 2, (int64_t[]){2, 2});
    assert_values(y, COUNT(expected), expected, 1e-12, 1e-15);
    /* A 1-d input is one row: [3] -> [2]. */
    ad_tensor *row =
        ad_nn_forward(m, tape, ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){3}, x + 3));
    assert_shape(row, 1, (int64_t[]){2});
    assert_values(row, 2, (double[]){expected[2], expected[3]}, 1e-12, 1e-15);
    ad_tape_free(tape);
    ad_nn_free(m);
}

/*
 * x = torch.tensor([-3.0, -0.5, 0.0, 0.25, 1.5, 25.0])
 * F.relu(x), torch.tanh(x), torch.sigmoid(x), F.gelu(x, approximate='tanh'),
 * F.softplus(x), F.leaky_relu(x)
 */
static void test_activations_forward_match_pytorch(void **state)
{
    (void)state;
    static const double expected[6][6] = {
        {0, 0, 0, 0.25, 1.5, 25},
        {-0.99505475368673046, -0.46211715726000974, 0, 0.24491866240370913, 0.9051482536448664, 1},
        {0.047425873177566781, 0.37754066879814541, 0.5, 0.56217650088579807, 0.81757447619364365,
         0.999999999986112},
        {-0.0036373920817729943, -0.15428599017485606, 0, 0.149675350701685, 1.3995715769802328,
         25},
        {0.048587351573742062, 0.47407698418010669, 0.69314718055994529, 0.82593941987884356,
         1.7014132779827524, 25},
        {-0.029999999999999999, -0.0050000000000000001, 0, 0.25, 1.5, 25},
    };
    const double x[6] = {-3.0, -0.5, 0.0, 0.25, 1.5, 25.0};
    ad_tape *tape = test_tape();
    ad_tensor *xt = ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){6}, x);
    for (int kind = AD_ACT_RELU; kind <= AD_ACT_LEAKY_RELU; kind++) {
        ad_module *m = make_activation((ad_activation)kind);
        ad_tensor *y = ad_nn_forward(m, tape, xt);
        assert_non_null(y);
        for (int i = 0; i < 6; i++)
            assert_close(expected[kind][i], ad_tensor_get(y, i), 1e-14, 1e-16);
        ad_nn_free(m);
    }
    ad_tape_free(tape);
}

/*
 * logits = torch.tensor([[1.0, 2.0, -0.5], [0.3, -1.2, 2.2], [-0.7, 0.1, 0.4], [2.5, 0.0, -1.0]])
 * F.cross_entropy(logits, torch.tensor([1, 2, 0, 0]), label_smoothing=ls, reduction=red)
 * x = torch.tensor([[0.8, -1.5], [3.0, -0.2], [0.0, 30.0]])
 * t = torch.tensor([[1.0, 0.0], [0.25, 1.0], [0.5, 0.0]])
 * F.binary_cross_entropy_with_logits(x, t, reduction=red); F.mse_loss(x, t, reduction=red)
 */
static void test_losses_match_pytorch(void **state)
{
    (void)state;
    const double logits[12] = {1.0, 2.0, -0.5, 0.3, -1.2, 2.2, -0.7, 0.1, 0.4, 2.5, 0.0, -1.0};
    const double x[6] = {0.8, -1.5, 3.0, -0.2, 0.0, 30.0};
    const double t[6] = {1.0, 0.0, 0.25, 1.0, 0.5, 0.0};
    ad_tape *tape = test_tape();
    ad_tensor *lt = ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){4, 3}, logits);
    ad_tensor *xt = ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){3, 2}, x);
    ad_tensor *tt = ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){3, 2}, t);

    ad_tensor *ce[4] = {ad_nn_cross_entropy(lt, 4, ce_targets, 0, AD_REDUCE_MEAN),
                        ad_nn_cross_entropy(lt, 4, ce_targets, 0, AD_REDUCE_SUM),
                        ad_nn_cross_entropy(lt, 4, ce_targets, 0.1, AD_REDUCE_MEAN),
                        ad_nn_cross_entropy(lt, 4, ce_targets, 0.1, AD_REDUCE_SUM)};
    const double ce_expected[4] = {0.61882172297846261, 2.4752868919138504, 0.72632172297846265,
                                   2.9052868919138506};
    for (int i = 0; i < 4; i++) {
        assert_non_null(ce[i]);
        assert_int_equal(ad_tensor_ndim(ce[i]), 0);
        assert_close(ce_expected[i], ad_value(ce[i]), 1e-14, 0);
    }
    assert_close(5.727064557574316,
                 ad_value(ad_nn_binary_cross_entropy_with_logits(xt, tt, AD_REDUCE_MEAN)), 1e-12,
                 0);
    assert_close(34.362387345445896,
                 ad_value(ad_nn_binary_cross_entropy_with_logits(xt, tt, AD_REDUCE_SUM)), 1e-12, 0);
    assert_close(151.92375000000001, ad_value(ad_nn_mse_loss(xt, tt, AD_REDUCE_MEAN)), 1e-14, 0);
    assert_close(911.54250000000002, ad_value(ad_nn_mse_loss(xt, tt, AD_REDUCE_SUM)), 1e-14, 0);

    /* bce stays finite for logits far beyond exp's range. */
    ad_tensor *huge =
        ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){2}, (double[]){1000.0, -1000.0});
    ad_tensor *targets =
        ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){2}, (double[]){0.0, 1.0});
    assert_close(2000.0,
                 ad_value(ad_nn_binary_cross_entropy_with_logits(huge, targets, AD_REDUCE_SUM)),
                 1e-14, 0);
    assert_int_equal(ad_tape_status(tape), AD_OK);

    /* An empty batch: the mean is NaN and the sum 0, as in PyTorch. */
    ad_tensor *empty = ad_requires_grad(ad_full(tape, AD_F64, 2, (int64_t[]){0, 3}, 0));
    assert_true(isnan(ad_value(ad_nn_cross_entropy(empty, 0, NULL, 0.1, AD_REDUCE_MEAN))));
    ad_tensor *sum = ad_nn_cross_entropy(empty, 0, NULL, 0.1, AD_REDUCE_SUM);
    assert_true(ad_value(sum) == 0.0);
    assert_int_equal(ad_backward(sum, NULL), AD_OK);
    assert_true(ad_value(ad_nn_mse_loss(empty, empty, AD_REDUCE_SUM)) == 0.0);
    assert_true(ad_value(ad_nn_binary_cross_entropy_with_logits(empty, empty, AD_REDUCE_SUM)) ==
                0.0);
    ad_tape_free(tape);
}

static void test_dropout_masks_scales_and_is_seeded(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_tensor *ones = ad_full(tape, AD_F64, 1, (int64_t[]){2000}, 1.0);
    ad_module *a = NULL, *b = NULL;
    assert_int_equal(ad_nn_dropout(&a, 0.25, 123), AD_OK);
    assert_int_equal(ad_nn_dropout(&b, 0.25, 123), AD_OK);
    ad_tensor *ya = ad_nn_forward(a, tape, ones), *yb = ad_nn_forward(b, tape, ones);
    assert_non_null(ya);
    assert_non_null(yb);
    /* Same seed, same mask; kept elements scaled by 1 / (1 - p). */
    assert_memory_equal(ad_tensor_data(ya), ad_tensor_data(yb), 2000 * sizeof(double));
    int zeros = 0;
    for (int i = 0; i < 2000; i++) {
        double v = ad_tensor_get(ya, i);
        assert_true(v == 0 || v == 1 / 0.75);
        zeros += v == 0;
    }
    assert_in_range(zeros, 400, 600); /* 500 expected; sd ~19 */
    /* The next call draws a fresh mask. */
    ad_tensor *next = ad_nn_forward(a, tape, ones);
    assert_true(memcmp(ad_tensor_data(ya), ad_tensor_data(next), 2000 * sizeof(double)) != 0);

    /* Eval mode, also through a container: the identity. */
    ad_module *seq = NULL;
    assert_int_equal(ad_nn_sequential(&seq, 1, &a), AD_OK);
    ad_nn_set_training(seq, false);
    ad_tensor *eval = ad_nn_forward(seq, tape, ones);
    assert_non_null(eval);
    for (int i = 0; i < 2000; i++)
        assert_true(ad_tensor_get(eval, i) == 1.0);
    ad_nn_set_training(seq, true);
    ad_tensor *train = ad_nn_forward(seq, tape, ones);
    int dropped = 0;
    for (int i = 0; i < 2000; i++)
        dropped += ad_tensor_get(train, i) == 0;
    assert_true(dropped > 0);

    /* p = 0 is the identity even while training. */
    ad_module *none = NULL;
    assert_int_equal(ad_nn_dropout(&none, 0, 1), AD_OK);
    ad_tensor *same = ad_nn_forward(none, tape, ones);
    for (int i = 0; i < 2000; i++)
        assert_true(ad_tensor_get(same, i) == 1.0);
    ad_nn_free(none);
    ad_nn_free(seq);
    ad_nn_free(b);
    ad_tape_free(tape);
}

static void test_flatten_and_embedding_forward(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    uint64_t seed = 8;
    ad_tensor *x = test_random(tape, &seed, 4, (int64_t[]){2, 3, 2, 2}, -1, 1);
    ad_module *flat = NULL;
    assert_int_equal(ad_nn_flatten(&flat), AD_OK);
    ad_tensor *y = ad_nn_forward(flat, tape, x);
    assert_shape(y, 2, (int64_t[]){2, 12});
    assert_memory_equal(ad_tensor_data(x), ad_tensor_data(y), 24 * sizeof(double));
    ad_nn_free(flat);

    ad_rng rng;
    ad_rng_seed(&rng, 3);
    ad_module *emb = NULL;
    assert_int_equal(ad_nn_embedding(&emb, 4, 3, AD_F64, &rng), AD_OK);
    const int64_t idx[3] = {3, 0, 3};
    ad_tensor *rows = ad_nn_embedding_lookup(emb, tape, 3, idx);
    assert_shape(rows, 2, (int64_t[]){3, 3});
    ad_tensor *table = param_at(emb, 0);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            assert_true(ad_tensor_get(rows, r * 3 + c) == ad_tensor_get(table, idx[r] * 3 + c));
    ad_nn_free(emb);
    ad_tape_free(tape);
}

static void test_sequential_names_parameters_as_pytorch_state_dict(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *norm = NULL;
    assert_int_equal(ad_nn_layer_norm(&norm, 2, AD_NORM_EPS, AD_F32), AD_OK);
    ad_module *inner_layers[2] = {make_linear(4, 2, false, AD_F32, &rng), norm};
    ad_module *inner = NULL;
    assert_int_equal(ad_nn_sequential(&inner, 2, inner_layers), AD_OK);
    ad_module *layers[3] = {make_linear(3, 4, true, AD_F32, &rng), make_activation(AD_ACT_GELU),
                            inner};
    ad_module *model = NULL;
    assert_int_equal(ad_nn_sequential(&model, 3, layers), AD_OK);
    static const char *names[] = {"0.weight", "0.bias", "2.0.weight", "2.1.weight", "2.1.bias"};
    ad_nn_param p[8];
    assert_int_equal(ad_nn_param_count(model), 5);
    assert_int_equal(ad_nn_params(model, p, 8), 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(p[i].name, names[i]);
    /* A short buffer: the count, and only max entries written. */
    ad_nn_param one[1];
    assert_int_equal(ad_nn_params(model, one, 1), 5);
    assert_string_equal(one[0].name, "0.weight");
    assert_int_equal(ad_nn_param_numel(model), 12 + 4 + 8 + 2 + 2);
    ad_nn_free(model);
}

/* ==== Optimizers against torch.optim ================================================ */

/*
 * P0 = [0.5, -1.5, 2.0, 0.125]
 * G = [[0.3, -0.2, 0.1, 0.0], [-0.4, 0.5, 0.25, -1.0], [0.2, 0.2, -0.6, 0.75]]
 * p = torch.tensor(P0, requires_grad=True); opt = <optimizer>([p], ...)
 * for t in range(3): p.grad = torch.tensor(G[t]); opt.step(); print(p.tolist())
 */
static const double P0[4] = {0.5, -1.5, 2.0, 0.125};
static const double G[3][4] = {
    {0.3, -0.2, 0.1, 0.0}, {-0.4, 0.5, 0.25, -1.0}, {0.2, 0.2, -0.6, 0.75}};

typedef struct optim_case {
    const char *torch; /* the torch.optim call */
    bool adam, decoupled;
    ad_sgd_config sgd;
    ad_adam_config adam_config;
    double expected[3][4];
} optim_case;

static const optim_case optim_cases[] = {
    {.torch = "SGD(lr=0.1)",
     .sgd = {.lr = 0.1},
     .expected = {{0.46999999999999997, -1.48, 1.99, 0.125},
                  {0.51000000000000001, -1.53, 1.9650000000000001, 0.22500000000000001},
                  {0.48999999999999999, -1.55, 2.0249999999999999, 0.14999999999999999}}},
    {.torch = "SGD(lr=0.1, momentum=0.9)",
     .sgd = {.lr = 0.1, .momentum = 0.9},
     .expected = {{0.46999999999999997, -1.48, 1.99, 0.125},
                  {0.48299999999999998, -1.512, 1.956, 0.22500000000000001},
                  {0.47470000000000001, -1.5608, 1.9854000000000001, 0.24000000000000002}}},
    {.torch = "SGD(lr=0.1, momentum=0.9, dampening=0.5)",
     .sgd = {.lr = 0.1, .momentum = 0.9, .dampening = 0.5},
     .expected = {{0.46999999999999997, -1.48, 1.99, 0.125},
                  {0.46299999999999997, -1.4869999999999999, 1.9684999999999999,
                   0.17499999999999999},
                  {0.44669999999999999, -1.5032999999999999, 1.97915, 0.1825}}},
    {.torch = "SGD(lr=0.1, momentum=0.9, nesterov=True)",
     .sgd = {.lr = 0.1, .momentum = 0.9, .nesterov = true},
     .expected = {{0.443, -1.462, 1.9810000000000001, 0.125},
                  {0.49470000000000003, -1.5407999999999999, 1.9254, 0.315},
                  {0.46723000000000003, -1.6047199999999999, 2.01186, 0.2535}}},
    {.torch = "SGD(lr=0.1, momentum=0.9, weight_decay=0.1)",
     .sgd = {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1},
     .expected = {{0.46500000000000002, -1.4650000000000001, 1.97, 0.12375},
                  {0.46885000000000004, -1.46885, 1.8982999999999999, 0.22138750000000001},
                  {0.44762650000000004, -1.4776265, 1.8747869999999998, 0.23204737500000003}}},
    {.torch = "Adam(lr=0.1)",
     .adam = true,
     .adam_config = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
     .expected = {{0.40000000333333319, -1.4000000049999999, 1.900000009999999, 0.125},
                  {0.41935104369969073, -1.444221530217233, 1.806029271380724, 0.19941368130459297},
                  {0.40949941804949097, -1.4985158281281918, 1.8345900364053671,
                   0.20708189861345158}}},
    {.torch = "Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)",
     .adam = true,
     .adam_config = {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1},
     .expected =
         {{0.45000014285673468, -1.4500001428567346, 1.9500001666661111, 0.075003999680025607},
          {0.45590993133326457, -1.4559099313332646, 1.8999070606563389, 0.11379146186183561},
          {0.44404486037005353, -1.4640267311397488, 1.8926615046642108, 0.11448871347547278}}},
    {.torch = "AdamW(lr=0.1, weight_decay=0.1)",
     .adam = true,
     .decoupled = true,
     .adam_config = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1},
     .expected = {{0.39500000333333318, -1.3850000049999998, 1.8800000099999989, 0.12375},
                  {0.41040104366635738, -1.4153715301672329, 1.767229271280724,
                   0.19692618130459294},
                  {0.39644540757949404, -1.4555121127765194, 1.7781177435925599,
                   0.20262513680040561}}},
    {.torch = "AdamW(lr=0.1)",
     .adam = true,
     .decoupled = true,
     .adam_config = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01},
     .expected = {{0.39950000333333324, -1.3985000049999998, 1.898000009999999, 0.124875},
                  {0.41845154369635745, -1.4413230302122328, 1.802131271370724,
                   0.19916380630459296},
                  {0.40818146650246134, -1.4941760050929795, 1.8288899051239964,
                   0.20663285980714699}}},
    /* Zeros are settings, not defaults: each differs from the default run. */
    {.torch = "Adam(lr=0.1, betas=(0.0, 0.999))",
     .adam = true,
     .adam_config = {.lr = 0.1, .beta1 = 0.0, .beta2 = 0.999, .eps = 1e-8},
     .expected = {{0.4000000033333332, -1.4000000049999997, 1.900000009999999, 0.125},
                  {0.5131291623981927, -1.5312826579886607, 1.768717360458365, 0.2663859944787266},
                  {0.4487968599595388, -1.5915849314881274, 1.92667587722731, 0.1624816499436923}}},
    {.torch = "Adam(lr=0.1, betas=(0.5, 0.0))",
     .adam = true,
     .adam_config = {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.0, .eps = 1e-8},
     .expected = {{0.4000000033333332, -1.4000000049999997, 1.900000009999999, 0.125},
                  {0.44166666895833323, -1.4533333372666664, 1.820000013199999, 0.191666666},
                  {0.4202380986011903, -1.5676190458380952, 1.8628571553428561,
                   0.1726190472063492}}},
    {.torch = "AdamW(lr=0.1, weight_decay=0.0)",
     .adam = true,
     .decoupled = true,
     .adam_config = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0},
     .expected = {{0.4000000033333332, -1.4000000049999999, 1.900000009999999, 0.125},
                  {0.41935104369969073, -1.444221530217233, 1.806029271380724, 0.19941368130459297},
                  {0.40949941804949097, -1.4985158281281918, 1.834590036405367,
                   0.20708189861345158}}},
    {.torch = "SGD(lr=0.0, momentum=0.9, weight_decay=0.1)",
     .sgd = {.lr = 0.0, .momentum = 0.9, .weight_decay = 0.1},
     .expected = {{0.5, -1.5, 2.0, 0.125}, {0.5, -1.5, 2.0, 0.125}, {0.5, -1.5, 2.0, 0.125}}},
};

/* Configs are accepted only when a defaults function made them: these copy
 * a case's settings (every field written out) into one. */
static ad_sgd_config sgd_settings(const ad_sgd_config *values)
{
    ad_sgd_config c = ad_sgd_defaults();
    c.lr = values->lr;
    c.momentum = values->momentum;
    c.dampening = values->dampening;
    c.weight_decay = values->weight_decay;
    c.nesterov = values->nesterov;
    return c;
}

static ad_adam_config adam_settings(const ad_adam_config *values)
{
    ad_adam_config c = ad_adam_defaults();
    c.lr = values->lr;
    c.beta1 = values->beta1;
    c.beta2 = values->beta2;
    c.eps = values->eps;
    c.weight_decay = values->weight_decay;
    return c;
}

static void set_grad(ad_tensor *p, const double *g)
{
    assert_int_equal(ad_tensor_copy_from_doubles(ad_tensor_grad(p), g), AD_OK);
}

static void test_optimizer_steps_match_torch_optim(void **state)
{
    (void)state;
    for (size_t k = 0; k < COUNT(optim_cases); k++) {
        const optim_case *c = &optim_cases[k];
        ad_tensor *p = NULL;
        assert_int_equal(ad_tensor_create(&p, AD_F64, 1, (int64_t[]){4}, true), AD_OK);
        assert_int_equal(ad_tensor_copy_from_doubles(p, P0), AD_OK);
        ad_optim *opt = NULL;
        ad_sgd_config sgd = sgd_settings(&c->sgd);
        ad_adam_config adam = adam_settings(&c->adam_config);
        ad_status st = c->adam ? ad_optim_adam_params(&opt, 1, &p, &adam, c->decoupled)
                               : ad_optim_sgd_params(&opt, 1, &p, &sgd);
        assert_int_equal(st, AD_OK);
        for (int t = 0; t < 3; t++) {
            set_grad(p, G[t]);
            ad_optim_step(opt);
            for (int i = 0; i < 4; i++) {
                double v = ad_tensor_get(p, i);
                if (!(fabs(v - c->expected[t][i]) <= 1e-12 * fabs(c->expected[t][i]) + 1e-15))
                    fail_msg("%s step %d element %d: %.17g, torch %.17g", c->torch, t + 1, i, v,
                             c->expected[t][i]);
            }
        }
        ad_optim_free(opt);
        ad_tensor_free(p);
    }
}

/* The module constructors: AdamW over a Linear's weight (no bias) with its
 * default weight decay 0.01, and SGD, give the same steps as above. */
static void test_module_optimizers_match_torch_optim(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    for (int which = 0; which < 2; which++) {
        ad_module *m = make_linear(4, 1, false, AD_F64, &rng);
        ad_tensor *w = param_at(m, 0);
        assert_int_equal(ad_tensor_copy_from_doubles(w, P0), AD_OK);
        ad_optim *opt = NULL;
        const optim_case *c = &optim_cases[which ? 8 : 1];
        ad_adam_config adamw = ad_adamw_defaults(); /* weight decay 0.01 */
        adamw.lr = 0.1;
        ad_sgd_config sgd = sgd_settings(&c->sgd);
        if (which)
            assert_int_equal(ad_optim_adamw(&opt, m, &adamw), AD_OK);
        else
            assert_int_equal(ad_optim_sgd(&opt, m, &sgd), AD_OK);
        for (int t = 0; t < 3; t++) {
            set_grad(w, G[t]);
            ad_optim_step(opt);
            for (int i = 0; i < 4; i++)
                assert_close(c->expected[t][i], ad_tensor_get(w, i), 1e-12, 1e-15);
        }
        ad_optim_free(opt);
        ad_nn_free(m);
    }
}

/* Defaults (NULL config) are PyTorch's: SGD lr 0.01, Adam lr 1e-3. */
static void test_optimizer_defaults_and_learning_rate(void **state)
{
    (void)state;
    ad_tensor *p = NULL;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 1, (int64_t[]){4}, true), AD_OK);
    ad_optim *sgd = NULL, *adam = NULL;
    assert_int_equal(ad_optim_sgd_params(&sgd, 1, &p, NULL), AD_OK);
    assert_int_equal(ad_optim_adam_params(&adam, 1, &p, NULL, false), AD_OK);
    assert_close(0.01, ad_optim_lr(sgd), 0, 0);
    assert_close(1e-3, ad_optim_lr(adam), 0, 0);

    /* set_lr changes the next step. */
    assert_int_equal(ad_tensor_copy_from_doubles(p, P0), AD_OK);
    ad_optim_set_lr(sgd, 0.5);
    assert_close(0.5, ad_optim_lr(sgd), 0, 0);
    set_grad(p, G[1]);
    ad_optim_step(sgd);
    for (int i = 0; i < 4; i++)
        assert_close(P0[i] - 0.5 * G[1][i], ad_tensor_get(p, i), 1e-15, 1e-15);
    ad_optim_set_lr(adam, 0.2);
    assert_close(0.2, ad_optim_lr(adam), 0, 0);

    /* zero_grad zeroes every gradient. */
    ad_optim_zero_grad(sgd);
    for (int i = 0; i < 4; i++)
        assert_true(ad_tensor_get(ad_tensor_grad(p), i) == 0.0);

    /* NULL-safe. */
    ad_optim_step(NULL);
    ad_optim_zero_grad(NULL);
    ad_optim_set_lr(NULL, 1);
    ad_optim_free(NULL);
    ad_optim_free(adam);
    ad_optim_free(sgd);
    ad_tensor_free(p);
}

static void test_optimizer_rejects_tensors_it_cannot_update(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_tensor *on_tape = ad_requires_grad(ad_full(tape, AD_F64, 1, (int64_t[]){2}, 1.0));
    ad_optim *opt = (ad_optim *)&opt;
    assert_int_equal(ad_optim_adam_params(&opt, 1, &on_tape, NULL, true), AD_ERR_ARG);
    assert_null(opt);
    ad_tensor *null_param = NULL;
    assert_int_equal(ad_optim_sgd_params(&opt, 1, &null_param, NULL), AD_ERR_ARG);
    assert_int_equal(ad_optim_adam(&opt, NULL, NULL), AD_ERR_ARG);
    assert_null(opt);
    ad_tape_free(tape);
}

/* A frozen tensor (ad_tensor_set_requires_grad false) enters the tape as a
 * constant and every optimizer skips it, weight decay and momentum included;
 * unfreezing it trains it again. A tensor created without grad is frozen. */
static void test_optimizer_skips_frozen_tensors(void **state)
{
    (void)state;
    ad_tensor *w = NULL, *b = NULL;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 1, (int64_t[]){2}, true), AD_OK);
    assert_int_equal(ad_tensor_create(&b, AD_F64, 1, (int64_t[]){2}, false), AD_OK);
    ad_tensor_copy_from_doubles(w, (double[]){1.0, 2.0});
    ad_tensor_copy_from_doubles(b, (double[]){3.0, 4.0});
    assert_int_equal(ad_tensor_set_requires_grad(w, false), AD_OK);
    ad_tensor *params[2] = {w, b};
    ad_optim *opt = NULL;
    ad_sgd_config sgd =
        sgd_settings(&(ad_sgd_config){.lr = 0.1, .momentum = 0.9, .weight_decay = 0.5});
    assert_int_equal(ad_optim_sgd_params(&opt, 2, params, &sgd), AD_OK);
    ad_tape *tape = test_tape();
    /* loss = sum(w * b): with both frozen, nothing on the tape requires grad. */
    ad_tensor *loss = ad_sum_all(ad_mul(ad_tape_use(tape, w), b));
    assert_int_equal(ad_backward(loss, NULL), AD_ERR_NO_GRAD);
    ad_optim_step(opt);
    assert_true(ad_tensor_get(w, 0) == 1.0 && ad_tensor_get(w, 1) == 2.0);
    assert_true(ad_tensor_get(b, 0) == 3.0 && ad_tensor_get(b, 1) == 4.0);
    /* Unfreeze b (it gets a zeroed gradient buffer): only b moves. */
    assert_int_equal(ad_tensor_set_requires_grad(b, true), AD_OK);
    assert_non_null(ad_tensor_grad(b));
    ad_tape_reset(tape);
    ad_optim_zero_grad(opt);
    loss = ad_sum_all(ad_mul(ad_tape_use(tape, w), b));
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    assert_true(ad_tensor_get(ad_tensor_grad(b), 0) == 1.0);
    ad_optim_step(opt);
    assert_true(ad_tensor_get(w, 0) == 1.0 && ad_tensor_get(w, 1) == 2.0);
    /* b -= 0.1 (g + 0.5 b), g = w: 3 - 0.1 (1 + 1.5) = 2.75; 4 - 0.1 (2 + 2) = 3.6 */
    assert_close(2.75, ad_tensor_get(b, 0), 1e-15, 0);
    assert_close(3.6, ad_tensor_get(b, 1), 1e-15, 0);
    /* Tape tensors are refused: they use ad_requires_grad. */
    assert_int_equal(ad_tensor_set_requires_grad(loss, false), AD_ERR_ARG);
    assert_int_equal(ad_tensor_set_requires_grad(NULL, true), AD_ERR_ARG);
    ad_optim_free(opt);
    ad_tape_free(tape);
    ad_tensor_free(w);
    ad_tensor_free(b);
}

/* Settings torch.optim refuses are errors, not silently replaced by defaults. */
static void test_optimizer_rejects_configs_torch_refuses(void **state)
{
    (void)state;
    ad_tensor *p = NULL;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 1, (int64_t[]){2}, true), AD_OK);
    static const ad_sgd_config bad_sgd_values[] = {
        {.lr = -0.1},
        {.lr = NAN},
        {.momentum = -0.5},
        {.momentum = 0.9, .dampening = -1},
        {.weight_decay = -1e-4},
        {.nesterov = true},                                    /* no momentum */
        {.momentum = 0.9, .dampening = 0.1, .nesterov = true}, /* dampening */
    };
    /* Each Adam config is the defaults with one bad field. */
    ad_adam_config bad_adam[8];
    for (size_t i = 0; i < COUNT(bad_adam); i++)
        bad_adam[i] = ad_adam_defaults();
    bad_adam[0].lr = -1e-3;
    bad_adam[1].lr = NAN;
    bad_adam[2].beta1 = 1.0;
    bad_adam[3].beta1 = -0.1;
    bad_adam[4].beta2 = 1.5;
    bad_adam[5].beta2 = NAN;
    bad_adam[6].eps = -1e-8;
    bad_adam[7].weight_decay = -0.01;
    ad_sgd_config bad_sgd[COUNT(bad_sgd_values)];
    for (size_t i = 0; i < COUNT(bad_sgd); i++)
        bad_sgd[i] = sgd_settings(&bad_sgd_values[i]);
    ad_optim *opt = NULL;
    for (size_t i = 0; i < COUNT(bad_sgd); i++) {
        opt = (ad_optim *)&opt;
        assert_int_equal(ad_optim_sgd_params(&opt, 1, &p, &bad_sgd[i]), AD_ERR_ARG);
        assert_null(opt);
    }
    for (size_t i = 0; i < COUNT(bad_adam); i++) {
        for (int decoupled = 0; decoupled < 2; decoupled++) {
            opt = (ad_optim *)&opt;
            assert_int_equal(ad_optim_adam_params(&opt, 1, &p, &bad_adam[i], decoupled),
                             AD_ERR_ARG);
            assert_null(opt);
        }
    }
    ad_module *m = make_mlp(AD_F64, 1);
    assert_int_equal(ad_optim_sgd(&opt, m, &bad_sgd[5]), AD_ERR_ARG);
    assert_int_equal(ad_optim_adam(&opt, m, &bad_adam[2]), AD_ERR_ARG);
    assert_int_equal(ad_optim_adamw(&opt, m, &bad_adam[4]), AD_ERR_ARG);
    assert_null(opt);
    /* Nesterov with momentum and no dampening is fine. */
    ad_sgd_config nesterov =
        sgd_settings(&(ad_sgd_config){.lr = 0.01, .momentum = 0.9, .nesterov = true});
    assert_int_equal(ad_optim_sgd(&opt, m, &nesterov), AD_OK);
    ad_optim_free(opt);
    ad_nn_free(m);
    ad_tensor_free(p);
}

/* The defaults functions hold torch.optim's defaults (SGD has none for lr: 0.01). */
static void test_optimizer_defaults_functions_hold_torch_optim_defaults(void **state)
{
    (void)state;
    ad_sgd_config sgd = ad_sgd_defaults();
    assert_true(sgd.lr == 0.01 && sgd.momentum == 0 && sgd.dampening == 0 &&
                sgd.weight_decay == 0 && !sgd.nesterov);
    ad_adam_config adam = ad_adam_defaults(), adamw = ad_adamw_defaults();
    assert_true(adam.lr == 1e-3 && adam.beta1 == 0.9 && adam.beta2 == 0.999 && adam.eps == 1e-8 &&
                adam.weight_decay == 0);
    assert_true(adamw.lr == 1e-3 && adamw.beta1 == 0.9 && adamw.beta2 == 0.999 &&
                adamw.eps == 1e-8 && adamw.weight_decay == 0.01);
}

/* One parameter p0 with gradients g1, g2: two steps of Adam with beta1 = 0,
 * written out from torch.optim.Adam's documented algorithm. */
static void test_adam_with_beta1_zero_takes_the_hand_computed_steps(void **state)
{
    (void)state;
    const double lr = 0.1, b2 = 0.999, eps = 1e-8, p0 = 0.5, g1 = 0.3, g2 = -0.4;
    /* beta1 = 0: the first moment is the gradient and needs no correction. */
    double v1 = (1 - b2) * g1 * g1;
    double p1 = p0 - lr * g1 / (sqrt(v1) / sqrt(1 - b2) + eps);
    double v2 = b2 * v1 + (1 - b2) * g2 * g2;
    double p2 = p1 - lr * g2 / (sqrt(v2) / sqrt(1 - b2 * b2) + eps);

    ad_tensor *p = NULL;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 1, (int64_t[]){1}, true), AD_OK);
    ad_tensor_set(p, 0, p0);
    ad_adam_config c = ad_adam_defaults();
    c.lr = lr;
    c.beta1 = 0;
    ad_optim *opt = NULL;
    assert_int_equal(ad_optim_adam_params(&opt, 1, &p, &c, false), AD_OK);
    set_grad(p, &g1);
    ad_optim_step(opt);
    assert_close(p1, ad_tensor_get(p, 0), 1e-15, 0);
    set_grad(p, &g2);
    ad_optim_step(opt);
    assert_close(p2, ad_tensor_get(p, 0), 1e-15, 0);
    /* With the default beta1 = 0.9 the second step differs: 0 was used as given. */
    double m2 = 0.9 * 0.1 * g1 + 0.1 * g2;
    double p2_default = p1 - lr / (1 - 0.81) * m2 / (sqrt(v2) / sqrt(1 - b2 * b2) + eps);
    assert_true(fabs(p2 - p2_default) > 1e-3);
    ad_optim_free(opt);
    ad_tensor_free(p);
}

/* AdamW with weight_decay = 0 is Adam: no shrinking of p, where the
 * default (0.01) first multiplies p by 1 - lr 0.01. */
static void test_adamw_with_weight_decay_zero_does_not_shrink_the_parameter(void **state)
{
    (void)state;
    const double lr = 0.1, eps = 1e-8, p0 = 2.0, g = 0.25;
    /* The first Adam step is lr g / (|g| + eps) for any betas: m / (1 - b1)
     * = g and sqrt(v / (1 - b2)) = |g|. */
    double expected = p0 - lr * g / (fabs(g) + eps);
    double with_default = p0 * (1 - lr * 0.01) - lr * g / (fabs(g) + eps);
    for (int decay = 0; decay < 2; decay++) {
        ad_tensor *p = NULL;
        assert_int_equal(ad_tensor_create(&p, AD_F64, 1, (int64_t[]){1}, true), AD_OK);
        ad_tensor_set(p, 0, p0);
        ad_adam_config c = ad_adamw_defaults();
        c.lr = lr;
        if (!decay)
            c.weight_decay = 0;
        ad_optim *opt = NULL;
        assert_int_equal(ad_optim_adam_params(&opt, 1, &p, &c, true), AD_OK);
        set_grad(p, &g);
        ad_optim_step(opt);
        assert_close(decay ? with_default : expected, ad_tensor_get(p, 0), 1e-15, 0);
        ad_optim_free(opt);
        ad_tensor_free(p);
    }
}

/* A config not made by a defaults function (old code's compound literals,
 * whose unset fields are 0) is refused instead of training with beta2 = 0. */
static void test_optimizer_refuses_a_config_not_made_by_a_defaults_function(void **state)
{
    (void)state;
    ad_module *m = make_mlp(AD_F64, 1);
    ad_tensor *p = param_at(m, 0);
    ad_optim *opt = (ad_optim *)&opt;
    assert_int_equal(ad_optim_adam(&opt, m, &(ad_adam_config){.lr = 1e-3}), AD_ERR_ARG);
    assert_null(opt);
    assert_int_equal(ad_optim_adamw(&opt, m, &(ad_adam_config){.lr = 1e-3}), AD_ERR_ARG);
    assert_int_equal(ad_optim_sgd(&opt, m, &(ad_sgd_config){.lr = 0.1}), AD_ERR_ARG);
    assert_int_equal(ad_optim_adam_params(&opt, 1, &p, &(ad_adam_config){0}, false), AD_ERR_ARG);
    assert_int_equal(ad_optim_sgd_params(&opt, 1, &p, &(ad_sgd_config){0}), AD_ERR_ARG);
    /* Every field set by hand still lacks the mark. */
    ad_adam_config full = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    assert_int_equal(ad_optim_adam(&opt, m, &full), AD_ERR_ARG);
    assert_null(opt);
    /* From the defaults, the same settings are accepted. */
    ad_adam_config good = ad_adam_defaults();
    good.lr = 1e-3;
    assert_int_equal(ad_optim_adam(&opt, m, &good), AD_OK);
    ad_optim_free(opt);
    assert_int_equal(ad_optim_adam(NULL, m, &good), AD_ERR_ARG);
    ad_nn_free(m);
}

static void test_clip_grad_norm_returns_the_norm_and_scales(void **state)
{
    (void)state;
    ad_tensor *a = NULL, *b = NULL;
    assert_int_equal(ad_tensor_create(&a, AD_F32, 1, (int64_t[]){2}, true), AD_OK);
    assert_int_equal(ad_tensor_create(&b, AD_F64, 2, (int64_t[]){1, 1}, true), AD_OK);
    ad_tensor *params[2] = {a, b};
    set_grad(a, (double[]){3, 4});
    set_grad(b, (double[]){12});
    /* Below the limit: the norm, grads untouched. */
    assert_close(13.0, ad_optim_clip_grad_norm(2, params, 20.0), 1e-15, 0);
    assert_true(ad_tensor_get(ad_tensor_grad(a), 1) == 4.0);
    assert_true(ad_tensor_get(ad_tensor_grad(b), 0) == 12.0);
    /* Above: the norm before clipping; grads times max / (norm + 1e-6), as PyTorch. */
    assert_close(13.0, ad_optim_clip_grad_norm(2, params, 6.5), 1e-15, 0);
    double coef = 6.5 / (13.0 + 1e-6);
    assert_close(3 * coef, ad_tensor_get(ad_tensor_grad(a), 0), 1e-7, 0); /* float32 */
    assert_close(4 * coef, ad_tensor_get(ad_tensor_grad(a), 1), 1e-7, 0);
    assert_close(12 * coef, ad_tensor_get(ad_tensor_grad(b), 0), 1e-15, 0);
    assert_close(6.5, ad_optim_clip_grad_norm(2, params, 100.0), 1e-6, 0);
    /* No parameters: norm 0. */
    assert_close(0.0, ad_optim_clip_grad_norm(0, NULL, 1.0), 0, 0);
    ad_tensor_free(a);
    ad_tensor_free(b);
}

static void test_learning_rate_schedules(void **state)
{
    (void)state;
    /* torch.optim.lr_scheduler.StepLR(step_size=3, gamma=0.5) from 0.1 */
    assert_close(0.1, ad_optim_lr_step(0.1, 0, 3, 0.5), 1e-15, 0);
    assert_close(0.1, ad_optim_lr_step(0.1, 2, 3, 0.5), 1e-15, 0);
    assert_close(0.05, ad_optim_lr_step(0.1, 3, 3, 0.5), 1e-15, 0);
    assert_close(0.025, ad_optim_lr_step(0.1, 7, 3, 0.5), 1e-15, 0);
    assert_close(0.1 * pow(0.5, 33), ad_optim_lr_step(0.1, 100, 3, 0.5), 1e-15, 0);

    /* Warm-up over 4 steps: base (step + 1) / 4; then cosine from base to min at 14. */
    const double base = 1.0, min = 0.1;
    for (int s = 0; s < 4; s++)
        assert_close(base * (s + 1) / 4.0, ad_optim_lr_cosine(base, min, s, 4, 14), 1e-15, 0);
    assert_close(base, ad_optim_lr_cosine(base, min, 4, 4, 14), 1e-15, 0);
    assert_close((base + min) / 2, ad_optim_lr_cosine(base, min, 9, 4, 14), 1e-15, 0);
    const double pi = 3.14159265358979323846;
    /* A quarter of the way (torch's CosineAnnealingLR formula). */
    assert_close(min + (base - min) * (1 + cos(pi / 4)) / 2,
                 ad_optim_lr_cosine(base, min, 6, 4, 12), 1e-14, 0);
    assert_close(min, ad_optim_lr_cosine(base, min, 14, 4, 14), 1e-15, 1e-16);
    assert_close(min, ad_optim_lr_cosine(base, min, 1000, 4, 14), 1e-15, 1e-16);
    /* No warm-up: base at step 0, decreasing. */
    assert_close(base, ad_optim_lr_cosine(base, min, 0, 0, 10), 1e-15, 0);
    assert_true(ad_optim_lr_cosine(base, min, 3, 0, 10) < ad_optim_lr_cosine(base, min, 2, 0, 10));
}

/* ==== Training =================================================================== */

enum { TRAIN_N = 256 };

/* XOR blobs: four clusters around (+-1, +-1), class 1 where the signs differ. */
static void make_xor_data(ad_tensor *x, int64_t *labels)
{
    ad_rng rng;
    ad_rng_seed(&rng, 2024);
    float *d = ad_tensor_data(x);
    for (int i = 0; i < TRAIN_N; i++) {
        int qx = i & 1, qy = (i >> 1) & 1;
        d[2 * i] = (float)((qx ? 1.0 : -1.0) + 0.35 * ad_rng_normal(&rng));
        d[2 * i + 1] = (float)((qy ? 1.0 : -1.0) + 0.35 * ad_rng_normal(&rng));
        labels[i] = qx ^ qy;
    }
}

/* An MLP 2 -> 16 -> tanh -> dropout -> 16 -> relu -> 2 in float32, trained
 * full-batch with Adam. Returns the model; *loss is the final loss in eval
 * mode and *accuracy the fraction classified right. */
static ad_module *train_xor(uint64_t seed, int steps, double *loss, double *accuracy)
{
    ad_rng rng;
    ad_rng_seed(&rng, seed);
    ad_module *dropout = NULL;
    assert_int_equal(ad_nn_dropout(&dropout, 0.1, seed + 1), AD_OK);
    ad_module *layers[6] = {make_linear(2, 16, true, AD_F32, &rng),
                            make_activation(AD_ACT_TANH),
                            dropout,
                            make_linear(16, 16, true, AD_F32, &rng),
                            make_activation(AD_ACT_RELU),
                            make_linear(16, 2, true, AD_F32, &rng)};
    ad_module *model = NULL;
    assert_int_equal(ad_nn_sequential(&model, 6, layers), AD_OK);
    ad_tensor *x = NULL;
    assert_int_equal(ad_tensor_create(&x, AD_F32, 2, (int64_t[]){TRAIN_N, 2}, false), AD_OK);
    int64_t labels[TRAIN_N];
    make_xor_data(x, labels);

    ad_optim *opt = NULL;
    ad_adam_config adam = ad_adam_defaults();
    adam.lr = 0.02;
    assert_int_equal(ad_optim_adam(&opt, model, &adam), AD_OK);
    ad_tape *tape = test_tape();
    for (int step = 0; step < steps; step++) {
        ad_tape_reset(tape);
        ad_tensor *l =
            ad_nn_cross_entropy(ad_nn_forward(model, tape, x), TRAIN_N, labels, 0, AD_REDUCE_MEAN);
        ad_optim_zero_grad(opt);
        if (ad_backward(l, NULL) != AD_OK)
            fail_msg("training step %d: %s", step, ad_tape_message(tape));
        ad_optim_step(opt);
    }
    ad_nn_set_training(model, false);
    ad_tape_reset(tape);
    ad_tensor *logits = ad_nn_forward(model, tape, x);
    *loss = ad_value(ad_nn_cross_entropy(logits, TRAIN_N, labels, 0, AD_REDUCE_MEAN));
    int right = 0;
    for (int i = 0; i < TRAIN_N; i++) {
        bool one = ad_tensor_get(logits, 2 * i + 1) > ad_tensor_get(logits, 2 * i);
        right += one == (labels[i] == 1);
    }
    *accuracy = (double)right / TRAIN_N;
    ad_tape_free(tape);
    ad_optim_free(opt);
    ad_tensor_free(x);
    return model;
}

static void test_mlp_learns_xor_blobs_with_adam(void **state)
{
    (void)state;
    double loss, accuracy;
    /* Seeds 1..29 all reach a loss below 0.006 (full accuracy) in 200 steps. */
    ad_module *model = train_xor(7, 200, &loss, &accuracy);
    if (!(loss < 0.05) || !(accuracy > 0.97))
        fail_msg("after 200 steps: loss %g, accuracy %g", loss, accuracy);
    ad_nn_free(model);
}

static void test_seeded_training_is_bit_identical(void **state)
{
    (void)state;
    double loss[3], accuracy[3];
    ad_module *a = train_xor(7, 40, &loss[0], &accuracy[0]);
    ad_module *b = train_xor(7, 40, &loss[1], &accuracy[1]);
    ad_module *c = train_xor(8, 40, &loss[2], &accuracy[2]);
    assert_true(params_identical(a, b));
    assert_true(loss[0] == loss[1]);
    assert_false(params_identical(a, c));
    ad_nn_free(a);
    ad_nn_free(b);
    ad_nn_free(c);
}

/* ==== Checkpoints ================================================================= */

static void test_save_load_round_trip_is_bit_exact(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        ad_dtype dtype = d ? AD_F32 : AD_F64;
        ad_module *a = make_mlp(dtype, 1), *b = make_mlp(dtype, 2);
        assert_false(params_identical(a, b));
        char path[300], err[256];
        new_path(path, sizeof path);
        assert_int_equal(ad_nn_save(a, path, err, sizeof err), AD_OK);
        assert_string_equal(err, "");
        assert_int_equal(ad_nn_load(b, path, err, sizeof err), AD_OK);
        assert_true(params_identical(a, b));
        ad_nn_free(a);
        ad_nn_free(b);
    }
}

/* One Adam step of model on a fixed batch (x [4, 3], classes). */
static void adam_step(ad_module *model, ad_optim *opt, ad_tape *tape, ad_tensor *x)
{
    static const int64_t classes[4] = {0, 1, 1, 0};
    ad_tape_reset(tape);
    ad_tensor *loss =
        ad_nn_cross_entropy(ad_nn_forward(model, tape, x), 4, classes, 0.05, AD_REDUCE_MEAN);
    ad_optim_zero_grad(opt);
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    ad_optim_step(opt);
}

/* Saves or loads the optimizer's state through safetensors. */
static ad_status optim_io(ad_optim *opt, const char *path, bool save, char *err, size_t size)
{
    ad_nn_param s[16];
    size_t n = ad_optim_state(opt, s, COUNT(s));
    assert_true(n <= COUNT(s));
    const char *names[16];
    ad_tensor *tensors[16];
    for (size_t i = 0; i < n; i++) {
        names[i] = s[i].name;
        tensors[i] = s[i].tensor;
    }
    return save ? ad_safetensors_save(path, n, names, tensors, err, size)
                : ad_safetensors_load(path, n, names, tensors, err, size);
}

static void test_optimizer_state_round_trips_and_resumes_exactly(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    uint64_t seed = 12;
    ad_tensor *x = test_random(tape, &seed, 2, (int64_t[]){4, 3}, -1, 1);
    ad_tensor *xp = NULL;
    assert_int_equal(ad_tensor_create(&xp, AD_F64, 2, (int64_t[]){4, 3}, false), AD_OK);
    memcpy(ad_tensor_data(xp), ad_tensor_data(x), 12 * sizeof(double));

    for (int kind = 0; kind < 2; kind++) {
        ad_module *a = make_mlp(AD_F64, 1), *b = make_mlp(AD_F64, 2);
        ad_optim *oa = NULL, *ob = NULL;
        if (kind) {
            ad_adam_config c = ad_adamw_defaults();
            c.lr = 0.01;
            assert_int_equal(ad_optim_adamw(&oa, a, &c), AD_OK);
            assert_int_equal(ad_optim_adamw(&ob, b, &c), AD_OK);
        } else {
            ad_sgd_config c =
                sgd_settings(&(ad_sgd_config){.lr = 0.05, .momentum = 0.9, .nesterov = true});
            assert_int_equal(ad_optim_sgd(&oa, a, &c), AD_OK);
            assert_int_equal(ad_optim_sgd(&ob, b, &c), AD_OK);
        }
        ad_nn_param s[16];
        size_t n = ad_optim_state(oa, s, COUNT(s));
        assert_int_equal(n, kind ? 9 : 5);
        assert_string_equal(s[0].name,
                            kind ? "state.0.weight.exp_avg" : "state.0.weight.momentum_buffer");
        if (kind)
            assert_string_equal(s[4].name, "state.0.weight.exp_avg_sq");
        assert_string_equal(s[n - 1].name, "state.step");

        for (int i = 0; i < 3; i++)
            adam_step(a, oa, tape, xp);
        char model_path[300], state_path[300], err[256];
        new_path(model_path, sizeof model_path);
        new_path(state_path, sizeof state_path);
        assert_int_equal(ad_nn_save(a, model_path, err, sizeof err), AD_OK);
        assert_int_equal(optim_io(oa, state_path, true, err, sizeof err), AD_OK);

        assert_int_equal(ad_nn_load(b, model_path, err, sizeof err), AD_OK);
        assert_int_equal(optim_io(ob, state_path, false, err, sizeof err), AD_OK);
        ad_nn_param sb[16];
        ad_optim_state(ob, sb, COUNT(sb));
        assert_close(3.0, ad_value(sb[n - 1].tensor), 0, 0);
        /* Both continue identically, bit for bit. */
        for (int i = 0; i < 2; i++) {
            adam_step(a, oa, tape, xp);
            adam_step(b, ob, tape, xp);
        }
        assert_true(params_identical(a, b));
        ad_optim_free(oa);
        ad_optim_free(ob);
        ad_nn_free(a);
        ad_nn_free(b);
    }
    ad_tensor_free(xp);
    ad_tape_free(tape);
}

/* Asserts that loading path into model fails with code, a message containing
 * `part`, and no parameter changed. */
static void assert_load_fails(ad_module *model, const char *path, ad_status code, const char *part)
{
    snapshot before;
    snapshot_take(&before, model);
    char err[512];
    ad_status st = ad_nn_load(model, path, err, sizeof err);
    if (st != code)
        fail_msg("loading %s: %s (%s), expected %s", path, ad_status_string(st), err,
                 ad_status_string(code));
    if (!strstr(err, part))
        fail_msg("message \"%s\" does not contain \"%s\"", err, part);
    assert_true(snapshot_equal(&before, model));
    snapshot_free(&before);
}

static void test_load_errors_are_clear_and_leave_the_model_untouched(void **state)
{
    (void)state;
    ad_module *model = make_mlp(AD_F64, 1);
    char path[300];
    FILE *f;

    /* A tensor is missing: save only the first three. */
    ad_nn_param p[4];
    ad_nn_params(model, p, 4);
    ad_module *donor = make_mlp(AD_F64, 5);
    ad_nn_param q[4];
    ad_nn_params(donor, q, 4);
    const char *names[3] = {q[0].name, q[1].name, q[2].name};
    ad_tensor *tensors[3] = {q[0].tensor, q[1].tensor, q[2].tensor};
    new_path(path, sizeof path);
    assert_int_equal(ad_safetensors_save(path, 3, names, tensors, NULL, 0), AD_OK);
    assert_load_fails(model, path, AD_ERR_FORMAT, "'2.bias' not found");

    /* Wrong shape: Linear(3, 5) where the model has Linear(3, 4). */
    ad_rng rng;
    ad_rng_seed(&rng, 9);
    ad_module *wide_layers[3] = {make_linear(3, 5, true, AD_F64, &rng),
                                 make_activation(AD_ACT_RELU),
                                 make_linear(5, 2, true, AD_F64, &rng)};
    ad_module *wide = NULL;
    assert_int_equal(ad_nn_sequential(&wide, 3, wide_layers), AD_OK);
    new_path(path, sizeof path);
    assert_int_equal(ad_nn_save(wide, path, NULL, 0), AD_OK);
    assert_load_fails(model, path, AD_ERR_SHAPE, "0.weight");

    /* Wrong dtype: the same model in float32. */
    ad_module *f32 = make_mlp(AD_F32, 1);
    new_path(path, sizeof path);
    assert_int_equal(ad_nn_save(f32, path, NULL, 0), AD_OK);
    assert_load_fails(model, path, AD_ERR_DTYPE, "0.weight");

    /* Truncated: a good file missing its last 8 bytes. */
    new_path(path, sizeof path);
    assert_int_equal(ad_nn_save(donor, path, NULL, 0), AD_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size - 8), 0);
    assert_load_fails(model, path, AD_ERR_FORMAT, "truncated");

    /* Garbage header. */
    new_path(path, sizeof path);
    f = fopen(path, "wb");
    assert_non_null(f);
    const unsigned char garbage[] = {16,  0,   0,   0,   0,   0,   0,   0,   'n', 'o', 't', ' ',
                                     'j', 's', 'o', 'n', ' ', 'a', 't', ' ', 'a', 'l', 'l', '!'};
    assert_int_equal(fwrite(garbage, 1, sizeof garbage, f), sizeof garbage);
    fclose(f);
    assert_load_fails(model, path, AD_ERR_FORMAT, path);

    /* No file at all. */
    snprintf(path, sizeof path, "%s/does-not-exist.safetensors", temp_dir);
    assert_load_fails(model, path, AD_ERR_IO, "does-not-exist");

    /* Saving where no file can be made. */
    char err[512];
    snprintf(path, sizeof path, "%s/no-such-dir/model.safetensors", temp_dir);
    assert_int_equal(ad_nn_save(model, path, err, sizeof err), AD_ERR_IO);
    if (!strstr(err, "no-such-dir"))
        fail_msg("message \"%s\" does not name the path", err);

    ad_nn_free(f32);
    ad_nn_free(wide);
    ad_nn_free(donor);
    ad_nn_free(model);
}

/* ==== Errors, not aborts ============================================================ */

static void test_linear_with_wrong_in_features_names_layer_and_shape(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *m = make_linear(3, 2, true, AD_F64, &rng);
    ad_tape *tape = test_tape();
    ad_tensor *x = ad_full(tape, AD_F64, 2, (int64_t[]){2, 5}, 1.0);
    assert_null(ad_nn_forward(m, tape, x));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "linear");
    assert_message_has(tape, "[2,5]");
    assert_message_has(tape, "[...,3]");
    /* Sticky: a later good forward also returns NULL, and the message stays. */
    assert_null(ad_nn_forward(m, tape, ad_full(tape, AD_F64, 2, (int64_t[]){2, 3}, 1.0)));
    assert_message_has(tape, "[2,5]");

    /* A 0-d input and a float32 input are errors too. */
    ad_tape_reset(tape);
    assert_null(ad_nn_forward(m, tape, ad_scalar(tape, 1.0)));
    assert_message_has(tape, "linear");
    ad_tape_reset(tape);
    assert_null(ad_nn_forward(m, tape, ad_full(tape, AD_F32, 2, (int64_t[]){2, 3}, 1.0)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_message_has(tape, "linear");
    ad_tape_free(tape);
    ad_nn_free(m);
}

static void test_conv2d_with_wrong_channels_or_rank_names_layer_and_shape(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *m = NULL;
    assert_int_equal(ad_nn_conv2d(&m, 3, 4, 3, 1, 0, AD_F64, &rng), AD_OK);
    ad_tape *tape = test_tape();
    assert_null(ad_nn_forward(m, tape, ad_full(tape, AD_F64, 4, (int64_t[]){1, 2, 5, 5}, 1)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "conv2d");
    assert_message_has(tape, "[1,2,5,5]");
    assert_message_has(tape, "[N,3,H,W]");

    ad_tape_reset(tape);
    assert_null(ad_nn_forward(m, tape, ad_full(tape, AD_F64, 3, (int64_t[]){3, 5, 5}, 1)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "conv2d");
    assert_message_has(tape, "[3,5,5]");

    /* An image smaller than the kernel. */
    ad_tape_reset(tape);
    assert_null(ad_nn_forward(m, tape, ad_full(tape, AD_F64, 4, (int64_t[]){1, 3, 2, 5}, 1)));
    assert_message_has(tape, "conv2d");
    assert_message_has(tape, "[1,3,2,5]");
    ad_tape_free(tape);
    ad_nn_free(m);
}

static void test_other_layers_reject_inputs_that_do_not_fit(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_module *pool = NULL, *norm = NULL, *emb = NULL;
    assert_int_equal(ad_nn_maxpool2d(&pool, 2, 2, 0), AD_OK);
    assert_null(ad_nn_forward(pool, tape, ad_full(tape, AD_F64, 3, (int64_t[]){1, 4, 4}, 1)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "maxpool2d");
    assert_message_has(tape, "[1,4,4]");

    ad_tape_reset(tape);
    assert_int_equal(ad_nn_layer_norm(&norm, 4, AD_NORM_EPS, AD_F64), AD_OK);
    /* A last dim of 1 would broadcast silently against gamma [4]. */
    assert_null(ad_nn_forward(norm, tape, ad_full(tape, AD_F64, 2, (int64_t[]){3, 1}, 1)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "layer_norm");
    assert_message_has(tape, "[3,1]");

    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_tape_reset(tape);
    assert_int_equal(ad_nn_embedding(&emb, 4, 2, AD_F64, &rng), AD_OK);
    assert_null(ad_nn_embedding_lookup(emb, tape, 2, (int64_t[]){1, 4}));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "embedding");
    assert_message_has(tape, "index 4");
    ad_tape_reset(tape);
    assert_null(ad_nn_forward(emb, tape, ad_full(tape, AD_F64, 1, (int64_t[]){2}, 1)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_message_has(tape, "embedding: takes an int64 tensor of indices");
    assert_message_has(tape, "not float64 [2]");
    ad_tape_reset(tape);
    assert_null(ad_nn_embedding_lookup(pool, tape, 1, (int64_t[]){0}));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);

    /* A NULL module, and a NULL input (an earlier op failed). */
    ad_tape_reset(tape);
    assert_null(ad_nn_forward(NULL, tape, ad_scalar(tape, 1)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    ad_tape_reset(tape);
    assert_null(ad_nn_forward(norm, tape, NULL));

    /* A bad label smoothing. */
    ad_tape_reset(tape);
    ad_tensor *logits = ad_full(tape, AD_F64, 2, (int64_t[]){1, 3}, 0);
    assert_null(ad_nn_cross_entropy(logits, 1, (int64_t[]){0}, 1.0, AD_REDUCE_MEAN));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "label_smoothing");
    ad_tape_free(tape);
    ad_nn_free(pool);
    ad_nn_free(norm);
    ad_nn_free(emb);
}

static void test_forward_with_rejects_parameters_that_do_not_fit(void **state)
{
    (void)state;
    ad_module *m = make_mlp(AD_F64, 1);
    ad_tape *tape = test_tape();
    ad_tensor *x = ad_full(tape, AD_F64, 2, (int64_t[]){2, 3}, 1);
    ad_nn_param p[4];
    ad_nn_params(m, p, 4);
    ad_tensor *params[4] = {p[0].tensor, p[1].tensor, p[2].tensor, p[3].tensor};
    assert_null(ad_nn_forward_with(m, tape, x, 3, params));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "3 parameters given");

    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 2, (int64_t[]){2, 3}, 1);
    params[2] = ad_full(tape, AD_F64, 2, (int64_t[]){4, 2}, 0);
    assert_null(ad_nn_forward_with(m, tape, x, 4, params));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "2.weight");
    assert_message_has(tape, "[4,2]");
    assert_message_has(tape, "[2,4]");

    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 2, (int64_t[]){2, 3}, 1);
    params[2] = ad_full(tape, AD_F32, 2, (int64_t[]){2, 4}, 0);
    assert_null(ad_nn_forward_with(m, tape, x, 4, params));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    ad_tape_free(tape);
    ad_nn_free(m);
}

static void test_constructors_with_bad_sizes_return_bad_argument(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *m = (ad_module *)&m;
    assert_int_equal(ad_nn_linear(&m, 0, 3, true, AD_F64, &rng), AD_ERR_ARG);
    assert_null(m);
    assert_int_equal(ad_nn_linear(&m, 3, -1, true, AD_F64, &rng), AD_ERR_ARG);
    assert_int_equal(ad_nn_linear(&m, 3, 2, true, AD_F64, NULL), AD_ERR_ARG);
    assert_int_equal(ad_nn_conv2d(&m, 0, 2, 3, 1, 0, AD_F64, &rng), AD_ERR_ARG);
    assert_int_equal(ad_nn_conv2d(&m, 1, 2, 0, 1, 0, AD_F64, &rng), AD_ERR_ARG);
    assert_int_equal(ad_nn_conv2d(&m, 1, 2, 3, 0, 0, AD_F64, &rng), AD_ERR_ARG);
    assert_int_equal(ad_nn_conv2d(&m, 1, 2, 3, 1, -1, AD_F64, &rng), AD_ERR_ARG);
    assert_int_equal(ad_nn_maxpool2d(&m, 0, 1, 0), AD_ERR_ARG);
    assert_int_equal(ad_nn_maxpool2d(&m, 2, -1, 0), AD_ERR_ARG);
    assert_int_equal(ad_nn_maxpool2d(&m, 2, 0, 0), AD_ERR_ARG); /* 0 is not read as "the kernel" */
    assert_int_equal(ad_nn_maxpool2d(&m, 3, 1, 2), AD_ERR_ARG); /* padding > kernel / 2 */
    assert_int_equal(ad_nn_dropout(&m, 1.0, 1), AD_ERR_ARG);
    assert_int_equal(ad_nn_dropout(&m, -0.1, 1), AD_ERR_ARG);
    assert_int_equal(ad_nn_dropout(&m, NAN, 1), AD_ERR_ARG);
    assert_int_equal(ad_nn_layer_norm(&m, 0, 1e-5, AD_F64), AD_ERR_ARG);
    assert_int_equal(ad_nn_layer_norm(&m, 3, -1, AD_F64), AD_ERR_ARG);
    assert_int_equal(ad_nn_layer_norm(&m, 3, NAN, AD_F64), AD_ERR_ARG);
    assert_int_equal(ad_nn_embedding(&m, 0, 3, AD_F64, &rng), AD_ERR_ARG);
    assert_int_equal(ad_nn_embedding(&m, 3, 0, AD_F64, &rng), AD_ERR_ARG);
    assert_int_equal(ad_nn_activation(&m, (ad_activation)99), AD_ERR_ARG);
    assert_null(m);
    /* A NULL child: AD_ERR_ARG, and the other children are freed (ASan sees leaks). */
    ad_module *children[3] = {make_linear(2, 2, true, AD_F64, &rng), NULL,
                              make_activation(AD_ACT_TANH)};
    assert_int_equal(ad_nn_sequential(&m, 3, children), AD_ERR_ARG);
    assert_null(m);
    ad_nn_free(NULL);
}

/* F.dropout: the mask's survivors are scaled by 1/(1-p), its gradient is the
 * same mask, eval mode and p = 0 are the identity, p = 1 gives zeros. */
static void test_functional_dropout_scales_survivors_and_masks_the_gradient(void **state)
{
    (void)state;
    ad_tape *tape;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    ad_rng rng;
    ad_rng_seed(&rng, 11);
    int64_t n = 1000;
    ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, 1, &n, 2.0));
    ad_tensor *y = ad_dropout(x, 0.25, true, &rng);
    assert_non_null(y);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = ad_tensor_get(y, i);
        assert_true(v == 0 || fabs(v - 2.0 / 0.75) < 1e-15);
        kept += v != 0;
    }
    assert_in_range(kept, 700, 800); /* about 750 of 1000 */
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    for (int64_t i = 0; i < n; i++)
        assert_close(ad_tensor_get(y, i) / 2.0, ad_tensor_get(ad_tensor_grad(x), i), 1e-15, 0);
    assert_ptr_equal(ad_dropout(x, 0.25, false, &rng), x);
    assert_ptr_equal(ad_dropout(x, 0.0, true, NULL), x);
    assert_close(0, ad_tensor_get(ad_dropout(x, 1.0, true, &rng), 7), 0, 0);
    assert_null(ad_dropout(x, 1.5, true, &rng));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "dropout: p = 1.5 must be in [0, 1]");
    ad_tape_free(tape);
}

/* F.embedding over a persistent table, with an index of shape [2, 2]. */
static void test_functional_embedding_gathers_rows_and_accumulates_their_gradient(void **state)
{
    (void)state;
    ad_tape *tape;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 2, (int64_t[]){3, 2}, true), AD_OK);
    for (int k = 0; k < 6; k++)
        ad_tensor_set(w, k, k + 1);
    ad_tensor *idx = ad_tape_tensor(tape, AD_I64, 2, (int64_t[]){2, 2}, (int64_t[]){2, 0, 2, 1});
    ad_tensor *y = ad_embedding(idx, w);
    assert_non_null(y);
    assert_int_equal(ad_tensor_ndim(y), 3);
    const double want[8] = {5, 6, 1, 2, 5, 6, 3, 4};
    for (int k = 0; k < 8; k++)
        assert_close(want[k], ad_tensor_get(y, k), 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    const double grad[6] = {1, 1, 1, 1, 2, 2};
    for (int k = 0; k < 6; k++)
        assert_close(grad[k], ad_tensor_get(ad_tensor_grad(w), k), 0, 0);
    ad_tensor *bad = ad_tape_tensor(tape, AD_I64, 1, (int64_t[]){1}, (int64_t[]){3});
    assert_null(ad_embedding(bad, w));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "embedding: index 3 (entry 0) out of range [0, 3)");
    ad_tape_clear_error(tape);
    assert_null(ad_embedding(ad_full(tape, AD_F64, 1, (int64_t[]){1}, 0.0), w));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    ad_tape_free(tape);
    ad_tensor_free(w);
}

/* The names renamed in docs/names.md still work, as deprecated aliases that
 * give the same results as the new names. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void test_renamed_functions_keep_their_old_names_for_one_release(void **state)
{
    (void)state;
    ad_tape *tape;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    int64_t n = 3;
    const double v[3] = {0.5, -1.0, 2.0}, w[3] = {1.0, 0.0, 1.0};
    ad_tensor *a = ad_tensor_from_doubles(tape, AD_F64, 1, &n, v);
    ad_tensor *b = ad_tensor_new(tape, AD_F64, 1, &n, w);
    assert_non_null(a);
    assert_non_null(b);
    assert_close(ad_tensor_get(ad_mse_loss(a, b), 0), ad_tensor_get(ad_mse(a, b), 0), 0, 0);
    assert_close(ad_tensor_get(ad_mse(a, b), 0), (0.25 + 1.0 + 1.0) / 3, 1e-15, 0);
    assert_close(ad_tensor_get(ad_nn_binary_cross_entropy_with_logits(a, b, AD_REDUCE_SUM), 0),
                 ad_tensor_get(ad_nn_bce_with_logits(a, b, AD_REDUCE_SUM), 0), 0, 0);
    assert_close(ad_lr_step(0.1, 5, 2, 0.5), 0.025, 1e-15, 0);
    assert_close(ad_lr_cosine(1.0, 0.0, 3, 0, 6), ad_optim_lr_cosine(1.0, 0.0, 3, 0, 6), 0, 0);
    ad_tensor *p;
    assert_int_equal(ad_tensor_create(&p, AD_F64, 1, &n, true), AD_OK);
    ad_tensor_set(ad_tensor_grad(p), 0, 3.0);
    ad_tensor_set(ad_tensor_grad(p), 1, 4.0);
    assert_close(ad_nn_clip_grad_norm(1, &p, 1.0), 5.0, 1e-15, 0);
    assert_close(ad_tensor_get(ad_tensor_grad(p), 0), 0.6, 1e-6, 0);
    ad_tensor_free(p);
    ad_tape_free(tape);
}
#pragma GCC diagnostic pop

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_gradients_in_input_weight_and_bias),
        cmocka_unit_test(test_conv2d_gradients_for_strides_and_paddings),
        cmocka_unit_test(test_maxpool2d_gradients_with_padding_and_overlapping_windows),
        cmocka_unit_test(test_flatten_gradients),
        cmocka_unit_test(test_every_activation_gradients),
        cmocka_unit_test(test_layer_norm_gradients_in_input_gamma_and_beta),
        cmocka_unit_test(test_dropout_gradients_in_train_and_eval_mode),
        cmocka_unit_test(test_embedding_gradients_accumulate_repeated_rows),
        cmocka_unit_test(test_sequential_gradients_in_input_and_all_parameters),
        cmocka_unit_test(test_forward_with_own_parameters_equals_forward),
        cmocka_unit_test(test_loss_gradients_for_both_reductions),
        cmocka_unit_test(test_conv2d_forward_matches_pytorch),
        cmocka_unit_test(test_maxpool2d_forward_and_gradient_match_pytorch),
        cmocka_unit_test(test_maxpool2d_tie_goes_to_the_first_maximum),
        cmocka_unit_test(test_maxpool2d_fast_and_general_paths_agree_on_ties_and_nans),
        cmocka_unit_test(test_sequential_refuses_the_same_child_twice),
        cmocka_unit_test(test_layer_norm_forward_matches_pytorch),
        cmocka_unit_test(test_layer_norm_module_uses_eps_as_given_zero_included),
        cmocka_unit_test(test_linear_forward_matches_pytorch),
        cmocka_unit_test(test_activations_forward_match_pytorch),
        cmocka_unit_test(test_losses_match_pytorch),
        cmocka_unit_test(test_dropout_masks_scales_and_is_seeded),
        cmocka_unit_test(test_flatten_and_embedding_forward),
        cmocka_unit_test(test_sequential_names_parameters_as_pytorch_state_dict),
        cmocka_unit_test(test_optimizer_steps_match_torch_optim),
        cmocka_unit_test(test_module_optimizers_match_torch_optim),
        cmocka_unit_test(test_optimizer_defaults_and_learning_rate),
        cmocka_unit_test(test_optimizer_rejects_tensors_it_cannot_update),
        cmocka_unit_test(test_optimizer_skips_frozen_tensors),
        cmocka_unit_test(test_optimizer_rejects_configs_torch_refuses),
        cmocka_unit_test(test_optimizer_defaults_functions_hold_torch_optim_defaults),
        cmocka_unit_test(test_adam_with_beta1_zero_takes_the_hand_computed_steps),
        cmocka_unit_test(test_adamw_with_weight_decay_zero_does_not_shrink_the_parameter),
        cmocka_unit_test(test_optimizer_refuses_a_config_not_made_by_a_defaults_function),
        cmocka_unit_test(test_clip_grad_norm_returns_the_norm_and_scales),
        cmocka_unit_test(test_learning_rate_schedules),
        cmocka_unit_test(test_mlp_learns_xor_blobs_with_adam),
        cmocka_unit_test(test_seeded_training_is_bit_identical),
        cmocka_unit_test(test_save_load_round_trip_is_bit_exact),
        cmocka_unit_test(test_optimizer_state_round_trips_and_resumes_exactly),
        cmocka_unit_test(test_load_errors_are_clear_and_leave_the_model_untouched),
        cmocka_unit_test(test_linear_with_wrong_in_features_names_layer_and_shape),
        cmocka_unit_test(test_conv2d_with_wrong_channels_or_rank_names_layer_and_shape),
        cmocka_unit_test(test_other_layers_reject_inputs_that_do_not_fit),
        cmocka_unit_test(test_forward_with_rejects_parameters_that_do_not_fit),
        cmocka_unit_test(test_constructors_with_bad_sizes_return_bad_argument),
        cmocka_unit_test(test_renamed_functions_keep_their_old_names_for_one_release),
        cmocka_unit_test(test_functional_dropout_scales_survivors_and_masks_the_gradient),
        cmocka_unit_test(test_functional_embedding_gathers_rows_and_accumulates_their_gradient),
    };
    return cmocka_run_group_tests(tests, temp_dir_create, temp_dir_remove);
}
