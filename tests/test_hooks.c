/* Unit tests of gradient hooks (tape tensors) and accumulate hooks
 * (persistent tensors): what they see, when and in which order they run, what
 * their replacements change, their errors, and their lifetimes. */
#include "test_util.h"

#include <string.h>

/* ---- Probes: hooks that record what they see ------------------------------------------ */

/* The order of hook calls, one tag character per call. */
static char call_log[64];
static size_t call_log_len;

static void log_reset(void)
{
    call_log_len = 0;
    call_log[0] = '\0';
}

static void log_append(char tag)
{
    assert_true(call_log_len + 1 < sizeof call_log);
    call_log[call_log_len++] = tag;
    call_log[call_log_len] = '\0';
}

typedef struct probe {
    char tag;         /* appended to call_log at each call */
    double scale;     /* 0: keep the gradient (return NULL); else return it times scale */
    int calls;        /* number of calls so far */
    int64_t numel;    /* of the gradient seen by the last call */
    double seen[16];  /* the gradient seen by the last call */
    ad_tensor *owner; /* the tensor the hook must be called with (NULL: not checked) */
} probe;

static void copy_seen(probe *p, const ad_tensor *g)
{
    p->numel = ad_tensor_numel(g);
    assert_true(p->numel <= 16);
    assert_int_equal(ad_tensor_copy_to_doubles(g, p->seen), AD_OK);
}

static ad_tensor *probe_hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    probe *p = ctx;
    assert_non_null(grad);
    if (p->owner)
        assert_ptr_equal(t, p->owner);
    assert_int_equal(ad_tensor_dtype(grad), ad_tensor_dtype(t));
    assert_int_equal(ad_tensor_numel(grad), ad_tensor_numel(t));
    p->calls++;
    copy_seen(p, grad);
    log_append(p->tag);
    return p->scale != 0 ? ad_mul_scalar(grad, p->scale) : NULL;
}

static ad_tensor *zeros_hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    (void)t;
    (void)ctx;
    return ad_zeros_like(ad_tensor_tape(grad), grad);
}

static ad_tensor *sum_hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    (void)t;
    (void)ctx;
    return ad_sum_all(grad); /* a 0-d tensor: the wrong shape */
}

static ad_tensor *cast_hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    (void)t;
    (void)ctx;
    return ad_cast(grad, AD_F32); /* the wrong dtype for a float64 gradient */
}

static ad_tensor *error_hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    (void)grad;
    int *calls = ctx;
    (*calls)++;
    ad_tape_set_error(ad_tensor_tape(t), AD_ERR_UNSUPPORTED, "clip hook: gradient rejected");
    return NULL;
}

/* grad * t, built with ops: recorded under create_graph. */
static ad_tensor *times_self_hook(ad_tensor *t, ad_tensor *grad, void *ctx)
{
    (void)ctx;
    return ad_mul(grad, t);
}

static void assert_seen(const probe *p, int64_t n, const double *expected, double rtol)
{
    assert_int_equal(p->numel, n);
    for (int64_t i = 0; i < n; i++)
        assert_close(expected[i], p->seen[i], rtol, 0);
}

/* ---- Gradient hooks on tape tensors --------------------------------------------------- */

/* h = x * x; y = sum(h * h + 3 h): dy/dh = 2 h + 3, dy/dx = (2 h + 3) 2 x. */
static void test_a_hook_on_an_intermediate_used_twice_sees_its_complete_gradient_once(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    const double xv[3] = {0.5, -1.0, 2.0};
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, xv);
    ad_tensor *h = ad_mul(x, x);
    ad_tensor *y = ad_sum_all(ad_add(ad_mul(h, h), ad_mul_scalar(h, 3.0)));
    assert_non_null(y);
    probe p = {.tag = 'h', .owner = h};
    ad_hook_id id = 0;
    assert_int_equal(ad_tensor_register_hook(h, probe_hook, &p, &id), AD_OK);
    assert_true(id != 0);
    const double dh[3] = {2 * 0.25 + 3, 2 * 1.0 + 3, 2 * 4.0 + 3};
    const double dx[3] = {dh[0] * 1.0, dh[1] * -2.0, dh[2] * 4.0};

    ad_backward_opts retain = {.retain_graph = true};
    assert_int_equal(ad_backward(y, &retain), AD_OK);
    assert_int_equal(p.calls, 1);
    assert_seen(&p, 3, dh, 0);
    assert_values(ad_tensor_grad(x), 3, dx, 0, 0);

    ad_tensor *g = NULL;
    assert_int_equal(ad_grad(1, &y, NULL, 1, &x, &g, NULL), AD_OK);
    assert_int_equal(p.calls, 2);
    assert_seen(&p, 3, dh, 0);
    assert_values(g, 3, dx, 0, 0);
}

