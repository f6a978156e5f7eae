"""`reslab gradflow`'s summary: the statistics table, the CSVs, figures and sentences computed from the numbers.

Every number in a sentence is computed from the rows (gradflow-stats.csv read back works too); nothing is
asserted that the measurement did not show.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

import numpy as np

from reslab.analyze.gradflow import GradflowMeasurement, GradflowOptions, ModelResult
from reslab.analyze.gradflow_updates import (INIT, STALL, STATS_UPDATE_FIELDS, UPDATE_FIELDS, UPDATES_CSV,
                                             describe_updates, init_rows, row_ratio, stats_columns, training_rows)
from reslab.analyze.registry import Common
from reslab.analyze.targets import NOTEBOOK_KERNEL, family_of, model_spec, skip_of, twin_pairs
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.gradflow import LAYER_FIELDS, csv_number
from reslab.plots import Rows, plot_depth, plot_param_boxplots, plot_training_heatmap

STATS_CSV, BOXPLOTS_PNG, DEPTH_PNG = "gradflow-stats.csv", "gradflow-boxplots.png", "gradflow-depth.png"  # the lab
# report reads these three, and the update sizes' figures at init and while training:
UPDATES_PNG, TRAINING_UPDATES_PNG = "gradflow-updates.png", "gradflow-updates-training.png"
PARAM_FIELDS = ["model", "at", "batch", "param", "grad_norm"]
STATS_FIELDS = ["model", "at", "model_spec", "family", "depth", "skip", "pair", "batches", "param_tensors", "mean",
                "std", "median", "min", "max", "layers", "first_layer", "last_layer", "first_grad", "last_grad",
                "first_to_last", "loss", *STATS_UPDATE_FIELDS]


# ----------------------------------------------------------------------------- numbers


def pairs(results: Sequence[ModelResult]) -> dict[str, str]:
    """label -> 'plain vs residual' title, for models whose configs differ only in model.residual."""
    return twin_pairs([r.target for r in results])


def update_rows(results: Sequence[ModelResult], recorded: Mapping[str, Rows]) -> list[dict[str, Any]]:
    """gradflow-updates.csv: each model's init step, then each run's record during training, a row per layer."""
    return [row for r in results for row in init_rows(r.target.label, r.records, r.lr)] + [
        row for run, rows in recorded.items() for row in training_rows(run, rows)]


def stats_rows(results: Sequence[ModelResult], updates: Rows = ()) -> list[dict[str, Any]]:
    """The statistics table: per-parameter gradient norms (every named parameter x every batch, as the notebook
    computes its mean and std), the first weight layer's gradient norm over the last one's (batch means), and the
    update sizes of `updates` (`update_rows`: the model's init step, its run's record during training)."""
    pair_of = pairs(results)
    rows = []
    for r in results:
        run = r.target.run_dir.name if r.target.run_dir is not None else None
        init = [u for u in updates if u["phase"] == INIT and u["model"] == r.target.label]
        training = [u for u in updates if u["phase"] != INIT and run is not None and u["model"] == run]
        per_param = np.stack([rec.param_grad_norm for rec in r.records])  # (B, P)
        per_layer = np.stack([rec.grad_norm for rec in r.records])  # (B, L)
        first, last = float(np.nanmean(per_layer[:, 0])), float(np.nanmean(per_layer[:, -1]))
        names = r.records[0].layer_names
        cfg = r.target.cfg
        rows.append({"model": r.target.label, "at": r.target.at, "model_spec": model_spec(cfg),
                     "family": family_of(cfg), "depth": cfg.model.args.get("depth", ""), "skip": skip_of(cfg),
                     "pair": pair_of.get(r.target.label, ""),
                     "batches": len(r.records), "param_tensors": per_param.shape[1],
                     "mean": float(per_param.mean()), "std": float(per_param.std()),
                     "median": float(np.median(per_param)), "min": float(per_param.min()),
                     "max": float(per_param.max()), "layers": len(names), "first_layer": names[0],
                     "last_layer": names[-1], "first_grad": first, "last_grad": last,
                     "first_to_last": first / last if last > 0 else float("nan"),
                     "loss": float(np.mean([rec.loss for rec in r.records])), **stats_columns(init, training)})
    return rows


# ----------------------------------------------------------------------------- words


def format_table(rows: Rows) -> str:
    width = max(len("model"), *(len(str(r["model"])) for r in rows))
    head = f"{'model':<{width}}  {'batches':>7}  {'tensors':>7}  " + "  ".join(
        f"{c:>9}" for c in ("mean", "std", "median", "min", "max", "first/last"))
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['model']:<{width}}  {r['batches']:>7}  {r['param_tensors']:>7}  " + "  ".join(
            f"{r[c]:>9.3g}" for c in ("mean", "std", "median", "min", "max", "first_to_last")))
    return "\n".join(lines)


def _factor(a: float, b: float) -> str:
    """How b compares with a, in words: '12.3x larger' / '4.5x smaller'."""
    if not (a > 0 and b > 0):
        return "not comparable"
    return f"{b / a:.3g}x larger" if b >= a else f"{a / b:.3g}x smaller"


def sentences(rows: Rows) -> list[str]:
    """Sentences computed from the table: each model's first-to-last ratio, what the skip does to it in
    each plain/residual pair, how it moves with depth, and the notebook's mean comparison."""
    by = {str(r["model"]): r for r in rows}
    out = [f"In {r['model']}, the gradient norm at the first weight layer ({r['first_layer']}) is "
           f"{r['first_to_last']:.3g}x that at the last ({r['last_layer']}), mean over {r['batches']} batches."
           for r in rows]
    done: set[str] = set()
    for r in rows:
        if r["pair"] and r["pair"] not in done:
            done.add(str(r["pair"]))
            plain, res = (by[name] for name in str(r["pair"]).split(" vs "))
            out.append(f"With the skip ({res['model']}) the first-to-last ratio is {res['first_to_last']:.3g}, "
                       f"without it ({plain['model']}) {plain['first_to_last']:.3g}: "
                       f"{_factor(plain['first_to_last'], res['first_to_last'])} with the skip; the mean "
                       f"per-parameter gradient norm is {res['mean']:.3g} against {plain['mean']:.3g}.")
    out += _depth_sentences(rows)
    if not done and len(rows) >= 2:
        base = rows[0]
        out += [f"Mean per-parameter gradient norm: {r['model']} {r['mean']:.3g} +/- {r['std']:.3g} against "
                f"{base['model']} {base['mean']:.3g} +/- {base['std']:.3g} ({_factor(base['mean'], r['mean'])})."
                for r in rows[1:]]
    return out


