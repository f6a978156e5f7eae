"""Matplotlib figures with one consistent look; headless (Agg), written atomically.

Figures are drawn from plain rows (as read from a run's CSV files), never from live objects, so a report
can redraw them from old runs. `figure()` gives the common look (`STYLE`, scoped to the figure) and saves
PNG, plus SVG on request.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

Rows = Sequence[Mapping[str, Any]]

# readable on screen and in print: 10 pt text, light grid, no box, colour-blind-safe colours (tab10)
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
         "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
         "lines.linewidth": 1.6, "lines.markersize": 4, "image.cmap": "Blues", "savefig.dpi": 120}
MARKERS = "osD^vP*X"  # a marker per run, so overlaid curves stay apart in black-and-white print


def _figure(figsize: tuple[float, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


def _save(fig: Any, path: Path) -> None:
    """Save next to the target, then rename, so a reader never sees a half-written image."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_figure(fig: Any, path: Path) -> None:
    """Save atomically (see `_save`) and close the figure."""
    import matplotlib.pyplot as plt

    try:
        _save(fig, path)
    finally:
        plt.close(fig)


@contextlib.contextmanager
def figure(path: Path, figsize: tuple[float, float], svg: bool = False) -> Iterator[Any]:
    """A figure in the common look, saved to `path` (and beside it as .svg when asked) when the block ends."""
    import matplotlib.pyplot as plt

    fig = _figure(figsize)  # sets the Agg backend first
    try:
        with plt.rc_context(STYLE):
            yield fig
            fig.tight_layout()
            _save(fig, path)
            if svg:
                _save(fig, Path(path).with_suffix(".svg"))
    finally:
        plt.close(fig)


def _floats(rows: Rows, key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def _series(rows: Rows, x: str, y: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    """(xs, ys) of the rows where both are present."""
    pairs = [(float(r[x]), float(r[y]) * scale) for r in rows
             if r.get(x) not in (None, "") and r.get(y) not in (None, "")]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _epoch_axis(ax: Any, last_epoch: float) -> None:
    """Epochs from 0 (where training starts) to the last, whole numbers only: one-epoch runs stay readable."""
    ax.set_xlim(0, last_epoch * 1.04 + 0.1)
    ax.xaxis.get_major_locator().set_params(integer=True)


def steps_per_epoch(history: Rows) -> float | None:
    """Training steps per epoch, from metrics.csv's (epoch, step) pairs; None before the first epoch ends."""
    xs, ys = _series(history, "epoch", "step")
    return ys[-1] / xs[-1] if xs and xs[-1] > 0 else None


def plot_curves(history: Rows, path: Path, steps: Rows = (), svg: bool = False, title: str | None = None) -> None:
    """The notebook's two panels, completed: losses per epoch (and per logged step), accuracies per epoch.

    The accuracy panel is titled with the best validation accuracy and its epoch, as the notebook's was.
    """
    with figure(path, (12, 4.5), svg) as fig:
        loss_ax, acc_ax = fig.subplots(1, 2)
        per_epoch = steps_per_epoch(history)
        if steps and per_epoch:
            xs, ys = _series(steps, "step", "train_loss")
            loss_ax.plot([x / per_epoch for x in xs], ys, color="tab:blue", alpha=0.35, linewidth=1,
                         label="training loss (logged steps)")
        loss_ax.plot(*_series(history, "epoch", "train_loss"), marker="o", color="tab:blue",
                     label="training loss (epoch mean)")
        if _floats(history, "val_loss"):
            loss_ax.plot(*_series(history, "epoch", "val_loss"), marker="s", color="tab:orange",
                         label="validation loss")
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss (nats)", title="Loss")
        acc_ax.plot(*_series(history, "epoch", "train_acc", 100), marker="o", color="tab:blue",
                    label="training accuracy")
        val_epochs, val = _series(history, "epoch", "val_acc", 100)
        if val:
            best = max(range(len(val)), key=val.__getitem__)
            acc_ax.plot(val_epochs, val, marker="s", color="tab:orange", label="validation accuracy")
            acc_ax.plot([val_epochs[best]], [val[best]], marker="*", markersize=14, color="tab:red",
                        linestyle="none", label="best validation accuracy")
            acc_ax.set_title(f"Best validation accuracy = {val[best]:.2f}% @ epoch {val_epochs[best]:.0f}")
        else:
            acc_ax.set_title("Accuracy (no validation set: data.val_size=0)")
        acc_ax.set(xlabel="epoch", ylabel="accuracy (%)")
        last_epoch = max(_floats(history, "epoch"), default=1.0)
        for ax in (loss_ax, acc_ax):
            if ax.lines:
                ax.legend()
            _epoch_axis(ax, last_epoch)
        if title:
            fig.suptitle(title)


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, svg: bool = False,
                   title: str = "Confusion matrix (test set)") -> None:
    """Counts per (true, predicted) class, written in the cells; colour scaled per true class (row)."""
    import numpy as np

    counts = np.asarray(matrix, dtype=np.int64)
    k = len(counts)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.5, 0.55 * k + 2.5)
    with figure(path, (size + 1.2, size), svg) as fig:
        ax = fig.add_subplot(1, 1, 1)
        image = ax.imshow(rates, vmin=0, vmax=1)
        ax.grid(False)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{counts[i, j]}", ha="center", va="center", fontsize=8 if k <= 12 else 6,
                        color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), [str(c) for c in classes], rotation=45, ha="right")
        ax.set_yticks(range(k), [str(c) for c in classes])
        ax.set(xlabel="predicted class", ylabel="true class", title=title)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")


def plot_comparison(runs: Sequence[tuple[str, Rows]], path: Path, svg: bool = False) -> None:
    """Several runs overlaid: training loss and validation accuracy per epoch, a colour and marker per run."""
    with figure(path, (12, 4.8), svg) as fig:
        loss_ax, acc_ax = fig.subplots(1, 2)
        for i, (label, history) in enumerate(runs):
            style = dict(marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", label=label)
            loss_ax.plot(*_series(history, "epoch", "train_loss"), **style)
            acc_ax.plot(*_series(history, "epoch", "val_acc", 100), **style)
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss (nats)", title="Training loss (epoch mean)")
        acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Validation accuracy")
        last_epoch = max((e for _, history in runs for e in _floats(history, "epoch")), default=1.0)
        for ax in (loss_ax, acc_ax):
            _epoch_axis(ax, last_epoch)
            if ax.lines:
                ax.legend()
