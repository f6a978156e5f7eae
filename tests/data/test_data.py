"""Tests for reslab.data: every source format written tiny into tmp_path, plus real data behind a marker."""

from __future__ import annotations

import os
import pickle
import struct
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.transforms import Normalize

from reslab import data as rdata
from reslab.data import imagefolder
from reslab.data import Augment, DeviceLoader, ImageData, load_dataset, normalize, split_indices
from reslab.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
realdata = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real datasets not present at {SHARED_DATA}")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's ~/.cache or $RESLAB_DATA from a test."""
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RESLAB_DATA", raising=False)
    return tmp_path / "cache"


# ---------------------------------------------------------------- writers of the official formats


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic 0x0000080N (N = number of dims, 0x08 = uint8), then big-endian int32 dims, then bytes."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, folder: str = "MNIST", n_train: int = 12, n_test: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        write_idx(raw / name, array)
    return arrays


def make_cifar(root: Path, hundred: bool = False, n_per_batch: int = 4) -> dict[str, np.ndarray]:
    """torchvision's pickled CIFAR batches: rows of 3072 bytes (R plane, G plane, B plane)."""
    rng = np.random.default_rng(1)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    key, n_classes = ("fine_labels", 100) if hundred else ("labels", 10)
    out: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    for split, files in (("train", names), ("test", ["test" if hundred else "test_batch"])):
        for name in files:
            x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
            y = rng.integers(0, n_classes, n_per_batch).tolist()
            with open(folder / name, "wb") as f:
                pickle.dump({"data": x, key: y}, f)
            out[f"{split}_x"].append(x)
            out[f"{split}_y"] += y
    meta_name, meta_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(n_classes)]}, f)
    return {"train_x": np.concatenate(out["train_x"]), "train_y": np.array(out["train_y"]),
            "test_x": np.concatenate(out["test_x"]), "test_y": np.array(out["test_y"])}


