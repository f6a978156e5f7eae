"""A checked sweep expanded into its runs: the product of the grid, the tuned values and the seeds, each a
validated `RunConfig` (any unknown key or bad value of any run fails here, before anything runs)."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any, Mapping

from reslab.config import RunConfig, apply_overrides, from_dict, load_source, set_key
from reslab.errors import ConfigError
from reslab.sweep.spec import MAX_NAME, PlannedRun, SweepSpec, case_settings, folder_name, text


def _base_values(spec: SweepSpec) -> dict[str, Any]:
    """The base's raw values: a config file relative to the sweep file's folder when it is there, else as given.

    A `set` that names another model (model.name) starts the model section afresh: the base's model arguments
    belong to the base's model.
    """
    candidate = spec.path.parent / spec.base
    local = Path(spec.base).suffix in (".yaml", ".yml") and not Path(spec.base).is_absolute() and candidate.is_file()
    values = apply_overrides(load_source(str(candidate) if local else spec.base), [])
    model = values.get("model")
    if "model.name" in spec.settings and isinstance(model, dict) and model.get("name") != spec.settings["model.name"]:
        values["model"] = {}
    return values


def base_config(spec: SweepSpec, settings: Mapping[str, Any] | None = None) -> RunConfig | None:
    """The base with `set` applied (no grid values): the sweep's base model; None when it is not valid alone."""
    raw = _base_values(spec)
    for dotted, value in [*spec.settings.items(), *(settings or {}).items()]:
        set_key(raw, dotted.split("."), value)
    try:
        return from_dict(raw)
    except ConfigError:
        return None


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
        skipped, per_cell = case_settings(spec.cases, grid_values)
        if skipped:
            continue
        cell = ",".join(f"{k}={text(v)}" for k, v in grid_values.items())
        for tuned, seed in itertools.product(tune_values, spec.seeds):
            values = {**grid_values, **tuned}
            key = folder_name(values, seed)
            if len(key) > MAX_NAME or key in names:
                digest = hashlib.sha256(f"{cell},{tuned},{seed}".encode()).hexdigest()[:8]
                key = f"{key[:MAX_NAME - 9]}~{digest}"
            names[key] = True
            raw = apply_overrides(base, [])
            group = [] if "track.group" in spec.settings else [("track.group", spec.name)]  # W&B: one group a sweep
            # no per-run figures unless the sweep file asks: its report draws what it shows from the runs' CSV files
            for dotted, value in [("train.figures", False), *group, *spec.settings.items(), *per_cell.items(),
                                  *values.items(), ("train.seed", seed), ("name", key),
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
