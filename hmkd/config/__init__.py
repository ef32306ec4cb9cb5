"""Experiment configs: YAML with ``base:`` inheritance and dotted overrides, checked into typed sections."""
from hmkd.config.loader import deep_merge, load_yaml_config, parse_override
from hmkd.config.schema import (EvalConfig, ExperimentConfig, LossConfig, ModelConfig, OptimConfig, ScheduleConfig,
                                TeacherConfig, TrainConfig, config_from_dict, load_config)

__all__ = ["EvalConfig", "ExperimentConfig", "LossConfig", "ModelConfig", "OptimConfig", "ScheduleConfig",
           "TeacherConfig", "TrainConfig", "config_from_dict", "deep_merge", "load_config", "load_yaml_config",
           "parse_override"]
