/*
 * Activation checkpointing: one training step (forward and backward) of a
 * deep tanh MLP, float32, plain and with ad_checkpoint around every layer and
 * around segments of about sqrt(layers) layers. Reports each variant's peak
 * tape bytes (ad_tape_bytes_peak), the saving against the plain step, and
 * its time per step as a ratio against the plain step timed in the same
 * process (the repetitions interleave the variants, so noise hits them alike).
 *
 * Exits with status 1 if a variant's loss or parameter gradients differ by
 * one bit from the plain step's.
 *
 * Usage: checkpoint [--layers L] [--width W] [--batch B] [--segment S]
 *                   [--threads T] [--warmup N] [--reps R]
 */
#include "bench_util.h"

#include "autodiff/autodiff.h"

#include <math.h>

#define MAX_LAYERS 1024

typedef struct model {
    int layers;
    int64_t width;
    ad_tensor *w[MAX_LAYERS]; /* [width, width] */
    ad_tensor *b[MAX_LAYERS]; /* [width] */
} model;

/* Layers begin..end: what one checkpoint runs. */
typedef struct segment {
    const model *m;
    int begin, end;
} segment;

typedef struct variant {
    const char *name;
    int every; /* layers per checkpoint; 0: none */
    ad_tape *tape;
    segment *segments;
    size_t peak, reserved;
    double *ms;
    float *grads; /* the loss and every parameter gradient after one step */
} variant;

/* x: (B, W) <- tanh(x W_l^T + b_l) for l in begin..end */
static ad_tensor *run_segment(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx)
{
    (void)tape;
    (void)n;
    const segment *s = ctx;
    ad_tensor *x = inputs[0];
    for (int l = s->begin; l < s->end; l++)
        x = ad_tanh(ad_add(ad_matmul_t(x, s->m->w[l], false, true), s->m->b[l]));
    return x;
}

static uint64_t rng_state = 1;

static double uniform(double lo, double hi)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) / 9007199254740992.0;
}

static float *fill(ad_tensor *t, double scale)
{
    float *d = ad_tensor_data(t);
    for (int64_t i = 0; i < ad_tensor_numel(t); i++)
        d[i] = (float)uniform(-scale, scale);
    return d;
}

/* One step: loss = mean(y^2) for y = model(x), backward into the buffers. */
static double step(variant *v, const model *m, ad_tensor *x)
{
    ad_tape_reset(v->tape);
    for (int l = 0; l < m->layers; l++) {
        ad_zero_grad(m->w[l]);
        ad_zero_grad(m->b[l]);
    }
    ad_tensor *h = ad_tape_use(v->tape, x);
    if (v->every == 0) {
        segment all = {m, 0, m->layers};
        h = run_segment(v->tape, 1, &h, &all);
    } else {
        for (int l = 0, k = 0; l < m->layers; l += v->every, k++) {
            v->segments[k] = (segment){m, l, l + v->every < m->layers ? l + v->every : m->layers};
            h = ad_checkpoint(run_segment, &v->segments[k], 1, &h);
        }
    }
    ad_tensor *loss = ad_mean_all(ad_square(h));
    ad_status st = ad_backward(loss, NULL);
    if (st != AD_OK) {
        fprintf(stderr, "checkpoint: %s: %s: %s\n", v->name, ad_status_string(st),
                ad_tape_message(v->tape));
        exit(1);
    }
    v->peak = ad_tape_bytes_peak(v->tape);
    v->reserved = ad_tape_bytes_reserved(v->tape);
    return ad_value(loss);
}

