"""Pieces shared by the subcommands (and the benchmarks' command lines): config + overrides, run directory, sizes."""
import argparse
from typing import Tuple

from hmkd.config import ExperimentConfig, load_config


def add_config_arguments(parser) -> None:
    parser.add_argument("config", help="experiment YAML (may name a base: file)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="dotted overrides, e.g. optim.lr=0.02")
    parser.add_argument("--run-dir", required=True, help="where config.yaml, checkpoints/, metrics and DONE go")


def load_with_overrides(args) -> ExperimentConfig:
    return load_config(args.config, args.overrides)


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
