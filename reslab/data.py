"""Datasets as cached uint8 tensors, and batches made on the training device.

Sources (torchvision datasets, image folders or zips) are decoded once into uint8 (N, C, H, W)
tensors; `DeviceLoader` keeps them on the device and shuffles, augments and normalises whole
batches there, so the hot loop has no DataLoader, no per-sample Python and no host sync.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from reslab.errors import DataError

CACHE_FORMAT_VERSION = 1

# spec -> (torchvision dataset class, known per-channel mean and std of the train set in [0, 1] units)
_TORCHVISION: dict[str, tuple[str, tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ("MNIST", (0.1307,), (0.3081,)),
    "fashion-mnist": ("FashionMNIST", (0.2860,), (0.3530,)),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
DATASET_NAMES: tuple[str, ...] = (*_TORCHVISION, "imagefolder:PATH")


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


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The argument, else $RESLAB_DATA, else ./data (torchvision's `root`)."""
    return Path(data_dir or os.environ.get("RESLAB_DATA") or "data")


def cache_dir() -> Path:
    """Where decoded image folders are cached: $RESLAB_CACHE or ~/.cache/reslab (never the data dir)."""
    return Path(os.environ.get("RESLAB_CACHE") or Path.home() / ".cache" / "reslab")


def load_dataset(
    spec: str, data_dir: str | Path | None = None, *, download: bool = True, image_size: int | None = None
) -> ImageData:
    """Load `spec` (mnist, fashion-mnist, cifar10, cifar100 or imagefolder:PATH) as uint8 tensors."""
    root = resolve_data_dir(data_dir)
    if spec.startswith("imagefolder:"):
        return _load_image_folder(spec, _find_source(spec.removeprefix("imagefolder:"), root), image_size)
    name = spec.strip().lower().replace("_", "-")
    if name not in _TORCHVISION:
        raise DataError(f"unknown dataset {spec!r}; valid: {', '.join(DATASET_NAMES)}")
    data = _load_torchvision(name, root, download)
    if image_size is None or data.input_shape[1:] == (image_size, image_size):
        return data
    if image_size < 1:
        raise DataError(f"data.image_size must be a positive number of pixels, got {image_size}")
    return dataclasses.replace(data, train_x=_resize(data.train_x, image_size), test_x=_resize(data.test_x, image_size))


def _resize(x: Tensor, size: int) -> Tensor:
    """uint8 (N, C, H, W) -> (N, C, size, size), antialiased bilinear like PIL's resize."""
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- torchvision datasets


def _expected_files(cls: type, root: Path) -> tuple[Path, list[tuple[str, str | None]]]:
    """The folder torchvision reads and the (file, md5 or None) it needs there, from its own class."""
    if hasattr(cls, "resources"):  # MNIST family: uncompressed forms of the .gz resources, no md5
        return root / cls.__name__ / "raw", [(os.path.splitext(f)[0], None) for f, _ in cls.resources]
    files = [(f, md5) for f, md5 in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]
    return root / cls.base_folder, files  # CIFAR: md5s that torchvision checks on every load


def _load_torchvision(name: str, root: Path, download: bool) -> ImageData:
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import check_integrity

    cls_name, mean, std = _TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    folder, files = _expected_files(cls, root)
    missing = [f for f, _ in files if not (folder / f).is_file()]
    how = f"run once with network access and download on, or copy {', '.join(f for f, _ in files)} into {folder}"
    if missing and len(missing) < len(files):  # a download would overwrite the files that are there
        raise DataError(f"{name} is incomplete: {', '.join(missing)} missing in {folder}; copy them there")
    if missing and not download:
        raise DataError(f"{name} not found: expected {', '.join(missing)} in {folder}; {how}")
    if missing:
        try:
            cls(str(root), train=True, download=True)
        except Exception as err:  # offline: URLError, RuntimeError, OSError ...
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(f"could not download {name} into {folder} ({reason}); {how}") from err
    try:
        splits = [cls(str(root), train=train, download=False) for train in (True, False)]
    except Exception as err:
        bad = [f for f, md5 in files
               if not (_readable_idx(folder / f) if md5 is None else check_integrity(str(folder / f), md5))]
        what = f"{', '.join(bad)} in {folder}" if bad else f"the files in {folder} ({err})"
        raise DataError(f"{name} is corrupt or truncated: {what}; replace them with the official files") from err
    tensors: list[Tensor] = []
    for split in splits:
        x = torch.as_tensor(split.data)
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # MNIST (N,H,W); CIFAR (N,H,W,C)
        y = torch.as_tensor(split.targets, dtype=torch.int64)
        if len(x) != len(y):
            raise DataError(f"{name} in {folder} has {len(x)} images but {len(y)} labels; replace the files")
        tensors += [x.contiguous(), y]
    return ImageData(name, *tensors, classes=tuple(splits[0].classes), mean=mean, std=std)


