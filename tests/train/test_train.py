"""End-to-end training on tiny data in the official formats: run records, resume, determinism, schedules."""

from __future__ import annotations

import csv
import json
import math
import signal
from pathlib import Path
from typing import Callable

import pytest
import torch

from helpers.figures import assert_png
from helpers.training import Poison, strict_json, tiny_cfg
from reslab import runs
from reslab.config import OptimConfig, from_dict
from reslab.data import load_dataset
from reslab.models import build_model
from reslab.errors import ConfigError
from reslab.evaluate import evaluate
from reslab.optim import lr_at
from reslab.protocols import Observer
from reslab.runs import RunFolder
from reslab.train import train

METRIC_KEYS = ["test_acc", "test_loss", "best_val_acc", "best_epoch", "epochs", "params", "final_train_loss",
               "final_train_acc", "final_val_acc", "confusion_matrix", "test_f1", "steps"]


def test_run_folder_is_complete(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_cfg(data_dir, tmp_path), progress=False)
    run = result.run_dir
    assert run.parent == tmp_path and run.name.startswith("seed-mlp-")
    for name in ("config.yaml", "env.json", "metrics.csv", "summary.json", "classification_report.txt",
                 "curves.png", "last.pt", "best.pt", "status.json"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert list(rows[0]) == runs.METRICS_FIELDS and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert int(rows[-1]["step"]) == 3 * 16  # 500 training images / 32, rounded up
    summary = json.loads((run / "summary.json").read_text())
    for key in ("test_acc", "test_loss", "best_val_acc", "best_epoch", "epochs", "params", "train_seconds",
                "samples_per_s", "final_train_loss"):
        assert key in summary
    assert summary["epochs"] == 3 and summary["params"] == sum(p.numel() for p in
                                                               build_model("seed-mlp", input_shape=(1, 28, 28),
                                                                           num_classes=10).parameters())
    assert summary["best_val_acc"] == max(float(r["val_acc"]) for r in rows)
    assert summary["final_train_loss"] == pytest.approx(float(rows[-1]["train_loss"]))
    assert summary["test_acc"] > 0.5, "the tiny data set is easy: the run should learn it"
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


def test_test_metrics_match_an_independent_evaluation(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_cfg(data_dir, tmp_path), progress=False)
    from sklearn.metrics import accuracy_score, classification_report, log_loss

    data = load_dataset("mnist", data_dir)
    model = build_model("seed-mlp", input_shape=(1, 28, 28), num_classes=10, width=16, depth=2)
    model.load_state_dict(runs.load_checkpoint(result.run_dir / "last.pt")["model"])
    model.eval()
    x = (data.test_x.float() / 255 - 0.1307) / 0.3081
    with torch.no_grad():
        logits = model(x)
    preds = logits.argmax(1).numpy()
    assert result.summary["test_acc"] == pytest.approx(accuracy_score(data.test_y.numpy(), preds))
    assert result.summary["test_loss"] == pytest.approx(
        log_loss(data.test_y.numpy(), torch.softmax(logits.double(), 1).numpy(), labels=list(range(10))), rel=1e-4)
    report = (result.run_dir / "classification_report.txt").read_text()
    assert report == classification_report(data.test_y.numpy(), preds, labels=sorted(set(data.test_y.tolist())
                                           | set(preds.tolist())),
                                           target_names=[data.classes[i] for i in sorted(set(data.test_y.tolist())
                                                                                         | set(preds.tolist()))],
                                           zero_division=0, digits=3)


def test_same_seed_repeats_bit_for_bit(data_dir: Path, tmp_path: Path) -> None:
    a = train(tiny_cfg(data_dir, tmp_path, "train.epochs=2"), progress=False)
    b = train(tiny_cfg(data_dir, tmp_path, "train.epochs=2"), progress=False)
    c = train(tiny_cfg(data_dir, tmp_path, "train.epochs=2", "train.seed=1"), progress=False)
    assert a.run_dir != b.run_dir
    assert {k: a.summary[k] for k in METRIC_KEYS} == {k: b.summary[k] for k in METRIC_KEYS}
    assert a.summary["final_train_loss"] != c.summary["final_train_loss"]


def test_signal_handlers_are_restored(data_dir: Path, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    train(tiny_cfg(data_dir, tmp_path, "train.epochs=1"), progress=False)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_no_validation_set(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_cfg(data_dir, tmp_path, "data.val_size=0", "train.epochs=1"), progress=False)
    assert result.summary["best_val_acc"] is None and not (result.run_dir / "best.pt").exists()
    assert_png(result.run_dir / "curves.png")


def _cosine(start: float, end: float, t: float) -> float:
    """Half a cosine from `start` (t = 0) to `end` (t = 1)."""
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


# 2 epochs of 16 steps at lr 3e-3; `expected(s)` is the LR of 0-based step s, written from the schedules'
# definitions (not from reslab.optim), and the checkpoint's optimizer shows the optimizer's own settings
SCHEDULES = [
    (("optim.name=sgd", "optim.schedule=step", "optim.milestones=[1]"),  # /10 from epoch 1 on
     lambda s: 3e-3 if s < 16 else 3e-4, {"momentum": 0.9, "nesterov": False}, "momentum_buffer"),
    (("optim.name=adamw", "optim.schedule=cosine", "optim.warmup_epochs=1"),  # linear ramp over epoch 0, then cosine to 0
     lambda s: 3e-3 * (s + 1) / 16 if s < 16 else _cosine(3e-3, 0.0, (s - 16) / 16), {"weight_decay": 0.0}, "exp_avg"),
    (("optim.schedule=onecycle", "optim.grad_clip=1.0", "optim.label_smoothing=0.1"),  # up over 30%, then down
     lambda s: _cosine(3e-3 / 25, 3e-3, (s / 32) / 0.3) if s / 32 < 0.3 else _cosine(3e-3, 3e-3 * 1e-4,
                                                                                      (s / 32 - 0.3) / 0.7),
     {}, "exp_avg"),
    (("optim.name=sgd", "optim.nesterov=true", "optim.weight_decay=1e-4"),  # the default schedule: constant
     lambda s: 3e-3, {"nesterov": True, "weight_decay": 1e-4}, "momentum_buffer"),
]


@pytest.mark.parametrize("extra, expected, group, state_key", SCHEDULES)
def test_optimizers_and_schedules_train(data_dir: Path, tmp_path: Path, extra: tuple[str, ...],
                                        expected: Callable[[int], float], group: dict, state_key: str) -> None:
    seen: dict[int, float] = {}

    class Lrs(Observer):
        def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
            seen[step] = lr

    result = train(tiny_cfg(data_dir, tmp_path, "train.epochs=2", "train.log_every=1", *extra), observers=[Lrs()],
                   progress=False)
    assert all(torch.isfinite(torch.tensor(v)) for v in (result.summary["test_loss"],
                                                          result.summary["final_train_loss"]))
    assert sorted(seen) == list(range(1, 33))  # on_step gets the 1-based step and the LR it trained with
    assert [seen[s + 1] for s in range(32)] == pytest.approx([expected(s) for s in range(32)], rel=1e-9)
    recorded = [float(r["lr"]) for r in csv.DictReader(open(result.run_dir / "steps.csv"))]
    assert recorded == pytest.approx([expected(s) for s in range(32)], rel=1e-5)  # steps.csv, every step
    optimizer = runs.load_checkpoint(result.run_dir / "last.pt")["optimizer"]
    assert {k: optimizer["param_groups"][0][k] for k in group} == group
    assert all(state_key in state for state in optimizer["state"].values()), list(optimizer["state"].values())[0]


def test_lr_is_a_pure_function_of_the_step() -> None:
    he = OptimConfig(name="sgd", lr=0.1, schedule="step", milestones=(0.5, 0.75))
    # 10 epochs of 100 steps: /10 at epoch 5 and again at epoch 7.5
    assert [lr_at(s, 100, 10, he) for s in (0, 499, 500, 749, 750, 999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    by_epoch = OptimConfig(lr=1.0, schedule="step", milestones=(2, 4))
    assert [lr_at(s, 10, 6, by_epoch) for s in (19, 20, 40)] == pytest.approx([1.0, 0.1, 0.01])
    cos = OptimConfig(lr=1.0, schedule="cosine", warmup_epochs=1)
    assert lr_at(0, 10, 5, cos) == pytest.approx(0.1) and lr_at(9, 10, 5, cos) == pytest.approx(1.0)
    assert lr_at(10, 10, 5, cos) == pytest.approx(1.0) and lr_at(49, 10, 5, cos) < 0.01
    one = OptimConfig(lr=1.0, schedule="onecycle")
    peak = max(range(100), key=lambda s: lr_at(s, 10, 10, one))
    assert 25 <= peak <= 35 and lr_at(0, 10, 10, one) == pytest.approx(0.04)


def test_constant_warmup_is_he_et_als_resnet110_schedule() -> None:
    """LR 0.01 for the first ~400 iterations, then 0.1, then /10 at 50% and 75% (45,000 images / 128 = 352 steps)."""
    he110 = OptimConfig(name="sgd", lr=0.1, schedule="step", milestones=(0.5, 0.75), warmup_epochs=1.137,
                        warmup_mode="constant", warmup_factor=0.1)
    # by hand: warm-up round(1.137 * 352) = 400 steps; epoch 91 starts at step 91 * 352 = 32,032, epoch 136.5 at 48,048
    steps = (0, 1, 399, 400, 32_031, 32_032, 48_047, 48_048, 182 * 352 - 1)
    assert [lr_at(s, 352, 182, he110) for s in steps] == pytest.approx(
        [0.01, 0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    linear = OptimConfig(lr=1.0, warmup_epochs=1, warmup_factor=0.5)  # the factor is for constant warm-up only
    assert [lr_at(s, 4, 3, linear) for s in (0, 1, 3, 4)] == pytest.approx([0.25, 0.5, 1.0, 1.0])
    for bad in (dict(warmup_factor=0.0), dict(warmup_factor=1.5), dict(warmup_mode="cosine")):
        with pytest.raises(ConfigError, match="warmup"):
            from_dict({"optim": bad})


def test_evaluate_counts_every_sample(data_dir: Path) -> None:
    from reslab.data import DeviceLoader

    data = load_dataset("mnist", data_dir)
    loader = DeviceLoader(data.test_x, data.test_y, batch_size=64, mean=data.mean, std=data.std, device="cpu")
    model = build_model("mlp", input_shape=(1, 28, 28), num_classes=10)
    result = evaluate(model, loader, 10)
    assert int(result.confusion.sum()) == 200 and model.training


def test_evaluate_keeps_the_models_mode(data_dir: Path) -> None:
    from reslab.data import DeviceLoader

    data = load_dataset("mnist", data_dir)
    model = build_model("seed-mlp", input_shape=data.input_shape, num_classes=10)
    loader = DeviceLoader(data.test_x[:64], data.test_y[:64], batch_size=32, mean=data.mean, std=data.std,
                          device="cpu")
    for mode in (False, True):
        model.train(mode)
        evaluate(model, loader, 10)
        assert model.training is mode


def test_no_validation_set_means_none_not_empty_strings(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_cfg(data_dir, tmp_path, "data.val_size=0", "train.epochs=1"), progress=False)
    assert result.history[0]["val_acc"] is None and result.history[0]["val_loss"] is None
    assert result.summary["final_val_acc"] is None and result.summary["best_val_acc"] is None
    row = next(csv.DictReader(open(result.run_dir / "metrics.csv")))
    assert row["val_acc"] == "" and float(row["train_loss"]) > 0


def test_observers_started_before_a_failing_one_are_closed(data_dir: Path, tmp_path: Path) -> None:
    closed = []

    class Fine(Observer):
        def close(self) -> None:
            closed.append("fine")

    class Broken(Observer):
        def on_start(self, *args: object) -> None:
            raise RuntimeError("cannot start")

    with pytest.raises(RuntimeError, match="cannot start"):
        train(tiny_cfg(data_dir, tmp_path), observers=[Fine(), Broken()], progress=False)
    assert closed == ["fine"]
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "status.json").read_text())["status"] == "failed"


def test_one_real_epoch_syncs_the_host_once_per_log_record(data_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the loop of a quiet run, only the tracker reads the device: once per log_every steps."""
    import reslab.train as trainer

    syncs = {"n": 0, "on": False}
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: object, _original=original, **kwargs: object) -> object:
            syncs["n"] += syncs["on"]
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    real_epoch = trainer.train_epoch

    def counted_epoch(*args: object) -> bool:
        syncs["on"] = True
        try:
            return real_epoch(*args)
        finally:
            syncs["on"] = False

    monkeypatch.setattr(trainer, "train_epoch", counted_epoch)
    cfg = tiny_cfg(data_dir, tmp_path, "train.epochs=1", "train.log_every=4", "gradflow.every=0")
    result = train(cfg, progress=False)
    steps = result.summary["steps"]  # 500 training images / 32 = 16 steps
    assert steps == 16 and syncs["n"] == steps // 4


def test_a_log_file_gets_few_progress_redraws(data_dir: Path, tmp_path: Path) -> None:
    """`reslab train ... 2>&1 | tee log`: off a terminal the bar redraws every 10 s, not every 0.1 s."""
    import contextlib
    import io
    import time

    class Slow(Observer):  # ~0.5 s per epoch: the old 0.1 s interval redrew ~12 times per epoch
        def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
            time.sleep(0.03)

    log = io.StringIO()
    with contextlib.redirect_stderr(log):
        train(tiny_cfg(data_dir, tmp_path), observers=[Slow()], progress=True)
    assert log.getvalue().count("\r") <= 3 * 3  # per epoch: the bar opens, and is cleared when it closes
    assert log.getvalue().count("train_loss") == 3  # the per-epoch lines stay


def test_test_size_tests_every_run_on_the_same_fixed_subset(tmp_path, data_dir):
    """data.test_size picks the same test images whatever the seed, and the run is tested on that many."""
    from reslab.loaders import make_loaders, test_subset
    from reslab.data import load_dataset
    import torch

    assert torch.equal(test_subset(200, 50), test_subset(200, 50)) and len(set(test_subset(200, 50).tolist())) == 50
    assert torch.equal(test_subset(200, None), torch.arange(200))
    data = load_dataset("mnist", str(data_dir), download=False)
    seen = []
    for seed in (0, 1):
        cfg = tiny_cfg(data_dir, tmp_path, "data.test_size=50", f"train.seed={seed}")
        _, _, test = make_loaders(cfg, data, torch.device("cpu"), channels_last=False)
        seen.append(torch.cat([y for _, y in test]))
    assert len(seen[0]) == 50 and torch.equal(seen[0], seen[1])
    expected = data.test_y[test_subset(len(data.test_y), 50)]
    assert torch.equal(seen[0], expected)


def test_a_test_size_beyond_the_test_set_is_one_line(tmp_path, data_dir, capsys):
    from reslab.cli import main

    assert main(["train", "seed-mlp", "--data-dir", str(data_dir), "--runs-dir", str(tmp_path / "runs"), "--set",
                 "data.test_size=100000", "--set", "data.val_size=100", "--epochs", "1", "--quiet"]) == 2
    assert "data.test_size 100000 is more than" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_diverging_run_stops_and_is_recorded_as_diverged(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_cfg(data_dir, tmp_path, "train.log_every=5"), observers=[Poison(7)], progress=False)
    folder = RunFolder(result.run_dir)
    summary = strict_json(folder.summary)
    assert summary["status"] == "diverged" and summary["diverged_step"] == 10 and summary["test_acc"] is None
    assert strict_json(folder.status)["status"] == "diverged" and strict_json(folder.status)["step"] == 10
    assert result.summary["steps"] == 10 and not folder.last.exists()
    with pytest.raises(ConfigError, match="already finished|diverged"):
        train(tiny_cfg(data_dir, tmp_path), resume=result.run_dir, progress=False)
