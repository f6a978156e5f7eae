"""The report's sections as document blocks: the overview with its comparison, and one section per run.

Every figure is drawn on its own: one that fails on odd values costs that figure and a note saying why,
not the run's section. Numbers are formatted by reslab.report.values, which shows a dash for anything
that is not a finite number, so a null (a diverged run) or a NaN never stops a section.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from reslab import plots
from reslab.config import flatten
from reslab.report.analyses import run_analyses
from reslab.report.document import Block, Figure, Heading, Note, Paragraph, Preformatted, Table
from reslab.report.figures import copied, drawn, figure_path, free_figure
from reslab.report.records import UNFINISHED, RunRecord
from reslab.report.values import (DASH, PLOT_LIMIT, confusion, file_stem, inline, is_real, num, pct, plot_label,
                                  plottable, scalar)
from reslab.runs import RunFolder

COMPARISON = ["run", "model", "init", "dataset", "params", "epochs", "best val acc", "best epoch", "test acc",
              "train time (s)", "samples/s", "status"]
NUMERIC = [False, False, False, False, True, True, True, True, True, True, True, False]  # right-aligned columns


def run_stem(index: int, rec: RunRecord) -> str:
    """The start of a run's figure names: its place in the report and its name made safe for a link."""
    return f"{index:02d}-{file_stem(rec.name)}"


def _show(value: Any, limit: int = 100) -> str:
    value = scalar(value)
    return DASH if value is None else inline(value, limit)


def _epochs(n: dict[str, Any]) -> str:
    planned, epochs = n["planned_epochs"], num(n["epochs"], "d")
    return epochs if n["status"] == "finished" or planned is None else f"{epochs} of {planned}"


def _short_dataset(spec: Any) -> str:
    """imagefolder:/long/path/cifar10-jpeg.zip -> imagefolder:cifar10-jpeg.zip (the run section has the path)."""
    kind, sep, path = _show(spec, 500).partition(":")
    return f"{kind}:{Path(path).name}" if sep and path else kind


