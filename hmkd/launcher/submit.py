"""Submit a pipeline's stages with submitit: chained Slurm jobs, or one after another on this machine.

Usage:
    actions = submit_slurm(spec)                 # Slurm: afterok dependencies + kill-on-invalid-dep
    actions = submit_local(spec)                 # this machine, stage by stage (submitit's local executor)
    print(dry_run(spec))                         # the sbatch scripts that would be submitted
    rows = status(spec); cancel(spec)

Submitting again is safe: stages whose run directories hold DONE are skipped and stages with a queued or running
job are left alone (their job ids are kept in <stage dir>/launcher.json, so status works from any login node).
"""
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import submitit

from hmkd.atomic import atomic_write_text
from hmkd.config import config_from_dict, deep_merge, load_yaml_config
from hmkd.config.loader import nested
from hmkd.engine.logger import read_jsonl
from hmkd.launcher.job import CompareJob, TrainJob
from hmkd.launcher.spec import SIGNAL_DELAY_S, PipelineSpec, Stage
from hmkd.rundir import RunDir, stage_runs

Job = Union[TrainJob, CompareJob]


class StageFailedError(RuntimeError):
    """A stage run with --local failed; the message names the stage and its log files."""


ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                 "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT"}


def run_dirs(spec: PipelineSpec, stage: Stage) -> List[RunDir]:
    return stage_runs(spec.stage_dir(stage.name), stage.seeds)


def stage_done(spec: PipelineSpec, stage: Stage) -> bool:
    return all(run.is_done() for run in run_dirs(spec, stage))


def input_values(spec: PipelineSpec, stage: Stage) -> Dict[str, Any]:
    """``inputs`` as config values: ``{teacher.checkpoint: teacher}`` -> {"teacher": {"checkpoint": <its model>}}."""
    values: Dict[str, Any] = {}
    for key, source in stage.inputs.items():
        name, _, filename = source.partition("/")
        upstream = spec.stage(name)
        if upstream.seeds and not filename:
            raise ValueError("stages.%s.inputs.%s: stage %s has seeds; name one run, e.g. %s/seed_%d/model.pth"
                             % (stage.name, key, name, name, upstream.seeds[0]))
        path = os.path.join(spec.stage_dir(name), filename) if filename else RunDir(spec.stage_dir(name)).model
        values = deep_merge(values, nested(key, path))
    return values


def jobs(spec: PipelineSpec, stage: Stage) -> List[Job]:
    """The picklable jobs of a stage (one per seed); configs are resolved and checked here, before submission."""
    env = dict(spec.distributed.env(), **spec.environment.env)
    env.update(spec.nccl)
    requeues = stage.resources.max_requeues
    if stage.kind == "compare":
        compare = [(name, spec.stage_dir(name)) for name in stage.compare]
        return [CompareJob(spec.stage_dir(stage.name), compare, stage.override_values, env, requeues, stage.baseline)]
    values = deep_merge(stage.override_values, input_values(spec, stage))
    out: List[Job] = []
    for seed, run in zip(stage.seeds or [None], run_dirs(spec, stage)):
        seeded = values if seed is None else deep_merge(values, nested("train.seed", seed))
        try:
            cfg = config_from_dict(deep_merge(load_yaml_config(stage.config), seeded))
        except (ValueError, FileNotFoundError) as exc:
            raise ValueError("%s: stages.%s: %s" % (spec.path, stage.name, exc))
        if stage.kind == "distill" and cfg.teacher is None:
            raise ValueError("%s: stages.%s is kind=distill but its config has no teacher section"
                             % (spec.path, stage.name))
        if stage.resources.gpus_per_node == 0 and cfg.train.device == "cuda":
            raise ValueError("%s: stages.%s asks for train.device=cuda with resources.gpus_per_node=0"
                             % (spec.path, stage.name))
        out.append(TrainJob(run.path, cfg.to_dict(), env, requeues))
    return out


