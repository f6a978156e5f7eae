"""The report folder's figures: where they go, how each is drawn or copied, and names that never collide.

A figure that cannot be drawn or copied costs that figure and a note saying why, never the section. Sections
built by different callers (run sections, sweeps, analyses, `reslab lab`) share one figures folder, so a
copied figure takes the first free name.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from reslab.errors import exception_line
from reslab.report.document import Block, Figure, Note
from reslab.reading import inline
from reslab.report.values import file_stem

FIGURES = "figures"  # the report folder's figures, linked from report.md


def figure_path(name: str) -> str:
    """A figure's path relative to the report folder (as the report's Markdown links it)."""
    return f"{FIGURES}/{name}"


def free_figure(out_dir: Path, stem: str, suffix: str = ".png") -> str:
    """A figure path for `stem` (made safe) that no file in the report's figures folder has yet."""
    stem = file_stem(stem)
    for n in range(1, 10_000):
        name = f"{stem}{'' if n == 1 else f'-{n}'}{suffix}"
        if not (out_dir / FIGURES / name).exists() and not (out_dir / FIGURES / name).with_suffix(".svg").exists():
            return figure_path(name)
    raise FileExistsError(f"no free figure name for {stem} in {out_dir / FIGURES}")


def drawn(blocks: list[Block], what: str, draw: Callable[[], Any], figure: Figure) -> None:
    """Draw one figure and add it; if its values cannot be drawn, add a note saying why instead."""
    try:
        draw()
    except Exception as exc:  # matplotlib and numpy raise many types on odd values; a copy, OSError
        blocks.append(Note(f"The {what} could not be drawn ({exception_line(exc)})."))
    else:
        blocks.append(figure)


def copied(blocks: list[Block], png: Path, out_dir: Path, stem: str, caption: str, svg: bool = False) -> None:
    """Copy an existing PNG into the report's figures (under the first free name from `stem`) and show it; with
    `svg`, an SVG of it beside the PNG too, where its folder has one."""
    copy = free_figure(out_dir, stem, png.suffix)

    def copy_files() -> None:
        shutil.copyfile(png, out_dir / copy)
        if svg and png.with_suffix(".svg").is_file():
            shutil.copyfile(png.with_suffix(".svg"), (out_dir / copy).with_suffix(".svg"))

    drawn(blocks, f"figure {inline(png.name)}", copy_files, Figure(copy, caption))
