"""The MLP training step in PyTorch, timed as bench/mlp_common.h times ours.

Same model and shapes (784-256-256-10, ReLU, batch 128, float32, SGD lr 0.1
without momentum, cross-entropy on one fixed random batch), same timing
(--warmup steps, then --reps repetitions of --steps steps; median ms/step),
peak RSS of this process at the end. Figures go to stdout as JSON lines.

Threads: --intra sets torch.set_num_threads (ATen's intra-op pool). Debian's
torch 1.13 does its float32 matrix products through the system BLAS
(libblas.so.3, OpenBLAS's pthread build here), whose own thread count comes
from OPENBLAS_NUM_THREADS, read when the library loads: bench/run sets it in
the environment of this process.

Run it with /usr/bin/python3 (Debian's torch is not in pyenv's python).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intra", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--threads", type=int, default=1, help="the thread count reported")
    parser.add_argument("--config", default="", help="a label for this setting")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"torch_mlp: torch does not import: {e}", file=sys.stderr)
        return 77

    torch.set_num_threads(args.intra)
    baseline_rss = peak_rss_mib()
    torch.manual_seed(1)
    batch, n_in, hidden, classes = 128, 784, 256, 10
    model = torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, classes))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.rand(batch, n_in, dtype=torch.float32)
    y = torch.randint(0, classes, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
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
    print(f"torch_mlp: {args.config}: intra {torch.get_num_threads()}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}: "
          f"{median:.3f} ms/step (min {min(ms):.3f}, max {max(ms):.3f}), "
          f"loss {first} -> {loss}", file=sys.stderr)
    emit("torch_step_ms", median, "ms", args.threads, args.config)
    emit("torch_examples_per_s", batch * 1e3 / median, "examples/s", args.threads, args.config)
    emit("torch_epoch_s", median * ((60000 + batch - 1) // batch) / 1e3, "s", args.threads,
         args.config)
    emit("torch_peak_rss_mib", peak_rss_mib(), "MiB", args.threads, args.config)
    emit("torch_import_rss_mib", baseline_rss, "MiB", args.threads, args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
