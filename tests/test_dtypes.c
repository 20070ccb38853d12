/* int64 and bool tensors: creation, casts between all dtypes (torch's
 * conversions), and the rule that they are never differentiated and that a
 * float op refuses them. */
#include "test_util.h"

#include "autodiff/layers.h"

#include <stdbool.h>

#define TAPE_TEST(f) cmocka_unit_test_setup_teardown(f, tape_setup, tape_teardown)

static const ad_dtype all_dtypes[4] = {AD_F32, AD_F64, AD_I64, AD_BOOL};

static void test_every_dtype_has_a_name_and_a_size(void **state)
{
    (void)state;
    const char *names[4] = {"float32", "float64", "int64", "bool"};
    const size_t sizes[4] = {4, 8, 8, 1};
    for (int k = 0; k < 4; k++) {
        assert_string_equal(ad_dtype_name(all_dtypes[k]), names[k]);
        assert_int_equal(ad_dtype_size(all_dtypes[k]), sizes[k]);
    }
    assert_string_equal(ad_dtype_name((ad_dtype)9), "unknown");
    assert_int_equal(ad_dtype_size((ad_dtype)9), 0);
}

static void test_int64_and_bool_tape_tensors_hold_their_data(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    const int64_t iv[3] = {-7, 0, (int64_t)1 << 40};
    const bool bv[3] = {true, false, true};
    ad_tensor *i = ad_tape_tensor(tape, AD_I64, 1, &n, iv);
    ad_tensor *b = ad_tape_tensor(tape, AD_BOOL, 1, &n, bv);
    assert_non_null(i);
    assert_non_null(b);
    assert_int_equal(ad_tensor_dtype(i), AD_I64);
    assert_int_equal(ad_tensor_dtype(b), AD_BOOL);
    assert_memory_equal(ad_tensor_data(i), iv, sizeof iv);
    assert_memory_equal(ad_tensor_data(b), bv, sizeof bv);
    assert_close(-7, ad_tensor_get(i, 0), 0, 0);
    assert_close(1099511627776.0, ad_tensor_get(i, 2), 0, 0);
    assert_close(1, ad_tensor_get(b, 0), 0, 0);
    assert_close(0, ad_tensor_get(b, 1), 0, 0);
    ad_tensor *f = ad_full(tape, AD_I64, 1, &n, -2.9);
    assert_int_equal(((const int64_t *)ad_tensor_data(f))[1], -2);
    ad_tensor *g = ad_tape_tensor_from_doubles(tape, AD_BOOL, 1, &n, (double[]){0.0, -0.0, NAN});
    assert_memory_equal(ad_tensor_data(g), ((bool[]){false, false, true}), 3);
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

/* torch 1.13 on x86: x.long() truncates toward 0 and gives INT64_MIN for NaN,
 * infinities and values out of range; x.bool() is x != 0, NaN true. */
static void test_casts_to_int64_and_bool_convert_as_torch(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 8;
    const double v[8] = {2.7, -2.7, NAN, INFINITY, -INFINITY, 1e30, -0.0, 0.5};
    const int64_t as_long[8] = {2, -2, INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN, 0, 0};
    const bool as_bool[8] = {true, true, true, true, true, true, false, true};
    for (int k = 0; k < 2; k++) {
        ad_tensor *x = ad_tape_tensor_from_doubles(tape, all_dtypes[k], 1, &n, v);
        ad_tensor *l = ad_cast(x, AD_I64);
        ad_tensor *b = ad_cast(x, AD_BOOL);
        assert_non_null(l);
        assert_non_null(b);
        assert_memory_equal(ad_tensor_data(l), as_long, sizeof as_long);
        assert_memory_equal(ad_tensor_data(b), as_bool, sizeof as_bool);
    }
    /* float32: 3e9 fits an int64, 1e19 does not */
    ad_tensor *x32 =
        ad_tape_tensor_from_doubles(tape, AD_F32, 1, (int64_t[]){2}, (double[]){3e9, 1e19});
    const int64_t *l32 = ad_tensor_data(ad_cast(x32, AD_I64));
    assert_true(l32[0] == 3000000000);
    assert_true(l32[1] == INT64_MIN);
}

static void test_casts_from_int64_and_bool_round_to_nearest(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    const int64_t iv[3] = {((int64_t)1 << 53) + 1, -3, ((int64_t)1 << 24) + 1};
    ad_tensor *i = ad_tape_tensor(tape, AD_I64, 1, &n, iv);
    ad_tensor *d = ad_cast(i, AD_F64), *f = ad_cast(i, AD_F32), *b = ad_cast(i, AD_BOOL);
    assert_close(9007199254740992.0, ad_tensor_get(d, 0), 0, 0);
    assert_close(-3, ad_tensor_get(d, 1), 0, 0);
    assert_close(16777216.0, ad_tensor_get(f, 2), 0, 0); /* 2^24 + 1 rounds to even */
    assert_memory_equal(ad_tensor_data(b), ((bool[]){true, true, true}), 3);
    ad_tensor *bools = ad_tape_tensor(tape, AD_BOOL, 1, &n, (bool[]){true, false, true});
    const int64_t *back = ad_tensor_data(ad_cast(bools, AD_I64));
    assert_true(back[0] == 1 && back[1] == 0 && back[2] == 1);
    assert_close(1, ad_tensor_get(ad_cast(bools, AD_F32), 2), 0, 0);
    assert_close(0, ad_tensor_get(ad_cast(bools, AD_F64), 1), 0, 0);
    /* Every dtype casts to every other: a round trip through float64 keeps small ints. */
    for (int to = 0; to < 4; to++) {
        ad_tensor *c = ad_cast(ad_cast(i, all_dtypes[to]), AD_I64);
        assert_non_null(c);
        if (all_dtypes[to] != AD_BOOL)
            assert_true(((const int64_t *)ad_tensor_data(c))[1] == -3);
    }
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_a_float_op_refuses_int64_and_bool_tensors_naming_the_op(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 3;
    ad_tensor *i = ad_tape_tensor(tape, AD_I64, 1, &n, NULL);
    assert_null(ad_exp(i));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_non_null(strstr(ad_tape_message(tape), "exp: takes float32 or float64 tensors, "
                                                  "not int64 [3] (use ad_cast)"));
    ad_tape_clear_error(tape);
    ad_tensor *b = ad_tape_tensor(tape, AD_BOOL, 1, &n, NULL);
    assert_null(ad_add(b, b));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_non_null(
        strstr(ad_tape_message(tape), "add: takes float32 or float64 tensors, not bool"));
    ad_tape_clear_error(tape);
    /* Mixed with a float: the dtype-mismatch message, as for float32 and float64. */
    ad_tensor *x = ad_full(tape, AD_F64, 1, &n, 1.0);
    assert_null(ad_mul(x, i));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_non_null(strstr(ad_tape_message(tape), "mul: dtypes float64 [3] and int64 [3] differ"));
    ad_tape_clear_error(tape);
    /* Shape-only ops take them. */
    ad_tensor *r = ad_reshape(i, 2, (int64_t[]){1, 3});
    assert_non_null(r);
    assert_int_equal(ad_tensor_dtype(r), AD_I64);
    assert_non_null(ad_detach(b));
    /* So do the ones that only move elements: transpose, expand, flip, roll. */
    const int64_t iv[6] = {1, 2, 3, 4, 5, 6};
    ad_tensor *m = ad_tape_tensor(tape, AD_I64, 2, (int64_t[]){2, 3}, iv);
    const int64_t *t = ad_tensor_data(ad_transpose(m, 0, 1));
    assert_true(t[0] == 1 && t[1] == 4 && t[2] == 2 && t[5] == 6);
    const int64_t *f = ad_tensor_data(ad_flip(m, 1, (int[]){1}));
    assert_true(f[0] == 3 && f[2] == 1 && f[3] == 6);
    const int64_t *rl = ad_tensor_data(ad_roll(m, 1, (int64_t[]){1}, (int[]){0}));
    assert_true(rl[0] == 4 && rl[3] == 1);
    ad_tensor *e = ad_expand(ad_reshape(b, 2, (int64_t[]){3, 1}), 2, (int64_t[]){3, 2});
    assert_int_equal(ad_tensor_dtype(e), AD_BOOL);
    assert_int_equal(ad_tensor_numel(e), 6);
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_int64_and_bool_tensors_never_require_grad(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *i = ad_tape_tensor(tape, AD_I64, 1, &n, NULL);
    assert_null(ad_requires_grad(i));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_non_null(
        strstr(ad_tape_message(tape), "only float tensors can require grad, not int64"));
    ad_tape_clear_error(tape);
    ad_tensor *p = NULL;
    assert_int_equal(ad_tensor_create(&p, AD_BOOL, 1, &n, true), AD_ERR_DTYPE);
    assert_null(p);
    assert_int_equal(ad_tensor_create(&p, AD_I64, 1, &n, false), AD_OK);
    assert_int_equal(ad_tensor_set_requires_grad(p, true), AD_ERR_DTYPE);
    assert_false(ad_tensor_requires_grad(p));
    /* ad_tensor_set converts as ad_cast. */
    assert_int_equal(ad_tensor_set(p, 0, -3.99), AD_OK);
    assert_int_equal(ad_tensor_set(p, 1, NAN), AD_OK);
    assert_true(((const int64_t *)ad_tensor_data(p))[0] == -3);
    assert_true(((const int64_t *)ad_tensor_data(p))[1] == INT64_MIN);
    ad_tensor_free(p);
}

/* As torch's x.long(): the result does not require grad, so the graph stops
 * there and x gets no gradient through it (zeros here). */
static void test_a_cast_to_int64_cuts_the_graph(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *x =
        ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, (double[]){1.5, -2.5}));
    ad_tensor *l = ad_cast(x, AD_I64);
    assert_false(ad_tensor_requires_grad(l));
    ad_tensor *back = ad_cast(l, AD_F64);
    assert_false(ad_tensor_requires_grad(back));
    ad_tensor *y = ad_sum_all(ad_add(ad_mul(back, x), x));
    assert_int_equal(ad_backward(y, NULL), AD_OK);
    /* dy/dx = back + 1 = (1, -2) + 1 */
    assert_close(2, ad_tensor_get(ad_tensor_grad(x), 0), 0, 0);
    assert_close(-1, ad_tensor_get(ad_tensor_grad(x), 1), 0, 0);
}

static void test_anomaly_mode_accepts_int64_and_bool_results(void **state)
{
    ad_tape *tape = *state;
    ad_tape_set_anomaly(tape, true);
    int64_t n = 2;
    ad_tensor *x = ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, (double[]){1, 2});
    assert_non_null(ad_cast(x, AD_I64));
    assert_non_null(ad_cast(x, AD_BOOL));
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static const bool *bools(const ad_tensor *t)
{
    assert_non_null(t);
    assert_int_equal(ad_tensor_dtype(t), AD_BOOL);
    assert_false(ad_tensor_requires_grad(t));
    return ad_tensor_data(t);
}

/* IEEE as torch: every comparison with NaN is false but ne; broadcasting as add. */
static void test_comparisons_broadcast_and_follow_ieee_for_nan(void **state)
{
    ad_tape *tape = *state;
    for (int k = 0; k < 2; k++) {
        ad_tensor *a = ad_tape_tensor_from_doubles(tape, all_dtypes[k], 2, (int64_t[]){2, 1},
                                                   (double[]){1, NAN});
        ad_tensor *b = ad_tape_tensor_from_doubles(tape, all_dtypes[k], 1, (int64_t[]){3},
                                                   (double[]){0, 1, 2});
        assert_memory_equal(bools(ad_eq(a, b)), ((bool[]){0, 1, 0, 0, 0, 0}), 6);
        assert_memory_equal(bools(ad_ne(a, b)), ((bool[]){1, 0, 1, 1, 1, 1}), 6);
        assert_memory_equal(bools(ad_lt(a, b)), ((bool[]){0, 0, 1, 0, 0, 0}), 6);
        assert_memory_equal(bools(ad_le(a, b)), ((bool[]){0, 1, 1, 0, 0, 0}), 6);
        assert_memory_equal(bools(ad_gt(a, b)), ((bool[]){1, 0, 0, 0, 0, 0}), 6);
        assert_memory_equal(bools(ad_ge(a, b)), ((bool[]){1, 1, 0, 0, 0, 0}), 6);
        assert_int_equal(ad_tensor_ndim(ad_eq(a, b)), 2);
        assert_int_equal(ad_tensor_dim(ad_eq(a, b), 1), 3);
    }
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

/* int64 compares exactly, beyond float64's 2^53. */
static void test_int64_comparisons_are_exact(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    const int64_t big = ((int64_t)1 << 53) + 1;
    ad_tensor *a = ad_tape_tensor(tape, AD_I64, 1, &n, (int64_t[]){big, -5});
    ad_tensor *b = ad_tape_tensor(tape, AD_I64, 1, &n, (int64_t[]){big - 1, -5});
    assert_memory_equal(bools(ad_eq(a, b)), ((bool[]){0, 1}), 2);
    assert_memory_equal(bools(ad_gt(a, b)), ((bool[]){1, 0}), 2);
    ad_tensor *t = ad_tape_tensor(tape, AD_BOOL, 1, &n, (bool[]){true, false});
    assert_memory_equal(bools(ad_lt(ad_logical_not(t), t)), ((bool[]){1, 0}), 2);
    assert_memory_equal(bools(ad_gt(t, ad_logical_not(t))), ((bool[]){1, 0}), 2);
}

static void test_logical_ops_treat_nonzero_and_nan_as_true(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 4;
    ad_tensor *a = ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, (double[]){0, -0.0, NAN, 2});
    ad_tensor *b = ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, (double[]){1, 0, 1, 0});
    assert_memory_equal(bools(ad_logical_and(a, b)), ((bool[]){0, 0, 1, 0}), 4);
    assert_memory_equal(bools(ad_logical_or(a, b)), ((bool[]){1, 0, 1, 1}), 4);
    assert_memory_equal(bools(ad_logical_xor(a, b)), ((bool[]){1, 0, 0, 1}), 4);
    assert_memory_equal(bools(ad_logical_not(a)), ((bool[]){1, 1, 0, 0}), 4);
    ad_tensor *i = ad_tape_tensor(tape, AD_I64, 1, &n, (int64_t[]){0, 3, -1, 0});
    assert_memory_equal(bools(ad_logical_not(i)), ((bool[]){1, 0, 0, 1}), 4);
}

