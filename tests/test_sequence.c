/* Sequence layers (autodiff/sequence.h): RNN, LSTM, GRU, attention, positions
 * and the transformer encoder layer. Each is gradchecked and gradgradchecked
 * in float64 in its inputs and parameters; each loads a PyTorch 1.13
 * state_dict (written by tests/sequence_torch.py, argv[1]) and gives torch's
 * outputs and gradients to 1e-10 (those tests skip without torch); truncated
 * backpropagation through time, masks and bad input are tested too. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autodiff/sequence.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define PYTHON "/usr/bin/python3"

static const char *script;  /* tests/sequence_torch.py */
static char torch_dir[256]; /* its files, or "" when torch is absent */

/* ==== Gradchecks through ad_nn_forward_n_with ======================================= */

/* What a gradchecked call of a module needs beyond the function's inputs:
 * the module, the layout of its inputs ("d" a differentiable input taken
 * from the function's inputs in order, "-" left out, "c" the constant
 * constant[i], a mask), and how many outputs to ask for. The function's
 * inputs after the "d" ones are the module's parameters. */
typedef struct layer_call {
    ad_module *m;
    const char *layout;
    size_t n_out;
    ad_tensor *constant[6];
} layer_call;

static size_t data_inputs(const layer_call *c)
{
    size_t d = 0;
    for (const char *p = c->layout; *p; p++)
        d += *p == 'd';
    return d;
}

/* Every output of the call, flattened and concatenated. */
static ad_tensor *layer_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    layer_call *c = ctx;
    ad_tensor *args[6] = {NULL}, *out[4] = {NULL}, *flat[4];
    size_t d = 0, n_in = strlen(c->layout);
    for (size_t i = 0; i < n_in; i++)
        args[i] = c->layout[i] == 'd' ? in[d++] : c->layout[i] == 'c' ? c->constant[i] : NULL;
    if (ad_nn_forward_n_with(c->m, tape, n_in, args, c->n_out, out, n - d, in + d) != AD_OK)
        return NULL;
    size_t k = 0;
    for (size_t j = 0; j < c->n_out; j++)
        if (out[j])
            flat[k++] = ad_reshape(out[j], 1, (int64_t[]){ad_tensor_numel(out[j])});
    return ad_concat(k, flat, 0);
}

/* Gradchecks c at random data inputs of the given shapes and random parameters. */
static void check_layer(const char *what, layer_call *c, const int64_t shapes[][4],
                        const int *ndims, uint64_t seed)
{
    ad_tape *tape = test_tape();
    ad_tensor *inputs[17];
    ad_nn_param p[16];
    size_t np = ad_nn_params(c->m, p, COUNT(p)), nd = data_inputs(c);
    assert_true(np <= COUNT(p) && nd + np <= COUNT(inputs));
    for (size_t i = 0; i < nd; i++)
        inputs[i] = test_random(tape, &seed, ndims[i], shapes[i], -1, 1);
    for (size_t i = 0; i < np; i++)
        inputs[nd + i] = test_random(tape, &seed, ad_tensor_ndim(p[i].tensor),
                                     ad_tensor_shape(p[i].tensor), -0.7, 0.7);
    check_gradients(what, layer_function, c, nd + np, inputs, seed);
    ad_tape_free(tape);
}

static ad_module *make_rnn(ad_rnn_mode mode, int64_t in, int64_t hidden, int layers, bool bidir,
                           bool batch_first, bool bias)
{
    ad_rng rng;
    ad_rng_seed(&rng, 3);
    ad_rnn_config c = ad_rnn_defaults(mode, in, hidden);
    c.num_layers = layers;
    c.bidirectional = bidir;
    c.batch_first = batch_first;
    c.bias = bias;
    ad_module *m = NULL;
    assert_int_equal(ad_nn_rnn(&m, &c, AD_F64, &rng), AD_OK);
    return m;
}

static void test_lstm_gradchecks_in_input_states_and_parameters(void **state)
{
    (void)state;
    layer_call c = {make_rnn(AD_LSTM, 2, 3, 1, true, false, true), "ddd", 3, {NULL}};
    const int64_t shapes[3][4] = {{3, 2, 2}, {2, 2, 3}, {2, 2, 3}};
    check_layer("lstm bidirectional", &c, shapes, (int[]){3, 3, 3}, 1);
    ad_nn_free(c.m);
}

static void test_two_layer_gru_gradchecks_batch_first(void **state)
{
    (void)state;
    layer_call c = {make_rnn(AD_GRU, 2, 2, 2, false, true, true), "dd", 2, {NULL}};
    const int64_t shapes[2][4] = {{2, 3, 2}, {2, 2, 2}};
    check_layer("gru 2 layers", &c, shapes, (int[]){3, 3}, 2);
    ad_nn_free(c.m);
}

