"""The trainer's state (`TrainState`), its checkpoints (what `last.pt` holds, and reading it back) and its summary.

The checkpoint's keys are a file format: `last.pt` files written by earlier versions must still resume,
so `TrainState.to_dict` writes exactly the keys they have (`running` and `epoch_seconds` only mid-epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from reslab.config import RunConfig, changed_keys, from_dict, to_dict
from reslab.errors import CheckpointError, ConfigError, Diverged, first_line
from reslab.status import RunStatus


@dataclass
class Running:
    """The open epoch's training sums, on the device (no sync until the epoch's row is made)."""

    loss_sum: torch.Tensor  # float64 scalar: sum of per-sample losses
    correct: torch.Tensor  # int64 scalar
    seen: int  # samples so far (a host int: batch sizes are shapes, not device values)

    @classmethod
    def zeros(cls, device: torch.device) -> Running:
        return cls(torch.zeros((), device=device, dtype=torch.float64),
                   torch.zeros((), device=device, dtype=torch.long), 0)

    def summed(self, all_sum: Callable[[torch.Tensor], torch.Tensor]) -> Running:
        """These sums added up over the ranks of a distributed run by `all_sum` (in one process: the same sums)."""
        total = all_sum(torch.stack([self.loss_sum, self.correct.double(),
                                     torch.tensor(float(self.seen), dtype=torch.float64, device=self.loss_sum.device)]))
        return Running(total[0], total[1].round().long(), int(total[2]))  # counts stay exact below 2**53


@dataclass
class TrainState:
    """Where a run is: epochs and steps done, the metrics rows, the best epoch, and time spent."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of the current epoch done (0 at an epoch boundary)
    step: int = 0  # optimizer steps done
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows
    best_val_acc: float | None = None
    best_epoch: int | None = None
    train_seconds: float = 0.0
    train_samples: int = 0
    running: Running | None = None  # only mid-epoch
    epoch_seconds: float = 0.0  # training time of the open epoch

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's `state` entry, with the keys earlier versions wrote."""
        out: dict[str, Any] = {"epoch": self.epoch, "batch": self.batch, "step": self.step, "history": self.history,
                               "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch,
                               "train_seconds": self.train_seconds, "train_samples": self.train_samples}
        if self.running is not None:  # mid-epoch: keep the partial sums so the epoch's row comes out the same
            out["running"] = {"loss_sum": self.running.loss_sum.cpu(), "correct": self.running.correct.cpu(),
                              "seen": self.running.seen}
            out["epoch_seconds"] = self.epoch_seconds
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], device: torch.device) -> TrainState:
        running = values.get("running")
        counts = [values["epoch"], values["batch"], values["step"], values["train_samples"]]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts) or not (
                isinstance(values["history"], list) and all(isinstance(r, dict) for r in values["history"])):
            raise ValueError("its training state is damaged (counts must be whole numbers >= 0)")
        history = [{k: (None if v == "" else v) for k, v in row.items()} for row in values["history"]]
        return cls(epoch=int(values["epoch"]), batch=int(values["batch"]), step=int(values["step"]), history=history,
                   best_val_acc=values["best_val_acc"], best_epoch=values["best_epoch"],
                   train_seconds=float(values["train_seconds"]), train_samples=int(values["train_samples"]),
                   running=None if running is None else Running(running["loss_sum"].to(device),
                                                                running["correct"].to(device), int(running["seen"])),
                   epoch_seconds=float(values.get("epoch_seconds", 0.0)))


def plateaued(history: Sequence[Mapping[str, Any]], patience: int, min_delta: float) -> bool:
    """Whether the per-epoch training loss has not fallen below its best so far by more than `min_delta` for the last
    `patience` epochs. A pure function of the metrics rows, which the checkpoint holds: a resumed run decides alike."""
    losses = [float(row["train_loss"]) for row in history if isinstance(row.get("train_loss"), (int, float))]
    best, since = float("inf"), 0
    for loss in losses:
        if loss < best - min_delta:
            best, since = loss, 0
        else:
            since += 1
    return since >= patience


def plateau_stop(state: TrainState, cfg: RunConfig) -> bool:
    """True when a run trained `until: plateau` has reached its plateau (never for a fixed-epoch run)."""
    return cfg.train.until == "plateau" and plateaued(state.history, cfg.train.patience, cfg.train.min_delta)


# what each checkpoint holds, built here only (RunFolder.save_checkpoint adds the format and writes it)

def last_checkpoint(model: nn.Module, opt: torch.optim.Optimizer, state: TrainState, cfg: RunConfig,
                    observers: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """last.pt's contents: the unwrapped module's weights, the optimizer, the state, the config, the RNG and
    the observers' states (by class name)."""
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state.to_dict(),
            "config": to_dict(cfg), "torch_rng": torch.get_rng_state(), "observers": dict(observers)}


