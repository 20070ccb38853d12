/* What every built-in layer does while it is made or run: a module with a
 * copied config, a parameter drawn uniformly, and the errors that name the
 * layer (declared in nn.h). */
#include "nn.h"

#include "../core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Makes a module of type whose context is a copy of the size bytes at
 * config (heap memory the module frees, with ad__free or a free_context that
 * ends with it). */
ad_status ad__nn_module_with(ad_module **out, const ad_module_type *type, const void *config,
                             size_t size)
{
    *out = NULL;
    void *context = ad__malloc(size);
    if (!context)
        return AD_ERR_NOMEM;
    memcpy(context, config, size);
    return ad_module_create(out, type, context); /* frees context on error */
}

/* Frees a half-built module and passes the status through. */
ad_status ad__nn_fail_free(ad_module **out, ad_status st)
{
    ad_nn_free(*out);
    *out = NULL;
    return st;
}

/* Reports input x that does not fit a layer: "conv2d: input [2,3] (expected ...)". */
ad_tensor *ad__nn_bad_input(ad_tape *tape, const char *layer, const ad_tensor *x,
                            const char *expected, ...)
{
    char shape[96], want[96];
    va_list ap;
    va_start(ap, expected);
    vsnprintf(want, sizeof want, expected, ap);
    va_end(ap);
    ad_shape_string(shape, sizeof shape, ad_tensor_ndim(x), ad_tensor_shape(x));
    ad_tape_set_error(tape, AD_ERR_SHAPE, "%s: input %s does not fit (expected %s)", layer, shape,
                      want);
    return NULL;
}

/* x and the parameter w must share a dtype; an op would say so too, but would
 * name itself instead of the layer. w is NULL when the tape already failed. */
bool ad__nn_same_dtype(ad_tape *tape, const char *layer, const ad_tensor *x, const ad_tensor *w)
{
    if (!w)
        return false;
    if (ad_tensor_dtype(x) == ad_tensor_dtype(w))
        return true;
    ad_tape_set_error(tape, AD_ERR_DTYPE, "%s: input is %s, parameters are %s", layer,
                      ad_dtype_name(ad_tensor_dtype(x)), ad_dtype_name(ad_tensor_dtype(w)));
    return false;
}

/* Creates parameter `name` of m, drawn uniform in [-bound, bound) from rng. */
ad_status ad__nn_uniform_param(ad_module *m, const char *name, ad_dtype dtype, int ndim,
                               const int64_t *shape, double bound, ad_rng *rng)
{
    ad_tensor *t;
    ad_status st = ad_module_create_param(m, name, dtype, ndim, shape, &t);
    return st == AD_OK ? ad_init_uniform(t, -bound, bound, rng) : st;
}
