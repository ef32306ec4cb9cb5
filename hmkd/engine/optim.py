"""Optimizer with per-group options and the poly schedule with optional linear warmup.

Usage:
    optimizer = build_optimizer(trainable_module, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.schedule)     # step once per optimizer step

Parameter groups are chosen by regular expressions searched in the student's own parameter names (first match
wins), e.g. ``{match: "^decode_head\\.", lr_mult: 10}``; the remaining parameters, and the criterion's (alignment
modules of distillation terms), form the default group (or the norm-and-bias group, with no_decay_norm_and_bias).
"""
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn


def student_named_parameters(module: nn.Module) -> Iterator[Tuple[Optional[str], nn.Parameter]]:
    """``module.named_parameters()`` in its order, each name relative to the student; None for the parameters of
    the trainer's criterion. A module without a ``student`` (a bare model) is the student itself."""
    if getattr(module, "student", None) is None:
        yield from module.named_parameters()
        return
    for name, param in module.named_parameters():
        yield (name[len("student."):] if name.startswith("student.") else None), param


def build_param_groups(module: nn.Module, cfg) -> List[Dict[str, Any]]:
    patterns = [(re.compile(g.match), g) for g in cfg.param_groups]
    groups: List[Dict[str, Any]] = [{"params": [], "lr_mult": 1.0, "weight_decay": cfg.weight_decay, "name": "default"}]
    groups += [{"params": [], "lr_mult": g.lr_mult, "name": g.match,
                "weight_decay": cfg.weight_decay if g.weight_decay is None else g.weight_decay}
               for g in cfg.param_groups]
    no_decay = {"params": [], "lr_mult": 1.0, "weight_decay": 0.0, "name": "norm_and_bias"}
    for name, param in student_named_parameters(module):
        if not param.requires_grad:
            continue
        index = 0 if name is None else _first_match(patterns, name)
        if index == 0 and cfg.no_decay_norm_and_bias and param.ndim <= 1:
            no_decay["params"].append(param)
        else:
            groups[index]["params"].append(param)
    for (pattern, _), group in zip(patterns, groups[1:]):
        if not group["params"]:
            raise ValueError("optim.param_groups: pattern %r matches no trainable parameter of the student"
                             % pattern.pattern)
    return [g for g in groups + [no_decay] if g["params"]]


def _first_match(patterns: List[Tuple[Any, Any]], name: str) -> int:
    """1 + the index of the first pattern found in ``name``; 0 (the default group) when none is."""
    return next((i + 1 for i, (pattern, _) in enumerate(patterns) if pattern.search(name)), 0)


def build_optimizer(module: nn.Module, cfg) -> torch.optim.Optimizer:
    groups = build_param_groups(module, cfg)
    for group in groups:
        group["lr"] = cfg.lr * group["lr_mult"]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def poly_factor(step: int, cfg) -> float:
    """Multiplier of the base lr after ``step`` optimizer steps: linear warmup, then (1 - t)^power decay."""
    total = cfg.max_iters
    decay = (1.0 - min(step, total) / total) ** cfg.power
    factor = decay * (1.0 - cfg.min_lr_ratio) + cfg.min_lr_ratio
    if cfg.warmup_iters and step < cfg.warmup_iters:
        ramp = cfg.warmup_ratio + (1.0 - cfg.warmup_ratio) * step / cfg.warmup_iters
        factor *= ramp
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: poly_factor(step, cfg))
