/* The LSTM cell's gate ops (src/ops/rnn_cell.c): lstm_cell_c and lstm_cell_h
 * give torch's LSTMCell values and gradients, and the bits of the composition
 * they replace (slices, sigmoid, tanh, mul, add) in both dtypes, whichever way
 * the backward runs: the fused kernel adding into the gradients being summed
 * (ad_grad, ad_backward), the fused kernel into fresh gradients (anomaly
 * mode), or the rule built from ops (create_graph). Bad shapes and dtypes are
 * in test_bad_inputs.c; gradchecks in cases_rnn.c. */
#include "test_util.h"

#define H 5
#define ROWS 3
#define GATES (ROWS * 4 * H)
#define STATES (ROWS * H)

/* ---- torch's numbers ---------------------------------------------------------------------- */

/* torch.nn.LSTMCell(8, 2) with weight_ih = I, weight_hh = 0, biases 0 (so its
 * gates are the input) on g and c below, and the gradients of
 * sum(h' wh) + sum(c' wc); PyTorch 1.13, float64. */
static void test_lstm_cell_ops_give_torch_values_and_gradients(void **state)
{
    (void)state;
    static const double g[16] = {0.5, -1.25, 2.0,  -0.3, 1.5, 0.0,  -2.5, 0.75,
                                 30,  -30,   -0.8, 1.1,  0.2, -3.0, 40,   -0.6};
    static const double c[4] = {1.5, -0.7, -2.0, 0.25}, wh[4] = {1.0, -2.0, 0.5, 3.0},
                        wc[4] = {-1.5, 0.25, 2.0, -1.0};
    static const double c1[4] = {1.8846135935691337, -0.29789023823183869, -0.42267571751988953,
                                 0.1875650263986863};
    static const double h1[4] = {0.072437026642076338, -0.19654121214247547, -0.39918218324842714,
                                 0.065693900615351297};
    static const double dg[16] = {-0.31764717047440755,
                                  0,
                                  -0.2351822691435779,
                                  0.17019795137667054,
                                  -0.16797151553793749,
                                  -0.22149910105454096,
                                  0.066942085634858095,
                                  0.12610921469038805,
                                  4.4656962252518137e-14,
                                  -2.4668481143997173e-15,
                                  -1.0354627392367457,
                                  0.0012409939808338728,
                                  2.3260380802135443,
                                  2.445897081340725e-17,
                                  0,
                                  0.12724704363861669};
    static const double dc[4] = {-1.3153048328795196, -0.4232624212560131, 0.75036306961998656,
                                 0.019876583735908105};
    for (int d = 0; d < 2; d++) {
        ad_dtype dtype = d ? AD_F64 : AD_F32;
        double rtol = d ? 1e-14 : 2e-6, atol = d ? 1e-16 : 1e-7;
        ad_tape *tape = test_tape();
        ad_tensor *gt = leaf(tape, dtype, 2, (int64_t[]){2, 8}, g);
        ad_tensor *ct = leaf(tape, dtype, 2, (int64_t[]){2, 2}, c);
        ad_tensor *cn = ad_lstm_cell_c(gt, ct), *hn = ad_lstm_cell_h(gt, cn);
        ad_tensor *whs = tensor(tape, dtype, 2, (int64_t[]){2, 2}, wh);
        ad_tensor *wcs = tensor(tape, dtype, 2, (int64_t[]){2, 2}, wc);
        ad_tensor *loss = ad_add(ad_sum_all(ad_mul(hn, whs)), ad_sum_all(ad_mul(cn, wcs)));
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        assert_string_equal(ad_op_name(ad_tensor_op(cn)), "lstm_cell_c");
        assert_string_equal(ad_op_name(ad_tensor_op(hn)), "lstm_cell_h");
        for (int i = 0; i < 4; i++) {
            assert_close(c1[i], ad_tensor_get(cn, i), rtol, atol);
            assert_close(h1[i], ad_tensor_get(hn, i), rtol, atol);
            assert_close(dc[i], ad_tensor_get(ad_tensor_grad(ct), i), rtol, atol);
        }
        for (int i = 0; i < 16; i++)
            assert_close(dg[i], ad_tensor_get(ad_tensor_grad(gt), i), rtol, atol);
        ad_tape_free(tape);
    }
}

