/* The thread pool for large elementwise loops (src/core/threads.c): with more
 * than one thread, every op gives the same bits as with one, also when two
 * user threads record on two tapes at once and only one of them gets the
 * pool. */
#include "test_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autodiff/autodiff.h"

/* Large enough for the costly ops (exp, tanh, ...) to be split (from 2^15
 * elements); the cheap ones split from 2^21 (test below). */
enum { N = 300007 };

/* A deterministic input in [-2, 2) with some exact zeros (relu's kink). */
static ad_tensor *input(ad_tape *tape, ad_dtype dtype, unsigned seed)
{
    double *values = malloc(N * sizeof *values); /* per call: user threads run this at once */
    if (!values)
        return NULL; /* the ops pass it on: compute_into fails */
    uint64_t s = seed * 2654435761u + 1;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        values[i] = (i % 97 == 0) ? 0.0 : (double)(s >> 11) / (double)(1ull << 53) * 4 - 2;
    }
    ad_tensor *x =
        ad_requires_grad(ad_tape_tensor_from_doubles(tape, dtype, 1, (int64_t[]){N}, values));
    free(values);
    return x;
}

/* A chain of unary and binary ops (flat, scalar and broadcast operands) and
 * its gradient; writes value and gradient as doubles. Returns false, having
 * printed why, if anything failed. No CMocka assertion: a forked child runs
 * it too. */
static bool compute_into(ad_dtype dtype, unsigned seed, double *value, double *grad)
{
    ad_tape *tape;
    if (ad_tape_create(&tape) != AD_OK) {
        fprintf(stderr, "compute: no tape\n");
        return false;
    }
    ad_tensor *x = input(tape, dtype, seed);
    ad_tensor *y = ad_add(ad_relu(x), ad_mul(ad_tanh(x), ad_exp(ad_neg(ad_square(x)))));
    y = ad_mul_scalar(ad_add(y, ad_sigmoid(ad_sub(x, y))), 0.5);
    y = ad_div(y, ad_add_scalar(ad_abs(x), 1.0));
    ad_tensor *loss = ad_sum_all(ad_mul(y, ad_sin(x)));
    bool ok = loss && ad_backward(loss, NULL) == AD_OK &&
              ad_tensor_copy_to_doubles(y, value) == AD_OK &&
              ad_tensor_copy_to_doubles(ad_tensor_grad(x), grad) == AD_OK;
    if (!ok)
        fprintf(stderr, "compute: %s\n",
                ad_tape_status(tape) != AD_OK ? ad_tape_message(tape) : "out of memory");
    ad_tape_free(tape);
    return ok;
}

static void compute(ad_dtype dtype, unsigned seed, double *value, double *grad)
{
    assert_true(compute_into(dtype, seed, value, grad));
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

/* A child forked while the workers wait has none of them (only the forking
 * thread is copied): its first parallel op must start workers of its own and
 * give the same bits, and its exit must stop and join those, not wait for the
 * parent's. main runs this check before CMocka starts, and the test below
 * reports it: a child forked inside a CMocka test would exit with the test
 * runner's memory still allocated, which valgrind (following the child, with
 * still-reachable blocks counted as errors) would report. */
static const char *fork_failure; /* why the check failed; NULL if it passed */

static void run_fork_check(void)
{
    static double serial_value64[N], serial_grad64[N], value[N], grad[N];
    ad_set_num_threads(1);
    if (!compute_into(AD_F64, 1, serial_value64, serial_grad64)) {
        fork_failure = "computing with one thread failed";
        return;
    }
    ad_set_num_threads(2);
    if (!compute_into(AD_F64, 1, value, grad)) { /* the parent's worker now waits */
        fork_failure = "computing with two threads failed";
        goto out;
    }
    fflush(NULL); /* or the child would print our buffers again */
    pid_t pid = fork();
    if (pid < 0) {
        fork_failure = "fork failed";
        goto out;
    }
    if (pid == 0) {
        alarm(120); /* a hang, such as a wait for the parent's workers, ends here */
        bool same = compute_into(AD_F64, 1, value, grad) &&
                    memcmp(value, serial_value64, sizeof value) == 0 &&
                    memcmp(grad, serial_grad64, sizeof grad) == 0;
        if (!same)
            fprintf(stderr, "forked child: not the bits of one thread\n");
        exit(same ? 0 : 1);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fork_failure = "waitpid failed";
    else if (WIFSIGNALED(status))
        fork_failure = WTERMSIG(status) == SIGALRM ? "the forked child hung (SIGALRM)"
                                                   : "the forked child died of a signal";
    else if (WEXITSTATUS(status) != 0)
        fork_failure = "the forked child failed (see its message above)";
    else if (!compute_into(AD_F64, 1, value, grad) ||
             memcmp(value, serial_value64, sizeof value) != 0)
        fork_failure = "after the fork, the parent's pool gave other bits";
out:
    ad_set_num_threads(1);
}

static void test_a_forked_child_starts_workers_of_its_own_and_exits(void **state)
{
    (void)state;
    if (fork_failure)
        fail_msg("%s", fork_failure);
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
    run_fork_check();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_threads_give_the_same_bits_as_one),
        cmocka_unit_test(test_two_user_threads_share_the_pool_and_agree),
        cmocka_unit_test(test_cheap_ops_on_large_tensors_give_the_same_bits),
        cmocka_unit_test(test_a_forked_child_starts_workers_of_its_own_and_exits),
        cmocka_unit_test(test_thread_count_is_clamped_to_at_least_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
