"""Colour-coded prediction pictures: what a person looks at to see where a model goes wrong.

Usage:
    save_prediction("plots/predictions/a.png", pred_hw, label_hw, palette, image_chw=image, normalize=norm)
    png = encode_picture(prediction_picture(pred_hw, label_hw, palette, image_chw=image))     # e.g. for TensorBoard
"""
import os
import re
from typing import Any, Optional, Sequence

import cv2
import numpy as np
from torch import Tensor

from hmkd.atomic import atomic_write_bytes
from hmkd.data.base import IGNORE_INDEX, colorize

LAYOUTS = ("triptych", "prediction")


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


def prediction_picture(pred_hw: Tensor, label_hw: Tensor, palette: Sequence[Sequence[int]],
                       ignore_index: int = IGNORE_INDEX, image_chw: Optional[Tensor] = None, normalize: Any = None,
                       layout: str = "triptych") -> np.ndarray:
    """Colour-coded HxWx3 uint8 RGB: image | label | prediction side by side, or the prediction alone.

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
    return np.concatenate(panels, axis=1)


def encode_picture(picture_rgb: np.ndarray, name: str = "picture.png") -> bytes:
    """An RGB picture as the bytes of an image file whose format ``name``'s extension picks (.png without one).

    OpenCV's encoder, not Pillow's, whose API changes between the pinned versions."""
    try:
        ok, encoded = cv2.imencode(os.path.splitext(name)[1] or ".png", np.ascontiguousarray(picture_rgb[..., ::-1]))
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError("cannot encode the prediction picture %s (unknown image type); name it .png" % name)
    return encoded.tobytes()


def save_prediction(path: str, pred_hw: Tensor, label_hw: Tensor, palette: Sequence[Sequence[int]],
                    ignore_index: int = IGNORE_INDEX, image_chw: Optional[Tensor] = None, normalize: Any = None,
                    layout: str = "triptych") -> None:
    """``prediction_picture`` written to ``path``, whose extension picks the format."""
    write_picture(path, prediction_picture(pred_hw, label_hw, palette, ignore_index, image_chw, normalize, layout))


def write_picture(path: str, picture_rgb: np.ndarray) -> None:
    """Like every file a run publishes: whole, or a clear full-disk error."""
    atomic_write_bytes(path, encode_picture(picture_rgb, path))


def file_stem(name: Any, index: int) -> str:
    """A sample's name as a safe file name (folders flattened); its index when it has no usable name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") if name is not None else ""
    return stem or "%06d" % index
