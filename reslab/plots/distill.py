"""The lab's distillation figure, drawn from plain rows: each seed's student alone beside the same student distilled
from a teacher, a line per seed (the pairing), and the teacher's own accuracy."""

from __future__ import annotations

import math
from pathlib import Path

from reslab.plots.style import MARKERS, Rows, figure, value


def plot_distill(rows: Rows, teacher_acc: float, path: Path, svg: bool = False) -> None:
    """rows: seed, alone, distilled (test accuracies, fractions); teacher_acc: nan when unknown."""
    with figure(path, (5.5, 4.2), svg) as fig:
        ax = fig.subplots()
        for i, r in enumerate(rows):
            ax.plot([0, 1], [100 * value(r, "alone"), 100 * value(r, "distilled")], marker=MARKERS[i % len(MARKERS)],
                    label=f"seed {r['seed']}")
        if not math.isnan(teacher_acc):
            ax.axhline(100 * teacher_acc, linestyle="--", color="grey", label="teacher")
        ax.set(xticks=[0, 1], xticklabels=["student alone", "distilled"], xlim=(-0.4, 1.4), ylabel="test accuracy (%)",
               title="The student alone and distilled, per seed")
        if ax.lines:
            ax.legend()