static void test_rnn_gradchecks_tanh_and_relu_unbatched_without_bias(void **state)
{
    (void)state;
    layer_call c = {make_rnn(AD_RNN_TANH, 2, 3, 2, false, false, false), "dd", 2, {NULL}};
    const int64_t shapes[2][4] = {{4, 2}, {2, 3}};
    check_layer("rnn tanh unbatched", &c, shapes, (int[]){2, 2}, 3);
    ad_nn_free(c.m);
    /* relu: random points keep away from its kink with probability 1 */
    c.m = make_rnn(AD_RNN_RELU, 2, 3, 1, true, false, true);
    const int64_t shapes3[2][4] = {{3, 2, 2}, {2, 2, 3}};
    check_layer("rnn relu", &c, shapes3, (int[]){3, 3}, 4);
    ad_nn_free(c.m);
}

static ad_module *make_mha(int64_t e, int64_t heads, int64_t kdim, int64_t vdim, bool batch_first)
{
    ad_rng rng;
    ad_rng_seed(&rng, 5);
    ad_mha_config c = ad_mha_defaults(e, heads);
    c.kdim = kdim;
    c.vdim = vdim;
    c.batch_first = batch_first;
    ad_module *m = NULL;
    assert_int_equal(ad_nn_multihead_attention(&m, &c, AD_F64, &rng), AD_OK);
    return m;
}

/* A persistent bool mask from 0/1 values. */
static ad_tensor *bool_mask(int ndim, const int64_t *shape, const unsigned char *v)
{
    ad_tensor *t = NULL;
    assert_int_equal(ad_tensor_create(&t, AD_BOOL, ndim, shape, false), AD_OK);
    memcpy(ad_tensor_data(t), v, (size_t)ad_tensor_numel(t));
    return t;
}

static void test_multihead_attention_gradchecks_with_masks(void **state)
{
    (void)state;
    /* packed self-attention: a key padding mask and a causal mask (bool) */
    const unsigned char kpm[6] = {0, 0, 0, 0, 1, 1}, causal[9] = {0, 1, 1, 0, 0, 1, 0, 0, 0};
    layer_call c = {make_mha(4, 2, 4, 4, false), "d--cc", 2, {NULL}};
    c.constant[3] = bool_mask(2, (int64_t[]){2, 3}, kpm);
    c.constant[4] = bool_mask(2, (int64_t[]){3, 3}, causal);
    const int64_t shapes[1][4] = {{3, 2, 4}};
    check_layer("mha self", &c, shapes, (int[]){3}, 5);
    ad_tensor_free(c.constant[3]);
    ad_tensor_free(c.constant[4]);
    ad_nn_free(c.m);
    /* separate projections, batch first, query/key/value all differentiable */
    layer_call x = {make_mha(4, 2, 3, 2, true), "ddd", 2, {NULL}};
    const int64_t xs[3][4] = {{2, 2, 4}, {2, 3, 3}, {2, 3, 2}};
    check_layer("mha cross", &x, xs, (int[]){3, 3, 3}, 6);
    ad_nn_free(x.m);
}

static void test_transformer_encoder_layer_gradchecks_pre_and_post_norm(void **state)
{
    (void)state;
    const unsigned char causal[9] = {0, 1, 1, 0, 0, 1, 0, 0, 0};
    for (int pre = 0; pre < 2; pre++) {
        ad_rng rng;
        ad_rng_seed(&rng, 7);
        ad_transformer_config tc = ad_transformer_defaults(4, 2);
        tc.dim_feedforward = 6;
        tc.dropout = 0;
        tc.norm_first = pre;
        tc.activation = pre ? AD_ACT_GELU : AD_ACT_RELU;
        layer_call c = {NULL, "dc", 1, {NULL}};
        assert_int_equal(ad_nn_transformer_encoder_layer(&c.m, &tc, AD_F64, &rng), AD_OK);
        assert_int_equal(ad_nn_param_count(c.m), 12);
        c.constant[1] = bool_mask(2, (int64_t[]){3, 3}, causal);
        const int64_t shapes[1][4] = {{3, 2, 4}};
        check_layer(pre ? "encoder pre-norm" : "encoder post-norm", &c, shapes, (int[]){3}, 8);
        ad_tensor_free(c.constant[1]);
        ad_nn_free(c.m);
    }
}

/* ==== States, cells, long sequences ============================================= */

/* A tape tensor of values v[i] = sin(seed + 0.7 i). */
static ad_tensor *wave(ad_tape *tape, int ndim, const int64_t *shape, double seed)
{
    ad_tensor *t = ad_tape_tensor(tape, AD_F64, ndim, shape, NULL);
    double *d = ad_tensor_data(t);
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        d[i] = sin(seed + 0.7 * (double)i);
    return t;
}

/* Truncated backpropagation through time: the states carried from one chunk
 * to the next (copied into persistent tensors across tape resets) give the
 * states of one pass over the whole sequence; and within one tape, a detached
 * state stops the gradient: the second chunk's loss does not reach the first
 * chunk's input, and its gradient in the second chunk's input is the one of a
 * fresh start from constant states. */
