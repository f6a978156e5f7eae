"""The lab's report: a front page answering the lab's question, then one section per exercise.

Read from the lab folder's files only (sweep CSVs, run folders, analysis folders), so it is rebuilt in
seconds and any number in it can be traced to a file. Written to report/ beside the stages' folders.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from reslab import files
from reslab.analyze.gradflow_summary import BOXPLOTS_PNG, DEPTH_PNG, STATS_CSV, TRAINING_UPDATES_PNG, UPDATES_PNG
from reslab.lab.conclude import Finding
from reslab.lab.distill_report import distill_section
from reslab.lab.grid import grid_findings
from reslab.lab.explain import gradient_depth, instrument_sections
from reslab.lab.fcn_report import fcn_section
from reslab.lab.folder import LabFolder
from reslab.lab.notebook import exercise_cnns, exercise_mlp, gradient_norms
from reslab.lab.profiles import Profile, Study, get_profile
from reslab.lab.stages import Stage
from reslab.lab.stopping import training_length
from reslab.lab.transfer_report import transfer_section
from reslab.runs import RunFolder
from reslab.sweep import RunRow
from reslab.report.sweeps import sweep_blocks
from reslab.report.document import Block, Heading, Note, Paragraph, Table
from reslab.report.values import is_real
from reslab.report.writer import HTML, Report, write_folder

TITLE = "reslab lab: how depth and residual connections change what a network can learn"


class _Doc(Report):
    """The report's blocks in order, with the findings behind them (for report.json)."""

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        self.findings: list[dict[str, Any]] = []
        self.setups: dict[str, str] = {}  # study -> what its numbers assume (init, learning rate, training length)

    def finding(self, section: str, f: Finding) -> None:
        self.blocks += [Paragraph(" ".join(f.sentences)), Table(f.table.header, f.table.rows, f.table.numeric),
                        Paragraph(f.caption + ".")]
        self.findings.append({"section": section, "sentences": list(f.sentences), "header": list(f.table.header),
                              "rows": [list(r) for r in f.table.rows], "thresholds": dict(f.thresholds)})


def _runs(folder: LabFolder, study: Study) -> list[RunRow]:
    """A study's runs, typed, as its sweep folder lists them (empty before the sweep ran)."""
    return folder.sweep_folder(study.name).run_rows()


NOTEBOOK_BATCH = 128  # the notebook's batch size, for its MLP and both CNNs (the seed-* presets)


def _shortcut(study: Study, notebook_epochs: int) -> str | None:
    """Why a notebook comparison is not like for like (None when it is)."""
    why = []
    if "data.train_size" in study.settings:
        why.append(f"trained on {study.settings['data.train_size']:,} images")
    epochs = study.grid.get("train.epochs", [study.settings.get("train.epochs")])[0]
    if epochs != notebook_epochs:
        why.append(f"for {epochs} epochs (the notebook: {notebook_epochs})")
    batch = study.settings.get("data.batch_size", NOTEBOOK_BATCH)
    if batch != NOTEBOOK_BATCH:
        why.append(f"in batches of {batch} (the notebook: {NOTEBOOK_BATCH})")
    return " ".join(why) if why else None


