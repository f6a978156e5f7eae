"""reslab.data.imagefolder: image folders and zips of class folders, and what is refused in them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.fakedata import chw, image_tree, write_folder, write_zip
from reslab.data import imagefolder
from reslab.data import load_dataset
from reslab.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's ~/.cache or $RESLAB_DATA


@pytest.mark.parametrize("kind", ["folder", "zip", "zip-with-top-folder", "zip-deflated", "zip-bzip2", "zip-lzma"])
def test_image_folder_formats(tmp_path: Path, kind: str) -> None:
    tree = image_tree()
    compression = {"zip-deflated": zipfile.ZIP_DEFLATED, "zip-bzip2": zipfile.ZIP_BZIP2,
                   "zip-lzma": zipfile.ZIP_LZMA}.get(kind, zipfile.ZIP_STORED)
    if kind == "folder":
        source = write_folder(tmp_path / "imgs", tree)
    else:
        prefix = "top/" if kind == "zip-with-top-folder" else ""
        source = write_zip(tmp_path / "imgs.zip", tree, prefix=prefix, compression=compression)
    ds = load_dataset(f"imagefolder:{source}", tmp_path)
    assert ds.name == f"imagefolder:{source}" and ds.classes == ("cat", "dog")
    assert ds.train_x.shape == (6, 3, 6, 6) and ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1] and ds.test_y.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(ds.train_x[0], chw(tree["train/cat/000.png"]))
    assert torch.equal(ds.test_x[5], chw(tree["test/dog/002.png"]))
    pixels = ds.train_x.double() / 255
    assert ds.mean == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist(), abs=1e-6)
    assert ds.std == pytest.approx(pixels.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-6)


def test_grayscale_keeps_one_channel_and_mixed_becomes_rgb(tmp_path: Path) -> None:
    gray = image_tree(gray=True)
    ds = load_dataset(f"imagefolder:{write_folder(tmp_path / 'gray', gray)}")
    assert ds.input_shape == (1, 6, 6) and torch.equal(ds.train_x[1], chw(gray["train/cat/001.png"]))
    mixed = {**gray, "train/cat/001.png": image_tree()["train/cat/001.png"]}
    ds = load_dataset(f"imagefolder:{write_zip(tmp_path / 'mixed.zip', mixed)}")
    assert ds.input_shape == (3, 6, 6)
    assert torch.equal(ds.train_x[0], chw(gray["train/cat/000.png"]).expand(3, 6, 6))
    assert torch.equal(ds.train_x[1], chw(mixed["train/cat/001.png"]))


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    tree = {**image_tree(), "train/dog/002.png": np.zeros((9, 7, 3), np.uint8)}
    source = write_folder(tmp_path / "imgs", tree)
    with pytest.raises(DataError, match=r"differ in size.*002\.png is 7x9.*data\.image_size"):
        load_dataset(f"imagefolder:{source}")
    ds = load_dataset(f"imagefolder:{source}", image_size=4)
    assert ds.train_x.shape == (6, 3, 4, 4) and ds.test_x.shape == (6, 3, 4, 4)
    assert ds.train_x[5].eq(0).all()


def test_relative_path_is_found_in_data_dir(tmp_path: Path) -> None:
    write_zip(tmp_path / "sets.zip", image_tree())
    assert load_dataset("imagefolder:sets.zip", tmp_path).num_classes == 2
    with pytest.raises(DataError, match="image folder 'nope.zip' not found"):
        load_dataset("imagefolder:nope.zip", tmp_path)


def test_bad_image_folders_are_data_errors(tmp_path: Path) -> None:
    tree = image_tree()
    not_image = write_folder(tmp_path / "a", tree)
    (not_image / "train/cat/notes.png").write_text("not an image")
    with pytest.raises(DataError, match=r"train/cat/notes\.png is not a readable image"):
        load_dataset(f"imagefolder:{not_image}")
    no_test = write_folder(tmp_path / "b", {k: v for k, v in tree.items() if k.startswith("train/")})
    with pytest.raises(DataError, match=r"no images in test/<class>/"):
        load_dataset(f"imagefolder:{no_test}")
    mismatch = write_zip(tmp_path / "c.zip", {k: v for k, v in tree.items() if k != "test/dog/000.png"}
                         | {"test/bird/000.png": tree["test/dog/000.png"]})
    with pytest.raises(DataError, match="train classes .* differ from test classes"):
        load_dataset(f"imagefolder:{mismatch}")
    sizes = write_folder(tmp_path / "e", {**tree, **{k: np.zeros((4, 4, 3), np.uint8) for k in tree if "test/" in k}})
    with pytest.raises(DataError, match=r"differ in size \(test/cat/000\.png is 4x4, train/cat/000\.png is 6x6\)"):
        load_dataset(f"imagefolder:{sizes}")
    bad_zip = tmp_path / "d.zip"
    bad_zip.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match=r"d\.zip is not a readable zip file"):
        load_dataset(f"imagefolder:{bad_zip}")


def test_hidden_files_are_ignored(tmp_path: Path) -> None:
    source = write_folder(tmp_path / "imgs", image_tree())
    (source / "train/cat/.DS_Store").write_bytes(b"\0\1")
    assert len(load_dataset(f"imagefolder:{source}").train_y) == 6


def test_one_class_image_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_zip(tmp_path / "imgs.zip", image_tree(classes=("dog",)))
    monkeypatch.setattr(imagefolder, "_decode_image", lambda *a: pytest.fail("decoded before refusing"))
    with pytest.raises(DataError, match=r"imgs\.zip has only 1 class \(dog\); a classifier needs at least 2"):
        load_dataset(f"imagefolder:{source}")


@pytest.mark.parametrize("path", ["", "  "])
def test_empty_imagefolder_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    write_folder(tmp_path, image_tree())  # a valid tree in the current directory must not be picked up
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"imagefolder: needs a path"):
        load_dataset(f"imagefolder:{path}", tmp_path)


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_unreadable_image_is_named_not_bytesio(tmp_path: Path, kind: str) -> None:
    tree = image_tree()
    if kind == "zip":
        source = write_zip(tmp_path / "imgs.zip", tree)
        with zipfile.ZipFile(source, "a") as zf:
            zf.writestr("train/cat/readme.png", "not an image")
    else:
        source = write_folder(tmp_path / "imgs", tree)
        (source / "train/cat/readme.png").write_text("not an image")
    with pytest.raises(DataError, match=r"train/cat/readme\.png is not a readable image") as info:
        load_dataset(f"imagefolder:{source}")
    assert "BytesIO" not in str(info.value) and " at 0x" not in str(info.value)
