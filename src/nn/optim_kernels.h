/* Optimizer update rules over T (float or double), instantiated by kernels.h
 * from optim.c. The per-element arithmetic is in T, in torch.optim's order. */

#ifndef OPTIM_KERNELS_ONCE
#define OPTIM_KERNELS_ONCE
/* The square root in the element type: sqrtf keeps float32 steps in float,
 * as torch computes them. */
#define SQRT_T(x) _Generic((x), float : sqrtf, double : sqrt)(x)
#endif

// SGD: g = grad + wd p; buf = first ? g : mu buf + (1 - dampening) g;
//      g = nesterov ? g + mu buf : buf; p -= lr g
// p, grad, buf: (numel); buf is read only with momentum.
static void K(sgd_update)(int64_t numel, T *restrict p, const T *restrict grad, T *restrict buf,
                          const ad_sgd_config *c, bool first)
{
    const T lr = (T)c->lr, wd = (T)c->weight_decay, mu = (T)c->momentum;
    const T damp = (T)(1 - c->dampening);
    /* One loop per case, so each is branch-free and vectorises. */
    if (mu == 0) {
        for (int64_t i = 0; i < numel; i++)
            p[i] -= lr * (grad[i] + wd * p[i]);
    } else if (first) {
        for (int64_t i = 0; i < numel; i++) {
            T g = grad[i] + wd * p[i];
            buf[i] = g;
            p[i] -= lr * (c->nesterov ? g + mu * g : g);
        }
    } else if (c->nesterov) {
        for (int64_t i = 0; i < numel; i++) {
            T g = grad[i] + wd * p[i];
            buf[i] = mu * buf[i] + damp * g;
            p[i] -= lr * (g + mu * buf[i]);
        }
    } else {
        for (int64_t i = 0; i < numel; i++) {
            T g = grad[i] + wd * p[i];
            buf[i] = mu * buf[i] + damp * g;
            p[i] -= lr * buf[i];
        }
    }
}

// Adam(W): AdamW p *= 1 - lr wd (Adam: g += wd p); m = b1 m + (1-b1) g;
//          v = b2 v + (1-b2) g^2; p -= lr/bc1 m / (sqrt(v)/sqrt(bc2) + eps)
// in torch's order of operations (a division by sqrt(bc2), not a product with
// its inverse), so float64 steps match torch.optim bit for bit.
// p, grad, m, v: (numel); bc1, bc2: the bias corrections 1 - beta^step.
static void K(adam_update)(int64_t numel, T *restrict p, const T *restrict grad, T *restrict m,
                           T *restrict v, const ad_adam_config *c, bool decoupled, double bc1,
                           double bc2)
{
    const T b1 = (T)c->beta1, b2 = (T)c->beta2, eps = (T)c->eps;
    const T step_size = (T)(c->lr / bc1), sqrt_bc2 = (T)sqrt(bc2);
    const T wd = decoupled ? 0 : (T)c->weight_decay;
    const T shrink = decoupled ? (T)(1 - c->lr * c->weight_decay) : 1;
    for (int64_t i = 0; i < numel; i++) {
        T g = grad[i] + wd * p[i];
        p[i] *= shrink;
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        p[i] -= step_size * m[i] / (SQRT_T(v[i]) / sqrt_bc2 + eps);
    }
}

// x *= coef, with coef rounded to T first (as torch scales float32 gradients).
// x: (numel)
static void K(scale)(int64_t numel, T *restrict x, double coef)
{
    const T k = (T)coef;
    for (int64_t i = 0; i < numel; i++)
        x[i] *= k;
}
