"""Reference values for the sequence layers, from PyTorch 1.13, for tests/test_sequence.c.

    /usr/bin/python3 sequence_torch.py DIR

Writes DIR/<case>.safetensors for each case below: the layer's state_dict
under torch's names, its inputs ("in.<i>"; masks as float64 0/1, marked
"mask.<i>"), the weights r.<j> of the loss sum_j sum(out_j * r_j), the
outputs ("out.<j>") and the gradients of that loss ("grad.in.<i>",
"grad.<parameter name>"). Everything is float64. Exits 77 when torch cannot be
imported.
"""
import json
import math
import os
import struct
import sys

try:
    import torch
except ImportError:
    sys.exit(77)

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def write(path, tensors):
    """A safetensors file of float64 tensors, written by hand."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().to(torch.float64).reshape(-1)
        raw = struct.pack("<%dd" % data.numel(), *data.tolist())
        header[name] = {"dtype": "F64", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def run(name, module, inputs, masks, forward):
    """inputs: tensors (None for left out); masks: indices of bool inputs."""
    module.train()
    leaves = []
    for i, x in enumerate(inputs):
        if x is not None and i not in masks:
            x.requires_grad_(True)
        leaves.append(x)
    outs = forward(module, leaves)
    rs = [torch.randn(o.shape) for o in outs]
    loss = sum((o * r).sum() for o, r in zip(outs, rs))
    loss.backward()
    t = {}
    for k, v in module.state_dict().items():
        t[k] = v
    for i, x in enumerate(leaves):
        if x is None:
            continue
        t[("mask.%d" if i in masks else "in.%d") % i] = x.to(torch.float64)
        if i not in masks:
            t["grad.in.%d" % i] = x.grad
    for j, (o, r) in enumerate(zip(outs, rs)):
        t["out.%d" % j] = o
        t["r.%d" % j] = r
    for k, p in module.named_parameters():
        t["grad." + k] = p.grad
    write(os.path.join(DIR, name + ".safetensors"), t)


def rnn_forward(m, x):
    out = m(x[0], x[1]) if len(x) == 2 else m(x[0], (x[1], x[2]))
    o, h = out
    return [o] + (list(h) if isinstance(h, tuple) else [h])


def mha_forward(m, x):
    o, w = m(x[0], x[1], x[2], key_padding_mask=x[3], attn_mask=x[4])
    return [o, w]


def main():
    # LSTM: 2 layers, bidirectional, sequence first, states given.
    m = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    run("lstm", m, [torch.randn(5, 2, 3), torch.randn(4, 2, 4), torch.randn(4, 2, 4)], [],
        rnn_forward)
    # GRU: 2 layers, batch first, h0 given.
    m = torch.nn.GRU(3, 4, num_layers=2, batch_first=True)
    run("gru", m, [torch.randn(2, 6, 3), torch.randn(2, 2, 4)], [], rnn_forward)
    # RNN (relu): bidirectional, unbatched, no bias.
    m = torch.nn.RNN(3, 4, nonlinearity="relu", bidirectional=True, bias=False)
    run("rnn_relu", m, [torch.randn(5, 3), torch.randn(2, 4)], [], rnn_forward)
    # RNN (tanh): one layer, batch first.
    m = torch.nn.RNN(2, 3, batch_first=True)
    run("rnn_tanh", m, [torch.randn(3, 4, 2), torch.randn(1, 3, 3)], [], rnn_forward)
    # Multi-head attention, packed, self-attention, both bool masks.
    m = torch.nn.MultiheadAttention(8, 2)
    x = torch.randn(5, 2, 8)
    kpm = torch.tensor([[False] * 5, [False, False, False, True, True]])
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)

    def self_attn(m, v):
        o, w = m(v[0], v[0], v[0], key_padding_mask=v[3], attn_mask=v[4])
        return [o, w]
    run("mha_self", m, [x, None, None, kpm, causal], [3, 4], self_attn)
    # Separate projections (kdim, vdim), batch first, a float attn_mask.
    m = torch.nn.MultiheadAttention(6, 3, kdim=4, vdim=5, batch_first=True)
    run("mha_cross", m, [torch.randn(2, 3, 6), torch.randn(2, 4, 4), torch.randn(2, 4, 5),
                         None, torch.randn(3, 4)], [], mha_forward)
    # Transformer encoder layers: pre-norm with gelu and masks; post-norm relu.
    m = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                         activation="gelu", batch_first=True, norm_first=True)

    def encoder(m, v):
        return [m(v[0], src_mask=v[1], src_key_padding_mask=v[2])]
    kpm = torch.tensor([[False] * 4, [False, False, False, True]])
    run("encoder_pre", m, [torch.randn(2, 4, 8), torch.triu(torch.ones(4, 4, dtype=torch.bool), 1),
                           kpm], [1, 2], encoder)
    m = torch.nn.TransformerEncoderLayer(8, 4, dim_feedforward=12, dropout=0.0)
    run("encoder_post", m, [torch.randn(3, 2, 8), None, None], [], encoder)


DIR = sys.argv[1]
main()
