"""`reslab analyze shatter`'s summary: tables, figures and sentences computed from the measured correlations.

Every number in a sentence comes from the rows; the comparison with Balduzzi et al. 2017 says where the
measurement agrees with the paper and where it does not.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Mapping, Sequence

import numpy as np

from reslab.analyze.registry import Common
from reslab.analyze.shatter import (FORMS, GridResult, GridSettings, LineResult, ShatterMeasurement,
                                    ShatterOptions)
from reslab.analyze.targets import model_spec, twin_pairs
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.plots.shatter import plot_grid_autocorr, plot_grid_gradients, plot_lag1_by_depth, plot_line_corr

REFERENCE = ("Balduzzi et al. 2017: the correlation of gradients at nearby inputs decays like 2^-L in plain ReLU nets "
             "(white noise by depth ~20-50) and like 1/sqrt(L) with skip connections and batch norm")
WHITE_BY = (20, 50)  # depths by which the paper's plain nets' gradients look like white noise
GRID_FIELDS = ["form", "depth", "seed", "lag", "autocorr"]
LAG1_FIELDS = ["form", "depth", "seeds", "lag1_mean", "lag1_std", "lag1_min", "lag1_max", "reference",
               "reference_curve", "white_noise_band"]
GRADIENT_FIELDS = ["form", "depth", "seed", "x", "gradient"]
LINE_FIELDS = ["model", "at", "line", "start_image", "end_image", "lag", "corr"]
LINE_LAG1_FIELDS = ["model", "at", "model_spec", "lines", "points", "lag1_mean", "lag1_std", "lag1_min", "lag1_max",
                    "max_lag", "corr_at_max_lag", "half_lag"]


# ----------------------------------------------------------------------------- numbers


def white_noise_band(points: int) -> float:
    """|r(1)| below 2/sqrt(points) cannot be told from white noise (the sample autocorrelation's 95% band)."""
    return 2 / math.sqrt(points)


def reference_curve(form: str, depth: int, first_depth: int, first_value: float) -> tuple[str, float]:
    """The paper's law for the form, scaled to pass through the first depth's measured value."""
    if FORMS[form].residual:
        return "1/sqrt(L)", first_value * math.sqrt(first_depth / depth)
    return "2^-L", first_value * 2.0 ** (first_depth - depth)


def lag1_rows(grid: Sequence[GridResult], points: int) -> list[dict[str, Any]]:
    """Lag-1 autocorrelation per form and depth over the seeds, beside the paper's curve for the form."""
    rows: list[dict[str, Any]] = []
    for form in dict.fromkeys(g.form for g in grid):
        depths = sorted({g.depth for g in grid if g.form == form})
        first: float | None = None
        for depth in depths:
            values = np.array([g.autocorr[1] for g in grid if g.form == form and g.depth == depth])
            mean = float(np.nanmean(values))
            first = mean if first is None else first
            law, curve = reference_curve(form, depth, depths[0], first)
            rows.append({"form": form, "depth": depth, "seeds": len(values), "lag1_mean": mean,
                         "lag1_std": float(np.nanstd(values)), "lag1_min": float(np.nanmin(values)),
                         "lag1_max": float(np.nanmax(values)), "reference": law, "reference_curve": curve,
                         "white_noise_band": white_noise_band(points)})
    return rows


def decay_fit(rows: Sequence[Mapping[str, Any]]) -> tuple[float, float, int]:
    """(factor per unit of depth, exponent of depth, points used): least-squares fits of log r(1) against L and
    against log L over the depths where r(1) is above the white-noise band (NaN when fewer than two are)."""
    kept = [(float(r["depth"]), float(r["lag1_mean"])) for r in rows
            if float(r["lag1_mean"]) > float(r["white_noise_band"])]
    if len(kept) < 2:
        return math.nan, math.nan, len(kept)
    depth, value = np.array(kept).T
    factor = math.exp(np.polyfit(depth, np.log(value), 1)[0])
    exponent = float(np.polyfit(np.log(depth), np.log(value), 1)[0])
    return factor, exponent, len(kept)


def line_lag1_rows(lines: Sequence[LineResult]) -> list[dict[str, Any]]:
    """Lag-1 correlation per model over its lines, the correlation at the largest lag, and the first lag where the
    mean correlation falls below 1/2 (empty when it never does within the lags measured)."""
    rows = []
    for r in lines:
        lag1, mean = r.corr[:, 1], r.corr.mean(0)
        below = np.flatnonzero(mean < 0.5)
        rows.append({"model": r.target.label, "at": r.target.at, "model_spec": model_spec(r.target.cfg),
                     "lines": len(lag1), "points": r.points, "lag1_mean": float(lag1.mean()),
                     "lag1_std": float(lag1.std()), "lag1_min": float(lag1.min()), "lag1_max": float(lag1.max()),
                     "max_lag": len(mean) - 1, "corr_at_max_lag": float(mean[-1]),
                     "half_lag": int(below[0]) if len(below) else ""})
    return rows


# ----------------------------------------------------------------------------- words


def _form_sentence(form: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """What the form's lag-1 correlations did with depth, against the paper's law for it."""
    first, last = rows[0], rows[-1]
    band = float(first["white_noise_band"])
    noise = [int(r["depth"]) for r in rows if abs(float(r["lag1_mean"])) < band]
    factor, exponent, used = decay_fit(rows)
    text = (f"{form}: lag-1 correlation {float(first['lag1_mean']):.3g} at depth {first['depth']}, "
            f"{float(last['lag1_mean']):.3g} +/- {float(last['lag1_std']):.2g} at depth {last['depth']} "
            f"(n={last['seeds']} seeds); ")
    text += (f"inside the white-noise band (|r| < {band:.3g}) from depth {noise[0]}. " if noise else
             f"never inside the white-noise band (|r| < {band:.3g}). ")
    if used < 2:
        return text + "Too few depths above the band to fit a decay."
    if FORMS[form].residual:
        verdict = ("decays about as fast as" if abs(exponent + 0.5) <= 0.25 else
                   "decays more slowly than" if exponent > -0.25 else "decays faster than")
        return text + (f"Fit over the {used} depths above the band: r(1) ~ L^{exponent:.2f}, which {verdict} the "
                       f"paper's 1/sqrt(L) (L^-0.5).")
    verdict = ("about as fast as" if abs(factor - 0.5) <= 0.1 else
               "more slowly than" if factor > 0.5 else "faster than")
    text += (f"Fit over the {used} depths above the band: r(1) shrinks by a factor {factor:.3g} per block, "
             f"{verdict} the paper's 2^-L (0.5 per layer)")
    if not noise and int(last["depth"]) < WHITE_BY[0]:
        return text + (f"; the paper expects white noise by depth ~{WHITE_BY[0]}-{WHITE_BY[1]}, deeper than the "
                       f"{last['depth']} measured here.")
    if not noise:
        return text + f", and unlike the paper it is not white noise by depth {last['depth']}."
    return text + (f"; like the paper it is white noise by depth {noise[0]}." if noise[0] <= WHITE_BY[1] else
                   f"; it turns to white noise only at depth {noise[0]}, later than the paper's "
                   f"~{WHITE_BY[0]}-{WHITE_BY[1]}.")


def grid_sentences(lag1: Sequence[Mapping[str, Any]], settings: GridSettings) -> list[str]:
    out = [f"The paper's set-up: fully-connected nets {settings.width} units wide (reslab's MLP, He-initialised, one "
           f"Linear per block after a Linear stem) on a 1-D input, {settings.points} points in [-{settings.reach:g}, "
           f"{settings.reach:g}]; the gradient of the one output with respect to the input, at initialisation; batch "
           "norm uses the grid's statistics. Lag-1 autocorrelation of that gradient over the grid:"]
    by_form: dict[str, list[Mapping[str, Any]]] = {}
    for r in lag1:
        by_form.setdefault(str(r["form"]), []).append(r)
    out += [_form_sentence(form, rows) for form, rows in by_form.items()]
    deepest = {form: float(rows[-1]["lag1_mean"]) for form, rows in by_form.items()}
    for plain, res in (("plain", "resnet"), ("plain-bn", "resnet-bn")):
        if plain in deepest and res in deepest:
            more = "more" if deepest[res] > deepest[plain] else "less"
            out.append(f"At the deepest depth the skip keeps the gradient {more} correlated: {res} "
                       f"{deepest[res]:.3g} against {plain} {deepest[plain]:.3g}.")
    if "plain" in deepest and "plain-bn" in deepest and deepest["plain"] > deepest["plain-bn"]:
        out.append("Without batch norm the plain net shatters more slowly here than in the paper: on a 1-D input with "
                   "small biases a ReLU net is close to piecewise linear with few kinks (with zero biases it would "
                   "be linear on each side of 0); batch norm centres every unit over the grid, which moves its kink "
                   "into the grid.")
    return out


def line_sentences(rows: Sequence[Mapping[str, Any]], lines: Sequence[LineResult]) -> list[str]:
    if not rows:
        return []
    r0 = lines[0]
    out = [f"Along straight lines between two test images ({len(r0.images)} seeded pairs, {r0.points} points each): "
           "the gradient of the logit of the first image's true class with respect to the input image; lag-1: the "
           "mean Pearson correlation between the gradients at neighbouring points."]
    out += [f"{r['model']}{' at initialisation' if r['at'] == 'init' else ''}: lag-1 correlation "
            f"{r['lag1_mean']:.3g} +/- {r['lag1_std']:.2g} "
            f"(min {r['lag1_min']:.3g}, n={r['lines']} lines); {r['corr_at_max_lag']:.3g} at lag {r['max_lag']}; "
            + (f"below 1/2 from lag {r['half_lag']}." if r["half_lag"] != "" else "never below 1/2.") for r in rows]
    by = {str(r["model"]): r for r in rows}
    for title in dict.fromkeys(twin_pairs([r.target for r in lines]).values()):
        plain, res = (by[name] for name in title.split(" vs "))
        diff = res["lag1_mean"] - plain["lag1_mean"]
        more = "as" if abs(diff) <= max(res["lag1_std"], plain["lag1_std"]) else "more" if diff > 0 else "less"
        out.append(f"With the skip the gradients along the lines are {more} alike (the spread over lines is "
                   f"+/- {max(res['lag1_std'], plain['lag1_std']):.2g}): lag-1 {res['lag1_mean']:.3g} "
                   f"({res['model']}) against {plain['lag1_mean']:.3g} without it ({plain['model']}).")
    return out


# ----------------------------------------------------------------------------- the analysis


def summarise(measured: ShatterMeasurement, options: ShatterOptions, common: Common) -> Analysis:
    """The grid's tables and figures (unless it was left out), the lines' (when models were given), the summary."""
    tables: list[Table] = []
    figures: list[Figure] = []
    words: list[str] = []
    findings: dict[str, Any] = {}
    grid, settings, lines = measured.grid, options.grid, measured.lines
    if grid and settings is not None:
        x = np.linspace(-settings.reach, settings.reach, settings.points)
        grid_rows = [{"form": g.form, "depth": g.depth, "seed": g.seed, "lag": k, "autocorr": float(v)}
                     for g in grid for k, v in enumerate(g.autocorr)]
        gradient_rows = [{"form": g.form, "depth": g.depth, "seed": g.seed, "x": float(xi), "gradient": float(v)}
                         for g in grid if g.seed == 0 for xi, v in zip(x, g.gradient)]
        lag1 = lag1_rows(grid, settings.points)
        tables += [Table("shatter-grid-lag1.csv", lag1, LAG1_FIELDS), Table("shatter-grid.csv", grid_rows, GRID_FIELDS),
                   Table("shatter-grid-gradients.csv", gradient_rows, GRADIENT_FIELDS)]
        figures += [Figure("shatter-grid-lag1.png", partial(plot_lag1_by_depth, lag1)),
                    Figure("shatter-grid-autocorr.png", partial(plot_grid_autocorr, grid_rows)),
                    Figure("shatter-grid-gradients.png", partial(plot_grid_gradients, gradient_rows))]
        findings |= {f"grid.{r['form']}.depth{r['depth']}.lag1": r["lag1_mean"] for r in lag1}
        words += grid_sentences(lag1, settings)
    if lines:
        line_rows = [{"model": r.target.label, "at": r.target.at, "line": p + 1, "start_image": a, "end_image": b,
                      "lag": k, "corr": float(v)} for r in lines for p, (a, b) in enumerate(r.images)
                     for k, v in enumerate(r.corr[p])]
        line_lag1 = line_lag1_rows(lines)
        tables += [Table("shatter-line-lag1.csv", line_lag1, LINE_LAG1_FIELDS),
                   Table("shatter-line.csv", line_rows, LINE_FIELDS)]
        figures.append(Figure("shatter-line.png", partial(plot_line_corr, line_rows)))
        findings |= {f"line.{r['model']}.lag1": r["lag1_mean"] for r in line_lag1}
        words += [""] * bool(words) + line_sentences(line_lag1, lines)
    asked: dict[str, Any] = {"seed": common.seed, "at": list(options.at), "pairs": options.pairs,
                             "line_points": options.line_points}
    if settings is not None:
        asked |= {"depths": list(settings.depths), "forms": list(settings.forms), "seeds": settings.seeds,
                  "width": settings.width, "grid_points": settings.points, "max_lag": settings.max_lag}
    return Analysis(text="\n".join(words + ["", f"Reference: {REFERENCE}."]), tables=tuple(tables),
                    figures=tuple(figures), settings=asked, findings=findings, reference=REFERENCE)
