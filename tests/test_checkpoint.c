/* Unit tests of activation checkpointing (ad_checkpoint): values and gradients
 * bit for bit those of the plain computation, the memory it saves, higher
 * order, no-grad mode, nesting, its errors, and steady state across steps. */
#include "test_util.h"

#include <string.h>

/* ---- A deep tanh MLP with persistent parameters ---------------------------------------- */

#define MAX_LAYERS 40

typedef struct mlp {
    int layers;
    int64_t width;
    ad_dtype dtype;
    ad_tensor *w[MAX_LAYERS]; /* [width, width] */
    ad_tensor *b[MAX_LAYERS]; /* [width] */
} mlp;

/* Layers begin..end of a model: what one checkpoint runs. */
typedef struct segment {
    const mlp *model;
    int begin, end;
} segment;

static void mlp_create(mlp *m, int layers, int64_t width, ad_dtype dtype, uint64_t seed)
{
    assert_true(layers <= MAX_LAYERS);
    m->layers = layers;
    m->width = width;
    m->dtype = dtype;
    int64_t sw[2] = {width, width};
    double scale = 1.5 / sqrt((double)width);
    for (int l = 0; l < layers; l++) {
        assert_int_equal(ad_tensor_create(&m->w[l], dtype, 2, sw, true), AD_OK);
        assert_int_equal(ad_tensor_create(&m->b[l], dtype, 1, &width, true), AD_OK);
        for (int64_t i = 0; i < width * width; i++)
            ad_tensor_set(m->w[l], i, test_uniform(&seed, -scale, scale));
        for (int64_t i = 0; i < width; i++)
            ad_tensor_set(m->b[l], i, test_uniform(&seed, -0.1, 0.1));
    }
}

static void mlp_free(mlp *m)
{
    for (int l = 0; l < m->layers; l++) {
        ad_tensor_free(m->w[l]);
        ad_tensor_free(m->b[l]);
    }
}

static void mlp_zero_grad(mlp *m)
{
    for (int l = 0; l < m->layers; l++) {
        ad_zero_grad(m->w[l]);
        ad_zero_grad(m->b[l]);
    }
}

/* x <- tanh(x W^T + b) for layers begin..end of the segment in ctx. */
static ad_tensor *run_segment(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    assert_int_equal(n, 1);
    const segment *s = ctx;
    ad_tensor *x = inputs[0];
    for (int l = s->begin; l < s->end; l++)
        x = ad_tanh(ad_add(ad_matmul_t(x, s->model->w[l], false, true), s->model->b[l]));
    return x;
}

/* The model's output for x, with checkpoints of `every` layers (0: none). */
static ad_tensor *mlp_forward(const mlp *m, ad_tensor *x, int every, segment *segments)
{
    if (every == 0) {
        segment all = {m, 0, m->layers};
        return run_segment(ad_tensor_tape(x), 1, &x, &all);
    }
    int k = 0;
    for (int l = 0; l < m->layers; l += every, k++) {
        segments[k] = (segment){m, l, l + every < m->layers ? l + every : m->layers};
        x = ad_checkpoint(run_segment, &segments[k], 1, &x);
    }
    return x;
}

/* Everything one step gives, as bytes: the output, the input gradient (ad_grad)
 * and every parameter gradient (ad_backward into the buffers). */
typedef struct outcome {
    unsigned char *bytes;
    size_t size, cap;
    size_t peak; /* ad_tape_bytes_peak after the backward */
} outcome;

static void outcome_add(outcome *o, const ad_tensor *t)
{
    assert_non_null(t);
    size_t n = (size_t)ad_tensor_numel(t) * ad_dtype_size(ad_tensor_dtype(t));
    if (o->size + n > o->cap) {
        o->cap = 2 * (o->size + n);
        o->bytes = realloc(o->bytes, o->cap);
        assert_non_null(o->bytes);
    }
    memcpy(o->bytes + o->size, ad_tensor_data(t), n);
    o->size += n;
}

static void assert_same_bytes(const outcome *a, const outcome *b)
{
    assert_int_equal(a->size, b->size);
    for (size_t i = 0; i < a->size; i++)
        if (a->bytes[i] != b->bytes[i])
            fail_msg("byte %zu of %zu differs: %#x against %#x", i, a->size, a->bytes[i],
                     b->bytes[i]);
}