static void test_truncated_backprop_through_time_carries_states_and_cuts_gradients(void **state)
{
    (void)state;
    ad_module *m = make_rnn(AD_LSTM, 2, 3, 1, false, false, true);
    ad_tape *tape = test_tape();
    const int64_t whole[3] = {6, 2, 2}, chunk[3] = {2, 2, 2}, st[3] = {1, 2, 3};
    ad_tensor *out[3];
    assert_int_equal(ad_nn_forward_n(m, tape, 1, (ad_tensor *[]){wave(tape, 3, whole, 0)}, 3, out),
                     AD_OK);
    double h_want[6], c_want[6];
    assert_int_equal(ad_tensor_copy_to_doubles(out[1], h_want), AD_OK);
    assert_int_equal(ad_tensor_copy_to_doubles(out[2], c_want), AD_OK);
    ad_tensor *h = NULL, *c = NULL;
    assert_int_equal(ad_tensor_create(&h, AD_F64, 3, st, false), AD_OK);
    assert_int_equal(ad_tensor_create(&c, AD_F64, 3, st, false), AD_OK);
    for (int k = 0; k < 3; k++) {
        ad_tape_reset(tape);
        ad_tensor *x = ad_slice(wave(tape, 3, whole, 0), 0, 2 * k, 2 * k + 2, 1);
        assert_int_equal(ad_nn_forward_n(m, tape, 3, (ad_tensor *[]){x, h, c}, 3, out), AD_OK);
        assert_int_equal(ad_backward(ad_sum_all(out[0]), NULL), AD_OK);
        assert_int_equal(ad_tensor_assign(h, out[1]), AD_OK);
        assert_int_equal(ad_tensor_assign(c, out[2]), AD_OK);
    }
    assert_values(h, 6, h_want, 1e-14, 1e-15);
    assert_values(c, 6, c_want, 1e-14, 1e-15);
    /* One tape: chunk 2 starts from chunk 1's detached states. */
    ad_tape_reset(tape);
    ad_tensor *x1 = ad_requires_grad(wave(tape, 3, chunk, 1));
    ad_tensor *x2 = ad_requires_grad(wave(tape, 3, chunk, 2));
    assert_int_equal(ad_nn_forward_n(m, tape, 1, &x1, 3, out), AD_OK);
    ad_tensor *h1 = ad_detach(out[1]), *c1 = ad_detach(out[2]);
    assert_int_equal(ad_nn_forward_n(m, tape, 3, (ad_tensor *[]){x2, h1, c1}, 3, out), AD_OK);
    ad_tensor *loss = ad_sum_all(ad_square(out[0])), *g[2];
    assert_int_equal(ad_grad(1, &loss, NULL, 2, (ad_tensor *[]){x1, x2}, g, NULL), AD_OK);
    const double zeros[8] = {0};
    assert_exact(g[0], 8, zeros);
    double g2[8];
    assert_int_equal(ad_tensor_copy_to_doubles(g[1], g2), AD_OK);
    /* the same chunk from constant states with the same values */
    ad_tensor *h1c = ad_tape_tensor(tape, AD_F64, 3, st, ad_tensor_data(h1));
    ad_tensor *c1c = ad_tape_tensor(tape, AD_F64, 3, st, ad_tensor_data(c1));
    ad_tensor *x2c = ad_requires_grad(wave(tape, 3, chunk, 2));
    assert_int_equal(ad_nn_forward_n(m, tape, 3, (ad_tensor *[]){x2c, h1c, c1c}, 3, out), AD_OK);
    assert_values(grad_of_sum(ad_square(out[0]), x2c), 8, g2, 1e-14, 1e-15);
    ad_tensor_free(h);
    ad_tensor_free(c);
    ad_tape_free(tape);
    ad_nn_free(m);
}

/* A 300-step GRU (more steps than any fixed input limit of concat or stack)
 * equals a loop of ad_gru_cell over the layer's own parameters, and its
 * gradient reaches the first step. */
static void test_long_sequence_equals_a_loop_of_cells(void **state)
{
    (void)state;
    ad_module *m = make_rnn(AD_GRU, 2, 3, 1, false, false, true);
    ad_tape *tape = test_tape();
    const int64_t shape[3] = {300, 1, 2};
    ad_tensor *x = ad_requires_grad(wave(tape, 3, shape, 0.3)), *out[2];
    assert_int_equal(ad_nn_forward_n(m, tape, 1, &x, 2, out), AD_OK);
    ad_nn_param p[4];
    assert_int_equal(ad_nn_params(m, p, 4), 4);
    ad_tensor *h = ad_full(tape, AD_F64, 2, (int64_t[]){1, 3}, 0);
    for (int64_t t = 0; t < 300; t++) {
        ad_tensor *xt = ad_squeeze(ad_slice(x, 0, t, t + 1, 1), 1, (int[]){0});
        h = ad_gru_cell(xt, h, p[0].tensor, p[1].tensor, p[2].tensor, p[3].tensor);
    }
    double want[3];
    assert_int_equal(ad_tensor_copy_to_doubles(h, want), AD_OK);
    assert_values(out[1], 3, want, 1e-13, 1e-14);
    ad_tensor *g = grad_of_sum(out[1], x);
    assert_true(ad_tensor_get(g, 0) != 0 && isfinite(ad_tensor_get(g, 0)));
    ad_tape_free(tape);
    ad_nn_free(m);
}