def png_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def image_tree(classes: tuple[str, ...] = ("dog", "cat"), per_class: int = 3, size: int = 6,
               gray: bool = False, seed: int = 2) -> dict[str, np.ndarray]:
    """{relative path: HxW or HxWx3 uint8 array} for train/ and test/."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if gray else (size, size, 3)
    return {f"{split}/{c}/{i:03d}.png": rng.integers(0, 256, shape, dtype=np.uint8)
            for split in ("train", "test") for c in classes for i in range(per_class)}


def write_folder(root: Path, tree: dict[str, np.ndarray]) -> Path:
    for rel, array in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(png_bytes(array))
    return root


def write_zip(path: Path, tree: dict[str, np.ndarray], prefix: str = "", compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for rel, array in tree.items():
            zf.writestr(prefix + rel, png_bytes(array))
    return path


def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1) if array.ndim == 3 else torch.from_numpy(array)[None]


# ---------------------------------------------------------------- torchvision formats


@pytest.mark.parametrize("spec,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_datasets_load_as_uint8_nchw(tmp_path: Path, spec: str, folder: str) -> None:
    arrays = make_mnist(tmp_path, folder)
    ds = load_dataset(spec, tmp_path, download=False)
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.shape == (12, 1, 28, 28)
    assert ds.test_x.shape == (6, 1, 28, 28) and ds.train_y.dtype == torch.int64
    assert torch.equal(ds.train_x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert ds.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert ds.num_classes == 10 and ds.input_shape == (1, 28, 28) and ds.name == spec
    assert ds.mean == ((0.1307,) if spec == "mnist" else (0.2860,))


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_mnist(tmp_path)
    monkeypatch.setenv("RESLAB_DATA", str(tmp_path))
    assert rdata.resolve_data_dir(None) == tmp_path
    assert len(load_dataset("MNIST", download=False).train_y) == 12
    monkeypatch.delenv("RESLAB_DATA")
    assert rdata.resolve_data_dir(None) == Path("data")


def test_missing_dataset_names_files_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*MNIST/raw") as info:
        load_dataset("mnist", tmp_path, download=False)
    assert "\n" not in str(info.value)


def test_offline_download_failure_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(self: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried ..., got: [Errno -3]")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    with pytest.raises(DataError, match=r"could not download fashion-mnist.*network access.*FashionMNIST/raw"):
        load_dataset("fashion-mnist", tmp_path, download=True)


def test_partial_dataset_is_not_downloaded_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", lambda self: pytest.fail("download attempted"))
    with pytest.raises(DataError, match="incomplete: t10k-labels-idx1-ubyte missing"):
        load_dataset("mnist", tmp_path, download=True)


@pytest.mark.parametrize("victim", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_truncated_idx_names_the_file_and_keeps_it(tmp_path: Path, victim: str) -> None:
    make_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / victim
    path.write_bytes(path.read_bytes()[:-100 if "images" in victim else -3])
    before = path.read_bytes()
    with pytest.raises(DataError, match=f"corrupt or truncated: {victim}"):
        load_dataset("mnist", tmp_path, download=True)
    assert path.read_bytes() == before


def test_fake_cifar_fails_md5_cleanly_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_cifar(tmp_path)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", lambda self: pytest.fail("download attempted"))
    with pytest.raises(DataError, match=r"cifar10 is corrupt.*data_batch_1.*test_batch.*batches\.meta"):
        load_dataset("cifar10", tmp_path, download=True)


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_pickles_load_as_uint8_nchw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hundred: bool) -> None:
    expected = make_cifar(tmp_path, hundred=hundred)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    ds = load_dataset("cifar100" if hundred else "cifar10", tmp_path, download=False)
    n_train = 4 if hundred else 20
    assert ds.train_x.shape == (n_train, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.is_contiguous()
    assert torch.equal(ds.train_x.reshape(n_train, 3072), torch.from_numpy(expected["train_x"]))
    assert ds.train_y.tolist() == expected["train_y"].tolist()
    assert ds.test_y.tolist() == expected["test_y"].tolist()
    assert ds.num_classes == (100 if hundred else 10) and ds.classes[3] == "class3"
    assert len(ds.mean) == 3 and ds.input_shape == (3, 32, 32)


def test_unknown_spec_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'svhn'; valid: mnist, fashion-mnist, cifar10, cifar100"):
        load_dataset("svhn", tmp_path)


def test_image_size_resizes_torchvision_data(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    ds = load_dataset("mnist", tmp_path, download=False, image_size=32)
    assert ds.train_x.shape == (12, 1, 32, 32) and ds.train_x.dtype == torch.uint8


# ---------------------------------------------------------------- image folders and zips


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


def test_cache_hit_skips_decoding_and_data_dir_is_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             _isolated_cache: Path) -> None:
    source = write_folder(tmp_path / "imgs", image_tree())
    listing = sorted(p for p in source.rglob("*"))
    first = load_dataset(f"imagefolder:{source}")
    assert len(list(_isolated_cache.rglob("*.pt"))) == 1 and sorted(source.rglob("*")) == listing
    monkeypatch.setattr(imagefolder, "_decode_image", lambda *a: pytest.fail("decoded despite the cache"))
    second = load_dataset(f"imagefolder:{source}")
    assert torch.equal(first.train_x, second.train_x) and first.mean == second.mean
    assert not list(_isolated_cache.rglob("*.tmp"))


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


def test_changed_zip_member_invalidates_cache(tmp_path: Path) -> None:
    tree = image_tree()
    source = write_zip(tmp_path / "imgs.zip", tree)
    load_dataset(f"imagefolder:{source}")
    write_zip(source, {**tree, "test/dog/001.png": 255 - tree["test/dog/001.png"]})
    ds = load_dataset(f"imagefolder:{source}")
    assert torch.equal(ds.test_x[4], chw(255 - tree["test/dog/001.png"]))


def test_unwritable_cache_warns_and_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "not-a-dir"))
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    with pytest.warns(UserWarning, match="could not write cache"):
        assert load_dataset(f"imagefolder:{source}").num_classes == 2


def test_damaged_cache_is_rebuilt(tmp_path: Path, _isolated_cache: Path) -> None:
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    first = load_dataset(f"imagefolder:{source}")
    (cached,) = _isolated_cache.rglob("*.pt")
    cached.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        second = load_dataset(f"imagefolder:{source}")
    assert torch.equal(first.train_x, second.train_x)


def test_corrupted_cache_tensor_bytes_are_detected_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             _isolated_cache: Path) -> None:
    """Bytes flipped inside the saved pixels still unpickle: only the checksum tells them from the truth."""
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    first = load_dataset(f"imagefolder:{source}")
    (cached,) = _isolated_cache.rglob("*.pt")
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
    assert list(_isolated_cache.rglob("*.pt")) == [cached] and cached.read_bytes() != bytes(raw)  # rewritten
    monkeypatch.setattr(imagefolder, "_decode_image", lambda *a: pytest.fail("decoded despite the rebuilt cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = load_dataset(f"imagefolder:{source}")
    assert torch.equal(third.train_x, first.train_x)


def test_cache_without_checksums_is_rebuilt(tmp_path: Path, _isolated_cache: Path) -> None:
    """A file at the cache's path that is a valid torch file of another layout is not served."""
    source = write_zip(tmp_path / "imgs.zip", image_tree())
    first = load_dataset(f"imagefolder:{source}")
    (cached,) = _isolated_cache.rglob("*.pt")
    torch.save({"train_x": first.train_x.flip(0), "train_y": first.train_y, "test_x": first.test_x,
                "test_y": first.test_y, "classes": list(first.classes), "mean": list(first.mean),
                "std": list(first.std)}, cached)
    with pytest.warns(UserWarning, match="unreadable cache"):
        second = load_dataset(f"imagefolder:{source}")
    assert torch.equal(first.train_x, second.train_x)


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


