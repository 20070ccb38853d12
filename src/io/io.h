/* What the files of src/io/ share (src/io/ only): they report errors into a
 * caller's buffer, which is cleared first, and write only into persistent
 * tensors. */
#ifndef AD_IO_IO_H
#define AD_IO_IO_H

#include "../core/util.h"
#include "autodiff/nn.h"

/* An error buffer holds "" unless the call fails. */
static inline void clear_err(char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = '\0';
}

/* A tensor outside any tape, with memory of its own to write into. */
static inline bool persistent(const ad_tensor *t)
{
    return t && !ad_tensor_tape(t) && ad_tensor_data(t);
}

#endif
