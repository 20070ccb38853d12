/* What the layers need from the module tree beyond layers.h (src/nn/ only). */
#ifndef AD_NN_NN_H
#define AD_NN_NN_H

#include "autodiff/layers.h"

/* Checks that params[0..n) can stand in for the parameters of m (count, then
 * shape and dtype of each, in ad_nn_params order); records the error on tape
 * and returns false when they cannot. */
bool ad__module_params_fit(const ad_module *m, ad_tape *tape, size_t n, ad_tensor *const *params);

#endif
