"""Figures of the fully-convolutional detector (`reslab analyze fcn`), drawn from the rows of its CSVs.

- `plot_examples`: canvases with their true boxes (white, dashed) and the detections at >= the threshold (green:
  correct, red: wrong), a row per model;
- `plot_ap`: AP per class, a bar per model, and the precision-recall curve over all classes' detections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from reslab.plots.style import Rows, figure, value


def _short(name: str) -> str:
    """'7 - seven' (torchvision's MNIST class names) -> '7', so labels fit on boxes and axes."""
    return name.split(" - ")[0]


def plot_examples(images: Sequence[Any], truth: Rows, boxes: Rows, models: Sequence[str], classes: Sequence[str],
                  threshold: float, path: Path, svg: bool = False) -> None:
    """images: (H, W, C) uint8 arrays of canvases 0..n-1; truth and boxes: rows of fcn-truth.csv and
    fcn-detections.csv."""
    from matplotlib.patches import Rectangle

    cols = len(images)
    with figure(path, (2.6 * cols, 2.8 * len(models)), svg) as fig:
        axes = fig.subplots(len(models), cols, squeeze=False)
        for row, model in enumerate(models):
            for n, image in enumerate(images):
                ax = axes[row][n]
                gray = image.shape[-1] == 1
                ax.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, vmin=0, vmax=255)
                for t in (t for t in truth if int(value(t, "canvas")) == n):
                    x0, y0, x1, y1 = (value(t, k) for k in ("x0", "y0", "x1", "y1"))
                    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white",
                                           linestyle="--", linewidth=1))
                for b in boxes:
                    if b["model"] != model or int(value(b, "canvas")) != n or value(b, "score") < threshold:
                        continue
                    x0, y0, x1, y1 = (value(b, k) for k in ("x0", "y0", "x1", "y1"))
                    colour = "limegreen" if b["true_positive"] == "yes" else "red"
                    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.4))
                    label = _short(classes[int(value(b, "class"))])
                    ax.text(x0, y0, f"{label} {value(b, 'score'):.2f}", color="black", fontsize=7, va="bottom",
                            bbox={"facecolor": colour, "pad": 1, "linewidth": 0})
                ax.set(xticks=[], yticks=[], title=f"canvas {n}", ylabel=model if n == 0 else "")
                ax.grid(False)
        fig.suptitle(f"Detections at confidence >= {threshold:g} (green: correct, red: wrong); dashed: true boxes")


def _pr_curve(boxes: Rows, model: str, truths: int) -> tuple[list[float], list[float]]:
    ranked = sorted((b for b in boxes if b["model"] == model), key=lambda b: -value(b, "score"))
    recall, precision, hits = [], [], 0
    for rank, b in enumerate(ranked, 1):
        hits += b["true_positive"] == "yes"
        recall.append(hits / truths if truths else 0.0)
        precision.append(hits / rank)
    return recall, precision


def plot_ap(class_rows: Rows, boxes: Rows, stats: Rows, path: Path, svg: bool = False) -> None:
    """Left: AP (%) per class, a bar per model; right: precision against recall over every detection, per model."""
    models = [str(s["model"]) for s in stats]
    names = list(dict.fromkeys(str(c["name"]) for c in class_rows))
    with figure(path, (12, 4.4), svg) as fig:
        bars, curve = fig.subplots(1, 2)
        width = 0.8 / max(len(models), 1)
        for i, model in enumerate(models):
            aps = {str(c["name"]): value(c, "ap") for c in class_rows if c["model"] == model}
            bars.bar([n + (i - (len(models) - 1) / 2) * width for n in range(len(names))],
                     [100 * aps.get(name, float("nan")) for name in names], width, label=f"{model} (mAP "
                     f"{100 * value(stats[i], 'map'):.1f}%)")
            recall, precision = _pr_curve(boxes, model, int(value(stats[i], "truths")))
            curve.plot(recall, precision, label=model)
        bars.set_xticks(range(len(names)), [_short(name) for name in names])
        bars.set(xlabel="class", ylabel="AP (%)", ylim=(0, 100), title="Average precision per class")
        bars.legend(fontsize=8)
        curve.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
                  title="Precision vs recall (all classes' detections, by confidence)")
        curve.legend(fontsize=8)
