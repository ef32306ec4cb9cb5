"""Evaluation sharding that visits every sample exactly once across ranks.

Usage:
    loader = DataLoader(val_set, batch_size=1, sampler=ShardSampler(len(val_set), rank, world_size))

torch's DistributedSampler pads the index list with repeats so every rank gets the same count; in evaluation the
repeats would be counted twice in the summed confusion matrix. Ranks here get r, r + W, r + 2W, ... and may differ by
one sample, which is harmless because evaluation has no per-step collective, only the final all-reduce.
"""
from typing import Iterator

from torch.utils.data import Sampler


class ShardSampler(Sampler):
    def __init__(self, dataset_len: int, rank: int = 0, world_size: int = 1):
        if world_size < 1:
            raise ValueError("world_size must be >= 1, got %d" % world_size)
        if not 0 <= rank < world_size:
            raise ValueError("rank must be in [0, world_size=%d), got %d" % (world_size, rank))
        if dataset_len < 0:
            raise ValueError("dataset_len must be >= 0, got %d" % dataset_len)
        self.dataset_len = dataset_len
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.dataset_len, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.dataset_len, self.world_size))
