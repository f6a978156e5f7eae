"""Shattered gradients (Balduzzi et al. 2017): how alike the input gradients of nearby inputs are.

Two set-ups. The paper's: fully-connected nets on a 1-D input (a grid of points in [-2, 2]) at initialisation,
for each block form and depth over several seeds; the gradient of the net's one output with respect to its input
at every grid point, and that sequence's autocorrelation against lag. The lab's: a model (a preset at init or a
trained run) at points along a straight line between two real test images; the gradient of the logit of the first
image's true class with respect to the image, and the correlation between gradients at points `lag` apart.
Near 1: nearby inputs get the same gradient (brown noise); near 0: white noise, the gradient is "shattered".
The paper's own statistic (the correlation over initialisations, its decay length, white and brown noise beside it,
each form against only the law the paper states for it) is `reslab.analyze.shatter_paper`. The lines between test
images are the lab's, not the paper's: their neighbouring points mostly share ReLU patterns, so no law is compared.
The rows, words and files made of these numbers are `reslab.analyze.shatter_summary`.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from reslab.analyze.registry import Common, bounded, require_work
from reslab.analyze.targets import Target, build, check_seed, resolve_targets, shared_data
from reslab.data import ImageData, normalize
from reslab.errors import ConfigError
from reslab.evaluate import check_model_takes
from reslab.models import build_model
from reslab.runtime import select_device


@dataclass(frozen=True)
class GridForm:
    """A block form of the paper's 1-D nets (reslab's MLP with one Linear per block)."""

    residual: bool
    norm: str  # none | batch


# the paper's feedforward and residual nets, each without and with batch norm
FORMS = {"plain": GridForm(False, "none"), "plain-bn": GridForm(False, "batch"),
         "resnet": GridForm(True, "none"), "resnet-bn": GridForm(True, "batch")}
DEFAULT_DEPTHS = (1, 2, 4, 8, 16, 32, 50)
DEFAULT_MAX_LAG = 32


@dataclass(frozen=True)
class GridSettings:
    """The paper's set-up: `points` inputs evenly spaced in [-`reach`, `reach`], nets `width` units wide."""

    depths: tuple[int, ...] = DEFAULT_DEPTHS
    forms: tuple[str, ...] = tuple(FORMS)
    seeds: int = 3
    width: int = 200
    points: int = 256
    reach: float = 2.0
    max_lag: int = DEFAULT_MAX_LAG

    def __post_init__(self) -> None:
        if not self.depths or min(self.depths) < 1:
            raise ConfigError(f"--depths must be one or more depths >= 1, got {list(self.depths)}")
        unknown = [f for f in self.forms if f not in FORMS]
        if unknown or not self.forms:
            raise ConfigError(f"unknown --forms {', '.join(unknown) or '(none)'}; valid: {', '.join(FORMS)}")
        for flag, value, least in (("--seeds", self.seeds, 1), ("--width", self.width, 1),
                                   ("--grid-points", self.points, 8), ("--max-lag", self.max_lag, 1)):
            if value < least:
                raise ConfigError(f"{flag} must be >= {least}, got {value}")
        if self.max_lag >= self.points // 2:
            raise ConfigError(f"--max-lag {self.max_lag} must be below half the {self.points} grid points")
        bounded("--depths", max(self.depths), 1, 10_000)
        for flag, value, most in (("--seeds", self.seeds, 1000), ("--width", self.width, 100_000),
                                  ("--grid-points", self.points, 1_000_000)):
            bounded(flag, value, 1, most)
        bounded("--reach", self.reach, 1e-6, 1e6)
        # each net: depth x width^2 weights, a forward and a backward pass per grid point
        work = 3.0 * self.width**2 * sum(self.depths) * self.points * self.seeds * len(self.forms)
        memory = 4.0 * (self.width**2 * max(self.depths) * 2 + self.width * self.points * max(self.depths) * 2)
        require_work(work, f"the grid (--width {self.width}, --depths up to {max(self.depths)}, --grid-points "
                           f"{self.points})", memory)


