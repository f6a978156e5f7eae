"""Exercise 2.1 (2025) in the lab's report: does a model trained on other classes give features worth reusing, and
how should it be fine-tuned?

One table of strategies on the target classes: from scratch, fine-tuning every weight from the source model,
training a new head on its frozen features (train.freeze all-but-head), and the probe instrument's scikit-learn
baselines on the same frozen features; fine-tuning and scratch runs pair by seed (the same training images and
order), so their differences get paired 95% t intervals. Every number is read from the lab's run and analysis
folders; the sentences say what is shown (an interval that excludes 0) and every assumption the numbers rest on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from reslab import files
from reslab.analyze.instruments_transfer import PROBE_STAGE, has_transfer
from reslab.analyze.lab_studies import SCRATCH, SOURCE, TRANSFER
from reslab.analyze.probe import METHODS
from reslab.analyze.probe_summary import PROBE_CSV
from reslab.intervals import t_interval
from reslab.lab.conclude import Finding, Rows, ci, num, pct, pp
from reslab.report.document import Heading, Paragraph, Table
from reslab.runs import RunFolder
from reslab.status import RunStatus
from reslab.sweep import RunRow

FREEZE = "train.freeze"
FIGURE = "transfer-strategies.png"
QUESTION = "does a model trained on other classes give features worth reusing, and how should it be fine-tuned?"
PROBE_WORDS = {"logreg": "logistic regression", "linear-svm": "linear SVM", "knn": "k-NN"}


@dataclass(frozen=True)
class TransferSetup:
    """What the transfer numbers assume, read from the runs' saved configs (None where a run did not say)."""

    model: str = "?"
    source_classes: str = "?"
    source_images: int | None = None  # data.train_size (None: every training image after validation)
    source_epochs: int | None = None
    target_classes: str = "?"
    target_images: int | None = None
    target_epochs: int | None = None
    optimizer: str = "?"
    lr: float | None = None
    head_lr: float | None = None  # the head-only runs' head LR (None: lr)
    test_images: int | None = None  # data.test_size (None: every test image of the target classes)


def _classes(values: Any) -> str:
    """[5, 6, 7, 8, 9] as "5-9"; a list with gaps as "0, 2, 5"; all classes when not set."""
    if not isinstance(values, list) or not values:
        return "all"
    if all(isinstance(v, int) for v in values) and values == list(range(values[0], values[0] + len(values))):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    section, key = dotted.split(".")
    part = cfg.get(section)
    return part.get(key) if isinstance(part, dict) else None


def setup_of(source: Mapping[str, Any], fine_tune: Mapping[str, Any], head_only: Mapping[str, Any]) -> TransferSetup:
    """The set-up from three saved configs (config.yaml as read back): the source run, a fine-tune-all run and a
    head-only run ({} where there is none)."""
    target = fine_tune or head_only
    return TransferSetup(
        model=str(_get(target, "model.name") or _get(source, "model.name") or "?"),
        source_classes=_classes(_get(source, "data.classes")), source_images=_get(source, "data.train_size"),
        source_epochs=_get(source, "train.epochs"), target_classes=_classes(_get(target, "data.classes")),
        target_images=_get(target, "data.train_size"), target_epochs=_get(target, "train.epochs"),
        optimizer=str(_get(target, "optim.name") or "?"), lr=_get(target, "optim.lr"),
        head_lr=_get(head_only, "optim.head_lr"), test_images=_get(target, "data.test_size"))


def _images(n: int | None) -> str:
    return "every training image" if n is None else f"{n:,} training images"


def _epochs(n: int | None) -> str:
    return f"{n} epoch{'s' * (n != 1)}"


def _interval(lo: float, hi: float, n: int, fmt=pct) -> str:
    return "no interval (n = 1)" if n < 2 or math.isnan(lo) else ci(lo, hi, fmt, n)


