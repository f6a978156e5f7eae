"""A sweep's results as typed rows: what `run_sweep` returns, and what `SweepFolder.run_rows()`, `cell_rows()` and
`pair_rows()` read back from results.csv, aggregate.csv and paired.csv.

The CSV files hold words and numbers for people; these rows hold Python values: a swept `model.residual` is a
bool, a depth an int, a status a `RunStatus`, a metric a float. A damaged or empty cell reads as None, never as a
string to compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from reslab.status import RunStatus
from reslab.sweep.spec import TWINS, Pairing

COUNTS = ("n", "n_diverged")  # aggregate.csv and paired.csv: whole numbers
PAIR_COLUMNS = ("pair_key", "pair_a", "pair_b")  # paired.csv's last columns: the key paired, and b - a its values


@dataclass(frozen=True)
class RunRow:
    """One run of a sweep (a row of results.csv)."""

    key: str  # the run's stable name (its folders are runs/<key>-<date>-<time>-<id>)
    values: Mapping[str, Any]  # swept key -> value, typed (model.residual: bool, model.depth: int)
    seed: int | None
    status: RunStatus | None  # None: no run folder yet, or a status no reslab writes
    metrics: Mapping[str, float | None] = field(default_factory=dict)  # summary numbers: test_acc, train_seconds...
    run_folder: Path | None = None  # absolute
    chosen: bool | None = None  # with `tune`: whether its tuned value is the one its cell chose

    @property
    def completed(self) -> bool:
        """Finished or diverged: a result (a diverged run is a result, not a failure)."""
        return self.status is not None and self.status.completed

    def metric(self, name: str) -> float | None:
        return self.metrics.get(name)


@dataclass(frozen=True)
class CellRow:
    """One cell of the grid (a row of aggregate.csv): n finished runs, and mean, std and 95% CI per metric."""

    values: Mapping[str, Any]  # grid key -> value (and the tuned key -> the value chosen), typed
    n: int | None
    n_diverged: int | None
    stats: Mapping[str, float | None]  # "test_acc_mean", "test_acc_ci_low", ...

    def stat(self, name: str) -> float | None:
        return self.stats.get(name)


@dataclass(frozen=True)
class PairRow:
    """One group of cells that differ only in the paired key (a row of paired.csv): the run at `pair.b` minus the
    run at `pair.a` (residual - plain by default), paired by seed."""

    values: Mapping[str, Any]  # grid key -> value, the paired key left out
    n: int | None
    seeds: tuple[int, ...]
    stats: Mapping[str, float | None]  # "test_acc_diff_mean", "test_acc_diff_ci_low", "test_acc_residual_wins", ...
    diffs: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # metric -> the per-seed differences
    pair: Pairing = TWINS  # what was paired: its key and the two values, typed

    def stat(self, name: str) -> float | None:
        return self.stats.get(name)

    def wins(self, metric: str) -> float | None:
        """The share of seeds in which the run at `pair.b` is the better one (residual, by default)."""
        return self.stats.get(self.pair.wins_column(metric))


@dataclass(frozen=True)
class Failure:
    """A run of this invocation that did not finish: its folder (if it made one) and one line of error."""

    key: str
    status: RunStatus | None
    run_folder: Path | None
    error: str | None


@dataclass(frozen=True)
class SweepResult:
    """What `run_sweep` did. `completed` is False when a stop signal ended it (run it again to resume)."""

    folder: Path
    completed: bool
    runs: tuple[RunRow, ...] = ()
    aggregate: tuple[CellRow, ...] = ()
    paired: tuple[PairRow, ...] = ()
    failed: tuple[Failure, ...] = ()  # runs of this invocation that neither finished nor diverged


# ----------------------------------------------------------------------------- reading cells


def number(cell: Any) -> float | None:
    """A CSV cell as a finite-or-infinite float; None when empty or damaged (NaN is written as an empty cell)."""
    if isinstance(cell, bool):
        return None
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def whole(cell: Any) -> int | None:
    value = number(cell)
    return int(value) if value is not None and value.is_integer() else None


def flag(cell: Any) -> bool | None:
    """'true'/'false' (YAML's spelling, as the sweep writes them; Python's True/False too) -> bool, else None."""
    return {"true": True, "false": False}.get(str(cell).strip().lower()) if cell is not None else None


def swept_value(cell: str | None, known: Mapping[str, Any]) -> Any:
    """A swept value read back: the sweep file's own value whose spelling the cell holds, else None."""
    return known.get(cell) if cell is not None else None


def read_values(row: Mapping[str, str], lookup: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The swept columns of a row, typed through `lookup` (swept key -> {spelling: value})."""
    return {key: swept_value(row.get(key), known) for key, known in lookup.items() if key in row}


def numbers_of(row: Mapping[str, str], skip: Sequence[str]) -> dict[str, float | None]:
    return {k: number(v) for k, v in row.items() if k not in skip}


def run_row(row: Mapping[str, str], lookup: Mapping[str, Mapping[str, Any]], root: Path, key: str) -> RunRow:
    folder = row.get("run_folder")
    skip = [*lookup, "seed", "status", "run_folder", "chosen"]
    return RunRow(key=key, values=read_values(row, lookup), seed=whole(row.get("seed")),
                  status=RunStatus.parse(row.get("status")), metrics=numbers_of(row, skip),
                  run_folder=root / folder if folder else None,
                  chosen=flag(row.get("chosen")) if "chosen" in row else None)


def cell_row(row: Mapping[str, str], lookup: Mapping[str, Mapping[str, Any]]) -> CellRow:
    return CellRow(values=read_values(row, lookup), n=whole(row.get("n")), n_diverged=whole(row.get("n_diverged")),
                   stats=numbers_of(row, [*lookup, *COUNTS]))


def pair_row(row: Mapping[str, str], lookup: Mapping[str, Mapping[str, Any]], pair: Pairing = TWINS) -> PairRow:
    seeds = tuple(s for s in (whole(x) for x in (row.get("seeds") or "").split(";")) if s is not None)
    diff_columns = [k for k in row if k.endswith("_diffs")]
    diffs = {k.removesuffix("_diffs"): tuple(x for x in (number(v) for v in (row[k] or "").split(";")) if x is not None)
             for k in diff_columns}
    return PairRow(values=read_values(row, lookup), n=whole(row.get("n")), seeds=seeds,
                   stats=numbers_of(row, [*lookup, *COUNTS, "seeds", *diff_columns, *PAIR_COLUMNS]), diffs=diffs,
                   pair=pair)