def python_command(spec: PipelineSpec) -> str:
    env = spec.environment
    if env.kind == "apptainer":
        binds = " ".join("--bind %s" % shlex.quote(m) for m in env.mounts)
        return "apptainer exec --nv %s %s python" % (binds, shlex.quote(env.image))
    if env.kind == "pyxis":
        return "python"
    return shlex.quote(os.path.abspath(env.python) if env.python else sys.executable)


def local_executor(spec: PipelineSpec, stage: Stage) -> submitit.LocalExecutor:
    r = stage.resources
    executor = submitit.LocalExecutor(folder=_job_folder(spec, stage), max_num_timeout=r.max_requeues)
    executor.update_parameters(timeout_min=r.time_minutes, tasks_per_node=1, nodes=1, gpus_per_node=r.gpus_per_node)
    return executor


class _ScriptExecutor(submitit.SlurmExecutor):
    """submitit's executor for writing sbatch scripts only (dry runs): it does not ask for srun, so a dry run works
    on a machine without Slurm."""

    @classmethod
    def affinity(cls) -> int:
        return 1


def slurm_executor(spec: PipelineSpec, stage: Stage, dependency: Optional[str] = None,
                   script_only: bool = False) -> submitit.SlurmExecutor:
    """submitit's Slurm executor for a stage, with Slurm's own parameter names (no AutoExecutor layer)."""
    r = stage.resources
    kind = _ScriptExecutor if script_only else submitit.SlurmExecutor
    if not script_only and kind.affinity() <= 0:  # submitit's own test: srun on PATH
        raise FileNotFoundError("Slurm's srun is not on this machine's PATH: submit from a Slurm login node (or "
                                "inside the image there), print the jobs with --dry-run, or run them here with --local")
    executor = kind(folder=_job_folder(spec, stage), max_num_timeout=r.max_requeues, python=python_command(spec))
    params: Dict[str, Any] = dict(job_name="%s.%s" % (spec.experiment, stage.name), nodes=r.nodes,
                                  ntasks_per_node=r.tasks, cpus_per_task=r.cpus_per_task, time=r.time_minutes,
                                  signal_delay_s=SIGNAL_DELAY_S)
    if r.gpus_per_node:
        params["gpus_per_node"] = r.gpus_per_node
    if r.mem_gb:
        params["mem"] = "%dGB" % max(1, round(r.mem_gb))
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(r, key):
            params[key] = getattr(r, key)
    srun_args = ["--kill-on-bad-exit=1"]
    if spec.environment.kind == "pyxis":
        srun_args.append("--container-image=%s" % spec.environment.image)
        if spec.environment.mounts:
            srun_args.append("--container-mounts=%s" % ",".join(spec.environment.mounts))
    # Slurm requeues a --requeue job whose node fails; max_requeues 0 means such a job fails (its dependants cancel).
    additional: Dict[str, Any] = {"kill-on-invalid-dep": "yes", "requeue" if r.max_requeues else "no-requeue": True}
    additional.update(r.sbatch)
    params.update(srun_args=srun_args, additional_parameters=additional, setup=list(spec.environment.setup))
    if dependency:
        params["dependency"] = dependency
    if stage.seeds:
        params["array_parallelism"] = len(stage.seeds)
    executor.update_parameters(**params)
    return executor


def _job_folder(spec: PipelineSpec, stage: Stage) -> str:
    return os.path.join(RunDir(spec.stage_dir(stage.name)).submitit, "%j")


