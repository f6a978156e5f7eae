"""`reslab report`: built from run folders on disk, finished or not; checked in the files and in a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers.browser import check_page
from helpers.fakedata import write_mnist
from reslab import files
from reslab.cli import main
from reslab.config import resolve
from reslab.protocols import Observer
from reslab.train import Interrupted, train


class _At(Observer):
    """At a step: send this process SIGINT (an interrupted run) or raise (a crashed one)."""

    def __init__(self, step: int, crash: bool) -> None:
        self.step, self.crash = step, crash

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if step == self.step:
            if self.crash:
                raise RuntimeError("simulated crash")
            os.kill(os.getpid(), signal.SIGINT)


def _train(data_dir: Path, runs_dir: Path, name: str, *extra: str, stop: Observer | None = None) -> Path:
    cfg = resolve("seed-mlp", [f"data.data_dir={data_dir}", f"runs_dir={runs_dir}", f"name={name}",
                               "data.val_size=100", "data.batch_size=32", "train.epochs=2", "optim.lr=3e-3",
                               "train.device=cpu", "train.log_every=4", *extra])
    try:
        return train(cfg, observers=[stop] if stop else [], progress=False).run_dir
    except (Interrupted, RuntimeError):
        (run,) = [p for p in runs_dir.iterdir() if p.name.startswith(name + "-")]
        return run


@pytest.fixture(scope="module")
def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of runs: two finished, one interrupted, one crashed, one still in progress."""
    data_dir = write_mnist(tmp_path_factory.mktemp("data"))
    root = tmp_path_factory.mktemp("runs")
    _train(data_dir, root, "a-mlp")
    _train(data_dir, root, "b-resmlp", "model.name=mlp", "model.residual=true", "model.depth=3", "train.seed=1")
    _train(data_dir, root, "c-interrupted", stop=_At(20, crash=False))
    _train(data_dir, root, "d-crashed", stop=_At(20, crash=True))
    finished = next(root.glob("a-mlp-*"))
    running = root / "e-running-20990101-000000-0000"
    shutil.copytree(finished, running)
    (running / "summary.json").unlink()
    files.write_json(running / "status.json", {"status": "running", "epoch": 1})
    lines = (running / "metrics.csv").read_text().splitlines()
    files.write_text(running / "metrics.csv", "\n".join(lines[:2]) + "\n")
    return root


