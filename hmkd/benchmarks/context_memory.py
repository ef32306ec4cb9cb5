"""Peak memory of HFA's global context, chunked against the direct formula, forward and backward.

Usage: python -m hmkd.benchmarks.context_memory [--hw 64x128 --channels 256 --chunk 1024 --reps 3]

The Cityscapes shape: the student's stage-3 map of a 512x1024 crop at output stride 8 is 64x128 = 8192 positions.
Two scopes, each chunked and direct: ``context`` is the global context alone (the figure with the target: chunked
<= 1/8 direct), ``hfa`` is the whole HFA term as the headline pair uses it (teacher stage 3 of SegFormer-B4, 320
channels at stride 16, projected and warped; context on the student side), where the RRBs and the offset head add
the same activations to both variants.
On CUDA the figure is torch.cuda.max_memory_allocated above the inputs; on the CPU each measurement runs in a fresh
process and is its peak resident memory above the resident memory just before the call (after a warm-up on a tiny map), with
glibc's mmap threshold fixed at 128 KiB so that freed buffers leave the process at once and the peak RSS is the peak
of live allocations, not of what the allocator chose to keep.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any, Callable, Dict, List

import torch

from hmkd.benchmarks.common import add_run_args, write_result
from hmkd.cli.common import parse_size
from hmkd.models.output import SegOutput

TARGET = 1 / 8
SCOPES = ("context", "hfa")
TEACHER_CHANNELS = 320  # SegFormer-B4 stage 3, at half the student's stage-3 resolution

_CHILD = """
import json, sys, torch
from hmkd.benchmarks.context_memory import build_call, peak_rss_delta_mib
h, w, c, chunk, scope, variant = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                  sys.argv[5], sys.argv[6])
build_call(8, 8, c, chunk, scope, variant, "cpu")()  # one-time allocations (BLAS buffers, kernels) are not the variant's
print(json.dumps({"peak_mib": peak_rss_delta_mib(build_call(h, w, c, chunk, scope, variant, "cpu"))}))
"""


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError("no %s in /proc/self/status" % field)


def peak_rss_delta_mib(call: Callable[[], None]) -> float:
    """Peak resident memory during ``call`` above the resident memory before it. Linux's high-water mark is reset
    first (/proc/self/clear_refs), so an earlier, higher peak (imports, building the inputs) cannot hide the call's."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = _status_kib("VmRSS")
    call()
    return (_status_kib("VmHWM") - before) / 1024.0


def build_call(h: int, w: int, channels: int, chunk: int, scope: str, variant: str, device: str
               ) -> Callable[[], None]:
    """Inputs made now; the returned call runs one forward + backward of ``scope`` in ``variant``."""
    from hmkd.losses.distill import hfa as hfa_module
    from hmkd.losses.distill.global_context import global_context, global_context_direct

    torch.manual_seed(0)
    context = (lambda t, size=chunk: global_context(t, size)) if variant == "chunked" else \
        (lambda t, size=chunk: global_context_direct(t))
    student = (torch.randn(1, channels, h, w, device=device) / channels ** 0.5).requires_grad_()
    if scope == "context":
        grad = torch.randn_like(student)
        return lambda: context(student).backward(grad)
    term = hfa_module.HFATerm(2, channels, TEACHER_CHANNELS, ("student",), chunk).to(device)
    teacher = torch.randn(1, TEACHER_CHANNELS, max(1, h // 2), max(1, w // 2), device=device)
    student_out, teacher_out = SegOutput(None, [None, None, student]), SegOutput(None, [None, None, teacher])

    def call() -> None:
        original = hfa_module.global_context
        hfa_module.global_context = context
        try:
            term(student_out, None, teacher_out).backward()
        finally:
            hfa_module.global_context = original
    return call


def cpu_peak(h: int, w: int, channels: int, chunk: int, scope: str, variant: str) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run([sys.executable, "-c", _CHILD, str(h), str(w), str(channels), str(chunk), scope, variant],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def cuda_peak(h: int, w: int, channels: int, chunk: int, scope: str, variant: str) -> float:
    call = build_call(h, w, channels, chunk, scope, variant, "cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    call()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2 ** 20


def _median(values: List[float]) -> Dict[str, Any]:
    median = statistics.median(values)
    return {"median_mib": median, "runs_mib": values,
            "spread": (max(values) - min(values)) / median if median else 0.0}


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", type=parse_size, default="64x128")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=1024, help="HFA's chunk_size (its default is 1024)")
    add_run_args(parser, reps=3)
    args = parser.parse_args(argv)
    h, w = args.hw
    measure = cuda_peak if args.device == "cuda" else cpu_peak
    scopes = {}
    for scope in SCOPES:
        runs = {variant: _median([measure(h, w, args.channels, args.chunk, scope, variant) for _ in range(args.reps)])
                for variant in ("chunked", "direct")}
        runs["ratio"] = runs["chunked"]["median_mib"] / runs["direct"]["median_mib"]
        scopes[scope] = runs
    context = scopes["context"]
    result = {"hw": [h, w], "positions": h * w, "channels": args.channels, "chunk": args.chunk, "device": args.device,
              "chunked_peak_mib": context["chunked"]["median_mib"], "direct_peak_mib": context["direct"]["median_mib"],
              "ratio": context["ratio"], "target": TARGET, "scopes": scopes,
              "note": "CPU figures are peak RSS deltas in fresh processes (mmap threshold 128 KiB)"
              if args.device == "cpu" else "torch.cuda.max_memory_allocated above the inputs"}
    path = write_result(args.out, "context_memory_" + args.device, result)
    for scope in SCOPES:
        runs = scopes[scope]
        print("%s at %dx%d (%d positions) x %d channels on %s, chunk %d: chunked %.0f MiB, direct %.0f MiB, ratio %.3f%s"
              % ("global context" if scope == "context" else "whole HFA term", h, w, h * w, args.channels,
                 args.device, args.chunk, runs["chunked"]["median_mib"], runs["direct"]["median_mib"], runs["ratio"],
                 " (target <= 0.125)" if scope == "context" else ""))
    print("-> %s" % path)
    return result


if __name__ == "__main__":
    main()
