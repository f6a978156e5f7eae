"""Files written atomically and CSVs read tolerantly: the one place both are done.

Every write goes to a temp file in the target's folder, is flushed to disk, then renamed over the
target, so a crash or a full disk never leaves half a file where a complete one was. Readers accept
what a killed writer leaves behind (a torn last line) and skip it.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

TEMP_SUFFIX = ".tmp"  # atomic_write's temp files: .<target name>.<random>.tmp beside the target


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], mode: str = "w") -> None:
    """Call `write` on a temp file beside `path`, fsync it, then rename it to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would ignore the user's umask
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.cache
def _umask() -> int:
    """The process's umask (reading it means setting it; done once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# atomic_write's temp name: "." + the target's name + "." + mkstemp's 8 random characters + TEMP_SUFFIX
TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))


def remove_stale_temps(folder: str | Path, older_than_s: float = 3600.0,
                       name: re.Pattern[str] = TEMP_NAME) -> list[Path]:
    """Delete the temp files killed writers left in `folder`: regular files named as atomic_write names its
    temps (or `name`), untouched for `older_than_s` (a fresh one may belong to a live writer); nothing else.
    """
    cutoff, removed = time.time() - older_than_s, []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not name.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


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


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float as None: strict JSON (NaN is not JSON, and most parsers refuse it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, values: Mapping[str, Any]) -> None:
    """Strict JSON: non-finite numbers are written as null."""
    write_text(path, json.dumps(json_safe(values), indent=2, sort_keys=False, allow_nan=False) + "\n")


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


def read_csv(path: str | Path, *, missing_ok: bool = False, skipped: list[int] | None = None) -> list[dict[str, str]]:
    """The complete rows of a CSV file, as strings; damaged lines are dropped.

    Damaged: cut short or too long (a killed writer's last line), a field over the csv module's limit, or
    bytes that are not UTF-8. With `skipped`, the dropped rows' numbers (1 = the first row after the header)
    are appended to it, so a reader can say what it left out. With `missing_ok`, a missing file has no rows.
    """
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    rows = []
    with open(path, newline="", errors="replace") as fh:  # undecodable bytes become U+FFFD, then the row is dropped
        reader = csv.DictReader(fh)
        number = 0
        while True:
            number += 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                row = {None: None}
            if None in row or None in row.values() or any("\ufffd" in str(v) for v in row.values()):
                if skipped is not None:
                    skipped.append(number)
                continue
            rows.append(row)
    return rows


def truncate_csv(path: str | Path, fields: Sequence[str], keep: Callable[[dict[str, str]], bool]) -> None:
    """Rewrite a log keeping the rows `keep` accepts (a resumed run drops what it will record again)."""
    write_csv(path, [row for row in read_csv(path, missing_ok=True) if keep(row)], fields)
