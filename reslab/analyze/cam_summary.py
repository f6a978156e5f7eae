"""`reslab analyze cam`'s summary: tables, figures, findings and sentences made of the maps and curves.

A map's faithfulness is its gain over a random order: deletion gain = AUC(random) - AUC(map) (the class's
probability falls faster), insertion gain = AUC(map) - AUC(random) (it rises faster); positive is better. Both
are paired over the same images, with a 95% t interval over images. Twins (plain and residual of one family,
depth, checkpoint and training seed) are compared on the same images (interval over images) and, given several
seeds, by their per-seed means (interval over seeds: the training seed's noise). A difference whose interval holds
0 is called inconclusive, and one under MIN_GAIN (in AUC units) too small to matter.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from reslab.analyze.cam import METHODS, CamMeasurement, CamOptions, CamResult
from reslab.analyze.cam_faith import BLUR_FRACTION, auc
from reslab.analyze.registry import Common
from reslab.analyze.targets import family_of, model_spec, skip_of
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.plots.cam import plot_cam_curves, plot_cam_grid, plot_class_means
from reslab.intervals import t_interval

REFERENCE = ("Zhou et al. 2016 (CAM), Selvaraju et al. 2017 (Grad-CAM: ReLU(CAM)/(h w) for a GAP + linear head); "
             "Petsiuk et al. 2018: a faithful map's deletion curve falls and insertion curve rises faster than a "
             "random order's")
IMAGE_FIELDS = ["model", "image", "label", "predicted", "confidence", "method", "deletion_auc", "insertion_auc"]
CURVE_FIELDS = ["model", "method", "curve", "fraction", "mean", "low", "high"]
STATS_FIELDS = ["model", "at", "model_spec", "skip", "seed", "images", "accuracy", "feature_map", "method",
                "deletion_auc", "deletion_low", "deletion_high", "insertion_auc", "insertion_low", "insertion_high",
                "deletion_gain", "deletion_gain_low", "deletion_gain_high", "insertion_gain", "insertion_gain_low",
                "insertion_gain_high"]
POINTING_FIELDS = ["pointing", "pointing_low", "pointing_high", "pointing_chance"]  # with --canvas
PAIR_FIELDS = ["pair", "seed", "method", "metric", "plain", "residual", "difference", "low", "high", "n", "over"]
GAINS = ("deletion_gain", "insertion_gain")
MIN_GAIN = 0.01  # AUC units: a gain or difference smaller than this is called negligible, whatever its interval


def _aucs(r: CamResult) -> dict[str, dict[str, np.ndarray]]:
    """method -> deletion_auc, insertion_auc, deletion_gain, insertion_gain: (N,) per image."""
    import torch

    got = {m: {f"{c}_auc": auc(torch.from_numpy(r.curves[(m, c)])).numpy() for c in ("deletion", "insertion")}
           for m in METHODS}
    for m in METHODS:
        got[m]["deletion_gain"] = got["random"]["deletion_auc"] - got[m]["deletion_auc"]
        got[m]["insertion_gain"] = got[m]["insertion_auc"] - got["random"]["insertion_auc"]
    return got


def _ci(xs: np.ndarray) -> tuple[float, float, float]:
    mean, _, low, high = t_interval([float(x) for x in xs])
    return mean, low, high


def _pairs(results: Sequence[CamResult]) -> list[tuple[CamResult, CamResult]]:
    """(plain, residual) twins: one family, depth, checkpoint and training seed, differing only in the skip."""
    def key(r: CamResult) -> tuple:
        cfg = r.target.cfg
        return family_of(cfg), str(cfg.model.args.get("depth")), r.target.at, cfg.train.seed

    residual = {key(r): r for r in results if skip_of(r.target.cfg) == "yes"}
    return [(r, residual[key(r)]) for r in results if skip_of(r.target.cfg) == "no" and key(r) in residual]


def tables(m: CamMeasurement) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"images": [], "curves": [], "stats": [], "pairs": []}
    steps = m.options.steps
    for r in m.results:
        label, aucs = r.target.label, _aucs(r)
        accuracy = float((r.labels == r.predicted).mean())
        for method in METHODS:
            a = aucs[method]
            out["images"] += [{"model": label, "image": i, "label": m.classes[int(r.labels[i])],
                               "predicted": m.classes[int(r.predicted[i])], "confidence": float(r.confidence[i]),
                               "method": method, "deletion_auc": float(a["deletion_auc"][i]),
                               "insertion_auc": float(a["insertion_auc"][i])} for i in range(len(r.labels))]
            for kind in ("deletion", "insertion"):
                curves = r.curves[(method, kind)]
                for k in range(steps + 1):
                    mean, low, high = _ci(curves[:, k])
                    out["curves"].append({"model": label, "method": method, "curve": kind, "fraction": k / steps,
                                          "mean": mean, "low": low, "high": high})
            row = {"model": label, "at": r.target.at, "model_spec": model_spec(r.target.cfg),
                   "skip": skip_of(r.target.cfg), "seed": r.target.cfg.train.seed, "images": len(r.labels),
                   "accuracy": accuracy, "feature_map": "x".join(map(str, r.feature_shape)), "method": method}
            for name in ("deletion_auc", "insertion_auc", *GAINS):
                stem = name.removesuffix("_auc")
                mean, low, high = _ci(a[name])
                row |= {name: mean, f"{stem}_low": low, f"{stem}_high": high}
            if r.pointing is not None and m.chance is not None:
                mean, low, high = _ci(r.pointing.astype(float))
                row |= {"pointing": mean, "pointing_low": low, "pointing_high": high,
                        "pointing_chance": float(m.chance.mean())}
            out["stats"].append(row)
    out["pairs"] = pair_rows(m.results)
    return out


def pair_rows(results: Sequence[CamResult]) -> list[dict[str, Any]]:
    """Residual minus plain gain per method: over images for each seed, and over seeds when several are given."""
    rows: list[dict[str, Any]] = []
    by_family: dict[str, list[tuple[int, dict, dict]]] = {}
    for plain, res in _pairs(results):
        title, seed = f"{plain.target.label} vs {res.target.label}", plain.target.cfg.train.seed
        pa, ra = _aucs(plain), _aucs(res)
        for method in ("cam", "gradcam"):
            for metric in GAINS:
                diff, low, high = _ci(ra[method][metric] - pa[method][metric])
                rows.append({"pair": title, "seed": seed, "method": method, "metric": metric,
                             "plain": float(pa[method][metric].mean()), "residual": float(ra[method][metric].mean()),
                             "difference": diff, "low": low, "high": high, "n": len(plain.labels), "over": "images"})
        depth = plain.target.cfg.model.args.get("depth")
        family = f"{family_of(plain.target.cfg)}{'' if depth is None else f' depth {depth}'} @{plain.target.at}"
        by_family.setdefault(family, []).append((seed, pa, ra))
    for family, seeds in by_family.items():
        if len(seeds) < 2:
            continue
        for method in ("cam", "gradcam"):
            for metric in GAINS:
                plain = [float(pa[method][metric].mean()) for _, pa, _ in seeds]
                res = [float(ra[method][metric].mean()) for _, _, ra in seeds]
                diff, low, high = _ci(np.array(res) - np.array(plain))
                rows.append({"pair": family, "seed": "all", "method": method, "metric": metric,
                             "plain": float(np.mean(plain)), "residual": float(np.mean(res)), "difference": diff,
                             "low": low, "high": high, "n": len(seeds), "over": "seeds"})
    return rows


# ----------------------------------------------------------------------------- words


def _interval(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f}" + ("" if math.isnan(low) else f" [{low:.3f}, {high:.3f}]")


def _verdict(mean: float, low: float, high: float, better: str, worse: str) -> str:
    if math.isnan(low):
        return "inconclusive (too few for an interval)"
    if low <= 0 <= high:
        return "inconclusive (the interval holds 0)"
    if abs(mean) < MIN_GAIN:
        return f"negligible (under {MIN_GAIN:g}), though the interval excludes 0"
    return better if low > 0 else worse


def _curve_words(s: dict[str, Any], random: dict[str, Any], kind: str) -> str:
    """'deletion AUC 0.21 [0.18, 0.24] vs random 0.45, gain 0.24 [...]: more faithful than random'."""
    gain = (s[f"{kind}_gain"], s[f"{kind}_gain_low"], s[f"{kind}_gain_high"])
    return (f"{kind} AUC {_interval(s[f'{kind}_auc'], s[f'{kind}_low'], s[f'{kind}_high'])} vs random "
            f"{random[f'{kind}_auc']:.3f}, gain {_interval(*gain)}: "
            + _verdict(*gain, "more faithful than random", "less faithful than random"))


def sentences(m: CamMeasurement, t: dict[str, list[dict[str, Any]]]) -> list[str]:
    o = m.options
    start = {"paper": "deletion to the dataset's mean colour, insertion from a blurred copy (the paper's)",
             "mean": "the dataset's mean colour for both", "blur": "a blurred copy for both"}[o.baseline]
    images = (f"canvases of {o.canvas}x{o.canvas} pixels, each holding one test image of {m.dataset} at its own size "
              "at a random place" if o.canvas else f"test images of {m.dataset}")
    lines = [f"Class activation maps on {len(m.results[0].labels)} {images} (the same for every "
             f"model); deletion and insertion curves of the predicted class in {o.steps} steps, baseline: {start} "
             f"(blur sigma = {BLUR_FRACTION:g} of the shorter side). AUCs with 95% t intervals over images; gain = "
             "how much better than a random pixel order (positive: more faithful)."]
    for r in m.results:
        rows = {row["method"]: row for row in t["stats"] if row["model"] == r.target.label}
        acc, chance = rows["cam"]["accuracy"], 1 / len(m.classes)
        head = f"{r.target.label} (features {rows['cam']['feature_map']}, accuracy {acc:.1%} on these images)"
        if acc < chance + 0.1 * (1 - chance):
            head += (": near chance, since the global average over a canvas that is mostly background is not the "
                     "image's class; the pointing game below asks whether the true class's map finds the image"
                     if o.canvas else ": near chance, so its maps explain little")
        lines.append(head + ".")
        if "pointing" in rows["cam"]:
            s = rows["cam"]
            found = "finds the image" if s["pointing_low"] > s["pointing_chance"] else "does not find the image " \
                "better than chance shown"
            lines.append(f"  Pointing game (Zhang et al. 2016): the true class's map peaks inside the image's box on "
                         f"{_interval(s['pointing'], s['pointing_low'], s['pointing_high'])} of the canvases (a random "
                         f"point: {s['pointing_chance']:.3f}): the map {found}.")
        for method in ("cam", "gradcam"):
            s, name = rows[method], "CAM" if method == "cam" and r.exact_cam else "Grad-CAM"
            if method == "cam" and not r.exact_cam:
                continue
            lines.append(f"  {name}: " + "; ".join(_curve_words(s, rows["random"], kind)
                                                    for kind in ("deletion", "insertion")) + ".")
    if any(r.exact_cam for r in m.results):
        lines.append("With a global-average-pooling + linear head Grad-CAM is ReLU(CAM)/(h w): it orders pixels as CAM "
                     "does where CAM is positive and leaves the rest tied (in random order).")
    for p in t["pairs"]:
        what = f"{'CAM' if p['method'] == 'cam' else 'Grad-CAM'} {p['metric'].replace('_', ' ')}"
        over = f"over {p['n']} images" if p["over"] == "images" else f"over {p['n']} paired seeds"
        verdict = _verdict(p["difference"], p["low"], p["high"], "the residual twin's maps are more faithful",
                           "the plain twin's maps are more faithful")
        lines.append(f"{p['pair']}" + (f" (seed {p['seed']})" if p["over"] == "images" else "") + f": {what} residual "
                     f"minus plain {_interval(p['difference'], p['low'], p['high'])} {over}: {verdict}.")
    if t["pairs"] and not any(p["over"] == "seeds" for p in t["pairs"]):
        lines.append("One training seed per twin: the intervals above are over images, not over training runs; give "
                     "runs of several seeds for a comparison paired by seed.")
    if not t["pairs"] and len(m.results) > 1:
        lines.append("No plain/residual twins among the runs (same family, depth, checkpoint and seed): no paired "
                     "comparison.")
    return lines


def summarise(m: CamMeasurement, options: CamOptions, common: Common) -> Analysis:
    t = tables(m)
    labels = [m.classes[int(c)] for c in m.results[0].labels[:len(m.images)]]

    def grid(method: str) -> list[tuple[str, np.ndarray, list[str]]]:
        cols = []
        for r in m.results:
            for which, classes in (("true", r.labels), ("predicted", r.predicted)):
                cols.append((f"{r.target.label}\n{which}", r.shown[f"{method}-{which}"],
                             [m.classes[int(c)] for c in classes[:len(m.images)]]))
        return cols

    cam_name = "CAM" if all(r.exact_cam for r in m.results) else "CAM (Grad-CAM where the head is not GAP + linear)"
    figures = (
        Figure("cam-grid.png", lambda p, svg: plot_cam_grid(m.images, labels, grid("cam"), p,
                                                            f"{cam_name}: true and top predicted class", svg)),
        Figure("cam-gradcam-grid.png", lambda p, svg: plot_cam_grid(m.images, labels, grid("gradcam"), p,
                                                                    "Grad-CAM: true and top predicted class", svg)),
        Figure("cam-classes.png", lambda p, svg: plot_class_means({r.target.label: r.class_means for r in m.results},
                                                                  m.classes, p, svg)),
        Figure("cam-curves.png", lambda p, svg: plot_cam_curves(t["curves"], p, svg)))
    findings: dict[str, Any] = {}
    for row in t["stats"]:
        for key in ("deletion_auc", "insertion_auc", *GAINS):
            findings[f"{row['model']}.{row['method']}.{key}"] = row[key]
        findings[f"{row['model']}.accuracy"] = row["accuracy"]
        if "pointing" in row:
            findings[f"{row['model']}.pointing"] = row["pointing"]
    for p in t["pairs"]:
        findings[f"{p['pair']}.{p['seed']}.{p['method']}.{p['metric']}.difference"] = p["difference"]
    return Analysis(
        text="\n".join(sentences(m, t)),
        tables=(Table("cam-stats.csv", t["stats"], STATS_FIELDS + (POINTING_FIELDS if options.canvas else [])), Table("cam-pairs.csv", t["pairs"], PAIR_FIELDS),
                Table("cam-curves.csv", t["curves"], CURVE_FIELDS), Table("cam-images.csv", t["images"], IMAGE_FIELDS)),
        figures=figures,
        settings={"at": options.at, "images": options.images, "show": options.show, "steps": options.steps,
                  "baseline": options.baseline, "canvas": options.canvas, "seed": common.seed},
        findings=findings, reference=REFERENCE)
