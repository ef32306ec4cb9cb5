"""The launcher on a real one-node Slurm (slurmctld + slurmd + munge from Debian, started by the fixture).

Chained jobs for jobs/smoke.yaml, a failing stage cancelling its dependents, the timeout signal requeueing a stage
that then resumes bitwise, a 2-task (2 gloo processes) distillation with ranks from Slurm, and a resubmission of a
finished spec that submits nothing.
"""
import json
import os
import subprocess
import sys
import time

import pytest
import torch
import yaml
from engine_config import tiny_config
from runner import REPO, final_state
from slurm_client import hmkd, job_id_of, wait_done, wait_for, write_spec

pytestmark = pytest.mark.slow

SHORT = "[schedule.max_iters=%d, train.eval_interval=0, train.log_interval=1, train.checkpoint_interval=%d]"


def test_smoke_spec_runs_as_chained_jobs_and_resubmits_nothing(slurm_cluster, tmp_path):
    spec = os.path.join(REPO, "jobs", "smoke.yaml")
    sets = ["--set", "root=%s" % tmp_path,
            "--set", "stages.teacher.overrides=" + SHORT % (12, 6),
            "--set", "stages.student.overrides=" + SHORT % (8, 4),
            "--set", "stages.hmkd.overrides=" + SHORT % (8, 4)]
    for stage in ("teacher", "student", "hmkd", "eval"):
        sets += ["--set", "stages.%s.resources.partition=%s" % (stage, slurm_cluster.partition),
                 "--set", "stages.%s.resources.cpus_per_task=1" % stage]
    result = hmkd(slurm_cluster, "submit", spec, *sets)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("submitted") == 4 and "after afterok:" in result.stdout
    rows = wait_for(slurm_cluster, spec, sets, lambda r: all(v["state"] == "DONE" for v in r.values()) or
                    any("FAIL" in v["state"] or "CANCEL" in v["state"] for v in r.values()))
    assert all(v["state"] == "DONE" for v in rows.values()), rows
    root = tmp_path / "smoke"
    for stage in ("teacher", "student", "hmkd"):
        for name in ("model.pth", "eval.json", "config.yaml", "launcher.json"):
            assert (root / stage / name).is_file(), (stage, name)
    report = (root / "eval" / "report.md").read_text()
    assert "| hmkd | deeplabv3_r18 | segformer_b0 |" in report
    hmkd_job = rows["hmkd"]["job_ids"][0]
    script = (root / "hmkd" / "submitit" / hmkd_job / ("%s_submission.sh" % hmkd_job)).read_text()
    assert "#SBATCH --signal=USR2@90" in script and "#SBATCH --kill-on-invalid-dep=yes" in script
    dependency = slurm_cluster.job(hmkd_job).get("Dependency", "")
    again = hmkd(slurm_cluster, "submit", spec, *sets)
    assert again.returncode == 0 and again.stdout.count("skipped: DONE") == 4 and "submitted" not in again.stdout
    assert dependency in ("", "(null)") or "afterok" in dependency


def test_failing_stage_cancels_its_dependents(slurm_cluster, tmp_path):
    spec = os.path.join(REPO, "jobs", "smoke.yaml")
    sets = ["--set", "root=%s" % tmp_path, "--set", "stages.teacher.overrides=[loss.terms.ce.weight=.inf]"]
    for stage in ("teacher", "student", "hmkd", "eval"):
        sets += ["--set", "stages.%s.resources.partition=%s" % (stage, slurm_cluster.partition),
                 "--set", "stages.%s.resources.cpus_per_task=1" % stage]
    result = hmkd(slurm_cluster, "submit", spec, "--stages", "teacher,hmkd", *sets)
    assert result.returncode == 0, result.stderr
    rows = wait_for(slurm_cluster, spec, sets, lambda r: "FAILED" in r["teacher"]["state"] and
                    "CANCELLED" in r["hmkd"]["state"], timeout=300)
    assert not (tmp_path / "smoke" / "hmkd" / "DONE").exists()
    job = slurm_cluster.job(rows["hmkd"]["job_ids"][0])
    assert job.get("JobState") == "CANCELLED" and "Dependency" in job.get("Reason", "") + job.get("Dependency", "")
    assert rows["student"]["state"] == "NOT SUBMITTED"


def test_timeout_signal_requeues_and_resumes_bitwise(slurm_cluster, tmp_path):
    config = tiny_config(schedule={"max_iters": 40}, train={"checkpoint_interval": 100, "log_interval": 1})
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    reference = str(tmp_path / "reference")
    local = subprocess.run([sys.executable, "-m", "hmkd", "train", str(tmp_path / "exp.yaml"), "--run-dir",
                            reference], capture_output=True, text=True, cwd=REPO, timeout=300,
                           env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO))
    assert local.returncode == 0, local.stderr
    spec = write_spec(tmp_path, [{
        "name": "train", "kind": "train", "config": str(tmp_path / "exp.yaml"),
        "resources": {"partition": slurm_cluster.partition, "cpus_per_task": 1, "time": "00:30:00"}}])
    assert hmkd(slurm_cluster, "submit", spec).returncode == 0
    run_dir = tmp_path / "runs" / "tiny" / "train"
    job_id = job_id_of(run_dir)
    deadline = time.time() + 240
    while time.time() < deadline:  # signal once training is under way
        rows = [json.loads(line) for line in open(run_dir / "metrics.jsonl")] if (run_dir / "metrics.jsonl").exists() \
            else []
        if any(r.get("step", 0) >= 5 for r in rows):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("training did not start: %s" % slurm_cluster.job(job_id))
    slurm_cluster.run("scancel", "--signal=USR2", job_id)  # what Slurm sends before the time limit
    wait_done(slurm_cluster, run_dir, job_id)
    assert int(slurm_cluster.job(job_id).get("Restarts", "0")) >= 1  # requeued, not restarted by hand
    log = (run_dir / "train.log").read_text()
    assert "preemption signal: checkpoint saved at step" in log and "resumed from step" in log
    ref, got = final_state(reference), final_state(str(run_dir))
    assert ref["step"] == got["step"] == 40
    for key in ref["model"]:
        assert torch.equal(ref["model"][key], got["model"][key]), key


def test_two_task_distillation_takes_ranks_from_slurm(slurm_cluster, tmp_path):
    from hmkd.models import build_model

    teacher = tmp_path / "teacher.pth"
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, teacher)
    config = tiny_config(teacher={"name": "segformer_tiny", "checkpoint": str(teacher)},
                         loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4},
                                         "gla": {"weight": 1.0, "dim": 16, "patch_size": 2},
                                         "hfa": {"weight": 1.0}}},
                         schedule={"max_iters": 6})
    (tmp_path / "distill.yaml").write_text(yaml.safe_dump(config))
    spec = write_spec(tmp_path, [{
        "name": "hmkd", "kind": "distill", "config": str(tmp_path / "distill.yaml"),
        "resources": {"partition": slurm_cluster.partition, "tasks_per_node": 2, "cpus_per_task": 1,
                      "time": "00:20:00"}}])
    result = hmkd(slurm_cluster, "submit", spec)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "tiny" / "hmkd"
    wait_done(slurm_cluster, run_dir, job_id_of(run_dir))
    assert final_state(str(run_dir))["world_size"] == 2
    assert "x 2 processes" in (run_dir / "train.log").read_text()
