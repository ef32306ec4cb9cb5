"""One stage in its run directory: skip when DONE, otherwise do the work and write DONE last.

Usage:
    result = run_stage(cfg, "/shared/exp/teacher")                     # train / distill (resumes)
    result = run_eval_stage(cfg, "/shared/exp/eval", "/shared/exp/student/model.pth")    # evaluate a checkpoint
    result = run_compare_stage("/shared/exp/eval", [("teacher", "/shared/exp/teacher"), ...])   # + report
"""
import glob
import json
import logging
import os
from typing import Any, Callable, Dict, List, Sequence, Tuple

import yaml

from hmkd.config import ExperimentConfig
from hmkd.atomic import atomic_write_text
from hmkd.engine.distributed import DistEnv, init_distributed, shutdown_distributed

log = logging.getLogger(__name__)


def is_done(run_dir: str) -> bool:
    return os.path.isfile(os.path.join(run_dir, "DONE"))


def _done_result(run_dir: str) -> Dict[str, Any]:
    log.info("%s is DONE; nothing to do (remove its DONE file to run it again)", run_dir)
    with open(os.path.join(run_dir, "DONE")) as handle:
        return json.load(handle)


def _run_then_mark_done(device: str, run_dir: str, work: Callable[[DistEnv], Dict[str, Any]]) -> Dict[str, Any]:
    if is_done(run_dir):
        return _done_result(run_dir)
    env = init_distributed(device)
    try:
        result = work(env)
        if env.is_main:
            atomic_write_text(os.path.join(run_dir, "DONE"), json.dumps(result, sort_keys=True) + "\n")
    finally:
        shutdown_distributed()
    return result


def run_stage(cfg: ExperimentConfig, run_dir: str) -> Dict[str, Any]:
    from hmkd.engine.trainer import train  # heavy imports only when there is work

    return _run_then_mark_done(cfg.train.device, run_dir, lambda env: train(cfg, run_dir, env))


def run_eval_stage(cfg: ExperimentConfig, run_dir: str, checkpoint: str) -> Dict[str, Any]:
    from hmkd.engine.evaluation import evaluate_checkpoint

    return _run_then_mark_done(cfg.train.device, run_dir,
                               lambda env: evaluate_checkpoint(cfg, run_dir, checkpoint, env))


def seed_dirs(stage_dir: str) -> List[str]:
    """A stage run with seeds keeps one run directory per seed (seed_<k>); otherwise the stage dir itself."""
    seeds = sorted(glob.glob(os.path.join(stage_dir, "seed_*")))
    return [d for d in seeds if os.path.isdir(d)] or [stage_dir]


def run_compare_stage(run_dir: str, compare: Sequence[Tuple[str, str]], overrides: Sequence[str] = ()
                      ) -> Dict[str, Any]:
    """Evaluate each compared stage's model.pth (every seed) with its own config plus ``overrides`` (e.g. a
    sliding-window protocol), then write report.md / report.json / charts into ``run_dir``."""
    return _run_then_mark_done("auto", run_dir, lambda env: _compare(run_dir, compare, overrides, env))


def _compare(run_dir: str, compare: Sequence[Tuple[str, str]], overrides: Sequence[str], env: DistEnv
             ) -> Dict[str, Any]:
    from hmkd.config import config_from_dict, deep_merge, parse_override
    from hmkd.engine.evaluation import evaluate_checkpoint
    from hmkd.models import build_model
    from hmkd.models.complexity import model_complexity
    from hmkd.reporting.report import write_report

    rows = []
    for label, stage_dir in compare:
        for source in seed_dirs(stage_dir):
            with open(os.path.join(source, "config.yaml")) as handle:
                raw = yaml.safe_load(handle)
            for override in overrides:
                raw = deep_merge(raw, parse_override(override))
            cfg = config_from_dict(raw)
            out_dir = os.path.join(run_dir, label, os.path.basename(source)) if source != stage_dir \
                else os.path.join(run_dir, label)
            evaluate_checkpoint(cfg, out_dir, os.path.join(source, "model.pth"), env)
            if not env.is_main:
                continue
            with open(os.path.join(out_dir, "eval.json")) as handle:
                record = json.load(handle)
            with open(os.path.join(source, "eval.json")) as handle:
                trained = json.load(handle)
            size = cfg.data.crop_size or cfg.data.image_size
            complexity = model_complexity(build_model(cfg.model.name, len(record["per_class"]), **cfg.model.options),
                                          tuple(size))
            rows.append(dict(record, label=label, seed=cfg.train.seed, teacher=trained.get("teacher"),
                             train_seconds=trained.get("train_seconds"), params=complexity["params"],
                             flops=complexity["flops"], flops_size=list(size)))
    result: Dict[str, Any] = {"stages": [label for label, _ in compare]}
    if env.is_main:
        report = write_report(run_dir, rows)
        print(report["markdown"])
        result["mIoU"] = {e["label"]: e["mIoU"] for e in report["entries"]}
    return result
