"""The depth study as an init x norm x residual grid: the paired comparison inside each (init, norm) cell, which
effects hold across inits and which only under one, and the degradation of the plain net where it still learns.

A study without `model.init` or `model.norm` in its grid is one cell: the same sentences as `depth_study`'s.
Every number a sentence quotes is in its table, formatted by the same function (see conclude.py).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

from reslab.lab.conclude import CHANCE_MARGIN, Finding, _stat, _words, ci, depth_study, loss, num, pct, pp
from reslab.report.document import Table
from reslab.sweep import RESIDUAL, CellRow, PairRow

INIT, NORM = "model.init", "model.norm"
GROUP = (INIT, NORM)


def _group(values: Any) -> tuple[str, str]:
    return tuple("" if values.get(k) is None else str(values.get(k)) for k in GROUP)  # type: ignore[return-value]


def label(group: tuple[str, str]) -> str:
    """'init he, norm none' ('' when neither is swept)."""
    return ", ".join(f"{word} {v}" for word, v in zip(("init", "norm"), group) if v)


def split(aggregate: Sequence[CellRow], paired: Sequence[PairRow]) -> dict[tuple[str, str], tuple[list, list]]:
    """(init, norm) -> that cell's aggregate and paired rows."""
    out: dict[tuple[str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    for r in aggregate:
        out[_group(r.values)][0].append(r)
    for r in paired:
        out[_group(r.values)][1].append(r)
    return dict(sorted(out.items()))


def grid_findings(aggregate: Sequence[CellRow], paired: Sequence[PairRow], *, depth_key: str, classes: int, what: str,
                  depth_word: str = "depth") -> list[tuple[str, Finding]]:
    """(label, finding) per (init, norm) cell, then across inits (when more than one), then the degradation."""
    groups = split(aggregate, paired)
    out = []
    for g, (cells, pairs) in groups.items():
        name = f"{what} ({label(g)})" if len(groups) > 1 and label(g) else what
        out.append((label(g), depth_study(cells, pairs, depth_key=depth_key, classes=classes, what=name,
                                          depth_word=depth_word)))
    if len({g[0] for g in groups}) > 1:
        out.append(("across inits", across_inits(groups, depth_key=depth_key, classes=classes, what=what,
                                                 depth_word=depth_word)))
    out.append(("degradation", degradation(groups, depth_key=depth_key, classes=classes, what=what,
                                           depth_word=depth_word)))
    return out


def _verdict(pr: PairRow | None) -> str:
    lo, hi = _stat(pr, "test_acc_diff_ci_low"), _stat(pr, "test_acc_diff_ci_high")
    if math.isnan(lo) or math.isnan(hi):
        return ""
    return "residual better" if lo > 0 else "plain better" if hi < 0 else "no difference shown"


def _by_depth(cells: Sequence[CellRow], pairs: Sequence[PairRow], depth_key: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in cells:
        if isinstance(r.values.get(RESIDUAL), bool):
            out[str(r.values.get(depth_key))][r.values[RESIDUAL]] = r
    for r in pairs:
        out[str(r.values.get(depth_key))]["pair"] = r
    return out


def across_inits(groups: dict, *, depth_key: str, classes: int, what: str, depth_word: str) -> Finding:
    """Per norm and depth measured under two inits or more: does the paired effect, and the plain net's training,
    hold under every init, or only under one?"""
    floor = 1 / classes + CHANCE_MARGIN
    rows, held, differs, chance = [], defaultdict(list), [], []
    for norm in sorted({g[1] for g in groups}):
        inits = {g[0]: _by_depth(*groups[g], depth_key) for g in groups if g[1] == norm}
        depths = sorted(set.intersection(*(set(d) for d in inits.values())), key=num) if len(inits) > 1 else []
        for d in depths:
            verdicts, learns = {}, {}
            for init, by in inits.items():
                p, r, pr = by[d].get(False), by[d].get(True), by[d].get("pair")
                verdicts[init] = _verdict(pr)
                learns[init] = _stat(p, "test_acc_mean")
                rows.append([norm or "-", d, init, pct(_stat(p, "test_acc_mean")), pct(_stat(r, "test_acc_mean")),
                             pp(_stat(pr, "test_acc_diff_mean")),
                             ci(_stat(pr, "test_acc_diff_ci_low"), _stat(pr, "test_acc_diff_ci_high"), pp,
                                n=pr.n if pr else None),
                             verdicts[init], "no" if learns[init] < floor else "yes"])
            where = f"norm {norm}, " if norm else ""
            if len(set(verdicts.values())) == 1 and all(verdicts.values()):
                held[(where, next(iter(verdicts.values())))].append(d)
            elif all(verdicts.values()):
                differs.append(f"At {where}{depth_word} {d} the comparison depends on the init: " + "; ".join(
                    f"{v} under {i}" for i, v in verdicts.items()) + ".")
            stuck = [i for i, a in learns.items() if a < floor]
            if stuck and len(stuck) < len(learns):
                ok = [i for i in learns if i not in stuck]
                chance.append(f"At {where}{depth_word} {d} the plain {what} is at chance under {_words(stuck)} ("
                              + ", ".join(pct(learns[i]) for i in stuck) + f") but learns under {_words(ok)} ("
                              + ", ".join(pct(learns[i]) for i in ok) + "): its failure there is one of the init, "
                              "not of depth alone.")
    inits = sorted({g[0] for g in groups})
    hold = [f"{'With ' + w[:-2] + ': ' if w else ''}{v} at {depth_word} {_words(ds)} under every init measured "
            f"({_words(inits)})." for (w, v), ds in held.items()]
    sentences = chance + differs + hold
    if not sentences:
        sentences = [f"No {depth_word} was measured under two inits with the same norm: nothing can be said about "
                     "the init here."]
    table = Table(["norm", depth_word, "init", "plain test acc", "residual test acc", "residual - plain",
                   "95% CI of the difference", "paired verdict", "plain learns"], rows,
                  numeric=[False, True, False, True, True, True, True, False, False])
    return Finding(tuple(sentences), table, f"Plain against residual {what}s under each init (mean over seeds; the "
                   "difference paired by seed, 95% t interval)", {"chance": pct(floor), "no difference": "0"},
                   headline=tuple((chance + differs)[:2]) or tuple(hold[:1]))


def degradation(groups: dict, *, depth_key: str, classes: int, what: str, depth_word: str) -> Finding:
    """He et al.'s degradation where the plain net still learns: does its training loss (error) rise with depth?"""
    floor = 1 / classes + CHANCE_MARGIN
    rows, sentences = [], []
    for g, (cells, pairs) in groups.items():
        by = _by_depth(cells, pairs, depth_key)
        depths = sorted(by, key=num)
        learning = [d for d in depths if _stat(by[d].get(False), "test_acc_mean") >= floor]
        name = f"plain {what}" + (f" ({label(g)})" if label(g) else "")
        for d in depths:
            p = by[d].get(False)
            n = p.n if p else None
            err = [1 - _stat(p, k) for k in ("final_train_acc_mean", "final_train_acc_ci_high",
                                               "final_train_acc_ci_low")]
            rows.append([label(g) or "-", d, "yes" if d in learning else "no",
                         loss(_stat(p, "final_train_loss_mean")),
                         ci(_stat(p, "final_train_loss_ci_low"), _stat(p, "final_train_loss_ci_high"), loss, n=n),
                         pct(err[0]), ci(err[1], err[2], n=n), pct(_stat(p, "test_acc_mean")),
                         ci(_stat(p, "test_acc_ci_low"), _stat(p, "test_acc_ci_high"), n=n)])
        if len(learning) < 2:
            sentences.append(f"The {name} learns at fewer than two {depth_word}s measured: no degradation can be "
                             "measured where it still learns.")
            continue
        a, b = by[learning[0]][False], by[learning[-1]][False]
        trail = " -> ".join(loss(_stat(by[d][False], "final_train_loss_mean")) for d in learning)
        tests = " -> ".join(pct(_stat(by[d][False], "test_acc_mean")) for d in learning)
        where = (f"Where the {name} still learns ({depth_word} {_words(learning)}), its training loss goes {trail} "
                 f"and its test accuracy {tests}")
        rises = _stat(b, "final_train_loss_ci_low") > _stat(a, "final_train_loss_ci_high")
        falls = _stat(b, "test_acc_ci_high") < _stat(a, "test_acc_ci_low")
        if rises:
            sentences.append(f"{where}: the deeper plain net has the higher training loss (the 95% intervals at "
                             f"{depth_word} {learning[0]} and {learning[-1]} do not overlap), He et al.'s degradation. "
                             "A deeper net could copy the shallower one, so this is a failure to optimise, not "
                             "overfitting.")
        elif falls:
            sentences.append(f"{where}: test accuracy falls while the training loss does not rise: a failure to "
                             "generalise (overfitting), not of optimisation.")
        else:
            sentences.append(f"{where}: the 95% intervals overlap; no degradation is shown at these seeds.")
    table = Table(["cell", depth_word, "plain learns", "plain train loss", "its 95% CI", "plain train error",
                   "its 95% CI", "plain test acc", "its 95% CI"], rows,
                  numeric=[False, True, False, True, True, True, True, True, True])
    return Finding(tuple(sentences), table, f"The plain {what}s' training loss and error over {depth_word} (mean "
                   "over seeds, 95% t intervals): degradation is asked where the plain net learns",
                   {"chance": pct(floor)})
