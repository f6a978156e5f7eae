"""A sweep's results, from its run folders' files only: results.csv, aggregate.csv, paired.csv, figures, summary.txt.

Every number is read back from the runs' summary.json and status.json, so the aggregate can be rebuilt at any
time (a sweep run again with nothing left to train rewrites it identically). Intervals are 95% Student t
intervals over seeds; runs that differ only in the paired key (plain and residual twins by default) are compared
seed by seed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Mapping, Sequence

from reslab import files
from reslab.runs import RunFolder
from reslab.status import RunStatus
from reslab.sweep.folder import SweepFolder
from reslab.sweep.result import PAIR_COLUMNS, RunRow, number
from reslab.sweep.spec import PlannedRun, SweepSpec, text
from reslab.intervals import t_interval
from reslab.sweep.summary import figure_series, summary_text

METRICS = ("test_acc", "best_val_acc", "final_train_loss", "final_train_acc")  # aggregated per cell
PAIRED = ("test_acc", "final_train_loss")  # b - a of the paired key (residual - plain), per seed
LOWER_IS_BETTER = ("final_train_loss",)
MISSING = "missing"  # results.csv's status of a run that has no run folder yet
UNKNOWN = "unknown"  # results.csv's status of a run folder whose status.json is damaged or missing


def _completed(status: object) -> bool:
    parsed = RunStatus.parse(status)
    return parsed is not None and parsed.completed


def collect(folder: SweepFolder, planned: Sequence[PlannedRun]) -> list[dict[str, Any]]:
    """A row per planned run: its swept values, seed, status, summary numbers (no per-class lists), folder.

    A completed run whose summary.json is unreadable or holds a metric that is not a number keeps its row, with the
    damaged numbers left empty, and is left out of the cells and pairs: `_left_out` says why."""
    index = folder.read_index()
    rows = []
    for run in planned:
        path = folder.run_folder(run.key, index)
        row: dict[str, Any] = {**{k: text(v) for k, v in run.values.items()}, "seed": run.seed, "status": MISSING}
        row.update(_key=run.key, _cell=run.cell, _values=run.values)
        if path is not None:
            rf = RunFolder(path)
            problems: list[str] = []
            summary = rf.read_summary(problems) or {}
            status = rf.run_status()
            from_summary = RunStatus.parse(summary.get("status"))
            status = from_summary if from_summary is not None and from_summary.completed else status
            row["status"] = status.value if status is not None else UNKNOWN
            row.update({k: v for k, v in summary.items()
                        if k not in row and not k.startswith("_") and isinstance(v, (str, int, float, bool))})
            row["run_folder"] = folder.relative(path)
            if status is not None and status.completed:
                problems += [f"{rf.summary.name} has no numbers"] if not summary else []
                problems += [f"{rf.summary.name}'s {m} is {_shown(row.pop(m))}, not a finite number"
                             for m in METRICS if row.get(m) is not None and _metric(row[m]) is None]
                if problems:
                    row["_left_out"] = f"{row['run_folder']}: {'; '.join(problems)}"
        rows.append(row)
    return rows


def _metric(value: Any) -> float | None:
    """A summary number as a float: None for text, bools, NaN, infinities and ints beyond a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any) -> str:
    """A damaged value in a note: short (an int of thousands of digits is not even printable)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        return "a number beyond a float"
    return repr(value)[:40]


def _counted(row: dict[str, Any]) -> bool:
    """A finished run whose numbers are all readable: it counts in the cells, pairs and the tuning."""
    return row["status"] == RunStatus.FINISHED and "_left_out" not in row


def left_out(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A line per completed run left out of the aggregate, saying why (a damaged summary.json)."""
    return [row["_left_out"] for row in rows if "_left_out" in row]


def typed_run(row: dict[str, Any], folder: SweepFolder) -> RunRow:
    """A row of `collect` as a typed RunRow (what a stopped sweep reports, before results.csv is rewritten)."""
    skip = {*row["_values"], "seed", "status", "run_folder"}
    return RunRow(key=row["_key"], values=dict(row["_values"]), seed=row["seed"], status=RunStatus.parse(row["status"]),
                  metrics={k: number(v) for k, v in row.items() if not k.startswith("_") and k not in skip},
                  run_folder=folder.path / row["run_folder"] if row.get("run_folder") else None)


def choose_tuned(rows: Sequence[dict[str, Any]], spec: SweepSpec) -> dict[str, Any]:
    """cell -> the tuned value with the highest mean `tune.by` over its finished seeds (validation split)."""
    if spec.tune is None:
        return {}
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        score = _metric(row.get(spec.tune.by))
        if _counted(row) and score is not None:
            scores[row["_cell"]][text(row["_values"][spec.tune.key])].append(score)
    chosen = {}
    for cell, by_value in scores.items():
        best = max(by_value, key=lambda v: sum(by_value[v]) / len(by_value[v]))
        chosen[cell] = next(v for v in spec.tune.values if text(v) == best)
    return chosen


