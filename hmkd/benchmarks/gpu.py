"""The GPU benchmarks at the paper's shapes, then their table: bench-gpu's run phase, and the GPU check's figures.

Usage: python -m hmkd.benchmarks.gpu --out results            (in the bench-gpu venv: python3 tools/bench_gpu.py)
       python -m hmkd.benchmarks.gpu --smoke --out /tmp/r     (CPU dry run at tiny sizes, in any project venv)
       python -m hmkd.benchmarks.gpu --check --budget 200 --out results/gpu-check/benchmarks --status FILE
                                                              (the GPU check's set in a time budget; tools/gpu_check.py)

The figures users compare codebases by are GPU-hours, so the GPU run must be repeatable by anyone with one command.
Setting up the pinned stack on a bare GPU machine is the setup phase, a host-only tool with the standard library
only (tools/bench_gpu.py, `make bench-gpu`); this is what then runs in the venv it made: the headline distillation
step (SegFormer-B4 -> DeepLabV3-R18, 512x1024 crops, batch 8) in fp32, fp16 and bf16, HFA's context memory on
CUDA, evaluation at 1024x2048, fp32/AMP/channels-last step ratios, the data loader against the step's demand, then
the table.

``--check`` is the GPU check's set (issue 12, item 5), in order of priority and within ``--budget`` seconds: the
headline step in fp32 and bf16 (images/s, peak memory, ratio to the student step + teacher forward floor), HFA's
global context chunked / SDPA / direct at 1x256x128x256 (time and peak memory), evaluation images/s at 1024x2048
whole and sliding (the headline pair's two models), then, while time is left, the step in bf16 with the SDPA paths
and in fp16. A benchmark that would not fit in what is left is skipped, one that fails is recorded and the next one
runs; ``--status`` gets what ran, for how long and why not, after every benchmark. cudnn.benchmark is on, as the
trainer sets it outside deterministic mode.
"""
import argparse
import json
import os
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import torch

from hmkd.atomic import atomic_write_text
from hmkd.benchmarks import context_memory, data_pipeline, distill_step, eval_throughput, step_formats, table
from hmkd.benchmarks.common import machine


class RunError(RuntimeError):
    """The run cannot go on (no CUDA device); the message says why."""


def benchmark_args(smoke: bool) -> Dict[str, List[str]]:
    """Each benchmark's own arguments: the paper's shapes on the GPU, tiny ones for the CPU dry run."""
    if smoke:
        models = ["--models", "deeplabv3_tiny,segformer_tiny"]
        return {
            "step": ["--teacher", "segformer_tiny", "--student", "deeplabv3_tiny", "--size", "32x64", "--batch", "2",
                     "--reps", "1"],
            "context": ["--hw", "32x64", "--channels", "64", "--chunk", "256", "--reps", "1", "--cpu-in-process"],
            "evaluation": ["--size", "64x128", "--crop", "64x64", "--stride", "48x48", "--reps", "2"] + models,
            "formats": ["--size", "64x128", "--batch", "2", "--reps", "2"] + models + ["--name", "step_formats_smoke"],
            "data": ["--workers", "1,2", "--samples-per-scale", "1", "--reps", "1", "--loader-reps", "1"],
        }
    return {  # the headline pair at the paper's shape; evaluation at full Cityscapes resolution
        "step": ["--teacher", "segformer_b4", "--student", "deeplabv3_r18", "--size", "512x1024", "--batch", "8",
                 "--reps", "10"],
        "context": [],
        "evaluation": ["--size", "1024x2048", "--crop", "512x1024", "--stride", "341x682", "--reps", "10"],
        "formats": ["--size", "512x1024", "--batch", "8", "--reps", "10"],
        "data": ["--workers", ",".join(str(n) for n in (1, 2, 4, 8) if n <= (os.cpu_count() or 1))],
    }


def run_benchmarks(out: str, smoke: bool) -> None:
    """Every GPU figure into ``out``, then the table. ``smoke`` runs the same calls on the CPU at tiny sizes, to check
    the wiring on a machine without a GPU."""
    if not smoke and not torch.cuda.is_available():
        raise RunError("no CUDA device visible to torch %s" % torch.__version__)
    common = ["--out", out, "--device", "cpu" if smoke else "cuda"]
    args = benchmark_args(smoke)
    had_mmcv = _mmcv_imported()  # by the caller (a test session, say): then this run cannot tell
    distill_step.main(common + args["step"] + ["--name", "distill_step_gpu_fp32"])
    distill_step.main(common + args["step"] + ["--name", "distill_step_gpu_fp16", "--amp", "fp16"])
    distill_step.main(common + args["step"] + ["--name", "distill_step_gpu_bf16", "--amp", "bf16"])
    context_memory.main(common + args["context"])
    eval_throughput.main(common + args["evaluation"] + ["--batch-windows", "1,4"])
    step_formats.main(common + args["formats"])
    data_pipeline.main(["--out", out] + args["data"])  # after the steps: it compares the loader with their demand
    assert had_mmcv or not _mmcv_imported(), "a benchmark imported mmcv"
    table.main([out])


