/*
 * libautodiff: reverse-mode automatic differentiation in C11.
 *
 * The model in one paragraph
 * --------------------------
 * A tape (ad_tape) records operations. Every op computes its value at once,
 * appends one node to the tape and returns a tensor handle. Creation order is a
 * topological order, so backward is a reverse loop over the tape. Tape tensors
 * live in the tape's arena: nobody frees them; they die together when the tape
 * is reset (ad_tape_reset, which keeps the memory for the next step) or freed.
 * Persistent tensors (parameters, data sets) are created with ad_tensor_create,
 * live outside any tape, survive resets and receive accumulated gradients; an
 * op that takes one records a light view of it on the tape of its other inputs.
 *
 * Errors
 * ------
 * Functions that are not ops return an ad_status. Op constructors return a
 * tensor handle, or NULL on error; the first error is kept on the tape (sticky,
 * like cairo) with a message that names the op and the shapes, and every later
 * op given NULL, or a tensor of an errored tape, returns NULL at once. Check
 * once, where convenient: ad_tape_status() and ad_tape_message(), or the status
 * returned by ad_backward(). The library never aborts, exits or prints.
 * An op needs a tape to record on: one whose inputs are all persistent
 * returns NULL and records AD_ERR_TAPE as the calling thread's error
 * (ad_thread_status, ad_thread_message), the one place for errors that have
 * no tape; wrap one input in ad_tape_use first.
 *
 * Ten lines
 * ---------
 *     ad_tape *tape;
 *     ad_tape_create(&tape);
 *     ad_tensor *x = ad_requires_grad(ad_scalar(tape, 3.0));
 *     ad_tensor *y = ad_add(ad_mul(x, x), ad_sin(x));        // y = x^2 + sin x
 *     if (ad_backward(y, NULL) == AD_OK)
 *         printf("dy/dx = %g\n", ad_grad_value(x));           // 2x + cos x
 *     else
 *         fprintf(stderr, "%s\n", ad_tape_message(tape));
 *     ad_tape_free(tape);
 *
 * Conventions follow PyTorch 1.13 (values, broadcasting, gradients at kinks and
 * ties); docs/ops.md lists every op with its gradient.
 */
#ifndef AUTODIFF_AUTODIFF_H
#define AUTODIFF_AUTODIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(AD_BUILDING_LIBRARY)
#define AD_API __declspec(dllexport)
#elif defined(AD_BUILDING_LIBRARY) && defined(__GNUC__)
#define AD_API __attribute__((visibility("default")))
#else
#define AD_API
#endif

/* Marks a name kept for one release after a rename (docs/names.md): using it
 * compiles, with a warning that names its replacement. */
#if defined(__GNUC__)
#define AD_DEPRECATED(replacement) __attribute__((deprecated("use " replacement)))
#else
#define AD_DEPRECATED(replacement)
#endif

/* Largest number of dimensions a tensor may have. */
#define AD_MAX_DIMS 8

/* ==== Status codes ======================================================== */

/* One list: the enum and the messages of ad_status_string come from it. */
#define AD_STATUS_LIST(X)                                                                          \
    X(AD_OK, "ok")                                                                                 \
    X(AD_ERR_NOMEM, "out of memory")                                                               \
    X(AD_ERR_SHAPE, "shape mismatch")                                                              \
    X(AD_ERR_DTYPE, "dtype mismatch")                                                              \
    X(AD_ERR_AXIS, "bad axis")                                                                     \
    X(AD_ERR_ARG, "bad argument")                                                                  \
    X(AD_ERR_NULL, "NULL tensor (an earlier op failed)")                                           \
    X(AD_ERR_TAPE, "tensors from different tapes, or no tape")                                     \
    X(AD_ERR_NO_GRAD, "tensor does not require grad")                                              \
    X(AD_ERR_FREED, "graph already freed")                                                         \
    X(AD_ERR_UNSUPPORTED, "not supported")                                                         \
    X(AD_ERR_IO, "input/output error")                                                             \
    X(AD_ERR_FORMAT, "malformed file")                                                             \
    X(AD_ERR_NONFINITE, "NaN or infinity found (anomaly mode)")

typedef enum {
#define AD_STATUS_ENUM(code, text) code,
    AD_STATUS_LIST(AD_STATUS_ENUM)
#undef AD_STATUS_ENUM
} ad_status;

/* A static string describing the code ("shape mismatch"); never NULL. */
AD_API const char *ad_status_string(ad_status status);

/* ==== Types =============================================================== */

/*
 * Element types. float32 and float64 are the differentiable ones. int64
 * (int64_t elements) and bool (one byte, 0 or 1) hold indices, masks and the
 * results of comparisons: they never require grad, their results are never
 * recorded, and a float op given one fails with AD_ERR_DTYPE (convert with
 * ad_cast). Ops that take them say so.
 */
typedef enum { AD_F32 = 0, AD_F64 = 1, AD_I64 = 2, AD_BOOL = 3 } ad_dtype;

typedef struct ad_tape ad_tape;
typedef struct ad_tensor ad_tensor;

/*
 * A differentiable function of n tensors (ad_gradcheck, ad_checkpoint): it must build its
 * result from inputs with ops on `tape` and return it (NULL on error).
 */
typedef ad_tensor *(*ad_function)(ad_tape *tape, size_t n, ad_tensor *const *inputs, void *ctx);

/* Size in bytes of one element of the dtype (4, 8, 8 or 1); 0 for a value
 * that is not an ad_dtype. */
AD_API size_t ad_dtype_size(ad_dtype dtype);
/* "float32", "float64", "int64" or "bool" ("unknown" otherwise). */
AD_API const char *ad_dtype_name(ad_dtype dtype);

/*
 * Memory comes from an allocator given per object, so tests can count
 * allocations and inject failures. A NULL allocator means the process-wide
 * one (below), which is malloc/free unless set. alloc(size, ctx) returns
 * memory aligned as malloc's, or NULL on failure; free(ptr, ctx) accepts NULL.
 */
typedef struct ad_allocator {
    void *(*alloc)(size_t size, void *ctx);
    void (*free)(void *ptr, void *ctx);
    void *ctx;
} ad_allocator;

/*
 * The process-wide allocator: every allocation of the library that is not
 * given an allocator of its own (a tape's, a persistent tensor's) goes
 * through it: modules, layers, optimizers, safetensors files, data sets,
 * gradient checks, custom ops (the thread pool allocates nothing). A tape or
 * persistent tensor made without an allocator takes this one and keeps it.
 * NULL restores malloc/free. The allocator is copied (ctx must outlive what
 * it allocates). Set it before anything is allocated with it, and keep it
 * until all of that is freed: tapes and persistent tensors return memory to
 * the allocator they were made with, everything else to the current one, so
 * change it only while nothing else allocated by the old one is alive. Not
 * for use while other threads call the library. docs/memory.md has a table.
 */
AD_API void ad_set_allocator(const ad_allocator *allocator);
/* The current process-wide allocator (a copy; alloc and free NULL for malloc/free). */
AD_API ad_allocator ad_get_allocator(void);

/*
 * Threads for the heavy kernels: matrix products (through BLAS) and large
 * elementwise ops (a pool of our own, started on first use, that allocates
 * nothing per op). n is clamped to 1..64; the default is 1 for our loops,
 * while BLAS keeps its own default until this is called. Process-wide, like
 * the BLAS's own setting: call it before training starts, not while ops run
 * in other threads. Tapes used from several user threads at once share the
 * pool: one op at a time gets it, the others run alone. The pool's threads
 * are stopped and joined at exit (or when the shared library is unloaded);
 * a forked child starts threads of its own.
 * Reproducibility: the same program on the same inputs gives the same bits
 * run after run at a given thread count, and our own kernels give the same
 * bits at every thread count; matrix products through OpenBLAS may differ
 * in the last bits between thread counts (it splits its sums differently).
 * docs/design.md ("Threads") has every threading rule.
 */
AD_API void ad_set_num_threads(int n);
/* The current thread count for heavy kernels. */
AD_API int ad_num_threads(void);

/* ==== Tapes =============================================================== */

/* Creates an empty tape. Returns AD_OK or AD_ERR_NOMEM; *out is NULL on error. */
AD_API ad_status ad_tape_create(ad_tape **out);
/* As ad_tape_create, with an allocator (copied; NULL means the process-wide one). */
AD_API ad_status ad_tape_create_with(ad_tape **out, const ad_allocator *allocator);
/* Frees the tape and every tensor on it. Accepts NULL. */
AD_API void ad_tape_free(ad_tape *tape);
/*
 * Forgets every tensor on the tape and clears its error, keeping the memory for
 * reuse: once a step has run (one per chain in checked mode, below), later
 * steps of the same size allocate nothing.
 * Handles of the old tensors become stale; persistent tensors are untouched.
 * A stale handle given to an op, to backward or to an accessor is an error
 * (AD_ERR_FREED; accessors give NaN or NULL) as long as its memory has not
 * been reused: checked mode (below) makes sure of that for the last few
 * generations. Using a handle after ad_tape_free, or older than checked mode
 * keeps, is undefined.
 */
AD_API void ad_tape_reset(ad_tape *tape);
/*
 * Checked mode: the memory of the last `generations` generations (0 to 7)
 * is not reused, so handles kept across that many resets are always caught
 * as stale. Costs memory, not time: the tape holds generations + 1 step's
 * worth of arena instead of one (it still allocates nothing in a steady
 * state once each chain has grown). Takes effect at the next reset. The
 * default is 1 in builds with assertions (no NDEBUG, as Meson's debug and
 * debugoptimized builds) and 0 in release builds; anomaly mode uses at least
 * 1. Returns AD_OK, AD_ERR_NULL, AD_ERR_ARG.
 */
AD_API ad_status ad_tape_set_checked(ad_tape *tape, int generations);
AD_API int ad_tape_checked(const ad_tape *tape);
/* The first error recorded on the tape, or AD_OK. */
AD_API ad_status ad_tape_status(const ad_tape *tape);
/* A message naming the op and shapes of the first error ("" when none). */
AD_API const char *ad_tape_message(const ad_tape *tape);
/*
 * Records an error on the tape, as an op would (the first error wins), so
 * user-written layers and functions can report bad input the same way:
 * printf-style message, which should name the function and the shapes.
 * A NULL tape records it as the thread's error (ad_thread_status); AD_OK
 * records nothing. Returns code.
 */
