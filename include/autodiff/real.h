/*
 * libautodiff fast scalars: a first-order recorder for code made of millions
 * of scalar operations (simulations, likelihoods, ODE steps written as loops).
 *
 * A 0-d tensor (ad_scalar) is the general way to differentiate scalar code:
 * it supports every op, mixing with tensors and higher-order gradients, but
 * each op costs a full tensor node (about 100 ns and a few hundred bytes of
 * tape, forward and backward). An ad_real is a value and a node number; each
 * op records 24 bytes on the tape (two local partial derivatives and the two
 * input numbers) and the reverse sweep adds an 8-byte adjoint per node: 32
 * bytes and a few nanoseconds per op. The price: first order only (no
 * create_graph), scalars only, and no mixing with tensors.
 *
 * The nodes live on an ordinary ad_tape, beside its tensors: ad_tape_reset
 * forgets them (keeping the memory), ad_tape_free frees them, no-grad mode
 * records nothing, and an out-of-memory error is the tape's sticky status.
 *
 *     ad_tape *tape;
 *     ad_tape_create(&tape);
 *     ad_real x = ad_real_var(tape, 3.0), y = ad_real_var(tape, 2.0);
 *     ad_real f = ad_real_add(tape, ad_real_mul(tape, x, y), ad_real_sin(tape, x));
 *     if (ad_real_backward(tape, f) == AD_OK)
 *         printf("f = %g, df/dx = %g\n", f.value, ad_real_grad(tape, x)); // y + cos x
 *     ad_tape_free(tape);
 *
 * Every op gives the same value and, at kinks and ties, the same derivative
 * as the tensor op of the same name (docs/ops.md).
 */
#ifndef AUTODIFF_REAL_H
#define AUTODIFF_REAL_H

#include "autodiff/autodiff.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A recorded scalar: its value, its node on the tape (0 for a constant) and a
 * tag naming the tape and its generation. Passed by value; valid until the
 * tape is reset or freed. An op given a node of another tape, or one kept
 * across ad_tape_reset, fails with AD_ERR_ARG on the tape (the tag tells it);
 * after ad_tape_free, using it is undefined.
 */
typedef struct ad_real {
    double value;
    uint32_t node;
    uint32_t tag;
} ad_real;

/* A constant: never recorded, its gradient is 0. */
static inline ad_real ad_real_const(double value)
{
    ad_real r = {value, 0, 0};
    return r;
}

/* An independent variable on tape (recorded unless grad is disabled). */
AD_API ad_real ad_real_var(ad_tape *tape, double value);

/* Binary ops. Derivatives (da, db): */
AD_API ad_real ad_real_add(ad_tape *tape, ad_real a, ad_real b); /* 1, 1 */
AD_API ad_real ad_real_sub(ad_tape *tape, ad_real a, ad_real b); /* 1, -1 */
AD_API ad_real ad_real_mul(ad_tape *tape, ad_real a, ad_real b); /* b, a */
AD_API ad_real ad_real_div(ad_tape *tape, ad_real a, ad_real b); /* 1/b, -a/b^2 */
/* b a^(b-1) (0 where b = 0), a^b log a (0 where a = 0 and b >= 0) */
AD_API ad_real ad_real_pow(ad_tape *tape, ad_real a, ad_real b);
/* the larger (smaller) gets 1, a tie gives 1/2 to each, a NaN 1 to each (PyTorch) */
AD_API ad_real ad_real_maximum(ad_tape *tape, ad_real a, ad_real b);
AD_API ad_real ad_real_minimum(ad_tape *tape, ad_real a, ad_real b);

/* Unary ops. Derivatives: */
AD_API ad_real ad_real_neg(ad_tape *tape, ad_real x);      /* -1 */
AD_API ad_real ad_real_exp(ad_tape *tape, ad_real x);      /* exp x */
AD_API ad_real ad_real_log(ad_tape *tape, ad_real x);      /* 1/x */
AD_API ad_real ad_real_log1p(ad_tape *tape, ad_real x);    /* 1/(1+x) */
AD_API ad_real ad_real_sqrt(ad_tape *tape, ad_real x);     /* 1/(2 sqrt x), inf at 0 */
AD_API ad_real ad_real_square(ad_tape *tape, ad_real x);   /* 2x */
AD_API ad_real ad_real_sin(ad_tape *tape, ad_real x);      /* cos x */
AD_API ad_real ad_real_cos(ad_tape *tape, ad_real x);      /* -sin x */
AD_API ad_real ad_real_tanh(ad_tape *tape, ad_real x);     /* 1 - tanh^2 x */
AD_API ad_real ad_real_sigmoid(ad_tape *tape, ad_real x);  /* s (1 - s) */
AD_API ad_real ad_real_relu(ad_tape *tape, ad_real x);     /* [not x <= 0]: 0 at 0, 1 at NaN */
AD_API ad_real ad_real_abs(ad_tape *tape, ad_real x);      /* sign x: 0 at 0 */
AD_API ad_real ad_real_softplus(ad_tape *tape, ad_real x); /* sigmoid x; 1 above 20 */
/* x^p: p x^(p-1), exactly 0 when p = 0 */
AD_API ad_real ad_real_pow_scalar(ad_tape *tape, ad_real x, double p);

/*
 * Reverse sweep from y: afterwards ad_real_grad(tape, x) is dy/dx for every
 * ad_real x recorded before y. Each call starts from zero (gradients of an
 * earlier call are replaced, not added to). Returns the tape's error if it
 * has one (AD_ERR_NOMEM when a node could not be recorded, AD_ERR_ARG when an
 * op was given a node of another tape or of an earlier generation), AD_ERR_NULL
 * for a NULL tape, AD_ERR_ARG for a y that is not on this tape (as after a
 * reset), else AD_OK. A constant y gives all gradients 0.
 */
AD_API ad_status ad_real_backward(ad_tape *tape, ad_real y);
/* dy/dx from the last ad_real_backward; 0 for constants, for nodes the
 * sweep did not reach, and after a sweep that returned an error; NaN for a
 * node of another tape or of this tape before a reset. */
AD_API double ad_real_grad(const ad_tape *tape, ad_real x);
/* Nodes recorded on the tape since its last reset (constants excluded). */
AD_API size_t ad_real_count(const ad_tape *tape);
/* Bytes the tape holds for real nodes and their adjoints (capacity). */
AD_API size_t ad_real_bytes(const ad_tape *tape);

#ifdef __cplusplus
}
#endif

#endif /* AUTODIFF_REAL_H */