/* One step of the LSTM layer is ad_lstm_cell, and float32 agrees with float64. */
static void test_lstm_cell_is_one_step_of_the_layer_in_both_dtypes(void **state)
{
    (void)state;
    for (int f32 = 0; f32 < 2; f32++) {
        ad_rng rng;
        ad_rng_seed(&rng, 3);
        ad_rnn_config rc = ad_rnn_defaults(AD_LSTM, 2, 3);
        ad_module *m = NULL;
        ad_dtype dt = f32 ? AD_F32 : AD_F64;
        assert_int_equal(ad_nn_rnn(&m, &rc, dt, &rng), AD_OK);
        ad_tape *tape = test_tape();
        ad_tensor *x = ad_cast(wave(tape, 2, (int64_t[]){4, 2}, 1), dt);
        ad_tensor *h0 = ad_cast(wave(tape, 2, (int64_t[]){4, 3}, 2), dt);
        ad_tensor *c0 = ad_cast(wave(tape, 2, (int64_t[]){4, 3}, 3), dt);
        ad_tensor *out[3];
        assert_int_equal(ad_nn_forward_n(m, tape, 3,
                                         (ad_tensor *[]){ad_unsqueeze(x, 0), ad_unsqueeze(h0, 0),
                                                         ad_unsqueeze(c0, 0)},
                                         3, out),
                         AD_OK);
        ad_nn_param p[4];
        ad_nn_params(m, p, 4);
        ad_tensor *c1;
        ad_tensor *h1 =
            ad_lstm_cell(x, h0, c0, p[0].tensor, p[1].tensor, p[2].tensor, p[3].tensor, &c1);
        double hw[12], cw[12];
        assert_int_equal(ad_tensor_copy_to_doubles(h1, hw), AD_OK);
        assert_int_equal(ad_tensor_copy_to_doubles(c1, cw), AD_OK);
        double tol = f32 ? 1e-6 : 1e-15;
        assert_values(out[1], 12, hw, tol, tol);
        assert_values(out[2], 12, cw, tol, tol);
        assert_values(out[0], 12, hw, tol, tol);
        ad_tape_free(tape);
        ad_nn_free(m);
    }
}

/* ==== Attention as a function, positions ======================================== */

static void test_sdpa_causal_equals_its_explicit_mask_and_rows_sum_to_one(void **state)
{
    ad_tape *tape = *state;
    const int64_t sq[3] = {2, 4, 3}, sv[3] = {2, 4, 2};
    ad_tensor *q = wave(tape, 3, sq, 0), *k = wave(tape, 3, sq, 1), *v = wave(tape, 3, sv, 2);
    ad_tensor *w1, *w2;
    ad_tensor *y1 =
        ad_scaled_dot_product_attention(q, k, v, &(ad_sdpa_opts){.is_causal = true}, &w1);
    /* true = may attend: the lower triangle */
    unsigned char allowed[16];
    for (int i = 0; i < 16; i++)
        allowed[i] = i % 4 <= i / 4;
    ad_tensor *mask = ad_tape_tensor(tape, AD_BOOL, 2, (int64_t[]){4, 4}, allowed);
    ad_tensor *y2 =
        ad_scaled_dot_product_attention(q, k, v, &(ad_sdpa_opts){.attn_mask = mask}, &w2);
    double a[16], b[32];
    assert_int_equal(ad_tensor_copy_to_doubles(y1, a), AD_OK);
    assert_values(y2, 16, a, 0, 0);
    assert_int_equal(ad_tensor_copy_to_doubles(w1, b), AD_OK);
    assert_values(w2, 32, b, 0, 0);
    for (int r = 0; r < 8; r++) {
        double sum = 0;
        for (int j = 0; j < 4; j++)
            sum += b[r * 4 + j];
        assert_close(1, sum, 1e-15, 0);
        assert_true(b[r * 4 + 3] == 0 || r % 4 == 3); /* the last key only for the last query */
    }
    /* the first query sees only the first key: its output is v's first row */
    assert_close(ad_tensor_get(v, 0), a[0], 1e-15, 0);
    /* a float mask of zeros changes nothing; a custom scale is used */
    ad_tensor *zero = ad_full(tape, AD_F64, 2, (int64_t[]){4, 4}, 0);
    ad_tensor *y3 =
        ad_scaled_dot_product_attention(q, k, v, &(ad_sdpa_opts){.attn_mask = zero}, NULL);
    ad_tensor *y4 = ad_scaled_dot_product_attention(
        q, k, v, &(ad_sdpa_opts){.has_scale = true, .scale = 1 / sqrt(3.0)}, NULL);
    assert_int_equal(ad_tensor_copy_to_doubles(y3, b), AD_OK);
    assert_values(y4, 16, b, 1e-15, 1e-15);
}

