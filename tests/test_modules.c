/* User-written modules (ad_module_create): gradients through
 * ad_nn_forward_with, names from the tree however it was put together,
 * checkpoints, optimizers, training mode, every refused argument, and every
 * allocation failure while building a model.
 *
 * This executable defines malloc, calloc, realloc and free itself (as
 * test_steady_state does) to fail the k-th allocation on request; the library
 * is linked statically, so its calls land here. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "autodiff/layers.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__SANITIZE_ADDRESS__)
#define FAILING_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define FAILING_MALLOC 0
#endif
#endif
#ifndef FAILING_MALLOC
#define FAILING_MALLOC 1
#endif

/* ==== A failing allocator ========================================================= */

/* While `sweeping`, the allocation after `countdown` more fails once, and
 * `live` counts blocks allocated minus blocks freed. */
static bool sweeping, failed;
static long countdown, live;

#if FAILING_MALLOC
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void __libc_free(void *ptr);

/* True when this allocation is the one to fail. */
static bool fail_now(void)
{
    if (!sweeping || failed)
        return false;
    if (countdown-- > 0)
        return false;
    failed = true;
    return true;
}

void *malloc(size_t size)
{
    if (fail_now())
        return NULL;
    void *p = __libc_malloc(size);
    live += sweeping && p;
    return p;
}

void *calloc(size_t count, size_t size)
{
    if (fail_now())
        return NULL;
    void *p = __libc_calloc(count, size);
    live += sweeping && p;
    return p;
}

void *realloc(void *ptr, size_t size)
{
    if (fail_now())
        return NULL;
    void *p = __libc_realloc(ptr, size);
    live += sweeping && p && !ptr;
    return p;
}

void free(void *ptr)
{
    live -= sweeping && ptr;
    __libc_free(ptr);
}
#endif

/* ==== User modules ================================================================ */

/* A gated unit: y = sigmoid(x Wg^T + bg) * tanh(x Wv^T + bv), x [..., in] ->
 * [..., out]. Parameters, in order: w_gate [out, in], b_gate [out],
 * w_value [out, in], b_value [out]. */
typedef struct gated {
    int64_t in, out;
} gated;

static ad_tensor *gated_forward(ad_module_call *call, ad_tensor *x)
{
    const gated *g = ad_module_call_context(call);
    if (ad_tensor_ndim(x) < 1 || ad_tensor_dim(x, -1) != g->in) {
        ad_tape_set_error(ad_module_call_tape(call), AD_ERR_SHAPE,
                          "gated: input's last dim is not %lld", (long long)g->in);
        return NULL;
    }
    ad_tensor *gate = ad_add(ad_matmul_t(x, ad_module_call_param(call, 0), false, true),
                             ad_module_call_param(call, 1));
    ad_tensor *value = ad_add(ad_matmul_t(x, ad_module_call_param(call, 2), false, true),
                              ad_module_call_param(call, 3));
    return ad_mul(ad_sigmoid(gate), ad_tanh(value));
}

static const ad_module_type gated_type = {
    .name = "gated", .forward = gated_forward, .free_context = free};

/* Makes a gated unit with parameters uniform in [-0.5, 0.5); returns the
 * first failure (nothing is left behind). */
static ad_status gated_create(ad_module **out, int64_t in, int64_t features, ad_dtype dtype,
                              ad_rng *rng)
{
    *out = NULL;
    gated *g = malloc(sizeof *g);
    if (!g)
        return AD_ERR_NOMEM;
    *g = (gated){in, features};
    ad_status st = ad_module_create(out, &gated_type, g); /* g is the module's now */
    static const char *names[4] = {"w_gate", "b_gate", "w_value", "b_value"};
    for (int i = 0; i < 4 && st == AD_OK; i++) {
        int64_t shape[2] = {features, in};
        ad_tensor *t;
        st = ad_module_create_param(*out, names[i], dtype, i % 2 ? 1 : 2, shape, &t);
        if (st == AD_OK)
            st = ad_init_uniform(t, -0.5, 0.5, rng);
    }
    if (st != AD_OK) {
        ad_nn_free(*out);
        *out = NULL;
    }
    return st;
}

static ad_module *make_gated(int64_t in, int64_t out, ad_dtype dtype, ad_rng *rng)
{
    ad_module *m = NULL;
    assert_int_equal(gated_create(&m, in, out, dtype, rng), AD_OK);
    return m;
}

/* y = x + scale * inner(x): one parameter "scale" [1] and one child "inner". */
static ad_tensor *residual_forward(ad_module_call *call, ad_tensor *x)
{
    ad_tensor *inner = ad_module_forward_child(call, 0, x);
    return ad_add(x, ad_mul(ad_module_call_param(call, 0), inner));
}

static const ad_module_type residual_type = {.name = "residual", .forward = residual_forward};

/* Takes ownership of inner, also on error. */
static ad_status residual_create(ad_module **out, ad_module *inner, ad_dtype dtype)
{
    ad_tensor *scale = NULL;
    ad_status st = ad_module_create(out, &residual_type, NULL);
    if (st == AD_OK)
        st = ad_module_create_param(*out, "scale", dtype, 1, (int64_t[]){1}, &scale);
    if (st == AD_OK)
        st = ad_tensor_set(scale, 0, 0.75);
    if (st == AD_OK)
        st = ad_module_add_child(*out, "inner", inner);
    if (st != AD_OK) {
        ad_nn_free(inner); /* does nothing once inner has a parent */
        ad_nn_free(*out);
        *out = NULL;
    }
    return st;
}

static ad_module *make_residual(ad_module *inner, ad_dtype dtype)
{
    ad_module *m = NULL;
    assert_int_equal(residual_create(&m, inner, dtype), AD_OK);
    return m;
}

static ad_module *make_linear(int64_t in, int64_t out, ad_dtype dtype, ad_rng *rng)
{
    ad_module *m = NULL;
    assert_int_equal(ad_nn_linear(&m, in, out, true, dtype, rng), AD_OK);
    return m;
}

static ad_module *make_sequential(size_t n, ad_module *const *children)
{
    ad_module *m = NULL;
    assert_int_equal(ad_nn_sequential(&m, n, children), AD_OK);
    return m;
}

