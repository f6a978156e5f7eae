"""The lab's section on the fully-convolutional digit detector (Exercise 2.2 of the 2023/24 lab): the MNIST conv
twins, trained on single centred digits, made fully convolutional and asked to find digits on larger canvases.

`fcn_finding` is pure (the detector's stats rows, matched to the sweep's runs); `fcn_section` reads the lab folder
and adds the section, then the analysis folder as `reslab report` shows it (its tables, figures and sentences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from reslab import files, reading
from reslab.analyze.fcn_summary import SOME, STATS_CSV, WORKS
from reslab.analyze.record import RECORD_NAME
from reslab.analyze.instruments_detect import FCN_STUDY
from reslab.intervals import t_interval
from reslab.lab.conclude import Finding, Rows, ci, num, pct, pp
from reslab.report.document import Heading, Paragraph, Table
from reslab.sweep import RESIDUAL, RunRow

STAGE = "fcn-mnist"  # the lab stage (reslab.analyze.instruments_detect) whose analysis folder the section reads
QUESTION = ("can a classifier trained on single digits find digits on a larger image once made fully "
            "convolutional, and does the residual twin make the better detector?")


@dataclass(frozen=True)
class Detector:
    """One twin's detector on the canvases: its seed, skip and numbers (fractions; nan where none)."""

    seed: int
    residual: bool
    digit_acc: float
    map: float
    precision: float
    recall: float


def detectors(stats: Rows, runs: Sequence[RunRow]) -> list[Detector]:
    """The stats rows of the twins whose run folder the sweep lists (a row's model is '<run folder>@<checkpoint>'),
    with the seed and skip the sweep ran them with; by seed, plain first."""
    by_folder = {r.run_folder.name: r for r in runs if r.run_folder is not None}
    out = []
    for s in stats:
        run = by_folder.get(str(s.get("model", "")).split("@")[0])
        if run is None or run.seed is None:
            continue
        out.append(Detector(run.seed, run.values.get(RESIDUAL) is True, num(s.get("digit_acc")), num(s.get("map")),
                            num(s.get("precision")), num(s.get("recall"))))
    return sorted(out, key=lambda d: (d.seed, d.residual))


def _words(m: float) -> str:
    """The instrument's verdict on a mAP (reslab.analyze.fcn_summary's rule)."""
    if math.isnan(m):
        return "cannot be judged"
    return "works as a detector" if m >= WORKS else "detects some digits" if m >= SOME else "is a poor detector"


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def training(runs: Sequence[RunRow]) -> str:
    """How the twins were trained, as the first finished run's config says: '10,000 training images for 2 epochs'."""
    from reslab.runs import RunFolder

    folders = [r.run_folder for r in runs if r.completed and r.run_folder is not None]
    cfg = RunFolder(folders[0]).read_config() if folders else {}
    data, train = (cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("data", "train"))
    size, epochs = data.get("train_size"), train.get("epochs")
    images = f"{size:,} training images" if isinstance(size, int) else "the whole training split"
    return f"{images} for {epochs} epochs" if isinstance(epochs, int) else "an unknown set-up (no finished run)"


