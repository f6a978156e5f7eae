"""`reslab analyze landscape`'s summary: the surface table, smoothness numbers, figures, directions and sentences.

Smoothness is measured two ways, both on the loss as evaluated (no fit): the share of grid points whose second
difference along an axis is >= 0 (1.0: convex along every cut), and the number of strict local minima inside
the grid (a point lower than all its 2, or in 2-D 4, neighbours). A chaotic surface has a low share and many
minima; a smooth bowl has a share near 1 and one minimum.

With several 1-D directions the comparison of a pair uses each model's means over the directions and states the
spread (min to max) and in how many directions each verdict held; a verdict from one 1-D direction says so.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from reslab.analyze.landscape import LandscapeMeasurement, LandscapeOptions, LandscapeSettings, Surface
from reslab.analyze.registry import Common
from reslab.analyze.targets import model_spec, twin_pairs
from reslab.analyze.writer import Analysis, Artifact, Figure, Table
from reslab.plots.landscape import plot_landscape_1d, plot_landscape_2d

REFERENCE = ("Li et al. 2018: filter-normalised loss surfaces of plain and residual nets look alike at depth 20; "
             "deeper, the plain net's turns chaotic while the residual net's stays smooth and nearly convex")
DIRECTIONS = "directions.pt"  # the directions each model was cut along, to redraw or extend the cut
SURFACE_FIELDS = ["model", "at", "direction", "a", "b", "loss", "acc"]
STATS_FIELDS = ["model", "at", "direction", "model_spec", "pair", "weight_layers", "dims", "points", "span",
                "loss_origin",
                "acc_origin", "loss_min", "loss_max", "loss_range", "convex_share", "local_minima", "seconds"]
LIKE_DEPTH = 20  # weight layers up to which Li et al. found plain and residual surfaces alike
ALIKE_SHARE = 0.15  # convex shares this close count as alike
RANGE_FACTOR = 10.0  # loss ranges within this factor count as alike
FLAT = 0.01  # a surface whose loss varies by less than this fraction of the loss at the origin is a plateau


# ----------------------------------------------------------------------------- numbers


def convex_share(loss: np.ndarray) -> float:
    """Share of second differences >= 0 along each axis of length >= 3 (rows and columns of a 2-D grid)."""
    diffs = [np.diff(loss, n=2, axis=axis).ravel() for axis in range(loss.ndim) if loss.shape[axis] >= 3]
    second = np.concatenate(diffs) if diffs else np.array([])
    second = second[np.isfinite(second)]
    return float(np.mean(second >= 0)) if len(second) else float("nan")


def local_minima(loss: np.ndarray) -> int:
    """Strict local minima inside the grid: lower than both neighbours along every axis of length >= 3."""
    grid = loss[:, 0] if loss.shape[1] == 1 else loss
    inner = grid[(slice(1, -1),) * grid.ndim]
    lower = np.ones(inner.shape, dtype=bool)
    for axis in range(grid.ndim):
        others = tuple(slice(None) if a == axis else slice(1, -1) for a in range(grid.ndim))  # the other axes' interior
        before = np.take(grid, np.arange(grid.shape[axis] - 2), axis=axis)[others]
        after = np.take(grid, np.arange(2, grid.shape[axis]), axis=axis)[others]
        lower &= (inner < before) & (inner < after)
    return int(lower.sum())


def stats_rows(surfaces: Sequence[Surface], settings: LandscapeSettings) -> list[dict[str, Any]]:
    pair_of = twin_pairs([s.target for s in surfaces])
    rows = []
    for s in surfaces:
        mid = len(s.steps) // 2
        finite = s.loss[np.isfinite(s.loss)]
        rows.append({"model": s.target.label, "at": s.target.at, "direction": s.direction,
                     "model_spec": model_spec(s.target.cfg),
                     "pair": pair_of.get(s.target.label, ""), "weight_layers": s.num_weight_layers,
                     "dims": settings.dims, "points": len(s.steps), "span": settings.span,
                     "loss_origin": float(s.loss[mid, mid if settings.dims == 2 else 0]),
                     "acc_origin": float(s.acc[mid, mid if settings.dims == 2 else 0]),
                     "loss_min": float(finite.min()) if len(finite) else float("nan"),
                     "loss_max": float(finite.max()) if len(finite) else float("nan"),
                     "loss_range": float(np.ptp(finite)) if len(finite) else float("nan"),
                     "convex_share": convex_share(s.loss), "local_minima": local_minima(s.loss),
                     "seconds": round(s.seconds, 3)})
    return rows


# ----------------------------------------------------------------------------- words


def is_flat(row: Mapping[str, Any]) -> bool:
    """A loss range under FLAT of the loss at the origin: a plateau, where second differences are rounding noise."""
    return not row["loss_range"] >= FLAT * row["loss_origin"]


def _model_sentence(r: Mapping[str, Any]) -> str:
    return (f"{r['model']} ({r['weight_layers']} weight layers): loss {r['loss_origin']:.4g} at the trained weights "
            f"(accuracy {100 * r['acc_origin']:.1f}%), from {r['loss_min']:.4g} to {r['loss_max']:.4g} over the "
            f"grid; second difference >= 0 at {100 * r['convex_share']:.0f}% of the points; "
            f"{r['local_minima']:g} local minim{'um' if r['local_minima'] == 1 else 'a'} inside the grid; "
            f"{r['seconds']:.1f} s"
            + (f" (a plateau: flat to within {100 * FLAT:.0f}% of its loss)." if is_flat(r) else "."))


def _pair_sentence(plain: Mapping[str, Any], res: Mapping[str, Any]) -> str:
    """How the pair compares, and whether that is what Li et al. found at this depth."""
    layers = int(res["weight_layers"])
    flat = [r for r in (plain, res) if is_flat(r)]
    if flat:
        who = " and ".join(f"{r['model']} (accuracy {100 * r['acc_origin']:.1f}% at the trained weights)"
                           for r in flat)
        return (f"{plain['model']} vs {res['model']}: the surface of {who} is flat to within {100 * FLAT:.0f}% of its "
                "loss, a plateau: the net did not learn, so the shape measures do not compare the two; Li et al.'s "
                "comparison needs both nets trained.")
    text = (f"{plain['model']} vs {res['model']}: convex share {100 * plain['convex_share']:.0f}% vs "
            f"{100 * res['convex_share']:.0f}%, local minima {plain['local_minima']:g} vs {res['local_minima']:g}, "
            f"loss range {plain['loss_range']:.3g} vs {res['loss_range']:.3g}. ")
    better = _smoother(plain, res)
    for_res = [what for what, who in better.items() if who == "residual"]
    for_plain = [what for what, who in better.items() if who == "plain"]
    if not for_res and not for_plain:
        return text + (f"By all three they look alike at {layers} weight layers: " +
                       ("as Li et al. found at depth 20 (agrees)." if layers <= LIKE_DEPTH else
                        "Li et al. found the plain surface chaotic and the residual one smooth at this depth "
                        "(disagrees at this resolution)."))
    if for_plain:
        return text + (f"The plain surface is the smoother by {', '.join(for_plain)}" +
                       (f" and the residual one by {', '.join(for_res)}" if for_res else "") +
                       f", at {layers} weight layers: unlike Li et al. (disagrees).")
    text += f"The residual surface is the smoother by {', '.join(for_res)} at {layers} weight layers"
    if layers <= LIKE_DEPTH:
        return text + ": Li et al. found the two alike at depth 20 (disagrees)."
    if "convexity" not in for_res:
        return text + (", as Li et al. found deeper than 20 layers (agrees in direction); but the plain cut is as "
                       "convex as the residual one here, not chaotic as in Li et al.")
    return text + ", as Li et al. found deeper than 20 layers (agrees)."


def _smoother(plain: Mapping[str, Any], res: Mapping[str, Any]) -> dict[str, str]:
    """Which surface is the smoother by convexity share, local minima and loss range: plain, residual or ''."""
    share = res["convex_share"] - plain["convex_share"]
    minima = float(plain["local_minima"]) - float(res["local_minima"])
    ratio = plain["loss_range"] / res["loss_range"] if res["loss_range"] > 0 else float("inf")
    return {"convexity": "residual" if share > ALIKE_SHARE else "plain" if share < -ALIKE_SHARE else "",
            "local minima": "residual" if minima > 1 else "plain" if minima < -1 else "",
            f"loss range ({ratio:.3g}x)": "residual" if ratio > RANGE_FACTOR else
            "plain" if ratio < 1 / RANGE_FACTOR else ""}


MEANS = ("loss_origin", "acc_origin", "loss_min", "loss_max", "loss_range", "convex_share", "local_minima", "seconds")


def model_means(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model: its first direction's row with the shape measures averaged over its directions."""
    out = []
    for model in dict.fromkeys(str(r["model"]) for r in rows):
        sel = [r for r in rows if r["model"] == model]
        out.append(dict(sel[0]) | {key: float(np.mean([float(r[key]) for r in sel])) for key in MEANS}
                   | {"directions": len(sel)})
    return out


