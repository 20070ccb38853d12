"""safetensors interop with PyTorch, driven by tests/interop_torch.c.

    /usr/bin/python3 test_interop_torch.py DIR

Checks DIR/c.safetensors (written by libautodiff) with torch, then writes
DIR/py.safetensors (and DIR/py_lib.safetensors when the safetensors package is
installed) for the C side to load. Exits 0 on success, 1 with a message on a
mismatch, 77 when torch cannot be imported.

Values follow one formula on both sides, so they compare bit for bit:
value(seed, i) = (((37 i + 11 seed) mod 101) - 50) / 3, rounded to the dtype.
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

ELEMENT_SIZE = {"F32": 4, "F64": 8, "I64": 8, "F16": 2, "BF16": 2, "U8": 1, "I32": 4}
TORCH_DTYPE = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64,
               "F16": torch.float16, "BF16": torch.bfloat16, "U8": torch.uint8,
               "I32": torch.int32}


def value(seed, i):
    return (((37 * i + 11 * seed) % 101) - 50) / 3.0


def pattern(seed, shape, dtype):
    n = math.prod(shape)
    return torch.tensor([value(seed, i) for i in range(n)], dtype=dtype).reshape(shape)


def raw(t):
    """The little-endian bytes of a tensor (x86 and ARM hosts are little-endian)."""
    flat = t.contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return bytes(flat.view(torch.uint8).tolist())


# What the C side writes: name -> (dtype, shape, tensor).
SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-45, 3.4028234663852886e38]


def expected_from_c():
    return {
        "c.f32.matrix": ("F32", [3, 4], pattern(1, [3, 4], torch.float32)),
        "c.f64.cube": ("F64", [2, 3, 4], pattern(2, [2, 3, 4], torch.float64)),
        "c.scalar": ("F64", [], pattern(3, [], torch.float64)),
        "c.empty": ("F32", [0, 5], torch.zeros(0, 5, dtype=torch.float32)),
        "c.special": ("F32", [7], torch.tensor(SPECIAL, dtype=torch.float32)),
        "\u00fcn\u00efcode \"name\"\n": ("F64", [2], pattern(4, [2], torch.float64)),
    }


def fail(message):
    print("test_interop_torch.py: " + message)
    sys.exit(1)


def parse(path):
    """A strict reading of the safetensors layout with struct, json and torch."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail(f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        fail(f"{path}: header length {n} beyond the file")
    header_bytes = data[8:8 + n]
    if n % 8:
        fail(f"{path}: header length {n} is not a multiple of 8")
    text = header_bytes.decode("utf-8")
    if text.rstrip(" ") != text.strip():
        fail(f"{path}: header has leading space or padding other than spaces")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            fail(f"{path}: duplicate keys {keys}")
        return dict(pairs)

    header = json.loads(text, object_pairs_hook=no_duplicates)
    buffer = data[8 + n:]
    header.pop("__metadata__", None)
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name)
                   for name, info in header.items())
    at = 0
    for begin, end, name in spans:
        if begin != at:
            fail(f"{path}: {name} begins at {begin}, expected {at}")
        at = end
    if at != len(buffer):
        fail(f"{path}: buffer is {len(buffer)} bytes, entries cover {at}")
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        shape = info["shape"]
        size = ELEMENT_SIZE[info["dtype"]]
        if end - begin != math.prod(shape) * size:
            fail(f"{path}: {name}: {end - begin} bytes for shape {shape}")
        if begin % size:
            fail(f"{path}: {name} is not aligned")
        chunk = bytearray(buffer[begin:end])
        if chunk:
            t = torch.frombuffer(chunk, dtype=TORCH_DTYPE[info["dtype"]]).reshape(shape)
        else:
            t = torch.zeros(shape, dtype=TORCH_DTYPE[info["dtype"]])
        tensors[name] = (info["dtype"], shape, t)
    return tensors


def check_c_file(path):
    got = parse(path)
    want = expected_from_c()
    if set(got) != set(want):
        fail(f"{path}: names {sorted(got)}, expected {sorted(want)}")
    for name, (dtype, shape, tensor) in want.items():
        g_dtype, g_shape, g_tensor = got[name]
        if g_dtype != dtype or g_shape != shape:
            fail(f"{name}: {g_dtype} {g_shape}, expected {dtype} {shape}")
        if raw(g_tensor) != raw(tensor):
            fail(f"{name}: values differ:\n{g_tensor}\nexpected\n{tensor}")
    # The values as torch sees them, beyond the bytes.
    t = got["c.special"][2]
    if not (t[1] == 0 and math.copysign(1, t[1].item()) < 0 and torch.isnan(t[4])
            and torch.isinf(t[2])):
        fail(f"c.special as torch reads it: {t}")
    try:
        from safetensors.torch import load_file
    except ImportError:
        return
    lib = load_file(path)
    for name, (dtype, shape, tensor) in want.items():
        if raw(lib[name]) != raw(tensor) or list(lib[name].shape) != shape:
            fail(f"{name}: safetensors.torch.load_file reads {lib[name]}")


def tensors_for_c():
    """What the C side loads (F32/F64) and must skip (the rest)."""
    w = pattern(5, [4, 3], torch.float32)
    return {
        "py.weight": w,
        "py.weight_t": w.t().contiguous(),            # a transposed tensor made contiguous
        "py.double": pattern(6, [5], torch.float64),
        "py.scalar": pattern(7, [], torch.float32),
        "py.empty": torch.zeros(2, 0, dtype=torch.float64),
        "py.ints": torch.tensor([-1, 2, 1 << 40], dtype=torch.int64),
        "py.half": torch.tensor([0.5, -2.0], dtype=torch.float16),
        "py.bytes": torch.tensor([1, 2, 3], dtype=torch.uint8),
    }


def write_by_hand(path, tensors):
    """The layout of the safetensors package: entries sorted by alignment then
    name, compact JSON, header padded with spaces to a multiple of 8."""
    names = {v: k for k, v in TORCH_DTYPE.items()}
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header = {"__metadata__": {"format": "pt", "writer": "test_interop_torch.py \u2713"}}
    at = 0
    blobs = []
    for name in order:
        t = tensors[name]
        b = raw(t)
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [at, at + len(b)]}
        at += len(b)
        blobs.append(b)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    if len(sys.argv) != 2:
        fail("usage: test_interop_torch.py DIR")
    directory = sys.argv[1]
    check_c_file(os.path.join(directory, "c.safetensors"))
    tensors = tensors_for_c()
    write_by_hand(os.path.join(directory, "py.safetensors"), tensors)
    # Our own writer must agree with our own reader, as a sanity check.
    back = parse(os.path.join(directory, "py.safetensors"))
    for name, t in tensors.items():
        if raw(back[name][2]) != raw(t):
            fail(f"{name}: hand-written file does not read back")
    try:
        from safetensors.torch import save_file
    except ImportError:
        print("safetensors package not installed: checked with struct/json/torch only")
        return
    save_file(tensors, os.path.join(directory, "py_lib.safetensors"), metadata={"format": "pt"})
    print("safetensors package found: also checked with safetensors.torch")


if __name__ == "__main__":
    main()
