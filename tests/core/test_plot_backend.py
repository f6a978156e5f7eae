"""reslab's figures never change the process's matplotlib backend: they are drawn on their own Agg canvas, so a
notebook's inline backend (or any other the user chose) stays as it was, and pyplot is never imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.figures import assert_png

HISTORY = [{"epoch": 1, "step": 10, "train_loss": 1.2, "train_acc": 0.6, "val_loss": 1.0, "val_acc": 0.7},
           {"epoch": 2, "step": 20, "train_loss": 0.8, "train_acc": 0.8, "val_loss": 0.9, "val_acc": 0.75}]

SCRIPT = f"""
import sys
import matplotlib
matplotlib.use("svg")
from pathlib import Path
from reslab.plots import plot_curves
fig = plot_curves({HISTORY!r}, Path(sys.argv[1]), title="t")
assert fig._repr_png_()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_drawing_a_figure_leaves_the_backend_alone(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "curves.png")], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["svg", "False"]  # the backend chosen before is still the one, and pyplot was never imported
    assert_png(tmp_path / "curves.png")


def test_a_figure_is_returned_unsaved_without_a_path(tmp_path: Path) -> None:
    from reslab.plots import plot_curves

    fig = plot_curves(HISTORY, None)
    assert len(fig.axes) == 2 and fig.axes[1].lines
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f.png").write_bytes(fig._repr_png_())
    assert_png(tmp_path / "f.png")
