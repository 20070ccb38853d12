/*
 * Custom ops: two ops of your own, used like built-in ones.
 *
 * 1. `log_cosh`, y = log(cosh x), a smooth L1-like loss. Computed naively,
 *    cosh overflows past |x| ~ 710 and the loss becomes inf; the forward here
 *    uses log cosh x = |x| + log1p(exp(-2|x|)) - log 2, and the derivative
 *    tanh x. Its backward is written with library ops, so second derivatives
 *    (here a Hessian) come for free.
 * 2. `pair_energy`, the energy of springs between points in the plane,
 *    E = sum over i < j of (|p_i - p_j| - 1)^2, written as plain C loops in
 *    both directions (a "physics kernel" with a known gradient). Its backward
 *    is raw numbers, so it is declared first-order; a jvp callback gives
 *    forward mode.
 *
 * Each op is checked against finite differences with ad_custom_op_check,
 * then used: gradient descent on the spring energy, and the Hessian of a
 * log-cosh loss. Exits non-zero if a check or a result is wrong.
 */
#include <autodiff/autodiff.h>
#include <autodiff/custom.h>

#include <math.h>
#include <stdio.h>

/* ---- log_cosh: ops both ways ------------------------------------------------ */

static ad_status log_cosh_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    ad_tensor *a = ad_abs(in[0]);
    ad_tensor *y = ad_add(a, ad_log1p(ad_exp(ad_mul_scalar(a, -2.0))));
    out[0] = ad_sub_scalar(y, log(2.0));
    return ad_tape_status(ad_custom_tape(c));
}

// dx = dy tanh x
static ad_status log_cosh_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
{
    gin[0] = ad_mul(gout[0], ad_tanh(ad_custom_input(c, 0)));
    return ad_tape_status(ad_custom_tape(c));
}

/* ---- pair_energy: raw numbers both ways ----------------------------------------- */

/* points [n, 2] in float64. */
static ad_status pair_energy_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
{
    const double *p = ad_tensor_data(in[0]);
    int64_t n = ad_tensor_dim(in[0], 0);
    double e = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double d = hypot(p[2 * i] - p[2 * j], p[2 * i + 1] - p[2 * j + 1]) - 1.0;
            e += d * d;
        }
    out[0] = ad_scalar(ad_custom_tape(c), e);
    return out[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

/* dE/dp_i = sum over j of 2 (r - 1) (p_i - p_j) / r, into grad [n, 2]. */
static void pair_energy_gradient(const double *p, int64_t n, double *grad)
{
    for (int64_t k = 0; k < 2 * n; k++)
        grad[k] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double dx = p[2 * i] - p[2 * j], dy = p[2 * i + 1] - p[2 * j + 1];
            double r = hypot(dx, dy), s = 2 * (r - 1) / r;
            grad[2 * i] += s * dx;
            grad[2 * i + 1] += s * dy;
            grad[2 * j] -= s * dx;
            grad[2 * j + 1] -= s * dy;
        }
}

// dp = dE scaled by the output's gradient (a 0-d tensor)
static ad_status pair_energy_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
{
    ad_tensor *x = ad_custom_input(c, 0);
    gin[0] = ad_tape_tensor(ad_custom_tape(c), AD_F64, 2, ad_tensor_shape(x), NULL);
    if (!gin[0])
        return ad_tape_status(ad_custom_tape(c));
    double *g = ad_tensor_data(gin[0]), scale = ad_value(gout[0]);
    pair_energy_gradient(ad_tensor_data(x), ad_tensor_dim(x, 0), g);
    for (int64_t k = 0; k < ad_tensor_numel(x); k++)
        g[k] *= scale;
    return AD_OK;
}

