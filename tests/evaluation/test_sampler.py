"""ShardSampler: every index exactly once across ranks, strided, no padding."""
import pytest

from hmkd.evaluation.sampler import ShardSampler


@pytest.mark.parametrize("dataset_len, world_size", [(5, 2), (6, 3), (7, 4), (2, 4), (1, 1), (0, 2), (500, 3)])
def test_every_index_once_across_ranks(dataset_len, world_size):
    shards = [list(ShardSampler(dataset_len, rank, world_size)) for rank in range(world_size)]
    assert sorted(i for shard in shards for i in shard) == list(range(dataset_len))
    for rank, shard in enumerate(shards):
        assert shard == list(range(rank, dataset_len, world_size))
        assert len(ShardSampler(dataset_len, rank, world_size)) == len(shard)


def test_odd_length_is_not_padded_with_repeats():
    """torch's DistributedSampler would give both ranks 3 indices of 5, repeating index 0."""
    assert list(ShardSampler(5, 0, 2)) == [0, 2, 4] and list(ShardSampler(5, 1, 2)) == [1, 3]


@pytest.mark.parametrize("rank, world_size, dataset_len, message", [
    (2, 2, 5, "rank must be in"), (-1, 2, 5, "rank must be in"), (0, 0, 5, "world_size"), (0, 1, -1, "dataset_len"),
])
def test_rejects_bad_arguments(rank, world_size, dataset_len, message):
    with pytest.raises(ValueError, match=message):
        ShardSampler(dataset_len, rank, world_size)
