/* Gradient-check cases for the shape and indexing family (src/ops/shape.c).
 * The ops are linear, so their second derivatives in x are zero; the
 * gradgradcheck still matters: it differentiates each backward rule in the
 * seed, which runs the adjoint partner (slice <-> slice_scatter, index_select
 * <-> index_add, gather <-> scatter_add) and where's where-of-the-gradient.
 * stack is a composition (reshape + concat) filed under "concat". Cases
 * multiply the result by a nonlinear function of an input where that makes
 * the second derivative non-zero (the "* x" and "squared" cases). */
#include "grad_cases.h"

#include <stddef.h>

/* ---- reshape and expand: a target shape ---------------------------------------------- */

typedef struct shape_ctx {
    int ndim;
    int64_t shape[AD_MAX_DIMS];
} shape_ctx;

static ad_tensor *f_reshape(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const shape_ctx *s = ctx;
    (void)tape, (void)n;
    return ad_reshape(in[0], s->ndim, s->shape);
}

static ad_tensor *f_expand(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const shape_ctx *s = ctx;
    (void)tape, (void)n;
    return ad_expand(in[0], s->ndim, s->shape);
}

/* expand(x)^2: the gradient depends on x, so the second order is not zero. */
static ad_tensor *f_expand_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_expand(tape, n, in, ctx));
}

static const shape_ctx to_3x2 = {2, {3, 2}};
static const shape_ctx to_flat = {1, {-1}};
static const shape_ctx to_1x2x1x3 = {4, {1, 2, 1, 3}};
static const shape_ctx to_2x_infer = {2, {2, -1}};
static const shape_ctx to_one = {1, {1}};
static const shape_ctx to_scalar = {0, {0}};
static const shape_ctx to_2x3 = {2, {2, 3}};
static const shape_ctx to_2x3x4 = {3, {2, 3, 4}};
static const shape_ctx to_4x2x3 = {3, {4, 2, 3}};
static const shape_ctx to_2x2 = {2, {2, 2}};

/* ---- slice and slice_scatter ------------------------------------------------------------ */

typedef struct slice_ctx {
    int axis;
    int64_t start, stop, step;
} slice_ctx;

typedef struct scatter_ctx {
    int axis;
    int64_t length, start, step;
} scatter_ctx;

static ad_tensor *f_slice(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const slice_ctx *s = ctx;
    (void)tape, (void)n;
    return ad_slice(in[0], s->axis, s->start, s->stop, s->step);
}

/* slice(x) * slice(x): slices of one input used twice, nonlinear. */
static ad_tensor *f_slice_product(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    ad_tensor *head = ad_slice(in[0], 0, 0, 2, 1);
    ad_tensor *tail = ad_slice(in[0], 0, -2, INT64_MAX, 1);
    return ad_mul(head, tail);
}

static ad_tensor *f_slice_scatter(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const scatter_ctx *s = ctx;
    (void)tape, (void)n;
    return ad_slice_scatter(in[0], s->axis, s->length, s->start, s->step);
}

/* slice_scatter(x) * y: the scattered x meets a second input. */
static ad_tensor *f_slice_scatter_times(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_mul(f_slice_scatter(tape, n, in, ctx), in[1]);
}

static const slice_ctx sl_rows_1_3 = {0, 1, 3, 1};
static const slice_ctx sl_step2 = {1, 0, 5, 2};
static const slice_ctx sl_neg_axis_neg_start = {-1, -3, -1, 1};
static const slice_ctx sl_step3_clamped = {1, -100, 100, 3};
static const slice_ctx sl_middle_3d = {1, 1, 4, 2};
static const slice_ctx sl_empty = {0, 2, 1, 1};
static const slice_ctx sl_size1 = {1, 0, 1, 1};
static const scatter_ctx sc_into_5 = {0, 5, 1, 1};
static const scatter_ctx sc_step2 = {-1, 7, 1, 2};
static const scatter_ctx sc_middle_3d = {1, 6, 0, 3};
static const scatter_ctx sc_same_length = {0, 3, 0, 1};

/* ---- concat and stack: n inputs, one axis ----------------------------------------------- */

static ad_tensor *f_concat(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const int *axis = ctx;
    (void)tape;
    return ad_concat(n, in, *axis);
}

/* concat(x, x, y): one input used twice gets both slices' gradients. */
static ad_tensor *f_concat_repeated(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const int *axis = ctx;
    ad_tensor *parts[3] = {in[0], in[0], in[1]};
    (void)tape, (void)n;
    return ad_concat(3, parts, *axis);
}

/* concat(x, y) squared. */
static ad_tensor *f_concat_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_concat(tape, n, in, ctx));
}

static ad_tensor *f_stack(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const int *axis = ctx;
    (void)tape;
    return ad_stack(n, in, *axis);
}

static const int axis_0 = 0;
static const int axis_1 = 1;
static const int axis_2 = 2;
static const int axis_neg1 = -1;
static const int axis_neg2 = -2;

/* ---- index_select and index_add ---------------------------------------------------------- */

typedef struct index_ctx {
    int axis;
    int64_t length; /* index_add only */
    size_t n;
    int64_t index[8];
} index_ctx;

static ad_tensor *f_index_select(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const index_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_index_select(in[0], c->axis, c->n, c->index);
}

/* index_select(x) * index_select(x): a gather used in a nonlinear product. */
static ad_tensor *f_index_select_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_index_select(tape, n, in, ctx));
}

static ad_tensor *f_index_add(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const index_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_index_add(in[0], c->axis, c->length, c->n, c->index);
}

