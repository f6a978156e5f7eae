"""pandas, the optional extra behind the API's tables, and the small conversions every table shares.

Nothing here imports pandas at import time: `import reslab` and the CLI work without it, and a table asked for
without it is a one-line ReslabError naming the extra to install.
"""

from __future__ import annotations

import csv
import html
import io
from typing import Any, Iterable, Mapping, Sequence

from reslab.errors import ReslabError

INSTALL_HINT = "pip install 'reslab[notebook]'"


class PandasMissing(ReslabError):
    """A table (a DataFrame) was asked for, and pandas is not installed."""


def pandas() -> Any:
    """The pandas module, or a one-line PandasMissing naming the extra that brings it."""
    try:
        import pandas as pd
    except ImportError:
        raise PandasMissing(f"reslab's tables are pandas DataFrames and pandas is not installed: {INSTALL_HINT}") \
            from None
    return pd


def frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, index: Any = None) -> Any:
    """A DataFrame of `rows` (dicts, as the tolerant readers return them) typed as `pandas.read_csv` types a file:
    the rows go through CSV text, so a table equals its file read with pandas (numbers, blanks as NaN, booleans)."""
    pd = pandas()
    names = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
    if not rows:
        return pd.DataFrame(columns=names, index=index)
    text = io.StringIO()
    writer = csv.DictWriter(text, names, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    table = pd.read_csv(io.StringIO(text.getvalue()))
    if index is not None:
        table.index = index
    return table


def scalars(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested values flattened to dotted keys; lists and tables (a confusion matrix) left out, for one-row frames."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(scalars(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (str, int, float, bool)):
            out[f"{prefix}{key}"] = value
    return out


def html_table(rows: Iterable[Sequence[Any]], header: Sequence[str], caption: str = "") -> str:
    """A small HTML table for `_repr_html_` (no pandas needed): every cell escaped, floats to 4 significant digits."""
    def cell(value: Any) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)
        return html.escape(text)

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
