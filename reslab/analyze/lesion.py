"""Lesion and reordering of trained nets (Veit, Wilber and Belongie 2016, "Residual networks behave like
ensembles of relatively shallow networks").

A block is deleted by replacing it with `Block.without_branch`: a residual block becomes its shortcut (then
post-act's ReLU), and so does a block of the plain twin, whose shortcut map (identity, or option A's subsample
and zero-pad at a downsampling block) always fits the shapes, so every block of either twin can be deleted.
Blocks are swapped only in pairs within one stage (same parent module, same layer type and widths, neither
downsampling), as Veit et al. reorder blocks within a stage; how far an order is from the original is Kendall's tau
(`lesion_paths.kendall_tau`). A residual twin is also unravelled into its paths (`lesion_paths`: the count and the
gradient of each path length, Veit et al.'s Figure 6).
The blocks deleted or swapped are drawn from `seed`, the number of blocks and k only, so twins of one depth
lose the same blocks. The numbers and words made of the errors are `reslab.analyze.lesion_summary`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import sys
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from reslab.analyze.lesion_paths import block_slots, gradient_by_length, is_residual
from reslab.analyze.registry import Common, bounded
from reslab.analyze.targets import Batches, Target, build, check_seed, in_format, resolve_targets, shared_data
from reslab.data import DeviceLoader, ImageData
from reslab.errors import ConfigError, DataError
from reslab.evaluate import check_model_takes, evaluate
from reslab.loaders import test_subset
from reslab.models.blocks import Block
from reslab.runtime import select_device

BLOCK_MODELS = ("mlp", "convnet", "cifar-resnet")  # the models built of `Block`s


@dataclass(frozen=True)
class BlockInfo:
    index: int  # 1-based, in forward order
    name: str  # module path, e.g. stages.1.0
    downsamples: bool  # its shortcut changes the shape (stride or width)
    shape: tuple[str, int, int]  # (layer type, in width, out width): blocks of one shape can swap places
    stage: str = ""  # the parent module (e.g. stages.1): blocks swap places within a stage only


@dataclass(frozen=True)
class Lesion:
    """One measurement: `deleted` blocks replaced by their shortcuts, or `swapped` pairs exchanged (1-based)."""

    experiment: str  # base | single | delete | swap
    k: int  # blocks deleted or pairs swapped
    draw: int  # 1.. within (experiment, k)
    deleted: tuple[int, ...] = ()
    swapped: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, eq=False)
class LesionResult:
    target: Target
    blocks: tuple[BlockInfo, ...]
    errors: tuple[tuple[Lesion, float], ...]  # test error (fraction) of each lesion
    chance: float  # 1 - 1 / classes
    images: int  # test images evaluated
    paths: tuple[tuple[float, ...], ...] = ()  # residual nets: the path gradients of each length k = 0..n


# ----------------------------------------------------------------------------- the net's blocks


def block_infos(model: nn.Module) -> tuple[BlockInfo, ...]:
    names = [name for name, m in model.named_modules() if isinstance(m, Block)]
    infos = []
    for i, (name, (_, _, block)) in enumerate(zip(names, block_slots(model)), 1):
        first, last = block.layers[0], block.layers[-1]
        width_in = getattr(first, "in_features", getattr(first, "in_channels", 0))
        width_out = getattr(last, "out_features", getattr(last, "out_channels", 0))
        infos.append(BlockInfo(i, name, block.downsamples, (type(first).__name__, width_in, width_out),
                               name.rpartition(".")[0]))
    return tuple(infos)


class _Deleted(nn.Module):
    """Stands in a deleted block's place: its shortcut only."""

    def __init__(self, block: Block) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.without_branch(x)


@contextlib.contextmanager
def lesioned(model: nn.Module, lesion: Lesion) -> Iterator[nn.Module]:
    """The model with `lesion` applied; every block is back in its place on exit, also after an exception."""
    slots = block_slots(model)
    placed: dict[int, nn.Module] = {i: _Deleted(slots[i - 1][2]) for i in lesion.deleted}
    for a, b in lesion.swapped:
        placed[a], placed[b] = slots[b - 1][2], slots[a - 1][2]
    try:
        for i, module in placed.items():
            parent, attr, _ = slots[i - 1]
            setattr(parent, attr, module)
        yield model
    finally:
        for parent, attr, block in slots:
            setattr(parent, attr, block)


