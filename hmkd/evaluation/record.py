"""The evaluation record: what eval.json holds, whichever path wrote it (training's final evaluation, `hmkd eval`,
the pipeline's compare stage), and the printed per-class table.

Usage:
    record = EvalRecord.from_metrics(metrics, dataset.class_names, model="deeplabv3_r18", split="val", ...)
    record.write(RunDir(run_dir).eval_json); record = EvalRecord.read(path)
    print(format_table(record))

Scores are in [0, 1]; an undefined score (NaN) is written as null, since strict JSON has no NaN. Provenance keys are
always present (null when unknown), so readers never guess which writer produced a file. A file read back with a
missing, null or non-finite score (NaN, written by hand, by an older version or by a tool that allows NaN in JSON)
gets null there, and ``not_scored`` says why when mIoU is the one: such a run is "not compared" in a report, never
better or worse. A score that is not a number, or outside [0, 1], is a ValueError naming the file, key and value.
"""
import dataclasses
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence

from hmkd.atomic import atomic_write_text

SUMMARY_KEYS = ("mIoU", "aAcc", "mAcc")


@dataclasses.dataclass
class EvalRecord:
    # scores
    mIoU: Optional[float]
    aAcc: Optional[float]
    mAcc: Optional[float]
    num_images: int
    num_pixels: int
    per_class: Dict[str, Dict[str, Optional[float]]]
    confusion_matrix: List[List[int]]
    # what was evaluated, and how
    model: str
    checkpoint: Optional[str] = None
    split: Optional[str] = None
    mode: Optional[str] = None
    flip: Optional[bool] = None
    scales: Optional[List[float]] = None
    # how the model was trained, when known
    step: Optional[int] = None
    train_seconds: Optional[float] = None
    teacher: Optional[str] = None
    loss_terms: Optional[List[str]] = None
    seed: Optional[int] = None  # train.seed: runs of two stages with the same seed share data order and init
    # its cost: parameters and multiply-accumulates for one image of flops_size
    params: Optional[int] = None
    flops: Optional[int] = None
    flops_size: Optional[List[int]] = None
    # why the scores are null (no labelled pixel, as on a test split), and the benchmark-server zip, when written
    not_scored: Optional[str] = None
    server_files: Optional[str] = None

    @classmethod
    def from_metrics(cls, metrics: Dict[str, Any], class_names: Sequence[str], **provenance: Any) -> "EvalRecord":
        """From ``SegMetric.compute()``'s dict; ``provenance`` fills the other fields by name."""
        names = check_class_names(metrics, class_names)
        if not metrics["num_pixels"]:
            provenance.setdefault("not_scored", "none of the %d images has a labelled pixel (a test split's labels "
                                                "are withheld): every score is null" % metrics["num_images"])
        per_class = {name: {"iou": _number(iou), "acc": _number(acc)}
                     for name, iou, acc in zip(names, metrics["per_class_iou"], metrics["per_class_acc"])}
        return cls(mIoU=_number(metrics["mIoU"]), aAcc=_number(metrics["aAcc"]), mAcc=_number(metrics["mAcc"]),
                   num_images=int(metrics["num_images"]), num_pixels=int(metrics["num_pixels"]),
                   per_class=per_class, confusion_matrix=metrics["confusion_matrix"], **provenance)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, path: str) -> None:
        """Atomically (temp file, fsync, rename): a reader or a requeued job never sees half a file, and an old
        eval.json survives a failed write."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def read(cls, path: str) -> "EvalRecord":
        """An eval.json back as a record; a missing, damaged or foreign file is a ValueError naming it."""
        try:
            with open(path) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise FileNotFoundError("%s does not exist; run or finish that stage first" % path)
        except (OSError, ValueError) as exc:
            raise ValueError("%s cannot be read as JSON (%s); evaluate the run again (hmkd eval)" % (path, exc))
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(SUMMARY_KEYS)
        if not isinstance(data, dict) or not required <= set(data):
            raise ValueError("%s is not an hmkd eval.json (it lacks %s); evaluate the run again (hmkd eval)"
                             % (path, ", ".join(sorted(required - set(data if isinstance(data, dict) else ())))))
        values = {k: v for k, v in data.items() if k in names}
        why = _unscored_miou(path, values.get("mIoU", None), "mIoU" in values)
        for key in SUMMARY_KEYS:
            values[key] = _read_score(path, key, values.get(key))
        per_class = values["per_class"]
        if not isinstance(per_class, dict) or not all(isinstance(v, dict) for v in per_class.values()):
            raise ValueError("%s: per_class must map each class name to {iou, acc}, got %s; evaluate the run again "
                             "(hmkd eval)" % (path, _short(values["per_class"])))
        values["per_class"] = {name: {k: _read_score(path, "per_class.%s.%s" % (name, k), v) for k, v in scores.items()}
                               for name, scores in values["per_class"].items()}
        if why and not values.get("not_scored"):
            values["not_scored"] = why
        return cls(**values)


def _unscored_miou(path: str, value: Any, present: bool) -> Optional[str]:
    """Why a file's mIoU cannot be compared (missing, null, NaN or infinite), else None; said of the file by its
    name, as the reader names the run."""
    name = os.path.basename(path)
    if not present:
        held = "has no mIoU"
    elif value is None:
        held = "holds mIoU null"
    elif isinstance(value, float) and not math.isfinite(value):
        held = "holds mIoU %s" % ("NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity")
    else:
        return None
    return "%s %s; evaluate the run again (hmkd eval)" % (name, held)


def _read_score(path: str, key: str, value: Any) -> Optional[float]:
    """A score from a file: a number in [0, 1]; None for null, NaN or infinity (not a score); else one clear error."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("%s: %s is %s, not a number; scores are fractions in [0, 1] or null: evaluate the run "
                         "again (hmkd eval)" % (path, key, _short(value)))
    if not 0.0 <= value <= 1.0:
        raise ValueError("%s: %s is %r, outside [0, 1]; scores are fractions, not percent: evaluate the run again "
                         "(hmkd eval)" % (path, key, value))
    return float(value)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_class_names(metrics: Dict[str, Any], class_names: Sequence[str]) -> List[str]:
    names = [str(n) for n in class_names]
    if len(names) != len(metrics["per_class_iou"]):
        raise ValueError("%d class names for %d classes in the metrics" % (len(names), len(metrics["per_class_iou"])))
    if len(set(names)) != len(names):
        raise ValueError("class names repeat (%s); expected unique names to key per_class"
                         % ", ".join(sorted({n for n in names if names.count(n) > 1})))
    return names


def _number(value: Optional[float]) -> Optional[float]:
    return None if value is None or math.isnan(value) else float(value)


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else "%.2f" % (100.0 * value)


def format_table(record: EvalRecord) -> str:
    """Per-class IoU and accuracy in percent (2 decimals; '-' where undefined), then the summary line."""
    names = list(record.per_class)
    width = max([len(n) for n in names] + [len("class")])
    lines = ["%-*s  %7s  %7s" % (width, "class", "IoU", "Acc")]
    lines += ["%-*s  %7s  %7s" % (width, name, _percent(scores["iou"]), _percent(scores["acc"]))
              for name, scores in record.per_class.items()]
    lines.append("-" * len(lines[0]))
    lines.append("  ".join("%s: %s" % (key, _percent(getattr(record, key))) for key in SUMMARY_KEYS))
    return "\n".join(lines)
