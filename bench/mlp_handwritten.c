/*
 * The hand-written C limit: the same MLP training step as mlp_train.c, with
 * no library, written the way one would by hand: cblas_sgemm for the six
 * matrix products and plain loops for bias, ReLU, softmax cross-entropy and
 * SGD. Every buffer is allocated once, before timing. Shapes and timing:
 * bench/mlp_common.h.
 *
 * Usage: mlp_handwritten [--threads N] [--warmup W] [--steps S] [--reps R]
 */
#include "mlp_common.h"

#include <cblas.h>

enum { B = MLP_BATCH, IN = MLP_IN, H = MLP_HIDDEN, C = MLP_CLASSES };

typedef struct net {
    /* parameters and their gradients; W [out, in] as torch.nn.Linear */
    float w1[H * IN], b1[H], w2[H * H], b2[H], w3[C * H], b3[C];
    float dw1[H * IN], db1[H], dw2[H * H], db2[H], dw3[C * H], db3[C];
    /* activations and their gradients */
    float x[B * IN];            // x: (B, IN)
    float h1[B * H], h2[B * H]; // relu outputs: (B, H)
    float logits[B * C];        // (B, C), then overwritten by dlogits
    float dh[B * H];            // dL/dh2, then dL/dh1 (B, H)
    int targets[B];
} net;

// y: (rows, out) = x: (rows, in) W^T + b, W: (out, in)
static void linear(int rows, int in, int out, const float *x, const float *w, const float *b,
                   float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w, in, 0.0f, y,
                out);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < out; j++)
            y[i * out + j] += b[j];
}

static void relu(int n, float *y)
{
    for (int i = 0; i < n; i++)
        y[i] = y[i] > 0 ? y[i] : 0;
}

/* Mean cross-entropy over rows of logits (B, C); overwrites logits with
 * dL/dlogits = (softmax - onehot) / B. */
static double cross_entropy(float *logits, const int *targets)
{
    double loss = 0;
    for (int i = 0; i < B; i++) {
        float *row = logits + i * C;
        float max = row[0];
        for (int j = 1; j < C; j++)
            max = row[j] > max ? row[j] : max;
        float sum = 0;
        for (int j = 0; j < C; j++) {
            row[j] = expf(row[j] - max);
            sum += row[j];
        }
        loss += log((double)sum) - log((double)row[targets[i]]);
        for (int j = 0; j < C; j++)
            row[j] = row[j] / sum / B;
        row[targets[i]] -= 1.0f / B;
    }
    return loss / B;
}

/* Given dy (rows, out) of y = x W^T + b: dW = dy^T x, db = column sums of dy. */
static void linear_weight_grad(int rows, int in, int out, const float *dy, const float *x,
                               float *dw, float *db)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, dy, out, x, in, 0.0f,
                dw, in);
    for (int j = 0; j < out; j++)
        db[j] = 0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < out; j++)
            db[j] += dy[i * out + j];
}

/* dx (rows, in) = dy (rows, out) W (out, in), then times relu'(x) where x is
 * the layer input h (ReLU output: h > 0 exactly where the pre-activation was). */
static void linear_input_grad_relu(int rows, int in, int out, const float *dy, const float *w,
                                   const float *h, float *dx)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dy, out, w, in,
                0.0f, dx, in);
    for (int i = 0; i < rows * in; i++)
        dx[i] = h[i] > 0 ? dx[i] : 0;
}

static void sgd(int n, float *p, const float *g)
{
    const float lr = (float)MLP_LR;
    for (int i = 0; i < n; i++)
        p[i] -= lr * g[i];
}

static double train_step(void *ctx)
{
    net *m = ctx;
    linear(B, IN, H, m->x, m->w1, m->b1, m->h1);
    relu(B * H, m->h1);
    linear(B, H, H, m->h1, m->w2, m->b2, m->h2);
    relu(B * H, m->h2);
    linear(B, H, C, m->h2, m->w3, m->b3, m->logits);
    double loss = cross_entropy(m->logits, m->targets);
    float *dlogits = m->logits;

    /* dz2 needs w3 before its update; dz1 needs w2 before its update. */
    linear_weight_grad(B, H, C, dlogits, m->h2, m->dw3, m->db3);
    linear_input_grad_relu(B, H, C, dlogits, m->w3, m->h2, m->dh); /* dz2 */
    linear_weight_grad(B, H, H, m->dh, m->h1, m->dw2, m->db2);
    /* dz1 goes to h2's buffer, no longer needed. */
    linear_input_grad_relu(B, H, H, m->dh, m->w2, m->h1, m->h2);
    linear_weight_grad(B, IN, H, m->h2, m->x, m->dw1, m->db1);

    sgd(H * IN, m->w1, m->dw1);
    sgd(H, m->b1, m->db1);
    sgd(H * H, m->w2, m->dw2);
    sgd(H, m->b2, m->db2);
    sgd(C * H, m->w3, m->dw3);
    sgd(C, m->b3, m->db3);
    return loss;
}

/* torch.nn.Linear's default init: W and b uniform in +-1/sqrt(in). */
static void init_uniform(uint64_t *seed, int n, float *v, int in)
{
    double bound = 1.0 / sqrt((double)in);
    for (int i = 0; i < n; i++)
        v[i] = (float)((2 * mlp_uniform(seed) - 1) * bound);
}

int main(int argc, char **argv)
{
    mlp_options o = mlp_parse(argc, argv);
    openblas_set_num_threads(o.threads);

    net *m = calloc(1, sizeof *m);
    if (!m)
        return 1;
    uint64_t seed = 1;
    init_uniform(&seed, H * IN, m->w1, IN);
    init_uniform(&seed, H, m->b1, IN);
    init_uniform(&seed, H * H, m->w2, H);
    init_uniform(&seed, H, m->b2, H);
    init_uniform(&seed, C * H, m->w3, H);
    init_uniform(&seed, C, m->b3, H);
    seed = 2;
    for (int i = 0; i < B * IN; i++)
        m->x[i] = (float)mlp_uniform(&seed);
    for (int i = 0; i < B; i++)
        m->targets[i] = (int)(mlp_uniform(&seed) * C);

    mlp_time("mlp_handwritten", &o, train_step, m);
    free(m);
    return 0;
}