def _by_seed(rows: Sequence[RunRow], freeze: str | None = None) -> dict[int, float]:
    """seed -> test accuracy of the finished runs (of one train.freeze value, when given)."""
    return {r.seed: num(r.metric("test_acc")) for r in rows
            if r.status is RunStatus.FINISHED and r.seed is not None and not math.isnan(num(r.metric("test_acc")))
            and (freeze is None or str(r.values.get(FREEZE, "none")) == freeze)}


def _paired(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[float, float, float, int]:
    """a - b over the seeds both have: (mean, 95% CI low, high, pairs)."""
    diffs = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    mean, _, lo, hi = t_interval(diffs)
    return mean, lo, hi, len(diffs)


def _shown(d: tuple[float, float, float, int], better: str, worse: str) -> str:
    mean, lo, hi, n = d
    if n < 2 or math.isnan(lo):
        return f"{n} pair{'s' * (n != 1)}: no interval, so no difference is shown"
    if lo > 0 or hi < 0:
        return f"the interval excludes 0: {better if mean > 0 else worse} is shown"
    return f"the interval includes 0: no difference shown at {n} seeds"


def _lr(x: float | None) -> str:
    return "the preset's" if x is None else f"{x:g}"


def transfer_finding(transfer: Sequence[RunRow], scratch: Sequence[RunRow], probes: Rows, setup: TransferSetup,
                     source_acc: float = math.nan) -> Finding:
    """The strategies' table and what it shows: `transfer` the fine-tuning runs (train.freeze none, all-but-head),
    `scratch` the same net from scratch, `probes` the probe instrument's rows of the source model's features."""
    runs = {"scratch": _by_seed(scratch), "all": _by_seed(transfer, "none"), "head": _by_seed(transfer, "all-but-head")}
    stats = {k: (*t_interval(list(v.values())), len(v)) for k, v in runs.items()}  # mean, std, lo, hi, n
    diffs = {"all": _paired(runs["all"], runs["scratch"]), "head": _paired(runs["head"], runs["scratch"]),
             "all-head": _paired(runs["all"], runs["head"])}
    probe = {str(r.get("method")): r for r in probes if str(r.get("method")) in METHODS}
    header = ["strategy", "what trains", "n", "test acc (mean)", "95% CI", "minus scratch (paired)", "95% CI",
              "pairs"]

    def run_row(label: str, what: str, key: str) -> list[str]:
        mean, _, lo, hi, n = stats[key]
        d = diffs.get(key)
        return [label, what, str(n), pct(mean), _interval(lo, hi, n),
                *((pp(d[0]), _interval(d[1], d[2], d[3], pp), str(d[3])) if d else ("", "", ""))]

    n_probe = next((f"{int(num(r.get('n_train'))):,}" for r in probe.values()
                    if not math.isnan(num(r.get("n_train")))), "?")
    rows = [["source model (its own classes " + setup.source_classes + ")", "every weight, on the source task", "1",
             pct(source_acc), "no interval (n = 1)", "", "", ""],
            run_row("from scratch", "every weight, from a random init", "scratch"),
            run_row("fine-tune all", "every weight, from the source", "all"),
            run_row("head only (frozen source)", "a new head on the frozen features", "head"),
            *([f"probe: {PROBE_WORDS[m]}", f"a classifier on the frozen features ({n_probe} images)", "1",
               pct(num(probe[m].get("test_acc"))), "no interval (one fit)", "", "", ""] for m in METHODS if m in probe),
            ["fine-tune all - head only", "", "", "", "", pp(diffs["all-head"][0]),
             _interval(diffs["all-head"][1], diffs["all-head"][2], diffs["all-head"][3], pp),
             str(diffs["all-head"][3])]]
    table = Table(header, rows, numeric=[False, False, True, True, True, True, True, True])
    thresholds = _assumption_numbers(setup, stats)
    caption = (f"Transfer from CIFAR-10 classes {setup.source_classes} to {setup.target_classes}: test accuracy per "
               "strategy (mean over seeds, 95% t interval; differences paired by seed)")
    if not any(v for v in runs.values()) and not probe:
        return Finding(("No transfer run or probe has finished; run the lab again to train them.",), table, caption,
                       thresholds)
    (m_all, lo_all, hi_all, n_all), (m_head, lo_head, hi_head, n_head) = diffs["all"], diffs["head"]
    sentences = [
        f"Fine-tuning every weight of the source model reaches {pct(stats['all'][0])} test accuracy on classes "
        f"{setup.target_classes} against {pct(stats['scratch'][0])} from scratch: {pp(m_all)} paired by seed (95% CI "
        f"{_interval(lo_all, hi_all, n_all, pp)}; {_shown(diffs['all'], 'a gain from the source', 'a loss')}).",
        f"Training only a new head on the frozen source features reaches {pct(stats['head'][0])}: {pp(m_head)} "
        f"against scratch (95% CI {_interval(lo_head, hi_head, n_head, pp)}; "
        f"{_shown(diffs['head'], 'a gain', 'a loss')}); fine-tuning all against the head only: "
        f"{pp(diffs['all-head'][0])} "
        f"({_shown(diffs['all-head'], 'an advantage of fine-tuning all', 'an advantage of the head only')}).",
    ]
    if probe:
        sentences.append(_probe_sentence(probe, stats["head"], n_probe))
    sentences.append(_assumptions(setup, stats))
    return Finding(tuple(sentences), table, caption, thresholds)


def _probe_sentence(probe: Mapping[str, Mapping[str, Any]], head: tuple, n_probe: str) -> str:
    logreg = probe.get("logreg")
    how = {"logreg": " run to convergence" if logreg is None or str(logreg.get("converged")).lower() != "false" else
           " (stopped before converging: a lower bound)"}
    parts = [f"{pct(num(probe[m].get('test_acc')))} with {PROBE_WORDS[m]}{how.get(m, '')}"
             for m in METHODS if m in probe]
    said = (f"On the same frozen features, fitted on {n_probe} training images, the probes reach "
            + ", ".join(parts) + "; each is one fit (no interval)")
    best = max((m for m in METHODS if m in probe), key=lambda m: num(probe[m].get("test_acc")))
    acc, (_, _, lo, hi, n) = num(probe[best].get("test_acc")), head
    if n >= 2 and not math.isnan(lo):
        where = "above" if acc > hi else "below" if acc < lo else "inside"
        said += (f". The best probe ({PROBE_WORDS[best]}, {pct(acc)}) lies {where} the head-only runs' 95% interval "
                 f"({ci(lo, hi, pct, n)})")
    return said + "."


def _assumption_numbers(setup: TransferSetup, stats: Mapping[str, tuple]) -> dict[str, str]:
    """The set-up's numbers as the assumptions sentence prints them (quoted there, not in the table)."""
    return {"source classes": setup.source_classes, "target classes": setup.target_classes,
            "source images": _images(setup.source_images), "source epochs": str(setup.source_epochs),
            "target images": _images(setup.target_images), "target epochs": str(setup.target_epochs),
            "lr": _lr(setup.lr), "head lr": _lr(setup.head_lr),
            "test images": "all" if setup.test_images is None else f"{setup.test_images:,}",
            "seeds": ", ".join(str(s[4]) for s in stats.values()), "stand-in": "CIFAR-10 for CIFAR-100 (100 classes)",
            "no difference": "0"}


def _assumptions(setup: TransferSetup, stats: Mapping[str, tuple]) -> str:
    tests = ("every test image" if setup.test_images is None else f"{setup.test_images:,} test images") + \
        f" of classes {setup.target_classes}"
    head = "" if setup.head_lr is None else f" (the head-only runs' head at {_lr(setup.head_lr)})"
    return (f"Assumptions: every transfer run starts from one source model, the {setup.model} trained on CIFAR-10 "
            f"classes {setup.source_classes} ({_images(setup.source_images)}, {_epochs(setup.source_epochs)}, seed 0); "
            f"the target runs train on {_images(setup.target_images)} of classes {setup.target_classes} for "
            f"{_epochs(setup.target_epochs)} with {setup.optimizer} at learning rate {_lr(setup.lr)}{head}, and all "
            f"strategies are tested on the same {tests}; seeds: {stats['scratch'][4]} from scratch, "
            f"{stats['all'][4]} fine-tune all, {stats['head'][4]} head only (a seed fixes the training subset, its "
            f"order and the new head); CIFAR-10's classes {setup.target_classes} stand in for the handout's CIFAR-100 "
            "(not available offline): a few new classes of the same kind of images, so the numbers say nothing "
            "directly about 100 classes.")


def strategy_points(transfer: Sequence[RunRow], scratch: Sequence[RunRow], probes: Rows) -> list[dict[str, Any]]:
    """The figure's rows, top to bottom as in the table: each strategy's mean, 95% interval and per-seed values."""
    seeds = [("from scratch", _by_seed(scratch).values()), ("fine-tune all", _by_seed(transfer, "none").values()),
             ("head only (frozen source)", _by_seed(transfer, "all-but-head").values())]
    probe = {str(r.get("method")): num(r.get("test_acc")) for r in probes}
    seeds += [(f"probe: {PROBE_WORDS[m]}", [probe[m]]) for m in METHODS if m in probe and not math.isnan(probe[m])]
    out = []
    for label, values in seeds:
        mean, _, lo, hi = t_interval(list(values))
        out.append({"label": label, "mean": mean, "low": lo, "high": hi, "points": list(values)})
    return out


def transfer_section(doc: Any, folder: Any, profile: Any, number: int) -> tuple[str, Finding] | None:
    """The section's blocks into `doc` when the profile runs the transfer studies: (its title, its finding)."""
    from reslab.plots.transfer import plot_strategies
    from reslab.report.analyses import analysis_blocks
    from reslab.report.figures import FIGURES

    if not has_transfer(profile):
        return None
    title = f"{number}. Exercise 2.1 (2025): transfer to new classes"
    doc.blocks += [Heading(title), Paragraph("Question: " + QUESTION)]
    transfer, scratch, source = (folder.sweep_folder(name).run_rows() for name in (TRANSFER, SCRATCH, SOURCE))
    probe_dir = folder.analysis(PROBE_STAGE)
    probes = files.read_csv(probe_dir / PROBE_CSV, missing_ok=True)
    found = transfer_finding(transfer, scratch, probes, _read_setup(transfer, source), _source_acc(source))
    doc.finding("transfer", found)
    rows = strategy_points(transfer, scratch, probes)
    classes = _get(_config(transfer), "data.classes")
    chance = 1 / len(classes) if isinstance(classes, list) and classes else None

    def draw(path: Path) -> Path | None:
        if not any(r["points"] for r in rows):
            return None
        plot_strategies(rows, path, title="Transfer strategies on the target classes", chance=chance)
        return path

    doc.figure(doc.out / FIGURES / FIGURE, FIGURE, "Transfer: test accuracy per strategy on the target classes (one "
               "dot per seed; a probe is one fit)", draw)
    if (probe_dir / "analysis.json").is_file():
        doc.blocks += analysis_blocks(probe_dir, doc.out, level=3, svg=False)
    return title, found


def _config(rows: Sequence[RunRow], freeze: str | None = None) -> dict[str, Any]:
    """The saved config of the first finished run (of one train.freeze value, when given); {} when none."""
    for r in rows:
        if r.status is RunStatus.FINISHED and r.run_folder is not None and \
                (freeze is None or str(r.values.get(FREEZE, "none")) == freeze):
            return RunFolder(r.run_folder).read_config()
    return {}


def _read_setup(transfer: Sequence[RunRow], source: Sequence[RunRow]) -> TransferSetup:
    return setup_of(_config(source), _config(transfer, "none"), _config(transfer, "all-but-head"))


def _source_acc(source: Sequence[RunRow]) -> float:
    accs = [num(r.metric("test_acc")) for r in source if r.status is RunStatus.FINISHED]
    return accs[0] if accs else math.nan
