"""The gradient-flow statistics table and sentences, from its rows (gradflow-stats.csv read back works too).

Every number in a sentence is computed from the rows; nothing is asserted that the measurement did not show.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
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


def describe(rows: Sequence[Mapping[str, Any]]) -> list[str]:
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


def _depth_sentences(rows: Sequence[Mapping[str, Any]]) -> list[str]:
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
