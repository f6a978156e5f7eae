"""An image folder resized to a large data.image_size is sized before decoding: the decoded, stacked and laid-out
copies together, so a set that would not fit is one line at once (issue 19, item 8), not an allocation error later."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import fails_one_line
from helpers.damage import tree_hash
from helpers.fakedata import write_colour_folder
from reslab import checks


def test_an_image_size_that_would_not_fit_is_refused_before_decoding(tmp_path: Path, data_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture) -> None:
    folder = write_colour_folder(tmp_path / "colour", n_train=20, n_test=10)
    size = 2000
    one_copy = 30 * 3 * size**2  # what the check used to compare: fits
    monkeypatch.setattr(checks, "memory_available", lambda: int(2 * one_copy))
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    before = tree_hash(tmp_path)
    fails_one_line(capsys, ["train", "seed-cnn", "--dataset", f"imagefolder:{folder}", "--set",
                            f"data.image_size={size}", "--set", "data.val_size=5", "--runs-dir", str(tmp_path / "r")],
                   f"data.image_size={size}")
    assert tree_hash(tmp_path) == before