/* a = 2 x, h = sin a, y = sum(h * h) + sum(x): only the path through h changes. */
static void test_a_hook_replacement_changes_the_gradients_of_everything_upstream(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    const double xv[2] = {0.3, -0.7};
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, xv);
    ad_tensor *a = ad_mul_scalar(x, 2.0);
    ad_tensor *h = ad_sin(a);
    ad_tensor *y = ad_add(ad_sum_all(ad_mul(h, h)), ad_sum_all(x));
    assert_non_null(y);
    double da[2], dx[2];
    for (int i = 0; i < 2; i++) {
        double ai = 2 * xv[i];
        da[i] = 2 * sin(ai) * cos(ai);
        dx[i] = 2 * da[i] + 1.0;
    }
    ad_tensor *in[2] = {x, a}, *g[2];
    ad_backward_opts retain = {.retain_graph = true};
    assert_int_equal(ad_grad(1, &y, NULL, 2, in, g, &retain), AD_OK);
    assert_values(g[0], 2, dx, 1e-15, 0);
    assert_values(g[1], 2, da, 1e-15, 0);

    probe doubler = {.tag = 'd', .scale = 2.0};
    ad_hook_id id;
    assert_int_equal(ad_tensor_register_hook(h, probe_hook, &doubler, &id), AD_OK);
    assert_int_equal(ad_grad(1, &y, NULL, 2, in, g, &retain), AD_OK);
    assert_values(g[0], 2, ((double[]){2 * 2 * da[0] + 1, 2 * 2 * da[1] + 1}), 1e-15, 0);
    assert_values(g[1], 2, ((double[]){2 * da[0], 2 * da[1]}), 1e-15, 0);
    assert_int_equal(ad_backward(y, &retain), AD_OK);
    assert_values(ad_tensor_grad(x), 2, ((double[]){2 * 2 * da[0] + 1, 2 * 2 * da[1] + 1}), 1e-15,
                  0);
    assert_int_equal(ad_tensor_remove_hook(h, id), AD_OK);

    /* Zeros cut the path through h: what is left is d sum(x) / dx = 1. */
    assert_int_equal(ad_tensor_register_hook(h, zeros_hook, NULL, NULL), AD_OK);
    assert_int_equal(ad_grad(1, &y, NULL, 2, in, g, &retain), AD_OK);
    assert_exact(g[0], 2, (double[]){1.0, 1.0});
    assert_exact(g[1], 2, (double[]){0.0, 0.0});
}

/* h = 3 x, y = sum(h): dy/dh = 1, then 1 * 2, then 2 * 5, so dy/dx = 10 * 3. */
static void
test_hooks_on_one_tensor_run_in_registration_order_each_given_the_last_result(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){1.0, 2.0});
    ad_tensor *h = ad_mul_scalar(x, 3.0);
    ad_tensor *y = ad_sum_all(h);
    probe first = {.tag = 'A', .scale = 2.0, .owner = h};
    probe second = {.tag = 'B', .scale = 5.0, .owner = h};
    probe third = {.tag = 'C', .owner = h};
    assert_int_equal(ad_tensor_register_hook(h, probe_hook, &first, NULL), AD_OK);
    assert_int_equal(ad_tensor_register_hook(h, probe_hook, &second, NULL), AD_OK);
    assert_int_equal(ad_tensor_register_hook(h, probe_hook, &third, NULL), AD_OK);
    log_reset();
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_string_equal(call_log, "ABC");
    assert_seen(&first, 2, (double[]){1.0, 1.0}, 0);
    assert_seen(&second, 2, (double[]){2.0, 2.0}, 0);
    assert_seen(&third, 2, (double[]){10.0, 10.0}, 0);
    assert_exact(ad_tensor_grad(x), 2, (double[]){30.0, 30.0});
}

