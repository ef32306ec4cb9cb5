"""Pipeline specs (jobs/*.yaml): an experiment's shared-storage root, its environment and its stages.

Usage: spec = load_spec("jobs/smoke.yaml", sets=["root=/shared/runs"]); spec.ordered_stages()

A stage runs one of train / distill / compare with a config and overrides, on given resources, after the stages it
depends on. ``inputs`` feed an upstream stage's outputs into the config (``teacher.checkpoint: teacher`` becomes
``teacher.checkpoint=<root>/<experiment>/teacher/model.pth``). ``seeds`` turn a stage into a job array with one run
directory per seed. Everything is checked before anything is submitted (hmkd.config.typed, as experiment configs
are); errors name the stage and the key the way ``--set`` addresses them: ``stages.hmkd.resources.nodes``.
"""
import os
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from hmkd.config.loader import deep_merge, parse_override, read_yaml
from hmkd.config.typed import check_at_least, check_choice, check_positive, from_dict

log = logging.getLogger(__name__)
SIGNAL_DELAY_S = 90  # submitit's default --signal=USR2@90
MIN_TIME_MINUTES = 3  # SIGNAL_DELAY_S + Slurm's up-to-60 s early delivery, rounded up
_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d\d)(?::(\d\d))?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TRAINING_KINDS = ("train", "distill")
STAGE_KINDS = TRAINING_KINDS + ("compare",)  # compare: evaluate the listed stages' models, then write the report
OLD_KIND_NAMES = {"eval": "compare"}  # specs written before the rename keep working


@dataclass
class Environment:
    """How a job gets the package: ``venv`` (a Python on shared storage), ``pyxis`` (enroot image through srun's
    --container-image) or ``apptainer`` (``apptainer exec --nv IMAGE python``)."""

    kind: str = "venv"
    python: Optional[str] = None
    image: Optional[str] = None
    mounts: List[str] = field(default_factory=list)
    setup: List[str] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        check_choice("kind", self.kind, ("venv", "pyxis", "apptainer"))
        if self.kind != "venv" and not self.image:
            raise ValueError("image is required for kind=%s" % self.kind)


@dataclass
class Distributed:
    """How the ranks of a multi-process stage watch each other. ``timeout_s`` bounds every collective (gloo and NCCL):
    when a node is lost, the ranks left waiting fail after it and the job ends (requeued as ``max_requeues`` says)
    instead of hanging; empty means the engine's default (600 s). ``async_error_handling`` lets NCCL abort a
    timed-out collective rather than block in it (torch 1.11 needs it set; torch >= 2.2 has it on by default)."""

    timeout_s: Optional[float] = None
    async_error_handling: bool = True

    def __post_init__(self):
        if self.timeout_s is not None:
            check_positive("timeout_s", self.timeout_s)

    def env(self) -> Dict[str, str]:
        """The variables that carry these settings into a job (the spec's ``nccl`` section may still override)."""
        from hmkd.engine.distributed import COLLECTIVE_TIMEOUT_ENV

        flag = "1" if self.async_error_handling else "0"
        out = {"NCCL_ASYNC_ERROR_HANDLING": flag, "TORCH_NCCL_ASYNC_ERROR_HANDLING": flag}
        if self.timeout_s is not None:
            out[COLLECTIVE_TIMEOUT_ENV] = "%g" % self.timeout_s
        return out


@dataclass
class Resources:
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: Optional[int] = None
    cpus_per_task: int = 2
    mem_gb: Optional[float] = None
    time: str = "01:00:00"
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    max_requeues: int = 3  # requeues of a job for any reason: timeout, preemption, a lost node
    sbatch: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("nodes", "cpus_per_task"):
            check_at_least(name, getattr(self, name), 1)
        for name in ("gpus_per_node", "max_requeues"):
            check_at_least(name, getattr(self, name), 0)
        if self.tasks_per_node is not None:
            check_at_least("tasks_per_node", self.tasks_per_node, 1)
        if self.mem_gb is not None:
            check_positive("mem_gb", self.mem_gb)
        _ = self.time_minutes  # checks the format now, not at submission

    @property
    def tasks(self) -> int:
        """One task per GPU (what DDP and submitit expect); CPU stages default to one task per node."""
        return self.tasks_per_node or max(self.gpus_per_node, 1)

    @property
    def time_minutes(self) -> int:
        match = _TIME.match(str(self.time))
        if not match:
            raise ValueError("time must look like HH:MM[:SS] or D-HH:MM[:SS], got %r" % (self.time,))
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        total = days * 1440 + hours * 60 + minutes + (1 if seconds else 0)
        if total < MIN_TIME_MINUTES:
            raise ValueError("time must be at least 00:%02d:00, got %r: submitit asks Slurm for USR2 %d s before "
                             "the limit and Slurm may send it up to 60 s early, so a shorter job is signalled "
                             "before it starts" % (MIN_TIME_MINUTES, self.time, SIGNAL_DELAY_S))
        return total


