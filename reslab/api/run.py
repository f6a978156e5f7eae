"""A run folder as a Python object: `load_run(dir)` -> `Run`, whose tables are DataFrames and whose plot is a Figure.

Every file is read through `RunFolder`'s tolerant readers (a missing or damaged file reads as empty), so a run
still training, interrupted or diverged loads as well as a finished one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reslab.api.tables import frame, html_table, scalars
from reslab.errors import CheckpointError
from reslab.runs import RunFolder
from reslab.status import RunStatus

SHOWN = ("status", "epochs", "best_val_acc", "best_epoch", "test_acc", "test_loss", "train_seconds", "params")


@dataclass(frozen=True)
class Run:
    """One run folder. Tables (pandas DataFrames, `reslab[notebook]`): `metrics` (a row per epoch), `steps` (the
    training loss every log_every steps), `summary` and `config` (one row each, dotted keys as columns).
    `plot_curves()` and `plot_gradflow()` return the loss and accuracy curves and the gradient-flow heatmap as
    matplotlib Figures."""

    path: Path

    @property
    def folder(self) -> RunFolder:
        """The run folder's files and readers."""
        return RunFolder(self.path)

    @property
    def name(self) -> str:
        """The run folder's name: <config name>-<date>-<time>-<id>."""
        return self.path.name

    @property
    def status(self) -> RunStatus | None:
        """RUNNING, FINISHED, DIVERGED, FAILED or INTERRUPTED (None: no readable status.json)."""
        return self.folder.run_status()

    def summary_values(self) -> dict[str, Any]:
        """summary.json as a dict (empty until the run has finished or diverged)."""
        return self.folder.read_summary() or {}

    def config_values(self) -> dict[str, Any]:
        """The resolved config (config.yaml) as nested dicts."""
        return self.folder.read_config()

    @property
    def metrics(self) -> Any:
        """metrics.csv: epoch, step, lr, train_loss, train_acc, val_loss, val_acc, seconds, samples_per_s."""
        from reslab.runs import METRICS_FIELDS

        rows = self.folder.read_metrics()
        return frame(rows, _columns(rows, METRICS_FIELDS))

    @property
    def steps(self) -> Any:
        """steps.csv: step, lr, train_loss (every train.log_every steps)."""
        from reslab.runs import STEPS_FIELDS

        rows = self.folder.read_steps()
        return frame(rows, _columns(rows, STEPS_FIELDS))

    @property
    def summary(self) -> Any:
        """summary.json's numbers and words as one row (index: the run's name); lists (the confusion matrix) are in
        `summary_values()`."""
        return frame([scalars(self.summary_values())], index=[self.name])

    @property
    def config(self) -> Any:
        """The resolved config as one row, a column per dotted key (model.depth, optim.lr, ...)."""
        return frame([scalars(self.config_values())], index=[self.name])

    def plot_curves(self, title: str | None = None) -> Any:
        """Loss and accuracy per epoch (the run's curves.png, redrawn from its files) as a matplotlib Figure."""
        from reslab.plots import plot_curves

        return plot_curves(self.folder.read_metrics(), None, steps=self.folder.read_steps(), title=title or self.name)

    def plot_gradflow(self) -> Any:
        """Gradient flow during training, layer by step (the run's gradflow.png, redrawn from gradflow.csv; runs of a
        sweep or the lab draw none themselves) as a matplotlib Figure; None when the run recorded none."""
        from reslab.plots import plot_training_heatmap

        return plot_training_heatmap(self.folder.read_gradflow(), None)

    def _repr_html_(self) -> str:
        summary, cfg = self.summary_values(), self.config_values()
        status = self.status or summary.get("status")
        model = cfg.get("model", {}) if isinstance(cfg.get("model"), dict) else {}
        data = cfg.get("data", {}) if isinstance(cfg.get("data"), dict) else {}
        form = ", ".join(f"{k} {model[k]}" for k in ("depth", "width", "residual") if k in model)
        rows = [("run", self.name), ("model", f"{model.get('name', '?')}" + (f" ({form})" if form else "")),
                ("dataset", data.get("dataset")), ("status", str(status) if status else None)]
        rows += [(key, summary[key]) for key in SHOWN[1:] if summary.get(key) is not None]
        return html_table(rows, ("", ""), caption=f"reslab run {self.path}")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status})"


def _columns(rows: list[dict[str, Any]], known: list[str]) -> list[str]:
    """The file's columns in their written order: the known ones, then any other."""
    return list(dict.fromkeys([*known, *(k for row in rows for k in row)]))


def load_run(path: str | Path) -> Run:
    """The run folder at `path` (made by `reslab train` or `reslab.train`), as a `Run`.

    A folder that is not a run folder is a CheckpointError (a ReslabError)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"run folder {path} does not exist")
    if not RunFolder.holds_run(path):
        raise CheckpointError(f"{path} is not a reslab run folder (no {RunFolder.CONFIG} with a status, metrics or "
                              "summary)")
    return Run(path)