/* x -> a -> b -> c, hooks registered out of order: they run c, b, a, x. */
static void test_hooks_on_different_tensors_run_in_reverse_creation_order(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 1.5));
    ad_tensor *a = ad_mul_scalar(x, 2.0);
    ad_tensor *b = ad_add_scalar(a, 1.0);
    ad_tensor *c = ad_mul(b, a);
    probe px = {.tag = 'x'}, pa = {.tag = 'a'}, pb = {.tag = 'b'}, pc = {.tag = 'c'};
    assert_int_equal(ad_tensor_register_hook(a, probe_hook, &pa, NULL), AD_OK);
    assert_int_equal(ad_tensor_register_hook(c, probe_hook, &pc, NULL), AD_OK);
    assert_int_equal(ad_tensor_register_hook(x, probe_hook, &px, NULL), AD_OK);
    assert_int_equal(ad_tensor_register_hook(b, probe_hook, &pb, NULL), AD_OK);
    log_reset();
    ad_backward_opts retain = {.retain_graph = true};
    assert_int_equal(ad_backward(c, &retain), AD_OK);
    assert_string_equal(call_log, "cbax");
    /* c = (2x + 1) 2x: dc/db = a = 3, dc/da = b + a = 7, dc/dx = 14. */
    assert_close(1.0, pc.seen[0], 0, 0);
    assert_close(3.0, pb.seen[0], 0, 0);
    assert_close(7.0, pa.seen[0], 0, 0);
    assert_close(14.0, px.seen[0], 0, 0);
    log_reset();
    ad_tensor *g;
    assert_int_equal(ad_grad(1, &c, NULL, 1, &x, &g, NULL), AD_OK);
    assert_string_equal(call_log, "cbax");
    assert_close(14.0, ad_value(g), 0, 0);
}

/* y = sum(x * x): the hook sees 2 x (both uses) and stores 3 times that. */
static void test_a_hook_on_a_leaf_changes_what_is_stored_in_its_grad(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    const double xv[3] = {1.0, -2.0, 0.25};
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, xv);
    ad_tensor *y = ad_sum_all(ad_mul(x, x));
    probe p = {.tag = 'x', .scale = 3.0, .owner = x};
    assert_int_equal(ad_tensor_register_hook(x, probe_hook, &p, NULL), AD_OK);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_int_equal(p.calls, 1);
    assert_seen(&p, 3, (double[]){2.0, -4.0, 0.5}, 0);
    assert_exact(ad_tensor_grad(x), 3, (double[]){6.0, -12.0, 1.5});
}

/* y = sum(x W^T) with W [2,3] persistent: dy/dW[i][j] = sum_r x[r][j]. The hook
 * on W's view sees that; its replacement, not the in-place GEMM, fills the buffer. */
static void
test_a_hook_on_a_parameter_view_sees_its_gradient_and_its_result_reaches_the_buffer(void **state)
{
    ad_tape *tape = *state;
    int64_t sw[2] = {2, 3}, sx[2] = {4, 3};
    ad_tensor *w;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 2, sw, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(w, (double[]){0.5, -1, 2, 1.5, 0.25, -3}), AD_OK);
    const double xv[12] = {1, 2, 3, -1, 0.5, 2, 4, -2, 1, 0, 1, -0.5};
    double col[3] = {0, 0, 0};
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 3; j++)
            col[j] += xv[r * 3 + j];
    const double dw[6] = {col[0], col[1], col[2], col[0], col[1], col[2]};
    const double dw2[6] = {2 * col[0], 2 * col[1], 2 * col[2], 2 * col[0], 2 * col[1], 2 * col[2]};

    for (int replace = 0; replace < 2; replace++) {
        ad_tape_reset(tape);
        ad_zero_grad(w);
        ad_tensor *x = tensor(tape, AD_F64, 2, sx, xv);
        ad_tensor *v = ad_tape_use(tape, w);
        ad_tensor *y = ad_sum_all(ad_matmul_t(x, v, false, true));
        probe p = {.tag = 'w', .scale = replace ? 2.0 : 0.0, .owner = v};
        assert_int_equal(ad_tensor_register_hook(v, probe_hook, &p, NULL), AD_OK);
        assert_int_equal(ad_backward(y, NULL), AD_OK);
        assert_int_equal(p.calls, 1);
        assert_seen(&p, 6, dw, 0);
        assert_values(ad_tensor_grad(w), 6, replace ? dw2 : dw, 0, 0);
    }
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