static void test_isnan_isinf_isfinite_classify_every_dtype(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 5;
    const double v[5] = {NAN, INFINITY, -INFINITY, 0.0, -1e308};
    for (int k = 0; k < 2; k++) {
        ad_tensor *x = ad_tape_tensor_from_doubles(tape, all_dtypes[k], 1, &n, v);
        assert_memory_equal(bools(ad_isnan(x)), ((bool[]){1, 0, 0, 0, 0}), 5);
        assert_memory_equal(bools(ad_isinf(x)), ((bool[]){0, 1, 1, 0, k == 0}), 5);
        assert_memory_equal(bools(ad_isfinite(x)), ((bool[]){0, 0, 0, 1, k == 1}), 5);
    }
    ad_tensor *i = ad_tape_tensor(tape, AD_I64, 1, &n, (int64_t[]){INT64_MIN, 0, 1, 2, 3});
    assert_memory_equal(bools(ad_isnan(i)), ((bool[]){0, 0, 0, 0, 0}), 5);
    assert_memory_equal(bools(ad_isinf(i)), ((bool[]){0, 0, 0, 0, 0}), 5);
    assert_memory_equal(bools(ad_isfinite(i)), ((bool[]){1, 1, 1, 1, 1}), 5);
}

static void test_comparisons_of_two_dtypes_are_refused(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 2;
    ad_tensor *f = ad_full(tape, AD_F64, 1, &n, 1.0);
    ad_tensor *i = ad_full(tape, AD_I64, 1, &n, 1.0);
    assert_null(ad_eq(f, i));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_non_null(strstr(ad_tape_message(tape), "eq: dtypes float64 [2] and int64 [2] differ"));
    ad_tape_clear_error(tape);
    assert_null(ad_lt(f, ad_full(tape, AD_F64, 1, (int64_t[]){3}, 0.0)));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_non_null(strstr(ad_tape_message(tape), "lt: shapes [2] and [3] do not broadcast"));
}

