"""The sweep folder: every file name it holds, its index of run folders, and what each run needs next.

`<runs-dir>/<sweep name>/` holds a copy of the sweep file, `index.json` (run key -> its run folder, written
atomically by the one process running the sweep), `runs/` (the run folders, made by the trainer) and the
aggregated results. A run's folder is found again on every invocation, so a sweep run twice trains nothing
twice: finished runs are skipped, interrupted ones resumed, failed ones moved aside (never deleted) and rerun.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from reslab import files, reading
from reslab.config import changed_keys, from_dict, load_source
from reslab.errors import CheckpointError, ConfigError, first_line
from reslab.runs import RunFolder
from reslab.status import RunStatus
from reslab.sweep.result import CellRow, PairRow, RunRow, cell_row, pair_row, run_row
from reslab.sweep.spec import TWINS, Pairing, PlannedRun, SweepSpec, folder_name, pairing_of, text

# keys a run may differ in from its folder's config.yaml: where things are and what is drawn, not what is computed
MAY_DIFFER = ("runs_dir", "data.data_dir", "train.device", "track.", "train.figures")
_STAMP = r"-\d{8}-\d{6}-[0-9a-f]{4}"  # what RunFolder.create appends to a run's name


class RunAction(StrEnum):
    """What a planned run needs next (the word `reslab sweep --dry-run` prints)."""

    DONE = "done"
    NEW = "new"
    RESUME = "resume"  # from last.pt
    RERUN = "rerun"  # a failed attempt, moved aside first
    RESTART = "restart"  # stopped before any checkpoint, moved aside first


@dataclass(frozen=True)
class RunState:
    """Where a planned run stands: what it needs, its current run folder and what its status.json says."""

    action: RunAction
    folder: Path | None  # its current run folder, if any
    status: RunStatus | None = None


@dataclass(frozen=True)
class SweepFolder:
    """The files of one sweep folder, by what they hold."""

    path: Path

    sweep_file = property(lambda self: self.path / "sweep.yaml")  # a copy of the sweep file
    index = property(lambda self: self.path / "index.json")  # run key -> run folder, status, last error
    runs = property(lambda self: self.path / "runs")  # the run folders
    results = property(lambda self: self.path / "results.csv")  # a row per run
    aggregate = property(lambda self: self.path / "aggregate.csv")  # a row per cell: n, mean, std, 95% CI
    paired = property(lambda self: self.path / "paired.csv")  # b - a of the paired key (residual - plain), per seed
    summary = property(lambda self: self.path / "summary.txt")  # sentences computed from the numbers
    acc_figure = property(lambda self: self.path / "test_acc_vs_depth.png")
    loss_figure = property(lambda self: self.path / "train_loss_vs_depth.png")
    lock_file = property(lambda self: self.path / ".lock")
    slurm_logs = property(lambda self: self.path / "slurm")  # submitit's job files and each job's stdout/stderr

    def check(self, spec: SweepSpec) -> None:
        """Refuse a folder that holds another sweep or other files; writes nothing."""
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise ConfigError(f"{self.path} exists and is not a folder")
        if not self.sweep_file.is_file():
            if any(self.path.iterdir()):
                raise ConfigError(f"{self.path} exists and is not a sweep folder (no sweep.yaml); give the sweep "
                                  "another name or --runs-dir")
            return
        try:
            saved = load_source(str(self.sweep_file))
        except ConfigError as exc:
            raise ConfigError(f"{self.sweep_file} is unreadable ({exc}); move the folder away") from None
        if saved != spec.raw:
            keys = sorted(k for k in set(saved) | set(spec.raw) if saved.get(k) != spec.raw.get(k))
            raise ConfigError(f"{self.path} holds a different sweep (its sweep.yaml differs in {', '.join(keys)}); "
                              "give this sweep another name or --runs-dir")

    def create(self, spec: SweepSpec) -> None:
        """The folder and its copy of the sweep file (after `check`)."""
        try:
            self.runs.mkdir(parents=True, exist_ok=True)
            if not self.sweep_file.is_file():  # the file as written (comments kept), else the values given
                written = spec.path.is_file() and spec.path.resolve() != self.sweep_file.resolve()
                files.write_text(self.sweep_file, spec.path.read_text() if written
                                 else yaml.safe_dump(dict(spec.raw), sort_keys=False))
        except OSError as exc:
            raise ConfigError(f"cannot write the sweep folder {self.path}: {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One process runs a sweep folder at a time (a second gets a ConfigError naming the holder)."""
        with files.folder_lock(self.path, "sweep folder", ConfigError):
            yield

    def read_index(self) -> dict[str, dict[str, Any]]:
        runs = RunFolder(self.path).read_json(self.index).get("runs")
        return {k: v for k, v in runs.items() if isinstance(v, dict)} if isinstance(runs, dict) else {}

    def holds(self, folder: Path) -> bool:
        """Whether `folder`, links and `..` resolved, is a folder of the sweep's own runs/ (a child of it): the
        only folders a sweep renames or resumes, whatever its files say."""
        runs = self.path.resolve() / self.runs.name
        return not self.runs.is_symlink() and Path(folder).resolve().parent == runs and files.inside(runs, folder)

    def _checked(self, folder: Path, named_by: Path) -> Path:
        """`folder` as `named_by` names it, when the sweep holds it; else a one-line error naming the file."""
        if not self.holds(folder):
            raise ConfigError(f"{named_by} names the run folder {folder}, which is not inside {self.runs}; "
                              "a sweep reads and moves only its own run folders (fix or remove the file)")
        return folder

    def write_index(self, entries: dict[str, dict[str, Any]]) -> None:
        files.write_json(self.index, {"format": "reslab-sweep-index-1", "runs": entries})

    def relative(self, path: Path) -> str:
        """`path` inside the sweep folder, relative to it (a worker may report it absolute); else as given."""
        inside, root = Path(path).absolute(), self.path.absolute()
        return str(inside.relative_to(root)) if inside.is_relative_to(root) else str(path)

    def state(self, run: PlannedRun, index: dict[str, dict[str, Any]]) -> RunState:
        """Where `run` stands: its folder from the index, else the one the trainer made for it (found by name)."""
        folder = self.run_folder(run.key, index)
        if folder is None:
            return RunState(RunAction.NEW, None)
        rf = RunFolder(folder)
        status = RunStatus.parse(rf.read_json(rf.status).get("status"))
        if status is not None and status.completed and rf.summary.is_file():
            action = RunAction.DONE
        elif status is RunStatus.FAILED:
            action = RunAction.RERUN
        else:  # interrupted, or `running` left by a killed process (this sweep holds the folder lock)
            action = RunAction.RESUME if rf.last.is_file() else RunAction.RESTART
        if action in (RunAction.DONE, RunAction.RESUME):
            _check_same_config(rf, run)
        return RunState(action, folder, status)

    def run_folder(self, key: str, index: dict[str, dict[str, Any]]) -> Path | None:
        """The run's folder: the index's, else the one the trainer made for it (found by name), else None."""
        entry = index.get(key, {})
        folder = self.path / entry["folder"] if isinstance(entry.get("folder"), str) else None
        if folder is not None and folder.is_dir():
            return self._checked(folder, self.index)
        return self._find(key)

    def _find(self, key: str) -> Path | None:
        """A run folder the trainer made for `key` but the index missed (the sweep was killed): the most
        advanced one, then the newest."""
        if not self.runs.is_dir():
            return None
        pattern = re.compile(re.escape(key) + _STAMP)
        found = [p for p in self.runs.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and self.holds(p)]

        def rank(p: Path) -> tuple[int, str]:
            rf = RunFolder(p)
            status = RunStatus.parse(rf.read_json(rf.status).get("status"))
            done = status is not None and status.completed and rf.summary.is_file()
            return (2 if done else 1 if rf.last.is_file() else 0), p.name

        return max(found, key=rank) if found else None

    def run_rows(self) -> list[RunRow]:
        """results.csv as typed rows (empty before the sweep wrote it); a damaged cell reads as None."""
        lookup = self._spellings()
        rows = []
        for row in _rows(self.results):
            run = run_row(row, lookup, self.path, "")
            if run.run_folder is not None:
                self._checked(run.run_folder, self.results)
            name = run.run_folder.name if run.run_folder is not None else ""
            key = re.sub(_STAMP + "$", "", name) if re.search(_STAMP + "$", name) else \
                folder_name(run.values, run.seed if run.seed is not None else -1)
            rows.append(replace(run, key=key))
        return rows

    def cell_rows(self) -> list[CellRow]:
        """aggregate.csv as typed rows: a row per cell of the grid."""
        lookup = self._spellings()
        return [cell_row(row, lookup) for row in _rows(self.aggregate)]

    def pair_rows(self) -> list[PairRow]:
        """paired.csv as typed rows: b - a of the paired key (residual - plain) per group of cells."""
        pairing = self.pairing()
        lookup = {k: v for k, v in self._spellings().items() if pairing is None or k != pairing.key}
        return [pair_row(row, lookup, pairing or TWINS) for row in _rows(self.paired)]

    def pairing(self) -> Pairing | None:
        """What paired.csv compares, from the folder's copy of the sweep: its `pair` when that names a grid key of
        two values, else plain and residual twins when model.residual is swept (an older folder: no `pair`)."""
        raw = self._raw()
        grid = raw.get("grid") if isinstance(raw.get("grid"), Mapping) else {}
        grid = {str(k): v for k, v in grid.items() if isinstance(v, list)}
        key = raw.get("pair")
        return pairing_of(grid, key if isinstance(key, str) and len(grid.get(key, ())) == 2 else None)

    def _raw(self) -> dict[str, Any]:
        """The folder's copy of the sweep file, read tolerantly (empty when missing or unreadable)."""
        try:
            raw = load_source(str(self.sweep_file)) if self.sweep_file.is_file() else {}
        except ConfigError:
            raw = {}
        return raw if isinstance(raw, dict) else {}

    def _spellings(self) -> dict[str, dict[str, Any]]:
        """Swept key -> {its values as the CSV files spell them: the value}, from the folder's copy of the sweep."""
        raw = self._raw()
        grid, tune = raw.get("grid"), raw.get("tune")
        swept: dict[str, Any] = dict(grid) if isinstance(grid, Mapping) else {}
        if isinstance(tune, Mapping) and isinstance(tune.get("key"), str):
            swept[tune["key"]] = tune.get("values")
        return {str(k): {text(v): v for v in vs} for k, vs in swept.items() if isinstance(vs, list)}

    def move_aside(self, folder: Path, label: str) -> Path:
        """Rename a run folder to <name>.<label>-<n> (the first free n): kept for the user, out of the way."""
        folder = self._checked(folder, self.index)
        for n in range(1, 10_000):
            target = folder.with_name(f"{folder.name}.{label}-{n}")
            if not target.exists():
                folder.rename(target)
                return target
        raise CheckpointError(f"cannot move {folder} aside: too many earlier attempts")


def _rows(path: Path) -> list[dict[str, str]]:
    """A CSV file of the sweep, read back safely (a regular file of bounded size); none when absent or unreadable."""
    return reading.read_table(path, []) or []


def _check_same_config(rf: RunFolder, run: PlannedRun) -> None:
    """A run folder kept by the sweep must hold this run's config: a changed base file is caught here."""
    try:
        saved = from_dict(load_source(str(rf.config)))
    except (ConfigError, OSError) as exc:
        raise CheckpointError(f"run folder {rf.path} has an unreadable config.yaml: {first_line(exc)}") from None
    changed = changed_keys(saved, run.cfg, tuple(MAY_DIFFER))
    if changed:
        raise ConfigError(f"run folder {rf.path} was trained with a different config ({', '.join(changed[:3])} "
                          "differ; has the base config changed?); move it away to train it again")
