/* Convolution and pooling: the primitives conv2d, conv_transpose2d and
 * conv2d_weight, and the functional ops built on them (conv1d, the pools).
 *
 * The three primitives are the three partial derivatives of one trilinear
 * form <dy, conv2d(x, w)>: conv2d gives y from (x, w), conv_transpose2d the
 * x-gradient from (dy, w), conv2d_weight the w-gradient from (x, dy). So each
 * one's backward is made of the other two, and second (or any) order needs
 * nothing more, as with slice and slice_scatter. All three share a geometry
 * (conv_geom) that fixes every size, so none recomputes a window count: a
 * transposed convolution's output_padding needs no special case.
 *
 * Each is one im2col (or col2im) per batch element and one GEMM per group:
 * with m = out channels per group, n = output positions, k = in channels per
 * group times the kernel area. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* Every size of a convolution: x [n, c, h, w], w [o, c / groups, kh, kw],
 * y [n, o, oh, ow], stride (sh, sw), padding (ph, pw), dilation (dh, dw).
 * Max pooling reuses it with n = planes, c = o = 1. Lives in the arena. */
typedef struct conv_geom {
    int64_t n, c, h, w, o, kh, kw, oh, ow;
    int64_t sh, sw, ph, pw, dh, dw, groups;
} conv_geom;

/* The kernels, once per dtype: im2col_f32, col2im_f64, ... */
#define KERNELS "ops/conv_kernels.h"
#include "../core/kernels.h"

static void im2col(ad_dtype dtype, const void *x, const conv_geom *g, void *cols)
{
    switch (dtype) {
    case AD_F32:
        im2col_f32(x, g, cols);
        break;
    case AD_F64:
        im2col_f64(x, g, cols);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

static void col2im(ad_dtype dtype, const void *cols, const conv_geom *g, void *x)
{
    switch (dtype) {
    case AD_F32:
        col2im_f32(cols, g, x);
        break;
    case AD_F64:
        col2im_f64(cols, g, x);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* not a float: refused before any kernel runs */
    }
}

/* The sizes the GEMMs of one batch element use. */
typedef struct conv_dims {
    int64_t cg, og, kg, l; /* channels and outputs per group, rows of cols per group, positions */
    size_t es;             /* element size */
} conv_dims;

static conv_dims dims_of(const conv_geom *g, ad_dtype dtype)
{
    conv_dims d;
    d.cg = g->c / g->groups;
    d.og = g->o / g->groups;
    d.kg = d.cg * g->kh * g->kw;
    d.l = g->oh * g->ow;
    d.es = ad_dtype_size(dtype);
    return d;
}

/* A 1x1 kernel with stride 1 and no padding reads x as its own column matrix
 * (unless a transposed convolution's output_padding made x larger). */
static bool im2col_is_identity(const conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
           g->oh == g->h && g->ow == g->w;
}

/* The column matrix of one batch element (c kh kw, oh ow), in the arena. */
static void *cols_alloc(ad_tensor *y, const conv_geom *g, const conv_dims *d)
{
    return ad__alloc(y->tape, (size_t)(g->c * g->kh * g->kw) * (size_t)d->l * d->es + 1);
}

static ad_tensor *conv_apply(int op, ad_tensor *a, ad_tensor *b, const conv_geom *g)
{
    ad_tensor *src[2] = {a, b};
    ad__param params[AD_NPARAM] = {{.p = (void *)g}};
    return ad__apply(op, 2, src, params);
}

static ad_status shape4(ad_tensor *y, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t s[4] = {d0, d1, d2, d3};
    y->ndim = 4;
    y->shape = ad__copy_i64(y->tape, s, 4);
    return y->shape ? AD_OK : y->tape->status;
}

/* dy = op(da, b) + op(a, db): each primitive is linear in each input. */
static ad_tensor *bilinear_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return ad__add_tangents(t[0] ? ad__reapply(y, 0, t[0]) : NULL,
                            t[1] ? ad__reapply(y, 1, t[1]) : NULL);
}

/* ---- conv2d: y = x (*) w, the cross-correlation of torch.nn.functional.conv2d -----------
 * src: x [n, c, h, w], w [o, c / groups, kh, kw]; param: [0] conv_geom. */
// dx = conv_transpose2d(dy, w)      dw = conv2d_weight(x, dy)
ad_status ad__conv2d_shape(ad_tensor *y)
{
    const conv_geom *g = y->param[0].p;
    return shape4(y, g->n, g->o, g->oh, g->ow);
}

void ad__conv2d_forward(ad_tensor *y)
{
    const conv_geom *g = y->param[0].p;
    ad_dtype dt = (ad_dtype)y->dtype;
    conv_dims d = dims_of(g, dt);
    const char *x = y->src[0]->data, *w = y->src[1]->data;
    char *out = y->data;
    bool identity = im2col_is_identity(g);
    char *cols = identity ? NULL : cols_alloc(y, g, &d);
    if (!identity && !cols)
        return;
    for (int64_t b = 0; b < g->n; b++) {
        const char *xb = x + (size_t)(b * g->c * g->h * g->w) * d.es;
        if (!identity)
            im2col(dt, xb, g, cols);
        const char *c = identity ? xb : cols;
        for (int64_t grp = 0; grp < g->groups; grp++)
            ad__gemm(dt, false, false, d.og, d.l, d.kg, w + (size_t)(grp * d.og * d.kg) * d.es,
                     d.kg, c + (size_t)(grp * d.kg * d.l) * d.es, d.l,
                     out + (size_t)((b * g->o + grp * d.og) * d.l) * d.es, d.l);
    }
}

void ad__conv2d_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    const conv_geom *g = y->param[0].p;
    if (y->src[0]->flags & AD_TF_RECORDED)
        gin[0] = conv_apply(AD_OP_conv_transpose2d, gy, y->src[1], g);
    if (y->src[1]->flags & AD_TF_RECORDED)
        gin[1] = conv_apply(AD_OP_conv2d_weight, y->src[0], gy, g);
}