def test_hidden_files_are_ignored(tmp_path: Path) -> None:
    source = write_folder(tmp_path / "imgs", image_tree())
    (source / "train/cat/.DS_Store").write_bytes(b"\0\1")
    assert len(load_dataset(f"imagefolder:{source}").train_y) == 6


# ---------------------------------------------------------------- hardening: hostile or silently wrong input


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


@pytest.mark.parametrize("split,offset", [("train", 5), ("t10k", 0)])
def test_out_of_range_label_names_the_file_and_value(tmp_path: Path, split: str, offset: int) -> None:
    from helpers.fakedata import write_mnist

    write_mnist(tmp_path, n_train=60, n_test=20)
    path = tmp_path / "MNIST" / "raw" / f"{split}-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[8 + offset] = 200  # labels start after the 8-byte IDX header
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"mnist: {'train' if split == 'train' else 'test'} label 200 "
                                        rf"\(sample {offset}\) is outside 0\.\.9 .*{split}-labels-idx1-ubyte") as info:
        load_dataset("mnist", tmp_path, download=False)
    assert "\n" not in str(info.value) and path.read_bytes() == bytes(raw)


def good_image_data(**changes: object) -> ImageData:
    import dataclasses

    data = ImageData("tiny", torch.zeros(4, 3, 5, 5, dtype=torch.uint8), torch.tensor([0, 1, 2, 1]),
                     torch.zeros(2, 3, 5, 5, dtype=torch.uint8), torch.tensor([2, 0]), classes=("a", "b", "c"),
                     mean=(0.5,) * 3, std=(0.2,) * 3)
    return dataclasses.replace(data, **changes)


@pytest.mark.parametrize("changes,message", [
    ({"test_y": torch.tensor([2, 3])}, r"tiny: test label 3 \(sample 1\) is outside 0\.\.2 .*in SRC"),
    ({"train_y": torch.tensor([0, -1, 2, 1])}, r"train label -1 \(sample 1\)"),
    ({"train_x": torch.zeros(4, 3, 5, 5)}, r"train images are torch\.float32 \(4, 3, 5, 5\), not uint8"),
    ({"test_x": torch.zeros(2, 5, 5, dtype=torch.uint8)}, r"test images .*\(2, 5, 5\), not uint8 \(N, C, H, W\)"),
    ({"test_x": torch.zeros(2, 1, 5, 5, dtype=torch.uint8)}, r"train images are 3x5x5 but test images are 1x5x5"),
    ({"test_x": torch.zeros(2, 3, 4, 5, dtype=torch.uint8)}, r"train images are 3x5x5 but test images are 3x4x5"),
    ({"train_y": torch.tensor([0, 1, 2])}, r"4 train images but 3 labels"),
    ({"train_y": torch.tensor([0.0, 1, 2, 1])}, r"train labels are torch\.float32"),
    ({"classes": ("a",), "train_y": torch.zeros(4, dtype=torch.int64), "test_y": torch.zeros(2, dtype=torch.int64)},
     r"only 1 class \(a\).*at least 2"),
    ({"mean": (0.5,)}, r"mean and std for 1 and 3 channels"),
])
def test_check_image_data_refuses_what_training_cannot_use(changes: dict, message: str) -> None:
    from reslab.data.checks import check_image_data

    check_image_data(good_image_data(), "SRC")
    with pytest.raises(DataError, match=message) as info:
        check_image_data(good_image_data(**changes), "SRC")
    assert "\n" not in str(info.value)


