"""Loss landscapes (Li et al. 2018): the loss and accuracy of trained nets along one or two random directions.

Li et al. judge a landscape from 2-D surfaces (and 1-D cuts); one 1-D cut is one random draw, so the lab cuts
along several independent directions (`directions`, each its own 1-D curve) and states the spread over them.

Each direction is Gaussian, drawn per parameter from a generator seeded by (seed, axis, parameter name, shape),
so twins with the same parameter names (a plain/residual pair) are cut along directions drawn alike. Then it is
filter-normalised: each filter (slice along dim 0: a conv's output channel, a Linear's output row) is rescaled
to the norm of the matching filter of the trained weights; biases and norm-layer parameters (1-D tensors) get
zero. The nets are evaluated in eval mode (batch norm uses its running statistics) on a fixed seeded subset of
the training split. The rows, words and files are `reslab.analyze.landscape_summary`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from reslab.analyze.registry import Common, bounded
from reslab.checks import require
from reslab.analyze.targets import Target, build, check_seed, draw_batches, resolve_targets, shared_data
from reslab.analyze.shatter import seed_for
from reslab.data import ImageData
from reslab.errors import ConfigError, DataError
from reslab.evaluate import check_model_takes, evaluate
from reslab.runtime import select_device

Direction = dict[str, torch.Tensor]  # parameter name -> a tensor of its shape
EVAL_CHUNK = 250  # images per forward pass: bounds the memory of a deep conv net on a CPU


@dataclass(frozen=True)
class LandscapeSettings:
    """`points` per axis, evenly spaced in [-span, span] (the trained weights at 0), on `subset` training images."""

    dims: int = 1
    points: int | None = None  # None: 21 for 1-D, 11 for 2-D
    subset: int = 1000
    span: float = 1.0
    directions: int = 1  # 1-D: independent random directions, each cut on its own (2-D: one pair)

    def __post_init__(self) -> None:
        if self.dims not in (1, 2):
            raise ConfigError(f"--dims must be 1 or 2, got {self.dims}")
        if self.points is not None and (self.points < 3 or self.points % 2 == 0):
            raise ConfigError(f"--points must be an odd number >= 3 (the grid is centred on the trained weights), "
                              f"got {self.points}")
        if self.subset < 1:
            raise ConfigError(f"--subset must be >= 1, got {self.subset}")
        if not self.span > 0:
            raise ConfigError(f"--span must be > 0, got {self.span}")
        bounded("--span", self.span, 0, 1e6)  # a finite step: inf or 1e300 times a direction is no landscape
        bounded("--points", self.points, 3, 100_001 if self.dims == 1 else 1001)
        bounded("--subset", self.subset, 1, 10_000_000)
        if self.directions < 1 or (self.dims == 2 and self.directions != 1):
            raise ConfigError(f"--directions must be >= 1 (and 1 with --dims 2), got {self.directions}")
        bounded("--directions", self.directions, 1, 100)
        require(self.per_axis**self.dims * self.subset * self.cuts <= 10**9,
                f"--points {self.per_axis} per axis in {self.dims}-D on --subset {self.subset} images along "
                f"{self.cuts} cut(s) would evaluate {self.per_axis**self.dims * self.subset * self.cuts:.2g} images "
                "(at most 1e9); lower --points, --subset or --directions")

    @property
    def cuts(self) -> int:
        """How many separate cuts each model gets: `directions` 1-D curves, or one 2-D surface."""
        return self.directions if self.dims == 1 else 1

    @property
    def per_axis(self) -> int:
        return self.points if self.points is not None else 21 if self.dims == 1 else 11

    @property
    def steps(self) -> np.ndarray:
        """The step sizes along each axis; the middle one is exactly 0."""
        half = self.per_axis // 2
        return self.span * np.arange(-half, half + 1) / half


@dataclass(frozen=True, eq=False)
class Surface:
    """One net's landscape: loss[i, j] and acc[i, j] at steps[i] along direction 1 and steps[j] along direction 2
    (one column for 1-D)."""

    target: Target
    steps: np.ndarray  # (P,)
    loss: np.ndarray  # (P, P) or (P, 1)
    acc: np.ndarray
    num_weight_layers: int
    seconds: float
    direction: int = 1  # which of the 1-D directions (1-based; 1 for a 2-D surface)


def weight_layers_count(model: nn.Module) -> int:
    """Linear and conv layers: the depth Li et al. count (ResNet-20 has 20)."""
    return sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())


def filter_normalised_direction(model: nn.Module, seed: int, axis: int) -> Direction:
    """A random direction in weight space, filter-normalised to the model's weights (Li et al. 2018)."""
    direction: Direction = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:  # biases, batch-norm weights and biases
            direction[name] = torch.zeros_like(p)
            continue
        gen = torch.Generator().manual_seed(seed_for("landscape", seed, axis, name, tuple(p.shape)))
        d = torch.randn(tuple(p.shape), generator=gen).to(p.device, p.dtype)
        d_norm = d.flatten(1).norm(dim=1)
        w_norm = p.detach().flatten(1).norm(dim=1)
        direction[name] = d * (w_norm / (d_norm + 1e-10)).view(-1, *[1] * (p.dim() - 1))
    return direction


