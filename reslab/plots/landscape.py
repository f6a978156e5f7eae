"""Loss-landscape figures, drawn from the rows of landscape.csv (so they can be redrawn from disk).

- `plot_landscape_1d`: loss (log scale) and accuracy along each direction, a colour per model (its first direction
  marked, the others thinner);
- `plot_landscape_2d`: loss contours over two directions, a panel per model, one colour scale for all panels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from reslab.plots.style import MARKERS, Rows, figure, value


def _models(rows: Rows) -> list[str]:
    return list(dict.fromkeys(str(r["model"]) for r in rows))


def plot_landscape_1d(rows: Rows, path: Path, svg: bool = False) -> None:
    """Loss and accuracy against the step along the direction (0: the trained weights)."""
    with figure(path, (11, 4.2), svg) as fig:
        loss_ax, acc_ax = fig.subplots(1, 2)
        for i, model in enumerate(_models(rows)):
            mine = [r for r in rows if r["model"] == model]
            for d in sorted({int(r.get("direction") or 1) for r in mine}):  # several directions: thinner, unlabelled
                sel = sorted((r for r in mine if int(r.get("direction") or 1) == d), key=lambda r: value(r, "a"))
                steps = [value(r, "a") for r in sel]
                style = {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)] if d == 1 else None,
                         "label": model if d == 1 else None, "linewidth": 1.5 if d == 1 else 0.8}
                loss_ax.plot(steps, [value(r, "loss") for r in sel], **style)
                acc_ax.plot(steps, [100 * value(r, "acc") for r in sel], **style)
        loss_ax.set_yscale("log")
        loss_ax.set_ylabel("training loss (subset)")
        acc_ax.set_ylabel("training accuracy (subset, %)")
        for ax in (loss_ax, acc_ax):
            ax.axvline(0, color="0.6", linewidth=0.8)
            ax.set_xlabel("step along the filter-normalised direction")
        loss_ax.set_title("Loss along random directions")
        acc_ax.set_title("Accuracy along the same directions")
        loss_ax.legend(fontsize=8)


def plot_landscape_2d(rows: Rows, path: Path, svg: bool = False) -> None:
    """Contours of log10 loss over (a, b), a panel per model; the levels and colours are shared, so a plain/residual
    pair is read on one scale. The trained weights are the cross at (0, 0)."""
    models = _models(rows)
    finite = [value(r, "loss") for r in rows if math.isfinite(value(r, "loss")) and value(r, "loss") > 0]
    low, high = np.log10(min(finite)), np.log10(max(finite))
    levels = np.linspace(low, high if high > low else low + 1e-6, 21)
    cols = min(len(models), 3)
    rows_n = math.ceil(len(models) / cols)
    with figure(path, (4.6 * cols + 1.2, 4.2 * rows_n), svg) as fig:
        axes = fig.subplots(rows_n, cols, squeeze=False).flatten()
        filled = None
        for ax, model in zip(axes, models):
            sel = [r for r in rows if r["model"] == model]
            a = sorted({value(r, "a") for r in sel})
            b = sorted({value(r, "b") for r in sel})
            grid = np.full((len(b), len(a)), np.nan)
            for r in sel:
                grid[b.index(value(r, "b")), a.index(value(r, "a"))] = np.log10(max(value(r, "loss"), 1e-12))
            filled = ax.contourf(a, b, grid, levels=levels, cmap="viridis", extend="both")
            ax.contour(a, b, grid, levels=levels, colors="k", linewidths=0.3)
            ax.plot([0], [0], marker="+", color="w", markersize=10)
            ax.set_title(model)
            ax.set_xlabel("direction 1")
            ax.set_ylabel("direction 2")
            ax.set_aspect("equal")
            ax.grid(False)
        for ax in axes[len(models):]:
            ax.set_visible(False)
        if filled is not None:
            bar = fig.colorbar(filled, ax=axes[len(models) - 1], shrink=0.85)  # one axes: tight_layout still works
            bar.set_label("log10 training loss (one scale for all panels)")
