"""One type checker for every value a user gives: config keys and model arguments alike.

Values come from YAML or `--set`, so they are plain Python values; `coerce` checks one against a type
annotation and returns it in canonical form, or raises a one-line `ConfigError` naming the key.
"""

from __future__ import annotations

import math
import types
from typing import Any, Literal, Union, get_args, get_origin

from reslab.errors import ConfigError


def require(condition: bool, message: str) -> None:
    """Raise a one-line ConfigError unless `condition` holds (a user-given value out of range)."""
    if not condition:
        raise ConfigError(message)



def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` and return it in canonical form (ints to floats, lists to tuples)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        arms = get_args(tp)
        if value is None and type(None) in arms:
            return None
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return coerce(value, arm, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool) and ("on" if value else "off") in get_args(tp):
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off (as in --set train.amp=off) as a bool
        if value not in get_args(tp):
            raise ConfigError(f"{key} must be one of {', '.join(map(str, get_args(tp)))}; got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list ({_type_name(tp)}), got {value!r}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key} must have {len(args)} values, got {len(value)}")
        return tuple(coerce(v, a, key) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond any float
                number = math.inf
            if not math.isfinite(number):
                raise ConfigError(f"{key} must be a finite number, got {value!r}")
            return number
    elif tp is str:
        if isinstance(value, str):
            if "\x00" in value:
                raise ConfigError(f"{key} must not contain NUL characters, got {value!r}")
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    if origin is tuple:
        return "a list of numbers"
    return {type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def memory_available() -> int | None:
    """Bytes of physical memory this machine has free (Linux: MemAvailable), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def require_memory(needed: int, what: str, available: int | None = None) -> None:
    """Refuse, with the sizes, what would not fit in memory (instead of a crash or the OOM killer later)."""
    available = memory_available() if available is None else available
    if available is not None and needed > 0.9 * available:
        raise ConfigError(f"{what} needs about {needed / 2**30:.1f} GiB, and {available / 2**30:.1f} GiB "
                          "of memory are available here")
