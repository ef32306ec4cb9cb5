"""Pieces shared by the subcommands (and the benchmarks' command lines): config + overrides, run directory, sizes."""
import argparse
import os
from typing import Any, Dict, Tuple

from hmkd.atomic import DiskFullError
from hmkd.config import ExperimentConfig, load_config


def add_config_arguments(parser) -> None:
    parser.add_argument("config", help="experiment YAML (may name a base: file)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="dotted overrides, e.g. optim.lr=0.02")
    parser.add_argument("--run-dir", required=True, help="where config.yaml, checkpoints/, metrics and DONE go")


def load_with_overrides(args) -> ExperimentConfig:
    """The config, after --run-dir is checked: every command with a run directory comes here first, before any
    model is built, and a regular file in its place would otherwise fail only at the first write."""
    if os.path.exists(args.run_dir) and not os.path.isdir(args.run_dir):
        raise ValueError("--run-dir %s is a file, not a folder; remove or rename it, or pass another --run-dir"
                         % args.run_dir)
    return load_config(args.config, args.overrides)


def run_training(cfg: ExperimentConfig, run_dir: str) -> Dict[str, Any]:
    """run_stage for train and distill; a full disk's error is completed with where the same command resumes."""
    from hmkd.engine.stage import run_stage

    try:
        return run_stage(cfg, run_dir)
    except DiskFullError as exc:
        from hmkd.engine.checkpoint import CheckpointManager
        from hmkd.rundir import RunDir

        latest = CheckpointManager(RunDir(run_dir).checkpoints).latest_path()
        exc.fix = ("free space there, or move %s to a disk with room and point --run-dir at it; then run the same "
                   "command again: it resumes from %s" % (run_dir, os.path.relpath(latest, run_dir) if latest else
                                                          "the start (no checkpoint was saved yet)"))
        raise


def parse_size(text: str) -> Tuple[int, int]:
    """An argparse type: a size given as HxW, or N for a square."""
    try:
        values = [int(v) for v in str(text).lower().split("x")]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise argparse.ArgumentTypeError("sizes are HxW or N with positive integers (e.g. 512x1024), got %r" % text)
    return values[0], values[1]
