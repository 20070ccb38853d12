"""The sequence-model training steps in PyTorch, timed as bench/seq_train.c times ours.

Same models, shapes and work as bench/seq_train.c:
  lstm:        nn.LSTM(128, 256), one layer, sequence first, x [64, 32, 128],
               zero initial states;
  transformer: nn.TransformerEncoderLayer(128, 4, dim_feedforward=512,
               dropout=0, batch_first=True, norm_first=True), x [16, 128, 128],
               causal mask torch.triu(ones(T, T, bool), 1) (made once: ours
               makes its mask on the tape every step, 16K bools);
both float32 with a linear head to 64 classes at every position,
F.cross_entropy (mean) over all T N positions against fixed random classes,
and torch.optim.Adam with its defaults. One step is zero_grad(set_to_none),
forward, loss, backward, Adam step. Timing as ours: --warmup steps, then
--reps repetitions of --steps steps; median ms/step. Peak RSS is this
process's VmHWM at the end (torch_import_rss_mib: right after import).

Threads: --intra sets torch.set_num_threads; OpenBLAS's own thread count
comes from OPENBLAS_NUM_THREADS in the environment (bench/run sets it), as
in bench/torch_mlp.py.

Run it with /usr/bin/python3 (Debian's torch is not in pyenv's python).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

CLASSES = 64


def emit(name, value, unit, threads, config):
    print(json.dumps({"name": name, "value": value, "unit": unit, "threads": threads,
                      "config": config}), flush=True)


def peak_rss_mib():
    """VmHWM, as bench/bench_util.h (ru_maxrss survives execve: a parent's size leaks in)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(torch, model):
    """The body, the head, the input, the targets and the body's call."""
    if model == "lstm":
        t, n, i, h = 64, 32, 128, 256
        body = torch.nn.LSTM(i, h)
        head = torch.nn.Linear(h, CLASSES)
        x = torch.rand(t, n, i) * 2 - 1

        def run(x):
            return body(x)[0]  # output [T, N, H]
    else:
        n, t, e = 16, 128, 128
        body = torch.nn.TransformerEncoderLayer(e, 4, dim_feedforward=512, dropout=0.0,
                                                batch_first=True, norm_first=True)
        head = torch.nn.Linear(e, CLASSES)
        x = torch.rand(n, t, e) * 2 - 1
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)

        def run(x):
            return body(x, src_mask=mask)
    y = torch.randint(0, CLASSES, (t * n,))
    return body, head, x, y, run, t * n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("lstm", "transformer"), default="lstm")
    parser.add_argument("--intra", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--threads", type=int, default=1, help="the thread count reported")
    parser.add_argument("--config", default="", help="a label for this setting")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"torch_seq: torch does not import: {e}", file=sys.stderr)
        return 77

    torch.set_num_threads(args.intra)
    baseline_rss = peak_rss_mib()
    torch.manual_seed(1)
    body, head, x, y, run, tokens = build(torch, args.model)
    params = list(body.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = head(run(x)).reshape(tokens, CLASSES)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss.item()

    loss = first = None
    for i in range(args.warmup):
        loss = step()
        if i == 0:
            first = loss
    ms = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        ms.append(1e3 * (time.perf_counter() - t0) / args.steps)
    median = statistics.median(ms)
    prefix = f"torch_{args.model}"
    print(f"{prefix}: {args.config}: intra {torch.get_num_threads()}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}: "
          f"{median:.2f} ms/step (min {min(ms):.2f}, max {max(ms):.2f}), "
          f"loss {first} -> {loss}", file=sys.stderr)
    emit(prefix + "_step_ms", median, "ms", args.threads, args.config)
    emit(prefix + "_tokens_per_s", tokens * 1e3 / median, "tokens/s", args.threads, args.config)
    emit(prefix + "_peak_rss_mib", peak_rss_mib(), "MiB", args.threads, args.config)
    emit(prefix + "_import_rss_mib", baseline_rss, "MiB", args.threads, args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