static void
test_a_hook_returning_the_wrong_shape_or_dtype_fails_the_backward_with_shape_error(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_grad_hook bad[2] = {sum_hook, cast_hook};
    for (int k = 0; k < 2; k++) {
        ad_tape_reset(tape);
        ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){1.0, 2.0});
        ad_tensor *h = ad_exp(x);
        ad_tensor *y = ad_sum_all(h);
        assert_int_equal(ad_tensor_register_hook(h, bad[k], NULL, NULL), AD_OK);
        assert_int_equal(ad_backward(y, NULL), AD_ERR_SHAPE);
        assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
        assert_message_has(tape, "hook");
        assert_message_has(tape, "[2]");
        assert_null(ad_tensor_grad(x));
    }
    assert_message_has(tape, "float32");
}

static void test_a_hook_that_sets_an_error_stops_the_backward_with_that_error(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *x = leaf(tape, AD_F64, 1, &n, (double[]){1.0, 2.0});
    ad_tensor *h = ad_exp(x);
    ad_tensor *y = ad_sum_all(ad_mul(h, h));
    int calls = 0;
    probe upstream = {.tag = 'x'};
    assert_int_equal(ad_tensor_register_hook(x, probe_hook, &upstream, NULL), AD_OK);
    assert_int_equal(ad_tensor_register_hook(h, error_hook, &calls, NULL), AD_OK);
    assert_int_equal(ad_backward(y, NULL), AD_ERR_UNSUPPORTED);
    assert_int_equal(calls, 1);
    assert_int_equal(upstream.calls, 0);
    assert_null(ad_tensor_grad(x));
    assert_string_equal(ad_tape_message(tape), "clip hook: gradient rejected");
}

/* h = x^2, y = 3 h, the hook returns grad * h: dy/dx = 3 h 2 x = 6 x^3, whose
 * derivative is 18 x^2 only if the replacement is recorded (6 x^2 if not). */
static void
test_under_create_graph_a_hook_replacement_built_with_ops_is_differentiated(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 2.0));
    ad_tensor *h = ad_square(x);
    ad_tensor *y = ad_mul_scalar(h, 3.0);
    ad_hook_id id;
    assert_int_equal(ad_tensor_register_hook(h, times_self_hook, NULL, &id), AD_OK);
    ad_backward_opts o = {.create_graph = true};
    ad_tensor *g, *gg;
    assert_int_equal(ad_grad(1, &y, NULL, 1, &x, &g, &o), AD_OK);
    assert_close(48.0, ad_value(g), 0, 0);
    assert_true(ad_tensor_requires_grad(g));
    /* The hook would run in the second sweep too, on h's gradient there. */
    assert_int_equal(ad_tensor_remove_hook(h, id), AD_OK);
    assert_int_equal(ad_grad(1, &g, NULL, 1, &x, &gg, NULL), AD_OK);
    assert_close(72.0, ad_value(gg), 0, 0);
}

static void test_a_removed_hook_is_not_called_and_removing_it_again_is_an_arg_error(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 1.0));
    ad_tensor *h = ad_exp(x);
    ad_tensor *y = ad_mul(h, h);
    probe kept = {.tag = 'k'}, removed = {.tag = 'r'};
    ad_hook_id id_kept, id_removed;
    assert_int_equal(ad_tensor_register_hook(h, probe_hook, &removed, &id_removed), AD_OK);
    assert_int_equal(ad_tensor_register_hook(h, probe_hook, &kept, &id_kept), AD_OK);
    assert_true(id_kept != id_removed);
    ad_backward_opts retain = {.retain_graph = true};
    assert_int_equal(ad_backward(y, &retain), AD_OK);
    assert_int_equal(removed.calls, 1);
    assert_int_equal(ad_tensor_remove_hook(h, id_removed), AD_OK);
    assert_int_equal(ad_backward(y, &retain), AD_OK);
    assert_int_equal(removed.calls, 1);
    assert_int_equal(kept.calls, 2);
    assert_int_equal(ad_tensor_remove_hook(h, id_removed), AD_ERR_ARG);
    /* Another tensor's id does not remove this one's hook. */
    assert_int_equal(ad_tensor_remove_hook(x, id_kept), AD_ERR_ARG);
    assert_int_equal(ad_tensor_remove_hook(h, id_kept), AD_OK);
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_int_equal(kept.calls, 2);
    assert_close(2 * exp(2.0) * 3, ad_grad_value(x), 1e-15, 0);
}

