"""Fixtures shared by the test modules; helpers that are not fixtures are in tests/helpers/ (tests never import
from each other). `from conftest import tiny_cfg, SignalAt, fails_one_line` still works: they are re-exported."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch

from helpers.browser import find_chromium
from helpers.cli import fails_one_line
from helpers.fakedata import write_mnist
from helpers.training import SignalAt, tiny_cfg

__all__ = ["SignalAt", "fails_one_line", "tiny_cfg"]


@pytest.fixture(autouse=True)
def _torch_threads() -> Iterator[None]:
    """A run with train.threads sets torch's thread count for the process: give it back, so that no test (nor a
    shared reference run) computes under a count another test left behind."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny generated MNIST in torchvision's layout (600 train, 200 test images); read-only for tests."""
    return write_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def straight_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`straight_run(*extra, preset=...)`: the run folder of tiny_cfg(*extra) trained straight through, once per
    session per settings; the reference the resumed, killed or sharded runs must equal. Read-only for tests."""
    from reslab.train import train

    made: dict[tuple, Path] = {}

    def get(*extra: str, preset: str = "seed-mlp") -> Path:
        if (preset, extra) not in made:
            cfg = tiny_cfg(data_dir, tmp_path_factory.mktemp("straight"), *extra, preset=preset)
            made[preset, extra] = train(cfg, progress=False).run_dir
        return made[preset, extra]

    return get


@pytest.fixture()
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's ~/.cache or $RESLAB_DATA from a test: the data cache goes to tmp_path/cache."""
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RESLAB_DATA", raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Headless Chromium for the browser checks of reports; skipped with the reason where it is missing."""
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    pytest.importorskip("websocket", reason="websocket-client is not installed (pip install -e '.[test]')")
    return path
