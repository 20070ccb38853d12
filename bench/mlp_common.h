/*
 * The MLP benchmark's shapes and timing loop, shared by the libautodiff
 * version (mlp_train.c) and the hand-written one (mlp_handwritten.c), so both
 * are timed exactly the same way.
 *
 * Fashion-MNIST shapes: 784-256-256-10, ReLU, batch 128, float32, SGD with
 * lr 0.1 and no momentum, cross-entropy on logits. The data are one fixed
 * random batch (values in [0, 1), random labels): speed does not depend on
 * them, and no implementation pays for copying data in.
 *
 * Timing: --warmup steps first, then --reps repetitions of --steps steps;
 * the figure is the median over repetitions of (repetition time / steps).
 * One process measures one thread count, so its peak RSS is that
 * configuration's alone.
 */
#ifndef AD_BENCH_MLP_COMMON_H
#define AD_BENCH_MLP_COMMON_H

#include "bench_util.h"

#include <math.h>

enum {
    MLP_BATCH = 128,
    MLP_IN = 784,
    MLP_HIDDEN = 256,
    MLP_CLASSES = 10,
    MLP_EPOCH_EXAMPLES = 60000,
};

#define MLP_LR 0.1

/* Batches per epoch of Fashion-MNIST's 60000 training images: 469. */
static inline long mlp_steps_per_epoch(void)
{
    return (MLP_EPOCH_EXAMPLES + MLP_BATCH - 1) / MLP_BATCH;
}

/* A small deterministic generator for the data (splitmix64). */
static inline double mlp_uniform(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

typedef struct mlp_options {
    int threads;
    long warmup, steps, reps;
} mlp_options;

static inline mlp_options mlp_parse(int argc, char **argv)
{
    mlp_options o = {(int)bench_arg(argc, argv, "--threads", 1),
                     bench_arg(argc, argv, "--warmup", 5), bench_arg(argc, argv, "--steps", 50),
                     bench_arg(argc, argv, "--reps", 5)};
    if (o.threads < 1 || o.warmup < 0 || o.steps < 1 || o.reps < 1 || o.reps > 1000) {
        fprintf(stderr, "usage: %s [--threads N] [--warmup W] [--steps S] [--reps R]\n", argv[0]);
        exit(2);
    }
    return o;
}

/* Times step(ctx) (which returns the loss) as described above and prints the
 * figures under prefix ("mlp_ours", "mlp_handwritten"). */
static inline void mlp_time(const char *prefix, const mlp_options *o, double (*step)(void *),
                            void *ctx)
{
    double loss = 0, first_loss = 0;
    for (long i = 0; i < o->warmup; i++) {
        loss = step(ctx);
        if (i == 0)
            first_loss = loss;
    }
    double *ms = calloc((size_t)o->reps, sizeof *ms);
    if (!ms)
        exit(1);
    for (long r = 0; r < o->reps; r++) {
        double t0 = bench_now();
        for (long i = 0; i < o->steps; i++)
            loss = step(ctx);
        ms[r] = 1e3 * (bench_now() - t0) / (double)o->steps;
    }
    if (!isfinite(loss)) {
        fprintf(stderr, "%s: loss is not finite\n", prefix);
        exit(1);
    }
    double median_ms = bench_median(ms, (size_t)o->reps);
    fprintf(stderr, "%s: %d thread(s): %.3f ms/step (min %.3f, max %.3f), loss %.4f -> %.4f\n",
            prefix, o->threads, median_ms, ms[0], ms[o->reps - 1], first_loss, loss);
    char name[96];
    snprintf(name, sizeof name, "%s_step_ms", prefix);
    bench_emit(name, median_ms, "ms", o->threads);
    snprintf(name, sizeof name, "%s_examples_per_s", prefix);
    bench_emit(name, MLP_BATCH * 1e3 / median_ms, "examples/s", o->threads);
    snprintf(name, sizeof name, "%s_epoch_s", prefix);
    bench_emit(name, median_ms * (double)mlp_steps_per_epoch() / 1e3, "s", o->threads);
    snprintf(name, sizeof name, "%s_peak_rss_mib", prefix);
    bench_emit(name, bench_peak_rss_mib(), "MiB", o->threads);
    free(ms);
}

#endif
