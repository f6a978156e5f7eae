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
from reslab.analyze.shatter_paper import LEVEL, NO_LAW, decay_length, gradient_correlation, law, noise
from reslab.analyze.targets import model_spec, twin_pairs
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.plots.shatter import plot_grid_autocorr, plot_grid_gradients, plot_lag1_by_depth, plot_line_corr

REFERENCE = ("Balduzzi et al. 2017: the correlation of gradients at nearby inputs decays like 2^-L in plain ReLU nets "
             "(white noise by depth ~20-50) and like 1/sqrt(L) in resnets with batch norm")
WHITE_BY = (20, 50)  # depths by which the paper's plain nets' gradients look like white noise
GRID_FIELDS = ["form", "depth", "seed", "lag", "autocorr"]
LAG1_FIELDS = ["form", "depth", "seeds", "lag1_mean", "lag1_std", "lag1_min", "lag1_max", "reference",
               "reference_curve", "white_noise_band"]
GRADIENT_FIELDS = ["form", "depth", "seed", "x", "gradient"]
DECAY_FIELDS = ["form", "depth", "seeds", "corr_lag1", "decay_length", "max_lag", "law", "law_curve"]
CORR_FIELDS = ["form", "depth", "lag", "corr"]  # form "white noise" / "brown noise": the references (depth 0)
LINE_FIELDS = ["model", "at", "line", "start_image", "end_image", "lag", "corr"]
LINE_LAG1_FIELDS = ["model", "at", "model_spec", "lines", "points", "lag1_mean", "lag1_std", "lag1_min", "lag1_max",
                    "max_lag", "corr_at_max_lag", "half_lag", "decay_length"]


# ----------------------------------------------------------------------------- numbers


def white_noise_band(points: int) -> float:
    """|r(1)| below 2/sqrt(points) cannot be told from white noise (the sample autocorrelation's 95% band)."""
    return 2 / math.sqrt(points)


def reference_curve(form: str, depth: int, first_depth: int, first_value: float) -> tuple[str, float]:
    """The paper's law for the form (only plain: 2^-L, resnet-bn: 1/sqrt(L)), scaled to pass through the first
    depth's measured value; ("none stated", nan) for the forms the paper states no law for."""
    return law(form, depth, first_depth, first_value)