/* One step on a fresh tape state: loss = sum(y * y) for y = model(x); with
 * input_grad, an ad_grad for x first (which also returns, and so keeps on
 * the tape, every checkpoint's parameter gradients). */
static outcome mlp_step_with(ad_tape *tape, mlp *m, int64_t batch, int every, bool input_grad)
{
    ad_tape_reset(tape);
    mlp_zero_grad(m);
    int64_t sx[2] = {batch, m->width};
    uint64_t seed = 12345;
    ad_tensor *x = ad_requires_grad(ad_tape_tensor(tape, m->dtype, 2, sx, NULL));
    assert_non_null(x);
    for (int64_t i = 0; i < batch * m->width; i++) {
        double v = test_uniform(&seed, -1, 1);
        if (m->dtype == AD_F32)
            ((float *)ad_tensor_data(x))[i] = (float)v;
        else
            ((double *)ad_tensor_data(x))[i] = v;
    }
    segment segments[MAX_LAYERS];
    ad_tensor *y = mlp_forward(m, x, every, segments);
    ad_tensor *loss = ad_sum_all(ad_mul(y, y));
    if (!loss)
        fail_msg("forward failed: %s", ad_tape_message(tape));
    outcome o = {0};
    outcome_add(&o, y);
    outcome_add(&o, loss);
    if (input_grad) {
        ad_tensor *gx;
        ad_backward_opts retain = {.retain_graph = true};
        assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &gx, &retain), AD_OK);
        outcome_add(&o, gx);
    }
    ad_status st = ad_backward(loss, NULL);
    if (st != AD_OK)
        fail_msg("backward: %s", ad_tape_message(tape));
    for (int l = 0; l < m->layers; l++) {
        outcome_add(&o, ad_tensor_grad(m->w[l]));
        outcome_add(&o, ad_tensor_grad(m->b[l]));
    }
    o.peak = ad_tape_bytes_peak(tape);
    return o;
}

static outcome mlp_step(ad_tape *tape, mlp *m, int64_t batch, int every)
{
    return mlp_step_with(tape, m, batch, every, true);
}

/* ---- A small block: tanh(x W1^T + b1) W2^T ---------------------------------------------- */

typedef struct block {
    ad_tensor *w1, *b1, *w2; /* persistent: [4,3], [4], [2,4] */
} block;

static ad_tensor *run_block(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    const block *b = ctx;
    ad_tensor *h = ad_tanh(ad_add(ad_matmul_t(inputs[0], b->w1, false, true), b->b1));
    return ad_matmul_t(h, b->w2, false, true);
}

static void test_a_checkpointed_block_gives_bit_identical_values_and_gradients(void **state)
{
    ad_tape *tape = *state;
    ad_dtype dtypes[2] = {AD_F32, AD_F64};
    for (int d = 0; d < 2; d++) {
        ad_dtype dt = dtypes[d];
        block blk;
        int64_t s1[2] = {4, 3}, sb[1] = {4}, s2[2] = {2, 4}, sx[2] = {5, 3};
        assert_int_equal(ad_tensor_create(&blk.w1, dt, 2, s1, true), AD_OK);
        assert_int_equal(ad_tensor_create(&blk.b1, dt, 1, sb, true), AD_OK);
        assert_int_equal(ad_tensor_create(&blk.w2, dt, 2, s2, true), AD_OK);
        uint64_t seed = 7;
        for (int i = 0; i < 12; i++)
            ad_tensor_set(blk.w1, i, test_uniform(&seed, -1, 1));
        for (int i = 0; i < 4; i++)
            ad_tensor_set(blk.b1, i, test_uniform(&seed, -1, 1));
        for (int i = 0; i < 8; i++)
            ad_tensor_set(blk.w2, i, test_uniform(&seed, -1, 1));
        double xv[15];
        for (int i = 0; i < 15; i++)
            xv[i] = test_uniform(&seed, -2, 2);
        outcome o[2] = {{0}, {0}};
        for (int checkpointed = 0; checkpointed < 2; checkpointed++) {
            ad_tape_reset(tape);
            ad_zero_grad(blk.w1);
            ad_zero_grad(blk.b1);
            ad_zero_grad(blk.w2);
            ad_tensor *x = leaf(tape, dt, 2, sx, xv);
            ad_tensor *y =
                checkpointed ? ad_checkpoint(run_block, &blk, 1, &x) : run_block(tape, 1, &x, &blk);
            assert_non_null(y);
            assert_true(ad_tensor_requires_grad(y));
            ad_tensor *loss = ad_sum_all(ad_mul(ad_sin(y), y));
            ad_tensor *gx;
            ad_backward_opts retain = {.retain_graph = true};
            assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &gx, &retain), AD_OK);
            assert_int_equal(ad_backward(loss, NULL), AD_OK);
            outcome_add(&o[checkpointed], y);
            outcome_add(&o[checkpointed], gx);
            outcome_add(&o[checkpointed], ad_tensor_grad(blk.w1));
            outcome_add(&o[checkpointed], ad_tensor_grad(blk.b1));
            outcome_add(&o[checkpointed], ad_tensor_grad(blk.w2));
        }
        /* A gradient that is all zeros would compare equal too: it is not. */
        double g0 = ad_tensor_get(ad_tensor_grad(blk.w1), 0);
        assert_true(g0 != 0 && isfinite(g0));
        assert_same_bytes(&o[0], &o[1]);
        free(o[0].bytes);
        free(o[1].bytes);
        ad_tape_reset(tape);
        ad_tensor_free(blk.w1);
        ad_tensor_free(blk.b1);
        ad_tensor_free(blk.w2);
    }
}

