"""Figures of training runs, from the rows of their metrics.csv and steps.csv.

`plot_curves` is a run's curves.png (drawn by the trainer, redrawn by the report); `plot_confusion` and
`plot_comparison` are the report's per-run and across-run figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from reslab.plots.style import MARKERS, Rows, figure, floats, series


def _epoch_axis(ax: Any, last_epoch: float) -> None:
    """Epochs from 0 (where training starts) to the last, whole numbers only: one-epoch runs stay readable."""
    ax.set_xlim(0, last_epoch * 1.04 + 0.1)
    ax.xaxis.get_major_locator().set_params(integer=True)


def steps_per_epoch(history: Rows) -> float | None:
    """Training steps per epoch, from metrics.csv's (epoch, step) pairs; None before the first epoch ends."""
    xs, ys = series(history, "epoch", "step")
    return ys[-1] / xs[-1] if xs and xs[-1] > 0 else None


def plot_curves(history: Rows, path: Path | None, steps: Rows = (), svg: bool = False,
                title: str | None = None) -> Any:
    """The notebook's two panels, completed: losses per epoch (and per logged step), accuracies per epoch.

    The accuracy panel is titled with the best validation accuracy and its epoch, as the notebook's was. Returns the
    figure (saved to `path` unless it is None).
    """
    with figure(path, (12, 4.5), svg) as fig:
        loss_ax, acc_ax = fig.subplots(1, 2)
        per_epoch = steps_per_epoch(history)
        if steps and per_epoch:
            xs, ys = series(steps, "step", "train_loss")
            loss_ax.plot([x / per_epoch for x in xs], ys, color="tab:blue", alpha=0.35, linewidth=1,
                         label="training loss (logged steps)")
        loss_ax.plot(*series(history, "epoch", "train_loss"), marker="o", color="tab:blue",
                     label="training loss (epoch mean)")
        if floats(history, "val_loss"):
            loss_ax.plot(*series(history, "epoch", "val_loss"), marker="s", color="tab:orange",
                         label="validation loss")
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss (nats)", title="Loss")
        acc_ax.plot(*series(history, "epoch", "train_acc", 100), marker="o", color="tab:blue",
                    label="training accuracy")
        val_epochs, val = series(history, "epoch", "val_acc", 100)
        if val:
            best = max(range(len(val)), key=val.__getitem__)
            acc_ax.plot(val_epochs, val, marker="s", color="tab:orange", label="validation accuracy")
            acc_ax.plot([val_epochs[best]], [val[best]], marker="*", markersize=14, color="tab:red",
                        linestyle="none", label="best validation accuracy")
            acc_ax.set_title(f"Best validation accuracy = {val[best]:.2f}% @ epoch {val_epochs[best]:.0f}")
        else:
            acc_ax.set_title("Accuracy (no validation set: data.val_size=0)")
        acc_ax.set(xlabel="epoch", ylabel="accuracy (%)")
        last_epoch = max(floats(history, "epoch"), default=1.0)
        for ax in (loss_ax, acc_ax):
            if ax.lines:
                ax.legend()
            _epoch_axis(ax, last_epoch)
        if title:
            fig.suptitle(title)
    return fig


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


def plot_comparison(runs: Sequence[tuple[str, Rows]], path: Path | None, svg: bool = False) -> Any:
    """Several runs overlaid: training loss and validation accuracy per epoch, a colour and marker per run; returns
    the figure (saved to `path` unless it is None)."""
    with figure(path, (12, 4.8), svg) as fig:
        loss_ax, acc_ax = fig.subplots(1, 2)
        for i, (label, history) in enumerate(runs):
            style = dict(marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", label=label)
            loss_ax.plot(*series(history, "epoch", "train_loss"), **style)
            acc_ax.plot(*series(history, "epoch", "val_acc", 100), **style)
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss (nats)", title="Training loss (epoch mean)")
        acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Validation accuracy")
        last_epoch = max((e for _, history in runs for e in floats(history, "epoch")), default=1.0)
        for ax in (loss_ax, acc_ax):
            _epoch_axis(ax, last_epoch)
            if ax.lines:
                ax.legend()
    return fig
