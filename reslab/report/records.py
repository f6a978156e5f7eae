"""Run folders as the report sees them: files on disk only, read tolerantly.

A run in progress, interrupted, crashed or diverged has no summary.json or one with nulls, and maybe a
partial metrics.csv; an old or damaged run may miss any file or hold anything in it. Whatever can be read
is kept and what could not is listed, so the report shows what exists and says what is missing instead of
failing. A run none of whose files can be read is kept too, as unreadable, with the reason.
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from reslab.analyze.record import RECORD_NAME
from reslab.errors import ReportError
from reslab.report.analyses import is_analysis
from reslab.report.sweeps import is_sweep
from reslab.reading import inline
from reslab.report.values import real_or_none, scalar, whole_or_none
from reslab.runs import RunFolder
from reslab.status import RunStatus
from reslab.sweep.folder import SweepFolder

# the report's words for runs besides a RunStatus: running but its process is gone, no usable record, no file read
STOPPED, INCOMPLETE, UNREADABLE = "stopped", "incomplete", "unreadable"
UNFINISHED = (RunStatus.RUNNING, STOPPED, RunStatus.INTERRUPTED, RunStatus.FAILED, INCOMPLETE, UNREADABLE)  # no result


@dataclass(frozen=True)
class Folders:
    """What a report was given, by kind, each in the order given (a folder's children sorted by name)."""

    runs: list[Path]
    sweeps: list[Path]
    analyses: list[Path]


def _kind(path: Path) -> str | None:
    """run, sweep or analysis: what the folder holds (a run folder first; a sweep or analysis folder is no run)."""
    if RunFolder.holds_run(path):
        return "run"
    return "sweep" if is_sweep(path) else "analysis" if is_analysis(path) else None


def _child_kind(path: Path) -> str | None:
    """Like _kind, but an entry that cannot even be looked into is nothing (lost+found)."""
    try:
        return _kind(path)
    except OSError:
        return None


def find_folders(paths: Sequence[str | Path]) -> Folders:
    """Each argument is a run, sweep or analysis folder, or a folder whose run, sweep and analysis folders (direct
    children) are taken, sorted."""
    if not paths:
        raise ReportError("no runs given: reslab report RUN_OR_FOLDER... (a run, sweep or analysis folder, or a "
                          "folder of them)")
    found: dict[str, dict[Path, Path]] = {"run": {}, "sweep": {}, "analysis": {}}
    for arg in paths:
        path = Path(arg)
        try:
            kind = _kind(path)
            if kind is not None:
                found[kind].setdefault(path.resolve(), path)
                continue
            if not path.exists():
                raise ReportError(f"{inline(arg)} does not exist")
            children = [(c, _child_kind(c)) for c in sorted(path.iterdir())] if path.is_dir() else []
            children = [(c, k) for c, k in children if k is not None]
        except OSError as exc:
            raise ReportError(f"cannot read {inline(arg)}: {exc.strerror or exc}") from None
        if not children:
            layout = RunFolder(path)
            raise ReportError(f"{inline(arg)} is not a reslab run folder and holds none (a run folder has "
                              f"{layout.config.name} and {layout.status.name}; a sweep folder, "
                              f"{SweepFolder(path).sweep_file.name}; an analysis folder, {RECORD_NAME})")
        for child, kind in children:
            found[kind].setdefault(child.resolve(), child)
    return Folders(*(list(found[k].values()) for k in ("run", "sweep", "analysis")))


def process_alive(pid: object) -> bool | None:
    """Whether process `pid` exists on this machine; None when that cannot be told (not a usable pid).

    Signal 0 checks without signalling. PermissionError: it exists but belongs to another user. A pid can be
    reused by a later process, so True means "maybe still running", False means "certainly gone".
    """
    if os.name != "posix" or isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None  # pid 0 and negative pids name process groups; Windows' os.kill would terminate
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, OSError):
        return None
    return True


def _this_host(host: str) -> bool:
    return host in (socket.gethostname(), platform.node())


