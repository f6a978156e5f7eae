"""One run on several processes: two CPU ranks on gloo train what one process does with the same global batch.

The runs use 199 training images in global batches of 32, so every epoch ends with a batch of 7 that the
two ranks split 4 + 3: the case where averaging the ranks' mean losses would be wrong.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

import reslab
from helpers.training import SignalAt, tiny_cfg
from reslab import runs
from reslab.cli import main
from reslab.config import from_dict, to_dict
from reslab.data import DeviceLoader
from reslab.data.loader import Augment
from reslab.distributed import Launch, launch_from_env
from reslab.errors import ConfigError
from reslab.train import Interrupted, train

SETTINGS = ("data.train_size=199", "train.epochs=2", "train.log_every=3", "train.threads=1")
SOURCE_ROOT = Path(reslab.__file__).resolve().parents[1]  # the reslab the subprocesses must import


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return runs.load_checkpoint(run / "last.pt")["model"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _assert_same_training(run: Path, single: Path) -> None:
    """Weights, the epoch rows and the per-step losses of `run` match the single process's `single`."""
    mine, theirs = _weights(run), _weights(single)
    assert list(mine) == list(theirs)  # the unwrapped module's keys: no "module." prefix
    for key in theirs:
        torch.testing.assert_close(mine[key], theirs[key], atol=1e-5, rtol=0, msg=key)
    for name, columns in (("metrics.csv", ("step", "train_loss", "train_acc", "val_loss", "val_acc")),
                          ("steps.csv", ("step", "train_loss"))):
        rows, expected = _rows(run / name), _rows(single / name)
        assert len(rows) == len(expected) > 1, name
        for row, want in zip(rows, expected):
            assert [float(row[c]) for c in columns] == pytest.approx([float(want[c]) for c in columns], rel=1e-5,
                                                                     abs=1e-6), name