static ad_tensor *f_index_add_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_index_add(tape, n, in, ctx));
}

static const index_ctx is_rows = {0, 0, 3, {2, 0, 1}};
static const index_ctx is_repeated = {1, 0, 5, {1, 1, 0, 3, 1}};
static const index_ctx is_neg_axis = {-1, 0, 2, {3, 0}};
static const index_ctx is_middle = {1, 0, 4, {2, 2, 0, 1}};
static const index_ctx is_none = {0, 0, 0, {0}};
static const index_ctx ia_rows = {0, 5, 3, {4, 0, 2}};
static const index_ctx ia_repeated = {1, 3, 4, {2, 0, 2, 2}};
static const index_ctx ia_neg_axis = {-2, 4, 3, {3, 3, 1}};

/* ---- gather and scatter_add ---------------------------------------------------------------- */

typedef struct gather_ctx {
    int axis, ndim;
    int64_t shape[AD_MAX_DIMS]; /* gather: index shape; scatter_add: x_shape */
    int64_t index[24];
} gather_ctx;

static ad_tensor *f_gather(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const gather_ctx *g = ctx;
    (void)tape, (void)n;
    return ad_gather(in[0], g->axis, g->ndim, g->shape, g->index);
}

static ad_tensor *f_gather_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_gather(tape, n, in, ctx));
}

static ad_tensor *f_scatter_add(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const gather_ctx *g = ctx;
    (void)tape, (void)n;
    return ad_scatter_add(in[0], g->axis, g->ndim, g->shape, g->index);
}

static ad_tensor *f_scatter_add_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_scatter_add(tape, n, in, ctx));
}

/* x [3,4], axis 1, index [3,2]: two picks per row, one repeated. */
static const gather_ctx ga_rows = {1, 2, {3, 2}, {3, 0, 1, 1, 2, 0}};
/* x [3,4], axis 0, index [2,4]: down the columns. */
static const gather_ctx ga_cols = {0, 2, {2, 4}, {2, 0, 1, 2, 0, 0, 2, 1}};
/* x [3,4], axis -1, index [2,3] smaller than x on dim 0 and 1. */
static const gather_ctx ga_smaller = {-1, 2, {2, 3}, {3, 3, 0, 1, 2, 3}};
/* x [2,3,2], axis 1, index [2,5,2]: longer than x along the axis. */
static const gather_ctx ga_3d = {
    1, 3, {2, 5, 2}, {0, 2, 1, 1, 2, 0, 0, 0, 1, 2, 2, 2, 0, 1, 1, 0, 2, 1, 0, 0}};
/* src [3,2] into x [3,4] along axis 1, two slots in row 1 the same. */
static const gather_ctx sa_rows = {1, 2, {3, 4}, {3, 0, 2, 2, 1, 3}};
/* src [2,3] into x [4,3] along axis 0 (index has src's shape). */
static const gather_ctx sa_cols = {0, 2, {4, 3}, {3, 0, 3, 3, 1, 0}};
/* src [2,2,2] into x [2,3,3] along axis -2: smaller on the last dim. */
static const gather_ctx sa_3d = {-2, 3, {2, 3, 3}, {0, 2, 2, 2, 1, 0, 1, 1}};

/* ---- where: cond is static data, a and b are the inputs ---------------------------------- */

typedef struct where_ctx {
    int ndim;
    int64_t shape[AD_MAX_DIMS];
    double cond[12];
} where_ctx;

static ad_tensor *cond_of(ad_tape *tape, const where_ctx *w)
{
    return ad_tape_tensor_from_doubles(tape, AD_F64, w->ndim, w->shape, w->cond);
}

static ad_tensor *f_where(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    return ad_where(cond_of(tape, ctx), in[0], in[1]);
}

/* where(c, a^2, b * a): both branches depend on a, nonlinearly. */
static ad_tensor *f_where_nonlinear(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)n;
    return ad_where(cond_of(tape, ctx), ad_square(in[0]), ad_mul(in[1], in[0]));
}

static const where_ctx wh_same = {2, {2, 3}, {1, 0, 0, 1, 1, 0}};
static const where_ctx wh_row = {1, {3}, {0, 1, 1}}; /* cond [3] on a, b [2,3] */
static const where_ctx wh_col = {2, {2, 1}, {1, 0}}; /* cond [2,1] */
static const where_ctx wh_full = {3, {2, 2, 3}, {1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0}};
static const where_ctx wh_scalar = {0, {0}, {1}};              /* a 0-d cond */
static const where_ctx wh_nonzero = {1, {4}, {-2, 0, 0.5, 0}}; /* any nonzero is true */

/* ---- Compositions (issue 11): rows filed under the primitive carrying the gradient ----- */

/* The attributes of one composition: axes, counts, sizes, shifts or pads. */
typedef struct comp_ctx {
    int a, b;     /* axes, offsets or a count */
    int n;        /* entries of v and axes */
    int64_t v[8]; /* sizes, shifts, repeats or pads */
    int axes[8];
    double value; /* pad's constant */
} comp_ctx;

static ad_tensor *f_squeeze(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_squeeze(in[0], c->n, c->axes);
}

/* unsqueeze(x) * x broadcast: the second order is not zero. */
static ad_tensor *f_unsqueeze_times(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_mul(ad_unsqueeze(in[0], c->a), in[0]);
}

static ad_tensor *f_flatten(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_flatten(in[0], c->a, c->b);
}

static ad_tensor *f_unflatten(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_unflatten(in[0], c->a, c->n, c->v);
}

