"""The run folder on disk: one writer at a time, records written before the checkpoint that claims them, files
that follow the umask, stale temp files removed, a full disk named in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.training import interrupted_run, strict_json, tiny_cfg
from reslab import files
from reslab.cli import main
from reslab.errors import CheckpointError
from reslab.runs import RunFolder
from reslab.train import train


def test_a_run_folder_is_locked_while_written(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = interrupted_run(data_dir, tmp_path)
    folder = RunFolder(run)
    with folder.locked():  # another process holding it (flock conflicts across open files, even in one process)
        with pytest.raises(CheckpointError, match=f"in use by process {os.getpid()} on "):
            train(tiny_cfg(data_dir, tmp_path), resume=run, progress=False)
        assert main(["train", "--resume", str(run), "--quiet"]) == 2
        assert "in use by process" in capsys.readouterr().err
    # a lock file left by a process that died (its flock went with it) is taken over
    files.write_json(folder.lock_file, {"pid": 999999999, "host": "elsewhere"})
    assert train(tiny_cfg(data_dir, tmp_path), resume=run, progress=False).summary["status"] == "finished"


def test_gradflow_rows_are_on_disk_before_the_checkpoint_claims_them(data_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = RunFolder.save_checkpoint

    def checked(self: RunFolder, which: str, state: dict) -> None:
        if which == "last":  # a SIGKILL right after this write must not lose the epoch's rows
            recorded = {int(r["step"]) for r in files.read_csv(self.gradflow, missing_ok=True)}
            due = {s for s in range(1, state["state"]["step"] + 1) if (s - 1) % 5 == 0}
            seen.append(due <= recorded)
        real(self, which, state)

    monkeypatch.setattr(RunFolder, "save_checkpoint", checked)
    train(tiny_cfg(data_dir, tmp_path, "gradflow.every=5"), progress=False)
    assert seen == [True, True, True]


def test_files_follow_the_umask_and_stale_temps_are_removed(data_dir: Path, tmp_path: Path) -> None:
    run = interrupted_run(data_dir, tmp_path)
    import tempfile

    stale, fresh = (Path(tempfile.mkstemp(dir=run, prefix=".last.pt.", suffix=".tmp")[1]) for _ in range(2))
    mine = run / ".notes.tmp"  # not a name atomic_write gives its temps: never touched
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    mine.write_text("a user's file")
    os.utime(stale, (0, 0))
    os.utime(mine, (0, 0))
    old = os.umask(0o022)
    try:
        train(tiny_cfg(data_dir, tmp_path), resume=run, progress=False)
    finally:
        os.umask(old)
    assert not stale.exists() and fresh.exists() and mine.exists()
    assert oct(RunFolder(run).summary.stat().st_mode & 0o777) == oct(0o644)


def test_a_full_disk_is_one_line_naming_the_path(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    import errno

    real = files.atomic_write

    def full(path: Path, write: object, mode: str = "w") -> None:
        if Path(path).name == "metrics.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, write, mode)

    monkeypatch.setattr(files, "atomic_write", full)
    assert main(["train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir", str(tmp_path), "--quiet",
                 "--device", "cpu", "--set", "data.val_size=100", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.csv: No space left on device" in err[0]
    (run,) = tmp_path.iterdir()
    assert strict_json(RunFolder(run).status)["status"] == "failed"
