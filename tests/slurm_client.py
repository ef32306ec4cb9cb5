"""Driving the real ``hmkd`` command against a test Slurm cluster (importable: pytest's pythonpath has tests/).

Usage:
    result = hmkd(cluster, "submit", spec)                     # a CompletedProcess, with SLURM_CONF set
    rows = wait_for(cluster, spec, [], lambda rows: rows["hmkd"]["state"] == "DONE")   # `hmkd status --json` rows
    wait_done(cluster, run_dir, job_id)                        # DONE in the run directory, or fail with the log
    write_spec(tmp_path, [stage, ...], distributed={"timeout_s": 15})                   # spec.yaml in tmp_path
"""
import json
import subprocess
import sys
import time

import yaml

from runner import REPO

FAILED_STATES = ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


def hmkd(cluster, *args, timeout=120):
    env = cluster.environ({"OMP_NUM_THREADS": "1", "PYTHONPATH": REPO})
    return subprocess.run([sys.executable, "-m", "hmkd"] + list(args), capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)


def statuses(cluster, spec, *sets):
    result = hmkd(cluster, "status", spec, "--json", *sets)
    assert result.returncode == 0, result.stderr
    return {row["stage"]: row for row in json.loads(result.stdout)}


def wait_for(cluster, spec, sets, done, timeout=600):
    """Poll `hmkd status` until ``done(rows)``; on timeout fail with the rows and the newest job logs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = statuses(cluster, spec, *sets)
        if done(rows):
            return rows
        time.sleep(3)
    raise AssertionError("timed out; status: %s\nsqueue: %s" % (json.dumps(rows, indent=1),
                                                                cluster.run("squeue", check=False).stdout))


def wait_done(cluster, run_dir, job_id, timeout=300):
    """Until the run directory has DONE; fails at once when the job ends without it (with the job's fields)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run_dir / "DONE").exists():
            return
        if cluster.state(job_id) in FAILED_STATES:
            break
        time.sleep(2)
    log = run_dir / "train.log"
    raise AssertionError("no DONE in %s: %s\n%s" % (run_dir, cluster.job(job_id), log.read_text()[-2000:]
                                                     if log.exists() else ""))


def job_id_of(run_dir):
    """The (first) Slurm job id the launcher recorded for a stage directory."""
    return json.loads((run_dir / "launcher.json").read_text())["job_ids"][0]


def write_spec(tmp_path, stages, experiment="tiny", **top):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(dict({"experiment": experiment, "root": str(tmp_path / "runs"), "stages": stages},
                                        **top), sort_keys=False))
    return str(path)
