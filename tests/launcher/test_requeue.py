"""A job that lost a node requeues itself only within resources.max_requeues (the requeue itself, through a real
scontrol, is exercised on the two-node cluster in test_slurm_multinode.py)."""
import pytest

from hmkd.engine.distributed import PeerLostError
from hmkd.launcher.requeue import check_restarts, requeue_after_peer_loss, restarts


def test_restart_count_comes_from_slurm():
    assert restarts({}) == 0 and restarts({"SLURM_RESTART_COUNT": ""}) == 0
    assert restarts({"SLURM_RESTART_COUNT": "2"}) == 2


def test_a_job_past_its_requeue_budget_stops_with_one_line(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    check_restarts(2)
    with pytest.raises(ValueError) as err:
        check_restarts(1)
    assert str(err.value).startswith("job 77 was requeued 2 times, more than resources.max_requeues=1;")


@pytest.mark.parametrize("env", [{}, {"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "1"},
                                 {"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "0", "MAX": "0"}])
def test_no_requeue_outside_slurm_or_without_budget(monkeypatch, env):
    """Outside Slurm, or with the budget spent, the loss is re-raised (the job fails) and scontrol is never run."""
    for key in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        if key != "MAX":
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", "/nonexistent")  # an attempt to run scontrol would fail differently
    lost = PeerLostError("a collective failed")
    with pytest.raises(PeerLostError) as err:
        requeue_after_peer_loss(lost, int(env.get("MAX", 1)))
    assert err.value is lost
