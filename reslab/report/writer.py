"""The one report writer: a report folder built whole, then moved into place, holding report.md (figures beside it),
a self-contained report.html and report.json. `reslab report` and `reslab lab` both write through it.

The folder is built in a hidden folder beside its target and moved into place when complete, so an interrupted
or failed build leaves no half report behind: neither one that blocks the next `--out`, nor a damaged earlier
report. Nothing else a user has is overwritten: the target is new, empty, or an earlier reslab report (whose files
are replaced), unless its owner says it holds nothing else (the lab's report/).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from reslab import files, reading
from reslab.errors import ReportError, exception_line
from reslab.reading import inline
from reslab.report.document import Block, Figure, Note, to_html, to_markdown
from reslab.report.figures import FIGURES, figure_path

MARKDOWN, HTML, NUMBERS = "report.md", "report.html", "report.json"  # a report folder's files (and FIGURES/)
REPORT_FORMAT = "reslab-report-1"  # report.json's format, where it lists the files it wrote (`reslab report`)
REPORTS, REPORT = Path("reports"), "report"  # where a report without --out goes: reports/report-<date>-<time>-<id>


class Report:
    """A report being written into `out`: its blocks in order, figures copied into its figures folder, then
    its three files."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.blocks: list[Block] = []
        (out / FIGURES).mkdir(parents=True, exist_ok=True)

    def figure(self, source: Path, name: str, caption: str,
               draw: Callable[[Path], Path | None] | None = None) -> None:
        """Copy `source` into the figures folder as `name` and show it; where it is missing, `draw(target)` draws it
        there (a run's figure from its CSV files: runs with train.figures false draw none); else a note."""
        target = self.out / FIGURES / name
        if source.is_file():
            shutil.copyfile(source, target)
        else:
            try:
                made = draw(target) if draw is not None else None
            except Exception as exc:  # matplotlib and numpy raise many types on odd values
                made, why = None, f" and could not be drawn ({exception_line(exc)})"
            else:
                why = "" if draw is None else " and there was nothing to draw it from"
            if made is None:
                self.blocks.append(Note(f"Figure missing: {source.name} was not written{why}."))
                return
        self.blocks.append(Figure(figure_path(name), caption))

    def write(self, title: str, blocks: Sequence[Block], numbers: dict[str, Any], *, list_files: bool = False) -> None:
        """report.md, report.html (figures embedded) and report.json (`numbers` as strict JSON; with `list_files`,
        plus `files`: every file the report wrote before it, so a later report can replace them)."""
        files.write_text(self.out / MARKDOWN, to_markdown(title, blocks))
        files.write_text(self.out / HTML, to_html(title, blocks, self.out))
        if list_files:
            numbers = {**numbers, "files": sorted(str(p.relative_to(self.out)) for p in self.out.rglob("*")
                                                  if p.is_file())}
        files.write_text(self.out / NUMBERS, files.json_text(numbers))


def write_folder(out: str | Path | None, fill: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Build a report folder with `fill` (given the folder to write into) and move it into place; returns it.

    `out`: None for a new reports/report-<date>-<time>-<id>; else a folder that is new, empty or an earlier
    reslab report; with `replace`, whatever `out` holds is replaced (its owner holds nothing else there).
    A folder that cannot be written is a ReportError.
    """
    target = None if out is None else Path(out) if replace else _check_out(out)
    building: Path | None = None
    try:
        parent = REPORTS if target is None else target.parent
        building = files.hidden_folder(parent, f".{REPORT if target is None else target.name[:40]}.building-")
        fill(building)
        return _move_into_place(building, target, replace)
    except OSError as exc:
        raise ReportError(f"cannot write the report to {inline(out or f'{REPORTS}/')}: "
                          f"{exc.strerror or exception_line(exc)}") from None
    finally:  # after a failure or an interrupt, the partial report goes; after success, what is left of it
        if building is not None:
            shutil.rmtree(building, ignore_errors=True)


def _check_out(out: str | Path) -> Path:
    """`out` when it may hold the report: new, empty, or an earlier reslab report."""
    path = Path(out)
    try:
        if path.is_symlink():
            path = path.resolve()  # the report replaces what the link points to, not the link
        if path.exists() and not path.is_dir():
            raise ReportError(f"--out {inline(out)} is a file, not a folder")
        if path.is_dir() and any(path.iterdir()) and _previous_files(path) is None:
            raise ReportError(f"--out {inline(out)} already holds files that are not a reslab report; "
                              "give a new or empty folder")
    except OSError as exc:
        raise ReportError(f"cannot write the report to {inline(out)}: {exc.strerror or exc}") from None
    return path


def _previous_files(path: Path) -> list[str] | None:
    """The files an earlier reslab report in `path` wrote (as its report.json lists them); None if it is not one."""
    previous = reading.read_mapping(path / NUMBERS, [])
    if not isinstance(previous, dict) or previous.get("format") != REPORT_FORMAT:
        return None
    listed = previous.get("files")
    return [f for f in listed if isinstance(f, str)] if isinstance(listed, list) else []


def _move_into_place(building: Path, target: Path | None, replace: bool) -> Path:
    """Move the complete report to its folder: a rename, or file by file into an earlier report's folder."""
    if target is None:
        final = files.new_folder(REPORTS, REPORT)  # a new, empty folder: a rename replaces it
        os.replace(building, final)
        return final
    if replace and (target.is_dir() and not target.is_symlink()):
        shutil.rmtree(target)
    if not target.is_dir() or not any(target.iterdir()):
        os.replace(building, target)
        return target
    previous = _previous_files(target)
    if previous is None:  # it changed while the report was built
        raise ReportError(f"--out {inline(target)} now holds files that are not a reslab report")
    new = sorted((p.relative_to(building) for p in building.rglob("*") if p.is_file()),
                 key=lambda rel: str(rel) == NUMBERS)  # report.json last: until then the old one describes the folder
    for rel in new:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(building / rel, target / rel)
    root, kept = target.resolve(), {str(rel) for rel in new}
    for name in previous:  # the earlier report's files this one did not write again
        old = (target / name).resolve()
        if name not in kept and root in old.parents and old.is_file():
            old.unlink()
    return target