def _mmcv_imported() -> bool:
    """bench-gpu's venv has no mmcv-full (none is built for its +cu113 torch): no benchmark may need it."""
    return any(m == "mmcv" or m.startswith("mmcv.") for m in sys.modules)


class Planned(NamedTuple):
    name: str                       # the result file's name (and its row in the table)
    run: Callable[[List[str]], Any]  # a benchmark's main
    args: List[str]
    need_s: float                   # what it takes on an H200, with CUDA warm (a guess to budget by: see --status)
    required: bool = True           # item 5 asks for it: skipping it fails the check


def check_plan(smoke: bool) -> List[Planned]:
    """The GPU check's benchmarks, most wanted first; ``smoke``: the same calls at tiny sizes for the CPU."""
    if smoke:
        pair = ["--teacher", "segformer_tiny", "--student", "deeplabv3_tiny", "--size", "32x64", "--batch", "2",
                "--reps", "1"]
        context = ["--hw", "32x64", "--channels", "32", "--chunk", "256", "--reps", "1", "--time-reps", "1",
                   "--cpu-in-process"]
        evaluation = ["--size", "64x128", "--crop", "32x64", "--stride", "24x48", "--reps", "1", "--warmup", "0",
                      "--models", "deeplabv3_tiny,segformer_tiny"]
    else:
        pair = ["--teacher", "segformer_b4", "--student", "deeplabv3_r18", "--size", "512x1024", "--batch", "8",
                "--reps", "8"]
        context = ["--hw", "128x256", "--channels", "256", "--chunk", "1024", "--reps", "2", "--time-reps", "10"]
        evaluation = ["--size", "1024x2048", "--crop", "512x1024", "--stride", "341x682", "--reps", "5",
                      "--models", "deeplabv3_r18,segformer_b4"]
    return [
        Planned("distill_step_fp32", distill_step.main, pair, 45),
        Planned("distill_step_bf16", distill_step.main, pair + ["--amp", "bf16"], 40),
        Planned("context_memory", context_memory.main, context, 25),
        Planned("eval_throughput", eval_throughput.main, evaluation + ["--batch-windows", "1,4"], 40),
        Planned("distill_step_bf16_sdpa", distill_step.main,
                pair + ["--amp", "bf16", "--attention", "sdpa", "--context", "sdpa"], 40, required=False),
        Planned("distill_step_fp16", distill_step.main, pair + ["--amp", "fp16"], 40, required=False),
    ]


def run_check(out: str, smoke: bool, budget_s: float, status_path: Optional[str] = None) -> Dict[str, Any]:
    """The check's benchmarks into ``out`` within ``budget_s`` seconds (see the module docstring); returns the
    status it also writes to ``status_path`` after each benchmark."""
    if not smoke and not torch.cuda.is_available():
        raise RunError("no CUDA device visible to torch %s" % torch.__version__)
    device = "cpu" if smoke else "cuda"
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    start = time.monotonic()
    status: Dict[str, Any] = {"smoke": smoke, "device": device, "budget_s": budget_s, "out": out,
                              "machine": machine(), "benchmarks": []}

    def publish() -> None:
        status["seconds"] = round(time.monotonic() - start, 1)
        if status_path:
            atomic_write_text(status_path, json.dumps(status, indent=2))

    for item in check_plan(smoke):
        left = budget_s - (time.monotonic() - start)
        entry: Dict[str, Any] = {"name": item.name, "need_s": item.need_s, "required": item.required}
        if left < item.need_s:
            entry.update(status="skipped", why="%.0f s left of the budget, it needs about %.0f s" % (left, item.need_s))
        else:
            began = time.monotonic()
            try:
                item.run(["--out", out, "--device", device, "--name", item.name] + item.args)
                entry["status"] = "ok"
            except Exception as exc:  # one failing benchmark must not cost the others their figures
                traceback.print_exc()
                entry.update(status="error", error="%s: %s" % (type(exc).__name__, str(exc).splitlines()[0]
                                                              if str(exc) else ""))
                if device == "cuda":
                    torch.cuda.empty_cache()
            entry["seconds"] = round(time.monotonic() - began, 1)
        print("gpu-check: %s %s%s" % (item.name, entry["status"], " (%.1f s)" % entry["seconds"]
                                     if "seconds" in entry else ": " + entry["why"]), flush=True)
        status["benchmarks"].append(entry)
        publish()
    status["mmcv_imported"] = _mmcv_imported()
    publish()
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--smoke", action="store_true", help="on the CPU at tiny sizes, to check the wiring")
    parser.add_argument("--check", action="store_true", help="the GPU check's set, within --budget seconds")
    parser.add_argument("--budget", type=float, default=200.0, help="seconds for --check (default 200)")
    parser.add_argument("--status", default=None, help="--check: JSON of what ran, rewritten after each benchmark")
    args = parser.parse_args(argv)
    try:
        if args.check:
            status = run_check(os.path.abspath(args.out), args.smoke, args.budget, args.status)
            table.main([os.path.abspath(args.out)])
            return 0 if all(b["status"] == "ok" or (b["status"] == "skipped" and not b["required"])
                            for b in status["benchmarks"]) else 1
        run_benchmarks(os.path.abspath(args.out), args.smoke)
    except RunError as exc:
        print("bench-gpu: error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
