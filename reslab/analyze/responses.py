"""Layer responses (He, Zhang, Ren and Sun 2015, Figure 7): the std of each layer's response, plain against
residual twins (`reslab analyze responses`).

He et al.'s response is the output of each 3x3 layer after batch norm and before the nonlinearity (the ReLU, and
the addition in a residual block). Here, per layer of every block (forward order; the stem and the classifier are
not blocks and are left out): in a post-activation block the output of the layer's norm (with no normalisation,
norm=none, that is the layer's linear/conv output itself); in a pre-activation block, where the norm comes before
the layer, the layer's linear/conv output. The std is over every element of the response (batch, features or
channels and positions), averaged over the batches. A trained net is measured in eval mode (batch norm with its
running statistics, as at test time), a net at init in train mode (the batch's statistics, as its first step).
The numbers and words made of the stds are `reslab.analyze.responses_summary`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from reslab.analyze.registry import Common, bounded
from reslab.analyze.targets import Batches, Target, build, in_format, resolve_targets, shared_batches
from reslab.errors import ConfigError
from reslab.evaluate import check_model_takes
from reslab.models.blocks import Block


@dataclass(frozen=True)
class LayerResponse:
    layer: int  # 1-based over the blocks' layers, forward order
    block: int  # 1-based
    name: str  # the module whose output is the response (a norm, or the layer where there is none after it)
    after: str  # "bn" (after batch norm) | "norm" (another normalisation) | "layer" (the linear/conv op's output)
    std: float


@dataclass(frozen=True, eq=False)
class ResponsesResult:
    target: Target
    layers: tuple[LayerResponse, ...]
    mode: str  # "eval" | "train": how batch norm normalised


def response_modules(model: nn.Module) -> list[tuple[int, str, str, nn.Module]]:
    """(block, name, after, module) for every layer of every block: the module whose output is its response."""
    out = []
    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, Block)]
    for b, (name, block) in enumerate(blocks, 1):
        for i, (layer, norm) in enumerate(zip(block.layers, block.norms)):
            if block.preact or isinstance(norm, nn.Identity):
                out.append((b, f"{name}.layers.{i}", "layer", layer))
            else:
                after = "bn" if isinstance(norm, nn.modules.batchnorm._BatchNorm) else "norm"
                out.append((b, f"{name}.norms.{i}", after, norm))
    return out


def measure(model: nn.Module, batches: Batches, *, train_mode: bool) -> list[LayerResponse]:
    """Each layer's response std, the mean over `batches`; the hooks are removed and the mode restored on exit."""
    modules = response_modules(model)
    current: dict[int, float] = {}
    per_batch: list[list[float]] = []

    def hook(index: int):  # noqa: ANN202 -- a forward hook recording one layer
        def record(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            current[index] = float(output.float().std())
        return record

    handles = [m.register_forward_hook(hook(i)) for i, (_, _, _, m) in enumerate(modules)]
    was_training = model.training
    model.train(train_mode)
    try:
        with torch.no_grad():
            for x, _ in batches:
                current.clear()
                model(x)
                per_batch.append([current[i] for i in range(len(modules))])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    means = np.mean(np.array(per_batch, dtype=np.float64), axis=0)
    return [LayerResponse(i, block, name, after, float(std))
            for i, ((block, name, after, _), std) in enumerate(zip(modules, means), 1)]


def analyse(targets: Sequence[Target], *, batches: int = 4, device: str = "auto", seed: int = 0,
            progress: bool = True) -> list[ResponsesResult]:
    """Every target on the same `batches` training batches; progress lines go to stderr."""
    data, dev, drawn = shared_batches(targets, batches=batches, device=device, seed=seed, what="responses",
                                      progress=progress)
    models = []
    for target in targets:  # every model is checked before the first is measured
        model, channels_last = build(target, data, dev)
        if not response_modules(model):
            raise ConfigError(f"{target.label} ({target.cfg.model.name}) has no blocks to measure; responses needs "
                              "a model built of blocks: mlp, convnet, cifar-resnet")
        models.append((target, model, in_format(drawn, channels_last)))
    results = []
    for target, model, inputs in models:
        check_model_takes(model, data, inputs, target.cfg.model.name)
        train_mode = target.checkpoint is None
        results.append(ResponsesResult(target, tuple(measure(model, inputs, train_mode=train_mode)),
                                       "train" if train_mode else "eval"))
        if progress:
            print(f"responses: {target.label} measured", file=sys.stderr)
    return results


# ----------------------------------------------------------------------------- the instrument's call


@dataclass(frozen=True)
class ResponsesOptions:
    at: str = "last"  # init | best | last
    batches: int = 4

    def __post_init__(self) -> None:
        bounded("--batches", self.batches, 1, 100_000)


def prepare(sources: Sequence[str], options: ResponsesOptions, common: Common) -> list[Target]:
    return resolve_targets(sources, at=(options.at,), overrides=common.overrides, settings=common.settings)


def measure_targets(targets: Sequence[Target], options: ResponsesOptions, common: Common) -> list[ResponsesResult]:
    return analyse(targets, batches=options.batches, device=common.device, seed=common.seed,
                   progress=common.progress)