// dE = <dE/dp, dp>
static ad_status pair_energy_jvp(ad_custom_ctx *c, ad_tensor *const *t, ad_tensor **out)
{
    ad_tensor *x = ad_custom_input(c, 0);
    int64_t n = ad_tensor_dim(x, 0);
    double g[2 * 16], dot = 0;
    if (n > 16)
        return ad_tape_set_error(ad_custom_tape(c), AD_ERR_SHAPE, "pair_energy: at most 16 points");
    pair_energy_gradient(ad_tensor_data(x), n, g);
    const double *dp = ad_tensor_data(t[0]);
    for (int64_t k = 0; k < 2 * n; k++)
        dot += g[k] * dp[k];
    out[0] = ad_scalar(ad_custom_tape(c), dot);
    return out[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
}

/* ---- Using them ----------------------------------------------------------------- */

static int check(const ad_custom_op *op, ad_tensor *x)
{
    ad_gradcheck_result r;
    ad_status st = ad_custom_op_check(op, 1, &x, NULL, NULL, &r);
    printf("check %-12s %s\n", ad_custom_op_name(op), r.message);
    return st == AD_OK && r.passed ? 0 : 1;
}

int main(void)
{
    ad_custom_op *log_cosh, *energy;
    if (ad_custom_op_create(&log_cosh, &(ad_custom_op_def){.name = "log_cosh",
                                                           .n_inputs = 1,
                                                           .n_outputs = 1,
                                                           .forward = log_cosh_forward,
                                                           .backward = log_cosh_backward}) !=
            AD_OK ||
        ad_custom_op_create(&energy, &(ad_custom_op_def){.name = "pair_energy",
                                                         .n_inputs = 1,
                                                         .n_outputs = 1,
                                                         .forward = pair_energy_forward,
                                                         .backward = pair_energy_backward,
                                                         .jvp = pair_energy_jvp,
                                                         .flags = AD_CUSTOM_FIRST_ORDER}) != AD_OK)
        return 1;
    ad_tape *tape;
    if (ad_tape_create(&tape) != AD_OK)
        return 1;
    int failures = 0;

    /* 1. Both ops against finite differences. */
    double xs[4] = {-1.5, -0.2, 0.3, 2.0}, ps[8] = {0, 0, 0.3, 0.9, 1.2, 0.1, 0.7, -0.8};
    failures += check(log_cosh, ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){4}, xs));
    failures += check(energy, ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){4, 2}, ps));
    ad_tape_reset(tape);

    /* 2. Stable where the naive formula overflows: log cosh 1000 = 1000 - log 2. */
    ad_tensor *big = ad_requires_grad(ad_scalar(tape, 1000.0));
    ad_tensor *lc = ad_custom(log_cosh, 1, &big, NULL);
    if (ad_backward(lc, NULL) != AD_OK || fabs(ad_value(lc) - (1000.0 - log(2.0))) > 1e-9 ||
        ad_grad_value(big) != 1.0) {
        fprintf(stderr, "log_cosh(1000): %s\n", ad_tape_message(tape));
        failures++;
    }
    printf("log_cosh(1000) = %.6f, d/dx = %g\n", ad_value(lc), ad_grad_value(big));

    /* 3. Its Hessian: d^2/dx^2 sum log cosh x = diag(1 - tanh^2 x). */
    ad_tape_reset(tape);
    ad_tensor *x =
        ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 1, (int64_t[]){4}, xs));
    ad_tensor *loss = ad_sum_all(ad_custom(log_cosh, 1, &x, NULL)), *h = NULL;
    if (ad_hessian(loss, 1, &x, &h, AD_JACOBIAN_AUTO, NULL) != AD_OK) {
        fprintf(stderr, "hessian: %s\n", ad_tape_message(tape));
        return 1;
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double want = i == j ? 1 - tanh(xs[i]) * tanh(xs[i]) : 0;
            failures += fabs(ad_tensor_get(h, i * 4 + j) - want) > 1e-12;
        }
    printf("hessian diagonal: %.6f %.6f %.6f %.6f\n", ad_tensor_get(h, 0), ad_tensor_get(h, 5),
           ad_tensor_get(h, 10), ad_tensor_get(h, 15));

    /* 4. Gradient descent on the springs: four points settle as near unit
     * distances as they can (four points cannot all be 1 apart in a plane). */
    double points[8];
    for (int k = 0; k < 8; k++)
        points[k] = ps[k];
    double e0 = NAN, e = NAN;
    for (int step = 0; step < 200; step++) {
        ad_tape_reset(tape);
        ad_tensor *p = ad_requires_grad(
            ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){4, 2}, points));
        ad_tensor *energy_value = ad_custom(energy, 1, &p, NULL);
        if (ad_backward(energy_value, NULL) != AD_OK) {
            fprintf(stderr, "springs: %s\n", ad_tape_message(tape));
            return 1;
        }
        e = ad_value(energy_value);
        if (step == 0)
            e0 = e;
        for (int k = 0; k < 8; k++)
            points[k] -= 0.05 * ad_tensor_get(ad_tensor_grad(p), k);
    }
    printf("spring energy %.6f -> %.6f after 200 steps\n", e0, e);
    /* The optimum of 4 points in the plane is a square of side s with
     * E = 4 (s - 1)^2 + 2 (s sqrt 2 - 1)^2 least: s = (2 + sqrt 2) / 4,
     * E = 3 - 2 sqrt 2. */
    failures += !(fabs(e - (3 - 2 * sqrt(2.0))) < 1e-6);

    /* 5. First order only: create_graph through it is refused, naming it. */
    ad_tape_reset(tape);
    ad_tensor *p =
        ad_requires_grad(ad_tape_tensor_from_doubles(tape, AD_F64, 2, (int64_t[]){4, 2}, ps));
    ad_status st =
        ad_backward(ad_custom(energy, 1, &p, NULL), &(ad_backward_opts){.create_graph = true});
    printf("create_graph through pair_energy: %s (%s)\n", ad_status_string(st),
           ad_tape_message(tape));
    failures += st != AD_ERR_UNSUPPORTED;

    ad_tape_free(tape);
    ad_custom_op_free(log_cosh);
    ad_custom_op_free(energy);
    printf("%s\n", failures ? "FAILED" : "all results as expected");
    return failures ? 1 : 0;
}
