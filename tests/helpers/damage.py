"""Seeded damage to a copy of a finished study folder, and a hash of a tree, for the damage tests (no test module
imports another; this helper sits beside conftest.py, like fakedata.py)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

GARBAGE = ("abc", "²", "--5", "9" * 5000, "inf", "-1e999", "nan", "", '"', "true", "[1", "\x00")
KINDS = ("truncate", "garble", "swap", "delete", "symlink")


def tree_hash(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """path -> a hash of its bytes (or the link's target) for everything under `root` except under `skip`."""
    out = {}
    for dirpath, dirs, names in os.walk(root):
        here = Path(dirpath)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in names + [d for d in dirs if (here / d).is_symlink()]:
            path = here / name
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            else:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _swapped(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool) or value is None:
        return rng.choice(["yes", 7, [value]])
    if isinstance(value, (int, float)):
        return rng.choice([str(value), [value], {"v": value}, None, "9" * 5000 if rng.random() < 0.3 else "x"])
    if isinstance(value, str):
        return rng.choice([1.5, None, [value], {}])
    if isinstance(value, list):
        return rng.choice([{}, None, "list", 3])
    return rng.choice([None, [], "mapping", 0])


def _json_damage(data: Any, rng: random.Random, kind: str) -> Any:
    """One value somewhere inside `data` garbled or of another type."""
    if not isinstance(data, (dict, list)) or not data:
        return rng.choice(GARBAGE) if kind == "garble" else _swapped(data, rng)
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = rng.choice(keys)
    if isinstance(data[key], (dict, list)) and data[key] and rng.random() < 0.6:
        data[key] = _json_damage(data[key], rng, kind)
    else:
        data[key] = rng.choice(GARBAGE) if kind == "garble" else _swapped(data[key], rng)
    return data


def damage(folder: Path, rng: random.Random, outside: Path) -> str:
    """Damage one file of `folder` in one of KINDS; returns what was done. `outside` is a file a symlink may point at."""
    candidates = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    path = rng.choice(candidates)
    kind = rng.choice(KINDS)
    what = f"{kind} {path.relative_to(folder)}"
    if kind == "delete":
        path.unlink()
    elif kind == "symlink":
        path.unlink()
        path.symlink_to(outside)
    elif kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: rng.randrange(len(data) + 1)])
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = None
        damaged = _json_damage(data, rng, kind)
        with open(path, "w") as fh:
            fh.write(json.dumps(damaged, default=str).replace('"' + "9" * 5000 + '"', "9" * 5000))
    elif path.suffix == ".csv":
        rows = list(csv.reader(open(path, newline="")))
        if len(rows) > 1 and rows[1]:
            r = rng.randrange(len(rows))  # the header too: a column renamed or lost
            c = rng.randrange(len(rows[r]))
            rows[r][c] = rng.choice(GARBAGE) if kind == "garble" else rng.choice(["x", "", "1e400", "-0"])
            with open(path, "w", newline="") as fh:
                csv.writer(fh).writerows(rows)
        else:
            path.write_text("garbage\n")
    else:
        data = bytearray(path.read_bytes())
        if data:
            i = rng.randrange(len(data))
            data[i:i + 8] = rng.choice(GARBAGE).encode()[:8] or b"\xff"
        path.write_bytes(bytes(data))
    return what


def tree(root: Path) -> dict[str, str]:
    """Every path under `root` (links not followed) -> its content's hash, link target or kind."""
    out = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link to " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "folder" if path.is_dir() else "other"
    return out
