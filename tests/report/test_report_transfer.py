"""The report shows a run's top-5 accuracy and where its weights came from (issue 20 §3), when the run has them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from reslab import files
from reslab.cli import main


def test_top5_and_the_source_are_shown_when_present(straight_run: Callable[..., Path], tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(straight_run(), plain)
    assert main(["report", str(plain), "--out", str(tmp_path / "r1")]) == 0
    md = (tmp_path / "r1" / "report.md").read_text()
    assert "top-5" not in md and "started from" not in md
    run = tmp_path / "transfer"
    shutil.copytree(plain, run)
    summary = json.loads((run / "summary.json").read_text())
    files.write_json(run / "summary.json", {**summary, "test_top5": 0.875, "init_from": {
        "from": "runs/src-1", "file": "runs/src-1/best.pt", "sha256": "ab" * 32}})
    assert main(["report", str(run), "--out", str(tmp_path / "r2")]) == 0
    md = (tmp_path / "r2" / "report.md").read_text()
    assert "| test top-5 accuracy | 87.50% |" in md
    assert "| started from | runs/src-1 (sha256 abababababab)" in md