static void
test_register_hook_rejects_no_grad_persistent_null_tensors_and_a_null_function(void **state)
{
    ad_tape *tape = *state;
    probe p = {.tag = 'p'};
    ad_hook_id id = 99;
    ad_tensor *constant = ad_exp(ad_scalar(tape, 1.0));
    assert_int_equal(ad_tensor_register_hook(constant, probe_hook, &p, &id), AD_ERR_NO_GRAD);
    assert_true(id == 0);
    ad_tensor *w;
    int64_t n = 2;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 1, &n, true), AD_OK);
    id = 99;
    assert_int_equal(ad_tensor_register_hook(w, probe_hook, &p, &id), AD_ERR_ARG);
    assert_true(id == 0);
    ad_tensor_free(w);
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 1.0));
    assert_int_equal(ad_tensor_register_hook(x, NULL, &p, &id), AD_ERR_ARG);
    assert_int_equal(ad_tensor_register_hook(NULL, probe_hook, &p, &id), AD_ERR_NULL);
    /* None of these is an error of the tape. */
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_after_a_tape_reset_its_hooks_are_gone(void **state)
{
    ad_tape *tape = *state;
    probe p = {.tag = 'p'};
    ad_hook_id id;
    for (int step = 0; step < 2; step++) {
        ad_tape_reset(tape);
        /* The same program: the second step's tensors land where the first's were. */
        ad_tensor *x = ad_requires_grad(ad_scalar(tape, 0.5));
        ad_tensor *h = ad_sin(x);
        ad_tensor *y = ad_mul(h, h);
        if (step == 0)
            assert_int_equal(ad_tensor_register_hook(h, probe_hook, &p, &id), AD_OK);
        else
            assert_int_equal(ad_tensor_remove_hook(h, id), AD_ERR_ARG);
        assert_int_equal(ad_backward(y, NULL), AD_OK);
        assert_close(2 * sin(0.5) * cos(0.5), ad_grad_value(x), 1e-15, 0);
    }
    assert_int_equal(p.calls, 1);
}

/* ---- Accumulate hooks on persistent tensors ------------------------------------------- */

typedef struct accumulate_probe {
    char tag;
    int calls;
    double seen[16]; /* the gradient buffer at the last call */
} accumulate_probe;

static void accumulate_probe_hook(ad_tensor *param, void *ctx)
{
    accumulate_probe *p = ctx;
    ad_tensor *g = ad_tensor_grad(param);
    assert_non_null(g);
    assert_true(ad_tensor_numel(g) <= 16);
    assert_int_equal(ad_tensor_copy_to_doubles(g, p->seen), AD_OK);
    p->calls++;
    log_append(p->tag);
}

static ad_tensor *param(ad_dtype dtype, int ndim, const int64_t *shape, const double *values)
{
    ad_tensor *p = NULL;
    assert_int_equal(ad_tensor_create(&p, dtype, ndim, shape, true), AD_OK);
    assert_int_equal(ad_tensor_copy_from_doubles(p, values), AD_OK);
    return p;
}

/* y = sum(w * w) + sum(w * x): the buffer holds 2 w + x when the hook runs,
 * and twice that after a second backward without zeroing. */
static void test_an_accumulate_hook_reads_the_full_gradient_of_a_parameter_used_twice(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    const double wv[3] = {1.0, -2.0, 0.5}, xv[3] = {3.0, 0.25, -1.0};
    ad_tensor *w = param(AD_F64, 1, &n, wv);
    accumulate_probe p = {.tag = 'w'};
    assert_int_equal(ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &p, NULL), AD_OK);
    for (int step = 1; step <= 2; step++) {
        ad_tape_reset(tape);
        ad_tensor *x = tensor(tape, AD_F64, 1, &n, xv);
        ad_tensor *y = ad_add(ad_sum_all(ad_mul(ad_tape_use(tape, w), ad_tape_use(tape, w))),
                              ad_sum_all(ad_mul(w, x)));
        assert_int_equal(ad_backward(y, NULL), AD_OK);
        assert_int_equal(p.calls, step);
        for (int i = 0; i < 3; i++)
            assert_close(step * (2 * wv[i] + xv[i]), p.seen[i], 0, 0);
    }
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

