"""Decoded datasets kept in this process, so that a sweep decodes each dataset once, not once per run.

Decoding MNIST from its IDX files costs ~0.15 s a run, reading the checked cache of a CIFAR-10 zip ~1.3 s (its
checksums and data checks); a sweep worker trains many runs of the same data. Inside `reusing()` (the sweep's
in-process path and each pool worker turn it on) `load_dataset` hands out the `ImageData` it decoded before for the
same source, split layout and size. Outside it nothing is kept, so a library caller's memory is its own.

A reused dataset is the same object: its tensors are read, never written (every consumer indexes them, which
copies), so a run given it trains exactly as in a fresh process. The memo is bounded: the least recently used
datasets are dropped beyond `budget_bytes`, and one larger than the budget is not kept at all.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterator

from reslab.data.images import ImageData

DEFAULT_BUDGET_BYTES = 2 << 30  # MNIST ~55 MB, CIFAR-10 ~184 MB decoded: room for every lab dataset, and a resize


def nbytes(data: ImageData) -> int:
    """Bytes the dataset's tensors hold."""
    return sum(t.element_size() * t.nelement() for t in (data.train_x, data.train_y, data.test_x, data.test_y))


@dataclass
class Memo:
    """Decoded datasets by key, least recently used first; `hits` and `misses` count the lookups."""

    budget_bytes: int = DEFAULT_BUDGET_BYTES
    entries: OrderedDict[Hashable, ImageData] = field(default_factory=OrderedDict)
    hits: int = 0
    misses: int = 0

    def get(self, key: Hashable, load: Callable[[], ImageData]) -> ImageData:
        """The dataset kept under `key`, else `load()` kept (within the budget) and returned."""
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        data = load()  # a failure keeps nothing: the next run tries (and reports) again
        if nbytes(data) <= self.budget_bytes:
            self.entries[key] = data
            while sum(nbytes(d) for d in self.entries.values()) > self.budget_bytes:
                self.entries.popitem(last=False)
        return data


_active: list[Memo] = []  # the memo of the innermost `reusing()` block, if any (one per process: not shared)


def current() -> Memo | None:
    """The memo `load_dataset` uses now, or None (outside `reusing()`: every call decodes)."""
    return _active[-1] if _active else None


@contextlib.contextmanager
def reusing(budget_bytes: int = DEFAULT_BUDGET_BYTES) -> Iterator[Memo]:
    """Keep decoded datasets for reuse inside the block (nested blocks share the outer memo); dropped after it."""
    memo = _active[-1] if _active else Memo(budget_bytes)
    _active.append(memo)
    try:
        yield memo
    finally:
        _active.pop()
        if not _active:
            memo.entries.clear()


def reuse_for_this_process(budget_bytes: int = DEFAULT_BUDGET_BYTES) -> Memo:
    """Turn reuse on for the rest of this process (a sweep's pool worker: it lives only for the sweep)."""
    if not _active:
        _active.append(Memo(budget_bytes))
    return _active[-1]
