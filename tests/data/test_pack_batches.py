"""reslab.data.pack: a pack's batches gathered at once are bit for bit each run's own loader's, epoch after epoch,
from any start batch; loaders that cannot be gathered together say so."""

from __future__ import annotations

import pytest
import torch

from reslab.data import Augment, DeviceLoader, split_indices
from reslab.data import pack as pack_module
from reslab.data.pack import PackBatches, gathers_together

IMAGES = torch.randint(0, 256, (90, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
LABELS = torch.randint(0, 10, (90,), generator=torch.Generator().manual_seed(1))


def _loader(seed: int, **extra: object) -> DeviceLoader:
    """A run's training loader as reslab.loaders makes it: its seeded split's images, with their dataset index."""
    train_idx, _ = split_indices(len(IMAGES), 20, seed)
    common = dict(batch_size=16, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), device="cpu", shuffle=True, seed=seed)
    return DeviceLoader(IMAGES[train_idx], LABELS[train_idx], index=train_idx, **{**common, **extra})


@pytest.mark.parametrize("start", [0, 3])
@pytest.mark.parametrize("keep", [True, False])  # the dataset normalised once and kept, or each batch normalised
def test_packed_batches_are_each_loaders_own(start: int, keep: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack_module, "_kept", {})
    if not keep:
        monkeypatch.setattr(pack_module, "KEEP_BYTES", 0)
    seeds = (0, 1, 2, 0)  # a twin shares its seed
    own, packed = [_loader(s) for s in seeds], [_loader(s) for s in seeds]
    pack = PackBatches(packed, IMAGES, LABELS)
    assert pack.normalized is keep
    for epoch in range(2):
        for loader in own + packed:
            loader.set_epoch(epoch)
        expected = list(zip(*(loader.batches(start) for loader in own)))
        got = list(pack.batches(start))
        assert len(got) == len(expected) == 5 - start  # 70 images: 4 batches of 16 and one of 6
        for (x, y), batches in zip(got, expected):
            assert x.shape == (4, len(batches[0][1]), 3, 6, 6) and y.shape == (4, len(batches[0][1]))
            assert torch.equal(x, torch.stack([b[0] for b in batches]))
            assert torch.equal(y, torch.stack([b[1] for b in batches]))
    assert not torch.equal(got[0][1][0], got[0][1][1])  # the seeds' orders differ


def test_loaders_that_cannot_be_gathered_together() -> None:
    assert gathers_together([_loader(0), _loader(1)])
    assert not gathers_together([_loader(0), _loader(1, augment=Augment())])
    assert not gathers_together([_loader(0), _loader(1, batch_size=8)])
    assert not gathers_together([_loader(0), _loader(1, shard=(0, 2))])
    no_index = DeviceLoader(IMAGES, LABELS, batch_size=16, mean=(0.0,) * 3, std=(1.0,) * 3, device="cpu")
    assert not gathers_together([no_index])
    with pytest.raises(ValueError, match="cannot be gathered"):
        PackBatches([_loader(0), _loader(1, batch_size=8)], IMAGES, LABELS)
    with pytest.raises(ValueError, match="unaugmented"):
        no_index.epoch_index()


def test_the_normalised_dataset_is_made_once_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second pack of the process reading the same images (the next depth of a sweep) reuses the normalised copy;
    other images, or another normalisation, get their own; at most KEEP are kept."""
    monkeypatch.setattr(pack_module, "_kept", {})
    first = PackBatches([_loader(0)], IMAGES, LABELS).images
    assert PackBatches([_loader(1)], IMAGES, LABELS).images is first
    assert PackBatches([_loader(0, mean=(0.0,) * 3)], IMAGES, LABELS).images is not first
    others = [IMAGES.clone() for _ in range(pack_module.KEEP + 1)]
    for images in others:
        PackBatches([_loader(0)], images, LABELS)
    assert len(pack_module._kept) == pack_module.KEEP and PackBatches([_loader(0)], IMAGES, LABELS).images is not first