/* {"encoder": sequential(gated 3->3, linear 3->2), "decoder": residual(linear 2->2)}:
 * encoder.0.w_gate, encoder.0.b_gate, encoder.0.w_value, encoder.0.b_value,
 * encoder.1.weight, encoder.1.bias, decoder.scale, decoder.inner.weight,
 * decoder.inner.bias. */
static const char *const model_names[9] = {
    "encoder.0.w_gate",  "encoder.0.b_gate",     "encoder.0.w_value",
    "encoder.0.b_value", "encoder.1.weight",     "encoder.1.bias",
    "decoder.scale",     "decoder.inner.weight", "decoder.inner.bias"};

static ad_module *make_model(ad_dtype dtype, uint64_t seed)
{
    ad_rng rng;
    ad_rng_seed(&rng, seed);
    ad_module *encoder = make_sequential(
        2, (ad_module *[]){make_gated(3, 3, dtype, &rng), make_linear(3, 2, dtype, &rng)});
    ad_module *decoder = make_residual(make_linear(2, 2, dtype, &rng), dtype);
    ad_module *model = NULL;
    assert_int_equal(ad_nn_module_dict(&model, 2, (const char *[]){"encoder", "decoder"},
                                       (ad_module *[]){encoder, decoder}),
                     AD_OK);
    return model;
}

/* The model's forward: decoder(encoder(x)), children found by name. */
static ad_tensor *model_forward(ad_module *model, ad_tape *tape, ad_tensor *x)
{
    ad_tensor *h = ad_nn_forward(ad_module_find_child(model, "encoder"), tape, x);
    return ad_nn_forward(ad_module_find_child(model, "decoder"), tape, h);
}

/* ==== Gradients through ad_nn_forward_with ============================================ */

static ad_tensor *module_function(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_nn_forward_with(ctx, tape, in[0], n - 1, in + 1);
}

/* Gradchecks and gradgradchecks m (float64) in x [shape] and in every
 * parameter, at random values; frees m. */
static void check_module(const char *what, ad_module *m, int ndim, const int64_t *shape,
                         uint64_t seed)
{
    ad_tape *tape = test_tape();
    ad_tensor *inputs[17];
    ad_nn_param p[16];
    size_t n = ad_nn_params(m, p, COUNT(p));
    assert_true(n <= COUNT(p));
    inputs[0] = test_random(tape, &seed, ndim, shape, -1, 1);
    for (size_t i = 0; i < n; i++)
        inputs[1 + i] = test_random(tape, &seed, ad_tensor_ndim(p[i].tensor),
                                    ad_tensor_shape(p[i].tensor), -1, 1);
    check_gradients(what, module_function, m, n + 1, inputs, seed);
    ad_tape_free(tape);
    ad_nn_free(m);
}

static void test_user_gated_unit_gradchecks_in_its_four_parameters_and_its_input(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *m = make_gated(3, 2, AD_F64, &rng);
    assert_int_equal(ad_nn_param_count(m), 4);
    assert_int_equal(ad_nn_param_numel(m), 6 + 2 + 6 + 2);
    check_module("gated 3->2", m, 2, (int64_t[]){4, 3}, 11);
}

/* The stand-ins reach a user module's child (ad_module_forward_child) and
 * user modules inside a sequential, at the right offsets. */
static void test_user_module_with_a_child_gradchecks_inside_a_sequential(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 2);
    ad_module *m = make_sequential(
        3, (ad_module *[]){make_residual(make_gated(3, 3, AD_F64, &rng), AD_F64),
                           make_linear(3, 2, AD_F64, &rng), make_gated(2, 2, AD_F64, &rng)});
    assert_int_equal(ad_nn_param_count(m), 1 + 4 + 2 + 4);
    check_module("sequential(residual(gated), linear, gated)", m, 2, (int64_t[]){3, 3}, 12);
}

/* forward_with given the module's own tensors is the forward, bit for bit;
 * given others, the gradient goes to them and not to the module's own. */
static void test_forward_with_replaces_every_parameter_of_nested_user_modules(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 3);
    ad_module *m =
        make_sequential(2, (ad_module *[]){make_residual(make_gated(3, 3, AD_F64, &rng), AD_F64),
                                           make_linear(3, 2, AD_F64, &rng)});
    ad_tape *tape = test_tape();
    uint64_t seed = 5;
    ad_tensor *x = test_random(tape, &seed, 2, (int64_t[]){4, 3}, -1, 1);
    ad_nn_param p[7];
    assert_int_equal(ad_nn_params(m, p, 7), 7);
    ad_tensor *own[7], *other[7];
    for (size_t i = 0; i < 7; i++) {
        own[i] = p[i].tensor;
        other[i] = ad_requires_grad(
            test_random(tape, &seed, ad_tensor_ndim(own[i]), ad_tensor_shape(own[i]), -1, 1));
    }
    ad_tensor *a = ad_nn_forward(m, tape, x), *b = ad_nn_forward_with(m, tape, x, 7, own);
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(ad_tensor_data(a), ad_tensor_data(b), 8 * sizeof(double));
    ad_tensor *c = ad_nn_forward_with(m, tape, x, 7, other);
    assert_non_null(c);
    assert_true(memcmp(ad_tensor_data(a), ad_tensor_data(c), 8 * sizeof(double)) != 0);
    assert_int_equal(ad_backward(ad_sum_all(c), NULL), AD_OK);
    for (size_t i = 0; i < 7; i++) {
        assert_non_null(ad_tensor_grad(other[i]));
        for (int64_t e = 0; e < ad_tensor_numel(own[i]); e++)
            assert_true(ad_tensor_get(ad_tensor_grad(own[i]), e) == 0.0);
    }
    /* A stand-in that does not fit is named by its path. */
    ad_tape_reset(tape);
    x = test_random(tape, &seed, 2, (int64_t[]){4, 3}, -1, 1);
    for (size_t i = 0; i < 7; i++)
        other[i] = own[i];
    other[3] = ad_full(tape, AD_F64, 2, (int64_t[]){3, 2}, 0);
    assert_null(ad_nn_forward_with(m, tape, x, 7, other));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "0.inner.w_value");
    ad_tape_free(tape);
    ad_nn_free(m);
}

/* ==== Names ======================================================================== */

