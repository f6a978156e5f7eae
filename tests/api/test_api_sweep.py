"""`reslab.sweep` runs what `reslab sweep` runs; `reslab.load_sweep(dir)`'s tables equal the sweep's CSV files read
independently with pandas, its figure is a Figure; an instrument runs from `reslab.analyze.<name>(...)`."""

from __future__ import annotations

from pathlib import Path

import pytest

import reslab
from reslab.errors import ConfigError

from helpers.sweeps import SWEEP


@pytest.fixture(scope="module")
def sweep(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> reslab.Sweep:
    runs_dir = tmp_path_factory.mktemp("sweeps")
    return reslab.sweep({**SWEEP, "seeds": 2, "grid": {"model.depth": [1, 2], "model.residual": [False, True]}},
                        runs_dir=runs_dir, data_dir=str(data_dir))


def test_aggregate_equals_aggregate_csv(sweep: reslab.Sweep) -> None:
    import pandas as pd

    folder = sweep.folder
    for table, path in ((sweep.aggregate, folder.aggregate), (sweep.results, folder.results),
                        (sweep.paired, folder.paired)):
        expected = pd.read_csv(path)
        assert len(expected) > 0
        pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert sorted(sweep.aggregate["n"]) == [2, 2, 2, 2]
    assert reslab.load_sweep(sweep.path) == sweep


def test_runs_figure_and_view(sweep: reslab.Sweep) -> None:
    from matplotlib.figure import Figure

    assert len(sweep.runs) == 8 and all(r.status == "finished" for r in sweep.runs)
    fig = sweep.plot_depth()
    assert isinstance(fig, Figure)
    lines = [line for line in fig.axes[0].lines if len(line.get_xdata())]
    assert len(lines) == 2 and sorted(lines[0].get_xdata()) == [1, 2]  # plain and residual, over two depths
    assert isinstance(sweep.plot_depth("final_train_loss"), Figure)
    html = sweep._repr_html_()
    assert "model.depth" in html and "8 runs" in html and "4 cells" in html


def test_running_it_again_trains_nothing(sweep: reslab.Sweep, data_dir: Path) -> None:
    before = sorted(p.name for p in sweep.folder.runs.iterdir())
    again = reslab.sweep({**SWEEP, "seeds": 2, "grid": {"model.depth": [1, 2], "model.residual": [False, True]}},
                         runs_dir=sweep.path.parent, data_dir=str(data_dir))
    assert again == sweep and sorted(p.name for p in sweep.folder.runs.iterdir()) == before


def test_bad_sweeps_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a `name`"):
        reslab.sweep({"base": "plain-mlp8"}, runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown sweep option jbos"):
        reslab.sweep({**SWEEP}, runs_dir=tmp_path, jbos=2)
    with pytest.raises(ConfigError, match="not a sweep folder"):
        reslab.load_sweep(tmp_path)


def test_an_instrument_runs_from_python(sweep: reslab.Sweep, data_dir: Path, tmp_path: Path) -> None:
    plain, residual = [str(r.path) for r in sweep.runs if r.config["model.depth"].item() == 2][:2]
    result = reslab.analyze.gradflow(plain, residual, at=["last"], batches=2, device="cpu", out=tmp_path / "g",
                                     data_dir=str(data_dir), quiet=True)
    assert result.folder == tmp_path / "g" and result.figures and "gradient" in result.text.lower()
    assert str(result.folder) in result._repr_html_()
    with pytest.raises(ConfigError, match="unrecognized arguments: --batchs"):
        reslab.analyze.gradflow(plain, batchs=2)


def test_load_lab_reads_its_studies(sweep: reslab.Sweep, tmp_path: Path) -> None:
    import json
    import shutil

    from reslab.lab.folder import LAB_FORMAT, LabFolder

    folder = LabFolder(tmp_path / "lab")
    shutil.copytree(sweep.path, folder.sweep("depth"))
    folder.record.write_text(json.dumps({"format": LAB_FORMAT, "profile": "quick", "stages": {"depth": {}}}))
    lab = reslab.load_lab(folder.path)
    assert list(lab.sweeps) == ["depth"] and lab.record["profile"] == "quick"
    assert lab.runs["study"].tolist() == ["depth"] * 8 and len(lab.runs.columns) == len(sweep.results.columns) + 1
    assert lab.report is None and lab.analyses == {} and "quick" in lab._repr_html_()
    with pytest.raises(ConfigError, match="not a reslab lab folder"):
        reslab.load_lab(tmp_path)
