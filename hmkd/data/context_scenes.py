"""Synthetic scenes whose classes need context: the distillation benchmark's task (``data.scene: context``).

Usage: image_bgr, label = generate_context_scene(np.random.Generator(np.random.PCG64([0, 0, 7])), 7, (64, 96))

Built so that a pixel's class cannot be read off its neighbourhood, which the stripes scenes allow (there a small
CNN learns the task from its labels in a few hundred steps, so a teacher has nothing to add):
- colour says nothing: every region takes a random colour, whatever its class;
- texture says only half: class 0 is the ground, and the other classes come in pairs (2t-1, 2t) that share one
  stripe texture (orientation and period of family t), under pixel noise as strong as the stripes, so even the
  texture needs a window of several periods to be read;
- shape decides within a pair: the odd class of a pair is always an ellipse, the even one always a straight-edged
  polygon (a rotated rectangle or a triangle). Telling them apart at a pixel means seeing the region's outline, up
  to a third of the image away, and shapes overlap and cut each other's outlines.
A model with a large receptive field trained long learns the textures and part of the outline cue (the benchmark's
SegFormer-B0 teacher: 35.7 mIoU); a small student at a short budget learns less of either (21.3): that difference
is the knowledge a teacher can transfer (docs/benchmark-distill.md).
"""
from typing import Sequence, Tuple

import cv2
import numpy as np

from hmkd.data.base import IGNORE_INDEX

_STRIPE_AMPLITUDE, _NOISE_SIGMA, _ILLUMINATION = 20.0, 20.0, 0.15


def check_context_classes(num_classes: int) -> None:
    """Ground plus whole pairs: an odd count of at least 3."""
    if num_classes < 3 or num_classes % 2 == 0:
        raise ValueError("data.num_classes must be odd and >= 3 for data.scene=context (the ground plus pairs of "
                         "classes that share a texture), got %d" % num_classes)


def family_of(cls: np.ndarray) -> np.ndarray:
    """Texture family per class: 0 for the ground, t for the pair (2t-1, 2t)."""
    return (cls + 1) // 2


def _draw_shape(label: np.ndarray, rng: np.random.Generator, cls: int) -> None:
    """An ellipse for odd classes, a rotated rectangle or a triangle for even ones, 10-30% of the image across."""
    height, width = label.shape
    cy, cx = float(rng.uniform(0, height)), float(rng.uniform(0, width))
    hy = float(rng.uniform(height * 0.1, height * 0.3))
    hx = float(rng.uniform(width * 0.1, width * 0.3))
    angle = float(rng.uniform(0, 180))
    if cls % 2 == 1:
        cv2.ellipse(label, (int(round(cx)), int(round(cy))), (int(round(hx)), int(round(hy))), angle, 0, 360, cls,
                    thickness=-1)
        return
    if rng.random() < 0.5:
        corners = cv2.boxPoints(((cx, cy), (2 * hx, 2 * hy), angle))
    else:
        turn = np.deg2rad(angle) + np.array([0.0, 2.0, 4.0]) * np.pi / 3 + rng.uniform(-0.3, 0.3, size=3)
        corners = np.stack([cx + hx * 1.3 * np.cos(turn), cy + hy * 1.3 * np.sin(turn)], axis=1)
    cv2.fillPoly(label, [np.round(corners).astype(np.int32)], cls)


def generate_context_scene(rng: np.random.Generator, num_classes: int,
                           image_size: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (HxWx3 uint8 BGR image, HxW uint8 label): the ground, 3-6 shapes of random pair classes, sometimes
    a void blob."""
    check_context_classes(num_classes)
    height, width = int(image_size[0]), int(image_size[1])
    label = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(3, 7))):
        _draw_shape(label, rng, int(rng.integers(1, num_classes)))
    if rng.random() < 0.25:
        cv2.ellipse(label, (int(rng.integers(0, width)), int(rng.integers(0, height))),
                    (max(1, width // 10), max(1, height // 10)), 0.0, 0, 360, IGNORE_INDEX, thickness=-1)

    # Regions: connected components of one class, each with its own random colour and stripe phase.
    void = label == IGNORE_INDEX
    regions = np.zeros((height, width), dtype=np.int32)
    region_class = [0]
    for cls in range(num_classes):
        count, components = cv2.connectedComponents((label == cls).astype(np.uint8), connectivity=4)
        inside = components > 0
        regions[inside] = components[inside] + len(region_class) - 1
        region_class.extend([cls] * (count - 1))
    num_regions = len(region_class)
    colours = rng.uniform(40, 215, size=(num_regions, 3)).astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, size=num_regions).astype(np.float32)
    families = family_of(np.asarray(region_class))
    num_families = int(family_of(np.asarray(num_classes - 1))) + 1
    angles = np.deg2rad(families * 180.0 / num_families).astype(np.float32)
    periods = (4.0 + 2.0 * (families % 3)).astype(np.float32)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * (xx / max(width - 1, 1) - 0.5) + np.sin(direction) * (yy / max(height - 1, 1) - 0.5))
    gain = 1.0 + 2.0 * _ILLUMINATION * ramp
    stripes = np.sin(2 * np.pi * (xx * np.cos(angles[regions]) + yy * np.sin(angles[regions])) / periods[regions]
                     + phases[regions])
    image = colours[regions] * gain[..., None] + _STRIPE_AMPLITUDE * stripes[..., None]
    image += _NOISE_SIGMA * rng.standard_normal((height, width, 3), dtype=np.float32)
    image[void] = rng.uniform(0, 255, size=(int(void.sum()), 3))
    image_rgb = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image_rgb[..., ::-1]), label
