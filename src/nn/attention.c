/* Attention (scaled dot-product, torch.nn.MultiheadAttention), positions and
 * the transformer encoder layer: compositions of public ops, following torch
 * 1.13's F.multi_head_attention_forward and TransformerEncoderLayer. */
#include "nn.h"

#include "../core/util.h"

#include "autodiff/sequence.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- Scaled dot-product attention --------------------------------------------------------- */

ad_tensor *ad_causal_mask(ad_tape *tape, int64_t l, int64_t s)
{
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (l < 1 || s < 1 || l > (INT64_C(1) << 30) / s) {
        ad_tape_set_error(tape, AD_ERR_ARG, "causal_mask: sizes %lld x %lld", (long long)l,
                          (long long)s);
        return NULL;
    }
    unsigned char *m = ad__malloc((size_t)(l * s));
    if (!m) {
        ad_tape_set_error(tape, AD_ERR_NOMEM, "causal_mask: out of memory for %lld x %lld",
                          (long long)l, (long long)s);
        return NULL;
    }
    for (int64_t i = 0; i < l; i++)
        for (int64_t j = 0; j < s; j++)
            m[i * s + j] = j > i;
    ad_tensor *t = ad_tape_tensor(tape, AD_BOOL, 2, (int64_t[]){l, s}, m);
    ad__free(m);
    return t;
}

/* Reports q, k, v that do not fit attention; returns NULL. */
static ad_tensor *bad_qkv(ad_tape *tape, const ad_tensor *q, const ad_tensor *k, const ad_tensor *v)
{
    char sq[96], sk[96], sv[96];
    ad_shape_string(sq, sizeof sq, ad_tensor_ndim(q), ad_tensor_shape(q));
    ad_shape_string(sk, sizeof sk, ad_tensor_ndim(k), ad_tensor_shape(k));
    ad_shape_string(sv, sizeof sv, ad_tensor_ndim(v), ad_tensor_shape(v));
    ad_tape_set_error(tape, AD_ERR_SHAPE,
                      "scaled_dot_product_attention: q %s, k %s, v %s do not fit (expected "
                      "[..., L, E], [..., S, E], [..., S, Ev])",
                      sq, sk, sv);
    return NULL;
}

/* The scores with the mask applied: bool true = may attend, float added. */
static ad_tensor *apply_mask(ad_tensor *scores, ad_tensor *mask)
{
    if (ad_tensor_dtype(mask) == AD_BOOL)
        return ad_masked_fill(scores, ad_logical_not(mask), -INFINITY);
    return ad_add(scores, mask);
}

ad_tensor *ad_scaled_dot_product_attention(ad_tensor *q, ad_tensor *k, ad_tensor *v,
                                           const ad_sdpa_opts *opts, ad_tensor **weights)
{
    static const ad_sdpa_opts none = {0};
    opts = opts ? opts : &none;
    if (weights)
        *weights = NULL;
    ad_tape *tape = ad_tensor_tape(q) ? ad_tensor_tape(q) : ad_tensor_tape(k);
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (!q || !k || !v) {
        ad_tape_set_error(tape, AD_ERR_NULL, "scaled_dot_product_attention: an input is NULL");
        return NULL;
    }
    if (ad_tensor_ndim(q) < 2 || ad_tensor_ndim(k) < 2 || ad_tensor_ndim(v) < 2 ||
        ad_tensor_dim(q, -1) != ad_tensor_dim(k, -1) ||
        ad_tensor_dim(k, -2) != ad_tensor_dim(v, -2))
        return bad_qkv(tape, q, k, v);
    if (!(opts->dropout_p >= 0 && opts->dropout_p < 1) || (opts->dropout_p > 0 && !opts->rng) ||
        (opts->is_causal && opts->attn_mask)) {
        ad_tape_set_error(tape, AD_ERR_ARG,
                          "scaled_dot_product_attention: dropout_p = %g must be in [0, 1) with an "
                          "ad_rng when > 0, and is_causal takes no attn_mask",
                          opts->dropout_p);
        return NULL;
    }
    int64_t l = ad_tensor_dim(q, -2), s = ad_tensor_dim(k, -2), e = ad_tensor_dim(q, -1);
    double scale = opts->has_scale ? opts->scale : 1.0 / sqrt((double)e);
    ad_tensor *scores = ad_mul_scalar(ad_matmul_t(q, k, false, true), scale);
    if (opts->is_causal)
        scores = ad_masked_fill(scores, ad_causal_mask(tape, l, s), -INFINITY);
    else if (opts->attn_mask)
        scores = apply_mask(scores, opts->attn_mask);
    ad_tensor *w = ad_softmax(scores, -1);
    if (opts->dropout_p > 0)
        w = ad_dropout(w, opts->dropout_p, true, opts->rng);
    ad_tensor *y = ad_matmul(w, v);
    if (weights && y)
        *weights = w;
    return y;
}

