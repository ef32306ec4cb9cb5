"""Bilinear resizing as the decoders here do it (align_corners=False), shared by inference and the loss terms.

Usage: logits_bkhw = resize_to(logits_bkhw, labels.shape[-2:])
       logits_bkhw = resize_bilinear(logits_bkhw, images.shape[-2:])   # always resizes: what a traced export needs
       teacher_bchw = resize_to(teacher_bchw, size, align_corners=True)  # HFA as the HMKD authors resize
"""
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor


def resize_bilinear(x_bchw: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """``x`` resized to ``size`` (h, w) with no shortcut, so a trace records no size comparison (the result is the
    same: bilinear resizing to the same size returns the input, with either corner convention)."""
    return F.interpolate(x_bchw, size=tuple(size), mode="bilinear", align_corners=align_corners)


def resize_to(x_bchw: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """``x`` resized to ``size`` (h, w); a no-op when the size already matches."""
    if tuple(x_bchw.shape[-2:]) == tuple(size):
        return x_bchw
    return resize_bilinear(x_bchw, size, align_corners)
