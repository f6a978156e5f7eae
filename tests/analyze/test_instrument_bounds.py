"""The instruments' flags are bounded before anything is measured: non-finite or huge values, and combinations whose
work or memory is out of reach, are one line and exit 2; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import fails_one_line
from helpers.damage import tree_hash


@pytest.mark.parametrize(("argv", "message"), [
    (["analyze", "landscape", "RUN", "--span", "inf"], "--span must be a finite number <= 1e+06"),
    (["analyze", "landscape", "RUN", "--span", "1e300"], "--span must be a finite number <= 1e+06"),
    (["analyze", "landscape", "RUN", "--points", "100001", "--dims", "2"], "--points must be"),
    (["analyze", "landscape", "RUN", "--points", "99999", "--subset", "100000"], "would evaluate"),
    (["analyze", "shatter", "--width", "100000", "--depths", "5000"], "multiply-adds"),
    (["analyze", "shatter", "--depths", "1", "100000"], "--depths must be"),
    (["analyze", "shatter", "seed-mlp", "--line-points", "1000000000"], "--line-points must be"),
    (["analyze", "lesion", "RUN", "--draws", "100000000"], "--draws must be"),
    (["analyze", "init", "seed-mlp", "--batches", "1000000000"], "--batches must be"),
    (["analyze", "cam", "RUN", "--images", "1000000000"], "--images must be"),
    (["analyze", "cam", "RUN", "--steps", "100000"], "--steps must be"),
    (["gradflow", "seed-mlp", "--batches", "1000000000"], "--batches must be"),
    (["gradflow", "seed-mlp", "--device", "cpu:zz"], "unknown device 'cpu:zz'"),
    (["analyze", "probe", "RUN", "--k", "0"], "--k must be >= 1"),
    (["analyze", "probe", "RUN", "--c", "inf"], "--c must be a finite number <= 1e+12"),
    (["analyze", "probe", "RUN"], "probe needs trained run folders; RUN is not one"),
])
def test_out_of_reach_flags_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)  # default output folders would land here
    (tmp_path / "RUN").mkdir()
    before = tree_hash(tmp_path)
    fails_one_line(capsys, argv, message)
    assert tree_hash(tmp_path) == before