static void assert_names(const ad_module *m, size_t n, const char *const *expected)
{
    ad_nn_param p[16];
    assert_int_equal(ad_nn_param_count(m), n);
    assert_int_equal(ad_nn_params(m, p, COUNT(p)), n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].name, expected[i]) != 0)
            fail_msg("parameter %zu is named \"%s\", expected \"%s\"", i, p[i].name, expected[i]);
}

static void test_sequential_of_user_modules_names_parameters_by_path(void **state)
{
    (void)state;
    ad_module *model = make_model(AD_F64, 1);
    assert_names(model, 9, model_names);
    assert_int_equal(ad_nn_param_numel(model), 9 + 3 + 9 + 3 + 6 + 2 + 1 + 4 + 2);
    /* Listed from a child, names are relative to it, as torch's state_dict. */
    ad_module *encoder = ad_module_find_child(model, "encoder");
    assert_names(
        encoder, 6,
        (const char *[]){"0.w_gate", "0.b_gate", "0.w_value", "0.b_value", "1.weight", "1.bias"});
    assert_names(ad_module_child(encoder, 0), 4,
                 (const char *[]){"w_gate", "b_gate", "w_value", "b_value"});
    assert_names(ad_module_find_child(model, "decoder"), 3,
                 (const char *[]){"scale", "inner.weight", "inner.bias"});
    /* The tree as built. */
    assert_int_equal(ad_module_child_count(model), 2);
    assert_ptr_equal(ad_module_child(model, 0), encoder);
    assert_null(ad_module_child(model, 2));
    assert_null(ad_module_find_child(model, "missing"));
    assert_ptr_equal(ad_module_type_of(ad_module_child(encoder, 0)), &gated_type);
    assert_string_equal(ad_module_type_of(ad_module_child(encoder, 1))->name, "linear");
    ad_nn_free(model);
}

/* A container built and named on its own, then put in another, then that
 * one in a third: every name follows the final tree. */
static void test_container_nested_after_it_was_built_gets_full_names(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 4);
    ad_module *inner = make_sequential(1, (ad_module *[]){make_gated(2, 2, AD_F64, &rng)});
    assert_names(inner, 4, (const char *[]){"0.w_gate", "0.b_gate", "0.w_value", "0.b_value"});
    ad_module *dict = NULL;
    assert_int_equal(ad_nn_module_dict(&dict, 0, NULL, NULL), AD_OK);
    assert_int_equal(ad_module_add_child(dict, "encoder", inner), AD_OK);
    assert_names(dict, 4,
                 (const char *[]){"encoder.0.w_gate", "encoder.0.b_gate", "encoder.0.w_value",
                                  "encoder.0.b_value"});
    ad_module *outer = make_sequential(2, (ad_module *[]){make_linear(2, 2, AD_F64, &rng), dict});
    static const char *const full[6] = {"0.weight",
                                        "0.bias",
                                        "1.encoder.0.w_gate",
                                        "1.encoder.0.b_gate",
                                        "1.encoder.0.w_value",
                                        "1.encoder.0.b_value"};
    assert_names(outer, 6, full);
    /* The inner ones still list relative names. */
    assert_names(inner, 4, (const char *[]){"0.w_gate", "0.b_gate", "0.w_value", "0.b_value"});
    /* A parameter and a child added deep inside after all that. */
    assert_int_equal(ad_module_create_param(inner, "extra", AD_F64, 1, (int64_t[]){2}, NULL),
                     AD_OK);
    assert_int_equal(ad_module_add_child(dict, "head", make_linear(2, 1, AD_F64, &rng)), AD_OK);
    static const char *const grown[9] = {"0.weight",
                                         "0.bias",
                                         "1.encoder.extra",
                                         "1.encoder.0.w_gate",
                                         "1.encoder.0.b_gate",
                                         "1.encoder.0.w_value",
                                         "1.encoder.0.b_value",
                                         "1.head.weight",
                                         "1.head.bias"};
    assert_names(outer, 9, grown);
    ad_nn_free(outer);
}

/* Built from the root down (children added to containers already in the
 * tree) or from the leaves up, a model gets the same names. */
static void test_modules_assembled_top_down_are_named_as_bottom_up(void **state)
{
    (void)state;
    ad_module *model = NULL, *encoder = NULL, *decoder = NULL;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    assert_int_equal(ad_nn_module_dict(&model, 0, NULL, NULL), AD_OK);
    assert_int_equal(ad_nn_sequential(&encoder, 0, NULL), AD_OK);
    assert_int_equal(ad_module_add_child(model, "encoder", encoder), AD_OK);
    assert_int_equal(ad_module_add_child(encoder, "0", make_gated(3, 3, AD_F64, &rng)), AD_OK);
    assert_int_equal(ad_module_add_child(encoder, "1", make_linear(3, 2, AD_F64, &rng)), AD_OK);
    ad_module *inner = make_linear(2, 2, AD_F64, &rng);
    decoder = make_residual(inner, AD_F64);
    assert_int_equal(ad_module_add_child(model, "decoder", decoder), AD_OK);
    assert_names(model, 9, model_names);
    /* Same seed, same draws: the same numbers as the bottom-up model. */
    ad_module *bottom_up = make_model(AD_F64, 1);
    ad_nn_param a[9], b[9];
    ad_nn_params(model, a, 9);
    ad_nn_params(bottom_up, b, 9);
    for (size_t i = 0; i < 9; i++)
        assert_memory_equal(ad_tensor_data(a[i].tensor), ad_tensor_data(b[i].tensor),
                            (size_t)ad_tensor_numel(a[i].tensor) * sizeof(double));
    ad_nn_free(bottom_up);
    ad_nn_free(model);
}

/* ==== Checkpoints =================================================================== */

