"""TensorBoard event files of a run, read back with tensorboard's own readers: the scalars equal metrics.jsonl, the
prediction pictures decode to the files the run wrote, a resume shows no step twice, runs sit apart under one logdir,
and without the package training goes on after one warning."""
import glob
import io
import itertools
import os
import sys

import cv2
import numpy as np
import pytest
from mounts import fill, tmpfs_mounts
from runner import run_cli
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


def test_event_file_holds_the_jsonl_scalars_and_pictures_and_a_resume_shows_every_step_once(tmp_path, write_config):
    """One run: the events are metrics.jsonl's scalars and the saved prediction pictures. Then the same run as a kill
    after step 12's log and before its checkpoint leaves it (latest = step 6) resumes at 7: TensorBoard shows each
    step once, with the resumed run's values (one run serves both checks: each costs a training)."""
    run_dir = str(tmp_path / "run")
    config = write_config(train={"eval_interval": 6, "keep_checkpoints": 10}, eval={"num_visualize": 2})
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

    first_process_end = max(e.wall_time for e in events.Scalars("lr"))
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


def _serve(logdir, load_fast):
    """The real `tensorboard --logdir` server on a free loopback port: (process, base URL) once it answers."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
                               "--port", str(port), "--load_fast", load_fast, "--reload_interval", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url, deadline = "http://127.0.0.1:%d" % port, time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError("tensorboard exited %s: %s" % (server.returncode, server.stderr.read()[-2000:]))
        try:
            urllib.request.urlopen(url + "/data/runs", timeout=2).read()
            return server, url
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise AssertionError("tensorboard did not answer within 90 s")


@pytest.mark.parametrize("load_fast", ["true", "false"])
def test_the_tensorboard_server_shows_each_run_apart_and_a_resumed_step_once(tmp_path, load_fast, monkeypatch):
    """`tensorboard --logdir <experiment>` itself, with its Rust data server (load_fast true, the default where it
    runs) and its Python loader: one run per stage and seed; steps a killed run logged past its checkpoint are
    replaced by the resumed run's."""
    import json
    import time
    import urllib.parse
    import urllib.request

    from hmkd.engine import tensorboard
    # the killed run's file is this process's 9th, the resumed run's its 10th: they must still sort in that order
    monkeypatch.setattr(tensorboard, "_FILE_NUMBERS", itertools.count(8))
    experiment = tmp_path / "exp"
    for number, run_dir in enumerate([str(experiment / "teacher"), seed_dir(str(experiment / "hmkd"), 0)]):
        logger = MetricsLogger(run_dir, total_steps=6, stream=io.StringIO())
        logger.start(0)
        for step in range(1, 7):
            logger.log_step(step, {"loss/total": float(number * 100 + step)}, images_per_s=1.0)
    resumed = MetricsLogger(seed_dir(str(experiment / "hmkd"), 0), total_steps=6, stream=io.StringIO())
    resumed.start(3)  # the checkpoint was step 3: steps 4-6 are logged again, with other values
    for step in range(4, 7):
        resumed.log_step(step, {"loss/total": float(1000 + step)}, images_per_s=1.0)
    expected = [(1, 101.0), (2, 102.0), (3, 103.0), (4, 1004.0), (5, 1005.0), (6, 1006.0)]
    server, url = _serve(str(experiment), load_fast)
    try:
        deadline, runs, rows = time.monotonic() + 60, [], []
        while time.monotonic() < deadline:  # the server reads the files in the background
            runs = json.loads(urllib.request.urlopen(url + "/data/runs", timeout=5).read())
            query = urllib.parse.urlencode({"run": "hmkd/seed_0/tensorboard", "tag": "loss/total"})
            try:
                rows = json.loads(urllib.request.urlopen(url + "/data/plugin/scalars/scalars?" + query,
                                                         timeout=5).read())
            except OSError:
                rows = []
            if len(runs) == 2 and [(r[1], r[2]) for r in rows] == expected:
                break  # the resumed run's file may be read after the first: wait for its values too
            time.sleep(0.5)
    finally:
        server.kill()
        server.wait()
    assert sorted(runs) == ["hmkd/seed_0/tensorboard", "teacher/tensorboard"]
    assert [(r[1], r[2]) for r in rows] == expected


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
