"""The command line: every bad input is one line on stderr and exit code 2, never a traceback or lost data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.cli import fails_one_line as _fails
from helpers.fakedata import image_tree, write_folder
from reslab.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def finished_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("runs")
    assert main(["train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir", str(runs_dir), "--epochs", "1",
                 "--quiet", "--device", "cpu", "--set", "data.val_size=100"]) == 0
    (run,) = runs_dir.iterdir()
    return run


def _train(data_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir", str(tmp_path / "runs"), "--quiet",
            "--device", "cpu", *extra]


def test_train_prints_run_dir_last(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_train(data_dir, tmp_path, "--epochs", "1", "--name", "mine", "--seed", "3",
                       "--set", "data.val_size=50")) == 0
    out = capsys.readouterr().out.strip().splitlines()
    run = Path(out[-1])
    assert run.parent == tmp_path / "runs" and run.name.startswith("mine-") and (run / "summary.json").is_file()
    assert "seed: 3" in (run / "config.yaml").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--set", "model.widht=3"], "unknown key model.widht for model seed-mlp; valid keys: name, width, depth"),
    (["--epochs", "-1"], "train.epochs must be >= 1"),
    (["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (["--set", "data.batch_size=0"], "data.batch_size must be >= 1"),
    (["--set", "optim.lr=0"], "optim.lr must be > 0"),
    (["--set", "data.val_size=600"], "600"),
    (["--dataset", "imagenet"], "imagenet"),
    (["--device", "tpu"], "train.device must be"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_train_input(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str],
                         message: str) -> None:
    _fails(capsys, _train(data_dir, tmp_path, *extra), message)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run folder for bad input"


def test_unknown_preset_and_missing_file(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    _fails(capsys, ["train", "seed-transformer"], "unknown preset 'seed-transformer'; presets:")
    _fails(capsys, ["train", str(tmp_path / "nope.yaml")], "does not exist")
    _fails(capsys, ["train"], "give a preset or config file")


def test_missing_dataset_names_the_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, ["train", "seed-mlp", "--data-dir", str(tmp_path), "--set", "data.download=false", "--quiet"],
           "MNIST")


def test_model_that_cannot_take_the_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_folder(tmp_path / "tiny", image_tree(classes=("a", "b"), per_class=4, size=4))
    os.environ["RESLAB_CACHE"] = str(tmp_path / "cache")
    try:
        _fails(capsys, ["train", "seed-cnn", "--dataset", f"imagefolder:{tmp_path / 'tiny'}", "--quiet",
                        "--runs-dir", str(tmp_path / "runs"), "--set", "data.val_size=2"], "4x4")
    finally:
        del os.environ["RESLAB_CACHE"]


def test_resume_rejects_bad_checkpoints(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    _fails(capsys, ["train", "--resume", str(tmp_path / "nowhere")], "does not exist")
    _fails(capsys, ["train", "--resume", str(tmp_path)], "not a reslab run folder")
    _fails(capsys, ["train", "--resume", str(finished_run)], "already finished 1 of 1 epochs")
    _fails(capsys, ["train", "--resume", str(finished_run), "--seed", "4"], "cannot take --seed")
    cases = {
        "garbage": lambda p: p.write_bytes(b"this is not a checkpoint"),
        "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        "foreign": lambda p: torch.save({"state_dict": {"w": torch.zeros(2)}}, p),
    }
    for name, damage in cases.items():
        run = tmp_path / name
        shutil.copytree(finished_run, run)
        damage(run / "last.pt")
        before = sorted((f.name, f.stat().st_size) for f in run.iterdir())
        message = "is not a reslab checkpoint" if name == "foreign" else "cannot read checkpoint"
        _fails(capsys, ["train", "--resume", str(run), "--epochs", "2"], message)
        assert sorted((f.name, f.stat().st_size) for f in run.iterdir()) == before, "a failed resume changed the run"


def test_resume_with_more_epochs(finished_run: Path, tmp_path: Path, data_dir: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    import shutil

    run = tmp_path / "more"
    shutil.copytree(finished_run, run)
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(run)
    assert len((run / "metrics.csv").read_text().splitlines()) == 3


def test_console_script_in_a_subprocess(tmp_path: Path) -> None:
    """The real entry point: a bad flag value is one line on stderr and exit 2."""
    proc = subprocess.run([sys.executable, "-m", "reslab.cli", "train", "seed-mlp", "--set", "optim.lr=-1"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "reslab: error: optim.lr must be > 0, got -1.0"
    listing = subprocess.run([sys.executable, "-m", "reslab.cli", "list"], capture_output=True, text=True)
    assert listing.returncode == 0 and "resnet56" in listing.stdout and "cifar-resnet" in listing.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here, so asking for it is not an error")
def test_unavailable_device_is_a_one_line_error(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, _train(data_dir, tmp_path)[:-2] + ["--device", "cuda"], "CUDA is not available here")


def test_the_cli_reports_divergence_in_one_line(data_dir: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from helpers.training import Poison; import reslab.observers as o;"
            "real = o.default_observers; o.default_observers = lambda cfg: [*real(cfg), Poison(3)];"
            "import reslab.train as t; t.default_observers = o.default_observers;"
            "from reslab.cli import main; sys.exit(main(sys.argv[2:]))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parents[1]), "train", "seed-mlp", "--quiet",
                          "--data-dir", str(data_dir), "--runs-dir", str(tmp_path), "--set", "train.log_every=4",
                          "--set", "data.val_size=100", "--device", "cpu"], capture_output=True, text=True)
    assert out.returncode == 3, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("reslab: seed-mlp diverged at step 4")
    assert "Traceback" not in out.stderr and Path(out.stdout.strip().splitlines()[-1]).is_dir()


@pytest.mark.parametrize("override", ["optim.lr=.inf", "optim.weight_decay=.inf", "optim.warmup_epochs=.nan",
                                      "train.seed=18446744073709551616", "train.device=cpu:abc",
                                      "train.threads=100000"])
def test_values_that_crashed_after_validation_are_config_errors(override: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "seed-mlp", "--set", override, "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reslab: error:") and len(err.splitlines()) == 1


def test_names_and_yaml_that_could_mislead(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "seed-mlp", "--name", "two\nlines", "--print-config"]) == 2
    twice = tmp_path / "twice.yaml"
    twice.write_text("train:\n  epochs: 2\n  epochs: 3\n")
    assert main(["train", str(twice), "--print-config"]) == 2
    assert "epochs given twice" in capsys.readouterr().err


def test_a_model_or_image_size_that_cannot_fit_is_refused_before_building(data_dir: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """width 10^6 x 64 blocks would be ~2 TB of weights: refused from a build on the meta device, in one line."""
    assert main(["train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir", str(tmp_path), "--quiet",
                 "--set", "model.name=mlp", "--set", "model.width=1000000", "--set", "model.depth=64"]) == 2
    err = capsys.readouterr().err.strip()
    assert "GiB" in err and "parameters" in err and len(err.splitlines()) == 1 and not list(tmp_path.iterdir())
    assert main(["train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir", str(tmp_path), "--quiet",
                 "--set", "data.image_size=200000"]) == 2
    assert "data.image_size=200000" in capsys.readouterr().err


def test_building_the_command_line_imports_no_torch() -> None:
    """`reslab --help` and every parse stay fast: the instruments' registrations defer their measure modules, and
    run folders import torch only where a checkpoint is read or written (torch costs ~2 s to import)."""
    code = ("import sys, reslab.cli as cli; cli._build_parser().parse_args(['analyze', 'lesion', 'r']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
