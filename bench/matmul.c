/*
 * Matrix products at the MLP's shapes: ad_matmul_t on persistent float32
 * tensors, next to cblas_sgemm called directly on the same memory (the BLAS's
 * own figure). GFLOP/s = 2 m n k / time.
 *
 * The shapes are the eight products of one training step of the 784-256-256-10
 * MLP at batch 128, as ad_nn_linear records them (y = x W^T, so the forward
 * is NT; the backward is dW = dy^T x, TN, and dx = dy W, NN; the first layer's
 * input needs no gradient). One more, marked whatif, is the first forward
 * product as NN, as it would be with the weight stored transposed.
 *
 * Each sample runs enough products to take about 10 ms; ours and the BLAS's
 * samples alternate, and each figure is the median of --reps samples. Ours
 * pays what a user pays: the tape reset, the view of a persistent input and
 * the output's arena allocation, on top of the same BLAS call.
 *
 * Usage: matmul [--threads N] [--reps R]
 */
#include "bench_util.h"

#include <stdbool.h>

#include <cblas.h>

#include "autodiff/autodiff.h"

typedef struct shape {
    const char *name;
    bool ta, tb;
    int m, n, k;
} shape;

static const shape shapes[] = {
    {"fwd1_nt_128x256x784", false, true, 128, 256, 784},
    {"fwd2_nt_128x256x256", false, true, 128, 256, 256},
    {"fwd3_nt_128x10x256", false, true, 128, 10, 256},
    {"dw1_tn_256x784x128", true, false, 256, 784, 128},
    {"dw2_tn_256x256x128", true, false, 256, 256, 128},
    {"dw3_tn_10x256x128", true, false, 10, 256, 128},
    {"dx2_nn_128x256x256", false, false, 128, 256, 256},
    {"dx3_nn_128x256x10", false, false, 128, 256, 10},
    /* Not in the step: the first forward product if W were stored [in, out]. */
    {"whatif_fwd1_nn_128x256x784", false, false, 128, 256, 784},
};

typedef struct operands {
    const shape *s;
    ad_tape *tape;
    ad_tensor *a, *b;
    float *c; /* the BLAS's output */
} operands;

static void run_ours(operands *op, long count)
{
    for (long i = 0; i < count; i++) {
        ad_tape_reset(op->tape);
        ad_tensor *y = ad_matmul_t(ad_tape_use(op->tape, op->a), op->b, op->s->ta, op->s->tb);
        if (!y) {
            fprintf(stderr, "matmul: %s\n", ad_tape_message(op->tape));
            exit(1);
        }
    }
}

static void run_blas(operands *op, long count)
{
    const shape *s = op->s;
    const float *a = ad_tensor_data(op->a), *b = ad_tensor_data(op->b);
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    for (long i = 0; i < count; i++)
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                    s->tb ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f,
                    op->c, s->n);
}

/* Seconds per product: count products per sample, median of reps samples. */
static double sample(void (*run)(operands *, long), operands *op, long count)
{
    double t0 = bench_now();
    run(op, count);
    return (bench_now() - t0) / (double)count;
}

static ad_tensor *random_tensor(int rows, int cols, uint64_t *seed)
{
    ad_tensor *t;
    if (ad_tensor_create(&t, AD_F32, 2, (int64_t[]){rows, cols}, false) != AD_OK)
        exit(1);
    float *d = ad_tensor_data(t);
    for (int i = 0; i < rows * cols; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        d[i] = (float)((*seed >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
    return t;
}

int main(int argc, char **argv)
{
    int threads = (int)bench_arg(argc, argv, "--threads", 1);
    long reps = bench_arg(argc, argv, "--reps", 9);
    if (threads < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: matmul [--threads N] [--reps R]\n");
        return 2;
    }
    ad_set_num_threads(threads);
    fprintf(stderr, "matmul: OpenBLAS %s, core %s, %d thread(s)\n", openblas_get_config(),
            openblas_get_corename(), openblas_get_num_threads());

    double *ours = calloc((size_t)reps, sizeof *ours);
    double *blas = calloc((size_t)reps, sizeof *blas);
    ad_tape *tape;
    if (!ours || !blas || ad_tape_create(&tape) != AD_OK)
        return 1;
    uint64_t seed = 3;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        operands op = {s, tape, NULL, NULL, NULL};
        op.a = s->ta ? random_tensor(s->k, s->m, &seed) : random_tensor(s->m, s->k, &seed);
        op.b = s->tb ? random_tensor(s->n, s->k, &seed) : random_tensor(s->k, s->n, &seed);
        op.c = calloc((size_t)s->m * (size_t)s->n, sizeof *op.c);
        if (!op.c)
            return 1;

        /* Warm up both, and size a sample to about 10 ms of BLAS time. */
        run_ours(&op, 3);
        double per = sample(run_blas, &op, 3);
        long count = per > 0 ? (long)(0.01 / per) : 1000;
        count = count < 1 ? 1 : count;
        for (long r = 0; r < reps; r++) {
            ours[r] = sample(run_ours, &op, count);
            blas[r] = sample(run_blas, &op, count);
        }
        double flop = 2.0 * s->m * s->n * s->k;
        double ours_gflops = flop / bench_median(ours, (size_t)reps) * 1e-9;
        double blas_gflops = flop / bench_median(blas, (size_t)reps) * 1e-9;
        char name[96];
        snprintf(name, sizeof name, "matmul_ours_%s", s->name);
        bench_emit(name, ours_gflops, "GFLOP/s", threads);
        snprintf(name, sizeof name, "matmul_blas_%s", s->name);
        bench_emit(name, blas_gflops, "GFLOP/s", threads);

        ad_tensor_free(op.a);
        ad_tensor_free(op.b);
        free(op.c);
    }
    ad_tape_free(tape);
    free(ours);
    free(blas);
    return 0;
}
