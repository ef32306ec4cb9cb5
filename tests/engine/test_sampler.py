"""The resumable sampler: shards cover each global batch once, and resuming mid-epoch continues exactly."""
import pytest

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


# ------------------------------------------------------------------ a second, unlabelled stream
LABELLED, UNLABELLED = 14, 9  # with batch 2 + 3 per process on 1 or 2 ranks: epochs of different lengths


def consume(samplers, position, steps):
    """``steps`` global batches from ``position`` = (epoch, consumed, unlabelled position), counted as the trainer
    counts them (per batch the loader yields): the batches of each rank and the position after them."""
    epoch, consumed, unlabeled = position
    out = [[] for _ in samplers]
    while len(out[0]) < steps:
        for sampler in samplers:
            sampler.set_position(epoch, consumed, unlabeled)
        iterators = [iter(s) for s in samplers]
        for batches in zip(*iterators):
            for rank, batch in enumerate(batches):
                out[rank].append(batch)
            consumed += 1
            unlabeled = samplers[0].unlabeled_after(unlabeled)
            if len(out[0]) == steps:
                return out, (epoch, consumed, unlabeled)
        epoch, consumed = epoch + 1, 0
    return out, (epoch, consumed, unlabeled)


PER_RANK_UNLABELLED = {1: 3, 2: 2}  # batches per epoch: labelled 7 and unlabelled 3 (1 rank), 3 and 2 (2 ranks)


def mixed_samplers(world_size, seed=3):
    return [ResumableSampler(LABELLED, 2, rank, world_size, seed, UNLABELLED, PER_RANK_UNLABELLED[world_size])
            for rank in range(world_size)]


@pytest.mark.parametrize("world_size", [1, 2])
def test_each_stream_covers_its_epochs_once_and_ranks_split_the_global_batch(world_size):
    samplers = mixed_samplers(world_size)
    per_rank_u = samplers[0].unlabeled.batch_size
    labelled_epoch = LABELLED // (2 * world_size)  # batches per epoch of each stream
    unlabelled_epoch = UNLABELLED // (per_rank_u * world_size)
    assert labelled_epoch != unlabelled_epoch
    steps = labelled_epoch * unlabelled_epoch * 2  # both streams wrap several times, at different steps
    ranks, _ = consume(samplers, (0, 0, (0, 0)), steps)
    for rank_batches in ranks:
        assert all(len(batch) == 2 + per_rank_u for batch in rank_batches)
        assert all(i < LABELLED for batch in rank_batches for _, i in batch[:2])
        assert all(LABELLED <= i for batch in rank_batches for _, i in batch[2:])
    for stream, (first, per_epoch, indices_from, global_size) in {
            "labelled": (slice(0, 2), labelled_epoch, range(LABELLED), 2 * world_size),
            "unlabelled": (slice(2, None), unlabelled_epoch, range(LABELLED, LABELLED + UNLABELLED),
                           per_rank_u * world_size)}.items():
        global_batches = [[key for rank in ranks for key in rank[step][first]] for step in range(steps)]
        assert all(len(set(keys)) == global_size for keys in global_batches), stream  # rank slices disjoint
        for epoch in range(steps // per_epoch):
            keys = [key for keys in global_batches[epoch * per_epoch:(epoch + 1) * per_epoch] for key in keys]
            assert {e for e, _ in keys} == {epoch}, stream  # every key of the epoch carries its stream's epoch
            indices = [i for _, i in keys]
            # each image of the stream once, but for the tail that fills no global batch
            assert len(indices) == len(set(indices)) == len(indices_from) // global_size * global_size, stream
            assert set(indices) <= set(indices_from), stream
    orders = {samplers[0].unlabeled.epoch_order(e)[0] for e in range(6)}
    assert len(orders) > 1 and samplers[0].unlabeled.epoch_order(0) != samplers[0].labeled.epoch_order(0)[:UNLABELLED]


@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("stop", [1, 4, 5, 9])
def test_saving_and_restoring_either_stream_mid_epoch_continues_identically(world_size, stop):
    total = 14
    uninterrupted, _ = consume(mixed_samplers(world_size), (0, 0, (0, 0)), total)
    head, position = consume(mixed_samplers(world_size), (0, 0, (0, 0)), stop)
    tail, _ = consume(mixed_samplers(world_size), position, total - stop)  # fresh samplers: only the position kept
    assert [h + t for h, t in zip(head, tail)] == uninterrupted


def test_unlabelled_positions_wrap_on_their_own_and_the_stream_needs_one_global_batch():
    sampler = ResumableSampler(LABELLED, 2, 0, 1, 0, UNLABELLED, 4)  # 9 // 4 = 2 unlabelled batches per epoch
    positions = [(0, 0)]
    for _ in range(5):
        positions.append(sampler.unlabeled_after(positions[-1]))
    assert positions == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert sampler.unlabeled_resumed((3, 7)) == (4, 0) and sampler.unlabeled_resumed((3, 1)) == (3, 1)
    assert ResumableSampler(LABELLED, 2).unlabeled_after((5, 1)) == (5, 1)  # no stream: nothing moves
    assert "14 labelled + 9 unlabelled images; batch = 2 labelled + 4 unlabelled" == sampler.describe()
    with pytest.raises(ValueError, match=r"data.unlabeled has 9 images, fewer than one global batch of them \(5 per "
                                         r"process x 2 processes\); add images or lower data.unlabeled_ratio"):
        ResumableSampler(LABELLED, 2, 0, 2, 0, UNLABELLED, 5)


def test_labelled_stream_is_unchanged_by_an_unlabelled_one():
    plain, mixed = ResumableSampler(LABELLED, 2, seed=7), ResumableSampler(LABELLED, 2, seed=7, unlabeled_len=9,
                                                                            unlabeled_batch=1)
    plain.set_position(2, 1)
    mixed.set_position(2, 1, (5, 3))
    assert [b for b in plain] == [b[:2] for b in mixed]
    assert all(b[2][0] == 5 + (k + 3) // 9 for k, b in enumerate(mixed))  # the unlabelled stream's own epochs
