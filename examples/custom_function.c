/*
 * Writing your own differentiable function and checking its gradient.
 *
 * The function: the log-likelihood of a normal distribution with mean mu and
 * standard deviation sigma = exp(log_sigma) (the log keeps sigma positive
 * whatever value an optimiser tries), over a few data points x_i:
 *
 *     log L(mu, log_sigma) = sum_i [ -log_sigma - log(2 pi) / 2 - (x_i - mu)^2 / (2 sigma^2) ]
 *
 * It is written once, as an ad_function, with library ops only; libautodiff
 * supplies its gradient, its second derivatives, and the checks that both are
 * right (ad_gradcheck, ad_gradgradcheck). The closed forms are printed beside
 * them as a third opinion:
 *
 *     d/dmu        = sum_i (x_i - mu) / sigma^2
 *     d/dlog_sigma = -n + sum_i (x_i - mu)^2 / sigma^2
 *     d2/dmu2      = -n / sigma^2
 *
 * Exits 0 when every check passes, 1 otherwise (it runs as a test).
 */
#include "autodiff/autodiff.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define LOG_TWO_PI 1.8378770664093453 /* log(2 pi) */

/* The data: the function's ctx, so gradcheck can call it again and again. */
typedef struct sample {
    size_t n;
    const double *x;
} sample;

/* log L from inputs[0] = mu and inputs[1] = log_sigma (0-d float64 tensors).
 * The data become a constant [n] tensor; 0-d parameters broadcast over it. */
static ad_tensor *normal_log_likelihood(ad_tape *tape, size_t n_inputs, ad_tensor *const *inputs,
                                        void *ctx)
{
    const sample *data = ctx;
    if (n_inputs != 2) {
        ad_tape_set_error(tape, AD_ERR_ARG,
                          "normal_log_likelihood: %zu inputs (want mu, log_sigma)", n_inputs);
        return NULL;
    }
    ad_tensor *mu = inputs[0], *log_sigma = inputs[1];
    int64_t shape[1] = {(int64_t)data->n};
    ad_tensor *x = ad_tape_tensor_from_doubles(tape, AD_F64, 1, shape, data->x);

    ad_tensor *z = ad_div(ad_sub(x, mu), ad_exp(log_sigma));                /* [n] */
    ad_tensor *per_point = ad_sub(ad_neg(ad_mul_scalar(ad_square(z), 0.5)), /* [n] */
                                  ad_add_scalar(log_sigma, 0.5 * LOG_TWO_PI));
    return ad_sum_all(per_point); /* 0-d */
}

/* Prints a gradcheck outcome; returns true if it passed. */
static bool report(const char *what, ad_status status, const ad_gradcheck_result *r)
{
    if (status != AD_OK) {
        printf("  %-14s did not run: %s (%s)\n", what, ad_status_string(status), r->message);
        return false;
    }
    printf("  %-14s %s (worst error ratio %.3g; 1 is the limit)\n", what,
           r->passed ? "PASSED" : "FAILED", r->error);
    printf("                 %s\n", r->message);
    return r->passed;
}

int main(void)
{
    static const double points[] = {2.1, 1.3, 3.7, 2.9, 1.8, 2.4};
    sample data = {sizeof points / sizeof points[0], points};
    const double mu0 = 2.0, log_sigma0 = log(0.5);

    ad_tape *tape;
    if (ad_tape_create(&tape) != AD_OK) {
        fprintf(stderr, "custom_function: out of memory\n");
        return EXIT_FAILURE;
    }
    ad_tensor *params[2] = {ad_requires_grad(ad_scalar(tape, mu0)),
                            ad_requires_grad(ad_scalar(tape, log_sigma0))};
    ad_tensor *y = normal_log_likelihood(tape, 2, params, &data);

    /* First and second derivatives in d mu: ad_grad with create_graph records
     * the gradient, so it can be differentiated again. */
    ad_tensor *grad[2] = {NULL, NULL}, *second[1] = {NULL};
    ad_backward_opts keep = {.create_graph = true};
    ad_status status = ad_grad(1, &y, NULL, 2, params, grad, &keep);
    if (status == AD_OK)
        status = ad_grad(1, &grad[0], NULL, 1, &params[0], second, NULL);
    if (status != AD_OK) {
        fprintf(stderr, "custom_function: %s: %s\n", ad_status_string(status),
                ad_tape_message(tape));
        ad_tape_free(tape);
        return EXIT_FAILURE;
    }

    /* The closed forms. */
    double sigma = exp(log_sigma0), sum_d = 0, sum_d2 = 0;
    for (size_t i = 0; i < data.n; i++) {
        sum_d += points[i] - mu0;
        sum_d2 += (points[i] - mu0) * (points[i] - mu0);
    }
    double n = (double)data.n;
    double closed_value = -n * log_sigma0 - n * LOG_TWO_PI / 2 - sum_d2 / (2 * sigma * sigma);
    double closed[3] = {sum_d / (sigma * sigma), -n + sum_d2 / (sigma * sigma),
                        -n / (sigma * sigma)};
    double ours[3] = {ad_value(grad[0]), ad_value(grad[1]), ad_value(second[0])};

    printf("Normal log-likelihood of %zu points at mu = %.2f, sigma = %.2f\n", data.n, mu0, sigma);
    printf("  log L          = %.12f   (closed form %.12f)\n", ad_value(y), closed_value);
    static const char *const names[3] = {"d/dmu", "d/dlog_sigma", "d2/dmu2"};
    bool ok = fabs(ad_value(y) - closed_value) <= 1e-12 * fabs(closed_value);
    for (int k = 0; k < 3; k++) {
        printf("  %-14s = %.12f   (closed form %.12f)\n", names[k], ours[k], closed[k]);
        ok = ok && fabs(ours[k] - closed[k]) <= 1e-12 * fabs(closed[k]) + 1e-12;
    }
    if (!ok)
        printf("  the autodiff values disagree with the closed forms\n");

    /* The checks: analytic Jacobians against central finite differences,
     * with the default tolerances (atol 1e-5, rtol 1e-3, step 1e-6). */
    printf("\nChecks against finite differences\n");
    ad_gradcheck_result result;
    status = ad_gradcheck(normal_log_likelihood, &data, 2, params, NULL, &result);
    ok = report("gradcheck", status, &result) && ok;
    status = ad_gradgradcheck(normal_log_likelihood, &data, 2, params, 42, NULL, &result);
    ok = report("gradgradcheck", status, &result) && ok;

    ad_tape_free(tape);
    printf("\n%s\n", ok ? "All checks passed." : "A check FAILED.");
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