/* where with a bool mask from a comparison: the relu-like select, with its gradient. */
static void test_where_takes_a_bool_condition_from_a_comparison(void **state)
{
    ad_tape *tape = *state;
    int64_t n = 4;
    ad_tensor *x =
        ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 1, &n, (double[]){-1, 2, 0, 3}));
    ad_tensor *zero = ad_scalar(tape, 0.0);
    ad_tensor *mask = ad_gt(x, zero);
    ad_tensor *y = ad_where(mask, ad_mul(x, x), ad_neg(x));
    assert_non_null(y);
    assert_int_equal(ad_tensor_dtype(y), AD_F64);
    const double want[4] = {1, 4, -0.0, 9};
    for (int k = 0; k < 4; k++)
        assert_close(want[k], ad_tensor_get(y, k), 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    const double grad[4] = {-1, 4, -1, 6};
    for (int k = 0; k < 4; k++)
        assert_close(grad[k], ad_tensor_get(ad_tensor_grad(x), k), 0, 0);
    /* A condition of another non-bool dtype, or int64 branches, are refused. */
    ad_tensor *i = ad_full(tape, AD_I64, 1, &n, 1.0);
    assert_null(ad_where(i, x, x));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_non_null(strstr(ad_tape_message(tape), "where: cond int64 [4] and a float64 [4]"));
    ad_tape_clear_error(tape);
    assert_null(ad_where(mask, i, i));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
}

