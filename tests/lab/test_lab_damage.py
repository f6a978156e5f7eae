"""A finished tiny lab, damaged (issue 19, item 10, and seeded random damage): `reslab lab` rebuilds its report or
refuses in one line, never a traceback, never a write outside the lab folder."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers.damage import damage, tree_hash
from helpers.fakedata import write_colour_folder, write_mnist
from reslab.cli import main
from reslab.lab import profiles
from reslab.lab.profiles import Profile, Study

SMALL = {"data.val_size": 50, "data.train_size": 100, "data.test_size": 40, "train.threads": 1,
         "data.eval_batch_size": 256}
MICRO = Profile(  # the smallest lab with every section: one epoch, two seeds only where pairs need them
    name="micro",
    notebook_mlp=Study("ex1-mlp", "seed-mlp", "mnist", {"data.val_size": 100, "train.threads": 1},
                       {"train.epochs": [1]}, seeds=1),
    notebook_cnn=Study("ex1-cnn", "seed-cnn", "cifar", SMALL, {"train.epochs": [1]}, seeds=1),
    notebook_resnet=Study("ex1-resnet", "seed-resnet", "cifar", SMALL | {"model.channels": 4}, {"train.epochs": [1]},
                          seeds=1),
    mlp_depth=Study("mlp-depth", "plain-mlp8", "mnist",
                    {"model.width": 8, "model.layers_per_block": 1, "model.norm": "none", "data.val_size": 100,
                     "data.train_size": 200, "train.epochs": 1, "optim.lr": 3e-3, "train.threads": 1},
                    {"model.depth": [1, 2], "model.residual": [False, True]}, seeds=2),
    conv_depth=Study("conv-depth", "seed-cnn", "cifar",
                     {"model.name": "convnet", "model.channels": 2, "model.stages": 1, "model.layers_per_block": 1,
                      "model.norm": "batch", **SMALL, "train.epochs": 1},
                     {"model.blocks": [1, 2], "model.residual": [False, True]}, seeds=1),
    depth_key_conv="model.blocks", pair_depth_mlp=2, subset=20, landscape_points=3, landscape_2d=False,
    shatter_depths=(1, 2), shatter_seeds=1, gradflow_batches=1, lesion_draws=1, shortcuts=("Micro data.",))


@pytest.fixture(scope="module")
def micro_lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("microlab")
    write_mnist(root / "data")
    cifar = write_colour_folder(root / "data" / "colour", n_train=200, n_test=40)
    argv = ["lab", "--profile", "micro", "--data-dir", str(root / "data"), "--cifar", f"imagefolder:{cifar}",
            "--jobs", "1"]
    mp = pytest.MonkeyPatch()
    mp.setitem(profiles.PROFILE_TABLE, "micro", MICRO)
    try:
        assert main([*argv, "--out", str(root / "lab")]) == 0
    finally:
        mp.undo()
    return {"lab": root / "lab", "argv": argv}


def _lab(micro_lab: dict[str, Any], out: Path, capsys: pytest.CaptureFixture,
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setitem(profiles.PROFILE_TABLE, "micro", MICRO)
    capsys.readouterr()
    try:
        code = main([*micro_lab["argv"], "--out", str(out)])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _csv(path: Path, change: Callable[[list[dict[str, str]], list[str]], tuple[list, list]]) -> None:
    rows = list(csv.DictReader(open(path, newline="")))
    rows, columns = change(rows, list(rows[0]) if rows else [])
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _lab_json(out: Path, change: Callable[[dict], None]) -> None:
    values = json.loads((out / "lab.json").read_text())
    change(values)
    (out / "lab.json").write_text(json.dumps(values))


DEPTH = "sweeps/mlp-depth"
NAMED: dict[str, Callable[[Path], Any]] = {
    "stages null": lambda o: _lab_json(o, lambda v: v.update(stages=None)),
    "seconds as text": lambda o: _lab_json(o, lambda v: [s.update(seconds="abc") for s in v["stages"].values()]),
    "n=inf in paired.csv": lambda o: _csv(o / DEPTH / "paired.csv", lambda r, c: ([{**x, "n": "inf"} for x in r], c)),
    "no model.residual column": lambda o: [_csv(o / DEPTH / f, lambda r, c: (r, [k for k in c if k != "model.residual"]))
                                           for f in ("results.csv", "aggregate.csv")],
    "empty results.csv": lambda o: (o / DEPTH / "results.csv").write_text(""),
    "depth abc": lambda o: [_csv(o / DEPTH / f, lambda r, c: ([{**x, "model.depth": "abc"} for x in r], c))
                            for f in ("results.csv", "aggregate.csv", "paired.csv")],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", [*NAMED, *(f"random {i}" for i in range(4))])
def test_a_damaged_lab_is_reported_or_refused_in_one_line(micro_lab: dict[str, Any], tmp_path: Path, case: str,
                                                          capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lab"
    shutil.copytree(micro_lab["lab"], out, symlinks=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the lab's\n")
    if case in NAMED:
        NAMED[case](out)
        done = case
    else:  # the report's own files are rebuilt anyway: damage what the report is made from
        rng = random.Random(case)
        done = damage(out / rng.choice(["sweeps", "analyses", "sweeps/mlp-depth"]), rng, outside)
    before = tree_hash(tmp_path, skip=(out,))
    code, err = _lab(micro_lab, out, capsys, monkeypatch)
    assert "Traceback" not in err, (done, err)
    assert code == 0 or (code == 2 and len(err.strip().splitlines()) == 1), (done, code, err)
    if case == "stages null":
        assert code == 2 and "stages" in err
    elif case in NAMED:
        assert code == 0 and (out / "report" / "report.html").is_file()
    assert tree_hash(tmp_path, skip=(out,)) == before, done
