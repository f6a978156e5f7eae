"""Stopping and resuming a run: a resumed, killed or re-finished run ends as its straight-through reference (the
shared `straight_run` fixture, compared by helpers.training.assert_same_run); what cannot be resumed is refused
in one line."""

from __future__ import annotations

import json
import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

from helpers.fakedata import write_mnist
from helpers.training import SUMMARY_KEYS, SignalAt, assert_same_run, interrupted_run, strict_json, tiny_cfg
from reslab import files, runs
from reslab.cli import main
from reslab.config import resolve
from reslab.errors import CheckpointError, ConfigError
from reslab.protocols import Observer
from reslab.runs import RunFolder
from reslab.train import Interrupted, train

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pre-refactor-run"


@pytest.mark.parametrize("preset, extra", [("seed-mlp", ()),
                                           ("resnet20", ("model.depth=8", "data.augment=true", "data.dataset=mnist"))])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_and_resumed_equals_straight_through(data_dir: Path, tmp_path: Path, straight_run: Callable,
                                                         sig: int, preset: str, extra: tuple[str, ...]) -> None:
    if preset == "resnet20" and sig == signal.SIGTERM:
        pytest.skip("one signal is enough for the conv net")
    cfg = tiny_cfg(data_dir, tmp_path, *extra, preset=preset)
    straight = straight_run(*extra, preset=preset)
    with pytest.raises(Interrupted) as info:
        train(cfg, observers=[SignalAt(16 + 5, sig)], progress=False)  # mid-way through epoch 2
    run = info.value.run_dir
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert runs.load_checkpoint(run / "last.pt")["state"]["step"] == 21
    assert signal.getsignal(sig) is not None and len(list(csv.DictReader(open(run / "metrics.csv")))) == 1
    resumed = train(cfg, resume=run, progress=False)
    assert resumed.run_dir == run
    assert_same_run(run, straight)  # the summary, and every epoch's and logged step's record



def test_a_second_ctrl_c_leaves_the_run_marked_interrupted(data_dir: Path, tmp_path: Path) -> None:
    class SecondSignal(Observer):
        def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
            if step == 5:
                raise KeyboardInterrupt  # what the signal handler raises on a second Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(data_dir, tmp_path), observers=[SecondSignal()], progress=False)
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"


