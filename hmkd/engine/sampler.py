"""A training sampler that shards across ranks and resumes mid-epoch at the exact batch.

Usage:
    sampler = ResumableSampler(len(dataset), batch_size, rank, world_size, seed)
    sampler.set_position(epoch, consumed_batches)       # from the checkpoint
    loader = DataLoader(dataset, batch_sampler=sampler, ...)

Each epoch's order is a permutation drawn from (seed, epoch) alone, cut into whole global batches (the tail
that does not fill one is dropped, so every rank runs the same number of steps); rank r takes its slice of each
global batch. Indices are yielded as ``(epoch, index)`` pairs, which hmkd datasets accept, so augmentation keyed
by (seed, epoch, index) is the same in any worker process, persistent or not.
"""
from typing import Iterator, List, Tuple

import torch


class ResumableSampler:
    def __init__(self, dataset_len: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        global_batch = batch_size * world_size
        if dataset_len < global_batch:
            raise ValueError("the training set has %d samples, fewer than one global batch (%d per process x %d "
                             "processes); lower train.batch_size" % (dataset_len, batch_size, world_size))
        self.dataset_len = dataset_len
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.dataset_len // (self.batch_size * self.world_size)

    def set_position(self, epoch: int, consumed_batches: int) -> None:
        """Start the next iteration at ``consumed_batches`` into ``epoch``."""
        self.epoch = epoch
        self.start_batch = consumed_batches

    def epoch_order(self, epoch: int) -> List[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed * 100003 + epoch)
        return torch.randperm(self.dataset_len, generator=generator).tolist()

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        """Yields this rank's batches for the current epoch from ``start_batch`` on."""
        order = self.epoch_order(self.epoch)
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, self.batches_per_epoch):
            first = b * global_batch + self.rank * self.batch_size
            yield [(self.epoch, i) for i in order[first:first + self.batch_size]]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch
