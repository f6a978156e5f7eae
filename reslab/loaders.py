"""A run's three loaders from its config: the seeded train/validation split, the optional training subset, the test.

The trainer and any instrument that wants a run's exact batches build them here, so the same config gives the
same images in the same order everywhere.
"""

from __future__ import annotations

import torch

from reslab.config import RunConfig
from reslab.data import Augment, DeviceLoader, ImageData, split_indices
from reslab.errors import DataError


TEST_SUBSET_SEED = 0  # not train.seed: every run of a comparison is tested on the same images


def test_subset(n_test: int, test_size: int | None) -> torch.Tensor:
    """Indices of the test images a run is tested on: all of them, or a fixed seeded subset of `test_size`."""
    if test_size is None:
        return torch.arange(n_test)
    if test_size > n_test:
        raise DataError(f"data.test_size {test_size} is more than the {n_test} test images")
    return torch.randperm(n_test, generator=torch.Generator().manual_seed(TEST_SUBSET_SEED))[:test_size]


def make_loaders(cfg: RunConfig, data: ImageData, device: torch.device, channels_last: bool,
                 shard: tuple[int, int] = (0, 1)) -> tuple[DeviceLoader, DeviceLoader | None, DeviceLoader]:
    """(train, val or None when data.val_size=0, test); with `shard=(rank, world)`, this process's part of each.

    Validation takes the first `val_size` images of a permutation seeded by train.seed; with data.train_size,
    training keeps the next `train_size` of that same permutation (a seeded subset drawn after the validation
    split), so the same seed always picks the same images. The test set stays apart; data.test_size keeps the
    first images of one permutation seeded by TEST_SUBSET_SEED, the same for every run, so runs stay paired.
    Every process of a distributed run makes the same split and order, and takes its slice of each batch.
    """
    d = cfg.data
    train_idx, val_idx = split_indices(len(data.train_y), d.val_size, cfg.train.seed)
    if d.train_size is not None:
        if d.train_size > len(train_idx):
            raise DataError(f"data.train_size {d.train_size} is more than the {len(train_idx)} training images left "
                            f"after the validation split (data.val_size {d.val_size})")
        train_idx = train_idx[:d.train_size]
    augment = Augment(crop_padding=d.crop_padding, hflip=d.hflip) if d.augment else None
    common = dict(mean=data.mean, std=data.std, device=device, channels_last=channels_last, shard=shard)
    # index_select: the same images as data.train_x[train_idx], in half the time (whole rows copied)
    train = DeviceLoader(data.train_x.index_select(0, train_idx), data.train_y[train_idx], batch_size=d.batch_size,
                         shuffle=True, augment=augment, seed=cfg.train.seed, index=train_idx, **common)
    val = (DeviceLoader(data.train_x.index_select(0, val_idx), data.train_y[val_idx], batch_size=d.eval_batch_size,
                        index=val_idx, **common)
           if len(val_idx) else None)
    test_idx = test_subset(len(data.test_y), d.test_size)
    test = DeviceLoader(data.test_x.index_select(0, test_idx), data.test_y[test_idx], batch_size=d.eval_batch_size,
                        index=test_idx, **common)
    return train, val, test
