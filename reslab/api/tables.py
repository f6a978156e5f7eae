"""pandas, the optional extra behind the API's tables, and the small conversions every table shares.

Nothing here imports pandas at import time: `import reslab` and the CLI work without it, and a table asked for
without it is a one-line ReslabError naming the extra to install.
"""

from __future__ import annotations

import html
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
    """A DataFrame of `rows` (dicts); text columns that hold only numbers (and blanks) become numbers, as
    `pandas.read_csv` would read them."""
    pd = pandas()
    table = pd.DataFrame(list(rows), columns=list(columns) if columns is not None else None, index=index)
    for name in table.columns:
        if table[name].dtype == object:
            blank = table[name].map(lambda v: v is None or v == "")
            try:
                numbers = pd.to_numeric(table[name].where(~blank))
            except (ValueError, TypeError):
                continue
            table[name] = numbers
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