/* expand_as(x, y) * y: y gives only its shape to the expand, and a factor. */
static ad_tensor *f_expand_as_times(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_mul(ad_expand_as(in[0], in[1]), in[1]);
}

/* The pieces weighted 1, 2, 3, ... and joined again: each piece's gradient differs. */
static ad_tensor *join_weighted(size_t k, ad_tensor **pieces, int axis)
{
    for (size_t i = 0; i < k; i++)
        pieces[i] = ad_mul_scalar(pieces[i], (double)(i + 1));
    return ad_concat(k, pieces, axis);
}

static ad_tensor *f_split(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    ad_tensor *pieces[8];
    (void)tape, (void)n;
    size_t k = ad_split(in[0], c->a, c->v[0], 8, pieces);
    return k ? join_weighted(k, pieces, c->a) : NULL;
}

static ad_tensor *f_split_sizes(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    ad_tensor *pieces[8];
    (void)tape, (void)n;
    size_t k = ad_split_sizes(in[0], c->a, (size_t)c->n, c->v, pieces);
    return k ? join_weighted(k, pieces, c->a) : NULL;
}

/* The first chunk times the last, squared pieces in between unused. */
static ad_tensor *f_chunk_product(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    ad_tensor *pieces[8];
    (void)tape, (void)n;
    size_t k = ad_chunk(in[0], c->a, (size_t)c->b, pieces);
    return k ? ad_mul(pieces[0], pieces[k - 1]) : NULL;
}

static ad_tensor *f_unbind(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    ad_tensor *pieces[8];
    (void)tape, (void)n;
    size_t k = ad_unbind(in[0], c->a, 8, pieces);
    for (size_t i = 0; i < k; i++)
        pieces[i] = ad_mul_scalar(pieces[i], (double)(i + 1));
    return k ? ad_stack(k, pieces, c->b) : NULL;
}

/* unbind(x)[0] * unbind(x)[1]: two rows of one input, nonlinear. */
static ad_tensor *f_unbind_product(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    ad_tensor *pieces[8];
    (void)tape, (void)n;
    size_t k = ad_unbind(in[0], c->a, 8, pieces);
    return k >= 2 ? ad_mul(pieces[0], pieces[1]) : NULL;
}

static const comp_ctx sq_all = {.n = 0};
static const comp_ctx sq_axis1 = {.n = 1, .axes = {1}};
static const comp_ctx sq_neg_and_non1 = {.n = 2, .axes = {-1, 0}};
static const comp_ctx unsq_0 = {.a = 0};
static const comp_ctx unsq_neg1 = {.a = -1};
static const comp_ctx fl_1_2 = {.a = 1, .b = 2};
static const comp_ctx fl_all = {.a = 0, .b = -1};
static const comp_ctx unfl_1 = {.a = 1, .n = 2, .v = {2, -1}};
static const comp_ctx unfl_neg1 = {.a = -1, .n = 3, .v = {1, 3, 2}};
static const comp_ctx split_2_axis0 = {.a = 0, .v = {2}};
static const comp_ctx split_4_axis_neg1 = {.a = -1, .v = {4}};
static const comp_ctx split_sizes_1_0_3 = {.a = 1, .n = 3, .v = {1, 0, 3}};
static const comp_ctx chunk_3_axis1 = {.a = 1, .b = 3};
static const comp_ctx chunk_2_axis0 = {.a = 0, .b = 2};
static const comp_ctx unbind_0_stack_1 = {.a = 0, .b = 1};
static const comp_ctx unbind_neg1 = {.a = -1, .b = 0};

static ad_tensor *f_repeat(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_repeat(in[0], c->n, c->v);
}

static ad_tensor *f_repeat_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_repeat(tape, n, in, ctx));
}

/* flip(x) * x: each entry meets its mirror, so the second order is not zero. */
static ad_tensor *f_flip_times(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_mul(ad_flip(in[0], c->n, c->axes), in[0]);
}

/* roll(x) * x; c->b set: no axes (rolled flattened). */
static ad_tensor *f_roll_times(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_mul(ad_roll(in[0], c->n, c->v, c->b ? NULL : c->axes), in[0]);
}

static ad_tensor *f_pad(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_pad(in[0], c->n, c->v, (ad_pad_mode)c->a, c->value);
}

static ad_tensor *f_pad_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_pad(tape, n, in, ctx));
}

/* tril (c->b set) or triu of x, times x. */
static ad_tensor *f_triangle_times(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    ad_tensor *t = c->b ? ad_tril(in[0], c->a) : ad_triu(in[0], c->a);
    return ad_mul(t, in[0]);
}

static ad_tensor *f_diagonal(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    const comp_ctx *c = ctx;
    (void)tape, (void)n;
    return ad_diagonal(in[0], c->v[0], c->a, c->b);
}

static ad_tensor *f_diagonal_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    return ad_square(f_diagonal(tape, n, in, ctx));
}

/* trace(x)^2 */
static ad_tensor *f_trace_squared(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_square(ad_trace(in[0]));
}

static ad_tensor *f_outer(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)ctx;
    return ad_outer(in[0], in[n - 1]);
}

