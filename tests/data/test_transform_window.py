"""TrainTransform resizes only the window that lands in the crop: same samples as resize-everything-then-crop."""
import cv2
import numpy as np
import pytest
import torch

from hmkd.data import EvalTransform, Normalize, TrainTransform


def _rng(i):
    return np.random.Generator(np.random.PCG64([0, 0, i]))


def _reference(t, image_bgr, label_hw, rng):
    """The recipe written the direct way: full cv2.resize, pad bottom/right, crop, flip, normalise."""
    p = t.sample_params(rng, *label_hw.shape)
    image = cv2.resize(image_bgr, (p["width"], p["height"]), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label_hw, (p["width"], p["height"]), interpolation=cv2.INTER_NEAREST)
    padded_image = np.zeros((max(p["height"], t.crop_h), max(p["width"], t.crop_w), 3), np.float32)
    padded_image[:p["height"], :p["width"]] = t.normalize(image)
    padded_label = np.full(padded_image.shape[:2], 255, np.uint8)
    padded_label[:p["height"], :p["width"]] = label
    rows, cols = slice(p["top"], p["top"] + t.crop_h), slice(p["left"], p["left"] + t.crop_w)
    image, label = padded_image[rows, cols], padded_label[rows, cols]
    if p["flip"]:
        image, label = image[:, ::-1], label[:, ::-1]
    return torch.from_numpy(image.transpose(2, 0, 1).copy()), torch.from_numpy(label.astype(np.int64)), p


def _scene(height, width, seed):
    """Smooth shading plus sharp-edged blocks, like a street scene at small scale."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([(xx * 3 + yy) % 256, (yy * 2 + 40) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    label = np.zeros((height, width), np.uint8)
    for k in range(6):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        image[y:y + height // 4, x:x + width // 4] = rng.integers(0, 256, 3, dtype=np.uint8)
        label[y:y + height // 4, x:x + width // 4] = k + 1
    return image, label


@pytest.mark.parametrize("size,crop", [((48, 96), (24, 48)), ((37, 53), (40, 30)), ((20, 30), (64, 64)),
                                       ((9, 7), (5, 6))])
def test_window_resize_matches_full_resize_then_crop(size, crop):
    t = TrainTransform(crop, (0.5, 2.0), 0.1, flip=True)
    image, label = _scene(*size, seed=size[0])
    for i in range(24):
        out_image, out_label = t(image, label, _rng(i))
        ref_image, ref_label, p = _reference(t, image, label, _rng(i))
        assert out_image.shape == ref_image.shape and out_image.is_contiguous() and out_label.is_contiguous()
        assert torch.equal(out_label, ref_label), p  # nearest-neighbour labels: the very same pixels
        levels = (out_image - ref_image).abs() / torch.from_numpy(t.normalize.inv_std)[:, None, None]
        if (p["height"], p["width"]) == size:
            assert torch.equal(out_image, ref_image), p
        assert levels.max() <= 8 and levels.mean() <= 0.5, (p, float(levels.max()), float(levels.mean()))


def test_normalize_into_chw_is_bitwise_the_formula():
    image = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    for mode in ("imagenet_rgb", "bgr_mean"):
        norm = Normalize(mode)
        out = np.full((3, 9, 13), -1.0, np.float32)
        norm.into_chw(image, out[:, 1:8, 2:13])
        assert np.array_equal(out[:, 1:8, 2:13], norm(image).transpose(2, 0, 1))
        assert (out[:, 0] == -1).all() and (out[:, :, :2] == -1).all()
        chw, _ = EvalTransform(mode)(image, np.zeros((7, 11), np.uint8))
        assert torch.equal(chw, torch.from_numpy(norm(image).transpose(2, 0, 1).copy()))
