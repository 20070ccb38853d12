/* Instantiates a kernel header once per floating dtype. A source file writes
 *
 *     #define KERNELS "ops/unary_kernels.h"    (a path from src/)
 *     #include "../core/kernels.h"
 *
 * and gets every kernel K(name) of that header twice: name_f32 with T float
 * and name_f64 with T double. A kernel header is plain C over T (a naive loop
 * first, with its shapes in a comment), so the debugger lands on its lines.
 * The op then dispatches on its dtype in one switch with a case per dtype and
 * no default: the library builds with -Werror=switch, so a dtype added to
 * ad_dtype fails to compile wherever it is not handled.
 *
 * With KERNELS_ALL_DTYPES defined as well, the header is also instantiated for
 * the integer dtypes: T int64_t with name_i64, and T bool with name_bool
 * (comparisons, masks, casts).
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

#ifdef KERNELS_ALL_DTYPES
#define T int64_t
#define K(name) name##_i64
#include KERNELS
#undef K
#undef T

#define T bool
#define K(name) name##_bool
#include KERNELS
#undef K
#undef T
#undef KERNELS_ALL_DTYPES
#endif

#undef KERNELS
