"""Image folders and zips (train/<class>/*, test/<class>/*): scan, decode once, serve from a checked cache.

Decoding tens of thousands of JPEGs takes tens of seconds, so the result is cached as uint8 tensors
under `cache_dir()`, keyed by the source's content identity (names, sizes, CRCs or mtimes). The cache
is an optimisation: a cache that cannot be written is a warning, and one that cannot be read or fails
its checksum is rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from reslab.data.images import ImageData
from reslab.errors import DataError, first_line
from reslab.files import atomic_write

# 2: tensors checksummed in the cache file (1 had no checksum; its files are keyed apart and ignored)
CACHE_FORMAT_VERSION = 2

_SPLITS = ("train", "test")
_TENSORS = ("train_x", "train_y", "test_x", "test_y")


def cache_dir() -> Path:
    """Where decoded image folders are cached: $RESLAB_CACHE or ~/.cache/reslab (never the data dir)."""
    return Path(os.environ.get("RESLAB_CACHE") or Path.home() / ".cache" / "reslab")


@dataclass(frozen=True)
class _Member:
    split: str
    label: str  # class folder name
    name: str  # zip member name, or path relative to the folder
    stamp: tuple[int, int]  # (size, crc) for zips, (size, mtime_ns) for folders
    zip_info: zipfile.ZipInfo | None = None  # where a zip member's bytes lie


def find_source(path: str, root: Path) -> Path:
    """PATH as given, else relative to the data dir."""
    candidates = [Path(path).expanduser()] + ([] if Path(path).is_absolute() else [root / path])
    for candidate in candidates:
        if candidate.is_dir() or candidate.is_file():
            return candidate.resolve()
    raise DataError(f"image folder {path!r} not found (tried {', '.join(str(c) for c in candidates)})")


def load_image_folder(source: Path, image_size: int | None) -> ImageData:
    """Decode once with PIL, then serve from a cache keyed by the source's content identity."""
    if image_size is not None and image_size < 1:
        raise DataError(f"data.image_size must be a positive number of pixels, got {image_size}")
    members = _scan(source)
    path = cache_dir() / "imagefolder" / f"{source.stem}-{_cache_key(source, members, image_size)}.pt"
    if path.is_file():
        try:
            return _read_cache(path)
        except Exception as err:  # a damaged cache file is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache {path} ({first_line(err)}); decoding again", stacklevel=3)
    folder = _decode_all(source, members, image_size)
    _write_cache(path, folder)
    return folder


# ---------------------------------------------------------------- scan and decode


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
            raise DataError(f"{source} is not a readable zip file ({first_line(err)})") from err
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
        raise DataError(f"{name} is not a readable image ({first_line(err)})") from err


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
                raise DataError(f"cannot read {label} ({first_line(err)})") from err
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


def _decode_all(source: Path, members: list[_Member], image_size: int | None) -> ImageData:
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
    tensors: dict[str, Tensor] = {}
    for split in _SPLITS:
        picked = [i for i, m in enumerate(members) if m.split == split]
        stacked = torch.from_numpy(np.stack([arrays[i] for i in picked]))  # (N, H, W) or (N, H, W, C)
        tensors[f"{split}_x"] = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2).contiguous()
        tensors[f"{split}_y"] = torch.tensor([index[members[i].label] for i in picked], dtype=torch.int64)
    mean, std = _channel_stats(tensors["train_x"])
    return ImageData("", **tensors, classes=tuple(classes["train"]), mean=mean, std=std)


# ---------------------------------------------------------------- the cache file


def _cache_key(source: Path, members: list[_Member], image_size: int | None) -> str:
    ident = [CACHE_FORMAT_VERSION, str(source), image_size, [(m.name, *m.stamp) for m in members]]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:20]


def _checksums(tensors: Mapping[str, Tensor], meta: Mapping[str, list]) -> dict[str, list]:
    """name -> [dtype, shape, crc32 of the bytes] per tensor, and the crc32 of the rest (~25 ms per 150 MB).

    zlib.crc32 catches the accidental damage a cache meets (bit rot, a torn copy, a stray write);
    it is not a defence against someone forging the file.
    """
    sums: dict[str, list] = {}
    for name, t in tensors.items():
        flat = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # the raw bytes, no copy
        sums[name] = [str(t.dtype), list(t.shape), zlib.crc32(flat.numpy())]
    sums["meta"] = ["json", [], zlib.crc32(json.dumps(meta, sort_keys=True).encode())]
    return sums


def _write_cache(path: Path, folder: ImageData) -> None:
    """Save tensors, metadata and their checksums atomically; an unwritable cache costs time, not the run."""
    tensors = {name: getattr(folder, name) for name in _TENSORS}
    meta = {"classes": list(folder.classes), "mean": list(folder.mean), "std": list(folder.std)}
    payload = {"format": CACHE_FORMAT_VERSION, "tensors": tensors, "meta": meta,
               "checksums": _checksums(tensors, meta)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: torch.save(payload, fh), mode="wb")
    except OSError as err:
        warnings.warn(f"could not write cache {path} ({first_line(err)}); set RESLAB_CACHE to a writable folder",
                      stacklevel=4)


def _read_cache(path: Path) -> ImageData:
    """The cached folder, after checking every checksum; raises (anything) when it cannot be trusted."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT_VERSION:
        raise ValueError(f"not a reslab cache of format {CACHE_FORMAT_VERSION}")
    tensors, meta, stored = payload["tensors"], payload["meta"], payload["checksums"]
    if set(tensors) != set(_TENSORS):
        raise ValueError(f"holds {sorted(tensors)} instead of {list(_TENSORS)}")
    actual = _checksums(tensors, meta)
    bad = [name for name in actual if actual[name] != stored.get(name)]
    if bad:
        raise ValueError(f"checksum mismatch in {', '.join(bad)}: the file is corrupted")
    return ImageData("", **tensors, classes=tuple(meta["classes"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]))
