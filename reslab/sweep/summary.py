"""summary.txt: sentences computed from a sweep's numbers, each with its n and the rule that decided it.

Rules: a difference is called real when its 95% t interval excludes 0 (paired by seed for residual - plain, or
the sweep's other `pair`;
Welch's interval between the shallowest and the deepest cell for a trend with depth). When the plain net's
training loss rises with depth together with its test error, the deeper net fails to fit its own training
data: that is an optimisation problem, not overfitting (overfitting lowers the training loss).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

from reslab.sweep.spec import RESIDUAL, Pairing, SweepSpec, text
from reslab.intervals import welch_interval


def _num(x: float, signed: bool = False) -> str:
    return "n/a" if x is None or math.isnan(x) else (f"{x:+.4f}" if signed else f"{x:.4f}")


def _side(values: dict[str, Any]) -> str:
    return {True: "residual", False: "plain"}.get(values.get(RESIDUAL), "")


def _label(values: dict[str, Any], spec: SweepSpec, depth: str) -> str:
    """A line's name: plain or residual, and the other grid values besides depth."""
    rest = [k for k in spec.grid if k != depth]
    return ", ".join(_side(values) if k == RESIDUAL and _side(values) else f"{k}={text(values[k])}"
                     for k in rest) or "all runs"


def figure_series(per_cell: Sequence[dict[str, Any]], spec: SweepSpec, depth: str, metric: str) -> list[dict]:
    """A line per combination of the grid keys other than depth (plain dashed, residual solid)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in per_cell:
        groups[_label(cell["_values"], spec, depth)].append(cell)
    series = []
    for label, members in groups.items():
        members = sorted(members, key=lambda c: float(c["_values"][depth]))
        series.append({"label": label, "residual": members[0]["_values"].get(RESIDUAL),
                       "x": [float(c["_values"][depth]) for c in members],
                       "mean": [c[f"{metric}_mean"] for c in members],
                       "low": [c[f"{metric}_ci_low"] for c in members],
                       "high": [c[f"{metric}_ci_high"] for c in members],
                       "points": [(float(c["_values"][depth]), v) for c in members for v in c[f"_{metric}"]]})
    return series


def _counts(spec: SweepSpec, rows: Sequence[dict[str, Any]]) -> str:
    status = defaultdict(int)
    for row in rows:
        status[row["status"]] += 1
    shape = " x ".join([*(str(len(v)) for v in spec.grid.values()), *([str(len(spec.tune.values))] if spec.tune
                                                                      else []), f"{len(spec.seeds)} seeds"])
    parts = ", ".join(f"{n} {s}" for s, n in sorted(status.items()))
    return f"Sweep {spec.name}: {len(rows)} runs ({shape}); {parts}."


def _tune_lines(spec: SweepSpec, chosen: dict[str, Any]) -> list[str]:
    if spec.tune is None:
        return []
    lines = [f"{spec.tune.key} was tuned per cell over {', '.join(text(v) for v in spec.tune.values)} by the highest "
             f"mean {spec.tune.by} over seeds (validation split); chosen:"]
    ordered = sorted(spec.tune.values, key=lambda v: (float(v) if isinstance(v, (int, float)) else 0.0, text(v)))
    for cell, value in chosen.items():
        edge = len(ordered) > 1 and text(value) in (text(ordered[0]), text(ordered[-1]))
        lines.append(f"  {cell}: {text(value)}" + (" -- WARNING: at the edge of the values tried; the best value may "
                                                   "lie outside them" if edge else ""))
    return lines


def edge_warnings(spec: SweepSpec, chosen: dict[str, Any]) -> list[str]:
    """One line per cell whose chosen tune value is the smallest or largest tried."""
    return [line.strip() for line in _tune_lines(spec, chosen) if "WARNING" in line]


def _pair_lines(paired: Sequence[dict[str, Any]], pairing: Pairing) -> list[str]:
    a, b = pairing.words()
    lines, differ, same = [], [], []
    for pair in paired:
        where = pair["_group"] or "all cells"
        for metric, name in (("test_acc", "test accuracy"), ("final_train_loss", "final training loss")):
            mean, low, high = (pair[f"{metric}_diff_{k}"] for k in ("mean", "ci_low", "ci_high"))
            wins = round(pair[pairing.wins_column(metric)] * pair["n"])
            if math.isnan(low):
                verdict = "no interval with n=1"
            elif low > 0 or high < 0:
                verdict = "the interval excludes 0: they differ"
            else:
                verdict = "the interval includes 0: no difference shown"
            if metric == "test_acc" and not math.isnan(low):
                (differ if (low > 0 or high < 0) else same).append(where)
            lines.append(f"At {where}: {pairing.difference} {name} {_num(mean, True)} (95% t CI {_num(low, True)} to "
                         f"{_num(high, True)}, n={pair['n']} paired seeds; {b} better in {wins} of {pair['n']}); "
                         f"{verdict}.")
    if differ or same:
        lead = "Residual and plain test accuracy differ" if pairing.twins else \
            f"Test accuracy at {b} and at {a} differs"
        lines.insert(0, f"{lead} (95% paired t interval excludes 0) at: "
                        f"{'; '.join(differ) or 'none'}; no difference shown at: {'; '.join(same) or 'none'}.")
    return lines


def _trend_lines(per_cell: Sequence[dict[str, Any]], spec: SweepSpec, depth: str) -> list[str]:
    """Shallowest vs deepest cell of each line: training loss and test accuracy, Welch's 95% interval."""
    lines = []
    for series in figure_series(per_cell, spec, depth, "test_acc"):
        members = sorted((c for c in per_cell if _label(c["_values"], spec, depth) == series["label"] and c["n"] > 0),
                         key=lambda c: float(c["_values"][depth]))
        if len(members) < 2:
            continue
        first, last = members[0], members[-1]
        d0, d1 = text(first["_values"][depth]), text(last["_values"][depth])
        verdicts = {}
        for metric, name in (("final_train_loss", "final training loss"), ("test_acc", "test accuracy")):
            diff, low, high = welch_interval(first[f"_{metric}"], last[f"_{metric}"])
            verdicts[metric] = "n/a" if math.isnan(low) else "up" if low > 0 else "down" if high < 0 else "flat"
            lines.append(f"{series['label']}: {name} {_num(first[f'{metric}_mean'])} at {depth}={d0} (n={first['n']}) "
                         f"-> {_num(last[f'{metric}_mean'])} at {depth}={d1} (n={last['n']}); difference "
                         f"{_num(diff, True)} (95% Welch t CI {_num(low, True)} to {_num(high, True)}): "
                         f"{_trend_word(verdicts[metric])}.")
        if verdicts["final_train_loss"] == "up":
            lines.append(f"{series['label']}: the deeper net fits its own training data worse (training loss up, "
                         "interval excludes 0): this says optimisation, not overfitting.")
        elif verdicts["test_acc"] == "down":
            lines.append(f"{series['label']}: test accuracy falls with depth while the training loss does not rise: "
                         "consistent with overfitting, not an optimisation failure.")
    return lines


