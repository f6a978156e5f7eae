"""`reslab report`: run folders -> report.md (figures beside it) + self-contained report.html + report.json.

Reads only files in the run folders, so a report can be rebuilt from old runs at any time. The output
goes to a new folder (reports/report-<date>-<time>-<id>) or to --out, which must be new, empty, or an earlier
reslab report (whose files are replaced); nothing else a user has is overwritten.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from reslab import files, plots
from reslab.errors import ReportError, describe
from reslab.report.document import Block, Figure, Heading, Note, Paragraph, Preformatted, Table, to_html, to_markdown
from reslab.report.records import RunRecord, find_runs, load_run
from reslab.runs import RunFolder

REPORT_FORMAT = "reslab-report-1"
MARKDOWN, HTML, NUMBERS, FIGURES = "report.md", "report.html", "report.json", "figures"  # a report folder's files
UNEXPECTED = (ValueError, TypeError, KeyError, IndexError, AttributeError)  # what damaged values raise
COMPARISON = ["run", "model", "dataset", "params", "epochs", "best val acc", "best epoch", "test acc",
              "train time (s)", "samples/s", "status"]


def build_report(paths: Sequence[str | Path], out: str | Path | None = None, svg: bool = False) -> Path:
    """Write the report of the runs in `paths`; returns its folder. Bad input raises ReportError."""
    records = [load_run(p) for p in find_runs(paths)]  # before any folder is made
    out_dir = prepare_out_dir(out)
    try:
        (out_dir / FIGURES).mkdir(exist_ok=True)
        blocks = _overview(records, out_dir, svg)
        for i, rec in enumerate(records, start=1):
            try:
                blocks += _run_section(rec, f"{i:02d}-{rec.name}", out_dir, svg)
            except UNEXPECTED as exc:  # a damaged file costs its run's section, not the report
                blocks += [Heading(rec.name), Note(f"Could not report this run: its files hold unexpected "
                                                   f"values ({describe(exc)}).")]
        title = "reslab report: " + (records[0].name if len(records) == 1 else f"{len(records)} runs")
        files.write_text(out_dir / MARKDOWN, to_markdown(title, blocks))
        files.write_text(out_dir / HTML, to_html(title, blocks, out_dir))
        written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
        files.write_json(out_dir / NUMBERS, {"format": REPORT_FORMAT, "runs": [r.numbers() for r in records],
                                             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": written})
    except OSError as exc:
        raise ReportError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    return out_dir


def prepare_out_dir(out: str | Path | None) -> Path:
    """A new folder under reports/, or `out` when it is new, empty, or an earlier reslab report (cleared)."""
    try:
        if out is None:
            return RunFolder.create("reports", "report").path  # never an existing folder
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ReportError(f"--out {out} is a file, not a folder")
        if path.is_dir() and any(path.iterdir()):
            _clear_previous_report(path)
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError as exc:
        raise ReportError(f"cannot write the report to {out or 'reports/'}: {exc.strerror or exc}") from None


def _clear_previous_report(path: Path) -> None:
    try:
        previous = json.loads((path / NUMBERS).read_text())
    except (OSError, ValueError):
        previous = None
    if not isinstance(previous, dict) or previous.get("format") != REPORT_FORMAT:
        raise ReportError(f"--out {path} already holds files that are not a reslab report; "
                          "give a new or empty folder")
    for name in [*previous.get("files", []), NUMBERS]:
        target = (path / name).resolve()
        if path.resolve() in target.parents and target.is_file():
            target.unlink()


# ----------------------------------------------------------------------------- sections


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _num(x: Any, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def _epochs(n: dict[str, Any]) -> str:
    planned = n["planned_epochs"]
    return str(n["epochs"]) if n["status"] == "finished" or planned is None else f"{n['epochs']} of {planned}"


def _short_dataset(spec: Any) -> str:
    """imagefolder:/long/path/cifar10-jpeg.zip -> imagefolder:cifar10-jpeg.zip (the run section has the path)."""
    kind, sep, path = str(spec).partition(":")
    return f"{kind}:{Path(path).name}" if sep and path else str(spec)


def comparison_row(rec: RunRecord) -> list[str]:
    try:
        n = rec.numbers()
        return [n["run"], str(n["model"]), _short_dataset(n["dataset"]), _num(n["params"], ","), _epochs(n),
                _pct(n["best_val_acc"]), _num(n["best_epoch"], "d"), _pct(n["test_acc"]),
                _num(n["train_seconds"], ".1f"), _num(n["samples_per_s"], ",.0f"), n["status"]]
    except UNEXPECTED:
        return [rec.name, *["—"] * (len(COMPARISON) - 2), "unreadable"]


def _overview(records: list[RunRecord], out_dir: Path, svg: bool) -> list[Block]:
    blocks: list[Block] = [Paragraph(
        f"{len(records)} run{'s' * (len(records) != 1)}, built {time.strftime('%Y-%m-%d %H:%M')} from the files "
        "in the run folders only (rebuild it at any time with reslab report). Accuracies are on the "
        "validation split (best epoch) and the test set (final model); train time excludes evaluation.")]
    partial = [r for r in records if r.state != "finished"]
    if partial:
        blocks.append(Note(f"{len(partial)} of {len(records)} runs did not finish: "
                           + ", ".join(f"{r.name} ({r.state})" for r in partial) + "."))
    if len(records) < 2:
        return blocks
    blocks += [Heading("Comparison"),
               Table(COMPARISON, [comparison_row(r) for r in records],
                     numeric=[False, False, False, True, True, True, True, True, True, True, False])]
    curves = [(r.name + ("" if r.finished else f" ({r.state})"), r.history) for r in records if r.history]
    if curves:
        comparison = _figure("comparison.png")
        plots.plot_comparison(curves, out_dir / comparison, svg)
        blocks.append(Figure(comparison, "Training loss and validation accuracy per epoch, all runs."))
    return blocks


def _describe(rec: RunRecord) -> str:
    n, env = rec.numbers(), rec.env
    parts = [f"Model {n['model']}" + (f" ({n['params']:,} parameters)" if n["params"] is not None else "")
             + f" on {n['dataset']}, {_epochs(n)} epochs"]
    optim = rec.config.get("optim") if isinstance(rec.config.get("optim"), dict) else {}
    if optim:
        parts.append(f"{optim.get('name')} lr {optim.get('lr')}, batch {rec.setting('data', 'batch_size')}, "
                     f"seed {rec.setting('train', 'seed')}")
    if env:
        parts.append(f"device {env.get('device')}, torch {env.get('torch')}, started {env.get('started')}"
                     + (f", commit {str(env['git_commit'])[:10]}{' (dirty)' * bool(env.get('git_dirty'))}"
                        if env.get("git_commit") else ""))
    if rec.folder.tensorboard.is_dir():
        parts.append(f"TensorBoard logs in {rec.folder.tensorboard}")
    if rec.wandb.get("id"):
        parts.append(f"W&B run {rec.wandb['id']} ({rec.wandb.get('mode')}"
                     + (f"; upload with: wandb sync {rec.wandb.get('dir')})" if rec.wandb.get("mode") == "offline"
                        else ")"))
    return "; ".join(parts) + f". Folder: {rec.path}"


def _summary_table(rec: RunRecord) -> Table:
    n, s, last = rec.numbers(), rec.summary or {}, rec.history[-1] if rec.history else {}
    rows = [("test accuracy", _pct(n["test_acc"])), ("test loss (nats)", _num(n["test_loss"], ".4f")),
            ("best validation accuracy", _pct(n["best_val_acc"]) + (f" (epoch {n['best_epoch']})"
                                                                  if n["best_epoch"] is not None else "")),
            ("last validation accuracy", _pct(last.get("val_acc"))),
            ("last training loss (nats)", _num(last.get("train_loss"), ".4f")),
            ("last training accuracy", _pct(last.get("train_acc"))),
            ("epochs", _epochs(n)), ("steps", _num(s.get("steps", last.get("step")), ",")),
            ("train time (s)", _num(n["train_seconds"], ".1f")), ("samples/s", _num(n["samples_per_s"], ",.0f"))]
    return Table(["metric", "value"], rows, numeric=[False, True])


def _figure(name: str) -> str:
    """A figure's path relative to the report folder (as the report's Markdown links it)."""
    return f"{FIGURES}/{name}"


def _run_section(rec: RunRecord, stem: str, out_dir: Path, svg: bool) -> list[Block]:
    blocks: list[Block] = [Heading(rec.name)]
    note = rec.state_note()
    if note:
        blocks.append(Note(note))
    blocks += [Paragraph(_describe(rec)), _summary_table(rec)]
    run = rec.folder
    if rec.history:
        curves = _figure(f"{stem}-curves.png")
        plots.plot_curves(rec.history, out_dir / curves, steps=rec.steps, svg=svg)
        blocks.append(Figure(curves, "Loss and accuracy per epoch"
                             + (f" (faint: training loss every logged step, from {run.steps.name})" if rec.steps
                                else "") + ("" if rec.finished else f"; partial ({rec.state})") + "."))
    else:
        blocks.append(Paragraph(f"No epoch finished: {run.metrics.name} has no rows yet, so there are no curves."))
    if rec.classification_report:
        blocks += [Heading("Classification report (test set)", 3), Preformatted(rec.classification_report)]
    s = rec.summary or {}
    if s.get("confusion_matrix") and s.get("classes"):
        confusion = _figure(f"{stem}-confusion.png")
        plots.plot_confusion(s["confusion_matrix"], s["classes"], out_dir / confusion, svg)
        blocks.append(Figure(confusion, "Confusion matrix of the final model on the test set: "
                             "counts in the cells, colour = fraction of the true class."))
    for png in rec.gradflow_figures:
        copy = _figure(f"{stem}-{png.name}")
        shutil.copyfile(png, out_dir / copy)
        blocks.append(Figure(copy, f"Gradient flow recorded during training ({png.name} from the run folder, "
                             f"drawn by reslab's gradient-flow recorder from {run.gradflow.name})."))
    if rec.problems:
        blocks.append(Note("Unreadable files: " + "; ".join(rec.problems) + "."))
    return blocks
