"""TensorBoard event files of a run, read back with tensorboard's own readers: the scalars equal metrics.jsonl, the
prediction pictures decode to the files the run wrote, a resume shows no step twice, runs sit apart under one logdir,
and without the package training goes on after one warning."""
import glob
import io
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mounts import fill, tmpfs_mounts
from runner import REPO, cli_env, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from hmkd.atomic import DiskFullError
from hmkd.config import config_from_dict
from hmkd.engine.logger import MetricsLogger, read_jsonl
from hmkd.engine.trainer import Trainer
from hmkd.rundir import RunDir, seed_dir

KEEP_ALL = {"scalars": 0, "images": 0}  # the reader's default samples long series; keep every event


def read_board(run_dir):
    events = EventAccumulator(RunDir(run_dir).tensorboard, size_guidance=KEEP_ALL)
    events.Reload()
    return events


def jsonl_series(run_dir):
    """tag -> [(step, value)] from metrics.jsonl, the numbers TensorBoard must show."""
    series = {}
    for row in read_jsonl(RunDir(run_dir).metrics):
        for tag, value in row.items():
            if tag != "step":
                series.setdefault(tag, []).append((row["step"], value))
    return series


def assert_scalars_match_jsonl(run_dir):
    events, expected = read_board(run_dir), jsonl_series(run_dir)
    assert set(events.Tags()["scalars"]) == set(expected)
    for tag, rows in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in rows], tag
        assert np.allclose([v for _, v in got], [v for _, v in rows], rtol=1e-6, atol=0), tag  # float32 in events
    return events


