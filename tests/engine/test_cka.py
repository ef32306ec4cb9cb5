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
