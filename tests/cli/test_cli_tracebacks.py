"""Values that used to end in a traceback are one line and exit 2, and write nothing (issue 19, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import fails_one_line
from helpers.damage import tree_hash

SWEEP = {"name": "s", "base": "plain-mlp8", "set": {"model.width": 8, "train.epochs": 1, "train.device": "cpu"},
         "grid": {"model.depth": [1]}, "seeds": 1}


def _sweep_file(tmp_path: Path, name: str, **changes: object) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**SWEEP, **changes}))
    return str(path)


@pytest.mark.parametrize("case", ["seeds", "slurm-arg", "warmup", "device", "width"])
def test_bad_values_are_one_line(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    runs = str(tmp_path / "runs")
    train = ["train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir", runs, "--set", "data.val_size=100"]
    argv, message = {
        "seeds": (["sweep", _sweep_file(tmp_path, "seeds.yaml", seeds=[[1]]), "--runs-dir", runs], "seeds must be"),
        "slurm-arg": (["sweep", _sweep_file(tmp_path, "s.yaml"), "--runs-dir", runs, "--backend", "slurm", "--slurm-arg",
                       "account=["], "--slurm-arg account"),
        "warmup": ([*train, "--set", "optim.warmup_epochs=1e308"], "optim.warmup_epochs must be in"),
        "device": ([*train, "--device", "cpu:zz"], "train.device"),
        "width": ([*train, "--set", "model.width=2000000000"], "too large"),
    }[case]
    if case == "slurm-arg":
        pytest.importorskip("submitit")
    before = tree_hash(tmp_path)
    fails_one_line(capsys, argv, message)
    assert tree_hash(tmp_path) == before