static void test_save_load_round_trip_of_a_nested_model_with_user_modules_is_bit_exact(void **state)
{
    (void)state;
    ad_module *a = make_model(AD_F32, 1), *b = make_model(AD_F32, 2);
    char path[300], err[256];
    new_path(path, sizeof path);
    assert_int_equal(ad_nn_save(a, path, err, sizeof err), AD_OK);
    /* The file's keys are the dotted paths. */
    ad_safetensors *file = NULL;
    assert_int_equal(ad_safetensors_open(&file, path, err, sizeof err), AD_OK);
    assert_int_equal(ad_safetensors_count(file), 9);
    for (size_t i = 0; i < 9; i++)
        assert_true(ad_safetensors_find(file, model_names[i]) >= 0);
    ad_safetensors_close(file);

    assert_int_equal(ad_nn_load(b, path, err, sizeof err), AD_OK);
    ad_tape *tape = test_tape();
    uint64_t seed = 3;
    ad_tensor *x = ad_cast(test_random(tape, &seed, 2, (int64_t[]){5, 3}, -1, 1), AD_F32);
    ad_tensor *ya = model_forward(a, tape, x), *yb = model_forward(b, tape, x);
    assert_non_null(ya);
    assert_non_null(yb);
    assert_memory_equal(ad_tensor_data(ya), ad_tensor_data(yb), 10 * sizeof(float));
    /* A sub-model saves under its own relative names, and loads back into
     * the same place of another model. */
    ad_module *c = make_model(AD_F32, 3);
    new_path(path, sizeof path);
    assert_int_equal(ad_nn_save(ad_module_find_child(a, "decoder"), path, err, sizeof err), AD_OK);
    assert_int_equal(ad_nn_load(ad_module_find_child(c, "decoder"), path, err, sizeof err), AD_OK);
    ad_nn_param pa[9], pc[9];
    ad_nn_params(a, pa, 9);
    ad_nn_params(c, pc, 9);
    assert_memory_equal(ad_tensor_data(pa[7].tensor), ad_tensor_data(pc[7].tensor),
                        4 * sizeof(float));
    assert_true(
        memcmp(ad_tensor_data(pa[4].tensor), ad_tensor_data(pc[4].tensor), 6 * sizeof(float)) != 0);
    ad_tape_free(tape);
    ad_nn_free(a);
    ad_nn_free(b);
    ad_nn_free(c);
}

/* ==== Optimizers and clipping ========================================================= */

/* A snapshot of every parameter value and gradient of m (9 parameters). */
typedef struct values {
    double p[9][16], g[9][16];
    int64_t numel[9];
} values;

static void take_values(const ad_module *m, values *v)
{
    ad_nn_param p[9];
    assert_int_equal(ad_nn_params(m, p, 9), 9);
    for (int i = 0; i < 9; i++) {
        v->numel[i] = ad_tensor_numel(p[i].tensor);
        assert_true(v->numel[i] <= 16);
        assert_int_equal(ad_tensor_copy_to_doubles(p[i].tensor, v->p[i]), AD_OK);
        assert_int_equal(ad_tensor_copy_to_doubles(ad_tensor_grad(p[i].tensor), v->g[i]), AD_OK);
    }
}

/* One backward of sum(model(x)^2) into the parameters' gradients. */
static void fill_gradients(ad_module *model, ad_optim *opt, ad_tape *tape)
{
    ad_tape_reset(tape);
    uint64_t seed = 21;
    ad_tensor *x = test_random(tape, &seed, 2, (int64_t[]){4, 3}, -1, 1);
    ad_optim_zero_grad(opt);
    ad_tensor *loss = ad_sum_all(ad_square(model_forward(model, tape, x)));
    if (ad_backward(loss, NULL) != AD_OK)
        fail_msg("%s", ad_tape_message(tape));
}

/* SGD, Adam and AdamW built from the model take torch.optim's first step on
 * every parameter of the user modules (and the built-in ones):
 *   SGD (momentum: the buffer starts as g):  p - lr g
 *   Adam:                                    p - lr g / (|g| + eps)
 *   AdamW:                                   p (1 - lr wd) - lr g / (|g| + eps) */
static void test_optimizers_from_a_model_with_user_modules_update_every_parameter(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    for (int kind = 0; kind < 3; kind++) {
        ad_module *model = make_model(AD_F64, 7);
        ad_optim *opt = NULL;
        ad_sgd_config sgd = ad_sgd_defaults();
        sgd.lr = 0.1;
        sgd.momentum = 0.9;
        ad_adam_config adam = kind == 2 ? ad_adamw_defaults() : ad_adam_defaults();
        adam.lr = 0.05;
        if (kind == 0)
            assert_int_equal(ad_optim_sgd(&opt, model, &sgd), AD_OK);
        else if (kind == 1)
            assert_int_equal(ad_optim_adam(&opt, model, &adam), AD_OK);
        else
            assert_int_equal(ad_optim_adamw(&opt, model, &adam), AD_OK);
        /* State names are the full paths. */
        ad_nn_param s[32];
        size_t n = ad_optim_state(opt, s, COUNT(s));
        assert_int_equal(n, kind ? 19 : 10);
        assert_string_equal(s[0].name, kind ? "state.encoder.0.w_gate.exp_avg"
                                            : "state.encoder.0.w_gate.momentum_buffer");
        assert_string_equal(s[8].name, kind ? "state.decoder.inner.bias.exp_avg"
                                            : "state.decoder.inner.bias.momentum_buffer");

        fill_gradients(model, opt, tape);
        values before, after;
        take_values(model, &before);
        ad_optim_step(opt);
        take_values(model, &after);
        for (int i = 0; i < 9; i++)
            for (int64_t e = 0; e < before.numel[i]; e++) {
                double p = before.p[i][e], g = before.g[i][e], expected;
                if (kind == 0)
                    expected = p - 0.1 * g;
                else if (kind == 1)
                    expected = p - 0.05 * g / (fabs(g) + 1e-8);
                else
                    expected = p * (1 - 0.05 * 0.01) - 0.05 * g / (fabs(g) + 1e-8);
                if (!(fabs(after.p[i][e] - expected) <= 1e-14 * fabs(expected) + 1e-15))
                    fail_msg("optimizer %d, %s[%lld]: %.17g, expected %.17g", kind, model_names[i],
                             (long long)e, after.p[i][e], expected);
                assert_true(g != 0); /* every parameter took part */
            }
        ad_optim_free(opt);
        ad_nn_free(model);
    }
    ad_tape_free(tape);
}

