"""`reslab analyze init`'s figure, drawn from the rows of init-blocks.csv: per model, the activation std after
each block (log scale) and the branch-to-skip std ratio, a line per block form."""

from __future__ import annotations

from pathlib import Path

from reslab.plots.style import MARKERS, Rows, figure, value


def plot_init_std(block_rows: Rows, path: Path, svg: bool = False) -> None:
    """Left: std of each block's output (block 0: the first block's input); right: std(branch) / std(skip).

    A panel row per source model; a ratio of exactly 0 (ReZero and Fixup at init) cannot sit on a log axis and
    is drawn at the bottom edge, marked in the legend.
    """
    sources = list(dict.fromkeys(str(r["source"]) for r in block_rows))
    with figure(path, (12, 4.2 * len(sources)), svg) as fig:
        axes = fig.subplots(len(sources), 2, squeeze=False)
        for (std_ax, ratio_ax), source in zip(axes, sources):
            rows = [r for r in block_rows if r["source"] == source]
            for i, model in enumerate(dict.fromkeys(str(r["model"]) for r in rows)):
                mine = [r for r in rows if r["model"] == model]
                marker = MARKERS[i % len(MARKERS)]
                std_ax.plot([int(value(r, "block")) for r in mine], [value(r, "out_std") for r in mine],
                            marker=marker, label=model)
                ratios = [(int(value(r, "block")), value(r, "ratio")) for r in mine if r.get("ratio") not in ("", None)]
                if ratios:
                    label = f"{model} (0 at init, drawn at 1e-3)" if all(v == 0 for _, v in ratios) else model
                    ratio_ax.plot([b for b, _ in ratios], [v if v > 0 else 1e-3 for _, v in ratios], marker=marker,
                                  color=std_ax.lines[-1].get_color(), label=label)
            std_ax.set(yscale="log", xlabel="block (0 = input to the first block)", ylabel="activation std",
                       title=f"{source}: activation std after each block, at init")
            ratio_ax.set(yscale="log", xlabel="block", ylabel="std(branch) / std(skip)",
                         title="Branch against skip, per residual block")
            std_ax.xaxis.get_major_locator().set_params(integer=True)
            std_ax.legend()
            if ratio_ax.lines:
                ratio_ax.legend()
