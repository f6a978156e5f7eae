"""Training until the loss stops improving (`train.until: plateau`): the rule, the early stop, the cap, resuming."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Callable

import pytest

from helpers.training import SignalAt, assert_same_run, tiny_cfg
from reslab.config import resolve
from reslab.errors import ConfigError
from reslab.state import plateaued
from reslab.train import Interrupted, train


def _rows(*losses: float) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "train_loss": loss} for i, loss in enumerate(losses)]


def test_the_plateau_rule_counts_epochs_since_the_best_loss_by_more_than_min_delta() -> None:
    assert not plateaued(_rows(), 1, 0.0)
    assert not plateaued(_rows(1.0), 1, 0.0)  # the first epoch is an improvement on nothing
    assert plateaued(_rows(1.0, 1.0), 1, 0.0)  # equal is not better
    assert not plateaued(_rows(1.0, 0.9, 0.95), 2, 0.0)  # one epoch since the best
    assert plateaued(_rows(1.0, 0.9, 0.95, 0.91), 2, 0.0)  # two epochs since the best (0.9)
    assert plateaued(_rows(1.0, 0.95, 0.92), 2, 0.1)  # fell, but by less than min_delta each time
    assert not plateaued(_rows(1.0, 0.95, 0.85), 2, 0.1)  # 0.85 beats the best (1.0) by more than 0.1


def test_defaults_keep_fixed_epochs_and_the_options_are_checked(data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(data_dir, tmp_path)
    assert (cfg.train.until, cfg.train.patience, cfg.train.min_delta) == ("epochs", 3, 0.0)
    with pytest.raises(ConfigError, match="train.patience"):
        resolve("seed-mlp", ["train.patience=0"])
    with pytest.raises(ConfigError, match="train.min_delta"):
        resolve("seed-mlp", ["train.min_delta=-1"])
    with pytest.raises(ConfigError, match="until"):
        resolve("seed-mlp", ["train.until=forever"])


def test_a_run_on_a_synthetic_plateau_stops_early(data_dir: Path, tmp_path: Path) -> None:
    # no epoch can beat the best by 100: after the first, every epoch counts towards the patience of 2
    cfg = tiny_cfg(data_dir, tmp_path, "train.epochs=10", "train.until=plateau", "train.patience=2",
                   "train.min_delta=100")
    result = train(cfg, progress=False)
    assert result.summary["stopped"] == "plateau" and result.summary["epochs"] == 3 and len(result.history) == 3
    assert result.summary["status"] == "finished" and result.summary["test_acc"] is not None
    with pytest.raises(ConfigError, match="plateau"):  # finished on a plateau: resuming would stop again at once
        train(cfg, resume=result.run_dir, progress=False)


def test_a_run_that_keeps_improving_stops_at_the_cap(data_dir: Path, tmp_path: Path, straight_run: Callable) -> None:
    cfg = tiny_cfg(data_dir, tmp_path, "train.until=plateau", "train.patience=5")
    result = train(cfg, progress=False)
    assert result.summary["stopped"] == "cap" and result.summary["epochs"] == cfg.train.epochs == 3
    plain = json.loads((straight_run() / "summary.json").read_text())
    assert "stopped" not in plain  # a fixed-epoch run's summary is as it was


def test_a_plateau_run_resumed_mid_epoch_stops_where_the_straight_run_stops(
        data_dir: Path, tmp_path: Path, straight_run: Callable) -> None:
    extra = ("train.epochs=10", "train.until=plateau", "train.patience=2", "train.min_delta=100")
    straight = straight_run(*extra)
    cfg = tiny_cfg(data_dir, tmp_path, *extra)
    with pytest.raises(Interrupted) as info:
        train(cfg, observers=[SignalAt(16 * 2 + 5, signal.SIGINT)], progress=False)  # mid-way through epoch 3
    resumed = train(cfg, resume=info.value.run_dir, progress=False)
    assert resumed.summary["stopped"] == "plateau" and resumed.summary["epochs"] == 3
    assert_same_run(info.value.run_dir, straight)
