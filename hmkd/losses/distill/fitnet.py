"""FitNet-style feature baseline: MSE between a learned 1x1 projection of a student stage map and the teacher's.

Usage (config): loss.terms.fitnet: {weight: 1.0, stage: 2, bn: false}

The projection maps the student's width to the teacher's (CIRKD's regressor: conv1x1 without bias; ``bn: true``
adds a BatchNorm after it). The teacher map is resized bilinearly to the student map's size, so a stride-16
transformer stage can supervise a stride-8 CNN stage and vice versa.
"""
from dataclasses import dataclass
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from hmkd.config.typed import check_at_least
from hmkd.losses.criterion import TermContext, TermOptions, register_term
from hmkd.losses.distill.common import stage_infos
from hmkd.models.output import SegOutput
from hmkd.resize import resize_to


@dataclass
class FitNetOptions(TermOptions):
    stage: int = 2
    bn: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_at_least("stage", self.stage, 0)


@register_term("fitnet", FitNetOptions)
class FitNetTerm(nn.Module):
    needs_teacher = True
    needs_teacher_logits = False

    def __init__(self, stage: int, student_channels: int, teacher_channels: int, bn: bool = False):
        super().__init__()
        self.stage = stage
        layers = [nn.Conv2d(student_channels, teacher_channels, 1, bias=False)]
        if bn:
            layers.append(nn.BatchNorm2d(teacher_channels))
        self.proj = nn.Sequential(*layers)

    @classmethod
    def build(cls, options: FitNetOptions, context: TermContext, where: str) -> "FitNetTerm":
        student, teacher = stage_infos(context, options.stage, where + ".stage")
        return cls(options.stage, student.channels, teacher.channels, options.bn)

    def forward(self, student_out: SegOutput, labels: Tensor, teacher_out: Optional[SegOutput] = None) -> Tensor:
        student_bchw = self.proj(student_out.features[self.stage])
        teacher_bchw = resize_to(teacher_out.features[self.stage].detach(), student_bchw.shape[2:])
        return F.mse_loss(student_bchw, teacher_bchw)
