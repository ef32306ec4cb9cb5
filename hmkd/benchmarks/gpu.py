"""bench-gpu's run phase: the GPU benchmarks at the paper's shapes, then their table (in tools/bench_gpu.py's venv).

Usage: python -m hmkd.benchmarks.gpu --out results            (in the bench-gpu venv: python3 tools/bench_gpu.py)
       python -m hmkd.benchmarks.gpu --smoke --out /tmp/r     (CPU dry run at tiny sizes, in any project venv)

The figures users compare codebases by are GPU-hours, so the GPU run must be repeatable by anyone with one command.
Setting up the pinned stack on a bare GPU machine is the setup phase, a host-only tool with the standard library
only (tools/bench_gpu.py, `make bench-gpu`); this is what then runs in the venv it made: the headline distillation
step (SegFormer-B4 -> DeepLabV3-R18, 512x1024 crops, batch 8) in fp32 and AMP, HFA's context memory on CUDA,
evaluation at 1024x2048, fp32/AMP/channels-last step ratios, the data loader against the step's demand, then the
table.
"""
import argparse
import os
import sys
from typing import Dict, List

import torch

from hmkd.benchmarks import context_memory, data_pipeline, distill_step, eval_throughput, step_formats, table


class RunError(RuntimeError):
    """The run cannot go on (no CUDA device); the message says why."""


def benchmark_args(smoke: bool) -> Dict[str, List[str]]:
    """Each benchmark's own arguments: the paper's shapes on the GPU, tiny ones for the CPU dry run."""
    if smoke:
        models = ["--models", "deeplabv3_tiny,segformer_tiny"]
        return {
            "step": ["--teacher", "segformer_tiny", "--student", "deeplabv3_tiny", "--size", "64x128", "--batch", "2",
                     "--reps", "2"],
            "context": ["--hw", "32x64", "--channels", "64", "--chunk", "256", "--reps", "1"],
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
    distill_step.main(common + args["step"] + ["--name", "distill_step_gpu_fp32"])
    distill_step.main(common + args["step"] + ["--name", "distill_step_gpu_amp", "--amp"])
    context_memory.main(common + args["context"])
    eval_throughput.main(common + args["evaluation"] + ["--batch-windows", "1,4"])
    step_formats.main(common + args["formats"])
    data_pipeline.main(["--out", out] + args["data"])  # after the steps: it compares the loader with their demand
    assert not any(m == "mmcv" or m.startswith("mmcv.") for m in sys.modules), "a benchmark imported mmcv"
    table.main([out])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--smoke", action="store_true", help="on the CPU at tiny sizes, to check the wiring")
    args = parser.parse_args(argv)
    try:
        run_benchmarks(os.path.abspath(args.out), args.smoke)
    except RunError as exc:
        print("bench-gpu: error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