static void test_sdpa_fully_masked_row_is_nan_and_bad_input_is_an_error(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {2, 3};
    ad_tensor *q = wave(tape, 2, s, 0);
    unsigned char none[4] = {0, 0, 1, 1};
    ad_tensor *mask = ad_tape_tensor(tape, AD_BOOL, 2, (int64_t[]){2, 2}, none);
    ad_tensor *y =
        ad_scaled_dot_product_attention(q, q, q, &(ad_sdpa_opts){.attn_mask = mask}, NULL);
    assert_true(isnan(ad_tensor_get(y, 0)));    /* row 0 sees no key, as torch's NaN */
    assert_true(isfinite(ad_tensor_get(y, 3))); /* row 1 sees both */
    ad_tensor *k = wave(tape, 2, (int64_t[]){2, 4}, 1);
    assert_null(ad_scaled_dot_product_attention(q, k, q, NULL, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "scaled_dot_product_attention: q [2,3], k [2,4]");
    ad_tape_reset(tape);
    q = wave(tape, 2, s, 0);
    assert_null(ad_scaled_dot_product_attention(q, q, q, &(ad_sdpa_opts){.dropout_p = 0.5}, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
}

static void test_sdpa_dropout_is_seeded_and_rescales(void **state)
{
    ad_tape *tape = *state;
    const int64_t s[2] = {8, 4};
    ad_tensor *q = wave(tape, 2, s, 0), *w1, *w2, *w0;
    ad_rng r1, r2;
    ad_rng_seed(&r1, 5);
    ad_rng_seed(&r2, 5);
    ad_scaled_dot_product_attention(q, q, q, NULL, &w0);
    ad_scaled_dot_product_attention(q, q, q, &(ad_sdpa_opts){.dropout_p = 0.5, .rng = &r1}, &w1);
    ad_scaled_dot_product_attention(q, q, q, &(ad_sdpa_opts){.dropout_p = 0.5, .rng = &r2}, &w2);
    int zeros = 0;
    for (int i = 0; i < 64; i++) {
        double a = ad_tensor_get(w1, i), base = ad_tensor_get(w0, i);
        assert_true(a == ad_tensor_get(w2, i));
        assert_true(a == 0 || fabs(a - 2 * base) <= 1e-15);
        zeros += a == 0;
    }
    assert_true(zeros > 10 && zeros < 54);
}

static void test_positions_sinusoidal_values_and_learned_table(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *pe = ad_sinusoidal_positions(tape, 3, 4, AD_F64);
    /* p = 2: sin(2), cos(2), sin(2 / 100), cos(2 / 100) */
    const double row2[4] = {sin(2.0), cos(2.0), sin(0.02), cos(0.02)};
    for (int i = 0; i < 4; i++)
        assert_close(row2[i], ad_tensor_get(pe, 8 + i), 1e-15, 1e-16);
    assert_close(0, ad_tensor_get(pe, 0), 0, 0);
    assert_close(1, ad_tensor_get(pe, 1), 0, 0);
    assert_null(ad_sinusoidal_positions(tape, 0, 4, AD_F64));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    ad_tape_reset(tape);
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    for (int bf = 0; bf < 2; bf++) {
        ad_module *m = NULL;
        assert_int_equal(ad_nn_positional_embedding(&m, 5, 2, bf, AD_F64, &rng), AD_OK);
        ad_nn_param p;
        ad_nn_params(m, &p, 1);
        /* [T=3, N=2, 2] sequence first, [N=2, T=3, 2] batch first */
        ad_tensor *x =
            ad_full(tape, AD_F64, 3, bf ? (int64_t[]){2, 3, 2} : (int64_t[]){3, 2, 2}, 1);
        ad_tensor *y = ad_nn_forward(m, tape, x);
        for (int64_t i = 0; i < 12; i++) {
            int64_t t = bf ? i / 2 % 3 : i / 4, f = i % 2;
            assert_close(1 + ad_tensor_get(p.tensor, t * 2 + f), ad_tensor_get(y, i), 1e-15, 0);
        }
        ad_tensor *long_x = ad_full(tape, AD_F64, 2, (int64_t[]){6, 2}, 1);
        assert_null(ad_nn_forward(m, tape, long_x));
        assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
        assert_message_has(tape, "positional_embedding: input [6,2]");
        ad_tape_reset(tape);
        ad_nn_free(m);
    }
}

/* Attention dropout acts in training mode only, from the layer's own seeded
 * stream: two layers built alike drop alike, and eval mode is dropout-free. */
static void test_multihead_attention_dropout_is_seeded_and_off_in_eval_mode(void **state)
{
    (void)state;
    ad_module *m[3];
    for (int i = 0; i < 3; i++) {
        ad_rng rng;
        ad_rng_seed(&rng, 5);
        ad_mha_config c = ad_mha_defaults(4, 2);
        c.dropout = i < 2 ? 0.5 : 0;
        c.seed = 11;
        assert_int_equal(ad_nn_multihead_attention(&m[i], &c, AD_F64, &rng), AD_OK);
    }
    ad_tape *tape = test_tape();
    ad_tensor *x = wave(tape, 3, (int64_t[]){5, 2, 4}, 0), *y[3], *w[3], *out[2];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ad_nn_forward_n(m[i], tape, 1, &x, 2, out), AD_OK);
        y[i] = out[0];
        w[i] = out[1];
    }
    double a[40], b[40];
    assert_int_equal(ad_tensor_copy_to_doubles(y[0], a), AD_OK);
    assert_values(y[1], 40, a, 0, 0); /* the same seed drops the same weights */
    assert_int_equal(ad_tensor_copy_to_doubles(y[2], b), AD_OK);
    bool differs = false;
    for (int i = 0; i < 40; i++)
        differs |= a[i] != b[i];
    assert_true(differs);
    int zeros = 0; /* averaged weights: a zero needs both heads dropped */
    for (int i = 0; i < 50; i++)
        zeros += ad_tensor_get(w[0], i) == 0;
    assert_true(zeros > 0);
    ad_nn_set_training(m[0], false);
    assert_int_equal(ad_nn_forward_n(m[0], tape, 1, &x, 1, out), AD_OK);
    assert_values(out[0], 40, b, 1e-15, 1e-15);
    for (int i = 0; i < 3; i++)
        ad_nn_free(m[i]);
    ad_tape_free(tape);
}

/* ==== Bad input =================================================================== */

static void test_bad_constructor_arguments_are_refused(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *m = (ad_module *)&rng;
    ad_rnn_config rc = ad_rnn_defaults(AD_LSTM, 2, 0);
    assert_int_equal(ad_nn_rnn(&m, &rc, AD_F64, &rng), AD_ERR_ARG);
    assert_null(m);
    rc = ad_rnn_defaults(AD_GRU, 2, 2);
    rc.num_layers = 0;
    assert_int_equal(ad_nn_rnn(&m, &rc, AD_F64, &rng), AD_ERR_ARG);
    rc.num_layers = 1;
    rc.dropout = 1;
    assert_int_equal(ad_nn_rnn(&m, &rc, AD_F64, &rng), AD_ERR_ARG);
    rc.dropout = 0;
    rc.mode = (ad_rnn_mode)9;
    assert_int_equal(ad_nn_rnn(&m, &rc, AD_F64, &rng), AD_ERR_ARG);
    ad_mha_config mc = ad_mha_defaults(6, 4); /* 6 heads do not split into 4 */
    assert_int_equal(ad_nn_multihead_attention(&m, &mc, AD_F64, &rng), AD_ERR_ARG);
    ad_transformer_config tc = ad_transformer_defaults(4, 2);
    tc.layer_norm_eps = -1;
    assert_int_equal(ad_nn_transformer_encoder_layer(&m, &tc, AD_F64, &rng), AD_ERR_ARG);
    tc = ad_transformer_defaults(4, 2);
    tc.activation = AD_ACT_TANH;
    assert_int_equal(ad_nn_transformer_encoder_layer(&m, &tc, AD_F64, &rng), AD_ERR_ARG);
    assert_int_equal(ad_nn_positional_embedding(&m, 0, 2, true, AD_F64, &rng), AD_ERR_ARG);
}

static void test_inputs_that_do_not_fit_name_the_layer_and_shapes(void **state)
{
    (void)state;
    ad_module *lstm = make_rnn(AD_LSTM, 2, 3, 2, false, false, true);
    ad_module *mha = make_mha(4, 2, 4, 4, false);
    ad_tape *tape = test_tape();
    ad_tensor *out[3];
    ad_tensor *x = ad_full(tape, AD_F64, 3, (int64_t[]){2, 1, 3}, 0);
    assert_int_equal(ad_nn_forward_n(lstm, tape, 1, &x, 3, out), AD_ERR_SHAPE);
    assert_message_has(tape, "lstm: input [2,1,3] does not fit");
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 3, (int64_t[]){2, 1, 2}, 0);
    ad_tensor *h0 = ad_full(tape, AD_F64, 3, (int64_t[]){1, 1, 3}, 0);
    assert_int_equal(ad_nn_forward_n(lstm, tape, 2, (ad_tensor *[]){x, h0}, 3, out), AD_ERR_SHAPE);
    assert_message_has(tape, "lstm: h0 [1,1,3] does not fit (expected [2,1,3])");
    assert_null(out[0]);
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F32, 3, (int64_t[]){2, 1, 2}, 0);
    assert_int_equal(ad_nn_forward_n(lstm, tape, 1, &x, 3, out), AD_ERR_DTYPE);
    assert_message_has(tape, "lstm: input is float32, parameters are float64");
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 3, (int64_t[]){0, 1, 2}, 0);
    assert_int_equal(ad_nn_forward_n(lstm, tape, 1, &x, 3, out), AD_ERR_SHAPE);
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 3, (int64_t[]){3, 2, 4}, 0);
    ad_tensor *kpm = ad_cast(ad_full(tape, AD_F64, 2, (int64_t[]){2, 4}, 0), AD_BOOL);
    assert_int_equal(ad_nn_forward_n(mha, tape, 4, (ad_tensor *[]){x, NULL, NULL, kpm}, 2, out),
                     AD_ERR_SHAPE);
    assert_message_has(tape, "multihead_attention: key_padding_mask [2,4] does not fit");
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 3, (int64_t[]){3, 2, 5}, 0);
    assert_int_equal(ad_nn_forward_n(mha, tape, 1, &x, 2, out), AD_ERR_SHAPE);
    assert_message_has(tape, "multihead_attention: query [3,2,5]");
    ad_tape_free(tape);
    ad_nn_free(lstm);
    ad_nn_free(mha);
}

