/* Instantiates a kernel header once per floating dtype, as src/ops/kernels.h
 * does for the ops and src/nn/kernels.h for the layers (a folder includes
 * private headers only from itself and src/core/util.h, so each has this
 * copy). A file writes
 *
 *     #define KERNELS "data_kernels.h"
 *     #include "kernels.h"
 *
 * and gets every kernel K(name) of that header twice: name_f32 with T float
 * and name_f64 with T double. A kernel header is plain C over T (a naive loop,
 * with its shapes in a comment), so the debugger lands on its lines. The
 * caller dispatches on the dtype in one switch with a case per dtype and no
 * default: the library builds with -Werror=switch, so a dtype added to
 * ad_dtype fails to compile wherever it is not handled.
 *
 * Not include-guarded: it is meant to be included once per kernel header. */
#ifndef KERNELS
#error "define KERNELS as the kernel header to instantiate"
#endif

#define T float
#define K(name) name##_f32
#include KERNELS
#undef K
#undef T

#define T double
#define K(name) name##_f64
#include KERNELS
#undef K
#undef T

#undef KERNELS
