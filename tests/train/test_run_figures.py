"""A run's own figures (curves.png, gradflow.png): drawn when it ends by default (`reslab train`), skipped with
train.figures false (the default of a sweep's and the lab's runs), and then drawn later from metrics.csv and
gradflow.csv with the same data the run would have drawn; `reslab report` shows them either way."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.figures import assert_png
from helpers.sweeps import write_sweep
from helpers.training import tiny_cfg
from reslab.cli import main
from reslab.plots import style
from reslab.runs import RunFolder
from reslab.sweep import expand, load_sweep
from reslab.train import train

FAST = ("train.epochs=2", "gradflow.every=5")  # 2 x 16 steps: gradflow records steps 1, 6, ..., 31


def _drawn(fig: Any) -> list[Any]:
    """What a figure shows: per axes its title, its lines' (x, y) and its images' values (NaN where masked)."""
    shown = []
    for ax in fig.axes:
        shown.append(ax.get_title())
        shown += [line.get_xydata() for line in ax.get_lines()]
        shown += [np.ma.filled(np.ma.asarray(im.get_array(), dtype=float), np.nan) for im in ax.get_images()]
    return shown


def _assert_same(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b) and len(a) > 2
    for x, y in zip(a, b):
        if isinstance(x, str):
            assert x == y
        else:
            np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=1e-6,
                                       equal_nan=True)


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every figure saved through plots.style, by file name: the figure itself, to compare what it shows."""
    figures: dict[str, Any] = {}
    save = style._save

    def recording(fig: Any, path: Path) -> None:
        figures[Path(path).name] = fig
        save(fig, path)

    monkeypatch.setattr(style, "_save", recording)
    return figures


def test_a_run_draws_its_figures_by_default_and_later_ones_show_the_same(data_dir: Path, tmp_path: Path,
                                                                         saved: dict[str, Any]) -> None:
    run = RunFolder(train(tiny_cfg(data_dir, tmp_path, *FAST), progress=False).run_dir)
    assert "figures: true" in run.config.read_text()
    for png in (run.curves, run.gradflow_png):
        assert_png(png)
    at_end = {name: _drawn(saved.pop(name)) for name in ("curves.png", "gradflow.png")}
    assert run.draw_curves(tmp_path / "later-curves.png") == tmp_path / "later-curves.png"
    assert run.draw_gradflow(tmp_path / "later-gradflow.png") == tmp_path / "later-gradflow.png"
    _assert_same(at_end["curves.png"], _drawn(saved["later-curves.png"]))
    _assert_same(at_end["gradflow.png"], _drawn(saved["later-gradflow.png"]))
    assert not np.isnan(at_end["gradflow.png"][1]).all()  # the gradient-norm image holds values


def test_with_figures_off_a_run_draws_none_and_later_they_show_what_it_would_have(data_dir: Path, tmp_path: Path,
                                                                                  saved: dict[str, Any]) -> None:
    train(tiny_cfg(data_dir, tmp_path / "on", *FAST), progress=False)  # deterministic: the same numbers twice
    at_end = {name: _drawn(saved.pop(name)) for name in ("curves.png", "gradflow.png")}
    run = RunFolder(train(tiny_cfg(data_dir, tmp_path / "off", *FAST, "train.figures=false"), progress=False).run_dir)
    assert not saved and not run.curves.exists() and not run.gradflow_png.exists()
    assert not list(run.path.glob("*.png")) and not list(run.path.glob("*.svg"))
    assert run.metrics.is_file() and run.gradflow.is_file()
    assert run.draw_curves() == run.curves and run.draw_gradflow() == run.gradflow_png
    assert_png(run.curves)
    assert_png(run.gradflow_png)
    _assert_same(at_end["curves.png"], _drawn(saved["curves.png"]))
    _assert_same(at_end["gradflow.png"], _drawn(saved["gradflow.png"]))


def test_reslab_report_draws_the_figures_a_run_did_not(data_dir: Path, tmp_path: Path) -> None:
    run = RunFolder(train(tiny_cfg(data_dir, tmp_path / "runs", *FAST, "train.figures=false"),
                          progress=False).run_dir)
    out = tmp_path / "report"
    assert main(["report", str(run.path), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert any(f.endswith("-curves.png") for f in figures) and any(f.endswith("-gradflow.png") for f in figures)
    for f in figures:
        assert_png(out / f)
    assert "could not be drawn" not in md and "drawn from gradflow.csv" in md
    assert not run.curves.exists() and not run.gradflow_png.exists()  # the report reads the run folder only
    train(tiny_cfg(data_dir, tmp_path / "runs", "train.epochs=1", "train.seed=1"), progress=False)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "both")]) == 0
    both = (tmp_path / "both" / "report.md").read_text()
    assert "train.seed" in both and "train.figures" not in both  # what is drawn is no setting that differs
    empty = RunFolder(tmp_path / "empty")
    empty.path.mkdir()
    assert empty.draw_curves() is None and empty.draw_gradflow() is None


def test_sweep_runs_skip_their_figures_unless_the_sweep_file_asks(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert {p.cfg.train.figures for p in expand(load_sweep(write_sweep(tmp_path / "off.yaml")), runs_dir=runs)} == \
        {False}
    on = write_sweep(tmp_path / "on.yaml", set={"train.figures": True, "train.epochs": 1})
    assert {p.cfg.train.figures for p in expand(load_sweep(on), runs_dir=runs)} == {True}
    swept = write_sweep(tmp_path / "grid.yaml", grid={"model.depth": [1], "train.figures": [False, True]})
    assert sorted(p.cfg.train.figures for p in expand(load_sweep(swept), runs_dir=runs)) == [False, False, True, True]


def test_a_sweep_writes_no_run_figures_and_its_report_still_draws_them(data_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "one.yaml", grid={"model.depth": [1], "model.residual": [False]}, seeds=1,
                        set={"gradflow.every": 5, "data.val_size": 100, "data.batch_size": 32,
                             "train": {"epochs": 1, "device": "cpu", "threads": 1}})
    assert main(["sweep", str(sweep), "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(data_dir)]) == 0
    (row,) = csv.DictReader(open(tmp_path / "runs" / "tiny" / "results.csv"))
    folder = tmp_path / "runs" / "tiny" / row["run_folder"]
    run = RunFolder(folder)
    assert run.summary.is_file() and run.gradflow.is_file()
    assert not list(folder.glob("*.png")) and not list(folder.glob("*.svg"))
    out = tmp_path / "report"
    assert main(["report", str(folder), "--out", str(out)]) == 0
    figures = json.loads((out / "report.json").read_text()).get("files") or \
        [str(p.relative_to(out)) for p in (out / "figures").iterdir()]
    assert any(f.endswith("-curves.png") for f in figures) and any(f.endswith("-gradflow.png") for f in figures)
    # a sweep folder from before train.figures (its runs drew their figures) is kept as it is, not trained again
    config = run.config.read_text()
    assert "  figures: false\n" in config
    run.config.write_text(config.replace("  figures: false\n", "  figures: true\n"))
    summary = run.summary.read_bytes()
    assert main(["sweep", str(sweep), "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(data_dir)]) == 0
    assert run.summary.read_bytes() == summary and len(list((tmp_path / "runs" / "tiny").rglob("summary.json"))) == 1
