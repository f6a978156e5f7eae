"""Update sizes beside the gradient norms: how far each layer's weights move per step, and its effective LR.

A small gradient is not a small update: Adam divides each step by the gradient's running scale, and layers differ in
size (a 784x16 layer against a 16x10 one). What says whether a layer learns is how far a step moves its weights
relative to their size, ||W_after - W_before|| / ||W||. A layer stalls (does not learn) when that relative update is
below `STALL` per step (median over the steps measured): at that rate even 1,000 steps in one direction move its
weights by less than a tenth of their norm. The effective learning rate is ||W_after - W_before|| / ||dloss/dW||:
the step per unit of gradient (the LR itself for plain SGD's first step; far above it for Adam on a small gradient).

Two sources, both pure functions of rows: the init step (`reslab.analyze.gradflow` steps each batch's gradient once
at init, with the run's optimizer) and the run's own record during training (gradflow.csv).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from reslab.gradflow import GradRecord, csv_number

STALL = 1e-4  # a layer whose weights move by less than this fraction of their norm per step does not learn
UPDATES_CSV = "gradflow-updates.csv"
INIT, TRAINING = "init step", "training"  # the two phases of UPDATES_CSV's rows
UPDATE_FIELDS = ["model", "phase", "depth", "layer", "kind", "steps", "lr", "grad_norm", "weight_norm", "update_norm",
                 "relative_update", "min_relative_update", "effective_lr", "lr_units", "learns"]
STATS_UPDATE_FIELDS = ["lr", "first_update", "last_update", "min_update", "min_update_layer", "first_effective_lr",
                       "last_effective_lr", "train_run", "train_steps", "train_first_update", "train_min_update",
                       "train_min_update_layer"]  # gradflow-stats.csv's columns on update sizes

Rows = Sequence[Mapping[str, Any]]


def relative(update: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """||dW|| / ||W||; a zero weight (a zero-initialised layer) that moves: inf, that does not: NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = update / weight
    return np.where(weight > 0, ratio, np.where(update > 0, math.inf, math.nan))


def row_ratio(row: Mapping[str, Any], num: str, den: str) -> float:
    """`relative` of two columns of a CSV row (an empty cell is NaN)."""
    a, b = (float(row[k]) if str(row.get(k, "")).strip() else math.nan for k in (num, den))
    return float(relative(np.array(a), np.array(b)))


def learns(rel: float) -> str:
    """'yes' / 'no' by the stall threshold, '' where nothing was measured."""
    return "" if math.isnan(rel) else "yes" if rel >= STALL else "no"