static void
test_a_deep_mlp_checkpointed_per_layer_or_in_segments_gives_bit_identical_results(void **state)
{
    ad_tape *tape = *state;
    ad_dtype dtypes[2] = {AD_F32, AD_F64};
    for (int d = 0; d < 2; d++) {
        mlp m;
        mlp_create(&m, 32, 8, dtypes[d], 100 + (uint64_t)d);
        outcome plain = mlp_step(tape, &m, 6, 0);
        double g0 = ad_tensor_get(ad_tensor_grad(m.w[0]), 1);
        assert_true(g0 != 0 && isfinite(g0));
        int every[3] = {1, 4, 5}; /* 5: a short last segment */
        for (int k = 0; k < 3; k++) {
            outcome o = mlp_step(tape, &m, 6, every[k]);
            assert_same_bytes(&plain, &o);
            free(o.bytes);
        }
        free(plain.bytes);
        ad_tape_reset(tape);
        mlp_free(&m);
    }
}

static void
test_checkpointing_a_deep_mlp_in_segments_lowers_the_peak_tape_memory_at_least_twofold(void **state)
{
    ad_tape *tape = *state;
    mlp m;
    mlp_create(&m, 32, 64, AD_F32, 3);
    /* A training step: forward and ad_backward. */
    outcome plain = mlp_step_with(tape, &m, 32, 0, false);
    outcome per_layer = mlp_step_with(tape, &m, 32, 1, false);
    outcome segments = mlp_step_with(tape, &m, 32, 6, false);
    print_message("peak tape bytes: plain %zu, per layer %zu (%.2fx), segments of 6 %zu (%.2fx)\n",
                  plain.peak, per_layer.peak, (double)plain.peak / (double)per_layer.peak,
                  segments.peak, (double)plain.peak / (double)segments.peak);
    /* Per layer, the backward's gradients (kept on the tape until the reset)
     * weigh as much as the activations kept: about 2x (2.14x when written).
     * Segments of about sqrt(32) layers keep fewer of both: 3.33x. */
    assert_true(per_layer.peak * 7 <= plain.peak * 4);
    assert_true(segments.peak * 2 <= plain.peak);
    assert_same_bytes(&plain, &per_layer);
    assert_same_bytes(&plain, &segments);

    /* After the forward alone, too: the checkpoints keep only their results. */
    size_t used[2];
    for (int every = 0; every < 2; every++) {
        ad_tape_reset(tape);
        int64_t sx[2] = {32, 64};
        ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F32, 2, sx, 0.5));
        segment segs[MAX_LAYERS];
        assert_non_null(mlp_forward(&m, x, every, segs));
        used[every] = ad_tape_bytes_used(tape);
    }
    assert_true(used[1] * 2 <= used[0]);
    free(plain.bytes);
    free(per_layer.bytes);
    free(segments.bytes);
    ad_tape_reset(tape);
    mlp_free(&m);
}

/* ---- Higher order, no-grad mode, nesting -------------------------------------------------- */

/* f(x, W1, W2) = tanh(x W1^T) W2^T, every operand a tape input. */
static ad_tensor *run_tape_block(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape;
    (void)ctx;
    assert_int_equal(n, 3);
    return ad_matmul_t(ad_tanh(ad_matmul_t(in[0], in[1], false, true)), in[2], false, true);
}

