"""A training sampler that shards across ranks and resumes mid-epoch at the exact batch, of one or two streams.

Usage:
    sampler = ResumableSampler(len(dataset), batch_size, rank, world_size, seed)
    sampler.set_position(epoch, consumed_batches)       # from the checkpoint
    loader = DataLoader(dataset, batch_sampler=sampler, ...)
    # with unlabelled images (hmkd.data.MixedDataset: their indices follow the labelled ones):
    sampler = ResumableSampler(len(labelled), batch_size, rank, world_size, seed, len(unlabelled), unlabeled_batch)
    sampler.set_position(epoch, consumed_batches, unlabeled_position)
    unlabeled_position = sampler.unlabeled_after(unlabeled_position)   # once per batch the loader yields

Each epoch's order is a permutation drawn from (seed, epoch) alone, cut into whole global batches (the tail
that does not fill one is dropped, so every rank runs the same number of steps); rank r takes its slice of each
global batch. Indices are yielded as ``(epoch, index)`` pairs, which hmkd datasets accept, so augmentation keyed
by (seed, epoch, index) is the same in any worker process, persistent or not.

Unlabelled images form a second stream of the same kind with its own seeds, epoch and position: each labelled batch
takes the stream's next batch, and the stream wraps into its next epoch whenever it runs out, independently of the
labelled epochs (which set the loop's epochs, as without it). Its position is an (epoch, consumed) pair that the
caller advances as batches arrive (``unlabeled_after``), not as this sampler is iterated: a DataLoader runs ahead.
"""
from typing import Iterator, List, Optional, Tuple

import torch

# Added to the labelled stream's seed (seed * 100003 + epoch): the unlabelled stream's seeds never meet it below
# 2**40 epochs.
UNLABELED_SEED_OFFSET = 1 << 40

Position = Tuple[int, int]  # (epoch, batches consumed in it)


class EpochStream:
    """``length`` indices in a fresh permutation per epoch from (seed, epoch), cut into global batches of
    ``batch_size`` x ``world_size``; rank r's share of batch b is its slice."""

    def __init__(self, length: int, batch_size: int, rank: int, world_size: int, seed: int, seed_offset: int = 0):
        self.length, self.batch_size, self.rank, self.world_size = length, batch_size, rank, world_size
        self.seed, self.seed_offset = seed, seed_offset
        self._cached: Tuple[int, List[int]] = (-1, [])

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def batches_per_epoch(self) -> int:
        return self.length // self.global_batch

    def epoch_order(self, epoch: int) -> List[int]:
        if self._cached[0] != epoch:
            generator = torch.Generator()
            generator.manual_seed(self.seed * 100003 + epoch + self.seed_offset)
            self._cached = (epoch, torch.randperm(self.length, generator=generator).tolist())
        return self._cached[1]

    def batch(self, epoch: int, index: int) -> List[int]:
        """This rank's slice of global batch ``index`` of ``epoch``."""
        first = index * self.global_batch + self.rank * self.batch_size
        return self.epoch_order(epoch)[first:first + self.batch_size]

    def after(self, position: Position) -> Position:
        """The position one batch later, in the next epoch once this one is used up."""
        epoch, consumed = position
        return (epoch + 1, 0) if consumed + 1 >= self.batches_per_epoch else (epoch, consumed + 1)


class ResumableSampler:
    def __init__(self, dataset_len: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 unlabeled_len: int = 0, unlabeled_batch: int = 0):
        if dataset_len < batch_size * world_size:
            raise ValueError("the training set has %d samples, fewer than one global batch (%d per process x %d "
                             "processes); lower train.batch_size" % (dataset_len, batch_size, world_size))
        self.labeled = EpochStream(dataset_len, batch_size, rank, world_size, seed)
        self.unlabeled: Optional[EpochStream] = None
        if unlabeled_len:
            if unlabeled_batch < 1 or unlabeled_len < unlabeled_batch * world_size:
                raise ValueError("data.unlabeled has %d images, fewer than one global batch of them (%d per process x "
                                 "%d processes); add images or lower data.unlabeled_ratio"
                                 % (unlabeled_len, unlabeled_batch, world_size))
            self.unlabeled = EpochStream(unlabeled_len, unlabeled_batch, rank, world_size, seed, UNLABELED_SEED_OFFSET)
        self.dataset_len = dataset_len  # the unlabelled indices start here
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0
        self.start_batch = 0
        self.unlabeled_position: Position = (0, 0)

    @property
    def batches_per_epoch(self) -> int:
        return self.labeled.batches_per_epoch

    def set_position(self, epoch: int, consumed_batches: int, unlabeled_position: Position = (0, 0)) -> None:
        """Start the next iteration at ``consumed_batches`` into ``epoch``, the unlabelled stream at its position."""
        self.epoch = epoch
        self.start_batch = consumed_batches
        self.unlabeled_position = tuple(unlabeled_position)

    def unlabeled_after(self, position: Position) -> Position:
        """The unlabelled stream's position once one more batch is consumed (unchanged without the stream)."""
        return position if self.unlabeled is None else self.unlabeled.after(position)

    def unlabeled_resumed(self, position: Position) -> Position:
        """A saved unlabelled position as this run continues it: one saved by more processes may stand past this
        run's last batch of its epoch, which then goes on with the next."""
        if self.unlabeled is None or position[1] < self.unlabeled.batches_per_epoch:
            return tuple(position)
        return position[0] + 1, 0

    def epoch_order(self, epoch: int) -> List[int]:
        return list(self.labeled.epoch_order(epoch))

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        """Yields this rank's batches for the current epoch from ``start_batch`` on: its labelled slice, then (with
        unlabelled images) the unlabelled stream's slice, offset by the labelled set's length."""
        position = self.unlabeled_position
        for b in range(self.start_batch, self.batches_per_epoch):
            batch = [(self.epoch, i) for i in self.labeled.batch(self.epoch, b)]
            if self.unlabeled is not None:
                batch += [(position[0], self.dataset_len + i) for i in self.unlabeled.batch(*position)]
                position = self.unlabeled.after(position)
            yield batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def describe(self) -> str:
        """The start-of-run line: how many images of each kind and how each process's batch is made of them."""
        unlabeled = self.unlabeled or EpochStream(0, 0, self.rank, self.world_size, self.seed)
        return "%d labelled + %d unlabelled images; batch = %d labelled + %d unlabelled" % (
            self.dataset_len, unlabeled.length, self.batch_size, unlabeled.batch_size)
