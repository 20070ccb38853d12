/* Caller-owned random numbers and the torch.nn.init-style initialisers. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "autodiff/nn.h"

static void test_seed_42_gives_the_reference_xoshiro256starstar_stream(void **state)
{
    (void)state;
    /* From an independent implementation of splitmix64 seeding + xoshiro256**:
     * pins the stream so checkpoints of seeded runs stay reproducible. */
    static const uint64_t seed0[] = {0x99ec5f36cb75f2b4ull, 0xbf6e1f784956452aull,
                                     0x1a5f849d4933e6e0ull, 0x6aa594f1262d2d2cull};
    static const uint64_t seed42[] = {0x15780b2e0c2ec716ull, 0x6104d9866d113a7eull,
                                      0xae17533239e499a1ull, 0xecb8ad4703b360a1ull};
    ad_rng a, b;
    ad_rng_seed(&a, 0);
    ad_rng_seed(&b, 42);
    for (int i = 0; i < 4; i++) {
        assert_true(ad_rng_next(&a) == seed0[i]);
        assert_true(ad_rng_next(&b) == seed42[i]);
    }
}

static void test_same_seed_gives_the_same_sequence(void **state)
{
    (void)state;
    ad_rng a, b;
    ad_rng_seed(&a, 12345);
    ad_rng_seed(&b, 12345);
    for (int i = 0; i < 1000; i++) {
        assert_true(ad_rng_next(&a) == ad_rng_next(&b));
        assert_true(ad_rng_uniform(&a) == ad_rng_uniform(&b));
        assert_true(ad_rng_normal(&a) == ad_rng_normal(&b));
        assert_true(ad_rng_below(&a, 1000) == ad_rng_below(&b, 1000));
    }
    /* Copying the struct forks the stream. */
    ad_rng c = a;
    for (int i = 0; i < 100; i++)
        assert_true(ad_rng_next(&a) == ad_rng_next(&c));
}

static void test_different_seeds_give_different_sequences(void **state)
{
    (void)state;
    ad_rng a, b;
    ad_rng_seed(&a, 1);
    ad_rng_seed(&b, 2);
    int same = 0;
    for (int i = 0; i < 1000; i++)
        same += ad_rng_next(&a) == ad_rng_next(&b);
    assert_int_equal(same, 0);
}

static void test_uniform_is_in_zero_one_with_mean_one_half(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 7);
    const int n = 100000;
    double sum = 0, sum2 = 0, lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        double u = ad_rng_uniform(&rng);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
        sum2 += u * u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    /* std of the mean is 0.289 / sqrt(n) ~ 0.0009: 0.005 is over 5 sigma. */
    assert_close(0.5, mean, 0, 0.005);
    assert_close(1.0 / 12.0, var, 0.02, 0);
    assert_true(lo < 0.001 && hi > 0.999);
}

static void test_normal_has_mean_zero_and_std_one(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 99);
    const int n = 100000;
    double sum = 0, sum2 = 0, sum4 = 0;
    int beyond3 = 0;
    for (int i = 0; i < n; i++) {
        double z = ad_rng_normal(&rng);
        assert_true(isfinite(z));
        sum += z;
        sum2 += z * z;
        sum4 += z * z * z * z;
        beyond3 += fabs(z) > 3;
    }
    double mean = sum / n, std = sqrt(sum2 / n - mean * mean);
    assert_close(0.0, mean, 0, 0.02);
    assert_close(1.0, std, 0, 0.02);
    assert_close(3.0, sum4 / n, 0.1, 0); /* kurtosis of a normal */
    /* P(|z| > 3) = 0.0027: 270 expected. */
    assert_in_range(beyond3, 170, 380);
}

