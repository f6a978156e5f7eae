"""The batches of several runs trained as one pack (reslab.train_packed), gathered at once.

Runs of a pack read one dataset, each in its own seeded order. Gathering each run's batch on its own costs a handful
of small ops per run and step, a large share of a packed MLP's step; here one gather takes every run's images of a
step from the dataset's uint8 tensor, (N, B, C, H, W), normalised as `DeviceLoader` normalises them (the same
elementwise ops, so each run's batch is bit for bit what its own loader serves).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from reslab.data.loader import DeviceLoader, normalize


def gathers_together(loaders: Sequence[DeviceLoader]) -> bool:
    """Whether these loaders' batches can be gathered at once: unaugmented, one process, each with a dataset index,
    of one batch size, length, normalisation and layout."""
    first = loaders[0]
    return all(
        loader.augment is None and loader.world == 1 and loader.index is not None and not loader.channels_last
        and loader.batch_size == first.batch_size and loader.num_samples == first.num_samples
        and loader.drop_last == first.drop_last and loader.shuffle == first.shuffle and loader.dtype == first.dtype
        and loader.device == first.device and torch.equal(loader._mean, first._mean)
        and torch.equal(loader._std, first._std)
        for loader in loaders)


class PackBatches:
    """Each step's batches of every loader, from the dataset they index: x (N, B, C, H, W), y (N, B).

    `images` (uint8 (M, C, H, W)) and `labels` (M,) are the dataset the loaders' `index` points into; their rows
    must be the ones each loader was made from (`gathers_together` must hold)."""

    def __init__(self, loaders: Sequence[DeviceLoader], images: Tensor, labels: Tensor) -> None:
        if not gathers_together(loaders):
            raise ValueError("these loaders' batches cannot be gathered together")
        self.loaders = list(loaders)
        first = self.loaders[0]
        self.images = images.to(first.device)  # no copy where the data already is on the device (the CPU)
        self.labels = labels.to(first.device, torch.int64)

    def batches(self, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches start, start+1, ... of each loader's current epoch (each loader's epoch then advances)."""
        first = self.loaders[0]
        if not 0 <= start <= len(first):
            raise ValueError(f"start batch {start} is outside 0..{len(first)}")
        order = torch.stack([loader.epoch_index() for loader in self.loaders])  # (N, images) dataset indices
        size = first.batch_size
        for begin in range(start * size, len(first) * size, size):
            idx = order[:, begin:begin + size]  # (N, B)
            rows = self.images.flatten(1).index_select(0, idx.reshape(-1))  # whole rows: ~15x images[idx] here
            x = rows.view(*idx.shape, *self.images.shape[1:])  # (N, B, C, H, W)
            yield normalize(x, first._mean, first._std, first.dtype), self.labels[idx]
