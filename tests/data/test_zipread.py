"""reslab.data.zipread: zip members read with a cap, whatever their headers say (corrupt, bombs, liars)."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.fakedata import chw, image_tree, write_zip
from reslab.data import imagefolder
from reslab.data import load_dataset
from reslab.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's ~/.cache or $RESLAB_DATA


def test_changed_zip_member_invalidates_cache(tmp_path: Path) -> None:
    tree = image_tree()
    source = write_zip(tmp_path / "imgs.zip", tree)
    load_dataset(f"imagefolder:{source}")
    write_zip(source, {**tree, "test/dog/001.png": 255 - tree["test/dog/001.png"]})
    ds = load_dataset(f"imagefolder:{source}")
    assert torch.equal(ds.test_x[4], chw(255 - tree["test/dog/001.png"]))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_corrupt_zip_member_names_it(tmp_path: Path, compression: int) -> None:
    source = write_zip(tmp_path / "imgs.zip", image_tree(), compression=compression)
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo("train/dog/001.png")
    raw = bytearray(source.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    source.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"cannot read .*imgs\.zip:train/dog/001\.png"):
        load_dataset(f"imagefolder:{source}")


def zeros_member_zip(path: Path, tree: dict[str, np.ndarray], member: str, size: int,
                     compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A valid image tree plus `member`: `size` zero bytes, compressed (deflate ~1000:1, bzip2 ~400000:1) and
    streamed, so RAM stays small."""
    write_zip(path, tree, compression=compression)
    with zipfile.ZipFile(path, "a", compression=compression) as zf, zf.open(member, "w") as fh:
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            fh.write(chunk)
    return path


def set_declared_size(path: Path, member: str, size: int) -> None:
    """Rewrite a member's uncompressed size in its local and central headers: a zip that lies."""
    raw, name = bytearray(path.read_bytes()), member.encode()
    for signature, name_at, field in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
        start = raw.find(signature)
        while start >= 0:
            if raw[start + name_at : start + name_at + len(name)] == name:
                raw[start + field : start + field + 4] = struct.pack("<I", size)
            start = raw.find(signature, start + 4)
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~100 KB on disk, a 100 MiB member of zeros inside."""
    return zeros_member_zip(tmp_path_factory.mktemp("bomb") / "bomb.zip", image_tree(), "train/cat/big.png", 100 << 20)


def test_zip_member_declaring_a_huge_size_is_refused_before_reading(zip_bomb: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    import tracemalloc

    assert zip_bomb.stat().st_size < 1 << 20
    monkeypatch.setattr(imagefolder, "_decode_image", lambda *a: pytest.fail("decoded a zip bomb's members"))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"train/cat/big\.png .*100 MiB.*64 MiB") as info:
            load_dataset(f"imagefolder:{zip_bomb}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value) and peak < 16 << 20


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                         zipfile.ZIP_LZMA], ids=["stored", "deflate", "bzip2", "lzma"])
def test_zip_member_read_is_capped_whatever_its_header_says(tmp_path: Path, compression: int) -> None:
    """The scan trusts the declared size; the read must not: it stops one chunk past the cap."""
    import tracemalloc

    from reslab.data.zipread import read_member

    source = zeros_member_zip(tmp_path / "bomb.zip", {}, "train/cat/big.png", 16 << 20, compression)
    tracemalloc.start()
    try:
        with zipfile.ZipFile(source) as zf:
            with pytest.raises(DataError, match=r"bomb\.zip:train/cat/big\.png .*more than 1 MiB"):
                read_member(zf, zf.getinfo("train/cat/big.png"), f"{source}:train/cat/big.png", 1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
                         ids=["deflate", "bzip2", "lzma"])
def test_zip_member_with_a_lying_header_is_a_data_error(tmp_path: Path, compression: int) -> None:
    """Headers that claim 1000 bytes for 100 MiB of zeros: refused, never inflated in full.

    zipfile bounds each read of a deflated member, but inflates a bzip2 or LZMA chunk in one unbounded call.
    """
    import tracemalloc

    source = zeros_member_zip(tmp_path / "liar.zip", image_tree(), "train/cat/big.png", 100 << 20, compression)
    set_declared_size(source, "train/cat/big.png", 1000)
    with zipfile.ZipFile(source) as zf:
        assert zf.getinfo("train/cat/big.png").file_size == 1000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"liar\.zip:train/cat/big\.png"):
            load_dataset(f"imagefolder:{source}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20
