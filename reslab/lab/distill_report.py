"""The lab's section on distillation (Exercise 2.2 of the 2025 lab; Hinton, Vinyals and Dean 2015): a small MLP
student trained on the labels alone against the same student learning from the notebook's MLP's soft targets.

The two cells of the study differ only in the teacher (alpha 0 with no teacher is the student alone), and each seed
trains both, so the difference is paired by seed. `distill_finding` is pure (run rows and the set-up read from the
runs' configs); `distill_section` reads the lab folder and adds the section with its figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from reslab.intervals import t_interval
from reslab.lab.conclude import Finding, ci, num, pct, pp
from reslab.lab.exercise2 import ALPHA, DISTILL_STUDY, TEACHER_STUDY
from reslab.report.document import Heading, Paragraph, Table
from reslab.runs import RunFolder
from reslab.status import RunStatus
from reslab.sweep import RunRow

QUESTION = "does a student learn more from a teacher's soft targets than from the labels alone?"
FIGURE = "ex2-distill.png"


@dataclass(frozen=True)
class DistillSetup:
    """What the comparison assumes, as the distilled runs' configs say (nan / '' where no run says)."""

    teacher: str  # which run taught
    teacher_acc: float  # the teacher's own test accuracy
    temperature: float
    alpha: float  # the distilled cell's weight of the soft targets
    train_size: int | None  # training images (None: the whole training split)
    epochs: int | None
    student: str  # the student model, e.g. "mlp, depth 2, width 16"


def pairs(rows: Sequence[RunRow]) -> list[tuple[int, float, float]]:
    """(seed, alone, distilled) test accuracies of every seed where both cells finished, by seed."""
    acc: dict[tuple[int, bool], float] = {}
    for r in rows:
        alpha, test = num(r.values.get(ALPHA)), num(r.metric("test_acc"))
        if r.status is RunStatus.FINISHED and r.seed is not None and not math.isnan(alpha) and not math.isnan(test):
            acc[(r.seed, alpha > 0)] = test
    return [(seed, acc[(seed, False)], acc[(seed, True)]) for seed in sorted({s for s, _ in acc})
            if (seed, False) in acc and (seed, True) in acc]


def _number(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:g}"


def distill_finding(rows: Sequence[RunRow], setup: DistillSetup) -> Finding:
    """Each seed's student alone and distilled, their means, and distilled - alone with its 95% t interval."""
    found = pairs(rows)
    diffs = [d - a for _, a, d in found]
    n = len(found)
    mean_alone, _, _, _ = t_interval([a for _, a, _ in found])
    mean_distilled, _, _, _ = t_interval([d for _, _, d in found])
    diff, _, lo, hi = t_interval(diffs)
    interval = ci(lo, hi, pp, n=n) if n > 1 else "n/a (fewer than 2 seeds)"
    table = Table(["seed", "student alone (test acc)", "distilled (test acc)", "distilled - alone"],
                  [[str(s), pct(a), pct(d), pp(d - a)] for s, a, d in found]
                  + [[f"mean (n={n})", pct(mean_alone), pct(mean_distilled), pp(diff)],
                     ["95% t interval", "", "", interval], ["teacher", "", pct(setup.teacher_acc), ""]],
                  numeric=[False, True, True, True])
    size = "the whole training split" if setup.train_size is None else f"{setup.train_size:,} training images"
    thresholds = {"temperature": _number(setup.temperature), "alpha": _number(setup.alpha), "no difference": "0",
                  "train size": size, "epochs": str(setup.epochs), "seeds": str(n), "student": setup.student}
    caption = ("Distillation: the student alone (alpha 0, no teacher) and distilled from the teacher, test accuracy "
               "per seed, the mean, and distilled - alone paired by seed with its 95% t interval")
    if not found:
        return Finding(("No seed has both the student alone and the distilled student finished.",), table, caption,
                       thresholds)
    if n < 2:
        shown = "with one seed there is no interval: no difference shown"
    elif lo > 0:
        shown = "the interval excludes 0: the soft targets help this student"
    elif hi < 0:
        shown = "the interval excludes 0: the soft targets hurt this student"
    else:
        shown = "the interval includes 0: no difference shown"
    sentences = (
        f"Distilled from the teacher, the student reaches a test accuracy of {pct(mean_distilled)} against "
        f"{pct(mean_alone)} alone: {pp(diff)} (paired by seed, 95% t interval {interval}; {shown}).",
        f"The teacher ({setup.teacher}) itself reaches {pct(setup.teacher_acc)} on the test set.",
        f"Assumptions: the student ({setup.student}) trained on {size} for {setup.epochs} epochs; the distilled "
        f"one minimises alpha = {_number(setup.alpha)} of the teacher's soft targets at temperature T = "
        f"{_number(setup.temperature)} (times T^2) plus {_number(1 - setup.alpha)} of the labels' cross-entropy, "
        f"the other the labels alone; n = {n} seeds, each training both; another teacher, T, alpha, subset size or "
        "training length may give another answer.",
    )
    return Finding(sentences, table, caption, thresholds | {"1 - alpha": _number(1 - setup.alpha)})