def fcn_finding(found: Sequence[Detector], settings: Mapping[str, Any], trained: str = "") -> Finding:
    """Plain against residual detectors: each seed's numbers, the mean per twin, and the residual - plain mAP paired
    by seed with its 95% t interval. `settings`: the analysis' settings (canvases, size, scales, iou, threshold);
    `trained`: how the twins were trained (`training`)."""
    header = ["seed", "twin", "single-digit accuracy", "mAP", "precision", "recall"]
    rows = [[str(d.seed), "residual" if d.residual else "plain", pct(d.digit_acc), pct(d.map), pct(d.precision),
             pct(d.recall)] for d in found]
    twins = {skip: [d for d in found if d.residual is skip] for skip in (False, True)}
    seeds = sorted({d.seed for d in twins[False]} & {d.seed for d in twins[True]})
    mean = {skip: _mean([d.map for d in twins[skip] if d.seed in seeds]) for skip in twins}
    for skip in (False, True):
        mine = [d for d in twins[skip] if d.seed in seeds]
        rows.append([f"mean (n={len(seeds)})", "residual" if skip else "plain", pct(_mean([d.digit_acc for d in mine])),
                     pct(mean[skip]), pct(_mean([d.precision for d in mine])), pct(_mean([d.recall for d in mine]))])
    by_seed = {(d.seed, d.residual): d.map for d in twins[False] + twins[True]}
    diffs = [by_seed[(s, True)] - by_seed[(s, False)] for s in seeds]
    diff, _, lo, hi = t_interval(diffs)
    interval = ci(lo, hi, pp, n=len(seeds)) if len(seeds) > 1 else "n/a (one seed)"
    rows.append(["residual - plain", "", "", pp(diff), "", ""])
    rows.append(["95% t interval", "", "", interval, "", ""])
    table = Table(header, rows, numeric=[False, False, True, True, True, True])
    iou, size = settings.get("iou", ""), settings.get("size", "")
    thresholds = {"works": f"{WORKS:g}", "some": f"{SOME:g}", "iou": str(iou), "canvas": f"{size}x{size}",
                  "canvases": str(settings.get("canvases", "")), "threshold": str(settings.get("threshold", "")),
                  "scales": " to ".join(str(s) for s in settings.get("scales", [])), "trained": trained}
    caption = (f"The MNIST conv twins as digit detectors on {settings.get('canvases', '?')} canvases of "
               f"{size}x{size} pixels of test-set digits (mAP at IoU {iou}; precision and recall at confidence >= "
               f"{settings.get('threshold', '?')}); per seed, the mean over seeds, and residual - plain paired by seed")
    if not seeds:
        return Finding(("No plain/residual pair of detectors was measured.",), table, caption, thresholds)
    if len(seeds) > 1:
        shown = ("the interval excludes 0: the residual twin is the better detector" if lo > 0 else
                 "the interval excludes 0: the plain twin is the better detector" if hi < 0 else
                 "the interval includes 0: no difference shown")
    else:
        shown = "one seed, so no interval: no difference shown"
    sentences = [
        f"Made fully convolutional, the MNIST classifiers trained on single centred digits find digits on "
        f"{size}x{size} canvases with a mAP@{iou} of {pct(mean[False])} (plain) and {pct(mean[True])} (residual), "
        f"the mean over n={len(seeds)} seeds; by the rule (mAP >= {WORKS:g}: works; >= {SOME:g}: some; below: poor) "
        f"the plain twin {_words(mean[False])} and the residual twin {_words(mean[True])}.",
        f"Residual minus plain mAP, paired by seed: {pp(diff)} (95% t interval {interval}; {shown}).",
        "Assumptions: " + (f"the twins trained on single centred digits ({trained}); " if trained else "") +
        f"digits are pasted from the test set only, at {thresholds['scales']} times their training size; "
        "the detector has no background class and was never trained on canvases; a detection counts at IoU >= "
        f"{iou} with a true box, and each twin's single-digit accuracy bounds what its detector can do."]
    return Finding(tuple(sentences), table, caption, thresholds)


def fcn_section(doc: Any, folder: Any, profile: Any, number: int) -> tuple[str, Finding] | None:
    """Add the section (numbered `number`) when the lab measured the detector: (its title, its finding)."""
    from reslab.report.analyses import analysis_blocks

    path: Path = folder.analysis(STAGE)
    problems: list[str] = []
    record = reading.read_mapping(path / RECORD_NAME, problems)
    if record is None:
        return None
    title = f"{number}. Exercise 2.2: a fully-convolutional digit detector"
    doc.blocks += [Heading(title), Paragraph("Question: " + QUESTION)]
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    runs = folder.sweep_folder(FCN_STUDY).run_rows()
    found = detectors(files.read_csv(path / STATS_CSV, missing_ok=True), runs)
    finding = fcn_finding(found, settings, training(runs))
    doc.finding(STAGE, finding)
    doc.blocks += analysis_blocks(path, doc.out, level=3, svg=False)
    return title, finding
