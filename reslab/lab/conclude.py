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
from reslab.sweep import RESIDUAL, CellRow, PairRow

Rows = Sequence[Mapping[str, Any]]  # rows of an analysis' CSV (gradflow-stats.csv), as strings
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
    """A cell or a typed value as a float (nan when empty, None or not a number)."""
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


def ci(lo: float, hi: float, fmt=pct, n: int | None = None) -> str:
    """An interval as words: never "11.3% to 11.3%" (identical values mean every seed gave the same number)."""
    if lo == hi:  # a zero-width t interval: no spread at all
        return f"{fmt(lo)} (all {n} seeds equal)" if n else f"{fmt(lo)} (all seeds equal)"
    if fmt(lo) == fmt(hi):
        return f"{fmt(lo)} (the interval is narrower than the rounding)"
    return f"{fmt(lo)} to {fmt(hi)}"


def sign_test(wins: int, n: int) -> str:
    """"k of n seeds" with its two-sided sign-test p (n of n at n=3 is p=0.25: three seeds cannot be significant)."""
    from scipy.stats import binomtest

    return f"{wins} of {n} (sign test p = {binomtest(wins, n, 0.5).pvalue:.2g})" if n else ""


def _words(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ----------------------------------------------------------------------------- depth studies


def _stat(row: CellRow | PairRow | None, name: str) -> float:
    """A statistic of a typed row as a float; nan when the row or the value is missing."""
    return num(row.stat(name)) if row is not None else math.nan


def depth_study(aggregate: Sequence[CellRow], paired: Sequence[PairRow], *, depth_key: str, classes: int, what: str,
                depth_word: str = "depth") -> Finding:
    """Plain against residual over depth: trainability, the paired gap, and optimisation against overfitting.

    Cells are keyed by (depth as printed, residual: bool)."""
    chance = 1 / classes
    cell = {(str(r.values.get(depth_key)), r.values.get(RESIDUAL)): r for r in aggregate
            if isinstance(r.values.get(RESIDUAL), bool)}
    depths = sorted({d for d, _ in cell}, key=num)
    pairs = {str(r.values.get(depth_key)): r for r in paired}
    header = [depth_word, "n", "plain test acc", "plain 95% CI", "residual test acc", "residual 95% CI",
              "plain train loss", "residual train loss", "residual - plain", "95% CI of the difference",
              "residual better (seeds)", "train loss residual - plain", "its 95% CI"]
    rows = []
    for d in depths:
        p, r, pr = cell.get((d, False)), cell.get((d, True)), pairs.get(d)
        n = next((x.n for x in (pr, p, r) if x is not None and x.n is not None), None)
        rows.append([d, "" if n is None else str(n),
                     pct(_stat(p, "test_acc_mean")), ci(_stat(p, "test_acc_ci_low"), _stat(p, "test_acc_ci_high"),
                                                        n=p.n if p else None),
                     pct(_stat(r, "test_acc_mean")), ci(_stat(r, "test_acc_ci_low"), _stat(r, "test_acc_ci_high"),
                                                        n=r.n if r else None),
                     loss(_stat(p, "final_train_loss_mean")), loss(_stat(r, "final_train_loss_mean")),
                     pp(_stat(pr, "test_acc_diff_mean")),
                     ci(_stat(pr, "test_acc_diff_ci_low"), _stat(pr, "test_acc_diff_ci_high"), pp),
                     _wins(pr), loss(_stat(pr, "final_train_loss_diff_mean")),
                     ci(_stat(pr, "final_train_loss_diff_ci_low"), _stat(pr, "final_train_loss_diff_ci_high"), loss)])
    table = Table(header, rows, numeric=[True] * len(header))
    thresholds = {"chance": pct(chance + CHANCE_MARGIN), "ln(classes)": f"{math.log(classes):.2f}",
                  "classes": str(classes), "no difference": "0"}
    trains = _trainability(cell, depths, chance, what, depth_word, classes, False)
    spread = _residual_range(cell, depths, what, depth_word)
    short = too_short(aggregate, classes, what)
    optimisation = [short] if short else _optimisation(cell, pairs, depths, what, depth_word)
    thresholds["half the chance loss"] = f"{math.log(classes) / 2:.2f}"
    sentences = [trains, spread, *_gaps(pairs, depths, depth_word), *optimisation]
    return Finding(tuple(s for s in sentences if s), table,
                   f"Plain against residual {what}s over {depth_word} (test accuracy: mean over seeds, 95% t "
                   "interval; the difference is paired by seed)", thresholds,
                   headline=tuple(s for s in (trains, spread, *optimisation[:1]) if s))


def too_short(aggregate: Sequence[CellRow], classes: int, what: str) -> str:
    """A sentence when no net of a study has learned enough to ask optimisation or overfitting (else "")."""
    losses = [x for x in (_stat(r, "final_train_loss_mean") for r in aggregate) if not math.isnan(x)]
    if not losses or min(losses) <= math.log(classes) / 2:
        return ""
    return (f"Too short to decide: no {what} of this study has halved the training loss of a constant prediction "
            f"(the lowest is {loss(min(losses))}; chance level ln {classes} = {math.log(classes):.2f}, half of it "
            f"{math.log(classes) / 2:.2f}), so these runs do not tell optimisation from overfitting; train longer.")


def _wins(pr: PairRow | None) -> str:
    share, n = num(pr.wins("test_acc")) if pr is not None else math.nan, num(pr.n if pr is not None else None)
    return "" if math.isnan(share) or math.isnan(n) else sign_test(round(share * n), int(n))


def _trainability(cell: Mapping, depths: Sequence[str], chance: float, what: str, depth_word: str, classes: int,
                  side: bool) -> str:
    if not depths:  # no cell with a readable depth and side (a damaged aggregate.csv): nothing to say
        return ""
    at_chance = [d for d in depths if _stat(cell.get((d, side)), "test_acc_mean") < chance + CHANCE_MARGIN]
    name = f"{'residual' if side else 'plain'} {what}"
    if not at_chance:
        accs = {d: _stat(cell.get((d, side)), "test_acc_mean") for d in depths}
        worst = min(accs, key=lambda d: accs[d])
        return (f"The {name} trains at every {depth_word} measured (none is at chance, below "
                f"{pct(chance + CHANCE_MARGIN)}): its lowest test accuracy is {pct(accs[worst])} at {depth_word} "
                f"{worst}.")
    first = at_chance[0]
    c = cell[(first, side)]
    tail = all(d in at_chance for d in depths[depths.index(first):])
    where = f"From {depth_word} {first} on" if tail else f"At {depth_word} {_words(at_chance)}"
    return (f"{where}, the {name} is at chance (test accuracy below {pct(chance + CHANCE_MARGIN)}): at {depth_word} "
            f"{first} it reaches {pct(_stat(c, 'test_acc_mean'))} (95% CI "
            f"{ci(_stat(c, 'test_acc_ci_low'), _stat(c, 'test_acc_ci_high'), n=c.n)}, n={c.n}) and its training loss stays "
            f"at {loss(_stat(c, 'final_train_loss_mean'))} (chance level: ln {classes} = {math.log(classes):.2f}): "
            "it does not train.")


def _residual_range(cell: Mapping, depths: Sequence[str], what: str, depth_word: str) -> str:
    accs = {d: _stat(cell.get((d, True)), "test_acc_mean") for d in depths}
    accs = {d: a for d, a in accs.items() if not math.isnan(a)}
    if not accs:
        return ""
    lo, hi = min(accs, key=lambda d: accs[d]), max(accs, key=lambda d: accs[d])
    return (f"The residual {what} reaches between {pct(accs[lo])} ({depth_word} {lo}) and {pct(accs[hi])} "
            f"({depth_word} {hi}) test accuracy over every {depth_word} measured.")


def _gaps(pairs: Mapping[str, PairRow], depths: Sequence[str], depth_word: str) -> list[str]:
    better, worse, unclear = [], [], []
    for d in depths:
        pr = pairs.get(d)
        if pr is None:
            continue
        lo, hi = _stat(pr, "test_acc_diff_ci_low"), _stat(pr, "test_acc_diff_ci_high")
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
    out = ["In test accuracy, " + "; ".join(parts) + " (a difference is shown where the paired 95% t interval of "
           "residual - plain excludes 0)."]
    scored = [d for d in depths if d in pairs and not math.isnan(_stat(pairs[d], "test_acc_diff_mean"))]
    if scored:
        big = max(scored, key=lambda d: abs(_stat(pairs[d], "test_acc_diff_mean")))
        pr = pairs[big]
        out.append(f"The largest gap is at {depth_word} {big}: "
                   f"residual - plain = {pp(_stat(pr, 'test_acc_diff_mean'))} "
                   f"(95% CI {ci(_stat(pr, 'test_acc_diff_ci_low'), _stat(pr, 'test_acc_diff_ci_high'), pp)}; residual "
                   f"better in {_wins(pr)} seeds).")
    return out


def _optimisation(cell: Mapping, pairs: Mapping, depths: Sequence[str], what: str, depth_word: str) -> list[str]:
    """Where residual wins in test accuracy: is the plain net's training loss also worse (optimisation) or not?"""
    losing = [d for d in depths if d in pairs and _stat(pairs[d], "test_acc_diff_ci_low") > 0]
    if not losing:
        return []
    d = losing[-1]  # the deepest depth where the plain net loses
    pl, rl = _stat(cell.get((d, False)), "final_train_loss_mean"), _stat(cell.get((d, True)), "final_train_loss_mean")
    lo, hi = _stat(pairs[d], "final_train_loss_diff_ci_low"), _stat(pairs[d], "final_train_loss_diff_ci_high")
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
