/*
 * libautodiff sequence models: recurrent layers (RNN, LSTM, GRU), attention
 * (scaled dot-product and multi-head), positional embeddings and a
 * transformer encoder block.
 *
 * Every layer here is a module (layers.h) whose forward is a composition of
 * public ops, so its gradients, to any order, come from the ops' own rules.
 * Parameter names, shapes, gate orders and defaults are PyTorch 1.13's, so a
 * torch state_dict saved as safetensors loads with ad_nn_load and gives the
 * same outputs. docs/sequence-models.md explains shapes, states, masks,
 * truncated backpropagation through time and loading torch weights.
 *
 * Layers with states or masks take several inputs and give several outputs
 * through ad_nn_forward_n (layers.h); ad_nn_forward runs them with every
 * optional input left out and returns the first output.
 *
 *     ad_rnn_config c = ad_rnn_defaults(AD_LSTM, 64, 128);
 *     c.num_layers = 2;
 *     ad_module *lstm; ad_nn_rnn(&lstm, &c, AD_F32, &rng);
 *     ad_tensor *out[3];                               // output, h_n, c_n
 *     ad_nn_forward_n(lstm, tape, 3, (ad_tensor *[]){x, h0, c0}, 3, out);
 */
#ifndef AUTODIFF_SEQUENCE_H
#define AUTODIFF_SEQUENCE_H

#include "autodiff/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Recurrent layers ======================================================= */

typedef enum ad_rnn_mode {
    AD_RNN_TANH, /* h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)  (torch.nn.RNN) */
    AD_RNN_RELU, /* the same with relu (nonlinearity='relu') */
    AD_LSTM,     /* torch.nn.LSTM: gates i, f, g, o in that order */
    AD_GRU       /* torch.nn.GRU: gates r, z, n; r scales (h W_hn^T + b_hn) */
} ad_rnn_mode;

/* torch.nn.RNN / LSTM / GRU's constructor arguments (proj_size is not
 * supported). Start from ad_rnn_defaults and change fields. */
typedef struct ad_rnn_config {
    ad_rnn_mode mode;
    int64_t input_size;  /* I, the features of each step's input */
    int64_t hidden_size; /* H */
    int num_layers;      /* >= 1; layer l > 0 reads layer l - 1's output */
    bool bias;           /* b_ih and b_hh */
    bool batch_first;    /* input and output [N, T, .] instead of [T, N, .] */
    double dropout;      /* on each layer's output but the last, while training */
    bool bidirectional;  /* a second pass from the end; outputs concatenated */
    uint64_t seed;       /* of the layer's own ad_rng, for the dropout */
} ad_rnn_config;

/* torch's defaults: one layer, bias, sequence first, no dropout, one direction, seed 0. */
AD_API ad_rnn_config ad_rnn_defaults(ad_rnn_mode mode, int64_t input_size, int64_t hidden_size);

/*
 * A recurrent layer, as torch.nn.RNN, LSTM or GRU. With G = 1 (RNN), 4
 * (LSTM) or 3 (GRU) gates and D = 2 when bidirectional, else 1, its
 * parameters, for each layer l and direction (suffix "" or "_reverse"), are
 * weight_ih_l<l> [G H, I or D H], weight_hh_l<l> [G H, H], and with bias
 * bias_ih_l<l> [G H], bias_hh_l<l> [G H], all uniform in +-1/sqrt(H).
 *
 * ad_nn_forward_n inputs: x [T, N, I] ([N, T, I] with batch_first; [T, I]
 * unbatched), h0 [L D, N, H] ([L D, H] unbatched; NULL means zeros), and for
 * an LSTM c0 like h0. Outputs: output [T, N, D H] (the last layer's h at
 * every step, both directions concatenated; [N, T, D H] with batch_first),
 * h_n [L D, N, H] (each layer's and direction's last state), and for an
 * LSTM c_n like h_n. T may be any length >= 1. For truncated
 * backpropagation through time, pass ad_detach(h_n) as the next h0.
 *
 * Constructor errors: AD_ERR_ARG for a size or num_layers < 1, dropout
 * outside [0, 1), or a NULL argument; AD_ERR_NOMEM. Forward errors, on the
 * tape, name the layer and the shapes: AD_ERR_SHAPE for an input or state
 * that does not fit, AD_ERR_DTYPE for one that is not the parameters' dtype.
 */