AD_API ad_status ad_tape_set_error(ad_tape *tape, ad_status code, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Writes a shape as "[2,3]" into buf (size bytes) and returns buf; "NULL" for a
 * NULL shape with ndim > 0. */
AD_API const char *ad_shape_string(char *buf, size_t size, int ndim, const int64_t *shape);
/* Clears the sticky error so the tape can be used again. */
AD_API void ad_tape_clear_error(ad_tape *tape);
/*
 * Errors that no tape can hold: an op whose inputs are all persistent
 * tensors, or ad_tape_set_error with a NULL tape. Sticky per thread like a
 * tape's status (the first error stays until cleared): check it when an op
 * returned NULL and its tape's status is AD_OK.
 */
AD_API ad_status ad_thread_status(void);
AD_API const char *ad_thread_message(void); /* "" when none */
AD_API void ad_thread_clear_error(void);
/*
 * Turns recording on or off (no-grad mode) and returns the previous setting.
 * With recording off, ops compute values only: results do not require grad.
 */
AD_API bool ad_tape_set_grad_enabled(ad_tape *tape, bool enabled);
AD_API bool ad_tape_grad_enabled(const ad_tape *tape);
/* Number of recorded nodes (tensors that require grad) on the tape. */
AD_API size_t ad_tape_node_count(const ad_tape *tape);
/* Bytes of arena in use, and bytes of arena reserved. */
AD_API size_t ad_tape_bytes_used(const ad_tape *tape);
AD_API size_t ad_tape_bytes_reserved(const ad_tape *tape);
/* The most arena bytes in use at any moment since the tape was created or
 * last reset: the tape's peak memory for a step (ad_checkpoint lowers it). */
AD_API size_t ad_tape_bytes_peak(const ad_tape *tape);

/*
 * Anomaly mode (off by default; when off it costs one branch per op). With it
 * on, every op checks its result and every backward rule the gradients it
 * returns: the first NaN or infinity stops the tape with AD_ERR_NONFINITE and
 * a message naming the op, its shapes, "forward" or "backward", and where the
 * node was made (below). The checks cost a pass over each value: use it to
 * find a bug, not in production. Also turns off the in-place accumulation of
 * weight gradients (ad_backward), so that every gradient passes the check.
 * Returns the previous setting.
 */
AD_API bool ad_tape_set_anomaly(ad_tape *tape, bool enabled);
AD_API bool ad_tape_anomaly(const ad_tape *tape);
/*
 * Provenance for anomaly mode: nodes recorded from now on carry this source
 * location and label (each may be NULL). The strings are not copied: use
 * string literals (AD_HERE passes __FILE__). Recording a location costs
 * nothing when anomaly mode is off.
 */
AD_API void ad_tape_set_location(ad_tape *tape, const char *file, int line);
AD_API void ad_tape_set_label(ad_tape *tape, const char *label);
/* Marks the next ops on tape with this source line: AD_HERE(tape); y = ad_log(x); */
#define AD_HERE(tape) ad_tape_set_location((tape), __FILE__, __LINE__)
/*
 * Where a recorded node was made, as set by ad_tape_set_location and
 * ad_tape_set_label while anomaly mode was on: writes "file:line label" (or
 * what of it is known, "" when nothing is) into buf and returns buf.
 */
AD_API const char *ad_tensor_provenance(const ad_tensor *t, char *buf, size_t size);

/* ==== Tensors: creation and access ======================================== */

/*
 * A tape tensor of the given shape (ndim 0..AD_MAX_DIMS; a 0-d tensor is a
 * scalar). data, if not NULL, holds numel elements of the dtype and is copied;
 * NULL gives zeros. Does not require grad until ad_requires_grad().
 */
AD_API ad_tensor *ad_tape_tensor(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape,
                                 const void *data);
/* A tape tensor filled with value. */
AD_API ad_tensor *ad_full(ad_tape *tape, ad_dtype dtype, int ndim, const int64_t *shape,
                          double value);
/* A tape tensor of doubles converted to dtype (copied). */
AD_API ad_tensor *ad_tape_tensor_from_doubles(ad_tape *tape, ad_dtype dtype, int ndim,
                                              const int64_t *shape, const double *values);
/* A float64 0-d tensor (scalar) on the tape. */
AD_API ad_tensor *ad_scalar(ad_tape *tape, double value);
/* A 0-d tensor of the given dtype. */
AD_API ad_tensor *ad_scalar_of(ad_tape *tape, ad_dtype dtype, double value);
/* zeros/ones with the shape and dtype of t, on t's tape (or tape, for a persistent t). */
AD_API ad_tensor *ad_zeros_like(ad_tape *tape, const ad_tensor *t);
AD_API ad_tensor *ad_ones_like(ad_tape *tape, const ad_tensor *t);

/*
 * t as a tensor on tape: a tape tensor of this tape is returned as it is; a
 * persistent tensor gets a view that shares its data (recorded when it
 * requires grad, so backward reaches its gradient). Ops do this on their own
 * when another input is on a tape; call it when every input is persistent.
 */
AD_API ad_tensor *ad_tape_use(ad_tape *tape, ad_tensor *t);

/*
 * Marks a tape tensor as a leaf that requires grad: backward accumulates into
 * its gradient (ad_tensor_grad). Returns t (NULL passes through). A tensor that
 * does not require grad (created, or computed from constants) becomes a leaf;
 * one that already requires grad is returned as it is. Only float tensors can
 * require grad: an int64 or bool one gives NULL and AD_ERR_DTYPE on its tape.
 */
AD_API ad_tensor *ad_requires_grad(ad_tensor *t);

/*
 * A persistent tensor: heap memory of its own, outside every tape, zeros.
 * With requires_grad, it also owns a gradient of the same shape (zeros) into
 * which ad_backward accumulates. Free it with ad_tensor_free, after every tape
 * that used it is reset or freed. Returns AD_OK, AD_ERR_NOMEM, AD_ERR_SHAPE,
 * AD_ERR_DTYPE (an unknown dtype, or requires_grad for int64 or bool).
 */
AD_API ad_status ad_tensor_create(ad_tensor **out, ad_dtype dtype, int ndim, const int64_t *shape,
                                  bool requires_grad);
/* As ad_tensor_create, with an allocator (copied). */
AD_API ad_status ad_tensor_create_with(ad_tensor **out, ad_dtype dtype, int ndim,
                                       const int64_t *shape, bool requires_grad,
                                       const ad_allocator *allocator);
/*
 * Freezes (false) or unfreezes (true) a persistent tensor, as torch's
 * requires_grad_: a frozen tensor enters tapes as a constant, gets no
 * gradient, and optimizers skip it. Its gradient buffer is kept (a later
 * unfreeze allocates nothing) or, when it had none, allocated (zeros).
 * Returns AD_OK, AD_ERR_ARG (NULL or a tape tensor: use ad_requires_grad),
 * AD_ERR_NOMEM. Do not call it while a tape that uses t is recording.
 */
AD_API ad_status ad_tensor_set_requires_grad(ad_tensor *t, bool requires_grad);
/*
 * Frees a persistent tensor and its gradient. Accepts NULL, and does nothing
 * for a tape tensor or a tensor already freed (the library keeps a set of
 * the live persistent tensors). Any other use of a freed tensor is undefined.
 */
AD_API void ad_tensor_free(ad_tensor *t);

AD_API ad_dtype ad_tensor_dtype(const ad_tensor *t);
AD_API int ad_tensor_ndim(const ad_tensor *t);
/* The shape (ndim entries; may be NULL for a 0-d tensor). Lives as long as t. */
AD_API const int64_t *ad_tensor_shape(const ad_tensor *t);
AD_API int64_t ad_tensor_dim(const ad_tensor *t, int axis); /* negative axes count from the end */
AD_API int64_t ad_tensor_numel(const ad_tensor *t);
/*
 * The contiguous row-major elements. Tape tensors are read-only (other nodes
 * may share them); a persistent tensor's data may be written between steps.
 */
AD_API void *ad_tensor_data(const ad_tensor *t);
/* The tape the tensor lives on, or NULL for a persistent tensor. */
AD_API ad_tape *ad_tensor_tape(const ad_tensor *t);
/* True if gradients flow to or through t. */
AD_API bool ad_tensor_requires_grad(const ad_tensor *t);
/*
 * The accumulated gradient of a leaf (a persistent tensor that requires grad,
 * or a tape leaf after ad_backward), or NULL if there is none yet.
 */
AD_API ad_tensor *ad_tensor_grad(const ad_tensor *t);
/* Sets the stored gradient of a leaf to zero (tape leaf: forgets it). */
AD_API void ad_zero_grad(ad_tensor *t);

/* Element i (row-major flat index) as a double (an int64 beyond 2^53 is
 * rounded; a bool is 0 or 1); NaN if t is NULL or i is out of range. */
AD_API double ad_tensor_get(const ad_tensor *t, int64_t i);
/* Writes element i of a persistent tensor, converted as ad_cast converts: an
 * int64 element gets value truncated toward 0 (INT64_MIN for NaN, infinities
 * and values out of range), a bool one value != 0. Returns AD_ERR_ARG for tape
 * tensors or bad i. */
AD_API ad_status ad_tensor_set(ad_tensor *t, int64_t i, double value);
/* Copies all elements as doubles into out[numel]. */
AD_API ad_status ad_tensor_copy_to_doubles(const ad_tensor *t, double *out);
/* Copies numel doubles into a persistent tensor. */
AD_API ad_status ad_tensor_copy_from_doubles(ad_tensor *t, const double *values);
/*
 * Copies src's elements (any tensor: a tape tensor, or persistent) into the
 * persistent tensor dst of the same dtype and shape, so a value outlives its
 * tape: a recurrent state carried across ad_tape_reset, for truncated
 * backpropagation through time. No gradient flows. AD_ERR_NULL, AD_ERR_FREED
 * (a stale handle), AD_ERR_ARG (dst on a tape), AD_ERR_DTYPE, AD_ERR_SHAPE.
 */
AD_API ad_status ad_tensor_assign(ad_tensor *dst, const ad_tensor *src);

/* Scalar convenience: the first element, and the first element of the gradient (NaN if none). */
AD_API double ad_value(const ad_tensor *t);
AD_API double ad_grad_value(const ad_tensor *t);

/* ==== Backward ============================================================ */

typedef struct ad_backward_opts {
    /* Seed gradient dL/dy for the output (shape and dtype of the output).
     * NULL means 1, which is allowed only for an output of one element. */
    ad_tensor *seed;
    /* Record the backward pass so its gradients can be differentiated again.
     * Implies retain_graph. */
    bool create_graph;
    /* Keep the graph for another backward through it (PyTorch's retain_graph). */
    bool retain_graph;
} ad_backward_opts;

/*
 * Backpropagates from output y (opts may be NULL) and accumulates into leaf
 * gradients: persistent tensors' gradient buffers (added in place) and tape
 * leaves' ad_tensor_grad. Without retain_graph the graph behind y is marked
 * freed, and a second backward through it returns AD_ERR_FREED.
 * Errors: AD_ERR_NULL (y is NULL: an earlier op failed; the tape message says
 * which), AD_ERR_NO_GRAD, AD_ERR_SHAPE (non-scalar y without seed), AD_ERR_FREED,
 * AD_ERR_NOMEM. As in PyTorch, a weight's matmul gradient is added into its
 * buffer during the sweep (one GEMM with beta = 1), so after an error midway
 * a persistent gradient may hold part of this backward's contributions.
 */
AD_API ad_status ad_backward(ad_tensor *y, const ad_backward_opts *opts);

/*
 * Functional gradients: grads[i] = sum over outputs j of seeds[j]^T d outputs[j]
 * / d inputs[i], returned as new tensors on the outputs' tape, without touching
 * stored gradients. seeds may be NULL (all outputs must then have one element);
 * opts->seed is ignored. An input that does not affect the outputs gets zeros.
 * With opts->create_graph the gradients are recorded and can be differentiated
 * again (Hessian-vector products, gradient penalties).
 */
AD_API ad_status ad_grad(size_t n_outputs, ad_tensor *const *outputs, ad_tensor *const *seeds,
                         size_t n_inputs, ad_tensor *const *inputs, ad_tensor **grads,
                         const ad_backward_opts *opts);

/* ==== Gradient hooks ====================================================== */
/*
 * A hook sees a gradient during a backward pass. Ids are unique in the process;
 * a hook ends when removed, or (tape tensors) when its tape is reset or freed.
 *
 * Order of calls: the reverse sweep reaches tensors in reverse creation order;
 * at each one, once its gradient is complete (every use has contributed) and
 * before it flows to the tensor's inputs or into a leaf's stored gradient,
 * its gradient hooks run in registration order, each given the gradient the
 * one before returned. Accumulate hooks of a persistent tensor run (in
 * registration order) once its gradient buffer holds every contribution of
 * this ad_backward, in the order the sweep passes the tensor's first use.
 */
typedef uint64_t ad_hook_id;
/*
 * A gradient hook: called with the complete gradient `grad` of t. Return
 * NULL to keep grad unchanged, or a tensor of grad's shape and dtype to use
 * instead (build it with ops: under create_graph it is recorded). To stop the
 * backward, record an error with ad_tape_set_error and return NULL.
 */
typedef ad_tensor *(*ad_grad_hook)(ad_tensor *t, ad_tensor *grad, void *ctx);
/* An accumulate hook: param's gradient buffer now holds this backward's sum. */
typedef void (*ad_accumulate_hook)(ad_tensor *param, void *ctx);

/*
 * Registers a gradient hook on a tape tensor that requires grad (runs in
 * ad_backward, ad_grad and the transforms). *id (may be NULL) receives its id.
 * Errors: AD_ERR_NULL, AD_ERR_ARG (fn NULL, or a persistent tensor: use an
 * accumulate hook), AD_ERR_NO_GRAD (t does not require grad), AD_ERR_NOMEM.
 * A hook that cannot be registered leaves the tape as it was: the message is
 * the thread's (ad_thread_message), as for every hook function below.
 */
AD_API ad_status ad_tensor_register_hook(ad_tensor *t, ad_grad_hook fn, void *ctx, ad_hook_id *id);
/*
 * Registers an accumulate hook on a persistent tensor that requires grad,
 * as torch's register_post_accumulate_grad_hook (ad_backward only: ad_grad
 * stores nothing). Errors: AD_ERR_NULL, AD_ERR_ARG (fn NULL, or a tape
 * tensor), AD_ERR_NO_GRAD, AD_ERR_NOMEM (heap, from t's allocator).
 */
AD_API ad_status ad_tensor_register_accumulate_hook(ad_tensor *t, ad_accumulate_hook fn, void *ctx,
                                                    ad_hook_id *id);
/* Removes hook id from t (either kind). AD_ERR_ARG if t has no such hook. */
AD_API ad_status ad_tensor_remove_hook(ad_tensor *t, ad_hook_id id);

/* ==== Activation checkpointing ============================================ */

/*
 * Runs f(tape, n, inputs, ctx) without keeping its intermediate tensors and
 * returns its result; during backward f runs again, recorded, to get the
 * gradients. Memory for the forward falls from all of f's intermediates to
 * its result; backward pays one more forward of f. Gradients are those
 * without checkpointing, bit for bit, as are values.
 * f must compute the same thing both times (no random numbers drawn inside
 * unless re-seeded, no reading of state that changes in between), and may use
 * persistent tensors (parameters: their gradients flow) and the given inputs,
 * but no other tape tensor: one it reaches by other means is a constant for
 * the forward, and backward stops with AD_ERR_ARG when it finds one. Handles
 * to f's intermediates die when it returns. Works with create_graph (the
 * recomputation is then kept), in no-grad mode (f just runs), and nests.
 * Returns NULL on error (on the tape).
 */
AD_API ad_tensor *ad_checkpoint(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs);

/* ==== Functional transforms =============================================== */
/*
 * Each works on a graph already recorded on a tape, from `inputs` (tensors
 * that require grad: leaves, intermediate tensors, or persistent tensors) to
 * `outputs`, returns new tensors on the outputs' tape, never touches stored
 * gradients, and leaves the graph usable (as retain_graph). With
 * opts->create_graph (opts may be NULL) the results are recorded and can be
 * differentiated again, by any transform. An input that does not affect an
 * output gives zeros.
 */

/*
 * Vector-Jacobian product (reverse mode): grads[i] = sum_j v[j]^T d outputs[j]
 * / d inputs[i]. The same as ad_grad with seeds v; one reverse sweep.
 */
AD_API ad_status ad_vjp(size_t n_outputs, ad_tensor *const *outputs, ad_tensor *const *v,
                        size_t n_inputs, ad_tensor *const *inputs, ad_tensor **grads,
                        const ad_backward_opts *opts);
/*
 * Jacobian-vector product (forward mode): out[j] = sum_i d outputs[j] /
 * d inputs[i] v[i], v[i] of inputs[i]'s shape and dtype (NULL: zero). One
 * forward sweep over the recorded nodes from the inputs to the outputs, each
 * op pushing the tangent through its own rule: about the cost of the forward
 * pass again (twice for products), against about two forwards for a reverse
 * sweep. Errors: AD_ERR_SHAPE, AD_ERR_DTYPE (a v whose shape or dtype is not
 * its input's), AD_ERR_UNSUPPORTED (a custom op without a jvp callback whose
 * backward is first-order only).
 */
AD_API ad_status ad_jvp(size_t n_outputs, ad_tensor *const *outputs, size_t n_inputs,
                        ad_tensor *const *inputs, ad_tensor *const *v, ad_tensor **out,
                        const ad_backward_opts *opts);

typedef enum {
    AD_JACOBIAN_AUTO = 0, /* reverse when outputs have no more elements than inputs */
    AD_JACOBIAN_REVERSE,  /* one vjp per output element */
    AD_JACOBIAN_FORWARD   /* one jvp per input element */
} ad_jacobian_mode;

/*
 * Jacobians: jac[j * n_inputs + i] = d outputs[j] / d inputs[i], of shape
 * outputs[j].shape followed by inputs[i].shape (AD_ERR_SHAPE beyond
 * AD_MAX_DIMS dims). Reverse mode costs one reverse sweep per output element,
 * forward mode one forward sweep per input element.
 */
AD_API ad_status ad_jacobian(size_t n_outputs, ad_tensor *const *outputs, size_t n_inputs,
                             ad_tensor *const *inputs, ad_tensor **jac, ad_jacobian_mode mode,
                             const ad_backward_opts *opts);
/*
 * Hessian of a one-element output y: hess[i * n_inputs + k] = d^2 y /
 * d inputs[i] d inputs[k], of shape inputs[i].shape followed by
 * inputs[k].shape: the Jacobian (mode as above) of the gradient, which is
 * computed with create_graph.
 */
AD_API ad_status ad_hessian(ad_tensor *y, size_t n_inputs, ad_tensor *const *inputs,
                            ad_tensor **hess, ad_jacobian_mode mode, const ad_backward_opts *opts);
/*
 * Hessian-vector product of a one-element output y: out[i] = sum_k d^2 y /
 * d inputs[i] d inputs[k] v[k], without forming the Hessian: forward mode
 * over the gradient's graph (a backward with create_graph, then one forward
 * sweep through it).
 */
AD_API ad_status ad_hvp(ad_tensor *y, size_t n_inputs, ad_tensor *const *inputs,
                        ad_tensor *const *v, ad_tensor **out, const ad_backward_opts *opts);

/* ==== Gradient checking =================================================== */

typedef struct ad_gradcheck_opts {
    double eps;  /* finite-difference step; 0 means 1e-6 */
    double atol; /* 0 means 1e-5 */
    double rtol; /* 0 means 1e-3 */
} ad_gradcheck_opts;

typedef struct ad_gradcheck_result {
    bool passed;
    size_t input;      /* the input holding the worst element */
    int64_t index;     /* its flat index in that input */
    int64_t output;    /* the flat index of the output element */
    double analytic;   /* the worst element's analytic derivative */
    double numeric;    /* and its central finite difference */
    double error;      /* |analytic - numeric| / (atol + rtol |numeric|), worst over all;
                        * passed means error <= 1 (inf where exactly one is NaN) */
    char message[256]; /* one line describing the worst element, or the error */
} ad_gradcheck_result;

/*
 * Compares the analytic Jacobian of f at inputs (float64 tensors, copied; the
 * inputs are not changed) with central finite differences, element by element:
 * passes when |analytic - numeric| <= atol + rtol * |numeric| everywhere.
 * Returns AD_OK when the check ran (see result->passed), or the error f or the
 * engine reported (result->message says it).
 */
AD_API ad_status ad_gradcheck(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs,
                              const ad_gradcheck_opts *opts, ad_gradcheck_result *result);
/*
 * Second order: gradchecks the function (inputs, v) -> d<f(inputs), v>/d inputs,
 * computed with create_graph, for a fixed random v (seeded by `seed`).
 */
AD_API ad_status ad_gradgradcheck(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs,
                                  uint64_t seed, const ad_gradcheck_opts *opts,
                                  ad_gradcheck_result *result);
/*
 * Forward mode: compares the Jacobian of f built column by column with ad_jvp
 * against central finite differences, as ad_gradcheck does for ad_grad.
 */
AD_API ad_status ad_jvpcheck(ad_function f, void *ctx, size_t n, ad_tensor *const *inputs,
                             const ad_gradcheck_opts *opts, ad_gradcheck_result *result);

/* ==== Op table (for tools and tests) ====================================== */

/* Number of ops in the op table, and the name and arity (-1: variadic) of op i. */
AD_API int ad_op_count(void);
AD_API const char *ad_op_name(int op);
AD_API int ad_op_arity(int op);
/* True for ops that have a gradient (every op but leaf, view and detach). */
AD_API bool ad_op_differentiable(int op);
/* The op that produced t (an index into the table), or -1 for NULL. */
AD_API int ad_tensor_op(const ad_tensor *t);

/* ==== Elementwise ops ===================================================== */
/* y has x's shape and dtype. Gradient conventions at kinks follow PyTorch.  */

AD_API ad_tensor *ad_neg(ad_tensor *x);     /* dx = -dy */
AD_API ad_tensor *ad_exp(ad_tensor *x);     /* dx = dy * y */
AD_API ad_tensor *ad_log(ad_tensor *x);     /* dx = dy / x */
AD_API ad_tensor *ad_log1p(ad_tensor *x);   /* dx = dy / (1 + x); accurate for tiny x */
AD_API ad_tensor *ad_expm1(ad_tensor *x);   /* dx = dy (y + 1); accurate for tiny x */
AD_API ad_tensor *ad_sqrt(ad_tensor *x);    /* dx = dy / (2 y); +inf at 0 */
AD_API ad_tensor *ad_square(ad_tensor *x);  /* dx = 2 x dy */
AD_API ad_tensor *ad_sin(ad_tensor *x);     /* dx = dy cos x */
AD_API ad_tensor *ad_cos(ad_tensor *x);     /* dx = -dy sin x */
AD_API ad_tensor *ad_tanh(ad_tensor *x);    /* dx = dy (1 - y^2) */
AD_API ad_tensor *ad_sigmoid(ad_tensor *x); /* dx = dy y (1 - y); stable for |x| > 700 */
AD_API ad_tensor *ad_relu(ad_tensor *x);    /* dx = dy [not x <= 0]; 0 at 0, dy at NaN */
AD_API ad_tensor *ad_abs(ad_tensor *x);     /* dx = dy sign(x); 0 at x = 0 */
AD_API ad_tensor *
ad_softplus(ad_tensor *x);               /* log1p(exp x), exactly x above 20; dx = dy sigmoid(x) */
AD_API ad_tensor *ad_gelu(ad_tensor *x); /* tanh approximation, exact derivative of it */
/* x > 0 ? x : slope x; dx = dy (x > 0 ? 1 : slope), slope at 0 */
AD_API ad_tensor *ad_leaky_relu(ad_tensor *x, double slope);
/* x^p; dx = dy p x^(p-1), exactly 0 when p = 0; p = 0.5 and -0.5 are computed
 * as sqrt and 1/sqrt, as PyTorch does (so (-inf)^0.5 is NaN and (-0)^0.5 is -0) */
AD_API ad_tensor *ad_pow_scalar(ad_tensor *x, double p);
/* A copy of x that does not require grad (gradient stops here). */
AD_API ad_tensor *ad_detach(ad_tensor *x);
/* x converted to dtype, any to any; dx = cast(dy, x's dtype) between float
 * dtypes. To int64: truncated toward 0, and INT64_MIN for NaN, infinities
 * and values out of range (torch on x86); to bool: x != 0 (NaN is true).
 * A result of int64 or bool is never recorded. Same dtype: returns x. */
AD_API ad_tensor *ad_cast(ad_tensor *x, ad_dtype dtype);

/* Trigonometric and hyperbolic; the conventions at domain edges are PyTorch's. */
AD_API ad_tensor *ad_tan(ad_tensor *x);   /* dx = dy (1 + y^2) */
AD_API ad_tensor *ad_atan(ad_tensor *x);  /* dx = dy / (1 + x^2) */
AD_API ad_tensor *ad_asin(ad_tensor *x);  /* dx = dy / sqrt(1 - x^2); +inf at +-1, NaN beyond */
AD_API ad_tensor *ad_acos(ad_tensor *x);  /* dx = -dy / sqrt(1 - x^2); -inf at +-1, NaN beyond */
AD_API ad_tensor *ad_sinh(ad_tensor *x);  /* dx = dy cosh x */
AD_API ad_tensor *ad_cosh(ad_tensor *x);  /* dx = dy sinh x */
AD_API ad_tensor *ad_asinh(ad_tensor *x); /* dx = dy / sqrt(x^2 + 1) */
AD_API ad_tensor *ad_acosh(ad_tensor *x); /* dx = dy / sqrt(x^2 - 1); +inf at +-1, NaN in (-1, 1) */
AD_API ad_tensor *ad_atanh(ad_tensor *x); /* dx = dy / (1 - x^2); +inf at +-1 */
/* Special functions, logs and powers. */
AD_API ad_tensor *ad_erf(ad_tensor *x);        /* dx = dy 2/sqrt(pi) exp(-x^2) */
AD_API ad_tensor *ad_erfc(ad_tensor *x);       /* 1 - erf x; dx = -dy 2/sqrt(pi) exp(-x^2) */
AD_API ad_tensor *ad_log2(ad_tensor *x);       /* dx = dy / (x ln 2); +-inf at +-0 */
AD_API ad_tensor *ad_log10(ad_tensor *x);      /* dx = dy / (x ln 10); +-inf at +-0 */
AD_API ad_tensor *ad_exp2(ad_tensor *x);       /* 2^x; dx = dy y ln 2 */
AD_API ad_tensor *ad_rsqrt(ad_tensor *x);      /* 1/sqrt x; dx = -dy y^3 / 2; -inf at +0 */
AD_API ad_tensor *ad_reciprocal(ad_tensor *x); /* 1/x; dx = -dy y^2; -inf at +-0 */
/* the inverse of erf on (-1, 1); +-inf at +-1, NaN beyond; dx = dy sqrt(pi)/2 e^(y^2) */
AD_API ad_tensor *ad_erfinv(ad_tensor *x);
/* sin(pi x) / (pi x), 1 at 0 (normalized); dx = dy (cos(pi x) - y) / x, 0 at 0 (PyTorch),
 * where the second derivative is -pi^2/3 (PyTorch: NaN) */
AD_API ad_tensor *ad_sinc(ad_tensor *x);
/* ln(x / (1 - x)), x first clamped to [eps, 1 - eps] unless eps < 0 or NaN (no eps, PyTorch's
 * None); dx = dy / (x (1 - x)): without eps NaN outside [0, 1], +-inf at 0 and 1; with eps 0
 * outside [eps, 1 - eps] (the bounds themselves have the slope) and at NaN */
AD_API ad_tensor *ad_logit(ad_tensor *x, double eps);
/* Steps: dx = 0 everywhere, the steps included (PyTorch). */
AD_API ad_tensor *
ad_sign(ad_tensor *x); /* 1, -1 or 0; sign(-0) = 0, sign(NaN) = 0 (PyTorch 1.13) */
AD_API ad_tensor *ad_floor(ad_tensor *x); /* dx = 0 */
AD_API ad_tensor *ad_ceil(ad_tensor *x);  /* dx = 0 */
AD_API ad_tensor *ad_round(ad_tensor *x); /* halves to even (2.5 -> 2); dx = 0 */
AD_API ad_tensor *ad_trunc(ad_tensor *x); /* toward zero; dx = 0 */
/* Activations, stable for large |x|; kinks as PyTorch. */
AD_API ad_tensor *ad_silu(ad_tensor *x); /* x sigmoid(x); dx = dy s (1 + x (1 - s)) */
/* x > 0 ? x : alpha (e^x - 1); dx = dy (x > 0 ? 1 : alpha e^x), alpha at 0, NaN at NaN */
AD_API ad_tensor *ad_elu(ad_tensor *x, double alpha);
/* scale elu(x, alpha), PyTorch's constants; dx = dy scale (x > 0 ? 1 : alpha e^x), NaN at NaN */
AD_API ad_tensor *ad_selu(ad_tensor *x);
AD_API ad_tensor *ad_mish(ad_tensor *x); /* x tanh(softplus x); dx = dy (t + x s (1 - t^2)) */
/* x / (1 + |x|); dx = dy / (1 + |x|)^2, 1 at 0; NaN (value and dx) at +-inf, as PyTorch */
AD_API ad_tensor *ad_softsign(ad_tensor *x);
AD_API ad_tensor *ad_logsigmoid(ad_tensor *x); /* ln sigmoid(x); dx = dy sigmoid(-x) */
/* x relu6(x + 3) / 6; dx = 0 below -3, x/3 + 1/2 on [-3, 3), 1 from 3 on */
AD_API ad_tensor *ad_hardswish(ad_tensor *x);
/* relu6(x + 3) / 6; dx = dy / 6 on (-3, 3), 0 at -3, at 3 and outside */
AD_API ad_tensor *ad_hardsigmoid(ad_tensor *x);
/* exact gelu x Phi(x), Phi the normal CDF; dx = dy (Phi(x) + x phi(x)) */
AD_API ad_tensor *ad_gelu_erf(ad_tensor *x);
/* Clamps. A NaN bound is no bound; both NaN is AD_ERR_ARG. min > max gives max.
 * dx = dy where min <= x <= max (inclusive), 0 outside and at NaN (PyTorch). */
AD_API ad_tensor *ad_clamp(ad_tensor *x, double min, double max);
AD_API ad_tensor *ad_clamp_min(ad_tensor *x, double min); /* dx = dy [x >= min] */
AD_API ad_tensor *ad_clamp_max(ad_tensor *x, double max); /* dx = dy [x <= max] */
/* clamp's values; dx = dy where min < x < max: 0 at the bounds and NaN (PyTorch) */
AD_API ad_tensor *ad_hardtanh(ad_tensor *x, double min, double max);

/* ==== Binary ops with broadcasting ======================================== */
/*
 * NumPy/PyTorch broadcasting: shapes align from the trailing dimension and
 * size-1 dims stretch on either side. Both operands must share a dtype
 * (AD_ERR_DTYPE otherwise; ad_cast converts). A broadcast operand's gradient is
 * summed back to its own shape.
 */
AD_API ad_tensor *ad_add(ad_tensor *a, ad_tensor *b); /* da = dy, db = dy */
AD_API ad_tensor *ad_sub(ad_tensor *a, ad_tensor *b); /* da = dy, db = -dy */
AD_API ad_tensor *ad_mul(ad_tensor *a, ad_tensor *b); /* da = dy b, db = dy a */
AD_API ad_tensor *ad_div(ad_tensor *a, ad_tensor *b); /* da = dy / b, db = -dy y / b */
/* a^b; da = dy b a^(b-1) (0 where b = 0), db = dy y log a (0 where a = 0, b >= 0) */
AD_API ad_tensor *ad_pow(ad_tensor *a, ad_tensor *b);
/* The gradient goes to the larger (smaller) operand; a tie gives each dy / 2. */
AD_API ad_tensor *ad_maximum(ad_tensor *a, ad_tensor *b);
AD_API ad_tensor *ad_minimum(ad_tensor *a, ad_tensor *b);
/* atan2(a, b), the angle of (b, a); da = dy b / (a^2 + b^2), db = -dy a / (a^2 + b^2);
 * NaN at a = b = 0 (PyTorch) */
AD_API ad_tensor *ad_atan2(ad_tensor *a, ad_tensor *b);
/* sqrt(a^2 + b^2); da = dy a / y, db = dy b / y; NaN at a = b = 0 (PyTorch) */
AD_API ad_tensor *ad_hypot(ad_tensor *a, ad_tensor *b);
/* a ln b, 0 where a = 0 unless b is NaN; da = dy ln b (0 where a = 0 and b <= 0),
 * db = dy a / b (PyTorch 1.13) */
AD_API ad_tensor *ad_xlogy(ad_tensor *a, ad_tensor *b);
/* a mod b with the sign of b (Python's %, torch.remainder): fmod(a, b), plus b where that is
 * nonzero and of the other sign; NaN where b = 0. da = dy, db = -dy floor(a / b) (a / b,
 * +-inf or NaN, where b = 0), as PyTorch's floor division */
AD_API ad_tensor *ad_remainder(ad_tensor *a, ad_tensor *b);
/* C's fmod(a, b), the sign of a, exact; NaN where b = 0. da = dy, db = -dy trunc(a / b) */
AD_API ad_tensor *ad_fmod(ad_tensor *a, ad_tensor *b);
/* ln(e^a + e^b), stable: max + log1p(e^-|a - b|); both -inf gives -inf and both +inf +inf.
 * da = dy sigmoid(a - b) = dy e^(a - y), db likewise: 1/2 each at a tie, NaN where
 * a = b = +-inf (PyTorch) */
AD_API ad_tensor *ad_logaddexp(ad_tensor *a, ad_tensor *b);
/* log2(2^a + 2^b), stable as logaddexp; da = dy 2^(a - y) = dy sigmoid((a - b) ln 2) */
AD_API ad_tensor *ad_logaddexp2(ad_tensor *a, ad_tensor *b);

/* Tensor-with-scalar forms: the scalar is a constant of x's dtype. */
AD_API ad_tensor *ad_add_scalar(ad_tensor *x, double s);
AD_API ad_tensor *ad_sub_scalar(ad_tensor *x, double s);  /* x - s */
AD_API ad_tensor *ad_rsub_scalar(ad_tensor *x, double s); /* s - x */
AD_API ad_tensor *ad_mul_scalar(ad_tensor *x, double s);
AD_API ad_tensor *ad_div_scalar(ad_tensor *x, double s);  /* x / s */
AD_API ad_tensor *ad_rdiv_scalar(ad_tensor *x, double s); /* s / x */
AD_API ad_tensor *ad_rpow_scalar(ad_tensor *x, double s); /* s^x */
AD_API ad_tensor *ad_maximum_scalar(ad_tensor *x, double s);
AD_API ad_tensor *ad_minimum_scalar(ad_tensor *x, double s);
AD_API ad_tensor *ad_remainder_scalar(ad_tensor *x, double s); /* x mod s, the sign of s */
AD_API ad_tensor *ad_fmod_scalar(ad_tensor *x, double s);      /* fmod(x, s), the sign of x */

/* ==== Reductions ========================================================== */
/*
 * axes: n_axes axis numbers (negative count from the end); n_axes = 0 (axes
 * may be NULL) reduces over all. Duplicate or out-of-range axes: AD_ERR_AXIS.
 * keepdim keeps reduced dims with size 1; reducing all without it gives 0-d.
 */
AD_API ad_tensor *ad_sum(ad_tensor *x, int n_axes, const int *axes, bool keepdim);
AD_API ad_tensor *ad_mean(ad_tensor *x, int n_axes, const int *axes,
                          bool keepdim); /* NaN if empty */
/* dx = dy at the maxima; tied maxima share dy evenly */
AD_API ad_tensor *ad_max(ad_tensor *x, int n_axes, const int *axes, bool keepdim);
/* log sum exp, stable; dx = dy softmax(x) */
AD_API ad_tensor *ad_logsumexp(ad_tensor *x, int n_axes, const int *axes, bool keepdim);
/* sum((x - mean)^2) / (N - correction); PyTorch's default correction is 1 */
AD_API ad_tensor *ad_var(ad_tensor *x, int n_axes, const int *axes, bool keepdim, int correction);
/* product; dx = dy prod of the others: with one zero only it gets it; with two
 * or more, all 0. A group holding inf or NaN (so its product is inf or NaN)
 * gets NaN gradients throughout (torch returns inf for some elements). */
AD_API ad_tensor *ad_prod(ad_tensor *x, int n_axes, const int *axes, bool keepdim);
/*
 * Vector p-norm (sum |x|^p)^(1/p) over the axes (torch.linalg.vector_norm), p > 0 or
 * INFINITY (max |x|), else AD_ERR_ARG; p = 2 over a matrix's two axes is its Frobenius
 * norm. dx = dy sign(x) |x|^(p-1) / y^(p-1): 0 where x = 0 or y = 0 (p = 2 at a zero
 * vector gives 0, not NaN); p = inf: dy sign(x) split evenly among tied max |x|.
 */
AD_API ad_tensor *ad_norm(ad_tensor *x, double p, int n_axes, const int *axes, bool keepdim);
/* sqrt(var); dx = dy (x - mean) / ((N - correction) y), and 0 where y = 0 (as PyTorch) */
AD_API ad_tensor *ad_std(ad_tensor *x, int n_axes, const int *axes, bool keepdim, int correction);
/* torch.amax: the same op as ad_max (tied maxima share dy evenly) */
AD_API ad_tensor *ad_amax(ad_tensor *x, int n_axes, const int *axes, bool keepdim);
/* -max(-x): dx = dy at the minima; tied minima share dy evenly; NaN wins */
AD_API ad_tensor *ad_min(ad_tensor *x, int n_axes, const int *axes, bool keepdim);
/* torch.amin: the same op as ad_min */
AD_API ad_tensor *ad_amin(ad_tensor *x, int n_axes, const int *axes, bool keepdim);
/* Running sum along axis (same shape; a 0-d x takes axis 0 or -1). dx = dy summed from the end */
AD_API ad_tensor *ad_cumsum(ad_tensor *x, int axis);
/*
 * Running product along axis (torch.cumprod; same shape, a 0-d x takes axis 0 or -1).
 * dx_k = sum_{j >= k} dy_j prod_{i <= j, i != k} x_i, exact with zeros (a zero gets dy times
 * the products of the others; elements after it 0) and differentiable again to any order.
 */
AD_API ad_tensor *ad_cumprod(ad_tensor *x, int axis);
/*
 * Running log(sum(exp)) along axis (torch.logcumsumexp), stable for logits of any size:
 * all -inf so far gives -inf, +inf gives +inf, NaN propagates.
 * dx_k = sum_{j >= k} dy_j exp(x_k - y_j), computed in the log domain.
 */
AD_API ad_tensor *ad_logcumsumexp(ad_tensor *x, int axis);
/* Whole-tensor shorthands: 0-d results. */
AD_API ad_tensor *ad_sum_all(ad_tensor *x);
AD_API ad_tensor *ad_mean_all(ad_tensor *x);

/* ==== Linear algebra ====================================================== */

/*
 * torch.matmul: 1-D . 1-D is a dot product (0-d); a 1-D left operand is a row
 * and a 1-D right one a column, that dim dropped from the result; with >= 3
 * dims the last two are matrices and leading batch dims broadcast.
 * da = dy b^T, db = a^T dy (summed over broadcast batch dims).
 */
AD_API ad_tensor *ad_matmul(ad_tensor *a, ad_tensor *b);
/*
 * op(a) op(b) for a, b of >= 2 dims, op(m) = m^T (last two dims swapped) when
 * the flag is set. No transpose is materialised.
 */
AD_API ad_tensor *ad_matmul_t(ad_tensor *a, ad_tensor *b, bool transpose_a, bool transpose_b);
/* Axes reordered: y.shape[i] = x.shape[perm[i]]; dx = permute(dy, inverse perm) */
AD_API ad_tensor *ad_permute(ad_tensor *x, const int *perm);
/* Two axes swapped. */
AD_API ad_tensor *ad_transpose(ad_tensor *x, int axis0, int axis1);

/* ==== Linear algebra: factorizations and solves ============================ */
/*
 * Leading dims are batch dims (torch.linalg); A is a square matrix or a
 * batch of them, else AD_ERR_SHAPE naming the op and the shape. float32 or
 * float64 only (AD_ERR_DTYPE). LAPACK runs them when the build found it in
 * its BLAS, plain kernels otherwise. Every gradient is written with these
 * ops, so it can be differentiated again. Where A's lower triangle only is
 * read (cholesky, eigh), the gradient is torch's: symmetric, the gradient
 * with respect to a symmetric A.
 */
/* L lower with L L^T = A, A's lower triangle read. A not positive definite:
 * AD_ERR_ARG naming the batch element. dA = sym(L^-T Phi(L^T dL) L^-1),
 * Phi: lower triangle, diagonal halved; sym(X) = (X + X^T)/2 */
AD_API ad_tensor *ad_cholesky(ad_tensor *a);
/*
 * X with tri(A) X = B (left) or X tri(A) = B (!left); tri(A) is A's upper
 * or lower triangle, with a unit diagonal if unitriangular. B has >= 2 dims;
 * the batch dims broadcast. A zero on the diagonal gives inf/NaN, as torch.
 * dB = tri(A)^-T dX, dA = tri(-dB X^T) (left; the transposes for right)
 */
AD_API ad_tensor *ad_solve_triangular(ad_tensor *a, ad_tensor *b, bool upper, bool left,
                                      bool unitriangular);
/*
 * X with A X = B (LU with partial pivoting). B: [.., n, k] with broadcast
 * batch dims, or a vector [n] (or A's shape without its last dim, a batch of
 * vectors), then X is one too. Singular A: AD_ERR_ARG naming the batch
 * element. dB = solve(A^T, dX), dA = -dB X^T
 */
AD_API ad_tensor *ad_solve(ad_tensor *a, ad_tensor *b);
/* A^-1 = solve(A, I); singular: AD_ERR_ARG. dA = -A^-T dY A^-T */
AD_API ad_tensor *ad_inv(ad_tensor *a);
/*
 * log|det A| [..]; *sign (if sign is not NULL) gets det's sign, -1, 0 or 1,
 * a constant tensor. Singular A: -inf and sign 0. dA = dy A^-T (dy I at a
 * singular A, so that det's gradient there is 0, as torch 1.13 gives it)
 */
AD_API ad_tensor *ad_slogdet(ad_tensor *a, ad_tensor **sign);
/* log det A: NaN where det < 0, -inf where 0 (torch.logdet). dA = dy A^-T */
AD_API ad_tensor *ad_logdet(ad_tensor *a);
/* det A = sign exp(log|det A|); 0 for a singular A. dA = dy det(A) A^-T,
 * 0 at a singular A (as torch 1.13's LU path; the cofactor matrix would be
 * the limit) */
AD_API ad_tensor *ad_det(ad_tensor *a);
/*
 * Eigenvalues [.., n] of a symmetric A (lower triangle read), ascending;
 * *eigenvectors (if not NULL) gets V [.., n, n], the eigenvectors as
 * columns, each with its largest entry positive: A = V diag(w) V^T.
 * dA = V (diag(dw) + skew(V^T dV) / E) V^T, E[j][k] = w[k] - w[j] (0 on the
 * diagonal), skew(M) = (M - M^T)/2: repeated eigenvalues make it inf/NaN
 * once dV is not 0 (torch's too).
 */
AD_API ad_tensor *ad_eigh(ad_tensor *a, ad_tensor **eigenvectors);
/* The eigenvalues of ad_eigh. dA = V diag(dw) V^T */
AD_API ad_tensor *ad_eigvalsh(ad_tensor *a);
/* torch.linalg.matrix_norm's ord. */
typedef enum ad_matrix_norm_ord {
    AD_NORM_FRO,     /* sqrt(sum |a_ij|^2) */
    AD_NORM_NUC,     /* the sum of the singular values */
    AD_NORM_1,       /* the largest column sum of |a_ij| */
    AD_NORM_NEG_1,   /* the smallest column sum */
    AD_NORM_INF,     /* the largest row sum of |a_ij| */
    AD_NORM_NEG_INF, /* the smallest row sum */
    AD_NORM_2,       /* the largest singular value */
    AD_NORM_NEG_2    /* the smallest singular value */
} ad_matrix_norm_ord;
/*
 * The norm of each matrix (last two dims) [..]: compositions of norm, sum,
 * abs, max and (nuclear, 2, -2) singular values as the square roots of the
 * eigenvalues of the smaller Gram matrix (A^T A or A A^T), so their gradients
 * are those ops' (Frobenius: a / norm, 0 at a zero matrix as torch's; sign(a)
 * for the abs sums, with abs's 0 at 0; ties in max split; nuclear: U V^T).
 * Singular values come from the Gram matrix, so a small one carries an
 * absolute error near sqrt(machine eps) times the largest; and where a
 * singular value is exactly 0 (a rank-deficient matrix) the nuclear, 2 and -2
 * gradients are NaN (torch returns one subgradient there).
 * AD_ERR_SHAPE for fewer than 2 dims, AD_ERR_ARG for an unknown ord.
 */
AD_API ad_tensor *ad_matrix_norm(ad_tensor *a, ad_matrix_norm_ord ord);

/* ==== Shape and indexing ================================================== */

/* reshape, expand, slice, slice_scatter, concat, stack, permute, transpose,
 * flip and roll (and their compositions: squeeze, repeat, ...) only move
 * elements, and take int64 and bool tensors too. */

/* Same elements, new shape; one entry may be -1 (inferred). dx = reshape(dy) */
AD_API ad_tensor *ad_reshape(ad_tensor *x, int ndim, const int64_t *shape);
/* Broadcast to shape (NumPy rules); dx = dy summed back to x's shape */
AD_API ad_tensor *ad_expand(ad_tensor *x, int ndim, const int64_t *shape);
/* x summed over broadcast dims down to shape (the adjoint of expand) */
AD_API ad_tensor *ad_sum_to(ad_tensor *x, int ndim, const int64_t *shape);
/*
 * Python's x[start:stop:step] along one axis (negative start/stop count from
 * the end and are clamped; step >= 1). dx = dy placed back into zeros.
 */
AD_API ad_tensor *ad_slice(ad_tensor *x, int axis, int64_t start, int64_t stop, int64_t step);
/* The adjoint of ad_slice: zeros of size `length` along axis with x placed at start:stop:step. */
AD_API ad_tensor *ad_slice_scatter(ad_tensor *x, int axis, int64_t length, int64_t start,
                                   int64_t step);
/* Joined along axis; every other dim must agree. dx_i = slice of dy */
AD_API ad_tensor *ad_concat(size_t n, ad_tensor *const *xs, int axis);
/* Joined along a new axis; all shapes must agree. */
AD_API ad_tensor *ad_stack(size_t n, ad_tensor *const *xs, int axis);
/*
 * Compositions of reshape, expand, slice, concat, permute, index_select and
 * where: differentiable to any order, with their parts' gradients.
 */
/* Size-1 dims among axes dropped (n_axes = 0: all of them); a listed dim
 * that is not 1 stays, as in torch. dx = reshape(dy, x.shape) */
AD_API ad_tensor *ad_squeeze(ad_tensor *x, int n_axes, const int *axes);
/* A size-1 dim inserted at axis, in [-(ndim+1), ndim]. dx = reshape(dy, x.shape) */
AD_API ad_tensor *ad_unsqueeze(ad_tensor *x, int axis);
/* Dims start..end (inclusive) merged into one; 0-d gives [1]. dx = reshape(dy, x.shape) */
AD_API ad_tensor *ad_flatten(ad_tensor *x, int start, int end);
/* Dim axis split into sizes[0..n) (one may be -1). dx = reshape(dy, x.shape) */
AD_API ad_tensor *ad_unflatten(ad_tensor *x, int axis, int n, const int64_t *sizes);
/* x expanded to other's shape (only its shape is read). dx = sum_to(dy, x.shape) */
AD_API ad_tensor *ad_expand_as(ad_tensor *x, ad_tensor *other);
/*
 * Several results from one call: the pieces are written to out[] and the
 * count is returned. On error (on the tape, as for any op) they return 0 and
 * set every out[i] they had room for to NULL; an empty axis may also give 0
 * pieces (unbind), so tell the two apart with ad_tape_status. Each piece is a
 * slice: dx = the pieces' gradients placed back into zeros and summed, one
 * pass over x per piece used.
 *
 * ad_split: torch.split(x, size, axis), pieces of `size` (the last shorter):
 * ceil(dim / size) of them, 1 for an empty axis; more than capacity is
 * AD_ERR_ARG; size 0 only for an empty axis.
 * ad_split_sizes: n pieces of sizes[i], which must sum to the dim (AD_ERR_ARG).
 * ad_chunk: torch.chunk, pieces of ceil(dim / chunks), so possibly fewer than
 * chunks (out[] needs room for chunks; the unused tail is set NULL).
 * ad_unbind: the dim's slices with axis removed; room for x.shape[axis].
 */
AD_API size_t ad_split(ad_tensor *x, int axis, int64_t size, size_t capacity, ad_tensor **out);
AD_API size_t ad_split_sizes(ad_tensor *x, int axis, size_t n, const int64_t *sizes,
                             ad_tensor **out);
AD_API size_t ad_chunk(ad_tensor *x, int axis, size_t chunks, ad_tensor **out);
AD_API size_t ad_unbind(ad_tensor *x, int axis, size_t capacity, ad_tensor **out);
/* torch.Tensor.repeat: x tiled repeats[d] times along dim d; n >= x's dims
 * (leading ones are new dims). dx = dy's tiles summed (sum_to) */
AD_API ad_tensor *ad_repeat(ad_tensor *x, int n, const int64_t *repeats);
/* Reversed along each listed axis (n_axes = 0: none, as torch), in one pass.
 * dx = flip(dy) */
AD_API ad_tensor *ad_flip(ad_tensor *x, int n_axes, const int *axes);
/*
 * torch.roll: shifted by shifts[i] along axes[i], wrapping around (a repeated
 * axis rolls by the sum), in one pass. axes NULL: n = 1 and x rolled as if
 * flattened. dx = roll(dy, -shifts)
 */
AD_API ad_tensor *ad_roll(ad_tensor *x, int n, const int64_t *shifts, const int *axes);
typedef enum ad_pad_mode {
    AD_PAD_CONSTANT,  /* value */
    AD_PAD_REFLECT,   /* mirrored, the edge not repeated: pads < dim */
    AD_PAD_REPLICATE, /* the edge repeated */
    AD_PAD_CIRCULAR   /* wrapped around: pads <= dim */
} ad_pad_mode;
/*
 * torch.nn.functional.pad: pad[0..n) are (before, after) pairs from the last
 * dim backwards; a negative pad crops. dx = the entries of dy that came from
 * x, summed where reflect, replicate or circular copied one twice.
 */
AD_API ad_tensor *ad_pad(ad_tensor *x, int n, const int64_t *pad, ad_pad_mode mode, double value);
/* Entries above (tril) or below (triu) diagonal `diagonal` of the last two
 * dims set to 0, batched. dx = tril(dy) (triu(dy)) */
AD_API ad_tensor *ad_tril(ad_tensor *x, int64_t diagonal);
AD_API ad_tensor *ad_triu(ad_tensor *x, int64_t diagonal);
/* torch.diagonal: the entries x[.., i, i + offset] of dims axis1, axis2 as a
 * last dim. dx = dy placed on that diagonal of zeros */
AD_API ad_tensor *ad_diagonal(ad_tensor *x, int64_t offset, int axis1, int axis2);
/* Sum of the diagonal of a matrix; 0-d. dx = dy on the diagonal, 0 elsewhere */
AD_API ad_tensor *ad_trace(ad_tensor *x);
/* y[i][j] = a[i] b[j] for 1-D a, b. da = dy b, db = dy^T a */
AD_API ad_tensor *ad_outer(ad_tensor *a, ad_tensor *b);
/*
 * torch.einsum over n (1..16) inputs: "ij,jk->ik"; labels a-z, A-Z, spaces
 * ignored; no "..." and no broadcasting of size-1 dims (a label's sizes must
 * agree: AD_ERR_SHAPE). Without "->" the output is the labels used once, in
 * ASCII order. Repeated labels take diagonals, dropped labels are summed, and
 * operands are contracted left to right by batched matmuls; dx follows.
 */
AD_API ad_tensor *ad_einsum(const char *equation, size_t n, ad_tensor *const *xs);
/*
 * Selects index[0..n) along axis (each in [0, dim); copied): y.shape[axis] = n.
 * dx = index_add(zeros, axis, index, dy): repeated indices accumulate.
 */
AD_API ad_tensor *ad_index_select(ad_tensor *x, int axis, size_t n, const int64_t *index);
/* The adjoint: zeros with `length` along axis, plus x's slices added at index. */
AD_API ad_tensor *ad_index_add(ad_tensor *x, int axis, int64_t length, size_t n,
                               const int64_t *index);
/*
 * torch.gather: y[i][j] = x[i][index[i][j]] along axis (index has y's shape,
 * ndim equal to x's, values in [0, x.shape[axis]); copied). dx scatters-adds dy.
 */
AD_API ad_tensor *ad_gather(ad_tensor *x, int axis, int ndim, const int64_t *index_shape,
                            const int64_t *index);
/* The adjoint of gather: zeros of x_shape with src added at index along axis. */
AD_API ad_tensor *ad_scatter_add(ad_tensor *src, int axis, int ndim, const int64_t *x_shape,
                                 const int64_t *index);
/*
 * The same four ops with their indices in an int64 tensor, as torch takes
 * them (the C-array forms above are conveniences): index_select and
 * index_add take a 1-D index, gather an index of x's ndim (the result has its
 * shape), scatter_add an index of src's shape. The index is read when the op
 * is made and never differentiated; it may be persistent or on x's tape.
 * AD_ERR_DTYPE for an index that is not int64, AD_ERR_SHAPE for its ndim,
 * and each op's own errors.
 */
AD_API ad_tensor *ad_index_select_tensor(ad_tensor *x, int axis, const ad_tensor *index);
AD_API ad_tensor *ad_index_add_tensor(ad_tensor *x, int axis, int64_t length,
                                      const ad_tensor *index);
AD_API ad_tensor *ad_gather_tensor(ad_tensor *x, int axis, const ad_tensor *index);
AD_API ad_tensor *ad_scatter_add_tensor(ad_tensor *src, int axis, const ad_tensor *index, int ndim,
                                        const int64_t *x_shape);
/*
 * torch.nn.functional.one_hot: an int64 tensor of index's shape plus a last
 * dim of num_classes, 1 at each index and 0 elsewhere. index: int64, each in
 * [0, num_classes); num_classes = -1 means one more than the largest index.
 * AD_ERR_ARG for an index out of range. No gradient.
 */
AD_API ad_tensor *ad_one_hot(ad_tensor *index, int64_t num_classes);
/* x with value where the bool mask (broadcast to x's shape) is true; dx = dy
 * where mask is false, 0 where it is true (ad_where underneath). */
AD_API ad_tensor *ad_masked_fill(ad_tensor *x, ad_tensor *mask, double value);
/*
 * cond ? a : b elementwise, all three broadcast; cond is a bool tensor (from a
 * comparison, say) or a tensor of a's dtype, true where nonzero (NaN too),
 * never differentiated. a and b: float32 or float64, one dtype, the
 * result's. da = dy where cond, 0 elsewhere.
 * As in PyTorch, a NaN or inf made inside the untaken branch of an expression
 * still reaches the gradient through 0 * inf; guard the input, not the output.
 */
AD_API ad_tensor *ad_where(ad_tensor *cond, ad_tensor *a, ad_tensor *b);

/* ==== Normalisation (torch.nn.functional) ================================= */
/*
 * (x - mean) / sqrt(var + eps) with the biased variance, then * weight + bias
 * (either may be NULL; they may be persistent parameters). eps must be finite
 * and >= 0: 0 means 0, never a default; pass AD_NORM_EPS for torch's. The
 * normalisation over trailing dims (layer_norm, group_norm) is one fused op,
 * computed in double per row, whose gradient is written with ops (exact to any
 * order); batch_norm and the affine part are compositions. Errors name the
 * op, the argument and the shapes.
 */
#define AD_NORM_EPS 1e-5 /* torch's default eps of layer_norm, group_norm, batch_norm */
/*
 * Over the last n_dims dims of x; weight and bias have those dims' shape.
 * dx = rstd (g - mean(g) - y mean(g y)) over those dims, for g = dy (* weight),
 * y the normalised x and rstd = 1 / sqrt(var + eps).
 */
AD_API ad_tensor *ad_layer_norm(ad_tensor *x, int n_dims, ad_tensor *weight, ad_tensor *bias,
                                double eps);
/* x [N, C, *] in `groups` groups of C / groups channels, each normalised over
 * its channels and the other dims (layer_norm's op); weight and bias [C]. */
AD_API ad_tensor *ad_group_norm(ad_tensor *x, int64_t groups, ad_tensor *weight, ad_tensor *bias,
                                double eps);
/*
 * x [N, C, *] per channel. training: over N and the other dims, and, when the
 * persistent tensors running_mean and running_var [C] are given, they are
 * updated in place: r = (1 - momentum) r + momentum stat, with the unbiased
 * variance (torch). Eval (!training): with the running stats, which are
 * required. momentum in [0, 1] (torch's default is 0.1).
 */
AD_API ad_tensor *ad_batch_norm(ad_tensor *x, ad_tensor *running_mean, ad_tensor *running_var,
                                ad_tensor *weight, ad_tensor *bias, bool training, double momentum,
                                double eps);

/* ==== LSTM cell gates ======================================================== */
/*
 * The gate arithmetic of one LSTM step (sequence.h's ad_lstm_cell and the
 * LSTM layer use them), each one fused op. gates [..., 4 H] holds the
 * pre-activations in torch's order [i, f, g, o] along the last axis; the
 * states c, c_next and the result are [..., H] with the same leading dims (no
 * broadcasting: AD_ERR_SHAPE, naming the op and both shapes). Values and
 * gradients are those of the composition with slices, ad_sigmoid, ad_tanh,
 * ad_mul and ad_add, to the bit; si = sigmoid(i), sf = sigmoid(f),
 * so = sigmoid(o), tg = tanh(g), tc = tanh(c_next).
 */
/* c' = sf c + si tg; dgates = [dy tg si (1 - si), dy c sf (1 - sf), dy si (1 - tg^2), 0],
 * dc = dy sf */
AD_API ad_tensor *ad_lstm_cell_c(ad_tensor *gates, ad_tensor *c);
/* h' = so tc; dgates = [0, 0, 0, dy tc so (1 - so)], dc_next = dy so (1 - tc^2) */
AD_API ad_tensor *ad_lstm_cell_h(ad_tensor *gates, ad_tensor *c_next);

/* ==== Indices of extremes, sorting ========================================== */
/*
 * Along one axis (negative counts from the end; a 0-d x takes 0 or -1). The
 * indices are int64 tensors that never require grad; the values are x
 * gathered at them, so the gradient goes to the selected elements only (not
 * split between ties), as torch's. A NaN counts as the extreme (argmax and
 * argmin pick the first NaN) and sorts after every number (before, when
 * descending). Ties keep their order: the first index wins, and sorting is
 * stable. An empty axis is AD_ERR_SHAPE for argmax, argmin, max_along and
 * min_along. float32 and float64 only.
 */
AD_API ad_tensor *ad_argmax(ad_tensor *x, int axis, bool keepdim);
AD_API ad_tensor *ad_argmin(ad_tensor *x, int axis, bool keepdim);
/* torch.max(x, dim): the values, and their indices into *indices if not NULL. */
AD_API ad_tensor *ad_max_along(ad_tensor *x, int axis, bool keepdim, ad_tensor **indices);
AD_API ad_tensor *ad_min_along(ad_tensor *x, int axis, bool keepdim, ad_tensor **indices);
/* The permutation that sorts x along axis (stable). */
AD_API ad_tensor *ad_argsort(ad_tensor *x, int axis, bool descending);
/* x sorted along axis (stable); the permutation into *indices if not NULL. */
AD_API ad_tensor *ad_sort(ad_tensor *x, int axis, bool descending, ad_tensor **indices);
/* The k largest (or smallest) along axis, in sorted order, ties by lower index
 * first; k in [0, dim] (AD_ERR_ARG otherwise). */
AD_API ad_tensor *ad_topk(ad_tensor *x, int64_t k, int axis, bool largest, ad_tensor **indices);

/* ==== Comparisons and logical ops: bool results, no gradient ================ */
/*
 * Elementwise, broadcasting as the binary ops; a and b of any one dtype
 * (float32, float64, int64 or bool: cast first to compare across dtypes).
 * The result is a bool tensor that never requires grad. A comparison with a
 * NaN is false, except ne, which is true (IEEE, as torch).
 */
AD_API ad_tensor *ad_eq(ad_tensor *a, ad_tensor *b); /* a == b */
AD_API ad_tensor *ad_ne(ad_tensor *a, ad_tensor *b); /* a != b */
AD_API ad_tensor *ad_lt(ad_tensor *a, ad_tensor *b); /* a < b */
AD_API ad_tensor *ad_le(ad_tensor *a, ad_tensor *b); /* a <= b */
AD_API ad_tensor *ad_gt(ad_tensor *a, ad_tensor *b); /* a > b */
AD_API ad_tensor *ad_ge(ad_tensor *a, ad_tensor *b); /* a >= b */
/* Logical ops: an element is true when nonzero (NaN is true), as torch. */
AD_API ad_tensor *ad_logical_and(ad_tensor *a, ad_tensor *b);
AD_API ad_tensor *ad_logical_or(ad_tensor *a, ad_tensor *b);
AD_API ad_tensor *ad_logical_xor(ad_tensor *a, ad_tensor *b);
AD_API ad_tensor *ad_logical_not(ad_tensor *x);
/* Float classification, of any dtype: int64 and bool are never NaN or inf. */
AD_API ad_tensor *ad_isnan(ad_tensor *x);
AD_API ad_tensor *ad_isinf(ad_tensor *x);    /* +inf or -inf */
AD_API ad_tensor *ad_isfinite(ad_tensor *x); /* neither NaN nor infinite */

/* ==== Fused ops for numerics ============================================== */

/* exp(x - logsumexp(x)) along axis; dx = y (dy - sum(dy y)) */
AD_API ad_tensor *ad_softmax(ad_tensor *x, int axis);
/* x - logsumexp(x) along axis; dx = dy - softmax(x) sum(dy) */
AD_API ad_tensor *ad_log_softmax(ad_tensor *x, int axis);
/*
 * Mean over rows of -log_softmax(logits)[i, target[i]]; logits [N, C], targets
 * N integers in [0, C) (copied). dlogits = dy (softmax - onehot) / N. 0-d result.
 */
AD_API ad_tensor *ad_cross_entropy(ad_tensor *logits, size_t n, const int64_t *targets);
/* ad_cross_entropy with the targets in a 1-D int64 tensor of N elements. */
AD_API ad_tensor *ad_cross_entropy_tensor(ad_tensor *logits, const ad_tensor *targets);
/* mean((a - b)^2), broadcasting; 0-d result. */
AD_API ad_tensor *ad_mse_loss(ad_tensor *a, ad_tensor *b);

/* ==== Convolution and pooling ============================================== */
/*
 * torch.nn.functional's conv2d, conv_transpose2d, conv1d and the 2-D pools, on
 * float tensors in NCHW layout. Options come in small structs made by a
 * defaults function and then changed: a NULL opts means the defaults, but a
 * zero stride, dilation, groups or kernel given explicitly is an error
 * (AD_ERR_ARG naming the op, the attribute and the input's shape), never a
 * silent default. Shape errors (wrong ndim, channels not divisible by groups,
 * a kernel larger than the padded input, a bias of the wrong size) are
 * AD_ERR_SHAPE naming the op and the shapes. All return a tape tensor, NULL
 * on error (the tape's sticky status).
 */
typedef struct ad_conv2d_opts {
    int64_t stride[2];         /* rows, columns: 1, 1; at least 1 */
    int64_t padding[2];        /* zeros on each side: 0, 0 */
    int64_t dilation[2];       /* spacing of kernel taps: 1, 1; at least 1 */
    int64_t groups;            /* 1; divides the in and out channels */
    int64_t output_padding[2]; /* conv_transpose2d only: 0, 0; below stride or dilation */
} ad_conv2d_opts;
/* stride 1, padding 0, dilation 1, groups 1, output_padding 0 */
AD_API ad_conv2d_opts ad_conv2d_defaults(void);

typedef struct ad_conv1d_opts {
    int64_t stride, padding, dilation, groups; /* 1, 0, 1, 1 */
} ad_conv1d_opts;
AD_API ad_conv1d_opts ad_conv1d_defaults(void);

typedef struct ad_pool2d_opts {
    int64_t kernel[2];      /* window rows, columns; at least 1 */
    int64_t stride[2];      /* the kernel, as torch's default; at least 1 */
    int64_t padding[2];     /* 0, 0; at most half the kernel; -inf (max) or 0 (avg) */
    int64_t dilation[2];    /* 1, 1 (max_pool2d; avg_pool2d takes only 1) */
    bool count_include_pad; /* avg_pool2d: true, padding counts in the divisor */
} ad_pool2d_opts;
/* kernel kh x kw, stride = kernel, padding 0, dilation 1, count_include_pad true */
AD_API ad_pool2d_opts ad_pool2d_defaults(int64_t kernel_h, int64_t kernel_w);

/*
 * y[n, o] = b[o] + sum over c in o's group and the kernel of w[o, c, i, j] *
 * x[n, c, oh sh - ph + i dh, ow sw - pw + j dw] (a cross-correlation, as
 * torch). x [N, C, H, W], w [O, C / groups, kh, kw], b [O] or NULL; y [N, O,
 * Ho, Wo], Ho = (H + 2 ph - dh (kh - 1) - 1) / sh + 1. One im2col and one
 * GEMM per group and batch element.
 * dx = conv_transpose2d(dy, w); dw = sum over n and positions of dy x-window
 * (the internal op conv2d_weight); db = sum of dy over N, Ho, Wo.
 */
AD_API ad_tensor *ad_conv2d(ad_tensor *x, ad_tensor *w, ad_tensor *b, const ad_conv2d_opts *opts);
/*
 * The adjoint of conv2d in its input (torch's conv_transpose2d): x [N, C_in,
 * H, W], w [C_in, C_out / groups, kh, kw], b [C_out] or NULL; y [N, C_out,
 * (H - 1) sh - 2 ph + dh (kh - 1) + output_padding + 1, likewise W].
 * dx = conv2d(dy, w); dw = conv2d_weight(dy, x).
 */
AD_API ad_tensor *ad_conv_transpose2d(ad_tensor *x, ad_tensor *w, ad_tensor *b,
                                      const ad_conv2d_opts *opts);
/*
 * The adjoint of conv2d in its weight (torch.nn.grad.conv2d_weight): the
 * gradient of a conv2d of x [N, C, H, W] with a weight of shape [O, C /
 * groups, kernel_h, kernel_w] whose result had gradient dy [N, O, Ho, Wo].
 * With G the gradient of the result: dx = conv_transpose2d(dy, G); d(dy) = conv2d(x, G).
 */
AD_API ad_tensor *ad_conv2d_weight(ad_tensor *x, ad_tensor *dy, int64_t kernel_h, int64_t kernel_w,
                                   const ad_conv2d_opts *opts);
/* conv2d over x [N, C, L] with w [O, C / groups, k], b [O] or NULL: y [N, O, Lo]. */
AD_API ad_tensor *ad_conv1d(ad_tensor *x, ad_tensor *w, ad_tensor *b, const ad_conv1d_opts *opts);
/*
 * The maximum of each window of x [N, C, H, W] (opts required: the kernel has
 * no default); y [N, C, Ho, Wo] as conv2d's sizes, no ceil mode. Padding acts
 * as -inf. dx: dy goes to each window's argmax, all of it to the first maximal
 * element in row-major window order at a tie (the first NaN if any);
 * windows sharing an argmax accumulate. A window wholly in the padding
 * (possible with dilation) is AD_ERR_ARG.
 */
AD_API ad_tensor *ad_max_pool2d(ad_tensor *x, const ad_pool2d_opts *opts);
/*
 * The mean of each window of x [N, C, H, W]; with count_include_pad the
 * divisor is always kh kw, else the window's elements inside the image.
 * dx spreads dy / divisor over the window. Dilation must be 1.
 */
AD_API ad_tensor *ad_avg_pool2d(ad_tensor *x, const ad_pool2d_opts *opts);
/*
 * torch's adaptive_avg_pool2d: y[n, c, i, j] is the mean of rows
 * [floor(i H / out_h), ceil((i + 1) H / out_h)) and the same columns of x
 * [N, C, H, W]; y [N, C, out_h, out_w]. Linear; dx spreads dy over windows.
 */
AD_API ad_tensor *ad_adaptive_avg_pool2d(ad_tensor *x, int64_t out_h, int64_t out_w);

/* ==== Renamed (docs/names.md): the old names, for one release ============== */

AD_DEPRECATED("ad_tape_tensor")
static inline ad_tensor *ad_tensor_new(ad_tape *tape, ad_dtype dtype, int ndim,
                                       const int64_t *shape, const void *data)
{
    return ad_tape_tensor(tape, dtype, ndim, shape, data);
}
AD_DEPRECATED("ad_tape_tensor_from_doubles")
static inline ad_tensor *ad_tensor_from_doubles(ad_tape *tape, ad_dtype dtype, int ndim,
                                                const int64_t *shape, const double *values)
{
    return ad_tape_tensor_from_doubles(tape, dtype, ndim, shape, values);
}
AD_DEPRECATED("ad_mse_loss")
static inline ad_tensor *ad_mse(ad_tensor *a, ad_tensor *b)
{
    return ad_mse_loss(a, b);
}

#ifdef __cplusplus
}
#endif

#endif /* AUTODIFF_AUTODIFF_H */
