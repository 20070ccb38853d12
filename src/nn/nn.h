/* What the layers need from the module tree beyond layers.h (src/nn/ only). */
#ifndef AD_NN_NN_H
#define AD_NN_NN_H

#include "autodiff/layers.h"

/* Checks that params[0..n) can stand in for the parameters of m (count, then
 * shape and dtype of each, in ad_nn_params order); records the error on tape
 * and returns false when they cannot. */
bool ad__module_params_fit(const ad_module *m, ad_tape *tape, size_t n, ad_tensor *const *params);

/* Makes a module of type whose context is a copy of the size bytes at config
 * (heap memory the module frees, with ad__free or a free_context that ends
 * with it). */
ad_status ad__nn_module_with(ad_module **out, const ad_module_type *type, const void *config,
                             size_t size);
/* Frees a half-built module, sets *out to NULL and passes the status through. */
ad_status ad__nn_fail_free(ad_module **out, ad_status st);
/* Reports input x that does not fit a layer, "conv2d: input [2,3] does not
 * fit (expected ...)", as AD_ERR_SHAPE on tape; returns NULL. */
ad_tensor *ad__nn_bad_input(ad_tape *tape, const char *layer, const ad_tensor *x,
                            const char *expected, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* x and the parameter w must share a dtype (AD_ERR_DTYPE naming the layer);
 * w is NULL when the tape already failed. */
bool ad__nn_same_dtype(ad_tape *tape, const char *layer, const ad_tensor *x, const ad_tensor *w);
/* Creates parameter `name` of m, drawn uniform in [-bound, bound) from rng. */
ad_status ad__nn_uniform_param(ad_module *m, const char *name, ad_dtype dtype, int ndim,
                               const int64_t *shape, double bound, ad_rng *rng);

#endif
