"""`reslab sweep` on tiny generated MNIST: expansion, validation, twins, a sweep end to end, rerun, stops, failures."""

from __future__ import annotations

import csv
import json
import math
import random
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from helpers.sweeps import SWEEP, write_sweep as _write
from helpers.training import SignalAt, tiny_cfg
from reslab.cli import main
from reslab.data import load_dataset
from reslab.errors import ConfigError, DataError
from reslab.loaders import make_loaders
from reslab.protocols import Observer
from reslab.runtime import build_for
from reslab.sweep import expand, load_sweep
from reslab.sweep import local, packing
from reslab.sweep.aggregate import choose_tuned
from reslab.sweep.summary import edge_warnings
from reslab.train import train
from reslab.train_packed import train_pack

NO_LR = {k: v for k, v in SWEEP["set"].items() if k != "optim.lr"}  # for sweeps that tune optim.lr
KEYS = [f"model.depth={d},model.residual={r},seed={s}" for d in (1, 3) for r in ("false", "true") for s in (0, 1)]
TIMING = ("train_seconds", "samples_per_s", "run_folder")  # what may differ between two runs of the same sweep
STAMP = r"-\d{8}-\d{6}-[0-9a-f]{4}"


def _sweep(file: Path, runs: Path, data_dir: Path, *extra: str) -> int:
    return main(["sweep", str(file), "--runs-dir", str(runs), "--data-dir", str(data_dir), *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path)))


def _results(folder: Path) -> dict[str, dict[str, str]]:
    """results.csv by run, without the columns that are times or places."""
    rows = _rows(folder / "results.csv")
    return {f"{r['model.depth']},{r['model.residual']},{r['seed']}": {k: v for k, v in r.items() if k not in TIMING}
            for r in rows}


