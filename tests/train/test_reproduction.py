"""reslab's loop trains a model as a plain PyTorch loop does (the notebook's), step for step.

The guard of the reproduction check: with the same initial weights (torch.manual_seed(seed), then the
model), the same batches and the same Adam, the first steps' losses of `reslab train` equal those of the
notebook-style loop (contiguous memory, torch.optim.Adam without fused kernels, no autocast) to float
tolerance. Fused Adam, channels_last, on-device normalisation, the observers and the LR setting per step
must not change what is learned.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers.fakedata import write_colour_folder
from reslab.config import resolve
from reslab.data import DeviceLoader, load_dataset, split_indices
from reslab.models import build_model
from reslab.protocols import Observer
from reslab.train import train

STEPS = 12


class _Enough(Exception):
    pass


class _Losses(Observer):
    """Every step's loss, then stops the run: the first steps are all this test needs."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        self.losses.append(loss.item())
        if step == STEPS:
            raise _Enough


def _plain_loop(cfg, data) -> list[float]:
    """The notebook's loop over reslab's batches: model, Adam, cross-entropy, nothing else."""
    train_idx, _ = split_indices(len(data.train_y), cfg.data.val_size, cfg.train.seed)
    loader = DeviceLoader(data.train_x[train_idx], data.train_y[train_idx], batch_size=cfg.data.batch_size,
                          shuffle=True, seed=cfg.train.seed, mean=data.mean, std=data.std, device="cpu")
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                        **dict(cfg.model.args))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, foreach=False)
    losses = []
    for _, (x, y) in zip(range(STEPS), loader.batches(0)):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def colour_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_folder(tmp_path_factory.mktemp("colour"), n_train=500, n_test=60)


@pytest.mark.parametrize("preset", ["seed-mlp", "seed-cnn", "seed-resnet"])
def test_reslab_steps_equal_a_plain_pytorch_loop(preset: str, data_dir: Path, colour_zip: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    dataset = ["data.data_dir=" + str(data_dir)] if preset == "seed-mlp" else [f"data.dataset=imagefolder:{colour_zip}"]
    cfg = resolve(preset, [*dataset, f"runs_dir={tmp_path}", "data.val_size=100", "train.epochs=1",
                           "train.device=cpu", "train.deterministic=true", "data.batch_size=32"])
    captured = _Losses()
    with pytest.raises(_Enough):
        train(cfg, observers=[captured], progress=False)
    data = load_dataset(cfg.data.dataset, cfg.data.data_dir)
    plain = _plain_loop(cfg, data)
    assert len(captured.losses) == STEPS
    assert captured.losses == pytest.approx(plain, rel=2e-5), (captured.losses, plain)
