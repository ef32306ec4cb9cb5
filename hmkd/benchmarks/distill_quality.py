"""Distillation quality at a fixed budget: mIoU mean and std over seeds for CE-only, HMKD and KD students.

Usage: python -m hmkd.benchmarks.distill_quality [--spec jobs/bench_distill.yaml --root runs/bench --set K=V]

Runs the spec through the launcher on this machine (finished stages are reused), then copies the report's
per-stage mean/std of mIoU into results/distill_quality.json.
"""
import argparse
import json
from typing import Any, Dict

from hmkd.benchmarks.common import write_result
from hmkd.launcher.spec import load_spec
from hmkd.launcher.submit import submit_local
from hmkd.rundir import RunDir


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="jobs/bench_distill.yaml")
    parser.add_argument("--root", default="runs/bench")
    parser.add_argument("--out", default="results")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override, e.g. stages.ce.seeds=[0,1] (a lighter budget; repeatable)")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec, ["root=%s" % args.root] + args.set)
    submit_local(spec)
    compare_stage = [s for s in spec.stages if s.kind == "compare"][-1]
    with open(RunDir(spec.stage_dir(compare_stage.name)).report_json) as handle:
        report = json.load(handle)
    rows = {e["label"]: {"mIoU_mean": e["mIoU"], "mIoU_std": e["mIoU_std"], "seeds": e["seeds"],
                         "train_seconds_mean": e["train_seconds"]} for e in report["entries"]}
    path = write_result(args.out, "distill_quality", {"spec": args.spec, "sets": args.set, "stages": rows})
    for label, row in rows.items():
        std = row["mIoU_std"]
        print("%-8s mIoU %.2f%s over %d seed(s)" % (label, 100 * row["mIoU_mean"],
                                                     "" if std is None else " ± %.2f" % (100 * std), row["seeds"]))
    print("-> %s" % path)
    return rows


if __name__ == "__main__":
    main()
