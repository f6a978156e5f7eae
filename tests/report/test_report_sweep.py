"""`reslab report` of sweep folders and analysis folders (and a run's own analyses), whole and damaged.

The sweep is a real one (8 tiny runs on the generated MNIST); its tables are checked against numbers computed
here from results.csv, not against the aggregate the report reads. The analysis folders are real (`reslab
gradflow`) or written by hand in the one analysis-folder format, to damage them on purpose.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy import stats

from reslab import files, plots
from reslab.analyze.record import AnalysisRecord, write_record
from reslab.cli import main
from reslab.report import sweeps
from reslab.report.analyses import analysis_blocks
from reslab.report.document import Figure, Heading, Note, Table
from reslab.report.sweeps import sweep_blocks

SWEEP: dict[str, Any] = {
    "name": "tiny",
    "base": "plain-mlp8",
    "set": {"model.width": 8, "model.layers_per_block": 2, "data": {"val_size": 100, "batch_size": 32,
                                                                    "train_size": 300},
            "optim.lr": 3e-3, "train": {"epochs": 2, "deterministic": True, "device": "cpu", "threads": 1},
            "gradflow.every": 0},
    "grid": {"model.depth": [1, 3], "model.residual": [False, True]},
    "seeds": 2,
    "cases": [{"when": {"model.depth": 3, "model.residual": True},
               "set": {"optim.warmup_epochs": 0.5, "optim.warmup_mode": "constant"}}],
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _report(tmp_path: Path, *paths: Path, name: str = "out") -> tuple[str, str, dict[str, Any], Path]:
    out = tmp_path / name
    assert main(["report", *map(str, paths), "--out", str(out)]) == 0
    return ((out / "report.md").read_text(), (out / "report.html").read_text(),
            json.loads((out / "report.json").read_text()), out)


@pytest.fixture(scope="module")
def sweep_folder(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    (root / "tiny.yaml").write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    assert main(["sweep", str(root / "tiny.yaml"), "--runs-dir", str(root / "runs"), "--data-dir", str(data_dir)]) == 0
    return root / "runs" / "tiny"


def _ci(values: list[float]) -> str:
    """Mean [95% t interval], computed here with scipy, as the report formats it."""
    n, mean = len(values), sum(values) / len(values)
    half = stats.t.ppf(0.975, n - 1) * stats.tstd(values) / math.sqrt(n)
    return f"{mean:.4f} [{mean - half:.4f}, {mean + half:.4f}]"


@pytest.mark.slow  # the sweep fixture trains 8 tiny runs (about 7 s here)
def test_a_sweep_folder_is_reported(sweep_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[Any] = []
    real = sweeps.plot_curves_by_depth
    monkeypatch.setattr(sweeps, "plot_curves_by_depth", lambda panels, *a, **k: (drawn.append(panels),
                                                                                  real(panels, *a, **k)))
    md, page, numbers, out = _report(tmp_path, sweep_folder)
    assert md.startswith("# reslab report: sweep tiny")
    assert [line for line in md.splitlines() if line.startswith("## ")] == ["## Sweep tiny"], "no section per run"
    assert r"grid model.depth \[1, 3\] x model.residual \[false, true\]; 2 seeds (0 to 1)" in md
    assert r"where model.depth=3, model.residual=true: optim.warmup\_epochs=0.5, optim.warmup\_mode=constant" in md
    assert r"data.train\_size = 300 (a seeded subset of the training split)" in md
    assert "8 runs: 8 finished." in md
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert figures == ["figures/tiny-test_acc_vs_depth.png", "figures/tiny-train_loss_vs_depth.png",
                       "figures/tiny-curves.png"]
    assert all((out / f).stat().st_size > 1000 for f in figures) and page.count("data:image/png;base64,") == 3
    assert (out / figures[0]).read_bytes() == (sweep_folder / "test_acc_vs_depth.png").read_bytes()
    # the curves: a panel per depth, a line per run (2 seeds x plain/residual), each its run's metrics.csv
    results = _rows(sweep_folder / "results.csv")
    (panels,) = drawn
    assert [title for title, _ in panels] == ["model.depth=1", "model.depth=3"]
    for (title, lines), depth in zip(panels, ("1", "3")):
        runs = [r for r in results if r["model.depth"] == depth]
        assert sorted((line["label"], line["residual"]) for line in lines) == sorted(
            ("residual" if r["model.residual"] == "true" else "plain", r["model.residual"] == "true") for r in runs)
        assert sorted(line["history"][-1]["train_loss"] for line in lines) == pytest.approx(sorted(
            float(_rows(sweep_folder / r["run_folder"] / "metrics.csv")[-1]["train_loss"]) for r in runs))
    # the per-cell table against means and t intervals computed here from results.csv
    by_cell: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in results:
        by_cell[r["model.depth"], r["model.residual"]].append(r)
    for (depth, residual), runs in by_cell.items():
        row = f"| {depth} | {residual} | 2 | {_ci([float(r['test_acc']) for r in runs])} | " \
              f"{_ci([float(r['final_train_loss']) for r in runs])} |"
        assert row.replace("[", r"\[").replace("]", r"\]") in md, row
    # the paired table: residual - plain per seed, and how many seeds the residual twin wins
    for depth in ("1", "3"):
        diffs = [float(by_cell[depth, "true"][s]["test_acc"]) - float(by_cell[depth, "false"][s]["test_acc"])
                 for s in (0, 1)]
        wins = sum(d > 0 for d in diffs)
        mean = sum(diffs) / 2
        assert re.search(rf"\| {depth} \| 2 \| {re.escape(f'{mean:+.4f}')} \\\[[^|]+\\\] \| {wins} of 2 \|", md), depth
    summary = (sweep_folder / "summary.txt").read_text().splitlines()
    assert all(html.escape(line.strip()) in page for line in summary if line.strip())
    assert numbers["sweeps"][0]["runs"] == {"finished": 8} and len(numbers["sweeps"][0]["cells"]) == 4
    assert numbers["runs"] == [] and "Unreadable" not in md and "did not finish" not in md


@pytest.mark.slow  # the sweep fixture trains 8 tiny runs (about 7 s here)
def test_sweep_blocks_for_the_lab(sweep_folder: Path, tmp_path: Path) -> None:
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "tiny-curves.png").write_bytes(b"taken")  # a name another section already used
    blocks = sweep_blocks(sweep_folder, tmp_path, level=3, svg=True)
    assert blocks[0] == Heading("Sweep tiny", 3) and Heading("What the numbers say", 4) in blocks
    paths = [b.path for b in blocks if isinstance(b, Figure)]
    assert paths == ["figures/tiny-test_acc_vs_depth.png", "figures/tiny-train_loss_vs_depth.png",
                     "figures/tiny-curves-2.png"]
    assert (tmp_path / "figures" / "tiny-curves.png").read_bytes() == b"taken"
    assert (tmp_path / "figures" / "tiny-curves-2.svg").is_file()
    assert [len(b.rows) for b in blocks if isinstance(b, Table)] == [4, 2]


def _edit_csv(path: Path, edit: Any) -> None:
    rows = _rows(path)
    fields = list(rows[0])
    files.write_csv(path, [edit(i, r) for i, r in enumerate(rows)], fields)


@pytest.mark.slow  # the sweep fixture trains 8 tiny runs (about 7 s here)
def test_failed_missing_and_damaged_sweep_files(sweep_folder: Path, tmp_path: Path) -> None:
    sweep = shutil.copytree(sweep_folder, tmp_path / "tiny")
    _edit_csv(sweep / "results.csv", lambda i, r: {**r, "status": "failed"} if i == 1 else
              {**r, "status": "missing", "run_folder": ""} if i == 2 else r)
    index = json.loads((sweep / "index.json").read_text())
    index["runs"]["model.depth=1,model.residual=false,seed=1"]["error"] = "RuntimeError: simulated <crash>"
    files.write_json(sweep / "index.json", index)
    (sweep / "summary.txt").unlink()
    (sweep / "train_loss_vs_depth.png").write_text("not a png")
    with open(sweep / "paired.csv", "a") as fh:
        fh.write('3,"torn\n')
    run = next((sweep / "runs").iterdir())
    md, page, _, _ = _report(tmp_path, run, sweep)
    assert [line for line in md.splitlines() if line.startswith("## ")] == [f"## {run.name}", "## Sweep tiny"]
    assert "8 runs: 1 failed, 6 finished, 1 missing." in md
    assert "2 of 8 runs did not finish" in md
    failed = next(line for line in md.splitlines() if line.startswith("| model.depth=1,model.residual=false,seed=1"))
    assert "failed" in failed and "RuntimeError: simulated &lt;crash&gt;" in failed
    assert "| model.depth=1,model.residual=true,seed=0 | missing | — | — |" in md
    assert "summary.txt is missing" in md and "train\\_loss\\_vs\\_depth.png is not a PNG image" in md
    assert "paired.csv: 1 damaged row left out" in md
    assert "Residual minus plain" in md, "the readable rows of a damaged table are shown"


@pytest.mark.parametrize("damage, expect", [
    ("not aggregated", "Not aggregated yet: no results.csv"),
    ("sweep.yaml garbage", "sweep.yaml could not be read"),
    ("sweep.yaml a list", "sweep.yaml holds a list, not a mapping"),
])
def test_an_unfinished_or_damaged_sweep_is_reported(tmp_path: Path, damage: str, expect: str) -> None:
    """A sweep stopped before its aggregate (only sweep.yaml, index.json and run folders), or a damaged sweep.yaml."""
    sweep = tmp_path / "tiny"
    sweep.mkdir()
    (sweep / "sweep.yaml").write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    files.write_json(sweep / "index.json", {"format": "reslab-sweep-index-1", "runs": {
        f"model.depth=1,model.residual=false,seed={s}": {"folder": f"runs/{s}", "status": "finished"} for s in (0, 1)}
        | {"model.depth=1,model.residual=true,seed=0": {"folder": "runs/2", "status": "interrupted"}}})
    if damage == "sweep.yaml garbage":
        (sweep / "sweep.yaml").write_text("grid: [unclosed\n")
    elif damage == "sweep.yaml a list":
        (sweep / "sweep.yaml").write_text("- 1\n- 2\n")
    md, _, numbers, _ = _report(tmp_path, sweep)
    assert "## Sweep tiny" in md and expect.replace("_", r"\_") in md
    if damage == "not aggregated":
        assert "index.json lists 3 runs: 2 finished, 1 interrupted." in md
    assert numbers["sweeps"][0]["name"] == "tiny"


# ----------------------------------------------------------------------------- analysis folders


def _analysis(folder: Path, **changes: Any) -> Path:
    """An analysis folder by hand: a summary, a figure, a small and a large table, analysis.json last."""
    folder.mkdir(parents=True)
    (folder / "lesion-summary.txt").write_text("Deleting one block: error +0.4% (ResNet), +81% (plain).\n")
    with plots.figure(folder / "lesion.png", (3, 2)) as fig:
        fig.add_subplot(1, 1, 1).plot([0, 1, 2], [0.1, 0.2, 0.4])
    files.write_csv(folder / "small.csv", [{"block": b, "error": 0.1 * b} for b in range(3)], ["block", "error"])
    files.write_csv(folder / "large.csv", [{"draw": d, "error": d / 100} for d in range(60)], ["draw", "error"])
    values = dict(kind="lesion", title="Lesion study", sources=("runs/res-mlp8", "runs/plain-mlp8"),
                  summary="lesion-summary.txt", figures=("lesion.png",), tables=("small.csv", "large.csv"),
                  settings={"draws": 5, "subset": 1000}, findings={"single_block_error_residual": 0.004},
                  reference="Veit et al. 2016: deleting one block barely hurts a ResNet", seconds=1.5)
    write_record(folder, AnalysisRecord(**{**values, **changes}))
    return folder


def test_an_analysis_folder_is_reported(tmp_path: Path) -> None:
    folder = _analysis(tmp_path / "lesion-1")
    md, page, numbers, out = _report(tmp_path, folder)
    assert md.startswith("# reslab report: lesion-1") and "## Lesion study" in md
    assert "A lesion analysis of runs/res-mlp8, runs/plain-mlp8, measured in 1.5 s" in md
    assert "Settings: draws = 5; subset = 1000." in md
    assert "Published reference: Veit et al. 2016: deleting one block barely hurts a ResNet." in md
    assert "Deleting one block: error +0.4% (ResNet), +81% (plain)." in md
    assert "| single\\_block\\_error\\_residual | 0.004 |" in md
    assert "| 2 | 0.2 |" in md, "the small table is shown"
    assert "large.csv: 60 rows of 2 columns (not shown; in the folder)." in md
    assert (out / "figures" / "lesion-1-lesion.png").read_bytes() == (folder / "lesion.png").read_bytes()
    assert numbers["analyses"] == [{"path": str(folder), "kind": "lesion", "title": "Lesion study",
                                    "findings": {"single_block_error_residual": 0.004}, "status": "readable"}]
    assert "Unreadable" not in md


def test_damaged_analysis_folders_are_notes(tmp_path: Path) -> None:
    odd = _analysis(tmp_path / "odd", figures=("lesion.png", "gone.png", "../escape.png"),
                    tables=("small.csv", "nowhere.csv"), summary="no-summary.txt")
    (tmp_path / "out" / "figures").mkdir(parents=True)
    blocks = analysis_blocks(odd, tmp_path / "out", level=3, svg=False)
    assert blocks[0] == Heading("Lesion study", 3)
    (note,) = [b for b in blocks if isinstance(b, Note)]
    for problem in ("no-summary.txt (the summary) is missing", "figure gone.png is missing",
                    "names a figure that is not a file name in the folder: '../escape.png'", "nowhere.csv is missing"):
        assert problem in note.text
    assert [b.path for b in blocks if isinstance(b, Figure)] == ["figures/odd-lesion.png"]
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "analysis.json").write_text("{not json")
    listed = tmp_path / "listed"
    listed.mkdir()
    (listed / "analysis.json").write_text("[1, 2]")
    md, _, numbers, _ = _report(tmp_path, garbage, listed, odd, name="all")
    assert md.startswith("# reslab report: 3 analyses")
    assert "Could not read this analysis: analysis.json could not be read (JSONDecodeError" in md
    assert "Could not read this analysis: analysis.json holds a list, not an object." in md
    assert [a["status"] for a in numbers["analyses"]] == ["unreadable", "unreadable", "readable"]


def test_a_runs_own_analyses_are_in_its_section(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from helpers.training import tiny_cfg
    from reslab.train import train

    run = train(tiny_cfg(data_dir, tmp_path / "runs", "train.epochs=1", "gradflow.every=0"), progress=False).run_dir
    assert main(["gradflow", str(run), "--data-dir", str(data_dir), "--set", "data.val_size=100", "--batches", "2",
                 "--quiet", "--device", "cpu"]) == 0
    (analysis,) = (run / "analysis").iterdir()  # written into the run folder by default
    (run / "analysis" / "half-done").mkdir()  # an analysis interrupted before its analysis.json
    capsys.readouterr()
    md, page, _, out = _report(tmp_path, run)
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert headings[1:] == [f"## {run.name}", "### Classification report (test set)", "### Gradient flow",
                            "### Analysis half-done"]
    record = json.loads((analysis / "analysis.json").read_text())
    for name in record["figures"]:
        assert f"figures/{analysis.name}-{Path(name).stem}.png" in md
    assert html.escape((analysis / record["summary"]).read_text().splitlines()[0]) in page
    assert "Could not read this analysis: no analysis.json (an instrument writes it last" in md