def _init(rec: RunRecord) -> str:
    """What the run's weights started from (summary.json's init; for older runs, from its config)."""
    from reslab.models import init_of

    said = (rec.summary or {}).get("init")
    if isinstance(said, str) and said:
        return inline(said, 60)
    model = rec.config.get("model") if isinstance(rec.config, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        return DASH
    return inline(init_of(model["name"], model.get("args") if isinstance(model.get("args"), dict) else model), 60) \
        or DASH


def comparison_row(rec: RunRecord) -> list[str]:
    """A run's row of the comparison table; a run whose files hold values of the wrong types is unreadable."""
    try:
        if rec.error is not None:
            raise ValueError(rec.error)
        n = rec.numbers()
        return [n["run"], _show(n["model"]), _init(rec), _short_dataset(n["dataset"]), num(n["params"], ","), _epochs(n),
                pct(n["best_val_acc"]), num(n["best_epoch"], "d"), pct(n["test_acc"]),
                num(n["train_seconds"], ".1f"), num(n["samples_per_s"], ",.0f"),
                n["status"] + (f" (on {n['host']})" if n["host"] else "")]
    except Exception:  # whatever a damaged run holds, it costs its row, not the table
        return [rec.name, *[DASH] * (len(COMPARISON) - 2), "unreadable"]


def overview(records: list[RunRecord], out_dir: Path, svg: bool) -> list[Block]:
    blocks: list[Block] = [Paragraph(
        f"{len(records)} run{'s' * (len(records) != 1)}, built {time.strftime('%Y-%m-%d %H:%M')} from the files "
        "in the run folders only (rebuild it at any time with reslab report). Accuracies are on the "
        "validation split (best epoch) and the test set (final model); train time excludes evaluation.")]
    partial = [r for r in records if r.state in UNFINISHED]
    if partial:
        blocks.append(Note(f"{len(partial)} of {len(records)} runs did not finish: "
                           + ", ".join(f"{r.name} ({r.state})" for r in partial) + "."))
    diverged = [r for r in records if r.state == "diverged"]
    if diverged:
        blocks.append(Paragraph(f"{len(diverged)} of {len(records)} runs diverged (a result: see their sections): "
                                + ", ".join(r.name for r in diverged) + "."))
    if len(records) < 2:
        return blocks
    blocks += [Heading("Comparison"), Table(COMPARISON, [comparison_row(r) for r in records], NUMERIC)]
    blocks += differing_settings(records)
    curves = [(plot_label(r.name + ("" if r.finished else f" ({r.state})")), plottable(r.history)[0])
              for r in records if r.history]
    if curves:
        comparison = figure_path("comparison.png")
        drawn(blocks, "comparison figure", lambda: plots.plot_comparison(curves, out_dir / comparison, svg),
               Figure(comparison, "Training loss and validation accuracy per epoch, all runs."))
    return blocks


def _run_setting_line(rec: RunRecord) -> str:
    """The run in one line: model, data, epochs, optimizer, device, code version."""
    n, env, wandb = rec.numbers(), rec.env, rec.wandb
    params = f" ({num(n['params'], ',')} parameters)" if n["params"] is not None else ""
    parts = [f"Model {_show(n['model'])}{params} on {_show(n['dataset'], 500)}, {_epochs(n)} epochs"]
    optim = rec.config.get("optim") if isinstance(rec.config.get("optim"), dict) else {}
    if optim:
        parts.append(f"{_show(optim.get('name'))} lr {_show(optim.get('lr'))}, "
                     f"batch {_show(rec.setting('data', 'batch_size'))}, seed {_show(rec.setting('train', 'seed'))}")
    if env:
        commit = scalar(env.get("git_commit"))
        parts.append(f"device {_show(env.get('device'))}, torch {_show(env.get('torch'))}, "
                     f"started {_show(env.get('started'))}"
                     + (f", commit {_show(commit, 10)}{' (dirty)' * bool(env.get('git_dirty'))}" if commit else ""))
    if rec.folder.tensorboard.is_dir():
        parts.append(f"TensorBoard logs in {inline(rec.folder.tensorboard, None)}")
    if scalar(wandb.get("id")):
        mode = _show(wandb.get("mode"))
        parts.append(f"W&B run {_show(wandb['id'])} ({mode}" + (
            f"; upload with: wandb sync {_show(wandb.get('dir'), 1000)})" if mode == "offline" else ")"))
    return "; ".join(parts) + f". Folder: {inline(rec.path, None)}"


def _summary_table(rec: RunRecord) -> Table:
    n, s, last = rec.numbers(), rec.summary or {}, rec.history[-1] if rec.history else {}
    steps = s.get("steps") if is_real(s.get("steps")) else last.get("step")
    rows = [("test accuracy", pct(n["test_acc"])), ("test loss (nats)", num(n["test_loss"], ".4f")),
            ("best validation accuracy", pct(n["best_val_acc"]) + (f" (epoch {n['best_epoch']})"
                                                                 if n["best_epoch"] is not None else "")),
            ("last validation accuracy", pct(last.get("val_acc"))),
            ("last training loss (nats)", num(last.get("train_loss"), ".4f")),
            ("last training accuracy", pct(last.get("train_acc"))),
            ("epochs", _epochs(n)), ("steps", num(steps, ",")),
            ("train time (s)", num(n["train_seconds"], ".1f")), ("samples/s", num(n["samples_per_s"], ",.0f"))]
    if is_real(s.get("test_top5")):  # recorded with more than 10 classes
        rows.insert(1, ("test top-5 accuracy", pct(s["test_top5"])))
    for key, said in (("init_from", "started from"), ("teacher", "distilled from")):
        source = s.get(key)
        if isinstance(source, dict) and scalar(source.get("from")):
            rows.append((said, inline(source["from"], 200) + f" (sha256 {inline(source.get('sha256'), 100)[:12]})"))
    return Table(["metric", "value"], rows, numeric=[False, True])


def run_section(rec: RunRecord, stem: str, out_dir: Path, svg: bool) -> list[Block]:
    """A run's heading, state, description, summary table and figures; or why it could not be read."""
    blocks: list[Block] = [Heading(rec.name)]
    if rec.error is not None:
        return blocks + [Note(f"Could not read this run: {rec.error}.")]
    note = rec.state_note()
    if note:
        blocks.append(Note(note))
    blocks += [Paragraph(_run_setting_line(rec)), _summary_table(rec)]
    run = rec.folder
    if rec.history:
        curves = figure_path(f"{stem}-curves.png")
        (history, left_out), (steps, steps_left_out) = plottable(rec.history), plottable(rec.steps)
        drawn(blocks, "curves figure", lambda: plots.plot_curves(history, out_dir / curves, steps=steps, svg=svg),
               Figure(curves, "Loss and accuracy per epoch"
                      + (f" (faint: training loss every logged step, from {run.steps.name})" if rec.steps else "")
                      + ("" if rec.finished else f"; partial ({rec.state})")
                      + (f"; {left_out + steps_left_out} values beyond ±{PLOT_LIMIT:.0e} left out"
                         if left_out + steps_left_out else "") + "."))
    elif any(problem.startswith(run.metrics.name) for problem in rec.problems):
        blocks.append(Paragraph(f"No curves: {run.metrics.name} could not be read (see below)."))
    else:
        blocks.append(Paragraph(f"No epoch finished: {run.metrics.name} has no rows yet, so there are no curves."))
    if rec.classification_report:
        blocks += [Heading("Classification report (test set)", 3), Preformatted(rec.classification_report)]
    s = rec.summary or {}
    if s.get("confusion_matrix") and s.get("classes"):
        try:
            matrix, classes = confusion(s["confusion_matrix"], s["classes"])
        except ValueError as exc:
            blocks.append(Note(f"The confusion matrix is not drawn ({run.summary.name}: {exc})."))
        else:
            path = figure_path(f"{stem}-confusion.png")
            drawn(blocks, "confusion matrix", lambda: plots.plot_confusion(matrix, classes, out_dir / path, svg),
                   Figure(path, "Confusion matrix of the final model on the test set: "
                                "counts in the cells, colour = fraction of the true class."))
    for png in rec.gradflow_figures:
        copied(blocks, png, out_dir, f"{stem}-{png.stem}",
               f"Gradient flow recorded during training ({inline(png.name)} from the run folder, "
               f"drawn by reslab's gradient-flow recorder from {run.gradflow.name}).")
    if not rec.gradflow_figures and run.gradflow.is_file():  # a run that drew no figures (train.figures false)
        blocks += _gradflow_drawn(run, stem, out_dir, svg)
    if rec.problems:
        blocks.append(Note("Unreadable or damaged files: " + "; ".join(rec.problems) + "."))
    return blocks + run_analyses(run.analyses, out_dir, level=3, svg=svg)


def _gradflow_drawn(run: RunFolder, stem: str, out_dir: Path, svg: bool) -> list[Block]:
    """The run's gradient-flow heatmap drawn from its gradflow.csv, as its recorder would have drawn gradflow.png."""
    path, blocks = free_figure(out_dir, f"{stem}-{run.gradflow_png.stem}"), []

    def draw() -> None:
        if run.draw_gradflow(out_dir / path, svg=svg) is None:
            raise ValueError(f"{run.gradflow.name} holds no complete record")

    drawn(blocks, "gradient-flow figure", draw,
          Figure(path, f"Gradient flow recorded during training (drawn from {run.gradflow.name}, as reslab's "
                       f"gradient-flow recorder draws {run.gradflow_png.name}; this run drew no figures itself)."))
    return blocks


IGNORED_SETTINGS = ("name", "runs_dir", "data.data_dir", "train.device", "train.figures")  # not what a run computed


def differing_settings(records: list[RunRecord], most: int = 12) -> list[Block]:
    """A table of the config keys whose values differ between the runs (what the comparison compares)."""
    flat = [flatten(r.config) if isinstance(r.config, dict) else {} for r in records]
    keys = sorted({k for f in flat for k in f if k not in IGNORED_SETTINGS
                   and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1})
    if len(records) < 2 or not keys:
        return []
    shown = keys[:most]
    rows = [[rec.name, *[_show(json.dumps(f.get(k), default=str) if isinstance(f.get(k), (list, dict))
                                else f.get(k, DASH)) for k in shown]] for rec, f in zip(records, flat)]
    note = [] if len(keys) <= most else [Note(f"{len(keys) - most} more settings differ: {', '.join(keys[most:])}.")]
    return [Paragraph("Settings that differ between the runs:"), Table(["run", *shown], rows, [False] * (len(shown) + 1)),
            *note]
