"""Files written atomically, read back safely, and CSVs read tolerantly: the one place all are done.

Every write goes to a temp file in the target's folder, is flushed to disk, then renamed over the
target, so a crash or a full disk never leaves half a file where a complete one was. Readers accept
what a killed writer leaves behind (a torn last line) and skip it. A file read back is a regular file of
bounded size (`read_capped`), and a folder a file names lies inside the folder that holds it (`inside`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import io
import json
import math
import os
import platform
import re
import secrets
import stat
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

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
    """`value` as strict JSON takes it: every NaN or infinite float as None (NaN is not JSON, and most parsers
    refuse it), mapping keys as strings, tuples as lists. The one such function: every JSON file goes through it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of `value` (non-finite numbers as null), with a final newline."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False) + "\n"


def write_json(path: str | Path, values: Mapping[str, Any]) -> None:
    """Strict JSON: non-finite numbers are written as null."""
    write_text(path, json_text(values))


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


class NotAFile(OSError):
    """What `read_capped` raises for a folder, a pipe, a device, or a link out of the folder it must stay in."""


class TooLarge(OSError):
    """What `read_capped` raises for a file over its size cap; `size` is its size in bytes."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"larger than {limit:,} bytes")
        self.size = size


def read_capped(path: str | Path, limit: int, *, within: str | Path | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (FileNotFoundError when absent; NotAFile, TooLarge or
    another OSError else). With `within`, a link out of that folder is NotAFile. Opened without blocking, so a
    pipe never hangs the reader; its type is checked on the open file, so nothing can be swapped in between."""
    path = Path(path)
    if within is not None and path.is_symlink() and not inside(within, path):
        raise NotAFile(errno.ELOOP, "a link out of its folder", str(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotAFile(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > limit:
            raise TooLarge(info.st_size, limit)
        chunks = [b""]
        while sum(map(len, chunks)) <= limit and (chunk := os.read(fd, 2**20)):
            chunks.append(chunk)
    finally:
        os.close(fd)
    if len(data := b"".join(chunks)) > limit:  # a file still growing
        raise TooLarge(len(data), limit)
    return data


def inside(parent: str | Path, path: str | Path) -> bool:
    """Whether `path`, every link and `..` on the way resolved, lies strictly inside `parent` (also resolved)."""
    root, target = Path(parent).resolve(), Path(path).resolve()
    return target != root and target.is_relative_to(root)


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


# ----------------------------------------------------------------------------- folders

LOCK_NAME = ".lock"  # a locked folder's lock file: the holder's pid and host


def _unique_folder(parent: str | Path, name: Callable[[], str]) -> Path:
    """A new, empty parent/<name()>, trying fresh names; never an existing folder. OSError when none can be made
    (FileExistsError when no free name was found)."""
    root = Path(parent)
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = root / name()
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free folder name in {root}")


def new_folder(parent: str | Path, name: str) -> Path:
    """A new, empty parent/<name>-<YYYYmmdd-HHMMSS>-<random> (a run, an analysis, a report)."""
    return _unique_folder(parent, lambda: f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")


def hidden_folder(parent: str | Path, prefix: str) -> Path:
    """A new, empty parent/<prefix><random> (a hidden prefix for work in progress)."""
    return _unique_folder(parent, lambda: f"{prefix}{secrets.token_hex(4)}")


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, error: Callable[[str], Exception]) -> Iterator[None]:
    """Hold `folder`'s lock (flock on its .lock file) while writing it; a second process gets `error` of one line
    naming the holder: "<what> <folder> is in use by process <pid> on <host>; ...".

    The lock is the kernel's, so a lock left by a killed process is released with it and the next process takes
    it over. Where flock does not exist (Windows), nothing is locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock_file = Path(folder) / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    refused = error(f"{what} {folder}: its lock file {lock_file} is not a regular file of its own; remove it")
    try:  # a link is never followed (its target would be overwritten), a pipe never blocks
        fd = os.open(lock_file, flags, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
            raise refused from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            raise refused
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(lock_file)
            raise error(f"{what} {folder} is in use by process {holder.get('pid', '?')} on "
                        f"{holder.get('host', '?')}; wait for it to end or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node()}).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_holder(lock_file: Path) -> dict[str, Any]:
    try:
        holder = json.loads(read_capped(lock_file, 4096))
    except (OSError, ValueError, RecursionError):
        return {}
    return holder if isinstance(holder, dict) else {}
