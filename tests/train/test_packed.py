"""Packed training (reslab.train_packed): runs of one MLP form trained as one write what separate runs write, to
float tolerance; a stopped pack resumes (as a pack, exactly; or alone); a run that diverges leaves the others be;
what cannot pack trains alone."""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers.training import WALL_CLOCK, SignalAt, assert_same_run, strict_json, tiny_cfg
from reslab import files
from reslab.config import to_dict
from reslab.errors import ConfigError
from reslab.models.packed_direct import DirectPackedMLP
from reslab.runs import RunFolder, load_checkpoint
from reslab.status import RunStatus
from reslab.sweep.backends import Task
from reslab.sweep.packing import units
from reslab.train import Interrupted, RunResult, train
from reslab.train_packed import train_pack

# 2 epochs of 16 steps; gradflow records steps 1, 8, 15, ...: those steps run through each run's own module
EXTRA = ("model.width=8", "model.depth=2", "model.layers_per_block=2", "gradflow.every=7", "train.log_every=5",
         "train.epochs=2", "train.threads=1")
RUNS = [("0", "false"), ("1", "false"), ("2", "false"), ("0", "true")]  # three seeds and a residual twin
RECORDS = ("metrics", "steps", "gradflow")


def _cfgs(data_dir: Path, runs_dir: Path, *extra: str) -> list:
    return [tiny_cfg(data_dir, runs_dir, *EXTRA, f"train.seed={seed}", f"model.residual={residual}", *extra,
                     preset="plain-mlp8") for seed, residual in RUNS]


