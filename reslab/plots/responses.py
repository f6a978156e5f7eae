"""`reslab analyze responses`'s figure (He et al. 2015, Figure 7), drawn from the rows of responses-layers.csv: the
std of each layer's response in layer order (top) and sorted by magnitude (bottom), a line per model."""

from __future__ import annotations

from pathlib import Path

from reslab.plots.style import MARKERS, Rows, figure, value


def plot_responses(layer_rows: Rows, path: Path, svg: bool = False) -> None:
    """Top: response std per layer, in forward order; bottom: the same stds sorted, largest first (plain: dashed)."""
    with figure(path, (10, 8), svg) as fig:
        order_ax, sorted_ax = fig.subplots(2, 1)
        for i, model in enumerate(dict.fromkeys(str(r["model"]) for r in layer_rows)):
            mine = [r for r in layer_rows if r["model"] == model]
            stds = [value(r, "std") for r in mine]
            style = {"marker": MARKERS[i % len(MARKERS)], "markersize": 3, "label": model,
                     "linestyle": "--" if mine[0].get("skip") == "no" else "-"}
            order_ax.plot([int(value(r, "layer")) for r in mine], stds, **style)
            sorted_ax.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), **style)
        order_ax.set(xlabel="layer index (original order)", ylabel="std of the layer's response",
                     title="Layer responses (after the norm, before the nonlinearity)")
        sorted_ax.set(xlabel="layer index (sorted by magnitude)", ylabel="std of the layer's response")
        order_ax.xaxis.get_major_locator().set_params(integer=True)
        for ax in (order_ax, sorted_ax):
            ax.legend()