static const comp_ctx rep_2_1_2 = {.n = 3, .v = {2, 1, 2}};
static const comp_ctx rep_0d = {.n = 2, .v = {2, 3}};
static const comp_ctx rep_3_2 = {.n = 2, .v = {3, 2}};
static const comp_ctx flip_0_1 = {.n = 2, .axes = {0, 1}};
static const comp_ctx flip_neg1 = {.n = 1, .axes = {-1}};
static const comp_ctx flip_0 = {.n = 1, .axes = {0}};
static const comp_ctx flip_1 = {.n = 1, .axes = {1}};
static const comp_ctx flip_all = {.n = 3, .axes = {2, 0, 1}};
static const comp_ctx roll_flat = {.n = 1, .b = 1, .v = {4}};
static const comp_ctx roll_two_axes = {.n = 2, .v = {1, -4}, .axes = {0, 1}};
static const comp_ctx roll_same_axis = {.n = 2, .v = {1, 1}, .axes = {-1, -1}};
static const comp_ctx roll_0 = {.n = 1, .v = {2}, .axes = {0}};
static const comp_ctx roll_1_2 = {.n = 2, .v = {-1, 5}, .axes = {1, 2}};
static const comp_ctx pad_const = {.a = AD_PAD_CONSTANT, .n = 2, .v = {1, 2}, .value = 0.5};
static const comp_ctx pad_const_crop = {.a = AD_PAD_CONSTANT, .n = 4, .v = {-1, 1, 1, 0}};
static const comp_ctx pad_reflect = {.a = AD_PAD_REFLECT, .n = 4, .v = {2, 1, 1, 0}};
static const comp_ctx pad_replicate = {.a = AD_PAD_REPLICATE, .n = 4, .v = {2, 2, 0, 1}};
static const comp_ctx pad_circular = {.a = AD_PAD_CIRCULAR, .n = 2, .v = {1, 3}};
static const comp_ctx tril_1 = {.a = 1, .b = 1};
static const comp_ctx triu_neg1 = {.a = -1, .b = 0};
static const comp_ctx diag_1 = {.a = 0, .b = 1, .v = {1}};
static const comp_ctx diag_neg1_0_2 = {.a = 0, .b = 2, .v = {-1}};
static const comp_ctx diag_neg_axes = {.a = -1, .b = -2, .v = {0}};

static ad_tensor *f_einsum(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape;
    return ad_einsum(ctx, n, in);
}

/* One input used as both operands: einsum(x, x) is quadratic in x. */
static ad_tensor *f_einsum_twice(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    ad_tensor *both[2] = {in[0], in[0]};
    (void)tape, (void)n;
    return ad_einsum(ctx, 2, both);
}

/* The table is aligned by hand. */
// clang-format off
#define ONE(d0, ...) .n_inputs = 1, .ndim = {d0}, .shape = {{__VA_ARGS__}}
#define SHAPE(...) {__VA_ARGS__}

