"""Data pipeline: per-sample time of the Cityscapes training pipeline against the floor of decoding its two PNGs.

Usage: python -m hmkd.benchmarks.data_pipeline [--samples-per-scale 2 --reps 5 --workers 1,2 --out results]

A training sample cannot cost less than decoding its image and label, so the figure is the ratio of the two, taken
in one process on one thread (a DataLoader worker's share of a core): target <= 1.3. The pair is written once in the
official layout (leftImg8bit/ + gtFine/ labelIds, 2048x1024, content smooth enough that PNG compresses it about as
much as a street scene) and loaded through build_dataset with the Cityscapes recipe. The keys are chosen so that every
scale of the 0.5-2.0 grid appears equally often, so the mean is the pipeline's expected cost, not a lucky draw.
The DataLoader part runs the loader as the trainer builds it (N workers, batch 2, default OpenCV threads) and
compares its images/s with the GPU step's demand when a GPU result (distill_step_gpu_*.json) is in --out.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from hmkd.benchmarks.common import load_average, summarize, write_result
from hmkd.data import build_dataset, sample_rng
from hmkd.data.cityscapes import EVAL_LABEL_IDS, IMAGE_SUFFIX, LABEL_SUFFIX

TARGET = 1.3
HEIGHT, WIDTH = 1024, 2048
STEM = "bench_000000_000019"


def _smooth_noise(rng: np.random.Generator, cell: int, channels: int) -> np.ndarray:
    small = rng.normal(0.0, 1.0, (HEIGHT // cell + 2, WIDTH // cell + 2, channels)).astype(np.float32)
    big = cv2.resize(small, (WIDTH + 2 * cell, HEIGHT + 2 * cell), interpolation=cv2.INTER_CUBIC)
    return big[cell:cell + HEIGHT, cell:cell + WIDTH].reshape(HEIGHT, WIDTH, channels)


def street_scene(seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(BGR image, labelIds): smooth textures, sharp-edged regions and mild sensor noise; the label's regions are
    the image's, so both PNGs compress like real ones (a few MB and a few tens of kB)."""
    rng = np.random.default_rng(seed)
    image = 110.0 + 45.0 * _smooth_noise(rng, 128, 3) + 20.0 * _smooth_noise(rng, 16, 3)
    image += 3.0 * _smooth_noise(rng, 2, 3)
    label = np.full((HEIGHT, WIDTH), 7, np.uint8)  # road
    label[:HEIGHT // 3] = 23  # sky
    image[:HEIGHT // 3] += 40.0
    for k in range(80):
        y, x, r = int(rng.integers(0, HEIGHT)), int(rng.integers(0, WIDTH)), int(rng.integers(15, 180))
        colour = [float(v) for v in rng.integers(0, 256, 3)]
        class_id = int(rng.choice(EVAL_LABEL_IDS))
        if k % 2:
            cv2.circle(image, (x, y), r, colour, -1)
            cv2.circle(label, (x, y), r, class_id, -1)
        else:
            cv2.rectangle(image, (x, y), (x + 2 * r, y + r), colour, -1)
            cv2.rectangle(label, (x, y), (x + 2 * r, y + r), class_id, -1)
    image += rng.normal(0.0, 1.2, image.shape)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), label


def write_pair(root: str) -> Tuple[str, str]:
    """One image/label pair in the official Cityscapes layout under ``root``; returns their paths."""
    image, label = street_scene()
    image_path = os.path.join(root, "leftImg8bit", "train", "bench", STEM + IMAGE_SUFFIX)
    label_path = os.path.join(root, "gtFine", "train", "bench", STEM + LABEL_SUFFIX % "labelIds")
    for path, array in ((image_path, image), (label_path, label)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not cv2.imwrite(path, array):
            raise OSError("cannot write %s" % path)
    return image_path, label_path


def balanced_keys(dataset, per_scale: int) -> List[Tuple[int, int]]:
    """(epoch, 0) keys whose drawn scales cover the scale grid ``per_scale`` times each."""
    transform = dataset.transform
    wanted = {float(s): per_scale for s in transform.scales}
    keys = []
    epoch = 0
    while any(wanted.values()):
        scale = transform.sample_params(sample_rng(dataset.seed, epoch, 0), HEIGHT, WIDTH)["scale"]
        if wanted.get(scale, 0) > 0:
            wanted[scale] -= 1
            keys.append((epoch, 0))
        epoch += 1
    return keys


def per_sample(dataset, keys: Sequence[Tuple[int, int]], image_path: str, label_path: str, reps: int
               ) -> Dict[str, Any]:
    """For every key in turn: the decode floor, the full sample, and its two parts (dataset.load, the transform),
    so a burst of load from other jobs hits all four alike; per repetition the means over the keys, and the ratio
    sample / floor, whose median is the figure."""
    image, label = dataset.load(0)

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def decode() -> None:
        cv2.imread(image_path, cv2.IMREAD_COLOR)
        cv2.imread(label_path, cv2.IMREAD_UNCHANGED)

    for key in keys[:4]:  # warm-up: page cache, allocator, OpenCV's lazy initialisation
        dataset[key]
        decode()
    runs: Dict[str, List[float]] = {"decode": [], "sample": [], "load": [], "transform": []}
    for _ in range(reps):
        sums = dict.fromkeys(runs, 0.0)
        for key in keys:
            sums["decode"] += timed(decode)
            sums["sample"] += timed(lambda: dataset[key])
            sums["load"] += timed(lambda: dataset.load(0))
            sums["transform"] += timed(lambda: dataset.transform(image, label, sample_rng(dataset.seed, key[0], 0)))
        for name, total in sums.items():
            runs[name].append(total / len(keys))
    ratios = [sample / floor for sample, floor in zip(runs["sample"], runs["decode"])]
    median = statistics.median(ratios)
    return {"decode_floor": summarize(runs["decode"]), "sample": summarize(runs["sample"]), "ratio_runs": ratios,
            "ratio": median, "ratio_spread": (max(ratios) - min(ratios)) / median,
            "breakdown_median_s": {"decode_two_pngs": statistics.median(runs["decode"]),
                                   "load_decode_check_map": statistics.median(runs["load"]),
                                   "transform": statistics.median(runs["transform"])},
            "samples_per_s_per_worker": 1.0 / statistics.median(runs["sample"])}


def loader_throughput(dataset, keys: Sequence[Tuple[int, int]], workers: int, batch: int, reps: int
                      ) -> Dict[str, Any]:
    """images/s of a DataLoader built like the trainer's (persistent workers, no pinning on the CPU); the first
    2 x workers batches (process start, prefetch fill) are warm-up, then ``reps`` timed segments of 8 batches."""
    per_segment = 8
    warm = 2 * workers
    total = warm + reps * per_segment
    order = [keys[i % len(keys)] for i in range(total * batch)]
    loader = DataLoader(dataset, batch_size=batch, sampler=order, num_workers=workers, persistent_workers=True)
    stamps = []
    for _ in loader:
        stamps.append(time.perf_counter())
    del loader
    rates = []
    for r in range(reps):
        start, end = warm - 1 + r * per_segment, warm - 1 + (r + 1) * per_segment
        rates.append(per_segment * batch / (stamps[end] - stamps[start]))
    rates.sort()
    median = statistics.median(rates)
    return {"workers": workers, "batch": batch, "images_per_s": median, "min": rates[0], "max": rates[-1],
            "spread": (rates[-1] - rates[0]) / median, "reps": reps}


def gpu_demand(out_dir: str) -> Optional[Dict[str, Any]]:
    """The headline distillation step's images/s on a GPU, from bench-gpu's results, if any are in ``out_dir``."""
    found = []
    for path in sorted(glob.glob(os.path.join(out_dir, "distill_step_gpu*.json"))):
        with open(path) as handle:
            result = json.load(handle)
        if result.get("device", "").startswith("cuda") and "images_per_s" in result:
            found.append({"file": os.path.basename(path), "images_per_s": result["images_per_s"],
                          "amp": result.get("amp"), "gpu": result.get("machine", {}).get("gpu")})
    return max(found, key=lambda r: r["images_per_s"]) if found else None


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples-per-scale", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workers", default="1,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--batch", type=int, default=2, help="per-GPU batch of the Cityscapes configs")
    parser.add_argument("--loader-reps", type=int, default=3)
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    load_before = load_average()
    root = tempfile.mkdtemp(prefix="hmkd-bench-data-")
    try:
        image_path, label_path = write_pair(root)
        dataset = build_dataset({"name": "cityscapes", "root": root, "crop_size": [512, 1024],
                                 "scale_range": [0.5, 2.0], "scale_step": 0.1, "flip": True,
                                 "normalize": "imagenet_rgb", "validate": "full"}, split="train", seed=0)
        keys = balanced_keys(dataset, args.samples_per_scale)
        threads = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        try:
            result: Dict[str, Any] = per_sample(dataset, keys, image_path, label_path, args.reps)
        finally:
            torch.set_num_threads(threads[0])
            cv2.setNumThreads(threads[1])
        result["loader"] = [loader_throughput(dataset, keys, int(n), args.batch, args.loader_reps)
                            for n in args.workers.split(",")]
        result["png_bytes"] = {"image": os.path.getsize(image_path), "label": os.path.getsize(label_path)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    demand = gpu_demand(args.out)
    result.update({"shape": [HEIGHT, WIDTH], "crop": [512, 1024], "scale_range": [0.5, 2.0], "scale_step": 0.1,
                   "samples_per_rep": len(keys), "target": TARGET, "threads_per_sample": 1,
                   "load_average_before": load_before, "gpu_demand": demand,
                   "note": None if demand else "no GPU result in %s: loader throughput reported for the CPU only"
                   % args.out})
    path = write_result(args.out, "data_pipeline", result)
    floor, sample = result["decode_floor"]["median_s"], result["sample"]["median_s"]
    parts = result["breakdown_median_s"]
    print("data pipeline at 2048x1024 -> 512x1024 (1 thread): decode floor %.1f ms, sample %.1f ms, ratio %.2f "
          "(spread %.2f; target <= %.1f) -> %s" % (1e3 * floor, 1e3 * sample, result["ratio"],
                                                   result["ratio_spread"], TARGET, path))
    print("  where the time goes: load (decode + label check + id map) %.1f ms, transform %.1f ms"
          % (1e3 * parts["load_decode_check_map"], 1e3 * parts["transform"]))
    for row in result["loader"]:
        line = "  DataLoader %d worker(s), batch %d: %.1f images/s (spread %.2f)" % (
            row["workers"], row["batch"], row["images_per_s"], row["spread"])
        if demand:
            line += "; GPU step demand %.1f images/s (%s, %s) -> %.2fx of demand" % (
                demand["images_per_s"], demand["gpu"], "amp" if demand["amp"] else "fp32",
                row["images_per_s"] / demand["images_per_s"])
        print(line)
    if not demand:
        print("  (no GPU result in %s: CPU loader figures only; make bench-gpu writes distill_step_gpu_*.json)"
              % args.out)
    return result


if __name__ == "__main__":
    main()