def _readable_idx(path: Path) -> bool:
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    try:
        read_sn3_pascalvincent_tensor(str(path), strict=True)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------- image folders and zips

_SPLITS = ("train", "test")


@dataclass(frozen=True)
class _Member:
    split: str
    label: str  # class folder name
    name: str  # zip member name, or path relative to the folder
    stamp: tuple[int, int]  # (size, crc) for zips, (size, mtime_ns) for folders
    zip_info: zipfile.ZipInfo | None = None  # where a zip member's bytes lie


def _find_source(path: str, root: Path) -> Path:
    """PATH as given, else relative to the data dir."""
    candidates = [Path(path).expanduser()] + ([] if Path(path).is_absolute() else [root / path])
    for candidate in candidates:
        if candidate.is_dir() or candidate.is_file():
            return candidate.resolve()
    raise DataError(f"image folder {path!r} not found (tried {', '.join(str(c) for c in candidates)})")


def _hidden(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _scan(source: Path) -> list[_Member]:
    """Every image of train/<class>/ and test/<class>/, sorted; cheap (zip directory or stat only)."""
    members: list[_Member] = []
    if source.is_dir():
        for split in _SPLITS:
            for path in sorted((source / split).rglob("*")):
                rel = path.relative_to(source)
                if path.is_file() and len(rel.parts) >= 3 and not _hidden(rel.parts):
                    st = path.stat()
                    members.append(_Member(split, rel.parts[1], rel.as_posix(), (st.st_size, st.st_mtime_ns)))
    else:
        try:
            with zipfile.ZipFile(source) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(f"{source} is not a readable zip file ({err})") from err
        tops = {i.filename.split("/", 1)[0] for i in infos if not _hidden(i.filename.split("/"))}
        prefix = "" if tops & set(_SPLITS) or len(tops) != 1 else f"{tops.pop()}/"
        for info in infos:
            parts = info.filename.removeprefix(prefix).split("/")
            if info.filename.startswith(prefix) and len(parts) >= 3 and parts[0] in _SPLITS and not _hidden(parts):
                members.append(_Member(parts[0], parts[1], info.filename, (info.file_size, info.CRC), info))
    members.sort(key=lambda m: (m.split, m.label, m.name))
    for split in _SPLITS:
        if not any(m.split == split for m in members):
            raise DataError(f"{source} has no images in {split}/<class>/; expected train/<class>/* and test/<class>/*")
    return members


def _cache_key(source: Path, members: list[_Member], image_size: int | None) -> str:
    ident = [CACHE_FORMAT_VERSION, str(source), image_size, [(m.name, *m.stamp) for m in members]]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:20]


def _decode_image(data: bytes, name: str, image_size: int | None) -> np.ndarray:
    """One image as uint8 (H, W) if grayscale, else (H, W, 3)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode not in ("L", "RGB"):
                img = img.convert("L" if img.mode in ("1", "LA") else "RGB")
            if image_size is not None and img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{name} is not a readable image ({err})") from err


def _decode_chunk(source: Path, members: list[_Member], image_size: int | None) -> list[np.ndarray]:
    """Decode a chunk of members; each thread opens the zip itself (ZipFile objects are not thread-safe)."""
    arrays = []
    with contextlib.ExitStack() as stack:
        zf = stack.enter_context(zipfile.ZipFile(source)) if source.is_file() else None
        for m in members:
            label = f"{source}:{m.name}" if zf is not None else str(source / m.name)
            try:
                data = zf.read(m.zip_info or m.name) if zf is not None else (source / m.name).read_bytes()
            except (zipfile.BadZipFile, OSError, RuntimeError, zlib.error) as err:
                raise DataError(f"cannot read {label} ({err})") from err
            arrays.append(_decode_image(data, label, image_size))
    return arrays


def _channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std in [0, 1] units, from a 256-bin histogram (no float copy)."""
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
        mean = float((counts * levels).sum() / counts.sum())
        means.append(round(mean, 6))
        stds.append(round(math.sqrt(float((counts * (levels - mean) ** 2).sum() / counts.sum())), 6))
    return tuple(means), tuple(stds)


