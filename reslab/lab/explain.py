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
    sentences = [f"At initialisation, the plain MLP's first layer gets {_r(plain[1])} times the gradient of its last at "
                 f"depth {hi} ({_r(plain[0])} at depth {lo}): its gradient {_flow(plain[1])}; the residual twin's ratio "
                 f"is {_r(res[1])} at depth {hi} ({_r(res[0])} at depth {lo}): its gradient {_flow(res[1])} "
                 f"(thresholds: below {_r(VANISH)} vanishes, above {_r(EXPLODE)} explodes)."]
    return Finding(tuple(sentences), table, caption, thresholds)


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
