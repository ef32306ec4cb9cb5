"""Training and evaluation transforms: numpy/OpenCV in (HWC uint8 BGR image, HW uint8 label), tensors out.

Usage:
    t = TrainTransform(crop_size=(512, 1024), scale_range=(0.5, 2.0), scale_step=0.1, normalize="bgr_mean")
    image_chw, label_hw = t(image_bgr, label_hw, np.random.Generator(np.random.PCG64([seed, epoch, index])))

Every random choice comes from the generator passed in, never from global state, so a sample's augmentation is a
function of (seed, epoch, index) alone and a resumed run replays it bitwise whichever worker loads it.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

# name -> (convert BGR to RGB, mean, std); the mean/std are in the channel order the network sees.
NORMALIZATIONS = {
    # ImageNet statistics in RGB order: what mmseg's SegFormer and torchvision ResNet weights expect.
    "imagenet_rgb": (True, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    # The CIRKD/HMKD seed recipe: BGR order, mean subtraction only.
    "bgr_mean": (False, (104.008, 116.669, 122.679), (1.0, 1.0, 1.0)),
}


class Normalize:
    """uint8 BGR HWC -> float32 HWC in the order and scale the pretrained weights expect."""

    def __init__(self, mode: str = "imagenet_rgb"):
        if mode not in NORMALIZATIONS:
            raise ValueError("normalize must be one of %s, got %r" % (", ".join(sorted(NORMALIZATIONS)), mode))
        self.mode = mode
        self.to_rgb, mean, std = NORMALIZATIONS[mode]
        self.mean = np.array(mean, dtype=np.float32)
        self.inv_std = np.array([1.0 / s for s in std], dtype=np.float32)

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        image = image_bgr[..., ::-1] if self.to_rgb else image_bgr
        return (image.astype(np.float32) - self.mean) * self.inv_std


def _to_tensors(image_hwc: np.ndarray, label_hw: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
    image_chw = torch.from_numpy(np.ascontiguousarray(image_hwc.transpose(2, 0, 1)))
    return image_chw, torch.from_numpy(label_hw.astype(np.int64))


def _pair(value: Sequence, name: str, kind=int) -> Tuple:
    if len(value) != 2:
        raise ValueError("%s must have two entries, got %r" % (name, value))
    return kind(value[0]), kind(value[1])


class TrainTransform:
    """Random scale -> pad to the crop -> random crop -> horizontal flip -> normalise (the CIRKD/mmseg recipe).

    The image is resized bilinearly and the label by nearest neighbour. Padding goes bottom/right; padded label
    pixels are ``ignore_index`` and padded image pixels are 0 after normalisation (the mean colour), as in CIRKD,
    which subtracts the mean before padding, and mmseg, which pads after Normalize.
    ``scale_step`` > 0 draws the scale from lo, lo+step, ..., hi (CIRKD's 0.5 + randint(0, 15) / 10); 0 draws
    uniformly from [lo, hi].
    """

    def __init__(self, crop_size: Sequence[int], scale_range: Sequence[float] = (0.5, 2.0), scale_step: float = 0.1,
                 flip: bool = True, normalize: str = "imagenet_rgb", ignore_index: int = 255):
        self.crop_h, self.crop_w = _pair(crop_size, "crop_size")
        if self.crop_h <= 0 or self.crop_w <= 0:
            raise ValueError("crop_size must be positive, got %r" % (list(crop_size),))
        self.scale_lo, self.scale_hi = _pair(scale_range, "scale_range", float)
        if not 0 < self.scale_lo <= self.scale_hi:
            raise ValueError("scale_range must satisfy 0 < lo <= hi, got %r" % (list(scale_range),))
        if scale_step is None or scale_step < 0:
            raise ValueError("scale_step must be >= 0 (0 = continuous), got %r" % (scale_step,))
        self.scales: Optional[np.ndarray] = None
        if scale_step > 0:
            count = int(math.floor((self.scale_hi - self.scale_lo) / scale_step + 1e-6)) + 1
            self.scales = np.round(self.scale_lo + scale_step * np.arange(count), 6)
        self.flip = bool(flip)
        self.normalize = Normalize(normalize)
        self.ignore_index = ignore_index

    def sample_params(self, rng: np.random.Generator, height: int, width: int) -> Dict:
        """Draws scale, crop offset and flip; always four draws in the same order so the stream stays aligned."""
        if self.scales is not None:
            scale = float(self.scales[rng.integers(len(self.scales))])
        else:
            scale = float(rng.uniform(self.scale_lo, self.scale_hi))
        scaled_h, scaled_w = max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))
        top = int(rng.integers(0, max(scaled_h, self.crop_h) - self.crop_h + 1))
        left = int(rng.integers(0, max(scaled_w, self.crop_w) - self.crop_w + 1))
        flip = bool(rng.random() < 0.5) and self.flip
        return {"scale": scale, "height": scaled_h, "width": scaled_w, "top": top, "left": left, "flip": flip}

    def __call__(self, image_bgr: np.ndarray, label_hw: np.ndarray,
                 rng: np.random.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        p = self.sample_params(rng, label_hw.shape[0], label_hw.shape[1])
        if (p["height"], p["width"]) != label_hw.shape:
            image_bgr = cv2.resize(image_bgr, (p["width"], p["height"]), interpolation=cv2.INTER_LINEAR)
            label_hw = cv2.resize(label_hw, (p["width"], p["height"]), interpolation=cv2.INTER_NEAREST)
        # Crop the valid part first and normalise only that: the same pixels as pad-then-crop, less work at scale 2.
        rows = slice(p["top"], min(p["top"] + self.crop_h, p["height"]))
        cols = slice(p["left"], min(p["left"] + self.crop_w, p["width"]))
        valid_image = self.normalize(image_bgr[rows, cols])
        valid_h, valid_w = valid_image.shape[:2]
        image = np.zeros((self.crop_h, self.crop_w, 3), dtype=np.float32)
        image[:valid_h, :valid_w] = valid_image
        label = np.full((self.crop_h, self.crop_w), self.ignore_index, dtype=np.uint8)
        label[:valid_h, :valid_w] = label_hw[rows, cols]
        if p["flip"]:
            image, label = image[:, ::-1], label[:, ::-1]
        return _to_tensors(image, label)


class EvalTransform:
    """Full resolution, normalisation only: evaluation sees the whole image, as the recipes' numbers assume."""

    def __init__(self, normalize: str = "imagenet_rgb"):
        self.normalize = Normalize(normalize)

    def __call__(self, image_bgr: np.ndarray, label_hw: np.ndarray,
                 rng: Optional[np.random.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return _to_tensors(self.normalize(image_bgr), label_hw)
