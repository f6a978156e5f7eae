"""`reslab analyze lesion`'s summary: tables, figures, findings and sentences computed from the errors.

Each verdict on Veit et al. 2016 uses a rule stated in the text, in units of the gap between the intact
net's error and chance: "barely changes" is a mean single-deletion rise under 10% of that gap, "at
chance" is a rise of at least 80% of it, "smooth" is no step between successive k above 25% of it
(means over the draws: more --draws, less noise). A net within 10% of chance before any lesion did not
learn, and is said to be untestable rather than judged. Swaps are reported against Kendall's tau of the block
order (Veit et al.'s Figure 5), a residual net's paths by length (`lesion_paths`), and when several runs of one
form are given, the mean and spread over them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from reslab.analyze.lesion import LesionOptions, LesionResult, errors_by
from reslab.analyze.lesion_paths import effective_range, kendall_tau, path_counts
from reslab.analyze.registry import Common
from reslab.analyze.targets import model_spec, skip_of, twin_pairs
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.intervals import t_interval
from reslab.plots.lesion import plot_lesion_k, plot_lesion_tau, plot_paths, plot_single_deletions

REFERENCE = ("Veit, Wilber and Belongie 2016: deleting one block of a ResNet barely changes its test error, except "
             "at downsampling blocks, and the error grows smoothly with the number of blocks deleted; deleting a "
             "layer of a plain net sends it to chance")
BARELY, AT_CHANCE, SMOOTH = 0.1, 0.8, 0.25  # fractions of the gap from the intact net's error to chance
LESION_FIELDS = ["model", "experiment", "k", "draw", "deleted", "swapped", "kendall_tau", "error"]
PATH_FIELDS = ["model", "blocks", "length", "paths", "path_share", "draws", "gradient_mean", "gradient_min",
               "gradient_max", "total", "total_share"]
BLOCK_FIELDS = ["model", "block", "name", "downsamples", "error", "rise"]
K_FIELDS = ["model", "experiment", "k", "draws", "mean", "min", "max"]
STATS_FIELDS = ["model", "at", "model_spec", "skip", "pair", "blocks", "downsampling", "images", "base_error",
                "chance", "single_mean", "single_max", "single_downsampling_max"]


# ----------------------------------------------------------------------------- numbers


def tables(results: Sequence[LesionResult]) -> dict[str, list[dict[str, Any]]]:
    """The four tables: every lesion, each block deleted alone, each k summarised, each model summarised."""
    pair_of = twin_pairs([r.target for r in results])
    out: dict[str, list[dict[str, Any]]] = {"lesions": [], "blocks": [], "k": [], "stats": [], "paths": []}
    for r in results:
        label = r.target.label
        base = r.errors[0][1]
        out["lesions"] += [{"model": label, "experiment": les.experiment, "k": les.k, "draw": les.draw,
                            "deleted": " ".join(map(str, les.deleted)),
                            "swapped": " ".join(f"{a}-{b}" for a, b in les.swapped),
                            "kendall_tau": kendall_tau(len(r.blocks), les.swapped) if les.experiment in ("base", "swap")
                            else "", "error": err} for les, err in r.errors]
        out["paths"] += path_rows(r)
        single = {les.deleted[0]: err for les, err in r.errors if les.experiment == "single"}
        out["blocks"] += [{"model": label, "block": b.index, "name": b.name, "downsamples": "yes" if b.downsamples
                           else "no", "error": single[b.index], "rise": single[b.index] - base} for b in r.blocks]
        for experiment in ("delete", "swap"):
            out["k"] += [{"model": label, "experiment": experiment, "k": k, "draws": len(errs), "mean": np.mean(errs),
                          "min": min(errs), "max": max(errs)} for k, errs in errors_by(r, experiment).items()]
        inner = [single[b.index] for b in r.blocks if not b.downsamples]
        down = [single[b.index] for b in r.blocks if b.downsamples]
        out["stats"].append({"model": label, "at": r.target.at, "model_spec": model_spec(r.target.cfg),
                             "skip": skip_of(r.target.cfg), "pair": pair_of.get(label, ""), "blocks": len(r.blocks),
                             "downsampling": len(down), "images": r.images, "base_error": base, "chance": r.chance,
                             "single_mean": float(np.mean(inner)) if inner else "",
                             "single_max": max(inner) if inner else "",
                             "single_downsampling_max": max(down) if down else ""})
    return out


def path_rows(r: LesionResult) -> list[dict[str, Any]]:
    """A residual net's paths by length: C(n, k) of them, the gradient of one (over the draws), their total."""
    if not r.paths:
        return []
    n = len(r.paths) - 1
    counts = path_counts(n)
    means = [float(np.mean(g)) for g in r.paths]
    total = [c * m for c, m in zip(counts, means)]
    whole = sum(total) or float("nan")
    return [{"model": r.target.label, "blocks": n, "length": k, "paths": counts[k], "path_share": counts[k] / 2 ** n,
             "draws": len(g), "gradient_mean": means[k], "gradient_min": min(g), "gradient_max": max(g),
             "total": total[k], "total_share": total[k] / whole} for k, g in enumerate(r.paths)]


