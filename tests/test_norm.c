/* layer_norm, group_norm and batch_norm as functions: values and gradients
 * from torch 1.13 (the snippets that made them are in the comments), and
 * gradchecks to second order. */
#include "test_util.h"

#define TAPE_TEST(f) cmocka_unit_test_setup_teardown(f, tape_setup, tape_teardown)

static ad_tensor *from(ad_tape *tape, int ndim, const int64_t *shape, const double *v)
{
    return ad_tape_tensor_from_doubles(tape, AD_F64, ndim, shape, v);
}

static const double X[12] = {0.5, -1.0, 2.0, 1.5, 0.25, -0.75, 3.0, -2.0, 0.1, 0.0, 1.0, -1.0};

/* x = tensor(X).reshape(2,2,3); F.layer_norm(x, (2,3), w, b, 1e-5); (y * arange(12)).sum() */
static void test_layer_norm_over_two_dims_matches_torch(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_requires_grad(from(tape, 3, (int64_t[]){2, 2, 3}, X));
    ad_tensor *w = from(tape, 2, (int64_t[]){2, 3}, (double[]){1.5, -0.5, 2.0, 0.3, 1.0, 0.7});
    ad_tensor *b = from(tape, 2, (int64_t[]){2, 3}, (double[]){0.1, 0.2, 0.3, -0.1, 0.0, 0.5});
    ad_tensor *y = ad_layer_norm(x, 2, w, b, 1e-5);
    const double want[12] = {0.21504426108185512,  0.851917479463846,    3.214454614073664,
                             0.1991150788128234,   -0.15339234810914024, -0.251622505734787,
                             2.789356449411205,    0.8948830273626585,   0.19391098818890712,
                             -0.13500937389766066, 0.5198361578743551,   -0.027262388701131658};
    for (int k = 0; k < 12; k++)
        assert_close(want[k], ad_tensor_get(y, k), 1e-13, 1e-15);
    double c[12];
    for (int k = 0; k < 12; k++)
        c[k] = k;
    ad_tensor *loss = ad_sum_all(ad_mul(y, from(tape, 3, (int64_t[]){2, 2, 3}, c)));
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    const double grad[12] = {-1.8607391137507197, -1.6842530755430198, 1.184014158333525,
                             -1.456862488984776,  1.9267877546244987,  1.8910527653204914,
                             -2.374962928401935,  -3.8370116462170527, 5.84765932511374,
                             -2.488351274051137,  0.8594220096713618,  1.9932445138850188};
    for (int k = 0; k < 12; k++)
        assert_close(grad[k], ad_tensor_get(ad_tensor_grad(x), k), 1e-12, 1e-14);
}

/* F.group_norm(tensor(X[:8]).reshape(2,4,1), 2, [1,2,.5,-1], [0,1,0,-1], 1e-5) */
static void test_group_norm_matches_torch(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = from(tape, 3, (int64_t[]){2, 4, 1}, X);
    ad_tensor *w, *b;
    assert_int_equal(ad_tensor_create(&w, AD_F64, 1, (int64_t[]){4}, true), AD_OK);
    assert_int_equal(ad_tensor_create(&b, AD_F64, 1, (int64_t[]){4}, false), AD_OK);
    const double wv[4] = {1, 2, 0.5, -1}, bv[4] = {0, 1, 0, -1};
    for (int k = 0; k < 4; k++) {
        ad_tensor_set(w, k, wv[k]);
        ad_tensor_set(b, k, bv[k]);
    }
    ad_tensor *y = ad_group_norm(x, 2, w, b, 1e-5); /* persistent parameters */
    const double want[8] = {0.9999911112296278,     -0.9999822224592556,   0.4999600047993602,
                            -7.999040127981694e-05, 0.9999800005999799,    -0.9999600011999599,
                            0.49999960000048,       -7.999990400131551e-07};
    for (int k = 0; k < 8; k++)
        assert_close(want[k], ad_tensor_get(y, k), 1e-12, 1e-15);
    assert_null(ad_group_norm(x, 3, w, b, 1e-5));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_non_null(strstr(ad_tape_message(tape), "group_norm: 3 groups do not divide"));
    ad_tape_reset(tape);
    ad_tensor_free(w);
    ad_tensor_free(b);
}

/* rm, rv = [.5,-.5], [1,2]; F.batch_norm(xb, rm, rv, None, None, True, 0.1, 1e-5), then
 * F.batch_norm(xb, rm, rv, [2,1], None, False, 0.1, 1e-5) with the updated stats */
