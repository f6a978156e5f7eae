"""The sweep file: what a depth study runs, read, checked and expanded into one resolved config per run.

A sweep file (YAML) holds `base` (a preset or config file), `set` (settings of every run), `grid` (dotted keys to
lists of values), `seeds` (a count or a list), an optional `name`, an optional `tune` (a nuisance key whose
value is picked per cell on the validation split) and optional `cases` (settings for the cells whose grid
values match, or `skip: true` to leave those cells out: He et al.'s ResNet-110 warm-up, no plain-110) and an
optional `pair` (the grid key of two values whose runs paired.csv compares seed by seed; default model.residual).
Everything is checked here (types with `checks.coerce`), before anything runs or is written; `expansion` turns
a checked sweep into one validated config per run.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from reslab.checks import coerce, require
from reslab.config import RunConfig, flatten, load_source
from reslab.errors import ConfigError

SWEEP_KEYS = ("base", "set", "grid", "seeds", "name", "tune", "cases", "pair")
TUNE_KEYS = ("key", "values", "by")
CASE_KEYS = ("when", "set", "skip")
TUNE_BY = ("best_val_acc", "final_val_acc")  # validation metrics, higher is better
RESERVED = ("name", "runs_dir", "train.seed")  # the sweep sets these itself
RESIDUAL = "model.residual"  # the grid key whose false/true cells are plain/residual twins (paired by default)
MAX_NAME = 200  # characters of a run's folder prefix (the trainer appends -<date>-<time>-<id>)
MAX_RUNS = 100_000  # runs in one sweep (grid cells x tuned values x seeds), checked before anything is expanded


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

    def label(self) -> str:
        """'model.depth=110, model.residual=true: optim.warmup_epochs=1.137' (or ': skipped')."""
        what = "skipped" if self.skip else ", ".join(f"{k}={text(v)}" for k, v in self.settings.items())
        return ", ".join(f"{k}={text(v)}" for k, v in self.when.items()) + f": {what}"


@dataclass(frozen=True)
class Pairing:
    """What paired.csv compares: within each group of cells that differ only in `key`, the run at `b` minus the run
    at `a` of the same seed. A sweep's `pair: KEY` pairs its grid's second value against its first; without it a
    swept model.residual pairs residual (true) against plain (false), whatever the grid's order."""

    key: str  # a grid key
    a: Any  # the value subtracted (plain)
    b: Any  # the value it is subtracted from (residual)

    @property
    def twins(self) -> bool:
        """Plain (a) and residual (b) twins: paired.csv's columns and sentences say residual and plain."""
        return self.key == RESIDUAL and self.a is False and self.b is True

    def words(self) -> tuple[str, str]:
        """(a, b) as sentences name them: 'plain', 'residual' for model.residual, else 'key=value'."""
        if self.key == RESIDUAL and isinstance(self.a, bool) and isinstance(self.b, bool):
            return ("residual" if self.a else "plain"), ("residual" if self.b else "plain")
        return f"{self.key}={text(self.a)}", f"{self.key}={text(self.b)}"

    @property
    def difference(self) -> str:
        """'residual - plain', or 'train.teacher=RUN - train.teacher=null'."""
        a, b = self.words()
        return f"{b} - {a}"

    def wins_column(self, metric: str) -> str:
        """paired.csv's column of the share of seeds in which the run at `b` is the better one."""
        return f"{metric}_residual_wins" if self.twins else f"{metric}_b_wins"


TWINS = Pairing(RESIDUAL, False, True)  # the default pairing, when model.residual is swept


def pairing_of(grid: Mapping[str, Sequence[Any]], key: str | None) -> Pairing | None:
    """The pairing of a checked grid: `key`'s two values in the grid's order; without a key, plain and residual
    twins when model.residual is swept, else none."""
    if key is not None:
        return Pairing(key, grid[key][0], grid[key][1])
    return TWINS if RESIDUAL in grid else None


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: a sweep file's values, or a study the lab built in memory (`sweep_spec`)."""

    path: Path  # the sweep file (a sweep built in memory: its sweep folder's copy, written when the sweep starts)
    name: str  # the sweep folder's name
    base: str  # a preset name or a config file path (relative paths: to the sweep file first)
    settings: dict[str, Any]  # `set`: dotted key -> value, on every run
    grid: dict[str, list[Any]]  # dotted key -> values, in the file's order
    seeds: tuple[int, ...]
    tune: Tune | None
    raw: dict[str, Any]  # the file's values, as the sweep folder keeps them (and compares them with)
    cases: tuple[Case, ...] = ()
    pairing: Pairing | None = None  # what paired.csv compares (None: nothing is paired)

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