/* ==== Against PyTorch =============================================================== */

/* Runs the script into a temporary directory; torch_dir stays "" (and the
 * comparisons skip) when it exits 77, torch being absent. */
static int torch_setup(void **state)
{
    (void)state;
    torch_dir[0] = 0;
    if (!script || access(PYTHON, X_OK) != 0)
        return 0;
    char dir[] = "/tmp/ad_sequence_XXXXXX", command[1024];
    if (!mkdtemp(dir))
        return -1;
    snprintf(command, sizeof command, "%s '%s' '%s'", PYTHON, script, dir);
    int rc = system(command);
    int code = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (code == 0) {
        snprintf(torch_dir, sizeof torch_dir, "%s", dir);
        return 0;
    }
    remove_tree(dir);
    if (code == 77)
        return 0;
    fprintf(stderr, "%s exited with %d\n", command, code);
    return -1;
}

static int torch_teardown(void **state)
{
    (void)state;
    return torch_dir[0] ? remove_tree(torch_dir) : 0;
}

/* Entry `name` as a new persistent float64 tensor, or NULL if the file has none. */
static ad_tensor *load_entry(ad_safetensors *st, const char *name, bool requires_grad)
{
    int64_t i = ad_safetensors_find(st, name);
    if (i < 0)
        return NULL;
    ad_safetensors_entry e;
    assert_true(ad_safetensors_entry_at(st, (size_t)i, &e));
    ad_tensor *t = NULL;
    assert_int_equal(ad_tensor_create(&t, AD_F64, e.ndim, e.shape, requires_grad), AD_OK);
    char err[256];
    if (ad_safetensors_read(st, name, t, err, sizeof err) != AD_OK)
        fail_msg("reading %s: %s", name, err);
    return t;
}

