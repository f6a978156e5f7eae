"""Files written atomically and CSVs read tolerantly: the one place both are done.

Every write goes to a temp file in the target's folder, is flushed to disk, then renamed over the
target, so a crash or a full disk never leaves half a file where a complete one was. Readers accept
what a killed writer leaves behind (a torn last line) and skip it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], mode: str = "w") -> None:
    """Call `write` on a temp file beside `path`, fsync it, then rename it to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_path(path: str | Path, write: Callable[[Path], None]) -> None:
    """Like `atomic_write` for writers that take a file name (matplotlib's savefig keeps the suffix)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text))


def write_json(path: str | Path, values: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(values, indent=2, sort_keys=False) + "\n")


def csv_text(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> str:
    """A header and rows as CSV text (`None` is an empty cell; keys outside `fields` are ignored)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """Rewrite the whole CSV atomically (a few thousand rows at most: cheap, and never half-written)."""
    write_text(path, csv_text(rows, fields))


def append_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """Append rows (with a header when the file is new); for logs that grow during a run."""
    path = Path(path)
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | Path, *, missing_ok: bool = False) -> list[dict[str, str]]:
    """The complete rows of a CSV file, as strings; a row cut short or too long (a killed writer) is dropped.

    With `missing_ok`, a file that does not exist reads as no rows.
    """
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [row for row in csv.DictReader(fh) if None not in row and None not in row.values()]


def truncate_csv(path: str | Path, fields: Sequence[str], keep: Callable[[dict[str, str]], bool]) -> None:
    """Rewrite a log keeping the rows `keep` accepts (a resumed run drops what it will record again)."""
    write_csv(path, [row for row in read_csv(path, missing_ok=True) if keep(row)], fields)
