"""The teacher's input re-normalised from the student's batch equals the teacher's own normalisation of the raw image.

Tolerance: both sides are float32 values of the same real number, each a few roundings away from it (the student's
(raw - mean) * (1/std), then scale * x + shift), so they agree to a few units in the last place of the largest
magnitude involved: 4 * float32 eps * max(|teacher value|, |scale * student value|) over the 0..255 range (1.3e-6 to
2.1e-6 for imagenet_rgb targets, 7e-5 to 1.2e-4 for bgr_mean ones, whose values reach 151; the measured errors are a
quarter of it or less). A wrong channel order or constant is off by 0.1 or more.
"""
import itertools

import numpy as np
import pytest
import torch

from hmkd.data import NORMALIZATIONS, Normalize, Renormalize, renormalizer
from hmkd.data import transforms
from hmkd.data.renormalize import affine_between

# A 0..1 mode (RGB, divided by 255, no mean) beside the shipped ones, to cover a change of scale as well.
UNIT_RGB = {"unit_rgb": (True, (0.0, 0.0, 0.0), (255.0, 255.0, 255.0))}


@pytest.fixture()
def modes(monkeypatch):
    monkeypatch.setitem(transforms.NORMALIZATIONS, "unit_rgb", UNIT_RGB["unit_rgb"])
    return sorted(NORMALIZATIONS)


def raw_image(height=7, width=40):
    """Every grey level in every channel, each channel in a different order, non-square."""
    rng = np.random.default_rng(0)
    levels = np.concatenate([np.arange(256), rng.integers(0, 256, height * width - 256)])
    return np.stack([rng.permutation(levels) for _ in range(3)], axis=-1).reshape(height, width, 3).astype(np.uint8)


def normalized_bchw(mode, image_bgr):
    out = np.empty((3,) + image_bgr.shape[:2], dtype=np.float32)
    Normalize(mode).into_chw(image_bgr, out)
    return torch.from_numpy(out)[None]


def tolerance(source, target):
    _, scale, _ = affine_between(source, target)
    extremes = np.array([0.0, 255.0])
    biggest = 0.0
    for mode, factors in ((target, [1.0] * 3), (source, scale)):
        _, mean, std = NORMALIZATIONS[mode]
        for c in range(3):
            biggest = max(biggest, float(np.abs((extremes - mean[c]) / std[c] * factors[c]).max()))
    return 4 * float(np.finfo(np.float32).eps) * biggest


def test_every_pair_of_modes_is_exact(modes):
    image = raw_image()
    for source, target in itertools.product(modes, modes):
        expected = normalized_bchw(target, image)
        renorm = renormalizer(source, target)
        if source == target:
            assert renorm is None  # the same normalisation: no op at all
            continue
        got = renorm(normalized_bchw(source, image))
        error = float((got - expected).abs().max())
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert error <= tolerance(source, target), (source, target, error)


def test_student_batch_to_teacher_matches_mmcv_normalisation():
    """The shipped heterogeneous pair against OpenMMLab's own normalisation (mmseg's SegFormer img_norm_cfg)."""
    mmcv = pytest.importorskip("mmcv")
    image = raw_image()
    _, mean, std = NORMALIZATIONS["imagenet_rgb"]
    expected = mmcv.imnormalize(image.astype(np.float32), np.array(mean), np.array(std), to_rgb=True)
    got = Renormalize("bgr_mean", "imagenet_rgb")(normalized_bchw("bgr_mean", image))[0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected).max() <= tolerance("bgr_mean", "imagenet_rgb")


def test_channels_last_batches_and_several_images():
    image, other = raw_image(), raw_image()[::-1].copy()
    batch = torch.cat([normalized_bchw("imagenet_rgb", image), normalized_bchw("imagenet_rgb", other)])
    renorm = Renormalize("imagenet_rgb", "bgr_mean")
    got = renorm(batch.contiguous(memory_format=torch.channels_last))
    expected = torch.cat([normalized_bchw("bgr_mean", image), normalized_bchw("bgr_mean", other)])
    assert float((got - expected).abs().max()) <= tolerance("imagenet_rgb", "bgr_mean")


def test_bad_modes_and_shapes_are_named():
    with pytest.raises(ValueError, match="imagenet_bgr"):
        Renormalize("imagenet_bgr", "bgr_mean")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        Renormalize("bgr_mean", "imagenet_rgb")(torch.zeros(1, 4, 2, 2))
