/* Gradient-check cases, one table per op family (tests/cases_<family>.c),
 * run by tests/test_grad.c: each case is gradchecked and gradgradchecked in
 * float64, and every differentiable op in the op table must be named by at
 * least one case (the coverage test). */
#ifndef AD_GRAD_CASES_H
#define AD_GRAD_CASES_H

#include "autodiff/autodiff.h"

#define CASE_MAX_INPUTS 4

typedef struct grad_case {
    const char *op;   /* the op-table name this case covers ("mul") */
    const char *name; /* what is special about it ("broadcast [2,1,3] * [4,1]") */
    ad_function f;    /* builds the op from its inputs */
    void *ctx;        /* passed to f (static data: axes, indices, ...) */
    int n_inputs;
    int ndim[CASE_MAX_INPUTS];
    int64_t shape[CASE_MAX_INPUTS][AD_MAX_DIMS];
    double lo, hi;         /* inputs are uniform in [lo, hi); both 0 means [-1, 1) */
    double atol, rtol;     /* 0: gradcheck defaults */
    bool first_order_only; /* skip gradgradcheck (say why in name) */
} grad_case;

/* Each family file defines one table and its length. */
#define GRAD_CASE_TABLE(family)                                                                    \
    extern const grad_case cases_##family[];                                                       \
    extern const size_t n_cases_##family;

GRAD_CASE_TABLE(elementwise)
GRAD_CASE_TABLE(reduce)
GRAD_CASE_TABLE(linalg)
GRAD_CASE_TABLE(shape)
GRAD_CASE_TABLE(fused)
GRAD_CASE_TABLE(norm)
GRAD_CASE_TABLE(rnn)
GRAD_CASE_TABLE(conv)
GRAD_CASE_TABLE(custom)

#endif