/* t equals torch's entry `name` to 1e-10 (relative and absolute). */
static void assert_matches(const char *what, const ad_tensor *t, ad_safetensors *st,
                           const char *name)
{
    ad_tensor *want = load_entry(st, name, false);
    if (!want)
        fail_msg("%s: torch's file has no %s", what, name);
    if (!t)
        fail_msg("%s: no value for %s", what, name);
    assert_int_equal(ad_tensor_numel(t), ad_tensor_numel(want));
    assert_int_equal(ad_tensor_ndim(t), ad_tensor_ndim(want));
    for (int d = 0; d < ad_tensor_ndim(t); d++)
        assert_int_equal(ad_tensor_dim(t, d), ad_tensor_dim(want, d));
    for (int64_t i = 0; i < ad_tensor_numel(t); i++) {
        double a = ad_tensor_get(t, i), b = ad_tensor_get(want, i);
        if (!(fabs(a - b) <= 1e-10 + 1e-10 * fabs(b)))
            fail_msg("%s: %s[%lld] = %.17g, torch %.17g", what, name, (long long)i, a, b);
    }
    ad_tensor_free(want);
}

/* Loads torch's weights for `name` into m, runs it on torch's inputs, and
 * checks outputs and the gradients of sum_j sum(out_j r_j) in every input
 * and parameter. */
static void check_against_torch(const char *name, ad_module *m, size_t n_in, size_t n_out)
{
    if (!torch_dir[0]) {
        ad_nn_free(m);
        skip();
    }
    char path[512], err[256], key[128];
    snprintf(path, sizeof path, "%s/%s.safetensors", torch_dir, name);
    if (ad_nn_load(m, path, err, sizeof err) != AD_OK)
        fail_msg("%s: loading torch's state_dict: %s", name, err);
    ad_safetensors *st = NULL;
    assert_int_equal(ad_safetensors_open(&st, path, err, sizeof err), AD_OK);
    ad_tape *tape = test_tape();
    ad_tensor *in[6] = {NULL}, *masks[6] = {NULL}, *args[6] = {NULL}, *out[4] = {NULL};
    for (size_t i = 0; i < n_in; i++) {
        snprintf(key, sizeof key, "in.%zu", i);
        args[i] = in[i] = load_entry(st, key, true);
        snprintf(key, sizeof key, "mask.%zu", i);
        masks[i] = in[i] ? NULL : load_entry(st, key, false);
        if (masks[i]) /* freed after the tape, which shares its shape */
            args[i] = ad_cast(ad_tape_use(tape, masks[i]), AD_BOOL);
    }
    assert_int_equal(ad_nn_forward_n(m, tape, n_in, args, n_out, out), AD_OK);
    ad_tensor *loss = ad_scalar(tape, 0);
    ad_tensor *r[4] = {NULL};
    for (size_t j = 0; j < n_out; j++) {
        snprintf(key, sizeof key, "r.%zu", j);
        r[j] = load_entry(st, key, false);
        loss = ad_add(loss, ad_sum_all(ad_mul(out[j], r[j])));
    }
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    for (size_t j = 0; j < n_out; j++) {
        snprintf(key, sizeof key, "out.%zu", j);
        assert_matches(name, out[j], st, key);
    }
    for (size_t i = 0; i < n_in; i++)
        if (in[i]) {
            snprintf(key, sizeof key, "grad.in.%zu", i);
            assert_matches(name, ad_tensor_grad(in[i]), st, key);
        }
    ad_nn_param p[32];
    size_t np = ad_nn_params(m, p, COUNT(p));
    for (size_t k = 0; k < np; k++) {
        snprintf(key, sizeof key, "grad.%s", p[k].name);
        assert_matches(name, ad_tensor_grad(p[k].tensor), st, key);
    }
    ad_tape_free(tape);
    for (size_t i = 0; i < 6; i++) {
        ad_tensor_free(in[i]);
        ad_tensor_free(masks[i]);
    }
    for (size_t j = 0; j < 4; j++)
        ad_tensor_free(r[j]);
    ad_safetensors_close(st);
    ad_nn_free(m);
}

