"""What one Slurm (or local) job runs: a picklable stage that resumes itself after preemption.

Usage: submitit executor.submit(StageJob(kind="train", config=raw_dict, run_dir=...))

The job carries plain data only (the resolved config dict, paths) and imports the training code inside the call,
so the pickle stays small and valid across code changes. It is a submitit Checkpointable: on the preemption or
timeout signal submitit requeues it, and the engine resumes from the run directory's latest checkpoint (the
trainer saves one at the signal, at a step boundary, before submitit's handler requeues the job).
"""
import os
from typing import Any, Dict, List, Optional, Tuple

from submitit.helpers import Checkpointable


class StageJob(Checkpointable):
    def __init__(self, kind: str, run_dir: str, config: Optional[Dict[str, Any]] = None,
                 compare: Optional[List[Tuple[str, str]]] = None, eval_overrides: Optional[List[str]] = None,
                 env: Optional[Dict[str, str]] = None):
        self.kind = kind
        self.run_dir = run_dir
        self.config = config
        self.compare = compare or []
        self.eval_overrides = eval_overrides or []
        self.env = env or {}

    def __call__(self) -> Dict[str, Any]:
        os.environ.update(self.env)  # NCCL settings and the like, from the spec
        if self.kind == "eval":
            from hmkd.engine.stage import run_compare_stage

            return run_compare_stage(self.run_dir, self.compare, self.eval_overrides)
        from hmkd.config import config_from_dict
        from hmkd.engine.stage import run_stage

        return run_stage(config_from_dict(self.config), self.run_dir)
