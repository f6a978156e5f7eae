"""`reslab report`: run, sweep and analysis folders -> report.md (figures beside it) + self-contained report.html
+ report.json.

Reads only files in the folders, so a report can be rebuilt from old runs at any time. The output
goes to a new folder (reports/report-<date>-<time>-<id>) or to --out, which must be new, empty, or an earlier
reslab report (whose files are replaced); nothing else a user has is overwritten. The report is built in a
hidden folder beside its target and moved into place when complete, so an interrupted or failed build
leaves no half report behind: neither one that blocks the next `--out`, nor a damaged earlier report.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from reslab import files
from reslab.errors import ReportError, describe
from reslab.report import reading
from reslab.report.analyses import analysis_blocks, analysis_numbers
from reslab.report.document import Block, Heading, Note, Paragraph, to_html, to_markdown
from reslab.report.figures import FIGURES
from reslab.report.records import Folders, RunRecord, find_folders, load_run, unreadable
from reslab.report.sections import overview, run_section, run_stem
from reslab.report.sweeps import sweep_blocks, sweep_numbers
from reslab.report.values import inline, strict_json
from reslab.runs import RunFolder

REPORT_FORMAT = "reslab-report-1"
MARKDOWN, HTML, NUMBERS = "report.md", "report.html", "report.json"  # a report folder's files (and FIGURES/)


def build_report(paths: Sequence[str | Path], out: str | Path | None = None, svg: bool = False) -> Path:
    """Write the report of the runs, sweeps and analyses in `paths`; returns its folder. Bad input raises
    ReportError."""
    found = find_folders(paths)  # before any folder is made
    records = [_load(p) for p in found.runs]
    if records and all(r.error is not None for r in records) and not (found.sweeps or found.analyses):
        more = f" (and {len(records) - 1} more runs, none readable)" if len(records) > 1 else ""
        raise ReportError(f"no run could be read: {records[0].name}: {records[0].error}{more}")
    target = _check_out(out)
    building: Path | None = None
    try:
        building = _new_folder(Path("reports") if target is None else target.parent,
                               f".{'report' if target is None else target.name[:40]}.building-")
        _write(records, found, building, svg)
        return _move_into_place(building, target)
    except OSError as exc:
        raise ReportError(f"cannot write the report to {inline(out or 'reports/')}: "
                          f"{exc.strerror or describe(exc)}") from None
    finally:  # after a failure or an interrupt, the partial report goes; after success, what is left of it
        if building is not None:
            shutil.rmtree(building, ignore_errors=True)


def _load(path: Path) -> RunRecord:
    try:
        return load_run(path)
    except Exception as exc:  # a run folder that cannot even be listed is reported as unreadable, not a crash
        return unreadable(path, reading.why(exc))


def _write(records: list[RunRecord], found: Folders, out_dir: Path, svg: bool) -> None:
    """The report's files, in `out_dir` (a new folder)."""
    (out_dir / FIGURES).mkdir()
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
    files.write_text(out_dir / MARKDOWN, to_markdown(_title(records, found), blocks))
    files.write_text(out_dir / HTML, to_html(_title(records, found), blocks, out_dir))
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    numbers = {"format": REPORT_FORMAT, "runs": [_numbers(r) for r in records],
               "sweeps": [sweep_numbers(f) for f in found.sweeps],
               "analyses": [analysis_numbers(f) for f in found.analyses],
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": written}
    files.write_text(out_dir / NUMBERS, json.dumps(strict_json(numbers), indent=2, allow_nan=False) + "\n")


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
                                                   f"values ({describe(exc)}).")]


def _unreportable(rec: RunRecord, exc: Exception) -> list[Block]:
    return [Heading(rec.name), Note(f"Could not report this run: its files hold unexpected values ({describe(exc)}).")]


def _numbers(rec: RunRecord) -> dict[str, Any]:
    """A run's entry in report.json: its comparison numbers, or why they could not be read."""
    try:
        if rec.error is None:
            return rec.numbers()
        error = rec.error
    except Exception as exc:
        error = f"its files hold unexpected values ({describe(exc)})"
    return {"run": rec.name, "path": inline(rec.path, None), "status": "unreadable", "error": inline(error, None)}


# ----------------------------------------------------------------------------- the output folder


def _check_out(out: str | Path | None) -> Path | None:
    """`out` when it may hold the report (new, empty, or an earlier reslab report); None for a new reports/ folder."""
    if out is None:
        return None
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


def _new_folder(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ReportError(f"cannot find a free folder name in {inline(parent)}")


def _move_into_place(building: Path, target: Path | None) -> Path:
    """Move the complete report to its folder: a rename, or file by file into an earlier report's folder."""
    if target is None:
        final = RunFolder.create("reports", "report").path  # a new, empty folder: a rename replaces it
        os.replace(building, final)
        return final
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