@dataclass(frozen=True, eq=False)
class GridResult:
    """One net of the grid study: its autocorrelation at lags 0..max_lag and its gradient at every grid point."""

    form: str
    depth: int
    seed: int
    autocorr: np.ndarray  # (max_lag + 1,)
    gradient: np.ndarray  # (points,)


@dataclass(frozen=True, eq=False)
class LineResult:
    """One lab model along `pairs` lines: corr[p, k] is the mean correlation of gradients `k` points apart."""

    target: Target
    corr: np.ndarray  # (pairs, max_lag + 1)
    images: tuple[tuple[int, int], ...]  # test-image indices of each line's ends
    points: int


# ----------------------------------------------------------------------------- statistics


def autocorrelation(signal: np.ndarray, max_lag: int) -> np.ndarray:
    """The sample autocorrelation r(k) = sum_i c_i c_(i+k) / sum_i c_i^2 of c = signal - mean, k = 0..max_lag.

    NaN throughout for a constant signal (no variation to correlate).
    """
    c = np.asarray(signal, dtype=np.float64) - np.mean(signal)
    energy = float(c @ c)
    if not energy > 0:
        return np.full(max_lag + 1, np.nan)
    return np.array([c[: len(c) - k] @ c[k:] for k in range(max_lag + 1)]) / energy


def lagged_correlation(vectors: torch.Tensor, max_lag: int) -> np.ndarray:
    """Mean over i of the Pearson correlation between rows i and i+k of (N, D) `vectors`, k = 0..max_lag."""
    c = vectors.double().flatten(1)
    c = c - c.mean(1, keepdim=True)
    c = c / c.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return np.array([float((c[: len(c) - k] * c[k:]).sum(1).mean()) for k in range(max_lag + 1)])


def seed_for(*parts: object) -> int:
    """A 63-bit seed from named parts: the same parts give the same seed in any process."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


# ----------------------------------------------------------------------------- the paper's set-up


def grid_net(form: str, depth: int, width: int, seed: int) -> nn.Module:
    """reslab's MLP on a 1-D input with one output, He-initialised as in the paper, in float64.

    Plain blocks are relu(norm(W h + b)); residual blocks pre-activation h + W relu(norm(h)), as He et al. 2016
    and the paper's resnets. Biases keep PyTorch's uniform init, so ReLU kinks fall inside the grid.
    """
    torch.manual_seed(seed)
    spec = FORMS[form]
    model = build_model("mlp", input_shape=(1, 1, 1), num_classes=1, width=width, depth=depth,
                        residual=spec.residual, norm=spec.norm, preact=spec.residual)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model.double()


@torch.no_grad()
def calibrate_batch_norm(model: nn.Module, x: torch.Tensor) -> bool:
    """Set every batch norm's statistics to those of batch `x`, then leave the model in eval mode.

    So a net at initialisation normalises as in training, while each output still depends on its own input
    only (per-point gradients). Returns whether the model has batch norms.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
    if norms:
        model.train()
        model(x)
    model.eval()
    return bool(norms)