int main(int argc, char **argv)
{
    model m = {.layers = (int)bench_arg(argc, argv, "--layers", 32),
               .width = bench_arg(argc, argv, "--width", 256)};
    long batch = bench_arg(argc, argv, "--batch", 64);
    long threads = bench_arg(argc, argv, "--threads", 1);
    long warmup = bench_arg(argc, argv, "--warmup", 2);
    long reps = bench_arg(argc, argv, "--reps", 11);
    long segment_layers = bench_arg(argc, argv, "--segment", (long)lround(sqrt((double)m.layers)));
    if (m.layers < 1 || m.layers > MAX_LAYERS || m.width < 1 || batch < 1 || threads < 1 ||
        threads > 64 || warmup < 0 || reps < 1 || reps > 10000 || segment_layers < 1) {
        fprintf(stderr,
                "usage: checkpoint [--layers 1..%d] [--width W] [--batch B] "
                "[--segment S] [--threads 1..64] [--warmup N] [--reps R]\n",
                MAX_LAYERS);
        return 2;
    }
    ad_set_num_threads((int)threads);

    /* The model and one fixed batch. */
    int64_t sw[2] = {m.width, m.width}, sx[2] = {batch, m.width};
    size_t n_grads = 1;
    double scale = 1.5 / sqrt((double)m.width);
    for (int l = 0; l < m.layers; l++) {
        if (ad_tensor_create(&m.w[l], AD_F32, 2, sw, true) != AD_OK ||
            ad_tensor_create(&m.b[l], AD_F32, 1, &m.width, true) != AD_OK) {
            fprintf(stderr, "checkpoint: out of memory for the model\n");
            return 1;
        }
        fill(m.w[l], scale);
        fill(m.b[l], 0.1);
        n_grads += (size_t)(m.width * m.width + m.width);
    }
    ad_tensor *x;
    if (ad_tensor_create(&x, AD_F32, 2, sx, false) != AD_OK)
        return 1;
    fill(x, 1.0);

    char segments_name[32];
    snprintf(segments_name, sizeof segments_name, "segments_of_%ld", segment_layers);
    variant vs[3] = {{.name = "plain", .every = 0},
                     {.name = "per_layer", .every = 1},
                     {.name = segments_name, .every = (int)segment_layers}};
    for (int k = 0; k < 3; k++) {
        vs[k].segments = calloc((size_t)m.layers, sizeof *vs[k].segments);
        vs[k].ms = calloc((size_t)reps, sizeof *vs[k].ms);
        vs[k].grads = malloc(n_grads * sizeof *vs[k].grads);
        if (!vs[k].segments || !vs[k].ms || !vs[k].grads || ad_tape_create(&vs[k].tape) != AD_OK)
            return 1;
    }

    /* One step each, and their results bit for bit against the plain step's. */
    int status = 0;
    for (int k = 0; k < 3; k++) {
        vs[k].grads[0] = (float)step(&vs[k], &m, x);
        size_t at = 1;
        for (int l = 0; l < m.layers; l++) {
            const ad_tensor *g[2] = {ad_tensor_grad(m.w[l]), ad_tensor_grad(m.b[l])};
            for (int j = 0; j < 2; j++) {
                size_t n = (size_t)ad_tensor_numel(g[j]);
                memcpy(vs[k].grads + at, ad_tensor_data(g[j]), n * sizeof(float));
                at += n;
            }
        }
        if (k > 0 && memcmp(vs[k].grads, vs[0].grads, n_grads * sizeof(float)) != 0) {
            size_t i = 0;
            while (memcmp(&vs[k].grads[i], &vs[0].grads[i], sizeof(float)) == 0)
                i++;
            fprintf(stderr,
                    "checkpoint: %s differs from plain at value %zu of %zu (%.9g against %.9g)\n",
                    vs[k].name, i, n_grads, vs[k].grads[i], vs[0].grads[i]);
            status = 1;
        }
    }
    if (status)
        return status;

    /* Timing: the variants interleaved within each repetition. */
    for (long r = -warmup; r < reps; r++)
        for (int k = 0; k < 3; k++) {
            double t0 = bench_now();
            bench_sink = step(&vs[k], &m, x);
            if (r >= 0)
                vs[k].ms[r] = 1e3 * (bench_now() - t0);
        }

    fprintf(stderr, "checkpoint: %d layers of %lld, batch %ld, float32, %ld thread(s), %ld reps\n",
            m.layers, (long long)m.width, batch, threads, reps);
    double plain_ms = bench_median(vs[0].ms, (size_t)reps);
    for (int k = 0; k < 3; k++) {
        double ms = k ? bench_median(vs[k].ms, (size_t)reps) : plain_ms;
        double saving = (double)vs[0].peak / (double)vs[k].peak;
        fprintf(stderr,
                "  %-14s peak %8.2f MiB (%.2fx less), reserved %8.2f MiB, %8.3f ms/step "
                "(%.2fx plain)\n",
                vs[k].name, (double)vs[k].peak / 1048576.0, saving,
                (double)vs[k].reserved / 1048576.0, ms, ms / plain_ms);
        char name[96];
        snprintf(name, sizeof name, "checkpoint_%s_peak_tape_mib", vs[k].name);
        bench_emit(name, (double)vs[k].peak / 1048576.0, "MiB", (int)threads);
        snprintf(name, sizeof name, "checkpoint_%s_step_ms", vs[k].name);
        bench_emit(name, ms, "ms", (int)threads);
        if (k == 0)
            continue;
        snprintf(name, sizeof name, "checkpoint_%s_peak_saving", vs[k].name);
        bench_emit(name, saving, "x", (int)threads);
        snprintf(name, sizeof name, "checkpoint_%s_time_ratio", vs[k].name);
        bench_emit(name, ms / plain_ms, "x", (int)threads);
    }
    fprintf(stderr, "  gradients: bit-identical in all three\n");

    for (int k = 0; k < 3; k++) {
        ad_tape_free(vs[k].tape);
        free(vs[k].segments);
        free(vs[k].ms);
        free(vs[k].grads);
    }
    for (int l = 0; l < m.layers; l++) {
        ad_tensor_free(m.w[l]);
        ad_tensor_free(m.b[l]);
    }
    ad_tensor_free(x);
    return 0;
}