/* The index ops take int64 index tensors and give what their C-array forms give. */
static void test_index_ops_take_int64_index_tensors(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){3, 2},
                                                                (double[]){1, 2, 3, 4, 5, 6}));
    ad_tensor *idx = ad_tape_tensor(tape, AD_I64, 1, (int64_t[]){3}, (int64_t[]){2, 0, 2});
    ad_tensor *sel = ad_index_select_tensor(x, 0, idx);
    ad_tensor *ref = ad_index_select(x, 0, 3, (int64_t[]){2, 0, 2});
    assert_non_null(sel);
    assert_memory_equal(ad_tensor_data(sel), ad_tensor_data(ref), 6 * sizeof(double));
    ad_tensor *g_idx = ad_tape_tensor(tape, AD_I64, 2, (int64_t[]){3, 1}, (int64_t[]){1, 0, 1});
    ad_tensor *g = ad_gather_tensor(x, 1, g_idx);
    assert_non_null(g);
    assert_int_equal(ad_tensor_dim(g, 1), 1);
    assert_close(2, ad_tensor_get(g, 0), 0, 0);
    assert_close(3, ad_tensor_get(g, 1), 0, 0);
    assert_close(6, ad_tensor_get(g, 2), 0, 0);
    ad_tensor *sc = ad_scatter_add_tensor(g, 1, g_idx, 2, (int64_t[]){3, 2});
    assert_close(2, ad_tensor_get(sc, 1), 0, 0);
    assert_close(0, ad_tensor_get(sc, 0), 0, 0);
    ad_tensor *ia = ad_index_add_tensor(sel, 0, 3, idx);
    assert_close(10, ad_tensor_get(ia, 4), 0, 0); /* row 2 twice: 5 + 5 */
    /* Gradients flow as through the C-array forms: row 2 selected twice. */
    assert_int_equal(ad_backward(ad_sum_all(sel), NULL), AD_OK);
    const double want[6] = {1, 1, 0, 0, 2, 2};
    for (int k = 0; k < 6; k++)
        assert_close(want[k], ad_tensor_get(ad_tensor_grad(x), k), 0, 0);
}