static ad_tensor *checkpointed_tape_block(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape;
    return ad_checkpoint(run_tape_block, ctx, n, in);
}

static void test_a_checkpointed_function_passes_gradcheck_and_gradgradcheck_in_float64(void **state)
{
    ad_tape *tape = *state;
    uint64_t rng = 11;
    int64_t sx[2] = {2, 3}, s1[2] = {4, 3}, s2[2] = {2, 4};
    ad_tensor *in[3] = {test_random(tape, &rng, 2, sx, -1, 1),
                        test_random(tape, &rng, 2, s1, -1, 1),
                        test_random(tape, &rng, 2, s2, -1, 1)};
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(checkpointed_tape_block, NULL, 3, in, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("%s", r.message);
    assert_int_equal(ad_gradgradcheck(checkpointed_tape_block, NULL, 3, in, 5, NULL, &r), AD_OK);
    if (!r.passed)
        fail_msg("%s", r.message);
}

/* Hessian-vector products under create_graph: the same numbers with or
 * without the checkpoint. */
static void test_under_create_graph_second_derivatives_match_the_plain_computation(void **state)
{
    ad_tape *tape = *state;
    int64_t sx[2] = {2, 3}, s1[2] = {4, 3}, s2[2] = {2, 4};
    double hv[2][6];
    for (int checkpointed = 0; checkpointed < 2; checkpointed++) {
        ad_tape_reset(tape);
        uint64_t rng = 21;
        ad_tensor *in[3] = {ad_requires_grad(test_random(tape, &rng, 2, sx, -1, 1)),
                            ad_requires_grad(test_random(tape, &rng, 2, s1, -1, 1)),
                            ad_requires_grad(test_random(tape, &rng, 2, s2, -1, 1))};
        ad_tensor *v = test_random(tape, &rng, 2, sx, -1, 1);
        ad_tensor *y = checkpointed ? checkpointed_tape_block(tape, 3, in, NULL)
                                    : run_tape_block(tape, 3, in, NULL);
        ad_tensor *loss = ad_sum_all(ad_square(y));
        ad_backward_opts o = {.create_graph = true};
        ad_tensor *g, *h;
        assert_int_equal(ad_grad(1, &loss, NULL, 1, in, &g, &o), AD_OK);
        assert_true(ad_tensor_requires_grad(g));
        ad_tensor *gv = ad_sum_all(ad_mul(g, v));
        assert_int_equal(ad_grad(1, &gv, NULL, 1, in, &h, NULL), AD_OK);
        assert_int_equal(ad_tensor_copy_to_doubles(h, hv[checkpointed]), AD_OK);
    }
    for (int i = 0; i < 6; i++) {
        assert_true(hv[0][i] != 0);
        assert_close(hv[0][i], hv[1][i], 1e-13, 1e-15);
    }
}

static void test_in_no_grad_mode_a_checkpoint_just_gives_the_value(void **state)
{
    ad_tape *tape = *state;
    mlp m;
    mlp_create(&m, 3, 4, AD_F64, 9);
    int64_t sx[2] = {2, 4};
    double values[2][8];
    for (int checkpointed = 0; checkpointed < 2; checkpointed++) {
        ad_tape_reset(tape);
        ad_tape_set_grad_enabled(tape, false);
        ad_tensor *x = ad_full(tape, AD_F64, 2, sx, 0.25);
        segment s = {&m, 0, 3};
        ad_tensor *y =
            checkpointed ? ad_checkpoint(run_segment, &s, 1, &x) : run_segment(tape, 1, &x, &s);
        assert_non_null(y);
        assert_false(ad_tensor_requires_grad(y));
        assert_int_equal(ad_tape_node_count(tape), 0);
        assert_int_equal(ad_tensor_copy_to_doubles(y, values[checkpointed]), AD_OK);
        ad_tape_set_grad_enabled(tape, true);
    }
    assert_memory_equal(values[0], values[1], sizeof values[0]);
    assert_true(values[0][0] != 0);
    ad_tape_reset(tape);
    mlp_free(&m);
}

/* Two checkpointed segments of two layers, inside one outer checkpoint. */
static ad_tensor *run_nested(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    segment *inner = ctx;
    ad_tensor *x = inputs[0];
    for (int k = 0; k < 2; k++)
        x = ad_checkpoint(run_segment, &inner[k], 1, &x);
    return x;
}

static void test_nested_checkpoints_give_bit_identical_values_and_gradients(void **state)
{
    ad_tape *tape = *state;
    mlp m;
    mlp_create(&m, 4, 5, AD_F64, 17);
    outcome plain = mlp_step(tape, &m, 3, 0);
    /* The same step, the model run through the nested checkpoints. */
    ad_tape_reset(tape);
    mlp_zero_grad(&m);
    int64_t sx[2] = {3, 5};
    uint64_t seed = 12345;
    ad_tensor *x = ad_requires_grad(ad_tape_tensor(tape, AD_F64, 2, sx, NULL));
    for (int64_t i = 0; i < 15; i++)
        ((double *)ad_tensor_data(x))[i] = test_uniform(&seed, -1, 1);
    segment inner[2] = {{&m, 0, 2}, {&m, 2, 4}};
    ad_tensor *y = ad_checkpoint(run_nested, inner, 1, &x);
    ad_tensor *loss = ad_sum_all(ad_mul(y, y));
    assert_non_null(loss);
    outcome o = {0};
    outcome_add(&o, y);
    outcome_add(&o, loss);
    ad_tensor *gx;
    ad_backward_opts retain = {.retain_graph = true};
    assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &gx, &retain), AD_OK);
    outcome_add(&o, gx);
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    for (int l = 0; l < 4; l++) {
        outcome_add(&o, ad_tensor_grad(m.w[l]));
        outcome_add(&o, ad_tensor_grad(m.b[l]));
    }
    assert_same_bytes(&plain, &o);
    free(plain.bytes);
    free(o.bytes);
    ad_tape_reset(tape);
    mlp_free(&m);
}