const grad_case cases_shape[] = {
    /* reshape */
    {.op = "reshape", .name = "[2,3] -> [3,2]", .f = f_reshape, .ctx = (void *)&to_3x2,
     ONE(2, 2, 3)},
    {.op = "reshape", .name = "[2,3] -> [-1] (inferred)", .f = f_reshape, .ctx = (void *)&to_flat,
     ONE(2, 2, 3)},
    {.op = "reshape", .name = "[6] -> [1,2,1,3] (size-1 dims)", .f = f_reshape,
     .ctx = (void *)&to_1x2x1x3, ONE(1, 6)},
    {.op = "reshape", .name = "[3,2,2] -> [2,-1]", .f = f_reshape, .ctx = (void *)&to_2x_infer,
     ONE(3, 3, 2, 2)},
    {.op = "reshape", .name = "0-d -> [1]", .f = f_reshape, .ctx = (void *)&to_one, ONE(0, 0)},
    {.op = "reshape", .name = "[1,1] -> 0-d", .f = f_reshape, .ctx = (void *)&to_scalar,
     ONE(2, 1, 1)},

    /* expand */
    {.op = "expand", .name = "[3] -> [2,3] (added leading dim)", .f = f_expand,
     .ctx = (void *)&to_2x3, ONE(1, 3)},
    {.op = "expand", .name = "[2,1] -> [2,3] (size-1 dim)", .f = f_expand,
     .ctx = (void *)&to_2x3, ONE(2, 2, 1)},
    {.op = "expand", .name = "[1] -> [2,3,4]", .f = f_expand, .ctx = (void *)&to_2x3x4,
     ONE(1, 1)},
    {.op = "expand", .name = "[1,3,1] -> [2,3,4] (leading and trailing)", .f = f_expand,
     .ctx = (void *)&to_2x3x4, ONE(3, 1, 3, 1)},
    {.op = "expand", .name = "[2,1] -> [4,2,3] (leading dim and size-1 dim)", .f = f_expand,
     .ctx = (void *)&to_4x2x3, ONE(2, 2, 1)},
    {.op = "expand", .name = "0-d -> [2,2]", .f = f_expand, .ctx = (void *)&to_2x2, ONE(0, 0)},
    {.op = "expand", .name = "expand([1,3] -> [2,3]) squared", .f = f_expand_squared,
     .ctx = (void *)&to_2x3, ONE(2, 1, 3)},

    /* slice */
    {.op = "slice", .name = "rows 1:3 of [4,3]", .f = f_slice, .ctx = (void *)&sl_rows_1_3,
     ONE(2, 4, 3)},
    {.op = "slice", .name = "0:5:2 along axis 1 of [2,5]", .f = f_slice,
     .ctx = (void *)&sl_step2, ONE(2, 2, 5)},
    {.op = "slice", .name = "-3:-1 along axis -1 of [2,4]", .f = f_slice,
     .ctx = (void *)&sl_neg_axis_neg_start, ONE(2, 2, 4)},
    {.op = "slice", .name = "-100:100:3 (clamped) along axis 1 of [2,7]", .f = f_slice,
     .ctx = (void *)&sl_step3_clamped, ONE(2, 2, 7)},
    {.op = "slice", .name = "1:4:2 along axis 1 of [2,5,3]", .f = f_slice,
     .ctx = (void *)&sl_middle_3d, ONE(3, 2, 5, 3)},
    {.op = "slice", .name = "2:1 is empty, of [3,2]", .f = f_slice, .ctx = (void *)&sl_empty,
     ONE(2, 3, 2)},
    {.op = "slice", .name = "0:1 of a size-1 axis of [3,1,2]", .f = f_slice,
     .ctx = (void *)&sl_size1, ONE(3, 3, 1, 2)},
    {.op = "slice", .name = "x[0:2] * x[-2:] of [3,2] (overlapping)", .f = f_slice_product,
     ONE(2, 3, 2)},

    /* slice_scatter */
    {.op = "slice_scatter", .name = "[3,2] into length 5 at 1", .f = f_slice_scatter,
     .ctx = (void *)&sc_into_5, ONE(2, 3, 2)},
    {.op = "slice_scatter", .name = "[2,3] into length 7 at 1 step 2, axis -1",
     .f = f_slice_scatter, .ctx = (void *)&sc_step2, ONE(2, 2, 3)},
    {.op = "slice_scatter", .name = "[2,2,3] into length 6 at 0 step 3, axis 1",
     .f = f_slice_scatter, .ctx = (void *)&sc_middle_3d, ONE(3, 2, 2, 3)},
    {.op = "slice_scatter", .name = "[3] into length 3 (a copy)", .f = f_slice_scatter,
     .ctx = (void *)&sc_same_length, ONE(1, 3)},
    {.op = "slice_scatter", .name = "scatter([2,3] -> [7] step 2) * y [2,7]",
     .f = f_slice_scatter_times, .ctx = (void *)&sc_step2, .n_inputs = 2, .ndim = {2, 2},
     .shape = {SHAPE(2, 3), SHAPE(2, 7)}},

    /* concat */
    {.op = "concat", .name = "[2,3] and [1,3] along 0", .f = f_concat, .ctx = (void *)&axis_0,
     .n_inputs = 2, .ndim = {2, 2}, .shape = {SHAPE(2, 3), SHAPE(1, 3)}},
    {.op = "concat", .name = "[2,1], [2,3], [2,2] along -1", .f = f_concat,
     .ctx = (void *)&axis_neg1, .n_inputs = 3, .ndim = {2, 2, 2},
     .shape = {SHAPE(2, 1), SHAPE(2, 3), SHAPE(2, 2)}},
    {.op = "concat", .name = "[2,2,3] and [2,1,3] along 1", .f = f_concat,
     .ctx = (void *)&axis_1, .n_inputs = 2, .ndim = {3, 3},
     .shape = {SHAPE(2, 2, 3), SHAPE(2, 1, 3)}},
    {.op = "concat", .name = "one input [3]", .f = f_concat, .ctx = (void *)&axis_0,
     ONE(1, 3)},
    {.op = "concat", .name = "[2,0] and [2,3] along 1 (an empty part)", .f = f_concat,
     .ctx = (void *)&axis_1, .n_inputs = 2, .ndim = {2, 2}, .shape = {SHAPE(2, 0), SHAPE(2, 3)}},
    {.op = "concat", .name = "(x, x, y) along 0: x used twice", .f = f_concat_repeated,
     .ctx = (void *)&axis_0, .n_inputs = 2, .ndim = {2, 2}, .shape = {SHAPE(1, 2), SHAPE(2, 2)}},
    {.op = "concat", .name = "concat([2],[3]) squared", .f = f_concat_squared,
     .ctx = (void *)&axis_0, .n_inputs = 2, .ndim = {1, 1}, .shape = {SHAPE(2), SHAPE(3)}},

    /* stack: reshape + concat */
    {.op = "concat", .name = "stack of [2,3] x2 along 0", .f = f_stack, .ctx = (void *)&axis_0,
     .n_inputs = 2, .ndim = {2, 2}, .shape = {SHAPE(2, 3), SHAPE(2, 3)}},
    {.op = "concat", .name = "stack of [2,3] x3 along -1 (new last axis)", .f = f_stack,
     .ctx = (void *)&axis_neg1, .n_inputs = 3, .ndim = {2, 2, 2},
     .shape = {SHAPE(2, 3), SHAPE(2, 3), SHAPE(2, 3)}},
    {.op = "concat", .name = "stack of [2,3] x2 along 2 (= ndim)", .f = f_stack,
     .ctx = (void *)&axis_2, .n_inputs = 2, .ndim = {2, 2}, .shape = {SHAPE(2, 3), SHAPE(2, 3)}},
    {.op = "concat", .name = "stack of [3] x2 along -2", .f = f_stack, .ctx = (void *)&axis_neg2,
     .n_inputs = 2, .ndim = {1, 1}, .shape = {SHAPE(3), SHAPE(3)}},
    {.op = "concat", .name = "stack of 0-d x3 along 0", .f = f_stack, .ctx = (void *)&axis_0,
     .n_inputs = 3, .ndim = {0, 0, 0}},

    /* index_select */
    {.op = "index_select", .name = "rows {2,0,1} of [3,2]", .f = f_index_select,
     .ctx = (void *)&is_rows, ONE(2, 3, 2)},
    {.op = "index_select", .name = "repeated {1,1,0,3,1} along 1 of [2,4]", .f = f_index_select,
     .ctx = (void *)&is_repeated, ONE(2, 2, 4)},
    {.op = "index_select", .name = "{3,0} along -1 of [2,3,4]", .f = f_index_select,
     .ctx = (void *)&is_neg_axis, ONE(3, 2, 3, 4)},
    {.op = "index_select", .name = "no indices, of [3,2]", .f = f_index_select,
     .ctx = (void *)&is_none, ONE(2, 3, 2)},
    {.op = "index_select", .name = "repeated {2,2,0,1} along 1 of [2,3,2], squared",
     .f = f_index_select_squared, .ctx = (void *)&is_middle, ONE(3, 2, 3, 2)},

    /* index_add */
    {.op = "index_add", .name = "[3,2] into length 5 at {4,0,2}", .f = f_index_add,
     .ctx = (void *)&ia_rows, ONE(2, 3, 2)},
    {.op = "index_add", .name = "repeated {2,0,2,2} along 1 of [2,4] into 3", .f = f_index_add,
     .ctx = (void *)&ia_repeated, ONE(2, 2, 4)},
    {.op = "index_add", .name = "{3,3,1} along -2 of [2,3,2] into 4", .f = f_index_add,
     .ctx = (void *)&ia_neg_axis, ONE(3, 2, 3, 2)},
    {.op = "index_add", .name = "repeated {2,0,2,2} into 3, squared", .f = f_index_add_squared,
     .ctx = (void *)&ia_repeated, ONE(2, 2, 4)},

    /* gather */
    {.op = "gather", .name = "axis 1 of [3,4], index [3,2]", .f = f_gather,
     .ctx = (void *)&ga_rows, ONE(2, 3, 4)},
    {.op = "gather", .name = "axis 0 of [3,4], index [2,4] (repeats)", .f = f_gather,
     .ctx = (void *)&ga_cols, ONE(2, 3, 4)},
    {.op = "gather", .name = "axis -1 of [3,4], index [2,3] (smaller)", .f = f_gather,
     .ctx = (void *)&ga_smaller, ONE(2, 3, 4)},
    {.op = "gather", .name = "axis 1 of [2,3,2], index [2,5,2] (longer on the axis)",
     .f = f_gather, .ctx = (void *)&ga_3d, ONE(3, 2, 3, 2)},
    {.op = "gather", .name = "axis 0 of [3,4], squared", .f = f_gather_squared,
     .ctx = (void *)&ga_cols, ONE(2, 3, 4)},

    /* scatter_add */
    {.op = "scatter_add", .name = "[3,2] into [3,4] along 1", .f = f_scatter_add,
     .ctx = (void *)&sa_rows, ONE(2, 3, 2)},
    {.op = "scatter_add", .name = "[2,3] into [4,3] along 0 (repeated targets)",
     .f = f_scatter_add, .ctx = (void *)&sa_cols, ONE(2, 2, 3)},
    {.op = "scatter_add", .name = "[2,2,2] into [2,3,3] along -2", .f = f_scatter_add,
     .ctx = (void *)&sa_3d, ONE(3, 2, 2, 2)},
    {.op = "scatter_add", .name = "[2,3] into [4,3], squared", .f = f_scatter_add_squared,
     .ctx = (void *)&sa_cols, ONE(2, 2, 3)},

    /* where */
    {.op = "where", .name = "cond, a, b all [2,3]", .f = f_where, .ctx = (void *)&wh_same,
     .n_inputs = 2, .ndim = {2, 2}, .shape = {SHAPE(2, 3), SHAPE(2, 3)}},
    {.op = "where", .name = "cond [3], a [2,3], b [1]", .f = f_where, .ctx = (void *)&wh_row,
     .n_inputs = 2, .ndim = {2, 1}, .shape = {SHAPE(2, 3), SHAPE(1)}},
    {.op = "where", .name = "cond [2,1], a [3], b [2,3]", .f = f_where, .ctx = (void *)&wh_col,
     .n_inputs = 2, .ndim = {1, 2}, .shape = {SHAPE(3), SHAPE(2, 3)}},
    {.op = "where", .name = "cond [2,2,3], a [2,1,3], b 0-d", .f = f_where,
     .ctx = (void *)&wh_full, .n_inputs = 2, .ndim = {3, 0}, .shape = {SHAPE(2, 1, 3)}},
    {.op = "where", .name = "cond 0-d, a [2], b [3,1]", .f = f_where, .ctx = (void *)&wh_scalar,
     .n_inputs = 2, .ndim = {1, 2}, .shape = {SHAPE(2), SHAPE(3, 1)}},
    {.op = "where", .name = "cond [4] with -2 and 0.5 true, a^2 and b*a", .f = f_where_nonlinear,
     .ctx = (void *)&wh_nonzero, .n_inputs = 2, .ndim = {1, 1}, .shape = {SHAPE(4), SHAPE(4)}},

    /* squeeze, unsqueeze, flatten, unflatten, expand_as: compositions */
    {.op = "reshape", .name = "squeeze all of [1,3,1,2]", .f = f_squeeze, .ctx = (void *)&sq_all,
     ONE(4, 1, 3, 1, 2)},
    {.op = "reshape", .name = "squeeze axis 1 of [2,1,3]", .f = f_squeeze,
     .ctx = (void *)&sq_axis1, ONE(3, 2, 1, 3)},
    {.op = "reshape", .name = "squeeze axes {-1,0} of [2,3,1] (0 is not 1: kept)",
     .f = f_squeeze, .ctx = (void *)&sq_neg_and_non1, ONE(3, 2, 3, 1)},
    {.op = "reshape", .name = "squeeze all of 0-d", .f = f_squeeze, .ctx = (void *)&sq_all,
     ONE(0, 0)},
    {.op = "expand", .name = "unsqueeze([3], 0) * x", .f = f_unsqueeze_times,
     .ctx = (void *)&unsq_0, ONE(1, 3)},
    {.op = "expand", .name = "unsqueeze([3,3], -1) * x", .f = f_unsqueeze_times,
     .ctx = (void *)&unsq_neg1, ONE(2, 3, 3)},
    {.op = "reshape", .name = "flatten [2,3,2,2] dims 1..2", .f = f_flatten,
     .ctx = (void *)&fl_1_2, ONE(4, 2, 3, 2, 2)},
    {.op = "reshape", .name = "flatten 0-d to [1]", .f = f_flatten, .ctx = (void *)&fl_all,
     ONE(0, 0)},
    {.op = "reshape", .name = "unflatten axis 1 of [3,6] to {2,-1}", .f = f_unflatten,
     .ctx = (void *)&unfl_1, ONE(2, 3, 6)},
    {.op = "reshape", .name = "unflatten axis -1 of [2,6] to {1,3,2}", .f = f_unflatten,
     .ctx = (void *)&unfl_neg1, ONE(2, 2, 6)},
    {.op = "expand", .name = "expand_as([3,1], [2,3,4]) * y", .f = f_expand_as_times,
     .n_inputs = 2, .ndim = {2, 3}, .shape = {SHAPE(3, 1), SHAPE(2, 3, 4)}},

    /* split, chunk, unbind: slices */
    {.op = "slice", .name = "split [5,2] in 2s along 0, weighted", .f = f_split,
     .ctx = (void *)&split_2_axis0, ONE(2, 5, 2)},
    {.op = "slice", .name = "split [2,3] in 4s along -1 (one piece)", .f = f_split,
     .ctx = (void *)&split_4_axis_neg1, ONE(2, 2, 3)},
    {.op = "slice", .name = "split [2,4] in sizes {1,0,3} along 1", .f = f_split_sizes,
     .ctx = (void *)&split_sizes_1_0_3, ONE(2, 2, 4)},
    {.op = "slice", .name = "chunk [2,7] in 3 along 1: first * last", .f = f_chunk_product,
     .ctx = (void *)&chunk_3_axis1, ONE(2, 2, 7)},
    {.op = "slice", .name = "chunk [4,3] in 2 along 0: first * last", .f = f_chunk_product,
     .ctx = (void *)&chunk_2_axis0, ONE(2, 4, 3)},
    {.op = "slice", .name = "unbind [3,2] along 0, stacked along 1", .f = f_unbind,
     .ctx = (void *)&unbind_0_stack_1, ONE(2, 3, 2)},
    {.op = "slice", .name = "unbind [2,3,2] along -1: first * second", .f = f_unbind_product,
     .ctx = (void *)&unbind_neg1, ONE(3, 2, 3, 2)},

    /* repeat: expands */
    {.op = "expand", .name = "repeat [2,3] by {2,1,2}", .f = f_repeat, .ctx = (void *)&rep_2_1_2,
     ONE(2, 2, 3)},
    {.op = "expand", .name = "repeat 0-d by {2,3}", .f = f_repeat, .ctx = (void *)&rep_0d,
     ONE(0, 0)},
    {.op = "expand", .name = "repeat [2,1] by {3,2}, squared", .f = f_repeat_squared,
     .ctx = (void *)&rep_3_2, ONE(2, 2, 1)},

    /* flip */
    {.op = "flip", .name = "flip [2,3] over {0,1} * x", .f = f_flip_times,
     .ctx = (void *)&flip_0_1, ONE(2, 2, 3)},
    {.op = "flip", .name = "flip [2,3,4] over -1 * x", .f = f_flip_times,
     .ctx = (void *)&flip_neg1, ONE(3, 2, 3, 4)},
    {.op = "flip", .name = "flip [3,2,4] over 0 (rows of 8) * x", .f = f_flip_times,
     .ctx = (void *)&flip_0, ONE(3, 3, 2, 4)},
    {.op = "flip", .name = "flip [2,3,2] over the middle dim * x", .f = f_flip_times,
     .ctx = (void *)&flip_1, ONE(3, 2, 3, 2)},
    {.op = "flip", .name = "flip [3,1,4] over {2,0,1} * x", .f = f_flip_times,
     .ctx = (void *)&flip_all, ONE(3, 3, 1, 4)},

    /* roll */
    {.op = "roll", .name = "roll [2,3] by 4, flattened, * x", .f = f_roll_times,
     .ctx = (void *)&roll_flat, ONE(2, 2, 3)},
    {.op = "roll", .name = "roll [2,3] by {1,-4} over {0,1} * x", .f = f_roll_times,
     .ctx = (void *)&roll_two_axes, ONE(2, 2, 3)},
    {.op = "roll", .name = "roll [3,4] by {1,1} over {-1,-1} * x", .f = f_roll_times,
     .ctx = (void *)&roll_same_axis, ONE(2, 3, 4)},
    {.op = "roll", .name = "roll [4,3] by 2 over 0 (one run) * x", .f = f_roll_times,
     .ctx = (void *)&roll_0, ONE(2, 4, 3)},
    {.op = "roll", .name = "roll [2,3,4] by {-1,5} over {1,2} * x", .f = f_roll_times,
     .ctx = (void *)&roll_1_2, ONE(3, 2, 3, 4)},

    /* pad */
    {.op = "concat", .name = "pad [2,3] constant 0.5 by (1,2)", .f = f_pad,
     .ctx = (void *)&pad_const, ONE(2, 2, 3)},
    {.op = "concat", .name = "pad [2,3] constant by (-1,1,1,0), squared", .f = f_pad_squared,
     .ctx = (void *)&pad_const_crop, ONE(2, 2, 3)},
    {.op = "index_select", .name = "pad [1,2,3] reflect by (2,1,1,0)", .f = f_pad,
     .ctx = (void *)&pad_reflect, ONE(3, 1, 2, 3)},
    {.op = "index_select", .name = "pad [2,3] replicate by (2,2,0,1), squared",
     .f = f_pad_squared, .ctx = (void *)&pad_replicate, ONE(2, 2, 3)},
    {.op = "index_select", .name = "pad [2,3] circular by (1,3)", .f = f_pad,
     .ctx = (void *)&pad_circular, ONE(2, 2, 3)},

    /* tril, triu: where */
    {.op = "where", .name = "tril [3,4] diagonal 1 * x", .f = f_triangle_times,
     .ctx = (void *)&tril_1, ONE(2, 3, 4)},
    {.op = "where", .name = "triu [2,3,3] diagonal -1 * x (batched)", .f = f_triangle_times,
     .ctx = (void *)&triu_neg1, ONE(3, 2, 3, 3)},

    /* diagonal, trace: strided slices */
    {.op = "slice", .name = "diagonal 1 of [3,4]", .f = f_diagonal, .ctx = (void *)&diag_1,
     ONE(2, 3, 4)},
    {.op = "slice", .name = "diagonal -1 of [3,2,4] dims 0, 2, squared", .f = f_diagonal_squared,
     .ctx = (void *)&diag_neg1_0_2, ONE(3, 3, 2, 4)},
    {.op = "slice", .name = "diagonal of [2,3,3] dims -1, -2", .f = f_diagonal,
     .ctx = (void *)&diag_neg_axes, ONE(3, 2, 3, 3)},
    {.op = "slice", .name = "trace of [3,3], squared", .f = f_trace_squared, ONE(2, 3, 3)},

    /* outer: a product */
    {.op = "mul", .name = "outer [2] and [3]", .f = f_outer, .n_inputs = 2, .ndim = {1, 1},
     .shape = {SHAPE(2), SHAPE(3)}},
    {.op = "mul", .name = "outer(a, a) of [3]", .f = f_outer, ONE(1, 3)},

    /* einsum: diagonals, sums, permutes and batched matmuls */
    {.op = "matmul", .name = "einsum ij,jk->ik", .f = f_einsum, .ctx = "ij,jk->ik",
     .n_inputs = 2, .ndim = {2, 2}, .shape = {SHAPE(2, 3), SHAPE(3, 4)}},
    {.op = "matmul", .name = "einsum bij,bjk->bik", .f = f_einsum, .ctx = "bij,bjk->bik",
     .n_inputs = 2, .ndim = {3, 3}, .shape = {SHAPE(2, 2, 3), SHAPE(2, 3, 2)}},
    {.op = "matmul", .name = "einsum bhqd,bhkd->bhqk", .f = f_einsum, .ctx = "bhqd,bhkd->bhqk",
     .n_inputs = 2, .ndim = {4, 4}, .shape = {SHAPE(2, 2, 3, 4), SHAPE(2, 2, 2, 4)}},
    {.op = "matmul", .name = "einsum i,j->ij (outer)", .f = f_einsum, .ctx = "i,j->ij",
     .n_inputs = 2, .ndim = {1, 1}, .shape = {SHAPE(2), SHAPE(3)}},
    {.op = "matmul", .name = "einsum ij,jk->ki (transposed output)", .f = f_einsum,
     .ctx = "ij,jk->ki", .n_inputs = 2, .ndim = {2, 2}, .shape = {SHAPE(2, 3), SHAPE(3, 2)}},
    {.op = "matmul", .name = "einsum ij,ij-> of x with itself", .f = f_einsum_twice,
     .ctx = "ij,ij->", ONE(2, 2, 3)},
    {.op = "matmul", .name = "einsum ij,jk,kl->il (three operands)", .f = f_einsum,
     .ctx = "ij,jk,kl->il", .n_inputs = 3, .ndim = {2, 2, 2},
     .shape = {SHAPE(2, 3), SHAPE(3, 2), SHAPE(2, 2)}},
    {.op = "matmul", .name = "einsum iij,jk->ik (diagonal, then product)", .f = f_einsum,
     .ctx = "iij,jk->ik", .n_inputs = 2, .ndim = {3, 2}, .shape = {SHAPE(2, 2, 3), SHAPE(3, 2)}},
    {.op = "permute", .name = "einsum ijk->kij", .f = f_einsum, .ctx = "ijk->kij", ONE(3, 2, 3, 4)},
    {.op = "slice", .name = "einsum ii-> (trace) of x with itself", .f = f_einsum_twice,
     .ctx = "ii,jj->", ONE(2, 3, 3)},
    {.op = "slice", .name = "einsum ii->i (diagonal)", .f = f_einsum, .ctx = "ii->i", ONE(2, 3, 3)},
    {.op = "sum", .name = "einsum ij->j (sum)", .f = f_einsum, .ctx = "ij->j", ONE(2, 2, 3)},
};
// clang-format on

const size_t n_cases_shape = sizeof cases_shape / sizeof cases_shape[0];
