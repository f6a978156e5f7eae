"""Image folders and zips (train/<class>/*, test/<class>/* or, as Imagenette has it, val/<class>/*): scan, decode
once, serve from a checked cache.

Decoding tens of thousands of JPEGs takes tens of seconds, so the result is cached as uint8 tensors
by `cache`, keyed by the source's content identity (names, sizes, CRCs or mtimes).
Sources may be hostile or odd: a member may claim or inflate to gigabytes (a zip bomb, read by 8
threads at once), so no file is read past `MAX_MEMBER_BYTES` (`zipread`).
"""

from __future__ import annotations

import contextlib
import io
import lzma
import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from reslab.data.cache import cache_path, read_cache, write_cache
from reslab.data.checks import eight_bit
from reslab.data.images import ImageData
from reslab.data.zipread import mib, read_capped, read_member
from reslab.checks import require_memory
from reslab.errors import DataError, first_line

# The most an image file may take: even an uncompressed 4096x4096 RGB bitmap is 48 MiB. Larger is refused unread.
MAX_MEMBER_BYTES = 64 << 20

_SPLITS = ("train", "test")
_TEST_ALIAS = "val"  # Imagenette's layout: train/ + val/; val/ is the test split where there is no test/


@dataclass(frozen=True)
class _Member:
    split: str
    label: str  # class folder name
    name: str  # zip member name, or path relative to the folder
    stamp: tuple[int, int]  # (size, crc) for zips, (size, mtime_ns) for folders
    zip_info: zipfile.ZipInfo | None = None  # where a zip member's bytes lie


def find_source(path: str, root: Path) -> Path:
    """PATH as given (~ expanded), else relative to the data dir; an empty PATH is an error, not the cwd."""
    if not path.strip():
        raise DataError("imagefolder: needs a path: imagefolder:PATH, a folder or .zip with train/<class>/* "
                        "and test/<class>/*")
    given = Path(path).expanduser()
    candidates = [given] + ([] if given.is_absolute() else [root.expanduser() / given])
    for candidate in candidates:
        if candidate.is_dir() or candidate.is_file():
            return candidate.resolve()
    raise DataError(f"image folder {path!r} not found (tried {', '.join(str(c) for c in candidates)})")


DECODE_COPIES = 3  # the decoded images, their stack per split and its (N, C, H, W) layout are alive at once


def load_image_folder(source: Path, image_size: int | None) -> ImageData:
    """Decode once with PIL, then serve from a cache keyed by the source's content identity."""
    if image_size is not None and image_size < 1:
        raise DataError(f"data.image_size must be a positive number of pixels, got {image_size}")
    members = _scan(source)
    if image_size is not None:  # sized before decoding: 3 channels at most, uint8, DECODE_COPIES at the peak
        require_memory(DECODE_COPIES * len(members) * 3 * image_size**2,
                       f"data.image_size={image_size} ({len(members):,} images of {image_size}x{image_size}, "
                       f"decoded, stacked and laid out as tensors)")
    path = cache_path(source.stem, [str(source), image_size, [(m.name, *m.stamp) for m in members]])
    if path.is_file():
        try:
            return read_cache(path)
        except Exception as err:  # a damaged cache file is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache {path} ({first_line(err)}); decoding again", stacklevel=3)
    folder = _decode_all(source, members, image_size)
    write_cache(path, folder)
    return folder


# ---------------------------------------------------------------- scan and decode


