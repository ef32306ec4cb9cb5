"""Timing with warm-up and repetitions (median and spread), machine description, JSON results.

Usage: add_run_args(parser, reps=5, warmup=2); parser.add_argument("--size", type=hmkd.cli.common.parse_size)
       stats = time_it(step_fn, warmup=2, reps=7); write_result("results", "distill_step", payload)
       times = time_interleaved({"floor": floor_fn, "step": step_fn}); median_ratio(times["step"], times["floor"])
"""
import argparse
import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from hmkd.atomic import atomic_write_text


def add_run_args(parser: argparse.ArgumentParser, reps: int, warmup: Optional[int] = None,
                 name: Optional[str] = None) -> None:
    """The options every benchmark shares: where it runs, how often, where its JSON goes."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reps", type=int, default=reps)
    if warmup is not None:
        parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--out", default="results")
    if name is not None:
        parser.add_argument("--name", default=name, help="result file name (default %s)" % name)


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
    return summarize(times)


def time_interleaved(fns: Dict[str, Callable[[], Any]], warmup: int = 2, reps: int = 7,
                     sync: Callable[[], None] = lambda: None) -> Dict[str, List[float]]:
    """Per-call times of several functions timed round-robin (one call of each per round), so a burst of load from
    other jobs hits all of them alike and ratios taken round by round cancel it; summarize() each list."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> Dict[str, float]:
    """Median and spread of the round-by-round ratios of two interleaved measurements."""
    ratios = [n / d for n, d in zip(numerators, denominators)]
    median = statistics.median(ratios)
    return {"ratio": median, "ratio_spread": (max(ratios) - min(ratios)) / median if median else 0.0}


def summarize(times: Sequence[float]) -> Dict[str, float]:
    """Median, min, max and spread ((max - min) / median) of repeated measurements."""
    times = sorted(times)
    median = statistics.median(times)
    return {"median_s": median, "min_s": times[0], "max_s": times[-1], "reps": len(times),
            "spread": (times[-1] - times[0]) / median if median else 0.0}


def load_average() -> List[float]:
    """1/5/15-minute load averages: these machines are shared, so every result says how busy this one was."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine() -> Dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "load_average": load_average()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def write_result(out_dir: str, name: str, payload: Dict[str, Any]) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name + ".json")
    payload = dict(payload, benchmark=name, machine=machine(), time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_text(path, json.dumps(payload, indent=2))  # a killed run never leaves half a result for the table
    return path
