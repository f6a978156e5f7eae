"""Transfer strategies side by side: test accuracy per strategy, mean with its 95% interval, every seed a dot (so n
is visible; a strategy measured once is its dot alone). Drawn from plain numbers, as the lab's report reads them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from reslab.plots.style import figure


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(x)


def plot_strategies(rows: Sequence[Mapping[str, Any]], path: Path | None, *, title: str, chance: float | None = None,
                    svg: bool = False) -> Any:
    """`rows`: dicts with label, mean, low, high (NaN: no interval) and points (one value per seed), top to bottom,
    accuracies as fractions; `chance` draws a dotted line there. Returns the figure (saved to `path` unless None)."""
    with figure(path, (6.5, 0.45 * len(rows) + 1.6), svg) as fig:
        ax = fig.add_subplot(1, 1, 1)
        for y, row in enumerate(reversed(rows)):
            colour = f"C{(len(rows) - 1 - y) % 10}"
            points = [100 * p for p in row["points"] if _finite(p)]
            if points:
                ax.scatter(points, [y] * len(points), s=16, color=colour, alpha=0.7, edgecolors="none", zorder=3)
            if _finite(row["low"]) and _finite(row["high"]):
                ax.plot([100 * row["low"], 100 * row["high"]], [y, y], color=colour, linewidth=2.5, alpha=0.6)
            if _finite(row["mean"]):
                ax.plot([100 * row["mean"]], [y], "|", color=colour, markersize=14, markeredgewidth=2)
        if chance is not None:  # named in the axis label: a legend box would cover a strategy's marks
            ax.axvline(100 * chance, color="grey", linestyle=":", linewidth=1)
        ax.set_yticks(range(len(rows)), [str(r["label"]) for r in reversed(rows)])
        dotted = "" if chance is None else f"; dotted: chance ({100 * chance:.0f}%)"
        ax.set_xlabel(f"test accuracy (%): mean | with its 95% t interval, dots: one seed each{dotted}")
        ax.set_title(title)
    return fig