@pytest.mark.slow
def test_torchrun_on_two_cpu_processes_matches_one_process(data_dir: Path, tmp_path: Path,
                                                           straight_run: Callable) -> None:
    single = straight_run(*SETTINGS)  # the one-process reference, shared
    single_summary = json.loads((single / "summary.json").read_text())
    sets = [arg for setting in (*SETTINGS, "data.val_size=100", "data.batch_size=32", "train.deterministic=true",
                                "optim.lr=3e-3") for arg in ("--set", setting)]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "reslab", "train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir",
                           str(tmp_path / "ddp"), "--device", "cpu", "--quiet", *sets],
                          capture_output=True, text=True, env=_env(), cwd=SOURCE_ROOT, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = list((tmp_path / "ddp").iterdir())
    assert len(folders) == 1  # rank 0 alone made a run folder, and printed it: the only line on stdout
    run = folders[0]
    assert proc.stdout.splitlines() == [str(run)]
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in single.iterdir())
    _assert_same_training(run, single)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["confusion_matrix"] == single_summary["confusion_matrix"]  # the sharded test set, summed
    assert summary["test_loss"] == pytest.approx(single_summary["test_loss"], rel=1e-5)
    env = json.loads((run / "env.json").read_text())
    assert env["world_size"] == 2 and env["backend"] == "gloo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, ports: tuple[int, int], cfg_values: dict, stop_at: int, out: str) -> None:
    """One rank, as torchrun would start it: a run stopped by rank 0's SIGTERM, then resumed (a new process
    group on a second port); writes what became of both to out/rank<r>.json."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(ports[0])
    cfg = from_dict(cfg_values)
    try:
        train(cfg, [SignalAt(stop_at, signal.SIGTERM)], progress=False)  # observers run on rank 0 alone
        outcome: dict = {"first": "finished"}
    except Interrupted as exc:
        outcome = {"first": "interrupted", "run_dir": str(exc.run_dir)}
        if rank == 0:  # the others wait for rank 0 before the resumed run writes anything
            outcome["status"] = json.loads((exc.run_dir / "status.json").read_text())["status"]
            outcome["saved"] = runs.load_checkpoint(exc.run_dir / "last.pt")["state"]
            outcome["saved"]["running"] = {"seen": outcome["saved"]["running"]["seen"]}
        os.environ["MASTER_PORT"] = str(ports[1])
        result = train(cfg, resume=exc.run_dir, progress=False)
        outcome.update(second=result.summary["status"], resumed_dir=str(result.run_dir),
                       test_acc=result.summary["test_acc"])
    Path(out, f"rank{rank}.json").write_text(json.dumps(outcome, default=str))


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_both_and_resume_continues_exactly(data_dir: Path, tmp_path: Path,
                                                                       straight_run: Callable) -> None:
    cfg = tiny_cfg(data_dir, tmp_path / "ddp", *SETTINGS)
    context = torch.multiprocessing.start_processes(  # rank 0's SIGTERM comes mid-way through epoch 2
        _rank, args=((_free_port(), _free_port()), to_dict(cfg), 7 + 3, str(tmp_path)), nprocs=2, join=False,
        start_method="spawn")
    single = straight_run(*SETTINGS)  # the one-process reference, shared
    single_summary = json.loads((single / "summary.json").read_text())
    deadline = time.monotonic() + 180
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("a rank hung")
    first, other = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    run = Path(first["run_dir"])
    assert first["first"] == other["first"] == "interrupted" and other["run_dir"] == str(run)
    assert first["status"] == "interrupted"
    saved = first["saved"]
    assert (saved["step"], saved["batch"]) == (11, 4)  # both ranks agreed to stop one step after the signal
    assert saved["running"]["seen"] == 4 * 32  # the open epoch's sums over both ranks
    assert first["second"] == other["second"] == "finished" and first["resumed_dir"] == other["resumed_dir"] == str(run)
    assert first["test_acc"] == other["test_acc"] == single_summary["test_acc"]
    assert list(tmp_path.joinpath("ddp").iterdir()) == [run]
    _assert_same_training(run, single)


def _cli_as_rank_zero(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv: list[str]) -> tuple:
    """The CLI's exit code and stderr lines in a process that torchrun would have started as rank 0 of two."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("setting, message", [
    ("data.batch_size=33", "data.batch_size 33 (the global batch) does not divide among 2 processes; use a "
                           "multiple of 2"),
    ("train.sync_bn=on", "train.sync_bn=on needs CUDA"),
])
def test_a_config_that_cannot_run_on_the_ranks_is_one_line(data_dir: Path, tmp_path: Path, setting: str,
                                                           message: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    code, lines = _cli_as_rank_zero(monkeypatch, capsys, [
        "train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir", str(tmp_path / "runs"), "--device", "cpu",
        "--set", setting])
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"reslab: error: {message}")
    assert not (tmp_path / "runs").exists()


def test_launch_from_env() -> None:
    assert launch_from_env({}) is None
    assert launch_from_env({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}) is None  # a world of one: plain
    assert launch_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == Launch(3, 1, 4)
    for bad in ({"RANK": "4", "LOCAL_RANK": "0", "WORLD_SIZE": "4"}, {"RANK": "x", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}):
        with pytest.raises(ConfigError):
            launch_from_env(bad)


@pytest.mark.parametrize("n, world", [(23, 2), (23, 3), (25, 2), (24, 4)])
def test_the_ranks_shards_make_up_each_batch(n: int, world: int) -> None:
    """Shards of every batch, augmentation included, concatenate to the one-process batch; 25 = 4 x 6 + 1
    leaves rank 1 an empty part of the last batch."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=gen)
    labels = torch.arange(n)
    common = dict(batch_size=6, mean=[0.5], std=[0.25], device="cpu", shuffle=True, seed=3,
                  augment=Augment(crop_padding=2, hflip=True))
    whole = list(DeviceLoader(images, labels, **common).batches(1))
    shards = [list(DeviceLoader(images, labels, shard=(r, world), **common).batches(1)) for r in range(world)]
    loader = DeviceLoader(images, labels, **common)
    assert [loader.full_size(i) for i in range(1, len(loader))] == [len(y) for _, y in whole]
    for i, (x, y) in enumerate(whole):
        parts = [rank_batches[i] for rank_batches in shards]
        assert max(len(py) for _, py in parts) - min(len(py) for _, py in parts) <= 1
        assert torch.equal(torch.cat([px for px, _ in parts]), x) and torch.equal(torch.cat([py for _, py in parts]), y)