static void test_clip_grad_norm_covers_every_user_module_parameter(void **state)
{
    (void)state;
    ad_module *model = make_model(AD_F64, 8);
    ad_tape *tape = test_tape();
    ad_optim *opt = NULL;
    assert_int_equal(ad_optim_sgd(&opt, model, NULL), AD_OK);
    fill_gradients(model, opt, tape);
    values v;
    take_values(model, &v);
    double sq = 0;
    for (int i = 0; i < 9; i++)
        for (int64_t e = 0; e < v.numel[i]; e++)
            sq += v.g[i][e] * v.g[i][e];
    ad_nn_param p[9];
    ad_tensor *params[9];
    ad_nn_params(model, p, 9);
    for (int i = 0; i < 9; i++)
        params[i] = p[i].tensor;
    double max_norm = sqrt(sq) / 4;
    assert_close(sqrt(sq), ad_optim_clip_grad_norm(9, params, max_norm), 1e-14, 0);
    assert_close(max_norm, ad_optim_clip_grad_norm(9, params, 1e9), 1e-6, 0);
    ad_optim_free(opt);
    ad_tape_free(tape);
    ad_nn_free(model);
}

/* ==== Training mode ================================================================= */

/* Records every set_training call; forward doubles x in eval mode. */
typedef struct mode_log {
    int calls;
    bool last;
} mode_log;

static void mode_set_training(ad_module *m, bool training)
{
    mode_log *log = ad_module_context(m);
    log->calls++;
    log->last = training;
    assert_true(ad_module_training(m) == training); /* the flag is set first */
}

static ad_tensor *mode_forward(ad_module_call *call, ad_tensor *x)
{
    return ad_module_training(ad_module_call_module(call)) ? x : ad_mul_scalar(x, 2);
}

static const ad_module_type mode_type = {
    .name = "mode", .forward = mode_forward, .set_training = mode_set_training};

static void test_set_training_reaches_user_callbacks_at_every_depth(void **state)
{
    (void)state;
    mode_log logs[2] = {{0}};
    ad_module *shallow = NULL, *deep = NULL;
    assert_int_equal(ad_module_create(&shallow, &mode_type, &logs[0]), AD_OK);
    assert_int_equal(ad_module_create(&deep, &mode_type, &logs[1]), AD_OK);
    ad_module *inner = make_sequential(1, &deep);
    ad_module *model = NULL;
    assert_int_equal(
        ad_nn_module_dict(&model, 2, (const char *[]){"a", "b"}, (ad_module *[]){shallow, inner}),
        AD_OK);
    assert_true(ad_module_training(deep));
    ad_nn_set_training(model, false);
    for (int i = 0; i < 2; i++)
        assert_true(logs[i].calls == 1 && !logs[i].last);
    assert_false(ad_module_training(deep));
    ad_tape *tape = test_tape();
    ad_tensor *y = ad_nn_forward(inner, tape, ad_scalar(tape, 1.5));
    assert_close(3.0, ad_value(y), 0, 0);
    ad_nn_set_training(model, true);
    for (int i = 0; i < 2; i++)
        assert_true(logs[i].calls == 2 && logs[i].last);
    y = ad_nn_forward(inner, tape, ad_scalar(tape, 1.5));
    assert_close(1.5, ad_value(y), 0, 0);
    ad_nn_set_training(NULL, false);
    ad_tape_free(tape);
    ad_nn_free(model);
}

/* ==== Errors ========================================================================== */

static int contexts_freed;

static void count_free(void *context)
{
    contexts_freed++;
    free(context);
}

static const ad_module_type counted_type = {.name = "counted", .free_context = count_free};

/* The context is the module's from the call on: freed with it, or at once
 * when creation fails. */
static void test_module_create_rejects_null_arguments_and_frees_the_context(void **state)
{
    (void)state;
    contexts_freed = 0;
    ad_module *m = (ad_module *)&m;
    assert_int_equal(ad_module_create(&m, NULL, NULL), AD_ERR_ARG);
    assert_null(m);
    assert_int_equal(ad_module_create(NULL, &counted_type, malloc(8)), AD_ERR_ARG);
    assert_int_equal(contexts_freed, 1);
    static const ad_module_type nameless = {.free_context = count_free};
    assert_int_equal(ad_module_create(&m, &nameless, malloc(8)), AD_ERR_ARG);
    assert_int_equal(contexts_freed, 2);
    assert_int_equal(ad_module_create(&m, &counted_type, malloc(8)), AD_OK);
    assert_int_equal(contexts_freed, 2);
    ad_nn_free(m);
    assert_int_equal(contexts_freed, 3);
    /* NULL is safe everywhere. */
    assert_null(ad_module_context(NULL));
    assert_null(ad_module_type_of(NULL));
    assert_false(ad_module_training(NULL));
    assert_int_equal(ad_module_child_count(NULL), 0);
    assert_null(ad_module_child(NULL, 0));
    assert_null(ad_module_find_child(NULL, "a"));
    assert_int_equal(ad_nn_param_count(NULL), 0);
    assert_int_equal(ad_nn_params(NULL, NULL, 0), 0);
    assert_int_equal(ad_nn_param_numel(NULL), 0);
    assert_null(ad_module_call_tape(NULL));
    assert_null(ad_module_call_module(NULL));
    assert_null(ad_module_call_context(NULL));
    assert_null(ad_module_call_param(NULL, 0));
    assert_null(ad_module_forward_child(NULL, 0, NULL));
}

