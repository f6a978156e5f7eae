"""The batches of several runs trained as one pack (reslab.train_packed), gathered at once.

Runs of a pack read one dataset, each in its own seeded order. Gathering each run's batch on its own costs a handful
of small ops per run and step, a large share of a packed MLP's step; here one gather takes every run's images of a
step from the dataset's uint8 tensor, (N, B, C, H, W), normalised as `DeviceLoader` normalises them (the same
elementwise ops, so each run's batch is bit for bit what its own loader serves). The normalised dataset (up to
KEEP_BYTES, e.g. MNIST's 188 MB) is made once in a process and kept for its next packs (at most KEEP datasets, the
least recently used dropped), so a step gathers normalised rows and does no arithmetic.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from reslab.data.loader import DeviceLoader, normalize


KEEP_BYTES = 512 << 20  # a normalised dataset up to this size is kept
KEEP = 2  # datasets kept: a pack's training (and validation) images and its test images
_kept: dict[int, tuple[Any, tuple, Tensor]] = {}  # id(images) -> (weakref to them, normalisation, normalised)


def _normalized(images: Tensor, loader: DeviceLoader) -> Tensor | None:
    """`images` normalised as `loader` normalises a batch, kept for this process's next packs; None when the copy
    would pass KEEP_BYTES (the batches are then normalised each step)."""
    key = (tuple(loader._mean.flatten().tolist()), tuple(loader._std.flatten().tolist()), loader.dtype, loader.device)
    kept = _kept.pop(id(images), None)
    if kept is None or kept[0]() is not images or kept[1] != key:
        if images.numel() * torch.empty((), dtype=loader.dtype).element_size() > KEEP_BYTES:
            return None
        kept = (weakref.ref(images), key, normalize(images.to(loader.device), loader._mean, loader._std, loader.dtype))
    _kept[id(images)] = kept  # the most recently used last
    while len(_kept) > KEEP:
        _kept.pop(next(iter(_kept)))
    return kept[2]


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
        normalized = _normalized(images, first)
        self.normalized = normalized is not None
        self.images = normalized if normalized is not None else images.to(first.device)  # no copy on the CPU
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
            yield x if self.normalized else normalize(x, first._mean, first._std, first.dtype), self.labels[idx]
