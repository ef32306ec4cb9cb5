"""eval.json and the printed per-class table, from ``SegMetric.compute()``'s dict.

Usage:
    write_eval_json(os.path.join(run_dir, "eval.json"), metrics, dataset.class_names, extra={"checkpoint": path})
    print(format_table(metrics, dataset.class_names))
"""
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence

from hmkd.atomic import atomic_write_text

SUMMARY_KEYS = ("mIoU", "aAcc", "mAcc")
COUNT_KEYS = ("num_images", "num_pixels")


def _check_names(metrics: Dict[str, Any], class_names: Sequence[str]) -> List[str]:
    names = [str(n) for n in class_names]
    if len(names) != len(metrics["per_class_iou"]):
        raise ValueError("%d class names for %d classes in the metrics" % (len(names), len(metrics["per_class_iou"])))
    if len(set(names)) != len(names):
        raise ValueError("class names repeat (%s); expected unique names to key per_class"
                         % ", ".join(sorted({n for n in names if names.count(n) > 1})))
    return names


def _number(value: Optional[float]) -> Optional[float]:
    """NaN (an undefined score) becomes null: strict JSON has no NaN."""
    return None if value is None or math.isnan(value) else float(value)


def eval_record(metrics: Dict[str, Any], class_names: Sequence[str], extra: Optional[Dict[str, Any]] = None
                ) -> Dict[str, Any]:
    """The eval.json payload: summary scores in [0, 1], counts, per-class scores by name, the confusion matrix."""
    names = _check_names(metrics, class_names)
    record: Dict[str, Any] = {key: _number(metrics[key]) for key in SUMMARY_KEYS}
    record.update({key: metrics[key] for key in COUNT_KEYS if key in metrics})
    record["per_class"] = {name: {"iou": _number(iou), "acc": _number(acc)}
                           for name, iou, acc in zip(names, metrics["per_class_iou"], metrics["per_class_acc"])}
    if "confusion_matrix" in metrics:
        record["confusion_matrix"] = metrics["confusion_matrix"]
    clash = sorted(set(extra or {}) & set(record))
    if clash:
        raise ValueError("extra keys %s would overwrite metrics in eval.json" % clash)
    record.update(extra or {})
    return record


def write_eval_json(path: str, metrics: Dict[str, Any], class_names: Sequence[str],
                    extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Writes ``eval_record`` atomically (temp file in the same folder, fsync, os.replace) and returns it, so a
    reader or a requeued job never sees half a file and an old eval.json survives a failed write."""
    record = eval_record(metrics, class_names, extra)
    atomic_write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")
    return record


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else "%.2f" % (100.0 * value)


def format_table(metrics: Dict[str, Any], class_names: Sequence[str]) -> str:
    """Per-class IoU and accuracy in percent (2 decimals; '-' where undefined), then the summary line."""
    names = _check_names(metrics, class_names)
    width = max([len(n) for n in names] + [len("class")])
    lines = ["%-*s  %7s  %7s" % (width, "class", "IoU", "Acc")]
    lines += ["%-*s  %7s  %7s" % (width, name, _percent(iou), _percent(acc))
              for name, iou, acc in zip(names, metrics["per_class_iou"], metrics["per_class_acc"])]
    lines.append("-" * len(lines[0]))
    lines.append("  ".join("%s: %s" % (key, _percent(metrics[key])) for key in SUMMARY_KEYS))
    return "\n".join(lines)
