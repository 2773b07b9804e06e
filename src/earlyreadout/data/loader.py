"""Batches from a grouped dataset: seeded per-epoch order, optional sampling weights, DDP sharding."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from earlyreadout.data.base import GroupedDataset

Batch = dict[str, torch.Tensor]


class _EpochBatches:
    """A batch sampler that asks its loader for the current epoch's batches each time it is iterated, so one
    persistent pool of worker processes serves every epoch (the batches are drawn in the main process)."""

    def __init__(self, loader: BatchLoader):
        self.loader = loader

    def __iter__(self) -> Iterator[list[int]]:
        return (c.tolist() for c in self.loader.chunks())

    def __len__(self) -> int:
        return len(self.loader)


class BatchLoader:
    """Yields batches `{"x", "y", "a", "g", "idx"}` of a dataset.

    The order of epoch `e` depends only on (seed, e), so a resumed run sees the same batches as an
    uninterrupted one. With `world_size > 1` each rank gets its own shard of every epoch's order and
    `batch_size` is the global batch (each rank takes `batch_size // world_size`). In-memory datasets
    are batched by slicing (no per-example Python work); lazy ones that read whole batches cheaply
    (cached images) do so when there are no workers; the rest go through a DataLoader.
    """

    def __init__(
        self,
        dataset: GroupedDataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {world_size} processes")
        self.dataset = dataset
        self.batch_size = batch_size
        self.local_batch = batch_size // world_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory  # page-locked batches, so copies to a GPU can be asynchronous
        self._workers: DataLoader | None = None
        self.epoch = 0
        self.sample_weights: torch.Tensor | None = None
        self._x = dataset.tensors()
        self._g = dataset.g
        self._a = dataset.a if dataset.a is not None else torch.full_like(dataset.y, -1)

    def _pinned(self, batch: Batch) -> Batch:
        """`batch` in page-locked memory when the loader pins (so copies to a GPU can be asynchronous)."""
        return {k: v.pin_memory() for k, v in batch.items()} if self.pin_memory else batch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_sample_weights(self, weights: torch.Tensor | None) -> None:
        """Draw each epoch's examples with replacement in proportion to `weights` (None: plain order)."""
        if weights is not None and (len(weights) != len(self.dataset) or (weights < 0).any()):
            raise ValueError("sample weights must be non-negative, one per example")
        self.sample_weights = weights

    def order(self) -> torch.Tensor:
        """This rank's example indices for the current epoch."""
        n = len(self.dataset)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.sample_weights is not None:
            idx = torch.multinomial(self.sample_weights.double(), n, replacement=True, generator=gen)
        elif self.shuffle:
            idx = torch.randperm(n, generator=gen)
        else:
            idx = torch.arange(n)
        if self.world_size > 1:
            per_rank = -(-n // self.world_size)
            if self.drop_last:
                per_rank = n // self.world_size
                idx = idx[: per_rank * self.world_size]
            else:
                idx = torch.cat([idx, idx[: per_rank * self.world_size - n]])
            idx = idx[self.rank :: self.world_size]
        return idx

    def __len__(self) -> int:
        n = len(self.order()) if self.world_size > 1 else len(self.dataset)
        return n // self.local_batch if self.drop_last else -(-n // self.local_batch)

    def chunks(self) -> list[torch.Tensor]:
        """This rank's batches of example indices for the current epoch."""
        chunks = list(torch.split(self.order(), self.local_batch))
        if self.drop_last and chunks and len(chunks[-1]) < self.local_batch:
            chunks.pop()
        return chunks

    def __iter__(self) -> Iterator[Batch]:
        chunks = self.chunks()
        if self._x is not None:
            for c in chunks:
                yield self._pinned({"x": self._x[c], "y": self.dataset.y[c], "a": self._a[c], "g": self._g[c],
                                    "idx": c})
        elif self.num_workers == 0 and self.dataset.reads_batches():
            for c in chunks:
                yield self._pinned({"x": self.dataset.get_batch(c), "y": self.dataset.y[c], "a": self._a[c],
                                    "g": self._g[c], "idx": c})
        elif self.num_workers == 0:
            yield from DataLoader(self.dataset, batch_sampler=[c.tolist() for c in chunks], pin_memory=self.pin_memory)
        else:
            if self._workers is None:  # one pool of worker processes for the loader's life, not one per epoch
                self._workers = DataLoader(self.dataset, batch_sampler=_EpochBatches(self), num_workers=self.num_workers,
                                           pin_memory=self.pin_memory, persistent_workers=True)
            yield from self._workers