def grid_gradient(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """d output / d input at every point of `x` (N, 1, 1, 1); the model must be in eval mode."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
    return grad.flatten().cpu().numpy()


def measure_grid(settings: GridSettings, seed: int, progress: bool = True) -> list[GridResult]:
    """Every form x depth x seed at initialisation (on the CPU, in float64: each net is small)."""
    x = torch.linspace(-settings.reach, settings.reach, settings.points, dtype=torch.float64).view(-1, 1, 1, 1)
    results = []
    for form in settings.forms:
        for depth in settings.depths:
            for s in range(settings.seeds):
                model = grid_net(form, depth, settings.width, seed_for("shatter-grid", seed, depth, s))
                calibrate_batch_norm(model, x)
                gradient = grid_gradient(model, x)
                results.append(GridResult(form, depth, s, autocorrelation(gradient, settings.max_lag), gradient))
        if progress:
            print(f"shatter: grid nets of form {form} measured", file=sys.stderr)
    return results


# ----------------------------------------------------------------------------- the lab's models


def line_pairs(data: ImageData, pairs: int, seed: int) -> list[tuple[int, int]]:
    """`pairs` seeded pairs of distinct test images (the line's two ends)."""
    if pairs < 1:
        raise ConfigError(f"--pairs must be >= 1, got {pairs}")
    if 2 * pairs > len(data.test_y):
        raise ConfigError(f"--pairs {pairs} needs {2 * pairs} test images, {data.name} has {len(data.test_y)}")
    order = torch.randperm(len(data.test_y), generator=torch.Generator().manual_seed(seed_for("shatter-line", seed)))
    return [(int(order[2 * p]), int(order[2 * p + 1])) for p in range(pairs)]


def line_gradients(model: nn.Module, start: torch.Tensor, end: torch.Tensor, cls: int, points: int) -> torch.Tensor:
    """(points, C, H, W): d logit[cls] / d input at `points` evenly spaced points from `start` to `end`."""
    t = torch.linspace(0, 1, points, device=start.device).view(-1, 1, 1, 1)
    x = ((1 - t) * start + t * end).requires_grad_(True)  # (points, C, H, W)
    (grad,) = torch.autograd.grad(model(x)[:, cls].sum(), x)
    return grad


def measure_lines(targets: Sequence[Target], *, pairs: int, points: int, max_lag: int, seed: int,
                  device: torch.device, progress: bool = True) -> list[LineResult]:
    """Every target along the same seeded lines between test images, in eval mode; a model at init first has its
    batch norms set from 256 training images (as in training), a trained one keeps its own statistics."""
    if points < 3:
        raise ConfigError(f"--line-points must be >= 3, got {points}")
    max_lag = min(max_lag, points - 2)
    data, _, _ = shared_data(targets)
    ends = line_pairs(data, pairs, seed)
    test_x = normalize(data.test_x[[i for pair in ends for i in pair]], data.mean, data.std).to(device)
    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))[:256]
    calibration = normalize(data.train_x[order], data.mean, data.std).to(device)
    results = []
    for target in targets:
        model, _ = build(target, data, device)
        check_model_takes(model, data, [(test_x, None)], target.cfg.model.name)
        if target.checkpoint is None:
            calibrate_batch_norm(model, calibration)
        model.eval()
        corr = np.stack([lagged_correlation(line_gradients(model, test_x[2 * p], test_x[2 * p + 1],
                                                           int(data.test_y[a]), points), max_lag)
                         for p, (a, _) in enumerate(ends)])
        results.append(LineResult(target, corr, tuple(ends), points))
        if progress:
            print(f"shatter: {target.label} ({target.at}) measured along {pairs} lines", file=sys.stderr)
    return results


# ----------------------------------------------------------------------------- the instrument's call


@dataclass(frozen=True)
class ShatterOptions:
    grid: GridSettings | None = GridSettings()  # the paper's grid; None: only the models given
    at: tuple[str, ...] = ("init",)
    pairs: int = 4  # lines between test images per model
    line_points: int = 128

    def __post_init__(self) -> None:
        bounded("--pairs", self.pairs, 1, 10_000)
        bounded("--line-points", self.line_points, 3, 100_000)


@dataclass(frozen=True)
class ShatterMeasurement:
    grid: tuple[GridResult, ...]
    lines: tuple[LineResult, ...]


def prepare(sources: Sequence[str], options: ShatterOptions, common: Common) -> list[Target]:
    check_seed(common.seed)
    targets = resolve_targets(sources, at=options.at, overrides=common.overrides,
                              settings=common.settings) if sources else []
    if options.grid is None and not targets:
        raise ConfigError("nothing to measure: give models or run folders, or leave the paper's grid on")
    return targets


def measure_targets(targets: Sequence[Target], options: ShatterOptions, common: Common) -> ShatterMeasurement:
    """The lab's models along lines between test images, then the paper's grid."""
    max_lag = options.grid.max_lag if options.grid is not None else DEFAULT_MAX_LAG
    lines = measure_lines(targets, pairs=options.pairs, points=options.line_points, max_lag=max_lag,
                          seed=common.seed, device=select_device(common.device),
                          progress=common.progress) if targets else []
    grid = measure_grid(options.grid, common.seed, common.progress) if options.grid is not None else []
    return ShatterMeasurement(tuple(grid), tuple(lines))
