"""GLA: patch-level attention (relation) alignment between student and teacher stage maps (HMKD alignment 1).

Usage (config): loss.terms.gla: {weight: 1.0, stage: 0, variant: project}      # or variant: authors
                loss.terms.gla: {variant: project, tap: output, dim: 128, patch_size: 8, edges: pad, reduction: mean}

Each side projects its map to a common width D (1x1 conv, only where its width differs from D), cuts it into
P x P patches with its own patch embedding (conv kernel = stride = P, then LayerNorm), and builds the token
relation A = softmax(Q K^T / sqrt(D)) with its own query/key linears. The loss is the squared difference of the
two relations.

``variant`` fills every item left unset (hmkd.losses.distill.common): ``authors`` is the HMKD authors' arithmetic,
``project`` this project's (docs/hmkd-authors.md has the table and the reasons):
- ``tap``: the transformer side's map, ``attn_second_last`` (the authors': stage 1's second-to-last attention
  entry, hmkd.models.output) or the stage ``output``; a CNN side always reads its stage output.
- ``dim``: D, a width or ``student`` (the student's stage width, the authors' rule); project 128.
- ``edges``: ``drop`` (the authors' patch conv without padding: rows and columns left over are dropped) or
  ``pad`` (zero-padded at the bottom/right, as a ceil-mode patch conv: every pixel belongs to a patch).
- ``reduction``: ``sum`` over the batch and all M x M entries (the authors': it grows with batch and crop size, by
  exactly B * M^2 against the mean) or ``mean``.
If the two maps differ in size (stages of different strides), the teacher map is resized bilinearly to the
student's first, so both sides have the same tokens. Token maps are always reshaped with the transpose (the
authors' reshape without it scrambles space and channels: deviation D1, kept everywhere).
"""
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmkd.config.typed import check_at_least, check_choice
from hmkd.losses.criterion import TermContext, TermOptions, register_term
from hmkd.losses.distill.common import describe_taps, fill_variant, output_taps, side_taps, stage_infos
from hmkd.models.output import SegOutput
from hmkd.resize import resize_to

# project D: the widest stage-1 map of the model pairs here is 64 (MiT-B4, ResNet-18); 128 keeps every side's
# projection at least as wide as its input while the M x M relations, not D, dominate the cost.
VARIANT_VALUES = {
    "project": {"tap": "output", "dim": 128, "edges": "pad", "reduction": "mean"},
    "authors": {"tap": "attn_second_last", "dim": "student", "edges": "drop", "reduction": "sum"},
}


@dataclass
class GLAOptions(TermOptions):
    stage: int = 0
    variant: str = "project"
    tap: Optional[str] = None
    dim: Optional[Union[int, str]] = None
    patch_size: int = 8
    edges: Optional[str] = None
    reduction: Optional[str] = None

    def __post_init__(self):
        super().__post_init__()
        fill_variant(self, VARIANT_VALUES)
        check_at_least("stage", self.stage, 0)
        check_choice("tap", self.tap, ("output", "attn_second_last", "attn_mean"))
        if isinstance(self.dim, str):
            check_choice("dim", self.dim, ("student",))
        else:
            check_at_least("dim", self.dim, 1)
        check_at_least("patch_size", self.patch_size, 1)
        check_choice("edges", self.edges, ("pad", "drop"))
        check_choice("reduction", self.reduction, ("mean", "sum"))


class PatchRelation(nn.Module):
    """One side of GLA: (B, C, H, W) map -> (B, M, M) softmax relation between its P x P patch tokens."""

    def __init__(self, in_channels: int, dim: int, patch_size: int, edges: str = "pad"):
        super().__init__()
        self.patch_size = patch_size
        self.edges = edges
        self.scale = dim ** -0.5
        self.proj = nn.Conv2d(in_channels, dim, 1) if in_channels != dim else nn.Identity()
        self.patch_embed = nn.Conv2d(dim, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)

    def forward(self, feat_bchw: Tensor) -> Tensor:
        x_bdhw = self.proj(feat_bchw)
        height, width = x_bdhw.shape[2:]
        if self.edges == "drop" and (height < self.patch_size or width < self.patch_size):
            raise ValueError("loss.terms.gla: the %dx%d stage map holds no whole %dx%d patch with edges: drop; use a "
                             "larger crop, a smaller patch_size or edges: pad" % (height, width, self.patch_size,
                                                                                  self.patch_size))
        pad_h, pad_w = (-height) % self.patch_size, (-width) % self.patch_size
        if self.edges == "pad" and (pad_h or pad_w):
            x_bdhw = F.pad(x_bdhw, (0, pad_w, 0, pad_h))
        tokens_bmd = self.norm(self.patch_embed(x_bdhw).flatten(2).transpose(1, 2))
        scores_bmm = torch.bmm(self.query(tokens_bmd), self.key(tokens_bmd).transpose(1, 2))
        return torch.softmax(scores_bmm.float() * self.scale, dim=-1)


@register_term("gla", GLAOptions)
class GLATerm(nn.Module):
    needs_teacher = True
    needs_teacher_logits = False

    def __init__(self, stage: int, student_channels: int, teacher_channels: int, dim: int = 128,
                 patch_size: int = 8, reduction: str = "mean", edges: str = "pad", taps=None, variant: str = "project"):
        super().__init__()
        self.stage = stage
        self.reduction = reduction
        self.variant = variant
        self.taps = taps or output_taps(stage)
        self.student_relation = PatchRelation(student_channels, dim, patch_size, edges)
        self.teacher_relation = PatchRelation(teacher_channels, dim, patch_size, edges)

    @classmethod
    def build(cls, options: GLAOptions, context: TermContext, where: str) -> "GLATerm":
        student, teacher = stage_infos(context, options.stage, where + ".stage")
        dim = student.channels if options.dim == "student" else options.dim
        taps = side_taps(context, options.stage, options.tap, where + ".tap")
        return cls(options.stage, student.channels, teacher.channels, dim, options.patch_size, options.reduction,
                   options.edges, taps, options.variant)

    def extra_repr(self) -> str:
        relation = self.student_relation
        return "variant=%s, stage=%d, taps=(%s), dim=%d, patch_size=%d, edges=%s, reduction=%s" % (
            self.variant, self.stage, describe_taps(self.taps), relation.patch_embed.out_channels,
            relation.patch_size, relation.edges, self.reduction)

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None) -> Tensor:
        student_bchw = student_out.feature(self.taps["student"])
        teacher_bchw = resize_to(teacher_out.feature(self.taps["teacher"]).detach(), student_bchw.shape[2:])
        relation_s = self.student_relation(student_bchw)
        relation_t = self.teacher_relation(teacher_bchw)
        return F.mse_loss(relation_s, relation_t, reduction=self.reduction)