def correlation_rows(grid: Sequence[GridResult], settings: GridSettings, seed: int
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The paper's statistic C(k) per form and depth (pooled over the seeds) with white and brown noise of the same
    seeds and points beside it, and per form and depth its lag-1 value, decay length and the form's own law."""
    corr_rows: list[dict[str, Any]] = []
    decay_rows: list[dict[str, Any]] = []
    for kind in ("white", "brown"):
        c = gradient_correlation(noise(kind, settings.seeds, settings.points, seed), settings.max_lag)
        corr_rows += [{"form": f"{kind} noise", "depth": 0, "lag": k, "corr": float(v)} for k, v in enumerate(c)]
        decay = decay_length(c)
        decay_rows.append({"form": f"{kind} noise", "depth": 0, "seeds": settings.seeds, "corr_lag1": float(c[1]),
                           "decay_length": "" if decay is None else decay, "max_lag": settings.max_lag,
                           "law": "", "law_curve": ""})
    for form in dict.fromkeys(g.form for g in grid):
        depths = sorted({g.depth for g in grid if g.form == form})
        first: float | None = None
        for depth in depths:
            c = gradient_correlation(np.stack([g.gradient for g in grid if g.form == form and g.depth == depth]),
                                     settings.max_lag)
            first = float(c[1]) if first is None else first
            name, curve = law(form, depth, depths[0], first)
            decay = decay_length(c)
            corr_rows += [{"form": form, "depth": depth, "lag": k, "corr": float(v)} for k, v in enumerate(c)]
            decay_rows.append({"form": form, "depth": depth, "seeds": sum(g.form == form and g.depth == depth
                                                                          for g in grid),
                               "corr_lag1": float(c[1]), "decay_length": "" if decay is None else decay,
                               "max_lag": settings.max_lag, "law": name, "law_curve": "" if name == NO_LAW else curve})
    return corr_rows, decay_rows


def _decay_words(value: Any, max_lag: int) -> str:
    return f"> {max_lag}" if value == "" else f"{float(value):.2g}"


def decay_sentences(decay: Sequence[Mapping[str, Any]]) -> list[str]:
    """The paper's statistic in words: per form, the decay length at the shallowest and deepest depth against
    white noise's, and its own law (or that the paper states none for it)."""
    by: dict[str, list[Mapping[str, Any]]] = {}
    for r in decay:
        by.setdefault(str(r["form"]), []).append(r)
    white = by.pop("white noise")[0]
    by.pop("brown noise", None)
    max_lag = int(white["max_lag"])
    out = [f"The paper's statistic: the correlation C(k) of the gradients at grid inputs k points apart, "
           f"E[g_i g_i+k] / sqrt(E[g_i^2] E[g_i+k^2]) over the seeds and positions; its decay length is the first lag "
           f"where C falls below 1/e (= {LEVEL:.3g}). White noise of the same size: C(1) "
           f"{float(white['corr_lag1']):.2g}, decay length {_decay_words(white['decay_length'], max_lag)}."]
    for form, rows in by.items():
        first, last = rows[0], rows[-1]
        text = (f"{form}: C(1) {float(first['corr_lag1']):.3g} at depth {first['depth']}, "
                f"{float(last['corr_lag1']):.3g} at depth {last['depth']}; decay length "
                f"{_decay_words(first['decay_length'], max_lag)} -> {_decay_words(last['decay_length'], max_lag)} "
                "grid points. ")
        if last["law"] == NO_LAW:
            text += ("The paper states no law for this form (2^-L is for plain nets without batch norm, 1/sqrt(L) for "
                     "resnets with batch norm), so it is not compared with one.")
        else:
            text += (f"Its own law, {last['law']} through the first depth, predicts C(1) "
                     f"{float(last['law_curve']):.3g} at depth {last['depth']}.")
        out.append(text)
    return out


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
            name, curve = reference_curve(form, depth, depths[0], first)
            rows.append({"form": form, "depth": depth, "seeds": len(values), "lag1_mean": mean,
                         "lag1_std": float(np.nanstd(values)), "lag1_min": float(np.nanmin(values)),
                         "lag1_max": float(np.nanmax(values)), "reference": name,
                         "reference_curve": "" if name == NO_LAW else curve,
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
                     "half_lag": int(below[0]) if len(below) else "",
                     "decay_length": "" if (decay := decay_length(mean)) is None else decay})
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
    if str(first["reference"]) == NO_LAW:
        return text + ("The paper states no law for this form (its 2^-L is for plain nets without batch norm, its "
                       "1/sqrt(L) for resnets with batch norm).")
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
           "mean Pearson correlation between the gradients at neighbouring points. This is the lab's measurement, not "
           "the paper's: neighbouring points here are close images whose ReLU patterns mostly agree, while the "
           "paper's 2^-L and 1/sqrt(L) laws are about inputs whose ReLU patterns differ, so no law is compared. White "
           "noise (independent gradients) would give a correlation near 0 beyond lag 0; decay length: the first lag "
           "where the mean correlation falls below 1/e."]
    out += [f"{r['model']}{' at initialisation' if r['at'] == 'init' else ''}: lag-1 correlation "
            f"{r['lag1_mean']:.3g} +/- {r['lag1_std']:.2g} "
            f"(min {r['lag1_min']:.3g}, n={r['lines']} lines); {r['corr_at_max_lag']:.3g} at lag {r['max_lag']}; "
            + (f"below 1/2 from lag {r['half_lag']}" if r["half_lag"] != "" else "never below 1/2")
            + f"; decay length {_decay_words(r['decay_length'], int(r['max_lag']))}." for r in rows]
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
        corr_rows, decay = correlation_rows(grid, settings, common.seed)
        tables += [Table("shatter-grid-lag1.csv", lag1, LAG1_FIELDS), Table("shatter-grid.csv", grid_rows, GRID_FIELDS),
                   Table("shatter-grid-gradients.csv", gradient_rows, GRADIENT_FIELDS),
                   Table("shatter-grid-decay.csv", decay, DECAY_FIELDS),
                   Table("shatter-grid-correlation.csv", corr_rows, CORR_FIELDS)]
        figures += [Figure("shatter-grid-lag1.png", partial(plot_lag1_by_depth, lag1)),
                    Figure("shatter-grid-autocorr.png", partial(plot_grid_autocorr, grid_rows, noise_rows=corr_rows)),
                    Figure("shatter-grid-gradients.png", partial(plot_grid_gradients, gradient_rows))]
        findings |= {f"grid.{r['form']}.depth{r['depth']}.lag1": r["lag1_mean"] for r in lag1}
        findings |= {f"grid.{r['form']}.depth{r['depth']}.decay_length": r["decay_length"] for r in decay
                     if r["decay_length"] != "" and r["depth"]}
        words += grid_sentences(lag1, settings) + decay_sentences(decay)
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
