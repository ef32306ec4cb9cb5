"""A Slurm job that lost a node asks to run again, within its stage's ``resources.max_requeues``.

Usage (in a job, around the stage):
    check_restarts(max_requeues)                          # a job requeued more often than allowed stops here
    except PeerLostError as exc: requeue_after_peer_loss(exc, max_requeues)    # requeues, or re-raises

When a node stops answering, the ranks left on the other nodes fail their next collective after the collective timeout
(hmkd.engine.distributed). Each of them asks ``scontrol requeue`` for the job it belongs to, but only while that job is
still the same run (RUNNING, with the restart count this process started under): a rank of the lost node that reaches
slurmctld again later must not requeue the next run. Slurm itself requeues a ``--requeue`` job whose batch host failed;
the launcher submits ``--no-requeue`` when ``max_requeues`` is 0, so such a job fails and its dependants are cancelled.
The requeued run resumes from the run directory's latest complete checkpoint.
"""
import logging
import os
import subprocess
from typing import Dict, Optional

from hmkd.engine.distributed import PeerLostError

log = logging.getLogger(__name__)
SCONTROL_TIMEOUT_S = 30


def restarts(environ: Optional[Dict[str, str]] = None) -> int:
    """How often Slurm has requeued this job so far (0 for its first run, and outside Slurm)."""
    env = os.environ if environ is None else environ
    return int(env.get("SLURM_RESTART_COUNT") or 0)


def check_restarts(max_requeues: int) -> None:
    """Refuses a run that is past the stage's requeue budget (Slurm's own requeues after a node failure count)."""
    if restarts() > max_requeues:
        raise ValueError("job %s was requeued %d times, more than resources.max_requeues=%d; check the nodes and "
                         "submit again (the run resumes from its latest checkpoint)"
                         % (os.environ.get("SLURM_JOB_ID"), restarts(), max_requeues))


def _job_fields(job_id: str) -> Dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True,
                         timeout=SCONTROL_TIMEOUT_S)
    return dict(f.split("=", 1) for f in out.stdout.split() if "=" in f) if out.returncode == 0 else {}


def requeue_after_peer_loss(exc: PeerLostError, max_requeues: int) -> None:
    """Requeue this Slurm job when the budget allows and it is still this run, then leave quietly (SystemExit 0:
    Slurm has the job already); otherwise re-raise ``exc``, so that the job fails."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id or restarts() >= max_requeues:
        if job_id:
            log.error("%s; not requeued: job %s has been requeued %d times (resources.max_requeues=%d)",
                      exc, job_id, restarts(), max_requeues)
        raise exc
    try:
        fields = _job_fields(job_id)
        same_run = fields.get("JobState") == "RUNNING" and int(fields.get("Restarts", -1)) == restarts()
        if same_run:
            subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True,
                           timeout=SCONTROL_TIMEOUT_S)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        log.error("%s; requeueing job %s failed: %s", exc, job_id, error)
        raise exc
    if same_run:
        log.warning("%s; requeued job %s (restart %d of at most %d)", exc, job_id, restarts() + 1, max_requeues)
    else:
        log.warning("%s; job %s is already %s (restart %s): not requeued again", exc, job_id,
                    fields.get("JobState") or "gone", fields.get("Restarts", "?"))
    raise SystemExit(0)
