"""A sweep's `pair`: paired.csv compares the runs at a grid key's second value against its first, seed by seed, and
the numbers, typed rows, summary and report say so; checked against scipy's t interval over results.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from helpers.sweeps import SWEEP, write_sweep
from reslab.cli import main
from reslab.lab.profiles import Study
from reslab.report.document import Paragraph, Table
from reslab.report.sweeps import sweep_blocks
from reslab.report.values import DASH
from reslab.sweep import SweepFolder
from reslab.sweep.spec import Pairing

NO_LR = {k: v for k, v in SWEEP["set"].items() if k != "optim.lr"}
LRS = [0.05, 0.002]  # not sorted: the difference is the second minus the first, as the grid lists them
SEEDS = 3


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def lr_sweep(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """plain/residual x two learning rates x 3 seeds (12 one-epoch runs), paired on optim.lr."""
    root = tmp_path_factory.mktemp("pair")
    file = write_sweep(root / "lr.yaml", name="lr", set=NO_LR, seeds=SEEDS, pair="optim.lr",
                       grid={"model.residual": [False, True], "optim.lr": LRS})
    assert main(["sweep", str(file), "--runs-dir", str(root / "runs"), "--data-dir", str(data_dir)]) == 0
    return root / "runs" / "lr"


def test_paired_csv_is_the_second_value_minus_the_first_with_scipys_interval(lr_sweep: Path) -> None:
    from scipy import stats

    results = {(r["model.residual"], r["optim.lr"], r["seed"]): r for r in _rows(lr_sweep / "results.csv")}
    assert len(results) == 2 * 2 * SEEDS and {r["status"] for r in results.values()} == {"finished"}
    pairs = _rows(lr_sweep / "paired.csv")
    assert [p["model.residual"] for p in pairs] == ["false", "true"]  # grouped by the other grid key
    for pair in pairs:
        assert "optim.lr" not in pair and (pair["pair_key"], pair["pair_a"], pair["pair_b"]) == ("optim.lr", "0.05",
                                                                                                  "0.002")
        assert pair["n"] == str(SEEDS) and pair["seeds"] == "0;1;2"
        for metric in ("test_acc", "final_train_loss"):
            diffs = [float(results[pair["model.residual"], "0.002", s][metric]) -
                     float(results[pair["model.residual"], "0.05", s][metric]) for s in "012"]
            mean = sum(diffs) / SEEDS
            low, high = stats.t.interval(0.95, SEEDS - 1, loc=mean, scale=stats.sem(diffs))
            assert float(pair[f"{metric}_diff_mean"]) == pytest.approx(mean, abs=1e-9)
            assert (float(pair[f"{metric}_diff_ci_low"]), float(pair[f"{metric}_diff_ci_high"])) == \
                pytest.approx((low, high), abs=1e-9)
            better = [d < 0 if metric == "final_train_loss" else d > 0 for d in diffs]
            assert float(pair[f"{metric}_b_wins"]) == pytest.approx(sum(better) / SEEDS)
            assert f"{metric}_residual_wins" not in pair
        assert any(abs(float(d)) > 1e-6 for d in pair["test_acc_diffs"].split(";"))  # the runs did differ


def test_typed_rows_summary_and_report_name_what_was_paired(lr_sweep: Path, tmp_path: Path) -> None:
    folder = SweepFolder(lr_sweep)
    assert folder.pairing() == Pairing("optim.lr", 0.05, 0.002)
    written = {p["model.residual"]: p for p in _rows(folder.paired)}
    for row in folder.pair_rows():
        assert row.pair == Pairing("optim.lr", 0.05, 0.002) and set(row.values) == {"model.residual"}
        assert type(row.values["model.residual"]) is bool and row.seeds == (0, 1, 2)
        csv_row = written[str(row.values["model.residual"]).lower()]
        assert row.wins("test_acc") == float(csv_row["test_acc_b_wins"])
        assert row.stat("test_acc_diff_mean") == float(csv_row["test_acc_diff_mean"])
        assert "pair_key" not in row.stats and "pair_b" not in row.stats
    summary = (folder.summary).read_text()
    assert "At model.residual=false: optim.lr=0.002 - optim.lr=0.05 test accuracy" in summary
    assert "optim.lr=0.002 better in" in summary and "residual - plain" not in summary
    blocks = sweep_blocks(lr_sweep, tmp_path, level=2, svg=False)
    table = next(b for b in blocks if isinstance(b, Table) and "n (paired seeds)" in b.header)
    assert table.header == ["model.residual", "n (paired seeds)", "test acc: optim.lr=0.002 - optim.lr=0.05 (95% CI)",
                            "optim.lr=0.002 higher", "train loss: optim.lr=0.002 - optim.lr=0.05 (95% CI)",
                            "optim.lr=0.002 lower"]
    assert all(row[3] != DASH and row[3].endswith(f"of {SEEDS}") for row in table.rows)  # wins read back
    assert any(isinstance(b, Paragraph) and b.text.startswith("optim.lr=0.002 minus optim.lr=0.05, paired by seed")
               for b in blocks)


@pytest.mark.parametrize("changes, message", [
    ({"pair": "model.width"}, "pair model.width is not a grid key"),
    ({"pair": "model.depth", "grid": {"model.depth": [1, 2, 3], "model.residual": [False, True]}},
     "pair model.depth needs exactly two values in grid.model.depth, it has 3: 1, 2, 3"),
    ({"pair": "model.depth", "grid": {"model.depth": [1], "model.residual": [False, True]}},
     "needs exactly two values in grid.model.depth, it has 1"),
    ({"pair": 3}, "pair must be str, got 3"),
    ({"pair": ["model.depth"]}, "pair must be str"),
])
def test_a_bad_pair_is_one_line(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture, changes: dict,
                                message: str) -> None:
    code = main(["sweep", str(write_sweep(tmp_path / "bad.yaml", **changes)), "--runs-dir", str(tmp_path / "runs"),
                 "--data-dir", str(data_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "runs").exists()


def test_the_default_pairs_residual_twins_in_any_order_and_a_lab_study_passes_pair(tmp_path: Path) -> None:
    from reslab.sweep import sweep_spec

    raw = {"base": "plain-mlp8", "grid": {"model.residual": [True, False]}}
    assert sweep_spec(raw, tmp_path / "s.yaml").pairing == Pairing("model.residual", False, True)
    assert sweep_spec({**raw, "pair": "model.residual"}, tmp_path / "s.yaml").pairing == \
        Pairing("model.residual", True, False)  # given: the grid's order, plain - residual
    assert sweep_spec({"base": "plain-mlp8", "grid": {"model.depth": [1, 2]}}, tmp_path / "s.yaml").pairing is None
    study = Study(name="distil", base="plain-mlp8", dataset="mnist", settings={}, seeds=2, pair="optim.lr",
                  grid={"optim.lr": [0.1, 0.01], "model.residual": [False, True]})
    spec = study.spec("mnist", None, tmp_path)
    assert spec.raw["pair"] == "optim.lr" and spec.pairing == Pairing("optim.lr", 0.1, 0.01)
    assert "pair" not in Study(name="d", base="plain-mlp8", dataset="mnist", settings={}, seeds=1,
                               grid={"model.residual": [False, True]}).spec("mnist", None, tmp_path).raw
