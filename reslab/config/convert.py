"""A `RunConfig` from plain values and back (`from_dict`, `to_dict`), flattened keys and what changed between two
configs. Unknown keys and wrong types are `ConfigError`s that list what is valid."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import fields
from typing import Any, Mapping, get_type_hints

from reslab.checks import coerce
from reslab.config.schema import (DataConfig, GradflowConfig, ModelConfig, OptimConfig, RunConfig, TrackConfig,
                                  TrainConfig)
from reslab.errors import ConfigError

_SECTIONS = {"data": DataConfig, "optim": OptimConfig, "train": TrainConfig, "track": TrackConfig,
             "gradflow": GradflowConfig}


def _section_from_dict(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix} must be a mapping of keys to values, got {values!r}")
    hints = get_type_hints(cls)
    valid = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in valid:
            raise ConfigError(f"unknown key {prefix}.{key}; valid keys: {', '.join(valid)}")
        if dataclasses.is_dataclass(hints[key]):  # a sub-section (train.distill)
            kwargs[key] = _section_from_dict(hints[key], value or {}, f"{prefix}.{key}")
        else:
            kwargs[key] = coerce(value, hints[key], f"{prefix}.{key}")
    return cls(**kwargs)


def _model_from_dict(values: Mapping[str, Any]) -> ModelConfig:
    from reslab.models import model_args  # lazy: keeps config importable without building models

    if not isinstance(values, Mapping):
        raise ConfigError(f"model must be a mapping of keys to values, got {values!r}")
    values = dict(values)
    name = values.pop("name", ModelConfig.name)
    if isinstance(values.get("args"), Mapping):  # the nested form is accepted too
        values.update(values.pop("args"))
    spec = model_args(str(name))  # raises ConfigError for unknown models
    args = {}
    for key, (tp, default) in spec.items():
        args[key] = coerce(values.pop(key), tp, f"model.{key}") if key in values else default
    if values:
        raise ConfigError(f"unknown key model.{next(iter(values))} for model {name}; "
                          f"valid keys: name, {', '.join(spec)}")
    return ModelConfig(name=str(name), args=args)


def from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Build a resolved, validated RunConfig from nested plain values (as read from YAML)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(values).__name__}")
    valid = [f.name for f in fields(RunConfig)]
    unknown = [k for k in values if k not in valid]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]}; valid keys: {', '.join(valid)}")
    kwargs: dict[str, Any] = {}
    for key in ("name", "runs_dir"):
        if key in values:
            kwargs[key] = coerce(values[key], str, key)
    for key, cls in _SECTIONS.items():
        kwargs[key] = _section_from_dict(cls, values.get(key) or {}, key)
    kwargs["model"] = _model_from_dict(values.get("model") or {})
    return _expand_paths(RunConfig(**kwargs))


def _expand_paths(cfg: RunConfig) -> RunConfig:
    """`~` in every path, expanded once here, so reslab's checks and torchvision see the same folder."""
    data, dataset = cfg.data, cfg.data.dataset
    if dataset.startswith("imagefolder:"):
        dataset = "imagefolder:" + os.path.expanduser(dataset.removeprefix("imagefolder:"))
    data = dataclasses.replace(data, dataset=dataset,
                               data_dir=os.path.expanduser(data.data_dir) if data.data_dir else data.data_dir)
    return dataclasses.replace(cfg, runs_dir=os.path.expanduser(cfg.runs_dir), data=data)


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain nested values (lists, not tuples) that `from_dict` reads back to an equal config."""

    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return v

    out: dict[str, Any] = {"name": cfg.name, "runs_dir": cfg.runs_dir}
    for key in _SECTIONS:
        out[key] = plain(dataclasses.asdict(getattr(cfg, key)))
    out["model"] = {"name": cfg.model.name, **plain(dict(cfg.model.args))}
    return out


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}: nested sections as dotted keys (an empty section stays a value)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(old: RunConfig, new: RunConfig, allowed: tuple[str, ...] = ()) -> list[str]:
    """The dotted keys whose values differ, but those `allowed` (a key, or a section prefix ending in '.')."""
    a, b = flatten(to_dict(old)), flatten(to_dict(new))
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
            and not any(k == c or (c.endswith(".") and k.startswith(c)) for c in allowed)]
