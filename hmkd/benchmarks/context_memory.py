"""Peak memory of HFA's global context, chunked against the direct formula, forward and backward.

Usage: python -m hmkd.benchmarks.context_memory [--hw 64x128 --channels 256 --chunk 1024]

The Cityscapes shape: the student's stage-3 map of a 512x1024 crop at output stride 8 is 64x128 = 8192 positions.
On CUDA the figure is torch.cuda.max_memory_allocated; on the CPU each variant runs in a fresh process and the
figure is its peak resident memory minus the peak just before the call (after a warm-up on a tiny map).
Target: chunked <= 1/8 direct.
"""
import argparse
import json
import subprocess
import sys
from typing import Any, Dict

import torch

from hmkd.benchmarks.common import write_result

_CHILD = """
import json, resource, sys, torch
from hmkd.losses.distill.global_context import global_context, global_context_direct
h, w, c, chunk, variant = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(0)
x = (torch.randn(1, c, h, w) / c ** 0.5).requires_grad_()
grad = torch.randn(1, c, h, w)
fn = (lambda t: global_context(t, chunk)) if variant == "chunked" else global_context_direct
warm = torch.randn(1, c, 8, 8, requires_grad=True)
fn(warm).backward(torch.ones_like(warm))  # one-time allocations (BLAS buffers, kernels) are not the variant's
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fn(x).backward(grad)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": (peak - before) / 1024.0}))
"""


def cpu_peak(h: int, w: int, channels: int, chunk: int, variant: str) -> float:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(h), str(w), str(channels), str(chunk), variant],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def cuda_peak(h: int, w: int, channels: int, chunk: int, variant: str) -> float:
    from hmkd.losses.distill.global_context import global_context, global_context_direct

    x = (torch.randn(1, channels, h, w, device="cuda") / channels ** 0.5).requires_grad_()
    grad = torch.randn_like(x)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn = (lambda t: global_context(t, chunk)) if variant == "chunked" else global_context_direct
    fn(x).backward(grad)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2 ** 20


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default="64x128")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.hw.split("x"))
    measure = cuda_peak if args.device == "cuda" else cpu_peak
    chunked = measure(h, w, args.channels, args.chunk, "chunked")
    direct = measure(h, w, args.channels, args.chunk, "direct")
    result = {"hw": [h, w], "positions": h * w, "channels": args.channels, "chunk": args.chunk, "device": args.device,
              "chunked_peak_mib": chunked, "direct_peak_mib": direct, "ratio": chunked / direct, "target": 1 / 8,
              "note": "CPU figures are peak RSS deltas in fresh processes" if args.device == "cpu" else
              "torch.cuda.max_memory_allocated above the input"}
    path = write_result(args.out, "context_memory_" + args.device, result)
    print("global context at %dx%d (%d positions) x %d channels on %s: chunked %.0f MiB, direct %.0f MiB, "
          "ratio %.3f (target <= 0.125) -> %s" % (h, w, h * w, args.channels, args.device, chunked, direct,
                                                  result["ratio"], path))
    return result


if __name__ == "__main__":
    main()