static void test_add_param_refuses_bad_names_duplicates_and_tensors_it_cannot_own(void **state)
{
    (void)state;
    ad_module *m = NULL, *other = NULL;
    assert_int_equal(ad_nn_module_dict(&m, 0, NULL, NULL), AD_OK);
    assert_int_equal(ad_nn_module_dict(&other, 0, NULL, NULL), AD_OK);
    ad_tensor *t = NULL, *u = NULL;
    assert_int_equal(ad_tensor_create(&t, AD_F64, 1, (int64_t[]){2}, true), AD_OK);
    assert_int_equal(ad_tensor_create(&u, AD_F64, 1, (int64_t[]){2}, true), AD_OK);
    assert_int_equal(ad_module_add_param(NULL, "w", t), AD_ERR_ARG);
    assert_int_equal(ad_module_add_param(m, "w", NULL), AD_ERR_ARG);
    assert_int_equal(ad_module_add_param(m, NULL, t), AD_ERR_ARG);
    assert_int_equal(ad_module_add_param(m, "", t), AD_ERR_ARG);
    assert_int_equal(ad_module_add_param(m, "a.b", t), AD_ERR_ARG);
    assert_int_equal(ad_module_add_param(m, ".", t), AD_ERR_ARG);
    ad_tape *tape = test_tape();
    assert_int_equal(ad_module_add_param(m, "w", ad_full(tape, AD_F64, 1, (int64_t[]){2}, 0)),
                     AD_ERR_ARG);
    assert_int_equal(ad_module_add_param(m, "w", t), AD_OK);
    assert_int_equal(ad_module_add_param(m, "w", u), AD_ERR_ARG);  /* name taken */
    assert_int_equal(ad_module_add_param(m, "w2", t), AD_ERR_ARG); /* tensor taken */
    /* A child's name is taken too, and a tensor anywhere in the tree. */
    assert_int_equal(ad_module_add_child(m, "child", other), AD_OK);
    assert_int_equal(ad_module_add_param(m, "child", u), AD_ERR_ARG);
    assert_int_equal(ad_module_add_param(other, "w", t), AD_ERR_ARG);
    assert_int_equal(ad_module_add_param(other, "w", u), AD_OK); /* a name per module */
    assert_int_equal(ad_module_create_param(m, "child", AD_F64, 0, NULL, NULL), AD_ERR_ARG);
    ad_tensor *created = (ad_tensor *)&created;
    assert_int_equal(ad_module_create_param(m, "bad.name", AD_F64, 0, NULL, &created), AD_ERR_ARG);
    assert_null(created);
    assert_int_equal(ad_module_create_param(NULL, "w", AD_F64, 0, NULL, NULL), AD_ERR_ARG);
    assert_names(m, 2, (const char *[]){"w", "child.w"});
    ad_tape_free(tape);
    ad_nn_free(m); /* frees t and u */
}

static void test_add_child_refuses_duplicates_cycles_and_a_child_of_another_parent(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(ad_nn_module_dict(&a, 0, NULL, NULL), AD_OK);
    assert_int_equal(ad_nn_module_dict(&b, 0, NULL, NULL), AD_OK);
    assert_int_equal(ad_nn_module_dict(&c, 0, NULL, NULL), AD_OK);
    ad_module *lin = make_linear(2, 2, AD_F64, &rng);
    assert_int_equal(ad_module_add_child(NULL, "x", lin), AD_ERR_ARG);
    assert_int_equal(ad_module_add_child(a, "x", NULL), AD_ERR_ARG);
    assert_int_equal(ad_module_add_child(a, NULL, lin), AD_ERR_ARG);
    assert_int_equal(ad_module_add_child(a, "", lin), AD_ERR_ARG);
    assert_int_equal(ad_module_add_child(a, "x.y", lin), AD_ERR_ARG);
    assert_int_equal(ad_module_add_child(a, "a", a), AD_ERR_ARG); /* itself */
    assert_int_equal(ad_module_add_child(a, "lin", lin), AD_OK);
    assert_int_equal(ad_module_add_child(a, "again", lin), AD_ERR_ARG); /* twice */
    assert_int_equal(ad_module_add_child(b, "lin", lin), AD_ERR_ARG);   /* two parents */
    assert_int_equal(ad_module_add_child(a, "lin", b), AD_ERR_ARG);     /* name taken */
    assert_int_equal(ad_module_add_child(a, "b", b), AD_OK);
    assert_int_equal(ad_module_add_child(b, "c", c), AD_OK);
    assert_int_equal(ad_module_add_child(c, "a", a), AD_ERR_ARG); /* a cycle */
    assert_int_equal(ad_module_add_child(c, "b", b), AD_ERR_ARG); /* a cycle, and a parent */
    /* Refused children are unchanged and still the caller's. */
    assert_names(a, 2, (const char *[]){"lin.weight", "lin.bias"});
    ad_nn_free(lin); /* has a parent: does nothing */
    ad_nn_free(b);   /* likewise */
    assert_names(a, 2, (const char *[]){"lin.weight", "lin.bias"});
    ad_nn_free(a);
}

static void test_containers_refuse_a_child_of_another_container_and_leave_it_there(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *lin = make_linear(2, 2, AD_F64, &rng);
    ad_module *first = make_sequential(1, &lin);
    ad_module *second = (ad_module *)&second;
    /* A sequential given lin (another's child) and a fresh child: refused,
     * the fresh one freed (it was given), lin left in first. */
    assert_int_equal(
        ad_nn_sequential(&second, 2, (ad_module *[]){make_linear(2, 2, AD_F64, &rng), lin}),
        AD_ERR_ARG);
    assert_null(second);
    assert_names(first, 2, (const char *[]){"0.weight", "0.bias"});
    /* A dict with a repeated name or a bad one: refused, children freed once. */
    ad_module *dict = (ad_module *)&dict;
    assert_int_equal(ad_nn_module_dict(&dict, 2, (const char *[]){"x", "x"},
                                       (ad_module *[]){make_linear(2, 2, AD_F64, &rng),
                                                       make_linear(2, 2, AD_F64, &rng)}),
                     AD_ERR_ARG);
    assert_null(dict);
    assert_int_equal(ad_nn_module_dict(&dict, 1, (const char *[]){"a.b"},
                                       (ad_module *[]){make_linear(2, 2, AD_F64, &rng)}),
                     AD_ERR_ARG);
    assert_int_equal(
        ad_nn_module_dict(&dict, 1, NULL, (ad_module *[]){make_linear(2, 2, AD_F64, &rng)}),
        AD_ERR_ARG);
    ad_module *twice = make_linear(2, 2, AD_F64, &rng);
    assert_int_equal(
        ad_nn_module_dict(&dict, 2, (const char *[]){"p", "q"}, (ad_module *[]){twice, twice}),
        AD_ERR_ARG);
    assert_int_equal(ad_nn_sequential(NULL, 1, (ad_module *[]){make_linear(2, 2, AD_F64, &rng)}),
                     AD_ERR_ARG);
    ad_nn_free(first);
}

/* A broken forward of each kind: the tape says which type and what. */
static ad_tensor *silent_forward(ad_module_call *call, ad_tensor *x)
{
    (void)call, (void)x;
    return NULL;
}

static ad_tensor *greedy_forward(ad_module_call *call, ad_tensor *x)
{
    (void)x;
    return ad_module_call_param(call, 5);
}

static ad_tensor *orphan_forward(ad_module_call *call, ad_tensor *x)
{
    return ad_module_forward_child(call, 3, x);
}

