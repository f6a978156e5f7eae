"""Values read from run files, made safe to show: numbers checked, names made safe for links, plots and tables.

A run's files may be damaged or written by another version: a number may be a string, inf or NaN (reslab
writes null for NaN, older runs may not), a name may hold bytes that are not UTF-8 or characters that
Markdown, HTML or matplotlib read as markup. What the report shows passes through here (or reslab.reading's
clean_text and inline), so a damaged
value costs a dash or a note, never the report.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from reslab.reading import inline

DASH = "—"  # what a missing or unusable number shows as
MAX_CLASSES = 100  # a confusion matrix over more classes is not drawn (its figure would be huge and slow)
HUGE = 1e15  # numbers at least this large are shown in scientific notation, not hundreds of digits
PLOT_LIMIT = 1e38  # about float32's largest: a metric beyond it is damage, and it would overflow a plot's axes
MAX_COUNT = 2**53  # counts above this are not exact in a float, so not a count reslab wrote
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def plot_label(value: Any) -> str:
    """Clean text that matplotlib shows as typed: `$` would start mathtext, which fails on odd input."""
    return inline(value, 80).replace("$", r"\$")


def file_stem(name: str) -> str:
    """A run name as a file name that is safe in a link and on any file system (letters, digits, . _ -)."""
    return _UNSAFE_NAME.sub("-", inline(name, 200)).strip("-.")[:80] or "run"


def scalar(value: Any) -> str | int | float | bool | None:
    """A setting as shown: scalars only (a nested or aliased YAML value would be huge or slow to print)."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else None


def is_real(x: Any) -> bool:
    """A finite int or float (bools are not numbers here)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and (isinstance(x, int) or math.isfinite(x))


def real_or_none(values: dict[str, Any], key: str, file: str) -> int | float | None:
    """A number from a JSON file: None when absent, null, NaN or infinite; ValueError when it is not a number."""
    x = values.get(key)
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    if not is_real(x):
        raise ValueError(f"{file}: {key} is {inline(repr(x), 40)}, not a number")
    return x


def whole_or_none(values: dict[str, Any], key: str, file: str) -> int | None:
    """A count from a JSON file (params, epochs): None when absent or null; ValueError when not a whole number."""
    x = real_or_none(values, key, file)
    if x is None:
        return None
    if x != int(x) or x < 0:
        raise ValueError(f"{file}: {key} is {inline(repr(x), 40)}, not a count")
    return int(x)


def pct(x: Any) -> str:
    """A fraction as a percentage; a dash for None or anything that is not a finite number."""
    text = num(100 * x, ".2f") if is_real(x) else DASH
    return DASH if text == DASH else text + "%"


def num(x: Any, fmt: str) -> str:
    """A number in `fmt` (4 significant digits when huge); a dash for None or anything that is not a finite
    number or does not fit `fmt`."""
    if not is_real(x):
        return DASH
    try:
        return format(float(x), ".4g") if abs(x) >= HUGE else format(x, fmt)
    except (ValueError, OverflowError):  # 'd' for a float, a huge int
        return DASH


def confusion(matrix: Any, classes: Any) -> tuple[list[list[int]], list[str]]:
    """summary.json's confusion matrix as k x k counts and k class labels; ValueError says what is wrong."""
    if not isinstance(matrix, list) or not isinstance(classes, list):
        raise ValueError("confusion_matrix and classes are not lists")
    k = len(classes)
    if not 0 < k <= MAX_CLASSES:
        raise ValueError(f"{k} classes (it is drawn for 1 to {MAX_CLASSES})")
    if len(matrix) != k or any(not isinstance(row, list) or len(row) != k for row in matrix):
        raise ValueError(f"confusion_matrix is not {k} x {k} like its {k} classes")
    for row in matrix:
        for c in row:
            if not is_real(c) or c != int(c) or not 0 <= c < MAX_COUNT:
                raise ValueError(f"confusion_matrix holds {inline(repr(c), 40)}, not a count")
    return [[int(c) for c in row] for row in matrix], [plot_label(c) for c in classes]


def plottable(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows for a figure: numbers beyond ±PLOT_LIMIT left out (None), and how many were."""
    out, dropped = [], 0
    for row in rows:
        kept = {k: None if is_real(v) and abs(v) > PLOT_LIMIT else v for k, v in row.items()}
        dropped += sum(v is not None and kept[k] is None for k, v in row.items())
        out.append(kept)
    return out, dropped