def _median(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(np.median(kept)) if kept.size else math.nan


def _layer_row(model: str, phase: str, depth: int, layer: str, kind: str, lr: float, grad: np.ndarray,
               weight: np.ndarray, update: np.ndarray) -> dict[str, Any]:
    """One layer over its steps: medians per step, and the smallest relative update of any step."""
    rel = relative(update, weight)
    eff = relative(update, grad)  # the same guards: a zero gradient with a moving weight (weight decay) is inf
    lr_units = _median(eff) / lr if lr > 0 else math.nan
    kept = rel[~np.isnan(rel)]
    return {"model": model, "phase": phase, "depth": depth, "layer": layer, "kind": kind, "steps": len(update),
            "lr": csv_number(lr), "grad_norm": csv_number(_median(grad)), "weight_norm": csv_number(_median(weight)),
            "update_norm": csv_number(_median(update)), "relative_update": _median(rel),
            "min_relative_update": float(kept.min()) if kept.size else math.nan, "effective_lr": _median(eff),
            "lr_units": lr_units, "learns": learns(_median(rel))}


def init_rows(label: str, records: Sequence[GradRecord], lr: float) -> list[dict[str, Any]]:
    """A row per layer of the init step (each batch stepped once from the init weights); none without a step."""
    if math.isnan(lr) or not records or np.isnan(np.stack([r.update_norm for r in records])).all():
        return []
    first = records[0]
    stack = {key: np.stack([getattr(r, key) for r in records]) for key in ("grad_norm", "weight_norm", "update_norm")}
    return [_layer_row(label, INIT, i + 1, name, kind, lr, *(stack[k][:, i] for k in ("grad_norm", "weight_norm",
                                                                                      "update_norm")))
            for i, (name, kind) in enumerate(zip(first.layer_names, first.layer_kinds))]


def training_rows(run: str, recorded: Rows) -> list[dict[str, Any]]:
    """A row per layer of a run's gradflow.csv (every recorded step: update sizes of the run's own optimizer)."""
    layers: dict[int, list[Mapping[str, Any]]] = {}
    for row in recorded:
        layers.setdefault(int(row["depth"]), []).append(row)

    def column(rows: Rows, key: str) -> np.ndarray:
        return np.array([float(r[key]) if str(r.get(key, "")).strip() else math.nan for r in rows])

    out = []
    for depth in sorted(layers):
        rows = layers[depth]
        lr = float(np.nanmean(column(rows, "lr"))) if rows else math.nan
        out.append(_layer_row(run, TRAINING, depth, str(rows[0]["layer"]), str(rows[0]["kind"]), lr,
                              column(rows, "grad_norm"), column(rows, "weight_norm"), column(rows, "update_norm")))
    return out


def stats_columns(init: Rows, training: Rows) -> dict[str, Any]:
    """gradflow-stats.csv's update columns of one model: its init step's rows and its run's training rows."""
    out: dict[str, Any] = dict.fromkeys(STATS_UPDATE_FIELDS, math.nan)
    out |= {"min_update_layer": "", "train_run": "", "train_min_update_layer": "", "train_steps": ""}
    if init:
        low = _lowest(init)
        out |= {"lr": float(init[0]["lr"]), "first_update": init[0]["relative_update"],
                "last_update": init[-1]["relative_update"], "min_update": low["relative_update"],
                "min_update_layer": low["layer"], "first_effective_lr": init[0]["effective_lr"],
                "last_effective_lr": init[-1]["effective_lr"]}
    if training:
        low = _lowest(training)
        out |= {"train_run": training[0]["model"], "train_steps": training[0]["steps"],
                "train_first_update": training[0]["relative_update"],
                "train_min_update": low["relative_update"], "train_min_update_layer": low["layer"]}
    return out


def _lowest(rows: Rows) -> Mapping[str, Any]:
    """The layer with the smallest relative update (a layer not measured counts as none)."""
    measured = [r for r in rows if not math.isnan(float(r["relative_update"]))]
    return min(measured, key=lambda r: float(r["relative_update"])) if measured else rows[0]


# ----------------------------------------------------------------------------- words


def _g(x: Any) -> str:
    x = float(x) if str(x).strip() else math.nan
    return "n/a" if math.isnan(x) else f"{x:.3g}"


def verdict(rel: Any, layer: str) -> str:
    """'every layer moves by at least 1e-4 ...' or '<layer> moves by less than 1e-4 ...: it does not learn'."""
    x = float(rel) if str(rel).strip() else math.nan
    if math.isnan(x):
        return "no update was measured"
    if x < STALL:
        return (f"{layer} moves by less than {STALL:g} of its norm per step ({_g(x)}): by this measure it does not "
                "learn")
    return f"every layer moves by at least {STALL:g} of its norm per step (the least, {layer}: {_g(x)}): all learn"


def describe_updates(stats: Rows) -> list[str]:
    """Per model: the init step's relative updates and effective LRs (first and last layer, the least moving one),
    and during training what its run recorded; each sentence says the stall threshold it judges by."""
    out, runs = [], set()
    for r in stats:
        if _g(r.get("first_update", "")) != "n/a":
            out.append(f"In {r['model']}, one optimizer step at init (LR {_g(r['lr'])}, median over "
                       f"{r['batches']} batches) moves the first weight layer ({r['first_layer']}) by "
                       f"{_g(r['first_update'])} of its norm and the last ({r['last_layer']}) by "
                       f"{_g(r['last_update'])}; their effective learning rates ||dW||/||g|| are "
                       f"{_g(r['first_effective_lr'])} and {_g(r['last_effective_lr'])}: "
                       f"{verdict(r['min_update'], str(r['min_update_layer']))}.")
        run = str(r.get("train_run", ""))
        if run and run not in runs and _g(r.get("train_first_update", "")) != "n/a":
            runs.add(run)
            out.append(f"While run {run} trained ({r['train_steps']} recorded steps, median), its first "
                       f"layer moved by {_g(r['train_first_update'])} of its norm per step: "
                       f"{verdict(r['train_min_update'], str(r['train_min_update_layer']))}.")
    return out