static void test_an_index_tensor_must_be_int64_of_the_right_ndim(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_full(tape, AD_F64, 2, (int64_t[]){3, 2}, 1.0);
    ad_tensor *f = ad_full(tape, AD_F64, 1, (int64_t[]){2}, 0.0);
    assert_null(ad_index_select_tensor(x, 0, f));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_non_null(strstr(ad_tape_message(tape),
                           "index_select: index must be an int64 tensor, not float64 [2]"));
    ad_tape_clear_error(tape);
    ad_tensor *i2 = ad_full(tape, AD_I64, 2, (int64_t[]){1, 2}, 0.0);
    assert_null(ad_index_select_tensor(x, 0, i2));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_non_null(strstr(ad_tape_message(tape), "index must have 1 dim, not shape [1,2]"));
    ad_tape_clear_error(tape);
    ad_tensor *bad = ad_tape_tensor(tape, AD_I64, 1, (int64_t[]){1}, (int64_t[]){3});
    assert_null(ad_index_select_tensor(x, 0, bad));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG); /* index 3 of a dim of 3 */
    ad_tape_clear_error(tape);
    assert_null(ad_gather_tensor(x, 0, NULL)); /* an earlier error: no new one */
    assert_int_equal(ad_tape_status(tape), AD_OK);
}

