"""The experiment config: typed sections with their defaults and value checks.

Usage: cfg = load_config("configs/synthetic/deeplabv3_student.yaml", ["optim.lr=0.02"]); cfg.optim.lr

Sections: model, data (hmkd.data.DataConfig), loss, optim, schedule, train, eval, and for distillation teacher.
Each check raises ValueError naming the dotted key, so a typo stops the run before anything is built: model and
teacher options are checked against the model's options dataclass (hmkd.models registry), loss terms against their
term's (hmkd.losses registry); both stay plain mappings of the keys given, which builders take as keyword options.

``model.normalize`` and ``teacher.normalize`` name the input normalisation each network's weights expect (hmkd.data
NORMALIZATIONS, or ``auto``: from the weight family of ``model.pretrained`` / ``teacher.checkpoint``, else
``data.normalize``); ``resolve_normalization`` turns ``auto`` into a name before anything is built.
"""
import dataclasses
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from hmkd.config.loader import load_yaml_config
from hmkd.config.typed import check_at_least, check_choice, check_positive, from_dict, given_options, parsed_by, to_dict
from hmkd.data import IGNORE_INDEX, NORMALIZATIONS, DataConfig
from hmkd.engine.precision import amp_mode
from hmkd.losses.criterion import check_terms
from hmkd.models import model_entry
from hmkd.models.weights import input_normalization

NORMALIZE_CHOICES = ("auto",) + tuple(sorted(NORMALIZATIONS))

# Parameter-group patterns used to be matched against the trainer's names ("student.decode_head...").
_OLD_STUDENT_PREFIX = re.compile(r"^(\^?)student\\\.")


def _check_model_name(name: str) -> None:
    try:
        model_entry(name)
    except ValueError as exc:
        raise ValueError("name: %s" % exc)


def _model_options(options: Any, section: Dict[str, Any], where: str) -> Dict[str, Any]:
    """``<section>.options`` checked as the options dataclass of the model the section names."""
    try:
        entry = model_entry(section["name"])
    except ValueError:
        return options  # the section's own check reports the unknown name
    return given_options(entry.options, options, where)


def _term_options(terms: Any, section: Dict[str, Any], where: str) -> Dict[str, Dict[str, Any]]:
    """``loss.terms`` checked term by term (unknown terms, unknown keys, bad values), keeping the keys given."""
    checked = check_terms(terms, where)
    return {name: {key: getattr(checked[name], key) for key in terms[name] or {}} for name in terms}


@dataclass
class ModelConfig:
    name: str
    pretrained: Optional[str] = None
    pretrained_sha256: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict, metadata=parsed_by(_model_options))
    normalize: str = "auto"  # the input its weights expect; the data pipeline normalises for this model

    def __post_init__(self):
        _check_model_name(self.name)
        check_choice("normalize", self.normalize, NORMALIZE_CHOICES)


@dataclass
class TeacherConfig:
    """A frozen teacher: its architecture and the checkpoint it is loaded from (required)."""

    name: str
    checkpoint: str
    checkpoint_sha256: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict, metadata=parsed_by(_model_options))
    amp: Any = False  # false, fp16 or bf16: checked by amp_mode
    normalize: str = "auto"  # the input its weights expect; re-normalised on the device from the student's batch

    def __post_init__(self):
        _check_model_name(self.name)
        self.amp = amp_mode(self.amp, "amp") or False
        check_choice("normalize", self.normalize, NORMALIZE_CHOICES)


@dataclass
class LossConfig:
    """The void label is not configurable: it is the dataset's (``dataset.ignore_index``, hmkd.data.IGNORE_INDEX)."""

    terms: Dict[str, Any] = field(default_factory=lambda: {"ce": {"weight": 1.0}}, metadata=parsed_by(_term_options))
    retired_keys = {"ignore_index": (IGNORE_INDEX, "every dataset writes %d for void pixels and the loss terms read "
                                                   "the dataset's ignore_index" % IGNORE_INDEX)}


