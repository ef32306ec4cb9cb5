"""Preemption: the signal becomes a request that the training loop honours at the next step boundary.

Usage:
    watch = PreemptionWatch()          # in the main thread, after submitit installed its own handler
    ... if watch.requested: save a checkpoint, shut the loaders down, then watch.hand_over()

Slurm sends USR2 (submitit's choice; NCCL owns USR1) before a time limit or a preemption. Saving from inside a
signal handler could catch the model between backward and optimizer step, so the handler only sets a flag; ranks
agree on it through the per-step all-reduce, all save the same step, and then the previous handler runs: submitit's
requeues the job, the default one ends the process as the signal would have.
"""
import logging
import os
import signal
from typing import Any

log = logging.getLogger(__name__)


class PreemptionWatch:
    def __init__(self, signum: int = signal.SIGUSR2):
        self.signum = signum
        self.requested = False
        self.previous: Any = signal.getsignal(signum)
        signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        signal.signal(self.signum, self.previous)

    def hand_over(self) -> None:
        """Run what the signal would have run without us (after the checkpoint is safely written)."""
        self.restore()
        if callable(self.previous):
            self.previous(self.signum, None)  # submitit: checkpoint() + requeue on rank 0, then exit
            return
        log.warning("preempted by %s: checkpoint saved; exiting", signal.Signals(self.signum).name)
        signal.signal(self.signum, signal.SIG_DFL)
        os.kill(os.getpid(), self.signum)