def _depth_sentences(rows: Rows) -> list[str]:
    """For models that differ only in depth (same skip), how the first-to-last ratio moves with it."""
    groups: dict[tuple[str, str, str], list[tuple[int, Mapping[str, Any]]]] = {}
    for r in rows:
        if str(r["depth"]).isdigit():
            groups.setdefault((str(r["family"]), str(r["skip"]), str(r["at"])), []).append((int(r["depth"]), r))
    out = []
    for members in groups.values():
        members.sort(key=lambda m: m[0])
        if len({d for d, _ in members}) < 2:
            continue
        skip = str(members[0][1]["skip"])
        who = {"yes": "With the skip", "no": "Without the skip"}.get(skip, f"For {members[0][1]['model']}")
        (d0, a), (d1, b) = members[0], members[-1]
        out.append(f"{who}, going from depth {d0} ({a['model']}) to depth {d1} ({b['model']}) the first-to-last "
                   f"ratio goes from {a['first_to_last']:.3g} to {b['first_to_last']:.3g} "
                   f"({_factor(a['first_to_last'], b['first_to_last'])}).")
    return out


def _kernel_notes(results: Sequence[ModelResult]) -> list[str]:
    """Which kernel size each seed-cnn used: the preset has 3, the notebook's Exercise 2 cell built it with 4."""
    notes = []
    for r in results:
        if r.target.cfg.model.name == "seed-cnn":
            size = r.target.cfg.model.args.get("size")
            why = ("as the notebook's Exercise 2 cell, where size=4 was left over from the cell before" if
                   size == NOTEBOOK_KERNEL else f"the notebook's Exercise 2 cell used {NOTEBOOK_KERNEL}: "
                   "--notebook-kernel builds it so")
            notes.append(f"{r.target.label} uses kernel size {size}; {why}.")
    return notes


def summary_text(results: Sequence[ModelResult], stats: Rows) -> str:
    """What `reslab gradflow` prints: each model with all its arguments, the table, then the sentences."""
    width = max(len(r.target.label) for r in results)
    lines = [f"{r.target.label:<{width}}  {r.target.at:<4}  {model_spec(r.target.cfg)}, {r.num_params:,} parameters"
             for r in results]
    lines += _kernel_notes(results)
    lines += ["", "Gradient L2 norm of every named parameter (biases and norm layers included) over every batch, as "
              "the notebook computes its mean and std;", "first/last: the first weight layer's gradient norm over "
              "the last one's (means over the batches).", format_table(stats), ""]
    updates = describe_updates(stats)
    if updates:
        lines += [f"Update sizes, ||W_after - W_before|| / ||W|| per step (a small gradient is not a small update: "
                  f"Adam rescales each step); a layer that moves by less than {STALL:g} of its norm per step does "
                  "not learn. The first/last gradient ratio above is descriptive only.", *updates, ""]
    return "\n".join(lines + sentences(stats))


