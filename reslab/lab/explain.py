"""Why residual nets train: gradient flow over depth, and the instruments' analysis folders, as report sections."""

from __future__ import annotations

import math
from typing import Any

from reslab.lab.conclude import Finding, Rows, num
from reslab.report.document import Heading, Table

VANISH = 0.1  # first-layer gradient below this fraction of the last layer's: the gradient vanishes toward the input
EXPLODE = 10.0  # above this many times: it explodes


def _r(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3g}"


def _flow(ratio: float) -> str:
    if math.isnan(ratio):
        return "was not measured"
    if ratio < VANISH:
        return "vanishes toward the input"
    if ratio > EXPLODE:
        return "explodes toward the input"
    return "reaches the input at a similar size"


def gradient_depth(stats: Rows) -> Finding:
    """First-layer over last-layer gradient norm, plain against residual, at init and trained, over depth."""
    cell = {(str(r.get("depth")), str(r.get("skip")), str(r.get("at"))): num(r.get("first_to_last")) for r in stats}
    depths = sorted({d for d, _, _ in cell if d}, key=num)
    points = [p for p in ("init", "last") if any(k[2] == p for k in cell)]
    header = ["depth"] + [f"{side} {'at init' if p == 'init' else 'trained'}" for p in points
                          for side in ("plain", "residual")]
    rows = [[d] + [_r(cell.get((d, skip, p), math.nan)) for p in points for skip in ("no", "yes")] for d in depths]
    table = Table(header, rows, numeric=[True] * len(header))
    caption = ("Gradient flow: the first weight layer's gradient norm over the last one's (mean over batches), "
               "fair MLP twins, seed 0")
    thresholds = {"vanish": _r(VANISH), "explode": _r(EXPLODE)}
    if not depths:
        return Finding(("No gradient-flow measurement over depth was found.",), table, caption, thresholds)
    lo, hi = depths[0], depths[-1]
    plain = [cell.get((d, "no", "init"), math.nan) for d in (lo, hi)]
    res = [cell.get((d, "yes", "init"), math.nan) for d in (lo, hi)]
    sentences = [f"At initialisation, the plain MLP's first layer gets {_times(plain[1], hi)} ({_r(plain[0])} times "
                 f"at depth {lo}): its gradient {_flow(plain[1])}; the residual twin's ratio "
                 f"is {_r(res[1])} at depth {hi} ({_r(res[0])} at depth {lo}): its gradient {_flow(res[1])} "
                 f"(thresholds: below {_r(VANISH)} vanishes, above {_r(EXPLODE)} explodes)."]
    sentences += [_onset(name, [(d, cell.get((d, skip, "init"), math.nan)) for d in depths])
                  for name, skip in (("plain MLP", "no"), ("residual MLP", "yes"))]
    return Finding(tuple(sentences), table, caption, thresholds)


def _times(ratio: float, depth: str) -> str:
    """'0.042 times the gradient of its last at depth 8'; an exact 0 said as such (nothing reaches the first layer)."""
    if ratio == 0:
        return f"no gradient at all at depth {depth}, exactly 0 times its last layer's"
    return f"{_r(ratio)} times the gradient of its last at depth {depth}"


def _onset(name: str, ratios: list[tuple[str, float]]) -> str:
    """From which depth on the gradient vanishes at initialisation, or that it never does over the depths measured."""
    measured = [(d, r) for d, r in ratios if not math.isnan(r)]
    if not measured:
        return f"The {name}'s gradient flow at initialisation was not measured."
    first = next((i for i, (_, r) in enumerate(measured) if r < VANISH), None)
    if first is not None and all(r < VANISH for _, r in measured[first:]):
        d, r = measured[first]
        return (f"The {name}'s gradient vanishes toward the input at initialisation from depth {d} on "
                f"(ratio {_r(r)} there, below {_r(VANISH)}).")
    if first is not None:
        low = [d for d, r in measured if r < VANISH]
        return f"The {name}'s gradient vanishes at initialisation at depth {', '.join(low)} but not at every depth above."
    d, r = min(measured, key=lambda dr: dr[1])
    return (f"The {name}'s gradient does not vanish at initialisation at any depth measured (its lowest ratio: "
            f"{_r(r)}, at depth {d}).")


INSTRUMENTS = (("Lesion: deleting and reordering blocks", ("lesion-mlp", "lesion-conv")),
               ("Shattered gradients", ("shatter-mlp", "shatter-conv")),
               ("Loss landscapes", ("landscape-mlp", "landscape-conv", "landscape-conv-2d")),
               ("Block forms at initialisation", ("init-mlp", "init-conv")))  # section -> the lab stages behind it


def instrument_sections(folder: Any, doc: Any, first: int) -> list[str]:
    """A section per instrument the lab ran (numbered from `first`), as `reslab report` shows an analysis folder:
    the published reference, the summary computed from its numbers, its findings, figures and tables."""
    from reslab.report.analyses import analysis_blocks

    titles = []
    for title, stages in INSTRUMENTS:
        paths = [folder.analysis(name) for name in stages if (folder.analysis(name) / "analysis.json").is_file()]
        if not paths:
            continue
        heading = f"{first + len(titles)}. {title}"
        titles.append(heading)
        doc.blocks.append(Heading(heading))
        for path in paths:
            doc.blocks += analysis_blocks(path, doc.out, level=3, svg=False)
    return titles
