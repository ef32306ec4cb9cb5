"""Checkpoints: atomic writes, pointer, pruning with the best kept, and a kill mid-write leaves latest intact."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import torch

from hmkd.engine.checkpoint import CheckpointManager


def test_save_load_prune_keep_best(tmp_path):
    manager = CheckpointManager(str(tmp_path / "ckpt"), keep=2)
    assert manager.load_latest() is None
    for step, metric in [(10, 0.5), (20, 0.9), (30, 0.4), (40, None), (50, 0.6)]:
        manager.save({"step": step, "w": torch.full((3,), float(step))}, step, metric)
    assert manager.steps() == [20, 40, 50]  # last two plus the best (step 20, metric 0.9)
    assert manager.best()["step"] == 20
    latest = manager.load_latest()
    assert latest["step"] == 50 and torch.equal(latest["w"], torch.full((3,), 50.0))


def test_dangling_pointer_is_an_error(tmp_path):
    manager = CheckpointManager(str(tmp_path), keep=1)
    manager.save({"step": 1}, 1)
    os.remove(manager.step_path(1))
    try:
        manager.load_latest()
    except ValueError as exc:
        assert "latest" in str(exc) and "step_00000001.pth" in str(exc)
    else:
        raise AssertionError("a pointer to a missing file must not load")


def test_kill_during_write_never_corrupts_latest(tmp_path):
    """SIGKILL a writer of large checkpoints at several moments; latest always loads and is whole."""
    folder = tmp_path / "ckpt"
    script = textwrap.dedent("""
        import sys, torch
        from hmkd.engine.checkpoint import CheckpointManager
        manager = CheckpointManager(sys.argv[1], keep=2)
        step = 0
        while True:
            step += 1
            manager.save({"step": step, "w": torch.full((4_000_000,), float(step))}, step)
            print(step, flush=True)
    """)
    for delay in (0.3, 0.7, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE)
        proc.stdout.readline()  # at least one complete checkpoint exists
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = CheckpointManager(str(folder), keep=2).load_latest()
        assert state["w"].shape == (4_000_000,) and bool((state["w"] == state["step"]).all())
    manager = CheckpointManager(str(folder), keep=2)
    manager.remove_stale_temp_files()
    assert not [n for n in os.listdir(folder) if ".tmp." in n]
