/*
 * Elementwise throughput: large forward ops (relu, add, exp) on float32,
 * timed at 1 thread and at --threads threads in the same process, and the
 * speed-up between them. The pool splits ops of 2^17 elements or more
 * (src/core/threads.c); below that both runs are the same code.
 *
 * Each figure is the median of --reps timings of one op over --n elements
 * on a recycled tape, after a warm-up that starts the workers.
 *
 * Usage: elementwise [--n N] [--threads T] [--reps R]
 */
#include "bench_util.h"

#include "autodiff/autodiff.h"

typedef enum { OP_RELU, OP_ADD, OP_EXP } op_kind;
static const char *const op_names[] = {"relu", "add", "exp"};

/* Median seconds of one op over x (and x) on tape. */
static double time_op(ad_tape *tape, ad_tensor *x, op_kind op, long reps, double *times)
{
    for (long r = -1; r < reps; r++) {
        ad_tape_reset(tape);
        double t0 = bench_now();
        ad_tensor *v = ad_tape_use(tape, x);
        ad_tensor *y = op == OP_RELU ? ad_relu(v) : op == OP_ADD ? ad_add(v, v) : ad_exp(v);
        double t1 = bench_now();
        if (!y) {
            fprintf(stderr, "elementwise: %s\n", ad_tape_message(tape));
            exit(1);
        }
        bench_sink = ((const float *)ad_tensor_data(y))[0];
        if (r >= 0)
            times[r] = t1 - t0;
    }
    return bench_median(times, (size_t)reps);
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, "--n", 1 << 22);
    long threads = bench_arg(argc, argv, "--threads", 2);
    long reps = bench_arg(argc, argv, "--reps", 21);
    if (n < 1 || threads < 1 || threads > 64 || reps < 1 || reps > 10000) {
        fprintf(stderr, "usage: elementwise [--n N] [--threads 1..64] [--reps R]\n");
        return 2;
    }
    ad_tensor *x;
    ad_tape *tape;
    double *times = calloc((size_t)reps, sizeof *times);
    if (!times || ad_tensor_create(&x, AD_F32, 1, (int64_t[]){n}, false) != AD_OK ||
        ad_tape_create(&tape) != AD_OK)
        return 1;
    float *d = ad_tensor_data(x);
    for (long i = 0; i < n; i++)
        d[i] = (float)((i % 1000) - 500) / 250.0f;
    for (int op = OP_RELU; op <= OP_EXP; op++) {
        ad_set_num_threads(1);
        double one = time_op(tape, x, (op_kind)op, reps, times);
        ad_set_num_threads((int)threads);
        double many = time_op(tape, x, (op_kind)op, reps, times);
        char name[64];
        snprintf(name, sizeof name, "elementwise_%s_1", op_names[op]);
        bench_emit(name, (double)n / one * 1e-9, "Gelem/s", 1);
        snprintf(name, sizeof name, "elementwise_%s_%ld", op_names[op], threads);
        bench_emit(name, (double)n / many * 1e-9, "Gelem/s", (int)threads);
    }
    ad_tape_free(tape);
    ad_tensor_free(x);
    free(times);
    return 0;
}
