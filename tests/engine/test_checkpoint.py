"""Checkpoints: atomic writes, pointer, pruning with the best kept, a kill mid-write leaves latest intact, and damaged
files are passed over on load (newest readable step first) or named in one error when none loads."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
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


# ---------------------------------------------------------------- damaged checkpoints: fall back, newest step first
def saved_run(folder, steps=(3, 6, 9)):
    manager = CheckpointManager(str(folder), keep=len(steps))
    for step in steps:
        manager.save({"step": step, "w": torch.full((1000,), float(step))}, step)
    return manager


def truncate(path, size):
    with open(path, "r+b") as handle:
        handle.truncate(size)


def overwrite(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


RANDOM_BYTES = np.random.RandomState(0).bytes(5000)

DAMAGED_FILE = {  # damage -> (what it does to a step file, a phrase of the reason the manager gives)
    "truncated": (lambda p: truncate(p, os.path.getsize(p) // 2), "cannot be loaded"),
    "zero bytes": (lambda p: truncate(p, 0), "is empty"),
    "random bytes": (lambda p: overwrite(p, RANDOM_BYTES), "cannot be loaded"),
    "not a dict": (lambda p: torch.save([1, 2, 3], p), "holds a list"),
    "missing keys": (lambda p: torch.save({"step": 9}, p), "lacks w"),
}

DAMAGED_POINTER = {  # damage -> (what it does to `latest`, a phrase of the reason)
    "missing": (os.remove, "is missing"),
    "empty": (lambda p: overwrite(p, b""), "is empty"),
    "garbage": (lambda p: overwrite(p, RANDOM_BYTES[:40]), "not a step file"),
    "truncated": (lambda p: truncate(p, 8), "'step_000', which is not a step file"),
    "names a missing file": (lambda p: overwrite(p, b"step_00000012.pth\n"), "step_00000012.pth, which does not exist"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_FILE))
def test_damaged_latest_file_falls_back_to_previous_step(tmp_path, damage):
    manager = saved_run(tmp_path)
    harm, reason = DAMAGED_FILE[damage]
    harm(manager.step_path(9))
    state = manager.load_latest(required=("step", "w"))
    assert state["step"] == 6 and torch.equal(state["w"], torch.full((1000,), 6.0))
    assert manager.loaded == manager.step_path(6)
    [(path, why)] = manager.skipped
    assert path == manager.step_path(9) and reason in why, why


@pytest.mark.parametrize("damage", sorted(DAMAGED_POINTER))
def test_damaged_pointer_falls_back_to_newest_step_file(tmp_path, damage):
    manager = saved_run(tmp_path)
    pointer = os.path.join(manager.folder, "latest")
    harm, reason = DAMAGED_POINTER[damage]
    harm(pointer)
    assert manager.latest_path() is None
    assert manager.load_latest()["step"] == 9 and manager.loaded == manager.step_path(9)
    [(path, why)] = manager.skipped
    assert path == pointer and reason in why, why


def test_fallback_goes_newest_first_and_repair_points_latest_at_the_loaded_file(tmp_path):
    manager = saved_run(tmp_path)
    truncate(manager.step_path(9), 100)
    truncate(manager.step_path(6), 0)
    assert manager.load_latest(repair=True)["step"] == 3
    assert [p for p, _ in manager.skipped] == [manager.step_path(9), manager.step_path(6)]
    assert manager.latest_path() == manager.step_path(3)  # repaired: latest names a whole checkpoint again
    assert manager.load_latest()["step"] == 3 and manager.skipped == []


def test_without_repair_loading_changes_nothing(tmp_path):
    manager = saved_run(tmp_path)
    truncate(manager.step_path(9), 100)
    before = {name: os.path.getmtime(os.path.join(manager.folder, name)) for name in os.listdir(manager.folder)}
    assert manager.load_latest()["step"] == 6
    assert {name: os.path.getmtime(os.path.join(manager.folder, name)) for name in os.listdir(manager.folder)} == before


def test_nothing_readable_is_one_error_naming_folder_and_files(tmp_path):
    manager = saved_run(tmp_path, steps=(3, 6))
    truncate(manager.step_path(6), 0)
    overwrite(manager.step_path(3), RANDOM_BYTES)
    overwrite(os.path.join(manager.folder, "latest"), b"nonsense")
    with pytest.raises(ValueError) as info:
        manager.load_latest()
    message = str(info.value)
    assert "\n" not in message and message.startswith("no readable checkpoint in %s (" % manager.folder)
    for part in ("latest names 'nonsense'", "step_00000006.pth is empty", "step_00000003.pth cannot be loaded",
                 "remove that folder to start over"):
        assert part in message, message


def test_fresh_folder_loads_nothing_without_complaint(tmp_path):
    manager = CheckpointManager(str(tmp_path / "ckpt"), keep=2)
    assert manager.load_latest(required=("step",)) is None and manager.skipped == [] and manager.loaded is None


def test_damaged_best_record_is_an_error_naming_it(tmp_path):
    manager = saved_run(tmp_path, steps=(3,))
    best = os.path.join(manager.folder, "best.json")
    overwrite(best, b"{\"step\": 3")
    with pytest.raises(ValueError, match="best.json is not a best-checkpoint record .*remove it"):
        manager.save({"step": 6}, 6, metric=0.5)
