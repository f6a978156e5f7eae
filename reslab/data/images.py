"""`ImageData`: a whole dataset as uint8 tensors, the one form every source is turned into."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import Tensor

from reslab.errors import DataError


@dataclass(frozen=True, eq=False)
class ImageData:
    """A whole dataset as CPU uint8 tensors plus what is needed to normalise it."""

    name: str
    train_x: Tensor  # uint8 (N, C, H, W)
    train_y: Tensor  # int64 (N,)
    test_x: Tensor  # uint8 (M, C, H, W)
    test_y: Tensor  # int64 (M,)
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def select_classes(self, classes: Sequence[int] | None) -> ImageData:
        """Only the images of `classes` (train and test), relabelled 0..k-1 in the order given (data.classes:
        a CIFAR-10 split trains on 0-4 and transfers to 5-9); None keeps everything."""
        if classes is None:
            return self
        bad = [c for c in classes if not 0 <= c < self.num_classes]
        if bad:
            raise DataError(f"data.classes: {self.name} has classes 0..{self.num_classes - 1}, not {bad[0]}")
        relabel = torch.full((self.num_classes,), -1, dtype=torch.int64)
        relabel[torch.tensor(list(classes))] = torch.arange(len(classes))
        train, test = relabel[self.train_y] >= 0, relabel[self.test_y] >= 0
        return replace(self, train_x=self.train_x[train], train_y=relabel[self.train_y[train]],
                       test_x=self.test_x[test], test_y=relabel[self.test_y[test]],
                       classes=tuple(self.classes[c] for c in classes))