/* ---- The composition's bits ------------------------------------------------------------- */

/* Gate pre-activations: the sigmoids' and tanh's kinks, saturation, huge and
 * non-finite values, and (finite only) a plain spread. */
static void gate_values(double *g, bool finite)
{
    static const double special[] = {-3.5, -1.0, -0.0, 0.0,   1e-30,    0.25,      0.7,
                                     2.0,  40.0, -40., 800.0, -800.0,   1e4,       -2.2,
                                     3.1,  -0.4, 1.3,  9.0,   INFINITY, -INFINITY, NAN};
    int n = finite ? 18 : (int)(sizeof special / sizeof special[0]);
    for (int i = 0; i < 2 * GATES; i++)
        g[i] = i % 3 ? special[(i * 7) % n] : sin(0.37 * i) * 3;
}

typedef enum sweep_mode {
    SWEEP_GRAD,     /* ad_grad: the fused kernel adds into the sums */
    SWEEP_ANOMALY,  /* ad_grad in anomaly mode: the fused kernel into fresh gradients */
    SWEEP_RECORDED, /* ad_grad with create_graph: the rules built from ops */
    SWEEP_BACKWARD, /* ad_backward into the leaves' gradients */
} sweep_mode;

/* One LSTM step: the two ops, or the composition they replace. */
static ad_tensor *step(ad_tensor *g, ad_tensor *c, bool fused, ad_tensor **c_next)
{
    if (fused) {
        *c_next = ad_lstm_cell_c(g, c);
        return ad_lstm_cell_h(g, *c_next);
    }
    ad_tensor *part[4];
    for (int k = 0; k < 4; k++)
        part[k] = ad_slice(g, -1, k * H, (k + 1) * H, 1);
    ad_tensor *i = ad_sigmoid(part[0]), *f = ad_sigmoid(part[1]);
    ad_tensor *cand = ad_tanh(part[2]), *o = ad_sigmoid(part[3]);
    *c_next = ad_add(ad_mul(f, c), ad_mul(i, cand));
    return ad_mul(o, ad_tanh(*c_next));
}

/* Two steps from gates g1, g2 and state c0, with the inputs named by `wants`
 * (bit k: input k of g1, g2, c0) requiring grad: writes h1, h2, c2 and the
 * gradients of <h1, s1> + <h2, s2> + <c2, s3> for fixed seeds s into out. */
static void two_steps(ad_dtype dtype, bool fused, sweep_mode mode, unsigned wants, bool finite,
                      double *out)
{
    double g[2 * GATES], c0[STATES], seed[3][STATES];
    gate_values(g, finite);
    for (int i = 0; i < STATES; i++) {
        c0[i] = i % 4 ? cos(0.9 * i) * 2 : (finite ? 1.5 : (i % 8 ? INFINITY : NAN));
        for (int k = 0; k < 3; k++)
            seed[k][i] = (k + 1) * sin(1.3 * i + k) - 0.5 * k;
    }
    ad_tape *tape = test_tape();
    ad_tape_set_anomaly(tape, mode == SWEEP_ANOMALY);
    const int64_t gs[2] = {ROWS, 4 * H}, cs[2] = {ROWS, H};
    ad_tensor *in[3] = {tensor(tape, dtype, 2, gs, g), tensor(tape, dtype, 2, gs, g + GATES),
                        tensor(tape, dtype, 2, cs, c0)};
    for (int k = 0; k < 3; k++)
        if (wants >> k & 1)
            in[k] = ad_requires_grad(in[k]);
    ad_tensor *c1, *c2, *h1 = step(in[0], in[2], fused, &c1), *h2 = step(in[1], c1, fused, &c2);
    ad_tensor *outs[3] = {h1, h2, c2}, *seeds[3], *grads[3] = {NULL};
    for (int k = 0; k < 3; k++) {
        seeds[k] = tensor(tape, dtype, 2, cs, seed[k]);
        assert_int_equal(ad_tensor_copy_to_doubles(outs[k], out + k * STATES), AD_OK);
    }
    double *dg = out + 3 * STATES;
    if (mode == SWEEP_BACKWARD) {
        ad_tensor *loss = NULL;
        for (int k = 0; k < 3; k++) {
            ad_tensor *term = ad_sum_all(ad_mul(outs[k], seeds[k]));
            loss = loss ? ad_add(loss, term) : term;
        }
        assert_int_equal(ad_backward(loss, NULL), AD_OK);
        for (int k = 0; k < 3; k++)
            grads[k] = ad_tensor_grad(in[k]);
    } else {
        ad_backward_opts opts = {.create_graph = mode == SWEEP_RECORDED};
        ad_tensor *live[3], *live_seeds[3]; /* h1 needs no grad when only g2 does */
        size_t n = 0;
        for (int k = 0; k < 3; k++)
            if (ad_tensor_requires_grad(outs[k]))
                live[n] = outs[k], live_seeds[n++] = seeds[k];
        if (ad_grad(n, live, live_seeds, 3, in, grads, &opts) != AD_OK)
            fail_msg("ad_grad: %s", ad_tape_message(tape));
    }
    for (int k = 0; k < 3; k++) {
        double *at = dg + (k < 2 ? k * GATES : 2 * GATES);
        if (wants >> k & 1)
            assert_int_equal(ad_tensor_copy_to_doubles(grads[k], at), AD_OK);
    }
    ad_tape_free(tape);
}

