"""The cache of decoded image folders: checksummed uint8 tensors, written atomically, never trusted blindly.

The cache is an optimisation: a cache that cannot be written is a warning, and one that cannot be read,
fails its checksum or holds impossible data is rebuilt, never served. Writes go through `atomic_write`;
a writer killed by SIGKILL cannot clean up its temp file, so each write sweeps away stale ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from reslab.data.checks import check_image_data
from reslab.data.images import ImageData
from reslab.errors import first_line
from reslab.files import TEMP_SUFFIX, atomic_write, remove_stale_temps

# 2: tensors checksummed in the cache file (1 had no checksum; its files are keyed apart and ignored)
CACHE_FORMAT_VERSION = 2
# a temp file untouched this long belongs to a dead writer (a live one writes ~150 MB in seconds)
STALE_TEMP_SECONDS = 3600
_KEY_HEX = 20  # hex digits of the content hash in a cache file's name, `<stem>-<key>.pt`
# atomic_write's temp name for a cache file: "." + target name + "." + mkstemp's 8 random chars + ".tmp"
_TEMP_NAME = re.compile(rf"\..*-[0-9a-f]{{{_KEY_HEX}}}\.pt\.[a-z0-9_]{{8}}" + re.escape(TEMP_SUFFIX))

TENSORS = ("train_x", "train_y", "test_x", "test_y")


def cache_dir() -> Path:
    """Where decoded image folders are cached: $RESLAB_CACHE or ~/.cache/reslab (never the data dir)."""
    return Path(os.environ.get("RESLAB_CACHE") or Path.home() / ".cache" / "reslab").expanduser()


def cache_path(stem: str, ident: list) -> Path:
    """The cache file of a source named `stem`, keyed by `ident`, its content identity (JSON-able)."""
    key = hashlib.sha256(json.dumps([CACHE_FORMAT_VERSION, *ident]).encode()).hexdigest()[:_KEY_HEX]
    return cache_dir() / "imagefolder" / f"{stem}-{key}.pt"


def checksums(tensors: Mapping[str, Tensor], meta: Mapping[str, list]) -> dict[str, list]:
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


def write_cache(path: Path, folder: ImageData) -> None:
    """Save tensors, metadata and their checksums atomically; an unwritable cache costs time, not the run."""
    tensors = {name: getattr(folder, name) for name in TENSORS}
    meta = {"classes": list(folder.classes), "mean": list(folder.mean), "std": list(folder.std)}
    payload = {"format": CACHE_FORMAT_VERSION, "tensors": tensors, "meta": meta,
               "checksums": checksums(tensors, meta)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent, STALE_TEMP_SECONDS, _TEMP_NAME)  # only cache files' temps
        atomic_write(path, lambda fh: torch.save(payload, fh), mode="wb")
    except OSError as err:
        warnings.warn(f"could not write cache {path} ({first_line(err)}); set RESLAB_CACHE to a writable folder",
                      stacklevel=4)


def read_cache(path: Path) -> ImageData:
    """The cached folder, after checking every checksum and the data itself; raises (anything) when untrusted."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT_VERSION:
        raise ValueError(f"not a reslab cache of format {CACHE_FORMAT_VERSION}")
    tensors, meta, stored = payload["tensors"], payload["meta"], payload["checksums"]
    if set(tensors) != set(TENSORS):
        raise ValueError(f"holds {sorted(tensors)} instead of {list(TENSORS)}")
    actual = checksums(tensors, meta)
    bad = [name for name in actual if actual[name] != stored.get(name)]
    if bad:
        raise ValueError(f"checksum mismatch in {', '.join(bad)}: the file is corrupted")
    data = ImageData("", **tensors, classes=tuple(meta["classes"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]))
    check_image_data(data, path)  # checksums match what was written, not that it was right
    return data