/* ---- Multi-head attention ---------------------------------------------------------------- */

typedef struct mha {
    ad_mha_config c;
    bool packed; /* in_proj_weight, else q/k/v_proj_weight */
    ad_rng rng;
} mha;

ad_mha_config ad_mha_defaults(int64_t embed_dim, int64_t num_heads)
{
    return (ad_mha_config){.embed_dim = embed_dim,
                           .num_heads = num_heads,
                           .bias = true,
                           .kdim = embed_dim,
                           .vdim = embed_dim};
}

/* A mask as an additive float mask of dtype: bool true -> -inf, float as is. */
static ad_tensor *additive(ad_tape *tape, ad_tensor *mask, ad_dtype dtype)
{
    if (!mask || ad_tensor_dtype(mask) != AD_BOOL)
        return mask;
    ad_tensor *zero = ad_full(tape, dtype, ad_tensor_ndim(mask), ad_tensor_shape(mask), 0);
    return ad_masked_fill(zero, mask, -INFINITY);
}

/* The additive mask [N or 1, H or 1, L, S] from key_padding_mask [N, S] and
 * attn_mask [L, S] or [N H, L, S] (either NULL); NULL when both are, and
 * after an error (then the tape says which). */
static ad_tensor *merged_mask(ad_tape *tape, const mha *m, ad_tensor *kpm, ad_tensor *am, int64_t n,
                              int64_t l, int64_t s, ad_dtype dtype, bool *failed)
{
    *failed = false;
    bool kpm_ok = !kpm || (ad_tensor_ndim(kpm) == 2 && ad_tensor_dim(kpm, 0) == n &&
                           ad_tensor_dim(kpm, 1) == s);
    bool am_ok =
        !am ||
        (ad_tensor_ndim(am) == 2 && ad_tensor_dim(am, 0) == l && ad_tensor_dim(am, 1) == s) ||
        (ad_tensor_ndim(am) == 3 && ad_tensor_dim(am, 0) == n * m->c.num_heads &&
         ad_tensor_dim(am, 1) == l && ad_tensor_dim(am, 2) == s);
    if (!kpm_ok || !am_ok) {
        const ad_tensor *bad = kpm_ok ? am : kpm;
        char given[96];
        ad_shape_string(given, sizeof given, ad_tensor_ndim(bad), ad_tensor_shape(bad));
        ad_tape_set_error(tape, AD_ERR_SHAPE,
                          "multihead_attention: %s %s does not fit (expected key_padding_mask "
                          "[%lld, %lld], attn_mask [%lld, %lld] or [%lld, %lld, %lld])",
                          kpm_ok ? "attn_mask" : "key_padding_mask", given, (long long)n,
                          (long long)s, (long long)l, (long long)s, (long long)(n * m->c.num_heads),
                          (long long)l, (long long)s);
        *failed = true;
        return NULL;
    }
    ad_tensor *a = additive(tape, am, dtype), *b = additive(tape, kpm, dtype);
    if (a && ad_tensor_ndim(a) == 3)
        a = ad_reshape(a, 4, (int64_t[]){n, m->c.num_heads, l, s});
    if (b)
        b = ad_reshape(b, 4, (int64_t[]){n, 1, 1, s});
    ad_tensor *mask = a && b ? ad_add(a, b) : a ? a : b;
    *failed = (am || kpm) && !mask;
    return mask;
}

/* [N, T, E] -> [N, H, T, E / H]. */
static ad_tensor *split_heads(ad_tensor *x, int64_t heads)
{
    int64_t n = ad_tensor_dim(x, 0), t = ad_tensor_dim(x, 1), e = ad_tensor_dim(x, 2);
    return ad_permute(ad_reshape(x, 4, (int64_t[]){n, t, heads, e / heads}), (int[]){0, 2, 1, 3});
}

/* x [T, N, F] (or [N, T, F] with batch_first) as [N, T, F]; an unbatched
 * [T, F] as [1, T, F]. */
static ad_tensor *batch_major(const mha *m, ad_tensor *x, bool batched)
{
    if (!batched)
        return ad_unsqueeze(x, 0);
    return m->c.batch_first ? x : ad_transpose(x, 0, 1);
}

