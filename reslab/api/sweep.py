"""A sweep folder as a Python object: `load_sweep(dir)` -> `Sweep`, whose tables are DataFrames (results,
aggregate, paired: the folder's CSV files as written) and whose figures are matplotlib Figures.

Files are named by `SweepFolder` and read through the tolerant readers (`reslab.reading`); the figure is the sweep's
own (`plot_vs_depth`), redrawn from the typed rows (`SweepFolder.cell_rows()`, `run_rows()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reslab import reading
from reslab.api.run import Run
from reslab.api.tables import frame, html_table
from reslab.errors import ConfigError
from reslab.sweep.folder import SweepFolder


@dataclass(frozen=True)
class Sweep:
    """One sweep folder (`reslab sweep` or `reslab.sweep`). Tables (pandas DataFrames, `reslab[notebook]`):
    `results` (a row per run), `aggregate` (a row per cell of the grid: n, mean, std, 95% CI per metric), `paired`
    (residual - plain per seed, per pair of twin cells). `runs` are its `Run`s; `plot_depth()` is a Figure."""

    path: Path

    @property
    def folder(self) -> SweepFolder:
        """The sweep folder's files and typed readers."""
        return SweepFolder(self.path)

    @property
    def name(self) -> str:
        """The sweep's name (its folder's)."""
        return self.path.name

    @property
    def results(self) -> Any:
        """results.csv: the swept values, seed, status, summary numbers and run folder of every run."""
        return _table(self.folder.results)

    @property
    def aggregate(self) -> Any:
        """aggregate.csv: per cell of the grid, n finished runs and each metric's mean, std and 95% CI."""
        return _table(self.folder.aggregate)

    @property
    def paired(self) -> Any:
        """paired.csv: per group of cells differing only in the paired key, b - a (residual - plain by default)
        paired by seed (mean, 95% CI, wins)."""
        return _table(self.folder.paired)

    @property
    def runs(self) -> list[Run]:
        """The sweep's runs that have a run folder, in results.csv's order."""
        return [Run(row.run_folder) for row in self.folder.run_rows() if row.run_folder is not None]

    def summary_text(self) -> str:
        """summary.txt: the sentences computed from the numbers, each with its n."""
        return reading.read_text(self.folder.summary, []) or ""

    def plot_depth(self, metric: str = "test_acc", log_y: bool | None = None) -> Any:
        """`metric` (test_acc, final_train_loss, ...) against depth: a line per plain/residual series, mean with its
        95% CI band, a dot per seed; a matplotlib Figure. A sweep whose grid has no numeric key is a ConfigError."""
        from reslab.plots.sweep import plot_vs_depth
        from reslab.sweep.aggregate import depth_key
        from reslab.sweep.summary import figure_series

        spec = self._spec()
        depth = depth_key(spec.grid)
        if depth is None:
            raise ConfigError(f"sweep {self.name} has no numeric grid key to draw {metric} against")
        per_cell = self._cells(spec, depth, metric)
        if not per_cell:
            raise ConfigError(f"sweep {self.name} has no {metric} to draw yet (no aggregate.csv rows with it)")
        label = metric.replace("_", " ")
        return plot_vs_depth(figure_series(per_cell, spec, depth, metric), None, xlabel=depth, ylabel=label,
                             title=f"{spec.name}: {label} vs {depth}",
                             log_y=("loss" in metric) if log_y is None else log_y)

    def _spec(self) -> Any:
        from reslab.config import load_source
        from reslab.sweep.spec import sweep_spec

        if not self.folder.sweep_file.is_file():
            raise ConfigError(f"{self.path} is not a sweep folder (no {self.folder.sweep_file.name})")
        return sweep_spec(load_source(str(self.folder.sweep_file)), self.folder.sweep_file)

    def _cells(self, spec: Any, depth: str, metric: str) -> list[dict[str, Any]]:
        """aggregate.csv's cells in the shape the sweep's own figure is drawn from: values, stats, seeds' values."""
        runs = [r for r in self.folder.run_rows() if r.completed and r.chosen is not False]
        cells = []
        for cell in self.folder.cell_rows():
            if cell.stat(f"{metric}_mean") is None or cell.values.get(depth) is None:
                continue
            grid_values = {k: cell.values.get(k) for k in spec.grid}
            seeds = [r.metric(metric) for r in runs if all(r.values.get(k) == v for k, v in grid_values.items())]
            cells.append({"_values": dict(cell.values), f"_{metric}": [v for v in seeds if v is not None],
                          **{f"{metric}_{s}": cell.stat(f"{metric}_{s}") for s in ("mean", "ci_low", "ci_high")}})
        return cells

    def _repr_html_(self) -> str:
        cells = self.folder.cell_rows()
        keys = list(dict.fromkeys(k for c in cells for k in c.values))
        rows = [[*(c.values.get(k) for k in keys), c.n, c.stat("test_acc_mean"), c.stat("test_acc_ci_low"),
                 c.stat("test_acc_ci_high")] for c in cells]
        header = [*keys, "n", "test_acc mean", "95% CI low", "95% CI high"]
        return html_table(rows, header, caption=f"reslab sweep {self.name}: {len(self.folder.run_rows())} runs, "
                                                f"{len(cells)} cells ({self.path})")

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r})"


def _table(path: Path) -> Any:
    """One of the sweep's CSV files as a DataFrame, as written (an empty frame before the sweep wrote it)."""
    return frame(reading.read_table(path, []) or [])


def load_sweep(path: str | Path) -> Sweep:
    """The sweep folder at `path` (`<runs-dir>/<sweep name>`, made by `reslab sweep` or `reslab.sweep`) as a `Sweep`.

    A folder without the sweep's copy of its file (sweep.yaml) is a ConfigError (a ReslabError)."""
    path = Path(path)
    if not SweepFolder(path).sweep_file.is_file():
        raise ConfigError(f"{path} is not a sweep folder (no {SweepFolder(path).sweep_file.name})")
    return Sweep(path)
