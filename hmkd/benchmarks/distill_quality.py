"""Distillation quality: does a method move the student, beyond seed noise? (make bench-distill)

Usage: python -m hmkd.benchmarks.distill_quality [--spec jobs/bench_distill.yaml --root runs/bench --set K=V]

Runs the spec through the launcher on this machine (finished stages are reused), after writing the unlabelled
images its stages name (a relative ``data.unlabeled`` override is a folder of the experiment, filled with the train
scenes past the stage's labelled ones). Then, per compare stage, per method: mIoU mean and std over seeds and the
mean mIoU difference to the compare stage's baseline paired by seed with its 95% t interval (from the reports,
hmkd.reporting.results). Results in results/distill_quality.json, the chart in results/distill_quality.png, and
the table printed in the README's markdown. The task and its budget: docs/benchmark-distill.md.
"""
import argparse
import json
import math
import os
import time
from typing import Any, Dict, List, Sequence

import cv2

from hmkd.atomic import atomic_write_bytes
from hmkd.benchmarks.common import write_result
from hmkd.config.loader import load_yaml_config
from hmkd.data.builder import DataConfig
from hmkd.data.synthetic import SyntheticDataset
from hmkd.launcher.spec import PipelineSpec, load_spec
from hmkd.launcher.submit import submit_local
from hmkd.reporting.plots import paired_chart
from hmkd.reporting.results import _pct, _signed, verdict  # the report's own number formats and verdicts
from hmkd.rundir import RunDir

UNLABELED_KEY = "data.unlabeled="
WRITTEN = "WRITTEN"  # written last: a folder without it is rewritten


def write_unlabeled_scenes(folder: str, data: DataConfig, start: int, stop: int) -> int:
    """The synthetic train scenes ``start..stop-1`` as PNG images (no labels) in ``folder``; kept when complete."""
    marker = os.path.join(folder, WRITTEN)
    if os.path.exists(marker):
        return len([n for n in os.listdir(folder) if n.endswith(".png")])
    os.makedirs(folder, exist_ok=True)
    scenes = SyntheticDataset(data.num_classes or 5, data.image_size, stop, split="train", data_seed=data.data_seed,
                              scene=data.scene)
    for index in range(start, stop):
        ok, encoded = cv2.imencode(".png", scenes.load(index)[0])
        atomic_write_bytes(os.path.join(folder, scenes.sample_name(index) + ".png"), encoded.tobytes())
    atomic_write_bytes(marker, b"%d\n" % (stop - start))
    return stop - start


def prepare_unlabeled(spec: PipelineSpec) -> Dict[str, int]:
    """Resolve each stage's relative ``data.unlabeled`` into the experiment folder and write its scenes: the train
    scenes of the stage's config without overrides, past the ones the stage labels."""
    written = {}
    for stage in spec.stages:
        given = [o for o in stage.overrides if o.startswith(UNLABELED_KEY)]
        if not given or os.path.isabs(given[-1][len(UNLABELED_KEY):]):
            continue
        folder = os.path.join(spec.root, spec.experiment, given[-1][len(UNLABELED_KEY):])
        others = [o for o in stage.overrides if not o.startswith(UNLABELED_KEY)]
        labelled = DataConfig.from_dict(load_yaml_config(stage.config, [o for o in others
                                                                        if not o.startswith("data.unlabeled")])["data"])
        full = DataConfig.from_dict(load_yaml_config(stage.config)["data"])
        if labelled.name != "synthetic" or full.num_train <= labelled.num_train:
            raise ValueError("stages.%s: a relative data.unlabeled is filled with synthetic train scenes past the "
                             "labelled ones, so data.num_train must be lowered below the config's %d"
                             % (stage.name, full.num_train))
        written[folder] = write_unlabeled_scenes(folder, labelled, labelled.num_train, full.num_train)
        stage.overrides = others + [UNLABELED_KEY + folder]
    return written


def method_rows(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per method of a report.json; a value that is not finite (an older report's NaN) is None, so a
    method without a finite score or difference is "not compared", never better or worse."""
    rows = []
    for entry in report["entries"]:
        versus = entry.get("vs_baseline") or {}
        ci95 = versus.get("ci95")
        rows.append({"label": entry["label"], "mIoU_mean": _finite(entry["mIoU"]),
                     "mIoU_std": _finite(entry["mIoU_std"]), "seeds": entry["seeds"], "teacher": entry["teacher"],
                     "train_seconds_mean": entry["train_seconds"], "baseline": versus.get("baseline"),
                     "diff_mean": _finite(versus.get("mIoU")),
                     "diff_ci95": ci95 if ci95 and all(_finite(v) is not None for v in ci95) else None,
                     "within_noise": versus.get("within_noise"), "not_compared": entry.get("not_compared", [])})
    return rows


def _finite(value: Any) -> Any:
    return value if value is None or math.isfinite(value) else None


def markdown_table(groups: Dict[str, List[Dict[str, Any]]]) -> str:
    """One row per method: mIoU mean ± std over seeds, the paired difference to the group's baseline, its
    interval and what it says (the report's own verdicts), then a line per run that was not compared."""
    lines = ["| labels | method | seeds | mIoU (%) | vs baseline (points) | 95% interval | verdict |",
             "| --- | --- | ---: | ---: | --- | --- | --- |"]
    left_out = []
    for group, rows in groups.items():
        for row in rows:
            std = "" if row["mIoU_std"] is None else " ± %s" % _pct(row["mIoU_std"])
            interval = "-" if row["diff_ci95"] is None else "%s to %s" % tuple(_signed(v) for v in row["diff_ci95"])
            if row["baseline"] in (None, row["label"]):
                said = "baseline"
            else:
                said = verdict({"mIoU": row["diff_mean"], "ci95": row["diff_ci95"],
                                "within_noise": row["within_noise"]})
            versus = "" if row["diff_mean"] is None else "%s vs %s" % (_signed(row["diff_mean"]), row["baseline"])
            lines.append("| %s | %s | %d | %s%s | %s | %s | %s |" % (group, row["label"], row["seeds"],
                                                                     _pct(row["mIoU_mean"]), std, versus or "-",
                                                                     interval, said))
            left_out += ["%s: not compared: %s (stage %s): %s" % (group, run["run"], row["label"], run["why"])
                         for run in row.get("not_compared", ())]
    return "\n".join(lines + ([""] + left_out if left_out else []))


def main(argv: Sequence[str] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="jobs/bench_distill.yaml")
    parser.add_argument("--root", default="runs/bench")
    parser.add_argument("--out", default="results")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override, e.g. stages.ce.seeds=[0,1] (a lighter budget; repeatable)")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec, ["root=%s" % args.root] + args.set)
    tic = time.time()
    unlabeled = prepare_unlabeled(spec)
    submit_local(spec)
    seconds = time.time() - tic
    groups = {}
    for stage in (s for s in spec.stages if s.kind == "compare"):
        with open(RunDir(spec.stage_dir(stage.name)).report_json) as handle:
            groups[stage.name] = method_rows(json.load(handle))
    chart = paired_chart(os.path.join(args.out, "distill_quality.png"), groups)
    table = markdown_table(groups)
    path = write_result(args.out, "distill_quality", {
        "spec": args.spec, "sets": args.set, "wall_seconds": round(seconds, 1), "unlabeled_images": unlabeled,
        "groups": groups, "chart": chart, "markdown": table})
    print(table)
    print("%.1f min (stages already DONE are reused, not timed); -> %s, %s" % (seconds / 60, path, chart))
    return groups


if __name__ == "__main__":
    main()
