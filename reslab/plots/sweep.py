"""A sweep's figures: a metric against depth, a line per plain/residual series, mean with its 95% CI band, every
seed as a dot (so n is visible). Drawn from plain numbers, as read back from the sweep's run folders."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from reslab.plots.style import MARKERS, figure


def _finite(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def plot_vs_depth(series: Sequence[dict[str, Any]], path: Path, *, xlabel: str, ylabel: str, title: str,
                  log_y: bool = False, svg: bool = False) -> None:
    """`series`: dicts with label, residual (True, False or None), x, mean, low, high (per depth) and points
    ((x, value) per seed). Residual lines are solid, plain ones dashed; the x axis is log2 when depths span 8x."""
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
            from matplotlib.ticker import FuncFormatter

            ax.set_yscale("log")
            plain_numbers = FuncFormatter(lambda v, _: f"{v:.3g}")
            ax.yaxis.set_major_formatter(plain_numbers)
            ax.yaxis.set_minor_formatter(plain_numbers)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(title="dots: one seed each")