def test_a_checkpoint_from_before_the_refactor_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run interrupted at step 21 by the code of commit b53325f finishes with that code's straight-run numbers.

    The fixture's config has data.data_dir null: it reads $RESLAB_DATA, here the same generated MNIST files.
    """
    import shutil

    monkeypatch.setenv("RESLAB_DATA", str(write_mnist(tmp_path / "data")))
    run = shutil.copytree(FIXTURE, tmp_path / "run")
    assert runs.load_checkpoint(run / "last.pt")["state"]["step"] == 21
    cfg = resolve(str(run / "config.yaml"))
    resumed = train(cfg, resume=run, progress=False)
    expected = json.loads((FIXTURE.parent / "pre-refactor-run.expected.json").read_text())
    for key, value in expected.items():
        assert resumed.summary[key] == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value), key
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


def test_a_run_stopped_before_its_summary_can_be_finished(data_dir: Path, tmp_path: Path, straight_run: Callable,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import reslab.train as trainer

    straight = straight_run()  # before train is patched
    real_finish = trainer.finish

    def stopped(*args: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C during the end phase, after the last epoch's last.pt

    monkeypatch.setattr(trainer, "finish", stopped)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(data_dir, tmp_path / "b"), progress=False)
    (run,) = (tmp_path / "b").iterdir()
    assert not RunFolder(run).summary.exists() and strict_json(RunFolder(run).status)["status"] == "interrupted"
    monkeypatch.setattr(trainer, "finish", real_finish)
    finished = train(tiny_cfg(data_dir, tmp_path / "b"), resume=run, progress=False)
    assert_same_run(finished.run_dir, straight)  # steps.csv too: the restored window's last row is kept (issue 19.4)
    with pytest.raises(ConfigError, match="already finished"):
        train(tiny_cfg(data_dir, tmp_path / "b"), resume=run, progress=False)


def test_an_edited_config_is_refused_on_resume(data_dir: Path, tmp_path: Path) -> None:
    run = interrupted_run(data_dir, tmp_path)
    text = RunFolder(run).config.read_text()
    RunFolder(run).config.write_text(text.replace("lr: 0.003", "lr: 0.1").replace("val_size: 100", "val_size: 50"))
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    with pytest.raises(ConfigError, match=r"differs .* in data\.val_size, optim\.lr"):
        train(tiny_cfg(data_dir, tmp_path, "optim.lr=0.1", "data.val_size=50"), resume=run, progress=False)
    more = train(tiny_cfg(data_dir, tmp_path, "train.epochs=4"), resume=run, progress=False)  # --epochs may change
    assert more.summary["epochs"] == 4


@pytest.mark.parametrize("damage", ["negative epoch", "text step", "optimizer"])
def test_a_crafted_checkpoint_is_one_line(data_dir: Path, tmp_path: Path, damage: str) -> None:
    run = interrupted_run(data_dir, tmp_path)
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
    run = interrupted_run(data_dir, tmp_path)
    assert runs.load_checkpoint(RunFolder(run).last)["state"]["step"] == 21
    assert strict_json(RunFolder(run).status)["status"] == "interrupted"


def test_sighup_stops_like_sigterm_and_status_names_the_process(data_dir: Path, tmp_path: Path) -> None:
    status = {}

    class Peek(Observer):
        def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
            if step == 3:
                status.update(strict_json(RunFolder(tmp_path / next(iter(os.listdir(tmp_path)))).status))

    with pytest.raises(Interrupted):
        train(tiny_cfg(data_dir, tmp_path), observers=[Peek(), SignalAt(21, signal.SIGHUP)], progress=False)
    assert status["status"] == "running" and status["pid"] == os.getpid() and status["host"]


def test_steps_csv_after_an_interrupt_equals_a_straight_run(data_dir: Path, tmp_path: Path, straight_run: Callable) -> None:
    straight = straight_run("train.log_every=5")
    run = interrupted_run(data_dir, tmp_path / "b", 21, "train.log_every=5")
    resumed = train(tiny_cfg(data_dir, tmp_path / "b", "train.log_every=5"), resume=run, progress=False)
    assert RunFolder(resumed.run_dir).steps.read_text() == RunFolder(straight).steps.read_text()
    assert_same_run(resumed.run_dir, straight)


def test_checkpoint_messages_say_what_is_wrong(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = interrupted_run(data_dir, tmp_path)
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


def test_a_run_killed_between_its_summary_and_its_status_can_be_finished(data_dir: Path, tmp_path: Path,
                                                                         straight_run: Callable) -> None:
    done = train(tiny_cfg(data_dir, tmp_path), progress=False)
    folder = RunFolder(done.run_dir)
    files.write_json(folder.status, {"status": "running", "epoch": 3, "pid": 999999999, "host": "gone"})
    again = train(tiny_cfg(data_dir, tmp_path), resume=done.run_dir, progress=False)
    assert {k: again.summary[k] for k in SUMMARY_KEYS} == {k: done.summary[k] for k in SUMMARY_KEYS}
    assert strict_json(folder.status)["status"] == "finished"
    assert_same_run(done.run_dir, straight_run())


def _every_file_parses(run: Path) -> None:
    """Every record of a run folder reads back: strict JSON, YAML, CSV with complete rows, loadable checkpoints."""
    import yaml

    for path in run.iterdir():
        if path.suffix == ".json":
            strict_json(path)
        elif path.suffix == ".yaml":
            assert isinstance(yaml.safe_load(path.read_text()), dict)
        elif path.suffix == ".csv":
            text = path.read_text()
            assert text.endswith("\n") and len(files.read_csv(path)) == text.count("\n") - 1, path.name
        elif path.suffix == ".pt":
            runs.load_checkpoint(path)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_reference_run(data_dir: Path, tmp_path: Path,
                                                                      straight_run: Callable) -> None:
    """kill -9 at seeded random moments of the run (steps, checkpoint writes, the end phase); resume until done."""
    import random
    import time

    extra = ("gradflow.every=3", "train.log_every=4", "train.epochs=6",
             "train.threads=1")  # one thread in both processes: a thread count another test left behind cannot differ
    reference = straight_run(*extra)
    sets = ["data.val_size=100", "data.batch_size=32", "train.deterministic=true", "optim.lr=3e-3", *extra]
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
    assert folder is not None and strict_json(folder.status)["status"] == "finished", events
    assert kills >= 1, events
    assert_same_run(folder.path, reference, records=("steps", "metrics", "gradflow"), note=events)
    _every_file_parses(folder.path)
