"""One sweep of the lab (`Study`), before the lab's datasets are known, and the settings that name another study's
trained run (`lab:NAME`: Exercise 2's transfer starts from a source run, distillation learns from a teacher run).

A study only names the run it needs; the lab resolves the name to that run's folder when the study's sweep starts
(`resolve`), so a profile stays data and a study that needs a run another stage trains runs after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from reslab.errors import ConfigError
from reslab.sweep import SweepFolder, SweepSpec, sweep_spec

LAB_RUN = "lab:"  # a setting's value "lab:NAME": the seed-0 run of the lab's study NAME (one cell)


@dataclass(frozen=True)
class Study:
    """One sweep of the lab, before the lab's datasets are known: `spec` builds its SweepSpec."""

    name: str  # the sweep's folder name inside the lab folder
    base: str
    dataset: str  # "mnist" or "cifar": which of the lab's two datasets
    settings: Mapping[str, Any]  # dotted key -> value, on every run (a sweep's `set`); "lab:NAME": a run (below)
    grid: Mapping[str, list[Any]]
    seeds: int
    tune: Mapping[str, Any] | None = None  # a sweep's `tune` (e.g. optim.lr picked per cell on the validation split)
    cases: tuple[Mapping[str, Any], ...] = ()  # a sweep's `cases` (per-cell settings, or skipped cells)
    reference: Mapping[str, Any] = field(default_factory=dict)  # grid values of the cell the instruments explain
    pair: str | None = None  # a sweep's `pair` (a grid key of two values); None: model.residual's twins, as swept
    title: str = ""  # the stage's title, for the studies beyond the notebook's and the depth studies (Exercise 2)

    def needs(self) -> list[str]:
        """The studies whose trained run a setting names ("lab:NAME"), in the order of the settings."""
        return [v.removeprefix(LAB_RUN) for v in self.settings.values() if isinstance(v, str) and v.startswith(LAB_RUN)]

    def resolve(self, run_of: Callable[[str], str]) -> "Study":
        """The study with each "lab:NAME" setting replaced by `run_of(NAME)`, the folder of that study's run."""
        if not self.needs():
            return self
        settings = {k: run_of(v.removeprefix(LAB_RUN)) if isinstance(v, str) and v.startswith(LAB_RUN) else v
                    for k, v in self.settings.items()}
        return replace(self, settings=settings)

    def spec(self, dataset_spec: str, data_dir: str | None, sweeps: Path) -> SweepSpec:
        """The study as a checked sweep on the given dataset, kept in `sweeps`/<name> (no sweep file in between)."""
        if self.needs():
            raise ConfigError(f"the lab study {self.name} names runs ({', '.join(self.needs())}) not yet resolved")
        settings = dict(self.settings) | {"data.dataset": dataset_spec}
        if data_dir is not None:
            settings["data.data_dir"] = data_dir
        raw = {"name": self.name, "base": self.base, "set": settings,
               "grid": {k: list(v) for k, v in self.grid.items()}, "seeds": self.seeds}
        if self.tune:
            raw["tune"] = dict(self.tune)
        if self.cases:
            raw["cases"] = [dict(c) for c in self.cases]
        if self.pair is not None:
            raw["pair"] = self.pair
        raw = yaml.safe_load(yaml.safe_dump(raw, sort_keys=False))  # as the sweep folder's copy reads back
        return sweep_spec(raw, SweepFolder(Path(sweeps) / self.name).sweep_file)
