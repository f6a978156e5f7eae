"""Matplotlib figures with one consistent look; headless (Agg), written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence


def _figure(figsize: tuple[float, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


def save_figure(fig: Any, path: Path) -> None:
    """Save next to the target, then rename, so a reader never sees a half-written image."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)


def _floats(rows: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def plot_curves(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    """The notebook's two panels: training loss per epoch, and validation accuracy titled with its best."""
    fig = _figure((12, 4.5))
    epochs = [int(r["epoch"]) for r in history]
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(epochs, _floats(history, "train_loss"), marker="o", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("Average training loss per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    val = _floats(history, "val_acc")
    if val:
        val_epochs = [int(r["epoch"]) for r in history if r.get("val_acc") not in (None, "")]
        best = max(range(len(val)), key=val.__getitem__)
        ax.plot(val_epochs, val, marker="o", color="tab:orange", label="validation accuracy")
        ax.set_title(f"Best accuracy = {val[best]:.4f} @ epoch {val_epochs[best]}")
        ax.legend()
    else:
        ax.set_title("no validation set (data.val_size=0)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
