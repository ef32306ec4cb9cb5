"""GLA: patch-level attention (relation) alignment between student and teacher stage maps (HMKD alignment 1).

Usage (config): loss.terms.gla: {weight: 1.0, stage: 0, dim: 128, patch_size: 8, reduction: mean}

Each side projects its map to a common width D (1x1 conv, only where its width differs from D), cuts it into
P x P patches with its own patch embedding (conv kernel = stride = P, then LayerNorm), and builds the token
relation A = softmax(Q K^T / sqrt(D)) with its own query/key linears. The loss is the squared difference of the
two relations: its mean by default, or its sum (the authors' scale, which grows with batch and crop size).

Maps whose sides are not multiples of P are zero-padded at the bottom/right after the projection (the same as a
ceil-mode patch conv with zero padding), so every pixel belongs to a patch and the edge tokens see partial patches.
If the two stage maps differ in size (stages of different strides), the teacher map is resized bilinearly to the
student's first, so both sides have the same tokens.
"""
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmkd.config.typed import check_at_least, check_choice
from hmkd.losses.criterion import TermContext, TermOptions, register_term
from hmkd.losses.distill.common import stage_infos
from hmkd.models.output import SegOutput
from hmkd.resize import resize_to

# D: the widest stage-1 map of the model pairs here is 64 (MiT-B4, ResNet-18); 128 keeps every side's projection
# at least as wide as its input while the M x M relations, not D, dominate the cost.
DEFAULT_DIM = 128


@dataclass
class GLAOptions(TermOptions):
    stage: int = 0
    dim: int = DEFAULT_DIM
    patch_size: int = 8
    reduction: str = "mean"

    def __post_init__(self):
        super().__post_init__()
        check_at_least("stage", self.stage, 0)
        check_at_least("dim", self.dim, 1)
        check_at_least("patch_size", self.patch_size, 1)
        check_choice("reduction", self.reduction, ("mean", "sum"))


class PatchRelation(nn.Module):
    """One side of GLA: (B, C, H, W) map -> (B, M, M) softmax relation between its P x P patch tokens."""

    def __init__(self, in_channels: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.scale = dim ** -0.5
        self.proj = nn.Conv2d(in_channels, dim, 1) if in_channels != dim else nn.Identity()
        self.patch_embed = nn.Conv2d(dim, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)

    def forward(self, feat_bchw: Tensor) -> Tensor:
        x_bdhw = self.proj(feat_bchw)
        pad_h, pad_w = (-x_bdhw.shape[2]) % self.patch_size, (-x_bdhw.shape[3]) % self.patch_size
        if pad_h or pad_w:
            x_bdhw = F.pad(x_bdhw, (0, pad_w, 0, pad_h))
        tokens_bmd = self.norm(self.patch_embed(x_bdhw).flatten(2).transpose(1, 2))
        scores_bmm = torch.bmm(self.query(tokens_bmd), self.key(tokens_bmd).transpose(1, 2))
        return torch.softmax(scores_bmm.float() * self.scale, dim=-1)


@register_term("gla", GLAOptions)
class GLATerm(nn.Module):
    needs_teacher = True
    needs_teacher_logits = False

    def __init__(self, stage: int, student_channels: int, teacher_channels: int, dim: int = DEFAULT_DIM,
                 patch_size: int = 8, reduction: str = "mean"):
        super().__init__()
        self.stage = stage
        self.reduction = reduction
        self.student_relation = PatchRelation(student_channels, dim, patch_size)
        self.teacher_relation = PatchRelation(teacher_channels, dim, patch_size)

    @classmethod
    def build(cls, options: GLAOptions, context: TermContext, where: str) -> "GLATerm":
        student, teacher = stage_infos(context, options.stage, where + ".stage")
        return cls(options.stage, student.channels, teacher.channels, options.dim, options.patch_size,
                   options.reduction)

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None) -> Tensor:
        student_bchw = student_out.features[self.stage]
        teacher_bchw = resize_to(teacher_out.features[self.stage].detach(), student_bchw.shape[2:])
        relation_s = self.student_relation(student_bchw)
        relation_t = self.teacher_relation(teacher_bchw)
        return F.mse_loss(relation_s, relation_t, reduction=self.reduction)
