"""The sweep file: what a depth study runs, read, checked and expanded into one resolved config per run.

A sweep file (YAML) holds `base` (a preset or config file), `set` (fixed overrides), `grid` (dotted keys to
lists of values), `seeds` (a count or a list), an optional `name`, an optional `tune` (a nuisance key whose
value is picked per cell on the validation split) and optional `cases` (settings for the cells whose grid
values match, or `skip: true` to leave those cells out: He et al.'s ResNet-110 warm-up, no plain-110).
Everything is checked here, every run's config included, before anything runs or is written.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from reslab.config import RunConfig, apply_overrides, flatten, from_dict, load_source, set_key
from reslab.errors import ConfigError

SWEEP_KEYS = ("base", "set", "grid", "seeds", "name", "tune", "cases")
TUNE_KEYS = ("key", "values", "by")
CASE_KEYS = ("when", "set", "skip")
TUNE_BY = ("best_val_acc", "final_val_acc")  # validation metrics, higher is better
RESERVED = ("name", "runs_dir", "train.seed")  # the sweep sets these itself
RESIDUAL = "model.residual"  # the grid key whose false/true cells are plain/residual twins
MAX_NAME = 200  # characters of a run's folder prefix (the trainer appends -<date>-<time>-<id>)


@dataclass(frozen=True)
class Tune:
    key: str  # a dotted config key, e.g. optim.lr
    values: tuple[Any, ...]
    by: str  # a validation metric of summary.json (TUNE_BY)


@dataclass(frozen=True)
class Case:
    """Per-cell settings: the cells whose grid values match `when` get `settings` on top of `set`, or are skipped.

    Cases never change a run's name: its folder is named by its swept values, as without cases."""

    when: dict[str, Any]  # grid key -> value
    settings: dict[str, Any]  # dotted key -> value (empty when `skip`)
    skip: bool = False

    def matches(self, grid_values: Mapping[str, Any]) -> bool:
        return all(text(grid_values[k]) == text(v) for k, v in self.when.items())

    def describe(self) -> str:
        """'model.depth=110, model.residual=true: optim.warmup_epochs=1.137' (or ': skipped')."""
        what = "skipped" if self.skip else ", ".join(f"{k}={text(v)}" for k, v in self.settings.items())
        return ", ".join(f"{k}={text(v)}" for k, v in self.when.items()) + f": {what}"


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep file."""

    path: Path  # the sweep file
    name: str  # the sweep folder's name
    base: str  # a preset name or a config file path (relative paths: to the sweep file first)
    fixed: dict[str, Any]  # `set`, as dotted keys
    grid: dict[str, list[Any]]  # dotted key -> values, in the file's order
    seeds: tuple[int, ...]
    tune: Tune | None
    raw: dict[str, Any]  # the file's values, to compare with a sweep folder's copy
    cases: tuple[Case, ...] = ()

    @property
    def swept(self) -> list[str]:
        """The keys that vary between runs (grid keys, then the tuned key), without the seed."""
        return [*self.grid, *([self.tune.key] if self.tune else [])]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its swept values, seed, stable name and resolved config."""

    key: str  # the run's stable, filesystem-safe name: its folders are runs/<key>-<date>-<time>-<id>
    values: dict[str, Any]  # swept key -> value (grid keys, then the tuned key)
    seed: int
    cell: str  # the grid values alone, e.g. "model.depth=8,model.residual=true": runs that differ only by seed/tune
    cfg: RunConfig


def text(value: Any) -> str:
    """A swept value as written in names and tables: YAML's spelling for true/false/null, JSON for lists."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (not yet its runs' configs: see `expand`)."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"sweep file {path} must be a .yaml file")
    try:
        raw = load_source(str(path))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("config file", "sweep file", 1)) from None
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]} in sweep file {path}; valid keys: {', '.join(SWEEP_KEYS)}")
    where = f"sweep file {path}"
    if not isinstance(raw.get("base"), str) or not raw["base"].strip():
        raise ConfigError(f"{where} needs `base`: a preset name or a config file")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+=,-]*", name):
        raise ConfigError(f"{where}: name must be a folder name of letters, digits and ._+=,- ; got {name!r}")
    fixed = _flat(raw.get("set") or {}, f"{where}: set")
    grid = _grid(raw.get("grid"), where)
    seeds = _seeds(raw.get("seeds", 1), where)
    tune = _tune(raw.get("tune"), where)
    swept = [*grid, *([tune.key] if tune else [])]
    for key in [*fixed, *swept]:
        if key in RESERVED:
            what = "`seeds`" if key == "train.seed" else "the sweep"
            raise ConfigError(f"{where}: {key} is set by {what}; remove it from set/grid/tune")
    both = [k for k in fixed if k in swept] + ([tune.key] if tune and tune.key in grid else [])
    if both:
        raise ConfigError(f"{where}: {both[0]} is given twice (in set, grid or tune); give it in one place")
    return SweepSpec(path=path, name=name, base=raw["base"].strip(), fixed=fixed, grid=grid, seeds=seeds,
                     tune=tune, raw=raw, cases=_cases(raw.get("cases"), grid, swept, where))


def _flat(values: Any, where: str) -> dict[str, Any]:
    """A mapping of dotted keys (nested sections allowed) -> {'a.b': value}."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping of dotted keys to values, got {values!r}")
    return flatten(values)


