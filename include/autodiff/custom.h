/*
 * libautodiff custom ops: your own differentiable op, with its own forward and
 * its own derivatives, used like a built-in op.
 *
 *     // y = x^3, with dy/dx = 3 x^2 written with library ops
 *     static ad_status cube_forward(ad_custom_ctx *c, ad_tensor *const *in, ad_tensor **out)
 *     {
 *         out[0] = ad_mul(in[0], ad_square(in[0]));
 *         return out[0] ? AD_OK : ad_tape_status(ad_custom_tape(c));
 *     }
 *     static ad_status cube_backward(ad_custom_ctx *c, ad_tensor *const *gout, ad_tensor **gin)
 *     {
 *         ad_tensor *x = ad_custom_input(c, 0);
 *         gin[0] = ad_mul(gout[0], ad_mul_scalar(ad_square(x), 3.0));
 *         return AD_OK;
 *     }
 *     ad_custom_op *cube;
 *     ad_custom_op_create(&cube, &(ad_custom_op_def){.name = "cube", .n_inputs = 1,
 *                         .n_outputs = 1, .forward = cube_forward, .backward = cube_backward});
 *     ad_tensor *y = ad_custom(cube, 1, &x, NULL);     // one node on x's tape
 *     ...
 *     ad_custom_op_free(cube);                         // after the tapes that used it
 *
 * The forward runs with recording off: it computes the outputs with library
 * ops (as above), or fills fresh tensors from ad_tape_tensor itself (raw
 * numbers). The backward returns the input gradients. Written with library
 * ops, it is recorded under create_graph, so second derivatives (Hessians,
 * gradgradcheck) follow with no more work. A backward that computes raw
 * numbers is first-order only: say so with AD_CUSTOM_FIRST_ORDER, and a
 * create_graph through the op then fails with AD_ERR_UNSUPPORTED naming it.
 * An optional jvp callback gives forward mode (ad_jvp, forward Jacobians);
 * without one, forward mode through the op is derived from its backward
 * (which must then not be first-order). ad_custom_op_check tests all of
 * them against finite differences. docs/custom-ops.md has the whole story.
 */
#ifndef AUTODIFF_CUSTOM_H
#define AUTODIFF_CUSTOM_H

#include "autodiff/autodiff.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One call of a custom op: its inputs, outputs, saved tensors and arguments.
 * Given to every callback; lives as long as the op's node (until the tape is
 * reset or freed). */
typedef struct ad_custom_ctx ad_custom_ctx;
/* A registered custom op. */
typedef struct ad_custom_op ad_custom_op;

enum {
    /* The backward computes raw numbers: no second derivatives through it. */
    AD_CUSTOM_FIRST_ORDER = 1
};

typedef struct ad_custom_op_def {
    /* Names the op in error messages and anomaly reports (copied). */
    const char *name;
    /* Number of inputs (-1: any number, at least 1) and of outputs (>= 1). */
    int n_inputs;
    int n_outputs;
    /*
     * Sets outputs[0..n_outputs) from inputs (tensors on the op's tape; a
     * persistent input arrives as a view of it). Runs with recording off.
     * Each output is any float tensor on the tape: a result of library ops,
     * an input itself, or a fresh ad_tape_tensor whose data you fill before
     * any op reads it. Returns AD_OK, or an error (record a message with
     * ad_tape_set_error(ad_custom_tape(ctx), ...)).
     */
    ad_status (*forward)(ad_custom_ctx *ctx, ad_tensor *const *inputs, ad_tensor **outputs);
    /*
     * Sets grad_inputs[i] = sum_j grad_outputs[j]^T d outputs[j] / d inputs[i],
     * of inputs[i]'s shape and dtype (AD_ERR_SHAPE otherwise), or leaves it
     * NULL for a zero gradient. grad_outputs are never NULL (zeros for an
     * output that received no gradient). Use ad_custom_input, ad_custom_output
     * and ad_custom_saved for what the forward had. Runs recorded under
     * create_graph; build the result with library ops so that it can be
     * differentiated again (or declare AD_CUSTOM_FIRST_ORDER).
     */
    ad_status (*backward)(ad_custom_ctx *ctx, ad_tensor *const *grad_outputs,
                          ad_tensor **grad_inputs);
    /*
     * Optional, for forward mode: sets tangent_outputs[j] = sum_i d outputs[j]
     * / d inputs[i] tangent_inputs[i] (outputs[j]'s shape and dtype; NULL for
     * zero), where a NULL tangent_inputs[i] is zero. Built with library ops.
     */
    ad_status (*jvp)(ad_custom_ctx *ctx, ad_tensor *const *tangent_inputs,
                     ad_tensor **tangent_outputs);
    /* AD_CUSTOM_FIRST_ORDER or 0. */
    unsigned flags;
    /* Passed to every call of this op: ad_custom_op_data(ctx). */
    void *data;
} ad_custom_op_def;

