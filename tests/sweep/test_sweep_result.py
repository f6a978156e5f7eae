"""A sweep's typed result: `run_sweep(spec) -> SweepResult` with Python values, the CLI's exit codes mapped from it,
a stop as `completed=False`, and `SweepFolder.run_rows()` reading a damaged cell as None."""

from __future__ import annotations

import csv
import io
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.sweeps import SWEEP, write_sweep as _write
from reslab.cli import EXIT_FAILED, EXIT_INTERRUPTED, lab_exit_code, main, sweep_exit_code
from reslab.lab.run import LabResult
from reslab.status import RunStatus
from reslab.sweep import Failure, SweepFolder, load_sweep, local, run_sweep


@pytest.fixture(scope="module")
def swept(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The 2 x 2 grid over 2 seeds, run through the library: (the sweep file, its SweepResult)."""
    root = tmp_path_factory.mktemp("typed")
    file = _write(root / "tiny.yaml")
    result = run_sweep(load_sweep(file), runs_dir=root / "runs", data_dir=str(data_dir), out=io.StringIO())
    return file, result


def test_run_sweep_returns_typed_runs_cells_and_pairs(swept: tuple[Path, object]) -> None:
    _, result = swept
    assert result.completed and result.failed == ()
    assert len(result.runs) == 8
    with open(result.folder / "results.csv") as fh:
        written = {(r["model.depth"], r["model.residual"], r["seed"]): r for r in csv.DictReader(fh)}
    for run in result.runs:
        depth, residual = run.values["model.depth"], run.values["model.residual"]
        assert type(depth) is int and type(residual) is bool and type(run.seed) is int
        assert run.status is RunStatus.FINISHED and run.completed
        assert run.run_folder is not None and run.run_folder.is_dir() and run.run_folder.name.startswith(run.key)
        assert run.key == f"model.depth={depth},model.residual={str(residual).lower()},seed={run.seed}"
        row = written[(str(depth), str(residual).lower(), str(run.seed))]
        assert isinstance(run.metric("test_acc"), float) and run.metric("test_acc") == float(row["test_acc"])
    assert {(c.values["model.depth"], c.values["model.residual"]) for c in result.aggregate} == \
        {(d, r) for d in (1, 3) for r in (False, True)}
    assert all(c.n == 2 and c.n_diverged == 0 and isinstance(c.stat("test_acc_mean"), float) for c in result.aggregate)
    assert sorted(p.values["model.depth"] for p in result.paired) == [1, 3]
    for pair in result.paired:
        assert "model.residual" not in pair.values and pair.seeds == (0, 1) and pair.n == 2
        diffs = pair.diffs["test_acc"]
        assert len(diffs) == 2 and sum(diffs) / 2 == pytest.approx(pair.stat("test_acc_diff_mean"), abs=1e-5)


def test_the_cli_maps_results_to_exit_codes(swept: tuple[Path, object]) -> None:
    _, result = swept
    assert sweep_exit_code(result) == 0
    failure = Failure("k", RunStatus.FAILED, None, "boom")
    assert sweep_exit_code(replace(result, failed=(failure,))) == EXIT_FAILED == 1
    assert sweep_exit_code(replace(result, completed=False)) == EXIT_INTERRUPTED == 130
    lab = LabResult(Path("lab"), completed=True, report=Path("lab/report/report.html"))
    assert lab_exit_code(lab) == 0 and lab.path == lab.report
    assert lab_exit_code(replace(lab, failed_runs=2)) == 1
    stopped = LabResult(Path("lab"), completed=False)
    assert lab_exit_code(stopped) == 130 and stopped.path == Path("lab")


def test_a_damaged_cell_reads_as_none(swept: tuple[Path, object], tmp_path: Path) -> None:
    _, result = swept
    copy = SweepFolder(tmp_path / "copy")
    copy.path.mkdir()
    for source in (SweepFolder(result.folder).sweep_file, SweepFolder(result.folder).results):
        shutil.copy(source, copy.path / source.name)
    with open(copy.results) as fh:
        rows = list(csv.DictReader(fh))
    columns = list(rows[0])
    rows[0].update({"test_acc": "garbage", "status": "finishd", "model.residual": "maybe", "seed": "x"})
    with open(copy.results, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
        fh.write("1,false,0,fin")  # a killed writer's last line: cut short, dropped
    read = copy.run_rows()
    assert len(read) == len(rows) == 8
    bad = read[0]
    assert bad.metric("test_acc") is None and bad.status is None and not bad.completed and bad.seed is None
    assert bad.values["model.residual"] is None and bad.values["model.depth"] == 1
    assert all(r.status is RunStatus.FINISHED and isinstance(r.metric("test_acc"), float) for r in read[1:])
    assert SweepFolder(tmp_path / "nothing").run_rows() == []  # not written yet: no rows


def test_a_stop_between_runs_is_an_incomplete_result(tmp_path: Path, data_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the sweep waits between runs: run_sweep returns completed=False (the CLI: 130), no traceback."""
    def stopped(unit: tuple[local.Task, ...], progress: bool = False) -> list[dict]:
        signal.raise_signal(signal.SIGINT)  # the sweep's stop handler raises at once
        raise AssertionError("the stop signal did not stop the sweep")

    monkeypatch.setattr(local, "run_unit", stopped)
    file = _write(tmp_path / "stop.yaml", seeds=1)
    out = io.StringIO()
    result = run_sweep(load_sweep(file), runs_dir=tmp_path / "runs", data_dir=str(data_dir), out=out)
    assert result.completed is False and sweep_exit_code(result) == 130
    assert "sweep tiny stopped; run the same command again to resume it" in out.getvalue()
    assert len(result.runs) == 4 and all(r.status is None and r.run_folder is None for r in result.runs)
    assert {type(r.values["model.residual"]) for r in result.runs} == {bool}
    assert main(["sweep", str(file), "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(data_dir)]) == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are restored
    assert SWEEP["name"] == "tiny"
