"""Device batches from uint8 tensors: splits, normalisation, augmentation, and the loader that uses them.

The whole dataset is copied to the device once; each batch is a `randperm` slice, cropped, flipped
and normalised there, so the hot loop has no DataLoader, no per-sample Python and no host sync.
Every epoch's shuffle and augmentation come from a generator seeded by (seed, epoch) alone, so a
resumed run sees the same batches.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from reslab.errors import DataError


def split_indices(n: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """(train_idx, val_idx) from one seeded permutation; validation takes its first `val_size`."""
    if val_size < 0:
        raise DataError(f"validation size {val_size} is negative; use 0 for no validation set")
    if val_size >= n:
        raise DataError(f"validation size {val_size} is not smaller than the {n} training images")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:], perm[:val_size]


def _channel_tensor(values: Sequence[float] | Tensor, device: torch.device | str | None) -> Tensor:
    """Per-channel values as float32 (1, C, 1, 1), to broadcast over a batch."""
    return torch.as_tensor(values, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)


def normalize(x_u8: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 (B, C, H, W) -> (x / 255 - mean) / std in `dtype`, on x's device."""
    mean_t, std_t = _channel_tensor(mean, x_u8.device), _channel_tensor(std, x_u8.device)
    return x_u8.float().div_(255).sub_(mean_t).div_(std_t).to(dtype)


@dataclass(frozen=True)
class Augment:
    """Batch augmentation on the device: random crop after zero padding, then horizontal flip."""

    crop_padding: int = 4  # pixels of zero padding before the random crop (0 = no crop)
    hflip: bool = True


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch), so any epoch can be replayed on resume."""
    digest = hashlib.sha256(f"reslab:{seed}:{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class DeviceLoader:
    """Batches from uint8 tensors already on the device: one H2D copy per epoch, no host sync per batch.

    With `shard=(rank, world)` it yields one process's part of each batch of the same seeded order, so the
    processes of a distributed run together see the batches one process would (`batch_size` is the global batch).
    """

    def __init__(self, images: Tensor, labels: Tensor, *, batch_size: int, mean: Sequence[float],
                 std: Sequence[float], device: torch.device | str, shuffle: bool = False, drop_last: bool = False,
                 augment: Augment | None = None, seed: int = 0, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, shard: tuple[int, int] = (0, 1), index: Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"need uint8 (N, C, H, W) images and N labels, got {images.dtype} "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        if batch_size < 1 or len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise ValueError(f"bad batch_size {batch_size} or mean/std for {images.shape[1]} channels")
        if not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard {shard} is not (rank, world size) with 0 <= rank < world size")
        self.device = torch.device(device)
        self.images = images.to(self.device)  # uint8 (N, C, H, W), moved once
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.seed, self.dtype, self.channels_last = augment, seed, dtype, channels_last
        self._mean = _channel_tensor(mean, self.device)
        self._std = _channel_tensor(std, self.device)
        self.rank, self.world = shard  # this process takes its part of every batch (one process: all of it)
        self.epoch = 0
        # the dataset index of each image (None: its position); `served` holds the latest batch's, so that per-image
        # data kept elsewhere (a teacher's logits) can be looked up for it
        self.index = None if index is None else index.to(self.device)
        self.served: Tensor | None = None

    @property
    def num_samples(self) -> int:
        """Images in an epoch, of all ranks together."""
        return len(self.images)

    def full_size(self, batch: int) -> int:
        """How many images batch `batch` has, of all ranks together."""
        return min(self.batch_size, self.num_samples - batch * self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.batches(0)

    def batches(self, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches start, start+1, ... of epoch `self.epoch` (a mid-epoch resume sees the same batches).

        The epoch then advances, so a loop that never calls set_epoch still reshuffles every epoch.
        """
        if not 0 <= start <= len(self):
            raise ValueError(f"start batch {start} is outside 0..{len(self)}")
        gen, n = _epoch_generator(self.seed, self.epoch), self.num_samples
        self.epoch += 1
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        padding = self.augment.crop_padding if self.augment is not None else 0
        offsets = flips = None  # drawn for the whole epoch at once, one copy to the device each
        if padding > 0:
            offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=gen).to(self.device)  # (N, [dy, dx])
        if self.augment is not None and self.augment.hflip:
            flips = (torch.rand(n, generator=gen) < 0.5).to(self.device)  # (N,) bool
        return self._batches(start, order.to(self.device), padding, offsets, flips)

    def epoch_index(self) -> Tensor:
        """The dataset index of each image of epoch `self.epoch`, in the order `batches` serves them (the epoch
        then advances, as there): a pack of runs gathers its batches with it in one go (reslab.data.pack).
        Only for a loader that serves its images as they are (no augmentation, one process, an index)."""
        if self.augment is not None or self.world != 1 or self.index is None:
            raise ValueError("epoch_index needs an unaugmented single-process loader with a dataset index")
        gen = _epoch_generator(self.seed, self.epoch)
        self.epoch += 1
        order = torch.randperm(self.num_samples, generator=gen) if self.shuffle else torch.arange(self.num_samples)
        return self.index[order.to(self.device)]

    def _batches(self, start: int, order: Tensor, padding: int, offsets: Tensor | None,
                 flips: Tensor | None) -> Iterator[tuple[Tensor, Tensor]]:
        for first in range(start * self.batch_size, len(self) * self.batch_size, self.batch_size):
            batch = self._shard(first)
            idx = order[batch]
            x = self.images.index_select(0, idx)  # uint8 (B, C, H, W): whole rows, faster than images[idx]
            if offsets is not None:
                x = _random_crop(x, offsets[batch], padding)
            if flips is not None:
                x = torch.where(flips[batch, None, None, None], x.flip(-1), x)
            x = normalize(x, self._mean, self._std, self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.served = idx if self.index is None else self.index[idx]
            yield x, self.labels[idx]

    def _shard(self, first: int) -> slice:
        """This rank's part of the batch starting at `first` of the epoch's order: contiguous, the parts of a
        short last batch differing in size by at most one, so the ranks together take exactly the batch."""
        if self.world == 1:
            return slice(first, first + self.batch_size)
        base, extra = divmod(min(self.batch_size, self.num_samples - first), self.world)
        start = first + self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))


def _random_crop(x: Tensor, offsets: Tensor, padding: int) -> Tensor:
    """Each sample's HxW window of its zero-padded image at (dy, dx) = offsets[i], by one gather."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p), zeros = black
    rows = (offsets[:, 0:1] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (offsets[:, 1:2] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]
