"""Distillation on two Slurm nodes: each slurmd in its own network namespace (the ``slurm_nodes`` fixture), 2 gloo
processes per node talking over the namespaces' bridge.

The same 2 x 2 run is checked against a 4-process run on one host (torchrun), then interrupted three ways: USR2
(checkpoint, requeue, resume), a node whose link is cut (the collectives time out, the job requeues itself, the
requeued run resumes from the last complete checkpoint once the node is back) and a node whose processes are killed
with no requeue budget left (the job fails, its dependant is cancelled). Every run is a real ``hmkd submit``.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from engine_config import tiny_config
from runner import REPO, assert_bitwise_equal, cli_env, final_state, latest_checkpoint
from slurm_client import FAILED_STATES, hmkd, job_id_of, statuses, wait_done, wait_for, write_spec

pytestmark = pytest.mark.slow

STEPS = 24
CHECKPOINT_EVERY = 4
COLLECTIVE_TIMEOUT_S = 15  # the spec's distributed.timeout_s: how long ranks wait for a lost node


def assert_finished_as(reference, got):
    assert got["step"] == STEPS
    assert_bitwise_equal(reference, got)


@pytest.fixture(scope="module")
def distill(tmp_path_factory):
    """A tiny HMKD config (teacher file included) and its final state from 4 gloo processes on this host."""
    from hmkd.models import build_model

    folder = tmp_path_factory.mktemp("multinode")
    teacher = folder / "teacher.pth"
    torch.save({"model": build_model("segformer_tiny", 3).state_dict()}, str(teacher))
    config = tiny_config(
        teacher={"name": "segformer_tiny", "checkpoint": str(teacher)},
        data={"num_train": 16},
        loss={"terms": {"ce": {"weight": 1.0}, "aux_ce": {"weight": 0.4},
                        "gla": {"weight": 1.0, "dim": 16, "patch_size": 2}, "hfa": {"weight": 1.0}}},
        schedule={"max_iters": STEPS},
        # deterministic: gradients summed in rank order, so a resumed 4-process run stays bitwise (rank_ordered_mean)
        train={"checkpoint_interval": CHECKPOINT_EVERY, "keep_checkpoints": 20, "eval_interval": 0,
               "deterministic": True})
    path = folder / "distill.yaml"
    path.write_text(yaml.safe_dump(config))
    reference = folder / "reference"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node",
                "4", "-m", "hmkd", "distill", str(path), "--run-dir", str(reference)]
    result = subprocess.run(torchrun, capture_output=True, text=True, timeout=600, env=cli_env(), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    state = final_state(str(reference))
    assert state["world_size"] == 4
    return {"config": str(path), "reference": state}


def two_node_spec(tmp_path, cluster, distill, max_requeues=3, dependant=False):
    stages = [{"name": "hmkd", "kind": "distill", "config": distill["config"],
               "resources": {"partition": cluster.partition, "nodes": 2, "tasks_per_node": 2, "cpus_per_task": 1,
                             "time": "00:20:00", "max_requeues": max_requeues}}]
    if dependant:
        stages.append({"name": "eval", "kind": "compare", "compare": ["hmkd"],
                       "resources": {"partition": cluster.partition, "cpus_per_task": 1, "time": "00:20:00"}})
    return write_spec(tmp_path, stages, distributed={"timeout_s": COLLECTIVE_TIMEOUT_S})


def submit(cluster, spec):
    result = hmkd(cluster, "submit", spec)
    assert result.returncode == 0, result.stderr
    return result


def steps_logged(run_dir):
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return max([r.get("step", 0) for r in rows if "loss/total" in r] or [0])


def wait_until(predicate, timeout, what, cluster=None, poll=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("timed out after %s s waiting for %s\n%s" % (timeout, what, cluster.logs() if cluster else ""))


def latest_step(run_dir):
    if not (run_dir / "checkpoints" / "latest").exists():
        return None
    return int(os.path.basename(latest_checkpoint(str(run_dir)))[len("step_"):-len(".pth")])


def test_two_node_distillation_matches_four_processes_on_one_host(slurm_nodes, distill, tmp_path):
    """`hmkd submit` of a spec whose distillation has nodes: 2, then `hmkd status`: ranks 0-1 on the first node,
    2-3 on the second, rendezvous at the first node's address, weights equal to 4 processes on one host."""
    spec = two_node_spec(tmp_path, slurm_nodes, distill, dependant=True)
    t0 = time.monotonic()
    submit(slurm_nodes, spec)
    rows = wait_for(slurm_nodes, spec, [], lambda r: all(v["state"] == "DONE" for v in r.values()) or
                    any(s in v["state"] for v in r.values() for s in FAILED_STATES), timeout=400)
    print("two-node distillation + compare: %.0f s from submit to DONE" % (time.monotonic() - t0))
    assert all(v["state"] == "DONE" for v in rows.values()), rows
    run_dir = tmp_path / "runs" / "tiny" / "hmkd"
    ranks = json.loads((run_dir / "ranks.json").read_text())
    first, second = (n["name"] for n in slurm_nodes.nodes[:2])
    assert [r["rank"] for r in ranks] == [0, 1, 2, 3]
    assert [r["node"] for r in ranks] == [first, first, second, second]
    assert [r["hostname"] for r in ranks] == [r["node"] for r in ranks]  # each node is its own host
    assert {r["master_addr"] for r in ranks} == {first}
    for node in slurm_nodes.nodes[:2]:  # the rendezvous name is the first node's address, seen from both nodes
        seen = slurm_nodes.node_exec(node["name"], "getent", "hosts", first).stdout.split()
        assert seen[0] == slurm_nodes.nodes[0]["addr"]
    log = (run_dir / "train.log").read_text()
    assert "4 processes on %s (ranks 0,1), %s (ranks 2,3); rendezvous %s:" % (first, second, first) in log
    got = final_state(str(run_dir))
    assert got["world_size"] == 4
    assert_finished_as(distill["reference"], got)
    script = next((run_dir / "submitit").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --requeue" in script
    assert "| hmkd |" in (tmp_path / "runs" / "tiny" / "eval" / "report.md").read_text()


def test_usr2_on_two_nodes_checkpoints_requeues_and_resumes_bitwise(slurm_nodes, distill, tmp_path):
    spec = two_node_spec(tmp_path, slurm_nodes, distill)
    submit(slurm_nodes, spec)
    run_dir = tmp_path / "runs" / "tiny" / "hmkd"
    job = job_id_of(run_dir)
    wait_until(lambda: steps_logged(run_dir) >= 6, 300, "training under way", slurm_nodes)
    slurm_nodes.run("scancel", "--signal=USR2", job)  # what Slurm sends before a time limit, to every task
    wait_done(slurm_nodes, run_dir, job, timeout=400)
    assert int(slurm_nodes.job(job).get("Restarts", "0")) >= 1
    log = (run_dir / "train.log").read_text()
    saved = int(log.split("preemption signal: checkpoint saved at step ")[1].split(";")[0])
    assert "resumed from step %d " % saved in log and 6 <= saved < STEPS
    assert_finished_as(distill["reference"], final_state(str(run_dir)))


def test_lost_node_ends_the_job_within_the_timeout_and_the_requeued_run_resumes(slurm_nodes, distill, tmp_path):
    """The second node's link is cut mid-run: the first node's ranks fail their collective after distributed.timeout_s
    and requeue the job (max_requeues 1); the dependant stage keeps waiting; once the node is back the job runs
    again, resumes from the last complete checkpoint and ends bitwise equal to an uninterrupted run."""
    spec = two_node_spec(tmp_path, slurm_nodes, distill, max_requeues=1, dependant=True)
    submit(slurm_nodes, spec)
    run_dir = tmp_path / "runs" / "tiny" / "hmkd"
    job = job_id_of(run_dir)
    lost = slurm_nodes.nodes[1]["name"]
    wait_until(lambda: (latest_step(run_dir) or 0) >= CHECKPOINT_EVERY and steps_logged(run_dir) >= 6, 300,
               "a checkpoint and training under way", slurm_nodes)
    slurm_nodes.set_link(lost, False)
    cut = time.monotonic()
    try:
        wait_until(lambda: slurm_nodes.state(job) not in ("RUNNING", ""), COLLECTIVE_TIMEOUT_S + 60,
                   "the job to leave RUNNING after the link cut", slurm_nodes)
        ended_s = time.monotonic() - cut
        state_after = slurm_nodes.state(job)
        resume_from = latest_step(run_dir)
        eval_state = statuses(slurm_nodes, spec)["eval"]["state"]
    finally:
        slurm_nodes.set_link(lost, True)
        slurm_nodes.restart_slurmd(lost)  # the node comes back (slurmctld would take up to 2 min to ask it)
    print("lost node: job left RUNNING %.1f s after the link cut (%s); last complete checkpoint: step %s"
          % (ended_s, state_after, resume_from))
    # The ranks' own timeout, well before slurmctld declares the node DOWN (SlurmdTimeout, 20 s + its ping cycle).
    assert ended_s < COLLECTIVE_TIMEOUT_S + 10, ended_s
    assert eval_state == "PENDING", eval_state  # the dependant waits for the requeued stage
    wait_done(slurm_nodes, run_dir, job, timeout=400)
    log = (run_dir / "train.log").read_text()
    errors = "".join(p.read_text() for p in (run_dir / "submitit").rglob("*.err"))
    first = slurm_nodes.nodes[0]["name"]
    assert "a collective failed on rank 0 on %s" % first in errors or \
        "a collective failed on rank 1 on %s" % first in errors, errors[-3000:]
    assert "requeued job %s (restart 1 of at most 1)" % job in errors
    assert "resumed from step %d " % resume_from in log, log[-3000:]
    assert slurm_nodes.job(job).get("Restarts") == "1"
    assert_finished_as(distill["reference"], final_state(str(run_dir)))
    slurm_nodes.wait_node_state(lost, {"idle", "mix", "alloc"}, timeout=60)
    rows = wait_for(slurm_nodes, spec, [], lambda r: r["eval"]["state"] == "DONE" or
                    any(s in r["eval"]["state"] for s in FAILED_STATES), timeout=300)
    assert rows["eval"]["state"] == "DONE", rows


def test_killed_tasks_without_requeue_budget_fail_the_job_and_cancel_its_dependant(slurm_nodes, distill, tmp_path):
    spec = two_node_spec(tmp_path, slurm_nodes, distill, max_requeues=0, dependant=True)
    submit(slurm_nodes, spec)
    run_dir = tmp_path / "runs" / "tiny" / "hmkd"
    job = job_id_of(run_dir)
    lost = slurm_nodes.nodes[1]["name"]
    wait_until(lambda: steps_logged(run_dir) >= 4, 300, "training under way", slurm_nodes)
    victims = [pid for pid in slurm_nodes.node_pids(lost) if "submitit" in _cmdline(pid)]
    assert len(victims) == 2, victims  # the node's two ranks
    killed = time.monotonic()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    fields = slurm_nodes.wait_state(job, FAILED_STATES, timeout=COLLECTIVE_TIMEOUT_S + 45)
    print("killed tasks: job %s %.1f s after the kill" % (fields["JobState"], time.monotonic() - killed))
    assert fields.get("Restarts", "0") == "0"
    rows = wait_for(slurm_nodes, spec, [], lambda r: "CANCELLED" in r["eval"]["state"], timeout=60)
    assert not (run_dir / "DONE").exists() and rows["hmkd"]["state"] != "DONE"
    assert slurm_nodes.job(job_id_of(tmp_path / "runs" / "tiny" / "eval")).get("Reason") == \
        "DependencyNeverSatisfied"


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""
