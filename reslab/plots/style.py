"""One figure style for every reslab figure, and the one place figures are saved.

Every plot function draws inside `figure()`, so the run curves, the report's comparisons and the
gradient-flow figures look alike, are written atomically (a reader never sees half an image) and get an
SVG beside the PNG on request. Figures are drawn on their own Agg canvas (never through pyplot, so the process's
backend, e.g. a notebook's inline one, is left alone) from plain rows, never live objects.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from reslab import files

Rows = Sequence[Mapping[str, Any]]  # CSV rows as read back from disk (strings) or as numbers

# readable on screen and in print: 10 pt text, light grid, no box, colour-blind-safe colours (tab10)
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
         "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
         "lines.linewidth": 1.6, "lines.markersize": 4, "image.cmap": "Blues", "savefig.dpi": 120}
MARKERS = "osD^vP*X"  # a marker per run, so overlaid curves stay apart in black-and-white print


@functools.cache
def _figure_class() -> type:
    """A matplotlib Figure that shows itself as a PNG in IPython (`_repr_png_`), whatever the backend; made on first
    use, so importing reslab imports no matplotlib."""
    from matplotlib.figure import Figure

    class ReslabFigure(Figure):
        """A figure drawn by reslab: no pyplot, no backend of its own; a notebook shows it as a PNG."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=STYLE["savefig.dpi"], bbox_inches="tight")
            return buffer.getvalue()

    return ReslabFigure


def new_figure(figsize: tuple[float, float]) -> Any:
    """A Figure on its own Agg canvas: drawing it never touches pyplot's state or the process's backend, so a
    notebook's inline backend (or any other) stays as it was."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _figure_class()(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    files.atomic_path(path, lambda tmp: fig.savefig(tmp, dpi=STYLE["savefig.dpi"], bbox_inches="tight"))


@contextlib.contextmanager
def figure(path: str | Path | None, figsize: tuple[float, float], svg: bool = False) -> Iterator[Any]:
    """A figure in `STYLE`, saved to `path` (PNG) and, with `svg`, beside it as .svg when the block ends.

    `path` None: nothing is saved (the caller returns the figure, e.g. to a notebook). Nothing is written when the
    block raises. The figure is a plain `matplotlib.figure.Figure` with an Agg canvas, never registered with pyplot,
    so it needs no closing and leaves the backend alone.
    """
    import matplotlib

    with matplotlib.rc_context(STYLE):
        fig = new_figure(figsize)
        yield fig
        fig.tight_layout()
        if path is not None:
            _save(fig, Path(path))
            if svg:
                _save(fig, Path(path).with_suffix(".svg"))


def value(row: Mapping[str, Any], key: str) -> float:
    """A cell as a float; NaN where it is missing or empty."""
    raw = row.get(key)
    return math.nan if raw in (None, "") else float(raw)


def floats(rows: Rows, key: str) -> list[float]:
    """The values of `key` in the rows that have one."""
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def series(rows: Rows, x: str, y: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    """(xs, ys) of the rows where both are present."""
    pairs = [(float(r[x]), float(r[y]) * scale) for r in rows
             if r.get(x) not in (None, "") and r.get(y) not in (None, "")]
    return [p[0] for p in pairs], [p[1] for p in pairs]
