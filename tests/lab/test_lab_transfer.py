"""The lab's transfer section (issue 20 §3, §5): its sentences on fabricated runs with a known answer, and a tiny lab
of the three transfer studies and the probe stage whose report shows the section with the runs' own numbers."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import pytest

from helpers.fakedata import write_colour_folder, write_mnist
from reslab import files
from reslab.analyze.instruments_transfer import PROBE_STAGE
from reslab.analyze.lab_studies import SCRATCH as SCRATCH_STUDY, SOURCE as SOURCE_STUDY, TRANSFER as TRANSFER_STUDY
from reslab.intervals import t_interval
from reslab.lab.conclude import pp
from reslab.lab.folder import LabFolder
from reslab.lab.instruments import analysis_stages
from reslab.lab.profiles import Profile, Study
from reslab.lab.stages import LabContext, run_study
from reslab.lab.study import LAB_RUN
from reslab.lab.transfer_report import TransferSetup, setup_of, transfer_finding
from reslab.status import RunStatus
from reslab.sweep import RunRow

from test_lab_conclusions import check_sourced

SETUP = TransferSetup(model="convnet", source_classes="0-4", source_images=10000, source_epochs=3,
                      target_classes="5-9", target_images=3000, target_epochs=2, optimizer="adam", lr=1e-3,
                      head_lr=1e-2, test_images=2000)


def _rows(accs: list[float], freeze: str | None = None) -> list[RunRow]:
    values = {} if freeze is None else {"train.freeze": freeze}
    return [RunRow(key=f"seed={i}", values=values, seed=i, status=RunStatus.FINISHED, metrics={"test_acc": a})
            for i, a in enumerate(accs)]


PROBES = [{"model": "src", "method": "logreg", "test_acc": "0.64", "converged": "True", "n_train": "3000"},
          {"model": "src", "method": "linear-svm", "test_acc": "0.63", "converged": "True", "n_train": "3000"},
          {"model": "src", "method": "knn", "test_acc": "0.58", "converged": "", "n_train": "3000"},
          {"model": "ft", "method": "fine-tune", "test_acc": "0.61", "converged": "", "n_train": ""}]


def test_a_consistent_gain_is_shown_and_the_numbers_come_from_the_table() -> None:
    scratch = [0.50, 0.55, 0.60]
    fine_tune = [0.60, 0.66, 0.70]  # +0.10, +0.11, +0.10: the paired interval lies far above 0
    head = [0.55, 0.50, 0.62]  # +0.05, -0.05, +0.02: it includes 0
    f = transfer_finding(_rows(fine_tune, "none") + _rows(head, "all-but-head"), _rows(scratch), PROBES, SETUP,
                         source_acc=0.7)
    check_sourced(f)
    text = " ".join(f.sentences)
    mean, _, lo, hi = t_interval([a - b for a, b in zip(fine_tune, scratch)])  # computed here, independently
    assert lo > 0 and f"{pp(mean)} paired by seed (95% CI {pp(lo)} to {pp(hi)}" in text
    assert "the interval excludes 0: a gain from the source is shown" in f.sentences[0]
    assert "no difference shown at 3 seeds" in f.sentences[1]  # head only against scratch
    rows = {r[0]: r for r in f.table.rows}
    assert rows["fine-tune all"][2:5] == ["3", "65.3%", rows["fine-tune all"][4]] and rows["from scratch"][3] == "55.0%"
    assert rows["probe: logistic regression"][3] == "64.0%"
    assert "the probes reach 64.0% with logistic regression run to convergence, 63.0% with linear SVM" in text
    assert "The best probe (logistic regression, 64.0%) lies inside the head-only runs' 95% interval" in text
    for assumption in ("10,000 training images, 3 epochs, seed 0", "3,000 training images of classes 5-9",
                       "2 epochs with adam at learning rate 0.001", "head at 0.01", "2,000 test images",
                       "stand in for the handout's CIFAR-100"):
        assert assumption in text


def test_no_difference_is_not_shown_and_a_loss_is_called_one() -> None:
    scratch = [0.60, 0.50, 0.55]
    same = [0.62, 0.47, 0.57]  # +0.02, -0.03, +0.02: the interval includes 0
    worse = [0.40, 0.31, 0.36]  # -0.20, -0.19, -0.19: a loss, shown
    f = transfer_finding(_rows(same, "none") + _rows(worse, "all-but-head"), _rows(scratch), [], SETUP)
    check_sourced(f)
    assert "the interval includes 0: no difference shown at 3 seeds" in f.sentences[0]
    assert "the interval excludes 0: a loss is shown" in f.sentences[1]
    assert "an advantage of fine-tuning all is shown" in f.sentences[1]  # all - head: +0.2 with a tight interval
    assert not any("probe" in s for s in f.sentences)  # no probe ran: no probe sentence


def test_one_seed_shows_nothing_and_nothing_run_says_so() -> None:
    f = transfer_finding(_rows([0.7], "none"), _rows([0.5]), PROBES, SETUP)
    assert "1 pair: no interval, so no difference is shown" in f.sentences[0]
    assert {r[0]: r for r in f.table.rows}["fine-tune all"][4] == "no interval (n = 1)"
    empty = transfer_finding([], [], [], TransferSetup())
    assert empty.sentences == ("No transfer run or probe has finished; run the lab again to train them.",)


def test_the_setup_is_read_from_the_saved_configs() -> None:
    source = {"model": {"name": "convnet"}, "data": {"classes": [0, 1, 2, 3, 4], "train_size": 10000},
              "train": {"epochs": 3}}
    target = {"model": {"name": "convnet"}, "data": {"classes": [5, 6, 7, 8, 9], "train_size": 3000,
                                                     "test_size": 2000}, "train": {"epochs": 2},
              "optim": {"name": "adam", "lr": 0.001}}
    head = {**target, "optim": {"name": "adam", "lr": 0.001, "head_lr": 0.01}}
    assert setup_of(source, target, head) == SETUP
    assert setup_of({}, {"data": {"classes": [1, 3]}}, {}).target_classes == "1, 3"


# ----------------------------------------------------------------------------- a tiny lab of the transfer stages

SMALL = {"data.val_size": 16, "data.train_size": 48, "data.test_size": 16, "train.threads": 1,
         "data.eval_batch_size": 256, "model.name": "convnet", "model.channels": 4, "model.stages": 2,
         "model.layers_per_block": 1, "model.norm": "batch", "optim.name": "adam", "optim.lr": 3e-3}
TARGET = {"data.classes": [2, 3, 4]}
TRANSFER = (Study(SOURCE_STUDY, "seed-cnn", "cifar", SMALL | {"data.classes": [0, 1]}, {"train.epochs": [1]}, seeds=1),
            Study(TRANSFER_STUDY, "seed-cnn", "cifar", SMALL | TARGET | {"train.init_from": LAB_RUN + SOURCE_STUDY},
                  {"train.freeze": ["none", "all-but-head"], "train.epochs": [1]}, seeds=2,
                  cases=({"when": {"train.freeze": "all-but-head"}, "set": {"optim.head_lr": 1e-2}},)),
            Study(SCRATCH_STUDY, "seed-cnn", "cifar", SMALL | TARGET, {"train.epochs": [1]}, seeds=2))
_UNUSED = Study("unused", "seed-mlp", "mnist", {}, {"train.epochs": [1]}, seeds=1)
TINY = Profile(name="tiny-transfer", notebook_mlp=_UNUSED, notebook_cnn=_UNUSED, notebook_resnet=_UNUSED,
               mlp_depth=_UNUSED, conv_depth=_UNUSED, depth_key_conv="model.blocks", pair_depth_mlp=2, subset=40,
               landscape_points=3, landscape_2d=False, shatter_depths=(1,), shatter_seeds=1, exercise2=TRANSFER)


@pytest.fixture(scope="module")
def transfer_lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three studies and the probe stage run as the lab runs them, then the section written as the lab's report
    writes it (the rest of the lab is not run: the tiny lab of test_lab.py has no transfer studies, to stay fast)."""
    from reslab.lab.report import _Doc
    from reslab.lab.transfer_report import transfer_section
    from reslab.report.writer import MARKDOWN, write_folder

    root = tmp_path_factory.mktemp("transfer")
    write_mnist(root / "data")
    cifar = write_colour_folder(root / "colour", n_train=400, n_test=100)  # about 40 and 10 images a class
    folder = LabFolder(root / "lab")
    folder.path.mkdir()
    ctx = LabContext(folder, TINY, "mnist", f"imagefolder:{cifar}", str(root / "data"), 1, "local", "cpu",
                     io.StringIO())
    for study in TRANSFER:
        assert run_study(ctx, study) == 0
    probe = [s for s in analysis_stages(TINY) if s.name == PROBE_STAGE]
    assert len(probe) == 1 and probe[0].measure is not None
    probe[0].measure(ctx, folder.analysis(PROBE_STAGE))

    def fill(out: Path) -> None:
        doc = _Doc(out)
        made = transfer_section(doc, folder, TINY, number=1)
        assert made is not None and made[0] == "1. Exercise 2.1 (2025): transfer to new classes"
        doc.write("tiny", doc.blocks, {"findings": doc.findings})

    report = write_folder(folder.report, fill, replace=True)
    return {"folder": folder, "md": (report / MARKDOWN).read_text(), "report": report}


