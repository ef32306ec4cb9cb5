"""Full-resolution logits from a segmentor: whole image or sliding window, optionally flipped and multi-scale.

Usage:
    model.eval()
    logits_bkhw = predict_logits(model, images_bchw, mode="slide", crop_size=(512, 1024), stride=(341, 682), flip=True)
    pred_bhw = logits_bkhw.argmax(1)
"""
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmkd.resize import resize_to

MODES = ("whole", "slide")
SizeArg = Union[int, Sequence[int], None]


def forward_logits(model: nn.Module, images_bchw: Tensor, size: Optional[Tuple[int, int]] = None) -> Tensor:
    """One forward pass; logits resized bilinearly (align_corners=False) to ``size``, default the input's size.

    Accepts models returning a ``SegOutput`` (or anything with ``.logits``) or a bare tensor, so test doubles and
    exported models work too.
    """
    out = model(images_bchw)
    logits = out if isinstance(out, Tensor) else out.logits
    return resize_to(logits.float(), size or tuple(images_bchw.shape[-2:]))


def window_starts(size: int, crop: int, stride: int) -> List[int]:
    """mmseg's window grid along one axis: starts at 0, stride, 2*stride, ...; the last window ends at the border."""
    grids = max(size - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, size) - crop, 0) for i in range(grids)]


def slide_logits(model: nn.Module, images_bchw: Tensor, crop_size: Tuple[int, int], stride: Tuple[int, int],
                 batch_windows: int = 4) -> Tensor:
    """Per-pixel mean of the logits of every crop_size window covering it (mmseg ``slide_inference``).

    An image smaller than the crop is zero-padded bottom/right first (0 is the mean colour after normalisation, as
    in training's padding), so the network always sees crops of the size it was trained on; the padded border is
    cut off the result. ``batch_windows`` windows of every image in the batch go through one forward pass.
    """
    b, _, h, w = images_bchw.shape
    (crop_h, crop_w), (stride_h, stride_w) = crop_size, stride
    pad_h, pad_w = max(crop_h - h, 0), max(crop_w - w, 0)
    if pad_h or pad_w:
        images_bchw = F.pad(images_bchw, (0, pad_w, 0, pad_h))
    full_h, full_w = h + pad_h, w + pad_w
    windows = [(y, x) for y in window_starts(full_h, crop_h, stride_h) for x in window_starts(full_w, crop_w, stride_w)]
    summed: Optional[Tensor] = None
    count_hw = torch.zeros(full_h, full_w, device=images_bchw.device)
    for first in range(0, len(windows), batch_windows):
        chunk = windows[first:first + batch_windows]
        crops = torch.cat([images_bchw[:, :, y:y + crop_h, x:x + crop_w] for y, x in chunk])
        logits = forward_logits(model, crops)
        if summed is None:
            summed = logits.new_zeros(b, logits.shape[1], full_h, full_w)
        for j, (y, x) in enumerate(chunk):
            summed[:, :, y:y + crop_h, x:x + crop_w] += logits[j * b:(j + 1) * b]
            count_hw[y:y + crop_h, x:x + crop_w] += 1
    assert summed is not None and bool((count_hw > 0).all()), "sliding windows left pixels uncovered"
    return (summed / count_hw)[:, :, :h, :w]


def _pair(value: SizeArg, name: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value or ())
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError("%s must be a positive int or [h, w] of positive ints, got %r" % (name, value))
    return pair  # type: ignore[return-value]


def scaled_size(height: int, width: int, scale: float) -> Tuple[int, int]:
    """Image size at ``scale``, rounded half up as mmseg's Resize does."""
    return max(int(height * scale + 0.5), 1), max(int(width * scale + 0.5), 1)


def check_options(mode: str, crop_size: SizeArg, stride: SizeArg, scales: Sequence[float], batch_windows: int
                  ) -> Tuple[Optional[Tuple[int, int]], Optional[Tuple[int, int]], List[float]]:
    """Validates inference options before any image is loaded (a rank with no images must fail like the others);
    returns (crop, stride) as (h, w) pairs (None in whole mode) and the scales as floats."""
    if mode not in MODES:
        raise ValueError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
    scales = [float(s) for s in scales]
    if not scales or min(scales) <= 0:
        raise ValueError("scales must be a non-empty list of positive numbers, got %r" % (scales,))
    if not isinstance(batch_windows, int) or batch_windows < 1:
        raise ValueError("batch_windows must be a positive integer, got %r" % (batch_windows,))
    if mode == "whole":
        if crop_size is not None or stride is not None:
            warnings.warn("crop_size and stride are ignored in whole-image mode")
        return None, None, scales
    crop, step = _pair(crop_size, "crop_size"), _pair(stride, "stride")
    if step[0] > crop[0] or step[1] > crop[1]:
        raise ValueError("stride %r exceeds crop_size %r: the windows would leave pixels uncovered"
                         % (list(step), list(crop)))
    return crop, step, scales


def predict_logits(model: nn.Module, images_bchw: Tensor, mode: str = "whole", crop_size: SizeArg = None,
                   stride: SizeArg = None, flip: bool = False, scales: Sequence[float] = (1.0,),
                   batch_windows: int = 4) -> Tensor:
    """(B, K, H, W) logits at the input's resolution, under ``torch.no_grad()``; the caller puts the model in eval.

    Each scale resizes the image bilinearly (align_corners=False), runs ``mode`` inference on it and, with ``flip``,
    on its horizontal mirror too (mirrored back); every pass's logits are resized to (H, W) and the passes are
    averaged. Logits are averaged, not softmax probabilities (mmseg averages probabilities), as the project's
    evaluation recipe documents; the argmax of the two can differ where passes disagree strongly.
    """
    if images_bchw.dim() != 4:
        raise ValueError("images must be (B, C, H, W), got shape %s" % (tuple(images_bchw.shape),))
    crop, step, scales = check_options(mode, crop_size, stride, scales, batch_windows)
    height, width = images_bchw.shape[-2:]
    with torch.no_grad():
        total: Optional[Tensor] = None
        passes = 0
        for scale in scales:
            scaled = resize_to(images_bchw, scaled_size(height, width, scale))
            for flipped in ((False, True) if flip else (False,)):
                inputs = scaled.flip(-1) if flipped else scaled
                if mode == "whole":
                    logits = forward_logits(model, inputs, (height, width))
                else:
                    assert crop is not None and step is not None
                    logits = resize_to(slide_logits(model, inputs, crop, step, batch_windows), (height, width))
                if flipped:
                    logits = logits.flip(-1)
                total = logits if total is None else total + logits
                passes += 1
        assert total is not None
        return total / passes if passes > 1 else total