AD_API ad_status ad_nn_rnn(ad_module **out, const ad_rnn_config *config, ad_dtype dtype,
                           ad_rng *rng);

/*
 * One step of each cell, as torch.nn.RNNCell, LSTMCell and GRUCell: x [N, I]
 * (or [I]), h and c [N, H] (or [H]), weights and biases as above for one
 * layer (biases may be NULL). ad_lstm_cell returns h' and writes c' to
 * *c_next. NULL on error (on the inputs' tape), naming the cell.
 */
AD_API ad_tensor *ad_rnn_cell(ad_tensor *x, ad_tensor *h, ad_tensor *w_ih, ad_tensor *w_hh,
                              ad_tensor *b_ih, ad_tensor *b_hh, bool relu);
AD_API ad_tensor *ad_lstm_cell(ad_tensor *x, ad_tensor *h, ad_tensor *c, ad_tensor *w_ih,
                               ad_tensor *w_hh, ad_tensor *b_ih, ad_tensor *b_hh,
                               ad_tensor **c_next);
AD_API ad_tensor *ad_gru_cell(ad_tensor *x, ad_tensor *h, ad_tensor *w_ih, ad_tensor *w_hh,
                              ad_tensor *b_ih, ad_tensor *b_hh);

/* ==== Attention ================================================================ */

/* Options of ad_scaled_dot_product_attention; zeroed ({0}) or NULL means no
 * mask, not causal, no dropout, scale 1/sqrt(E). */
typedef struct ad_sdpa_opts {
    /* NULL, or broadcast to [..., L, S]: bool, where true means "may
     * attend" (torch 2's F.scaled_dot_product_attention convention; false
     * positions get -inf), or float, added to the scores. */
    ad_tensor *attn_mask;
    bool is_causal;   /* query i attends to keys 0..i only (with attn_mask NULL) */
    double dropout_p; /* dropout on the attention weights, in [0, 1) */
    ad_rng *rng;      /* required when dropout_p > 0 */
    bool has_scale;   /* use `scale` below instead of 1/sqrt(E) */
    double scale;
} ad_sdpa_opts;

/*
 * softmax(q k^T scale + mask) v over the last two dims: q [..., L, E],
 * k [..., S, E], v [..., S, Ev] -> [..., L, Ev], the leading dims
 * broadcasting. When weights is not NULL it receives the attention weights
 * [..., L, S] (after dropout). A row whose keys are all masked gives NaN, as
 * torch's. Errors (on the inputs' tape): AD_ERR_SHAPE for sizes that do not
 * fit, AD_ERR_ARG for a bad dropout_p or is_causal with a mask, AD_ERR_DTYPE.
 */
AD_API ad_tensor *ad_scaled_dot_product_attention(ad_tensor *q, ad_tensor *k, ad_tensor *v,
                                                  const ad_sdpa_opts *opts, ad_tensor **weights);

/* A bool [L, S] mask, true above the diagonal: the positions a query may not
 * see in causal attention, in nn.MultiheadAttention's convention (true =
 * masked). On tape; NULL on error. */
AD_API ad_tensor *ad_causal_mask(ad_tape *tape, int64_t l, int64_t s);

/* torch.nn.MultiheadAttention's constructor arguments (add_bias_kv and
 * add_zero_attn are not supported). */
typedef struct ad_mha_config {
    int64_t embed_dim; /* E, split into num_heads heads of E / num_heads */
    int64_t num_heads;
    double dropout; /* on the attention weights, while training */
    bool bias;      /* in_proj_bias and out_proj.bias */
    int64_t kdim;   /* the key's features; E gives packed projections */
    int64_t vdim;   /* the value's features */
    bool batch_first;
    uint64_t seed; /* of the layer's own ad_rng, for the dropout */
} ad_mha_config;

