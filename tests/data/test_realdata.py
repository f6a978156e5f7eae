"""The real datasets in ../shared/data: loaded exactly, and the accuracy the notebook reached; skipped with the
reason where they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.shared import SHARED_DATA, needs_shared_data
from reslab.config import resolve
from reslab.data import ImageData, imagefolder, load_dataset
from reslab.train import train

needs_mnist = needs_shared_data("MNIST", "raw")


@pytest.mark.realdata
@pytest.mark.slow
@needs_mnist
def test_seed_mlp_reproduces_the_notebook(tmp_path: Path) -> None:
    """Exercise 1.1: validation accuracy 0.92 and training loss about 0.25 after 15 epochs."""
    cfg = resolve("seed-mlp", [f"data.data_dir={SHARED_DATA}", f"runs_dir={tmp_path}", "train.device=cpu"])
    summary = train(cfg, progress=False).summary
    assert summary["epochs"] == 15
    assert abs(summary["final_val_acc"] - 0.92) <= 0.01, summary["final_val_acc"]
    assert 0.20 <= summary["final_train_loss"] <= 0.30, summary["final_train_loss"]
    assert summary["test_acc"] > 0.90


@pytest.mark.realdata
@needs_shared_data("FashionMNIST", "raw")
def test_fashion_mnist_residual_mlp_learns(tmp_path: Path) -> None:
    """A fair twin on the second real dataset: one epoch gets well past chance."""
    cfg = resolve("seed-mlp", [f"data.data_dir={SHARED_DATA}", f"runs_dir={tmp_path}", "train.device=cpu",
                               "data.dataset=fashion-mnist", "model.name=mlp", "model.residual=true",
                               "model.depth=4", "optim.lr=1e-3", "train.epochs=1"])
    summary = train(cfg, progress=False).summary
    assert summary["test_acc"] > 0.75 and summary["params"] > 0


@pytest.mark.realdata
@needs_shared_data("MNIST", "raw")
@pytest.mark.usefixtures("isolated_cache")
def test_real_mnist() -> None:
    ds = load_dataset("mnist", SHARED_DATA, download=False)
    assert isinstance(ds, ImageData) and ds.train_x.shape == (60000, 1, 28, 28) and len(ds.test_y) == 10000
    assert ds.train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    pixels = ds.train_x.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)


@pytest.mark.realdata
@needs_shared_data("FashionMNIST", "raw")
@pytest.mark.usefixtures("isolated_cache")
def test_real_fashion_mnist() -> None:
    ds = load_dataset("fashion-mnist", SHARED_DATA, download=False)
    assert ds.train_y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10


@pytest.mark.realdata
@needs_shared_data("CIFAR10-JPEG", "cifar10-jpeg.zip")
@pytest.mark.usefixtures("isolated_cache")
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