/* The projections q, k, v [N, H, T, E / H] of query, key, value [N, T, .]. */
static void project_qkv(ad_module_call *call, const mha *m, ad_tensor *const xs[3], bool self,
                        ad_tensor *out[3])
{
    int64_t e = m->c.embed_dim;
    ad_tensor *b = m->c.bias ? ad_module_call_param(call, m->packed ? 1 : 3) : NULL;
    if (m->packed && self) {
        /* Self-attention: one product with the stacked weight, then split. */
        ad_tensor *y = ad_matmul_t(xs[0], ad_module_call_param(call, 0), false, true);
        y = b ? ad_add(y, b) : y;
        for (int i = 0; i < 3; i++)
            out[i] = split_heads(ad_slice(y, -1, i * e, (i + 1) * e, 1), m->c.num_heads);
        return;
    }
    for (int i = 0; i < 3; i++) {
        ad_tensor *w = m->packed ? ad_slice(ad_module_call_param(call, 0), 0, i * e, (i + 1) * e, 1)
                                 : ad_module_call_param(call, (size_t)i);
        ad_tensor *y = ad_matmul_t(xs[i], w, false, true);
        if (b)
            y = ad_add(y, ad_slice(b, 0, i * e, (i + 1) * e, 1));
        out[i] = split_heads(y, m->c.num_heads);
    }
}

/* Checks query [L, N, E], key [S, N, kdim], value [S, N, vdim] (batch first
 * or unbatched alike); *batched tells which. */
static bool qkv_fit(ad_tape *tape, const mha *m, ad_tensor *const xs[3], bool *batched)
{
    int nd = ad_tensor_ndim(xs[0]);
    int64_t feats[3] = {m->c.embed_dim, m->c.kdim, m->c.vdim};
    int bdim = m->c.batch_first ? 0 : 1, tdim = nd == 3 ? 1 - bdim : 0;
    bool ok = nd == 2 || nd == 3;
    for (int i = 0; ok && i < 3; i++)
        ok = ad_tensor_ndim(xs[i]) == nd && ad_tensor_dim(xs[i], -1) == feats[i] &&
             ad_tensor_dim(xs[i], tdim) >= 1 &&
             (nd == 2 || ad_tensor_dim(xs[i], bdim) == ad_tensor_dim(xs[0], bdim)) &&
             (i < 2 || ad_tensor_dim(xs[2], tdim) == ad_tensor_dim(xs[1], tdim));
    *batched = nd == 3;
    if (ok)
        return ad__nn_same_dtype(tape, "multihead_attention", xs[0], xs[1]) &&
               ad__nn_same_dtype(tape, "multihead_attention", xs[0], xs[2]);
    char s[3][96];
    for (int i = 0; i < 3; i++)
        ad_shape_string(s[i], sizeof s[i], ad_tensor_ndim(xs[i]), ad_tensor_shape(xs[i]));
    ad_tape_set_error(tape, AD_ERR_SHAPE,
                      "multihead_attention: query %s, key %s, value %s do not fit (expected "
                      "[L, N, %lld], [S, N, %lld], [S, N, %lld]%s, or unbatched)",
                      s[0], s[1], s[2], (long long)m->c.embed_dim, (long long)m->c.kdim,
                      (long long)m->c.vdim, m->c.batch_first ? " batch first" : "");
    return false;
}