static void test_cross_entropy_and_embedding_take_int64_tensors(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *logits = ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){2, 3},
                                                    (double[]){1, 2, 3, 0, -1, 4});
    ad_tensor *t = ad_tape_tensor(tape, AD_I64, 1, (int64_t[]){2}, (int64_t[]){2, 0});
    assert_close(ad_tensor_get(ad_cross_entropy(logits, 2, (int64_t[]){2, 0}), 0),
                 ad_tensor_get(ad_cross_entropy_tensor(logits, t), 0), 0, 0);
    ad_rng rng;
    ad_rng_seed(&rng, 3);
    ad_module *emb;
    assert_int_equal(ad_nn_embedding(&emb, 5, 4, AD_F64, &rng), AD_OK);
    ad_tensor *idx =
        ad_tape_tensor(tape, AD_I64, 2, (int64_t[]){2, 3}, (int64_t[]){0, 4, 4, 1, 2, 3});
    ad_tensor *y = ad_nn_forward(emb, tape, idx);
    assert_non_null(y);
    assert_int_equal(ad_tensor_ndim(y), 3);
    assert_int_equal(ad_tensor_dim(y, 0), 2);
    assert_int_equal(ad_tensor_dim(y, 2), 4);
    ad_tensor *rows = ad_nn_embedding_lookup(emb, tape, 6, (const int64_t *)ad_tensor_data(idx));
    assert_memory_equal(ad_tensor_data(y), ad_tensor_data(rows), 24 * sizeof(double));
    assert_int_equal(ad_backward(ad_sum_all(y), NULL), AD_OK);
    ad_nn_param table;
    assert_int_equal(ad_nn_params(emb, &table, 1), 1);
    assert_close(2, ad_tensor_get(ad_tensor_grad(table.tensor), 4 * 4), 0, 0);     /* row 4 twice */
    assert_close(1, ad_tensor_get(ad_tensor_grad(table.tensor), 1 * 4 + 1), 0, 0); /* once */
    ad_tape_reset(tape);
    ad_nn_free(emb);
}

static const int64_t *longs(const ad_tensor *t)
{
    assert_non_null(t);
    assert_int_equal(ad_tensor_dtype(t), AD_I64);
    assert_false(ad_tensor_requires_grad(t));
    return ad_tensor_data(t);
}

/* Values from torch 1.13: torch.argmax / argmin / max(x, 1) on these rows. */
static void test_argmax_argmin_and_max_along_follow_torch(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *x = ad_requires_grad(ad_tape_tensor_from_doubles(
        tape, AD_F64, 2, (int64_t[]){2, 5}, (double[]){1, 3, 3, NAN, 2, 5, 5, 1, 0, 5}));
    const int64_t *amax = longs(ad_argmax(x, 1, false));
    const int64_t *amin = longs(ad_argmin(x, -1, false));
    assert_true(amax[0] == 3 && amax[1] == 0); /* NaN wins; the first of tied maxima */
    assert_true(amin[0] == 3 && amin[1] == 3);
    ad_tensor *kept = ad_argmax(x, 1, true);
    assert_int_equal(ad_tensor_ndim(kept), 2);
    assert_int_equal(ad_tensor_dim(kept, 1), 1);
    ad_tensor *idx;
    ad_tensor *v = ad_max_along(x, 1, false, &idx);
    assert_non_null(v);
    assert_int_equal(ad_tensor_ndim(v), 1);
    assert_true(isnan(ad_tensor_get(v, 0)));
    assert_close(5, ad_tensor_get(v, 1), 0, 0);
    assert_true(longs(idx)[0] == 3 && longs(idx)[1] == 0);
    assert_int_equal(ad_backward(ad_sum_all(v), NULL), AD_OK);
    const double grad[10] = {0, 0, 0, 1, 0, 1, 0, 0, 0, 0}; /* torch: to the selected index */
    for (int k = 0; k < 10; k++)
        assert_close(grad[k], ad_tensor_get(ad_tensor_grad(x), k), 0, 0);
    ad_tensor *m = ad_min_along(x, 0, true, &idx);
    assert_int_equal(ad_tensor_dim(m, 0), 1);
    assert_close(1, ad_tensor_get(m, 0), 0, 0);
    assert_true(isnan(ad_tensor_get(m, 3)));
    assert_true(longs(idx)[2] == 1);
}

