"""reslab.data.loader: splits, DeviceLoader's epochs, resume, normalisation and augmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import Normalize

from reslab.data import Augment, DeviceLoader, normalize, split_indices
from reslab.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's ~/.cache or $RESLAB_DATA


def test_split_indices() -> None:
    train, val = split_indices(100, 20, seed=3)
    again_train, again_val = split_indices(100, 20, seed=3)
    other_train, other_val = split_indices(100, 20, seed=4)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert not torch.equal(val, other_val)
    assert len(train) == 80 and len(val) == 20 and train.dtype == torch.int64
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))
    train0, val0 = split_indices(10, 0, seed=0)
    assert len(val0) == 0 and sorted(train0.tolist()) == list(range(10))
    with pytest.raises(DataError, match="validation size 60000 is not smaller than the 60000 training images"):
        split_indices(60000, 60000, seed=0)
    with pytest.raises(DataError, match="negative"):
        split_indices(10, -1, seed=0)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def noise(n: int = 50, c: int = 3, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def collect(loader: DeviceLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs).cpu(), torch.cat(ys).cpu()


@pytest.mark.parametrize("device", DEVICES)
def test_shuffled_epoch_covers_every_sample_once(device: str) -> None:
    images = noise()
    loader = DeviceLoader(images, torch.arange(50), batch_size=16, mean=(0.0,) * 3, std=(1.0,) * 3,
                          device=device, shuffle=True, seed=7)
    assert len(loader) == 4 and loader.num_samples == 50
    batches = list(loader)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert all(x.device.type == device and y.device.type == device and y.dtype == torch.int64 for x, y in batches)
    x, y = collect_batches(batches)
    assert sorted(y.tolist()) == list(range(50)) and y.tolist() != list(range(50))
    assert torch.equal((x * 255).round().to(torch.uint8), images[y])  # images travel with their labels


def collect_batches(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([x for x, _ in batches]).cpu(), torch.cat([y for _, y in batches]).cpu()


def test_epochs_are_reproducible_and_differ() -> None:
    def make(seed: int) -> DeviceLoader:
        return DeviceLoader(noise(), torch.arange(50), batch_size=10, mean=(0.5,) * 3, std=(0.25,) * 3,
                            device="cpu", shuffle=True, augment=Augment(), seed=seed)

    a, b = make(1), make(1)
    a.set_epoch(3)
    b.set_epoch(3)
    xa, ya = collect(a)
    xb, yb = collect(b)
    assert torch.equal(ya, yb) and torch.equal(xa, xb)
    assert a.epoch == 4  # iterating advances, so a loop without set_epoch still reshuffles
    xa4, ya4 = collect(a)
    assert not torch.equal(ya, ya4)
    a.set_epoch(3)
    assert torch.equal(collect(a)[1], ya)
    assert not torch.equal(collect(make(2))[1], collect(make(1))[1])


def test_mid_epoch_resume_sees_the_same_batches() -> None:
    def make() -> DeviceLoader:
        loader = DeviceLoader(noise(), torch.arange(50), batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3,
                              device="cpu", shuffle=True, augment=Augment(), seed=5)
        loader.set_epoch(2)
        return loader

    full = list(make())
    resumed = list(make().batches(4))
    assert len(full) == 7 and len(resumed) == 3
    for (x_full, y_full), (x_resumed, y_resumed) in zip(full[4:], resumed):
        assert torch.equal(x_full, x_resumed) and torch.equal(y_full, y_resumed)
    assert list(make().batches(7)) == []
    with pytest.raises(ValueError):
        make().batches(8)


def test_unshuffled_order_drop_last_and_len() -> None:
    loader = DeviceLoader(noise(), torch.arange(50), batch_size=16, mean=(0.0,) * 3, std=(1.0,) * 3,
                          device="cpu", drop_last=True)
    assert len(loader) == 3
    assert collect(loader)[1].tolist() == list(range(48))
    assert collect(loader)[1].tolist() == list(range(48))
    assert len(DeviceLoader(noise(), torch.arange(50), batch_size=64, mean=(0.0,) * 3, std=(1.0,) * 3,
                            device="cpu", drop_last=True)) == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,channels_last", [(torch.float32, False), (torch.bfloat16, True)])
def test_normalisation_matches_torchvision(device: str, dtype: torch.dtype, channels_last: bool) -> None:
    images, mean, std = noise(), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    loader = DeviceLoader(images, torch.arange(50), batch_size=50, mean=mean, std=std, device=device,
                          dtype=dtype, channels_last=channels_last)
    ((x, _),) = list(loader)
    expected = Normalize(mean, std)(images.float() / 255)
    assert x.dtype == dtype and x.is_contiguous(memory_format=torch.channels_last) == channels_last
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(x.float().cpu(), expected, atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(normalize(images.to(device), mean, std).cpu(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_crop_and_flip_are_shifted_flipped_copies(device: str) -> None:
    images, padding = noise(n=64, size=6), 2
    loader = DeviceLoader(images, torch.arange(64), batch_size=24, mean=(0.0,) * 3, std=(1.0,) * 3,
                          device=device, shuffle=True, augment=Augment(crop_padding=padding, hflip=True))
    x, y = collect(loader)
    out = (x * 255).round().to(torch.uint8)
    seen: set[tuple[int, int, bool]] = set()
    for sample, label in zip(out, y.tolist()):
        padded = F.pad(images[label], (padding,) * 4)
        windows = {(dy, dx): padded[:, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)}
        matches = [(dy, dx, flip) for (dy, dx), window in windows.items() for flip in (False, True)
                   if torch.equal(sample, window.flip(-1) if flip else window)]
        assert len(matches) == 1, f"sample {label} is not a unique crop/flip of its image"
        seen.add(matches[0])
    assert len({(dy, dx) for dy, dx, _ in seen}) > 8 and {flip for *_, flip in seen} == {False, True}
    plain = DeviceLoader(images, torch.arange(64), batch_size=64, mean=(0.0,) * 3, std=(1.0,) * 3, device=device,
                         augment=Augment(crop_padding=0, hflip=False))
    assert torch.equal((collect(plain)[0] * 255).round().to(torch.uint8), images)


def test_loader_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError):
        DeviceLoader(noise().float(), torch.arange(50), batch_size=8, mean=(0,) * 3, std=(1,) * 3, device="cpu")
    with pytest.raises(ValueError):
        DeviceLoader(noise(), torch.arange(50), batch_size=8, mean=(0,), std=(1,), device="cpu")