@dataclass
class ParamGroupConfig:
    """``match``: a regular expression searched in the student's own parameter names (``^decode_head\\.``)."""

    match: str
    lr_mult: float = 1.0
    weight_decay: Optional[float] = None

    def __post_init__(self):
        old = _OLD_STUDENT_PREFIX.match(self.match)
        if old:
            new = old.group(1) + self.match[old.end():]
            warnings.warn("optim.param_groups match %r: patterns now match the student's own parameter names; "
                          "write %r" % (self.match, new))
            self.match = new
        try:
            re.compile(self.match)
        except re.error as exc:
            raise ValueError("match %r is not a regular expression: %s" % (self.match, exc))
        check_at_least("lr_mult", self.lr_mult, 0.0)
        if self.weight_decay is not None:
            check_at_least("weight_decay", self.weight_decay, 0.0)


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
        check_choice("name", self.name, ("sgd", "adamw"))
        check_positive("lr", self.lr)
        check_at_least("weight_decay", self.weight_decay, 0.0)


@dataclass
class ScheduleConfig:
    max_iters: int = 80000
    power: float = 0.9
    min_lr_ratio: float = 0.0
    warmup_iters: int = 0
    warmup_ratio: float = 1e-6

    def __post_init__(self):
        check_positive("max_iters", self.max_iters)
        check_at_least("warmup_iters", self.warmup_iters, 0)
        if not 0 <= self.min_lr_ratio < 1:
            raise ValueError("min_lr_ratio must be in [0, 1), got %r" % self.min_lr_ratio)


@dataclass
class TrainConfig:
    """Speed switches: ``amp`` (false, fp16 or bf16; true means fp16), ``compile`` (torch.compile of the student,
    torch >= 2.2), ``channels_last`` (student, criterion and teacher weights and the images in NHWC). Each equals
    the float32 eager path within its tolerance (tests/engine/test_speed_paths.py); on the legacy stack the torch 2
    ones fall back with a warning. The teacher's precision is ``teacher.amp``.

    ``cka_images``: a distillation run measures teacher-student linear CKA at the stages its feature terms align on
    the first that many validation images, before the first step and after the last (cka.json; 0: not measured).

    ``grad_share_interval``: at step 1 and then every that many steps, each loss term's gradient norm on the
    student's parameters and its share of all terms' go to metrics.jsonl (``grad_share/<term>``); a term below 1%
    is named in train.log (hmkd.engine.grad_share; 0: never). ``sync_bn``: SyncBatchNorm in the student when
    several CUDA processes train (each term's own ``sync_bn`` decides for its alignment modules)."""

    batch_size: int = 8
    num_workers: int = 4
    grad_accum: int = 1
    seed: int = 0
    deterministic: bool = False
    amp: Any = False  # false, fp16 or bf16: checked by amp_mode
    compile: bool = False
    channels_last: bool = False
    device: str = "auto"
    log_interval: int = 50
    eval_interval: int = 0
    checkpoint_interval: int = 1000
    keep_checkpoints: int = 3
    cka_images: int = 8
    grad_share_interval: int = 1000
    sync_bn: bool = True

    def __post_init__(self):
        for name in ("batch_size", "grad_accum", "log_interval", "checkpoint_interval", "keep_checkpoints"):
            check_positive(name, getattr(self, name))
        for name in ("num_workers", "eval_interval", "seed", "cka_images", "grad_share_interval"):
            check_at_least(name, getattr(self, name), 0)
        check_choice("device", self.device, ("auto", "cpu", "cuda"))
        self.amp = amp_mode(self.amp, "amp") or False


