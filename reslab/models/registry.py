"""Model registry: a name maps to a builder function whose typed keyword args are the model's config.

The config system reads `model_args` to check `model.depth=8` overrides and to save the resolved
config, so a builder's signature is the single source of truth for its knobs and defaults.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from ..checks import coerce, require
from ..errors import ConfigError

Builder = Callable[..., nn.Module]

_BUILDERS: dict[str, Builder] = {}
_FIXED_ARGS = ("input_shape", "num_classes")


def require_choice(model: str, key: str, value: str, choices: Sequence[str]) -> None:
    """Raise ConfigError unless `value` is one of `choices`."""
    require(value in choices, f"model {model!r}: {key} must be one of {', '.join(choices)}; got {value!r}")


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register `builder(input_shape, num_classes, *, typed kwargs with defaults)` as `name`."""

    def decorator(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _check_signature(name, builder)
        _BUILDERS[name] = builder
        return builder

    return decorator


def _check_signature(name: str, builder: Builder) -> None:
    """Catch malformed builders at import time (a bug, so TypeError, not ConfigError)."""
    params = list(inspect.signature(builder).parameters.values())
    if tuple(p.name for p in params[:2]) != _FIXED_ARGS:
        raise TypeError(f"builder for {name!r} must start with (input_shape, num_classes)")
    hints = typing.get_type_hints(builder)
    for p in params[2:]:
        if p.kind is not p.KEYWORD_ONLY or p.default is p.empty or p.name not in hints:
            raise TypeError(f"builder for {name!r}: {p.name} must be keyword-only, typed, with a default")


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_BUILDERS)


def _builder(name: str) -> Builder:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(model_names())}") from None


def model_args(name: str) -> dict[str, tuple[type, Any]]:
    """The builder's keyword args other than input_shape/num_classes: name -> (annotated type, default)."""
    builder = _builder(name)
    hints = typing.get_type_hints(builder)
    params = inspect.signature(builder).parameters.values()
    return {p.name: (hints[p.name], p.default) for p in params if p.kind is p.KEYWORD_ONLY}


def build_model(name: str, *, input_shape: Sequence[int], num_classes: int, **kw: Any) -> nn.Module:
    """Build model `name` for inputs of shape (C, H, W) and `num_classes` outputs; bad args -> ConfigError."""
    builder = _builder(name)
    args = model_args(name)
    unknown = sorted(set(kw) - set(args))
    require(not unknown, f"unknown argument(s) {', '.join(unknown)} for model {name!r}; valid: {', '.join(args)}")
    kw = {key: coerce(value, args[key][0], f"model {name!r}: {key}") for key, value in kw.items()}
    shape = tuple(input_shape)
    require(
        len(shape) == 3 and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape),
        f"input_shape must be three positive ints (C, H, W); got {input_shape!r}",
    )
    require(
        isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes >= 1,
        f"num_classes must be a positive int; got {num_classes!r}",
    )
    return builder(shape, num_classes, **kw)


def init_of(name: str, args: Mapping[str, Any]) -> str:
    """What model `name` with `args` (a run's model arguments, maybe from before `init` existed) starts from, in
    words: `init.init_label` with the model's own default init; "" for an unknown model."""
    from .init import init_label

    try:
        default = model_args(name).get("init", (str, "torch-default"))[1]
    except ConfigError:
        return ""
    return init_label(args, default)


@typing.runtime_checkable
class Classifier(typing.Protocol):
    """The one model interface: `forward(x) == head(pool(features(x)).flatten(1))`. `features` is the last
    spatial map for conv models (what CAM and Grad-CAM weigh; after the last norm/ReLU/residual add), the last
    hidden vector for MLPs (`pool` then an identity); `head` is the classifier's one Linear layer (what transfer
    replaces and network surgery turns into a 1x1 convolution)."""

    pool: nn.Module
    head: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor: ...


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
