"""The test cluster is a real Slurm and does what the launcher relies on: batch jobs,
afterok chains with kill-on-invalid-dep, requeue, USR2 delivery, shared node, and submitit
(submit, result, and its USR2 checkpoint-and-requeue path) without accounting."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def _lines(path: Path):
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return path


def test_cluster_is_isolated_from_default_ports(slurm_cluster):
    ports = slurm_cluster.info["ports"]
    assert ports["slurmctld"] not in (6817, 6818) and ports["slurmd"] not in (6817, 6818)
    assert ports["slurmctld"] != ports["slurmd"]
    conf = slurm_cluster.conf.read_text()
    assert f"SlurmctldPort={ports['slurmctld']}" in conf
    assert str(slurm_cluster.dir) in conf  # state, spool, logs under the cluster dir
    out = slurm_cluster.run("sinfo", "-h", "-o", "%P %a %t").stdout.split()
    assert out[:2] == [slurm_cluster.partition + "*", "up"]
    assert out[2] in ("idle", "mix", "alloc")


def test_batch_job_writes_file_and_completes(slurm_cluster, tmp_path):
    out = tmp_path / "out.txt"
    job = slurm_cluster.sbatch("-o", str(tmp_path / "%j.log"), "--wrap",
                               f'echo "job=$SLURM_JOB_ID conf=$SLURM_CONF" > {out}')
    fields = slurm_cluster.wait_state(job, timeout=30)
    assert fields["JobState"] == "COMPLETED", fields
    assert fields["ExitCode"] == "0:0"
    assert out.read_text().strip() == f"job={job} conf={slurm_cluster.conf}"


def test_failed_parent_cancels_afterok_child(slurm_cluster, tmp_path):
    # The parent is held until the child is queued, so the dependency is never already
    # resolved at submission time.
    parent = slurm_cluster.sbatch("--hold", "-o", "/dev/null", "--wrap", "exit 1")
    child_out = tmp_path / "child.txt"
    child = slurm_cluster.sbatch("-o", "/dev/null", f"--dependency=afterok:{parent}",
                                 "--kill-on-invalid-dep=yes", "--wrap", f"touch {child_out}")
    assert slurm_cluster.state(child) == "PENDING"
    slurm_cluster.run("scontrol", "release", parent)
    parent_fields = slurm_cluster.wait_state(parent, timeout=30)
    assert parent_fields["JobState"] == "FAILED"
    assert parent_fields["ExitCode"] == "1:0"
    child_fields = slurm_cluster.wait_state(child, timeout=30)
    assert child_fields["JobState"] == "CANCELLED", child_fields
    assert child_fields["Reason"] == "DependencyNeverSatisfied"
    assert not child_out.exists()


@pytest.mark.slow
def test_requeue_runs_job_again_with_restart_count(slurm_cluster, tmp_path):
    counter = tmp_path / "runs.txt"
    script = _script(tmp_path / "requeue.sh", f"""
        echo "run restart=${{SLURM_RESTART_COUNT:-unset}}" >> {counter}
        if [ -n "$SLURM_RESTART_COUNT" ]; then exit 0; fi
        for i in $(seq 1 600); do sleep 0.1; done   # first run: wait to be requeued
    """)
    job = slurm_cluster.sbatch("--requeue", "-o", str(tmp_path / "%j.log"), str(script))
    _wait_for(lambda: len(_lines(counter)) >= 1, 30, "the first run")
    slurm_cluster.wait_state(job, {"RUNNING"}, timeout=10)
    slurm_cluster.run("scontrol", "requeue", job)
    # A requeued job may start again only after the credential lifetime (AuthInfo
    # cred_expire, 10 s in the test cluster; Slurm's default is 120 s).
    _wait_for(lambda: len(_lines(counter)) >= 2, 45, "the second run after requeue")
    fields = slurm_cluster.wait_state(job, timeout=30)
    assert fields["JobState"] == "COMPLETED", fields
    assert fields["Restarts"] == "1"
    assert _lines(counter) == ["run restart=unset", "run restart=1"]


def test_usr2_reaches_batch_script_trap(slurm_cluster, tmp_path):
    ready, got = tmp_path / "ready", tmp_path / "got_usr2"
    script = _script(tmp_path / "usr2.sh", f"""
        trap 'echo "USR2 in $SLURM_JOB_ID" > {got}; exit 0' USR2
        touch {ready}
        for i in $(seq 1 600); do sleep 0.1; done
        exit 7   # not signalled
    """)
    job = slurm_cluster.sbatch("--time=00:02:00", "-o", str(tmp_path / "%j.log"), str(script))
    _wait_for(ready.exists, 30, "the job to install its trap")
    slurm_cluster.run("scancel", "--signal=USR2", "--batch", job)
    _wait_for(got.exists, 15, "the USR2 trap to run")
    assert got.read_text().strip() == f"USR2 in {job}"
    fields = slurm_cluster.wait_state(job, timeout=20)
    assert fields["JobState"] == "COMPLETED", fields


def test_two_one_cpu_jobs_share_the_node(slurm_cluster, tmp_path):
    if slurm_cluster.cpus < 2:
        pytest.skip(f"node has {slurm_cluster.cpus} CPU")
    # Each job announces itself and waits for the other: both complete only if they overlap.
    script = _script(tmp_path / "pair.sh", f"""
        touch {tmp_path}/up.$1
        for i in $(seq 1 200); do
            [ -e {tmp_path}/up.a ] && [ -e {tmp_path}/up.b ] && exit 0
            sleep 0.1
        done
        exit 3
    """)
    jobs = [slurm_cluster.sbatch("-c", "1", "-n", "1", "-o", "/dev/null", str(script), name)
            for name in ("a", "b")]
    _wait_for(lambda: all(slurm_cluster.state(j) in ("RUNNING", "COMPLETED") for j in jobs),
              30, "both jobs running")
    for job in jobs:
        fields = slurm_cluster.wait_state(job, timeout=30)
        assert fields["JobState"] == "COMPLETED", fields
        assert fields["NumCPUs"] == "1"


SUBMITIT_RESULT = """
import json, os, sys, time
import submitit

