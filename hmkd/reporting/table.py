"""One results row per run directory, read from its eval.json, printed as a Markdown table.

Usage: print(markdown_table(collect_runs(["runs/smoke/teacher", "runs/smoke/student"])))
"""
import json
import os
from typing import Any, Dict, List, Sequence


def collect_runs(run_dirs: Sequence[str]) -> List[Dict[str, Any]]:
    rows = []
    for run_dir in run_dirs:
        path = os.path.join(run_dir, "eval.json")
        if not os.path.isfile(path):
            raise FileNotFoundError("%s has no eval.json; run or finish that stage first" % run_dir)
        with open(path) as handle:
            record = json.load(handle)
        record["run"] = os.path.basename(os.path.normpath(run_dir))
        record["done"] = os.path.isfile(os.path.join(run_dir, "DONE"))
        rows.append(record)
    return rows


def _pct(value: Any) -> str:
    return "-" if value is None else "%.2f" % (100 * value)


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
    lines = ["| run | model | teacher | loss terms | mIoU | aAcc | mAcc | steps | train time |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        seconds = r.get("train_seconds")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["run"], r.get("model", "-"), r.get("teacher") or "-", "+".join(r.get("loss_terms") or []) or "-",
            _pct(r.get("mIoU")), _pct(r.get("aAcc")), _pct(r.get("mAcc")), r.get("step", "-"),
            "-" if seconds is None else "%.0f s" % seconds))
    return "\n".join(lines)
