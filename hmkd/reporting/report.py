"""The pipeline's comparison report: teacher vs baseline student vs distilled student, as Markdown, JSON and PNG.

Usage: write_report(out_dir, rows)    # rows: one dict per evaluated run (label, seed, metrics, params, flops, ...)

Runs of one stage with several seeds are aggregated to mean and standard deviation (sample std, n - 1).
"""
import json
import math
import os
from typing import Any, Dict, List, Sequence

from hmkd.atomic import atomic_write_text


def aggregate(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One entry per label, in first-seen order: mean/std of mIoU, aAcc and per-class IoU over its seeds."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["label"], []).append(row)
    out = []
    for label, runs in groups.items():
        first = runs[0]
        entry = {"label": label, "model": first["model"], "teacher": first.get("teacher"), "seeds": len(runs),
                 "params": first.get("params"), "flops": first.get("flops"), "flops_size": first.get("flops_size"),
                 "train_seconds": _mean([r.get("train_seconds") for r in runs])}
        for key in ("mIoU", "aAcc"):
            entry[key], entry[key + "_std"] = _mean_std([r[key] for r in runs])
        names = list(first["per_class"])
        entry["per_class_iou"] = {n: _mean_std([r["per_class"][n]["iou"] for r in runs])[0] for n in names}
        out.append(entry)
    return out


def markdown(entries: Sequence[Dict[str, Any]]) -> str:
    lines = ["| stage | model | teacher | seeds | mIoU (%) | aAcc (%) | params (M) | GFLOPs | train time |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in entries:
        lines.append("| %s | %s | %s | %d | %s | %s | %s | %s | %s |" % (
            e["label"], e["model"], e["teacher"] or "-", e["seeds"], _pm(e["mIoU"], e["mIoU_std"]),
            _pm(e["aAcc"], e["aAcc_std"]), "-" if e["params"] is None else "%.2f" % (e["params"] / 1e6),
            "-" if e["flops"] is None else "%.1f" % (e["flops"] / 1e9),
            "-" if e["train_seconds"] is None else "%.0f s" % e["train_seconds"]))
    names = list(entries[0]["per_class_iou"]) if entries else []
    if names:
        lines += ["", "Per-class IoU (%):", "", "| class | " + " | ".join(e["label"] for e in entries) + " |",
                  "| --- |" + " ---: |" * len(entries)]
        for name in names:
            cells = ["-" if e["per_class_iou"][name] is None else "%.2f" % (100 * e["per_class_iou"][name])
                     for e in entries]
            lines.append("| %s | %s |" % (name, " | ".join(cells)))
    return "\n".join(lines)


def write_report(out_dir: str, rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    entries = aggregate(rows)
    text = "# Results\n\nFLOPs are multiply-accumulates at the training crop size (%s).\n\n%s\n" % (
        ", ".join(sorted({"%dx%d" % tuple(e["flops_size"]) for e in entries if e.get("flops_size")})) or "-",
        markdown(entries))
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(os.path.join(out_dir, "report.md"), text)
    atomic_write_text(os.path.join(out_dir, "report.json"), json.dumps({"entries": entries, "runs": list(rows)},
                                                                        indent=2, allow_nan=False) + "\n")
    _charts(out_dir, entries)
    return {"entries": entries, "markdown": text}


def _charts(out_dir: str, entries: Sequence[Dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [e["label"] for e in entries]
    ax.bar(labels, [100 * e["mIoU"] for e in entries], yerr=[100 * (e["mIoU_std"] or 0) for e in entries],
           capsize=4, color="#4c72b0")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU by stage")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "miou.png"), dpi=100)
    plt.close(fig)
    names = list(entries[0]["per_class_iou"]) if entries else []
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) * len(entries)), 4))
    width = 0.8 / max(len(entries), 1)
    for i, e in enumerate(entries):
        values = [100 * (e["per_class_iou"][n] or 0) for n in names]
        ax.bar([j + i * width for j in range(len(names))], values, width, label=e["label"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_title("per-class IoU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "per_class_iou.png"), dpi=100)
    plt.close(fig)


def _mean(values: Sequence[Any]) -> Any:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _mean_std(values: Sequence[Any]):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _pm(mean: Any, std: Any) -> str:
    if mean is None:
        return "-"
    return "%.2f" % (100 * mean) if std is None else "%.2f ± %.2f" % (100 * mean, 100 * std)