static ad_tensor *identity(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    (void)ctx;
    return inputs[0];
}

static void
test_a_checkpointed_function_that_returns_its_input_passes_the_gradient_through(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){1.0, -2.0, 3.0});
    ad_tensor *y = ad_checkpoint(identity, NULL, 1, &x);
    assert_values(y, 3, (double[]){1.0, -2.0, 3.0}, 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(ad_mul(y, y)), NULL), AD_OK);
    assert_exact(ad_tensor_grad(x), 3, (double[]){2.0, -4.0, 6.0});
}

/* ---- Errors ---------------------------------------------------------------------------- */

/* Multiplies its input by a tape tensor it was not given. */
static ad_tensor *captures(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    return ad_mul(inputs[0], (ad_tensor *)ctx);
}

static void
test_a_function_that_captures_a_tape_tensor_fails_the_backward_naming_checkpoint(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){1.0, 2.0});
    ad_tensor *c = leaf(tape, AD_F64, 1, &n, (double[]){3.0, 4.0});
    ad_tensor *y = ad_checkpoint(captures, c, 1, &x);
    /* A constant for the forward: the value is right. */
    assert_values(y, 2, (double[]){3.0, 8.0}, 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_ERR_ARG);
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "checkpoint");
    assert_message_has(tape, "input");
}

static ad_tensor *returns_null(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    (void)inputs;
    (void)ctx;
    return NULL;
}

/* A matrix product of shapes that do not align. */
static ad_tensor *fails_an_op(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    (void)ctx;
    return ad_matmul(inputs[0], inputs[0]);
}

/* Returns NULL from its second call on: the recomputation fails. */
static ad_tensor *fails_when_run_again(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    int *calls = ctx;
    return ++*calls == 1 ? ad_exp(inputs[0]) : NULL;
}

static void test_a_function_that_fails_makes_the_checkpoint_fail_with_its_error(void **state)
{
    ad_tape *tape = *state;
    int64_t s[2] = {2, 3};
    ad_tensor *x = leaf(tape, AD_F64, 2, s, NULL);
    assert_null(ad_checkpoint(returns_null, NULL, 1, &x));
    assert_int_equal(ad_tape_status(tape), AD_ERR_NULL);
    assert_message_has(tape, "checkpoint");

    ad_tape_reset(tape);
    x = leaf(tape, AD_F64, 2, s, NULL);
    assert_null(ad_checkpoint(fails_an_op, NULL, 1, &x));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_message_has(tape, "matmul");
    assert_message_has(tape, "[2,3]");

    ad_tape_reset(tape);
    x = leaf(tape, AD_F64, 2, s, NULL);
    int calls = 0;
    ad_tensor *y = ad_checkpoint(fails_when_run_again, &calls, 1, &x);
    assert_non_null(y);
    assert_int_equal(calls, 1);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_ERR_NULL);
    assert_int_equal(calls, 2);
    assert_message_has(tape, "checkpoint");
    assert_null(ad_tensor_grad(x));
}

