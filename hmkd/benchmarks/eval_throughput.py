"""Evaluation throughput: whole-image and sliding-window inference images/s through predict_logits, per model.

Usage: python -m hmkd.benchmarks.eval_throughput [--models deeplabv3_r18,segformer_b0 --size 256x512
                                                  --crop 256x256 --stride 192x192 --batch-windows 1,4]

Evaluation runs over the whole validation set after (and during) every training run, so its images/s is part of a
run's GPU-hours. Each mode is timed on batch-1 inputs as the evaluator feeds them, and set against a floor taken in
the same run: the network's bare forward over the same pixels (the image, or all its windows in one batch), so the
ratio is what inference adds around the network (logit resizing, stitching, per-window launches). Sizes are
CPU-sized by default; bench-gpu runs the Cityscapes recipe (1024x2048, 512x1024 windows, stride 341x682) on CUDA.
"""
import argparse
import statistics
from typing import Any, Callable, Dict, List, Tuple

import torch

from hmkd.benchmarks.common import (add_run_args, load_average, median_ratio, summarize,
                                   time_interleaved, write_result)
from hmkd.cli.common import parse_size
from hmkd.evaluation import predict_logits, window_starts
from hmkd.models import build_model



def measure(name: str, size: Tuple[int, int], crop: Tuple[int, int], stride: Tuple[int, int],
            batch_windows: List[int], device: str, warmup: int, reps: int) -> Dict[str, Any]:
    """Round-robin over the modes and their floors (common.time_interleaved), so load from other jobs hits all of
    them alike; ratios are taken per round, then their median."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = build_model(name, 19).to(dev).eval()
    torch.manual_seed(0)
    images = torch.randn(1, 3, *size, device=dev)
    starts = [(y, x) for y in window_starts(size[0], crop[0], stride[0])
              for x in window_starts(size[1], crop[1], stride[1])]
    windows = torch.cat([images[:, :, y:y + crop[0], x:x + crop[1]] for y, x in starts])

    def bare(inputs):
        def run():
            with torch.no_grad():
                model(inputs)
        return run

    def slide(bw):
        return lambda: predict_logits(model, images, mode="slide", crop_size=crop, stride=stride, batch_windows=bw)

    calls: Dict[str, Callable[[], Any]] = {"bare_image": bare(images), "bare_windows": bare(windows),
                                           "whole": lambda: predict_logits(model, images, mode="whole")}
    calls.update({"slide_bw%d" % bw: slide(bw) for bw in batch_windows})
    floors = {"whole": "bare_image"}
    floors.update({"slide_bw%d" % bw: "bare_windows" for bw in batch_windows})
    times = time_interleaved(calls, warmup=warmup, reps=reps, sync=sync)
    rows: Dict[str, Any] = {}
    for mode, floor in floors.items():
        rows[mode] = dict(summarize(times[mode]), images_per_s=1.0 / statistics.median(times[mode]),
                          floor=dict(summarize(times[floor]), what=floor), **median_ratio(times[mode], times[floor]))
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            calls[mode]()
            sync()
            rows[mode]["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return {"model": name, "windows": len(starts), "modes": rows}


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="deeplabv3_r18,segformer_b0")
    parser.add_argument("--size", type=parse_size, default="256x512")
    parser.add_argument("--crop", type=parse_size, default="256x256")
    parser.add_argument("--stride", type=parse_size, default="192x192")
    parser.add_argument("--batch-windows", default="1,4")
    add_run_args(parser, reps=5, warmup=1, name="eval_throughput_<device>")
    args = parser.parse_args(argv)
    size, crop, stride = args.size, args.crop, args.stride
    batch_windows = [int(v) for v in args.batch_windows.split(",")]
    load_before = load_average()
    models = [measure(m, size, crop, stride, batch_windows, args.device, args.warmup, args.reps)
              for m in args.models.split(",")]
    result = {"size": list(size), "crop": list(crop), "stride": list(stride), "device": args.device,
              "batch_windows": batch_windows, "models": models, "load_average_before": load_before,
              "floor": "the network's bare forward over the same pixels (image, or all windows in one batch)"}
    path = write_result(args.out, args.name.replace("<device>", args.device.split(":")[0]), result)
    for entry in models:
        for mode, row in entry["modes"].items():
            memory = " peak %.0f MiB" % row["peak_memory_mib"] if "peak_memory_mib" in row else ""
            print("eval %s %s at %dx%d%s on %s: %.2f images/s (spread %.2f), %.2fx the bare forward (spread %.2f)%s"
                  % (entry["model"], mode, size[0], size[1],
                     "" if mode == "whole" else " (%d windows %dx%d)" % (entry["windows"], crop[0], crop[1]),
                     args.device, row["images_per_s"], row["spread"], row["ratio"], row["ratio_spread"], memory))
    print("-> %s" % path)
    return result


if __name__ == "__main__":
    main()
