"""A sweep folder as a report section: what was swept, the figures, the tables and the sentences from the numbers.

Read from the sweep folder's files only (sweep.yaml, results.csv, aggregate.csv, paired.csv, summary.txt,
index.json, the figures, and each run's metrics.csv for the training curves), never from the sweep runner's
objects, so an old or damaged sweep folder is reported with what it holds. The runs inside are not given
sections of their own (a sweep has dozens); failed and missing ones are listed.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from reslab.config import flatten
from reslab.plots.sweep import plot_curves_by_depth
from reslab import reading
from reslab.report.document import Block, Figure, Heading, Note, Paragraph, Table
from reslab.report.figures import copied, drawn, free_figure
from reslab.reading import finite, inline
from reslab.report.values import DASH, scalar
from reslab.runs import RunFolder
from reslab.status import RunStatus
from reslab.sweep.aggregate import depth_key
from reslab.sweep.folder import SweepFolder
from reslab.sweep.spec import RESIDUAL, TWINS, Pairing, folder_name, text

MAX_PANELS = 8  # depths drawn in the training-curves figure
MAX_LISTED = 30  # failed or missing runs listed by name
SUBSET_KEYS = ("data.train_size", "data.test_size")  # a quick study on part of a dataset says so


def is_sweep(path: Path) -> bool:
    """Whether `path` is a sweep folder (it holds the copy of its sweep file); an unreadable entry is not."""
    try:
        return SweepFolder(Path(path)).sweep_file.is_file()
    except OSError:
        return False


def _show(value: Any) -> str:
    """A value from the sweep file as the sweep writes it (true, null, [1, 2]); cut short when long."""
    try:
        return inline(text(value), 200)
    except (TypeError, ValueError):  # a value JSON cannot write (a YAML date in a list)
        return inline(value, 200)


def _settings(values: Any) -> str:
    """{'optim.lr': 0.1} -> 'optim.lr=0.1' (nested sections as dotted keys)."""
    return ", ".join(f"{inline(k, 80)}={_show(v)}" for k, v in flatten(values).items()) if isinstance(values, dict) \
        else _show(values)


def _ci(row: Mapping[str, str], stem: str, signed: bool = False) -> str:
    """'0.9170 [0.9027, 0.9314]' from a row's <stem>_mean/_ci_low/_ci_high (a dash where it has none)."""
    mean, low, high = (finite(row.get(f"{stem}{k}")) for k in ("_mean", "_ci_low", "_ci_high"))
    fmt = "+.4f" if signed else ".4f"
    if mean is None:
        return DASH
    return format(mean, fmt) + (f" [{format(low, fmt)}, {format(high, fmt)}]" if low is not None and high is not None
                                else " (no interval: n < 2)")