static ad_status mha_forward_n(ad_module_call *call, size_t n_in, ad_tensor *const *in,
                               size_t n_out, ad_tensor **out)
{
    mha *m = ad_module_call_context(call);
    ad_tape *tape = ad_module_call_tape(call);
    ad_tensor *key = n_in > 1 && in[1] ? in[1] : in[0];
    ad_tensor *xs[3] = {in[0], key, n_in > 2 && in[2] ? in[2] : key};
    bool batched, self = xs[1] == xs[0] && xs[2] == xs[0], failed;
    if (n_in > 5 && in[5])
        return ad_tape_set_error(tape, AD_ERR_ARG, "multihead_attention: takes 5 inputs");
    if (!ad__nn_same_dtype(tape, "multihead_attention", in[0], ad_module_call_param(call, 0)) ||
        !qkv_fit(tape, m, xs, &batched))
        return ad_tape_status(tape);
    for (int i = 0; i < 3; i++)
        xs[i] = batch_major(m, xs[i], batched);
    int64_t n = ad_tensor_dim(xs[0], 0), l = ad_tensor_dim(xs[0], 1), s = ad_tensor_dim(xs[1], 1);
    ad_tensor *kpm = n_in > 3 ? in[3] : NULL, *am = n_in > 4 ? in[4] : NULL;
    if (!batched && kpm)
        kpm = ad_unsqueeze(kpm, 0);
    ad_tensor *mask = merged_mask(tape, m, kpm, am, n, l, s, ad_tensor_dtype(in[0]), &failed);
    if (failed)
        return ad_tape_status(tape);
    ad_tensor *qkv[3];
    project_qkv(call, m, xs, self, qkv);
    bool training = ad_module_training(ad_module_call_module(call));
    ad_sdpa_opts opts = {
        .attn_mask = mask, .dropout_p = training ? m->c.dropout : 0, .rng = &m->rng};
    ad_tensor *w = NULL;
    ad_tensor *y = ad_scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], &opts, &w);
    y = ad_reshape(ad_permute(y, (int[]){0, 2, 1, 3}), 3, (int64_t[]){n, l, m->c.embed_dim});
    y = ad_module_forward_child(call, 0, y);
    if (!y)
        return ad_tape_status(tape);
    out[0] = !batched ? ad_squeeze(y, 1, (int[]){0}) : m->c.batch_first ? y : ad_transpose(y, 0, 1);
    if (n_out > 1) {
        ad_tensor *avg = ad_mean(w, 1, (int[]){1}, false);
        out[1] = batched ? avg : ad_squeeze(avg, 1, (int[]){0});
    }
    return ad_tape_status(tape);
}

static const ad_module_type mha_type = {
    .name = "multihead_attention", .forward_n = mha_forward_n, .free_context = ad__free};

/* Registers the projections (Xavier-uniform weights, zero bias) and out_proj. */
static ad_status mha_params(ad_module *mod, const ad_mha_config *c, bool packed, ad_dtype dtype,
                            ad_rng *rng)
{
    int64_t e = c->embed_dim;
    ad_tensor *t;
    ad_status st = AD_OK;
    if (packed) {
        st = ad_module_create_param(mod, "in_proj_weight", dtype, 2, (int64_t[]){3 * e, e}, &t);
        st = st == AD_OK ? ad_init_xavier_uniform(t, rng) : st;
    } else {
        const char *names[3] = {"q_proj_weight", "k_proj_weight", "v_proj_weight"};
        const int64_t cols[3] = {e, c->kdim, c->vdim};
        for (int i = 0; i < 3 && st == AD_OK; i++) {
            st = ad_module_create_param(mod, names[i], dtype, 2, (int64_t[]){e, cols[i]}, &t);
            st = st == AD_OK ? ad_init_xavier_uniform(t, rng) : st;
        }
    }
    if (st == AD_OK && c->bias)
        st = ad_module_create_param(mod, "in_proj_bias", dtype, 1, (int64_t[]){3 * e}, NULL);
    ad_module *proj = NULL;
    if (st == AD_OK)
        st = ad_nn_linear(&proj, e, e, c->bias, dtype, rng);
    if (st == AD_OK && c->bias) {
        ad_nn_param p[2];
        ad_nn_params(proj, p, 2);
        memset(ad_tensor_data(p[1].tensor), 0, (size_t)e * ad_dtype_size(dtype));
    }
    if (st == AD_OK && (st = ad_module_add_child(mod, "out_proj", proj)) != AD_OK)
        ad_nn_free(proj);
    return st;
}

ad_status ad_nn_multihead_attention(ad_module **out, const ad_mha_config *config, ad_dtype dtype,
                                    ad_rng *rng)
{
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (!config || !rng || config->embed_dim < 1 || config->num_heads < 1 ||
        config->embed_dim % config->num_heads || config->kdim < 1 || config->vdim < 1 ||
        config->embed_dim > INT64_MAX / 4 || !(config->dropout >= 0 && config->dropout < 1))
        return AD_ERR_ARG;
    mha m = {.c = *config,
             .packed = config->kdim == config->embed_dim && config->vdim == config->embed_dim};
    ad_rng_seed(&m.rng, config->seed);
    ad_status st = ad__nn_module_with(out, &mha_type, &m, sizeof m);
    if (st == AD_OK)
        st = mha_params(*out, config, m.packed, dtype, rng);
    return st == AD_OK ? AD_OK : ad__nn_fail_free(out, st);
}

/* ---- Positions ------------------------------------------------------------------------------ */

