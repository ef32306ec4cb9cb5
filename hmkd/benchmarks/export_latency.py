"""Latency of the exported student on the CPU, batch 1: onnxruntime and TorchScript against torch eager (the floor).

Usage: python -m hmkd.benchmarks.export_latency [--models deeplabv3_r18 --size 256x512 --reps 7 --warmup 2]

What a deployment of the student costs per image once ``hmkd export`` has written it. The three are the same module
(StudentLogits: logits at the input resolution), exported as ``hmkd export`` exports it, timed in rotation
(common.time_interleaved) with the same thread count, so the ratios cancel load from other jobs; the outputs are
checked against eager first (max |diff| in the JSON), so a fast but wrong file cannot score.
"""
import argparse
import statistics
from typing import Any, Dict

import onnxruntime
import torch

from hmkd.benchmarks.common import add_run_args, load_average, median_ratio, summarize, time_interleaved, write_result
from hmkd.cli.common import parse_size
from hmkd.deploy.formats import FORMATS, ONNX_OPSET
from hmkd.deploy.student import StudentLogits
from hmkd.models import build_model

NUM_CLASSES = 19
FLOOR = "torch_eager"


def measure(name: str, size, warmup: int, reps: int) -> Dict[str, Any]:
    module = StudentLogits(build_model(name, NUM_CLASSES)).eval()
    images = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))

    def eager():
        with torch.no_grad():
            return module(images)

    calls = {FLOOR: eager}
    for fmt in FORMATS.values():
        run = fmt.runner(fmt.serialize(module, images, {}))
        calls[fmt.runtime] = (lambda r: lambda: r(images))(run)
    expected = eager()
    max_abs_diff = {runtime: float((call() - expected).abs().max()) for runtime, call in calls.items()
                    if runtime != FLOOR}
    times = time_interleaved(calls, warmup=warmup, reps=reps)
    rows: Dict[str, Any] = {FLOOR: dict(summarize(times[FLOOR]), ms=1e3 * statistics.median(times[FLOOR]))}
    for runtime in max_abs_diff:
        rows[runtime] = dict(summarize(times[runtime]), ms=1e3 * statistics.median(times[runtime]),
                             max_abs_diff=max_abs_diff[runtime], **median_ratio(times[runtime], times[FLOOR]))
    return {"model": name, "runtimes": rows}


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="deeplabv3_r18")
    parser.add_argument("--size", type=parse_size, default="256x512")
    add_run_args(parser, reps=7, warmup=2, name="export_latency_cpu")
    parser.set_defaults(device="cpu")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        parser.error("--device %s: this benchmark times onnxruntime's CPU provider; use --device cpu" % args.device)
    load_before = load_average()
    models = [measure(m, args.size, args.warmup, args.reps) for m in args.models.split(",")]
    result = {"size": list(args.size), "batch": 1, "device": "cpu", "threads": torch.get_num_threads(),
              "opset": ONNX_OPSET, "onnxruntime": onnxruntime.__version__, "models": models,
              "load_average_before": load_before, "floor": "torch eager forward of the same module, no_grad"}
    path = write_result(args.out, args.name, result)
    for entry in models:
        floor = entry["runtimes"][FLOOR]
        for runtime, row in entry["runtimes"].items():
            if runtime != FLOOR:
                print("exported %s %dx%d batch 1 CPU %d threads: %s %.1f ms, torch eager %.1f ms: %.3f (spread %.2f), "
                      "max |diff| %.2g" % (entry["model"], args.size[0], args.size[1], result["threads"], runtime,
                                           row["ms"], floor["ms"], row["ratio"], row["ratio_spread"],
                                           row["max_abs_diff"]))
    print("-> %s" % path)
    return result


if __name__ == "__main__":
    main()