def distill_setup(rows: Sequence[RunRow], teacher_rows: Sequence[RunRow]) -> DistillSetup:
    """The set-up as the first finished distilled run's config says, and the teacher's test accuracy as its sweep
    row says (the teacher named by path: the lab resolved "lab:ex1-mlp" to one run folder)."""
    distilled = [r for r in rows if r.status is RunStatus.FINISHED and r.run_folder is not None
                 and num(r.values.get(ALPHA)) > 0]
    cfg: dict[str, Any] = RunFolder(distilled[0].run_folder).read_config() if distilled else {}
    train, data, model = (cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("train", "data", "model"))
    distill = train.get("distill") if isinstance(train.get("distill"), dict) else {}
    teacher = str(train.get("teacher") or "")
    teacher_acc = next((num(r.metric("test_acc")) for r in teacher_rows
                        if r.run_folder is not None and teacher and Path(teacher) == Path(r.run_folder)), math.nan)
    name = next((f"{TEACHER_STUDY} seed {r.seed}" for r in teacher_rows
                 if r.run_folder is not None and teacher and Path(teacher) == Path(r.run_folder)), teacher or "unknown")
    student = (f"{model.get('name', 'model')}, depth {model.get('depth', '?')}, width {model.get('width', '?')}"
               if model else "unknown: no finished distilled run")
    size = data.get("train_size")
    return DistillSetup(teacher=f"the notebook's MLP, {name}" if name.startswith(TEACHER_STUDY) else name,
                        teacher_acc=teacher_acc, temperature=num(distill.get("temperature")),
                        alpha=num(distill.get("alpha")), train_size=size if isinstance(size, int) else None,
                        epochs=train.get("epochs") if isinstance(train.get("epochs"), int) else None, student=student)


def distill_section(doc: Any, folder: Any, profile: Any, number: int) -> tuple[str, Finding] | None:
    """Add the section (numbered `number`) when the lab ran the distillation study: (its title, its finding)."""
    from reslab.plots.distill import plot_distill

    rows = folder.sweep_folder(DISTILL_STUDY).run_rows()
    if not rows:
        return None
    title = f"{number}. Exercise 2.2: distillation"
    doc.blocks += [Heading(title), Paragraph("Question: " + QUESTION)]
    setup = distill_setup(rows, folder.sweep_folder(TEACHER_STUDY).run_rows())
    finding = distill_finding(rows, setup)
    doc.finding(DISTILL_STUDY, finding)
    seeds = [{"seed": s, "alone": a, "distilled": d} for s, a, d in pairs(rows)]

    def draw(target: Path) -> Path | None:
        if not seeds:
            return None
        plot_distill(seeds, setup.teacher_acc, target)
        return target

    doc.figure(folder.sweep(DISTILL_STUDY) / FIGURE, FIGURE, "Distillation: test accuracy of the student alone and "
               "distilled, per seed (a line joins a seed's pair); dashed: the teacher's", draw)
    return title, finding
