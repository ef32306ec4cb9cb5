"""The results table: one row per stage, its seeds aggregated, from the runs' eval records.

Usage:
    entries = aggregate([("student", record_seed0, run_dir0), ("student", record_seed1, run_dir1), ("hmkd", record)])
    print(markdown(entries)); for line in not_compared(entries): warnings.warn(line)

Behind both `hmkd report` and the pipeline's compare stage, so the two show the same columns. Runs of one stage with
several seeds are aggregated to mean and sample standard deviation (n - 1); a single run has no std. Each stage's
mIoU is also compared with a baseline stage's, paired by seed (hmkd.reporting.paired): the mean difference, its
95% interval when 2 or more seeds pair up ("within noise" when it covers 0), a single-seed difference said as such.

A run whose mIoU is missing or not finite (no labelled pixel; NaN in its eval.json) is "not compared": it is left
out of its stage's means and of every pairing, named in one line under the table, and never makes a stage better or
worse. The mean and the paired difference use the same runs. Two runs of one stage with the same seed cannot be
paired: they are refused, naming the stage, the seed and both runs.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from hmkd.evaluation.record import EvalRecord
from hmkd.reporting.paired import by_seed, paired_difference

# (stage label, one run's record[, where it came from: its run directory]); the run names it in messages
Row = Union[Tuple[str, EvalRecord], Tuple[str, EvalRecord, str]]


def aggregate(rows: Sequence[Row], baseline: Optional[str] = None) -> List[Dict[str, Any]]:
    """One entry per label, in first-seen order: mean/std of the scores and per-class IoU over its compared runs,
    ``not_compared``: the runs left out and why, and ``vs_baseline``: its mIoU difference to ``baseline``'s
    (default: :func:`default_baseline`), paired by seed. ValueError for two runs of one stage with the same seed."""
    groups: Dict[str, List[Tuple[EvalRecord, str]]] = {}
    for row in rows:
        label, record = row[0], row[1]
        runs = groups.setdefault(label, [])
        runs.append((record, row[2] if len(row) > 2 else "%s run %d" % (label, len(runs) + 1)))
    if baseline is not None and baseline not in groups:
        raise ValueError("baseline %r is not one of the compared stages (%s)" % (baseline, ", ".join(groups)))
    for label, runs in groups.items():
        _check_seeds(label, runs)
    compared = {label: [r for r, _ in runs if unscored(r) is None] for label, runs in groups.items()}
    entries = [_entry(label, compared[label] or [r for r, _ in runs],
                      [{"run": where, "why": unscored(r)} for r, where in runs if unscored(r) is not None])
               for label, runs in groups.items()]
    baseline = baseline or default_baseline(entries)
    for entry in entries:
        entry["vs_baseline"] = None if baseline in (None, entry["label"]) else _versus(
            baseline, compared[entry["label"]], compared[baseline])
    return entries


def unscored(record: EvalRecord) -> Optional[str]:
    """Why a run's mIoU cannot be compared (missing or not finite), else None."""
    if record.mIoU is not None and math.isfinite(record.mIoU):
        return None
    if record.mIoU is None:
        return record.not_scored or "its mIoU is null"
    return "its mIoU is %s" % record.mIoU


def not_compared(entries: Sequence[Dict[str, Any]]) -> List[str]:
    """One line per run left out of the comparison, naming it, its stage and why (for the report and warnings)."""
    return ["not compared: %s (stage %s): %s" % (run["run"], e["label"], run["why"])
            for e in entries for run in e.get("not_compared", ())]


def _check_seeds(label: str, runs: Sequence[Tuple[EvalRecord, str]]) -> None:
    """Two runs of a stage with one seed would be averaged in its mean but only one of them paired: refused."""
    seen: Dict[int, str] = {}
    for record, where in runs:
        if record.seed is None:
            continue
        if record.seed in seen:
            raise ValueError("stage %s has two runs with seed %d: %s and %s; give each run of a stage its own "
                             "train.seed (the stage's seeds list sets them), or compare one of them"
                             % (label, record.seed, seen[record.seed], where))
        seen[record.seed] = where


def default_baseline(entries: Sequence[Dict[str, Any]]) -> Optional[str]:
    """The first stage trained without a teacher whose model some distilled stage also trains (the student
    trained on labels alone); None when there is none."""
    distilled = {e["model"] for e in entries if e["teacher"]}
    return next((e["label"] for e in entries if not e["teacher"] and e["model"] in distilled), None)