def test_the_probe_stage_probes_the_source_and_lists_every_fine_tuning_run(transfer_lab: dict[str, Any]) -> None:
    folder = transfer_lab["folder"]
    rows = files.read_csv(folder.analysis(PROBE_STAGE) / "probe.csv")
    probes = [r for r in rows if r["method"] != "fine-tune"]
    assert [r["method"] for r in probes] == ["logreg", "linear-svm", "knn"]
    assert {r["n_train"] for r in probes} == {"48"}  # as many images as the fine-tuning runs train on
    assert {r["n_test"] for r in probes} == {"16"}  # their test images: the target classes' data.test_size
    assert len(rows) - len(probes) == 4 + 2  # every seed of both fine-tuning cells, and of scratch
    assert any("freeze all-but-head" in r["note"] for r in rows) and any("from scratch" in r["note"] for r in rows)


def test_the_report_shows_the_section_with_the_runs_numbers(transfer_lab: dict[str, Any]) -> None:
    md, folder = transfer_lab["md"], transfer_lab["folder"]
    assert "## 1. Exercise 2.1 (2025): transfer to new classes" in md
    assert "Question: does a model trained on other classes give features worth reusing" in md
    scratch = [r.metric("test_acc") for r in folder.sweep_folder(SCRATCH_STUDY).run_rows()]
    mean = sum(scratch) / len(scratch)
    assert f"against {100 * mean:.1f}% from scratch" in md  # the sentence quotes the runs' own mean
    logreg = next(r for r in files.read_csv(folder.analysis(PROBE_STAGE) / "probe.csv") if r["method"] == "logreg")
    assert f"| probe: logistic regression | a classifier on the frozen features (48 images) | 1 | " \
           f"{100 * float(logreg['test_acc']):.1f}% |" in md
    assert "classes 0-1 (48 training images, 1 epoch, seed 0)" in md and "classes 2-4" in md
    assert (transfer_lab["report"] / "figures" / "transfer-strategies.png").is_file()
    assert "Frozen features: linear probes and k-NN, beside fine-tuning" in md  # the probe's own analysis section
    assert not math.isnan(mean)


def test_a_profile_without_the_transfer_studies_has_no_probe_stage_nor_section(tmp_path: Path) -> None:
    from reslab.lab.report import _Doc
    from reslab.lab.transfer_report import transfer_section

    without = dataclasses.replace(TINY, exercise2=TRANSFER[:2])  # no scratch study
    assert PROBE_STAGE in [s.name for s in analysis_stages(TINY)]
    assert PROBE_STAGE not in [s.name for s in analysis_stages(without)]
    doc = _Doc(tmp_path)
    assert transfer_section(doc, LabFolder(tmp_path / "lab"), without, number=1) is None and doc.blocks == []
