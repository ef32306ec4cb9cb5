"""The resumable sampler: shards cover each global batch once, and resuming mid-epoch continues exactly."""
from hmkd.engine.sampler import ResumableSampler


def test_ranks_partition_each_epoch():
    samplers = [ResumableSampler(23, 3, rank, 2, seed=5) for rank in range(2)]
    batches = [list(s) for s in samplers]
    assert len(batches[0]) == len(batches[1]) == 23 // 6
    seen = [i for rank in batches for batch in rank for (_, i) in batch]
    assert len(seen) == len(set(seen)) == 18


def test_resume_mid_epoch_matches_uninterrupted():
    full = ResumableSampler(20, 4, seed=1)
    full.set_position(3, 0)
    uninterrupted = list(full)
    resumed = ResumableSampler(20, 4, seed=1)
    resumed.set_position(3, 2)
    assert list(resumed) == uninterrupted[2:]
    assert all(epoch == 3 for batch in uninterrupted for epoch, _ in batch)


def test_epochs_differ_and_seed_matters():
    a, b = ResumableSampler(50, 5, seed=0), ResumableSampler(50, 5, seed=1)
    assert a.epoch_order(0) != a.epoch_order(1)
    assert a.epoch_order(0) != b.epoch_order(0)
    assert sorted(a.epoch_order(0)) == list(range(50))
