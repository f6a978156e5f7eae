"""reslab.data.cache: the decoded-image cache is keyed by content and size, checked, rebuilt when damaged."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import torch

from helpers.fakedata import chw, image_tree, png_bytes, write_folder, write_zip
from reslab.data import imagefolder
from reslab.data import load_dataset

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's ~/.cache or $RESLAB_DATA


def test_cache_hit_skips_decoding_and_data_dir_is_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             isolated_cache: Path) -> None:
    source = write_folder(tmp_path / "imgs", image_tree())
    listing = sorted(p for p in source.rglob("*"))
    first = load_dataset(f"imagefolder:{source}")
    assert len(list(isolated_cache.rglob("*.pt"))) == 1 and sorted(source.rglob("*")) == listing
    monkeypatch.setattr(imagefolder, "_decode_image", lambda *a: pytest.fail("decoded despite the cache"))
    second = load_dataset(f"imagefolder:{source}")
    assert torch.equal(first.train_x, second.train_x) and first.mean == second.mean
    assert not list(isolated_cache.rglob("*.tmp"))


def test_cache_is_keyed_by_image_size(tmp_path: Path) -> None:
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    assert load_dataset(f"imagefolder:{source}").input_shape == (3, 6, 6)
    assert load_dataset(f"imagefolder:{source}", image_size=3).input_shape == (3, 3, 3)


def test_changed_folder_file_invalidates_cache(tmp_path: Path) -> None:
    tree = image_tree()
    source = write_folder(tmp_path / "imgs", tree)
    load_dataset(f"imagefolder:{source}")
    path = source / "train/cat/000.png"
    stat = path.stat()
    path.write_bytes(png_bytes(255 - tree["train/cat/000.png"]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    ds = load_dataset(f"imagefolder:{source}")
    assert torch.equal(ds.train_x[0], chw(255 - tree["train/cat/000.png"]))


def test_unwritable_cache_warns_and_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "not-a-dir"))
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    with pytest.warns(UserWarning, match="could not write cache"):
        assert load_dataset(f"imagefolder:{source}").num_classes == 2


def test_damaged_cache_is_rebuilt(tmp_path: Path, isolated_cache: Path) -> None:
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    first = load_dataset(f"imagefolder:{source}")
    (cached,) = isolated_cache.rglob("*.pt")
    cached.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        second = load_dataset(f"imagefolder:{source}")
    assert torch.equal(first.train_x, second.train_x)


def test_corrupted_cache_tensor_bytes_are_detected_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             isolated_cache: Path) -> None:
    """Bytes flipped inside the saved pixels still unpickle: only the checksum tells them from the truth."""
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    first = load_dataset(f"imagefolder:{source}")
    (cached,) = isolated_cache.rglob("*.pt")
    raw = bytearray(cached.read_bytes())
    start = raw.find(first.train_x.numpy().tobytes())  # the train pixels lie in the file as they are
    assert start > 0
    raw[start + 100] ^= 0xFF
    cached.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"unreadable cache .*checksum mismatch in train_x") as record:
        second = load_dataset(f"imagefolder:{source}")
    assert len([w for w in record if "cache" in str(w.message)]) == 1
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_x, second.test_x)
    assert first.classes == second.classes and first.mean == second.mean
    assert list(isolated_cache.rglob("*.pt")) == [cached] and cached.read_bytes() != bytes(raw)  # rewritten
    monkeypatch.setattr(imagefolder, "_decode_image", lambda *a: pytest.fail("decoded despite the rebuilt cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = load_dataset(f"imagefolder:{source}")
    assert torch.equal(third.train_x, first.train_x)


def test_cache_without_checksums_is_rebuilt(tmp_path: Path, isolated_cache: Path) -> None:
    """A file at the cache's path that is a valid torch file of another layout is not served."""
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    first = load_dataset(f"imagefolder:{source}")
    (cached,) = isolated_cache.rglob("*.pt")
    torch.save({"train_x": first.train_x.flip(0), "train_y": first.train_y, "test_x": first.test_x,
                "test_y": first.test_y, "classes": list(first.classes), "mean": list(first.mean),
                "std": list(first.std)}, cached)
    with pytest.warns(UserWarning, match="unreadable cache"):
        second = load_dataset(f"imagefolder:{source}")
    assert torch.equal(first.train_x, second.train_x)


def test_cache_with_out_of_range_labels_is_rebuilt(tmp_path: Path, isolated_cache: Path) -> None:
    """A cache whose checksums match but whose labels are impossible (a buggy writer) is not served."""
    import dataclasses

    from reslab.data.cache import checksums

    source = write_zip(tmp_path / "imgs.zip", image_tree())
    first = load_dataset(f"imagefolder:{source}")
    (cached,) = isolated_cache.rglob("*.pt")
    payload = torch.load(cached, weights_only=True)
    bad = dataclasses.replace(first, train_y=first.train_y + 5)
    tensors = {name: getattr(bad, name) for name in ("train_x", "train_y", "test_x", "test_y")}
    payload["tensors"] = tensors
    payload["checksums"] = checksums(tensors, payload["meta"])
    torch.save(payload, cached)
    with pytest.warns(UserWarning, match=r"unreadable cache .*train label 5 \(sample 0\) is outside 0\.\.1"):
        second = load_dataset(f"imagefolder:{source}")
    assert torch.equal(second.train_y, first.train_y)


def test_stale_cache_temp_files_are_removed_and_nothing_else(tmp_path: Path, isolated_cache: Path) -> None:
    """A write killed by SIGKILL leaves atomic_write's temp file; the next cache write removes it once stale."""
    folder = isolated_cache / "imagefolder"
    folder.mkdir(parents=True)
    old = time.time() - 2 * 3600
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".imgs-{'0' * 20}.pt.", suffix=".tmp")  # as atomic_write does
    os.write(fd, b"partial")
    os.close(fd)
    stale = Path(name)
    fresh = folder / f".other-{'1' * 20}.pt.qq3r8zz1.tmp"
    kept = [folder / ".notes.tmp", folder / f"imgs-{'0' * 20}.pt", folder / f"imgs-{'0' * 20}.pt.k2x_9abc.tmp",
            folder / f".imgs-{'0' * 20}.pt.k2x_9abc.tmp.bak", isolated_cache / stale.name]
    for path in [fresh, *kept]:
        path.write_bytes(b"partial")
    (folder / f".dir-{'2' * 20}.pt.abcdefgh.tmp").mkdir()
    (folder / f".link-{'3' * 20}.pt.abcdefgh.tmp").symlink_to(tmp_path / "users-file")
    (tmp_path / "users-file").write_bytes(b"keep me")
    kept += [folder / f".dir-{'2' * 20}.pt.abcdefgh.tmp", folder / f".link-{'3' * 20}.pt.abcdefgh.tmp",
             tmp_path / "users-file"]
    for path in [stale, *kept]:
        os.utime(path, (old, old), follow_symlinks=False)
    load_dataset(f"imagefolder:{write_zip(tmp_path / 'imgs.zip', image_tree())}")
    assert not stale.exists() and fresh.exists() and all(path.exists() for path in kept)