def _cell_keys(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The columns that name a cell or pair: those before `n` (the aggregate writes them first)."""
    header = list(rows[0]) if rows else []
    return header[: header.index("n")] if "n" in header else []


def _aggregate_table(rows: Sequence[Mapping[str, str]]) -> list[Block]:
    keys = _cell_keys(rows)
    body = [[*(inline(r[k], 60) for k in keys), inline(r.get("n", ""), 20) + (
        f" ({r['n_diverged']} diverged)" if r.get("n_diverged") not in (None, "", "0") else ""),
        _ci(r, "test_acc"), _ci(r, "final_train_loss"), _ci(r, "best_val_acc")] for r in rows]
    header = [*keys, "n", "test accuracy (95% CI)", "final training loss (95% CI)", "best val accuracy (95% CI)"]
    return [Paragraph("Per cell (aggregate.csv): n finished runs, mean and 95% t interval over seeds."),
            Table(header, body, [False] * len(keys) + [True] * 4)]


def _wins(row: Mapping[str, str], metric: str, pairing: Pairing) -> str:
    share, n = finite(row.get(pairing.wins_column(metric))), finite(row.get("n"))
    return DASH if share is None or n is None else f"{round(share * n)} of {int(n)}"


def _paired_table(rows: Sequence[Mapping[str, str]], pairing: Pairing) -> list[Block]:
    keys = _cell_keys(rows)
    a, b = (inline(w, 80) for w in pairing.words())
    body = [[*(inline(r[k], 60) for k in keys), inline(r.get("n", ""), 20), _ci(r, "test_acc_diff", True),
             _wins(r, "test_acc", pairing), _ci(r, "final_train_loss_diff", True),
             _wins(r, "final_train_loss", pairing)] for r in rows]
    header = [*keys, "n (paired seeds)", f"test acc: {b} - {a} (95% CI)", f"{b} higher",
              f"train loss: {b} - {a} (95% CI)", f"{b} lower"]
    lead = ("Residual minus plain", "the residual twin") if pairing.twins else (f"{b} minus {a}", f"the run at {b}")
    return [Paragraph(f"{lead[0]}, paired by seed (paired.csv): the mean difference, its 95% t interval "
                      f"and in how many seeds {lead[1]} wins."), Table(header, body, [False] * len(keys) + [True] * 5)]


def _swept(raw: Mapping[str, Any], name: str, configs: Sequence[Mapping[str, Any]]) -> list[Block]:
    """What was swept, as the sweep file says: base, fixed settings, grid, seeds, tune, cases, data subsets."""
    grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
    seeds = raw.get("seeds", 1)
    count = isinstance(seeds, int) and not isinstance(seeds, bool)
    seeds_text = ("1 seed (0)" if seeds == 1 else f"{seeds} seeds (0 to {seeds - 1})") if count \
        else f"seeds {_show(seeds)}"
    parts = [f"Sweep {inline(name)}: base {_show(raw.get('base'))}",
             "grid " + " x ".join(f"{inline(k)} [{', '.join(map(_show, v)) if isinstance(v, list) else _show(v)}]"
                                  for k, v in grid.items()) if grid else "no readable grid",
             seeds_text]
    blocks: list[Block] = [Paragraph("; ".join(parts) + ".")]
    if isinstance(raw.get("set"), dict) and raw["set"]:
        blocks.append(Paragraph(f"Fixed settings: {_settings(raw['set'])}."))
    tune = raw.get("tune")
    if isinstance(tune, dict):
        blocks.append(Paragraph(f"Tuned per cell: {_show(tune.get('key'))} over {_show(tune.get('values'))}, by the "
                                f"best mean {_show(tune.get('by', 'best_val_acc'))} over seeds (validation split); the "
                                "chosen value is in the per-cell table, and only its runs enter the tables."))
    cases = raw.get("cases") if isinstance(raw.get("cases"), list) else []
    for i, case in enumerate(cases):
        if isinstance(case, dict):
            what = "skipped" if case.get("skip") is True else _settings(case.get("set"))
            blocks.append(Paragraph(f"Per-cell settings (cases[{i}]): where {_settings(case.get('when'))}: {what}."))
    inits = _inits(configs)
    if inits:
        blocks.append(Paragraph(f"Initialisation (model.init, with any block form on top): {', '.join(inits)}."))
    for key in SUBSET_KEYS:
        sizes = sorted({scalar(c.get(key)) for c in configs} - {None}, key=str)
        if sizes:
            split = "training" if key.endswith("train_size") else "test"
            blocks.append(Note(f"Part of the data only: {key} = {', '.join(map(_show, sizes))} (a seeded subset of "
                               f"the {split} split), so the accuracies are not those of the full dataset."))
    return blocks


def _inits(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The inits the sweep's runs started from (read from their flattened configs; older runs: their default)."""
    from reslab.models import init_of

    found = set()
    for c in configs:
        if isinstance(c.get("model.name"), str):
            args = {k.removeprefix("model."): v for k, v in c.items() if k.startswith("model.") and k != "model.name"}
            found.add(init_of(c["model.name"], args))
    return sorted(inline(i, 60) for i in found - {""})


def _run_path(sweep: SweepFolder, row: Mapping[str, str]) -> Path | None:
    folder = row.get("run_folder")
    return sweep.path / folder if folder else None


def _completed(status: str | None) -> bool:
    """Whether results.csv's status names a result (finished or diverged)."""
    parsed = RunStatus.parse(status)
    return parsed is not None and parsed.completed


def _status(rows: Sequence[Mapping[str, str]], index: Mapping[str, Any], swept: Sequence[str]) -> list[Block]:
    """Run counts by status, and the runs that did not finish with their one-line error (from index.json)."""
    counts = Counter(r.get("status") or "missing" for r in rows)
    blocks: list[Block] = [Paragraph(f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                                     + ". Only finished runs enter the means (n); diverged ones are counted beside "
                                     "n.")]
    bad = [r for r in rows if not _completed(r.get("status"))]
    if bad:
        listed = []
        for r in bad[:MAX_LISTED]:
            values = {k: r.get(k, "") for k in swept if k in r}  # the run's key in index.json, as the sweep names it
            entry = index.get(folder_name(values, r.get("seed", "")), {}) if values else {}
            error = entry.get("error") if isinstance(entry, dict) else None
            listed.append([inline(",".join(f"{k}={v}" for k, v in values.items()) + f",seed={r.get('seed', '')}", 120),
                           inline(r.get("status") or "missing", 40), inline(r.get("run_folder") or DASH, 120),
                           inline(error or DASH, 200)])
        more = f" (the first {MAX_LISTED} listed)" if len(bad) > MAX_LISTED else ""
        blocks += [Note(f"{len(bad)} of {len(rows)} runs did not finish{more}; run the same reslab sweep command again "
                        "to resume or rerun them."), Table(["run", "status", "folder", "error"], listed)]
    return blocks


def _curves(sweep: SweepFolder, rows: Sequence[Mapping[str, str]], grid: Mapping[str, Any], out_dir: Path,
            svg: bool) -> list[Block]:
    """The training curves of every counted run, a panel per depth (plain dashed, residual solid)."""
    depth = depth_key(grid)
    if depth is None:
        return []
    panels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        path = _run_path(sweep, r)
        if path is None or r.get("chosen") == "False" or depth not in r:
            continue
        history = RunFolder(path).read_metrics()
        others = [k for k in grid if k != depth and k in r]
        side = {"true": True, "false": False}.get(r.get(RESIDUAL, ""))
        label = ", ".join({True: "residual", False: "plain"}[side] if k == RESIDUAL and side is not None
                          else f"{k}={r[k]}" for k in others) or "all runs"
        if history:
            panels[r[depth]].append({"label": label, "residual": side, "history": history})
    if not panels:
        return []
    ordered = sorted(panels, key=lambda v: (finite(v) is None, finite(v) or 0.0, v))
    shown = [(f"{depth}={v}", panels[v]) for v in ordered[:MAX_PANELS]]
    path = free_figure(out_dir, f"{sweep.path.name}-curves")
    blocks: list[Block] = []
    drawn(blocks, "training curves figure", lambda: plot_curves_by_depth(shown, out_dir / path, svg=svg),
          Figure(path, f"Training loss and validation accuracy per epoch, a panel per {depth}, one line per run "
                       "(plain dashed, residual solid), from each run's metrics.csv."
                       + (f" The first {MAX_PANELS} of {len(ordered)} values are drawn." if len(ordered) > MAX_PANELS
                          else "")))
    return blocks


def sweep_blocks(folder: Path, out_dir: Path, *, level: int, svg: bool) -> list[Block]:
    """A sweep folder's section: what was swept, the runs' status, figures, tables and summary sentences; figures
    are copied or drawn into out_dir's figures folder. Missing or damaged files are notes, never errors."""
    sweep, problems = SweepFolder(Path(folder)), []
    raw = reading.read_mapping(sweep.sweep_file, problems) or {}
    name = raw.get("name") if isinstance(raw.get("name"), str) else sweep.path.name
    blocks: list[Block] = [Heading(f"Sweep {inline(name)}", level)]
    results = reading.read_table(sweep.results, problems)
    configs = [RunFolder(p).read_config() for p in
               (_run_path(sweep, r) for r in results or []) if p is not None]
    blocks += _swept(raw, name, [flatten(c) for c in configs])
    blocks.append(Paragraph(f"Folder: {inline(sweep.path, None)}"))
    index = reading.read_mapping(sweep.index, problems) or {}
    index = index.get("runs") if isinstance(index.get("runs"), dict) else {}
    grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
    if results is None:
        states = Counter(str(e.get("status") or "not started") for e in index.values() if isinstance(e, dict))
        blocks.append(Note(f"Not aggregated yet: no {sweep.results.name} (the sweep stopped before its end; the same "
                           "reslab sweep command resumes it and writes the results)"
                           + (f". {sweep.index.name} lists {len(index)} runs: " + ", ".join(
                               f"{n} {s}" for s, n in sorted(states.items())) if index else "") + "."))
    else:
        tune = raw.get("tune") if isinstance(raw.get("tune"), dict) else {}
        swept = [*grid, *([tune["key"]] if isinstance(tune.get("key"), str) else [])]
        blocks += _status(results, index, swept or _cell_keys(results))
    for png, what in ((sweep.acc_figure, "Test accuracy"), (sweep.loss_figure, "Final training loss")):
        if png.exists():
            for usable in reading.png_files([png], problems):
                copied(blocks, usable, out_dir, f"{sweep.path.name}-{png.stem}",
                       f"{what} against depth: plain dashed, residual solid, mean with its 95% t interval as a band, "
                       "every seed as a dot.", svg)
        elif results and depth_key(grid):
            problems.append(f"{png.name} is missing")
    if results:
        blocks += _curves(sweep, results, grid, out_dir, svg)
    pairing = sweep.pairing() or TWINS
    for path, table in ((sweep.aggregate, _aggregate_table), (sweep.paired, lambda r: _paired_table(r, pairing))):
        rows = reading.read_table(path, problems)
        if rows:
            blocks += table(rows)
    summary = reading.read_text(sweep.summary, problems)
    if summary:
        blocks.append(Heading("What the numbers say", level + 1))
        blocks += [Paragraph(line.strip()) for line in summary.splitlines() if line.strip()]
    elif results is not None:
        problems.append(f"{sweep.summary.name} is missing")
    if problems:
        blocks.append(Note("Unreadable, damaged or missing files: " + "; ".join(problems) + "."))
    return blocks


def _number(value: str) -> int | float | str | None:
    """A CSV value as JSON: whole numbers as ints, other finite numbers as floats, empty as null, text as text."""
    if re.fullmatch(r"-?[0-9]{1,18}", value.strip()):  # not isdigit: '²' is a digit to it, and int() refuses it
        return int(value)
    return inline(value, 200) or None if finite(value) is None else finite(value)


def sweep_numbers(folder: Path) -> dict[str, Any]:
    """A sweep's entry in report.json: its name, run counts by status and the per-cell rows of aggregate.csv."""
    sweep = SweepFolder(Path(folder))
    raw = reading.read_mapping(sweep.sweep_file, []) or {}
    results = reading.read_table(sweep.results, []) or []
    cells = [{k: _number(v) for k, v in row.items()} for row in reading.read_table(sweep.aggregate, []) or []]
    return {"path": inline(sweep.path, None), "name": inline(raw.get("name") or sweep.path.name, 200),
            "runs": dict(Counter(r.get("status") or "missing" for r in results)), "cells": cells}
