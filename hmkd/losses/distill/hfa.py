"""HFA: heterogeneous feature alignment by learned warping of the teacher map (HMKD alignment 2).

Usage (config): loss.terms.hfa: {weight: 1.0, stage: 2, variant: project, context_on: auto, context: chunked,
                                 chunk_size: 1024}                  # or variant: authors

Steps, with S the student's stage map (B, Cs, h, w) and T the teacher's:
1. T is resized bilinearly to (h, w) and projected to Cs by a 1x1 conv.
2. The CNN side gets the parameter-free global context (:mod:`global_context`), computed in query chunks
   (``context: chunked``), by torch 2's fused attention (``sdpa``) or as written (``direct``, the reference).
   ``context_on: auto`` picks the side(s) whose model is a CNN (the family the model registry gives it,
   ``model.family``): the student for SegFormer -> DeepLabV3, the teacher for the reverse, both for CNN pairs,
   neither for transformer pairs.
3. Each side is refined by its own :class:`RRB`.
4. :class:`OffsetHead` predicts a 2-channel offset (x then y) from G = S_refined * T_refined; its last conv
   starts at zero, so training starts from the identity warp.
5. The refined teacher is warped by :func:`warp` (grid = identity + offset / (w, h)).
6. The loss is the MSE between the warped teacher and the refined student.

``variant`` fills every item left unset (hmkd.losses.distill.common; docs/hmkd-authors.md has the table):
- ``tap``: the transformer side's map, ``attn_mean`` (the authors': the mean of stage 3's attention entries,
  hmkd.models.output) or the stage ``output``;
- ``resize_align_corners``: step 1's resize, true (the authors') or false (as the decoders resize);
- ``teacher_context_at``: on a CNN teacher, step 2 acts on its ``input`` map, before the resize and projection
  (the authors'), or on the ``projected`` one;
- ``align_corners``: step 5's grid_sample, false (the authors', its default: a zero offset is not the identity)
  or true (the identity at zero offset);
- ``offset_bias`` / ``branch_bias``: a bias in the offset conv of step 4 / in the two branch convs (the authors:
  none / one; the project: one / none, since a BatchNorm follows each branch conv);
- ``sync_bn``: whether this term's BatchNorms are synchronised across processes like the student's (the authors'
  alignment modules keep per-GPU statistics).
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmkd.config.typed import check_at_least, check_choice
from hmkd.losses.criterion import TermContext, TermOptions, register_term
from hmkd.losses.distill.common import describe_taps, fill_variant, output_taps, side_taps, stage_infos
from hmkd.losses.distill.global_context import CONTEXT_IMPLEMENTATIONS, context_function
from hmkd.models.output import SegOutput
from hmkd.models.registry import model_family
from hmkd.resize import resize_to

CONTEXT_SIDES = ("auto", "student", "teacher", "both", "none")
VARIANT_VALUES = {
    "project": {"tap": "output", "resize_align_corners": False, "teacher_context_at": "projected",
                "align_corners": True, "offset_bias": True, "branch_bias": False, "sync_bn": True},
    "authors": {"tap": "attn_mean", "resize_align_corners": True, "teacher_context_at": "input",
                "align_corners": False, "offset_bias": False, "branch_bias": True, "sync_bn": False},
}


@dataclass
class HFAOptions(TermOptions):
    stage: int = 2
    variant: str = "project"
    tap: Optional[str] = None
    context_on: str = "auto"
    context: str = "chunked"
    chunk_size: int = 1024
    resize_align_corners: Optional[bool] = None
    teacher_context_at: Optional[str] = None
    align_corners: Optional[bool] = None
    offset_bias: Optional[bool] = None
    branch_bias: Optional[bool] = None
    sync_bn: Optional[bool] = None

    def __post_init__(self):
        super().__post_init__()
        fill_variant(self, VARIANT_VALUES)
        check_at_least("stage", self.stage, 0)
        check_choice("tap", self.tap, ("output", "attn_mean", "attn_second_last"))
        check_choice("context_on", self.context_on, CONTEXT_SIDES)
        check_choice("context", self.context, CONTEXT_IMPLEMENTATIONS)
        check_at_least("chunk_size", self.chunk_size, 1)
        check_choice("teacher_context_at", self.teacher_context_at, ("projected", "input"))


def warp(feat_bchw: Tensor, offset_b2hw: Tensor, align_corners: bool = True) -> Tensor:
    """Bilinear sampling of ``feat`` at the identity grid plus ``offset`` / (w, h), zeros outside the map.

    The identity grid is linspace(-1, 1) on both axes and the offset is divided by the map size, as in the authors'
    code (SFNet's flow warp), so one offset unit moves about half a pixel. With align_corners=True a zero offset
    samples the pixel centres: the identity up to float rounding of the normalised grid. With align_corners=False
    (the authors' grid_sample default) the same grid is read against the pixel edges, so a zero offset shrinks the
    map slightly towards its centre and blends the border with the zero padding.
    """
    _, _, height, width = feat_bchw.shape
    # The grid stays in float32 or wider: in half precision its rounding alone is a visible fraction of a pixel.
    feat_bchw = feat_bchw.to(torch.promote_types(feat_bchw.dtype, torch.float32))
    kwargs = dict(dtype=feat_bchw.dtype, device=feat_bchw.device)
    grid_y, grid_x = torch.meshgrid(torch.linspace(-1.0, 1.0, height, **kwargs),
                                    torch.linspace(-1.0, 1.0, width, **kwargs), indexing="ij")
    identity_1hw2 = torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)
    scale = torch.tensor([width, height], **kwargs)
    grid_bhw2 = identity_1hw2 + offset_b2hw.permute(0, 2, 3, 1).to(feat_bchw.dtype) / scale
    return F.grid_sample(feat_bchw, grid_bhw2, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


class RRB(nn.Module):
    """Residual refinement block: u = conv1x1(x); out = BN(u + conv3x3(BN(conv3x3(u))) with a C/4 bottleneck.

    The residual branch reads u (DFN's RRB, and the authors' code). No ReLU inside, as in the method description.
    Convs have no bias: each is followed by a BatchNorm, directly or after the sum.
    """

    def __init__(self, channels: int):
        super().__init__()
        mid = max(1, channels // 4)
        self.unify = nn.Conv2d(channels, channels, 1, bias=False)
        self.residual = nn.Sequential(nn.Conv2d(channels, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid),
                                      nn.Conv2d(mid, channels, 3, padding=1, bias=False))
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x_bchw: Tensor) -> Tensor:
        u_bchw = self.unify(x_bchw)
        return self.norm(u_bchw + self.residual(u_bchw))


def _conv_bn_relu(channels: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=bias), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True))


class OffsetHead(nn.Module):
    """G (B, C, h, w) -> offset (B, 2, h, w): two conv3x3-BN-ReLU branches, concat, conv1x1-BN, conv3x3 -> 2.

    The last conv (weight and bias, if any) starts at zero so the first steps align nothing by warping; its input
    is not zero, so it still receives gradient and the warp is learned from there.
    """

    def __init__(self, channels: int, offset_bias: bool = True, branch_bias: bool = False):
        super().__init__()
        self.branch_a = _conv_bn_relu(channels, branch_bias)
        self.branch_b = _conv_bn_relu(channels, branch_bias)
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.offset = nn.Conv2d(channels, 2, 3, padding=1, bias=offset_bias)
        nn.init.zeros_(self.offset.weight)
        if offset_bias:
            nn.init.zeros_(self.offset.bias)

    def forward(self, g_bchw: Tensor) -> Tensor:
        return self.offset(self.fuse(torch.cat([self.branch_a(g_bchw), self.branch_b(g_bchw)], dim=1)))


def resolve_context_sides(context_on: str, student: nn.Module, teacher: nn.Module, path: str) -> Sequence[str]:
    """The sides ("student", "teacher") that get global context; ``auto`` = the CNN side(s), by model family."""
    if context_on == "both":
        return ("student", "teacher")
    if context_on == "none":
        return ()
    if context_on != "auto":
        return (context_on,)
    families = {"student": model_family(student), "teacher": model_family(teacher)}
    unknown = [side for side, family in families.items() if family is None]
    if unknown:
        raise ValueError("%s=auto cannot tell whether the %s (%s) is a CNN; set it to student, teacher, both or none"
                         % (path, unknown[0], type(student if unknown[0] == "student" else teacher).__name__))
    return tuple(side for side in ("student", "teacher") if families[side] == "cnn")


@register_term("hfa", HFAOptions)
class HFATerm(nn.Module):
    needs_teacher = True
    needs_teacher_logits = False

    def __init__(self, stage: int, student_channels: int, teacher_channels: int, context_sides: Sequence[str] = (),
                 chunk_size: int = 1024, align_corners: bool = True, context: str = "chunked", taps=None,
                 resize_align_corners: bool = False, teacher_context_at: str = "projected", offset_bias: bool = True,
                 branch_bias: bool = False, sync_bn: bool = True, variant: str = "project"):
        super().__init__()
        self.stage = stage
        self.variant = variant
        self.taps = taps or output_taps(stage)
        self.context_sides = tuple(context_sides)
        self.chunk_size = chunk_size
        self.context = context
        self.global_context = context_function(context, chunk_size)
        self.align_corners = align_corners
        self.resize_align_corners = resize_align_corners
        self.teacher_context_at = teacher_context_at
        self.sync_bn = sync_bn
        self.teacher_proj = nn.Conv2d(teacher_channels, student_channels, 1)
        self.student_rrb = RRB(student_channels)
        self.teacher_rrb = RRB(student_channels)
        self.offset_head = OffsetHead(student_channels, offset_bias, branch_bias)

    @classmethod
    def build(cls, options: HFAOptions, context: TermContext, where: str) -> "HFATerm":
        student, teacher = stage_infos(context, options.stage, where + ".stage")
        sides = resolve_context_sides(options.context_on, context.student, context.teacher, where + ".context_on")
        taps = side_taps(context, options.stage, options.tap, where + ".tap")
        return cls(options.stage, student.channels, teacher.channels, sides, options.chunk_size,
                   options.align_corners, options.context, taps, options.resize_align_corners,
                   options.teacher_context_at, options.offset_bias, options.branch_bias, options.sync_bn,
                   options.variant)

    def extra_repr(self) -> str:
        return ("variant=%s, stage=%d, taps=(%s), context_on=%s, context=%s, chunk_size=%d, teacher_context_at=%s, "
                "resize_align_corners=%s, align_corners=%s, offset_bias=%s, branch_bias=%s, sync_bn=%s" % (
                    self.variant, self.stage, describe_taps(self.taps), "+".join(self.context_sides) or "none",
                    self.context, self.chunk_size, self.teacher_context_at, self.resize_align_corners,
                    self.align_corners, self.offset_head.offset.bias is not None,
                    self.offset_head.branch_a[0].bias is not None, self.sync_bn))

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None) -> Tensor:
        student_bchw = student_out.feature(self.taps["student"])
        teacher_bchw = teacher_out.feature(self.taps["teacher"]).detach()
        teacher_context = "teacher" in self.context_sides
        if teacher_context and self.teacher_context_at == "input":
            teacher_bchw = self.global_context(teacher_bchw)
        teacher_bchw = self.teacher_proj(resize_to(teacher_bchw, student_bchw.shape[2:], self.resize_align_corners))
        if teacher_context and self.teacher_context_at == "projected":
            teacher_bchw = self.global_context(teacher_bchw)
        if "student" in self.context_sides:
            student_bchw = self.global_context(student_bchw)
        student_ref = self.student_rrb(student_bchw)
        teacher_ref = self.teacher_rrb(teacher_bchw)
        offset_b2hw = self.offset_head(student_ref * teacher_ref)
        warped = warp(teacher_ref, offset_b2hw, self.align_corners)
        return F.mse_loss(warped, student_ref)
