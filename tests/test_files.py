"""The one atomic writer and the one tolerant CSV reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reslab import files


def test_read_csv_skips_what_a_killed_or_damaged_writer_left(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"step,loss\n1,0.5\n" + b"9" * 200_000 + b",0.4\n\xff\xfe,0.3\n4,0.2\n5")
    skipped: list[int] = []
    rows = files.read_csv(path, skipped=skipped)
    assert [r["step"] for r in rows] == ["1", "4"]  # the huge field, the undecodable bytes, the torn line: dropped
    assert skipped == [2, 3, 5]
    assert files.read_csv(tmp_path / "missing.csv", missing_ok=True) == []
    with pytest.raises(FileNotFoundError):
        files.read_csv(tmp_path / "missing.csv")


def test_write_json_is_strict_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    files.write_json(path, {"loss": float("nan"), "curve": [1.0, float("inf")], "ok": 2})
    assert json.loads(path.read_text(), parse_constant=lambda t: pytest.fail(t)) == {
        "loss": None, "curve": [1.0, None], "ok": 2}

    def broken(fh: object) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        files.atomic_write(path, broken)
    assert json.loads(path.read_text())["ok"] == 2 and list(tmp_path.iterdir()) == [path]  # no temp left
