"""A sweep folder's files turned against it (issue 19, items 1, 2 and 5): an index.json that names folders
outside the sweep, a .lock that is a link, a pipe or a hard link, a status.json that is a pipe or a link to
/dev/zero. Each is refused with one line and exit 2 (or read as damaged), and nothing outside changes."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from helpers.damage import tree
from reslab.cli import main

SWEEP = {"name": "tiny", "base": "plain-mlp8",
         "set": {"model.width": 8, "model.layers_per_block": 1, "data.val_size": 100, "data.batch_size": 100,
                 "train": {"epochs": 1, "deterministic": True, "device": "cpu", "threads": 1}, "gradflow.every": 0},
         "grid": {"model.depth": [1], "model.residual": [False]}, "seeds": 1}


@pytest.fixture(scope="module")
def done_sweep(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-run sweep: root/tiny.yaml and its folder root/runs/tiny."""
    root = tmp_path_factory.mktemp("done")
    (root / "tiny.yaml").write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    assert _sweep(root, data_dir) == 0
    return root


def _sweep(root: Path, data_dir: Path, *extra: str) -> int:
    return main(["sweep", str(root / "tiny.yaml"), "--runs-dir", str(root / "runs"), "--data-dir", str(data_dir),
                 *extra])


@pytest.fixture
def sweep(done_sweep: Path, tmp_path: Path) -> Path:
    """A copy of the finished sweep (root/tiny.yaml, root/runs/tiny) and a victim folder beside it."""
    root = tmp_path / "root"
    shutil.copytree(done_sweep, root, symlinks=True)
    (root / "victim" / "mydata").mkdir(parents=True)
    (root / "victim" / "mydata" / "thesis.tex").write_text("years of work\n")
    (root / "victim" / "notes.txt").write_text("keep me\n")
    return root


def _run_folder(root: Path) -> Path:
    (run,) = (root / "runs" / "tiny" / "runs").iterdir()
    return run


def _fails_one_line(capsys: pytest.CaptureFixture, code: int, *words: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and all(w in err[0] for w in words), err
    assert "Traceback" not in err[0]


@pytest.mark.parametrize("folder", ["../../victim/mydata", ".", "runs", "/", "runs/../../../victim/mydata"])
def test_an_index_naming_a_folder_outside_the_sweep_is_refused(sweep: Path, data_dir: Path,
                                                                capsys: pytest.CaptureFixture, folder: str) -> None:
    index_file = sweep / "runs" / "tiny" / "index.json"
    index = json.loads(index_file.read_text())
    (entry,) = index["runs"].values()
    entry.update(folder=folder, status="failed")
    index_file.write_text(json.dumps(index))
    (_run_folder(sweep) / "status.json").write_text('{"status": "failed"}')  # a rerun would move it aside
    before = tree(sweep)
    _fails_one_line(capsys, _sweep(sweep, data_dir), "index.json", "not inside")
    assert tree(sweep) == before


def test_a_run_folder_that_is_a_link_out_of_the_sweep_is_not_moved(sweep: Path, data_dir: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    run = _run_folder(sweep)
    shutil.rmtree(run)
    run.symlink_to(sweep / "victim" / "mydata")  # the trainer's own name, found by name when the index misses it
    (sweep / "runs" / "tiny" / "index.json").unlink()
    before = tree(sweep / "victim")
    assert _sweep(sweep, data_dir) == 0  # the link is not its run: the run is trained again, in a folder of its own
    capsys.readouterr()
    assert tree(sweep / "victim") == before and run.is_symlink()


def test_a_results_csv_naming_a_folder_outside_is_refused(sweep: Path) -> None:
    from reslab.errors import ConfigError
    from reslab.sweep import SweepFolder

    results = sweep / "runs" / "tiny" / "results.csv"
    text = results.read_text()
    results.write_text(text.replace("runs/" + _run_folder(sweep).name, "../../victim/mydata"))
    with pytest.raises(ConfigError, match="results.csv names the run folder"):
        SweepFolder(sweep / "runs" / "tiny").run_rows()


@pytest.mark.parametrize("kind", ["symlink", "fifo", "hardlink"])
def test_a_sweep_lock_that_is_not_a_file_of_its_own_is_refused(sweep: Path, data_dir: Path,
                                                               capsys: pytest.CaptureFixture, kind: str) -> None:
    lock = sweep / "runs" / "tiny" / ".lock"
    lock.unlink(missing_ok=True)
    if kind == "symlink":
        lock.symlink_to(sweep / "victim" / "notes.txt")
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        os.link(sweep / "victim" / "notes.txt", lock)
    before = tree(sweep)
    _fails_one_line(capsys, _sweep(sweep, data_dir), ".lock", "not a regular file")
    assert tree(sweep) == before
    assert (sweep / "victim" / "notes.txt").read_text() == "keep me\n"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_a_status_json_that_never_ends_does_not_hang_the_sweep(sweep: Path, data_dir: Path,
                                                                capsys: pytest.CaptureFixture, kind: str) -> None:
    status = _run_folder(sweep) / "status.json"
    status.unlink()
    if kind == "fifo":
        os.mkfifo(status)
    elif kind == "dev-zero":
        status.symlink_to("/dev/zero")
    else:
        with open(status, "wb") as fh:  # sparse: 300 MB that take no disk
            fh.truncate(300 * 2**20)
    before = tree(sweep)

    def hung(*_: object) -> None:
        raise TimeoutError("reslab sweep --dry-run hung on " + kind)

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        code = _sweep(sweep, data_dir, "--dry-run")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    assert tree(sweep) == before  # a dry run writes nothing
