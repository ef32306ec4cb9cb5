"""What one Slurm (or local) job runs: a picklable stage that resumes itself after preemption.

Usage:
    executor.submit(TrainJob(run_dir, config=cfg.to_dict(), env={"NCCL_DEBUG": "WARN"}))
    executor.submit(CompareJob(run_dir, compare=[("teacher", teacher_dir), ...], overrides={"eval": {...}}))

A job carries plain data only (the resolved config dict, paths, overrides as nested dicts) and imports the training
code inside the call, so the pickle stays small and valid across code changes. It is a submitit Checkpointable: on
the preemption or timeout signal submitit requeues it, and the engine resumes from the run directory's latest
checkpoint (the trainer saves one at the signal, at a step boundary, before submitit's handler requeues the job).
A job whose collectives fail because a node is lost requeues itself within ``max_requeues`` (hmkd.launcher.requeue).
"""
import os
from typing import Any, Dict, List, Optional, Tuple

from submitit.helpers import Checkpointable


class _StageJob(Checkpointable):
    def __init__(self, run_dir: str, env: Optional[Dict[str, str]] = None, max_requeues: int = 0):
        self.run_dir = run_dir
        self.env = env or {}
        self.max_requeues = max_requeues

    def __call__(self) -> Dict[str, Any]:
        from hmkd.engine.distributed import PeerLostError
        from hmkd.launcher.requeue import check_restarts, requeue_after_peer_loss

        os.environ.update(self.env)  # NCCL settings, the collective timeout and the like, from the spec
        check_restarts(self.max_requeues)
        try:
            return self.run()
        except PeerLostError as exc:
            requeue_after_peer_loss(exc, self.max_requeues)
            raise

    def run(self) -> Dict[str, Any]:
        raise NotImplementedError


class TrainJob(_StageJob):
    """A train or distill stage's run (one seed): the trainer on ``config``, resuming from ``run_dir``."""

    def __init__(self, run_dir: str, config: Dict[str, Any], env: Optional[Dict[str, str]] = None,
                 max_requeues: int = 0):
        super().__init__(run_dir, env, max_requeues)
        self.config = config

    def run(self) -> Dict[str, Any]:
        from hmkd.config import config_from_dict
        from hmkd.engine.stage import run_stage

        return run_stage(config_from_dict(self.config), self.run_dir)


class CompareJob(_StageJob):
    """A compare stage: evaluate the listed stages' models (their configs updated by ``overrides``), then report."""

    def __init__(self, run_dir: str, compare: List[Tuple[str, str]], overrides: Optional[Dict[str, Any]] = None,
                 env: Optional[Dict[str, str]] = None, max_requeues: int = 0, baseline: Optional[str] = None):
        super().__init__(run_dir, env, max_requeues)
        self.compare = compare
        self.overrides = overrides or {}
        self.baseline = baseline

    def run(self) -> Dict[str, Any]:
        from hmkd.engine.stage import run_compare_stage

        return run_compare_stage(self.run_dir, self.compare, self.overrides, getattr(self, "baseline", None))
