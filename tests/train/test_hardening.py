"""What an adversarial user, a killed process or a diverging net must not break (the hardening issue).

Each test reproduces a failure the code had before: a stopped run that could never finish, two processes
in one run folder, records missing behind a checkpoint, an edited config used silently, a second signal
during the interrupt checkpoint, a NaN loss trained on and written as invalid JSON, steps.csv split at an
interrupt, files written 0600, stale temp files left forever.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import SignalAt, tiny_cfg
from reslab import files, runs
from reslab.cli import main
from reslab.errors import CheckpointError, ConfigError
from reslab.protocols import Observer
from reslab.runs import RunFolder
from reslab.train import Interrupted, train

KEYS = ["test_acc", "test_loss", "best_val_acc", "final_train_loss", "confusion_matrix", "steps", "epochs"]


def _strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"{path.name} holds {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _interrupted_run(data_dir: Path, runs_dir: Path, step: int = 21, *extra: str) -> Path:
    with pytest.raises(Interrupted) as info:
        train(tiny_cfg(data_dir, runs_dir, *extra), observers=[SignalAt(step, signal.SIGINT)], progress=False)
    return info.value.run_dir


def test_a_run_stopped_before_its_summary_can_be_finished(data_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import reslab.train as trainer

    straight = train(tiny_cfg(data_dir, tmp_path / "a"), progress=False)
    real_finish = trainer._finish

    def stopped(*args: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C during the end phase, after the last epoch's last.pt

    monkeypatch.setattr(trainer, "_finish", stopped)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(data_dir, tmp_path / "b"), progress=False)
    (run,) = (tmp_path / "b").iterdir()
    assert not RunFolder(run).summary.exists() and _strict_json(RunFolder(run).status)["status"] == "interrupted"
    monkeypatch.setattr(trainer, "_finish", real_finish)
    finished = train(tiny_cfg(data_dir, tmp_path / "b"), resume=run, progress=False)
    assert {k: finished.summary[k] for k in KEYS} == {k: straight.summary[k] for k in KEYS}
    with pytest.raises(ConfigError, match="already finished"):
        train(tiny_cfg(data_dir, tmp_path / "b"), resume=run, progress=False)


def test_a_run_folder_is_locked_while_written(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _interrupted_run(data_dir, tmp_path)
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


def test_an_edited_config_is_refused_on_resume(data_dir: Path, tmp_path: Path) -> None:
    run = _interrupted_run(data_dir, tmp_path)
    text = RunFolder(run).config.read_text()
    RunFolder(run).config.write_text(text.replace("lr: 0.003", "lr: 0.1").replace("val_size: 100", "val_size: 50"))
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    with pytest.raises(ConfigError, match=r"differs .* in data\.val_size, optim\.lr"):
        train(tiny_cfg(data_dir, tmp_path, "optim.lr=0.1", "data.val_size=50"), resume=run, progress=False)
    more = train(tiny_cfg(data_dir, tmp_path, "train.epochs=4"), resume=run, progress=False)  # --epochs may change
    assert more.summary["epochs"] == 4


@pytest.mark.parametrize("damage", ["negative epoch", "text step", "optimizer"])
def test_a_crafted_checkpoint_is_one_line(data_dir: Path, tmp_path: Path, damage: str) -> None:
    run = _interrupted_run(data_dir, tmp_path)
    ckpt = runs.load_checkpoint(RunFolder(run).last)
    if damage == "negative epoch":
        ckpt["state"]["epoch"] = -3
    elif damage == "text step":
        ckpt["state"]["step"] = "21"
    else:
        ckpt["optimizer"]["param_groups"] = []
    runs.save_checkpoint(RunFolder(run).last, {k: v for k, v in ckpt.items() if k != "format"})
    with pytest.raises(CheckpointError):
        train(tiny_cfg(data_dir, tmp_path), resume=run, progress=False)


def test_a_second_signal_during_the_interrupt_checkpoint_waits_for_it(data_dir: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = RunFolder.save_checkpoint

    def signalled(self: RunFolder, which: str, state: dict) -> None:
        if which == "last" and state["state"]["step"] == 21:
            os.kill(os.getpid(), signal.SIGINT)  # the impatient second Ctrl-C, mid-write
        real(self, which, state)

    monkeypatch.setattr(RunFolder, "save_checkpoint", signalled)
    run = _interrupted_run(data_dir, tmp_path)
    assert runs.load_checkpoint(RunFolder(run).last)["state"]["step"] == 21
    assert _strict_json(RunFolder(run).status)["status"] == "interrupted"


def test_sighup_stops_like_sigterm_and_status_names_the_process(data_dir: Path, tmp_path: Path) -> None:
    status = {}

    class Peek(Observer):
        def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
            if step == 3:
                status.update(_strict_json(RunFolder(tmp_path / next(iter(os.listdir(tmp_path)))).status))

    with pytest.raises(Interrupted):
        train(tiny_cfg(data_dir, tmp_path), observers=[Peek(), SignalAt(21, signal.SIGHUP)], progress=False)
    assert status["status"] == "running" and status["pid"] == os.getpid() and status["host"]


class _Poison(Observer):
    """Turns a weight into NaN after `step`: the next losses are NaN, as when a too-large LR blows a net up."""

    def __init__(self, step: int) -> None:
        self.step, self.model = step, None

    def on_start(self, run_dir: Path, model: torch.nn.Module, cfg: object, start_step: int) -> None:
        self.model = model

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if step == self.step:
            with torch.no_grad():
                next(self.model.parameters()).fill_(math.nan)


def test_a_diverging_run_stops_and_is_recorded_as_diverged(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_cfg(data_dir, tmp_path, "train.log_every=5"), observers=[_Poison(7)], progress=False)
    folder = RunFolder(result.run_dir)
    summary = _strict_json(folder.summary)
    assert summary["status"] == "diverged" and summary["diverged_step"] == 10 and summary["test_acc"] is None
    assert _strict_json(folder.status)["status"] == "diverged" and _strict_json(folder.status)["step"] == 10
    assert result.summary["steps"] == 10 and not folder.last.exists()
    with pytest.raises(ConfigError, match="already finished|diverged"):
        train(tiny_cfg(data_dir, tmp_path), resume=result.run_dir, progress=False)


def test_the_cli_reports_divergence_in_one_line(data_dir: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from test_hardening import _Poison; import reslab.observers as o;"
            "real = o.default_observers; o.default_observers = lambda cfg: [*real(cfg), _Poison(3)];"
            "import reslab.train as t; t.default_observers = o.default_observers;"
            "from reslab.cli import main; sys.exit(main(sys.argv[2:]))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), "train", "seed-mlp", "--quiet",
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


def test_steps_csv_after_an_interrupt_equals_a_straight_run(data_dir: Path, tmp_path: Path) -> None:
    straight = train(tiny_cfg(data_dir, tmp_path / "a", "train.log_every=5"), progress=False)
    run = _interrupted_run(data_dir, tmp_path / "b", 21, "train.log_every=5")
    resumed = train(tiny_cfg(data_dir, tmp_path / "b", "train.log_every=5"), resume=run, progress=False)
    assert RunFolder(resumed.run_dir).steps.read_text() == RunFolder(straight.run_dir).steps.read_text()


def test_files_follow_the_umask_and_stale_temps_are_removed(data_dir: Path, tmp_path: Path) -> None:
    run = _interrupted_run(data_dir, tmp_path)
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


def test_checkpoint_messages_say_what_is_wrong(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _interrupted_run(data_dir, tmp_path)
    ckpt = runs.load_checkpoint(RunFolder(run).last)
    del ckpt["model"]["fc1.bias"]
    runs.save_checkpoint(RunFolder(run).last, {k: v for k, v in ckpt.items() if k != "format"})
    with pytest.raises(CheckpointError, match='Missing key.*"fc1.bias"'):
        train(tiny_cfg(data_dir, tmp_path), resume=run, progress=False)

    class Foreign:
        def __reduce__(self) -> tuple:
            return (print, ("a pickle that runs code",))

    torch.save({"x": Foreign()}, RunFolder(run).last)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is not a reslab checkpoint" in err and "weights_only" not in err and len(err.splitlines()) == 1


def test_gradflow_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["gradflow", str(tmp_path / "no-such-run"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gradflow", "seed-mlp", "--seed", "-1", "--quiet", "--device", "cpu"]) == 2
    assert "--seed must be" in capsys.readouterr().err


def _every_file_parses(run: Path) -> None:
    """Every record of a run folder reads back: strict JSON, YAML, CSV with complete rows, loadable checkpoints."""
    import yaml

    for path in run.iterdir():
        if path.suffix == ".json":
            _strict_json(path)
        elif path.suffix == ".yaml":
            assert isinstance(yaml.safe_load(path.read_text()), dict)
        elif path.suffix == ".csv":
            text = path.read_text()
            assert text.endswith("\n") and len(files.read_csv(path)) == text.count("\n") - 1, path.name
        elif path.suffix == ".pt":
            runs.load_checkpoint(path)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_reference_run(data_dir: Path, tmp_path: Path) -> None:
    """kill -9 at seeded random moments of the run (steps, checkpoint writes, the end phase); resume until done."""
    import random
    import time

    sets = ["data.val_size=100", "data.batch_size=32", "train.deterministic=true", "optim.lr=3e-3",
            "gradflow.every=3", "train.log_every=4", "train.epochs=6",
            "train.threads=1"]  # one thread in both processes: a thread count another test left behind cannot differ
    reference = train(tiny_cfg(data_dir, tmp_path / "ref", *sets), progress=False)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    first = [sys.executable, "-m", "reslab", "train", "seed-mlp", "--runs-dir", str(tmp_path / "k"), "--quiet",
             "--data-dir", str(data_dir), "--device", "cpu", *[a for kv in sets for a in ("--set", kv)]]
    rng, folder, kills, events = random.Random(7), None, 0, []
    for attempt in range(20):
        if folder is not None and folder.read_json(folder.status).get("status") == "finished":
            break  # killed after it finished (while closing): nothing left to resume
        argv = first if folder is None else [*first[:4], "--resume", str(folder.path), "--quiet"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if attempt < 8:  # wait until it trains, then kill at a random moment of what is left
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None:
                made = sorted((tmp_path / "k").glob("seed-mlp-*"))
                status = RunFolder(made[0]).read_json(RunFolder(made[0]).status) if made else {}
                if status.get("status") == "running" and status.get("pid") == proc.pid:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5))
            if proc.poll() is None:
                proc.kill()
                kills += 1
        out, err = proc.communicate()
        events.append(f"attempt {attempt}: exit {proc.returncode} {err.strip()[-300:]!r}")
        made = sorted((tmp_path / "k").glob("seed-mlp-*"))
        if folder is None and made:
            if RunFolder(made[0]).last.exists():
                folder = RunFolder(made[0])
            else:  # killed before its first checkpoint: a new run starts from scratch
                import shutil

                shutil.rmtree(made[0])
    assert folder is not None and _strict_json(folder.status)["status"] == "finished", events
    assert kills >= 1, events
    summary = _strict_json(folder.summary)
    for key in KEYS:
        assert summary[key] == reference.summary[key], (key, events)
    for name in ("steps", "metrics", "gradflow"):
        ours = files.read_csv(getattr(folder, name))
        theirs = files.read_csv(getattr(RunFolder(reference.run_dir), name))
        drop = {"seconds", "samples_per_s"}  # wall-clock columns
        assert [{k: v for k, v in r.items() if k not in drop} for r in ours] == [
            {k: v for k, v in r.items() if k not in drop} for r in theirs], (name, events)
    _every_file_parses(folder.path)


def test_a_run_killed_between_its_summary_and_its_status_can_be_finished(data_dir: Path, tmp_path: Path) -> None:
    done = train(tiny_cfg(data_dir, tmp_path), progress=False)
    folder = RunFolder(done.run_dir)
    files.write_json(folder.status, {"status": "running", "epoch": 3, "pid": 999999999, "host": "gone"})
    again = train(tiny_cfg(data_dir, tmp_path), resume=done.run_dir, progress=False)
    assert {k: again.summary[k] for k in KEYS} == {k: done.summary[k] for k in KEYS}
    assert _strict_json(folder.status)["status"] == "finished"


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
    assert _strict_json(RunFolder(run).status)["status"] == "failed"