@dataclass
class RunRecord:
    """What the report knows of one run folder, read from its files once."""

    path: Path
    config: dict[str, Any]
    status: RunStatus | None  # as status.json says (finished when only a summary was read); None: unknown
    history: list[dict[str, Any]]  # metrics.csv rows as numbers (None where empty or not finite)
    steps: list[dict[str, Any]]
    summary: dict[str, Any] | None
    classification_report: str | None
    env: dict[str, Any]
    gradflow_figures: list[Path]
    wandb: dict[str, Any] = field(default_factory=dict)  # wandb.json: the W&B run id, mode and folder
    problems: list[str] = field(default_factory=list)
    status_info: dict[str, Any] = field(default_factory=dict)  # status.json as read: epoch, step, pid, host
    error: str | None = None  # why nothing of this run could be read (then it is listed as unreadable)

    @property
    def name(self) -> str:
        """The folder name as clean text (a name that is not UTF-8 shows U+FFFD for its odd bytes)."""
        return inline(self.path.name, None)

    @property
    def folder(self) -> RunFolder:
        """The run folder's files by what they hold (their names are spelled in reslab.runs only)."""
        return RunFolder(self.path)

    def setting(self, section: str, key: str) -> Any:
        values = self.config.get(section)
        return scalar(values.get(key)) if isinstance(values, dict) else None

    @property
    def planned_epochs(self) -> int | None:
        epochs = self.setting("train", "epochs")
        return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None

    @property
    def finished(self) -> bool:
        return self.status == RunStatus.FINISHED and self.summary is not None

    @property
    def host(self) -> str | None:
        """The other machine a running run is on (its process cannot be checked from here); else None."""
        host = self.status_info.get("host")
        if self.status != RunStatus.RUNNING or not isinstance(host, str) or not host or _this_host(host):
            return None
        return inline(host, 80)

    @cached_property  # once: a process that ends while the report is built must not change its story
    def state(self) -> str:
        """finished, diverged, running, stopped (running, but its process is gone), interrupted, failed,
        incomplete (no usable summary.json or status.json) or unreadable (no file could be read)."""
        if self.error is not None:
            return UNREADABLE
        if self.finished or self.status == RunStatus.DIVERGED:
            return self.status
        if self.status == RunStatus.RUNNING:
            pid = self.status_info.get("pid")
            return STOPPED if self.host is None and process_alive(pid) is False else RunStatus.RUNNING
        return self.status if self.status in (RunStatus.INTERRUPTED, RunStatus.FAILED) else INCOMPLETE

    def _index(self, key: str) -> str:
        value = self.status_info.get(key)
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"

    def state_note(self) -> str | None:
        """None for a finished run; otherwise what happened, in the words a reader needs."""
        done, planned, state = len(self.history), self.planned_epochs or "?", self.state
        resume = f"continue it with: reslab train --resume {inline(self.path, None)}"
        if state == RunStatus.FINISHED:
            return None
        if state == RunStatus.DIVERGED:
            return (f"Diverged at step {self._index('step')} (epoch {self._index('epoch')}): training stopped "
                    "there; the numbers below are what it recorded until then.")
        if state == RunStatus.RUNNING and self.host:
            return (f"In progress on {self.host} (not checked from here): {done} of {planned} epochs done when "
                    "this report was built; the numbers below are partial.")
        if state == RunStatus.RUNNING:
            return (f"In progress: {done} of {planned} epochs done when this report was built; "
                    "the numbers below are partial.")
        if state == STOPPED:
            return (f"Stopped (the process is gone): {done} of {planned} epochs done; the numbers below are "
                    "partial" + (f"; {resume}" if self.folder.last.is_file() else "") + ".")
        if state == RunStatus.INTERRUPTED:
            return f"Interrupted at epoch {done + 1} of {planned} ({done} finished); {resume}"
        if state == RunStatus.FAILED:
            return f"Crashed during epoch {done + 1} of {planned} ({done} finished); the numbers below are partial."
        return (f"Incomplete: no usable {self.folder.summary.name} ({done} of {planned} epochs in "
                f"{self.folder.metrics.name}).")

    def numbers(self) -> dict[str, Any]:
        """The comparison row: summary.json's numbers where it has them (not null), else what metrics.csv
        shows so far. ValueError when summary.json holds a value of the wrong type."""
        s, file = self.summary or {}, self.folder.summary.name
        val = [(r["val_acc"], r["epoch"]) for r in self.history if r.get("val_acc") is not None]
        best = max(val, key=lambda v: v[0]) if val else (None, None)  # first epoch of the best, as the trainer
        best_val_acc = real_or_none(s, "best_val_acc", file)
        epochs = whole_or_none(s, "epochs", file)
        return {"run": self.name, "path": inline(self.path, None), "status": self.state,
                "model": _text(scalar(s.get("model")) or self.setting("model", "name"), 200),
                "dataset": _text(scalar(s.get("dataset")) or self.setting("data", "dataset"), 500),
                "params": whole_or_none(s, "params", file), "epochs": len(self.history) if epochs is None else epochs,
                "planned_epochs": self.planned_epochs,
                "best_val_acc": best[0] if best_val_acc is None else best_val_acc,
                "best_epoch": best[1] if best_val_acc is None else whole_or_none(s, "best_epoch", file),
                "test_acc": real_or_none(s, "test_acc", file), "test_loss": real_or_none(s, "test_loss", file),
                "train_seconds": real_or_none(s, "train_seconds", file),
                "samples_per_s": real_or_none(s, "samples_per_s", file), "host": self.host}


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else inline(value, limit)


def load_run(path: Path) -> RunRecord:
    """Whatever of the run folder can be read (through RunFolder's readers); what could not is listed in `problems`."""
    run = RunFolder(Path(path))
    problems: list[str] = []
    config, status_info, summary = run.read_config(problems), run.read_status(problems), run.read_summary(problems)
    said = status_info.get("status")  # a word status.json holds that is no RunStatus makes the run incomplete
    status = RunStatus.parse(said) if isinstance(said, str) and said else RunStatus.FINISHED if summary else None
    history = run.read_metrics(problems)
    record = RunRecord(path=run.path, config=config, status=status,
                       history=history, steps=run.read_steps(problems), summary=summary,
                       classification_report=run.read_report(problems), env=run.read_env(problems),
                       gradflow_figures=run.gradflow_figures(problems), wandb=run.read_wandb(problems),
                       problems=problems, status_info=status_info)
    if not (config or status_info or summary or history):
        record.error = "no file could be read: " + ("; ".join(problems) or "the run folder is empty")
    return record


def unreadable(path: Path, reason: str) -> RunRecord:
    """A run whose folder could not be read at all (load_run failed), kept to be listed with the reason."""
    return RunRecord(path=Path(path), config={}, status=None, history=[], steps=[], summary=None,
                     classification_report=None, env={}, gradflow_figures=[], error=reason)
