"""The experiment config: typed sections with their defaults and value checks.

Usage: cfg = load_config("configs/synthetic/deeplabv3_tiny.yaml", ["optim.lr=0.02"]); cfg.optim.lr

Sections: model, data (hmkd.data.DataConfig), loss, optim, schedule, train, eval, and for distillation teacher.
Each check raises ValueError naming the dotted key, so a typo stops the run before anything is built.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from hmkd.config.loader import load_yaml_config
from hmkd.config.typed import check_choice, check_positive, from_dict, to_dict
from hmkd.data import DataConfig


@dataclass
class ModelConfig:
    name: str
    pretrained: Optional[str] = None
    pretrained_sha256: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TeacherConfig:
    """A frozen teacher: its architecture and the checkpoint it is loaded from (required)."""

    name: str
    checkpoint: str
    checkpoint_sha256: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    amp: bool = False


@dataclass
class LossConfig:
    ignore_index: int = 255
    terms: Dict[str, Any] = field(default_factory=lambda: {"ce": {"weight": 1.0}})


@dataclass
class ParamGroupConfig:
    match: str
    lr_mult: float = 1.0
    weight_decay: Optional[float] = None


@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    param_groups: List[ParamGroupConfig] = field(default_factory=list)
    no_decay_norm_and_bias: bool = False

    def __post_init__(self):
        check_choice("optim.name", self.name, ("sgd", "adamw"))
        check_positive("optim.lr", self.lr)
        check_positive("optim.weight_decay", self.weight_decay, allow_zero=True)


@dataclass
class ScheduleConfig:
    max_iters: int = 80000
    power: float = 0.9
    min_lr_ratio: float = 0.0
    warmup_iters: int = 0
    warmup_ratio: float = 1e-6

    def __post_init__(self):
        check_positive("schedule.max_iters", self.max_iters)
        check_positive("schedule.warmup_iters", self.warmup_iters, allow_zero=True)
        if not 0 <= self.min_lr_ratio < 1:
            raise ValueError("schedule.min_lr_ratio must be in [0, 1), got %r" % self.min_lr_ratio)


@dataclass
class TrainConfig:
    batch_size: int = 8
    num_workers: int = 4
    grad_accum: int = 1
    seed: int = 0
    deterministic: bool = False
    amp: bool = False
    device: str = "auto"
    log_interval: int = 50
    eval_interval: int = 0
    checkpoint_interval: int = 1000
    keep_checkpoints: int = 3

    def __post_init__(self):
        for name in ("batch_size", "grad_accum", "log_interval", "checkpoint_interval", "keep_checkpoints"):
            check_positive("train." + name, getattr(self, name))
        for name in ("num_workers", "eval_interval", "seed"):
            check_positive("train." + name, getattr(self, name), allow_zero=True)
        check_choice("train.device", self.device, ("auto", "cpu", "cuda"))


@dataclass
class EvalConfig:
    split: str = "val"
    mode: str = "whole"
    crop_size: Optional[List[int]] = None
    stride: Optional[List[int]] = None
    flip: bool = False
    scales: List[float] = field(default_factory=lambda: [1.0])
    batch_windows: int = 4
    num_visualize: int = 4

    def __post_init__(self):
        check_choice("eval.split", self.split, ("train", "val", "test"))
        check_choice("eval.mode", self.mode, ("whole", "slide"))
        if self.mode == "slide" and not (self.crop_size and self.stride):
            raise ValueError("eval.mode=slide needs eval.crop_size and eval.stride ([h, w] each)")
        if not self.scales or min(self.scales) <= 0:
            raise ValueError("eval.scales must be a non-empty list of positive numbers, got %r" % (self.scales,))


@dataclass
class ExperimentConfig:
    model: ModelConfig
    data: DataConfig
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    teacher: Optional[TeacherConfig] = None

    def to_dict(self) -> Dict[str, Any]:
        out = to_dict(self)
        out["data"] = self.data.to_dict()
        return out


def config_from_dict(raw: Dict[str, Any]) -> ExperimentConfig:
    return from_dict(ExperimentConfig, raw)


def load_config(path: str, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Base files, then the file, then ``key.sub=value`` overrides, checked into an :class:`ExperimentConfig`."""
    try:
        return config_from_dict(load_yaml_config(path, overrides))
    except ValueError as exc:
        raise ValueError("%s: %s" % (path, exc))


__all__ = ["ExperimentConfig", "ModelConfig", "TeacherConfig", "LossConfig", "OptimConfig", "ParamGroupConfig",
           "ScheduleConfig", "TrainConfig", "EvalConfig", "load_config", "config_from_dict"]