def _spread(rows: Sequence[Mapping[str, Any]], model: str, key: str, scale: float = 1.0, fmt: str = ".0f") -> str:
    values = [scale * float(r[key]) for r in rows if r["model"] == model]
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def _directions_sentence(rows: Sequence[Mapping[str, Any]], plain: str, res: str) -> str:
    """How the per-direction verdicts spread: convex share and minima ranges, and how often each was smoother."""
    by = {(str(r["model"]), int(r["direction"])): r for r in rows}
    n = sum(1 for r in rows if r["model"] == plain)
    counts: dict[tuple[str, str], int] = {}
    for d in range(1, n + 1):
        for what, who in _smoother(by[(plain, d)], by[(res, d)]).items():
            if who:
                key = (who, what.split(" (")[0])
                counts[key] = counts.get(key, 0) + 1
    held = ", ".join(f"{who} smoother by {what} in {v} of {n}" for (who, what), v in counts.items()) or \
        f"no measure told them apart in any of the {n}"
    return (f"Over {n} random directions (the verdict below uses the means): convex share {plain} "
            f"{_spread(rows, plain, 'convex_share', 100)}% vs {res} {_spread(rows, res, 'convex_share', 100)}%, local "
            f"minima {_spread(rows, plain, 'local_minima', fmt='g')} vs {_spread(rows, res, 'local_minima', fmt='g')}; "
            f"per direction: {held}.")


