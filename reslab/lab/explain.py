"""Why residual nets train: gradient flow over depth, and the instruments' analysis folders, as report sections."""

from __future__ import annotations

import math
from typing import Any

from reslab.analyze.gradflow_updates import STALL  # below it per step a layer does not learn: the instrument's words
from reslab.lab.conclude import Finding, Rows, num
from reslab.report.document import Heading, Table



def _r(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3g}"


def _learns(rel: float) -> str:
    if math.isnan(rel):
        return "was not measured"
    return "does not learn" if rel < STALL else "learns"


def gradient_depth(stats: Rows) -> Finding:
    """Whether the first layer learns, plain against residual, over depth: how far one optimizer step at init, and
    a step while training, moves its weights relative to their norm. The first-to-last gradient-norm ratio is
    kept beside it as a descriptive number: with Adam a small gradient is not a small update."""
    keys = {"step": "first_update", "train": "train_first_update", "ratio": "first_to_last"}
    cell = {(str(r.get("depth")), str(r.get("skip")), what): num(r.get(key)) for r in stats
            for what, key in keys.items() if str(r.get("at")) == "init"}
    depths = sorted({d for d, _, _ in cell if d}, key=num)
    header = ["depth"] + [f"{side} {what}" for what in ("step at init", "step in training", "grad ratio at init")
                          for side in ("plain", "residual")]
    rows = [[d] + [_r(cell.get((d, skip, what), math.nan)) for what in keys for skip in ("no", "yes")]
            for d in depths]
    table = Table(header, rows, numeric=[True] * len(header))
    caption = ("Gradient flow: how far a step moves the first weight layer, ||W_after - W_before|| / ||W|| (median "
               "over the init step's batches, and over the steps recorded while training), and, descriptive only, its "
               "gradient norm over the last layer's at init; fair MLP twins, seed 0")
    thresholds = {"stall": f"{STALL:g}"}
    if not depths:
        return Finding(("No gradient-flow measurement over depth was found.",), table, caption, thresholds)
    lo, hi = depths[0], depths[-1]
    step = {side: [cell.get((d, skip, "step"), math.nan) for d in (lo, hi)] for side, skip in (("p", "no"),
                                                                                                  ("r", "yes"))}
    sentences = [f"At initialisation, one optimizer step moves the plain MLP's first layer by {_r(step['p'][1])} of "
                 f"its norm at depth {hi} ({_r(step['p'][0])} at depth {lo}): it {_learns(step['p'][1])}; the residual "
                 f"twin's by {_r(step['r'][1])} ({_r(step['r'][0])} at depth {lo}): it {_learns(step['r'][1])} "
                 f"(a layer that moves by less than {STALL:g} of its norm per step does not learn)."]
    sentences += [_onset(name, [(d, cell.get((d, skip, "step"), math.nan)) for d in depths], "at initialisation")
                  for name, skip in (("plain MLP", "no"), ("residual MLP", "yes"))]
    trained = [[(d, cell.get((d, skip, "train"), math.nan)) for d in depths] for skip in ("no", "yes")]
    if any(not math.isnan(r) for side in trained for _, r in side):
        sentences += [_onset(name, side, "while training") for name, side in zip(("plain MLP", "residual MLP"),
                                                                                  trained)]
    ratio = {skip: [cell.get((d, skip, "ratio"), math.nan) for d in (lo, hi)] for skip in ("no", "yes")}
    sentences.append(f"Descriptive only (not whether a layer learns: Adam rescales each step): at initialisation the "
                     f"plain MLP's first layer gets {_times(ratio['no'][1], hi)} ({_r(ratio['no'][0])} times at depth "
                     f"{lo}); the residual twin's ratio is {_r(ratio['yes'][1])} at depth {hi} "
                     f"({_r(ratio['yes'][0])} at depth {lo}).")
    return Finding(tuple(sentences), table, caption, thresholds)


def _times(ratio: float, depth: str) -> str:
    """'0.042 times the gradient of its last at depth 8'; an exact 0 said as such (nothing reaches the first layer)."""
    if ratio == 0:
        return f"no gradient at all at depth {depth}, exactly 0 times its last layer's"
    return f"{_r(ratio)} times the gradient of its last at depth {depth}"


def _onset(name: str, updates: list[tuple[str, float]], when: str) -> str:
    """From which depth on the first layer stops learning (its step below STALL), or that it never does."""
    measured = [(d, r) for d, r in updates if not math.isnan(r)]
    if not measured:
        return f"The {name}'s update size {when} was not measured."
    first = next((i for i, (_, r) in enumerate(measured) if r < STALL), None)
    if first is not None and all(r < STALL for _, r in measured[first:]):
        d, r = measured[first]
        return (f"The {name}'s first layer does not learn {when} from depth {d} on (a step moves it by {_r(r)} of "
                f"its norm there, below {STALL:g}).")
    if first is not None:
        low = [d for d, r in measured if r < STALL]
        return (f"The {name}'s first layer does not learn {when} at depth {', '.join(low)} (a step below {STALL:g} "
                "of its norm) but does at some depth above.")
    d, r = min(measured, key=lambda dr: dr[1])
    return (f"The {name}'s first layer learns {when} at every depth measured (its smallest step: {_r(r)} of its "
            f"norm, at depth {d}; the threshold {STALL:g}).")


INSTRUMENTS = (("Lesion: deleting and reordering blocks", ("lesion-mlp", "lesion-conv")),
               ("Shattered gradients", ("shatter-mlp", "shatter-conv")),
               ("Loss landscapes", ("landscape-mlp", "landscape-conv", "landscape-conv-2d")),
               ("Block forms at initialisation", ("init-mlp", "init-conv")),
               ("Layer responses (He et al. 2015, Figure 7)", ("responses-conv", "responses-mlp-learned",
                                                               "responses-mlp")),
               ("Class activation maps", ("cam-conv", "cam-mnist-canvas")))  # section -> the lab stages behind it


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
