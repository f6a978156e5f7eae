"""Shattered-gradient figures, drawn from the rows of the shatter CSV files (so they can be redrawn from disk).

- `plot_lag1_by_depth`: lag-1 correlation against depth per block form, with the paper's 2^-L and 1/sqrt(L);
- `plot_grid_autocorr`: autocorrelation against lag, a panel per form, a line per depth (mean over seeds);
- `plot_grid_gradients`: the gradient over the 1-D grid for the shallowest, a middle and the deepest net;
- `plot_line_corr`: correlation of gradients along lines between test images against lag, a line per model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from reslab.plots.style import MARKERS, Rows, figure, value


def _ordered(rows: Rows, key: str) -> list[str]:
    return list(dict.fromkeys(str(r[key]) for r in rows))


def plot_lag1_by_depth(lag1_rows: Rows, path: Path, svg: bool = False) -> None:
    """Mean lag-1 autocorrelation (band: min..max over seeds) against depth, log x; dotted: the paper's law for the
    form scaled to its first point; grey: the white-noise band."""
    forms = _ordered(lag1_rows, "form")
    with figure(path, (7.5, 4.8), svg) as fig:
        ax = fig.add_subplot(1, 1, 1)
        for i, form in enumerate(forms):
            rows = [r for r in lag1_rows if r["form"] == form]
            depth = [value(r, "depth") for r in rows]
            colour = f"C{i % 10}"
            ax.plot(depth, [value(r, "lag1_mean") for r in rows], marker=MARKERS[i % len(MARKERS)], color=colour,
                    label=form)
            ax.fill_between(depth, [value(r, "lag1_min") for r in rows], [value(r, "lag1_max") for r in rows],
                            color=colour, alpha=0.12, linewidth=0)
            curve = [value(r, "reference_curve") for r in rows]
            if not all(math.isnan(c) for c in curve):  # only plain and resnet-bn have a law in the paper
                ax.plot(depth, curve, linestyle=":", color=colour,
                        label=f"{rows[0]['reference']} through {form}'s first point")
        band = value(lag1_rows[0], "white_noise_band")
        ax.axhspan(-band, band, color="0.85", zorder=0, label=f"white noise (|r| < {band:.2g})")
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.3, 1.05)
        ax.set_xlabel("depth L (blocks)")
        ax.set_ylabel("lag-1 autocorrelation of d output / d input")
        ax.set_title("Shattering with depth at initialisation (1-D input grid)")
        ax.legend(fontsize=7, ncol=2)


def plot_grid_autocorr(grid_rows: Rows, path: Path, svg: bool = False, noise_rows: Rows = ()) -> None:
    """Autocorrelation against lag, mean over seeds: a panel per form, a line per depth; dashed: the paper's
    statistic of white noise of the same size (rows of form 'white noise' in `noise_rows`)."""
    white = sorted((int(r["lag"]), value(r, "corr")) for r in noise_rows if r["form"] == "white noise")
    forms = _ordered(grid_rows, "form")
    cols = min(len(forms), 2)
    rows_n = math.ceil(len(forms) / cols)
    with figure(path, (5.5 * cols, 3.8 * rows_n), svg) as fig:
        axes = fig.subplots(rows_n, cols, sharey=True, squeeze=False).flatten()
        for ax, form in zip(axes, forms):
            mean: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
            for r in grid_rows:
                if r["form"] == form:
                    mean[str(r["depth"])][int(r["lag"])].append(value(r, "autocorr"))
            for i, (depth, by_lag) in enumerate(mean.items()):
                lags = sorted(by_lag)
                ax.plot(lags, [np.nanmean(by_lag[k]) for k in lags], color=f"C{i % 10}", label=f"L={depth}")
            if white:
                ax.plot(*zip(*white), color="0.3", linestyle="--", linewidth=1, label="white noise")
            ax.axhline(0, color="0.5", linewidth=0.8)
            ax.set_title(form)
            ax.set_xlabel("lag (grid points)")
            ax.set_ylabel("autocorrelation")
            ax.legend(fontsize=7, ncol=2)
        for ax in axes[len(forms):]:
            ax.set_visible(False)


def plot_grid_gradients(gradient_rows: Rows, path: Path, svg: bool = False) -> None:
    """The paper's Figure 1: d output / d input over the grid (seed 0, each scaled to unit std), a panel per form,
    the shallowest, a middle and the deepest net offset one above the other."""
    forms = _ordered(gradient_rows, "form")
    with figure(path, (4.2 * len(forms), 4.2), svg) as fig:
        axes = fig.subplots(1, len(forms), sharey=True, squeeze=False)[0]
        for ax, form in zip(axes, forms):
            rows = [r for r in gradient_rows if r["form"] == form]
            depths = sorted({int(r["depth"]) for r in rows})
            shown = list(dict.fromkeys([depths[0], depths[len(depths) // 2], depths[-1]]))
            for i, depth in enumerate(shown):
                sel = [r for r in rows if int(r["depth"]) == depth]
                g = np.array([value(r, "gradient") for r in sel])
                g = (g - g.mean()) / (g.std() or 1.0)
                ax.plot([value(r, "x") for r in sel], g / 4 + i, color=f"C{i}", linewidth=0.9, label=f"L={depth}")
            ax.set_yticks(range(len(shown)), [f"L={d}" for d in shown])
            ax.set_title(form)
            ax.set_xlabel("input x")
            ax.grid(axis="y", visible=False)
        axes[0].set_ylabel("gradient (scaled to unit std)")


def plot_line_corr(line_rows: Rows, path: Path, svg: bool = False) -> None:
    """Correlation of input gradients `lag` points apart along lines between test images (mean over lines; band:
    min..max), a line per model (a run's checkpoint is model@best or model@last)."""
    models = _ordered(line_rows, "model")
    with figure(path, (7, 4.5), svg) as fig:
        ax = fig.add_subplot(1, 1, 1)
        for i, model in enumerate(models):
            by_lag: dict[int, list[float]] = defaultdict(list)
            for r in line_rows:
                if r["model"] == model:
                    by_lag[int(r["lag"])].append(value(r, "corr"))
            lags = sorted(by_lag)
            ax.plot(lags, [np.mean(by_lag[k]) for k in lags], marker=MARKERS[i % len(MARKERS)], markevery=4,
                    color=f"C{i % 10}", label=model)
            ax.fill_between(lags, [min(by_lag[k]) for k in lags], [max(by_lag[k]) for k in lags],
                            color=f"C{i % 10}", alpha=0.12, linewidth=0)
        ax.axhline(0, color="0.5", linewidth=0.8)
        ax.set_xlabel("lag (points along the line)")
        ax.set_ylabel("correlation of input gradients")
        ax.set_title("Gradients along lines between test images")
        ax.legend(fontsize=8)
