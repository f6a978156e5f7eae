"""`reslab analyze responses`'s summary: tables, the figure, and per plain/residual pair the comparison with He et
al. 2015's Figure 7, computed from the stds.

The rule, stated: the residual twin's responses are "generally smaller" when its response std is below the plain
twin's at more than half of the layers (compared layer by layer, both twins having the same layers) and its mean
response std is below the plain twin's too.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

import numpy as np

from reslab.analyze.registry import Common
from reslab.analyze.responses import ResponsesOptions, ResponsesResult
from reslab.analyze.targets import model_spec, skip_of, twin_pairs
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.intervals import t_interval
from reslab.plots.responses import plot_responses

REFERENCE = ("He et al. 2015, Figure 7: the std of layer responses (after batch norm, before the nonlinearity) of "
             "ResNets is generally smaller than that of their plain counterparts: residual functions are closer to "
             "zero than non-residual ones")
MORE_THAN = 0.5  # "generally smaller": smaller at more than this fraction of the layers (and a smaller mean)
LAYER_FIELDS = ["model", "skip", "layer", "block", "name", "after", "std"]
STATS_FIELDS = ["model", "skip", "model_spec", "mode", "layers", "after", "mean_std", "median_std", "max_std"]
PAIR_FIELDS = ["pair", "plain", "residual", "layers", "smaller_layers", "fraction_smaller", "plain_mean_std",
               "residual_mean_std", "ratio_of_means", "verdict"]


def _after(r: ResponsesResult) -> str:
    return "/".join(dict.fromkeys(x.after for x in r.layers))


def tables(results: Sequence[ResponsesResult]) -> dict[str, list[dict[str, Any]]]:
    """Per layer, per model, and per plain/residual pair."""
    layers, stats = [], []
    for r in results:
        skip = skip_of(r.target.cfg)
        layers += [{"model": r.target.label, "skip": skip, "layer": x.layer, "block": x.block, "name": x.name,
                    "after": x.after, "std": x.std} for x in r.layers]
        stds = np.array([x.std for x in r.layers])
        stats.append({"model": r.target.label, "skip": skip, "model_spec": model_spec(r.target.cfg), "mode": r.mode,
                      "layers": len(stds), "after": _after(r), "mean_std": float(stds.mean()),
                      "median_std": float(np.median(stds)), "max_std": float(stds.max())})
    return {"layers": layers, "stats": stats, "pairs": pairs(results)}


def pairs(results: Sequence[ResponsesResult]) -> list[dict[str, Any]]:
    """Each plain/residual pair (configs differing in model.residual alone) compared layer by layer."""
    titles = twin_pairs([r.target for r in results])
    by_label = {r.target.label: r for r in results}
    out = []
    for title in dict.fromkeys(titles.values()):
        plain, residual = (by_label[label] for label in title.split(" vs "))
        p, q = np.array([x.std for x in plain.layers]), np.array([x.std for x in residual.layers])
        if len(p) != len(q) or not len(p):
            continue
        smaller = int((q < p).sum())
        fraction = smaller / len(p)
        general = fraction > MORE_THAN and q.mean() < p.mean()
        out.append({"pair": title, "plain": plain.target.label, "residual": residual.target.label, "layers": len(p),
                    "smaller_layers": smaller, "fraction_smaller": fraction, "plain_mean_std": float(p.mean()),
                    "residual_mean_std": float(q.mean()), "ratio_of_means": float(q.mean() / p.mean())
                    if p.mean() > 0 else float("nan"), "verdict": "smaller" if general else "not smaller"})
    return out


def findings(t: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in t["stats"]:
        out[f"{s['model']}.mean_std"] = round(float(s["mean_std"]), 6)
    for p in t["pairs"]:
        out[f"{p['pair']}.fraction_smaller"] = round(float(p["fraction_smaller"]), 6)
        out[f"{p['pair']}.ratio_of_means"] = round(float(p["ratio_of_means"]), 6)
    return out


def _g(x: Any) -> str:
    return f"{float(x):.3g}"


def sentences(t: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """A sentence per model, then per pair the verdict against He et al.'s Figure 7 under the rule above."""
    after = {s["model"]: s["after"] for s in t["stats"]}
    out = [f"{s['model']} ({'residual' if s['skip'] == 'yes' else 'plain' if s['skip'] == 'no' else 'no skip switch'}, "
           f"{s['mode']} mode): response std over its {s['layers']} layers mean {_g(s['mean_std'])}, median "
           f"{_g(s['median_std'])}, largest {_g(s['max_std'])}"
           + ("." if s["after"] == "bn" else " (no batch norm: responses after the layer's linear/conv op, not after "
                                             "BN as in the paper).") for s in t["stats"]]
    for p in t["pairs"]:
        bn = after.get(p["plain"]) == "bn" and after.get(p["residual"]) == "bn"
        agree = p["verdict"] == "smaller"
        out.append(f"{p['pair']}: the residual twin's response std is smaller at {p['smaller_layers']} of "
                   f"{p['layers']} layers ({float(p['fraction_smaller']):.0%}), mean {_g(p['residual_mean_std'])} "
                   f"against {_g(p['plain_mean_std'])} (ratio {_g(p['ratio_of_means'])}): "
                   + ("the ResNet's responses are generally smaller than its plain twin's, as in He et al.'s Figure 7"
                      if agree else "the ResNet's responses are not generally smaller than its plain twin's, unlike "
                                    "He et al.'s Figure 7")
                   + f" ('generally smaller': at more than {MORE_THAN:.0%} of the layers and in the mean)"
                   + ("." if bn else "; without batch norm in both twins this is not the paper's measurement."))
    if len(t["pairs"]) >= 2:
        ratios = [float(p["ratio_of_means"]) for p in t["pairs"]]
        mean, _, low, high = t_interval(ratios)
        smaller = sum(p["verdict"] == "smaller" for p in t["pairs"])
        interval = f"all {len(ratios)} equal" if min(ratios) == max(ratios) else \
            f"95% t interval {_g(low)} to {_g(high)}"
        out.append(f"Over the {len(ratios)} pairs (seeds): the residual twin's responses are generally smaller in "
                   f"{smaller} of {len(ratios)}; its mean response std over the plain twin's is {_g(mean)} on average "
                   f"({interval}; below 1: smaller).")
    if not t["pairs"]:
        out.append("No plain/residual twins among the models (configs that differ in model.residual alone), so He et "
                   "al.'s comparison was not made.")
    return out


def summary_text(results: Sequence[ResponsesResult], t: Mapping[str, list[dict[str, Any]]], batches: int) -> str:
    width = max(len(r.target.label) for r in results)
    lines = [f"{r.target.label:<{width}}  {r.target.at:<4}  {model_spec(r.target.cfg)}" for r in results]
    lines += ["", f"Std of each block layer's response (after its norm, before the ReLU and the addition; without a "
              f"norm, the layer's linear/conv output) on {batches} training batches; trained nets in eval mode.", "",
              f"Expected ({REFERENCE}).", ""]
    return "\n".join(lines + sentences(t))


def summarise(results: Sequence[ResponsesResult], options: ResponsesOptions, common: Common) -> Analysis:
    t = tables(results)
    return Analysis(
        text=summary_text(results, t, options.batches),
        tables=(Table("responses-stats.csv", t["stats"], STATS_FIELDS),
                Table("responses-pairs.csv", t["pairs"], PAIR_FIELDS),
                Table("responses-layers.csv", t["layers"], LAYER_FIELDS)),
        figures=(Figure("responses.png", partial(plot_responses, t["layers"])),),
        settings={"at": options.at, "batches": options.batches, "seed": common.seed},
        findings=findings(t), reference=REFERENCE)
