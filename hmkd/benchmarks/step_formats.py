"""Mixed precision and channels-last: training-step time with and without, per model family, as ratios.

Usage: python -m hmkd.benchmarks.step_formats [--models deeplabv3_r18,segformer_b0 --size 128x256 --batch 2]

Both are one-line switches that can cut a run's GPU-hours, or cost time where kernels lack a fast path (dilated
convolutions and LayerNorm in these families), so each is measured against plain fp32 NCHW in the same process.
The variants are timed round-robin (common.time_interleaved), so load from other jobs hits all of them alike;
each figure is the median of the per-round ratios. AMP is CUDA only: torch 1.11's bfloat16 CPU autocast has no
LayerNorm (SegFormer) nor dilated convolution (DeepLabV3) kernels, and the trainer ignores train.amp on the CPU,
so on the CPU the AMP rows are recorded as "cuda only".
"""
import argparse
import statistics
from contextlib import nullcontext
from typing import Any, Callable, Dict, List, Tuple

import torch

from hmkd.benchmarks.common import (add_run_args, load_average, median_ratio, summarize,
                                   time_interleaved, write_result)
from hmkd.cli.common import parse_size
from hmkd.compat import autocast, grad_scaler
from hmkd.losses import build_criterion
from hmkd.losses.criterion import TermContext
from hmkd.models import build_model

NUM_CLASSES = 19


def _variants(device: torch.device) -> List[Tuple[str, bool, bool]]:
    """(name, amp, channels_last); AMP only where the trainer would use it."""
    plain = [("fp32", False, False), ("fp32_channels_last", False, True)]
    if device.type == "cuda":
        plain += [("amp", True, False), ("amp_channels_last", True, True)]
    return plain


def make_step(name: str, size: Tuple[int, int], batch: int, device: torch.device, amp: bool,
              channels_last: bool) -> Callable[[], None]:
    """One SGD training step of ``name`` with the CE loss, as the trainer runs it (autocast + GradScaler)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(name, NUM_CLASSES).to(device).train()
    model = model.to(memory_format=fmt)
    criterion = build_criterion({"ce": {"weight": 1.0}}, TermContext(model, None, 255)).to(device).train()
    opt = torch.optim.SGD(list(model.parameters()) + list(criterion.parameters()), lr=0.01, momentum=0.9)
    scaler = grad_scaler(amp)
    images = torch.randn(batch, 3, *size, device=device).contiguous(memory_format=fmt)
    labels = torch.randint(0, NUM_CLASSES, (batch,) + tuple(size), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast("cuda", torch.float16) if amp else nullcontext():
            total = sum(criterion(model(images), labels, None).values())
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
    return step


def measure(name: str, size: Tuple[int, int], batch: int, device: str, warmup: int, reps: int) -> Dict[str, Any]:
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    variants = _variants(dev)
    steps = {v: make_step(name, size, batch, dev, amp, cl) for v, amp, cl in variants}
    times = time_interleaved(steps, warmup=warmup, reps=reps, sync=sync)
    rows: Dict[str, Any] = {}
    for v in steps:
        ratio = median_ratio(times[v], times["fp32"])
        rows[v] = dict(summarize(times[v]), images_per_s=batch / statistics.median(times[v]),
                       ratio_to_fp32=ratio["ratio"], ratio_spread=ratio["ratio_spread"])
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            steps[v]()
            sync()
            rows[v]["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    if dev.type != "cuda":
        rows["amp"] = rows["amp_channels_last"] = "cuda only"
    return {"model": name, "variants": rows}


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="deeplabv3_r18,segformer_b0", help="one per family")
    parser.add_argument("--size", type=parse_size, default="128x256")
    parser.add_argument("--batch", type=int, default=2)
    add_run_args(parser, reps=5, warmup=2, name="step_formats_<device>")
    args = parser.parse_args(argv)
    size = args.size
    load_before = load_average()
    models = [measure(m, size, args.batch, args.device, args.warmup, args.reps) for m in args.models.split(",")]
    result = {"size": list(size), "batch": args.batch, "device": args.device, "models": models,
              "load_average_before": load_before,
              "amp_note": None if args.device.startswith("cuda") else
              "cuda only: torch 1.11 bfloat16 CPU autocast lacks LayerNorm and dilated convolution kernels"}
    path = write_result(args.out, args.name.replace("<device>", args.device.split(":")[0]), result)
    for entry in models:
        for variant, row in entry["variants"].items():
            if variant == "fp32":
                continue
            if isinstance(row, str):
                print("step %s %s on %s: %s" % (entry["model"], variant, args.device, row))
                continue
            memory = ", peak %.0f MiB" % row["peak_memory_mib"] if "peak_memory_mib" in row else ""
            print("step %s %s at %dx%d x%d on %s: %.3fs vs fp32 %.3fs, ratio %.2f (spread %.2f; < 1 is faster)%s"
                  % (entry["model"], variant, size[0], size[1], args.batch, args.device, row["median_s"],
                     entry["variants"]["fp32"]["median_s"], row["ratio_to_fp32"], row["ratio_spread"], memory))
    print("-> %s" % path)
    return result


if __name__ == "__main__":
    main()