/* Equal, NaN to NaN; a zero's sign is not compared (a slice's gradient is
 * +0 where the rule made -0, in either form). */
static bool same(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

static void test_lstm_cell_ops_give_the_composition_bit_for_bit(void **state)
{
    (void)state;
    enum { N = 3 * STATES + 2 * GATES + STATES };
    static const char *const mode_names[] = {"ad_grad", "anomaly mode", "create_graph",
                                             "ad_backward"};
    for (int d = 0; d < 2; d++) {
        ad_dtype dtype = d ? AD_F64 : AD_F32;
        for (unsigned wants = 1; wants < 8; wants++) {
            for (int m = 0; m < 4; m++) {
                bool finite = m == SWEEP_ANOMALY; /* anomaly mode refuses NaN */
                double want[N] = {0}, got[N] = {0};
                two_steps(dtype, false, SWEEP_GRAD, wants, finite, want);
                two_steps(dtype, true, (sweep_mode)m, wants, finite, got);
                for (int i = 0; i < N; i++)
                    if (!same(want[i], got[i]))
                        fail_msg("%s, inputs %u, %s: element %d: fused %.17g, composed %.17g",
                                 d ? "float64" : "float32", wants, mode_names[m], i, got[i],
                                 want[i]);
            }
        }
    }
}

/* A step's cell records two nodes; the forward alone (grad disabled)
 * records none, keeps no activations and gives the same values. */
static void test_a_cell_records_two_nodes_and_without_grad_none_with_the_same_values(void **state)
{
    ad_tape *tape = *state;
    double g[2 * GATES], c[STATES];
    gate_values(g, false);
    for (int i = 0; i < STATES; i++)
        c[i] = cos(0.9 * i) * 2;
    ad_tensor *gt = leaf(tape, AD_F64, 2, (int64_t[]){ROWS, 4 * H}, g);
    ad_tensor *ct = leaf(tape, AD_F64, 2, (int64_t[]){ROWS, H}, c);
    size_t nodes = ad_tape_node_count(tape);
    ad_tensor *c1 = ad_lstm_cell_c(gt, ct), *h1 = ad_lstm_cell_h(gt, c1);
    assert_int_equal(ad_tape_node_count(tape), nodes + 2); /* a step's cell: two nodes */
    nodes += 2;
    ad_tape_set_grad_enabled(tape, false);
    ad_tensor *c2 = ad_lstm_cell_c(gt, ct), *h2 = ad_lstm_cell_h(gt, c2);
    ad_tape_set_grad_enabled(tape, true);
    assert_int_equal(ad_tape_node_count(tape), nodes);
    assert_false(ad_tensor_requires_grad(h2));
    for (int i = 0; i < STATES; i++) {
        assert_true(same(ad_tensor_get(c1, i), ad_tensor_get(c2, i)));
        assert_true(same(ad_tensor_get(h1, i), ad_tensor_get(h2, i)));
    }
}

/* NULL in, NULL out with nothing recorded; persistent inputs only: the
 * thread's error names the op. */
static void test_lstm_cell_ops_of_null_or_persistent_inputs(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *g = ad_full(tape, AD_F64, 1, (int64_t[]){8}, 0.5);
    ad_tensor *c = ad_full(tape, AD_F64, 1, (int64_t[]){2}, 0.5);
    assert_null(ad_lstm_cell_c(NULL, c));
    assert_null(ad_lstm_cell_h(g, NULL));
    assert_int_equal(ad_tape_status(tape), AD_OK);
    ad_tensor *pg = NULL, *pc = NULL;
    assert_int_equal(ad_tensor_create(&pg, AD_F64, 1, (int64_t[]){8}, false), AD_OK);
    assert_int_equal(ad_tensor_create(&pc, AD_F64, 1, (int64_t[]){2}, false), AD_OK);
    ad_thread_clear_error();
    assert_null(ad_lstm_cell_h(pg, pc));
    assert_int_equal(ad_thread_status(), AD_ERR_TAPE);
    assert_non_null(strstr(ad_thread_message(), "lstm_cell_h"));
    ad_thread_clear_error();
    ad_tensor_free(pg);
    ad_tensor_free(pc);
}

/* Two steps and ad_backward on a tape of allocator c, after pad doubles of
 * other data (so each allocation of the ops meets the end of an arena block
 * in turn); the gradients into grads[2 GATES + STATES]. Frees all it made. */
static ad_status steps_with(counting_allocator *c, int64_t pad, double *grads)
{
    ad_allocator a = allocator_of(c);
    ad_tape *tape = NULL;
    ad_status st = ad_tape_create_with(&tape, &a);
    if (st != AD_OK)
        return st;
    double g[2 * GATES], c0[STATES];
    gate_values(g, true);
    for (int i = 0; i < STATES; i++)
        c0[i] = cos(0.9 * i) * 2;
    const int64_t gs[2] = {ROWS, 4 * H}, cs[2] = {ROWS, H};
    ad_tensor *in[3] = {NULL};
    if (ad_tape_tensor(tape, AD_F64, 1, &pad, NULL)) {
        in[0] = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 2, gs, g));
        in[1] = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 2, gs, g + GATES));
        in[2] = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 2, cs, c0));
    }
    ad_tensor *c1, *c2, *h1 = step(in[0], in[2], true, &c1), *h2 = step(in[1], c1, true, &c2);
    ad_tensor *loss = ad_add(ad_sum_all(ad_mul(h1, h2)), ad_sum_all(ad_square(c2)));
    st = loss ? ad_backward(loss, NULL) : ad_tape_status(tape);
    for (int k = 0; k < 3 && st == AD_OK; k++)
        ad_tensor_copy_to_doubles(ad_tensor_grad(in[k]), grads + k * GATES);
    ad_tape_free(tape);
    return st;
}

