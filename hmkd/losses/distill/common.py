"""What the distillation terms share: stage lookup against the models' declared features, the variant tables, and
which map each side reads.

Usage:
    info_s, info_t = stage_infos(context, options.stage, where + ".stage")
    fill_variant(options, {"project": {...}, "authors": {...}})   # in an options class's __post_init__
    taps = side_taps(context, options.stage, options.tap, where + ".tap")   # {"student": Tap, "teacher": Tap}

Term options are dataclasses (hmkd.losses.criterion.TermOptions and its subclasses), checked by
hmkd.config.typed; a model's family comes from the model registry (hmkd.models.model_family).

A term with a ``variant`` (gla, hfa) names its per-item options ``None`` by default: each takes the value of the
chosen variant's table, ``project`` (this project's arithmetic) or ``authors`` (the HMKD authors' code, method spec
"The authors' arithmetic, exactly"); an item given explicitly overrides its variant, for ablations.
"""
import logging
from typing import Any, Dict, Mapping, Sequence, Tuple

from torch import nn

from hmkd.config.typed import check_choice
from hmkd.losses.criterion import TermContext
from hmkd.models.output import FeatureInfo, Tap
from hmkd.models.registry import model_family

log = logging.getLogger(__name__)
VARIANTS = ("project", "authors")
SIDES = ("student", "teacher")


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


def fill_variant(options: Any, table: Mapping[str, Mapping[str, Any]]) -> None:
    """Every item of ``table[options.variant]`` that ``options`` leaves at None takes the variant's value."""
    check_choice("variant", options.variant, VARIANTS)
    for key, value in table[options.variant].items():
        if getattr(options, key) is None:
            setattr(options, key, value)


def side_taps(context: TermContext, stage: int, kind: str, path: str) -> Dict[str, Tap]:
    """{"student": Tap, "teacher": Tap} at ``stage``: ``kind`` on each transformer side (by model family), the
    stage output on a CNN side, which has no attention entries. A ``kind`` that no side can give is ignored, with
    a warning."""
    taps = output_taps(stage)
    if kind == "output":
        return taps
    models = {"student": context.student, "teacher": context.teacher}
    transformers = [side for side in SIDES if model_family(models[side]) == "transformer"]
    if not transformers:
        log.warning("%s=%s is ignored: neither model is a transformer, so both sides read the stage output",
                    path, kind)
    taps.update({side: Tap(stage, kind) for side in transformers})
    return taps


def output_taps(stage: int) -> Dict[str, Tap]:
    """Both sides read the stage output: what a term built without a context reads."""
    return {side: Tap(stage, "output") for side in SIDES}


def describe_taps(taps: Dict[str, Tap]) -> str:
    return ", ".join("%s %s" % (side, taps[side].kind) for side in SIDES)
