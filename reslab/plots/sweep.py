"""A sweep's figures: a metric against depth, a line per plain/residual series, mean with its 95% CI band, every
seed as a dot (so n is visible). Drawn from plain numbers, as read back from the sweep's run folders."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from reslab.plots.style import MARKERS, figure


def _finite(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _log_y(ax: Any) -> None:
    """A log y axis labelled with plain numbers (0.3, 1, 2), not powers of ten."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    plain_numbers = FuncFormatter(lambda v, _: f"{v:.3g}")
    ax.yaxis.set_major_formatter(plain_numbers)
    ax.yaxis.set_minor_formatter(plain_numbers)


def plot_vs_depth(series: Sequence[dict[str, Any]], path: Path | None, *, xlabel: str, ylabel: str, title: str,
                  log_y: bool = False, svg: bool = False) -> Any:
    """`series`: dicts with label, residual (True, False or None), x, mean, low, high (per depth) and points
    ((x, value) per seed). Residual lines are solid, plain ones dashed; the x axis is log2 when depths span 8x.
    Returns the figure (saved to `path` unless it is None)."""
    xs = [x for s in series for x in s["x"]]
    with figure(path, (6.5, 4.3), svg) as fig:
        ax = fig.add_subplot(1, 1, 1)
        for i, s in enumerate(series):
            colour, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
            style = "--" if s["residual"] is False else "-"
            line = [(x, m) for x, m in zip(s["x"], s["mean"]) if _finite(m)]
            ax.plot([p[0] for p in line], [p[1] for p in line], style, color=colour, marker=marker,
                    label=f"{s['label']} (mean, 95% CI)")
            band = [(x, lo, hi) for x, lo, hi in zip(s["x"], s["low"], s["high"]) if _finite(lo) and _finite(hi)]
            if band:
                ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=colour,
                                alpha=0.18, linewidth=0)
            dots = [(x, v) for x, v in s["points"] if _finite(v)]
            if dots:
                ax.scatter([d[0] for d in dots], [d[1] for d in dots], s=12, color=colour, alpha=0.7,
                           edgecolors="none", zorder=3)
        if xs and min(xs) > 0 and max(xs) / min(xs) >= 8:
            ax.set_xscale("log", base=2)
            ticks = sorted(set(xs))
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        if log_y:
            _log_y(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(title="dots: one seed each")
    return fig


def plot_curves_by_depth(panels: Sequence[tuple[str, Sequence[dict[str, Any]]]], path: Path, *,
                         svg: bool = False) -> None:
    """Training curves of a sweep, a column per depth: training loss (log) above, validation accuracy below.

    `panels`: (title, lines) per depth; a line is a dict with label, residual (True, False or None) and history
    (metrics.csv rows as numbers). One thin line per run (seed), plain dashed and residual solid, one colour per
    label in every panel, so a depth's plain and residual seeds can be told apart at a glance."""
    residual = {line["label"]: line["residual"] for _, lines in panels for line in lines}
    labels = list(residual)
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    from matplotlib.ticker import MaxNLocator

    columns = max(1, len(panels))
    with figure(path, (2.6 * columns + 1.2, 5.6), svg) as fig:
        axes = fig.subplots(2, columns, squeeze=False, sharey="row")
        for col, (title, lines) in enumerate(panels):
            loss_ax, acc_ax = axes[0][col], axes[1][col]
            for line in lines:
                style = dict(color=colours[line["label"]], linestyle="--" if line["residual"] is False else "-",
                             linewidth=1.0, alpha=0.8)
                loss = [(r["epoch"], r["train_loss"]) for r in line["history"] if _finite(r.get("train_loss"))
                        and r["train_loss"] > 0]
                acc = [(r["epoch"], 100 * r["val_acc"]) for r in line["history"] if _finite(r.get("val_acc"))]
                loss_ax.plot([p[0] for p in loss], [p[1] for p in loss], **style)
                acc_ax.plot([p[0] for p in acc], [p[1] for p in acc], **style)
            loss_ax.set_title(title)
            acc_ax.set_xlabel("epoch")
            for ax in (loss_ax, acc_ax):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if any(line.get_xydata().size for line in loss_ax.get_lines()):
                _log_y(loss_ax)
        axes[0][0].set_ylabel("training loss (nats, log)")
        axes[1][0].set_ylabel("validation accuracy (%)")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=colours[label], linestyle="--" if residual[label] is False else "-",
                          label=label)
                   for label in labels]
        if handles:
            axes[0][0].legend(handles=handles, title="a line per seed")