def _architecture(folder: LabFolder, study: Study) -> dict[str, Any]:
    """Parameters, forward MFLOP per image, conv layers and channels of a study's model (from its run's config)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from reslab.config import load_source
    from reslab.config import from_dict
    from reslab.models import build_model, count_params

    runs = [r.run_folder for r in _runs(folder, study) if r.run_folder is not None]
    if not runs:  # the study has not run (a lab resumed past it, or every run failed before it began)
        return {"params": math.nan, "mflops": math.nan, "convs": "n/a", "channels": "n/a"}
    cfg = from_dict(load_source(str(RunFolder(runs[0]).config)))
    model = build_model(cfg.model.name, input_shape=(3, 32, 32), num_classes=10, **cfg.model.args)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    widths = sorted({m.out_channels for m in convs})
    return {"params": count_params(model), "mflops": counter.get_total_flops() / 1e6, "convs": len(convs),
            "channels": "/".join(str(w) for w in widths)}


def study_setup(folder: LabFolder, study: Study) -> tuple[str, Table | None]:
    """What a depth study's numbers assume: its inits, its learning rate (tuned or not), and its training length (how
    many runs reached a plateau or hit the cap, per cell in the table; or how many were still improving)."""
    from reslab.models import init_of

    runs = [r for r in _runs(folder, study) if r.completed and r.run_folder is not None]
    inits = sorted({init_of(str(c.get("model", {}).get("name")), c.get("model", {})) for c in
                    (RunFolder(r.run_folder).read_config() for r in runs) if isinstance(c.get("model"), dict)} - {""})
    parts = [f"Initialisation: {', '.join(inits) if inits else 'not read (no finished run)'}."]
    if study.tune:
        parts.append(f"Learning rate tuned per cell over {', '.join(map(str, study.tune['values']))} by the best "
                     "validation accuracy; only the chosen value's runs enter the tables.")
    else:
        parts.append(f"Learning rate fixed at {study.settings.get('optim.lr', 'the preset value')} for every depth, "
                     "not tuned per depth: a net that fails may have had the wrong learning rate for its depth.")
    length, table = training_length(runs, study)
    return " ".join([*parts, length]), table


def _sweep_section(doc: _Doc, folder: LabFolder, study: Study, f: Finding, title: str) -> None:
    doc.finding(study.name, f)
    sweep = folder.sweep(study.name)
    doc.figure(sweep / "test_acc_vs_depth.png", f"{study.name}-test-acc.png", f"{title}: test accuracy against depth")
    doc.figure(sweep / "train_loss_vs_depth.png", f"{study.name}-train-loss.png",
               f"{title}: final training loss against depth")


def _failures(folder: LabFolder, studies: Sequence[Study]) -> list[Block]:
    bad = [(s.name, r) for s in studies for r in _runs(folder, s) if not r.completed]
    if not bad:
        return []
    rows = [[name, folder.sweep_folder(name).relative(r.run_folder) if r.run_folder else "",
             str(r.status) if r.status else "missing"] for name, r in bad]
    return [Note(f"{len(bad)} runs did not finish; they are left out of the numbers."),
            Table(["study", "run", "status"], rows)]


def _front(doc: _Doc, profile: Profile, record: dict[str, Any], answer: list[str], sections: list[str],
           studies: Sequence[Study], folder: LabFolder) -> list[Block]:
    train_s = sum(r.metric("train_seconds") or 0.0 for s in studies for r in _runs(folder, s))
    runs = sum(len(_runs(folder, s)) for s in studies)
    wall = sum(v["seconds"] for v in record["stages"].values()  # what lab.json says, where it is a number
               if isinstance(v, dict) and is_real(v.get("seconds")) and 0 <= v["seconds"] < 1e12)
    env = _environment(folder, studies)
    blocks: list[Block] = [Heading("The answer"), *(Paragraph(a) for a in answer),
                           Heading("Set-up", 3),
                           Paragraph(f"Profile {profile.name}; MNIST: {record['mnist']}; CIFAR-10: {record['cifar']}. "
                                     + ("Shortcuts taken for time: " + " ".join(profile.shortcuts)
                                        if profile.shortcuts else "No shortcuts: the notebook's settings.")),
                           Heading("Contents", 3), Table(["section"], [[s] for s in sections]),
                           Heading("Compute", 3),
                           Table(["runs", "training time (s, summed over runs)", "lab wall time (s, all stages)"],
                                 [[str(runs), f"{train_s:.1f}", f"{wall:.1f}"]], numeric=[True, True, True])]
    if env:
        blocks += [Heading("Environment", 3), Table(["item", "value"], env)]
    return blocks


def _environment(folder: LabFolder, studies: Sequence[Study]) -> list[list[str]]:
    for s in studies:
        for r in _runs(folder, s):
            if r.run_folder is None:
                continue
            env = RunFolder(r.run_folder).read_env()  # capped, regular-file read; {} when missing or damaged
            if not env:
                continue
            keep = ("python", "torch", "device", "device_name", "cpu", "cpu_count", "platform", "threads")
            return [[k, str(env[k])] for k in keep if k in env]
    return []


def write_lab_report(folder: LabFolder, stages: Sequence[Stage], record: dict[str, Any]) -> Path:
    """Build report.md, report.html and report.json into the lab's report/ folder; returns report.html."""
    profile = get_profile(record["profile"])

    def fill(out: Path) -> None:
        doc = _Doc(out)
        body = _sections(doc, folder, profile)
        studies = [s.study for s in stages if s.study is not None]
        answer = [f"{label}: " + " ".join(f.front) for label, f in body["answer"]]
        front = _front(doc, profile, record, answer, body["titles"], studies, folder)
        doc.write(TITLE, front + _failures(folder, studies) + doc.blocks,
                  {"profile": profile.name, "findings": doc.findings, "setups": doc.setups,
                   "shortcuts": list(profile.shortcuts)})

    return write_folder(folder.report, fill, replace=True) / HTML


