"""Linear CKA (Kornblith et al. 2019): how alike two representations of the same inputs are, whatever their widths.

Usage:
    value = linear_cka(x_nc, y_nd)                       # rows = samples (the same ones on both sides)
    meter = FeatureCKA(); meter.update(student_bchw, teacher_bchw); ...; meter.value()

CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) with X and Y column-centred. It is invariant to orthogonal
transforms and isotropic scaling of either side, 1 for X against itself, in [0, 1]; undefined (NaN here) when one
side is constant. Centred moments are accumulated in float64 over any number of updates: each chunk is centred on
its own column means and merged with Chan et al.'s parallel update (means, centred X^T X, Y^T Y, Y^T X). Sums of
raw products centred at the end would cancel catastrophically when a feature's mean is far larger than its spread
(wrong in the first digit at an offset of 1e8 standard deviations); centred ones agree with the two-pass formula to
rounding. The memory is O(C^2) however many positions are fed and nothing needs to be subsampled: a probe of
full-resolution images is fed one image at a time.

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
    """(B*h*w, C) float64 rows of ``feat`` average-pooled to ``size`` (a no-op at its own size). Pooled in the input's
    dtype (float64 stays float64); half and bfloat16 maps (autocast) in float32, which every device pools."""
    if tuple(feat_bchw.shape[2:]) != tuple(size):
        if feat_bchw.dtype not in (torch.float32, torch.float64):
            feat_bchw = feat_bchw.float()
        feat_bchw = F.adaptive_avg_pool2d(feat_bchw, size)
    return feat_bchw.permute(0, 2, 3, 1).reshape(-1, feat_bchw.shape[1]).double()


class LinearCKA:
    """Linear CKA of row-aligned matrices fed in chunks of rows; equal to one call on their concatenation."""

    def __init__(self):
        self.rows = 0
        # column means of X and Y, and the centred X^T X, Y^T Y, Y^T X of every row fed so far (float64)
        self.moments: Optional[Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = None

    def update_rows(self, x_nc: Tensor, y_nd: Tensor) -> "LinearCKA":
        if x_nc.dim() != 2 or y_nd.dim() != 2 or x_nc.shape[0] != y_nd.shape[0]:
            raise ValueError("linear CKA needs two matrices with the same rows (samples), got %s and %s"
                             % (tuple(x_nc.shape), tuple(y_nd.shape)))
        rows = x_nc.shape[0]
        if rows == 0:
            return self
        x, y = x_nc.double(), y_nd.double()
        mx, my = x.mean(0), y.mean(0)
        xc, yc = x - mx, y - my
        part = (mx, my, xc.t() @ xc, yc.t() @ yc, yc.t() @ xc)
        if self.moments is None:
            self.moments = part
        else:  # Chan et al.: the centred sums of the union = both parts' + the shift between their means
            ma_x, ma_y, xx, yy, yx = self.moments
            n = self.rows + rows
            dx, dy = mx - ma_x, my - ma_y
            weight = self.rows * rows / float(n)
            self.moments = (ma_x + dx * (rows / float(n)), ma_y + dy * (rows / float(n)),
                            xx + part[2] + weight * torch.outer(dx, dx), yy + part[3] + weight * torch.outer(dy, dy),
                            yx + part[4] + weight * torch.outer(dy, dx))
        self.rows += rows
        return self

    def value(self) -> float:
        """CKA of everything fed so far; NaN when nothing was fed or one side has no variance."""
        if self.moments is None or self.rows < 2:
            return float("nan")
        _, _, xx, yy, yx = self.moments
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
