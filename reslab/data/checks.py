"""Checks on data as it is loaded: a dataset training can use, and images read as their true 8-bit values.

A corrupt label file or cache otherwise fails mid-training (an index error or a device assert in the
loss), and a 16-bit or float image otherwise decodes silently wrong (clipped white, or black). Both are
caught here as one-line `DataError`s naming the file and the bad value, or converted properly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from reslab.data.images import ImageData
from reslab.errors import DataError

if TYPE_CHECKING:
    from PIL.Image import Image

_SPLITS = ("train", "test")


def check_image_data(data: ImageData, where: str | Path, files: Mapping[str, str | Path] | None = None,
                     fix: str = "") -> None:
    """Raise a one-line DataError unless `data` is what training assumes.

    uint8 (N, C, H, W) images, int64 labels in [0, num_classes), one per image, train and test alike in
    channels and size, at least 2 classes, mean/std per channel. `files` names the file to blame per
    tensor ("train_y" -> the train label file), else `where`; `fix` says what to do. Whole-tensor
    reductions only (~20 us for CIFAR-10's 60000 labels), no per-sample Python.
    """
    name = data.name or "dataset"

    def fail(what: str, tensor: str | None = None) -> DataError:
        blamed = (files or {}).get(tensor or "", where)
        return DataError(f"{name}: {what} in {blamed}" + (f"; {fix}" if fix else ""))

    k = data.num_classes
    if k < 2:
        raise fail(f"only {k} class ({', '.join(data.classes) or 'none'}); a classifier needs at least 2")
    for split in _SPLITS:
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise fail(f"{split} images are {x.dtype} {tuple(x.shape)}, not uint8 (N, C, H, W)", f"{split}_x")
        if y.dtype != torch.int64 or y.ndim != 1:
            raise fail(f"{split} labels are {y.dtype} {tuple(y.shape)}, not int64 (N,)", f"{split}_y")
        if len(x) != len(y) or len(x) == 0:
            raise fail(f"{len(x)} {split} images but {len(y)} labels" if len(x) else f"no {split} images",
                       f"{split}_y")
        low, high = torch.aminmax(y)
        if low < 0 or high >= k:
            index = int(((y < 0) | (y >= k)).nonzero()[0])  # only on failure: the first bad sample
            raise fail(f"{split} label {int(y[index])} (sample {index}) is outside 0..{k - 1} ({k} classes)",
                       f"{split}_y")
    train, test = (tuple(t.shape[1:]) for t in (data.train_x, data.test_x))
    if train != test:
        raise fail(f"train images are {'x'.join(map(str, train))} but test images are {'x'.join(map(str, test))}"
                   " (channels x height x width)", "test_x")
    if len(data.mean) != train[0] or len(data.std) != train[0]:
        raise fail(f"mean and std for {len(data.mean)} and {len(data.std)} channels, but the images have {train[0]}")


def eight_bit(img: Image, name: str) -> Image:
    """`img` as 8-bit "L" or "RGB", keeping the full range of 16-bit and float images.

    PIL's convert("L") clips 16-bit values at 255 (almost all white) and truncates floats in [0, 1]
    to 0 or 1 (black). 16-bit (and 32-bit integer within 0..65535, as PIL opens 16-bit PGMs) is scaled
    by 255/65535, float in [0, 1] by 255; anything else is refused, naming `name`.
    """
    from PIL import Image as PILImage

    if img.mode in ("L", "RGB"):
        return img
    if img.mode.startswith("I") or img.mode == "F":
        pixels = np.asarray(img)
        if img.mode == "F":
            if not (np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1):
                raise DataError(f"{name} has float pixels outside [0, 1] ({_span(pixels)}); save it as 8-bit")
            scaled = np.rint(pixels.astype(np.float64) * 255)
        else:
            if pixels.min() < 0 or pixels.max() > 65535:
                raise DataError(f"{name} has 32-bit integer pixels outside 0..65535 ({_span(pixels)}); "
                                "save it as 8- or 16-bit")
            scaled = (pixels.astype(np.int64) + 128) // 257  # round(v * 255 / 65535)
        return PILImage.fromarray(scaled.astype(np.uint8))
    return img.convert("L" if img.mode in ("1", "LA", "La") else "RGB")


def _span(pixels: np.ndarray) -> str:
    """'min..max' of an image's pixels, nan included, for a message."""
    return f"{np.min(pixels)}..{np.max(pixels)}"
