"""Activation scale at initialisation, block by block, for each block form (`reslab analyze init`).

Each model runs in train mode (batch norm uses the batch's statistics, as the first training step does)
on the same batches, with no gradient. Per block it records the std of the block's output, of its branch
(what is added: alpha * body(x)) and of its shortcut, averaged over the batches. Given one model, the
instrument compares the block forms at its depth (plain, residual with batch norm, residual with a plain
sum and no norm, SkipInit/ReZero, Fixup); given several, it measures them as they are (or `forms` of each).
The numbers and words made of the records are `reslab.analyze.init_summary`.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from reslab.analyze.registry import Common, bounded
from reslab.analyze.targets import Batches, Target, build, in_format, resolve_targets, shared_batches
from reslab.evaluate import check_model_takes
from reslab.errors import ConfigError
from reslab.models.blocks import Block

# form -> the model arguments that make it; every other block-form argument is reset to its default
FORMS: dict[str, dict[str, Any]] = {
    "plain": {"residual": False, "norm": "none"},
    "plain-bn": {"residual": False, "norm": "batch"},
    "residual-bn": {"residual": True, "norm": "batch"},
    "residual": {"residual": True, "norm": "none"},
    "rezero": {"residual": True, "norm": "none", "rezero": True},
    "fixup": {"residual": True, "norm": "none", "fixup": True},
}
DEFAULT_FORMS = ("plain", "residual-bn", "residual", "rezero", "fixup")
_RESET = {"zero_init": False, "rezero": False, "fixup": False}


@dataclass(frozen=True)
class BlockStats:
    block: int  # 1-based, forward order
    name: str
    downsamples: bool
    out_std: float  # std of the block's output
    branch_std: float  # std of what the branch adds (alpha * body(x))
    skip_std: float  # std of the shortcut's output (a plain block does not add it)


@dataclass(frozen=True, eq=False)
class InitResult:
    target: Target
    form: str  # a FORMS name, or "" for a model measured as given
    input_std: float  # std of the first block's input
    blocks: tuple[BlockStats, ...]


def form_of(cfg: Any) -> str:
    """What kind of block a config builds: plain | normalised | plain-sum | rezero | fixup."""
    args = cfg.model.args
    if not args.get("residual"):
        return "plain"
    if args.get("norm", "none") != "none":
        return "normalised"
    return "rezero" if args.get("rezero") else "fixup" if args.get("fixup") else "plain-sum"


def parse_forms(forms: str | None, sources: Sequence[str]) -> tuple[str, ...]:
    """--forms: a comma-separated list of FORMS, 'given' for none; default: all when one model is given."""
    if forms is None:
        return DEFAULT_FORMS if len(sources) == 1 else ()
    if forms == "given":
        return ()
    names = tuple(f.strip() for f in forms.split(",") if f.strip())
    unknown = [f for f in names if f not in FORMS]
    if unknown or not names:
        raise ConfigError(f"--forms takes a comma-separated list of {', '.join(FORMS)} (or 'given'); "
                          f"got {forms!r}")
    return tuple(dict.fromkeys(names))


def init_targets(sources: Sequence[str], *, forms: Sequence[str], overrides: Sequence[str] = (),
                 settings: Mapping[str, Any] | None = None) -> list[tuple[Target, str]]:
    """Each source at init, once per form (labelled 'source:form'), or as given when `forms` is empty."""
    given = resolve_targets(sources, overrides=overrides, settings=settings)
    if not forms:
        return [(t, "") for t in given]
    lacking = [t.label for t in given if "residual" not in t.cfg.model.args]
    if lacking:
        raise ConfigError(f"--forms needs models with block forms (mlp, convnet, cifar-resnet); "
                          f"{', '.join(lacking)} has none (use --forms given)")
    out = []
    for form in forms:
        extra = [f"model.{k}={str(v).lower()}" for k, v in {**_RESET, **FORMS[form]}.items()]
        for target in resolve_targets(sources, overrides=[*overrides, *extra], settings=settings):
            out.append((dataclasses.replace(target, label=f"{target.label}:{form}"), form))
    return out


def measure(model: nn.Module, batches: Batches) -> tuple[float, list[BlockStats]]:
    """(std of the first block's input, per-block stds), means over the batches; the hooks are removed on exit."""
    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, Block)]
    per_batch: list[list[tuple[float, float, float]]] = []
    inputs: list[float] = []
    current: list[tuple[float, float, float]] = []

    def record(block: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        (x,) = args
        if not current:
            inputs.append(float(x.float().std()))
        current.append((float(output.float().std()), float(block.branch(x).float().std()),
                        float(block.shortcut(x).float().std())))

    handles = [m.register_forward_hook(record) for _, m in blocks]
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            for x, _ in batches:
                current = []
                model(x)
                per_batch.append(current)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    means = np.mean(np.array(per_batch, dtype=np.float64), axis=0)  # (blocks, 3)
    return float(np.mean(inputs)), [BlockStats(i, name, block.downsamples, *map(float, row))
                                    for i, ((name, block), row) in enumerate(zip(blocks, means), 1)]


def analyse(pairs: Sequence[tuple[Target, str]], *, batches: int = 4, device: str = "auto", seed: int = 0,
            progress: bool = True) -> list[InitResult]:
    """Every model at init on the same `batches` training batches; progress lines go to stderr."""
    data, dev, drawn = shared_batches([t for t, _ in pairs], batches=batches, device=device, seed=seed, what="init",
                                      progress=progress)
    results = []
    for target, form in pairs:
        model, channels_last = build(target, data, dev)
        if not any(isinstance(m, Block) for m in model.modules()):
            raise ConfigError(f"{target.label} ({target.cfg.model.name}) has no blocks to measure; init needs a "
                              "model built of blocks: mlp, convnet, cifar-resnet")
        inputs = in_format(drawn, channels_last)
        check_model_takes(model, data, inputs, target.cfg.model.name)
        input_std, stats = measure(model, inputs)
        results.append(InitResult(target, form, input_std, tuple(stats)))
        if progress:
            print(f"init: {target.label} measured", file=sys.stderr)
    return results


# ----------------------------------------------------------------------------- the instrument's call


@dataclass(frozen=True)
class InitOptions:
    forms: str | None = None  # --forms as given: comma-separated FORMS, 'given', or None (the default)
    batches: int = 4

    def __post_init__(self) -> None:
        bounded("--batches", self.batches, 1, 100_000)


def prepare(sources: Sequence[str], options: InitOptions, common: Common) -> list[tuple[Target, str]]:
    return init_targets(sources, forms=parse_forms(options.forms, sources), overrides=common.overrides,
                        settings=common.settings)


def measure_targets(pairs: Sequence[tuple[Target, str]], options: InitOptions, common: Common) -> list[InitResult]:
    return analyse(pairs, batches=options.batches, device=common.device, seed=common.seed, progress=common.progress)
