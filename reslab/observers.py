"""The one place that assembles a run's default observers, and starts them safely.

Tracking (steps.csv always; TensorBoard / W&B when asked) and gradient-flow recording are imported only
when a config asks for them.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Sequence

from torch import nn

from reslab.config import RunConfig
from reslab.errors import ConfigError
from reslab.protocols import Observer, Sink

SINK_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}  # sink -> the package it imports


def default_observers(cfg: RunConfig) -> list[Observer]:
    """The observers a config asks for; a sink whose package is missing fails here, before training."""
    from reslab.tracking import StepsCsv, TensorBoard, Tracker

    sinks: list[Sink] = [StepsCsv()]
    for name in dict.fromkeys(cfg.track.sinks):
        if importlib.util.find_spec(SINK_PACKAGES[name]) is None:
            raise ConfigError(f"--track {name} needs the {SINK_PACKAGES[name]} package: "
                              "pip install 'reslab[track]'")
        if name == "tensorboard":
            sinks.append(TensorBoard())
        else:
            from reslab.tracking_wandb import Wandb

            sinks.append(Wandb(cfg.track))
    observers: list[Observer] = [Tracker(sinks, cfg.train.log_every)]
    if cfg.gradflow.every > 0:
        from reslab.gradflow import GradflowRecorder

        observers.append(GradflowRecorder(cfg.gradflow.every, output_std=cfg.gradflow.output_std))
    return observers


def other_rank_observers(cfg: RunConfig) -> list[Observer]:
    """What the ranks but rank 0 of a distributed run observe: a Tracker without sinks. It writes nothing, but
    stops them at the same step as rank 0 when the (all-reduced) training loss turns NaN or infinite."""
    from reslab.tracking import Tracker

    return [Tracker([], cfg.train.log_every)]


def start_all(observers: Sequence[Observer], run_dir: Path, model: nn.Module, cfg: RunConfig, step: int) -> None:
    """`on_start` each observer; if one fails, the ones already started are closed before the error goes on."""
    started: list[Observer] = []
    try:
        for obs in observers:
            obs.on_start(run_dir, model, cfg, step)
            started.append(obs)
    except BaseException:
        for obs in started:
            with contextlib.suppress(Exception):
                obs.close()
        raise