/* Two linear maps with one weight W [3,3], both gradients added into its buffer
 * by in-place GEMMs: h1 = tanh(x W^T), y = sum(h1 W^T). By hand:
 * dW = 1^T h1 (second use) + (dh1 * (1 - h1^2))^T x with dh1 = 1 W (first use). */
static void test_an_accumulate_hook_reads_both_in_place_matmul_gradients_of_a_weight(void **state)
{
    ad_tape *tape = *state;
    int64_t sw[2] = {3, 3}, sx[2] = {2, 3};
    const double wv[9] = {0.5, -0.25, 0.1, 0.3, 0.2, -0.4, -0.1, 0.6, 0.05};
    const double xv[6] = {1.0, -2.0, 0.5, 0.25, 1.5, -1.0};
    ad_tensor *w = param(AD_F64, 2, sw, wv);
    double h1[2][3], dw[9] = {0};
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3; i++) {
            double z = 0;
            for (int j = 0; j < 3; j++)
                z += xv[r * 3 + j] * wv[i * 3 + j];
            h1[r][i] = tanh(z);
        }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int r = 0; r < 2; r++) {
                double dh1 = wv[0 * 3 + i] + wv[1 * 3 + i] + wv[2 * 3 + i];
                dw[i * 3 + j] += h1[r][j] + dh1 * (1 - h1[r][i] * h1[r][i]) * xv[r * 3 + j];
            }
    accumulate_probe p = {.tag = 'w'};
    assert_int_equal(ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &p, NULL), AD_OK);
    ad_tensor *x = tensor(tape, AD_F64, 2, sx, xv);
    ad_tensor *y = ad_sum_all(ad_matmul_t(ad_tanh(ad_matmul_t(x, w, false, true)), w, false, true));
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_int_equal(p.calls, 1);
    for (int i = 0; i < 9; i++)
        assert_close(dw[i], p.seen[i], 1e-14, 1e-15);
    assert_values(ad_tensor_grad(w), 9, dw, 1e-14, 1e-15);
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

/* a is first used before b, so the sweep passes b's first use first: b's hook,
 * then a's two in registration order, even though a is used again after b. */
static void test_accumulate_hooks_run_in_the_order_the_sweep_passes_first_uses(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *a = param(AD_F64, 1, &n, (double[]){1.0, 2.0});
    ad_tensor *b = param(AD_F64, 1, &n, (double[]){-1.0, 0.5});
    accumulate_probe a1 = {.tag = '1'}, a2 = {.tag = '2'}, b3 = {.tag = '3'};
    assert_int_equal(ad_tensor_register_accumulate_hook(a, accumulate_probe_hook, &a1, NULL),
                     AD_OK);
    assert_int_equal(ad_tensor_register_accumulate_hook(b, accumulate_probe_hook, &b3, NULL),
                     AD_OK);
    assert_int_equal(ad_tensor_register_accumulate_hook(a, accumulate_probe_hook, &a2, NULL),
                     AD_OK);
    ad_tensor *x = tensor(tape, AD_F64, 1, &n, (double[]){3.0, 4.0});
    /* y = sum(a x) + sum(b x) + sum(a b) */
    ad_tensor *y = ad_add(ad_add(ad_sum_all(ad_mul(a, x)), ad_sum_all(ad_mul(b, x))),
                          ad_sum_all(ad_mul(ad_tape_use(tape, a), b)));
    log_reset();
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_string_equal(call_log, "312");
    /* da = x + b, db = x + a */
    assert_close(2.0, a1.seen[0], 0, 0);
    assert_close(4.5, a2.seen[1], 0, 0);
    assert_close(4.0, b3.seen[0], 0, 0);
    assert_close(6.0, b3.seen[1], 0, 0);
    ad_tape_reset(tape);
    ad_tensor_free(a);
    ad_tensor_free(b);
}