/* torch's defaults: no dropout, bias, kdim = vdim = embed_dim, sequence first. */
AD_API ad_mha_config ad_mha_defaults(int64_t embed_dim, int64_t num_heads);

/*
 * Multi-head attention, as torch.nn.MultiheadAttention. Parameters: when
 * kdim = vdim = E, in_proj_weight [3E, E] (q, k, v stacked); otherwise
 * q_proj_weight [E, E], k_proj_weight [E, kdim], v_proj_weight [E, vdim];
 * then in_proj_bias [3E] and out_proj.weight [E, E], out_proj.bias [E].
 * Init as torch: Xavier-uniform projections, out_proj.weight uniform in
 * +-1/sqrt(E), zero biases.
 *
 * ad_nn_forward_n inputs: query [L, N, E] ([N, L, E] with batch_first;
 * [L, E] unbatched), key [S, N, kdim] (NULL: the query, self-attention)
 * and value [S, N, vdim] (NULL: the key, so the query when both are left
 * out), key_padding_mask [N, S] (NULL, or bool with true
 * = ignore this key, or float added), attn_mask [L, S] or [N num_heads, L,
 * S] (NULL, or bool with true = may NOT attend, or float added); torch's
 * conventions. Outputs: attn_output like query with E features, and the
 * attention weights averaged over heads [N, L, S]. Errors as ad_nn_rnn's.
 */
AD_API ad_status ad_nn_multihead_attention(ad_module **out, const ad_mha_config *config,
                                           ad_dtype dtype, ad_rng *rng);

/* ==== Positions ================================================================ */

/* The sinusoidal positional encoding [length, dim] of "Attention is all you
 * need": sin(p / 10000^(2i/dim)) at feature 2i, cos at 2i + 1. A constant
 * on tape; NULL on error (AD_ERR_ARG for a size < 1). */
AD_API ad_tensor *ad_sinusoidal_positions(ad_tape *tape, int64_t length, int64_t dim,
                                          ad_dtype dtype);

/* Learned positions: a parameter "weight" [max_len, dim], N(0, 1) as
 * nn.Embedding. Forward adds weight[0..T) to x: x [N, T, dim] or [T, dim]
 * with batch_first, else [T, N, dim]. T > max_len is AD_ERR_SHAPE. */
AD_API ad_status ad_nn_positional_embedding(ad_module **out, int64_t max_len, int64_t dim,
                                            bool batch_first, ad_dtype dtype, ad_rng *rng);

/* ==== Transformer ============================================================== */

/* torch.nn.TransformerEncoderLayer's constructor arguments. */
typedef struct ad_transformer_config {
    int64_t d_model, nhead;
    int64_t dim_feedforward;  /* 2048 in torch */
    double dropout;           /* 0.1 in torch */
    ad_activation activation; /* AD_ACT_RELU (torch's default) or AD_ACT_GELU */
    double layer_norm_eps;    /* 1e-5; 0 means 0 */
    bool batch_first;         /* false */
    bool norm_first;          /* false (post-norm); true: x + f(norm(x)), pre-norm */
    uint64_t seed;            /* of the dropouts' ad_rngs */
} ad_transformer_config;

/* torch's defaults for d_model and nhead. */
AD_API ad_transformer_config ad_transformer_defaults(int64_t d_model, int64_t nhead);

/*
 * A transformer encoder layer, as torch.nn.TransformerEncoderLayer:
 * self-attention then a feed-forward block (linear1, activation, dropout,
 * linear2), each with a residual connection, dropout and layer norm (before
 * the block with norm_first, after it otherwise). Children and parameters:
 * self_attn (ad_nn_multihead_attention), linear1, linear2, norm1, norm2.
 * ad_nn_forward_n inputs: src (as the attention's query), src_mask (its
 * attn_mask; ad_causal_mask for a language model), src_key_padding_mask.
 * Output: like src.
 */
AD_API ad_status ad_nn_transformer_encoder_layer(ad_module **out,
                                                 const ad_transformer_config *config,
                                                 ad_dtype dtype, ad_rng *rng);

#ifdef __cplusplus
}
#endif

#endif
