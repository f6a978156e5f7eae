"""The lab folder: what was asked (lab.json), which stages are done, and where each stage keeps its files.

A stage is done when lab.json says so; its files are then never touched again, so running the lab again
reuses every finished run and analysis. Sweeps resume their own runs; an analysis is built in a hidden
folder and renamed into place when complete, so an interrupted one leaves nothing half-written behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from reslab import files
from reslab.errors import ConfigError
from reslab.sweep import SweepFolder

LAB_FORMAT = "reslab-lab-1"
MAX_RECORD_BYTES = 16 * 2**20  # lab.json: a few kilobytes
ASKED_KEYS = ("profile", "mnist", "cifar", "data_dir")  # a lab folder holds one lab: these must match to continue


@dataclass(frozen=True)
class LabFolder:
    path: Path

    record = property(lambda self: self.path / "lab.json")
    sweeps = property(lambda self: self.path / "sweeps")  # one sweep folder per study
    analyses = property(lambda self: self.path / "analyses")  # one analysis folder per instrument
    report = property(lambda self: self.path / "report")

    def sweep(self, name: str) -> Path:
        return self.sweeps / name

    def analysis(self, name: str) -> Path:
        return self.analyses / name

    def sweep_folder(self, name: str) -> SweepFolder:
        """A study's sweep folder: its typed readers (`run_rows`, `cell_rows`, `pair_rows`) serve the stages and report."""
        return SweepFolder(self.sweep(name))

    def read(self) -> dict[str, Any] | None:
        """lab.json, or None when the folder holds no lab yet."""
        if not self.record.is_file():
            return None
        try:
            values = json.loads(files.read_capped(self.record, MAX_RECORD_BYTES, within=self.path))
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigError(f"{self.record} cannot be read ({exc}); give the lab a new --out") from None
        if not isinstance(values, dict) or values.get("format") != LAB_FORMAT:
            raise ConfigError(f"{self.record} is not a reslab lab record; give the lab a new --out")
        return values

    def check(self, asked: Mapping[str, Any]) -> dict[str, Any] | None:
        """lab.json when this folder holds the same lab, None when it is new or empty; anything else is an error.

        Writes nothing."""
        self.check_links()
        values = self.read()
        if values is None:
            if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
                raise ConfigError(f"--out {self.path} already holds files that are not a reslab lab; give a new or "
                                  "empty folder")
            return None
        differ = [k for k in ASKED_KEYS if _same_form(k, values.get(k)) != _same_form(k, asked[k])]
        if differ:
            was = ", ".join(f"{k} {values.get(k)!r} (now {asked[k]!r})" for k in differ)
            raise ConfigError(f"{self.path} holds a lab made with {was}; give another --out, or the same settings "
                              "to continue it")
        values.setdefault("stages", {})
        return values

    def open(self, asked: Mapping[str, Any]) -> dict[str, Any]:
        """Start (writing lab.json) or continue the lab in this folder."""
        values = self.check(asked)
        if values is None:
            values = {"format": LAB_FORMAT, **{k: asked[k] for k in ASKED_KEYS}, "started": _now(), "stages": {}}
            self.path.mkdir(parents=True, exist_ok=True)
            files.write_json(self.record, values)
        return values

    def mark_done(self, values: dict[str, Any], stage: str, seconds: float, **extra: Any) -> None:
        values["stages"][stage] = {"status": "done", "seconds": round(seconds, 2), "finished": _now(), **extra}
        files.write_json(self.record, values)

    def check_links(self) -> None:
        """Refuse a lab whose stage folders (or the folders in them) are links: the lab renames and deletes in
        them, and a link would lead that out of the lab folder (the link's target is never touched)."""
        for stage in (self.sweeps, self.analyses, self.report):
            inner = list(stage.iterdir()) if stage.is_dir() and not stage.is_symlink() else []
            for path in (stage, *inner):
                if path.is_symlink():
                    raise ConfigError(f"{path} is a link; the lab writes, renames and deletes only inside "
                                      f"{self.path}: remove the link (its target is left as it is)")

    def _own(self, path: Path) -> Path:
        """`path` when it lies inside the lab folder with no link on the way; else a one-line error."""
        self.check_links()
        for part in (path, *path.parents):
            if part == self.path:
                break
            if part.is_symlink() or not files.inside(self.path, part):
                raise ConfigError(f"{part} is a link or lies outside the lab folder {self.path}; the lab deletes "
                                  "and renames only inside it: remove it")
        else:
            raise ConfigError(f"{path} is not inside the lab folder {self.path}")
        return path

    @contextmanager
    def building(self, final: Path) -> Iterator[Path]:
        """A fresh hidden folder beside `final`, renamed to `final` when the block ends without an error."""
        final = self._own(final)
        temp = self._own(final.parent / f".{final.name}.building")
        for stale in (temp, final):  # the lab's own leftovers of an interrupted stage (checked: not links)
            if stale.exists():
                shutil.rmtree(stale)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield temp
            temp.rename(final)
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def absolute(path: str | Path) -> str:
    """A folder as an absolute path, ~ expanded: the lab's sweep files are read from elsewhere, and
    `--data-dir ../data` and `--data-dir /home/me/data` name the same data."""
    return str(Path(path).expanduser().resolve())


def _same_form(key: str, value: Any) -> Any:
    """What an asked value is compared as: the data folder resolved (a lab.json of an older reslab kept it as typed)."""
    return absolute(value) if key == "data_dir" and isinstance(value, str) else value
