"""The extension points of a run: `Observer` (hooks of the training loop) and `Sink` (where records go).

A leaf module, so the trainer, the tracking sinks and the instruments all import these from below them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from reslab.config import RunConfig


class Observer:
    """Extension point: `train(cfg, observers=[...])`; subclass and override what you need.

    Every hook of one training step gets the same 1-based step number. Tensors passed are on the device:
    an observer syncs at most once per record it writes, never per step.
    """

    def on_start(self, run_dir: Path, model: nn.Module, cfg: RunConfig, start_step: int) -> None:
        """Before the first step; start_step > 0 when resuming (drop anything recorded after it)."""

    def on_batch_start(self, step: int) -> None:
        """Before the forward pass of `step`."""

    def on_after_backward(self, step: int, model: nn.Module) -> None:
        """Gradients of `step` are in the parameters; the optimizer has not stepped yet."""

    def needs_module(self, step: int) -> bool:
        """Whether `step` must run through the run's own module (forward hooks, gradients in its parameters): a
        packed run (reslab.train_packed) trains such a step unpacked. Other steps of a packed run call
        `on_batch_start` and `on_step` only."""
        return False

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        """After the optimizer step; `loss` is the batch's mean training loss (a device scalar)."""

    def on_epoch(self, row: dict[str, Any]) -> None:
        """After validation, with the epoch's metrics.csv row, before the epoch's checkpoint is written."""

    def flush(self) -> None:
        """Put everything recorded so far on disk: called before each checkpoint, which claims it is done."""

    def on_end(self, summary: dict[str, Any]) -> None:
        """After a finished run's test evaluation, with summary.json's values."""

    def state_dict(self) -> dict[str, Any] | None:
        """What the observer needs to continue exactly after a resume; saved in each last.pt (None: nothing)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Before `on_start` of a resumed run, with what `state_dict` returned when its checkpoint was written."""

    def close(self) -> None:
        """Always called last, also when the run is interrupted or fails: flush and release."""


class Sink:
    """One destination of tracked records. `optional` sinks are disabled after their first error."""

    name = "sink"
    optional = True

    def start(self, run_dir: Path, cfg: RunConfig, start_step: int) -> None:
        """Open the destination; start_step > 0 when resuming (drop anything recorded after it)."""

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """One record at a 1-based global step."""

    def end(self, run_dir: Path, summary: Mapping[str, Any]) -> None:
        """A finished run's summary.json values; curves.png and classification_report.txt exist."""

    def close(self) -> None:
        """Flush and release; always called, also after a failure."""