/* torch.sort (stable) and torch.topk on [3, nan, 1, 3, -inf]. */
static void test_sort_and_topk_follow_torch(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *y = ad_requires_grad(ad_tape_tensor_from_doubles(
        tape, AD_F64, 1, (int64_t[]){5}, (double[]){3, NAN, 1, 3, -INFINITY}));
    ad_tensor *idx;
    ad_tensor *s = ad_sort(y, 0, false, &idx);
    const int64_t up[5] = {4, 2, 0, 3, 1}, down[5] = {1, 0, 3, 2, 4};
    assert_memory_equal(longs(idx), up, sizeof up);
    assert_close(-INFINITY, ad_tensor_get(s, 0), 0, 0);
    assert_true(isnan(ad_tensor_get(s, 4)));
    ad_sort(y, 0, true, &idx);
    assert_memory_equal(longs(idx), down, sizeof down);
    assert_memory_equal(longs(ad_argsort(y, -1, true)), down, sizeof down);
    ad_tensor *z =
        ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){4}, (double[]){1, 3, 3, 2});
    ad_tensor *t = ad_topk(z, 2, 0, true, &idx);
    assert_close(3, ad_tensor_get(t, 0), 0, 0);
    assert_close(3, ad_tensor_get(t, 1), 0, 0);
    assert_true(longs(idx)[0] == 1 && longs(idx)[1] == 2);
    ad_topk(z, 3, 0, false, &idx);
    assert_memory_equal(longs(idx), ((int64_t[]){0, 3, 1}), 3 * sizeof(int64_t));
    /* the gradient of sorted values goes back through the permutation */
    ad_tensor *w =
        ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){5}, (double[]){1, 2, 3, 4, 5});
    assert_int_equal(ad_backward(ad_sum_all(ad_mul(ad_sort(y, 0, false, NULL), w)), NULL), AD_OK);
    const double grad[5] = {3, 5, 2, 4, 1};
    for (int k = 0; k < 5; k++)
        assert_close(grad[k], ad_tensor_get(ad_tensor_grad(y), k), 0, 0);
    assert_null(ad_topk(z, 5, 0, true, NULL));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_non_null(strstr(ad_tape_message(tape), "topk: k = 5 out of range [0, 4]"));
}

static void test_sorting_and_arg_ops_check_their_inputs(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *e = ad_full(tape, AD_F64, 2, (int64_t[]){2, 0}, 0.0);
    assert_null(ad_argmax(e, 1, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_SHAPE);
    assert_non_null(strstr(ad_tape_message(tape), "argmax: axis 1 of shape [2,0] is empty"));
    ad_tape_clear_error(tape);
    assert_int_equal(ad_tensor_numel(ad_sort(e, 1, false, NULL)), 0); /* sorting nothing is fine */
    assert_null(ad_argmin(e, 2, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_AXIS);
    ad_tape_clear_error(tape);
    ad_tensor *i = ad_full(tape, AD_I64, 1, (int64_t[]){3}, 1.0);
    assert_null(ad_argmax(i, 0, false));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    ad_tape_clear_error(tape);
    ad_tensor *s = ad_scalar(tape, 4.0);
    assert_true(longs(ad_argmax(s, 0, false))[0] == 0);
    assert_close(4, ad_tensor_get(ad_max_along(s, -1, false, NULL), 0), 0, 0);
}

/* The composed values have gather's gradient, checked to second order. */
static ad_tensor *sorted_weighted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n, (void)ctx;
    ad_tensor *w = ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){2, 3},
                                               (double[]){1, -2, 3, 0.5, 4, -1});
    ad_tensor *s = ad_sort(in[0], 1, true, NULL);
    ad_tensor *m = ad_max_along(in[0], 0, false, NULL);
    ad_tensor *k = ad_topk(in[0], 2, 1, false, NULL);
    return ad_add(ad_add(ad_sum_all(ad_mul(ad_square(s), w)), ad_sum_all(ad_exp(m))),
                  ad_sum_all(ad_square(k)));
}

