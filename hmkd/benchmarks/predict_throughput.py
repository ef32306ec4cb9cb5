"""Throughput of ``hmkd predict`` on the CPU: images/s end to end (decode, normalise, infer, colour, encode, atomic
writes) for torch eager, onnxruntime and TorchScript, and the ratio to the same backend's forward alone.

Usage: python -m hmkd.benchmarks.predict_throughput [--model deeplabv3_r18 --size 512x1024 --images 4 --reps 2
       --warmup 1 --workers 2 --batch-size 1 --outputs palette,overlay --format jpg]

The pipeline is hmkd.predict's own (expand_sources, predict) on a folder of images written first (a smooth scene with
edges, as JPEG or PNG), writing its default outputs (palette, overlay) with --overwrite, so every call redoes all of
it. The floor is the backend's forward alone on the same images, already normalised, in the same batches: the ratio
is what pre- and post-processing cost on top of the model (the issue's aim: <= 1.3). All six are timed in rotation
(common.time_interleaved) with the same thread count (onnxruntime's intra-op threads are torch's), so load from other
jobs hits them alike; the exported files are checked against eager first (max |diff| in the JSON).
"""
import argparse
import json
import os
import shutil
import statistics
import tempfile
from typing import Any, Dict, List

import cv2
import numpy as np
import onnxruntime
import torch

from hmkd.benchmarks.common import add_run_args, load_average, median_ratio, summarize, time_interleaved, write_result
from hmkd.cli.common import parse_size
from hmkd.data.transforms import Normalize
from hmkd.deploy.formats import FORMATS
from hmkd.deploy.student import StudentLogits, normalization
from hmkd.models import build_model
from hmkd.predict import Outputs, PredictOptions, expand_sources, load_backend, parse_kinds, predict, predict_batch
from hmkd.predict.backends import torch_backend

NUM_CLASSES = 19
NORMALIZE = "imagenet_rgb"


def scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Blocks of colour, blurred, with a little noise: regions and edges, compressing like a photo."""
    blocks = rng.integers(0, 256, size=(max(1, height // 64), max(1, width // 64), 3), dtype=np.uint8)
    image = cv2.resize(blocks, (width, height), interpolation=cv2.INTER_NEAREST)
    image = cv2.GaussianBlur(image, (0, 0), 3)
    noise = rng.normal(0, 4, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def write_images(folder: str, count: int, size, fmt: str) -> List[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = os.path.join(folder, "%03d.%s" % (i, fmt))
        assert cv2.imwrite(path, scene(rng, size[0], size[1])), path
        paths.append(path)
    return paths


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deeplabv3_r18")
    parser.add_argument("--size", type=parse_size, default="512x1024")
    parser.add_argument("--images", type=int, default=4, help="images per timed call")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="predict's decoding and writing threads (each)")
    parser.add_argument("--outputs", default="palette,overlay", help="what predict writes (its default)")
    parser.add_argument("--format", default="jpg", choices=("jpg", "png"), help="the input images' format")
    add_run_args(parser, reps=2, warmup=1, name="predict_throughput_cpu")
    parser.set_defaults(device="cpu")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        parser.error("--device %s: this benchmark times the CPU (onnxruntime's CPU provider); use --device cpu"
                     % args.device)
    load_before = load_average()
    kinds = parse_kinds(args.outputs)
    class_names = ["class_%d" % k for k in range(NUM_CLASSES)]
    work = tempfile.mkdtemp(prefix="hmkd-bench-predict-")
    try:
        folder = os.path.join(work, "images")
        os.makedirs(folder)
        write_images(folder, args.images, args.size, args.format)
        inputs = expand_sources([folder])
        torch.manual_seed(0)
        model = build_model(args.model, NUM_CLASSES).eval()
        example = torch.zeros(1, 3, *args.size)
        metadata = {"hmkd.class_names": json.dumps(class_names), "hmkd.normalization": json.dumps(
            normalization(NORMALIZE), sort_keys=True), "hmkd.model": json.dumps(args.model)}
        backends = {"torch_eager": torch_backend(model, class_names, NORMALIZE, torch.device("cpu"),
                                                 model_name=args.model)}
        for name, fmt in FORMATS.items():
            path = os.path.join(work, "model." + fmt.extension)
            with open(path, "wb") as handle:
                handle.write(fmt.serialize(StudentLogits(model).eval(), example, metadata))
            backends[fmt.runtime] = load_backend(path, "cpu")
        options = PredictOptions(batch_size=args.batch_size, workers=args.workers)
        norm = Normalize(NORMALIZE)
        images_chw = []
        for item in inputs:
            chw = np.empty((3,) + tuple(args.size), np.float32)
            norm.into_chw(cv2.imread(item.path), chw)
            images_chw.append(chw)
        batches = [images_chw[i:i + args.batch_size] for i in range(0, len(images_chw), args.batch_size)]
        expected = predict_batch(backends["torch_eager"], batches[0], options)
        max_abs_diff = {name: float((predict_batch(b, batches[0], options) - expected).abs().max())
                        for name, b in backends.items() if name != "torch_eager"}
        devnull = open(os.devnull, "w")
        calls = {}
        for name, backend in backends.items():
            outputs = Outputs(os.path.join(work, "out", name), kinds, class_names, overwrite=True)
            calls[name + ":pipeline"] = (lambda b, o: lambda: predict(inputs, b, o, options, stream=devnull))(
                backend, outputs)
            calls[name + ":forward"] = (lambda b: lambda: [predict_batch(b, batch, options) for batch in batches])(
                backend)
        times = time_interleaved(calls, warmup=args.warmup, reps=args.reps)
        devnull.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows: Dict[str, Any] = {}
    for name in backends:
        pipeline, forward = times[name + ":pipeline"], times[name + ":forward"]
        rows[name] = dict(summarize(pipeline), images_per_s=args.images / statistics.median(pipeline),
                          forward_images_per_s=args.images / statistics.median(forward),
                          forward=summarize(forward), **median_ratio(pipeline, forward))
        if name in max_abs_diff:
            rows[name]["max_abs_diff"] = max_abs_diff[name]
    result = {"model": args.model, "size": list(args.size), "images": args.images, "batch": args.batch_size,
              "workers": args.workers, "outputs": kinds, "input_format": args.format, "device": "cpu",
              "threads": torch.get_num_threads(), "onnxruntime": onnxruntime.__version__, "runtimes": rows,
              "target_ratio": 1.3, "load_average_before": load_before,
              "floor": "the same backend's forward alone (predict_batch) on the images already normalised, in the same "
                       "batches"}
    path = write_result(args.out, args.name, result)
    for name, row in rows.items():
        print("predict %s %dx%d %s CPU %d threads, batch %d, %d workers: %s %.3f images/s, forward alone %.3f "
              "images/s: ratio %.3f (spread %.2f; target <= 1.3)%s" % (
                  args.model, args.size[0], args.size[1], args.format, result["threads"], args.batch_size,
                  args.workers, name, row["images_per_s"], row["forward_images_per_s"], row["ratio"],
                  row["ratio_spread"], ", max |diff| %.2g" % row["max_abs_diff"] if "max_abs_diff" in row else ""))
    print("-> %s" % path)
    return result


if __name__ == "__main__":
    main()