static void test_accumulate_hooks_are_not_called_by_ad_grad(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *w = param(AD_F64, 1, &n, (double[]){1.0, 2.0});
    accumulate_probe p = {.tag = 'w'};
    assert_int_equal(ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &p, NULL), AD_OK);
    ad_tensor *x = tensor(tape, AD_F64, 1, &n, (double[]){3.0, 4.0});
    ad_tensor *y = ad_sum_all(ad_mul(w, x));
    ad_tensor *g;
    ad_backward_opts retain = {.retain_graph = true};
    assert_int_equal(ad_grad(1, &y, NULL, 1, &w, &g, &retain), AD_OK);
    assert_exact(g, 2, (double[]){3.0, 4.0});
    assert_int_equal(p.calls, 0);
    assert_exact(ad_tensor_grad(w), 2, (double[]){0.0, 0.0});
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    assert_int_equal(p.calls, 1);
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

static void
test_a_removed_accumulate_hook_is_not_called_and_removing_it_again_is_an_arg_error(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *w = param(AD_F64, 1, &n, (double[]){1.0, 2.0});
    accumulate_probe removed = {.tag = 'r'}, kept = {.tag = 'k'};
    ad_hook_id id_removed, id_kept;
    assert_int_equal(
        ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &removed, &id_removed), AD_OK);
    assert_int_equal(ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &kept, &id_kept),
                     AD_OK);
    assert_true(id_removed != 0 && id_kept != 0 && id_removed != id_kept);
    for (int step = 1; step <= 3; step++) {
        ad_tape_reset(tape);
        ad_zero_grad(w);
        ad_tensor *y = ad_sum_all(ad_mul(w, ad_full(tape, AD_F64, 1, &n, 2.0)));
        assert_int_equal(ad_backward(y, NULL), AD_OK);
        if (step == 1)
            assert_int_equal(ad_tensor_remove_hook(w, id_removed), AD_OK);
    }
    assert_int_equal(removed.calls, 1);
    assert_int_equal(kept.calls, 3);
    assert_close(2.0, kept.seen[1], 0, 0);
    assert_int_equal(ad_tensor_remove_hook(w, id_removed), AD_ERR_ARG);
    assert_int_equal(ad_tensor_remove_hook(w, id_kept), AD_OK);
    assert_int_equal(ad_tensor_remove_hook(w, id_kept), AD_ERR_ARG);
    ad_tape_reset(tape);
    ad_tensor_free(w);
}

static void
test_register_accumulate_hook_rejects_tape_frozen_null_tensors_and_a_null_function(void **state)
{
    ad_tape *tape = *state;
    accumulate_probe p = {.tag = 'p'};
    ad_hook_id id = 99;
    ad_tensor *x = ad_requires_grad(ad_scalar(tape, 1.0));
    assert_int_equal(ad_tensor_register_accumulate_hook(x, accumulate_probe_hook, &p, &id),
                     AD_ERR_ARG);
    assert_true(id == 0);
    int64_t n = 2;
    ad_tensor *frozen;
    assert_int_equal(ad_tensor_create(&frozen, AD_F64, 1, &n, false), AD_OK);
    assert_int_equal(ad_tensor_register_accumulate_hook(frozen, accumulate_probe_hook, &p, &id),
                     AD_ERR_NO_GRAD);
    ad_tensor *w = param(AD_F64, 1, &n, (double[]){1.0, 2.0});
    assert_int_equal(ad_tensor_register_accumulate_hook(w, NULL, &p, &id), AD_ERR_ARG);
    assert_int_equal(ad_tensor_register_accumulate_hook(NULL, accumulate_probe_hook, &p, &id),
                     AD_ERR_NULL);
    ad_tensor_free(frozen);
    ad_tensor_free(w);
}

/* Hooks still registered go with the tensor: its allocator sees every block back. */
static void test_accumulate_hooks_still_registered_are_freed_with_their_tensor(void **state)
{
    (void)state;
    counting_allocator c = {0};
    ad_allocator a = allocator_of(&c);
    ad_tensor *w;
    int64_t n = 4;
    assert_int_equal(ad_tensor_create_with(&w, AD_F32, 1, &n, true, &a), AD_OK);
    size_t before = c.allocs;
    accumulate_probe p = {.tag = 'p'};
    for (int k = 0; k < 3; k++)
        assert_int_equal(ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &p, NULL),
                         AD_OK);
    assert_int_equal(c.allocs, before + 3);
    ad_tensor_free(w);
    assert_int_equal(c.live, 0);
    assert_int_equal(p.calls, 0);
}