def _grid(values: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(values, Mapping) or not values:
        raise ConfigError(f"{where}: grid must be a non-empty mapping of dotted keys to lists of values")
    grid = {}
    for key, options in values.items():
        if not isinstance(options, list) or not options:
            raise ConfigError(f"{where}: grid.{key} must be a non-empty list of values, got {options!r}")
        if len({text(v) for v in options}) != len(options):
            raise ConfigError(f"{where}: grid.{key} lists a value twice: {options!r}")
        grid[str(key)] = list(options)
    return grid


def _seeds(values: Any, where: str) -> tuple[int, ...]:
    """A count n -> 0..n-1, or a list of distinct seeds >= 0."""
    if isinstance(values, int) and not isinstance(values, bool):
        if values < 1:
            raise ConfigError(f"{where}: seeds must be a count >= 1 or a list of seeds, got {values}")
        return tuple(range(values))
    if (isinstance(values, list) and values and len(set(values)) == len(values)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in values)):
        return tuple(values)
    raise ConfigError(f"{where}: seeds must be a count >= 1 or a non-empty list of distinct seeds >= 0, "
                      f"got {values!r}")


def _tune(values: Any, where: str) -> Tune | None:
    if values is None:
        return None
    if not isinstance(values, Mapping) or set(values) - set(TUNE_KEYS) or "key" not in values:
        raise ConfigError(f"{where}: tune must be a mapping with key, values and by (e.g. "
                          "{key: optim.lr, values: [1e-4, 1e-3, 1e-2], by: best_val_acc})")
    options, by = values.get("values"), values.get("by", "best_val_acc")
    if not isinstance(options, list) or not options or len({text(v) for v in options}) != len(options):
        raise ConfigError(f"{where}: tune.values must be a non-empty list of distinct values, got {options!r}")
    if by not in TUNE_BY:
        raise ConfigError(f"{where}: tune.by must be one of {', '.join(TUNE_BY)} (picked on the validation "
                          f"split), got {by!r}")
    return Tune(key=str(values["key"]), values=tuple(options), by=by)


def _cases(values: Any, grid: dict[str, list[Any]], swept: list[str], where: str) -> tuple[Case, ...]:
    """`cases`: a list of {when: {grid key: value}, set: {dotted key: value}} or {when: ..., skip: true}."""
    if values is None:
        return ()
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: cases must be a non-empty list of {{when: ..., set: ...}} or {{when: ..., "
                          "skip: true}")
    cases = []
    for i, case in enumerate(values):
        at = f"{where}: cases[{i}]"
        if not isinstance(case, Mapping):
            raise ConfigError(f"{at} must be a mapping with when and set (or skip: true), got {case!r}")
        unknown = [k for k in case if k not in CASE_KEYS]
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]}; valid keys: {', '.join(CASE_KEYS)}")
        when = _flat(case.get("when") or {}, f"{at}.when")
        if not when:
            raise ConfigError(f"{at} needs `when`: the grid values of the cells it applies to")
        for key, value in when.items():
            if key not in grid:
                raise ConfigError(f"{at}.when: {key} is not a grid key (a case picks cells by their grid values: "
                                  f"{', '.join(grid)})")
            if text(value) not in {text(v) for v in grid[key]}:
                raise ConfigError(f"{at}.when matches no cell: {key}={text(value)} is not in grid.{key} "
                                  f"{[text(v) for v in grid[key]]}")
        skip, settings = case.get("skip", False), _flat(case.get("set") or {}, f"{at}.set")
        if not isinstance(skip, bool) or skip == bool(settings):
            raise ConfigError(f"{at} needs either `set` (settings for the matching cells) or `skip: true`")
        for key in settings:
            if key in RESERVED or key in swept:
                raise ConfigError(f"{at}.set: {key} is {'swept' if key in swept else 'set by the sweep'}; a case "
                                  "sets other keys")
        cases.append(Case(when=when, settings=settings, skip=skip))
    if not any(not _case_settings(cases, dict(zip(grid, combo)))[0] for combo in itertools.product(*grid.values())):
        raise ConfigError(f"{where}: cases skip every cell of the grid")
    return tuple(cases)


