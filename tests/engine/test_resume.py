"""Exact resume: a run killed with SIGKILL at a random step and resumed ends bitwise equal to an uninterrupted one."""
import os
import random
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from runner import REPO, assert_bitwise_equal, cli_env, final_state, run_cli


def kill_at_step(command, step, env, signum=signal.SIGKILL):
    """Start ``command`` and signal its whole process group once it logs ``step``; returns its exit code."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                            start_new_session=True)
    seen = []
    for line in proc.stdout:
        if " step %d/" % step in " " + line or line.startswith("step %d/" % step):
            seen.append(line)
            os.killpg(proc.pid, signum)
            break
    proc.stdout.read()
    proc.wait(timeout=120)
    assert seen, "the run ended before step %d" % step
    return proc.returncode


def distill_sections(tmp_path):
    """GLA + HFA with a tiny SegFormer teacher: the alignment modules are part of what must resume exactly."""
    from hmkd.models import build_model

    path = tmp_path / "teacher.pth"
    torch.manual_seed(1)
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, path)
    return {"teacher": {"name": "segformer_tiny", "checkpoint": str(path)},
            "loss": {"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4},
                               "gla": {"weight": 1.0, "dim": 16, "patch_size": 2}, "hfa": {"weight": 1.0}}}}


def unlabeled_sections(tmp_path):
    """Five unlabelled PNG scenes of assorted sizes beside the 12 labelled ones, two per batch: the unlabelled stream
    has epochs of 2 batches against the labelled 6 (one image left over each time) and wraps on its own."""
    from hmkd.data import generate_scene

    folder = tmp_path / "unlabeled" / "city"
    folder.mkdir(parents=True)
    for k in range(5):
        image, _ = generate_scene(np.random.Generator(np.random.PCG64([7, k])), 3, (28 + 4 * k, 48))
        assert cv2.imwrite(str(folder / ("frame_%d.png" % k)), image)
    return {"data": {"unlabeled": str(tmp_path / "unlabeled"), "unlabeled_ratio": 1.0}}


@pytest.mark.parametrize("method", ["train", "distill", "distill_unlabeled"])
def test_sigkill_and_resume_is_bitwise_equal_single_process(tmp_path, write_config, method):
    extra = distill_sections(tmp_path) if method.startswith("distill") else {}
    kill_step = random.Random().randint(4, 11)  # after the first checkpoint (every 3 steps): a real resume
    if method == "distill_unlabeled":
        extra.update(unlabeled_sections(tmp_path))
        # resumed from step 3 or 9, where the unlabelled stream is mid-epoch and in another epoch than the labelled
        kill_step, method = random.Random().choice([4, 5, 10, 11]), "distill"
    config = write_config(train={"num_workers": 1}, **extra)
    reference = str(tmp_path / "reference")
    result = run_cli(method, config, "--run-dir", reference)
    assert result.returncode == 0, result.stderr
    resumed = str(tmp_path / "resumed")
    code = kill_at_step([sys.executable, "-m", "hmkd", method, config, "--run-dir", resumed], kill_step, cli_env())
    assert code == -signal.SIGKILL
    assert not os.path.exists(os.path.join(resumed, "DONE"))
    if "data" in extra:
        assert "12 labelled + 5 unlabelled images; batch = 2 labelled + 2 unlabelled" in result.stdout
        saved = final_state(resumed)
        assert saved["step"] in (3, 9) and saved["unlabeled"]["images"] == 5
        assert saved["unlabeled"]["consumed"] == 1 and saved["unlabeled"]["epoch"] != saved["epoch"]
    result = run_cli(method, config, "--run-dir", resumed)
    assert result.returncode == 0, result.stderr
    assert "resumed from step" in result.stdout
    reference_state = final_state(reference)
    assert_bitwise_equal(reference_state, final_state(resumed))
    assert reference_state.get("unlabeled") == final_state(resumed).get("unlabeled")
    if method == "distill":
        assert any(k.startswith("criterion.terms.gla.") for k in reference_state["model"])
    assert os.path.isfile(os.path.join(resumed, "DONE"))


@pytest.mark.slow
def test_sigkill_and_resume_is_bitwise_equal_two_gloo_processes(tmp_path, write_config):
    config = write_config(train={"batch_size": 2})  # per process: BN needs 2 samples (no SyncBN on CPU)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
                "-m", "hmkd"]
    env = cli_env()
    reference = str(tmp_path / "reference")
    result = subprocess.run(torchrun + ["train", config, "--run-dir", reference], capture_output=True, text=True,
                            timeout=600, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert final_state(reference)["world_size"] == 2
    kill_step = random.Random().randint(4, 11)  # after the first checkpoint (every 3 steps): a real resume
    resumed = str(tmp_path / "resumed")
    kill_at_step(torchrun + ["train", config, "--run-dir", resumed], kill_step, env)
    result = subprocess.run(torchrun + ["train", config, "--run-dir", resumed], capture_output=True, text=True,
                            timeout=600, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_bitwise_equal(final_state(reference), final_state(resumed))


def test_preemption_signal_saves_at_step_boundary_then_resumes_exactly(tmp_path, write_config):
    """USR2 (Slurm's warning before a time limit or preemption) saves a checkpoint at the next step and ends the
    process as the signal would; the resumed run matches an uninterrupted one bitwise."""
    config = write_config(train={"checkpoint_interval": 100})  # no periodic checkpoint: only the signal saves
    reference = str(tmp_path / "reference")
    assert run_cli("train", config, "--run-dir", reference).returncode == 0
    resumed = str(tmp_path / "resumed")
    code = kill_at_step([sys.executable, "-m", "hmkd", "train", config, "--run-dir", resumed], 5, cli_env(),
                        signum=signal.SIGUSR2)
    assert code == -signal.SIGUSR2
    saved = final_state(resumed)["step"]
    assert 5 <= saved < 12
    result = run_cli("train", config, "--run-dir", resumed)
    assert result.returncode == 0 and "resumed from step %d" % saved in result.stdout
    assert_bitwise_equal(final_state(reference), final_state(resumed))
