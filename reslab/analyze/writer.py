"""An instrument's outputs as values (tables, figures, files, the summary text) and the one writer that puts them
in an analysis folder.

An instrument's summary module returns an `Analysis`: nothing is written while it is made, so it can be tested
without files. `AnalysisWriter` writes it and remembers every name it wrote, so `analysis.json` (written last, in
`reslab.analyze.record`'s format) lists exactly the files the folder holds, each name spelled once, by its owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from reslab import files
from reslab.analyze.record import AnalysisRecord, write_record


@dataclass(frozen=True)
class Table:
    """A CSV: its file name, rows and columns."""

    name: str
    rows: Sequence[Mapping[str, Any]]
    fields: Sequence[str]


@dataclass(frozen=True)
class Figure:
    """A PNG: its file name and how to draw it, `draw(path, svg)` (every `reslab.plots` function has that shape)."""

    name: str
    draw: Callable[[Path, bool], None]


@dataclass(frozen=True)
class Artifact:
    """Any other file (a landscape's directions): its name and `write(path)`, called on a temporary path (atomic)."""

    name: str
    write: Callable[[Path], None]


@dataclass(frozen=True)
class Analysis:
    """What an instrument makes of its measurement, before anything is written.

    Tables and figures are in the order a report shows them; `settings` is what was asked (for analysis.json),
    `findings` the flat key numbers reports read.
    """

    text: str  # the summary, printed by the CLI and written as <kind>-summary.txt
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    findings: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""


class AnalysisWriter:
    """Writes one instrument's files into its (new, empty) output folder and records each name it wrote."""

    def __init__(self, out_dir: Path, kind: str, *, svg: bool = False) -> None:
        self.out_dir, self.kind, self.svg = Path(out_dir), kind, svg
        self.tables: list[str] = []
        self.figures: list[str] = []
        self.files: list[str] = []
        self.summary_name = ""

    def _claim(self, name: str) -> Path:
        if name in (*self.tables, *self.figures, *self.files, self.summary_name):
            raise ValueError(f"{self.kind}: {name} written twice")  # a bug in the instrument, not user input
        return self.out_dir / name

    def table(self, name: str, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
        files.write_csv(self._claim(name), rows, fields)
        self.tables.append(name)

    def figure(self, name: str, draw: Callable[[Path, bool], None]) -> None:
        """Draw the figure (an SVG beside the PNG with svg); a figure with nothing to draw writes no file and is not
        recorded."""
        path = self._claim(name)
        draw(path, self.svg)
        if path.is_file():
            self.figures.append(name)

    def file(self, name: str, write: Callable[[Path], None]) -> None:
        files.atomic_path(self._claim(name), write)
        self.files.append(name)

    def summary(self, text: str) -> None:
        name = f"{self.kind}-summary.txt"
        files.write_text(self._claim(name), text + "\n")
        self.summary_name = name

    def write(self, analysis: Analysis) -> None:
        """Every file of the analysis but analysis.json."""
        for t in analysis.tables:
            self.table(t.name, t.rows, t.fields)
        for f in analysis.figures:
            self.figure(f.name, f.draw)
        for a in analysis.artifacts:
            self.file(a.name, a.write)
        self.summary(analysis.text)

    def record(self, analysis: Analysis, *, title: str, sources: Sequence[str], seconds: float) -> Path:
        """analysis.json, last: the names written, and what the analysis says about itself."""
        return write_record(self.out_dir, AnalysisRecord(
            kind=self.kind, title=title, sources=tuple(sources), summary=self.summary_name,
            figures=tuple(self.figures), tables=tuple(self.tables), settings=dict(analysis.settings),
            findings=dict(analysis.findings), reference=analysis.reference, seconds=seconds))
