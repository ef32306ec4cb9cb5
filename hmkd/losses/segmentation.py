"""Supervised terms: cross-entropy on the main logits and on the auxiliary head's, ignoring the void label.

Logits come at a reduced resolution (1/4 or 1/8) and are upsampled bilinearly to the label size first, as in
CIRKD, so every labelled pixel counts once.
"""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from hmkd.losses.criterion import TermContext, TermOptions, register_term
from hmkd.models.output import SegOutput


def upsampled_ce(logits: Tensor, labels: Tensor, ignore_index: int) -> Tensor:
    if logits.shape[2:] != labels.shape[1:]:
        logits = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)


@register_term("ce")
class CrossEntropyTerm(nn.Module):
    def __init__(self, ignore_index: int):
        super().__init__()
        self.ignore_index = ignore_index

    @classmethod
    def build(cls, options: TermOptions, context: TermContext, where: str) -> "CrossEntropyTerm":
        return cls(context.ignore_index)

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None) -> Tensor:
        return upsampled_ce(student_out.logits, labels, self.ignore_index)


@register_term("aux_ce")
class AuxCrossEntropyTerm(CrossEntropyTerm):
    """Needs a model built with ``aux_head: true``; checked at build time, not at the first step."""

    @classmethod
    def build(cls, options: TermOptions, context: TermContext, where: str) -> "AuxCrossEntropyTerm":
        if getattr(context.student, "aux_head", None) is None:
            raise ValueError("%s needs a model with an auxiliary head; set model.options.aux_head=true or remove "
                             "the term" % where)
        return cls(context.ignore_index)

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None) -> Tensor:
        return upsampled_ce(student_out.aux_logits, labels, self.ignore_index)
