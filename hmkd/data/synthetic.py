"""Procedurally generated street-like scenes: a dataset with no files, for tests, smoke runs and benchmarks.

Usage:
    ds = SyntheticDataset(num_classes=5, image_size=(64, 96), length=32, split="val")
    image_bgr, label = generate_scene(np.random.Generator(np.random.PCG64([0, 0, 7])), 5, (64, 96))

Each class has its own colour (the palette), stripe orientation and stripe period, under a smooth illumination
gradient and pixel noise, so a small CNN learns class from appearance within a few hundred CPU steps. Scenes are a
pure function of (data_seed, split, index); training augmentation on top depends on (seed, epoch, index) as for
file datasets.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from hmkd.data.base import IGNORE_INDEX, SegDataset, default_palette
from hmkd.data.context_scenes import check_context_classes, generate_context_scene
from hmkd.data.files import DatasetError
from hmkd.data.validation import LEVELS, identity_spec, label_value_problem

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_STRIPE_AMPLITUDE, _NOISE_SIGMA, _ILLUMINATION = 18.0, 5.0, 0.15


def _draw_shape(label: np.ndarray, rng: np.random.Generator, cls: int) -> None:
    height, width = label.shape
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    hy = int(rng.integers(max(1, height // 12), max(2, height * 3 // 10)))
    hx = int(rng.integers(max(1, width // 12), max(2, width * 3 // 10)))
    kind, angle = int(rng.integers(3)), float(rng.uniform(0, 180))
    if kind == 0:
        cv2.rectangle(label, (cx - hx, cy - hy), (cx + hx, cy + hy), cls, thickness=-1)
    elif kind == 1:
        cv2.ellipse(label, (cx, cy), (hx, hy), angle, 0, 360, cls, thickness=-1)
    else:
        offsets = rng.uniform(-1, 1, size=(3, 2)) * np.array([hx, hy])
        cv2.fillPoly(label, [np.round(offsets + [cx, cy]).astype(np.int32)], cls)


def generate_scene(rng: np.random.Generator, num_classes: int,
                   image_size: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (HxWx3 uint8 BGR image, HxW uint8 label): 1-3 horizontal bands, 3-6 shapes, sometimes a void blob."""
    height, width = int(image_size[0]), int(image_size[1])
    order = rng.permutation(num_classes)
    label = np.empty((height, width), dtype=np.uint8)
    num_bands = int(rng.integers(1, 4))
    cuts = [0] + sorted(int(c) for c in rng.integers(1, max(2, height), size=num_bands - 1)) + [height]
    for band in range(num_bands):
        label[cuts[band]:cuts[band + 1]] = order[band % num_classes]
    for shape in range(int(rng.integers(3, 7))):
        _draw_shape(label, rng, int(order[(num_bands + shape) % num_classes]))
    if rng.random() < 0.25:
        cv2.ellipse(label, (int(rng.integers(0, width)), int(rng.integers(0, height))),
                    (max(1, width // 10), max(1, height // 10)), 0.0, 0, 360, IGNORE_INDEX, thickness=-1)

    # Appearance: class colour x illumination gradient + class stripes + noise; void pixels are uniform noise.
    k = np.arange(num_classes + 1)
    colours = np.zeros((num_classes + 1, 3), dtype=np.float32)
    colours[:num_classes] = np.asarray(default_palette(num_classes), dtype=np.float32)
    angles = np.deg2rad((k * 47) % 180).astype(np.float32)
    periods = (4.0 + 3.0 * (k % 3)).astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, size=num_classes + 1).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cls = np.where(label == IGNORE_INDEX, num_classes, label).astype(np.intp)
    ramp = (np.cos(direction) * (xx / max(width - 1, 1) - 0.5) + np.sin(direction) * (yy / max(height - 1, 1) - 0.5))
    gain = 1.0 + 2.0 * _ILLUMINATION * ramp
    stripes = np.sin(2 * np.pi * (xx * np.cos(angles[cls]) + yy * np.sin(angles[cls])) / periods[cls] + phases[cls])
    image = colours[cls] * gain[..., None] + _STRIPE_AMPLITUDE * stripes[..., None]
    image += _NOISE_SIGMA * rng.standard_normal((height, width, 3), dtype=np.float32)
    void = cls == num_classes
    image[void] = rng.uniform(0, 255, size=(int(void.sum()), 3))
    image_rgb = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image_rgb[..., ::-1]), label


SCENES = {"stripes": generate_scene, "context": generate_context_scene}


class SyntheticDataset(SegDataset):
    """``length`` generated scenes per split; ``data_seed`` fixes the content, ``seed`` the augmentation; ``scene``
    is the generator (SCENES: ``stripes``, the class readable from local appearance, or ``context``, where it needs
    the region's outline: hmkd.data.context_scenes)."""

    def __init__(self, num_classes: int = 5, image_size: Sequence[int] = (64, 96), length: int = 64,
                 split: str = "train", data_seed: int = 0, transform=None, seed: int = 0, scene: str = "stripes"):
        if scene not in SCENES:
            raise ValueError("data.scene must be one of %s, got %r" % (", ".join(SCENES), scene))
        if scene == "context":
            check_context_classes(num_classes)
        if split not in SPLIT_CODES:
            raise ValueError("synthetic split must be one of %s, got %r" % (", ".join(SPLIT_CODES), split))
        if not 0 < num_classes < IGNORE_INDEX:
            raise ValueError("num_classes must be in 1..%d, got %r" % (IGNORE_INDEX - 1, num_classes))
        if len(image_size) != 2 or min(image_size) < 8:
            raise ValueError("image_size must be [h, w] with both >= 8, got %r" % (list(image_size),))
        if length <= 0 or data_seed < 0:
            raise ValueError("length must be > 0 and data_seed >= 0, got %r and %r" % (length, data_seed))
        super().__init__([], num_classes, ["class_%d" % c for c in range(num_classes)], default_palette(num_classes),
                         identity_spec(num_classes, IGNORE_INDEX, "synthetic"), transform=transform, seed=seed,
                         name="synthetic %s" % split)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.length, self.split, self.data_seed = int(length), split, int(data_seed)
        self.generate = SCENES[scene]

    def __len__(self) -> int:
        return self.length

    def sample_name(self, index: int) -> str:
        return "synthetic_%s_%06d" % (self.split, index)

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError("index %d out of range for %d synthetic samples" % (index, self.length))
        rng = np.random.Generator(np.random.PCG64([self.data_seed, SPLIT_CODES[self.split], index]))
        return self.generate(rng, self.num_classes, self.image_size)

    def validate(self, level: str = "full", workers: Optional[int] = None, max_report: int = 5) -> int:
        """Nothing on disk to check; ``full`` still generates every scene and checks its label range."""
        if level not in LEVELS:
            raise ValueError("validation level must be one of %s, got %r" % (", ".join(LEVELS), level))
        if level == "full":
            problems = [label_value_problem(self.load(i)[1], self.label_spec, self.sample_name(i))
                        for i in range(self.length)]
            problems = [p for p in problems if p]
            if problems:
                raise DatasetError(problems, "%s: %d bad labels" % (self.name, len(problems)), max_report=max_report)
        return self.length