/* Every failing allocation gives AD_ERR_NOMEM (or, past the last, the same
 * gradients) and frees everything. The pads walk the end of the arena's
 * first block (64 KiB) across the two steps and their backward. */
static void test_lstm_cell_ops_out_of_memory_give_nomem_and_free_all(void **state)
{
    (void)state;
    for (int64_t pad = 0; pad <= 8192; pad += 16) {
        double want[2 * GATES + STATES], got[2 * GATES + STATES];
        counting_allocator ref = {0};
        assert_int_equal(steps_with(&ref, pad, want), AD_OK);
        assert_int_equal(ref.live, 0);
        for (size_t k = 1; k <= 2 * (ref.allocs + 1); k++) {
            /* the k-th fails, or (second half) it and every one after it */
            bool after = k > ref.allocs + 1;
            counting_allocator c = {.fail_at = after ? k - ref.allocs - 1 : k, .fail_after = after};
            ad_status st = steps_with(&c, pad, got);
            assert_int_equal(c.live, 0);
            if (st == AD_OK)
                assert_memory_equal(want, got, sizeof want);
            else
                assert_int_equal(st, AD_ERR_NOMEM);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lstm_cell_ops_give_torch_values_and_gradients),
        cmocka_unit_test(test_lstm_cell_ops_give_the_composition_bit_for_bit),
        TAPE_TEST(test_a_cell_records_two_nodes_and_without_grad_none_with_the_same_values),
        TAPE_TEST(test_lstm_cell_ops_of_null_or_persistent_inputs),
        cmocka_unit_test(test_lstm_cell_ops_out_of_memory_give_nomem_and_free_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
