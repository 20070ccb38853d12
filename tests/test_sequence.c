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
    ad_tensor *in[6] = {NULL}, *args[6] = {NULL}, *out[4] = {NULL};
    for (size_t i = 0; i < n_in; i++) {
        snprintf(key, sizeof key, "in.%zu", i);
        args[i] = in[i] = load_entry(st, key, true);
        snprintf(key, sizeof key, "mask.%zu", i);
        ad_tensor *mask = in[i] ? NULL : load_entry(st, key, false);
        if (mask) {
            args[i] = ad_cast(ad_tape_use(tape, mask), AD_BOOL);
            ad_tensor_free(mask); /* the cast is a copy on the tape */
        }
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
    for (size_t i = 0; i < 6; i++)
        ad_tensor_free(in[i]);
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
        cmocka_unit_test(test_lstm_matches_torch),
        cmocka_unit_test(test_gru_matches_torch),
        cmocka_unit_test(test_rnn_matches_torch),
        cmocka_unit_test(test_multihead_attention_matches_torch),
        cmocka_unit_test(test_transformer_encoder_layers_match_torch),
    };
    return cmocka_run_group_tests(tests, torch_setup, torch_teardown);
}
