"""Dataset-level evaluation of a segmentor, sharded over ranks so that every image is counted exactly once.

Usage:
    metrics = evaluate(model, val_set, num_classes=19, ignore_index=255, device=device, mode="slide",
                       crop_size=(512, 1024), stride=(341, 682), out_dir=run_dir + "/predictions", num_visualize=4)
    metrics = evaluate_model(student, val_set, 19, 255, device, cfg.eval, rank, world_size)   # the trainer's hook
"""
import os
import re
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from hmkd.data.base import colorize, default_palette
from hmkd.evaluation.inference import SizeArg, check_options, predict_logits
from hmkd.evaluation.metrics import SegMetric
from hmkd.evaluation.sampler import ShardSampler

LAYOUTS = ("triptych", "prediction")


def _rank_world(rank: Optional[int], world_size: Optional[int]) -> Tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if rank is not None or world_size is not None:
        raise ValueError("give both rank and world_size, or neither (then torch.distributed decides)")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare network: ranks run different numbers of forwards here, which a DDP wrapper's syncs must not see."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def display_image(image_chw: Tensor, normalize: Any = None) -> np.ndarray:
    """Network input -> HxWx3 uint8 RGB: inverts ``normalize`` (an hmkd ``Normalize``) when given, else stretches
    each channel's min-max to 0-255, which shows the scene even when the normalisation is unknown."""
    hwc = image_chw.detach().float().cpu().numpy().transpose(1, 2, 0)
    mean, inv_std = getattr(normalize, "mean", None), getattr(normalize, "inv_std", None)
    if mean is not None and inv_std is not None:
        hwc = hwc / np.asarray(inv_std, dtype=np.float32) + np.asarray(mean, dtype=np.float32)
        if not getattr(normalize, "to_rgb", True):
            hwc = hwc[..., ::-1]
    else:
        lo, hi = hwc.min(axis=(0, 1)), hwc.max(axis=(0, 1))
        hwc = (hwc - lo) * (255.0 / np.maximum(hi - lo, 1e-6))
    return np.ascontiguousarray(np.clip(hwc + 0.5, 0, 255).astype(np.uint8))


def save_prediction(path: str, pred_hw: Tensor, label_hw: Tensor, palette: Sequence[Sequence[int]],
                    ignore_index: int = 255, image_chw: Optional[Tensor] = None, normalize: Any = None,
                    layout: str = "triptych") -> None:
    """Colour-coded PNG: image | label | prediction side by side, or the prediction alone.

    Prediction pixels whose label is ``ignore_index`` are drawn black like the label's, so the picture shows only
    what the metric scored.
    """
    if layout not in LAYOUTS:
        raise ValueError("layout must be one of %s, got %r" % (", ".join(LAYOUTS), layout))
    label = label_hw.detach().cpu().numpy()
    pred = np.where(label == ignore_index, ignore_index, pred_hw.detach().cpu().numpy())
    panels = [colorize(pred, palette, ignore_index)]
    if layout == "triptych":
        if image_chw is None:
            raise ValueError("layout 'triptych' needs the image; pass image_chw or use layout='prediction'")
        panels = [display_image(image_chw, normalize), colorize(label, palette, ignore_index)] + panels
    picture_rgb = np.concatenate(panels, axis=1)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(picture_rgb[..., ::-1])):
        raise OSError("could not write the prediction picture %s" % path)


def _file_stem(name: Any, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") if name is not None else ""
    return stem or "%06d" % index


def evaluate(model: nn.Module, data: Union[DataLoader, Any], num_classes: int, ignore_index: int = 255,
             device: Union[str, torch.device] = "cpu", mode: str = "whole", crop_size: SizeArg = None,
             stride: SizeArg = None, flip: bool = False, scales: Sequence[float] = (1.0,), batch_windows: int = 4,
             rank: Optional[int] = None, world_size: Optional[int] = None, num_workers: int = 0,
             out_dir: Optional[str] = None, palette: Optional[Sequence[Sequence[int]]] = None,
             num_visualize: int = 0, layout: str = "triptych") -> Dict[str, Any]:
    """Metrics of ``model`` over ``data``, summed over all ranks (see ``SegMetric.compute`` for the keys).

    ``data`` is a dataset of {"image", "label", "name"} dicts, sharded here with ``ShardSampler`` at batch size 1
    (images may differ in size), or a DataLoader the caller has already sharded. The model runs in eval mode and
    its previous mode is restored. With ``out_dir``, the first ``num_visualize`` images of the dataset (by index;
    with a DataLoader, rank 0's first batches) are saved as ``out_dir/<name>.png``.
    """
    rank, world_size = _rank_world(rank, world_size)
    device = torch.device(device)
    if layout not in LAYOUTS:
        raise ValueError("layout must be one of %s, got %r" % (", ".join(LAYOUTS), layout))
    check_options(mode, crop_size, stride, scales, batch_windows)
    if num_visualize and out_dir is None:
        warnings.warn("num_visualize=%d is ignored without out_dir" % num_visualize)
        num_visualize = 0
    if isinstance(data, DataLoader):
        loader, dataset = data, data.dataset
        indices = None
    else:
        sampler = ShardSampler(len(data), rank, world_size)
        loader = DataLoader(data, batch_size=1, sampler=sampler, num_workers=num_workers,
                            pin_memory=device.type == "cuda")
        dataset, indices = data, list(sampler)
    if num_visualize:
        if palette is None:
            palette = getattr(dataset, "palette", None) or default_palette(num_classes)
        normalize = getattr(getattr(dataset, "transform", None), "normalize", None)
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    meter = SegMetric(num_classes, ignore_index, device)
    seen = 0
    try:
        for step, batch in enumerate(loader):
            images = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            logits = predict_logits(net, images, mode=mode, crop_size=crop_size, stride=stride, flip=flip,
                                    scales=scales, batch_windows=batch_windows)
            preds = logits.argmax(dim=1)
            meter.update(preds, labels)
            for j in range(preds.shape[0]):
                index = indices[step] if indices is not None else seen + j
                if index < num_visualize and (indices is not None or rank == 0):
                    names = batch.get("name")
                    stem = _file_stem(names[j] if names is not None else None, index)
                    save_prediction(os.path.join(out_dir, stem + ".png"), preds[j], labels[j], palette,
                                    ignore_index, images[j], normalize, layout)
            seen += preds.shape[0]
    finally:
        net.train(was_training)
    meter.all_reduce()
    return meter.compute()


def evaluate_model(model: nn.Module, dataset: Any, num_classes: int, ignore_index: int,
                   device: Union[str, torch.device], eval_cfg: Any = None, rank: Optional[int] = None,
                   world_size: Optional[int] = None, num_workers: int = 0, out_dir: Optional[str] = None,
                   palette: Optional[Sequence[Sequence[int]]] = None) -> Dict[str, Any]:
    """``evaluate`` with the inference options of an ``EvalConfig``; pictures only when ``out_dir`` is given, so
    periodic validations during training stay quiet."""
    options = {}
    if eval_cfg is not None:
        options = {"mode": eval_cfg.mode, "flip": eval_cfg.flip, "scales": tuple(eval_cfg.scales),
                   "batch_windows": eval_cfg.batch_windows}
        if eval_cfg.mode == "slide":
            options.update(crop_size=eval_cfg.crop_size, stride=eval_cfg.stride)
        if out_dir is not None:
            options["num_visualize"] = eval_cfg.num_visualize
    return evaluate(model, dataset, num_classes, ignore_index, device, rank=rank, world_size=world_size,
                    num_workers=num_workers, out_dir=out_dir, palette=palette, **options)