@pytest.fixture(scope="module")
def finished_sweep(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2 x 2 grid over 2 seeds, run once, uninterrupted: 8 runs."""
    root = tmp_path_factory.mktemp("sweep")
    assert _sweep(_write(root / "tiny.yaml"), root / "runs", data_dir) == 0
    return root / "runs" / "tiny"


def test_expansion_and_folder_names(tmp_path: Path) -> None:
    spec = load_sweep(_write(tmp_path / "tiny.yaml"))
    runs = expand(spec, runs_dir=tmp_path / "sweep" / "runs")
    assert [r.key for r in runs] == KEYS
    assert [r.cfg.train.seed for r in runs] == [0, 1] * 4
    assert {r.cfg.runs_dir for r in runs} == {str(tmp_path / "sweep" / "runs")}
    assert [(r.cfg.model.args["depth"], r.cfg.model.args["residual"]) for r in runs[::2]] == \
           [(1, False), (1, True), (3, False), (3, True)]
    assert all(r.cfg.name == r.key and r.cfg.model.args["width"] == 8 for r in runs)
    assert [r.key for r in expand(spec, runs_dir="elsewhere")] == KEYS  # stable
    # a value with path characters makes a safe folder name; a tuned key and a list of seeds multiply out
    spec = load_sweep(_write(tmp_path / "odd.yaml", grid={"optim.milestones": [[0.5, 0.75]]}, seeds=[3, 5], set=NO_LR,
                             tune={"key": "optim.lr", "values": [1e-3, 1e-2], "by": "best_val_acc"}))
    runs = expand(spec, runs_dir="r")
    assert [r.key for r in runs] == ["optim.milestones=_0.5_0.75_,optim.lr=0.001,seed=3",
                                     "optim.milestones=_0.5_0.75_,optim.lr=0.001,seed=5",
                                     "optim.milestones=_0.5_0.75_,optim.lr=0.01,seed=3",
                                     "optim.milestones=_0.5_0.75_,optim.lr=0.01,seed=5"]
    assert [r.cfg.optim.lr for r in runs] == [1e-3, 1e-3, 1e-2, 1e-2]
    # a `set` that names another model starts the model section afresh (seed-cnn's own arguments would not fit)
    spec = load_sweep(_write(tmp_path / "conv.yaml", base="seed-cnn", set={"model": {"name": "convnet", "channels": 4}},
                             grid={"model.blocks": [1, 2]}, seeds=1))
    assert [dict(r.cfg.model.args) for r in expand(spec, runs_dir="r")][1] == {
        "channels": 4, "blocks": 2, "stages": 3, "kernel_size": 3, "residual": False, "norm": "batch",
        "layers_per_block": 2, "preact": False, "zero_init": False, "rezero": False,
        "fixup": False, "init": "torch-default", "rezero_relu": False}


def test_cases_set_per_cell_settings_and_skip_cells(tmp_path: Path) -> None:
    """He et al.'s ResNet-110 warm-up and no plain-110, on the tiny grid: depth 3 residual warms up, depth 3 plain
    is left out, and every residual cell gets its own LR; names stay those of the swept values."""
    cases = [{"when": {"model.depth": 3, "model.residual": True},
              "set": {"optim.warmup_epochs": 0.5, "optim.warmup_mode": "constant", "optim": {"warmup_factor": 0.2}}},
             {"when": {"model": {"depth": 3, "residual": False}}, "skip": True},
             {"when": {"model.residual": True}, "set": {"optim.lr": 0.01}}]
    spec = load_sweep(_write(tmp_path / "cases.yaml", cases=cases))
    runs = {r.key: r.cfg.optim for r in expand(spec, runs_dir="r")}
    assert list(runs) == [k for k in KEYS if not k.startswith("model.depth=3,model.residual=false")]
    settings = {k: (o.lr, o.warmup_epochs, o.warmup_mode, o.warmup_factor) for k, o in runs.items()}
    assert settings == {**{f"model.depth=1,model.residual=false,seed={s}": (3e-3, 0.0, "linear", 0.1) for s in (0, 1)},
                        **{f"model.depth=1,model.residual=true,seed={s}": (0.01, 0.0, "linear", 0.1) for s in (0, 1)},
                        **{f"model.depth=3,model.residual=true,seed={s}": (0.01, 0.5, "constant", 0.2) for s in (0, 1)}}
    assert [c.label() for c in spec.cases][1] == "model.depth=3, model.residual=false: skipped"


@pytest.mark.parametrize("changes, message", [
    ({"grid": {"model.dept": [1, 2]}}, "unknown key model.dept"),
    ({"grid": {"optim.lrr": [0.1]}}, "unknown key optim.lrr"),
    ({"grid": {}}, "grid must be a non-empty mapping"),
    ({"grid": {"model.depth": 4}}, "grid.model.depth must be a non-empty list"),
    ({"grid": {"model.depth": []}}, "grid.model.depth must be a non-empty list"),
    ({"seeds": 0}, "seeds must be a count >= 1"),
    ({"seeds": -2}, "seeds must be a count >= 1"),
    ({"seeds": [0, 0]}, "distinct seeds"),
    ({"grid": {"train.seed": [0, 1]}}, "train.seed is set by `seeds`"),
    ({"bogus": 1}, "unknown key bogus in sweep file"),
    ({"base": "no-such-preset"}, "unknown preset"),
    ({"tune": {"key": "optim.lr", "values": [0.1], "by": "test_acc"}}, "tune.by must be one of"),
    ({"cases": [{"when": {"model.width": 8}, "set": {"optim.lr": 0.1}}]}, "model.width is not a grid key"),
    ({"cases": [{"when": {"model.depth": 5}, "skip": True}]}, "cases[0].when matches no cell: model.depth=5"),
    ({"cases": [{"when": {"model.depth": 1}, "sett": {"optim.lr": 0.1}}]}, "cases[0]: unknown key sett"),
    ({"cases": [{"when": {"model.depth": 1}, "set": {"optim.lrr": 0.1}}]}, "unknown key optim.lrr"),
    ({"cases": [{"when": {"model.depth": 1}, "set": {"model.residual": True}}]}, "model.residual is swept"),
    ({"cases": [{"when": {"model.depth": 1}}]}, "needs either `set`"),
    ({"cases": [{"when": {"model.residual": False}, "skip": True}, {"when": {"model.residual": True}, "skip": True}]},
     "cases skip every cell"),
])
def test_bad_sweep_files_fail_before_anything_is_written(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture,
                                                         changes: dict, message: str) -> None:
    code = _sweep(_write(tmp_path / "bad.yaml", **changes), tmp_path / "runs", data_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [(["--backend", "nope"], "invalid choice"),
                                           (["--jobs", "0"], "--jobs must be >= 1")])
def test_bad_sweep_flags(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture, argv: list[str],
                         message: str) -> None:
    try:
        code = _sweep(_write(tmp_path / "tiny.yaml"), tmp_path / "runs", data_dir, *argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()


def test_paired_twins_start_identical(data_dir: Path, tmp_path: Path) -> None:
    data = load_dataset("mnist", data_dir)
    plain, residual, other_seed = (build_for(tiny_cfg(data_dir, tmp_path, *extra, preset="plain-mlp8"), data,
                                             torch.device("cpu"))[0]
                                   for extra in (["model.residual=false"], ["model.residual=true"],
                                                 ["model.residual=true", "train.seed=1"]))
    a, b = dict(plain.named_parameters()), dict(residual.named_parameters())
    assert list(a) == list(b) and len(a) > 10
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert not all(torch.equal(a[n], p) for n, p in other_seed.named_parameters())  # the check can fail


def test_train_size_trains_on_a_seeded_subset(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_cfg(data_dir, tmp_path, "data.train_size=70", "train.epochs=1"), progress=False)
    assert result.summary["steps"] == math.ceil(70 / 32)
    data = load_dataset("mnist", data_dir)

    def images(*extra: str) -> torch.Tensor:
        loader = make_loaders(tiny_cfg(data_dir, tmp_path, "data.train_size=70", *extra), data,
                              torch.device("cpu"), False)[0]
        return loader.images

    first, again, other = images(), images(), images("train.seed=1")
    assert len(first) == 70 and torch.equal(first, again) and not torch.equal(first, other)
    val = make_loaders(tiny_cfg(data_dir, tmp_path, "data.train_size=70"), data, torch.device("cpu"), False)[1]
    rows = {tuple(x.flatten().tolist()) for x in val.images}
    assert not any(tuple(x.flatten().tolist()) in rows for x in first)  # drawn after the validation split
    with pytest.raises(DataError, match="more than the 500 training images"):
        make_loaders(tiny_cfg(data_dir, tmp_path, "data.train_size=501"), data, torch.device("cpu"), False)
    with pytest.raises(ConfigError, match="data.train_size must be >= 1"):
        tiny_cfg(data_dir, tmp_path, "data.train_size=0")


def test_sweep_end_to_end(finished_sweep: Path) -> None:
    from scipy import stats

    for name in ("sweep.yaml", "index.json", "results.csv", "aggregate.csv", "paired.csv", "summary.txt",
                 "test_acc_vs_depth.png", "train_loss_vs_depth.png"):
        assert (finished_sweep / name).is_file(), name
    results = _rows(finished_sweep / "results.csv")
    assert len(results) == 8 and {r["status"] for r in results} == {"finished"}
    assert "confusion_matrix" not in results[0] and "test_acc" in results[0]
    index = json.loads((finished_sweep / "index.json").read_text())["runs"]
    assert sorted(index) == sorted(KEYS)
    for r in results:
        assert (finished_sweep / r["run_folder"] / "summary.json").is_file()
    cells = _rows(finished_sweep / "aggregate.csv")
    assert len(cells) == 4 and {c["n"] for c in cells} == {"2"}
    for cell in cells:  # mean and 95% t interval against an independent computation
        accs = [float(r["test_acc"]) for r in results
                if (r["model.depth"], r["model.residual"]) == (cell["model.depth"], cell["model.residual"])]
        low, high = stats.t.interval(0.95, 1, loc=sum(accs) / 2, scale=stats.sem(accs))
        assert float(cell["test_acc_mean"]) == pytest.approx(sum(accs) / 2)
        assert (float(cell["test_acc_ci_low"]), float(cell["test_acc_ci_high"])) == pytest.approx((low, high))
    pairs = _rows(finished_sweep / "paired.csv")
    assert [p["model.depth"] for p in pairs] == ["1", "3"]
    by = {(r["model.depth"], r["model.residual"], r["seed"]): r for r in results}
    for pair in pairs:
        diffs = [float(by[pair["model.depth"], "true", s]["test_acc"]) - float(by[pair["model.depth"], "false", s]
                                                                              ["test_acc"]) for s in "01"]
        assert [float(d) for d in pair["test_acc_diffs"].split(";")] == pytest.approx(diffs, abs=1e-6)
        assert float(pair["test_acc_residual_wins"]) == sum(d > 0 for d in diffs) / 2
        assert (pair["pair_key"], pair["pair_a"], pair["pair_b"]) == ("model.residual", "false", "true")
    summary = (finished_sweep / "summary.txt").read_text()
    assert "8 runs" in summary and "n=2" in summary and "95%" in summary


def test_running_again_trains_nothing(finished_sweep: Path, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    before = {p: p.stat().st_mtime_ns for p in (finished_sweep / "runs").rglob("*") if p.is_file()}
    results = (finished_sweep / "results.csv").read_text()
    assert _sweep(finished_sweep / "sweep.yaml", finished_sweep.parent, data_dir) == 0
    assert "8 done already, 0 to run" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in (finished_sweep / "runs").rglob("*") if p.is_file()} == before
    assert (finished_sweep / "results.csv").read_text() == results


def test_dry_run_lists_runs_and_cost_and_writes_nothing(finished_sweep: Path, tmp_path: Path, data_dir: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    assert _sweep(_write(tmp_path / "tiny.yaml"), tmp_path / "runs", data_dir, "--dry-run") == 0
    err = capsys.readouterr().err
    assert all(f"runs/{k}-<date>" in err for k in KEYS) and "device-hours" in err and "MFLOP" in err
    assert not (tmp_path / "runs").exists()
    assert _sweep(finished_sweep / "sweep.yaml", finished_sweep.parent, data_dir, "--dry-run") == 0
    assert capsys.readouterr().err.count(" done ") == 8


def test_a_different_sweep_file_is_refused(finished_sweep: Path, tmp_path: Path, data_dir: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    saved = (finished_sweep / "sweep.yaml").read_text()
    code = _sweep(_write(tmp_path / "tiny.yaml", seeds=3), finished_sweep.parent, data_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds a different sweep" in err[0] and "seeds" in err[0], err
    assert (finished_sweep / "sweep.yaml").read_text() == saved


class _Raise(Observer):
    def __init__(self, step: int, exc: BaseException) -> None:
        self.step, self.exc = step, exc

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if step == self.step:
            raise self.exc


def _patch_train(monkeypatch: pytest.MonkeyPatch, key: str, observer: Observer) -> None:
    """Train run `key` with one more observer (a stop or a crash at a given step), alone or in its pack."""
    def patched(cfg, observers=(), **kwargs):  # type: ignore[no-untyped-def]
        return train(cfg, [*observers, *([observer] if cfg.name == key else [])], **kwargs)

    def patched_pack(cfgs, observers, **kwargs):  # type: ignore[no-untyped-def]
        return train_pack(cfgs, [[*extra, *([observer] if cfg.name == key else [])]
                                 for cfg, extra in zip(cfgs, observers)], **kwargs)

    monkeypatch.setattr(local, "train", patched)
    monkeypatch.setattr(local, "train_pack", patched_pack)


def test_interrupted_sweeps_end_like_an_uninterrupted_one(finished_sweep: Path, tmp_path: Path, data_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C at a random step (checkpoint, then resume) and a hard KeyboardInterrupt before any checkpoint
    (the attempt is moved aside, the run restarts): every run ends present once, with the same numbers.
    The runs of one depth train as one pack: a stop reaches all of them (the resumed pack resumes as one)."""
    rng = random.Random(7)
    file = _write(tmp_path / "tiny.yaml")
    stops = [(rng.choice(KEYS[:4]), SignalAt(rng.randint(2, 15), signal.SIGINT)),
             (rng.choice(KEYS[4:]), _Raise(rng.randint(2, 15), KeyboardInterrupt()))]
    for key, observer in stops:
        _patch_train(monkeypatch, key, observer)
        assert _sweep(file, tmp_path / "runs", data_dir) == 130
        monkeypatch.undo()
    assert _sweep(file, tmp_path / "runs", data_dir) == 0
    folder = tmp_path / "runs" / "tiny"
    assert _results(folder) == _results(finished_sweep)
    names = sorted(p.name for p in (folder / "runs").iterdir())
    assert sorted(re.sub(STAMP + "$", "", n) for n in names if re.search(STAMP + "$", n)) == sorted(KEYS)
    stopped_pack = [k for k in KEYS if k.split(",")[0] == stops[1][0].split(",")[0]]  # the hard stop's depth
    assert [re.sub(STAMP, "", n) for n in names if not re.search(STAMP + "$", n)] == [
        f"{k}.incomplete-1" for k in stopped_pack]


def test_a_failing_run_is_listed_and_the_others_finish(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    file = _write(tmp_path / "tiny.yaml", seeds=1)
    _patch_train(monkeypatch, KEYS[2], _Raise(3, RuntimeError("boom")))
    assert _sweep(file, tmp_path / "runs", data_dir) == 1
    err = capsys.readouterr().err
    assert "1 of 4 runs did not finish" in err
    assert re.search(r"runs/" + re.escape(KEYS[2]) + STAMP + r"\s+RuntimeError: boom", err), err
    statuses = {r["model.depth"] + r["model.residual"]: r["status"] for r in _rows(tmp_path / "runs/tiny/results.csv")}
    assert statuses == {"1false": "finished", "1true": "failed", "3false": "finished", "3true": "finished"}
    monkeypatch.undo()
    assert _sweep(file, tmp_path / "runs", data_dir) == 0  # the failed attempt is kept aside, the run trained again
    assert len(list((tmp_path / "runs/tiny/runs").glob(f"{KEYS[2]}-*.failed-1"))) == 1
    assert {r["status"] for r in _rows(tmp_path / "runs/tiny/results.csv")} == {"finished"}


def test_worker_processes_give_the_same_results(finished_sweep: Path, tmp_path: Path, data_dir: Path) -> None:
    file = _write(tmp_path / "tiny.yaml", grid={"model.depth": [3], "model.residual": [False, True]}, seeds=[1])
    assert _sweep(file, tmp_path / "runs", data_dir, "--jobs", "2") == 0
    expected = _results(finished_sweep)
    assert _results(tmp_path / "runs" / "tiny") == {k: expected[k] for k in ("3,false,1", "3,true,1")}


def test_a_packed_sweep_writes_the_results_of_separate_runs(finished_sweep: Path, tmp_path: Path, data_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    """The twins of one depth and seed train as one pack: their results are those of the 8-run sweep's packs
    exactly, and those of separate runs (packing off) to float tolerance."""
    file = _write(tmp_path / "tiny.yaml", grid={"model.depth": [3], "model.residual": [False, True]}, seeds=[1])
    assert _sweep(file, tmp_path / "packed", data_dir) == 0
    assert "training 2 runs as one pack" in capsys.readouterr().err
    expected = _results(finished_sweep)
    packed = _results(tmp_path / "packed" / "tiny")
    assert packed == {k: expected[k] for k in ("3,false,1", "3,true,1")}
    monkeypatch.setattr(packing, "MAX_PACK", 1)
    assert _sweep(file, tmp_path / "separate", data_dir) == 0
    assert "as one pack" not in capsys.readouterr().err
    separate = _results(tmp_path / "separate" / "tiny")
    assert separate.keys() == packed.keys()
    for key, row in separate.items():
        assert row.keys() == packed[key].keys()
        for column, value in row.items():
            try:
                assert math.isclose(float(value), float(packed[key][column]), rel_tol=1e-4, abs_tol=1e-6), column
            except ValueError:
                assert value == packed[key][column], column


def test_tune_picks_per_cell_and_warns_at_the_edge(tmp_path: Path) -> None:
    spec = load_sweep(_write(tmp_path / "t.yaml", grid={"model.depth": [1, 3]}, set=NO_LR,
                             tune={"key": "optim.lr", "values": [0.001, 0.01, 0.1], "by": "best_val_acc"}))
    scores = {("1", 0.001): [0.5, 0.6], ("1", 0.01): [0.7, 0.8], ("1", 0.1): [0.6, 0.6], ("3", 0.001): [0.1, 0.1],
              ("3", 0.01): [0.2, 0.3], ("3", 0.1): [0.4, 0.35]}
    rows = [{"_cell": f"model.depth={d}", "_values": {"model.depth": int(d), "optim.lr": lr}, "status": "finished",
             "best_val_acc": acc} for (d, lr), accs in scores.items() for acc in accs]
    chosen = choose_tuned(rows, spec)
    assert chosen == {"model.depth=1": 0.01, "model.depth=3": 0.1}
    assert edge_warnings(spec, chosen) == ["model.depth=3: 0.1 -- WARNING: at the edge of the values tried; the best "
                                           "value may lie outside them"]
