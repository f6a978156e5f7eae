"""Conclusions computed from measured numbers: each comes with the table it was computed from.

Every number in a sentence is formatted by the same function as the table cell it comes from (or is a
threshold, listed), so a reader can find it in the table, and a test checks that. Nothing here is written in
advance: a sweep where the plain net wins gives sentences saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from reslab.report.document import Table

Rows = Sequence[Mapping[str, Any]]
CHANCE_MARGIN = 0.05  # "at chance": test accuracy below 1/classes + this


@dataclass(frozen=True)
class Finding:
    """Sentences and the table they were computed from; `thresholds` are the other numbers they may quote."""

    sentences: tuple[str, ...]
    table: Table
    caption: str
    thresholds: Mapping[str, str] = field(default_factory=dict)  # what -> the number as printed
    headline: tuple[str, ...] = ()  # the sentences the front page quotes (default: the first)

    @property
    def front(self) -> tuple[str, ...]:
        return self.headline or self.sentences[:1]


def num(value: Any) -> float:
    """A CSV cell as a float (nan when empty or not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def pp(x: float) -> str:
    """A difference of accuracies, in percentage points, signed."""
    return "n/a" if math.isnan(x) else f"{100 * x:+.1f} pp"


def loss(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def ci(lo: float, hi: float, fmt=pct) -> str:
    return f"{fmt(lo)} to {fmt(hi)}"


def _words(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ----------------------------------------------------------------------------- depth studies


def depth_study(aggregate: Rows, paired: Rows, *, depth_key: str, classes: int, what: str,
                depth_word: str = "depth") -> Finding:
    """Plain against residual over depth: trainability, the paired gap, and optimisation against overfitting."""
    chance = 1 / classes
    cell = {(str(r[depth_key]), str(r["model.residual"]).lower()): r for r in aggregate}
    depths = sorted({d for d, _ in cell}, key=num)
    pairs = {str(r[depth_key]): r for r in paired}
    header = [depth_word, "n", "plain test acc", "plain 95% CI", "residual test acc", "residual 95% CI",
              "plain train loss", "residual train loss", "residual - plain", "95% CI of the difference",
              "residual better (seeds)", "train loss residual - plain", "its 95% CI"]
    rows = []
    for d in depths:
        p, r, pr = cell.get((d, "false"), {}), cell.get((d, "true"), {}), pairs.get(d, {})
        rows.append([d, str(pr.get("n") or p.get("n") or r.get("n") or ""),
                     pct(num(p.get("test_acc_mean"))), ci(num(p.get("test_acc_ci_low")), num(p.get("test_acc_ci_high"))),
                     pct(num(r.get("test_acc_mean"))), ci(num(r.get("test_acc_ci_low")), num(r.get("test_acc_ci_high"))),
                     loss(num(p.get("final_train_loss_mean"))), loss(num(r.get("final_train_loss_mean"))),
                     pp(num(pr.get("test_acc_diff_mean"))),
                     ci(num(pr.get("test_acc_diff_ci_low")), num(pr.get("test_acc_diff_ci_high")), pp),
                     _wins(pr), loss(num(pr.get("final_train_loss_diff_mean"))),
                     ci(num(pr.get("final_train_loss_diff_ci_low")), num(pr.get("final_train_loss_diff_ci_high")), loss)])
    table = Table(header, rows, numeric=[True] * len(header))
    thresholds = {"chance": pct(chance + CHANCE_MARGIN), "ln(classes)": f"{math.log(classes):.2f}",
                  "classes": str(classes), "no difference": "0"}
    trains = _trainability(cell, depths, chance, what, depth_word, classes, "false")
    spread = _residual_range(cell, depths, what, depth_word)
    optimisation = _optimisation(cell, pairs, depths, what, depth_word)
    sentences = [trains, spread, *_gaps(pairs, depths, depth_word), *optimisation]
    return Finding(tuple(s for s in sentences if s), table,
                   f"Plain against residual {what}s over {depth_word} (test accuracy: mean over seeds, 95% t "
                   "interval; the difference is paired by seed)", thresholds,
                   headline=tuple(s for s in (trains, spread, *optimisation[:1]) if s))


def _wins(pr: Mapping[str, Any]) -> str:
    share, n = num(pr.get("test_acc_residual_wins")), num(pr.get("n"))
    return "" if math.isnan(share) or math.isnan(n) else f"{round(share * n):d} of {int(n)}"


def _trainability(cell: Mapping, depths: Sequence[str], chance: float, what: str, depth_word: str, classes: int,
                  side: str) -> str:
    at_chance = [d for d in depths if num(cell.get((d, side), {}).get("test_acc_mean")) < chance + CHANCE_MARGIN]
    name = f"{'plain' if side == 'false' else 'residual'} {what}"
    if not at_chance:
        accs = {d: num(cell.get((d, side), {}).get("test_acc_mean")) for d in depths}
        worst = min(accs, key=lambda d: accs[d])
        return (f"The {name} trains at every {depth_word} measured (none is at chance, below "
                f"{pct(chance + CHANCE_MARGIN)}): its lowest test accuracy is {pct(accs[worst])} at {depth_word} "
                f"{worst}.")
    first = at_chance[0]
    c = cell[(first, side)]
    tail = all(d in at_chance for d in depths[depths.index(first):])
    where = f"From {depth_word} {first} on" if tail else f"At {depth_word} {_words(at_chance)}"
    return (f"{where}, the {name} is at chance (test accuracy below {pct(chance + CHANCE_MARGIN)}): at {depth_word} "
            f"{first} it reaches {pct(num(c['test_acc_mean']))} (95% CI "
            f"{ci(num(c['test_acc_ci_low']), num(c['test_acc_ci_high']))}, n={c['n']}) and its training loss stays "
            f"at {loss(num(c['final_train_loss_mean']))} (chance level: ln {classes} = {math.log(classes):.2f}): "
            "it does not train.")


def _residual_range(cell: Mapping, depths: Sequence[str], what: str, depth_word: str) -> str:
    accs = {d: num(cell.get((d, "true"), {}).get("test_acc_mean")) for d in depths}
    accs = {d: a for d, a in accs.items() if not math.isnan(a)}
    if not accs:
        return ""
    lo, hi = min(accs, key=lambda d: accs[d]), max(accs, key=lambda d: accs[d])
    return (f"The residual {what} reaches between {pct(accs[lo])} ({depth_word} {lo}) and {pct(accs[hi])} "
            f"({depth_word} {hi}) test accuracy over every {depth_word} measured.")


def _gaps(pairs: Mapping[str, Mapping[str, Any]], depths: Sequence[str], depth_word: str) -> list[str]:
    better, worse, unclear = [], [], []
    for d in depths:
        pr = pairs.get(d)
        if pr is None:
            continue
        lo, hi = num(pr.get("test_acc_diff_ci_low")), num(pr.get("test_acc_diff_ci_high"))
        (better if lo > 0 else worse if hi < 0 else unclear).append(d)
    parts = []
    if better:
        parts.append(f"residual beats plain at {depth_word} {_words(better)}")
    if worse:
        parts.append(f"plain beats residual at {depth_word} {_words(worse)}")
    if unclear:
        parts.append(f"no difference is shown at {depth_word} {_words(unclear)}")
    if not parts:
        return []
    out = ["In test accuracy, " + "; ".join(parts) + " (paired 95% t interval of residual - plain excludes 0, or "
           "not)."]
    scored = [d for d in depths if d in pairs and not math.isnan(num(pairs[d].get("test_acc_diff_mean")))]
    if scored:
        big = max(scored, key=lambda d: abs(num(pairs[d]["test_acc_diff_mean"])))
        pr = pairs[big]
        out.append(f"The largest gap is at {depth_word} {big}: residual - plain = {pp(num(pr['test_acc_diff_mean']))} "
                   f"(95% CI {ci(num(pr['test_acc_diff_ci_low']), num(pr['test_acc_diff_ci_high']), pp)}; residual "
                   f"better in {_wins(pr)} seeds).")
    return out


def _optimisation(cell: Mapping, pairs: Mapping, depths: Sequence[str], what: str, depth_word: str) -> list[str]:
    """Where residual wins in test accuracy: is the plain net's training loss also worse (optimisation) or not?"""
    losing = [d for d in depths if d in pairs and num(pairs[d].get("test_acc_diff_ci_low")) > 0]
    if not losing:
        return []
    d = losing[-1]  # the deepest depth where the plain net loses
    pl, rl = num(cell.get((d, "false"), {}).get("final_train_loss_mean")), \
        num(cell.get((d, "true"), {}).get("final_train_loss_mean"))
    lo, hi = num(pairs[d].get("final_train_loss_diff_ci_low")), num(pairs[d].get("final_train_loss_diff_ci_high"))
    where = f"at {depth_word} {d}: {loss(pl)} against {loss(rl)}, paired difference CI {ci(lo, hi, loss)}"
    if hi < 0:
        return [f"Where the plain {what} loses, its training loss is higher too ({where}): it fails to optimise; it "
                "does not overfit. The notebook blamed depth failures on \"vanishing gradients or overfitting\"; "
                "overfitting would show as a low training loss with a low test accuracy, and that is not what was "
                "measured."]
    if lo > 0:
        return [f"Where the plain {what} loses in test accuracy, its training loss is lower ({where}): the gap is "
                "one of generalisation (overfitting), not of optimisation."]
    return [f"Where the plain {what} loses in test accuracy, its training loss does not differ clearly ({where}; "
            "the interval includes 0): these runs do not tell optimisation from overfitting."]