static void test_batch_norm_trains_updates_running_stats_and_evaluates_as_torch(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = from(tape, 2, (int64_t[]){3, 2}, (double[]){1, 2, 3, 5, -1, 0.5});
    ad_tensor *rm, *rv;
    assert_int_equal(ad_tensor_create(&rm, AD_F64, 1, (int64_t[]){2}, false), AD_OK);
    assert_int_equal(ad_tensor_create(&rv, AD_F64, 1, (int64_t[]){2}, false), AD_OK);
    ad_tensor_set(rm, 0, 0.5);
    ad_tensor_set(rm, 1, -0.5);
    ad_tensor_set(rv, 0, 1.0);
    ad_tensor_set(rv, 1, 2.0);
    ad_tensor *y = ad_batch_norm(x, rm, rv, NULL, NULL, true, 0.1, 1e-5);
    const double want[6] = {0.0,
                            -0.2672608601114683,
                            1.2247425750014138,
                            1.3363043005573418,
                            -1.2247425750014138,
                            -1.0690434404458735};
    for (int k = 0; k < 6; k++)
        assert_close(want[k], ad_tensor_get(y, k), 1e-12, 1e-15);
    assert_close(0.55, ad_tensor_get(rm, 0), 1e-15, 0);
    assert_close(-0.2, ad_tensor_get(rm, 1), 1e-15, 0);
    assert_close(1.3, ad_tensor_get(rv, 0), 1e-15, 0);
    assert_close(2.325, ad_tensor_get(rv, 1), 1e-15, 0);
    ad_tensor *w = from(tape, 1, (int64_t[]){2}, (double[]){2, 1});
    ad_tensor *e = ad_batch_norm(x, rm, rv, w, NULL, false, 0.1, 1e-5);
    const double eval[6] = {0.7893491814237744, 1.4428137359027942,  4.297567765529439,
                            3.4102870121338773, -2.7188694026818903, 0.4590770977872527};
    for (int k = 0; k < 6; k++)
        assert_close(eval[k], ad_tensor_get(e, k), 1e-12, 1e-15);
    assert_null(ad_batch_norm(x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_non_null(strstr(ad_tape_message(tape), "eval mode needs running stats"));
    ad_tape_reset(tape);
    ad_tensor_free(rm);
    ad_tensor_free(rv);
}

static void test_norms_check_their_arguments(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = from(tape, 3, (int64_t[]){2, 2, 3}, X);
    ad_tensor *w = from(tape, 1, (int64_t[]){2}, (double[]){1, 1});
    assert_null(ad_layer_norm(x, 1, w, NULL, 1e-5));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_non_null(
        strstr(ad_tape_message(tape), "layer_norm: weight of shape [2], expected [3] for x"));
    ad_tape_clear_error(tape);
    assert_null(ad_layer_norm(x, 4, NULL, NULL, 1e-5));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    ad_tape_clear_error(tape);
    assert_null(ad_layer_norm(x, 1, NULL, NULL, -1.0));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    ad_tape_clear_error(tape);
    /* eps = 0 means 0: a constant row divides 0 by 0 */
    ad_tensor *flat = ad_full(tape, AD_F64, 1, (int64_t[]){3}, 2.0);
    assert_true(isnan(ad_tensor_get(ad_layer_norm(flat, 1, NULL, NULL, 0.0), 0)));
    assert_null(
        ad_batch_norm(from(tape, 1, (int64_t[]){3}, X), NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
}

/* The gradient has two paths: one kernel when it is not recorded, and ops
 * (differentiable again) under create_graph. Both must give torch's.
 * x = tensor(X).reshape(3,4); y = F.layer_norm(x, (4,), None, None, 1e-5);
 * g, = grad((y * arange(12).reshape(3,4)).sum(), x, create_graph=True);
 * (g * g).sum().backward(); x.grad */
static void test_layer_norm_gradients_with_and_without_a_graph_match_torch(void **state)
{
    ad_tape *tape = *state;
    const double g_torch[12] = {-1.1846078414121086, 0.4364274674950044,  -0.18703844310529227,
                                0.9352188170223965,  -0.8071039572532288, -0.3240927429721743,
                                0.4442194860000246,  0.6869772142253785,  -2.056688234475441,
                                -0.7259925389088018, 1.4941586264982583,  1.2885221468859847};
    const double gg_torch[12] = {1.4201363753389171,  1.2335379769027022,   -1.0054902213657833,
                                 -1.6481841308758363, -0.12323555698770787, 0.14503118910999863,
                                 -0.5510887340683285, 0.5292931019460377,   -3.9724243597299034,
                                 -0.9586596087573409, -5.985495436475881,   10.916579404963125};
    double c[12];
    for (int k = 0; k < 12; k++)
        c[k] = k;
    const int64_t s[2] = {3, 4};
    ad_tensor *x = ad_requires_grad(from(tape, 2, s, X));
    for (int create_graph = 0; create_graph < 2; create_graph++) {
        ad_tensor *y = ad_layer_norm(x, 1, NULL, NULL, 1e-5);
        ad_tensor *loss = ad_sum_all(ad_mul(y, from(tape, 2, s, c)));
        ad_tensor *g;
        ad_backward_opts o = {.create_graph = create_graph};
        assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, &o), AD_OK);
        for (int k = 0; k < 12; k++)
            assert_close(g_torch[k], ad_tensor_get(g, k), 1e-13, 1e-15);
        if (!create_graph)
            continue;
        assert_int_equal(ad_backward(ad_sum_all(ad_mul(g, g)), NULL), AD_OK);
        for (int k = 0; k < 12; k++)
            assert_close(gg_torch[k], ad_tensor_get(ad_tensor_grad(x), k), 1e-12, 1e-14);
    }
}

/* x32 = tensor(X, float32).reshape(3,4); w = [1.5,-.5,2,.3]; b = [.1,.2,.3,-.1];
 * y = F.layer_norm(x32, (4,), w, b, 1e-5); (y * arange(12).reshape(3,4)).sum().backward() */
static void test_float32_layer_norm_matches_torch(void **state)
{
    ad_tape *tape = *state;
    const double y_torch[12] = {-0.22732561826705933, 0.96375972032547,    2.482170820236206,
                                0.09639537334442139,  0.20182648301124573, 0.4375951290130615,
                                3.4226789474487305,   -0.4462100863456726, 0.2587999701499939,
                                0.21764445304870605,  3.05253267288208,    -0.5340532660484314};
    const double g_torch[12] = {-0.6879053711891174, 0.5091590285301208, 1.1700692176818848,
                                -0.9913228750228882, 0.7038700580596924, -2.5918707847595215,
                                0.3312363624572754,  1.5567638874053955, 5.166345596313477,
                                -16.91986083984375,  5.618680953979492,  6.134834289550781};
    const int64_t s[2] = {3, 4}, four = 4;
    double c[12];
    for (int k = 0; k < 12; k++)
        c[k] = k;
    ad_tensor *x = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F32, 2, s, X));
    ad_tensor *w =
        ad_tape_tensor_from_doubles(tape, AD_F32, 1, &four, (double[]){1.5, -0.5, 2.0, 0.3});
    ad_tensor *b =
        ad_tape_tensor_from_doubles(tape, AD_F32, 1, &four, (double[]){0.1, 0.2, 0.3, -0.1});
    ad_tensor *y = ad_layer_norm(x, 1, w, b, 1e-5);
    assert_int_equal(ad_tensor_dtype(y), AD_F32);
    for (int k = 0; k < 12; k++)
        assert_close(y_torch[k], ad_tensor_get(y, k), 1e-6, 1e-6);
    ad_tensor *loss = ad_sum_all(ad_mul(y, ad_tape_tensor_from_doubles(tape, AD_F32, 2, s, c)));
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    for (int k = 0; k < 12; k++)
        assert_close(g_torch[k], ad_tensor_get(ad_tensor_grad(x), k), 1e-5, 1e-5);
}

