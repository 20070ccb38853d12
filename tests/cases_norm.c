/* Gradient-check cases for the normalisations (src/ops/norm.c): layer_norm is
 * an op-table row (the fused normalisation over the last k dims), which
 * group_norm also uses once reshaped; their affine weight and bias are
 * compositions. sum(layer_norm(x)) is 0 for every x, so the cases multiply
 * the result by weights, or by x itself, so that the backward sees a
 * gradient that varies along the normalised dims and the second derivative
 * crosses the op twice. */
#include "grad_cases.h"

#include <stddef.h>

typedef struct norm_ctx {
    int k;      /* normalised dims (layer_norm) or groups (group_norm) */
    double eps; /* 0 means 0 */
} norm_ctx;

/* layer_norm(x, k) * w */
static ad_tensor *f_layer_norm_weighted(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const norm_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_mul(ad_layer_norm(in[0], c->k, NULL, NULL, c->eps), in[1]);
}

/* layer_norm(x, k) * x */
static ad_tensor *f_layer_norm_times_input(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const norm_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_mul(ad_layer_norm(in[0], c->k, NULL, NULL, c->eps), in[0]);
}

/* layer_norm(x, k, weight, bias)^2: the affine parameters are inputs too. */
static ad_tensor *f_layer_norm_affine_squared(ad_tape *tape, size_t n, ad_tensor *const *in,
                                              void *ctx)
{
    const norm_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_square(ad_layer_norm(in[0], c->k, in[1], in[2], c->eps));
}

/* group_norm(x, groups, weight) * x */
static ad_tensor *f_group_norm_times_input(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const norm_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_mul(ad_group_norm(in[0], c->k, in[1], NULL, c->eps), in[0]);
}

static const norm_ctx last1 = {1, 1e-5}, last2 = {2, 1e-3}, last1_eps0 = {1, 0.0},
                      last3 = {3, 1e-5}, groups2 = {2, 1e-5};

// clang-format off
#define ONE(d0, ...) .n_inputs = 1, .ndim = {d0}, .shape = {{__VA_ARGS__}}
#define TWO(d0, s0, d1, s1) .n_inputs = 2, .ndim = {d0, d1}, .shape = {s0, s1}
#define THREE(d0, s0, d1, s1, d2, s2) .n_inputs = 3, .ndim = {d0, d1, d2}, .shape = {s0, s1, s2}
#define S(...) {__VA_ARGS__}

const grad_case cases_norm[] = {
    {.op = "layer_norm", .name = "[3,4] over the last dim, * w", .f = f_layer_norm_weighted,
     .ctx = (void *)&last1, TWO(2, S(3, 4), 2, S(3, 4))},
    {.op = "layer_norm", .name = "[2,3,4] over the last 2 dims, * w [3,4] broadcast",
     .f = f_layer_norm_weighted, .ctx = (void *)&last2, TWO(3, S(2, 3, 4), 2, S(3, 4))},
    {.op = "layer_norm", .name = "[2,5] over the last dim, * x", .f = f_layer_norm_times_input,
     .ctx = (void *)&last1, ONE(2, 2, 5)},
    {.op = "layer_norm", .name = "[2,5] with eps 0, * x", .f = f_layer_norm_times_input,
     .ctx = (void *)&last1_eps0, ONE(2, 2, 5)},
    {.op = "layer_norm", .name = "1-D [6] over all, * x", .f = f_layer_norm_times_input,
     .ctx = (void *)&last1, ONE(1, 6)},
    {.op = "layer_norm", .name = "[2,2,3] over all 3 dims, * x", .f = f_layer_norm_times_input,
     .ctx = (void *)&last3, ONE(3, 2, 2, 3)},
    {.op = "layer_norm", .name = "[5,16] (80 outputs) over the last dim, * x",
     .f = f_layer_norm_times_input, .ctx = (void *)&last1, ONE(2, 5, 16)},
    {.op = "layer_norm", .name = "[2,3,4] over 2 dims with weight and bias, squared",
     .f = f_layer_norm_affine_squared, .ctx = (void *)&last2,
     THREE(3, S(2, 3, 4), 2, S(3, 4), 2, S(3, 4))},
    {.op = "layer_norm", .name = "group_norm [2,4,3] in 2 groups with weight, * x",
     .f = f_group_norm_times_input, .ctx = (void *)&groups2, TWO(3, S(2, 4, 3), 1, S(4))},
};
// clang-format on

const size_t n_cases_norm = sizeof cases_norm / sizeof cases_norm[0];