/* True for float32 and float64, the dtypes positions can be made in. */
static bool is_float_dtype(ad_dtype dtype)
{
    switch (dtype) {
    case AD_F32:
    case AD_F64:
        return true;
    case AD_I64:
    case AD_BOOL:
        break;
    }
    return false;
}

ad_tensor *ad_sinusoidal_positions(ad_tape *tape, int64_t length, int64_t dim, ad_dtype dtype)
{
    if (!tape || ad_tape_status(tape) != AD_OK)
        return NULL;
    if (length < 1 || dim < 1 || length > (INT64_C(1) << 40) / dim || !is_float_dtype(dtype)) {
        ad_tape_set_error(tape, AD_ERR_ARG, "sinusoidal_positions: length %lld, dim %lld, %s",
                          (long long)length, (long long)dim, ad_dtype_name(dtype));
        return NULL;
    }
    double *v = ad__malloc((size_t)(length * dim) * sizeof *v);
    if (!v) {
        ad_tape_set_error(tape, AD_ERR_NOMEM, "sinusoidal_positions: out of memory");
        return NULL;
    }
    for (int64_t p = 0; p < length; p++)
        for (int64_t i = 0; i < dim; i++) {
            double angle = (double)p / pow(10000.0, (double)(i - i % 2) / (double)dim);
            v[p * dim + i] = i % 2 ? cos(angle) : sin(angle);
        }
    ad_tensor *t = ad_tape_tensor_from_doubles(tape, dtype, 2, (int64_t[]){length, dim}, v);
    ad__free(v);
    return t;
}

typedef struct positions {
    int64_t max_len, dim;
    bool batch_first;
} positions;

static ad_tensor *positions_forward(ad_module_call *call, ad_tensor *x)
{
    const positions *p = ad_module_call_context(call);
    ad_tape *tape = ad_module_call_tape(call);
    int nd = ad_tensor_ndim(x), tdim = p->batch_first || nd == 2 ? nd - 2 : 0;
    if ((nd != 2 && nd != 3) || ad_tensor_dim(x, -1) != p->dim ||
        ad_tensor_dim(x, tdim) > p->max_len)
        return ad__nn_bad_input(tape, "positional_embedding", x, "[T <= %lld, %s%lld]",
                                (long long)p->max_len, nd == 3 ? "N, " : "", (long long)p->dim);
    ad_tensor *w = ad_module_call_param(call, 0);
    if (!ad__nn_same_dtype(tape, "positional_embedding", x, w))
        return NULL;
    ad_tensor *pos = ad_slice(w, 0, 0, ad_tensor_dim(x, tdim), 1);
    return ad_add(x, nd == 3 && !p->batch_first ? ad_unsqueeze(pos, 1) : pos);
}

static const ad_module_type positions_type = {
    .name = "positional_embedding", .forward = positions_forward, .free_context = ad__free};

ad_status ad_nn_positional_embedding(ad_module **out, int64_t max_len, int64_t dim,
                                     bool batch_first, ad_dtype dtype, ad_rng *rng)
{
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (max_len < 1 || dim < 1 || !rng)
        return AD_ERR_ARG;
    positions p = {max_len, dim, batch_first};
    ad_status st = ad__nn_module_with(out, &positions_type, &p, sizeof p);
    ad_tensor *w = NULL;
    if (st == AD_OK)
        st = ad_module_create_param(*out, "weight", dtype, 2, (int64_t[]){max_len, dim}, &w);
    if (st == AD_OK)
        st = ad_init_normal(w, 0, 1, rng);
    return st == AD_OK ? AD_OK : ad__nn_fail_free(out, st);
}

/* ---- Transformer encoder layer ---------------------------------------------------------- */

/* The children, in torch's order (their names are its attribute names). */
enum { SELF_ATTN, LINEAR1, DROPOUT, LINEAR2, NORM1, NORM2, DROPOUT1, DROPOUT2, N_CHILDREN };

typedef struct encoder {
    ad_transformer_config c;
} encoder;

ad_transformer_config ad_transformer_defaults(int64_t d_model, int64_t nhead)
{
    return (ad_transformer_config){.d_model = d_model,
                                   .nhead = nhead,
                                   .dim_feedforward = 2048,
                                   .dropout = 0.1,
                                   .activation = AD_ACT_RELU,
                                   .layer_norm_eps = 1e-5};
}

