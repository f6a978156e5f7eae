"""Presets, YAML files and dotted `--set` overrides, read into a validated `RunConfig` (see `schema`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from reslab.config.schema import RunConfig, from_dict, to_dict
from reslab.errors import ConfigError


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("reslab.presets").iterdir() if p.name.endswith(".yaml"))


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error instead of the last one winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise yaml.constructor.ConstructorError(None, None, f"key {twice[0]} given twice", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        values = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must hold a mapping of config sections")
    return values


def load_source(preset_or_file: str) -> dict[str, Any]:
    """Raw values of a preset name or a YAML file (not yet validated)."""
    path = Path(preset_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {preset_or_file} does not exist")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {preset_or_file}: {exc}") from None
        return _read_yaml(text, f"config file {preset_or_file}")
    if preset_or_file not in preset_names():
        if "/" in preset_or_file or preset_or_file.startswith((".", "~")):  # meant as a path, not a preset
            raise ConfigError(f"{preset_or_file} does not exist (neither a run folder nor a config file)")
        raise ConfigError(f"unknown preset {preset_or_file!r}; presets: {', '.join(preset_names())} "
                          "(or give a path to a .yaml config file)")
    text = resources.files("reslab.presets").joinpath(preset_or_file + ".yaml").read_text()
    return _read_yaml(text, f"preset {preset_or_file}")


def parse_override(item: str) -> tuple[list[str], Any]:
    """'model.depth=8' -> (['model', 'depth'], 8); the value is read as YAML ('1e-3', 'true', '[1, 2]')."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value (e.g. model.depth=8), got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _looks_like_float(value):
        value = float(value)  # YAML 1.1 reads '1e-3' as a string
    return key.strip().split("."), value


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def apply_overrides(values: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a deep copy of raw `values` with each 'a.b=value' set; keys are checked in `from_dict`."""
    out = _deep_copy(values)
    for item in overrides:
        path, value = parse_override(item)
        set_key(out, path, value)
    return out


def set_key(values: dict[str, Any], path: list[str], value: Any) -> None:
    """Set values[a][b]... = value in raw nested values, creating sections as needed."""
    node = values
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def _deep_copy(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in values.items()}


def resolve(preset_or_file: str, overrides: list[str] = ()) -> RunConfig:  # type: ignore[assignment]
    """Preset or file, then overrides, validated into a frozen RunConfig."""
    return from_dict(apply_overrides(load_source(preset_or_file), list(overrides)))


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
