"""Fixtures and helpers shared by the test modules (tests never import from each other)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fakedata import write_mnist
from reslab.protocols import Observer


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny generated MNIST in torchvision's layout (600 train, 200 test images); read-only for tests."""
    return write_mnist(tmp_path_factory.mktemp("data"))


class SignalAt(Observer):
    """Sends this process a real signal at a given step, as Ctrl-C or `kill` would."""

    def __init__(self, step: int, sig: int) -> None:
        self.step, self.sig = step, sig

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if step == self.step:
            os.kill(os.getpid(), self.sig)
