"""Streaming confusion-matrix meter: dataset-level IoU from summed intersections and unions, not per-image means.

Usage:
    meter = SegMetric(num_classes=19, ignore_index=255, device=device)
    for pred_bhw, label_bhw in batches: meter.update(pred_bhw, label_bhw)
    meter.all_reduce(); metrics = meter.compute()   # {"mIoU": 0.72, "aAcc": ..., "per_class_iou": [...], ...}
"""
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


def pair_counts(index: Tensor, size: int, deterministic: Optional[bool] = None) -> Tensor:
    """How many times each value in [0, size) occurs in ``index`` (int64), as ``torch.bincount`` counts them.

    ``torch.bincount`` refuses CUDA tensors under ``torch.use_deterministic_algorithms(True)`` although integer
    counts are exact; there ``index_put_(accumulate=True)``, which has a deterministic CUDA path, counts instead.
    ``deterministic=None`` picks the fallback only when it is needed.
    """
    if deterministic is None:
        deterministic = index.is_cuda and torch.are_deterministic_algorithms_enabled()
    if not deterministic:
        return torch.bincount(index, minlength=size)
    counts = torch.zeros(size, dtype=torch.int64, device=index.device)
    return counts.index_put_((index,), torch.ones_like(index), accumulate=True)


def _value_range(tensor: Tensor) -> str:
    return "[%d, %d]" % (int(tensor.min()), int(tensor.max()))


class SegMetric:
    """Confusion matrix (rows: label, columns: prediction) summed over every pixel that is not ``ignore_index``.

    The matrix is an int64 tensor that lives on the device of the inputs, so updates never copy predictions to the
    host; ``all_reduce`` sums it (and the image count) across ranks in one collective.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: Union[str, torch.device] = "cpu"):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError("num_classes must be a positive integer, got %r" % (num_classes,))
        if 0 <= ignore_index < num_classes:
            raise ValueError("ignore_index %d is a valid class id (num_classes=%d); expected a value outside [0, %d)"
                             % (ignore_index, num_classes, num_classes))
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        self.num_images = 0

    def reset(self) -> None:
        self.matrix.zero_()
        self.num_images = 0

    def update(self, pred: Tensor, label: Tensor) -> None:
        """Adds one (H, W) image or a (B, H, W) batch of predicted class ids against its label."""
        if pred.shape != label.shape or pred.dim() not in (2, 3):
            raise ValueError("pred and label must both be (H, W) or (B, H, W) with equal shapes, got %s and %s"
                             % (tuple(pred.shape), tuple(label.shape)))
        if pred.dtype.is_floating_point or label.dtype.is_floating_point:
            raise ValueError("pred and label must hold integer class ids, got %s and %s (argmax the logits first)"
                             % (pred.dtype, label.dtype))
        if self.matrix.device != pred.device:
            self.matrix = self.matrix.to(pred.device)
        label = label.to(pred.device, torch.int64)
        pred = pred.to(torch.int64)
        keep = label != self.ignore_index
        label, pred = label[keep], pred[keep]
        k = self.num_classes
        if label.numel():
            if bool(((label < 0) | (label >= k)).any()):
                raise ValueError("label values outside [0, %d) other than ignore_index %d: range %s"
                                 % (k, self.ignore_index, _value_range(label)))
            if bool(((pred < 0) | (pred >= k)).any()):
                raise ValueError("predicted class ids outside [0, %d): range %s" % (k, _value_range(pred)))
            self.matrix += pair_counts(label * k + pred, k * k).view(k, k)
        self.num_images += 1 if keep.dim() == 2 else keep.shape[0]

    def all_reduce(self) -> None:
        """Sums the matrix and image count over all ranks; a no-op unless torch.distributed is initialised."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        k = self.num_classes
        packed = torch.cat([self.matrix.flatten(), self.matrix.new_tensor([self.num_images])])
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        self.matrix = packed[:k * k].view(k, k).clone()
        self.num_images = int(packed[-1])

    def compute(self) -> Dict[str, Any]:
        """Scores in [0, 1] as Python floats; NaN where undefined.

        A class's IoU is NaN when its union is empty (absent from both labels and predictions) and its accuracy is
        NaN when it has no labelled pixel; mIoU and mAcc average over the defined entries only. A class that is only
        ever predicted, never labelled, has IoU 0 and counts in mIoU.
        """
        conf = self.matrix.detach().cpu().numpy().astype(np.int64)
        intersect = np.diag(conf)
        area_label = conf.sum(axis=1)
        area_pred = conf.sum(axis=0)
        union = area_label + area_pred - intersect
        total = int(conf.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, intersect / np.maximum(union, 1), np.nan)
            acc = np.where(area_label > 0, intersect / np.maximum(area_label, 1), np.nan)
        return {
            "mIoU": _nanmean(iou),
            "aAcc": float(intersect.sum()) / total if total else float("nan"),
            "mAcc": _nanmean(acc),
            "per_class_iou": _floats(iou),
            "per_class_acc": _floats(acc),
            "area_intersect": intersect.tolist(),
            "area_union": union.tolist(),
            "area_label": area_label.tolist(),
            "area_pred": area_pred.tolist(),
            "num_pixels": total,
            "num_images": self.num_images,
            "confusion_matrix": conf.tolist(),
        }


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def _floats(values: np.ndarray) -> List[float]:
    return [float(v) for v in values]
