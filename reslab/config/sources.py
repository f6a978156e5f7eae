"""Presets, YAML files and dotted `--set` overrides, read into a validated `RunConfig` (see `schema`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from reslab import files, yamlsafe
from reslab.config.convert import from_dict, to_dict
from reslab.config.schema import RunConfig
from reslab.errors import ConfigError


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("reslab.presets").iterdir() if p.name.endswith(".yaml"))


MAX_CONFIG_BYTES = 2**20  # a config or sweep file is a few kilobytes


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        values = yamlsafe.load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must hold a mapping of config sections")
    return values


def _read_file(path: Path, what: str) -> str:
    """A config file's text: a regular file of at most MAX_CONFIG_BYTES (a pipe or /dev/zero is refused, not read)."""
    try:
        return files.read_capped(path, MAX_CONFIG_BYTES).decode()
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist") from None
    except files.NotAFile:
        raise ConfigError(f"{what} is not a file") from None
    except files.TooLarge as exc:
        raise ConfigError(f"{what} is too large ({exc.size:,} bytes; a config file is read up to "
                          f"{MAX_CONFIG_BYTES:,} bytes)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what}: {exc}") from None


def load_source(preset_or_file: str) -> dict[str, Any]:
    """Raw values of a preset name or a YAML file (not yet validated)."""
    path = Path(preset_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if path.is_dir():
            raise ConfigError(f"config file {preset_or_file} does not exist")
        return _read_yaml(_read_file(path, f"config file {preset_or_file}"), f"config file {preset_or_file}")
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
        value = yamlsafe.load(raw) if raw.strip() else None
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
    """Set `values[a][b]... = value` in raw nested values, creating sections as needed."""
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