// dy = conv2d(dx, w) + conv2d(x, dw)
ad_tensor *ad__conv2d_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return bilinear_jvp(y, t);
}

/* ---- conv_transpose2d: the adjoint of conv2d in x ----------------------------------------
 * src: dy [n, o, oh, ow], w [o, c / groups, kh, kw]; y [n, c, h, w]; param: [0] conv_geom. */
// d(dy) = conv2d(dz, w)      dw = conv2d_weight(dz, dy)
ad_status ad__conv_transpose2d_shape(ad_tensor *y)
{
    const conv_geom *g = y->param[0].p;
    return shape4(y, g->n, g->c, g->h, g->w);
}

void ad__conv_transpose2d_forward(ad_tensor *y)
{
    const conv_geom *g = y->param[0].p;
    ad_dtype dt = (ad_dtype)y->dtype;
    conv_dims d = dims_of(g, dt);
    const char *gy = y->src[0]->data, *w = y->src[1]->data;
    char *out = y->data;
    bool identity = im2col_is_identity(g);
    char *cols = identity ? NULL : cols_alloc(y, g, &d);
    if (!identity && !cols)
        return;
    if (!identity)
        memset(out, 0, (size_t)y->numel * d.es);
    for (int64_t b = 0; b < g->n; b++) {
        char *xb = out + (size_t)(b * g->c * g->h * g->w) * d.es;
        char *c = identity ? xb : cols;
        /* cols_g [kg, l] = w_g^T [kg, og] dy_g [og, l] */
        for (int64_t grp = 0; grp < g->groups; grp++)
            ad__gemm(dt, true, false, d.kg, d.l, d.og, w + (size_t)(grp * d.og * d.kg) * d.es, d.kg,
                     gy + (size_t)((b * g->o + grp * d.og) * d.l) * d.es, d.l,
                     c + (size_t)(grp * d.kg * d.l) * d.es, d.l);
        if (!identity)
            col2im(dt, cols, g, xb);
    }
}

void ad__conv_transpose2d_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    const conv_geom *g = y->param[0].p;
    if (y->src[0]->flags & AD_TF_RECORDED)
        gin[0] = conv_apply(AD_OP_conv2d, gy, y->src[1], g);
    if (y->src[1]->flags & AD_TF_RECORDED)
        gin[1] = conv_apply(AD_OP_conv2d_weight, gy, y->src[0], g);
}

// dz = conv_transpose2d(d(dy), w) + conv_transpose2d(dy, dw)
ad_tensor *ad__conv_transpose2d_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return bilinear_jvp(y, t);
}

