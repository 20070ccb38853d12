/*
 * Training steps of two sequence models with libautodiff (sequence.h), the
 * way a user writes them; bench/torch_seq.py does the same work in PyTorch.
 *
 *   lstm:        nn.LSTM(128, 256), one layer, sequence first: x [64, 32, 128]
 *                (T, N, I), zero initial states.
 *   transformer: nn.TransformerEncoderLayer(d_model 128, nhead 4,
 *                dim_feedforward 512, dropout 0, batch_first, norm_first):
 *                x [16, 128, 128] (N, T, E), causal mask (a bool [T, T],
 *                true above the diagonal, as torch.triu(..., 1)).
 *
 * Both: float32, a linear head to SEQ_CLASSES classes at every position,
 * cross-entropy (mean) over all T N positions against fixed random classes,
 * and Adam with torch's defaults. One step is reset, forward, loss,
 * zero-grad, backward, Adam. The input is one fixed random batch and needs
 * no gradient.
 *
 * Timing as bench/mlp_common.h: --warmup steps, then --reps repetitions of
 * --steps steps; the figure is the median ms/step over repetitions. Figures
 * (JSON lines, bench_util.h): seq_ours_<model>_step_ms, _tokens_per_s,
 * _peak_rss_mib (VmHWM of the process), _tape_peak_mib (ad_tape_bytes_peak
 * of the last step: activations, gradients and nodes in the arena).
 *
 * The tape runs with checked mode 0 (ad_tape_set_checked), the default of
 * release builds: bench/run's build keeps asserts on, where the default of 1
 * would hold a second step's worth of arena for catching stale handles.
 *
 * Usage: seq_train [--model lstm|transformer] [--threads N] [--warmup W]
 *                  [--steps S] [--reps R]
 */
#include "bench_util.h"

#include "autodiff/sequence.h"

#include <math.h>

enum {
    SEQ_CLASSES = 64,
    LSTM_T = 64,
    LSTM_N = 32,
    LSTM_IN = 128,
    LSTM_HIDDEN = 256,
    TF_N = 16,
    TF_T = 128,
    TF_WIDTH = 128,
    TF_HEADS = 4,
    TF_FF = 512,
};

typedef struct options {
    bool transformer;
    int threads;
    long warmup, steps, reps;
} options;

typedef struct training {
    bool transformer;
    ad_module *model; /* a module dict: "body" (LSTM or encoder layer), "head" */
    ad_optim *opt;
    ad_tape *tape;
    ad_tensor *x;       /* persistent input */
    ad_tensor *targets; /* persistent int64 [T N] */
    int64_t t, n, width;
} training;

static uint64_t seed_state = 2;