static void test_below_stays_in_range_and_is_roughly_uniform(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 3);
    assert_true(ad_rng_below(&rng, 0) == 0);
    for (int i = 0; i < 100; i++)
        assert_true(ad_rng_below(&rng, 1) == 0);
    const uint64_t big[] = {2, 3, 7, 1000, (1ull << 63) + 1, UINT64_MAX};
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++)
        for (int i = 0; i < 1000; i++)
            assert_true(ad_rng_below(&rng, big[k]) < big[k]);
    int counts[6] = {0};
    for (int i = 0; i < 60000; i++)
        counts[ad_rng_below(&rng, 6)]++;
    for (int k = 0; k < 6; k++)
        assert_in_range(counts[k], 9500, 10500);
    /* For n = 3 * 2^62, a plain r % n would give values below 2^62 half the
     * time (two preimages each); unbiased, they are a third of the range. */
    int low = 0;
    for (int i = 0; i < 10000; i++)
        low += ad_rng_below(&rng, 3ull << 62) < (1ull << 62);
    assert_in_range(low, 3100, 3570);
}

static void test_shuffle_is_a_permutation_and_reproducible(void **state)
{
    (void)state;
    enum { N = 1000 };
    int64_t v[N], w[N];
    for (int i = 0; i < N; i++)
        v[i] = w[i] = i;
    ad_rng a, b;
    ad_rng_seed(&a, 5);
    ad_rng_seed(&b, 5);
    ad_rng_shuffle(&a, v, N);
    ad_rng_shuffle(&b, w, N);
    assert_memory_equal(v, w, sizeof v);
    bool seen[N] = {false};
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        assert_in_range(v[i], 0, N - 1);
        assert_false(seen[v[i]]);
        seen[v[i]] = true;
        fixed += v[i] == i;
    }
    assert_true(fixed < 10); /* about 1 expected */
    ad_rng_shuffle(&a, v, 0);
    ad_rng_shuffle(&a, v, 1);
    /* Every position of a 3-element shuffle is equally likely for each value. */
    int first[3] = {0};
    for (int t = 0; t < 30000; t++) {
        int64_t u[3] = {0, 1, 2};
        ad_rng_shuffle(&a, u, 3);
        first[u[0]]++;
    }
    for (int k = 0; k < 3; k++)
        assert_in_range(first[k], 9500, 10500);
}

/* ---- Initialisers --------------------------------------------------------- */

static ad_tensor *persistent(ad_dtype dtype, int ndim, const int64_t *shape)
{
    ad_tensor *t = NULL;
    assert_int_equal(ad_tensor_create(&t, dtype, ndim, shape, true), AD_OK);
    return t;
}

typedef struct stats {
    double mean, std, max_abs;
} stats;

static stats stats_of(const ad_tensor *t)
{
    stats s = {0, 0, 0};
    int64_t n = ad_tensor_numel(t);
    double sum = 0, sum2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = ad_tensor_get(t, i);
        sum += v;
        sum2 += v * v;
        s.max_abs = fabs(v) > s.max_abs ? fabs(v) : s.max_abs;
    }
    s.mean = sum / (double)n;
    s.std = sqrt(sum2 / (double)n - s.mean * s.mean);
    return s;
}

static void test_fans_follow_pytorch_for_linear_and_conv_weights(void **state)
{
    (void)state;
    int64_t in, out;
    ad_tensor *w = persistent(AD_F32, 2, (int64_t[]){300, 200});
    assert_int_equal(ad_init_fans(w, &in, &out), AD_OK);
    assert_int_equal(in, 200);
    assert_int_equal(out, 300);
    ad_tensor *conv = persistent(AD_F64, 4, (int64_t[]){16, 8, 3, 5});
    assert_int_equal(ad_init_fans(conv, &in, &out), AD_OK);
    assert_int_equal(in, 8 * 15);
    assert_int_equal(out, 16 * 15);
    ad_tensor *bias = persistent(AD_F32, 1, (int64_t[]){16});
    assert_int_equal(ad_init_fans(bias, &in, &out), AD_ERR_ARG);
    assert_int_equal(ad_init_fans(NULL, &in, &out), AD_ERR_ARG);
    ad_tensor_free(w);
    ad_tensor_free(conv);
    ad_tensor_free(bias);
}

