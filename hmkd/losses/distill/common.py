"""What the distillation terms share: stage lookup against the models' declared features.

Usage:
    info_s, info_t = stage_infos(context, options.stage, where + ".stage")

Term options are dataclasses (hmkd.losses.criterion.TermOptions and its subclasses), checked by
hmkd.config.typed; a model's family comes from the model registry (hmkd.models.model_family).
"""
from typing import Sequence, Tuple

from torch import nn

from hmkd.losses.criterion import TermContext
from hmkd.models.output import FeatureInfo


def feature_info(model: nn.Module, role: str, where: str) -> Sequence[FeatureInfo]:
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError("%s: the %s (%s) declares no feature_info; feature terms size themselves from it"
                         % (where, role, type(model).__name__))
    return info


def stage_infos(context: TermContext, stage: int, path: str) -> Tuple[FeatureInfo, FeatureInfo]:
    """(student, teacher) FeatureInfo of ``stage``, checked against both models' declared stages."""
    where = path.rsplit(".", 1)[0]
    student = feature_info(context.student, "student", where)
    teacher = feature_info(context.teacher, "teacher", where)
    count = min(len(student), len(teacher))
    if stage >= count:
        raise ValueError("%s must be a stage index below %d (the models declare %d and %d stages), got %d"
                         % (path, count, len(student), len(teacher), stage))
    return student[stage], teacher[stage]