def test_cache_with_out_of_range_labels_is_rebuilt(tmp_path: Path, _isolated_cache: Path) -> None:
    """A cache whose checksums match but whose labels are impossible (a buggy writer) is not served."""
    import dataclasses

    from reslab.data.cache import checksums

    source = write_zip(tmp_path / "imgs.zip", image_tree())
    first = load_dataset(f"imagefolder:{source}")
    (cached,) = _isolated_cache.rglob("*.pt")
    payload = torch.load(cached, weights_only=True)
    bad = dataclasses.replace(first, train_y=first.train_y + 5)
    tensors = {name: getattr(bad, name) for name in ("train_x", "train_y", "test_x", "test_y")}
    payload["tensors"] = tensors
    payload["checksums"] = checksums(tensors, payload["meta"])
    torch.save(payload, cached)
    with pytest.warns(UserWarning, match=r"unreadable cache .*train label 5 \(sample 0\) is outside 0\.\.1"):
        second = load_dataset(f"imagefolder:{source}")
    assert torch.equal(second.train_y, first.train_y)


def image_file(path: Path, array: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("TIFF", "tif"), ("PPM", "pgm")])
def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path, fmt: str, suffix: str) -> None:
    """PIL's convert('L') clips 16-bit values at 255: a 16-bit image would come out almost all white."""
    rng = np.random.default_rng(3)
    tree = {rel: rng.integers(0, 65536, (4, 4), dtype=np.uint16) for rel in
            (f"{split}/{c}/{i}.{suffix}" for split in ("train", "test") for c in ("a", "b") for i in range(2))}
    tree["train/a/0." + suffix][0, :4] = [0, 65535, 32768, 4000]
    for rel, array in tree.items():
        image_file(tmp_path / "imgs" / rel, array, fmt)
    ds = load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    assert ds.input_shape == (1, 4, 4)
    assert ds.train_x[0, 0, 0].tolist() == [0, 255, 128, 16]
    expected = np.rint(tree[f"test/b/1.{suffix}"] / 257).astype(np.uint8)
    assert torch.equal(ds.test_x[3, 0], torch.from_numpy(expected))


def test_float_tiff_in_unit_range_is_scaled_not_black(tmp_path: Path) -> None:
    levels = (np.arange(16, dtype=np.float32).reshape(4, 4) * 17 / 255)  # k/255 for k = 0, 17, ..., 255
    for split in ("train", "test"):
        for c in ("a", "b"):
            image_file(tmp_path / "imgs" / split / c / "0.tif", levels, "TIFF")
    ds = load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    assert ds.train_x[0, 0].flatten().tolist() == list(range(0, 256, 17))


@pytest.mark.parametrize("array,message", [
    (np.full((4, 4), 3.5, np.float32), r"float pixels outside \[0, 1\] \(0\.0\.\.3\.5\)"),
    (np.full((4, 4), np.nan, np.float32), r"float pixels outside \[0, 1\] \(nan"),
    (np.full((4, 4), 70000, np.int32), r"32-bit integer pixels outside 0\.\.65535 \(0\.\.70000\)"),
])
def test_images_that_cannot_be_read_as_8_bit_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    array = array.copy()
    array[0, 0] = 0
    write_folder(tmp_path / "imgs", image_tree(gray=True))
    image_file(tmp_path / "imgs/train/cat/odd.tif", array, "TIFF")
    with pytest.raises(DataError, match=rf"train/cat/odd\.tif has {message}") as info:
        load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    assert "\n" not in str(info.value)


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


REASON = "[Errno -3] Temporary failure in name resolution: " + "x" * 300


