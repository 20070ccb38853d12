/* The thread pool for large elementwise loops (src/threads.c): with more
 * than one thread, every op gives the same bits as with one, also when two
 * user threads record on two tapes at once and only one of them gets the
 * pool. */
#include "test_util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/autodiff.h"

/* Large enough for the costly ops (exp, tanh, ...) to be split (from 2^15
 * elements); the cheap ones split from 2^21 (test below). */
enum { N = 300007 };

/* A deterministic input in [-2, 2) with some exact zeros (relu's kink). */
static ad_tensor *input(ad_tape *tape, ad_dtype dtype, unsigned seed)
{
    double *values = malloc(N * sizeof *values); /* per call: user threads run this at once */
    assert_non_null(values);
    uint64_t s = seed * 2654435761u + 1;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        values[i] = (i % 97 == 0) ? 0.0 : (double)(s >> 11) / (double)(1ull << 53) * 4 - 2;
    }
    ad_tensor *x = ad_requires_grad(ad_tensor_from_doubles(tape, dtype, 1, (int64_t[]){N}, values));
    free(values);
    return x;
}

/* A chain of unary and binary ops (flat, scalar and broadcast operands) and
 * its gradient; writes value and gradient as doubles. */
static void compute(ad_dtype dtype, unsigned seed, double *value, double *grad)
{
    ad_tape *tape;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    ad_tensor *x = input(tape, dtype, seed);
    ad_tensor *y = ad_add(ad_relu(x), ad_mul(ad_tanh(x), ad_exp(ad_neg(ad_square(x)))));
    y = ad_mul_scalar(ad_add(y, ad_sigmoid(ad_sub(x, y))), 0.5);
    y = ad_div(y, ad_add_scalar(ad_abs(x), 1.0));
    ad_tensor *loss = ad_sum_all(ad_mul(y, ad_sin(x)));
    assert_non_null(loss);
    assert_int_equal(ad_backward(loss, NULL), AD_OK);
    assert_int_equal(ad_tensor_copy_to_doubles(y, value), AD_OK);
    assert_int_equal(ad_tensor_copy_to_doubles(ad_tensor_grad(x), grad), AD_OK);
    ad_tape_free(tape);
}

static double serial_value[2][N], serial_grad[2][N];

static void compute_serial_references(void)
{
    static bool done;
    if (done)
        return;
    ad_set_num_threads(1);
    compute(AD_F32, 1, serial_value[0], serial_grad[0]);
    compute(AD_F64, 1, serial_value[1], serial_grad[1]);
    done = true;
}

static void assert_same_bits(const double *expected, const double *actual, const char *what)
{
    if (memcmp(expected, actual, N * sizeof *actual) != 0)
        for (int i = 0; i < N; i++)
            if (memcmp(&expected[i], &actual[i], sizeof *actual) != 0)
                fail_msg("%s: element %d is %.17g with 2 threads, %.17g with 1", what, i, actual[i],
                         expected[i]);
}

static void test_two_threads_give_the_same_bits_as_one(void **state)
{
    (void)state;
    compute_serial_references();
    static double value[N], grad[N];
    ad_set_num_threads(2);
    assert_int_equal(ad_num_threads(), 2);
    for (int d = 0; d < 2; d++) {
        compute(d ? AD_F64 : AD_F32, 1, value, grad);
        assert_same_bits(serial_value[d], value, d ? "float64 value" : "float32 value");
        assert_same_bits(serial_grad[d], grad, d ? "float64 gradient" : "float32 gradient");
    }
    ad_set_num_threads(1);
}

typedef struct job {
    ad_dtype dtype;
    double *value, *grad;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    for (int round = 0; round < 3; round++)
        compute(j->dtype, 1, j->value, j->grad);
    return NULL;
}

/* Two user threads share one pool: whichever does not get it runs alone. */
static void test_two_user_threads_share_the_pool_and_agree(void **state)
{
    (void)state;
    compute_serial_references();
    static double value[2][N], grad[2][N];
    ad_set_num_threads(2);
    job jobs[2] = {{AD_F32, value[0], grad[0]}, {AD_F64, value[1], grad[1]}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, run_job, &jobs[k]), 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_join(t[k], NULL), 0);
    for (int d = 0; d < 2; d++) {
        assert_same_bits(serial_value[d], value[d], "value from a user thread");
        assert_same_bits(serial_grad[d], grad[d], "gradient from a user thread");
    }
    ad_set_num_threads(1);
}

/* The cheap ops (add, mul, relu, ...) split only from 2^21 elements: one
 * such tensor, with a scalar and a same-shape operand, 1 thread against 2. */
static void cheap_ops(int threads, float *out, size_t n)
{
    ad_set_num_threads(threads);
    ad_tape *tape;
    assert_int_equal(ad_tape_create(&tape), AD_OK);
    /* x = i mod 101 - 50, written through a persistent copy. */
    ad_tensor *p;
    assert_int_equal(ad_tensor_create(&p, AD_F32, 1, (int64_t[]){(int64_t)n}, false), AD_OK);
    float *d = ad_tensor_data(p);
    for (size_t i = 0; i < n; i++)
        d[i] = (float)((int)(i % 101) - 50) * 0.37f;
    ad_tensor *v = ad_tape_use(tape, p);
    ad_tensor *y = ad_maximum(
        ad_div(ad_mul(ad_add(ad_relu(v), v), ad_sub_scalar(v, 3.0)), ad_add_scalar(ad_abs(v), 1.0)),
        ad_neg(v));
    assert_non_null(y);
    memcpy(out, ad_tensor_data(y), n * sizeof *out);
    ad_tape_free(tape);
    ad_tensor_free(p);
    ad_set_num_threads(1);
}

static void test_cheap_ops_on_large_tensors_give_the_same_bits(void **state)
{
    (void)state;
    size_t n = ((size_t)1 << 21) + 5;
    float *one = malloc(n * sizeof *one), *two = malloc(n * sizeof *two);
    assert_non_null(one);
    assert_non_null(two);
    cheap_ops(1, one, n);
    cheap_ops(2, two, n);
    assert_memory_equal(one, two, n * sizeof *one);
    free(one);
    free(two);
}

static void test_thread_count_is_clamped_to_at_least_one(void **state)
{
    (void)state;
    ad_set_num_threads(0);
    assert_int_equal(ad_num_threads(), 1);
    ad_set_num_threads(-5);
    assert_int_equal(ad_num_threads(), 1);
    ad_set_num_threads(3);
    assert_int_equal(ad_num_threads(), 3);
    ad_set_num_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_threads_give_the_same_bits_as_one),
        cmocka_unit_test(test_two_user_threads_share_the_pool_and_agree),
        cmocka_unit_test(test_cheap_ops_on_large_tensors_give_the_same_bits),
        cmocka_unit_test(test_thread_count_is_clamped_to_at_least_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
