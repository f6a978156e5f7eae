"""Files read tolerantly (a run's, a sweep's, an analysis's): any may be missing, damaged, huge, a folder, a pipe.

Each reader returns what it could parse, or None with one line in `problems` saying why not, so a bad
file costs only what it holds. Only regular files up to MAX_BYTES are opened: a pipe would block the
report and a runaway file would fill the memory. Text read from files is cleaned here too (`clean_text`,
`inline`), so a name with bytes that are not UTF-8 or control characters shows as safe text everywhere.
"""

from __future__ import annotations

import errno
import json
import math
import re
import stat
from pathlib import Path
from typing import Any, Callable

from reslab import files, yamlsafe
from reslab.errors import exception_line

MAX_BYTES = 256 * 2**20  # a run's files are kilobytes to a few megabytes; larger ones are not read
MAX_PNG_BYTES = 32 * 2**20  # a figure the report copies and embeds in report.html (base64)
MAX_INDEX = 10**12  # an epoch or step number beyond this is a damaged row, not a real one
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BREAKS = re.compile(r"[\t\n\r]")


def clean_text(value: Any, limit: int | None = None) -> str:
    """`value` as valid UTF-8 text: bytes that were not UTF-8 (in file names) and lone surrogates (in JSON)
    become U+FFFD, control characters too; cut to `limit` characters. Newlines and tabs are kept."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # str() of a huge or deeply nested value can fail; say what it was instead
        text = f"<{type(value).__name__}>"
    try:  # a file name's undecodable bytes back as they were, then each shown as U+FFFD
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # lone surrogates from JSON's \ud800 escapes
        text = _SURROGATE.sub("\ufffd", text)
    text = _CONTROL.sub("\ufffd", text.replace("\r\n", "\n"))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def inline(value: Any, limit: int | None = 300) -> str:
    """Clean text on one line (a name, a setting, a table cell)."""
    return _BREAKS.sub(" ", clean_text(value, limit))


def finite(x: Any) -> float | None:
    """A parsed number as a finite float; None for NaN, ±inf and numbers too large for a float."""
    try:
        value = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def why(exc: BaseException) -> str:
    """One short line: the OS's words for a file error, else 'Type: first line of the message'."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return inline(exception_line(exc), 160)


def _note(path: Path, exc: OSError, problems: list[str], limit: int) -> None:
    """One line in `problems` saying why `path` was not read (an absent file is not noted)."""
    if isinstance(exc, FileNotFoundError):
        return
    if isinstance(exc, files.NotAFile):
        what = "is not a file" if exc.errno == errno.EINVAL else "is a link out of its folder; not read"
        problems.append(f"{inline(path.name)} {what}")
    elif isinstance(exc, files.TooLarge):
        problems.append(f"{inline(path.name)} is too large to read ({exc.size:,} bytes; the report reads files up "
                        f"to {limit:,} bytes)")
    else:
        problems.append(f"{inline(path.name)} could not be read ({why(exc)})")


def _usable(path: Path, problems: list[str], limit: int) -> bool:
    """Whether `path` is a regular file of at most `limit` bytes, not a link out of its folder (else noted)."""
    try:
        if path.is_symlink() and not files.inside(path.parent, path):
            raise files.NotAFile(errno.ELOOP, "a link out of its folder", str(path))
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise files.NotAFile(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > limit:
            raise files.TooLarge(info.st_size, limit)
    except OSError as exc:
        _note(path, exc, problems, limit)
        return False
    return True


def read_bytes(path: Path, problems: list[str], limit: int | None = None) -> bytes | None:
    """The file's bytes, or None: absent, or (noted) not a regular file, a link out of its folder, too large, or
    unreadable. A pipe or a device is never opened for reading (it would block, or never end)."""
    limit = MAX_BYTES if limit is None else limit
    try:
        return files.read_capped(path, limit, within=path.parent)
    except OSError as exc:
        _note(path, exc, problems, limit)
        return None


def read_parsed(path: Path, parse: Callable[[bytes], Any], problems: list[str]) -> Any:
    """The parsed file, or None (noted when present but unparsable)."""
    data = read_bytes(path, problems)
    if data is None:
        return None
    try:
        return parse(data)
    except Exception as exc:  # damaged JSON or YAML raises many types: ValueError, RecursionError, YAMLError, ...
        problems.append(f"{inline(path.name)} could not be read ({why(exc)})")
        return None


def read_mapping(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """A JSON object (.json) or YAML mapping (.yaml), or None; any other value is noted as the wrong kind."""
    value = read_parsed(path, yamlsafe.load if path.suffix == ".yaml" else json.loads, problems)
    if value is None or isinstance(value, dict):
        return value
    kind = _KINDS.get(type(value), type(value).__name__)
    problems.append(f"{inline(path.name)} holds {kind}, not {'a mapping' if path.suffix == '.yaml' else 'an object'}")
    return None


def read_text(path: Path, problems: list[str]) -> str | None:
    """A text file; bytes that are not UTF-8 are shown as U+FFFD rather than losing the whole file."""
    data = read_bytes(path, problems)
    return None if data is None else data.decode("utf-8", "replace")


def read_table(path: Path, problems: list[str]) -> list[dict[str, str]] | None:
    """A CSV file's complete rows as strings; None when absent or unreadable (noted), damaged rows left out (noted)."""
    if not _usable(path, problems, MAX_BYTES):
        return None
    skipped: list[int] = []
    try:
        rows = files.read_csv(path, skipped=skipped)
    except Exception as exc:  # OSError, or whatever else a damaged file raises
        problems.append(f"{inline(path.name)} could not be read ({why(exc)})")
        return None
    if skipped:
        where = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
        problems.append(f"{inline(path.name)}: {len(skipped)} damaged row{'s' * (len(skipped) > 1)} left out "
                        f"(row {where})")
    return rows


def read_rows(path: Path, key: str, problems: list[str]) -> list[dict[str, Any]]:
    """A CSV log (metrics.csv by epoch, steps.csv by step) as numbers; [] when absent or unreadable (noted)."""
    return numeric_rows(read_table(path, problems) or [], key)


def _whole(text: Any) -> int | None:
    try:
        value = int(text)
    except (TypeError, ValueError):  # also a number of more digits than int() accepts
        return None
    return value if 0 <= value <= MAX_INDEX else None


def numeric_rows(rows: list[dict[str, str]], key: str) -> list[dict[str, Any]]:
    """CSV rows as numbers: `key` and step whole numbers, the rest finite floats (None where empty, not a number,
    NaN or infinite); a row without a whole `key` or step (a torn write, a damaged file) is dropped."""
    out = []
    for row in rows:
        index, step = _whole(row.get(key)), _whole(row.get("step") or 0)
        if index is None or step is None:
            continue
        parsed: dict[str, Any] = {key: index, "step": step}
        for name, value in row.items():
            if name not in parsed and name is not None:
                parsed[name] = None if value in (None, "") else finite(value)
        out.append(parsed)
    return out


def png_files(paths: list[Path], problems: list[str]) -> list[Path]:
    """The files that are PNG images of a size the report can embed; the others are noted and left out."""
    usable = []
    for path in paths:
        head = read_bytes(path, problems, MAX_PNG_BYTES)
        if head is None:
            continue
        if head.startswith(PNG_SIGNATURE):
            usable.append(path)
        else:
            problems.append(f"{inline(path.name)} is not a PNG image; left out")
    return usable