@pytest.fixture(scope="module")
def separate(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    runs = tmp_path_factory.mktemp("separate")
    return [train(cfg, progress=False).run_dir for cfg in _cfgs(data_dir, runs)]


@pytest.fixture(scope="module")
def packed(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    results = train_pack(_cfgs(data_dir, tmp_path_factory.mktemp("packed")))
    assert all(isinstance(r, RunResult) for r in results), results
    return [r.run_dir for r in results]


def _close(a: Any, b: Any, where: str) -> None:
    """Equal, numbers to float tolerance (CSV cells are text; gradflow's have 6 significant digits)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a, b, rtol=1e-4, atol=1e-6), where
    else:
        try:
            x, y = float(a), float(b)
        except (TypeError, ValueError):
            assert a == b, where
        else:
            assert math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6) or (math.isnan(x) and math.isnan(y)), (where, a, b)


def _same_folder(run: Path, reference: Path) -> None:
    mine, theirs = RunFolder(run), RunFolder(reference)
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in reference.iterdir())
    for name in RECORDS:
        rows = [[{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in files.read_csv(getattr(f, name))]
                for f in (mine, theirs)]
        assert rows[0], name
        _close(rows[0], rows[1], name)
    ours, straight = strict_json(mine.summary), strict_json(theirs.summary)
    _close({k: v for k, v in ours.items() if k not in ("train_seconds", "samples_per_s")},
           {k: v for k, v in straight.items() if k not in ("train_seconds", "samples_per_s")}, "summary")
    for which in ("last", "best"):
        a, b = load_checkpoint(mine.checkpoint(which)), load_checkpoint(theirs.checkpoint(which))
        a["config"].pop("runs_dir"), b["config"].pop("runs_dir")  # the tests' two folders
        if which == "last":
            for row in [*a["state"]["history"], *b["state"]["history"]]:
                for key in WALL_CLOCK:
                    row.pop(key)
            for state in (a["state"], b["state"]):
                state.pop("train_seconds")
        _close(a, b, which)


@pytest.mark.parametrize("run", range(len(RUNS)))
def test_a_packed_run_writes_what_a_separate_run_writes(separate: list[Path], packed: list[Path], run: int) -> None:
    """Metrics, steps, gradient flow, summary and both checkpoints (weights, optimizer state, RNG, observers)."""
    _same_folder(packed[run], separate[run])


def test_a_stopped_pack_resumes_as_a_pack_or_alone(packed: list[Path], data_dir: Path, tmp_path: Path) -> None:
    """A stop reaches every run of the pack, each checkpoints its exact position; resumed as a pack they end
    exactly as the straight pack, resumed alone to float tolerance."""
    cfgs = _cfgs(data_dir, tmp_path)
    stopped = train_pack(cfgs, [[SignalAt(21, signal.SIGINT)], [], [], []])
    assert all(isinstance(r, Interrupted) for r in stopped), stopped
    folders = [r.run_dir for r in stopped]
    assert {load_checkpoint(RunFolder(f).last)["state"]["step"] for f in folders} == {21}
    resumed = train_pack(cfgs[:3], resume=folders[:3])
    for result, reference in zip(resumed, packed):
        assert isinstance(result, RunResult)
        assert_same_run(result.run_dir, reference, records=RECORDS)
    alone = train(cfgs[3], resume=folders[3], progress=False)
    _same_folder(alone.run_dir, packed[3])


def test_a_diverging_run_leaves_the_others_be(packed: list[Path], data_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Run 1's logits turn NaN at step 10: it ends diverged (summary and status say so), the others end exactly as
    in the pack without it."""
    forward, calls = DirectPackedMLP.forward, []  # these runs' plain form packs directly (packed_direct)

    def poisoned(self: DirectPackedMLP, x: torch.Tensor) -> torch.Tensor:
        out = forward(self, x)
        calls.append(1)
        return out.index_fill(0, torch.tensor([1]), math.nan) if len(calls) == 8 else out  # step 10 (1 and 8: unpacked)

    monkeypatch.setattr(DirectPackedMLP, "forward", poisoned)
    results = train_pack(_cfgs(data_dir, tmp_path))
    assert all(isinstance(r, RunResult) for r in results), results
    diverged = RunFolder(results[1].run_dir)
    assert results[1].summary["status"] == RunStatus.DIVERGED and results[1].summary["diverged_step"] == 10
    assert RunFolder(diverged.path).run_status() is RunStatus.DIVERGED and not diverged.last.exists()
    for i in (0, 2, 3):
        assert results[i].summary["status"] == RunStatus.FINISHED
        assert_same_run(results[i].run_dir, packed[i], records=RECORDS)


def test_what_cannot_pack_trains_alone(data_dir: Path, tmp_path: Path) -> None:
    """Another norm, another model, another setting or another position: a unit of its own; packs keep task
    order."""
    def task(key: str, *extra: str, preset: str = "plain-mlp8", resume: str | None = None) -> Task:
        cfg = tiny_cfg(data_dir, tmp_path, *(EXTRA if preset == "plain-mlp8" else ()), *extra, preset=preset)
        return Task(key, to_dict(cfg), resume)

    tasks = [task("a"), task("bn", "model.norm=batch"), task("b", "train.seed=1", "model.init=he"),
             task("conv", preset="seed-cnn"), task("lr", "optim.lr=0.1"), task("c", "model.residual=true"),
             task("lr2", "optim.lr=0.1", "train.seed=3"), task("bn2", "model.norm=batch", "train.seed=2")]
    assert [[t.key for t in unit] for unit in units(tasks)] == [["a", "b", "c"], ["bn", "bn2"], ["conv"],
                                                                 ["lr", "lr2"]]
    assert [len(unit) for unit in units(tasks, max_pack=2)] == [2, 1, 2, 1, 2]
    with pytest.raises(ConfigError, match="does not pack"):
        train_pack([tiny_cfg(data_dir, tmp_path, preset="seed-cnn")])
    with pytest.raises(ConfigError, match="differ in optim.lr"):
        train_pack(_cfgs(data_dir, tmp_path)[:1] + _cfgs(data_dir, tmp_path, "optim.lr=0.1")[:1])


def test_each_run_of_a_pack_stops_on_its_own_plateau(data_dir: Path, tmp_path: Path) -> None:
    """train.until=plateau: a run of a pack ends at its plateau, as it would alone (min_delta so large that no epoch
    after the first counts as an improvement: every run stops after epoch 2 of the cap of 4)."""
    plateau = ("train.epochs=4", "train.until=plateau", "train.patience=1", "train.min_delta=100")
    alone = [train(cfg, progress=False).run_dir for cfg in _cfgs(data_dir, tmp_path / "alone", *plateau)[:2]]
    results = train_pack(_cfgs(data_dir, tmp_path / "packed", *plateau)[:2])
    assert all(isinstance(r, RunResult) for r in results), results
    for result, reference in zip(results, alone):
        summary = strict_json(RunFolder(result.run_dir).summary)
        assert summary["stopped"] == "plateau" and summary["epochs"] == 2, summary
        _same_folder(result.run_dir, reference)


def test_transfer_settings_do_not_pack(data_dir: Path, tmp_path: Path) -> None:
    """The packed loop has no frozen stages, head LR, source weights or teacher: such runs train alone."""
    for extra in ("train.freeze=all-but-head", "optim.head_lr=0.01"):
        with pytest.raises(ConfigError, match="do not pack"):
            train_pack(_cfgs(data_dir, tmp_path, extra)[:2])


def test_batch_norm_runs_of_a_pack_write_what_separate_runs_write(data_dir: Path, tmp_path: Path) -> None:
    """Batch-norm MLPs (twins, two seeds) pack: each run's batch statistics and running statistics are its own, so
    metrics, steps, gradient flow (its steps run through each run's own module), summary and both checkpoints
    (running statistics included) equal separate runs'."""
    cfgs = [tiny_cfg(data_dir, tmp_path / where, *EXTRA, "model.norm=batch", f"train.seed={seed}",
                     f"model.residual={residual}", preset="plain-mlp8")
            for where in ("alone", "packed") for seed, residual in (("0", "false"), ("1", "true"))]
    alone = [train(cfg, progress=False).run_dir for cfg in cfgs[:2]]
    results = train_pack(cfgs[2:])
    assert all(isinstance(r, RunResult) for r in results), results
    for result, reference in zip(results, alone):
        _same_folder(result.run_dir, reference)
        running = load_checkpoint(RunFolder(result.run_dir).last)["model"]
        assert any("running_var" in k for k in running), sorted(running)
