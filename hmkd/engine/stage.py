"""One stage in its run directory: skip when DONE, otherwise do the work and write DONE last.

Usage:
    result = run_stage(cfg, "/shared/exp/teacher")                     # train / distill (resumes)
    result = run_eval_stage(cfg, "/shared/exp/eval", "/shared/exp/student/model.pth")    # evaluate a checkpoint
"""
import json
import logging
import os
from typing import Any, Callable, Dict

from hmkd.config import ExperimentConfig
from hmkd.engine.checkpoint import atomic_write_text
from hmkd.engine.distributed import DistEnv, init_distributed, shutdown_distributed

log = logging.getLogger(__name__)


def is_done(run_dir: str) -> bool:
    return os.path.isfile(os.path.join(run_dir, "DONE"))


def _done_result(run_dir: str) -> Dict[str, Any]:
    log.info("%s is DONE; nothing to do (remove its DONE file to run it again)", run_dir)
    with open(os.path.join(run_dir, "DONE")) as handle:
        return json.load(handle)


def _run_then_mark_done(cfg: ExperimentConfig, run_dir: str, work: Callable[[DistEnv], Dict[str, Any]]
                        ) -> Dict[str, Any]:
    if is_done(run_dir):
        return _done_result(run_dir)
    env = init_distributed(cfg.train.device)
    try:
        result = work(env)
        if env.is_main:
            atomic_write_text(os.path.join(run_dir, "DONE"), json.dumps(result, sort_keys=True) + "\n")
    finally:
        shutdown_distributed()
    return result


def run_stage(cfg: ExperimentConfig, run_dir: str) -> Dict[str, Any]:
    from hmkd.engine.trainer import train  # heavy imports only when there is work

    return _run_then_mark_done(cfg, run_dir, lambda env: train(cfg, run_dir, env))


def run_eval_stage(cfg: ExperimentConfig, run_dir: str, checkpoint: str) -> Dict[str, Any]:
    from hmkd.engine.evaluation import evaluate_checkpoint

    return _run_then_mark_done(cfg, run_dir, lambda env: evaluate_checkpoint(cfg, run_dir, checkpoint, env))
