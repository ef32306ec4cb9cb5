"""Linear CKA (Kornblith et al. 2019): how alike two representations of the same inputs are, whatever their widths.

Usage:
    value = linear_cka(x_nc, y_nd)                       # rows = samples (the same ones on both sides)
    meter = FeatureCKA(); meter.update(student_bchw, teacher_bchw); ...; meter.value()

CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) with X and Y column-centred. It is invariant to orthogonal
transforms and isotropic scaling of either side, 1 for X against itself, in [0, 1]; undefined (NaN here) when one
side is constant. The sums are accumulated in float64 over any number of updates (X^T X, Y^T Y, Y^T X and the column
sums; centring is applied at the end), so the memory is O(C^2) however many positions are fed and nothing needs to be
subsampled: a probe of full-resolution images is fed one image at a time.

Feature maps (NCHW) of two models may differ in width and size. Both are brought to the smaller size (per side, the
smaller height and the smaller width) by adaptive average pooling, so that each row of both matrices describes the
same image region, averaged over it. Bilinear downsampling would read only the few pixels next to each sample point
(aliasing, the rest discarded); upsampling the smaller map (as GLA and FitNet do for their losses) would add
interpolated rows that carry no information and weigh the smooth regions more. Rows are then the B*H*W positions,
columns the channels.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def common_size(a_bchw: Tensor, b_bchw: Tensor) -> Tuple[int, int]:
    return min(a_bchw.shape[2], b_bchw.shape[2]), min(a_bchw.shape[3], b_bchw.shape[3])


def pooled_rows(feat_bchw: Tensor, size: Tuple[int, int]) -> Tensor:
    """(B*h*w, C) float64 rows of ``feat`` average-pooled to ``size`` (a no-op at its own size)."""
    if tuple(feat_bchw.shape[2:]) != tuple(size):
        feat_bchw = F.adaptive_avg_pool2d(feat_bchw.float(), size)
    return feat_bchw.permute(0, 2, 3, 1).reshape(-1, feat_bchw.shape[1]).double()


class LinearCKA:
    """Linear CKA of row-aligned matrices fed in chunks of rows; equal to one call on their concatenation."""

    def __init__(self):
        self.rows = 0
        self.sums: Optional[Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = None  # sx, sy, X^T X, Y^T Y, Y^T X

    def update_rows(self, x_nc: Tensor, y_nd: Tensor) -> "LinearCKA":
        if x_nc.dim() != 2 or y_nd.dim() != 2 or x_nc.shape[0] != y_nd.shape[0]:
            raise ValueError("linear CKA needs two matrices with the same rows (samples), got %s and %s"
                             % (tuple(x_nc.shape), tuple(y_nd.shape)))
        x, y = x_nc.double(), y_nd.double()
        part = (x.sum(0), y.sum(0), x.t() @ x, y.t() @ y, y.t() @ x)
        self.sums = part if self.sums is None else tuple(a + b for a, b in zip(self.sums, part))
        self.rows += x.shape[0]
        return self

    def value(self) -> float:
        """CKA of everything fed so far; NaN when nothing was fed or one side has no variance."""
        if self.sums is None or self.rows < 2:
            return float("nan")
        sx, sy, xx, yy, yx = self.sums
        n = float(self.rows)
        xx = xx - torch.outer(sx, sx) / n  # the centred X^T X, and so on
        yy = yy - torch.outer(sy, sy) / n
        yx = yx - torch.outer(sy, sx) / n
        denominator = float(torch.linalg.norm(xx) * torch.linalg.norm(yy))
        if not denominator > 0:
            return float("nan")
        return float(torch.linalg.norm(yx) ** 2) / denominator


class FeatureCKA(LinearCKA):
    """Linear CKA between two models' feature maps of the same images, pooled to their common size."""

    def update(self, a_bchw: Tensor, b_bchw: Tensor) -> "FeatureCKA":
        if a_bchw.dim() != 4 or b_bchw.dim() != 4 or a_bchw.shape[0] != b_bchw.shape[0]:
            raise ValueError("feature CKA needs two NCHW maps of the same images, got %s and %s"
                             % (tuple(a_bchw.shape), tuple(b_bchw.shape)))
        size = common_size(a_bchw, b_bchw)
        self.update_rows(pooled_rows(a_bchw, size), pooled_rows(b_bchw, size))
        return self


def linear_cka(x_nc: Tensor, y_nd: Tensor) -> float:
    return LinearCKA().update_rows(x_nc, y_nd).value()


def finite_or_none(value: float) -> Optional[float]:
    """For strict JSON: an undefined CKA is written as null."""
    return value if math.isfinite(value) else None
