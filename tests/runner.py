"""Helpers for tests that run the real ``hmkd`` command in a subprocess (importable: pytest's pythonpath has tests/)."""
import os
import subprocess
import sys

import torch

from hmkd.compat import torch_load

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def cli_env(**extra):
    """One thread per process keeps CPU runs repeatable and the 2-core machines responsive."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, **extra)


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "hmkd"] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=cli_env(), cwd=REPO)


def latest_checkpoint(run_dir):
    """The file a run directory's ``latest`` pointer names."""
    folder = os.path.join(run_dir, "checkpoints")
    with open(os.path.join(folder, "latest")) as handle:
        return os.path.join(folder, handle.read().strip())


def final_state(run_dir):
    """The checkpoint a run directory's ``latest`` pointer names."""
    return torch_load(latest_checkpoint(run_dir))


def assert_bitwise_equal(a, b):
    """Two checkpoints hold the same step, weights and optimizer state, bit for bit."""
    assert a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key
