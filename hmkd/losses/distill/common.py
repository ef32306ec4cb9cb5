"""What the distillation terms share: option checking that names the config path, stage lookup, model families.

Usage:
    opts = parse_options(options, where, {"stage": (2, stage_index), "bn": (False, boolean)})
    info_s, info_t = stage_infos(context, opts["stage"], where + ".stage")
"""
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from hmkd.losses.criterion import TermContext
from hmkd.models.output import FeatureInfo

Check = Callable[[Any, str], Any]

# Which models are CNNs (the side HFA's global context goes to); a model may also declare ``family`` itself.
_FAMILIES = {"DeepLabV3": "cnn", "SegFormer": "transformer"}


def parse_options(options: Dict[str, Any], where: str, spec: Dict[str, Tuple[Any, Check]]) -> Dict[str, Any]:
    """Defaults filled in and every value checked, so a typo fails at build time with its full config path."""
    unknown = sorted(set(options) - set(spec))
    if unknown:
        raise ValueError("unknown config key %s.%s; valid keys: weight, %s"
                         % (where, unknown[0], ", ".join(sorted(spec))))
    return {key: check(options.get(key, default), "%s.%s" % (where, key)) for key, (default, check) in spec.items()}


def integer(minimum: int) -> Check:
    def check(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError("%s must be an integer >= %d, got %r" % (path, minimum, value))
        return value
    return check


def positive_number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError("%s must be a number > 0, got %r" % (path, value))
    return float(value)


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError("%s must be true or false, got %r" % (path, value))
    return value


def choice(*allowed: str) -> Check:
    def check(value: Any, path: str) -> str:
        if value not in allowed:
            raise ValueError("%s must be one of %s, got %r" % (path, ", ".join(allowed), value))
        return value
    return check


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


def model_family(model: nn.Module) -> Optional[str]:
    """"cnn", "transformer" or None when unknown; a ``family`` attribute on the model wins over the class name."""
    family = getattr(model, "family", None)
    if family in ("cnn", "transformer"):
        return family
    return _FAMILIES.get(type(model).__name__)


def resize_to(x_bchw: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear (align_corners=False, as the decoders here) to ``size``; a no-op when the size already matches."""
    if tuple(x_bchw.shape[2:]) == tuple(size):
        return x_bchw
    return F.interpolate(x_bchw, size=tuple(size), mode="bilinear", align_corners=False)