/* ---- conv2d_weight: the adjoint of conv2d in w -------------------------------------------
 * src: x [n, c, h, w], dy [n, o, oh, ow]; y [o, c / groups, kh, kw]; param: [0] conv_geom. */
// dx = conv_transpose2d(dy, dW)      d(dy) = conv2d(x, dW)
ad_status ad__conv2d_weight_shape(ad_tensor *y)
{
    const conv_geom *g = y->param[0].p;
    return shape4(y, g->o, g->c / g->groups, g->kh, g->kw);
}

void ad__conv2d_weight_forward(ad_tensor *y)
{
    const conv_geom *g = y->param[0].p;
    ad_dtype dt = (ad_dtype)y->dtype;
    conv_dims d = dims_of(g, dt);
    const char *x = y->src[0]->data, *gy = y->src[1]->data;
    char *out = y->data;
    bool identity = im2col_is_identity(g);
    char *cols = identity ? NULL : cols_alloc(y, g, &d);
    if (!identity && !cols)
        return;
    memset(out, 0, (size_t)y->numel * d.es);
    for (int64_t b = 0; b < g->n; b++) {
        const char *xb = x + (size_t)(b * g->c * g->h * g->w) * d.es;
        if (!identity)
            im2col(dt, xb, g, cols);
        const char *c = identity ? xb : cols;
        /* dw_g [og, kg] += dy_g [og, l] cols_g^T [l, kg] */
        for (int64_t grp = 0; grp < g->groups; grp++)
            ad__gemm_accumulate(dt, false, true, d.og, d.kg, d.l,
                                gy + (size_t)((b * g->o + grp * d.og) * d.l) * d.es, d.l,
                                c + (size_t)(grp * d.kg * d.l) * d.es, d.l,
                                out + (size_t)(grp * d.og * d.kg) * d.es, d.kg);
    }
}

void ad__conv2d_weight_backward(ad_tensor *y, ad_tensor *gy, ad_tensor **gin)
{
    const conv_geom *g = y->param[0].p;
    if (y->src[0]->flags & AD_TF_RECORDED)
        gin[0] = conv_apply(AD_OP_conv_transpose2d, y->src[1], gy, g);
    if (y->src[1]->flags & AD_TF_RECORDED)
        gin[1] = conv_apply(AD_OP_conv2d, y->src[0], gy, g);
}

// dW = conv2d_weight(dx, dy) + conv2d_weight(x, d(dy))
ad_tensor *ad__conv2d_weight_jvp(ad_tensor *y, ad_tensor *const *t)
{
    return bilinear_jvp(y, t);
}

/* ---- The functional ops: checked arguments, then the primitives ------------------------- */

ad_conv2d_opts ad_conv2d_defaults(void)
{
    return (ad_conv2d_opts){.stride = {1, 1}, .dilation = {1, 1}, .groups = 1};
}

ad_conv1d_opts ad_conv1d_defaults(void)
{
    return (ad_conv1d_opts){.stride = 1, .dilation = 1, .groups = 1};
}

ad_pool2d_opts ad_pool2d_defaults(int64_t kernel_h, int64_t kernel_w)
{
    return (ad_pool2d_opts){.kernel = {kernel_h, kernel_w},
                            .stride = {kernel_h, kernel_w},
                            .dilation = {1, 1},
                            .count_include_pad = true};
}

/* Each of v[0], v[1] at least min; else fails naming op, the attribute and x's shape. */
static bool check_pair(ad_tape *tape, const char *op, const char *attr, const int64_t *v,
                       int64_t min, const ad_tensor *x)
{
    char s[AD__SHAPE_BUF];
    if (v[0] >= min && v[1] >= min)
        return true;
    ad__fail(tape, AD_ERR_ARG, "%s: %s (%lld, %lld) must be at least %lld (input %s)", op, attr,
             (long long)v[0], (long long)v[1], (long long)min, AD__SHAPE(x, s));
    return false;
}

static bool check_ndim(ad_tape *tape, const char *op, const char *what, const ad_tensor *t,
                       int ndim, const char *layout)
{
    char s[AD__SHAPE_BUF];
    if (t->ndim == ndim)
        return true;
    ad__fail(tape, AD_ERR_SHAPE, "%s: %s must be %dd %s, got shape %s", op, what, ndim, layout,
             AD__SHAPE(t, s));
    return false;
}

