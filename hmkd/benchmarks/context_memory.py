"""Peak memory (and, with --time-reps, time) of HFA's global context: chunked, SDPA and the direct formula, forward
and backward.

Usage: python -m hmkd.benchmarks.context_memory [--hw 64x128 --channels 256 --chunk 1024 --reps 3 --time-reps 0]

The Cityscapes shape: the student's stage-3 map of a 512x1024 crop at output stride 8 is 64x128 = 8192 positions.
Two scopes, each in the three implementations of ``loss.terms.hfa.context`` (chunked, sdpa: torch 2's fused
attention with q = k = v = X and scale 1, direct): ``context`` is the global context alone (the figure with the
target: chunked <= 1/8 direct), ``hfa`` is the whole HFA term as the headline pair uses it (teacher stage 3 of
SegFormer-B4, 320 channels at stride 16, projected and warped; context on the student side), where the RRBs and the
offset head add the same activations to every variant. SDPA needs torch 2; on torch 1.11 it is recorded as not
measured. ``--time-reps N`` also times N forward + backward calls of each (after a warm-up; median and spread).
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
from typing import Any, Callable, Dict, List, Sequence

import torch

from hmkd.benchmarks.common import add_run_args, time_it, write_result
from hmkd.cli.common import parse_size
from hmkd.compat import HAS_SDPA
from hmkd.models.output import SegOutput

TARGET = 1 / 8
SCOPES = ("context", "hfa")
VARIANTS = ("chunked", "sdpa", "direct")  # loss.terms.hfa.context
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
    """Inputs made now; the returned call runs one forward + backward of ``scope`` in ``variant`` (an
    implementation of ``loss.terms.hfa.context``), through the code the config selects."""
    from hmkd.losses.distill.global_context import context_function
    from hmkd.losses.distill.hfa import HFATerm

    torch.manual_seed(0)
    student = (torch.randn(1, channels, h, w, device=device) / channels ** 0.5).requires_grad_()
    if scope == "context":
        context = context_function(variant, chunk)
        grad = torch.randn_like(student)
        return lambda: context(student).backward(grad)
    term = HFATerm(2, channels, TEACHER_CHANNELS, ("student",), chunk, context=variant).to(device)
    teacher = torch.randn(1, TEACHER_CHANNELS, max(1, h // 2), max(1, w // 2), device=device)
    student_out, teacher_out = SegOutput(None, [None, None, student]), SegOutput(None, [None, None, teacher])
    return lambda: term(student_out, None, teacher_out).backward()


def measured_variants(asked: Sequence[str] = VARIANTS) -> List[str]:
    """The implementations asked for that this stack can run: SDPA needs torch 2 (context_function would run the
    chunked one instead). Chunked and direct are always measured: the target is their ratio."""
    return [v for v in VARIANTS if (v in asked or v != "sdpa") and (v != "sdpa" or HAS_SDPA)]


def time_call(h: int, w: int, channels: int, chunk: int, scope: str, variant: str, device: str, reps: int
              ) -> Dict[str, float]:
    call = build_call(h, w, channels, chunk, scope, variant, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    return time_it(call, warmup=2, reps=reps, sync=sync)


def cpu_peak(h: int, w: int, channels: int, chunk: int, scope: str, variant: str) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run([sys.executable, "-c", _CHILD, str(h), str(w), str(channels), str(chunk), scope, variant],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def cpu_peak_in_process(h: int, w: int, channels: int, chunk: int, scope: str, variant: str) -> float:
    """The same figure measured in this process: quick but less exact (what the allocator kept from earlier calls is
    not counted again), for dry runs that check the wiring only."""
    build_call(8, 8, channels, chunk, scope, variant, "cpu")()
    return peak_rss_delta_mib(build_call(h, w, channels, chunk, scope, variant, "cpu"))


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
    parser.add_argument("--time-reps", type=int, default=0, help="also time this many forward + backward calls")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="implementations to measure (default all; "
                        "chunked and direct always)")
    parser.add_argument("--cpu-in-process", action="store_true",
                        help="CPU peaks in this process, not in fresh ones: quick, less exact (dry runs)")
    add_run_args(parser, reps=3, name="context_memory_<device>")
    args = parser.parse_args(argv)
    h, w = args.hw
    device = args.device.split(":")[0]
    measure = cuda_peak if device == "cuda" else cpu_peak_in_process if args.cpu_in_process else cpu_peak
    variants = measured_variants(args.variants.split(","))
    scopes = {}
    for scope in SCOPES:
        runs: Dict[str, Any] = {}
        for variant in variants:
            runs[variant] = _median([measure(h, w, args.channels, args.chunk, scope, variant)
                                     for _ in range(args.reps)])
            if args.time_reps > 0:
                runs[variant]["time"] = time_call(h, w, args.channels, args.chunk, scope, variant, args.device,
                                                  args.time_reps)
        for variant in VARIANTS:
            runs.setdefault(variant, "not measured: not asked for" if HAS_SDPA else
                            "not measured: torch %s has no scaled_dot_product_attention" % torch.__version__)
        direct = runs["direct"]["median_mib"] or float("nan")  # 0 only at sizes below what RSS resolves
        runs["ratio"] = runs["chunked"]["median_mib"] / direct
        if "sdpa" in variants:
            runs["sdpa_ratio"] = runs["sdpa"]["median_mib"] / direct
        scopes[scope] = runs
    context = scopes["context"]
    result = {"hw": [h, w], "positions": h * w, "channels": args.channels, "chunk": args.chunk, "device": args.device,
              "variants": variants, "chunked_peak_mib": context["chunked"]["median_mib"],
              "direct_peak_mib": context["direct"]["median_mib"], "ratio": context["ratio"], "target": TARGET,
              "scopes": scopes,
              "note": "torch.cuda.max_memory_allocated above the inputs" if device == "cuda" else
              "CPU figures are peak RSS deltas in this process (a dry run)" if args.cpu_in_process else
              "CPU figures are peak RSS deltas in fresh processes (mmap threshold 128 KiB)"}
    path = write_result(args.out, args.name.replace("<device>", device), result)
    for scope in SCOPES:
        runs = scopes[scope]
        figures = ", ".join("%s %.0f MiB%s" % (v, runs[v]["median_mib"], " %.1f ms" % (
            1e3 * runs[v]["time"]["median_s"]) if "time" in runs[v] else "") for v in variants)
        print("%s at %dx%d (%d positions) x %d channels on %s, chunk %d: %s; chunked/direct %.3f%s"
              % ("global context" if scope == "context" else "whole HFA term", h, w, h * w, args.channels,
                 args.device, args.chunk, figures, runs["ratio"], " (target <= 0.125)" if scope == "context" else ""))
    print("-> %s" % path)
    return result


if __name__ == "__main__":
    main()