static void check_uniform_init(ad_status (*init)(ad_tensor *, ad_rng *), ad_dtype dtype, int ndim,
                               const int64_t *shape, double bound)
{
    ad_tensor *w = persistent(dtype, ndim, shape);
    ad_rng rng;
    ad_rng_seed(&rng, 11);
    assert_int_equal(init(w, &rng), AD_OK);
    stats s = stats_of(w);
    double limit = dtype == AD_F32 ? (double)(float)bound : bound;
    assert_true(s.max_abs <= limit);
    assert_true(s.max_abs > 0.99 * bound);
    assert_close(0.0, s.mean, 0, 0.02 * bound);
    assert_close(bound / sqrt(3.0), s.std, 0.05, 0);
    /* The gradient is untouched. */
    ad_tensor *g = ad_tensor_grad(w);
    for (int64_t i = 0; i < ad_tensor_numel(g); i++)
        assert_true(ad_tensor_get(g, i) == 0.0);
    ad_tensor_free(w);
}

static void check_normal_init(ad_status (*init)(ad_tensor *, ad_rng *), ad_dtype dtype, int ndim,
                              const int64_t *shape, double std)
{
    ad_tensor *w = persistent(dtype, ndim, shape);
    ad_rng rng;
    ad_rng_seed(&rng, 13);
    assert_int_equal(init(w, &rng), AD_OK);
    stats s = stats_of(w);
    assert_close(0.0, s.mean, 0, 0.03 * std);
    assert_close(std, s.std, 0.05, 0);
    ad_tensor_free(w);
}

static void test_xavier_uniform_bound_and_std_match_the_formula(void **state)
{
    (void)state;
    check_uniform_init(ad_init_xavier_uniform, AD_F32, 2, (int64_t[]){300, 200},
                       sqrt(6.0 / (200 + 300)));
    check_uniform_init(ad_init_xavier_uniform, AD_F64, 4, (int64_t[]){32, 16, 3, 3},
                       sqrt(6.0 / (16 * 9 + 32 * 9)));
}

static void test_xavier_normal_std_matches_the_formula(void **state)
{
    (void)state;
    check_normal_init(ad_init_xavier_normal, AD_F32, 2, (int64_t[]){300, 200},
                      sqrt(2.0 / (200 + 300)));
    check_normal_init(ad_init_xavier_normal, AD_F64, 4, (int64_t[]){32, 16, 3, 3},
                      sqrt(2.0 / (16 * 9 + 32 * 9)));
}

static void test_kaiming_uniform_bound_and_std_match_the_formula(void **state)
{
    (void)state;
    check_uniform_init(ad_init_kaiming_uniform, AD_F32, 2, (int64_t[]){300, 200},
                       sqrt(2.0) * sqrt(3.0 / 200));
    check_uniform_init(ad_init_kaiming_uniform, AD_F64, 4, (int64_t[]){32, 16, 3, 3},
                       sqrt(2.0) * sqrt(3.0 / (16 * 9)));
}

static void test_kaiming_normal_std_matches_the_formula(void **state)
{
    (void)state;
    check_normal_init(ad_init_kaiming_normal, AD_F32, 2, (int64_t[]){300, 200},
                      sqrt(2.0) / sqrt(200.0));
    check_normal_init(ad_init_kaiming_normal, AD_F64, 4, (int64_t[]){32, 16, 3, 3},
                      sqrt(2.0) / sqrt(16.0 * 9));
}