static void test_a_checkpoint_without_a_function_is_an_arg_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 1.0));
    assert_null(ad_checkpoint(NULL, NULL, 1, &x));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_message_has(tape, "checkpoint");
    /* Sticky: a later op on the tape gives NULL too. */
    assert_null(ad_exp(x));
}

/* ---- Hooks and steady state ------------------------------------------------------------ */

typedef struct hook_calls {
    int inner, outer;
    double inner_seen, outer_seen;
} hook_calls;

static ad_tensor *outer_hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    (void)t;
    hook_calls *c = ctx;
    c->outer++;
    c->outer_seen = ad_value(grad);
    return NULL;
}

static ad_tensor *inner_hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    (void)t;
    hook_calls *c = ctx;
    c->inner++;
    c->inner_seen = ad_value(grad);
    return ad_mul_scalar(grad, 2.0);
}

/* y = e^h e^h for h = sin x, with a hook on e^h registered by the function
 * itself: it takes effect in the recorded rerun only (the first run records
 * nothing, so registering there is a no-grad error). */
static ad_tensor *exp_squared_with_hook(ad_tape *tape, size_t n, ad_tensor *const *inputs,
                                        void *ctx)
{
    (void)tape;
    (void)n;
    ad_tensor *e = ad_exp(inputs[0]);
    ad_status st = ad_tensor_register_hook(e, inner_hook, ctx, NULL);
    assert_int_equal(st, ad_tensor_requires_grad(e) ? AD_OK : AD_ERR_NO_GRAD);
    return ad_mul(e, e);
}

static void test_a_hook_registered_inside_a_checkpointed_function_runs_in_its_rerun(void **state)
{
    ad_tape *tape = *state;
    hook_calls calls = {0};
    const double xv = 0.3, h = sin(0.3), e = exp(h);
    for (int step = 0; step < 2; step++) {
        ad_tape_reset(tape);
        calls = (hook_calls){0};
        ad_tensor *x = ad_requires_grad(ad_scalar(tape, xv));
        ad_tensor *hx = ad_sin(x);
        assert_int_equal(ad_tensor_register_hook(hx, outer_hook, &calls, NULL), AD_OK);
        /* A use of hx made before the checkpoint, whose backward runs after the
         * checkpoint's and fills the arena the rerun gave back: d/dhx = 512 e. */
        int64_t wide = 512;
        ad_tensor *spread = ad_exp(ad_expand(hx, 1, &wide));
        ad_tensor *y = ad_checkpoint(exp_squared_with_hook, &calls, 1, &hx);
        assert_close(e * e, ad_value(y), 1e-15, 0);
        ad_tensor *loss = ad_add(y, ad_sum_all(spread));
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        assert_int_equal(calls.inner, 1);
        assert_close(2 * e, calls.inner_seen, 1e-15, 0);
        assert_int_equal(calls.outer, 1);
        /* The inner hook doubled d/de: 4 e * e, and 512 e from the spread. */
        assert_close(4 * e * e + 512 * e, calls.outer_seen, 1e-14, 0);
        assert_close((4 * e * e + 512 * e) * cos(xv), ad_grad_value(x), 1e-14, 0);
    }
}

typedef struct buffer_probe {
    int calls;
    double seen[16];
} buffer_probe;

static void read_buffer(ad_tensor *p, void *ctx)
{
    buffer_probe *b = ctx;
    b->calls++;
    assert_int_equal(ad_tensor_copy_to_doubles(ad_tensor_grad(p), b->seen), AD_OK);
}