def _decode_all(source: Path, members: list[_Member], image_size: int | None) -> dict[str, object]:
    """Decode every member into uint8 (N, C, H, W) tensors per split, labels, classes and channel stats."""
    classes = {split: sorted({m.label for m in members if m.split == split}) for split in _SPLITS}
    if classes["train"] != classes["test"]:
        raise DataError(f"{source}: train classes {classes['train']} differ from test classes {classes['test']}")
    workers = min(8, os.cpu_count() or 1)
    size = max(256, math.ceil(len(members) / (4 * workers)))
    chunks = [members[i : i + size] for i in range(0, len(members), size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL's C decoder runs without the GIL
        arrays = [a for chunk in pool.map(lambda c: _decode_chunk(source, c, image_size), chunks) for a in chunk]
    odd = next((i for i, a in enumerate(arrays) if a.shape[:2] != arrays[0].shape[:2]), None)
    if odd is not None:
        (h0, w0), (h1, w1) = arrays[0].shape[:2], arrays[odd].shape[:2]
        raise DataError(f"{source}: images differ in size ({members[0].name} is {w0}x{h0}, {members[odd].name} "
                        f"is {w1}x{h1}); set data.image_size to resize them all")
    if any(a.ndim == 3 for a in arrays):  # any colour image makes the whole set RGB
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    index = {label: i for i, label in enumerate(classes["train"])}
    out: dict[str, object] = {"classes": classes["train"]}
    for split in _SPLITS:
        picked = [i for i, m in enumerate(members) if m.split == split]
        stacked = torch.from_numpy(np.stack([arrays[i] for i in picked]))  # (N, H, W) or (N, H, W, C)
        out[f"{split}_x"] = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2).contiguous()
        out[f"{split}_y"] = torch.tensor([index[members[i].label] for i in picked], dtype=torch.int64)
    out["mean"], out["std"] = _channel_stats(out["train_x"])  # type: ignore[arg-type]
    return out


def _load_image_folder(spec: str, source: Path, image_size: int | None) -> ImageData:
    """Decode once with PIL, then serve from a cache keyed by the source's content identity."""
    if image_size is not None and image_size < 1:
        raise DataError(f"data.image_size must be a positive number of pixels, got {image_size}")
    members = _scan(source)
    path = cache_dir() / "imagefolder" / f"{source.stem}-{_cache_key(source, members, image_size)}.pt"
    cached: dict | None = None
    if path.is_file():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged cache file is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache {path} ({err}); decoding again", stacklevel=2)
    if cached is None:
        cached = _decode_all(source, members, image_size)
        _atomic_save(cached, path)
    return ImageData(spec, cached["train_x"], cached["train_y"], cached["test_x"], cached["test_y"],
                     tuple(cached["classes"]), tuple(cached["mean"]), tuple(cached["std"]))


def _atomic_save(obj: object, path: Path) -> None:
    """Write to a temp file in the same folder, then rename, so readers never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(obj, f)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as err:  # the cache is an optimisation: a read-only cache costs time, not the run
        warnings.warn(f"could not write cache {path} ({err}); set RESLAB_CACHE to a writable folder", stacklevel=3)


# ---------------------------------------------------------------- splits and device batches


def split_indices(n: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """(train_idx, val_idx) from one seeded permutation; validation takes its first `val_size`."""
    if val_size < 0:
        raise DataError(f"validation size {val_size} is negative; use 0 for no validation set")
    if val_size >= n:
        raise DataError(f"validation size {val_size} is not smaller than the {n} training images")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:], perm[:val_size]


def _channel_tensor(values: Sequence[float] | Tensor, device: torch.device | str | None) -> Tensor:
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
    """Batches from uint8 tensors already on the device: one H2D copy per epoch, no host sync per batch."""

    def __init__(self, images: Tensor, labels: Tensor, *, batch_size: int, mean: Sequence[float],
                 std: Sequence[float], device: torch.device | str, shuffle: bool = False, drop_last: bool = False,
                 augment: Augment | None = None, seed: int = 0, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"need uint8 (N, C, H, W) images and N labels, got {images.dtype} "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        if batch_size < 1 or len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise ValueError(f"bad batch_size {batch_size} or mean/std for {images.shape[1]} channels")
        self.device = torch.device(device)
        self.images = images.to(self.device)  # uint8 (N, C, H, W), moved once
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.seed, self.dtype, self.channels_last = augment, seed, dtype, channels_last
        self._mean = _channel_tensor(mean, self.device)
        self._std = _channel_tensor(std, self.device)
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        return len(self.images)

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

    def _batches(self, start: int, order: Tensor, padding: int, offsets: Tensor | None,
                 flips: Tensor | None) -> Iterator[tuple[Tensor, Tensor]]:
        for first in range(start * self.batch_size, len(self) * self.batch_size, self.batch_size):
            batch = slice(first, first + self.batch_size)
            idx = order[batch]
            x = self.images[idx]  # uint8 (B, C, H, W); augmenting uint8 moves 4x fewer bytes than float
            if offsets is not None:
                x = _random_crop(x, offsets[batch], padding)
            if flips is not None:
                x = torch.where(flips[batch, None, None, None], x.flip(-1), x)
            x = normalize(x, self._mean, self._std, self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


def _random_crop(x: Tensor, offsets: Tensor, padding: int) -> Tensor:
    """Each sample's HxW window of its zero-padded image at (dy, dx) = offsets[i], by one gather."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p), zeros = black
    rows = (offsets[:, 0:1] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (offsets[:, 1:2] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]
