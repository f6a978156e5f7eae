"""Lesion figures (Veit et al. 2016), drawn from the rows of lesion-k.csv and lesion-blocks.csv.

- `plot_lesion_k`: test error against blocks deleted (and pairs swapped), a line per model, band: min to max;
- `plot_single_deletions`: the error after deleting each block alone, a panel per model, downsampling marked.

Errors are drawn in percent, from 0 to 100, so a plain net's fall to chance and a ResNet's rise read alike.
"""

from __future__ import annotations

from pathlib import Path

from reslab.plots.style import MARKERS, Rows, figure, value


def _models(rows: Rows) -> list[str]:
    return list(dict.fromkeys(str(r["model"]) for r in rows))


def plot_lesion_k(k_rows: Rows, stats: Rows, path: Path, svg: bool = False) -> None:
    """Error (%) against k blocks deleted (k = 0: the intact net) and, beside it, k pairs swapped."""
    experiments = [e for e in ("delete", "swap") if any(r["experiment"] == e for r in k_rows)]
    base = {str(s["model"]): value(s, "base_error") for s in stats}
    chance = max(value(s, "chance") for s in stats)
    with figure(path, (6.2 * len(experiments), 4.4), svg) as fig:
        axes = fig.subplots(1, len(experiments), squeeze=False)[0]
        for ax, experiment in zip(axes, experiments):
            for i, model in enumerate(_models(stats)):
                rows = [r for r in k_rows if r["model"] == model and r["experiment"] == experiment]
                ks = [0] + [int(value(r, "k")) for r in rows]
                mean = [100 * base[model]] + [100 * value(r, "mean") for r in rows]
                low = [100 * base[model]] + [100 * value(r, "min") for r in rows]
                high = [100 * base[model]] + [100 * value(r, "max") for r in rows]
                line, = ax.plot(ks, mean, marker=MARKERS[i % len(MARKERS)], label=model)
                ax.fill_between(ks, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
            ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({100 * chance:.0f}%)")
            what = "blocks deleted" if experiment == "delete" else "pairs of blocks swapped"
            ax.set(xlabel=f"{what} (k; 0 = intact)", ylabel="test error (%)", ylim=(0, 100),
                   title=f"Test error vs {what} (mean over draws, band: min to max)")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend()


def plot_single_deletions(block_rows: Rows, stats: Rows, path: Path, svg: bool = False) -> None:
    """A bar per block: the test error with that block alone deleted; downsampling blocks red, edged black."""
    models = _models(stats)
    with figure(path, (max(6.5, 0.22 * max(len(block_rows), 1) / max(len(models), 1) + 3), 2.8 * len(models)),
                svg) as fig:
        axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
        for ax, stat in zip(axes, stats):
            model = str(stat["model"])
            rows = [r for r in block_rows if r["model"] == model]
            down = [str(r["downsamples"]) == "yes" for r in rows]
            ax.bar([int(value(r, "block")) for r in rows], [100 * value(r, "error") for r in rows],
                   color=["tab:red" if d else "tab:blue" for d in down],
                   edgecolor=["black" if d else "none" for d in down], linewidth=0.6)
            ax.axhline(100 * value(stat, "base_error"), color="black", linewidth=1,
                       label=f"intact net ({100 * value(stat, 'base_error'):.2f}%)")
            ax.axhline(100 * value(stat, "chance"), color="grey", linestyle="--", linewidth=1,
                       label=f"chance ({100 * value(stat, 'chance'):.0f}%)")
            if any(down):
                ax.bar([], [], color="tab:red", edgecolor="black", label="downsampling block")
            ax.set(xlabel="block deleted (1 = nearest the input)", ylabel="test error (%)",
                   ylim=(0, 100), title=f"{model}: test error with one block deleted")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
            ax.grid(axis="x", visible=False)


def plot_lesion_tau(lesion_rows: Rows, stats: Rows, path: Path, svg: bool = False) -> None:
    """Veit et al.'s Figure 5(b): the error (%) of each reordering against Kendall's tau of the block order (1: the
    intact order), a point per draw, a colour per model."""
    with figure(path, (6.5, 4.4), svg) as fig:
        ax = fig.add_subplot(1, 1, 1)
        for i, model in enumerate(_models(stats)):
            rows = [r for r in lesion_rows if r["model"] == model and r["experiment"] in ("base", "swap")]
            ax.scatter([value(r, "kendall_tau") for r in rows], [100 * value(r, "error") for r in rows],
                       marker=MARKERS[i % len(MARKERS)], s=18, alpha=0.7, label=model)
        chance = max(value(s, "chance") for s in stats)
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({100 * chance:.0f}%)")
        ax.invert_xaxis()
        ax.set(xlabel="Kendall tau of the block order (1 = intact; swaps within a stage)", ylabel="test error (%)",
               ylim=(0, 100), title="Test error vs reordering")
        ax.legend(fontsize=8)


def plot_paths(path_rows: Rows, path: Path, svg: bool = False) -> None:
    """Veit et al.'s Figure 6: per residual model the share of paths of each length (binomial), the gradient at the
    input of one path of that length (log scale), and the share of the total gradient (count x gradient)."""
    with figure(path, (15, 4.2), svg) as fig:
        axes = fig.subplots(1, 3)
        for i, model in enumerate(_models(path_rows)):
            rows = [r for r in path_rows if r["model"] == model]
            k = [int(value(r, "length")) for r in rows]
            style = {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)], "label": model}
            axes[0].plot(k, [value(r, "path_share") for r in rows], **style)
            axes[1].plot(k, [value(r, "gradient_mean") for r in rows], **style)
            axes[2].plot(k, [value(r, "total_share") for r in rows], **style)
        axes[1].set_yscale("log")
        for ax, title in zip(axes, ("Distribution of path lengths", "Gradient of one path of length k",
                                    "Total gradient by path length")):
            ax.set(xlabel="path length k (branches on the path)", title=title)
        axes[0].set_ylabel("share of paths")
        axes[1].set_ylabel("|d loss / d input| (mean over images)")
        axes[2].set_ylabel("share of the total gradient")
        axes[0].legend(fontsize=8)
