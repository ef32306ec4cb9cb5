"""The teacher's input from the student's batch: one normalisation mapped onto another on the device.

Usage:
    renorm = renormalizer("bgr_mean", "imagenet_rgb")     # None when both are the same: then there is nothing to do
    teacher_images = renorm(images_bchw) if renorm is not None else images_bchw

The data pipeline normalises for the student. When the teacher's weights expect other inputs (SegFormer's ImageNet
weights: RGB with mean/std; CIRKD's ResNets: BGR minus the mean), each output channel is an affine function of one
input channel, since both are affine functions of the same raw pixel plane:
    student[j] = (raw[plane_j] - m_s[j]) / s_s[j],   teacher[c] = (raw[plane_c] - m_t[c]) / s_t[c]
    teacher[c] = student[j] * (s_s[j] / s_t[c]) + (m_s[j] - m_t[c]) / s_t[c]    with plane_j == plane_c
so the map is a channel gather (only when the channel orders differ) and one fused multiply-add, computed from
float64 constants. Padded pixels (0 for the student: its mean colour) become that colour in the teacher's terms.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from hmkd.data.transforms import NORMALIZATIONS


def _planes(mode: str) -> Tuple[int, int, int]:
    """The BGR plane each output channel of ``mode`` reads."""
    to_rgb = NORMALIZATIONS[mode][0]
    return (2, 1, 0) if to_rgb else (0, 1, 2)


def affine_between(source: str, target: str) -> Tuple[List[int], List[float], List[float]]:
    """(source channel read by each target channel, scale, shift) that maps ``source``-normalised images to
    ``target``-normalised ones; float64 constants."""
    for mode in (source, target):
        if mode not in NORMALIZATIONS:
            raise ValueError("normalisation must be one of %s, got %r" % (", ".join(sorted(NORMALIZATIONS)), mode))
    _, mean_s, std_s = NORMALIZATIONS[source]
    _, mean_t, std_t = NORMALIZATIONS[target]
    source_planes = _planes(source)
    order = [source_planes.index(plane) for plane in _planes(target)]
    scale = [float(std_s[j]) / float(std_t[c]) for c, j in enumerate(order)]
    shift = [(float(mean_s[j]) - float(mean_t[c])) / float(std_t[c]) for c, j in enumerate(order)]
    return order, scale, shift


class Renormalize(nn.Module):
    """``source``-normalised NCHW float images -> ``target``-normalised, on whatever device the module is on."""

    def __init__(self, source: str, target: str):
        super().__init__()
        self.source, self.target = source, target
        order, scale, shift = affine_between(source, target)
        self.permute = order != sorted(order)
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images_bchw: Tensor) -> Tensor:
        if images_bchw.dim() != 4 or images_bchw.shape[1] != self.order.numel():
            raise ValueError("renormalisation expects (B, %d, H, W) images, got %s"
                             % (self.order.numel(), tuple(images_bchw.shape)))
        images = images_bchw.index_select(1, self.order) if self.permute else images_bchw
        return torch.addcmul(self.shift.to(images.dtype), images, self.scale.to(images.dtype))

    def extra_repr(self) -> str:
        return "%s -> %s" % (self.source, self.target)


def renormalizer(source: str, target: str) -> Optional[Renormalize]:
    """The map from ``source`` to ``target``; None when they are the same normalisation (no op at all)."""
    if NORMALIZATIONS.get(source) is not None and NORMALIZATIONS.get(source) == NORMALIZATIONS.get(target):
        return None
    return Renormalize(source, target)
