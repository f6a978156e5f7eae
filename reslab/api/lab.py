"""A lab folder as a Python object: `load_lab(dir)` -> `Lab`: what was asked and done (lab.json, through `LabFolder`),
its studies as `Sweep`s, its runs as one DataFrame, its analyses and report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reslab.api.sweep import Sweep
from reslab.api.tables import frame, html_table, pandas
from reslab.errors import ConfigError
from reslab.lab.folder import LabFolder
from reslab.sweep.folder import SweepFolder


@dataclass(frozen=True)
class Lab:
    """One lab folder (`reslab lab` or `reslab.lab`): `record` (lab.json: profile, datasets, stages done),
    `sweeps` (study name -> `Sweep`), `runs` (every study's results.csv in one DataFrame, a `study` column first),
    `analyses` (stage name -> its folder) and `report` (report.html, once written)."""

    path: Path

    @property
    def folder(self) -> LabFolder:
        """The lab folder's files (lab.json, sweeps/, analyses/, report/)."""
        return LabFolder(self.path)

    @property
    def record(self) -> dict[str, Any]:
        """lab.json as a dict (a ConfigError when it is not a reslab lab record)."""
        return self.folder.read() or {}

    @property
    def sweeps(self) -> dict[str, Sweep]:
        """The lab's studies, by name, in name order."""
        root = self.folder.sweeps
        found = sorted(p for p in root.iterdir() if SweepFolder(p).sweep_file.is_file()) if root.is_dir() else []
        return {p.name: Sweep(p) for p in found}

    @property
    def runs(self) -> Any:
        """Every study's runs (results.csv) in one DataFrame, the study's name in the first column."""
        pd = pandas()
        tables = [table.assign(study=name)[["study", *table.columns]]
                  for name, sweep in self.sweeps.items() if len((table := sweep.results).columns)]
        return pd.concat(tables, ignore_index=True) if tables else frame([], ["study"])

    @property
    def analyses(self) -> dict[str, Path]:
        """The finished analysis folders, by stage name."""
        root = self.folder.analyses
        return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")} \
            if root.is_dir() else {}

    @property
    def report(self) -> Path | None:
        """report.html, once the lab has written it."""
        from reslab.report.writer import HTML

        html = self.folder.report / HTML
        return html if html.is_file() else None

    def _repr_html_(self) -> str:
        record = self.record
        stages = record.get("stages") if isinstance(record.get("stages"), dict) else {}
        rows = [("profile", record.get("profile")), ("stages done", len(stages)),
                ("studies", ", ".join(self.sweeps) or None), ("analyses", ", ".join(self.analyses) or None),
                ("report", str(self.report) if self.report else None)]
        return html_table(rows, ("", ""), caption=f"reslab lab {self.path}")

    def __repr__(self) -> str:
        return f"Lab({str(self.path)!r})"


def load_lab(path: str | Path) -> Lab:
    """The lab folder at `path` (made by `reslab lab --out DIR` or `reslab.lab(out=DIR)`) as a `Lab`.

    A folder without a lab record is a ConfigError (a ReslabError)."""
    folder = LabFolder(Path(path))
    if folder.read() is None:
        raise ConfigError(f"{path} is not a reslab lab folder (no {folder.record.name})")
    return Lab(Path(path))
