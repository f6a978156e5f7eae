"""Datasets as cached uint8 tensors, and batches made on the training device.

Sources (torchvision datasets, image folders or zips; `sources`, `imagefolder`) are decoded once into
uint8 (N, C, H, W) tensors (image folders cached by `cache`) and checked as they load (`checks`), so a
corrupt file fails before training, not in it. `DeviceLoader` (`loader`) keeps them on the device and
shuffles, augments and normalises whole batches there, so the hot loop has no DataLoader, no
per-sample Python and no host sync. A sweep decodes each dataset once per process (`memo`).
This module only re-exports the public names.
"""

from __future__ import annotations

from reslab.data.cache import CACHE_FORMAT_VERSION, cache_dir
from reslab.data.loader import Augment, DeviceLoader, normalize, split_indices
from reslab.data.memo import reuse_for_this_process, reusing
from reslab.data.sources import DATASET_NAMES, ImageData, load_dataset, resolve_data_dir

__all__ = [
    "CACHE_FORMAT_VERSION",
    "DATASET_NAMES",
    "Augment",
    "DeviceLoader",
    "ImageData",
    "cache_dir",
    "load_dataset",
    "normalize",
    "resolve_data_dir",
    "reuse_for_this_process",
    "reusing",
    "split_indices",
]
