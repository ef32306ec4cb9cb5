"""The results table: one row per stage, its seeds aggregated, from the runs' eval records.

Usage:
    entries = aggregate([("student", record_seed0), ("student", record_seed1), ("hmkd", record)])
    print(markdown(entries))

Behind both `hmkd report` and the pipeline's compare stage, so the two show the same columns. Runs of one stage with
several seeds are aggregated to mean and sample standard deviation (n - 1); a single run has no std.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hmkd.evaluation.record import EvalRecord

Row = Tuple[str, EvalRecord]  # (stage label, one run's record)


def aggregate(rows: Sequence[Row]) -> List[Dict[str, Any]]:
    """One entry per label, in first-seen order: mean/std of the scores and per-class IoU over its runs."""
    groups: Dict[str, List[EvalRecord]] = {}
    for label, record in rows:
        groups.setdefault(label, []).append(record)
    return [_entry(label, runs) for label, runs in groups.items()]


def _entry(label: str, runs: List[EvalRecord]) -> Dict[str, Any]:
    first = runs[0]
    entry: Dict[str, Any] = {"label": label, "model": first.model, "teacher": first.teacher,
                             "loss_terms": first.loss_terms, "seeds": len(runs), "params": first.params,
                             "flops": first.flops, "flops_size": first.flops_size,
                             "train_seconds": _mean_std([r.train_seconds for r in runs])[0]}
    for key in ("mIoU", "aAcc", "mAcc"):
        entry[key], entry[key + "_std"] = _mean_std([getattr(r, key) for r in runs])
    entry["per_class_iou"] = {name: _mean_std([r.per_class[name]["iou"] for r in runs])[0]
                              for name in first.per_class}
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


def _mean_std(values: Sequence[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _pm(mean: Optional[float], std: Optional[float]) -> str:
    return _pct(mean) if std is None or mean is None else "%s ± %.2f" % (_pct(mean), 100 * std)
