"""Modern / legacy step time: the headline distillation step timed in each stack's own Python, in one run.

Usage: python -m hmkd.benchmarks.stack_ratio --out results [--legacy-python .venv/bin/python]
                                             [--modern-python .venv-modern/bin/python] [--size 128x256 --batch 2]

Each variant runs in a worker process of its stack (``--worker``; the legacy and modern venvs both hold this
package): the same step as :mod:`hmkd.benchmarks.distill_step` (SegFormer-B4 -> DeepLabV3-R18, CE + GLA + HFA, SGD),
same shapes, same seed for the data, the same thread count set in every worker. The driver asks the workers for
one step each in turn, round after round, so load from other jobs hits every variant alike, and takes the ratio to
the legacy step round by round. Variants: legacy eager float32; modern eager float32; modern with SDPA (SegFormer
attention and HFA's context); modern with SDPA and bf16 autocast, by default only where the CPU computes bf16
natively (AVX512-BF16 or AMX; ``--bf16 always`` runs it anyway): emulated, it is far slower (18x the legacy step on
the 2-core AMD EPYC of CI, 45 s a step), which would take most of `make bench`'s budget for a known answer.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from hmkd.benchmarks.common import median_ratio, summarize, write_result
from hmkd.cli.common import parse_size

VARIANTS = {  # name: (stack, worker switches)
    "legacy": ("legacy", []),
    "modern": ("modern", []),
    "modern_sdpa": ("modern", ["--attention", "sdpa", "--context", "sdpa"]),
    "modern_sdpa_bf16": ("modern", ["--attention", "sdpa", "--context", "sdpa", "--amp", "bf16"]),
}
REPLY = "hmkd-step "  # the prefix of a worker's answers on stdout (anything else there is a library's print)


def cpu_bf16_native() -> bool:
    """AVX512-BF16 or AMX-BF16 in /proc/cpuinfo: the CPUs whose bf16 matrix products are not emulated."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def worker(args) -> int:
    """Build the step once, then one timed step per "step" line on stdin; the time goes to stdout."""
    import torch

    from hmkd.benchmarks.distill_step import DistillSetup, hmkd_terms

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bench = DistillSetup(args.teacher, args.student, args.size, args.batch, "cpu", args.amp, args.attention)
    step = bench.step(*bench.setup(dict({"ce": {"weight": 1.0}}, **hmkd_terms(args.context))), with_teacher=True)
    info = {"torch": torch.__version__, "python": "%d.%d.%d" % sys.version_info[:3], "threads": torch.get_num_threads(),
            "precision": bench.precision.name}
    print(REPLY + json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        start = time.perf_counter()
        step()
        print(REPLY + json.dumps(time.perf_counter() - start), flush=True)
    return 0


class Worker:
    def __init__(self, name: str, python: str, switches: List[str], args):
        command = [python, "-m", "hmkd.benchmarks.stack_ratio", "--worker", "--teacher", args.teacher, "--student",
                   args.student, "--size", "%dx%d" % tuple(args.size), "--batch", str(args.batch), "--threads",
                   str(args.threads)] + switches
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self.read()

    def read(self) -> Any:
        for line in self.process.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
        raise RuntimeError("stack_ratio: the %s worker ended (exit %s) before answering; its error is above"
                           % (self.name, self.process.wait()))

    def step(self) -> float:
        self.process.stdin.write("step\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def run(args) -> Optional[Dict[str, Any]]:
    pythons = {"legacy": args.legacy_python, "modern": args.modern_python}
    missing = [stack for stack, python in pythons.items() if not os.access(python, os.X_OK)]
    if missing:
        print("stack_ratio: skipped: no %s Python at %s (make setup%s)" % (
            missing[0], pythons[missing[0]], "" if missing[0] == "legacy" else " STACK=modern"))
        return None
    native = cpu_bf16_native()
    variants = {name: spec for name, spec in VARIANTS.items()
                if "bf16" not in spec[1] or args.bf16 == "always" or (args.bf16 == "auto" and native)}
    skipped = {name: "no native bf16 on this CPU (--bf16 always runs it)" if args.bf16 == "auto" else "--bf16 never"
               for name in VARIANTS if name not in variants}
    workers = []
    try:
        for name, (stack, switches) in variants.items():  # started one after another: each builds alone
            workers.append(Worker(name, pythons[stack], switches, args))
        times: Dict[str, List[float]] = {w.name: [] for w in workers}
        for round_index in range(args.warmup + args.reps):
            for w in workers:
                seconds = w.step()
                if round_index >= args.warmup:
                    times[w.name].append(seconds)
    finally:
        for w in workers:
            w.close()
    legacy = times["legacy"]
    variants = {w.name: dict(w.info, step=summarize(times[w.name]), **median_ratio(times[w.name], legacy))
                for w in workers}
    return {"teacher": args.teacher, "student": args.student, "size": list(args.size), "batch": args.batch,
            "threads": args.threads, "cpu_bf16_native": native, "variants": variants, "skipped": skipped,
            "ratio": variants["modern"]["ratio"], "target": 1.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="segformer_b4")
    parser.add_argument("--student", default="deeplabv3_r18")
    parser.add_argument("--size", type=parse_size, default="128x256")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", choices=("auto", "always", "never"), default="auto",
                        help="the bf16 variant: where the CPU has native bf16 (auto), always, never")
    parser.add_argument("--legacy-python", default=".venv/bin/python")
    parser.add_argument("--modern-python", default=".venv-modern/bin/python")
    parser.add_argument("--out", default="results")
    parser.add_argument("--name", default="stack_ratio")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--amp", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--attention", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--context", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    result = run(args)
    if result is None:
        return 0
    path = write_result(args.out, args.name, result)
    print("%s -> %s at %dx%d x%d, CPU, %d threads, one step in each stack's process in turn: %s -> %s" % (
        args.teacher, args.student, args.size[0], args.size[1], args.batch, args.threads,
        ", ".join("%s (torch %s, %s) %.3fs = %.3f x legacy" % (name, v["torch"], v["precision"],
                                                              v["step"]["median_s"], v["ratio"])
                  for name, v in result["variants"].items()), path))
    for name, why in result["skipped"].items():
        print("stack_ratio: %s not run: %s" % (name, why))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
