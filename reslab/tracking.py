"""Experiment tracking: one metrics dict per record, fanned out to sinks.

`Tracker` is the one Observer; sinks only write. steps.csv is always written (part of the run record,
beside metrics.csv, which the trainer writes); TensorBoard and Weights & Biases are written when
`cfg.track.sinks` names them and are imported only then. An optional sink that fails is disabled
with one warning: tracking never stops a run.

Records and their keys (the same in every sink):
  every `train.log_every` steps  train/loss (mean batch loss since the previous record), lr
  every epoch, at its last step  epoch, train/epoch_loss, train/acc, val/loss, val/acc, samples_per_s
  at the end                     test/loss, test/acc
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from reslab import files
from reslab.config import RunConfig, flatten, to_dict
from reslab.errors import Diverged, exception_line
from reslab.protocols import Observer, Sink
from reslab.runs import STEPS_FIELDS, RunFolder

# metrics.csv column -> tracked key, for the per-epoch record
EPOCH_KEYS = {"epoch": "epoch", "train_loss": "train/epoch_loss", "train_acc": "train/acc", "val_loss": "val/loss",
              "val_acc": "val/acc", "samples_per_s": "samples_per_s"}


class Tracker(Observer):
    """Turns the trainer's hooks into records and fans them out to sinks.

    The per-step loss stays on the device: it is summed there and read back (one host sync) once per
    `log_every` steps.
    """

    def __init__(self, sinks: Sequence[Sink], log_every: int) -> None:
        self.sinks = list(sinks)
        self.log_every = log_every
        self._loss_sum: torch.Tensor | None = None  # device scalar, float64: the open window's sum
        self._restored = 0.0  # a resumed run's open window, from its checkpoint
        self._window = 0  # steps in the open window
        self._last = (0, 0.0)  # (step, lr) of the latest step seen
        self._run_dir: Path | None = None
        self._warned: set[str] = set()

    def on_start(self, run_dir: Path, model: nn.Module, cfg: RunConfig, start_step: int) -> None:
        self._run_dir = run_dir
        if self._window and not self._last[0]:  # a restored window from a checkpoint that did not keep its step
            self._last = (start_step, self._last[1])
        self._fan_out("start", run_dir, cfg, start_step)

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if self._loss_sum is None:  # the first step: the window's sum lives on the loss's device from now on
            self._loss_sum = torch.full((), self._restored, dtype=torch.float64, device=loss.device)
        self._loss_sum.add_(loss.detach())  # queued on the device: no sync
        self._window += 1
        self._last = (step, lr)
        if step % self.log_every == 0:
            self._flush_window()

    def on_epoch(self, row: dict[str, Any]) -> None:
        record = {key: float(row[col]) for col, key in EPOCH_KEYS.items() if row.get(col) not in (None, "")}
        self._fan_out("log", int(row["step"]), record)

    def on_end(self, summary: dict[str, Any]) -> None:
        self._flush_window()
        test = {"test/loss": summary["test_loss"], "test/acc": summary["test_acc"]}
        self._fan_out("log", int(summary["steps"]), test)
        if self._run_dir is not None:
            self._fan_out("end", self._run_dir, summary)

    def close(self) -> None:
        try:
            self._flush_window(check=False)  # an interrupted run keeps its last partial window
        finally:
            self._fan_out("close")

    def state_dict(self) -> dict[str, Any]:
        """The open window (loss sum, steps, and its last step and lr), so a resumed run's next record covers the
        same steps, also when no step follows (a run stopped after its last checkpoint records the window at its
        end)."""
        loss_sum = float(self._loss_sum) if self._loss_sum is not None else self._restored  # a sync per checkpoint
        return {"loss_sum": loss_sum, "window": self._window, "step": self._last[0], "lr": self._last[1]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._window = int(state.get("window", 0))
        self._restored = float(state.get("loss_sum", 0.0))
        self._last = (int(state.get("step", 0)), float(state.get("lr", math.nan)))  # older checkpoints: no lr

    def _flush_window(self, check: bool = True) -> None:
        """Send the open window's mean loss; a NaN or infinite one stops the run (`Diverged`) when `check`."""
        if not self._window:
            return
        total = float(self._loss_sum) if self._loss_sum is not None else self._restored  # the one sync per record
        mean_loss = total / self._window
        step, lr = self._last
        if self._loss_sum is not None:
            self._loss_sum.zero_()
        self._restored = 0.0
        self._window = 0
        self._fan_out("log", step, {"train/loss": mean_loss, "lr": lr})
        if check and not math.isfinite(mean_loss):
            raise Diverged(step, mean_loss)

    def _fan_out(self, method: str, *args: Any) -> None:
        for sink in list(self.sinks):
            try:
                getattr(sink, method)(*args)
            except Exception as exc:
                if not sink.optional:
                    raise
                self._disable(sink, exc)

    def _disable(self, sink: Sink, exc: Exception) -> None:
        self.sinks.remove(sink)
        if sink.name not in self._warned:
            self._warned.add(sink.name)
            print(f"reslab: warning: {sink.name} tracking failed ({exception_line(exc)}); the run goes on without it",
                  file=sys.stderr)
        with contextlib.suppress(Exception):
            sink.close()


# ----------------------------------------------------------------------------- sinks


class StepsCsv(Sink):
    """steps.csv in the run folder: the training loss every log_every steps. Part of the run record."""

    name = RunFolder.STEPS
    optional = False

    def __init__(self) -> None:
        self._fh: Any = None

    def start(self, run_dir: Path, cfg: RunConfig, start_step: int) -> None:
        path, every = RunFolder(run_dir).steps, cfg.train.log_every
        # a resumed run drops the rows it will record again, and the partial window an interrupt wrote (the
        # checkpoint kept that window's sum, so the next row covers the same steps as in a straight run)
        files.truncate_csv(path, STEPS_FIELDS, lambda row: 0 < int(row["step"]) <= start_step
                           and (int(row["step"]) % every == 0 or int(row["step"]) < start_step))
        self._fh = open(path, "a", newline="")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if "train/loss" in metrics and self._fh is not None:
            self._fh.write(f"{step},{metrics['lr']!r},{metrics['train/loss']!r}\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class TensorBoard(Sink):
    """Scalars in <run_dir>/tensorboard under the record keys; hparams with the final metrics."""

    name = "tensorboard"

    def __init__(self) -> None:
        self._writer: Any = None
        self._cfg: RunConfig | None = None

    def start(self, run_dir: Path, cfg: RunConfig, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._cfg = cfg
        # purge_step: on resume, TensorBoard hides what the same log dir holds from start_step + 1 on
        self._writer = SummaryWriter(str(RunFolder(run_dir).tensorboard), purge_step=start_step + 1 if start_step else None)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def end(self, run_dir: Path, summary: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        final = {"test/acc": summary["test_acc"], "test/loss": summary["test_loss"]}
        if summary.get("best_val_acc") is not None:
            final["val/best_acc"] = summary["best_val_acc"]
            self._writer.add_scalar("val/best_acc", summary["best_val_acc"], summary["steps"])
        for part in hparams(flat_hparams(to_dict(self._cfg)), final):  # into this log dir, not a new one
            self._writer.file_writer.add_summary(part)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def flat_hparams(values: Mapping[str, Any]) -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}; TensorBoard hparams take numbers, strings and bools only."""
    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in flatten(values).items()}
