"""`reslab analyze fcn`'s summary: tables, figures, findings and sentences from the detections.

Verdicts use stated rules: mAP >= 0.7 "works as a detector", >= 0.3 "detects some digits", below "detection is
poor"; a cause is named from the numbers (the classifier's own accuracy on the same digits under 90%, precision or
recall at the threshold under 50%). The surgery is "exact" when the class map's mean is within 1e-3 of the logits.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from reslab.analyze.fcn import FLOOR, FcnMeasurement, FcnOptions, FcnResult
from reslab.analyze.fcn_detect import ClassScore, evaluate, mean_ap
from reslab.analyze.registry import Common
from reslab.analyze.targets import model_spec, skip_of
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.plots.fcn import plot_ap, plot_examples

REFERENCE = ("Long, Shelhamer and Darrell 2015 (fully convolutional networks) and Sermanet et al. 2014 (OverFeat): "
             "a classifier's head applied as a convolution is the classifier slid over a larger image, in one pass")
WORKS, SOME = 0.7, 0.3  # mAP bounds of the verdicts
WEAK_CLASSIFIER, LOW = 0.9, 0.5  # the classifier's accuracy on single digits; precision/recall "low" below
EXACT = 1e-3  # the surgery's largest |mean of the class map - logits| still called exact (float rounding)
STATS_FIELDS = ["model", "at", "model_spec", "skip", "digit_acc", "digits_checked", "surgery_diff", "stride",
                "window", "canvases", "truths", "detections", "true_positives", "precision", "recall", "map"]
CLASS_FIELDS = ["model", "class", "name", "truths", "detections", "true_positives", "precision", "recall", "ap"]
BOX_FIELDS = ["model", "canvas", "class", "score", "x0", "y0", "x1", "y1", "true_positive"]
TRUTH_FIELDS = ["canvas", "class", "test_index", "x0", "y0", "x1", "y1"]
STATS_CSV = "fcn-stats.csv"  # a row per model: the lab's report reads it (reslab.lab.fcn_report)


def _num(x: float, digits: int = 6) -> float | str:
    return "" if math.isnan(x) else round(x, digits)


def tables(m: FcnMeasurement, options: FcnOptions) -> dict[str, list[dict[str, Any]]]:
    t: dict[str, list[dict[str, Any]]] = {"stats": [], "classes": [], "boxes": [], "truth": []}
    truths = [c.truth for c in m.canvases]
    for n, c in enumerate(m.canvases):
        for box, label, index in zip(c.truth.boxes.tolist(), c.truth.labels.tolist(), c.sources):
            t["truth"].append({"canvas": n, "class": label, "test_index": index,
                               **dict(zip(("x0", "y0", "x1", "y1"), box))})
    for r in m.results:
        scores, flags = evaluate(r.detections, truths, len(m.classes), iou_threshold=options.iou,
                                 threshold=options.threshold)
        t["stats"].append(_stats(r, scores, m, options))
        t["classes"] += [{"model": r.target.label, "class": c.label, "name": m.classes[c.label], "truths": c.truths,
                          "detections": c.detections, "true_positives": c.true_positives,
                          "precision": _num(c.precision), "recall": _num(c.recall), "ap": _num(c.ap)} for c in scores]
        for n, (found, tp) in enumerate(zip(r.detections, flags)):
            for box, label, score, hit in zip(found.boxes.tolist(), found.labels.tolist(), found.scores.tolist(),
                                              tp.tolist()):
                t["boxes"].append({"model": r.target.label, "canvas": n, "class": label, "score": round(score, 6),
                                   **{k: round(v, 2) for k, v in zip(("x0", "y0", "x1", "y1"), box)},
                                   "true_positive": "yes" if hit else "no"})
    return t


def _stats(r: FcnResult, scores: Sequence[ClassScore], m: FcnMeasurement, options: FcnOptions) -> dict[str, Any]:
    truths, found = sum(c.truths for c in scores), sum(c.detections for c in scores)
    hits = sum(c.true_positives for c in scores)
    return {"model": r.target.label, "at": r.target.at, "model_spec": model_spec(r.target.cfg),
            "skip": skip_of(r.target.cfg), "digit_acc": round(r.digit_acc, 6), "digits_checked": r.digits_checked,
            "surgery_diff": float(f"{r.surgery_diff:.3g}"), "stride": f"{r.stride[0]:g}x{r.stride[1]:g}",
            "window": f"{r.window[0]}x{r.window[1]}", "canvases": len(m.canvases), "truths": truths,
            "detections": found, "true_positives": hits, "precision": _num(hits / found if found else math.nan),
            "recall": _num(hits / truths if truths else math.nan), "map": _num(mean_ap(scores))}


def findings(t: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in t["stats"]:
        for key in ("map", "precision", "recall", "digit_acc", "surgery_diff"):
            if s[key] != "":
                out[f"{s['model']}.{key}"] = s[key]
    for c in t["classes"]:
        if c["ap"] != "":
            out[f"{c['model']}.ap_{c['class']}"] = c["ap"]  # by class index: names may hold spaces
    return out


# ----------------------------------------------------------------------------- words


def _pct(x: Any) -> str:
    return "n/a" if x == "" else f"{100 * float(x):.1f}%"


def verdict(s: Mapping[str, Any], options: FcnOptions) -> str:
    """The verdict on one model under the rules above, with the causes its numbers show."""
    if s["map"] == "":
        return "No canvas holds a digit, so detection cannot be judged."
    m = float(s["map"])
    words = ("works as a detector here" if m >= WORKS else "detects some digits, with many misses or false alarms"
             if m >= SOME else "is a poor detector here")
    causes = []
    if float(s["digit_acc"]) < WEAK_CLASSIFIER:
        causes.append(f"the classifier itself is weak on the same digits alone ({_pct(s['digit_acc'])} accuracy), so "
                      "a detector made of it cannot do better")
    if s["precision"] == "":
        causes.append(f"it is confident (>= {options.threshold:g}) about no window at all")
    elif float(s["precision"]) < LOW:
        causes.append("most windows it is confident about hold no digit of that class: it was trained on centred "
                      "digits only and has no background class, so empty canvas and parts or pairs of digits get "
                      "confident labels")
    if float(s["recall"] or 0) < LOW:
        causes.append(f"many digits are missed: their window's confidence stays under {options.threshold:g}, or the "
                      f"box misses IoU {options.iou:g} (digit scales between the pyramid's, places between the "
                      f"stride-{s['stride']} grid)")
    why = f" ({'; '.join(causes)})" if causes and m < WORKS else ""
    return f"By the rule (mAP >= {WORKS:g}: works; >= {SOME:g}: some; below: poor), it {words}{why}."


def sentences(t: Mapping[str, list[dict[str, Any]]], options: FcnOptions) -> list[str]:
    out = []
    for s in t["stats"]:
        model = str(s["model"])
        rows = [c for c in t["classes"] if c["model"] == model and c["ap"] != ""]
        ranked = sorted(rows, key=lambda c: float(c["ap"]))
        exact = float(s["surgery_diff"]) <= EXACT
        line = [f"{model}: mAP@{options.iou:g} {_pct(s['map'])}; at confidence >= {options.threshold:g} precision "
                f"{_pct(s['precision'])} and recall {_pct(s['recall'])} ({s['true_positives']} of {s['truths']} "
                f"digits found, {s['detections']} detections)."]
        if ranked:
            line.append(f"Best class {ranked[-1]['name']} (AP {_pct(ranked[-1]['ap'])}), worst {ranked[0]['name']} "
                        f"(AP {_pct(ranked[0]['ap'])}).")
        line.append(f"Alone, the same classifier labels {_pct(s['digit_acc'])} of {s['digits_checked']} test digits "
                    f"correctly; the mean of its class map equals its logits to within {float(s['surgery_diff']):.2g}"
                    + (" (exact up to rounding)." if exact else f", more than {EXACT:g}: the surgery is wrong."))
        out.append(" ".join(line + [verdict(s, options)]))
    return out


def summary_text(m: FcnMeasurement, t: Mapping[str, list[dict[str, Any]]], options: FcnOptions) -> str:
    labels = [r.target.label for r in m.results]
    lines = [f"{r.target.label:<{max(map(len, labels))}}  {r.target.at:<4}  {model_spec(r.target.cfg)}"
             for r in m.results]
    spec, r0 = m.spec, m.results[0]
    digits = sum(len(c.truth) for c in m.canvases)
    lines += ["", "Network surgery: each model's head (one linear layer after global average pooling) became a 1x1 "
              "convolution with the same weights, applied to its last feature map without the pooling: a class map "
              "(logits at every place). For global average pooling then a linear layer, the mean of that map over "
              "the places is exactly the classifier's logits.",
              f"Canvases: {len(m.canvases)} of {spec.size}x{spec.size} pixels, {spec.digits[0]} to {spec.digits[1]} "
              f"digits each ({digits} in all), from the TEST SET of {m.dataset} only ({m.test_images} images; none "
              f"the classifier was trained on), scaled {spec.scales[0]:g} to {spec.scales[1]:g} times (log-uniform), "
              f"seed {spec.seed}. A digit's true box is its whole scaled {r0.frame[0]}x{r0.frame[1]} frame.",
              f"Detector: the classifier's softmax on windows of {r0.window[0]}x{r0.window[1]} map cells (the map of "
              f"one training image; stride {r0.stride[0]:g} pixels), at pyramid scales "
              f"{', '.join(f'{p:g}' for p in options.pyramid)}; per class, 3x3 local maxima of confidence >= "
              f"{FLOOR:g}, non-maximum suppression at IoU {options.nms_iou:g}. A detection is correct at IoU >= "
              f"{options.iou:g} with an unmatched true box of its class; AP is the area under the precision envelope "
              "(PASCAL VOC 2010+), mAP its mean over the classes present.", "", f"Reference: {REFERENCE}.", ""]
    return "\n".join(lines + sentences(t, options))


def summarise(m: FcnMeasurement, options: FcnOptions, common: Common) -> Analysis:
    t = tables(m, options)
    shown = list(range(min(options.examples, len(m.canvases))))
    images = [m.canvases[n].image.permute(1, 2, 0).numpy() for n in shown]
    figures = (Figure("fcn-ap.png", lambda path, svg: plot_ap(t["classes"], t["boxes"], t["stats"], path, svg)),)
    if shown:
        figures += (Figure("fcn-examples.png", lambda path, svg: plot_examples(
            images, t["truth"], t["boxes"], [str(s["model"]) for s in t["stats"]], m.classes, options.threshold,
            path, svg)),)
    return Analysis(
        text=summary_text(m, t, options),
        tables=(Table(STATS_CSV, t["stats"], STATS_FIELDS), Table("fcn-classes.csv", t["classes"], CLASS_FIELDS),
                Table("fcn-detections.csv", t["boxes"], BOX_FIELDS), Table("fcn-truth.csv", t["truth"], TRUTH_FIELDS)),
        figures=figures,
        settings={"at": options.at, "seed": common.seed, "canvases": options.canvases, "size": options.size,
                  "digits": list(options.digits), "scales": list(options.scales), "pyramid": list(options.pyramid),
                  "threshold": options.threshold, "iou": options.iou, "nms_iou": options.nms_iou,
                  "digits_from": f"{m.dataset} test set only", "examples": len(shown)},
        findings=findings(t), reference=REFERENCE)