@pytest.mark.parametrize("spec,cls,error", [  # torchvision's MNIST puts the reason after the first line
    ("mnist", "MNIST", RuntimeError(f"Error downloading train-images-idx3-ubyte.gz:\nTried https://m/, got:\n"
                                    f"<urlopen error {REASON}>\n")),
    ("cifar10", "CIFAR10", URLError(REASON)),
])
def test_download_failure_keeps_the_whole_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str,
                                                 cls: str, error: Exception) -> None:
    def offline(self: object) -> None:
        raise error

    monkeypatch.setattr(getattr(torchvision.datasets, cls), "download", offline)
    with pytest.raises(DataError) as info:
        load_dataset(spec, tmp_path, download=True)
    message = str(info.value)
    assert "\n" not in message and f"could not download {spec}" in message
    assert "x" * 300 in message and "Temporary failure in name resolution" in message
    assert "network access" in message


def test_stale_cache_temp_files_are_removed_and_nothing_else(tmp_path: Path, _isolated_cache: Path) -> None:
    """A write killed by SIGKILL leaves atomic_write's temp file; the next cache write removes it once stale."""
    folder = _isolated_cache / "imagefolder"
    folder.mkdir(parents=True)
    old = time.time() - 2 * 3600
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".imgs-{'0' * 20}.pt.", suffix=".tmp")  # as atomic_write does
    os.write(fd, b"partial")
    os.close(fd)
    stale = Path(name)
    fresh = folder / f".other-{'1' * 20}.pt.qq3r8zz1.tmp"
    kept = [folder / ".notes.tmp", folder / f"imgs-{'0' * 20}.pt", folder / f"imgs-{'0' * 20}.pt.k2x_9abc.tmp",
            folder / f".imgs-{'0' * 20}.pt.k2x_9abc.tmp.bak", _isolated_cache / stale.name]
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


def test_tilde_in_data_dir_is_expanded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision expands ~ itself: reslab must look at the same folder, or its guards look elsewhere."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    make_mnist(home / "data")
    assert rdata.resolve_data_dir("~/data") == home / "data"
    monkeypatch.setenv("RESLAB_DATA", "~/data")
    assert rdata.resolve_data_dir(None) == home / "data"
    assert len(load_dataset("mnist", "~/data", download=False).train_y) == 12
    (home / "data/MNIST/raw/t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", lambda self: pytest.fail("download attempted"))
    with pytest.raises(DataError, match="incomplete: t10k-labels-idx1-ubyte missing"):
        load_dataset("mnist", "~/data", download=True)
    write_zip(home / "data" / "sets.zip", image_tree())
    assert load_dataset("imagefolder:sets.zip", "~/data").num_classes == 2
    assert load_dataset("imagefolder:~/data/sets.zip").num_classes == 2
    monkeypatch.setenv("RESLAB_CACHE", "~/cache")
    assert rdata.cache_dir() == home / "cache"
    assert not (tmp_path / "~").exists()


# ---------------------------------------------------------------- splits


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


# ---------------------------------------------------------------- device batches

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


# ---------------------------------------------------------------- real data


@pytest.mark.realdata
@realdata
def test_real_mnist() -> None:
    ds = load_dataset("mnist", SHARED_DATA, download=False)
    assert isinstance(ds, ImageData) and ds.train_x.shape == (60000, 1, 28, 28) and len(ds.test_y) == 10000
    assert ds.train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    pixels = ds.train_x.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)


@pytest.mark.realdata
@realdata
def test_real_fashion_mnist() -> None:
    ds = load_dataset("fashion-mnist", SHARED_DATA, download=False)
    assert ds.train_y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10


@pytest.mark.realdata
@realdata
def test_real_cifar10_jpeg_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decodes 60000 JPEGs once (~15-30 s), then serves the cache."""
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "real-cache"))
    spec = f"imagefolder:{SHARED_DATA / 'CIFAR10-JPEG' / 'cifar10-jpeg.zip'}"
    ds = load_dataset(spec)
    assert ds.train_x.shape == (50000, 3, 32, 32) and ds.test_x.shape == (10000, 3, 32, 32)
    assert ds.classes[:3] == ("airplane", "automobile", "bird") and ds.num_classes == 10
    assert torch.bincount(ds.train_y).tolist() == [5000] * 10
    assert ds.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=0.01)
    monkeypatch.setattr(imagefolder, "_decode_image", lambda *a: pytest.fail("decoded despite the cache"))
    assert torch.equal(load_dataset(spec).test_y, ds.test_y)