/* dropout1(self_attn(x, x, x, mask, key padding)). */
static ad_tensor *attention_block(ad_module_call *call, ad_tensor *x, ad_tensor *mask,
                                  ad_tensor *kpm)
{
    ad_tensor *y = NULL;
    if (ad_module_forward_child_n(call, SELF_ATTN, 5, (ad_tensor *[]){x, NULL, NULL, kpm, mask}, 1,
                                  &y) != AD_OK)
        return NULL;
    return ad_module_forward_child(call, DROPOUT1, y);
}

/* dropout2(linear2(dropout(activation(linear1(x))))). */
static ad_tensor *feed_forward_block(ad_module_call *call, const encoder *e, ad_tensor *x)
{
    ad_tensor *h = ad_module_forward_child(call, LINEAR1, x);
    h = e->c.activation == AD_ACT_GELU ? ad_gelu_erf(h) : ad_relu(h);
    h = ad_module_forward_child(call, DROPOUT, h);
    return ad_module_forward_child(call, DROPOUT2, ad_module_forward_child(call, LINEAR2, h));
}

static ad_status encoder_forward_n(ad_module_call *call, size_t n_in, ad_tensor *const *in,
                                   size_t n_out, ad_tensor **out)
{
    (void)n_out;
    const encoder *e = ad_module_call_context(call);
    ad_tape *tape = ad_module_call_tape(call);
    if (n_in > 3 && in[3])
        return ad_tape_set_error(tape, AD_ERR_ARG, "transformer_encoder_layer: takes 3 inputs");
    ad_tensor *x = in[0], *mask = n_in > 1 ? in[1] : NULL, *kpm = n_in > 2 ? in[2] : NULL;
    if (e->c.norm_first) {
        x = ad_add(x, attention_block(call, ad_module_forward_child(call, NORM1, x), mask, kpm));
        x = ad_add(x, feed_forward_block(call, e, ad_module_forward_child(call, NORM2, x)));
    } else {
        x = ad_module_forward_child(call, NORM1, ad_add(x, attention_block(call, x, mask, kpm)));
        x = ad_module_forward_child(call, NORM2, ad_add(x, feed_forward_block(call, e, x)));
    }
    out[0] = x;
    return ad_tape_status(tape);
}

static const ad_module_type encoder_type = {
    .name = "transformer_encoder_layer", .forward_n = encoder_forward_n, .free_context = ad__free};

/* Makes child i of a transformer encoder layer. */
static ad_status encoder_child(ad_module **child, int i, const ad_transformer_config *c,
                               ad_dtype dtype, ad_rng *rng)
{
    switch (i) {
    case SELF_ATTN: {
        ad_mha_config a = ad_mha_defaults(c->d_model, c->nhead);
        a.dropout = c->dropout;
        a.batch_first = c->batch_first;
        a.seed = c->seed;
        return ad_nn_multihead_attention(child, &a, dtype, rng);
    }
    case LINEAR1:
        return ad_nn_linear(child, c->d_model, c->dim_feedforward, true, dtype, rng);
    case LINEAR2:
        return ad_nn_linear(child, c->dim_feedforward, c->d_model, true, dtype, rng);
    case NORM1:
    case NORM2:
        return ad_nn_layer_norm(child, c->d_model, c->layer_norm_eps, dtype);
    default: /* the three dropouts, each with its own stream */
        return ad_nn_dropout(child, c->dropout, c->seed + (uint64_t)i);
    }
}

ad_status ad_nn_transformer_encoder_layer(ad_module **out, const ad_transformer_config *config,
                                          ad_dtype dtype, ad_rng *rng)
{
    static const char *const names[N_CHILDREN] = {"self_attn", "linear1", "dropout",  "linear2",
                                                  "norm1",     "norm2",   "dropout1", "dropout2"};
    if (!out)
        return AD_ERR_ARG;
    *out = NULL;
    if (!config || !rng || config->d_model < 1 || config->nhead < 1 ||
        config->dim_feedforward < 1 || !(config->dropout >= 0 && config->dropout < 1) ||
        !(config->layer_norm_eps >= 0) ||
        (config->activation != AD_ACT_RELU && config->activation != AD_ACT_GELU))
        return AD_ERR_ARG;
    encoder e = {*config};
    ad_status st = ad__nn_module_with(out, &encoder_type, &e, sizeof e);
    for (int i = 0; i < N_CHILDREN && st == AD_OK; i++) {
        ad_module *child = NULL;
        st = encoder_child(&child, i, config, dtype, rng);
        if (st == AD_OK && (st = ad_module_add_child(*out, names[i], child)) != AD_OK)
            ad_nn_free(child);
    }
    return st == AD_OK ? AD_OK : ad__nn_fail_free(out, st);
}