def folder_name(values: Mapping[str, Any], seed: int) -> str:
    """'model.residual=false,model.depth=8,seed=0', made safe for any filesystem (a comma only between keys)."""
    def safe(part: str) -> str:
        return re.sub(r"[^A-Za-z0-9._=+-]", "_", part)

    return ",".join(f"{safe(k)}={safe(text(v))}" for k, v in values.items()) + f",seed={seed}"


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (not yet its runs' configs: see `expand`)."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"sweep file {path} must be a .yaml file")
    try:
        raw = load_source(str(path))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("config file", "sweep file", 1)) from None
    return sweep_spec(raw, path)


def sweep_spec(raw: Mapping[str, Any], path: str | Path) -> SweepSpec:
    """Check a sweep's values (a sweep file's, or a study built in memory) into a SweepSpec.

    `path` is where the sweep is kept: its name's default is the file's stem, a relative `base` config file is
    looked for beside it first, and errors name it."""
    path, raw = Path(path), dict(raw)
    where = f"sweep file {path}"
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]} in {where}; valid keys: {', '.join(SWEEP_KEYS)}")
    base = coerce(raw.get("base", ""), str, f"{where}: base").strip()
    require(bool(base), f"{where} needs `base`: a preset name or a config file")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+=,-]*", name):
        raise ConfigError(f"{where}: name must be a folder name of letters, digits and ._+=,- ; got {name!r}")
    settings = _flat(raw.get("set") or {}, f"{where}: set")
    grid = _grid(raw.get("grid"), where)
    seeds = _seeds(raw.get("seeds", 1), where)
    tune = _tune(raw.get("tune"), where)
    count = math.prod(len(v) for v in grid.values()) * (len(tune.values) if tune else 1) * len(seeds)
    require(count <= MAX_RUNS, f"{where} asks for {count:,} runs (grid x tune x seeds); a sweep runs at most "
                               f"{MAX_RUNS:,}")
    swept = [*grid, *([tune.key] if tune else [])]
    for key in [*settings, *swept]:
        if key in RESERVED:
            what = "`seeds`" if key == "train.seed" else "the sweep"
            raise ConfigError(f"{where}: {key} is set by {what}; remove it from set/grid/tune")
    both = [k for k in settings if k in swept] + ([tune.key] if tune and tune.key in grid else [])
    require(not both, f"{where}: {both[0] if both else ''} is given twice (in set, grid or tune); give it in one place")
    return SweepSpec(path=path, name=name, base=base, settings=settings, grid=grid, seeds=seeds,
                     tune=tune, raw=raw, cases=_cases(raw.get("cases"), grid, swept, where),
                     pairing=pairing_of(grid, _pair(raw.get("pair"), grid, where)))


