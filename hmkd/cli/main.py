"""The ``hmkd`` console script: dispatches to one module per subcommand.

Usage: hmkd --help; hmkd models; hmkd flops segformer_b4 --num-classes 19 --size 512x1024 [--json]
"""
import argparse
import importlib
import logging
import sys
import warnings
from typing import List, Optional

from hmkd import __version__
from hmkd.atomic import DiskFullError
from hmkd.compat import quiet_cpp_extension
from hmkd.engine.distributed import PeerLostError

# subcommand -> module in hmkd.cli; each module defines HELP, add_arguments(parser) and run(args) -> int.
COMMANDS = ["submit", "status", "cancel", "train", "distill", "eval", "export", "predict", "report", "data", "models",
            "flops"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmkd", description="Heterogeneous knowledge distillation for semantic "
                                     "segmentation, on one machine or a Slurm cluster.")
    parser.add_argument("--version", action="version", version="hmkd %s" % __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module("hmkd.cli." + name.replace("-", "_"))
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # `key=value` overrides may come after options (argparse stops the positional list at --run-dir)
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error("unrecognized arguments: %s" % " ".join(extra))
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_cpp_extension()  # mmcv's import would tell a CPU user "No CUDA runtime is found, using CUDA_HOME=..."
    warnings.formatwarning = _one_line_warning
    try:
        return int(args._run(args) or 0)
    # mistakes, NaN losses, a full disk, a lost node: one line each
    except (ValueError, FileNotFoundError, FloatingPointError, DiskFullError, PeerLostError) as exc:
        print("hmkd %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 2


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning is a line for the user, not a source location with code under it."""
    return "%s: %s\n" % (category.__name__, message)


if __name__ == "__main__":
    sys.exit(main())