static void test_forward_errors_name_the_user_type(void **state)
{
    (void)state;
    static const ad_module_type silent = {.name = "silent", .forward = silent_forward};
    static const ad_module_type greedy = {.name = "greedy", .forward = greedy_forward};
    static const ad_module_type orphan = {.name = "orphan", .forward = orphan_forward};
    static const struct {
        const ad_module_type *type;
        ad_status code;
        const char *message;
    } cases[] = {
        {&silent, AD_ERR_NULL, "silent: forward returned NULL"},
        {&greedy, AD_ERR_ARG, "greedy: parameter 5"},
        {&orphan, AD_ERR_ARG, "orphan: child 3"},
    };
    ad_tape *tape = test_tape();
    for (size_t i = 0; i < COUNT(cases); i++) {
        ad_module *m = NULL;
        assert_int_equal(ad_module_create(&m, cases[i].type, NULL), AD_OK);
        ad_tape_reset(tape);
        assert_null(ad_nn_forward(m, tape, ad_scalar(tape, 1)));
        assert_int_equal(ad_tape_status(tape), cases[i].code);
        assert_message_has(tape, cases[i].message);
        ad_nn_free(m);
    }
    /* A module dict has no forward. */
    ad_module *model = make_model(AD_F64, 1);
    ad_tape_reset(tape);
    assert_null(ad_nn_forward(model, tape, ad_scalar(tape, 1)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_UNSUPPORTED);
    assert_message_has(tape, "module_dict");
    /* A user module's own shape check, from inside a container. */
    ad_tape_reset(tape);
    assert_null(model_forward(model, tape, ad_full(tape, AD_F64, 2, (int64_t[]){2, 5}, 0)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "gated");
    ad_nn_free(model);
    ad_tape_free(tape);
}

/* ==== Several inputs and outputs ===================================================== */

/* A module with two inputs and two outputs: y = x * w + (s, or 0 when s is
 * left out), and total = sum(y). Parameter: w [n]. */
static ad_status scaled_forward_n(ad_module_call *call, size_t n_in, ad_tensor *const *in,
                                  size_t n_out, ad_tensor **out)
{
    ad_tensor *y = ad_mul(in[0], ad_module_call_param(call, 0));
    if (n_in > 1 && in[1])
        y = ad_add(y, in[1]);
    out[0] = y;
    if (n_out > 1)
        out[1] = ad_sum_all(y);
    return ad_tape_status(ad_module_call_tape(call));
}

/* Its parent runs it through ad_module_forward_child_n and passes both outputs on. */
static ad_status parent_forward_n(ad_module_call *call, size_t n_in, ad_tensor *const *in,
                                  size_t n_out, ad_tensor **out)
{
    return ad_module_forward_child_n(call, 0, n_in, in, n_out, out);
}

static const ad_module_type scaled_type = {.name = "scaled", .forward_n = scaled_forward_n};
static const ad_module_type parent_type = {.name = "parent", .forward_n = parent_forward_n};

static void test_forward_n_passes_several_inputs_and_outputs_through_a_parent(void **state)
{
    (void)state;
    ad_module *child = NULL, *parent = NULL;
    assert_int_equal(ad_module_create(&child, &scaled_type, NULL), AD_OK);
    ad_tensor *w;
    assert_int_equal(ad_module_create_param(child, "w", AD_F64, 1, (int64_t[]){3}, &w), AD_OK);
    for (int i = 0; i < 3; i++)
        ad_tensor_set(w, i, i + 1);
    assert_int_equal(ad_module_create(&parent, &parent_type, NULL), AD_OK);
    assert_int_equal(ad_module_add_child(parent, "inner", child), AD_OK);
    ad_tape *tape = test_tape();
    const double xv[3] = {1, -2, 0.5}, sv[3] = {10, 20, 30};
    ad_tensor *x = tensor(tape, AD_F64, 1, (int64_t[]){3}, xv);
    ad_tensor *s = tensor(tape, AD_F64, 1, (int64_t[]){3}, sv);
    ad_tensor *out[2];
    assert_int_equal(ad_nn_forward_n(parent, tape, 2, (ad_tensor *[]){x, s}, 2, out), AD_OK);
    const double want[3] = {11, 16, 31.5};
    assert_exact(out[0], 3, want);
    assert_close(58.5, ad_value(out[1]), 0, 0);
    /* s left out: the module adds nothing; a third output slot stays NULL. */
    ad_tensor *three[3];
    assert_int_equal(ad_nn_forward_n(parent, tape, 2, (ad_tensor *[]){x, NULL}, 3, three), AD_OK);
    const double bare[3] = {1, -4, 1.5};
    assert_exact(three[0], 3, bare);
    assert_null(three[2]);
    /* ad_nn_forward runs forward_n with one input and one output. */
    assert_exact(ad_nn_forward(parent, tape, x), 3, bare);
    /* Stand-ins: gradients reach the stand-in, not the module's own w. */
    ad_tensor *w2 = leaf(tape, AD_F64, 1, (int64_t[]){3}, sv);
    assert_int_equal(
        ad_nn_forward_n_with(parent, tape, 2, (ad_tensor *[]){x, s}, 2, out, 1, &w2), AD_OK);
    assert_exact(grad_of_sum(out[1], w2), 3, xv);
    ad_tape_free(tape);
    ad_nn_free(parent);
}

static void test_forward_n_refuses_what_a_module_cannot_take(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *lin = NULL;
    assert_int_equal(ad_nn_linear(&lin, 2, 2, true, AD_F64, &rng), AD_OK);
    ad_tape *tape = test_tape();
    ad_tensor *x = ad_full(tape, AD_F64, 1, (int64_t[]){2}, 1);
    ad_tensor *out[2] = {x, x};
    /* A single-input module given a second input. */
    assert_int_equal(ad_nn_forward_n(lin, tape, 2, (ad_tensor *[]){x, x}, 2, out), AD_ERR_ARG);
    assert_message_has(tape, "linear: takes one input");
    assert_null(out[0]);
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 1, (int64_t[]){2}, 1);
    /* Its extra inputs left NULL are fine, and the extra output stays NULL. */
    assert_int_equal(ad_nn_forward_n(lin, tape, 2, (ad_tensor *[]){x, NULL}, 2, out), AD_OK);
    assert_non_null(out[0]);
    assert_null(out[1]);
    /* No first input, no output room, no module. */
    assert_int_equal(ad_nn_forward_n(lin, tape, 1, (ad_tensor *[]){NULL}, 1, out), AD_ERR_ARG);
    assert_message_has(tape, "first input is missing");
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 1, (int64_t[]){2}, 1);
    assert_int_equal(ad_nn_forward_n(lin, tape, 1, &x, 0, out), AD_ERR_ARG);
    ad_tape_reset(tape);
    x = ad_full(tape, AD_F64, 1, (int64_t[]){2}, 1);
    assert_int_equal(ad_nn_forward_n(NULL, tape, 1, &x, 1, out), AD_ERR_ARG);
    ad_tape_free(tape);
    ad_nn_free(lin);
}

