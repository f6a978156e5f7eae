"""Tiny training runs for the tests: the config, observers that stop or break a run, and the one comparison of a
resumed (or otherwise interrupted) run with its straight-through reference."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any, Sequence

import pytest
import torch

from reslab import files
from reslab.protocols import Observer

SUMMARY_KEYS = ("test_acc", "test_loss", "best_val_acc", "best_epoch", "epochs", "params", "final_train_loss",
                "final_train_acc", "final_val_acc", "confusion_matrix", "test_f1", "steps")
WALL_CLOCK = ("seconds", "samples_per_s")  # the record columns two runs of the same config may differ in


def tiny_cfg(data_dir: Path, runs_dir: Path, *extra: str, preset: str = "seed-mlp"):
    """A deterministic 3-epoch CPU run on the generated MNIST: 500 train images, 16 steps of 32 per epoch."""
    from reslab.config import resolve

    return resolve(preset, [f"data.data_dir={data_dir}", f"runs_dir={runs_dir}", "data.val_size=100",
                            "data.batch_size=32", "train.epochs=3", "train.deterministic=true", "optim.lr=3e-3",
                            "train.device=cpu", *extra])


class SignalAt(Observer):
    """Sends this process a real signal at a given step, as Ctrl-C or `kill` would."""

    def __init__(self, step: int, sig: int) -> None:
        self.step, self.sig = step, sig

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if step == self.step:
            os.kill(os.getpid(), self.sig)


class Poison(Observer):
    """Turns a weight into NaN after `step`: the next losses are NaN, as when a too-large LR blows a net up."""

    def __init__(self, step: int) -> None:
        self.step, self.model = step, None

    def on_start(self, run_dir: Path, model: torch.nn.Module, cfg: object, start_step: int) -> None:
        self.model = model

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if step == self.step:
            with torch.no_grad():
                next(self.model.parameters()).fill_(math.nan)


def interrupted_run(data_dir: Path, runs_dir: Path, step: int = 21, *extra: str, sig: int = signal.SIGINT) -> Path:
    """The run folder of tiny_cfg(*extra) stopped by `sig` at `step` (mid-way through epoch 2 by default)."""
    from reslab.train import Interrupted, train

    with pytest.raises(Interrupted) as info:
        train(tiny_cfg(data_dir, runs_dir, *extra), observers=[SignalAt(step, sig)], progress=False)
    return info.value.run_dir


def strict_json(path: Path) -> dict:
    """A JSON record as a strict reader sees it: NaN or Infinity in it fails the test."""
    def refuse(token: str) -> None:
        raise ValueError(f"{path.name} holds {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def assert_same_run(run: Path, reference: Path, keys: Sequence[str] = SUMMARY_KEYS,
                    records: Sequence[str] = ("metrics", "steps"), note: Any = "") -> None:
    """`run` (resumed, killed and resumed...) trained exactly as the straight-through `reference`: the summary's
    `keys` and every row of each record (`metrics`, `steps`, `gradflow`), wall-clock columns aside, are equal."""
    from reslab.runs import RunFolder

    mine, theirs = RunFolder(run), RunFolder(reference)
    ours, straight = strict_json(mine.summary), strict_json(theirs.summary)
    for key in keys:
        assert ours[key] == straight[key], (key, note)
    for name in records:
        rows, expected = (files.read_csv(getattr(folder, name), missing_ok=True) for folder in (mine, theirs))
        assert [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows] == [
            {k: v for k, v in r.items() if k not in WALL_CLOCK} for r in expected], (name, note)
