"""Gradient flow of models at initialisation and at checkpoints, measured on the same batches (paired).

Each model runs as in the lab notebook's Exercise 2: train mode, zero_grad, forward, cross-entropy,
backward, one `GradientProbe` record per batch. At init, each batch's gradient is then also stepped by the run's
optimizer (its config's optimizer, LR, weight decay and clipping, fresh state: the first step of training, were that
batch the first), the update size recorded, and the weights put back, so the gradient statistics stay those of
the init weights; at a checkpoint no step is taken (a fresh optimizer state would not be the run's) and update sizes
come from the run's own record (gradflow.csv). Models are built by `runtime.build_for`,
as the trainer builds them, so a model at init has the weights its run started from. The numbers and
words made of the records are `reslab.analyze.gradflow_summary`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reslab import files
from reslab.analyze.registry import Common, bounded
from reslab.analyze.targets import Batches, Target, build, in_format, resolve_targets, shared_batches
from reslab.config import OptimConfig
from reslab.evaluate import check_model_takes
from reslab.gradflow import GradientProbe, GradRecord
from reslab.models import count_params
from reslab.optim import make_optimizer
from reslab.runs import RunFolder


@dataclass(frozen=True, eq=False)
class ModelResult:
    target: Target
    num_params: int
    records: tuple[GradRecord, ...]  # one per batch
    lr: float = math.nan  # the LR of the optimizer step taken at init; NaN where none was taken


def measure(model: nn.Module, batches: Batches, step: OptimConfig | None = None) -> list[GradRecord]:
    """The notebook's loop: train mode, zero_grad, forward, cross-entropy, backward; a record per batch.

    With `step`, each batch's gradient is also stepped by that optimizer (fresh state, clipped as the trainer
    clips), so the record holds the update size; the parameters are then put back as they were.
    """
    model.train()
    records = []
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params] if step is not None else []
    with GradientProbe(model) as probe:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            probe.capture_gradients(snapshot_weights=step is not None)
            if step is not None:
                _step_once(model, step, x.device)
            records.append(probe.record(loss))
            with torch.no_grad():
                for p, before in zip(params, saved):
                    p.copy_(before)
    model.zero_grad(set_to_none=True)
    return records


def _step_once(model: nn.Module, optim: OptimConfig, device: torch.device) -> None:
    """One step of a fresh optimizer of the config's kind at its LR, after the trainer's clipping."""
    if optim.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
    make_optimizer(model, optim, device).step()


def analyse(targets: Sequence[Target], *, batches: int = 11, device: str = "auto", seed: int = 0,
            progress: bool = True) -> list[ModelResult]:
    """Every target on the same `batches` batches; progress lines go to stderr."""
    data, dev, drawn = shared_batches(targets, batches=batches, device=device, seed=seed, what="gradflow",
                                      progress=progress)
    results = []
    for target in targets:
        model, channels_last = build(target, data, dev)
        inputs = in_format(drawn, channels_last)
        check_model_takes(model, data, inputs, target.cfg.model.name)
        step = target.cfg.optim if target.at == "init" else None
        records = tuple(measure(model, inputs, step))
        results.append(ModelResult(target, count_params(model), records, step.lr if step else math.nan))
        if progress:
            print(f"gradflow: {target.label} ({target.at}) measured", file=sys.stderr)
    return results


# ----------------------------------------------------------------------------- the instrument's call


@dataclass(frozen=True)
class GradflowOptions:
    at: tuple[str, ...] = ("init",)  # init, best, last, every
    batches: int = 11
    notebook_kernel: bool = False  # seed-cnn with kernel size 4, as the notebook's Exercise 2 cell built it

    def __post_init__(self) -> None:
        bounded("--batches", self.batches, 1, 100_000)


@dataclass(frozen=True)
class GradflowMeasurement:
    results: tuple[ModelResult, ...]
    recorded: Mapping[str, list[dict[str, str]]]  # run folder name -> its gradflow.csv (recorded during training)


def prepare(sources: Sequence[str], options: GradflowOptions, common: Common) -> list[Target]:
    return resolve_targets(sources, at=options.at, overrides=common.overrides, settings=common.settings,
                           notebook_kernel=options.notebook_kernel)


def measure_targets(targets: Sequence[Target], options: GradflowOptions, common: Common) -> GradflowMeasurement:
    """Every target on shared batches, and the gradient flow each run folder recorded while it trained."""
    results = analyse(targets, batches=options.batches, device=common.device, seed=common.seed,
                      progress=common.progress)
    recorded = {}
    for run_dir in dict.fromkeys(t.run_dir for t in targets if t.run_dir is not None):
        path = RunFolder(run_dir).gradflow
        if path.is_file():
            recorded[run_dir.name] = files.read_csv(path)
    return GradflowMeasurement(tuple(results), recorded)
