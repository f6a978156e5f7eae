"""Analysis folders as report sections: what an instrument measured, on what, its summary, figures and tables.

Everything comes from the folder's analysis.json (written last by every instrument: reslab.analyze.record)
and the files it names, read tolerantly: a missing or damaged analysis.json, summary, figure or table costs
that piece and a note, never the report. `reslab lab` composes its report from `analysis_blocks` too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from reslab.analyze.record import RECORD_NAME
from reslab import reading
from reslab.report.document import Block, Heading, Note, Paragraph, Preformatted, Table
from reslab.report.figures import copied
from reslab.reading import finite, inline
from reslab.report.values import DASH, file_stem, scalar

MAX_TABLE_ROWS = 50  # a CSV with more rows is named, not shown
MAX_TABLE_COLUMNS = 16


def is_analysis(path: Path) -> bool:
    """Whether `path` is an analysis folder (it holds analysis.json); an entry that cannot be read is not."""
    try:
        return (Path(path) / RECORD_NAME).is_file()
    except OSError:
        return False


def _inside(folder: Path, name: Any, problems: list[str], what: str) -> Path | None:
    """A file the record names, if it is a plain name inside the folder (a path elsewhere is damage, not read)."""
    if not isinstance(name, str) or "\x00" in name or Path(name).name != name or name in ("", ".", ".."):
        problems.append(f"{RECORD_NAME} names a {what} that is not a file name in the folder: "
                        f"{inline(repr(name), 80)}")
        return None
    return folder / name


def _names(record: dict[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = record.get(key, [])
    if isinstance(value, list):
        return value
    problems.append(f"{RECORD_NAME}: {key} is not a list")
    return []


def _show(value: Any, limit: int = 200) -> str:
    """A value from analysis.json as shown: fractions to 4 significant digits, lists as JSON, text cut short."""
    if isinstance(value, float) and math.isfinite(value) and value != int(value):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return inline(json.dumps(value, default=str), limit)
    value = scalar(value)
    return DASH if value is None else inline(value, limit)


def _cell(text: str) -> str:
    """A CSV value as shown: whole numbers as written, other numbers to 4 significant digits, text cut short."""
    x = finite(text)
    if x is None or text.strip().lstrip("-").isdigit():
        return inline(text, 60)
    return f"{x:.4g}"


def csv_table(path: Path, problems: list[str], label: str | None = None) -> list[Block]:
    """A small CSV as a table; a larger one named with its size (it stays in its folder)."""
    rows = reading.read_table(path, problems)
    if rows is None:
        if not path.exists():
            problems.append(f"{inline(path.name)} is missing")
        return []
    name = inline(label or path.name)
    header = list(rows[0]) if rows else []
    if len(rows) > MAX_TABLE_ROWS or len(header) > MAX_TABLE_COLUMNS:
        return [Paragraph(f"{name}: {len(rows)} row{'s' * (len(rows) != 1)} of {len(header)} columns (not shown; "
                          "in the folder).")]
    if not rows:
        return [Paragraph(f"{name}: no rows.")]
    numeric = [all(finite(r[h]) is not None for r in rows if r[h] != "") and any(r[h] != "" for r in rows)
               for h in header]
    return [Paragraph(f"{name}:"), Table(header, [[_cell(r[h]) for h in header] for r in rows], numeric)]


def _provenance_line(record: dict[str, Any], folder: Path) -> str:
    """What was measured, of which sources, when and how long it took, and where it lies."""
    kind, sources = _show(record.get("kind")), record.get("sources")
    parts = [f"A {kind} analysis"]
    if isinstance(sources, list) and sources:
        parts.append("of " + ", ".join(_show(s, 300) for s in sources[:20]) + (" ..." if len(sources) > 20 else ""))
    seconds = finite(record.get("seconds")) if not isinstance(record.get("seconds"), bool) else None
    text = " ".join(parts) + (f", measured in {seconds:.1f} s" if seconds is not None else "")
    if scalar(record.get("created")):
        text += f" ({_show(record['created'])}, reslab {_show(record.get('reslab_version'))})"
    return text + f". Folder: {inline(folder, None)}"


def analysis_blocks(folder: Path, out_dir: Path, *, level: int, svg: bool) -> list[Block]:
    """An analysis folder's section: heading, what and on what, settings, the published reference, the summary,
    the figures (copied into out_dir's figures folder) and the small tables; notes for what could not be read."""
    folder, problems = Path(folder), []
    record = reading.read_mapping(folder / RECORD_NAME, problems)
    if record is None:
        why = "; ".join(problems) or f"no {RECORD_NAME} (an instrument writes it last: interrupted, or not an analysis)"
        return [Heading(f"Analysis {inline(folder.name)}", level), Note(f"Could not read this analysis: {why}.")]
    title = _show(record.get("title"), 150)
    blocks: list[Block] = [Heading(title if title != DASH else f"Analysis {inline(folder.name)}", level),
                           Paragraph(_provenance_line(record, folder))]
    settings = record.get("settings")
    if isinstance(settings, dict) and settings:
        blocks.append(Paragraph("Settings: " + "; ".join(f"{inline(k, 60)} = {_show(v)}"
                                                        for k, v in list(settings.items())[:30]) + "."))
    if scalar(record.get("reference")):
        blocks.append(Paragraph(f"Published reference: {_show(record['reference'], 500)}."))
    summary = _inside(folder, record.get("summary"), problems, "summary") if record.get("summary") else None
    text = reading.read_text(summary, problems) if summary is not None else None
    if summary is not None and text is None and not summary.exists():
        problems.append(f"{inline(summary.name)} (the summary) is missing")
    if text:
        blocks.append(Preformatted(text))
    findings = record.get("findings")
    if isinstance(findings, dict) and findings:
        blocks.append(Table(["finding", "value"], [[inline(k, 80), _show(v)] for k, v in list(findings.items())[:60]],
                            [False, True]))
    stem = file_stem(folder.name)
    for name in _names(record, "figures", problems):
        path = _inside(folder, name, problems, "figure")
        if path is None:
            continue
        if not path.exists():
            problems.append(f"figure {inline(path.name)} is missing")
        for png in reading.png_files([path], problems):
            copied(blocks, png, out_dir, f"{stem}-{png.stem}", f"{inline(png.name)} from the analysis folder "
                                                                f"{inline(folder.name)}.", svg)
    for name in _names(record, "tables", problems):
        path = _inside(folder, name, problems, "table")
        if path is not None:
            blocks += csv_table(path, problems)
    if problems:
        blocks.append(Note("Unreadable, damaged or missing files: " + "; ".join(problems) + "."))
    return blocks


def analysis_numbers(folder: Path) -> dict[str, Any]:
    """An analysis folder's entry in report.json: kind, title and findings as its analysis.json gives them."""
    record = reading.read_mapping(Path(folder) / RECORD_NAME, []) or {}
    findings = record.get("findings")
    return {"path": inline(folder, None), "kind": scalar(record.get("kind")), "title": scalar(record.get("title")),
            "findings": {inline(k, 80): scalar(v) for k, v in findings.items()} if isinstance(findings, dict) else {},
            "status": "readable" if record else "unreadable"}


def run_analyses(folder: Path, out_dir: Path, *, level: int, svg: bool) -> list[Block]:
    """The analyses a run folder holds (`RUN/analysis/*/`), each as a section one level down."""
    try:
        subfolders = sorted(p for p in Path(folder).iterdir() if p.is_dir()) if Path(folder).is_dir() else []
    except OSError as exc:
        return [Note(f"The run's analyses could not be listed ({reading.why(exc)}).")]
    blocks: list[Block] = []
    for sub in subfolders:
        blocks += analysis_blocks(sub, out_dir, level=level, svg=svg)
    return blocks