/* W1 of the block, used inside the checkpoint and once more outside it. */
static void test_an_accumulate_hook_on_a_checkpointed_parameter_sees_its_full_gradient(void **state)
{
    ad_tape *tape = *state;
    block blk;
    int64_t s1[2] = {4, 3}, sb[1] = {4}, s2[2] = {2, 4}, sx[2] = {5, 3};
    assert_int_equal(ad_tensor_create(&blk.w1, AD_F64, 2, s1, true), AD_OK);
    assert_int_equal(ad_tensor_create(&blk.b1, AD_F64, 1, sb, true), AD_OK);
    assert_int_equal(ad_tensor_create(&blk.w2, AD_F64, 2, s2, true), AD_OK);
    uint64_t seed = 8;
    for (int i = 0; i < 12; i++)
        ad_tensor_set(blk.w1, i, test_uniform(&seed, -1, 1));
    for (int i = 0; i < 8; i++)
        ad_tensor_set(blk.w2, i, test_uniform(&seed, -1, 1));
    double xv[15];
    for (int i = 0; i < 15; i++)
        xv[i] = test_uniform(&seed, -1, 1);
    buffer_probe probe = {0};
    assert_int_equal(ad_tensor_register_accumulate_hook(blk.w1, read_buffer, &probe, NULL), AD_OK);
    double expected[12];
    for (int checkpointed = 0; checkpointed < 2; checkpointed++) {
        ad_tape_reset(tape);
        ad_zero_grad(blk.w1);
        probe.calls = 0;
        ad_tensor *x = tensor(tape, AD_F64, 2, sx, xv);
        ad_tensor *y =
            checkpointed ? ad_checkpoint(run_block, &blk, 1, &x) : run_block(tape, 1, &x, &blk);
        ad_tensor *loss = ad_add(ad_sum_all(ad_square(y)),
                                 ad_sum_all(ad_square(ad_matmul_t(x, blk.w1, false, true))));
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        assert_int_equal(probe.calls, 1);
        if (!checkpointed)
            assert_int_equal(ad_tensor_copy_to_doubles(ad_tensor_grad(blk.w1), expected), AD_OK);
        for (int i = 0; i < 12; i++)
            assert_close(expected[i], probe.seen[i], 1e-14, 1e-15);
    }
    ad_tape_reset(tape);
    ad_tensor_free(blk.w1);
    ad_tensor_free(blk.b1);
    ad_tensor_free(blk.w2);
}

static void test_a_second_identical_checkpointed_step_reserves_no_more_memory(void **state)
{
    ad_tape *tape = *state;
    assert_int_equal(ad_tape_set_checked(tape, 0), AD_OK); /* one arena chain */
    mlp m;
    mlp_create(&m, 8, 16, AD_F32, 5);
    outcome first = mlp_step(tape, &m, 4, 2);
    size_t reserved = ad_tape_bytes_reserved(tape);
    assert_true(reserved > 0);
    for (int step = 2; step <= 3; step++) {
        outcome o = mlp_step(tape, &m, 4, 2);
        assert_int_equal(ad_tape_bytes_reserved(tape), reserved);
        assert_int_equal(o.peak, first.peak);
        assert_same_bytes(&first, &o);
        free(o.bytes);
    }
    free(first.bytes);
    ad_tape_reset(tape);
    mlp_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_a_checkpointed_block_gives_bit_identical_values_and_gradients),
        TAPE_TEST(
            test_a_deep_mlp_checkpointed_per_layer_or_in_segments_gives_bit_identical_results),
        TAPE_TEST(
            test_checkpointing_a_deep_mlp_in_segments_lowers_the_peak_tape_memory_at_least_twofold),
        TAPE_TEST(test_a_checkpointed_function_passes_gradcheck_and_gradgradcheck_in_float64),
        TAPE_TEST(test_under_create_graph_second_derivatives_match_the_plain_computation),
        TAPE_TEST(test_in_no_grad_mode_a_checkpoint_just_gives_the_value),
        TAPE_TEST(test_nested_checkpoints_give_bit_identical_values_and_gradients),
        TAPE_TEST(test_a_checkpointed_function_that_returns_its_input_passes_the_gradient_through),
        TAPE_TEST(test_a_function_that_captures_a_tape_tensor_fails_the_backward_naming_checkpoint),
        TAPE_TEST(test_a_function_that_fails_makes_the_checkpoint_fail_with_its_error),
        TAPE_TEST(test_a_checkpoint_without_a_function_is_an_arg_error),
        TAPE_TEST(test_a_hook_registered_inside_a_checkpointed_function_runs_in_its_rerun),
        TAPE_TEST(test_an_accumulate_hook_on_a_checkpointed_parameter_sees_its_full_gradient),
        TAPE_TEST(test_a_second_identical_checkpointed_step_reserves_no_more_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
