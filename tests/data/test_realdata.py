"""Accuracy on the real datasets in ../shared/data; skipped with the reason where they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from reslab.config import resolve
from reslab.train import train

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(),
                                 reason=f"real MNIST not found in {SHARED_DATA}")


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
@needs_mnist
def test_fashion_mnist_residual_mlp_learns(tmp_path: Path) -> None:
    """A fair twin on the second real dataset: one epoch gets well past chance."""
    if not (SHARED_DATA / "FashionMNIST" / "raw").is_dir():
        pytest.skip(f"real Fashion-MNIST not found in {SHARED_DATA}")
    cfg = resolve("seed-mlp", [f"data.data_dir={SHARED_DATA}", f"runs_dir={tmp_path}", "train.device=cpu",
                               "data.dataset=fashion-mnist", "model.name=mlp", "model.residual=true",
                               "model.depth=4", "optim.lr=1e-3", "train.epochs=1"])
    summary = train(cfg, progress=False).summary
    assert summary["test_acc"] > 0.75 and summary["params"] > 0