def path_sentences(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per residual model: the path-length distribution and where the gradient comes from (Veit et al. Fig. 6)."""
    out = []
    for model in dict.fromkeys(str(r["model"]) for r in rows):
        sel = [r for r in rows if r["model"] == model]
        n = int(sel[0]["blocks"])
        first, last = effective_range([int(r["paths"]) for r in sel], [float(r["gradient_mean"]) for r in sel])
        peak = max(sel, key=lambda r: float(r["total"]))
        out.append(f"{model} unravelled (Veit et al. 2016): {n} blocks make 2^{n} paths, C({n}, k) of length k (a "
                   f"binomial distribution, most paths of length ~{n / 2:g}). The gradient at the input of one path "
                   f"of length k (a backward pass through k random branches, the other blocks' shortcuts; mean over "
                   f"{sel[0]['draws']} draws) falls from {float(sel[0]['gradient_mean']):.3g} at k=0 to "
                   f"{float(sel[-1]['gradient_mean']):.3g} at k={n}; paths x gradient peaks at k={peak['length']}, "
                   f"and the middle 90% of the total gradient comes from paths of length {first}-{last} (Veit et al.: "
                   "5-17 of a 54-block ResNet's, the effective paths are short).")
    return out


def pair_sentences(t: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """Per plain/residual pair, deleting one block side by side: Veit et al.'s contrast of a plain net's collapse to
    chance with a residual net's graceful degradation, under the rules above (means over non-downsampling blocks)."""
    out = []
    for pair in dict.fromkeys(str(s["pair"]) for s in t["stats"] if s["pair"]):
        side = {s["skip"]: s for s in t["stats"] if s["pair"] == pair}
        plain, res = side.get("no"), side.get("yes")
        if plain is None or res is None or plain["single_mean"] == "" or res["single_mean"] == "":
            continue
        if any(float(s["chance"]) - float(s["base_error"]) < BARELY * float(s["chance"]) for s in (plain, res)):
            out.append(f"{pair}: a twin is itself near chance before any deletion, so the plain net's collapse cannot "
                       "be set against the residual net's degradation here.")
            continue
        p, r = _of_gap(float(plain["single_mean"]), plain), _of_gap(float(res["single_mean"]), res)
        collapses, graceful = p >= AT_CHANCE, r < BARELY
        out.append(f"{pair}, deleting one block: the plain twin's error goes from {_pct(plain['base_error'])} to "
                   f"{_pct(plain['single_mean'])} on average ({p:.0%} of the way to chance), the residual twin's from "
                   f"{_pct(res['base_error'])} to {_pct(res['single_mean'])} ({r:.0%}): the plain net "
                   f"{'collapses to chance' if collapses else 'does not collapse to chance'} ('collapses': >= "
                   f"{AT_CHANCE:.0%}) and the residual net "
                   f"{'degrades gracefully' if graceful else 'does not degrade gracefully'} ('gracefully': < "
                   f"{BARELY:.0%}), "
                   + ("as Veit et al. report." if collapses and graceful else "unlike Veit et al.'s contrast."))
    return out


def spread_sentences(t: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """With several runs of one form (skip yes / no), the mean and range over them of the single-deletion error."""
    out = []
    for skip, form in (("no", "plain"), ("yes", "residual")):
        rows = [s for s in t["stats"] if s["skip"] == skip and s["single_mean"] != ""]
        if len(rows) < 2:
            continue
        rise = np.array([float(s["single_mean"]) - float(s["base_error"]) for s in rows])
        base = np.array([float(s["base_error"]) for s in rows])
        _, _, low, high = t_interval(list(rise))
        out.append(f"Over the {len(rows)} {form} runs: intact error {_pct(base.mean())} (range {_pct(base.min())} "
                   f"to {_pct(base.max())}); the mean rise from deleting one block {_pct(rise.mean())} +/- "
                   f"{_pct(rise.std(ddof=1))} (sd; range {_pct(rise.min())} to {_pct(rise.max())}; "
                   + (f"all {len(rows)} equal)." if rise.min() == rise.max() else
                      f"95% t interval of the mean {_pct(low)} to {_pct(high)}).")
                   + _pair_spread(t) * (skip == "yes"))
    return out


def _pair_spread(t: Mapping[str, list[dict[str, Any]]]) -> str:
    """Over several plain/residual pairs (seeds): the plain twin's single-deletion rise minus the residual twin's
    (in units of each twin's gap to chance), with its 95% t interval; '' with fewer than 2 pairs."""
    diffs = []
    for pair in dict.fromkeys(str(s["pair"]) for s in t["stats"] if s["pair"]):
        side = {s["skip"]: s for s in t["stats"] if s["pair"] == pair}
        if {"no", "yes"} <= set(side) and all(side[k]["single_mean"] != "" for k in ("no", "yes")):
            diffs.append(_of_gap(float(side["no"]["single_mean"]), side["no"])
                         - _of_gap(float(side["yes"]["single_mean"]), side["yes"]))
    diffs = [d for d in diffs if not np.isnan(d)]
    if len(diffs) < 2:
        return ""
    mean, _, low, high = t_interval(diffs)
    interval = f"all {len(diffs)} equal" if min(diffs) == max(diffs) else f"95% t interval {low:.0%} to {high:.0%}"
    return (f" Paired over the {len(diffs)} plain/residual pairs, deleting one block takes the plain twin {mean:.0%} "
            f"of the gap to chance further than the residual twin ({interval}; "
            f"{sum(d > 0 for d in diffs)} of {len(diffs)} pairs further).")


def findings(t: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Flat key -> number for analysis.json: per model the base error, single deletions, and the error at each k."""
    out: dict[str, Any] = {}
    for s in t["stats"]:
        for key in ("base_error", "chance", "single_mean", "single_max", "single_downsampling_max"):
            if s[key] != "":
                out[f"{s['model']}.{key}"] = round(float(s[key]), 6)
    for row in t["k"]:
        out[f"{row['model']}.{row['experiment']}_k{row['k']}"] = round(float(row["mean"]), 6)
    return out


# ----------------------------------------------------------------------------- words


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _of_gap(error: float, s: Mapping[str, Any]) -> float:
    """How far `error` went from the intact net's error towards chance (0: no change, 1: chance)."""
    gap = float(s["chance"]) - float(s["base_error"])
    return (error - float(s["base_error"])) / gap if gap > 0 else float("nan")


def _ks(n: int) -> list[int]:
    return sorted({1, max(1, n // 4), max(1, n // 2), n})


def sentences(t: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """Per model: what was measured, then the verdict against Veit et al. under the rules above."""
    out = []
    for s in t["stats"]:
        model = str(s["model"])
        blocks = [b for b in t["blocks"] if b["model"] == model]
        means = {int(r["k"]): float(r["mean"]) for r in t["k"] if r["model"] == model and r["experiment"] == "delete"}
        swaps = {int(r["k"]): float(r["mean"]) for r in t["k"] if r["model"] == model and r["experiment"] == "swap"}
        lines = [f"{model}: intact test error {_pct(s['base_error'])} (chance {_pct(s['chance'])}), "
                 f"{s['blocks']} blocks."]
        if s["single_mean"] != "":
            lines.append(f"Deleting one block (not downsampling): mean error {_pct(s['single_mean'])}, max "
                         f"{_pct(s['single_max'])} ({_of_gap(float(s['single_mean']), s):.0%} of the way to chance "
                         "on average).")
        down = [b for b in blocks if b["downsamples"] == "yes"]
        if down:
            lines.append("Deleting a downsampling block: " + ", ".join(f"block {b['block']} ({b['name']}) "
                                                                       f"{_pct(b['error'])}" for b in down) + ".")
        lines.append("Deleting k random blocks (mean over draws): " + ", ".join(
            f"k={k} {_pct(means[k])}" for k in _ks(len(blocks)) if k in means) + ".")
        if swaps:
            lines.append("Swapping k random pairs of same-shape blocks: " + ", ".join(
                f"k={k} {_pct(swaps[k])}" for k in _ks(max(swaps)) if k in swaps) + ".")
        draws = max((int(r["draws"]) for r in t["k"] if r["model"] == model), default=1)
        out.append(" ".join(lines + [_verdict(s, blocks, means, draws)]))
    return out


def _verdict(s: Mapping[str, Any], blocks: Sequence[Mapping[str, Any]], means: Mapping[int, float],
             draws: int) -> str:
    inner = [float(b["error"]) for b in blocks if b["downsamples"] == "no"]
    if float(s["chance"]) - float(s["base_error"]) < BARELY * float(s["chance"]):
        return (f"The intact net is itself near chance (it did not learn: error within {BARELY:.0%} of chance), so "
                "deleting its blocks cannot test Veit et al.'s expectation.")
    if s["skip"] == "no":
        if not inner:
            return "Veit et al. expect a plain net to go to chance when a layer is deleted; it has no block to test."
        least = min(inner)
        agree = _of_gap(least, s) >= AT_CHANCE
        return (f"Veit et al. expect a plain net at chance after deleting any layer: the least harmful single deletion "
                f"here gives {_pct(least)} ({_of_gap(least, s):.0%} of the way to chance; 'at chance' means >= "
                f"{AT_CHANCE:.0%}), so this {'agrees' if agree else 'does not agree'}.")
    if s["skip"] != "yes":
        return ""
    words = []
    if inner:
        rise = _of_gap(float(np.mean(inner)), s)
        words.append(f"single deletions {'barely change' if rise < BARELY else 'do change'} the error (mean rise "
                     f"{rise:.0%} of the gap to chance; 'barely' means < {BARELY:.0%})")
    down = [float(b["error"]) for b in blocks if b["downsamples"] == "yes"]
    if down and inner:
        words.append(f"downsampling blocks {'hurt more' if min(down) > max(inner) else 'do not all hurt more'} than "
                     "any other block")
    curve = [float(s["base_error"])] + [means[k] for k in sorted(means)]
    step = max((_of_gap(b, s) - _of_gap(a, s) for a, b in zip(curve, curve[1:])), default=0.0)
    words.append(f"the error grows {'smoothly' if step < SMOOTH else 'in jumps'} with k (largest step {step:.0%} of "
                 f"the gap between means of {draws} draws; 'smooth' means < {SMOOTH:.0%})")
    agree = (not inner or _of_gap(float(np.mean(inner)), s) < BARELY) and step < SMOOTH
    return (f"Veit et al. expect for a ResNet: {'; '.join(words)}: this {'agrees' if agree else 'does not agree'} "
            "with the paper.")


def summary_text(results: Sequence[LesionResult], t: Mapping[str, list[dict[str, Any]]], subset: int | None) -> str:
    r0 = results[0]
    where = "a fixed seeded subset (--subset) of the test set" if subset is not None else \
        "the test images the runs were tested on (data.test_size of them)" if r0.target.cfg.data.test_size else \
        "the whole test set"
    lines = [f"{r.target.label:<{max(len(x.target.label) for x in results)}}  {r.target.at:<4}  "
             f"{model_spec(r.target.cfg)}" for r in results]
    lines += ["", f"Test error on {where} ({r0.images} images), in eval mode. A deleted block is replaced by its "
              "shortcut (identity, or option A at a downsampling block, then post-act's ReLU), in the plain twin "
              "too.", "", f"Expected ({REFERENCE}).", ""]
    return "\n".join(lines + sentences(t) + pair_sentences(t) + spread_sentences(t) + path_sentences(t["paths"]))


# ----------------------------------------------------------------------------- the analysis


def summarise(results: Sequence[LesionResult], options: LesionOptions, common: Common) -> Analysis:
    """The four tables, two figures and the summary, beside Veit et al.'s expectation."""
    t = tables(results)
    extra_tables = (Table("lesion-paths.csv", t["paths"], PATH_FIELDS),) if t["paths"] else ()
    extra_figures = (Figure("lesion-paths.png", lambda path, svg: plot_paths(t["paths"], path, svg)),) \
        if t["paths"] else ()
    if any(r["experiment"] == "swap" for r in t["lesions"]):
        extra_figures += (Figure("lesion-tau.png", lambda path, svg: plot_lesion_tau(t["lesions"], t["stats"], path,
                                                                                     svg)),)
    return Analysis(
        text=summary_text(results, t, options.subset),
        tables=(Table("lesion-stats.csv", t["stats"], STATS_FIELDS), Table("lesion-k.csv", t["k"], K_FIELDS),
                Table("lesion-blocks.csv", t["blocks"], BLOCK_FIELDS), Table("lesion.csv", t["lesions"], LESION_FIELDS),
                *extra_tables),
        figures=(Figure("lesion-k.png", lambda path, svg: plot_lesion_k(t["k"], t["stats"], path, svg)),
                 Figure("lesion-blocks.png", lambda path, svg: plot_single_deletions(t["blocks"], t["stats"], path,
                                                                                     svg)), *extra_figures),
        settings={"at": options.at, "subset": options.subset, "draws": options.draws, "seed": common.seed,
                  "images": results[0].images, "path_images": options.path_images},
        findings=findings(t), reference=REFERENCE)
