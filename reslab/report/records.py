"""Run folders as the report sees them: files on disk only, read tolerantly.

A run in progress, interrupted or crashed has no summary.json and maybe a partial metrics.csv; an old
or damaged run may miss any file. Whatever can be read is kept, and what could not is listed, so the
report shows what exists and says what is missing instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from reslab import files
from reslab.errors import ReportError
from reslab.runs import RunFolder


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Each argument is a run folder, or a folder whose run folders (direct children) are taken, sorted."""
    if not paths:
        raise ReportError("no runs given: reslab report RUN_OR_FOLDER... (a run folder, or a folder of runs)")
    found: dict[Path, Path] = {}
    for arg in paths:
        path = Path(arg)
        try:
            if RunFolder.holds_run(path):
                found.setdefault(path.resolve(), path)
                continue
            if not path.exists():
                raise ReportError(f"{arg} does not exist")
            children = sorted(c for c in path.iterdir() if RunFolder.holds_run(c)) if path.is_dir() else []
        except OSError as exc:
            raise ReportError(f"cannot read {arg}: {exc.strerror or exc}") from None
        if not children:
            layout = RunFolder(path)
            raise ReportError(f"{arg} is not a reslab run folder and holds none "
                              f"(a run folder has {layout.config.name} and {layout.status.name})")
        for child in children:
            found.setdefault(child.resolve(), child)
    return list(found.values())


@dataclass
class RunRecord:
    path: Path
    config: dict[str, Any]
    status: str  # finished | running | interrupted | failed | unknown
    history: list[dict[str, Any]]  # metrics.csv rows as numbers (None where empty)
    steps: list[dict[str, Any]]
    summary: dict[str, Any] | None
    classification_report: str | None
    env: dict[str, Any]
    gradflow_figures: list[Path]
    wandb: dict[str, Any] = field(default_factory=dict)  # wandb.json: the W&B run id, mode and folder
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def folder(self) -> RunFolder:
        """The run folder's files by what they hold (their names are spelled in reslab.runs only)."""
        return RunFolder(self.path)

    def setting(self, section: str, key: str) -> Any:
        values = self.config.get(section)
        return values.get(key) if isinstance(values, dict) else None

    @property
    def planned_epochs(self) -> int | None:
        epochs = self.setting("train", "epochs")
        return epochs if isinstance(epochs, int) else None

    @property
    def finished(self) -> bool:
        return self.status == "finished" and self.summary is not None

    @property
    def state(self) -> str:
        """finished, running, interrupted, failed, or incomplete (no usable summary.json or status.json)."""
        if self.finished:
            return "finished"
        return self.status if self.status in ("running", "interrupted", "failed") else "incomplete"

    def state_note(self) -> str | None:
        """None for a finished run; otherwise what happened, in the words a reader needs."""
        done, planned = len(self.history), self.planned_epochs or "?"
        if self.state == "finished":
            return None
        if self.state == "running":
            return (f"In progress: {done} of {planned} epochs done when this report was built; "
                    "the numbers below are partial.")
        if self.state == "interrupted":
            return (f"Interrupted at epoch {done + 1} of {planned} ({done} finished); "
                    f"continue it with: reslab train --resume {self.path}")
        if self.state == "failed":
            return f"Crashed during epoch {done + 1} of {planned} ({done} finished); the numbers below are partial."
        return (f"Incomplete: no usable {self.folder.summary.name} ({done} of {planned} epochs in "
                f"{self.folder.metrics.name}).")

    def numbers(self) -> dict[str, Any]:
        """The comparison row: from summary.json when finished, else what metrics.csv shows so far."""
        s = self.summary or {}
        val = [(r["val_acc"], r["epoch"]) for r in self.history if r.get("val_acc") is not None]
        best = max(val, key=lambda v: v[0]) if val else (None, None)  # first epoch of the best, as the trainer
        return {"run": self.name, "path": str(self.path), "status": self.state,
                "model": s.get("model") or self.setting("model", "name"),
                "dataset": s.get("dataset") or self.setting("data", "dataset"),
                "params": s.get("params"), "epochs": s.get("epochs", len(self.history)),
                "planned_epochs": self.planned_epochs,
                "best_val_acc": s["best_val_acc"] if "best_val_acc" in s else best[0],
                "best_epoch": s["best_epoch"] if "best_epoch" in s else best[1],
                "test_acc": s.get("test_acc"), "test_loss": s.get("test_loss"),
                "train_seconds": s.get("train_seconds"), "samples_per_s": s.get("samples_per_s")}


def load_run(path: Path) -> RunRecord:
    """Whatever of the run folder can be read; what could not is listed in `problems`."""
    run = RunFolder(Path(path))
    problems: list[str] = []
    config = _read(run.config, yaml.safe_load, problems) or {}
    status_file = _read(run.status, json.loads, problems) or {}
    summary = _read(run.summary, json.loads, problems)
    status = status_file.get("status") or ("finished" if summary else "unknown")
    report = _read(run.report, str, problems)
    env = _read(run.env, json.loads, problems) or {}
    try:
        history = _numeric_rows(files.read_csv(run.metrics, missing_ok=True), "epoch")
        steps = _numeric_rows(files.read_csv(run.steps, missing_ok=True), "step")
    except (OSError, UnicodeDecodeError) as exc:
        history, steps = [], []
        problems.append(f"{run.metrics.name} or {run.steps.name} could not be read ({exc})")
    png = run.gradflow_png  # and any other gradflow*.png the run recorded
    return RunRecord(path=run.path, config=config if isinstance(config, dict) else {}, status=str(status),
                     history=history, steps=steps, summary=summary if isinstance(summary, dict) else None,
                     classification_report=report, env=env if isinstance(env, dict) else {},
                     gradflow_figures=sorted(run.path.glob(f"{png.stem}*{png.suffix}")),
                     wandb=_read(run.wandb_json, json.loads, problems) or {}, problems=problems)


def _read(path: Path, parse: Any, problems: list[str]) -> Any:
    """Parsed file contents; None when absent, and noted in `problems` when present but unreadable."""
    if not path.is_file():
        return None
    try:
        return parse(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        problems.append(f"{path.name} could not be read ({type(exc).__name__})")
        return None


def _numeric_rows(rows: list[dict[str, str]], key: str) -> list[dict[str, Any]]:
    """CSV rows (metrics.csv by epoch, steps.csv by step) as numbers: `key` and step whole numbers, the rest
    floats (None where empty or not a number); a row without a whole `key` (a torn write) is dropped."""
    out = []
    for row in rows:
        try:
            parsed: dict[str, Any] = {key: int(row[key])}
            parsed.setdefault("step", int(row.get("step") or 0))
        except (KeyError, TypeError, ValueError):
            continue
        for name, value in row.items():
            if name not in parsed and name is not None:
                try:
                    parsed[name] = float(value) if value not in (None, "") else None
                except ValueError:
                    parsed[name] = None
        out.append(parsed)
    return out