/* ==== Out of memory =================================================================== */

/* Builds the model of make_model, nests it in a sequential afterwards (a
 * renaming of a built tree), adds a parameter deep inside and makes an
 * optimizer, freeing everything; returns the first failure. Follows the
 * ownership rules: containers take their children also on error, a refused
 * ad_module_add_child leaves the child with the caller. */
static ad_status build_and_free(void)
{
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *g = NULL, *lin = NULL, *encoder = NULL, *decoder = NULL, *model = NULL, *top = NULL;
    ad_optim *opt = NULL;
    ad_status st = gated_create(&g, 3, 3, AD_F64, &rng);
    if (st == AD_OK)
        st = ad_nn_linear(&lin, 3, 2, true, AD_F64, &rng);
    if (st == AD_OK)
        st = ad_nn_sequential(&encoder, 2, (ad_module *[]){g, lin});
    else {
        ad_nn_free(g);
        ad_nn_free(lin);
    }
    if (st == AD_OK && (st = ad_nn_linear(&lin, 2, 2, true, AD_F64, &rng)) == AD_OK)
        st = residual_create(&decoder, lin, AD_F64);
    if (st == AD_OK)
        st = ad_nn_module_dict(&model, 2, (const char *[]){"encoder", "decoder"},
                               (ad_module *[]){encoder, decoder});
    else {
        ad_nn_free(encoder);
        ad_nn_free(decoder);
    }
    if (st == AD_OK)
        st = ad_nn_sequential(&top, 0, NULL);
    if (st == AD_OK) {
        st = ad_module_add_child(top, "model", model);
        if (st != AD_OK) {
            /* Refused: the model is untouched, its names as they were. */
            ad_nn_param p[9];
            assert_int_equal(ad_nn_params(model, p, 9), 9);
            for (int i = 0; i < 9; i++)
                assert_string_equal(p[i].name, model_names[i]);
            ad_nn_free(model);
        }
    } else {
        ad_nn_free(model);
    }
    if (st == AD_OK)
        st = ad_module_create_param(ad_module_find_child(model, "encoder"), "extra", AD_F64, 1,
                                    (int64_t[]){3}, NULL);
    if (st == AD_OK)
        st = ad_optim_adam(&opt, top, NULL);
    if (st == AD_OK) {
        ad_nn_param p[16];
        assert_int_equal(ad_nn_params(top, p, 16), 10);
        assert_string_equal(p[0].name, "model.encoder.extra");
        assert_string_equal(p[1].name, "model.encoder.0.w_gate");
    }
    ad_optim_free(opt);
    ad_nn_free(top);
    return st;
}

/* True when the malloc above is the one in use: not under a sanitizer, and
 * not under valgrind, which replaces it (and checks for leaks itself). */
static bool failing_malloc_works(void)
{
    void *(*volatile allocate)(size_t) = malloc; /* a real call, not folded */
    countdown = 0;
    failed = false;
    sweeping = true;
    void *p = allocate(16);
    sweeping = false;
    free(p);
    return FAILING_MALLOC && !p;
}

static void
test_every_allocation_failure_while_building_returns_nomem_and_leaks_nothing(void **state)
{
    (void)state;
    if (!failing_malloc_works())
        skip();
    for (long k = 0;; k++) {
        countdown = k;
        live = 0;
        failed = false;
        sweeping = true;
        ad_status st = build_and_free();
        sweeping = false;
        if (live != 0)
            fail_msg("allocation %ld failed: %ld blocks left behind", k, live);
        if (!failed) {
            assert_int_equal(st, AD_OK);
            assert_true(k > 50); /* the sweep did reach every allocation */
            break;
        }
        if (st != AD_ERR_NOMEM)
            fail_msg("allocation %ld failed: %s, expected out of memory", k, ad_status_string(st));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_gated_unit_gradchecks_in_its_four_parameters_and_its_input),
        cmocka_unit_test(test_forward_n_passes_several_inputs_and_outputs_through_a_parent),
        cmocka_unit_test(test_forward_n_refuses_what_a_module_cannot_take),
        cmocka_unit_test(test_user_module_with_a_child_gradchecks_inside_a_sequential),
        cmocka_unit_test(test_forward_with_replaces_every_parameter_of_nested_user_modules),
        cmocka_unit_test(test_sequential_of_user_modules_names_parameters_by_path),
        cmocka_unit_test(test_container_nested_after_it_was_built_gets_full_names),
        cmocka_unit_test(test_modules_assembled_top_down_are_named_as_bottom_up),
        cmocka_unit_test(
            test_save_load_round_trip_of_a_nested_model_with_user_modules_is_bit_exact),
        cmocka_unit_test(test_optimizers_from_a_model_with_user_modules_update_every_parameter),
        cmocka_unit_test(test_clip_grad_norm_covers_every_user_module_parameter),
        cmocka_unit_test(test_set_training_reaches_user_callbacks_at_every_depth),
        cmocka_unit_test(test_module_create_rejects_null_arguments_and_frees_the_context),
        cmocka_unit_test(test_add_param_refuses_bad_names_duplicates_and_tensors_it_cannot_own),
        cmocka_unit_test(test_add_child_refuses_duplicates_cycles_and_a_child_of_another_parent),
        cmocka_unit_test(test_containers_refuse_a_child_of_another_container_and_leave_it_there),
        cmocka_unit_test(test_forward_errors_name_the_user_type),
        cmocka_unit_test(
            test_every_allocation_failure_while_building_returns_nomem_and_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, temp_dir_create, temp_dir_remove);
}