def sentences(rows: Sequence[Mapping[str, Any]], settings: LandscapeSettings) -> list[str]:
    axes = ("one random direction" if settings.cuts == 1 else f"{settings.cuts} random directions, each its own cut") \
        if settings.dims == 1 else "two random directions"
    grid = "x".join([str(settings.per_axis)] * settings.dims)
    out = [f"Loss and accuracy along {axes}, filter-normalised (Li et al. 2018; biases and norm layers not moved), "
           f"{grid} points in [-{settings.span:g}, {settings.span:g}], batch norm in eval mode, on {settings.subset} "
           "training images (a fixed seeded subset of the training split)."]
    means = model_means(rows)
    out += [_model_sentence(r) for r in (rows if settings.cuts == 1 else means)]
    by = {str(r["model"]): r for r in means}
    for title in dict.fromkeys(str(r["pair"]) for r in rows if r["pair"]):
        plain, res = (by[name] for name in title.split(" vs "))
        if settings.dims == 1 and settings.cuts == 1:
            out.append("From a single 1-D direction (one random draw; --directions N cuts along several): "
                       + _pair_sentence(plain, res))
        elif settings.dims == 1:
            out.append(_directions_sentence(rows, str(plain["model"]), str(res["model"])) + " "
                       + _pair_sentence(plain, res))
        else:
            out.append("From one 2-D surface: " + _pair_sentence(plain, res))
    return out


# ----------------------------------------------------------------------------- the analysis


def summarise(measured: LandscapeMeasurement, options: LandscapeOptions, common: Common) -> Analysis:
    """landscape.csv, landscape-stats.csv, directions.pt, the figure and the summary."""
    settings, surfaces = options.cut, measured.surfaces
    surface_rows = [{"model": s.target.label, "at": s.target.at, "direction": s.direction, "a": float(a),
                     "b": float(s.steps[j]) if settings.dims == 2 else 0.0,
                     "loss": float(s.loss[i, j]), "acc": float(s.acc[i, j])}
                    for s in surfaces for i, a in enumerate(s.steps) for j in range(s.loss.shape[1])]
    stats = stats_rows(surfaces, settings)
    saved = {"seed": common.seed, "dims": settings.dims, "span": settings.span, "steps": surfaces[0].steps.tolist(),
             "models": dict(measured.directions)}

    def save(path: Path) -> None:
        torch.save(saved, path)

    findings = {f"{r['model']}.{key}": r[key] for r in (stats if settings.cuts == 1 else model_means(stats))
                for key in ("loss_origin", "acc_origin", "loss_range", "convex_share", "local_minima")}
    return Analysis(
        text="\n".join(sentences(stats, settings) + ["", f"Reference: {REFERENCE}."]),
        tables=(Table("landscape-stats.csv", stats, STATS_FIELDS), Table("landscape.csv", surface_rows, SURFACE_FIELDS)),
        figures=(Figure(f"landscape-{settings.dims}d.png",
                        partial(plot_landscape_1d if settings.dims == 1 else plot_landscape_2d, surface_rows)),),
        artifacts=(Artifact(DIRECTIONS, save),),
        settings={"at": options.at, "dims": settings.dims, "points": settings.per_axis, "subset": settings.subset,
                  "span": settings.span, "seed": common.seed, "directions": DIRECTIONS, "cuts": settings.cuts},
        findings=findings, reference=REFERENCE)