static bool check_conv_opts(ad_tape *tape, const char *op, const ad_tensor *x,
                            const ad_conv2d_opts *o)
{
    char s[AD__SHAPE_BUF];
    if (!check_pair(tape, op, "stride", o->stride, 1, x) ||
        !check_pair(tape, op, "dilation", o->dilation, 1, x) ||
        !check_pair(tape, op, "padding", o->padding, 0, x) ||
        !check_pair(tape, op, "output_padding", o->output_padding, 0, x))
        return false;
    if (o->groups >= 1)
        return true;
    ad__fail(tape, AD_ERR_ARG, "%s: groups %lld must be at least 1 (input %s)", op,
             (long long)o->groups, AD__SHAPE(x, s));
    return false;
}

/* The checked geometry of conv2d(x, w) in the arena, for w of shape ws[4];
 * NULL after an error. */
static conv_geom *conv2d_geometry(ad_tape *tape, const char *op, const ad_tensor *x,
                                  const int64_t *ws, const ad_conv2d_opts *o)
{
    char s[AD__SHAPE_BUF], t[AD__SHAPE_BUF];
    if (!check_ndim(tape, op, "input", x, 4, "[N, C, H, W]") || !check_conv_opts(tape, op, x, o))
        return NULL;
    const int64_t *xs = x->shape, groups = o->groups;
    if (xs[1] % groups || ws[0] % groups || ws[1] * groups != xs[1]) {
        ad__fail(tape, AD_ERR_SHAPE,
                 "%s: groups %lld does not fit input %s and weight %s (C and O must be "
                 "divisible by groups, and weight dim 1 must be C / groups)",
                 op, (long long)groups, AD__SHAPE(x, s), ad__shape_str(t, 4, ws));
        return NULL;
    }
    int64_t span_h = xs[2] + 2 * o->padding[0] - o->dilation[0] * (ws[2] - 1) - 1;
    int64_t span_w = xs[3] + 2 * o->padding[1] - o->dilation[1] * (ws[3] - 1) - 1;
    if (ws[2] < 1 || ws[3] < 1 || span_h < 0 || span_w < 0) {
        ad__fail(tape, AD_ERR_SHAPE,
                 "%s: kernel %lldx%lld (dilation %lldx%lld) is larger than the padded input "
                 "%lldx%lld (input %s, weight %s, padding %lldx%lld)",
                 op, (long long)ws[2], (long long)ws[3], (long long)o->dilation[0],
                 (long long)o->dilation[1], (long long)(xs[2] + 2 * o->padding[0]),
                 (long long)(xs[3] + 2 * o->padding[1]), AD__SHAPE(x, s), ad__shape_str(t, 4, ws),
                 (long long)o->padding[0], (long long)o->padding[1]);
        return NULL;
    }
    conv_geom *g = ad__alloc(tape, sizeof *g);
    if (!g)
        return NULL;
    *g = (conv_geom){xs[0],
                     xs[1],
                     xs[2],
                     xs[3],
                     ws[0],
                     ws[2],
                     ws[3],
                     span_h / o->stride[0] + 1,
                     span_w / o->stride[1] + 1,
                     o->stride[0],
                     o->stride[1],
                     o->padding[0],
                     o->padding[1],
                     o->dilation[0],
                     o->dilation[1],
                     groups};
    return g;
}

/* y + b as [O, 1, 1] when b is given; b must be [channels]. */
static ad_tensor *add_bias(ad_tape *tape, const char *op, ad_tensor *y, ad_tensor *b,
                           int64_t channels)
{
    char s[AD__SHAPE_BUF];
    if (!y || !b)
        return y;
    if (b->ndim != 1 || b->shape[0] != channels) {
        ad__fail(tape, AD_ERR_SHAPE, "%s: bias of shape %s, expected [%lld]", op, AD__SHAPE(b, s),
                 (long long)channels);
        return NULL;
    }
    return ad_add(y, ad_reshape(b, 3, (int64_t[]){channels, 1, 1}));
}

