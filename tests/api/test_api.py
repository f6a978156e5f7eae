"""The Python API: `import reslab` stays light, `reslab.train` runs what `reslab train` runs and returns a `Run`
whose tables equal its files (read independently with pandas), errors are one-line ReslabErrors, and tables
without pandas say which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reslab
from reslab.errors import ConfigError, ReslabError

TINY = {"data__val_size": 100, "data__batch_size": 32, "train__epochs": 2, "train__deterministic": True,
        "optim__lr": 3e-3, "train__device": "cpu"}


def tiny(data_dir: Path, runs_dir: Path, **changes: Any) -> dict[str, Any]:
    """tiny_cfg's overrides as the API's keyword arguments."""
    return {"data__data_dir": str(data_dir), "runs_dir": str(runs_dir), **TINY, **changes}


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> reslab.Run:
    return reslab.train("seed-mlp", progress=False, **tiny(data_dir, tmp_path_factory.mktemp("runs")))


def test_import_reslab_imports_neither_torch_nor_pandas() -> None:
    code = ("import sys, reslab; names = [reslab.train, reslab.sweep, reslab.lab, reslab.load_run, reslab.analyze]; "
            "print('torch' in sys.modules, 'pandas' in sys.modules)")
    light = subprocess.run([sys.executable, "-c", "import sys, reslab; print('torch' in sys.modules, "
                            "'pandas' in sys.modules, reslab.__version__)"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert light == ["False", "False", reslab.__version__]
    used = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert used[1] == "False"  # reaching the API's functions imports no pandas either


def test_the_modules_named_like_the_api_stay_modules() -> None:
    import reslab.sweep as sweep_package
    import reslab.train as trainer

    assert callable(reslab.train) and reslab.train is trainer and trainer.train.__module__ == "reslab.train"
    assert callable(reslab.sweep) and sweep_package.SweepFolder.__name__ == "SweepFolder"
    with pytest.raises(TypeError, match="not an instrument"):
        reslab.analyze.registry()


def test_train_returns_a_run_whose_tables_are_its_files(run: reslab.Run) -> None:
    import pandas as pd

    folder = run.folder
    assert run.status == "finished" and run.path.parent.is_dir()
    pd.testing.assert_frame_equal(run.metrics, pd.read_csv(folder.metrics), check_dtype=False)
    pd.testing.assert_frame_equal(run.steps, pd.read_csv(folder.steps), check_dtype=False)
    summary = run.summary
    assert summary.index.tolist() == [run.name]
    assert summary["test_acc"].item() == pytest.approx(run.summary_values()["test_acc"])
    assert run.config["train.epochs"].item() == 2 and run.config["optim.lr"].item() == pytest.approx(3e-3)
    assert run.summary_values()["epochs"] == 2
    html = run._repr_html_()
    assert run.name in html and "test_acc" in html and "<table>" in html


def test_plot_curves_is_a_figure(run: reslab.Run) -> None:
    from matplotlib.figure import Figure

    fig = run.plot_curves()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[1].lines[0].get_xdata()) == 2  # a point per epoch
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_plot_gradflow_is_the_runs_heatmap(run: reslab.Run) -> None:
    from matplotlib.figure import Figure

    fig = run.plot_gradflow()
    assert isinstance(fig, Figure) and [len(ax.images) for ax in fig.axes[:2]] == [1, 1]
    layers = {r["depth"] for r in run.folder.read_gradflow()}
    assert fig.axes[0].images[0].get_array().shape[0] == len(layers) >= 2
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_load_run_reads_the_same_folder(run: reslab.Run, tmp_path: Path) -> None:
    assert reslab.load_run(run.path) == run
    with pytest.raises(ReslabError, match="not a reslab run folder"):
        reslab.load_run(tmp_path)


def test_bad_overrides_are_one_line_config_errors(data_dir: Path, tmp_path: Path, run: reslab.Run) -> None:
    with pytest.raises(ConfigError, match="trian") as bad:
        reslab.train("seed-mlp", trian__epochs=1, **tiny(data_dir, tmp_path))
    assert "\n" not in str(bad.value)
    with pytest.raises(ConfigError, match="resume continues a run as configured; it cannot take optim.lr"):
        reslab.train(resume=run, optim__lr=0.1)
    with pytest.raises(ConfigError, match="preset or config file"):
        reslab.train()
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_tables_without_pandas_name_the_extra(run: reslab.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(ReslabError, match=r"pip install 'reslab\[notebook\]'") as missing:
        run.metrics
    assert "\n" not in str(missing.value)
    assert run.name in run._repr_html_()  # the notebook view needs no pandas
    assert isinstance(run.plot_curves().axes, list)


def test_an_interrupt_leaves_a_checkpoint_that_train_resumes(data_dir: Path, tmp_path: Path) -> None:
    """A notebook's kernel interrupt is a SIGINT in the training loop: the run saves its position and
    `reslab.train(resume=...)` finishes it in the same folder."""
    import signal

    from helpers.training import SignalAt

    with pytest.raises(reslab.Stopped, match="checkpoint saved") as stopped:
        reslab.train("seed-mlp", progress=False, observers=[SignalAt(5, signal.SIGINT)], **tiny(data_dir, tmp_path))
    path = stopped.value.path
    interrupted = reslab.load_run(path)
    assert interrupted.status == "interrupted" and interrupted.folder.last.is_file()
    assert f"reslab.train(resume={str(path)!r})" in str(stopped.value)
    resumed = reslab.train(resume=path, progress=False)
    assert resumed.path == path and resumed.status == "finished"
    assert resumed.metrics["epoch"].tolist() == [1, 2]


def test_every_registered_instrument_is_callable_with_its_flags() -> None:
    from reslab.analyze import tools

    assert {"gradflow", "lesion", "shatter", "landscape", "init"} <= set(tools.names())
    for name in tools.names():
        assert callable(getattr(reslab.analyze, name))
        assert "--out" in tools.help_text(name)  # the command's own flags, as keyword arguments
    assert tools.argv(("a",), {"at": ["init", "last"], "notebook_kernel": True, "svg": False,
                               "set": {"model.depth": 8}}) == \
        ["a", "--at", "init", "--at", "last", "--notebook-kernel", "--set", "model.depth=8"]
    with pytest.raises(ConfigError, match="no instrument 'nope'"):
        tools.run("nope")