/*
 * Registers an op. The def is copied (the name too). Errors: AD_ERR_ARG (no
 * name, no forward or backward, a bad count or flag), AD_ERR_NOMEM.
 */
AD_API ad_status ad_custom_op_create(ad_custom_op **out, const ad_custom_op_def *def);
/* Frees the op; tapes that recorded it must be reset or freed first. Accepts NULL. */
AD_API void ad_custom_op_free(ad_custom_op *op);
/* The op's name. */
AD_API const char *ad_custom_op_name(const ad_custom_op *op);

/*
 * Applies op to inputs[0..n) and returns its outputs in outputs[0..n_outputs),
 * recorded when an input requires grad (and recording is on): one node for
 * the call and one per output. args is passed to the callbacks
 * (ad_custom_args) and must live as long as the node (until the tape is
 * reset); to keep values from the forward for the backward, use
 * ad_custom_save, or ad_custom_alloc and ad_custom_set_state. Returns the tape's status:
 * on error every output is NULL and the tape holds a message naming the op.
 * A NULL input (an earlier error) gives NULL outputs and changes nothing.
 */
AD_API ad_status ad_custom_apply(const ad_custom_op *op, size_t n, ad_tensor *const *inputs,
                                 void *args, ad_tensor **outputs);
/* The one-output form: the output, or NULL on error (AD_ERR_ARG for an op of several outputs). */
AD_API ad_tensor *ad_custom(const ad_custom_op *op, size_t n, ad_tensor *const *inputs, void *args);

/* ---- Inside a callback ---------------------------------------------------- */

/* The tape of the call. */
AD_API ad_tape *ad_custom_tape(const ad_custom_ctx *ctx);
/* The def's data, and the call's args. */
AD_API void *ad_custom_op_data(const ad_custom_ctx *ctx);
AD_API void *ad_custom_args(const ad_custom_ctx *ctx);
/* Number of inputs and outputs, input i, output i (NULL while the forward runs, or i out of range).
 */
AD_API size_t ad_custom_n_inputs(const ad_custom_ctx *ctx);
AD_API size_t ad_custom_n_outputs(const ad_custom_ctx *ctx);
AD_API ad_tensor *ad_custom_input(const ad_custom_ctx *ctx, size_t i);
AD_API ad_tensor *ad_custom_output(const ad_custom_ctx *ctx, size_t i);
/*
 * Keeps a tensor for the backward (from the forward): a tape tensor of the
 * call's tape, or a persistent tensor (kept as a view of its data). Saved
 * tensors are constants to second-order derivatives: to differentiate
 * through a value under create_graph, recompute it in the backward from
 * ad_custom_input / ad_custom_output. Returns AD_OK, AD_ERR_NULL, AD_ERR_TAPE,
 * AD_ERR_NOMEM.
 */
AD_API ad_status ad_custom_save(ad_custom_ctx *ctx, ad_tensor *t);
/* Saved tensor i (in the order saved), NULL if there is none. */
AD_API ad_tensor *ad_custom_saved(const ad_custom_ctx *ctx, size_t i);
/* size bytes (16-byte aligned) of the tape's arena that live as long as the node; NULL on error. */
AD_API void *ad_custom_alloc(ad_custom_ctx *ctx, size_t size);
/* A pointer the call keeps for its later callbacks (typically set in the
 * forward to memory from ad_custom_alloc, read in the backward); NULL until set. */
AD_API void ad_custom_set_state(ad_custom_ctx *ctx, void *state);
AD_API void *ad_custom_state(const ad_custom_ctx *ctx);

/* ---- Checking --------------------------------------------------------------- */

/*
 * Checks a custom op at a point in one call: its backward against central
 * finite differences (ad_gradcheck), its second derivatives (ad_gradgradcheck,
 * unless AD_CUSTOM_FIRST_ORDER), and its forward mode (ad_jvpcheck: the jvp
 * callback, or what is derived from the backward) on float64 copies of
 * inputs[0..n) (float32 inputs are converted: the op must accept float64),
 * with args passed to every call. Every output takes part:
 * the checks see the outputs flattened and joined into one vector. result
 * describes the worst element of the first check that failed (its message
 * says which check), or says all passed. Returns AD_OK when the
 * checks ran (see result->passed), or the error a callback or the engine
 * reported.
 */
AD_API ad_status ad_custom_op_check(const ad_custom_op *op, size_t n, ad_tensor *const *inputs,
                                    void *args, const ad_gradcheck_opts *opts,
                                    ad_gradcheck_result *result);

#ifdef __cplusplus
}
#endif

#endif
