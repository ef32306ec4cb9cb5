"""One stage in its run directory: skip when DONE, otherwise train (resuming) and write DONE last.

Usage: result = run_stage(cfg, "/shared/exp/teacher")     # what `hmkd train`, `hmkd distill` and jobs call
"""
import json
import logging
import os
from typing import Any, Dict

from hmkd.config import ExperimentConfig
from hmkd.engine.checkpoint import atomic_write_text
from hmkd.engine.distributed import init_distributed, shutdown_distributed

log = logging.getLogger(__name__)


def is_done(run_dir: str) -> bool:
    return os.path.isfile(os.path.join(run_dir, "DONE"))


def run_stage(cfg: ExperimentConfig, run_dir: str) -> Dict[str, Any]:
    if is_done(run_dir):
        log.info("%s is DONE; nothing to do (remove its DONE file to run it again)", run_dir)
        with open(os.path.join(run_dir, "DONE")) as handle:
            return json.load(handle)
    from hmkd.engine.trainer import train  # heavy imports only when there is work

    env = init_distributed(cfg.train.device)
    try:
        result = train(cfg, run_dir, env)
        if env.is_main:
            atomic_write_text(os.path.join(run_dir, "DONE"), json.dumps(result, sort_keys=True) + "\n")
    finally:
        shutdown_distributed()
    return result
