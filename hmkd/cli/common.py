"""Pieces shared by the training-type subcommands: config + overrides, run directory, the DONE marker."""
import os

from hmkd.config import ExperimentConfig, load_config


def add_config_arguments(parser) -> None:
    parser.add_argument("config", help="experiment YAML (may name a base: file)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="dotted overrides, e.g. optim.lr=0.02")
    parser.add_argument("--run-dir", required=True, help="where config.yaml, checkpoints/, metrics and DONE go")


def load_with_overrides(args) -> ExperimentConfig:
    return load_config(args.config, args.overrides)


def done_marker(run_dir: str) -> str:
    return os.path.join(run_dir, "DONE")
