"""Storage faults through the real ``hmkd`` command: a full disk (a tmpfs the test mounts) and damaged checkpoints.

Each ends in one error line and a non-zero exit, with ``latest`` naming a whole checkpoint, or in a resume from the
newest checkpoint that loads; the same command then finishes bitwise equal to an uninterrupted run.
"""
import os
import re
import shutil

import pytest
import yaml

from engine_config import tiny_config
from hmkd.atomic import DiskFullError, format_bytes
from hmkd.compat import torch_load
from hmkd.engine.logger import MetricsLogger
from mounts import PAGE, fill, pages, remount, tmpfs_mounts
from runner import assert_bitwise_equal, final_state, latest_checkpoint, run_cli

STEP = "step_%08d.pth"


@pytest.fixture()
def tmpfs(tmp_path):
    with tmpfs_mounts(tmp_path) as mount:
        yield mount


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A tiny SegFormer (checkpoints of about 0.5 MB, every 3 steps, 2 kept) trained without interruption."""
    folder = tmp_path_factory.mktemp("storage")
    config = str(folder / "exp.yaml")
    with open(config, "w") as handle:
        yaml.safe_dump(tiny_config(model={"name": "segformer_tiny", "options": {}},
                                   loss={"terms": {"ce": {"weight": 1.0}}}), handle)
    run_dir = str(folder / "reference")
    result = run_cli("train", config, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    return config, run_dir


def stopped_copy(reference_dir, run_dir):
    """What a run stopped after its last checkpoint leaves: the reference without DONE and the final exports."""
    shutil.copytree(reference_dir, run_dir)
    for name in ("DONE", "model.pth", "eval.json"):
        os.remove(os.path.join(run_dir, name))
    return os.path.join(run_dir, "checkpoints")


def temp_files(run_dir):
    return [os.path.join(root, n) for root, _, names in os.walk(run_dir) for n in names if ".tmp." in n]


def last_line(stderr):
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.mark.slow
def test_full_disk_at_a_checkpoint_is_one_line_and_the_same_command_resumes(reference, tmpfs):
    config, reference_dir = reference
    size = os.path.getsize(latest_checkpoint(reference_dir))
    # Room for the small files and one checkpoint plus half of another: step 3's checkpoint fits, step 6's does not.
    mount = tmpfs((pages(size) + pages(size) // 2 + 16) * PAGE)
    run_dir = os.path.join(mount, "run")
    result = run_cli("train", config, "--run-dir", run_dir)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "Traceback" not in result.stderr
    step6 = os.path.join(run_dir, "checkpoints", STEP % 6)
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    assert last_line(result.stderr) == (
        "hmkd train: error: no space left on device writing %s (%s to write, %s free there); free space there, or move "
        "%s to a disk with room and point --run-dir at it; then run the same command again: it resumes from "
        "checkpoints/%s" % (step6, format_bytes(size), format_bytes(free), run_dir, STEP % 3))
    assert free < size
    assert final_state(run_dir)["step"] == 3  # latest names the earlier, whole checkpoint, and it loads
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["latest", STEP % 3]
    assert temp_files(run_dir) == [] and not os.path.exists(os.path.join(run_dir, "DONE"))

    remount(mount, 16 * 2 ** 20)
    result = run_cli("train", config, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    assert "resumed from step 3 (%s)" % os.path.join(run_dir, "checkpoints", STEP % 3) in result.stdout
    assert_bitwise_equal(final_state(reference_dir), final_state(run_dir))
    assert os.path.isfile(os.path.join(run_dir, "DONE"))


def test_truncated_latest_checkpoint_resumes_from_the_previous_one(reference, tmp_path):
    config, reference_dir = reference
    run_dir = str(tmp_path / "run")
    folder = stopped_copy(reference_dir, run_dir)
    damaged, previous = os.path.join(folder, STEP % 12), os.path.join(folder, STEP % 9)
    with open(damaged, "r+b") as handle:
        handle.truncate(os.path.getsize(damaged) // 2)
    result = run_cli("train", config, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    warning = re.compile(r"WARNING checkpoint %s cannot be loaded \(.+\); resuming from %s instead$"
                         % (re.escape(damaged), re.escape(previous)), re.M)
    assert warning.search(result.stderr), result.stderr
    with open(os.path.join(run_dir, "train.log")) as handle:
        assert warning.search(handle.read())
    assert "resumed from step 9 (%s)" % previous in result.stdout
    assert_bitwise_equal(final_state(reference_dir), final_state(run_dir))
    assert torch_load(damaged)["step"] == 12  # written again, whole
    assert os.path.isfile(os.path.join(run_dir, "DONE"))


def test_no_readable_checkpoint_is_one_error_line(reference, tmp_path):
    config, reference_dir = reference
    run_dir = str(tmp_path / "run")
    folder = stopped_copy(reference_dir, run_dir)
    open(os.path.join(folder, STEP % 9), "w").close()
    with open(os.path.join(folder, STEP % 12), "wb") as handle:
        handle.write(os.urandom(1000))
    before = {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)}
    result = run_cli("train", config, "--run-dir", run_dir)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    line = last_line(result.stderr)
    assert re.match(r"hmkd train: error: no readable checkpoint in %s \(%s cannot be loaded \(.+\); %s is empty\); "
                    r"remove that folder to start over, or put an intact step file back$"
                    % (re.escape(folder), STEP % 12, STEP % 9), line), line
    assert {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)} == before
    assert not os.path.exists(os.path.join(run_dir, "DONE"))


@pytest.mark.parametrize("command", ["train", "distill"])
def test_run_dir_that_is_a_file_is_one_error_line(tmp_path, command):
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    run_dir = tmp_path / "run"
    run_dir.write_text("not a folder\n")
    result = run_cli(command, str(config), "--run-dir", str(run_dir))
    assert result.returncode == 2
    assert result.stderr.strip() == ("hmkd %s: error: --run-dir %s is a file, not a folder; remove or rename it, or "
                                     "pass another --run-dir" % (command, run_dir))
    assert run_dir.read_text() == "not a folder\n"


def test_full_disk_on_a_log_line_is_disk_full_error_and_the_log_keeps_whole_lines(tmpfs):
    run_dir = tmpfs(64 * PAGE)
    logger = MetricsLogger(run_dir, total_steps=10)
    logger.message("x" * (PAGE - 21))  # "YYYY-mm-dd HH:MM:SS " + text + newline: exactly one page
    with open(os.path.join(run_dir, "train.log")) as handle:
        whole = handle.read()
    assert len(whole) == PAGE
    fill(run_dir)
    with pytest.raises(DiskFullError, match="writing %s/train.log" % re.escape(run_dir)):
        logger.message("resumed from step 3")
    with pytest.raises(DiskFullError, match="writing %s/metrics.jsonl" % re.escape(run_dir)):
        logger.log({"step": 3})
    with open(os.path.join(run_dir, "train.log")) as handle:
        assert handle.read() == whole