def _kept(rows: Sequence[dict[str, Any]], spec: SweepSpec, chosen: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows that count for the cells: with tune, only those of the chosen value."""
    if spec.tune is None:
        return list(rows)
    return [r for r in rows if r["_cell"] in chosen and text(r["_values"][spec.tune.key]) == text(chosen[r["_cell"]])]


def cells(rows: Sequence[dict[str, Any]], spec: SweepSpec, chosen: dict[str, Any]) -> list[dict[str, Any]]:
    """aggregate.csv: per cell n (finished), n_diverged, and mean, std, 95% t interval of each of METRICS."""
    by_cell: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _kept(rows, spec, chosen):
        by_cell[row["_cell"]].append(row)
    out = []
    for cell, members in by_cell.items():
        done = [r for r in members if _counted(r)]
        agg: dict[str, Any] = {k: members[0][k] for k in spec.grid}
        if spec.tune:
            agg[spec.tune.key] = text(chosen[cell])
        agg.update(n=len(done), n_diverged=sum(r["status"] == RunStatus.DIVERGED for r in members), _cell=cell,
                   _values=members[0]["_values"])
        for metric in METRICS:
            values = [x for x in (_metric(r.get(metric)) for r in done) if x is not None]
            agg[f"{metric}_mean"], agg[f"{metric}_std"], agg[f"{metric}_ci_low"], agg[f"{metric}_ci_high"] = \
                t_interval(values)
            agg[f"_{metric}"] = values
        out.append(agg)
    return out


def pairs(rows: Sequence[dict[str, Any]], spec: SweepSpec, chosen: dict[str, Any]) -> list[dict[str, Any]]:
    """paired.csv: for cells that differ only in the paired key, the run at its value b minus the run at a, per seed
    (both finished): residual - plain by default."""
    pairing = spec.pairing
    if pairing is None:
        return []
    others = [k for k in spec.grid if k != pairing.key]
    side_of = {text(pairing.a): "a", text(pairing.b): "b"}
    groups: dict[str, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for row in _kept(rows, spec, chosen):
        side = side_of.get(text(row["_values"][pairing.key]))
        if _counted(row) and side is not None and all(_metric(row.get(m)) is not None for m in PAIRED):
            group = ",".join(f"{k}={text(row['_values'][k])}" for k in others)
            groups[group][side][row["seed"]] = row
    out = []
    for group, sides in groups.items():
        seeds = sorted(set(sides["a"]) & set(sides["b"]))
        if not seeds:
            continue
        first = next(iter(sides["a"].values()))["_values"]
        pair: dict[str, Any] = {k: text(first[k]) for k in others}
        pair.update(n=len(seeds), seeds=";".join(map(str, seeds)), _group=group, _values=first)
        for metric in PAIRED:
            diffs = [float(sides["b"][s][metric]) - float(sides["a"][s][metric]) for s in seeds]
            mean, _, low, high = t_interval(diffs)
            wins = [d < 0 if metric in LOWER_IS_BETTER else d > 0 for d in diffs]
            pair.update({f"{metric}_diffs": ";".join(f"{d:.6g}" for d in diffs), f"{metric}_diff_mean": mean,
                         f"{metric}_diff_ci_low": low, f"{metric}_diff_ci_high": high,
                         pairing.wins_column(metric): sum(wins) / len(wins)})
        pair.update(zip(PAIR_COLUMNS, (pairing.key, text(pairing.a), text(pairing.b))))
        out.append(pair)
    return out


def depth_key(grid: Mapping[str, Sequence[Any]]) -> str | None:
    """The x axis of the figures: model.depth when swept, else the first grid key whose values are all numbers."""
    if "model.depth" in grid:
        return "model.depth"
    numeric = [k for k, vs in grid.items()
               if isinstance(vs, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vs)]
    return numeric[0] if numeric else None


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of the rows in first-seen order, without the internal ones (which start with _)."""
    return list(dict.fromkeys(k for row in rows for k in row if not k.startswith("_")))


def write_all(folder: SweepFolder, spec: SweepSpec, planned: Sequence[PlannedRun], svg: bool = False
              ) -> tuple[dict[str, Any], list[str]]:
    """Write every aggregate file of the sweep folder; returns the tuned value chosen per cell (with `tune`) and a
    line per completed run left out because its summary.json is damaged."""
    rows = collect(folder, planned)
    chosen = choose_tuned(rows, spec)
    if spec.tune:
        for row in rows:
            row["chosen"] = row["_cell"] in chosen and text(row["_values"][spec.tune.key]) == text(chosen[row["_cell"]])
    tail = ["run_folder"] + (["chosen"] if spec.tune else [])
    result_cols = [c for c in _columns(rows) if c not in tail] + tail
    files.write_csv(folder.results, rows, result_cols)
    per_cell, paired = cells(rows, spec, chosen), pairs(rows, spec, chosen)
    files.write_csv(folder.aggregate, [files.json_safe(c) for c in per_cell], _columns(per_cell) or [*spec.grid, "n"])
    files.write_csv(folder.paired, [files.json_safe(p) for p in paired],  # NaN (n < 2) is an empty cell
                    _columns(paired) or [k for k in spec.grid if spec.pairing is None or k != spec.pairing.key]
                    + ["n"])
    depth = depth_key(spec.grid)
    if depth is not None and per_cell:
        from reslab.plots.sweep import plot_vs_depth

        for metric, path, label in (("test_acc", folder.acc_figure, "test accuracy"),
                                    ("final_train_loss", folder.loss_figure, "final training loss")):
            plot_vs_depth(figure_series(per_cell, spec, depth, metric), path, xlabel=depth, ylabel=label,
                          title=f"{spec.name}: {label} vs {depth}", log_y=metric == "final_train_loss", svg=svg)
    files.write_text(folder.summary, summary_text(spec, rows, per_cell, paired, chosen, depth, left_out(rows)))
    return chosen, left_out(rows)