def _case_settings(cases: Sequence[Case], grid_values: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(skipped, settings) of one cell: every matching case applies, in the file's order (later ones win)."""
    matching = [c for c in cases if c.matches(grid_values)]
    return any(c.skip for c in matching), {k: v for c in matching for k, v in c.settings.items()}


def _base_values(spec: SweepSpec) -> dict[str, Any]:
    """The base's raw values: a config file relative to the sweep file's folder when it is there, else as given.

    A `set` that names another model (model.name) starts the model section afresh: the base's model arguments
    belong to the base's model.
    """
    candidate = spec.path.parent / spec.base
    local = Path(spec.base).suffix in (".yaml", ".yml") and not Path(spec.base).is_absolute() and candidate.is_file()
    values = apply_overrides(load_source(str(candidate) if local else spec.base), [])
    model = values.get("model")
    if "model.name" in spec.fixed and isinstance(model, dict) and model.get("name") != spec.fixed["model.name"]:
        values["model"] = {}
    return values


def base_config(spec: SweepSpec, settings: Mapping[str, Any] | None = None) -> RunConfig | None:
    """The base with `set` applied (no grid values): the sweep's base model; None when it is not valid alone."""
    raw = _base_values(spec)
    for dotted, value in [*spec.fixed.items(), *(settings or {}).items()]:
        set_key(raw, dotted.split("."), value)
    try:
        return from_dict(raw)
    except ConfigError:
        return None


def folder_name(values: Mapping[str, Any], seed: int) -> str:
    """'model.residual=false,model.depth=8,seed=0', made safe for any filesystem (a comma only between keys)."""
    def safe(part: str) -> str:
        return re.sub(r"[^A-Za-z0-9._=+-]", "_", part)

    return ",".join(f"{safe(k)}={safe(text(v))}" for k, v in values.items()) + f",seed={seed}"


def expand(spec: SweepSpec, *, runs_dir: str | Path, settings: Mapping[str, Any] | None = None) -> list[PlannedRun]:
    """Every run: the product of the grid, the tune values and the seeds, each a validated RunConfig.

    `runs_dir` is where the runs' folders go; `settings` are dotted keys set on every run after the sweep
    file's own (the command line's --data-dir). Any unknown key or bad value is a ConfigError here.
    """
    base = _base_values(spec)
    tune_values = [{spec.tune.key: v} for v in spec.tune.values] if spec.tune else [{}]
    planned, names = [], {}
    for combo in itertools.product(*spec.grid.values()):
        grid_values = dict(zip(spec.grid, combo))
        skipped, case_settings = _case_settings(spec.cases, grid_values)
        if skipped:
            continue
        cell = ",".join(f"{k}={text(v)}" for k, v in grid_values.items())
        for extra, seed in itertools.product(tune_values, spec.seeds):
            values = {**grid_values, **extra}
            key = folder_name(values, seed)
            if len(key) > MAX_NAME or key in names:
                digest = hashlib.sha256(f"{cell},{extra},{seed}".encode()).hexdigest()[:8]
                key = f"{key[:MAX_NAME - 9]}~{digest}"
            names[key] = True
            raw = apply_overrides(base, [])
            group = [] if "track.group" in spec.fixed else [("track.group", spec.name)]  # W&B: one group a sweep
            for dotted, value in [*group, *spec.fixed.items(), *case_settings.items(), *values.items(),
                                  ("train.seed", seed), ("name", key),
                                  ("runs_dir", str(runs_dir)), *(settings or {}).items()]:
                set_key(raw, dotted.split("."), value)
            try:
                cfg = from_dict(raw)
            except ConfigError as exc:
                raise ConfigError(f"sweep file {spec.path}, run {key}: {exc}") from None
            if spec.tune and cfg.data.val_size == 0:
                raise ConfigError(f"sweep file {spec.path}: tune picks {spec.tune.key} on the validation split, "
                                  "but data.val_size is 0")
            planned.append(PlannedRun(key=key, values=values, seed=seed, cell=cell, cfg=cfg))
    return planned