# ----------------------------------------------------------------------------------------------- state on disk
def read_state(spec: PipelineSpec, stage: Stage) -> Dict[str, Any]:
    path = RunDir(spec.stage_dir(stage.name)).launcher_state
    if not os.path.isfile(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def write_state(spec: PipelineSpec, stage: Stage, job_ids: Sequence[str], cluster: str) -> None:
    atomic_write_text(RunDir(spec.stage_dir(stage.name)).launcher_state, json.dumps(
        {"job_ids": list(job_ids), "cluster": cluster, "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


def slurm_states(job_ids: Sequence[str]) -> Dict[str, str]:
    """Job id -> Slurm state from squeue, then scontrol for jobs that left the queue (works without sacct)."""
    states: Dict[str, str] = {}
    base_ids = sorted({j.split("_")[0] for j in job_ids})
    if not base_ids:
        return states
    out = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(base_ids)], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    for job in base_ids:
        if any(k == job or k.startswith(job + "_") for k in states):
            continue
        out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            key = fields.get("JobId", job) + ("_" + fields["ArrayTaskId"] if "ArrayTaskId" in fields else "")
            states[key] = fields.get("JobState", "UNKNOWN")
    return states


def active_job_ids(state: Dict[str, Any]) -> List[str]:
    if state.get("cluster") != "slurm" or not state.get("job_ids"):
        return []
    states = slurm_states(state["job_ids"])
    return sorted(j for j, s in states.items() if s in ACTIVE_STATES)


# ----------------------------------------------------------------------------------------------- commands
def select_stages(spec: PipelineSpec, only: Optional[Sequence[str]]) -> List[Stage]:
    ordered = spec.ordered_stages()
    if not only:
        return ordered
    for name in only:
        spec.stage(name)  # unknown names fail here
    return [s for s in ordered if s.name in only]


def pending_work(spec: PipelineSpec, only: Optional[Sequence[str]], actions: List[Dict[str, Any]], log
                 ) -> Iterator[Tuple[Stage, List[Job]]]:
    """The selected stages that are not DONE, in order, with their jobs; every config is checked before the first
    is yielded. DONE stages are recorded in ``actions`` as skipped."""
    selected = select_stages(spec, only)
    work = {stage.name: jobs(spec, stage) for stage in selected if not stage_done(spec, stage)}
    for stage in selected:
        if stage.name in work:
            yield stage, work[stage.name]
        else:
            actions.append({"stage": stage.name, "action": "skipped (DONE)"})
            log("%-12s skipped: DONE" % stage.name)


def submit_local(spec: PipelineSpec, only: Optional[Sequence[str]] = None, log=print) -> List[Dict[str, Any]]:
    """Run what is not done on this machine, stage after stage in order (submitit's local executor)."""
    actions: List[Dict[str, Any]] = []
    for stage, stage_jobs in pending_work(spec, only, actions, log):
        missing = _undone_parents(spec, stage)  # stages run in order, so a selected parent is DONE by now
        if missing:
            raise _missing_parent(stage, missing[0])
        executor = local_executor(spec, stage)
        for job_payload in stage_jobs:
            job = executor.submit(job_payload)
            write_state(spec, stage, [str(job.job_id)], "local")
            log("%-12s running locally (job %s, logs in %s)" % (stage.name, job.job_id, job.paths.folder))
            try:
                job.result()
            except Exception as exc:
                last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                raise StageFailedError("stage %s failed (%s); see %s and %s" % (
                    stage.name, last, job.paths.stdout, job.paths.stderr))
        actions.append({"stage": stage.name, "action": "ran locally"})
    return actions


def submit_slurm(spec: PipelineSpec, only: Optional[Sequence[str]] = None, log=print) -> List[Dict[str, Any]]:
    """Submit what is not done to Slurm, chained with afterok dependencies; queued or running stages are left
    alone. Returns one action per selected stage (skipped / already queued / submitted)."""
    jobs_of: Dict[str, List[str]] = {}
    actions: List[Dict[str, Any]] = []
    for stage, stage_jobs in pending_work(spec, only, actions, log):
        running = active_job_ids(read_state(spec, stage))
        if running:
            jobs_of[stage.name] = running
            actions.append({"stage": stage.name, "action": "already queued", "job_ids": running})
            log("%-12s already queued or running: %s" % (stage.name, ", ".join(running)))
            continue
        dependency = _dependency(spec, stage, jobs_of)
        executor = slurm_executor(spec, stage, dependency)
        submitted = executor.submit_array(stage_jobs) if stage.seeds else [executor.submit(stage_jobs[0])]
        ids = [str(j.job_id) for j in submitted]
        write_state(spec, stage, ids, "slurm")
        jobs_of[stage.name] = ids
        actions.append({"stage": stage.name, "action": "submitted", "job_ids": ids, "dependency": dependency})
        log("%-12s submitted %s%s" % (stage.name, ", ".join(ids), " after " + dependency if dependency else ""))
    return actions


def _dependency(spec: PipelineSpec, stage: Stage, jobs_of: Dict[str, List[str]]) -> Optional[str]:
    """``afterok:`` on the jobs of every upstream stage that is not DONE: submitted now, or already queued."""
    parents = []
    for parent in _undone_parents(spec, stage):
        ids = jobs_of.get(parent) or active_job_ids(read_state(spec, spec.stage(parent)))
        if not ids:
            raise _missing_parent(stage, parent)
        parents.extend(sorted({i.split("_")[0] for i in ids}))
    return "afterok:" + ":".join(parents) if parents else None


def _undone_parents(spec: PipelineSpec, stage: Stage) -> List[str]:
    return [p for p in spec.upstream(stage) if not stage_done(spec, spec.stage(p))]


def _missing_parent(stage: Stage, parent: str) -> ValueError:
    return ValueError("stage %s needs stage %s, which is neither DONE, queued, nor selected; submit it too "
                      "(or drop --stages)" % (stage.name, parent))


def dry_run(spec: PipelineSpec, only: Optional[Sequence[str]] = None) -> str:
    """The sbatch scripts submitit would write, with upstream job ids shown as <stage>; nothing is submitted."""
    texts = []
    for stage in select_stages(spec, only):
        jobs(spec, stage)  # checks the configs as a real submission would
        parents = _undone_parents(spec, stage)
        dependency = "afterok:" + ":".join("<%s>" % p for p in parents) if parents else None
        executor = slurm_executor(spec, stage, dependency, script_only=True)
        if stage.seeds:
            executor.parameters["map_count"] = len(stage.seeds)
        # submitit's own script text (private API, stable across 1.5.x): exactly what sbatch would receive
        script = executor._make_submission_file_text(executor._submitit_command_str, "<id>")
        state = "DONE, would be skipped" if stage_done(spec, stage) else "would be submitted"
        texts.append("### stage %s (%s, %s)\n%s" % (stage.name, stage.kind, state, script))
    return "\n".join(texts)


def status(spec: PipelineSpec) -> List[Dict[str, Any]]:
    """Per stage: DONE from the run directory, else the Slurm state of its jobs, plus training progress."""
    rows = []
    for stage in spec.ordered_stages():
        state = read_state(spec, stage)
        row: Dict[str, Any] = {"stage": stage.name, "kind": stage.kind, "job_ids": state.get("job_ids", [])}
        if stage_done(spec, stage):
            row["state"] = "DONE"
        elif state.get("cluster") == "slurm":
            states = slurm_states(state["job_ids"])
            row["state"] = ",".join(sorted(set(states.values()))) or "UNKNOWN (left the queue; see the logs)"
        elif state:
            row["state"] = "NOT DONE (ran locally; see the logs)"
        else:
            row["state"] = "NOT SUBMITTED"
        row["progress"] = progress(spec, stage)
        row["logs"] = RunDir(spec.stage_dir(stage.name)).submitit
        rows.append(row)
    return rows


def progress(spec: PipelineSpec, stage: Stage) -> str:
    parts = []
    for run in run_dirs(spec, stage):
        rows = [r for r in read_jsonl(run.metrics) if "loss/total" in r]
        if rows:
            parts.append("step %d, eta %ds" % (rows[-1]["step"], rows[-1].get("eta_s", 0)))
    return "; ".join(parts) or "-"


def cancel(spec: PipelineSpec) -> List[str]:
    cancelled = []
    for stage in spec.ordered_stages():
        ids = active_job_ids(read_state(spec, stage))
        if ids:
            subprocess.run(["scancel"] + sorted({i.split("_")[0] for i in ids}), check=True)
            cancelled.extend(ids)
    return cancelled
