"""`reslab --version`, and Hydra-style positional key=value overrides beside --set on `reslab train`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import reslab
from reslab.cli import main

from helpers.cli import fails_one_line


def test_version_prints_the_version_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "reslab", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == f"reslab {reslab.__version__}\n"


def test_positional_overrides_equal_set(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "seed-mlp", "train.epochs=1", "data.train_size=512", "--print-config"]) == 0
    positional = capsys.readouterr().out
    assert main(["train", "seed-mlp", "--set", "train.epochs=1", "--set", "data.train_size=512",
                 "--print-config"]) == 0
    assert positional == capsys.readouterr().out
    assert "  epochs: 1\n" in positional and "  train_size: 512\n" in positional


def test_positional_overrides_come_after_set(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "seed-mlp", "--set", "train.epochs=3", "train.epochs=1", "--print-config"]) == 0
    assert "  epochs: 1\n" in capsys.readouterr().out


@pytest.mark.parametrize("item, message", [("foo", "--set expects key=value (e.g. model.depth=8), got 'foo'"),
                                           ("=3", "--set expects key=value (e.g. model.depth=8), got '=3'"),
                                           ("trian.epochs=1", "unknown key trian")])
def test_a_malformed_override_fails_as_a_bad_set(item: str, message: str, capsys: pytest.CaptureFixture) -> None:
    fails_one_line(capsys, ["train", "seed-mlp", item], message)
    fails_one_line(capsys, ["train", "seed-mlp", "--set", item], message)
    fails_one_line(capsys, ["train", "seed-mlp", "--epochs", "1", item], message)


def test_resume_takes_no_positional_override(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    fails_one_line(capsys, ["train", "--resume", str(tmp_path), "train.epochs=2"], "it cannot take --set")
    fails_one_line(capsys, ["train", "seed-mlp", "--bogus"], "unrecognized arguments: --bogus")
    fails_one_line(capsys, ["list", "a=1"], "unrecognized arguments: a=1")