# ----------------------------------------------------------------------------- what to measure


def _draw_rng(seed: int, experiment: str, n: int, k: int) -> random.Random:
    return random.Random(f"{seed}/{experiment}/{n}/{k}")  # str seeds are hashed stably (sha512)


def plan(blocks: Sequence[BlockInfo], *, draws: int, seed: int) -> list[Lesion]:
    """Base, each block alone, k = 1..n random blocks (`draws` distinct draws, or all subsets when fewer),
    and k = 1.. random disjoint pairs of same-shape blocks of one stage swapped (`draws` draws each)."""
    n = len(blocks)
    lesions = [Lesion("base", 0, 1)] + [Lesion("single", 1, 1, (b.index,)) for b in blocks]
    for k in range(1, n + 1):
        if math.comb(n, k) <= draws:
            subsets = list(itertools.combinations(range(1, n + 1), k))
        else:
            rng, seen = _draw_rng(seed, "delete", n, k), set()
            while len(seen) < draws:
                seen.add(tuple(sorted(rng.sample(range(1, n + 1), k))))
            subsets = sorted(seen)
        lesions += [Lesion("delete", k, d, subset) for d, subset in enumerate(subsets, 1)]
    groups: dict[tuple, list[int]] = {}
    for b in blocks:
        if not b.downsamples:
            groups.setdefault((b.stage, *b.shape), []).append(b.index)
    max_pairs = sum(len(g) // 2 for g in groups.values())
    for k in range(1, max_pairs + 1):
        rng = _draw_rng(seed, "swap", n, k)
        for d in range(1, draws + 1):
            free = {shape: list(g) for shape, g in groups.items()}
            pairs = []
            for _ in range(k):
                shape = rng.choice(sorted(s for s, g in free.items() if len(g) >= 2))
                a, b = rng.sample(free[shape], 2)
                free[shape] = [i for i in free[shape] if i not in (a, b)]
                pairs.append((min(a, b), max(a, b)))
            lesions.append(Lesion("swap", k, d, swapped=tuple(sorted(pairs))))
    return lesions


def eval_batches(data: ImageData, *, subset: int | None, seed: int, batch_size: int, device: torch.device,
                 test_size: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`subset` test images drawn with `seed` (sorted, so the order is the test set's), else the test images the
    runs were tested on (all, or data.test_size of them, as the trainer picks them)."""
    n = len(data.test_y)
    if subset is not None and not 1 <= subset <= n:
        raise ConfigError(f"--subset must be in 1..{n} (the test set of {data.name}), got {subset}")
    if n == 0:
        raise DataError(f"{data.name} has no test images to evaluate lesions on")
    idx = test_subset(n, test_size) if subset is None else \
        torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:subset].sort().values
    return list(DeviceLoader(data.test_x[idx], data.test_y[idx], batch_size=batch_size, mean=data.mean,
                             std=data.std, device=device))


def check_blocks(target: Target, model: nn.Module) -> None:
    if not block_slots(model):
        raise ConfigError(f"{target.label} ({target.cfg.model.name}) has no blocks to delete; lesion needs a model "
                          f"built of blocks: {', '.join(BLOCK_MODELS)}")


# ----------------------------------------------------------------------------- measuring


def measure(model: nn.Module, batches: Batches, num_classes: int, lesions: Sequence[Lesion]) -> list[float]:
    """The test error (fraction) of the model under each lesion, in eval mode; the model is left intact.

    A lesion met twice (a single deletion is also a draw of k = 1) is evaluated once.
    """
    done: dict[tuple, float] = {}
    for lesion in lesions:
        key = (lesion.deleted, lesion.swapped)
        if key not in done:
            with lesioned(model, lesion):
                done[key] = 1.0 - evaluate(model, batches, num_classes).acc
    return [done[(lesion.deleted, lesion.swapped)] for lesion in lesions]


def analyse(targets: Sequence[Target], *, subset: int | None = None, draws: int = 10, device: str = "auto",
            seed: int = 0, progress: bool = True, path_images: int = 0) -> list[LesionResult]:
    """Every target's lesions on the same test images, and a residual net's path gradients on the first
    `path_images` of them (0: none); progress lines go to stderr."""
    if draws < 1:
        raise ConfigError(f"--draws must be >= 1, got {draws}")
    if path_images < 0:
        raise ConfigError(f"--path-images must be >= 0, got {path_images}")
    check_seed(seed)
    dev = select_device(device)
    data, _, _ = shared_data(targets)
    test_sizes = {t.cfg.data.test_size for t in targets}
    if subset is None and len(test_sizes) > 1:
        sizes = ", ".join(sorted(map(str, test_sizes)))
        raise ConfigError(f"the runs were tested on different numbers of test images (data.test_size {sizes}); "
                          "pass --subset N to evaluate them on the same ones")
    batches = eval_batches(data, subset=subset, seed=seed, batch_size=targets[0].cfg.data.eval_batch_size,
                           device=dev, test_size=targets[0].cfg.data.test_size)
    images = sum(len(y) for _, y in batches)
    if progress:
        what = f"a seeded subset (seed {seed}) of {images}" if subset is not None else f"the runs' {images}"
        print(f"lesion: {what} test images of {data.name}, device {dev}", file=sys.stderr)
    models = []
    for target in targets:  # every model is checked before the first is measured
        model, channels_last = build(target, data, dev)
        check_blocks(target, model)
        models.append((target, model, in_format(batches, channels_last)))
    results = []
    for target, model, inputs in models:
        check_model_takes(model, data, inputs, target.cfg.model.name)
        blocks = block_infos(model)
        lesions = plan(blocks, draws=draws, seed=seed)
        errors = measure(model, inputs, data.num_classes, lesions)
        paths: tuple[tuple[float, ...], ...] = ()
        if path_images and is_residual(model):
            x, y = (torch.cat(t)[:path_images] for t in zip(*inputs))
            paths = tuple(map(tuple, gradient_by_length(model.eval(), x, y, draws=draws, seed=seed)))
        results.append(LesionResult(target, blocks, tuple(zip(lesions, errors)), 1 - 1 / data.num_classes, images,
                                    paths))
        if progress:
            print(f"lesion: {target.label}: {len(blocks)} blocks, {len(lesions)} evaluations, base error "
                  f"{errors[0]:.4f}", file=sys.stderr)
    return results


def errors_by(result: LesionResult, experiment: str) -> Mapping[int, list[float]]:
    """k -> the errors of that experiment's draws."""
    out: dict[int, list[float]] = {}
    for lesion, error in result.errors:
        if lesion.experiment == experiment:
            out.setdefault(lesion.k, []).append(error)
    return out


# ----------------------------------------------------------------------------- the instrument's call


@dataclass(frozen=True)
class LesionOptions:
    at: str = "best"  # the checkpoint: best | last
    subset: int | None = None  # test images drawn with the seed (None: those the runs were tested on)
    draws: int = 10  # random draws per k
    path_images: int = 128  # test images the path gradients are measured on (0: no paths)

    def __post_init__(self) -> None:
        bounded("--draws", self.draws, 1, 10_000)  # evaluations: about 2 x blocks x draws, each over the test images
        bounded("--path-images", self.path_images, 0, 100_000)


def prepare(sources: Sequence[str], options: LesionOptions, common: Common) -> list[Target]:
    return resolve_targets(sources, at=(options.at,), overrides=common.overrides, settings=common.settings)


def measure_targets(targets: Sequence[Target], options: LesionOptions, common: Common) -> list[LesionResult]:
    return analyse(targets, subset=options.subset, draws=options.draws, device=common.device, seed=common.seed,
                   progress=common.progress, path_images=options.path_images)