@dataclass
class EvalConfig:
    """``server_files``: also write every prediction of the split as a Cityscapes labelIds PNG named for the
    benchmark server, and their zip, into the run directory (``hmkd eval --server-files``; Cityscapes only)."""

    split: str = "val"
    mode: str = "whole"
    crop_size: Optional[List[int]] = None
    stride: Optional[List[int]] = None
    flip: bool = False
    scales: List[float] = field(default_factory=lambda: [1.0])
    batch_windows: int = 4
    num_visualize: int = 4
    server_files: bool = False

    def __post_init__(self):
        check_choice("split", self.split, ("train", "val", "test"))
        check_choice("mode", self.mode, ("whole", "slide"))
        if self.mode == "slide" and not (self.crop_size and self.stride):
            raise ValueError("mode=slide also needs crop_size and stride ([h, w] each)")
        if not self.scales or min(self.scales) <= 0:
            raise ValueError("scales must be a non-empty list of positive numbers, got %r" % (self.scales,))


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

    def __post_init__(self):
        if self.eval.server_files and self.data.name != "cityscapes":
            raise ValueError("eval.server_files writes Cityscapes benchmark-server files, but data.name is %r; set "
                             "eval.server_files=false or evaluate a Cityscapes split" % self.data.name)
        if self.data.unlabeled:
            self._check_unlabeled()

    def _check_unlabeled(self) -> None:
        """Unlabelled images need a place in each batch and terms that read them: a term that masks pixels by
        their labels (kd with ignore_void) would see none of them, since their labels are all void."""
        if self.data.unlabeled_batch(self.train.batch_size) < 1:
            raise ValueError("data.unlabeled_ratio=%g x train.batch_size=%d rounds to 0 unlabelled images per batch; "
                             "raise data.unlabeled_ratio to at least %g (one per batch)"
                             % (self.data.unlabeled_ratio, self.train.batch_size, 1.0 / self.train.batch_size))
        if (self.loss.terms.get("kd") or {}).get("ignore_void"):
            raise ValueError("loss.terms.kd.ignore_void=true leaves out every data.unlabeled image (their labels are "
                             "all void); set loss.terms.kd.ignore_void=false or remove data.unlabeled")

    def to_dict(self) -> Dict[str, Any]:
        out = to_dict(self)
        out["data"] = self.data.to_dict()
        return out


def resolve_normalization(cfg: ExperimentConfig, checkpoint: Optional[str] = None) -> ExperimentConfig:
    """A copy of ``cfg`` whose ``model.normalize`` and ``teacher.normalize`` are names, not ``auto``, and whose
    ``data.normalize`` is the model's (the data pipeline normalises for it). ``checkpoint``: the file the model is
    about to be loaded from (evaluation), asked before ``model.pretrained``. Reads key names only, never tensors."""
    model_norm, _ = input_normalization("model.normalize", cfg.model.normalize, [checkpoint, cfg.model.pretrained],
                                        cfg.data.normalize)
    changes: Dict[str, Any] = {"model": dataclasses.replace(cfg.model, normalize=model_norm),
                               "data": dataclasses.replace(cfg.data, normalize=model_norm)}
    if cfg.teacher is not None:
        teacher_norm, _ = input_normalization("teacher.normalize", cfg.teacher.normalize, [cfg.teacher.checkpoint],
                                              cfg.data.normalize)
        changes["teacher"] = dataclasses.replace(cfg.teacher, normalize=teacher_norm)
    return dataclasses.replace(cfg, **changes)


def config_from_dict(raw: Dict[str, Any]) -> ExperimentConfig:
    return from_dict(ExperimentConfig, raw)


def load_config(path: str, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Base files, then the file, then ``key.sub=value`` overrides, checked into an :class:`ExperimentConfig`."""
    try:
        return config_from_dict(load_yaml_config(path, overrides))
    except ValueError as exc:
        raise ValueError("%s: %s" % (path, exc))


__all__ = ["ExperimentConfig", "ModelConfig", "TeacherConfig", "LossConfig", "OptimConfig", "ParamGroupConfig",
           "ScheduleConfig", "TrainConfig", "EvalConfig", "load_config", "config_from_dict", "resolve_normalization"]
