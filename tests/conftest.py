"""Fixtures and helpers shared by the test modules (tests never import from each other)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from helpers.browser import find_chromium
from helpers.fakedata import write_mnist
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


def tiny_cfg(data_dir: Path, runs_dir: Path, *extra: str, preset: str = "seed-mlp"):
    """A deterministic 3-epoch CPU run on the generated MNIST: 500 train images, 16 steps of 32 per epoch."""
    from reslab.config import resolve

    return resolve(preset, [f"data.data_dir={data_dir}", f"runs_dir={runs_dir}", "data.val_size=100",
                            "data.batch_size=32", "train.epochs=3", "train.deterministic=true", "optim.lr=3e-3",
                            "train.device=cpu", *extra])


def fails_one_line(capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    """`reslab argv` fails as a user error should: exit code 2 and one line on stderr that says `message`."""
    from reslab.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def chromium() -> str:
    """Headless Chromium for the browser checks of reports; skipped with the reason where it is missing."""
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    pytest.importorskip("websocket", reason="websocket-client is not installed (pip install -e '.[test]')")
    return path
