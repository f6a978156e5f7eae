"""Class activation map figures: overlays of maps on test images, the mean map of each class, and the deletion and
insertion curves (Petsiuk et al. 2018), drawn from arrays in [0, 1] and the rows of cam-curves.csv.

Models given side by side (plain and residual twins) sit in adjacent columns (grid) or rows (class means), so
the same image's maps read across.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from reslab.plots.style import MARKERS, Rows, figure, value

OVERLAY_CMAP, OVERLAY_ALPHA = "jet", 0.45  # the maps' usual heat colours, over the image in grey or colour


def _show(ax, image: np.ndarray) -> None:
    """An (H, W, C) image in [0, 1], grey when it has one channel, without axes."""
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def plot_cam_grid(images: np.ndarray, labels: Sequence[str], columns: Sequence[tuple[str, np.ndarray, Sequence[str]]],
                  path: Path, title: str, svg: bool = False) -> None:
    """A row per image: the image (its true class), then each column's map over it; a column is (heading, maps
    (N, H, W) in [0, 1], the class each map explains). Nothing is drawn without images."""
    n = len(images)
    if n == 0 or not columns:
        return
    with figure(path, (1.55 * (len(columns) + 1), 1.6 * n + 0.6), svg) as fig:
        axes = fig.subplots(n, len(columns) + 1, squeeze=False)
        for i in range(n):
            _show(axes[i][0], images[i])
            axes[i][0].set_title(f"true: {labels[i]}", fontsize=7)
            for j, (heading, maps, classes) in enumerate(columns, 1):
                _show(axes[i][j], images[i])
                axes[i][j].imshow(maps[i], cmap=OVERLAY_CMAP, alpha=OVERLAY_ALPHA, vmin=0, vmax=1)
                top = "\n".join(textwrap.fill(part, 24) for part in heading.split("\n"))
                axes[i][j].set_title(f"{top}\n{classes[i]}" if i == 0 else str(classes[i]), fontsize=7)
        fig.suptitle(title, fontsize=9)


def plot_class_means(means: Mapping[str, np.ndarray], classes: Sequence[str], path: Path, svg: bool = False) -> None:
    """A row per model, a column per class: the mean normalised CAM of the true class over that class's images."""
    models = list(means)
    if not models:
        return
    with figure(path, (1.2 * len(classes) + 0.8, 1.35 * len(models) + 0.6), svg) as fig:
        axes = fig.subplots(len(models), len(classes), squeeze=False)
        for i, model in enumerate(models):
            for j, name in enumerate(classes):
                ax = axes[i][j]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if not np.isnan(means[model][j]).all():
                    ax.imshow(means[model][j], cmap=OVERLAY_CMAP, vmin=0, vmax=1)
                if i == 0:
                    ax.set_title(name, fontsize=7)
                if j == 0:
                    ax.set_ylabel(textwrap.fill(model, 18), fontsize=6)
        fig.suptitle("Mean CAM of the true class, per class (blank: no image of it drawn)", fontsize=9)


def plot_cam_curves(rows: Rows, path: Path, svg: bool = False) -> None:
    """Deletion and insertion curves: mean probability of the predicted class against the fraction of pixels
    moved, a line per model and order (random dashed), band: the 95% interval over images."""
    if not rows:
        return
    with figure(path, (12, 4.4), svg) as fig:
        axes = fig.subplots(1, 2)
        keys = list(dict.fromkeys((str(r["model"]), str(r["method"])) for r in rows))
        models = list(dict.fromkeys(m for m, _ in keys))
        for ax, kind in zip(axes, ("deletion", "insertion")):
            for model, method in keys:
                sel = [r for r in rows if (r["model"], r["method"], r["curve"]) == (model, method, kind)]
                i = models.index(model)
                xs = [value(r, "fraction") for r in sel]
                line, = ax.plot(xs, [value(r, "mean") for r in sel], color=f"C{i % 10}",
                                marker=MARKERS[("cam", "gradcam", "random").index(method) % len(MARKERS)]
                                if method in ("cam", "gradcam", "random") else None, markersize=3,
                                linestyle="--" if method == "random" else ":" if method == "gradcam" else "-",
                                label=f"{model}: {method}")
                ax.fill_between(xs, [value(r, "low") for r in sel], [value(r, "high") for r in sel],
                                color=line.get_color(), alpha=0.1, linewidth=0)
            what = "removed (most salient first)" if kind == "deletion" else "inserted (most salient first)"
            ax.set(xlabel=f"fraction of pixels {what}", ylabel="probability of the predicted class", ylim=(0, 1.02),
                   title=f"{kind.capitalize()} curve ({'lower' if kind == 'deletion' else 'higher'} area = more "
                         "faithful)")
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
