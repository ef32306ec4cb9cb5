"""Helpers for tests that run the real ``hmkd`` command in a subprocess (importable: pytest's pythonpath has tests/)."""
import os
import subprocess
import sys

from hmkd.compat import torch_load

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def cli_env(**extra):
    """One thread per process keeps CPU runs repeatable and the 2-core machines responsive."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, **extra)


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "hmkd"] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=cli_env(), cwd=REPO)


def final_state(run_dir):
    """The checkpoint a run directory's ``latest`` pointer names."""
    folder = os.path.join(run_dir, "checkpoints")
    with open(os.path.join(folder, "latest")) as handle:
        return torch_load(os.path.join(folder, handle.read().strip()))