@dataclass
class Stage:
    name: str
    kind: str
    config: Optional[str] = None
    overrides: List[str] = field(default_factory=list)
    depends_on: List[str] = field(default_factory=list)
    inputs: Dict[str, str] = field(default_factory=dict)
    seeds: List[int] = field(default_factory=list)
    compare: List[str] = field(default_factory=list)
    baseline: Optional[str] = None  # the compared stage others are measured against (default: the label-only student)
    resources: Resources = field(default_factory=Resources)

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise ValueError("name %r must be letters, digits, '_', '-' or '.'" % self.name)
        self.kind = OLD_KIND_NAMES.get(self.kind, self.kind)
        check_choice("kind", self.kind, STAGE_KINDS)
        if self.kind in TRAINING_KINDS and not self.config:
            raise ValueError("config is required for kind=%s" % self.kind)
        if self.kind == "compare" and not self.compare:
            raise ValueError("compare must list the stages to evaluate")
        if self.baseline is not None and self.baseline not in self.compare:
            raise ValueError("baseline %r must be one of the compared stages (%s)" % (self.baseline,
                                                                                    ", ".join(self.compare)))
        try:
            _ = self.override_values  # a malformed override fails at load time, naming itself
        except ValueError as exc:
            raise ValueError("overrides: %s" % exc)

    @property
    def override_values(self) -> Dict[str, Any]:
        """The overrides as one nested dict: jobs receive data, never ``key=value`` strings to parse again."""
        merged: Dict[str, Any] = {}
        for override in self.overrides:
            merged = deep_merge(merged, parse_override(override))
        return merged


@dataclass
class PipelineSpec:
    experiment: str
    root: str
    stages: List[Stage]
    environment: Environment = field(default_factory=Environment)
    distributed: Distributed = field(default_factory=Distributed)
    nccl: Dict[str, str] = field(default_factory=dict)
    path: str = ""

    def __post_init__(self):
        if not _NAME.match(self.experiment):
            raise ValueError("experiment %r must be letters, digits, '_', '-' or '.'" % self.experiment)
        names = [s.name for s in self.stages]
        if not names:
            raise ValueError("stages is empty")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError("stage names must be unique; repeated: %s" % ", ".join(repeated))
        for stage in self.stages:
            for key, needed in [("depends_on", d) for d in stage.depends_on] + \
                               [("inputs", v.split("/")[0]) for v in stage.inputs.values()] + \
                               [("compare", c) for c in stage.compare]:
                if needed not in names:
                    raise ValueError("stages.%s.%s names unknown stage %r; stages are: %s"
                                     % (stage.name, key, needed, ", ".join(names)))
        self.ordered_stages()

    def stage_dir(self, stage: str) -> str:
        return os.path.join(self.root, self.experiment, stage)

    def upstream(self, stage: Stage) -> List[str]:
        """Stages that must finish first: explicit dependencies, inputs and compared stages."""
        needed = list(stage.depends_on) + [v.split("/")[0] for v in stage.inputs.values()] + list(stage.compare)
        return sorted(set(needed) - {stage.name})

    def ordered_stages(self) -> List[Stage]:
        """Topological order (spec order among equals); a cycle is an error naming its stages."""
        by_name = {s.name: s for s in self.stages}
        done: List[str] = []
        visiting: List[str] = []

        def visit(name: str) -> None:
            if name in done:
                return
            if name in visiting:
                cycle = visiting[visiting.index(name):] + [name]
                raise ValueError("stage dependencies form a cycle: %s" % " -> ".join(cycle))
            visiting.append(name)
            for parent in self.upstream(by_name[name]):
                visit(parent)
            visiting.pop()
            done.append(name)

        for stage in self.stages:
            visit(stage.name)
        return [by_name[n] for n in done]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ValueError("no stage named %r in %s; stages are: %s" % (name, self.path or "the spec",
                                                                     ", ".join(s.name for s in self.stages)))


def load_spec(path: str, sets: Sequence[str] = ()) -> PipelineSpec:
    """Read, override (``--set key=value``, dotted; ``stages.NAME.key`` addresses a stage) and check a spec."""
    raw = read_yaml(path)
    for text in sets:
        override = parse_override(text)
        stages_override = override.pop("stages", None)
        raw = deep_merge(raw, override)
        for name, values in (stages_override or {}).items():
            matches = [s for s in raw.get("stages", []) if isinstance(s, dict) and s.get("name") == name]
            if not matches:
                raise ValueError("%s: --set %s names unknown stage %r" % (path, text, name))
            matches[0].update(deep_merge(matches[0], values))
    base = os.path.dirname(os.path.abspath(path))
    try:
        spec = from_dict(PipelineSpec, dict(raw, path=path), "")
    except ValueError as exc:
        raise ValueError("%s: %s" % (path, exc))
    spec.root = _resolve(spec.root, os.getcwd())  # like every path typed on the command line
    for stage in spec.stages:
        if stage.config:
            config = _resolve(stage.config, os.getcwd())
            if not os.path.isfile(config):
                config = _resolve(stage.config, base)
            if not os.path.isfile(config):
                raise ValueError("%s: stages.%s.config %s does not exist" % (path, stage.name, stage.config))
            stage.config = config
    return spec


def check_data_roots(spec: PipelineSpec) -> List[str]:
    """Warn (not fail) when a stage's dataset root is not readable here: the cluster may mount it elsewhere."""
    from hmkd.config import config_from_dict, load_yaml_config

    problems = []
    for stage in spec.stages:
        if not stage.config:
            continue
        try:
            cfg = config_from_dict(deep_merge(load_yaml_config(stage.config), stage.override_values))
        except ValueError as exc:
            raise ValueError("%s: stages.%s: %s" % (spec.path, stage.name, exc))
        root = cfg.data.root
        if root and not os.access(root, os.R_OK):
            problems.append("stages.%s: dataset root %s is not readable from this host" % (stage.name, root))
    for problem in problems:
        log.warning("%s (fine if the cluster mounts it elsewhere)", problem)
    return problems


def _resolve(path: str, base: str) -> str:
    path = os.path.expanduser(os.path.expandvars(path))
    return path if os.path.isabs(path) else os.path.abspath(os.path.join(base, path))