/* Uniform in [0, 1), deterministic (splitmix64). */
static double uniform(void)
{
    uint64_t z = (seed_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static void fail(training *t, const char *what)
{
    fprintf(stderr, "seq_train: %s: %s\n", what,
            t->tape ? ad_tape_message(t->tape) : "setup failed");
    exit(1);
}

/* The body's output: [T, N, H] for the LSTM, [N, T, E] for the transformer. */
static ad_tensor *body_forward(training *t)
{
    ad_module *body = ad_module_child(t->model, 0);
    ad_tensor *y = NULL;
    if (t->transformer) {
        ad_tensor *mask = ad_causal_mask(t->tape, t->t, t->t);
        ad_nn_forward_n(body, t->tape, 2, (ad_tensor *[]){t->x, mask}, 1, &y);
    } else {
        ad_nn_forward_n(body, t->tape, 1, (ad_tensor *[]){t->x}, 1, &y);
    }
    return y;
}

static double train_step(training *t)
{
    ad_tape_reset(t->tape);
    ad_tensor *logits = ad_nn_forward(ad_module_child(t->model, 1), t->tape, body_forward(t));
    logits = ad_reshape(logits, 2, (int64_t[]){t->t * t->n, SEQ_CLASSES});
    ad_tensor *loss = ad_cross_entropy_tensor(logits, t->targets);
    ad_optim_zero_grad(t->opt);
    if (ad_backward(loss, NULL) != AD_OK)
        fail(t, "step");
    ad_optim_step(t->opt);
    return ad_value(loss);
}

/* The body module: the LSTM or the encoder layer. */
static ad_status make_body(ad_module **body, bool transformer, ad_rng *rng)
{
    if (transformer) {
        ad_transformer_config c = ad_transformer_defaults(TF_WIDTH, TF_HEADS);
        c.dim_feedforward = TF_FF;
        c.dropout = 0;
        c.batch_first = true;
        c.norm_first = true;
        return ad_nn_transformer_encoder_layer(body, &c, AD_F32, rng);
    }
    ad_rnn_config c = ad_rnn_defaults(AD_LSTM, LSTM_IN, LSTM_HIDDEN);
    return ad_nn_rnn(body, &c, AD_F32, rng);
}

static void setup(training *t, bool transformer)
{
    *t = (training){.transformer = transformer};
    t->t = transformer ? TF_T : LSTM_T;
    t->n = transformer ? TF_N : LSTM_N;
    t->width = transformer ? TF_WIDTH : LSTM_IN;
    int64_t features = transformer ? TF_WIDTH : LSTM_HIDDEN;
    int64_t x_shape[3] = {t->t, t->n, t->width};
    if (transformer) /* batch first */
        x_shape[0] = t->n, x_shape[1] = t->t;
    ad_rng rng;
    ad_rng_seed(&rng, 1);
    ad_module *children[2] = {NULL, NULL};
    ad_adam_config adam = ad_adam_defaults();
    if (make_body(&children[0], transformer, &rng) != AD_OK ||
        ad_nn_linear(&children[1], features, SEQ_CLASSES, true, AD_F32, &rng) != AD_OK ||
        ad_nn_module_dict(&t->model, 2, (const char *[]){"body", "head"}, children) != AD_OK ||
        ad_optim_adam(&t->opt, t->model, &adam) != AD_OK || ad_tape_create(&t->tape) != AD_OK ||
        ad_tape_set_checked(t->tape, 0) != AD_OK ||
        ad_tensor_create(&t->x, AD_F32, 3, x_shape, false) != AD_OK ||
        ad_tensor_create(&t->targets, AD_I64, 1, (int64_t[]){t->t * t->n}, false) != AD_OK)
        fail(t, "setup");
    float *x = ad_tensor_data(t->x);
    for (int64_t i = 0; i < t->t * t->n * t->width; i++)
        x[i] = (float)(2 * uniform() - 1);
    int64_t *y = ad_tensor_data(t->targets);
    for (int64_t i = 0; i < t->t * t->n; i++)
        y[i] = (int64_t)(uniform() * SEQ_CLASSES);
}

static options parse(int argc, char **argv)
{
    options o = {false, (int)bench_arg(argc, argv, "--threads", 1),
                 bench_arg(argc, argv, "--warmup", 3), bench_arg(argc, argv, "--steps", 5),
                 bench_arg(argc, argv, "--reps", 5)};
    bool model_ok = true;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--model") == 0) {
            o.transformer = strcmp(argv[i + 1], "transformer") == 0;
            model_ok = o.transformer || strcmp(argv[i + 1], "lstm") == 0;
        }
    if (!model_ok || o.threads < 1 || o.warmup < 0 || o.steps < 1 || o.reps < 1 || o.reps > 1000) {
        fprintf(stderr,
                "usage: %s [--model lstm|transformer] [--threads N] [--warmup W] [--steps S] "
                "[--reps R]\n",
                argv[0]);
        exit(2);
    }
    return o;
}

int main(int argc, char **argv)
{
    options o = parse(argc, argv);
    ad_set_num_threads(o.threads);
    training t;
    setup(&t, o.transformer);
    const char *model = o.transformer ? "transformer" : "lstm";

    double loss = 0, first_loss = 0;
    for (long i = 0; i < o.warmup; i++) {
        loss = train_step(&t);
        if (i == 0)
            first_loss = loss;
    }
    double *ms = calloc((size_t)o.reps, sizeof *ms);
    if (!ms)
        return 1;
    for (long r = 0; r < o.reps; r++) {
        double t0 = bench_now();
        for (long i = 0; i < o.steps; i++) {
            loss = train_step(&t);
            if (o.warmup == 0 && r == 0 && i == 0)
                first_loss = loss;
        }
        ms[r] = 1e3 * (bench_now() - t0) / (double)o.steps;
    }
    if (!isfinite(loss)) {
        fprintf(stderr, "seq_train: %s: loss is not finite\n", model);
        return 1;
    }
    double tape_peak = (double)ad_tape_bytes_peak(t.tape) / (1024.0 * 1024.0);
    double first_ms = ms[0], last_ms = ms[o.reps - 1];
    double median_ms = bench_median(ms, (size_t)o.reps);
    fprintf(stderr,
            "seq_ours_%s: %d thread(s): %.2f ms/step (first rep %.2f, last %.2f), loss %.4f -> "
            "%.4f, tape peak %.1f MiB\n",
            model, o.threads, median_ms, first_ms, last_ms, first_loss, loss, tape_peak);
    char name[96];
    snprintf(name, sizeof name, "seq_ours_%s_step_ms", model);
    bench_emit(name, median_ms, "ms", o.threads);
    snprintf(name, sizeof name, "seq_ours_%s_tokens_per_s", model);
    bench_emit(name, (double)(t.t * t.n) * 1e3 / median_ms, "tokens/s", o.threads);
    snprintf(name, sizeof name, "seq_ours_%s_peak_rss_mib", model);
    bench_emit(name, bench_peak_rss_mib(), "MiB", o.threads);
    snprintf(name, sizeof name, "seq_ours_%s_tape_peak_mib", model);
    bench_emit(name, tape_peak, "MiB", o.threads);

    free(ms);
    ad_tape_free(t.tape);
    ad_optim_free(t.opt);
    ad_nn_free(t.model);
    ad_tensor_free(t.x);
    ad_tensor_free(t.targets);
    return 0;
}