# ----------------------------------------------------------------------------- the analysis


def summarise(measured: GradflowMeasurement, options: GradflowOptions, common: Common) -> Analysis:
    """The CSVs, figures (a heatmap per run folder that recorded its gradient flow in training) and summary."""
    results = measured.results
    param_rows = [{"model": r.target.label, "at": r.target.at, "batch": b + 1, "param": name,
                   "grad_norm": csv_number(v)} for r in results for b, rec in enumerate(r.records)
                  for name, v in zip(rec.param_names, rec.param_grad_norm)]
    layer_rows = [row for r in results for b, rec in enumerate(r.records)
                  for row in rec.layer_rows(model=r.target.label, at=r.target.at, batch=b + 1)]
    updates = update_rows(results, measured.recorded)
    stats = stats_rows(results, updates)
    figures = [Figure(BOXPLOTS_PNG, partial(plot_param_boxplots, param_rows)),
               Figure(DEPTH_PNG, lambda path, svg: plot_depth(
                   layer_rows, stats, path, metric="grad_norm", svg=svg, ylabel="gradient L2 norm of the layer's "
                   "weight", title="Gradient norm by depth (mean over batches, band: min to max)")),
               Figure("gradflow-output-std.png", lambda path, svg: plot_depth(
                   layer_rows, stats, path, metric="output_std", svg=svg, ylabel="std of the layer's output",
                   title="Layer responses by depth (std of each Linear/Conv output, before norm and activation)"))]
    figures += [Figure(f"gradflow-heatmap-{run}.png", partial(plot_training_heatmap, rows))
                for run, rows in measured.recorded.items()]
    figures += _update_figures(layer_rows, stats, measured.recorded)
    keys = ("mean", "std", "first_to_last", "loss", "first_update", "min_update", "train_min_update")
    findings = {f"{row['model']}.{key}": row[key] for row in stats for key in keys}
    return Analysis(
        text=summary_text(results, stats),
        tables=(Table(STATS_CSV, stats, STATS_FIELDS),
                Table("gradflow-layers.csv", layer_rows, ["model", "at", "batch", *LAYER_FIELDS]),
                Table("gradflow-params.csv", param_rows, PARAM_FIELDS),
                *([Table(UPDATES_CSV, updates, UPDATE_FIELDS)] if updates else [])),
        figures=tuple(sorted(figures, key=lambda f: f.name)),  # as listed before: by name
        settings={"at": list(options.at), "batches": options.batches, "seed": common.seed}, findings=findings,
        reference="the lab notebook's Exercise 2: gradient norms of the CNN and the ResNetCNN at initialisation")


def _update_figures(layer_rows: Rows, stats: Rows, recorded: Mapping[str, Rows]) -> list[Figure]:
    """Relative update and effective LR by depth at the init step (where one was taken), and the relative update per
    step by depth over each run's training record; a dotted line at the stall threshold."""
    per_step = [{**row, "relative_update": row_ratio(row, "update_norm", "weight_norm"),
                 "effective_lr": row_ratio(row, "update_norm", "grad_norm")}
                for row in layer_rows if str(row.get("update_norm", "")).strip()]
    figures = []
    stepped = {str(row["model"]) for row in per_step}
    init = [s for s in stats if str(s["model"]) in stepped]  # a checkpoint takes no step: no empty panel for it
    if per_step:
        figures += [Figure(UPDATES_PNG, lambda path, svg: plot_depth(
                        per_step, init, path, metric="relative_update", svg=svg, threshold=STALL,
                        ylabel="||W_after - W_before|| / ||W||", title="Relative update of one optimizer step at init "
                        f"by depth (band: min to max over batches; dotted: {STALL:g}, below it a layer does not "
                        "learn)")),
                    Figure("gradflow-effective-lr.png", lambda path, svg: plot_depth(
                        per_step, init, path, metric="effective_lr", svg=svg, ylabel="||W_after - W_before|| / ||g||",
                        title="Effective learning rate of one optimizer step at init, by depth"))]
    model_of = {str(r["train_run"]): r for r in stats if r.get("train_run")}
    runs = [{**row, "model": run} for run, rows in recorded.items() for row in rows if run in model_of]
    if runs:
        training = [{**row, "relative_update": row_ratio(row, "update_norm", "weight_norm")} for row in runs]
        panels = [{**model_of[run], "model": run} for run in dict.fromkeys(str(r["model"]) for r in runs)]
        figures.append(Figure(TRAINING_UPDATES_PNG, lambda path, svg: plot_depth(
            training, panels, path, metric="relative_update", svg=svg, threshold=STALL,
            ylabel="||W_after - W_before|| / ||W|| per step", title="Relative update per step while training, by "
            f"depth (mean over the recorded steps, band: min to max; dotted: {STALL:g})")))
    return figures