@torch.no_grad()
def cut(model: nn.Module, directions: Sequence[Direction], steps: np.ndarray, batches: list, num_classes: int,
        ) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy at weights + a * d1 (+ b * d2) for every a (, b) in `steps`; the weights are restored."""
    params = dict(model.named_parameters())
    origin = {name: p.detach().clone() for name, p in params.items()}
    shape = (len(steps), len(steps) if len(directions) == 2 else 1)
    loss, acc = np.full(shape, np.nan), np.full(shape, np.nan)
    try:
        for i, a in enumerate(steps):
            for j in range(shape[1]):
                for name, p in params.items():
                    moved = origin[name] + float(a) * directions[0][name]
                    if len(directions) == 2:
                        moved += float(steps[j]) * directions[1][name]
                    p.copy_(moved)
                result = evaluate(model, batches, num_classes)
                loss[i, j], acc[i, j] = result.loss, result.acc
    finally:
        for name, p in params.items():
            p.copy_(origin[name])
    return loss, acc


def subset_batches(data: ImageData, subset: int, val_size: int, seed: int, device: torch.device) -> list:
    """The first `subset` images of the training split (without the `val_size` held out by `seed`), in chunks."""
    if subset > len(data.train_y) - val_size:
        raise DataError(f"--subset {subset} is more than the {len(data.train_y) - val_size} images of the training "
                        f"split of {data.name} (data.val_size {val_size} held out)")
    (x, y), = draw_batches(data, batches=1, batch_size=subset, val_size=val_size, seed=seed, device=device)
    return [(x[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)]


def measure(targets: Sequence[Target], settings: LandscapeSettings, *, seed: int, device: str = "auto",
            progress: bool = True) -> tuple[list[Surface], dict[str, list[Direction]]]:
    """Every target's surface on the same training images; returns the surfaces and the directions used."""
    dev = select_device(device)
    data, _, val_size = shared_data(targets)
    batches = subset_batches(data, settings.subset, val_size, seed, dev)
    evaluations = settings.per_axis ** settings.dims * settings.cuts
    if progress:
        print(f"landscape: {evaluations} evaluations of {settings.subset} training images of {data.name} per model "
              f"(seed {seed}), device {dev}", file=sys.stderr)
    surfaces, directions = [], {}
    for target in targets:
        started = time.perf_counter()
        model, _ = build(target, data, dev)
        check_model_takes(model, data, batches, target.cfg.model.name)
        dirs = [filter_normalised_direction(model, seed, axis) for axis in range(max(settings.dims, settings.cuts))]
        groups = [dirs] if settings.dims == 2 else [[d] for d in dirs]  # the first 1-D direction is axis 0, as ever
        for number, group in enumerate(groups, 1):
            loss, acc = cut(model, group, settings.steps, batches, data.num_classes)
            surfaces.append(Surface(target, settings.steps, loss, acc, weight_layers_count(model),
                                    time.perf_counter() - started, number))
            started = time.perf_counter()
        directions[target.label] = [{k: v.cpu() for k, v in d.items()} for d in dirs]
        if progress:
            print(f"landscape: {target.label} cut along {settings.cuts} direction(s)", file=sys.stderr)
    return surfaces, directions


# ----------------------------------------------------------------------------- the instrument's call


@dataclass(frozen=True)
class LandscapeOptions:
    cut: LandscapeSettings = LandscapeSettings()
    at: str = "last"  # the checkpoint to cut: best | last


@dataclass(frozen=True)
class LandscapeMeasurement:
    surfaces: tuple[Surface, ...]
    directions: Mapping[str, list[Direction]]  # model label -> its directions (on the CPU)


def prepare(sources: Sequence[str], options: LandscapeOptions, common: Common) -> list[Target]:
    check_seed(common.seed)
    return resolve_targets(sources, at=(options.at,), overrides=common.overrides, settings=common.settings)


def measure_targets(targets: Sequence[Target], options: LandscapeOptions, common: Common) -> LandscapeMeasurement:
    surfaces, directions = measure(targets, options.cut, seed=common.seed, device=common.device,
                                   progress=common.progress)
    return LandscapeMeasurement(tuple(surfaces), directions)