static ad_tensor *conv2d_named(const char *op, ad_tensor *x, ad_tensor *w, ad_tensor *b,
                               const ad_conv2d_opts *opts)
{
    ad_tensor *src[3] = {x, w, b};
    ad_tape *tape = ad__inputs_tape(op, b ? 3 : 2, src);
    if (!tape)
        return NULL;
    if (!check_ndim(tape, op, "weight", w, 4, "[O, C / groups, kh, kw]"))
        return NULL;
    ad_conv2d_opts o = opts ? *opts : ad_conv2d_defaults();
    conv_geom *g = conv2d_geometry(tape, op, x, w->shape, &o);
    if (!g)
        return NULL;
    return add_bias(tape, op, conv_apply(AD_OP_conv2d, x, w, g), b, g->o);
}

ad_tensor *ad_conv2d(ad_tensor *x, ad_tensor *w, ad_tensor *b, const ad_conv2d_opts *opts)
{
    return conv2d_named("conv2d", x, w, b, opts);
}

ad_tensor *ad_conv1d(ad_tensor *x, ad_tensor *w, ad_tensor *b, const ad_conv1d_opts *opts)
{
    ad_tensor *src[3] = {x, w, b};
    ad_tape *tape = ad__inputs_tape("conv1d", b ? 3 : 2, src);
    if (!tape)
        return NULL;
    if (!check_ndim(tape, "conv1d", "input", x, 3, "[N, C, L]") ||
        !check_ndim(tape, "conv1d", "weight", w, 3, "[O, C / groups, k]"))
        return NULL;
    ad_conv1d_opts o1 = opts ? *opts : ad_conv1d_defaults();
    ad_conv2d_opts o = {.stride = {1, o1.stride},
                        .padding = {0, o1.padding},
                        .dilation = {1, o1.dilation},
                        .groups = o1.groups};
    const int64_t *xs = x->shape, *ws = w->shape;
    ad_tensor *x4 = ad_reshape(x, 4, (int64_t[]){xs[0], xs[1], 1, xs[2]});
    ad_tensor *w4 = ad_reshape(w, 4, (int64_t[]){ws[0], ws[1], 1, ws[2]});
    ad_tensor *y = conv2d_named("conv1d", x4, w4, b, &o);
    if (!y)
        return NULL;
    return ad_reshape(y, 3, (int64_t[]){y->shape[0], y->shape[1], y->shape[3]});
}

ad_tensor *ad_conv2d_weight(ad_tensor *x, ad_tensor *dy, int64_t kernel_h, int64_t kernel_w,
                            const ad_conv2d_opts *opts)
{
    const char *op = "conv2d_weight";
    char s[AD__SHAPE_BUF], t[AD__SHAPE_BUF];
    ad_tensor *src[2] = {x, dy};
    ad_tape *tape = ad__inputs_tape(op, 2, src);
    if (!tape || !check_ndim(tape, op, "grad_output", dy, 4, "[N, O, Ho, Wo]"))
        return NULL;
    ad_conv2d_opts o = opts ? *opts : ad_conv2d_defaults();
    int64_t groups = o.groups >= 1 ? o.groups : 1; /* a bad groups fails in conv2d_geometry */
    int64_t c = x->ndim == 4 ? x->shape[1] : 0;
    int64_t ws[4] = {dy->shape[1], c / groups, kernel_h, kernel_w};
    conv_geom *g = conv2d_geometry(tape, op, x, ws, &o);
    if (!g)
        return NULL;
    const int64_t *ds = dy->shape;
    if (ds[0] != g->n || ds[2] != g->oh || ds[3] != g->ow) {
        ad__fail(tape, AD_ERR_SHAPE,
                 "%s: grad_output %s does not fit input %s (expected [%lld, O, %lld, %lld])", op,
                 AD__SHAPE(dy, s), AD__SHAPE(x, t), (long long)g->n, (long long)g->oh,
                 (long long)g->ow);
        return NULL;
    }
    return conv_apply(AD_OP_conv2d_weight, x, dy, g);
}

/* The geometry of conv_transpose2d(x, w) as the conv2d it is the adjoint of:
 * that conv2d's input is the result, its output x. */