def _hidden(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _scan(source: Path) -> list[_Member]:
    """Every image of train/<class>/ and test/<class>/, sorted; cheap (zip directory or stat only)."""
    members: list[_Member] = []
    if source.is_dir():
        for split in _SPLITS:
            folder = _TEST_ALIAS if split == "test" and not (source / "test").is_dir() else split
            for path in sorted((source / folder).rglob("*")):
                rel = path.relative_to(source)
                if path.is_file() and len(rel.parts) >= 3 and not _hidden(rel.parts):
                    st = path.stat()
                    if st.st_size > MAX_MEMBER_BYTES:
                        raise _too_big(st.st_size, str(path), zipped=False)
                    members.append(_Member(split, rel.parts[1], rel.as_posix(), (st.st_size, st.st_mtime_ns)))
    else:
        try:
            with zipfile.ZipFile(source) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(f"{source} is not a readable zip file ({first_line(err)})") from err
        tops = {i.filename.split("/", 1)[0] for i in infos if not _hidden(i.filename.split("/"))}
        prefix = "" if tops & {*_SPLITS, _TEST_ALIAS} or len(tops) != 1 else f"{tops.pop()}/"
        firsts = {i.filename.removeprefix(prefix).split("/", 1)[0] for i in infos if i.filename.startswith(prefix)}
        alias = {} if "test" in firsts else {_TEST_ALIAS: "test"}
        for info in infos:
            parts = info.filename.removeprefix(prefix).split("/")
            parts[0] = alias.get(parts[0], parts[0])
            if info.filename.startswith(prefix) and len(parts) >= 3 and parts[0] in _SPLITS and not _hidden(parts):
                if info.file_size > MAX_MEMBER_BYTES or info.compress_size > MAX_MEMBER_BYTES:  # reads are capped too
                    raise _too_big(max(info.file_size, info.compress_size), f"{source}:{info.filename}", zipped=True)
                members.append(_Member(parts[0], parts[1], info.filename, (info.file_size, info.CRC), info))
    members.sort(key=lambda m: (m.split, m.label, m.name))
    for split in _SPLITS:
        if not any(m.split == split for m in members):
            raise DataError(f"{source} has no images in {split}/<class>/; expected train/<class>/* and test/<class>/* "
                            f"(or {_TEST_ALIAS}/<class>/*)")
    return members


def _too_big(size: int, label: str, zipped: bool) -> DataError:
    """The error for a file whose (declared) size no image has, raised before reading a byte of it."""
    what = f"would inflate to {mib(size)}" if zipped else f"is {mib(size)}"
    return DataError(f"{label} {what}, more than the {mib(MAX_MEMBER_BYTES)} an image file may take"
                     f"{' (a zip bomb?)' if zipped else ''}; remove it from the image folder")


def _decode_image(data: bytes, name: str, image_size: int | None) -> np.ndarray:
    """One image as uint8 (H, W) if grayscale, else (H, W, 3); 16-bit and float images scaled, not clipped."""
    from PIL import Image

    buffer = io.BytesIO(data)
    try:
        with Image.open(buffer) as img:
            img = eight_bit(img, name)
            if image_size is not None and img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as err:  # PIL names the buffer: name the file
        reason = first_line(err).replace(f" {buffer!r}", "").replace(repr(buffer), "it")
        raise DataError(f"{name} is not a readable image ({reason})") from err


def _decode_chunk(source: Path, members: list[_Member], image_size: int | None) -> list[np.ndarray]:
    """Decode a chunk of members; each thread opens the zip itself (ZipFile objects are not thread-safe)."""
    arrays = []
    with contextlib.ExitStack() as stack:
        zf = stack.enter_context(zipfile.ZipFile(source)) if source.is_file() else None
        for m in members:
            label = f"{source}:{m.name}" if zf is not None else str(source / m.name)
            try:
                if zf is not None:
                    data = read_member(zf, m.zip_info or zf.getinfo(m.name), label, MAX_MEMBER_BYTES)
                else:
                    with open(source / m.name, "rb") as fh:
                        data = read_capped(fh, label, MAX_MEMBER_BYTES)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, zlib.error, lzma.LZMAError,
                    EOFError) as err:
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
    if len(classes["train"]) < 2:  # it would train to 100% and mean nothing
        raise DataError(f"{source} has only 1 class ({', '.join(classes['train'])}); a classifier needs at least 2 "
                        "(train/<class>/ and test/<class>/ folders)")
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