def _trend_word(verdict: str) -> str:
    return {"up": "rises (interval excludes 0)", "down": "falls (interval excludes 0)",
            "flat": "no change shown (interval includes 0)", "n/a": "no interval (n < 2)"}[verdict]


def summary_text(spec: SweepSpec, rows: Sequence[dict[str, Any]], per_cell: Sequence[dict[str, Any]],
                 paired: Sequence[dict[str, Any]], chosen: dict[str, Any], depth: str | None,
                 left_out: Sequence[str] = ()) -> str:
    lines = [_counts(spec, rows),
             "Intervals are 95% Student t intervals over seeds (scipy.stats.t); a difference is called real when its "
             "interval excludes 0. Diverged, failed and missing runs are left out of the means and counted above.", ""]
    if left_out:
        lines += [f"Left out of the means, though completed (runs whose numbers are damaged: {len(left_out)}; fix or "
                  "delete their summary.json and run the sweep again):", *(f"  {line}" for line in left_out), ""]
    if spec.tune:
        lines += [*_tune_lines(spec, chosen), ""]
    for cell in per_cell:
        lines.append(f"{cell['_cell']}: test accuracy {_num(cell['test_acc_mean'])} (95% CI "
                     f"{_num(cell['test_acc_ci_low'])} to {_num(cell['test_acc_ci_high'])}), final training loss "
                     f"{_num(cell['final_train_loss_mean'])}, n={cell['n']}"
                     + (f", {cell['n_diverged']} diverged" if cell["n_diverged"] else "") + ".")
    if paired and spec.pairing is not None:
        lines += ["", *_pair_lines(paired, spec.pairing)]
    if depth is not None:
        trend = _trend_lines(per_cell, spec, depth)
        lines += ["", *trend] if trend else []
    return "\n".join(lines) + "\n"