def best_checkpoint(model: nn.Module, epoch: int, val_acc: float, cfg: RunConfig) -> dict[str, Any]:
    """best.pt's contents: the unwrapped module's weights at the best validation epoch, that epoch, its accuracy and
    the config."""
    return {"model": model.state_dict(), "epoch": epoch, "val_acc": val_acc, "config": to_dict(cfg)}


# what a resumed run may change: `--epochs`, `--device`, `--data-dir`, `--track`
# train.figures: what is drawn at the end (a sweep's runs turn it off), not what is computed
RESUMABLE_CHANGES = ("train.epochs", "train.device", "data.data_dir", "track.", "train.figures")


def check_resumable(ckpt: dict[str, Any], cfg: RunConfig, where: str, finished: bool) -> None:
    """Refuse a foreign checkpoint, a finished run, and a config that differs from the checkpoint's.

    A run that did all its epochs but was stopped before status.json said finished (`finished` false;
    status.json is the last file a run writes) may resume: it
    then only completes its end. The config may change only where `RESUMABLE_CHANGES` allows.
    """
    done = ckpt.get("state", {}).get("epoch") if isinstance(ckpt.get("state"), dict) else None
    if not isinstance(done, int) or not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{where} is not a reslab training checkpoint")
    if done >= cfg.train.epochs and finished:
        raise ConfigError(f"{where} already finished {done} of {cfg.train.epochs} epochs; "
                          "pass --epochs N with a larger N to train further")
    history = ckpt["state"].get("history")
    if finished and cfg.train.until == "plateau" and isinstance(history, list) and plateaued(
            [r for r in history if isinstance(r, dict)], cfg.train.patience, cfg.train.min_delta):
        raise ConfigError(f"{where} already stopped on a plateau of its training loss after {done} epochs; "
                          "it would stop again at once")
    try:
        saved = from_dict(ckpt["config"])  # old checkpoints: keys added since then get their defaults
    except ConfigError as exc:
        raise CheckpointError(f"{where} holds a config this version cannot read: {exc}") from None
    changed = changed_keys(saved, cfg, RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(f"the config of {where} differs from the one it was trained with in {', '.join(changed)} "
                          "(config.yaml edited?); a run continues as configured: only --epochs, --device, "
                          "--data-dir and --track may change")


def restore(ckpt: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, cfg: RunConfig) -> TrainState:
    """Weights, optimizer, state and RNG from a checkpoint; a mismatch is one CheckpointError line."""
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = TrainState.from_dict(dict(ckpt["state"]), next(model.parameters()).device)
        torch.set_rng_state(ckpt["torch_rng"])
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint does not match model {cfg.model.name}: {first_line(exc)}") from None
    return state


def run_summary(state: TrainState, cfg: RunConfig, dataset: str, classes: Sequence[str], params: int,
                test: Any = None, diverged: Diverged | None = None) -> dict[str, Any]:
    """summary.json's values: a finished run's, with `test` (its test EvalResult), or a diverged one's."""
    from reslab.metrics import class_scores
    from reslab.models import init_of

    last = state.history[-1] if state.history else {}
    summary: dict[str, Any] = {
        "status": RunStatus.FINISHED if diverged is None else RunStatus.DIVERGED, "model": cfg.model.name,
        "init": init_of(cfg.model.name, cfg.model.args),  # what the weights started from, with any block form
        "dataset": dataset, "params": params, "epochs": len(state.history), "steps": state.step,
        "final_train_loss": last.get("train_loss"), "final_train_acc": last.get("train_acc"),
        "final_val_acc": last.get("val_acc"), "best_val_acc": state.best_val_acc, "best_epoch": state.best_epoch,
        "test_loss": test.loss if test else None, "test_acc": test.acc if test else None,
        "train_seconds": state.train_seconds,
        "samples_per_s": state.train_samples / max(state.train_seconds, 1e-9),
        "classes": list(classes),
    }
    if cfg.train.until == "plateau" and diverged is None:  # why it stopped (fixed-epoch summaries stay as they were)
        summary["stopped"] = "plateau" if plateau_stop(state, cfg) else "cap"
    if test is not None:
        scores = class_scores(test.confusion)
        if test.top5 is not None:
            summary["test_top5"] = test.top5
        summary.update(test_precision=scores.precision, test_recall=scores.recall, test_f1=scores.f1,
                       test_support=scores.support, confusion_matrix=test.confusion.tolist())
    elif diverged is not None:
        summary.update(diverged_step=diverged.step, diverged_loss=str(diverged.loss))
    return summary