static void test_lstm_matches_torch(void **state)
{
    (void)state;
    check_against_torch("lstm", make_rnn(AD_LSTM, 3, 4, 2, true, false, true), 3, 3);
}

static void test_gru_matches_torch(void **state)
{
    (void)state;
    check_against_torch("gru", make_rnn(AD_GRU, 3, 4, 2, false, true, true), 2, 2);
}

static void test_rnn_matches_torch(void **state)
{
    (void)state;
    check_against_torch("rnn_relu", make_rnn(AD_RNN_RELU, 3, 4, 1, true, false, false), 2, 2);
    check_against_torch("rnn_tanh", make_rnn(AD_RNN_TANH, 2, 3, 1, false, true, true), 2, 2);
}

static void test_multihead_attention_matches_torch(void **state)
{
    (void)state;
    /* self-attention: query only, with a key padding mask and a causal mask */
    check_against_torch("mha_self", make_mha(8, 2, 8, 8, false), 5, 2);
    /* separate projections, batch first, a float attn_mask */
    check_against_torch("mha_cross", make_mha(6, 3, 4, 5, true), 5, 2);
}

static ad_module *make_encoder(int64_t d, int64_t heads, int64_t ff, bool gelu, bool batch_first,
                               bool norm_first)
{
    ad_rng rng;
    ad_rng_seed(&rng, 9);
    ad_transformer_config c = ad_transformer_defaults(d, heads);
    c.dim_feedforward = ff;
    c.dropout = 0;
    c.activation = gelu ? AD_ACT_GELU : AD_ACT_RELU;
    c.batch_first = batch_first;
    c.norm_first = norm_first;
    ad_module *m = NULL;
    assert_int_equal(ad_nn_transformer_encoder_layer(&m, &c, AD_F64, &rng), AD_OK);
    return m;
}

static void test_transformer_encoder_layers_match_torch(void **state)
{
    (void)state;
    check_against_torch("encoder_pre", make_encoder(8, 2, 16, true, true, true), 3, 1);
    check_against_torch("encoder_post", make_encoder(8, 4, 12, false, false, false), 3, 1);
}

int main(int argc, char **argv)
{
    script = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lstm_gradchecks_in_input_states_and_parameters),
        cmocka_unit_test(test_two_layer_gru_gradchecks_batch_first),
        cmocka_unit_test(test_rnn_gradchecks_tanh_and_relu_unbatched_without_bias),
        cmocka_unit_test(test_multihead_attention_gradchecks_with_masks),
        cmocka_unit_test(test_transformer_encoder_layer_gradchecks_pre_and_post_norm),
        cmocka_unit_test(test_truncated_backprop_through_time_carries_states_and_cuts_gradients),
        cmocka_unit_test(test_long_sequence_equals_a_loop_of_cells),
        cmocka_unit_test(test_lstm_cell_is_one_step_of_the_layer_in_both_dtypes),
        TAPE_TEST(test_sdpa_causal_equals_its_explicit_mask_and_rows_sum_to_one),
        TAPE_TEST(test_sdpa_fully_masked_row_is_nan_and_bad_input_is_an_error),
        TAPE_TEST(test_sdpa_dropout_is_seeded_and_rescales),
        TAPE_TEST(test_positions_sinusoidal_values_and_learned_table),
        cmocka_unit_test(test_multihead_attention_dropout_is_seeded_and_off_in_eval_mode),
        cmocka_unit_test(test_bad_constructor_arguments_are_refused),
        cmocka_unit_test(test_inputs_that_do_not_fit_name_the_layer_and_shapes),
        cmocka_unit_test(test_lstm_matches_torch),
        cmocka_unit_test(test_gru_matches_torch),
        cmocka_unit_test(test_rnn_matches_torch),
        cmocka_unit_test(test_multihead_attention_matches_torch),
        cmocka_unit_test(test_transformer_encoder_layers_match_torch),
    };
    return cmocka_run_group_tests(tests, torch_setup, torch_teardown);
}
