"""Randomly damaged copies of a finished sweep folder (truncated, one cell garbled, a value of another type, a file
deleted or replaced by a symlink) given to `reslab report` and `reslab sweep`: never a traceback, never a write
outside the folder (and the report's own folder)."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from pathlib import Path

import pytest
import yaml

from helpers.damage import damage, tree_hash
from reslab.cli import main

SWEEP = {"name": "tiny", "base": "plain-mlp8",
         "set": {"model.width": 8, "model.layers_per_block": 1, "data.val_size": 100, "data.batch_size": 64,
                 "data.train_size": 200, "data.test_size": 100,
                 "train": {"epochs": 1, "deterministic": True, "device": "cpu", "threads": 1}, "gradflow.every": 0},
         "grid": {"model.depth": [1, 2], "model.residual": [False, True]}, "seeds": 2}
CASES = int(os.environ.get("RESLAB_DAMAGE_CASES", 8))  # seeded damaged copies; each gets one or two damages


@pytest.fixture(scope="module")
def sweep_source(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("damagesweep")
    file = root / "tiny.yaml"
    file.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    assert main(["sweep", str(file), "--runs-dir", str(root / "runs"), "--data-dir", str(data_dir)]) == 0
    return {"file": file, "folder": root / "runs" / "tiny"}


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("case", range(CASES))
def test_a_damaged_sweep_folder_never_ends_in_a_traceback(sweep_source: dict[str, Path], data_dir: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          case: int) -> None:
    rng = random.Random(1000 + case)
    parent = tmp_path / "runs"
    target = parent / "tiny"
    shutil.copytree(sweep_source["folder"], target, symlinks=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the sweep's\n")
    done = [damage(target, rng, outside) for _ in range(rng.choice([1, 2]))]
    before = tree_hash(tmp_path, skip=(target, tmp_path / "report"))
    code, err = _run(["report", str(target), "--out", str(tmp_path / "report")], capsys)
    assert code == 0 and "Traceback" not in err, (done, err)
    code, err = _run(["sweep", str(sweep_source["file"]), "--runs-dir", str(parent), "--data-dir", str(data_dir)],
                     capsys)
    assert "Traceback" not in err, (done, err)
    assert code in (0, 1) or (code == 2 and len(err.strip().splitlines()) == 1), (done, code, err)
    assert tree_hash(tmp_path, skip=(target, tmp_path / "report")) == before, done


# ----------------------------------------------------------------------------- the damages issue 19 names (item 9)


def _copy(sweep_source: dict[str, Path], tmp_path: Path) -> Path:
    target = tmp_path / "runs" / "tiny"
    shutil.copytree(sweep_source["folder"], target, symlinks=True)
    return target


def test_a_summary_with_text_for_a_number_is_left_out_with_the_reason(sweep_source: dict[str, Path], data_dir: Path,
                                                                      tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    target = _copy(sweep_source, tmp_path)
    run = sorted((target / "runs").iterdir())[0]
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "test_acc": "abc"}))
    (target / "summary.txt").write_text("stale\n")
    before = tree_hash(tmp_path, skip=(target,))
    code, err = _run(["sweep", str(sweep_source["file"]), "--runs-dir", str(tmp_path / "runs"), "--data-dir",
                      str(data_dir)], capsys)
    assert code == 0 and "Traceback" not in err
    assert [line for line in err.splitlines() if "left out" in line and run.name in line and "'abc'" in line]
    text = (target / "summary.txt").read_text()
    assert "Left out of the means" in text and run.name in text  # rebuilt, with the reason
    ns = [row["n"] for row in csv.DictReader(open(target / "aggregate.csv"))]
    assert sorted(ns) == ["1", "2", "2", "2"]
    assert tree_hash(tmp_path, skip=(target,)) == before


@pytest.mark.parametrize("cell", ["²", "--5", "9" * 5000])
def test_one_damaged_aggregate_cell_is_a_dash_not_a_failed_report(sweep_source: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture, cell: str) -> None:
    target = _copy(sweep_source, tmp_path)
    rows = list(csv.reader(open(target / "aggregate.csv", newline="")))
    rows[1][2], rows[2][4] = cell, cell  # a count and a mean
    with open(target / "aggregate.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    before = tree_hash(tmp_path, skip=(tmp_path / "report",))
    code, err = _run(["report", str(target), "--out", str(tmp_path / "report")], capsys)
    assert code == 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert tree_hash(tmp_path, skip=(tmp_path / "report",)) == before