static void
test_registering_an_accumulate_hook_when_its_allocator_fails_is_a_nomem_error(void **state)
{
    (void)state;
    counting_allocator c = {0};
    ad_allocator a = allocator_of(&c);
    ad_tensor *w;
    int64_t n = 2;
    assert_int_equal(ad_tensor_create_with(&w, AD_F64, 1, &n, true, &a), AD_OK);
    accumulate_probe p = {.tag = 'p'};
    ad_hook_id id = 99;
    c.fail_at = c.allocs + 1;
    assert_int_equal(ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &p, &id),
                     AD_ERR_NOMEM);
    assert_true(id == 0);
    c.fail_at = 0;
    assert_int_equal(ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &p, &id), AD_OK);
    assert_true(id != 0);
    ad_tensor_free(w);
    assert_int_equal(c.live, 0);
}

/* The same parameter, a hook, and a backward on each of two tapes (say, a
 * training tape and an evaluation tape): each backward calls it once. */
static void test_an_accumulate_hook_runs_for_a_backward_on_each_of_two_tapes(void **state)
{
    ad_tape *first = *state, *second = test_tape();
    int64_t n = 2;
    ad_tensor *w = param(AD_F64, 1, &n, (double[]){1.0, 2.0});
    accumulate_probe p = {.tag = 'w'};
    assert_int_equal(ad_tensor_register_accumulate_hook(w, accumulate_probe_hook, &p, NULL), AD_OK);
    ad_tape *tapes[2] = {first, second};
    for (int k = 0; k < 2; k++) {
        ad_tensor *x = ad_full(tapes[k], AD_F64, 1, &n, 1.0 + k);
        assert_int_equal(ad_backward(ad_sum_all(ad_mul(w, x)), NULL), AD_OK);
        assert_int_equal(p.calls, k + 1);
    }
    /* 1 + 2 in the buffer when the second hook ran */
    assert_close(3.0, p.seen[0], 0, 0);
    ad_tape_free(second);
    ad_tape_reset(first);
    ad_tensor_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_a_hook_on_an_intermediate_used_twice_sees_its_complete_gradient_once),
        TAPE_TEST(test_a_hook_replacement_changes_the_gradients_of_everything_upstream),
        TAPE_TEST(test_hooks_on_one_tensor_run_in_registration_order_each_given_the_last_result),
        TAPE_TEST(test_hooks_on_different_tensors_run_in_reverse_creation_order),
        TAPE_TEST(test_a_hook_on_a_leaf_changes_what_is_stored_in_its_grad),
        TAPE_TEST(
            test_a_hook_on_a_parameter_view_sees_its_gradient_and_its_result_reaches_the_buffer),
        TAPE_TEST(
            test_a_hook_returning_the_wrong_shape_or_dtype_fails_the_backward_with_shape_error),
        TAPE_TEST(test_a_hook_that_sets_an_error_stops_the_backward_with_that_error),
        TAPE_TEST(test_under_create_graph_a_hook_replacement_built_with_ops_is_differentiated),
        TAPE_TEST(test_a_removed_hook_is_not_called_and_removing_it_again_is_an_arg_error),
        TAPE_TEST(test_register_hook_rejects_no_grad_persistent_null_tensors_and_a_null_function),
        TAPE_TEST(test_after_a_tape_reset_its_hooks_are_gone),
        TAPE_TEST(test_an_accumulate_hook_reads_the_full_gradient_of_a_parameter_used_twice),
        TAPE_TEST(test_an_accumulate_hook_reads_both_in_place_matmul_gradients_of_a_weight),
        TAPE_TEST(test_accumulate_hooks_run_in_the_order_the_sweep_passes_first_uses),
        TAPE_TEST(test_accumulate_hooks_are_not_called_by_ad_grad),
        TAPE_TEST(
            test_a_removed_accumulate_hook_is_not_called_and_removing_it_again_is_an_arg_error),
        TAPE_TEST(
            test_register_accumulate_hook_rejects_tape_frozen_null_tensors_and_a_null_function),
        TAPE_TEST(test_accumulate_hooks_still_registered_are_freed_with_their_tensor),
        TAPE_TEST(test_registering_an_accumulate_hook_when_its_allocator_fails_is_a_nomem_error),
        TAPE_TEST(test_an_accumulate_hook_runs_for_a_backward_on_each_of_two_tapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