def test_event_file_holds_the_jsonl_scalars_and_prediction_pictures(tmp_path, write_config):
    run_dir = str(tmp_path / "run")
    config = write_config(train={"eval_interval": 6}, eval={"num_visualize": 2})
    result = run_cli("train", config, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    assert len(glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*"))) == 1
    events = assert_scalars_match_jsonl(run_dir)
    tags = set(events.Tags()["scalars"])
    assert {"loss/ce", "loss/aux_ce", "loss/total", "lr", "images_per_s", "val/mIoU", "val/aAcc"} <= tags
    assert [e.step for e in events.Scalars("loss/total")] == list(range(1, 13))
    assert [e.step for e in events.Scalars("val/mIoU")] == [6, 12]
    files = sorted(glob.glob(os.path.join(RunDir(run_dir).predictions, "*.png")))
    assert len(files) == 2
    for path in files:  # one process: its first images are the ones the final evaluation saved as files
        tag = "val/prediction/" + os.path.splitext(os.path.basename(path))[0]
        assert tag in events.Tags()["images"]
        shown = events.Images(tag)
        assert [e.step for e in shown] == [6, 12]
        picture = cv2.imdecode(np.frombuffer(shown[-1].encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape == (32, 3 * 48, 3) and (shown[-1].height, shown[-1].width) == (32, 3 * 48)
        assert np.array_equal(picture, cv2.imread(path, cv2.IMREAD_COLOR))  # image | label | prediction, as saved


def test_resumed_run_shows_every_step_once(tmp_path, write_config):
    """A run that logged steps 1-12 but whose latest checkpoint is step 6 (what a kill after step 12's log and before
    its checkpoint leaves) resumes at 7: TensorBoard shows each step once, with the resumed run's values."""
    run_dir = str(tmp_path / "run")
    config = write_config(train={"eval_interval": 6, "keep_checkpoints": 10})
    assert run_cli("train", config, "--run-dir", run_dir).returncode == 0
    first_process_end = max(e.wall_time for e in read_board(run_dir).Scalars("lr"))
    run = RunDir(run_dir)
    os.remove(run.done)
    for step in (9, 12):
        os.remove(os.path.join(run.checkpoints, "step_%08d.pth" % step))
    with open(os.path.join(run.checkpoints, "latest"), "w") as handle:
        handle.write("step_%08d.pth\n" % 6)
    result = run_cli("train", config, "--run-dir", run_dir)
    assert result.returncode == 0 and "resumed from step 6" in result.stdout, result.stderr
    assert len(glob.glob(os.path.join(run.tensorboard, "events.out.tfevents.*"))) == 2
    events = assert_scalars_match_jsonl(run_dir)
    for tag in events.Tags()["scalars"]:
        steps = [e.step for e in events.Scalars(tag)]
        assert steps == sorted(set(steps)), tag
    assert [e.step for e in events.Scalars("lr")] == list(range(1, 13))
    assert [e.step for e in events.Images(events.Tags()["images"][0])] == [6, 12]
    resumed = [e.step for e in events.Scalars("lr") if e.wall_time > first_process_end]
    assert resumed == list(range(7, 13))  # steps 7-12 are the resumed process's, 1-6 the first one's


def test_events_a_checkpoint_covers_survive_a_kill(tmp_path, write_config):
    """SIGKILL right after step 7 is logged: the checkpoint of step 6 was published, so steps 1-6 are on disk."""
    run_dir = str(tmp_path / "run")
    command = [sys.executable, "-m", "hmkd", "train", write_config(), "--run-dir", run_dir]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env(),
                            cwd=REPO, start_new_session=True)
    for line in proc.stdout:
        if line.startswith("step 7/"):
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.stdout.read()
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert [e.step for e in read_board(run_dir).Scalars("lr")][:6] == list(range(1, 7))


def test_logdir_shows_each_stage_and_seed_as_its_own_run(tmp_path):
    """`tensorboard --logdir <experiment>` finds one run per run directory; ranks other than 0 write nothing."""
    experiment = tmp_path / "exp"
    runs = [str(experiment / "teacher"), seed_dir(str(experiment / "hmkd"), 0), seed_dir(str(experiment / "hmkd"), 1)]
    for number, run_dir in enumerate(runs):
        logger = MetricsLogger(run_dir, total_steps=2, stream=io.StringIO())
        logger.start(0)
        logger.log_step(1, {"loss/total": float(number), "lr": 0.01}, images_per_s=1.0)
    other_rank = MetricsLogger(str(experiment / "student"), total_steps=2, enabled=False)
    other_rank.start(0)
    other_rank.log_step(1, {"loss/total": 5.0}, images_per_s=1.0)
    assert other_rank.picture_sink(1) is None and not os.path.exists(str(experiment / "student"))
    multiplexer = EventMultiplexer(size_guidance=KEEP_ALL).AddRunsFromDirectory(str(experiment))
    multiplexer.Reload()
    assert set(multiplexer.Runs()) == {"teacher/tensorboard", "hmkd/seed_0/tensorboard", "hmkd/seed_1/tensorboard"}
    assert [e.value for e in multiplexer.Scalars("hmkd/seed_1/tensorboard", "loss/total")] == [2.0]


def test_without_tensorboard_training_goes_on_after_one_warning(tmp_path, monkeypatch, capsys):
    from engine_config import tiny_config

    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)  # what import meets when the package is not installed
    run_dir = str(tmp_path / "run")
    cfg = config_from_dict(tiny_config(schedule={"max_iters": 2}, train={"checkpoint_interval": 1}))
    result = Trainer(cfg, run_dir).run()
    assert result["step"] == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if "TensorBoard" in line]
    assert len(warnings) == 1 and "pip install tensorboard==2.14.0" in warnings[0]
    assert [row["step"] for row in read_jsonl(RunDir(run_dir).metrics) if "loss/total" in row] == [1, 2]
    assert not os.path.exists(RunDir(run_dir).tensorboard)
    assert sum("TensorBoard" in line for line in open(RunDir(run_dir).train_log)) == 1


def test_full_disk_on_an_event_is_disk_full_error_and_the_file_keeps_whole_events(tmp_path):
    with tmpfs_mounts(tmp_path) as tmpfs:
        run_dir = tmpfs(64 * 4096)
        logger = MetricsLogger(run_dir, total_steps=2, stream=io.StringIO())
        logger.start(0)
        logger.log({"step": 1, "loss/total": 0.5})
        event_file, = glob.glob(os.path.join(RunDir(run_dir).tensorboard, "events.out.tfevents.*"))
        size = os.path.getsize(event_file)
        fill(run_dir)
        noise_rgb = np.random.RandomState(0).randint(0, 256, (64, 64, 3)).astype(np.uint8)  # PNG of several pages
        with pytest.raises(DiskFullError, match="writing %s " % event_file):
            logger.picture_sink(1)("a", noise_rgb)
        assert os.path.getsize(event_file) == size
        assert [(e.step, e.value) for e in read_board(run_dir).Scalars("loss/total")] == [(1, 0.5)]