def _sections(doc: _Doc, folder: LabFolder, profile: Profile) -> dict[str, Any]:
    """Every section's blocks into `doc`; returns the section titles and the findings the front page quotes."""
    titles, answer = [], []

    def section(title: str, question: str) -> None:
        titles.append(title)
        doc.blocks += [Heading(title), Paragraph("Question: " + question)]

    section("1. Exercise 1.1: the notebook's MLP on MNIST", "does the notebook's MLP reach what the notebook says?")
    mlp = _runs(folder, profile.notebook_mlp)
    doc.finding("ex1-mlp", exercise_mlp(mlp, _shortcut(profile.notebook_mlp, 15)))
    if mlp and mlp[0].run_folder is not None:
        run = RunFolder(mlp[0].run_folder)  # the lab's runs draw no figures of their own (train.figures false)
        doc.figure(run.curves, "ex1-mlp-curves.png", "Exercise 1.1: training curves of seed 0", run.draw_curves)

    section("2. Exercise 1.2: the notebook's CNN and ResNetCNN on CIFAR-10",
            "does the residual CNN learn better, and is the skip what makes the difference?")
    cnn, res = (_runs(folder, s) for s in (profile.notebook_cnn, profile.notebook_resnet))
    arch = [_architecture(folder, profile.notebook_cnn), _architecture(folder, profile.notebook_resnet)]
    cnns = exercise_cnns(cnn, res, arch, _shortcut(profile.notebook_cnn, 10))
    doc.finding("ex1-cnns", cnns)

    for number, study, key, what, label in ((3, profile.mlp_depth, "model.depth", "MLP", "Depth, MLPs on MNIST"),
                                            (4, profile.conv_depth, profile.depth_key_conv, "conv net",
                                             "Depth, conv nets on CIFAR-10")):
        title = f"{number}. Plain against residual {what}s over depth"
        section(title, f"how do training loss and test accuracy of fair plain/residual {what} twins change with "
                       "depth, and is a failure one of optimisation or of overfitting?")
        word = "depth" if key == "model.depth" else "block count"
        sweep = folder.sweep_folder(study.name)
        doc.setups[study.name], stops = study_setup(folder, study)
        doc.blocks += [Paragraph(doc.setups[study.name])] + ([stops] if stops is not None and stops.rows else [])
        found = grid_findings(sweep.cell_rows(), sweep.pair_rows(), depth_key=key, classes=10, what=what,
                              depth_word=word)
        reference = ", ".join(f"{k.removeprefix('model.')} {v}" for k, v in study.reference.items())
        found.sort(key=lambda cf: cf[0] not in ("", reference))  # the reference cell first, with the figures
        for cell, f in found:
            if cell in ("", reference):
                _sweep_section(doc, folder, study, f, title)
            else:
                doc.finding(f"{study.name} ({cell})", f)
            if cell in ("", reference, "across inits", "degradation"):
                answer.append((label + (f" ({cell})" if cell else ""), f))

    section("5. Exercise 2: gradient flow", "why do the residual nets learn better? What do gradient norms show, and "
                                            "do the layers' weights actually move?")
    nb = folder.analysis("gradflow-notebook")
    norms = gradient_norms(files.read_csv(nb / STATS_CSV, missing_ok=True), profile.gradflow_batches)
    doc.finding("gradflow-notebook", norms)
    doc.figure(nb / BOXPLOTS_PNG, "gradflow-notebook.png", "Gradient norms per parameter tensor at init, "
               "as the notebook plotted them")
    depth = folder.analysis("gradflow-depth")
    gd = gradient_depth(files.read_csv(depth / STATS_CSV, missing_ok=True))
    doc.finding("gradflow-depth", gd)
    doc.figure(depth / UPDATES_PNG, UPDATES_PNG, "Relative update of one optimizer step at init per layer, plain and "
               "residual MLPs (dotted: the threshold below which a layer does not learn)")
    doc.figure(depth / TRAINING_UPDATES_PNG, TRAINING_UPDATES_PNG, "Relative update per step while training, per layer")
    doc.figure(depth / DEPTH_PNG, DEPTH_PNG, "Gradient norm per layer, plain and residual MLPs (descriptive)")
    answer += [("The notebook's CNN against its ResNetCNN", cnns), ("Gradient flow", gd),
               ("The notebook's gradient statistics", norms)]
    titles += instrument_sections(folder, doc, first=6)
    for label, exercise2 in (("Transfer (Exercise 2.1)", transfer_section),  # Exercise 2's other options,
                             ("A fully-convolutional detector (Exercise 2.2)", fcn_section),  # where they ran
                             ("Distillation (Exercise 2.2)", distill_section)):
        made = exercise2(doc, folder, profile, len(titles) + 1)
        if made is not None:
            titles.append(made[0])
            answer.append((label, made[1]))
    appendix = "Appendix: every sweep in full"
    titles.append(appendix)
    doc.blocks += [Heading(appendix), Paragraph("What each sweep ran (its settings, grid and seeds), the status of every "
                                                "run, its figures, tables and summary sentences.")]
    for study in profile.studies():
        doc.blocks += sweep_blocks(folder.sweep(study.name), doc.out, level=3, svg=False)
    return {"titles": titles, "answer": answer}
