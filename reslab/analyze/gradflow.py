"""Gradient flow of models at initialisation and at checkpoints, measured on the same batches (paired).

Each model runs as in the lab notebook's Exercise 2: train mode, zero_grad, forward, cross-entropy,
backward, one `GradientProbe` record per batch. No optimizer step is taken, so update sizes are left
empty here; they are recorded during training (gradflow.csv). Models are built by `runtime.build_for`,
as the trainer builds them, so a model at init has the weights its run started from. The numbers and
words made of the records are `reslab.analyze.gradflow_summary`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch.nn.functional as F
from torch import nn

from reslab import files
from reslab.analyze.registry import Common, bounded
from reslab.analyze.targets import Batches, Target, build, in_format, resolve_targets, shared_batches
from reslab.evaluate import check_model_takes
from reslab.gradflow import GradientProbe, GradRecord
from reslab.models import count_params
from reslab.runs import RunFolder


@dataclass(frozen=True, eq=False)
class ModelResult:
    target: Target
    num_params: int
    records: tuple[GradRecord, ...]  # one per batch


def measure(model: nn.Module, batches: Batches) -> list[GradRecord]:
    """The notebook's loop: train mode, zero_grad, forward, cross-entropy, backward; a record per batch."""
    model.train()
    records = []
    with GradientProbe(model) as probe:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            probe.capture_gradients()
            records.append(probe.record(loss))
    model.zero_grad(set_to_none=True)
    return records


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
        results.append(ModelResult(target, count_params(model), tuple(measure(model, inputs))))
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
