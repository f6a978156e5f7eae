"""`reslab analyze init`'s summary: tables, the figure, findings and sentences computed from the stds.

The verdict uses two stated rules: an activation std "grows" when the last block's is more than
GROWS times the first block's, and stays "flat" when the two are within a factor FLAT of each other
(the steps through downsampling blocks left out, see `growth`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

import numpy as np

from reslab.analyze.init import InitOptions, InitResult, form_of
from reslab.analyze.registry import Common
from reslab.analyze.targets import model_spec
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.plots.init import plot_init_std

REFERENCE = ("De and Smith 2020 (SkipInit), Bachlechner et al. 2020 (ReZero), Zhang, Dauphin and Ma 2019 (Fixup): an "
             "unnormalised residual net with a plain sum has activation variance growing with depth; SkipInit/ReZero "
             "and Fixup keep it flat")
GROWS, FLAT = 2.0, 1.5
BLOCK_FIELDS = ["source", "model", "form", "block", "name", "downsamples", "out_std", "branch_std", "skip_std", "ratio"]
STATS_FIELDS = ["source", "model", "form", "kind", "model_spec", "blocks", "input_std", "first_std", "last_std",
                "growth", "max_std", "mean_ratio"]


def _source(result: InitResult) -> str:
    return result.target.label.rsplit(":", 1)[0] if result.form else "models as given"


def tables(results: Sequence[InitResult]) -> dict[str, list[dict[str, Any]]]:
    """Per block (block 0: the input of the first) and per model."""
    blocks: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    for r in results:
        common = {"source": _source(r), "model": r.target.label, "form": r.form}
        residual = bool(r.target.cfg.model.args.get("residual"))
        blocks.append({**common, "block": 0, "name": "input", "downsamples": "", "out_std": r.input_std})
        blocks += [{**common, "block": b.block, "name": b.name, "downsamples": "yes" if b.downsamples else "no",
                    "out_std": b.out_std, "branch_std": b.branch_std, "skip_std": b.skip_std,
                    "ratio": b.branch_std / b.skip_std if residual and b.skip_std > 0 else ""} for b in r.blocks]
        ratios = [b.branch_std / b.skip_std for b in r.blocks if residual and b.skip_std > 0]
        stats.append({**common, "kind": form_of(r.target.cfg), "model_spec": model_spec(r.target.cfg),
                      "blocks": len(r.blocks), "input_std": r.input_std, "first_std": r.blocks[0].out_std,
                      "last_std": r.blocks[-1].out_std, "growth": growth(r.blocks),
                      "max_std": max(b.out_std for b in r.blocks),
                      "mean_ratio": float(np.mean(ratios)) if ratios else ""})
    return {"blocks": blocks, "stats": stats}


def growth(blocks: Sequence[Any]) -> float:
    """The std after the last block over the std after the first, leaving out the steps of downsampling blocks:
    their option-A shortcut zero-pads half the channels, which changes the std without any depth behind it."""
    steps = [b.out_std / a.out_std if a.out_std > 0 else float("nan")
             for a, b in zip(blocks, blocks[1:]) if not b.downsamples]
    return float(np.prod(steps)) if steps else 1.0


def findings(stats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in stats:
        for key in ("growth", "first_std", "last_std", "mean_ratio"):
            if s[key] != "":
                out[f"{s['model']}.{key}"] = round(float(s[key]), 6)
    return out


def _g(x: Any) -> str:
    return f"{float(x):.3g}"


def sentences(stats: Sequence[Mapping[str, Any]]) -> list[str]:
    """A sentence per model, then per source the verdict against the expectation, under the rules above."""
    out = [f"{s['model']} ({s['kind']}): activation std {_g(s['first_std'])} after block 1, {_g(s['last_std'])} after "
           f"block {s['blocks']} (growth x{_g(s['growth'])}, largest {_g(s['max_std'])})"
           + (f"; mean std(branch)/std(skip) {_g(s['mean_ratio'])}." if s["mean_ratio"] != "" else ".")
           for s in stats]
    for source in dict.fromkeys(str(s["source"]) for s in stats):
        by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for s in stats:
            if s["source"] == source:
                by_kind.setdefault(str(s["kind"]), []).append(s)
        out += _verdict(source, by_kind)
    return out


def _verdict(source: str, by_kind: Mapping[str, list[Mapping[str, Any]]]) -> list[str]:
    plain_sum, scaled = by_kind.get("plain-sum", []), by_kind.get("rezero", []) + by_kind.get("fixup", [])
    if not plain_sum or not scaled:
        return [f"{source}: to test the expectation, measure an unnormalised plain-sum residual net beside a rezero "
                "or fixup one (the default --forms does)."]
    grows = all(float(s["growth"]) > GROWS for s in plain_sum)
    flat = all(1 / FLAT <= float(s["growth"]) <= FLAT for s in scaled)
    words = ", ".join(f"{s['model']} x{_g(s['growth'])}" for s in plain_sum + scaled)
    return [f"{source}: std growth from the first block to the last (downsampling steps left out): {words}. "
            f"The plain sum {'grows' if grows else 'does not grow'} ('grows': > x{GROWS:g}); ReZero/Fixup "
            f"{'stay flat' if flat else 'do not stay flat'} ('flat': within x{FLAT:g}); this "
            f"{'agrees' if grows and flat else 'does not agree'} with the expectation."]


def summary_text(results: Sequence[InitResult], stats: Sequence[Mapping[str, Any]], batches: int) -> str:
    width = max(len(r.target.label) for r in results)
    lines = [f"{r.target.label:<{width}}  {model_spec(r.target.cfg)}" for r in results]
    lines += ["", f"At initialisation, train mode (batch norm on the batch's statistics), {batches} training batches; "
              "std of each block's output, and of its branch (alpha * body(x)) against its shortcut.", "",
              f"Expected ({REFERENCE}).", ""]
    return "\n".join(lines + sentences(stats))


def summarise(results: Sequence[InitResult], options: InitOptions, common: Common) -> Analysis:
    t = tables(results)
    return Analysis(
        text=summary_text(results, t["stats"], options.batches),
        tables=(Table("init-stats.csv", t["stats"], STATS_FIELDS), Table("init-blocks.csv", t["blocks"], BLOCK_FIELDS)),
        figures=(Figure("init-std.png", partial(plot_init_std, t["blocks"])),),
        settings={"forms": list(dict.fromkeys(r.form for r in results if r.form)), "batches": options.batches,
                  "seed": common.seed},
        findings=findings(t["stats"]), reference=REFERENCE)
