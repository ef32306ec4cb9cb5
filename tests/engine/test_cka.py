"""Linear CKA against the formula written in numpy, its invariances and bounds, and the feature-map pooling."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hmkd.engine.cka import FeatureCKA, LinearCKA, linear_cka


def numpy_cka(x, y):
    """Kornblith et al. 2019, linear kernel, as written: centre the columns, ||Y^T X||_F^2 / (||X^T X|| ||Y^T Y||)."""
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def related(rows=200, cx=12, cy=7, noise=1.0, seed=0):
    """Y partly a linear function of X (offset columns too), so CKA is well inside (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cx, generator=g, dtype=torch.float64) * 2 + 3
    y = x @ torch.randn(cx, cy, generator=g, dtype=torch.float64) + noise * torch.randn(rows, cy, generator=g,
                                                                                      dtype=torch.float64) - 5
    return x, y


def orthogonal(n, seed):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_equals_the_formula_in_numpy_and_lies_strictly_inside_0_1():
    x, y = related()
    value = linear_cka(x, y)
    assert value == pytest.approx(numpy_cka(x.numpy(), y.numpy()), rel=1e-12, abs=0)
    assert 0.05 < value < 0.95


def test_different_channel_counts_in_float32_input():
    x, y = related(cx=32, cy=3)
    assert linear_cka(x.float(), y.float()) == pytest.approx(numpy_cka(x.float().double().numpy(),
                                                                       y.float().double().numpy()), rel=1e-10)


def test_itself_is_one_and_unrelated_is_near_zero():
    x, _ = related()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    noise = torch.randn(20000, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert linear_cka(noise[:, :2], noise[:, 2:]) < 1e-3


def test_invariant_to_orthogonal_transforms_and_isotropic_scaling_of_either_side():
    x, y = related()
    value = linear_cka(x, y)
    assert linear_cka(x @ orthogonal(x.shape[1], 1), y) == pytest.approx(value, rel=1e-10)
    assert linear_cka(x, y @ orthogonal(y.shape[1], 2)) == pytest.approx(value, rel=1e-10)
    assert linear_cka(7.5 * x, y) == pytest.approx(value, rel=1e-10)
    assert linear_cka(x, 0.01 * y) == pytest.approx(value, rel=1e-10)


def test_chunked_updates_equal_one_call_and_a_constant_side_is_undefined():
    x, y = related(rows=301)
    meter = LinearCKA()
    for start in range(0, 301, 64):
        meter.update_rows(x[start:start + 64], y[start:start + 64])
    assert meter.value() == pytest.approx(linear_cka(x, y), rel=1e-12)
    assert math.isnan(linear_cka(x, torch.ones(301, 3)))
    assert math.isnan(LinearCKA().value())
    with pytest.raises(ValueError, match="same rows"):
        linear_cka(x, y[:10])


@pytest.mark.parametrize("offset", [1e4, 1e8])
def test_exact_when_the_mean_is_far_larger_than_the_spread(offset):
    """Centred moments: at a mean of 1e8 standard deviations the raw-moment sums were wrong in the first digit."""
    x, y = related(rows=301)
    x, y = x - x.mean(0) + offset, y - y.mean(0) - offset  # std about 2 and 10, means +-offset
    expected = numpy_cka(x.numpy(), y.numpy())  # two passes in float64: the means first, then the centred products
    assert 0.05 < expected < 0.95
    assert linear_cka(x, y) == pytest.approx(expected, abs=1e-10)
    meter = LinearCKA()
    for start in range(0, 301, 64):
        meter.update_rows(x[start:start + 64], y[start:start + 64])
    assert meter.value() == pytest.approx(expected, abs=1e-10)
    # chunks shifted far apart from each other (Chan's update carries the shift between chunk means)
    steps = LinearCKA().update_rows(x[:100], y[:100]).update_rows(x[100:] + 1e3, y[100:] - 1e3)
    shifted_x, shifted_y = torch.cat([x[:100], x[100:] + 1e3]), torch.cat([y[:100], y[100:] - 1e3])
    assert steps.value() == pytest.approx(numpy_cka(shifted_x.numpy(), shifted_y.numpy()), abs=1e-10)


def test_float64_feature_maps_are_pooled_in_float64():
    g = torch.Generator().manual_seed(5)
    student = torch.randn(2, 6, 8, 12, generator=g, dtype=torch.float64) + 1e8
    teacher = torch.randn(2, 10, 4, 6, generator=g, dtype=torch.float64)
    teacher[:, :6] += 0.5 * F.adaptive_avg_pool2d(student - 1e8, (4, 6))
    rows_s = F.adaptive_avg_pool2d(student, (4, 6)).permute(0, 2, 3, 1).reshape(-1, 6).numpy()
    rows_t = teacher.permute(0, 2, 3, 1).reshape(-1, 10).numpy()
    expected = numpy_cka(rows_s, rows_t)
    assert 0.05 < expected < 0.95
    assert FeatureCKA().update(student, teacher).value() == pytest.approx(expected, abs=1e-10)
    # autocast's bfloat16 maps are pooled in float32: the same value as those maps in float32
    low_s, low_t = (student - 1e8).bfloat16(), teacher.bfloat16()
    assert FeatureCKA().update(low_s, low_t).value() == pytest.approx(
        FeatureCKA().update(low_s.float(), low_t.float()).value(), abs=1e-12)


def test_feature_maps_are_average_pooled_to_the_smaller_size_rows_are_positions():
    g = torch.Generator().manual_seed(4)
    student = torch.randn(2, 6, 8, 12, generator=g)      # stride 4 of a 32x48 image
    teacher = torch.randn(2, 10, 4, 6, generator=g)      # stride 8
    meter = FeatureCKA().update(student, teacher)
    pooled = F.adaptive_avg_pool2d(student, (4, 6))
    rows_s = pooled.permute(0, 2, 3, 1).reshape(-1, 6).double().numpy()
    rows_t = teacher.permute(0, 2, 3, 1).reshape(-1, 10).double().numpy()
    assert meter.rows == 2 * 4 * 6
    assert meter.value() == pytest.approx(numpy_cka(rows_s, rows_t), rel=1e-10)
    # one image at a time equals the batch (the trainer's probe feeds images one by one)
    split = FeatureCKA().update(student[:1], teacher[:1]).update(student[1:], teacher[1:])
    assert split.value() == pytest.approx(meter.value(), rel=1e-12)
    assert FeatureCKA().update(student, student).value() == pytest.approx(1.0, abs=1e-12)