static conv_geom *transpose_geometry(ad_tape *tape, const ad_tensor *x, const ad_tensor *w,
                                     const ad_conv2d_opts *o)
{
    const char *op = "conv_transpose2d";
    char s[AD__SHAPE_BUF], t[AD__SHAPE_BUF];
    if (!check_ndim(tape, op, "input", x, 4, "[N, C_in, H, W]") ||
        !check_ndim(tape, op, "weight", w, 4, "[C_in, C_out / groups, kh, kw]") ||
        !check_conv_opts(tape, op, x, o))
        return NULL;
    const int64_t *xs = x->shape, *ws = w->shape, groups = o->groups;
    if (xs[1] % groups || ws[0] != xs[1]) {
        ad__fail(tape, AD_ERR_SHAPE,
                 "%s: groups %lld does not fit input %s and weight %s (C_in must be divisible "
                 "by groups and equal weight dim 0)",
                 op, (long long)groups, AD__SHAPE(x, s), AD__SHAPE(w, t));
        return NULL;
    }
    int64_t size[2];
    for (int a = 0; a < 2; a++) {
        int64_t s_a = o->stride[a], d_a = o->dilation[a], op_a = o->output_padding[a];
        if (op_a >= s_a && op_a >= d_a) {
            ad__fail(tape, AD_ERR_ARG,
                     "%s: output_padding (%lld, %lld) must be smaller than the stride or the "
                     "dilation (input %s)",
                     op, (long long)o->output_padding[0], (long long)o->output_padding[1],
                     AD__SHAPE(x, s));
            return NULL;
        }
        size[a] = (xs[2 + a] - 1) * s_a - 2 * o->padding[a] + d_a * (ws[2 + a] - 1) + op_a + 1;
    }
    if (ws[2] < 1 || ws[3] < 1 || size[0] < 1 || size[1] < 1) {
        ad__fail(tape, AD_ERR_SHAPE, "%s: output size %lldx%lld is empty (input %s, weight %s)", op,
                 (long long)size[0], (long long)size[1], AD__SHAPE(x, s), AD__SHAPE(w, t));
        return NULL;
    }
    conv_geom *g = ad__alloc(tape, sizeof *g);
    if (!g)
        return NULL;
    *g = (conv_geom){xs[0],         ws[1] * groups, size[0],        size[1],
                     xs[1],         ws[2],          ws[3],          xs[2],
                     xs[3],         o->stride[0],   o->stride[1],   o->padding[0],
                     o->padding[1], o->dilation[0], o->dilation[1], groups};
    return g;
}

ad_tensor *ad_conv_transpose2d(ad_tensor *x, ad_tensor *w, ad_tensor *b, const ad_conv2d_opts *opts)
{
    ad_tensor *src[3] = {x, w, b};
    ad_tape *tape = ad__inputs_tape("conv_transpose2d", b ? 3 : 2, src);
    if (!tape)
        return NULL;
    ad_conv2d_opts o = opts ? *opts : ad_conv2d_defaults();
    conv_geom *g = transpose_geometry(tape, x, w, &o);
    if (!g)
        return NULL;
    return add_bias(tape, "conv_transpose2d", conv_apply(AD_OP_conv_transpose2d, x, w, g), b, g->c);
}

/* ---- Pooling: compositions over the primitives and the index ops ------------------------ */

/* The checked geometry of a pooling of x [N, C, H, W] as N C planes of one
 * channel, in the arena; NULL after an error. */
static conv_geom *pool_geometry(ad_tape *tape, const char *op, const ad_tensor *x,
                                const ad_pool2d_opts *o)
{
    char s[AD__SHAPE_BUF];
    if (!o) {
        ad__fail(tape, AD_ERR_ARG,
                 "%s: opts is NULL (the kernel size has no default; use "
                 "ad_pool2d_defaults)",
                 op);
        return NULL;
    }
    if (!check_ndim(tape, op, "input", x, 4, "[N, C, H, W]") ||
        !check_pair(tape, op, "kernel", o->kernel, 1, x) ||
        !check_pair(tape, op, "stride", o->stride, 1, x) ||
        !check_pair(tape, op, "dilation", o->dilation, 1, x) ||
        !check_pair(tape, op, "padding", o->padding, 0, x))
        return NULL;
    if (2 * o->padding[0] > o->kernel[0] || 2 * o->padding[1] > o->kernel[1]) {
        ad__fail(tape, AD_ERR_ARG,
                 "%s: padding (%lld, %lld) must be at most half the kernel %lldx%lld (input %s)",
                 op, (long long)o->padding[0], (long long)o->padding[1], (long long)o->kernel[0],
                 (long long)o->kernel[1], AD__SHAPE(x, s));
        return NULL;
    }
    const int64_t *xs = x->shape;
    int64_t span_h = xs[2] + 2 * o->padding[0] - o->dilation[0] * (o->kernel[0] - 1) - 1;
    int64_t span_w = xs[3] + 2 * o->padding[1] - o->dilation[1] * (o->kernel[1] - 1) - 1;
    if (span_h < 0 || span_w < 0) {
        ad__fail(tape, AD_ERR_SHAPE,
                 "%s: kernel %lldx%lld (dilation %lldx%lld) is larger than the padded input "
                 "%lldx%lld (input %s)",
                 op, (long long)o->kernel[0], (long long)o->kernel[1], (long long)o->dilation[0],
                 (long long)o->dilation[1], (long long)(xs[2] + 2 * o->padding[0]),
                 (long long)(xs[3] + 2 * o->padding[1]), AD__SHAPE(x, s));
        return NULL;
    }
    conv_geom *g = ad__alloc(tape, sizeof *g);
    if (!g)
        return NULL;
    *g = (conv_geom){xs[0] * xs[1],
                     1,
                     xs[2],
                     xs[3],
                     1,
                     o->kernel[0],
                     o->kernel[1],
                     span_h / o->stride[0] + 1,
                     span_w / o->stride[1] + 1,
                     o->stride[0],
                     o->stride[1],
                     o->padding[0],
                     o->padding[1],
                     o->dilation[0],
                     o->dilation[1],
                     1};
    return g;
}