static void test_layer_norm_of_empty_tensors_gives_empty_gradients(void **state)
{
    ad_tape *tape = *state;
    const int64_t shapes[2][2] = {{3, 0}, {0, 4}};
    for (int k = 0; k < 2; k++) {
        ad_tensor *x = ad_requires_grad(ad_full(tape, AD_F64, 2, shapes[k], 1.0));
        for (int create_graph = 0; create_graph < 2; create_graph++) {
            ad_tensor *y = ad_layer_norm(x, 1, NULL, NULL, 1e-5);
            assert_non_null(y);
            assert_int_equal(ad_tensor_numel(y), 0);
            ad_tensor *g, *loss = ad_sum_all(y);
            ad_backward_opts o = {.create_graph = create_graph};
            assert_int_equal(ad_grad(1, &loss, NULL, 1, &x, &g, &o), AD_OK);
            assert_int_equal(ad_tensor_ndim(g), 2);
            assert_memory_equal(ad_tensor_shape(g), shapes[k], sizeof shapes[k]);
        }
    }
}

static ad_tensor *all_norms(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    ad_tensor *x = in[0], *w = in[1];
    ad_tensor *a = ad_layer_norm(x, 2, NULL, NULL, 1e-3);
    ad_tensor *g = ad_group_norm(x, 1, w, NULL, 1e-3);
    ad_tensor *b = ad_batch_norm(x, NULL, NULL, w, NULL, true, 0.1, 1e-3);
    ad_tensor *c = ad_tape_tensor_from_doubles(tape, AD_F64, 3, (int64_t[]){2, 2, 3}, X);
    return ad_sum_all(ad_mul(ad_add(ad_add(ad_square(a), g), ad_mul(b, b)), c));
}

static void test_norms_pass_gradcheck_to_second_order(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_tensor *in[2] = {from(tape, 3, (int64_t[]){2, 2, 3}, X),
                        from(tape, 1, (int64_t[]){2}, (double[]){0.7, -1.3})};
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(all_norms, NULL, 2, in, NULL, &r), AD_OK);
    assert_true(r.passed);
    assert_int_equal(ad_gradgradcheck(all_norms, NULL, 2, in, 5, NULL, &r), AD_OK);
    assert_true(r.passed);
    ad_tape_free(tape);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TAPE_TEST(test_layer_norm_over_two_dims_matches_torch),
        TAPE_TEST(test_group_norm_matches_torch),
        TAPE_TEST(test_batch_norm_trains_updates_running_stats_and_evaluates_as_torch),
        TAPE_TEST(test_norms_check_their_arguments),
        TAPE_TEST(test_layer_norm_gradients_with_and_without_a_graph_match_torch),
        TAPE_TEST(test_float32_layer_norm_matches_torch),
        TAPE_TEST(test_layer_norm_of_empty_tensors_gives_empty_gradients),
        cmocka_unit_test(test_norms_pass_gradcheck_to_second_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