def double(x):
    return {"value": 2 * x, "job_id": os.environ.get("SLURM_JOB_ID")}

folder, partition = sys.argv[1], sys.argv[2]
ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
ex.update_parameters(slurm_partition=partition, timeout_min=10, cpus_per_task=1, nodes=1,
                     tasks_per_node=1)
t0 = time.time()
job = ex.submit(double, 21)
states = {job.state}
while not job.done() and time.time() - t0 < 60:
    states.add(job.state)
    time.sleep(0.2)
result = job.result()
print(json.dumps({"job_id": job.job_id, "states": sorted(states), "final_state": job.state,
                  "result": result, "seconds": round(time.time() - t0, 1)}))
"""

SUBMITIT_REQUEUE = """
import json, os, subprocess, sys, time
import submitit

class Stage(submitit.helpers.Checkpointable):
    def __init__(self, marker_dir):
        self.marker_dir = marker_dir
        self.checkpointed = False

    def __call__(self):
        restart = os.environ.get("SLURM_RESTART_COUNT", "0")
        with open(os.path.join(self.marker_dir, "runs.txt"), "a") as f:
            f.write(restart + "\\n")
        if not self.checkpointed:
            open(os.path.join(self.marker_dir, "ready"), "w").close()
            for _ in range(600):
                time.sleep(0.1)
            return {"signalled": False}
        return {"signalled": True, "restart": restart, "job_id": os.environ["SLURM_JOB_ID"]}

    def checkpoint(self, *args, **kwargs):
        self.checkpointed = True
        return super().checkpoint(*args, **kwargs)

folder, partition, marker_dir = sys.argv[1], sys.argv[2], sys.argv[3]
ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
ex.update_parameters(slurm_partition=partition, timeout_min=10, cpus_per_task=1, nodes=1,
                     tasks_per_node=1)
job = ex.submit(Stage(marker_dir))
ready = os.path.join(marker_dir, "ready")
t0 = time.time()
while not os.path.exists(ready):
    assert time.time() - t0 < 60, "job did not start"
    time.sleep(0.1)
time.sleep(0.5)  # let submitit's signal handler be installed (it is, before the call)
# What Slurm's --signal=USR2@90 does near the time limit: USR2 to the job steps (srun'd python).
subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
result = job.result()
print(json.dumps({"job_id": job.job_id, "result": result, "state": job.state,
                  "seconds": round(time.time() - t0, 1)}))
"""


def _run_driver(slurm_cluster, tmp_path, source, *args, timeout=90):
    driver = tmp_path / "driver.py"
    driver.write_text(source)
    res = subprocess.run([sys.executable, str(driver), *map(str, args)], cwd=str(tmp_path),
                         env=slurm_cluster.environ(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}"
                     for p in sorted((tmp_path / "submitit").rglob("*_log.*")))
    assert res.returncode == 0, f"driver failed:\n{res.stderr[-3000:]}\n{logs}"
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


def test_submitit_submits_and_returns_result_without_accounting(slurm_cluster, tmp_path):
    pytest.importorskip("submitit")
    out, stderr = _run_driver(slurm_cluster, tmp_path, SUBMITIT_RESULT,
                              tmp_path / "submitit" / "%j", slurm_cluster.partition)
    assert out["result"] == {"value": 42, "job_id": out["job_id"]}
    # No slurmdbd: sacct fails, submitit says UNKNOWN (and warns) but result() still works
    # because it watches the result pickle. The launcher must not trust job.state here.
    assert out["final_state"] == "UNKNOWN"
    assert "sacct" in stderr
    # submitit's result pickle is written before the task exits: Slurm marks the job finished a moment later.
    assert slurm_cluster.wait_state(out["job_id"])["JobState"] == "COMPLETED"


# timeout_min=10 in the drivers: submitit asks for --signal=USR2@90 and Slurm may send it up to
# 60 s early, so a 2-minute limit could signal the job before Python installs its handler.
@pytest.mark.slow
def test_submitit_usr2_checkpoints_and_requeues(slurm_cluster, tmp_path):
    pytest.importorskip("submitit")
    markers = tmp_path / "markers"
    markers.mkdir()
    out, _ = _run_driver(slurm_cluster, tmp_path, SUBMITIT_REQUEUE,
                         tmp_path / "submitit" / "%j", slurm_cluster.partition, markers)
    assert out["result"] == {"signalled": True, "restart": "1", "job_id": out["job_id"]}
    assert _lines(markers / "runs.txt") == ["0", "1"]
    fields = slurm_cluster.wait_state(out["job_id"], timeout=20)
    assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "1", fields