def _versus(baseline: str, runs: List[EvalRecord], base_runs: List[EvalRecord]) -> Dict[str, Any]:
    diff = paired_difference(by_seed([(r.seed, r.mIoU) for r in runs]), by_seed([(r.seed, r.mIoU) for r in base_runs]))
    if diff is None:
        return {"baseline": baseline, "seeds": [], "mIoU": None, "std": None, "ci95": None, "within_noise": None}
    return {"baseline": baseline, "seeds": list(diff.seeds), "mIoU": diff.mean, "std": diff.std,
            "ci95": list(diff.ci95) if diff.ci95 else None, "within_noise": diff.within_noise}


def verdict(versus: Dict[str, Any]) -> str:
    """How to read a difference: its interval's verdict, or why there is none. A missing or non-finite difference
    or interval is "not compared", never better or worse."""
    if not _finite(versus["mIoU"]):
        return "no seed in common: not compared"
    if versus["ci95"] is None:
        return "single seed: no interval"
    if not all(_finite(v) for v in versus["ci95"]):
        return "not compared"
    if versus["within_noise"] or versus["ci95"][0] <= 0.0 <= versus["ci95"][1]:
        return "within noise"
    return "better" if versus["ci95"][0] > 0 else "worse"


def _finite(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)


def _entry(label: str, runs: List[EvalRecord], left_out: List[Dict[str, str]]) -> Dict[str, Any]:
    """The stage's row over ``runs`` (its compared runs; all of them when none is, then with no scores)."""
    first = runs[0]
    scored = [r for r in runs if unscored(r) is None]
    entry: Dict[str, Any] = {"label": label, "model": first.model, "teacher": first.teacher,
                             "loss_terms": first.loss_terms, "seeds": len(scored), "params": first.params,
                             "flops": first.flops, "flops_size": first.flops_size,
                             "train_seconds": _mean_std([r.train_seconds for r in scored])[0]}
    for key in ("mIoU", "aAcc", "mAcc"):
        entry[key], entry[key + "_std"] = _mean_std([getattr(r, key) for r in scored])
    entry["per_class_iou"] = {name: _mean_std([r.per_class.get(name, {}).get("iou") for r in scored])[0]
                              for name in first.per_class}
    entry["not_compared"] = left_out
    return entry


def markdown(entries: Sequence[Dict[str, Any]]) -> str:
    lines = ["| stage | model | teacher | loss terms | seeds | mIoU (%) | aAcc (%) | mAcc (%) | params (M) | GFLOPs "
             "| train time |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in entries:
        lines.append("| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (
            e["label"], e["model"], e["teacher"] or "-", "+".join(e["loss_terms"] or []) or "-", e["seeds"],
            _pm(e["mIoU"], e["mIoU_std"]), _pm(e["aAcc"], e["aAcc_std"]), _pm(e["mAcc"], e["mAcc_std"]),
            "-" if e["params"] is None else "%.2f" % (e["params"] / 1e6),
            "-" if e["flops"] is None else "%.1f" % (e["flops"] / 1e9),
            "-" if e["train_seconds"] is None else "%.0f s" % e["train_seconds"]))
    left_out = not_compared(entries)
    if left_out:
        lines += [""] + left_out
    compared = [e for e in entries if e.get("vs_baseline")]
    if compared:
        lines += ["", "mIoU difference to %s, paired by seed (points; 95%% interval of the mean difference):"
                  % compared[0]["vs_baseline"]["baseline"], "",
                  "| stage | paired seeds | difference | 95% interval | verdict |", "| --- | ---: | ---: | --- | --- |"]
        for e in compared:
            v = e["vs_baseline"]
            lines.append("| %s | %d | %s | %s | %s |" % (
                e["label"], len(v["seeds"]), _signed(v["mIoU"]),
                "-" if v["ci95"] is None else "%s to %s" % (_signed(v["ci95"][0]), _signed(v["ci95"][1])), verdict(v)))
    names = list(entries[0]["per_class_iou"]) if entries else []
    if names:
        lines += ["", "Per-class IoU (%):", "", "| class | " + " | ".join(e["label"] for e in entries) + " |",
                  "| --- |" + " ---: |" * len(entries)]
        for name in names:
            cells = [_pct(e["per_class_iou"].get(name)) for e in entries]
            lines.append("| %s | %s |" % (name, " | ".join(cells)))
    return "\n".join(lines)


def flops_note(entries: Sequence[Dict[str, Any]]) -> str:
    sizes = sorted({"%dx%d" % tuple(e["flops_size"]) for e in entries if e.get("flops_size")})
    return "FLOPs are multiply-accumulates at the training crop size (%s)." % (", ".join(sizes) or "-")


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else "%.2f" % (100 * value)


def _signed(value: Optional[float]) -> str:
    return "-" if value is None else "%+.2f" % (100 * value)


def _mean_std(values: Sequence[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    values = [v for v in values if _finite(v)]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _pm(mean: Optional[float], std: Optional[float]) -> str:
    return _pct(mean) if std is None or mean is None else "%s ± %.2f" % (_pct(mean), 100 * std)
