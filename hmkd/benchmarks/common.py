"""Timing with warm-up and repetitions (median and spread), machine description, JSON results.

Usage: stats = time_it(step_fn, warmup=2, reps=7); write_result("results", "distill_step", payload)
"""
import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict

import torch


def time_it(fn: Callable[[], Any], warmup: int = 2, reps: int = 7, sync: Callable[[], None] = lambda: None
            ) -> Dict[str, float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"median_s": statistics.median(times), "min_s": times[0], "max_s": times[-1], "reps": reps,
            "spread": (times[-1] - times[0]) / statistics.median(times)}


def machine() -> Dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def write_result(out_dir: str, name: str, payload: Dict[str, Any]) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name + ".json")
    payload = dict(payload, benchmark=name, machine=machine(), time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
    return path
