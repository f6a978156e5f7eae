"""`reslab report`: run, sweep and analysis folders -> one report (reslab.report.writer writes its folder).

Reads only files in the folders, so a report can be rebuilt from old runs at any time. The output goes to a new
folder (reports/report-<date>-<time>-<id>) or to --out, which must be new, empty, or an earlier reslab report
(whose files are replaced); nothing else a user has is overwritten, and a failed build leaves no half report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from reslab import reading
from reslab.errors import ReportError, exception_line
from reslab.reading import inline
from reslab.report.analyses import analysis_blocks, analysis_numbers
from reslab.report.document import Block, Heading, Note, Paragraph
from reslab.report.records import UNREADABLE, Folders, RunRecord, find_folders, load_run, unreadable
from reslab.report.sections import overview, run_section, run_stem
from reslab.report.sweeps import sweep_blocks, sweep_numbers
from reslab.report.writer import REPORT_FORMAT, Report, write_folder


def build_report(paths: Sequence[str | Path], out: str | Path | None = None, svg: bool = False) -> Path:
    """Write the report of the runs, sweeps and analyses in `paths`; returns its folder. Bad input raises
    ReportError."""
    found = find_folders(paths)  # before any folder is made
    records = [_load(p) for p in found.runs]
    if records and all(r.error is not None for r in records) and not (found.sweeps or found.analyses):
        more = f" (and {len(records) - 1} more runs, none readable)" if len(records) > 1 else ""
        raise ReportError(f"no run could be read: {records[0].name}: {records[0].error}{more}")
    return write_folder(out, lambda folder: _write(records, found, Report(folder), svg))


def _load(path: Path) -> RunRecord:
    try:
        return load_run(path)
    except Exception as exc:  # a run folder that cannot even be listed is reported as unreadable, not a crash
        return unreadable(path, reading.why(exc))


def _write(records: list[RunRecord], found: Folders, report: Report, svg: bool) -> None:
    """The report's blocks and numbers, written into `report`'s folder (a new one)."""
    out_dir = report.out
    blocks = overview(records, out_dir, svg) if records else [Paragraph(
        f"Built {time.strftime('%Y-%m-%d %H:%M')} from the files in the folders only (rebuild it at any time with "
        "reslab report).")]
    for i, rec in enumerate(records, start=1):
        try:
            blocks += run_section(rec, run_stem(i, rec), out_dir, svg)
        except Exception as exc:  # a damaged run costs its section, not the report
            blocks += _unreportable(rec, exc)
    for folder in found.sweeps:
        blocks += _section(folder, "sweep", lambda: sweep_blocks(folder, out_dir, level=2, svg=svg))
    for folder in found.analyses:
        blocks += _section(folder, "analysis", lambda: analysis_blocks(folder, out_dir, level=2, svg=svg))
    numbers = {"format": REPORT_FORMAT, "runs": [_numbers(r) for r in records],
               "sweeps": [sweep_numbers(f) for f in found.sweeps],
               "analyses": [analysis_numbers(f) for f in found.analyses],
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    report.write(_title(records, found), blocks, numbers, list_files=True)


def _title(records: list[RunRecord], found: Folders) -> str:
    """One folder: its name; else how many of each kind."""
    if len(records) + len(found.sweeps) + len(found.analyses) == 1:
        one = records[0].name if records else inline((found.sweeps or found.analyses)[0].name)
        return f"reslab report: {'sweep ' if found.sweeps else ''}{one}"
    counts = [(len(records), "run"), (len(found.sweeps), "sweep"), (len(found.analyses), "analysis")]
    return "reslab report: " + ", ".join(f"{n} {'analyses' if n > 1 and what == 'analysis' else what + 's' * (n > 1)}"
                                         for n, what in counts if n)


def _section(folder: Path, kind: str, blocks: Callable[[], list[Block]]) -> list[Block]:
    """A sweep's or analysis's section; a bug on odd values costs that section, not the report."""
    try:
        return blocks()
    except Exception as exc:
        return [Heading(inline(folder.name)), Note(f"Could not report this {kind} folder: its files hold unexpected "
                                                   f"values ({exception_line(exc)}).")]


def _unreportable(rec: RunRecord, exc: Exception) -> list[Block]:
    return [Heading(rec.name),
            Note(f"Could not report this run: its files hold unexpected values ({exception_line(exc)}).")]


def _numbers(rec: RunRecord) -> dict[str, Any]:
    """A run's entry in report.json: its comparison numbers, or why they could not be read."""
    try:
        if rec.error is None:
            return rec.numbers()
        error = rec.error
    except Exception as exc:
        error = f"its files hold unexpected values ({exception_line(exc)})"
    return {"run": rec.name, "path": inline(rec.path, None), "status": UNREADABLE, "error": inline(error, None)}
