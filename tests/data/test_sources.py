"""reslab.data.sources: the torchvision formats (IDX, CIFAR pickles) written tiny, data_dir, downloads."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision

from helpers.fakedata import image_tree, make_cifar, make_mnist, write_mnist, write_zip
from reslab import data as rdata
from reslab.data import imagefolder
from reslab.data import load_dataset
from reslab.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's ~/.cache or $RESLAB_DATA


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


@pytest.mark.parametrize("split,offset", [("train", 5), ("t10k", 0)])
def test_out_of_range_label_names_the_file_and_value(tmp_path: Path, split: str, offset: int) -> None:

    write_mnist(tmp_path, n_train=60, n_test=20)
    path = tmp_path / "MNIST" / "raw" / f"{split}-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[8 + offset] = 200  # labels start after the 8-byte IDX header
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"mnist: {'train' if split == 'train' else 'test'} label 200 "
                                        rf"\(sample {offset}\) is outside 0\.\.9 .*{split}-labels-idx1-ubyte") as info:
        load_dataset("mnist", tmp_path, download=False)
    assert "\n" not in str(info.value) and path.read_bytes() == bytes(raw)


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
