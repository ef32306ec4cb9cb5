"""Logit baselines under the HMKD protocol: pixel-wise KD (Hinton) and channel-wise distillation (Shu et al. 2021).

Usage (config): loss.terms.kd: {weight: 1.0, temperature: 1.0, ignore_void: false}
                loss.terms.cwd: {weight: 3.0, temperature: 4.0}

Student logits may be at 1/8 and the teacher's at 1/4: the teacher logits are resized bilinearly to the student
logits' size (CIRKD's convention), so the student is never upsampled and every student logit counts once. Both
terms read the teacher detached, compute in float32 and need the same number of classes on both sides.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from hmkd.config.typed import check_positive
from hmkd.losses.criterion import TermContext, TermOptions, register_term
from hmkd.models.output import SegOutput
from hmkd.resize import resize_to


@dataclass
class KDOptions(TermOptions):
    temperature: float = 1.0
    ignore_void: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_positive("temperature", self.temperature)


@dataclass
class CWDOptions(TermOptions):
    temperature: float = 4.0

    def __post_init__(self):
        super().__post_init__()
        check_positive("temperature", self.temperature)


def paired_logits(student_out: SegOutput, teacher_out: SegOutput, where: str) -> Tuple[Tensor, Tensor]:
    """(student, teacher) logits in float32 at the student's size; the teacher detached."""
    student_bkhw = student_out.logits.float()
    teacher_bkhw = teacher_out.logits.detach().float()
    if student_bkhw.shape[1] != teacher_bkhw.shape[1]:
        raise ValueError("%s: the student predicts %d classes and the teacher %d" % (
            where, student_bkhw.shape[1], teacher_bkhw.shape[1]))
    return student_bkhw, resize_to(teacher_bkhw, student_bkhw.shape[2:])


@register_term("kd", KDOptions)
class KDTerm(nn.Module):
    """KL(softmax(t/T) || softmax(s/T)) * T^2 per pixel, averaged over the student logits' pixels.

    T defaults to 1, CIRKD's KD baseline. With ``ignore_void`` the labels are brought to the logits' size by
    nearest-neighbour sampling and void pixels are left out of the average; by default every pixel counts, as in
    CIRKD (the teacher has an opinion on void pixels too).
    """

    needs_teacher = True

    def __init__(self, temperature: float = 1.0, ignore_void: bool = False, ignore_index: int = 255):
        super().__init__()
        self.temperature = temperature
        self.ignore_void = ignore_void
        self.ignore_index = ignore_index

    @classmethod
    def build(cls, options: KDOptions, context: TermContext, where: str) -> "KDTerm":
        return cls(options.temperature, options.ignore_void, context.ignore_index)

    def extra_repr(self) -> str:
        return "temperature=%g, ignore_void=%s" % (self.temperature, self.ignore_void)

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None) -> Tensor:
        student_bkhw, teacher_bkhw = paired_logits(student_out, teacher_out, "loss.terms.kd")
        temp = self.temperature
        kl_bhw = F.kl_div(F.log_softmax(student_bkhw / temp, dim=1), F.log_softmax(teacher_bkhw / temp, dim=1),
                          reduction="none", log_target=True).sum(dim=1)
        if not self.ignore_void:
            return kl_bhw.mean() * temp ** 2
        labels_bhw = labels
        if tuple(labels.shape[1:]) != tuple(kl_bhw.shape[1:]):
            labels_bhw = F.interpolate(labels[:, None].float(), size=kl_bhw.shape[1:], mode="nearest")[:, 0].long()
        valid_bhw = (labels_bhw != self.ignore_index).float()
        return (kl_bhw * valid_bhw).sum() / valid_bhw.sum().clamp(min=1.0) * temp ** 2


@register_term("cwd", CWDOptions)
class CWDTerm(nn.Module):
    """Per class channel, softmax over positions at temperature T; KL(teacher || student) summed, * T^2 / (B*K).

    The normalisation is the official implementation's (sum over positions and channels, divided by B*K).
    """

    needs_teacher = True

    def __init__(self, temperature: float = 4.0):
        super().__init__()
        self.temperature = temperature

    @classmethod
    def build(cls, options: CWDOptions, context: TermContext, where: str) -> "CWDTerm":
        return cls(options.temperature)

    def extra_repr(self) -> str:
        return "temperature=%g" % self.temperature

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None) -> Tensor:
        student_bkhw, teacher_bkhw = paired_logits(student_out, teacher_out, "loss.terms.cwd")
        temp = self.temperature
        batch, classes = student_bkhw.shape[:2]
        log_p_s = F.log_softmax(student_bkhw.flatten(2) / temp, dim=-1)
        log_p_t = F.log_softmax(teacher_bkhw.flatten(2) / temp, dim=-1)
        return F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True) * temp ** 2 / (batch * classes)