static void test_uniform_and_normal_fill_any_shape_reproducibly(void **state)
{
    (void)state;
    ad_tensor *a = persistent(AD_F64, 1, (int64_t[]){50000});
    ad_tensor *b = persistent(AD_F64, 1, (int64_t[]){50000});
    ad_rng ra, rb;
    ad_rng_seed(&ra, 21);
    ad_rng_seed(&rb, 21);
    assert_int_equal(ad_init_uniform(a, -2.0, 3.0, &ra), AD_OK);
    assert_int_equal(ad_init_uniform(b, -2.0, 3.0, &rb), AD_OK);
    assert_memory_equal(ad_tensor_data(a), ad_tensor_data(b), 50000 * sizeof(double));
    stats s = stats_of(a);
    assert_close(0.5, s.mean, 0, 0.03);
    for (int64_t i = 0; i < 50000; i++)
        assert_true(ad_tensor_get(a, i) >= -2.0 && ad_tensor_get(a, i) < 3.0);
    assert_int_equal(ad_init_normal(a, 4.0, 0.5, &ra), AD_OK);
    s = stats_of(a);
    assert_close(4.0, s.mean, 0, 0.01);
    assert_close(0.5, s.std, 0.03, 0);
    /* A 0-d tensor and std 0. */
    ad_tensor *scalar = persistent(AD_F32, 0, NULL);
    assert_int_equal(ad_init_normal(scalar, 1.5, 0.0, &ra), AD_OK);
    assert_true(ad_tensor_get(scalar, 0) == 1.5);
    assert_int_equal(ad_init_uniform(scalar, 2.0, 2.0, &ra), AD_OK);
    assert_true(ad_tensor_get(scalar, 0) == 2.0);
    ad_tensor_free(a);
    ad_tensor_free(b);
    ad_tensor_free(scalar);
}

static void test_initialisers_refuse_tape_tensors_vectors_and_bad_ranges(void **state)
{
    (void)state;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_tape *tape = test_tape();
    ad_tensor *on_tape = ad_tape_tensor(tape, AD_F32, 2, (int64_t[]){3, 4}, NULL);
    assert_non_null(on_tape);
    assert_int_equal(ad_init_uniform(on_tape, 0, 1, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_normal(on_tape, 0, 1, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_xavier_uniform(on_tape, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_kaiming_normal(on_tape, &rng), AD_ERR_ARG);
    for (int64_t i = 0; i < 12; i++)
        assert_true(ad_tensor_get(on_tape, i) == 0.0);

    ad_tensor *vec = persistent(AD_F32, 1, (int64_t[]){10});
    assert_int_equal(ad_init_xavier_uniform(vec, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_xavier_normal(vec, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_kaiming_uniform(vec, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_kaiming_normal(vec, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_uniform(vec, 0, 1, &rng), AD_OK); /* no fans needed */
    assert_int_equal(ad_init_uniform(vec, 1, 0, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_uniform(vec, 0, INFINITY, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_normal(vec, 0, -1, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_normal(vec, NAN, 1, &rng), AD_ERR_ARG);
    assert_int_equal(ad_init_uniform(vec, 0, 1, NULL), AD_ERR_ARG);
    assert_int_equal(ad_init_kaiming_uniform(NULL, &rng), AD_ERR_ARG);

    /* Zero-size weights are left alone, as in PyTorch (their fans may be 0). */
    ad_tensor *empty = persistent(AD_F32, 2, (int64_t[]){0, 5});
    assert_int_equal(ad_init_kaiming_uniform(empty, &rng), AD_OK);
    assert_int_equal(ad_init_xavier_normal(empty, &rng), AD_OK);
    ad_tensor_free(vec);
    ad_tensor_free(empty);
    ad_tape_free(tape);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_42_gives_the_reference_xoshiro256starstar_stream),
        cmocka_unit_test(test_same_seed_gives_the_same_sequence),
        cmocka_unit_test(test_different_seeds_give_different_sequences),
        cmocka_unit_test(test_uniform_is_in_zero_one_with_mean_one_half),
        cmocka_unit_test(test_normal_has_mean_zero_and_std_one),
        cmocka_unit_test(test_below_stays_in_range_and_is_roughly_uniform),
        cmocka_unit_test(test_shuffle_is_a_permutation_and_reproducible),
        cmocka_unit_test(test_fans_follow_pytorch_for_linear_and_conv_weights),
        cmocka_unit_test(test_xavier_uniform_bound_and_std_match_the_formula),
        cmocka_unit_test(test_xavier_normal_std_matches_the_formula),
        cmocka_unit_test(test_kaiming_uniform_bound_and_std_match_the_formula),
        cmocka_unit_test(test_kaiming_normal_std_matches_the_formula),
        cmocka_unit_test(test_uniform_and_normal_fill_any_shape_reproducibly),
        cmocka_unit_test(test_initialisers_refuse_tape_tensors_vectors_and_bad_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
