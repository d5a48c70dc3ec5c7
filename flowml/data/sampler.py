"""A seeded shuffling sampler over sample numbers, for ``VideoLoader`` or any torch loop."""

from __future__ import annotations

from typing import Iterator

import torch


class ShuffleSampler:
    """Sample numbers ``0 .. n-1``, shuffled (``shuffle``) by a generator seeded with
    ``seed + epoch``: the same seed gives the same order every run, and each pass over it
    (each ``iter``) moves to the next epoch unless ``set_epoch`` says which one to give."""

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch = 0
        self._epoch_set = False

    def set_epoch(self, epoch: int) -> None:
        """Give epoch ``epoch``'s order at the next ``iter`` (as torch's DistributedSampler)."""
        self.epoch, self._epoch_set = epoch, True

    def __len__(self) -> int:
        return self.n

    def order(self, epoch: int) -> list[int]:
        """The sample numbers of ``epoch``, in the order they are given."""
        if not self.shuffle:
            return list(range(self.n))
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=generator).tolist()

    def upcoming(self) -> list[int]:
        """The order the next ``iter`` gives, without moving on (what lets ``VideoLoader``
        start the next epoch's graph ahead)."""
        return self.order(self.epoch)

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        if not self._epoch_set:
            self.epoch += 1
        self._epoch_set = False
        return iter(self.order(epoch))
