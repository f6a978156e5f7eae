"""A run killed right after its final last.pt (issue 19, item 4), and a run folder's .lock turned against it
(item 2): `--resume` finishes with every steps.csv row a straight run has, and a lock that is a link, a pipe or
a hard link is refused with one line, its target untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import SignalAt, tiny_cfg
from helpers.damage import tree
from reslab.cli import main
from reslab.runs import RunFolder
from reslab.train import Interrupted, train

KILLER = textwrap.dedent("""
    import os, signal, sys
    from reslab.config import resolve
    from reslab.runs import RunFolder
    from reslab.train import train

    real = RunFolder.save_checkpoint

    def save_then_die(self, which, state):
        real(self, which, state)
        if which == "last" and state["state"]["epoch"] == 3:  # the final checkpoint is on disk: SIGKILL
            os.kill(os.getpid(), signal.SIGKILL)

    RunFolder.save_checkpoint = save_then_die
    train(resolve("seed-mlp", sys.argv[1:]), progress=False)
""")


def _overrides(data_dir: Path, runs_dir: Path) -> list[str]:
    return [f"data.data_dir={data_dir}", f"runs_dir={runs_dir}", "data.val_size=100", "data.batch_size=32",
            "train.epochs=3", "train.deterministic=true", "optim.lr=3e-3", "train.device=cpu", "train.log_every=10",
            "train.threads=1"]


def test_sigkill_after_the_final_checkpoint_then_resume_keeps_every_steps_row(data_dir: Path, tmp_path: Path) -> None:
    # one thread in all three runs: the subprocess and this process may otherwise sum in another order (1e-8 apart)
    straight = train(tiny_cfg(data_dir, tmp_path / "a", "train.log_every=10", "train.threads=1"), progress=False)
    expected = RunFolder(straight.run_dir).steps.read_text()
    assert [line.split(",")[0] for line in expected.splitlines()] == ["step", "10", "20", "30", "40", "48"]
    killed = subprocess.run([sys.executable, "-c", KILLER, *_overrides(data_dir, tmp_path / "b")],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (run,) = (tmp_path / "b").iterdir()
    assert not RunFolder(run).summary.exists()
    finished = train(tiny_cfg(data_dir, tmp_path / "b", "train.log_every=10", "train.threads=1"), resume=run,
                     progress=False)
    assert finished.summary["status"] == "finished"
    assert RunFolder(run).steps.read_text() == expected


@pytest.mark.parametrize("kind", ["symlink", "fifo", "hardlink"])
def test_a_run_lock_that_is_not_a_file_of_its_own_is_refused(data_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture, kind: str) -> None:
    with pytest.raises(Interrupted) as info:
        train(tiny_cfg(data_dir, tmp_path / "runs"), observers=[SignalAt(21, signal.SIGINT)], progress=False)
    run = RunFolder(info.value.run_dir)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    run.lock_file.unlink(missing_ok=True)
    if kind == "symlink":
        run.lock_file.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(run.lock_file)
    else:
        os.link(victim, run.lock_file)
    capsys.readouterr()
    before = tree(tmp_path)
    assert main(["train", "--resume", str(run.path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ".lock" in err[0] and "not a regular file" in err[0] and "Traceback" not in err[0], err
    assert victim.read_text() == "keep me\n"
    assert tree(tmp_path) == before