@pytest.fixture(scope="module")
def report(run_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("report") / "all"
    assert main(["report", str(run_root), "--out", str(out)]) == 0
    return {"out": out, "md": (out / "report.md").read_text(), "html": (out / "report.html").read_text(),
            "json": json.loads((out / "report.json").read_text())}


def _summary(run_root: Path, prefix: str) -> dict[str, Any]:
    return json.loads(next(run_root.glob(prefix + "-*/summary.json")).read_text())


def test_report_files_and_figures(report: dict[str, Any], run_root: Path) -> None:
    md, html, out = report["md"], report["html"], report["out"]
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert figures and all((out / f).is_file() and (out / f).stat().st_size > 1000 for f in figures)
    assert "figures/comparison.png" in figures
    for prefix in ("a-mlp", "b-resmlp"):
        assert any(f.endswith("-curves.png") and prefix in f for f in figures)
        assert any(f.endswith("-confusion.png") and prefix in f for f in figures)
        run = next(run_root.glob(prefix + "-*"))
        for png in run.glob("gradflow*.png"):  # recorded by the gradient-flow observer, when it is on
            assert any(f.endswith(png.name) and prefix in f for f in figures)
        assert (run / "classification_report.txt").read_text().rstrip() in md
    for partial in ("c-interrupted", "d-crashed", "e-running"):
        assert any(f.endswith("-curves.png") and partial in f for f in figures), "partial metrics are drawn"
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == len(figures) and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", html, re.I), "no external requests"
    assert "<script" not in html and "<style>" in html


def test_comparison_table_equals_the_summaries(report: dict[str, Any], run_root: Path) -> None:
    rows = {r["run"].split("-2")[0]: r for r in report["json"]["runs"]}
    assert list(rows) == ["a-mlp", "b-resmlp", "c-interrupted", "d-crashed", "e-running"]
    for prefix in ("a-mlp", "b-resmlp"):
        s, row = _summary(run_root, prefix), rows[prefix]
        for key in ("model", "params", "epochs", "best_val_acc", "best_epoch", "test_acc", "train_seconds",
                    "samples_per_s"):
            assert row[key] == s[key], key
        line = next(ln for ln in report["md"].splitlines() if ln.startswith(f"| {row['run']} |"))
        for text in (f"{s['params']:,}", f"{100 * s['best_val_acc']:.2f}%", f"{100 * s['test_acc']:.2f}%",
                     f"{s['train_seconds']:.1f}", f"{s['samples_per_s']:,.0f}", "finished"):
            assert f"| {text} |" in line, (text, line)
    metrics = files.read_csv(next(run_root.glob("c-interrupted-*/metrics.csv")))
    assert rows["c-interrupted"]["best_val_acc"] == max(float(r["val_acc"]) for r in metrics)
    assert rows["c-interrupted"]["test_acc"] is None and rows["c-interrupted"]["epochs"] == 1


def test_unfinished_runs_are_marked(report: dict[str, Any]) -> None:
    md, rows = report["md"], {r["run"].split("-2")[0]: r for r in report["json"]["runs"]}
    assert [rows[k]["status"] for k in ("c-interrupted", "d-crashed", "e-running")] == [
        "interrupted", "failed", "running"]
    assert "> **Interrupted at epoch 2 of 2 (1 finished); continue it with: reslab train --resume" in md
    assert "> **Crashed during epoch 2 of 2 (1 finished); the numbers below are partial.**" in md
    assert "> **In progress: 1 of 2 epochs done when this report was built; the numbers below are partial.**" in md
    assert "> **3 of 5 runs did not finish:" in md
    assert "| 1 of 2 |" in md and "partial (interrupted)" in md


def test_report_in_a_browser(report: dict[str, Any], chromium: str, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    page = check_page(report["out"] / "report.html", shot, chromium)
    assert page["images"] and len(page["images"]) == report["html"].count("<img ")
    assert all(img["complete"] and img["width"] > 0 and img["height"] > 0 for img in page["images"]), page["images"]
    assert page["errors"] == []
    assert all(url.startswith(("file:", "data:")) for url in page["requests"]), page["requests"]
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_the_browser_check_can_fail(chromium: str, tmp_path: Path) -> None:
    (tmp_path / "bad.html").write_text('<!DOCTYPE html><title>bad</title><img src="missing.png">'
                                       '<script>console.error("boom")</script>')
    page = check_page(tmp_path / "bad.html", tmp_path / "bad.png", chromium)
    assert page["images"][0]["width"] == 0
    assert "console: boom" in page["errors"] and any("missing.png" in e for e in page["errors"])


def test_one_run_with_svg_and_damaged_files(run_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "damaged"
    shutil.copytree(next(run_root.glob("b-resmlp-*")), run)
    (run / "env.json").write_text("{not json")
    out = tmp_path / "one"
    assert main(["report", str(run), "--out", str(out), "--svg"]) == 0
    md = (out / "report.md").read_text()
    assert "## Comparison" not in md and "env.json could not be read" in md
    pngs = sorted((out / "figures").glob("*.png"))
    assert pngs and all(p.with_suffix(".svg").is_file() for p in pngs if "gradflow" not in p.name)
    odd = tmp_path / "odd"  # valid JSON, values of the wrong types: that run is marked, the report still built
    shutil.copytree(run, odd)
    summary = json.loads((odd / "summary.json").read_text())
    files.write_json(odd / "summary.json", {**summary, "params": "many", "confusion_matrix": "garbage", "classes": 3})
    assert main(["report", str(run), str(odd), "--out", str(tmp_path / "two")]) == 0
    md = (tmp_path / "two" / "report.md").read_text()
    assert "| odd | — |" in md and "| unreadable |" in md
    assert "> **Could not report this run: its files hold unexpected values (ValueError:" in md


def test_output_folders_are_new_or_earlier_reports(run_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    run = str(next(run_root.glob("a-mlp-*")))
    monkeypatch.chdir(tmp_path)
    assert main(["report", run]) == 0 and main(["report", run]) == 0
    made = [Path(line) for line in capsys.readouterr().out.split()]
    assert len(made) == 2 and made[0] != made[1] and all(p.parent == Path("reports") for p in made)
    assert main(["report", run, "--out", str(made[0])]) == 0, "an earlier report may be replaced"
    assert sorted(p.name for p in made[0].iterdir()) == ["figures", "report.html", "report.json", "report.md"]


def _fails(capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err


def test_bad_input_is_one_line_and_exit_2(run_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    run = str(next(run_root.glob("a-mlp-*")))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    _fails(capsys, ["report"], "no runs given")
    _fails(capsys, ["report", str(tmp_path / "empty")], "is not a reslab run folder and holds none")
    _fails(capsys, ["report", str(tmp_path / "nowhere")], "does not exist")
    _fails(capsys, ["report", run, str(tmp_path / "empty")], "is not a reslab run folder")
    (tmp_path / "a-file").write_text("x")
    _fails(capsys, ["report", run, "--out", str(tmp_path / "a-file" / "sub")], "cannot write the report to")
    _fails(capsys, ["report", run, "--out", str(tmp_path / "a-file")], "is a file, not a folder")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    _fails(capsys, ["report", run, "--out", str(tmp_path / "mine")], "already holds files that are not a reslab")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "reports").exists(), "no folder is made for bad input"


def test_the_comparison_shows_the_settings_that_differ(data_dir: Path, tmp_path: Path) -> None:
    from helpers.training import tiny_cfg

    a = train(tiny_cfg(data_dir, tmp_path / "runs", "train.epochs=1", "optim.lr=0.003"), progress=False)
    b = train(tiny_cfg(data_dir, tmp_path / "runs", "train.epochs=1", "optim.lr=0.01", "train.seed=1"),
              progress=False)
    assert main(["report", str(a.run_dir), str(b.run_dir), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Settings that differ between the runs:" in md
    header = next(line for line in md.splitlines() if line.startswith("| run | optim.lr"))
    assert header.split("|")[2:4] == [" optim.lr ", " train.seed "] and "runs_dir" not in header