static void test_sort_max_along_and_topk_pass_gradcheck(void **state)
{
    (void)state;
    ad_tape *tape = test_tape();
    ad_tensor *x = ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){2, 3},
                                               (double[]){0.3, -1.2, 2.0, 1.1, 0.7, -0.4});
    ad_gradcheck_result r;
    assert_int_equal(ad_gradcheck(sorted_weighted, NULL, 1, &x, NULL, &r), AD_OK);
    assert_true(r.passed);
    assert_int_equal(ad_gradgradcheck(sorted_weighted, NULL, 1, &x, 7, NULL, &r), AD_OK);
    assert_true(r.passed);
    ad_tape_free(tape);
}

static void test_one_hot_and_masked_fill_follow_torch(void **state)
{
    ad_tape *tape = *state;
    ad_tensor *idx = ad_tape_tensor(tape, AD_I64, 2, (int64_t[]){2, 2}, (int64_t[]){0, 2, 1, 2});
    ad_tensor *oh = ad_one_hot(idx, 4);
    assert_int_equal(ad_tensor_ndim(oh), 3);
    assert_int_equal(ad_tensor_dim(oh, 2), 4);
    const int64_t want[16] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    assert_memory_equal(longs(oh), want, sizeof want);
    assert_int_equal(ad_tensor_dim(ad_one_hot(idx, -1), 2), 3); /* largest index + 1 */
    assert_null(ad_one_hot(idx, 2));
    assert_int_equal(ad_tape_status(tape), AD_ERR_ARG);
    assert_non_null(strstr(ad_tape_message(tape), "one_hot: index 2 (entry 1 of [2,2])"));
    ad_tape_clear_error(tape);
    ad_tensor *x = ad_requires_grad(
        ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){3}, (double[]){1, -2, 3}));
    ad_tensor *mask = ad_lt(x, ad_scalar(tape, 0.0));
    ad_tensor *y = ad_masked_fill(x, mask, -INFINITY);
    assert_close(-INFINITY, ad_tensor_get(y, 1), 0, 0);
    assert_close(3, ad_tensor_get(y, 2), 0, 0);
    assert_int_equal(ad_backward(ad_sum_all(ad_softmax(y, 0)), NULL), AD_OK);
    assert_close(0, ad_tensor_get(ad_tensor_grad(x), 1), 0, 0); /* masked: no gradient */
    assert_null(ad_masked_fill(x, x, 0.0));
    assert_int_equal(ad_tape_status(tape), AD_ERR_DTYPE);
    assert_non_null(strstr(ad_tape_message(tape), "masked_fill: mask must be bool"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_dtype_has_a_name_and_a_size),
        TAPE_TEST(test_int64_and_bool_tape_tensors_hold_their_data),
        TAPE_TEST(test_casts_to_int64_and_bool_convert_as_torch),
        TAPE_TEST(test_casts_from_int64_and_bool_round_to_nearest),
        TAPE_TEST(test_a_float_op_refuses_int64_and_bool_tensors_naming_the_op),
        TAPE_TEST(test_int64_and_bool_tensors_never_require_grad),
        TAPE_TEST(test_a_cast_to_int64_cuts_the_graph),
        TAPE_TEST(test_anomaly_mode_accepts_int64_and_bool_results),
        TAPE_TEST(test_comparisons_broadcast_and_follow_ieee_for_nan),
        TAPE_TEST(test_int64_comparisons_are_exact),
        TAPE_TEST(test_logical_ops_treat_nonzero_and_nan_as_true),
        TAPE_TEST(test_isnan_isinf_isfinite_classify_every_dtype),
        TAPE_TEST(test_comparisons_of_two_dtypes_are_refused),
        TAPE_TEST(test_where_takes_a_bool_condition_from_a_comparison),
        TAPE_TEST(test_index_ops_take_int64_index_tensors),
        TAPE_TEST(test_an_index_tensor_must_be_int64_of_the_right_ndim),
        TAPE_TEST(test_cross_entropy_and_embedding_take_int64_tensors),
        TAPE_TEST(test_argmax_argmin_and_max_along_follow_torch),
        TAPE_TEST(test_sort_and_topk_follow_torch),
        TAPE_TEST(test_sorting_and_arg_ops_check_their_inputs),
        cmocka_unit_test(test_sort_max_along_and_topk_pass_gradcheck),
        TAPE_TEST(test_one_hot_and_masked_fill_follow_torch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