static bool is_float(ad_tape *tape, const char *op, const ad_tensor *x)
{
    char s[AD__SHAPE_BUF];
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
    case AD_F64:
        return true;
    case AD_I64:
    case AD_BOOL:
        break;
    }
    ad__fail(tape, AD_ERR_DTYPE, "%s: input %s is %s, not a float (use ad_cast)", op,
             AD__SHAPE(x, s), ad_dtype_name((ad_dtype)x->dtype));
    return false;
}

/* max_pool2d: the argmax of each window (a constant of x), then gather: dx
 * scatters dy to the argmaxes (gather's backward, scatter_add), and its
 * backward gathers again, so every order is exact. */
ad_tensor *ad_max_pool2d(ad_tensor *x, const ad_pool2d_opts *opts)
{
    char s[AD__SHAPE_BUF];
    ad_tape *tape = ad__input_tape(x, "max_pool2d");
    if (!tape || !is_float(tape, "max_pool2d", x))
        return NULL;
    conv_geom *g = pool_geometry(tape, "max_pool2d", x, opts);
    if (!g)
        return NULL;
    int64_t n = x->shape[0], c = x->shape[1], l = g->oh * g->ow;
    int64_t *idx = ad__alloc(tape, (size_t)(n * c * l) * sizeof *idx + 1);
    if (!idx)
        return NULL;
    bool ok = true;
    switch ((ad_dtype)x->dtype) {
    case AD_F32:
        ok = max_pool_argmax_f32(x->data, g, idx);
        break;
    case AD_F64:
        ok = max_pool_argmax_f64(x->data, g, idx);
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* refused by is_float */
    }
    if (!ok) {
        ad__fail(tape, AD_ERR_ARG, "max_pool2d: a window lies wholly in the padding (input %s)",
                 AD__SHAPE(x, s));
        return NULL;
    }
    ad_tensor *flat = ad_reshape(x, 3, (int64_t[]){n, c, g->h * g->w});
    ad_tensor *y = ad_gather(flat, 2, 3, (int64_t[]){n, c, l}, idx);
    return ad_reshape(y, 4, (int64_t[]){n, c, g->oh, g->ow});
}

/* t[i] = value, for the constants below (ad_tensor_set is for persistent tensors). */
static void set_value(ad_tensor *t, int64_t i, double value)
{
    switch ((ad_dtype)t->dtype) {
    case AD_F32:
        ((float *)t->data)[i] = (float)value;
        break;
    case AD_F64:
        ((double *)t->data)[i] = value;
        break;
    case AD_I64:
    case AD_BOOL:
        break; /* the pools refuse these first (is_float) */
    }
}

/* A constant (never recorded) of like's dtype and the given shape, all value. */
static ad_tensor *filled(const ad_tensor *like, int ndim, const int64_t *shape, double value)
{
    ad_tensor *t = ad__new(like->tape, (ad_dtype)like->dtype, ndim, shape);
    for (int64_t i = 0; t && i < t->numel; i++)
        set_value(t, i, value);
    return t;
}

