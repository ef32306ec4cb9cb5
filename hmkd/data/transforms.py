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
        # Per output channel: the BGR plane it reads and a 256-entry table of the formula's float32 values, so a
        # lookup gives bitwise the same numbers as __call__ at a fraction of its passes over the pixels.
        self.planes = (2, 1, 0) if self.to_rgb else (0, 1, 2)
        self.tables = [(np.arange(256, dtype=np.float32) - self.mean[c]) * self.inv_std[c] for c in range(3)]

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        image = image_bgr[..., ::-1] if self.to_rgb else image_bgr
        return (image.astype(np.float32) - self.mean) * self.inv_std

    def into_chw(self, image_bgr: np.ndarray, out_chw: np.ndarray) -> None:
        """Writes the normalised image into ``out_chw``, a (3, h, w) float32 array or a view with positive strides."""
        planes = cv2.split(image_bgr)
        for channel, table in enumerate(self.tables):
            plane_hw = out_chw[channel]
            values_hw = cv2.LUT(planes[self.planes[channel]], table, dst=plane_hw)
            if not np.may_share_memory(values_hw, plane_hw):  # OpenCV wrote a copy instead (layout it cannot take)
                plane_hw[...] = values_hw.reshape(plane_hw.shape)


def _nearest_indices(scaled: int, source: int, start: int, count: int) -> np.ndarray:
    """Source rows (or columns) that cv2.resize with INTER_NEAREST reads for positions start..start+count-1 of a
    ``scaled``-long axis: floor(i / (scaled / source)) in double precision, clamped, as OpenCV computes them."""
    step = 1.0 / (scaled / source)
    return np.minimum(np.floor((start + np.arange(count)) * step).astype(np.intp), source - 1)


def _resized_window(image: np.ndarray, scaled_h: int, scaled_w: int, top: int, left: int, height: int, width: int,
                    flip: bool) -> np.ndarray:
    """The height x width window at (top, left) of ``image`` bilinearly resized to scaled_h x scaled_w (mirrored
    when ``flip``), computed from the source pixels it covers only: the pixel-centre mapping of cv2.resize
    (source x = (x + 0.5) * W / scaled_w - 0.5, edges clamped) as an affine warp of just the window."""
    step_x, step_y = image.shape[1] / scaled_w, image.shape[0] / scaled_h
    if flip:  # output column k shows scaled column left + width - 1 - k
        row_x = (-step_x, 0.0, (left + width - 0.5) * step_x - 0.5)
    else:
        row_x = (step_x, 0.0, (left + 0.5) * step_x - 0.5)
    dst_to_src = np.array([row_x, (0.0, step_y, (top + 0.5) * step_y - 0.5)])
    return cv2.warpAffine(image, dst_to_src, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


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
        height, width = label_hw.shape
        p = self.sample_params(rng, height, width)
        # Only the part of the scaled image that lands in the crop is computed: at scale 2 a full resize of a
        # Cityscapes frame makes 8M pixels to keep 0.5M of them. Labels take exactly the pixels a full
        # nearest-neighbour resize would give; images take the same bilinear mapping, interpolated by warpAffine
        # (1/32-pixel positions instead of 1/2048: a few grey levels at sharp edges, about 0.15 on average).
        top, left, flip = p["top"], p["left"], p["flip"]
        valid_h, valid_w = min(self.crop_h, p["height"] - top), min(self.crop_w, p["width"] - left)
        first_col = self.crop_w - valid_w if flip else 0  # padding is bottom/right before the flip
        cols = slice(first_col, first_col + valid_w)
        image_chw = np.zeros((3, self.crop_h, self.crop_w), dtype=np.float32)
        label = np.full((self.crop_h, self.crop_w), self.ignore_index, dtype=np.int64)
        if (p["height"], p["width"]) == (height, width):
            window = (slice(top, top + valid_h), slice(left, left + valid_w))
            self.normalize.into_chw(cv2.flip(image_bgr[window], 1) if flip else image_bgr[window],
                                    image_chw[:, :valid_h, cols])
            label[:valid_h, cols] = label_hw[window][:, ::-1] if flip else label_hw[window]
        else:
            window_bgr = _resized_window(image_bgr, p["height"], p["width"], top, left, valid_h, valid_w, flip)
            self.normalize.into_chw(window_bgr, image_chw[:, :valid_h, cols])
            row_idx = _nearest_indices(p["height"], height, top, valid_h)
            col_idx = _nearest_indices(p["width"], width, left, valid_w)
            label[:valid_h, cols] = label_hw[row_idx[:, None], col_idx[::-1] if flip else col_idx]
        return torch.from_numpy(image_chw), torch.from_numpy(label)


class EvalTransform:
    """Full resolution, normalisation only: evaluation sees the whole image, as the recipes' numbers assume."""

    def __init__(self, normalize: str = "imagenet_rgb"):
        self.normalize = Normalize(normalize)

    def __call__(self, image_bgr: np.ndarray, label_hw: np.ndarray,
                 rng: Optional[np.random.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        image_chw = np.empty((3,) + image_bgr.shape[:2], dtype=np.float32)
        self.normalize.into_chw(image_bgr, image_chw)
        return torch.from_numpy(image_chw), torch.from_numpy(label_hw.astype(np.int64))