def _flat(values: Any, where: str) -> dict[str, Any]:
    """A mapping of dotted keys (nested sections allowed) -> {'a.b': value}."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping of dotted keys to values, got {values!r}")
    return flatten(values)


def _distinct(values: Any, what: str) -> list[Any]:
    """A non-empty list of values that differ as written (1 and 1.0 are the same cell)."""
    options = list(coerce(values, tuple[Any, ...], what)) if isinstance(values, list) else []
    require(bool(options), f"{what} must be a non-empty list of values, got {values!r}")
    require(len({text(v) for v in options}) == len(options), f"{what} lists a value twice: {values!r}")
    return options


def _grid(values: Any, where: str) -> dict[str, list[Any]]:
    require(isinstance(values, Mapping) and bool(values),
            f"{where}: grid must be a non-empty mapping of dotted keys to lists of values")
    return {str(key): _distinct(options, f"{where}: grid.{key}") for key, options in values.items()}


def _pair(value: Any, grid: Mapping[str, list[Any]], where: str) -> str | None:
    """`pair`: a grid key with exactly two values (the sweep compares the second against the first, seed by seed)."""
    if value is None:
        return None
    key = coerce(value, str, f"{where}: pair")
    require(key in grid, f"{where}: pair {key} is not a grid key (pair names the grid key whose two values are "
                         f"compared seed by seed: {', '.join(grid)})")
    require(len(grid[key]) == 2, f"{where}: pair {key} needs exactly two values in grid.{key}, it has "
                                 f"{len(grid[key])}: {', '.join(text(v) for v in grid[key])}")
    return key


def _seeds(values: Any, where: str) -> tuple[int, ...]:
    """A count n -> 0..n-1, or a list of distinct seeds >= 0."""
    what = f"{where}: seeds must be a count >= 1 or a non-empty list of distinct seeds >= 0, got {values!r}"
    try:
        seeds = coerce(values, int | tuple[int, ...], f"{where}: seeds")
    except ConfigError:
        raise ConfigError(what) from None
    if isinstance(seeds, int):
        require(seeds >= 1, f"{where}: seeds must be a count >= 1 or a list of seeds, got {seeds}")
        require(seeds <= MAX_RUNS, f"{where}: seeds asks for {seeds:,} seeds; a sweep runs at most {MAX_RUNS:,} runs")
        return tuple(range(seeds))
    require(bool(seeds) and len(set(seeds)) == len(seeds) and min(seeds) >= 0, what)
    return seeds


def _tune(values: Any, where: str) -> Tune | None:
    if values is None:
        return None
    require(isinstance(values, Mapping) and not set(values) - set(TUNE_KEYS) and "key" in values,
            f"{where}: tune must be a mapping with key, values and by (e.g. "
            "{key: optim.lr, values: [1e-4, 1e-3, 1e-2], by: best_val_acc})")
    options = _distinct(values.get("values"), f"{where}: tune.values")
    by = coerce(values.get("by", "best_val_acc"), Literal[TUNE_BY], f"{where}: tune.by")  # validation metrics
    return Tune(key=coerce(values["key"], str, f"{where}: tune.key"), values=tuple(options), by=by)


def _cases(values: Any, grid: dict[str, list[Any]], swept: list[str], where: str) -> tuple[Case, ...]:
    """`cases`: a list of {when: {grid key: value}, set: {dotted key: value}} or {when: ..., skip: true}."""
    if values is None:
        return ()
    require(isinstance(values, list) and bool(values), f"{where}: cases must be a non-empty list of "
            "{when: ..., set: ...} or {when: ..., skip: true}")
    cases = []
    for i, case in enumerate(values):
        at = f"{where}: cases[{i}]"
        require(isinstance(case, Mapping), f"{at} must be a mapping with when and set (or skip: true), got {case!r}")
        unknown = [k for k in case if k not in CASE_KEYS]
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]}; valid keys: {', '.join(CASE_KEYS)}")
        when = _flat(case.get("when") or {}, f"{at}.when")
        require(bool(when), f"{at} needs `when`: the grid values of the cells it applies to")
        for key, value in when.items():
            require(key in grid, f"{at}.when: {key} is not a grid key (a case picks cells by their grid values: "
                                 f"{', '.join(grid)})")
            require(text(value) in {text(v) for v in grid[key]}, f"{at}.when matches no cell: {key}={text(value)} "
                    f"is not in grid.{key} {[text(v) for v in grid[key]]}")
        skip, settings = case.get("skip", False), _flat(case.get("set") or {}, f"{at}.set")
        require(isinstance(skip, bool) and skip != bool(settings),
                f"{at} needs either `set` (settings for the matching cells) or `skip: true`")
        for key in settings:
            require(key not in RESERVED and key not in swept, f"{at}.set: {key} is "
                    f"{'swept' if key in swept else 'set by the sweep'}; a case sets other keys")
        cases.append(Case(when=when, settings=settings, skip=skip))
    require(any(not case_settings(cases, dict(zip(grid, combo)))[0] for combo in itertools.product(*grid.values())),
            f"{where}: cases skip every cell of the grid")
    return tuple(cases)


def case_settings(cases: Sequence[Case], grid_values: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(skipped, settings) of one cell: every matching case applies, in the file's order (later ones win)."""
    matching = [c for c in cases if c.matches(grid_values)]
    return any(c.skip for c in matching), {k: v for c in matching for k, v in c.settings.items()}