/* avg_pool2d: a conv2d of each plane with a constant kernel of 1 / (kh kw);
 * without count_include_pad, windows that reach into the padding are
 * rescaled by kh kw / (their elements inside the image), a constant. */
ad_tensor *ad_avg_pool2d(ad_tensor *x, const ad_pool2d_opts *opts)
{
    char s[AD__SHAPE_BUF];
    ad_tape *tape = ad__input_tape(x, "avg_pool2d");
    if (!tape || !is_float(tape, "avg_pool2d", x))
        return NULL;
    conv_geom *g = pool_geometry(tape, "avg_pool2d", x, opts);
    if (!g)
        return NULL;
    if (g->dh != 1 || g->dw != 1) {
        ad__fail(tape, AD_ERR_ARG, "avg_pool2d: dilation (%lld, %lld) must be 1 (input %s)",
                 (long long)g->dh, (long long)g->dw, AD__SHAPE(x, s));
        return NULL;
    }
    int64_t area = g->kh * g->kw;
    ad_tensor *w = filled(x, 4, (int64_t[]){1, 1, g->kh, g->kw}, 1.0 / (double)area);
    if (!w)
        return NULL;
    ad_tensor *y =
        conv_apply(AD_OP_conv2d, ad_reshape(x, 4, (int64_t[]){g->n, 1, g->h, g->w}), w, g);
    if (!opts->count_include_pad && (g->ph || g->pw)) {
        ad_tensor *scale = filled(x, 2, (int64_t[]){g->oh, g->ow}, 1.0);
        for (int64_t i = 0; scale && i < g->oh * g->ow; i++) {
            int64_t h0 = i / g->ow * g->sh - g->ph, w0 = i % g->ow * g->sw - g->pw;
            int64_t h1 = h0 + g->kh < g->h ? h0 + g->kh : g->h;
            int64_t w1 = w0 + g->kw < g->w ? w0 + g->kw : g->w;
            int64_t inside = (h1 - (h0 > 0 ? h0 : 0)) * (w1 - (w0 > 0 ? w0 : 0));
            set_value(scale, i, (double)area / (double)inside);
        }
        y = scale ? ad_mul(y, scale) : NULL;
    }
    return ad_reshape(y, 4, (int64_t[]){x->shape[0], x->shape[1], g->oh, g->ow});
}

/* The averaging matrix of adaptive pooling along one axis: a [out, in],
 * row i averaging in[floor(i in / out), ceil((i + 1) in / out)). */
static ad_tensor *adaptive_matrix(const ad_tensor *x, int64_t out, int64_t in)
{
    ad_tensor *a = filled(x, 2, (int64_t[]){out, in}, 0.0);
    for (int64_t i = 0; a && i < out; i++) {
        int64_t start = i * in / out, end = ((i + 1) * in + out - 1) / out;
        for (int64_t j = start; j < end; j++)
            set_value(a, i * in + j, 1.0 / (double)(end - start));
    }
    return a;
}

/* adaptive_avg_pool2d: a window average is separable, so y = A_h x A_w^T with
 * constant averaging matrices: two matmuls, differentiable to any order. */
ad_tensor *ad_adaptive_avg_pool2d(ad_tensor *x, int64_t out_h, int64_t out_w)
{
    char s[AD__SHAPE_BUF];
    ad_tape *tape = ad__input_tape(x, "adaptive_avg_pool2d");
    if (!tape || !is_float(tape, "adaptive_avg_pool2d", x) ||
        !check_ndim(tape, "adaptive_avg_pool2d", "input", x, 4, "[N, C, H, W]"))
        return NULL;
    if (out_h < 1 || out_w < 1 || x->shape[2] < 1 || x->shape[3] < 1) {
        ad__fail(tape, AD_ERR_ARG,
                 "adaptive_avg_pool2d: output size %lldx%lld must be at least 1x1, from a "
                 "nonempty image (input %s)",
                 (long long)out_h, (long long)out_w, AD__SHAPE(x, s));
        return NULL;
    }
    ad_tensor *ah = adaptive_matrix(x, out_h, x->shape[2]);
    ad_tensor *aw = adaptive_matrix(x, out_w, x->shape[3]);
    if (!ah || !aw)
        return NULL;
    return ad_matmul_t(ad_matmul(ah, x), aw, false, true);
}
