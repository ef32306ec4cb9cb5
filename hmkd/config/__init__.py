"""Experiment configs: YAML with ``base:`` inheritance and dotted overrides, checked into typed sections.

Usage: from hmkd.config import load_config; cfg = load_config("configs/synthetic/deeplabv3_student.yaml")

The schema is imported on first use (PEP 562 ``__getattr__``): it imports hmkd.data, hmkd.models and hmkd.losses,
whose option classes are checked by hmkd.config.typed, so importing it eagerly here would make those packages and
this one import each other.
"""
from hmkd.config.loader import deep_merge, load_yaml_config, parse_override

_SCHEMA_NAMES = ("EvalConfig", "ExperimentConfig", "LossConfig", "ModelConfig", "OptimConfig", "ParamGroupConfig",
                 "ScheduleConfig", "TeacherConfig", "TrainConfig", "config_from_dict", "load_config")

__all__ = list(_SCHEMA_NAMES) + ["deep_merge", "load_yaml_config", "parse_override"]


def __getattr__(name: str):
    if name in _SCHEMA_NAMES:
        from hmkd.config import schema

        return getattr(schema, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
