"""Exercise 2's detector and distillation in the lab: the stages run on tiny generated data and fill their report
sections from the runs; the findings give the known answer on fabricated runs; a study naming another study's run
("lab:NAME") fails in one line when that study is unknown, and stops the lab when its run is missing."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import sys
from pathlib import Path

import pytest

from helpers.fakedata import write_colour_folder, write_mnist
from reslab.cli import main
from reslab.errors import ReslabError
from reslab.lab import profiles
from reslab.lab.distill_report import DistillSetup, distill_finding
from reslab.lab.exercise2 import ALPHA, DISTILL_STUDY, FCN_STUDY
from reslab.lab.fcn_report import Detector, detectors, fcn_finding
from reslab.lab.folder import LabFolder
from reslab.lab.plan import plan
from reslab.lab.stages import LabContext, LabStopped, run_study
from reslab.lab.study import LAB_RUN, Study
from reslab.status import RunStatus
from reslab.sweep import RESIDUAL, RunRow
from test_lab import TINY
from test_lab_conclusions import check_sourced

_TINY_DATA = {"data.train_size": 200, "data.val_size": 50, "data.test_size": 100, "train.threads": 1,
              "train.epochs": 1}
EXERCISE2 = (
    Study(FCN_STUDY, "mnist-convnet", "mnist", _TINY_DATA | {"model.channels": 4, "model.stages": 2},
          {"model.residual": [False, True]}, seeds=1, title="the MNIST conv twins"),
    Study(DISTILL_STUDY, "plain-mlp8", "mnist",
          _TINY_DATA | {"model.width": 8, "model.depth": 2, "model.residual": False, "model.norm": "none",
                        "train.teacher": LAB_RUN + "ex1-mlp", "train.distill.temperature": 4.0},
          {ALPHA: [0.0, 0.9]}, seeds=2, cases=({"when": {ALPHA: 0.0}, "set": {"train.teacher": None}},),
          title="distillation"),
)
EX2 = dataclasses.replace(TINY, name="tiny-ex2", exercise2=EXERCISE2,
                          notebook_mlp=Study("ex1-mlp", "seed-mlp", "mnist",
                                             {k: v for k, v in _TINY_DATA.items() if k != "train.epochs"},
                                             {"train.epochs": [1]}, seeds=1))
RUN = {"ex1-mlp", FCN_STUDY, DISTILL_STUDY, "fcn-mnist"}  # the stages this test runs; the others are marked done


# ----------------------------------------------------------------------------- the stages on tiny data


@pytest.fixture(scope="module")
def ex2_lab(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A lab of the tiny profile where only the teacher, the two studies and the detector run (lab.json says the
    other stages are done, as a lab resumed after them would), then its report."""
    mp = pytest.MonkeyPatch()
    mp.setitem(profiles.PROFILE_TABLE, EX2.name, EX2)
    root = tmp_path_factory.mktemp("ex2")
    data = write_mnist(root / "data", n_train=300, n_test=100)
    cifar = f"imagefolder:{write_colour_folder(root / 'colour', n_train=40, n_test=40)}"  # checked, never trained on
    out = root / "lab"
    out.mkdir()
    names = [s.name for s in plan(EX2)]
    assert RUN <= set(names)
    (out / "lab.json").write_text(json.dumps({
        "format": "reslab-lab-1", "profile": EX2.name, "mnist": "mnist", "cifar": cifar, "data_dir": str(data),
        "stages": {n: {"status": "done", "seconds": 0.0} for n in names if n not in RUN}}))
    try:
        code = main(["lab", "--profile", EX2.name, "--data-dir", str(data), "--cifar", cifar, "--out", str(out),
                     "--jobs", "1"])
    finally:
        mp.undo()
    return {"code": code, "out": out, "md": (out / "report" / "report.md").read_text(),
            "numbers": json.loads((out / "report" / "report.json").read_text())}


@pytest.mark.slow
def test_the_detector_and_distillation_sections_come_from_the_runs(ex2_lab: dict) -> None:
    out, md = ex2_lab["out"], ex2_lab["md"]
    assert ex2_lab["code"] == 0
    record = json.loads((out / "lab.json").read_text())
    assert all(record["stages"][n]["status"] == "done" for n in RUN)
    detector = re.search(r"## (\d+)\. Exercise 2\.2: a fully-convolutional digit detector", md)
    distill = re.search(r"## (\d+)\. Exercise 2\.2: distillation", md)
    assert detector and distill and int(distill.group(1)) == int(detector.group(1)) + 1
    assert "Question: can a classifier trained on single digits find digits" in md
    assert "Question: does a student learn more from a teacher's soft targets" in md
    answer = md[md.index("The answer"):md.index("Set-up")]  # the front page quotes both sections' findings
    assert "A fully-convolutional detector (Exercise 2.2): " in answer and "Distillation (Exercise 2.2): " in answer
    # the detector's numbers: the stats file the stage wrote, each twin's mAP as the section prints it
    stats = (out / "analyses" / "fcn-mnist" / "fcn-stats.csv").read_text().splitlines()
    assert len(stats) == 1 + 2  # seed 0's plain and residual twins
    found = {f["section"]: f for f in ex2_lab["numbers"]["findings"]}
    rows = found["fcn-mnist"]["rows"]
    assert [r[1] for r in rows[:2]] == ["plain", "residual"]
    from reslab import files
    for row, stat in zip(rows[:2], files.read_csv(out / "analyses" / "fcn-mnist" / "fcn-stats.csv")):
        assert row[3] == ("n/a" if stat["map"] == "" else f"{100 * float(stat['map']):.1f}%")
    assert "(figures/fcn-mnist-fcn-examples.png)" in md
    # distillation: each seed's test accuracies are the sweep's, the teacher is ex1-mlp's seed-0 run
    runs = [r for r in LabFolder(out).sweep_folder(DISTILL_STUDY).run_rows() if r.status is RunStatus.FINISHED]
    assert len(runs) == 4
    table = found[DISTILL_STUDY]["rows"]
    for seed in (0, 1):
        alone, distilled = (next(r.metric("test_acc") for r in runs if r.seed == seed and
                                 (r.values[ALPHA] > 0) is d) for d in (False, True))
        assert table[seed][:3] == [str(seed), f"{100 * alone:.1f}%", f"{100 * distilled:.1f}%"]
    teacher = LabFolder(out).sweep_folder("ex1-mlp").run_rows()[0]
    assert table[-1][2] == f"{100 * teacher.metric('test_acc'):.1f}%"
    assert "T = 4" in md and "200 training images for 1 epochs" in md and "n = 2 seeds" in md
    assert "(figures/ex2-distill.png)" in md and (out / "report" / "figures" / "ex2-distill.png").is_file()
    for f in (found["fcn-mnist"], found[DISTILL_STUDY]):
        assert " ".join(f["sentences"]) in html.unescape(md.replace("\\", ""))


# ----------------------------------------------------------------------------- "lab:NAME" resolution


def _context(tmp_path: Path, profile: profiles.Profile) -> LabContext:
    return LabContext(LabFolder(tmp_path / "lab"), profile, "mnist", "cifar10", str(tmp_path), 1, "local", "cpu",
                      sys.stderr)


def test_a_study_naming_an_unknown_study_fails_in_one_line(tmp_path: Path) -> None:
    bad = dataclasses.replace(EXERCISE2[1], settings=EXERCISE2[1].settings | {"train.teacher": LAB_RUN + "nope"})
    with pytest.raises(ReslabError, match="names the run of 'nope', which is no study of the profile") as err:
        run_study(_context(tmp_path, dataclasses.replace(EX2, exercise2=(bad,))), bad)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "lab" / "sweeps" / DISTILL_STUDY).exists()  # nothing trained


def test_a_study_whose_named_run_is_missing_stops_the_lab(tmp_path: Path) -> None:
    with pytest.raises(LabStopped, match=r"needs the finished seed-0 run of ex1-mlp \(0 found\)"):
        run_study(_context(tmp_path, EX2), EXERCISE2[1])
    assert not (tmp_path / "lab" / "sweeps" / DISTILL_STUDY).exists()


# ----------------------------------------------------------------------------- the findings' known answers


SETUP = DistillSetup(teacher="the notebook's MLP, ex1-mlp seed 0", teacher_acc=0.95, temperature=4.0, alpha=0.9,
                     train_size=2000, epochs=5, student="mlp, depth 2, width 16")


def _distill_rows(alone: list[float], gain: list[float]) -> list[RunRow]:
    rows = []
    for seed, (a, g) in enumerate(zip(alone, gain)):
        rows += [RunRow(key=f"a0-{seed}", values={ALPHA: 0.0}, seed=seed, status=RunStatus.FINISHED,
                        metrics={"test_acc": a}),
                 RunRow(key=f"a9-{seed}", values={ALPHA: 0.9}, seed=seed, status=RunStatus.FINISHED,
                        metrics={"test_acc": a + g})]
    return rows


def test_distillation_that_helps_by_a_fixed_amount_is_shown() -> None:
    f = distill_finding(_distill_rows([0.80, 0.84, 0.78, 0.82], [0.031, 0.029, 0.030, 0.030]), SETUP)
    text = " ".join(f.sentences)
    assert "+3.0 pp" in text and "the interval excludes 0: the soft targets help this student" in text
    assert "95.0%" in text and "T = 4" in text and "alpha = 0.9" in text and "2,000 training images" in text
    assert "5 epochs" in text and "n = 4 seeds" in text
    assert f.table.rows[4][:3] == ["mean (n=4)", "81.0%", "84.0%"]
    check_sourced(f)


def test_no_difference_is_not_shown() -> None:
    f = distill_finding(_distill_rows([0.80, 0.84, 0.78, 0.82], [0.01, -0.01, 0.012, -0.012]), SETUP)
    text = " ".join(f.sentences)
    assert "+0.0 pp" in text and "the interval includes 0: no difference shown" in text
    check_sourced(f)
    hurt = " ".join(distill_finding(_distill_rows([0.8, 0.82, 0.84], [-0.05, -0.049, -0.051]), SETUP).sentences)
    assert "-5.0 pp" in hurt and "the soft targets hurt this student" in hurt


def test_one_seed_or_an_unfinished_pair_gives_no_interval() -> None:
    rows = _distill_rows([0.8, 0.8], [0.05, 0.05])
    rows[3] = dataclasses.replace(rows[3], status=RunStatus.FAILED)  # seed 1's distilled run failed
    f = distill_finding(rows, SETUP)
    assert "with one seed there is no interval: no difference shown" in " ".join(f.sentences)
    assert [r[0] for r in f.table.rows[:2]] == ["0", "mean (n=1)"]
    check_sourced(f)


def test_the_residual_detector_better_by_a_fixed_amount_is_shown() -> None:
    found = [Detector(s, r, 0.97, m + (0.2 if r else 0.0), 0.6, 0.5) for s, m in enumerate([0.3, 0.35, 0.32])
             for r in (False, True)]
    f = fcn_finding(found, {"canvases": 100, "size": 96, "iou": 0.5, "threshold": 0.5, "scales": [1.0, 2.0]})
    text = " ".join(f.sentences)
    assert "32.3% (plain) and 52.3% (residual)" in text and "+20.0 pp" in text
    assert "the interval excludes 0: the residual twin is the better detector" in text
    assert "the plain twin detects some digits and the residual twin detects some digits" in text
    check_sourced(f)
    same = [dataclasses.replace(d, map=0.8 + (0.01 if (d.seed + d.residual) % 2 else -0.01)) for d in found]
    text = " ".join(fcn_finding(same, {"iou": 0.5}).sentences)
    assert "no difference shown" in text and "works as a detector" in text


def test_detector_rows_are_matched_to_their_runs_by_folder(tmp_path: Path) -> None:
    runs = [RunRow(key=f"k{i}", values={RESIDUAL: r}, seed=s, status=RunStatus.FINISHED,
                   run_folder=tmp_path / f"run-{s}-{r}")
            for i, (s, r) in enumerate([(0, True), (1, False), (0, False)])]
    stats = [{"model": "run-0-True@last", "map": "0.5", "digit_acc": "0.9", "precision": "", "recall": "0.4"},
             {"model": "run-0-False@last", "map": "0.25", "digit_acc": "0.8", "precision": "0.1", "recall": "0.2"},
             {"model": "someone-else@last", "map": "0.9", "digit_acc": "1", "precision": "1", "recall": "1"}]
    found = detectors(stats, runs)
    assert [(d.seed, d.residual, d.map) for d in found] == [(0, False, 0.25), (0, True, 0.5)]
    assert "one seed, so no interval" in " ".join(fcn_finding(found, {}).sentences)


# ----------------------------------------------------------------------------- the detector's stage


class _Lab:
    """What the fcn-mnist stage asks of the lab, with `runs` finished runs per seed."""

    def __init__(self, profile: profiles.Profile, runs: int) -> None:
        self.profile, self.device, self.runs = profile, "cpu", runs

    def settings(self, which: str) -> dict:
        return {"data.dataset": which}

    def runs_of(self, study: str, seed: int | None = 0) -> list[str]:
        assert study == FCN_STUDY
        return [f"run-{seed}-{i}" for i in range(self.runs)]


def test_the_detector_stage_runs_where_the_profile_trains_its_twins() -> None:
    from reslab.analyze.instruments_detect import FCN, lab_canvases
    from reslab.errors import ConfigError

    (stage,) = FCN.lab
    assert stage.when(EX2) and not stage.when(TINY) and stage.name not in [s.name for s in plan(TINY)]
    assert stage.when(profiles.QUICK) and stage.when(profiles.FULL)
    assert [lab_canvases(s) for s in (60, profiles.QUICK.subset, profiles.FULL.subset, 10**6)] == [6, 100, 200, 200]
    call = stage.call(_Lab(dataclasses.replace(EX2, instrument_seeds=2), runs=2))
    assert call.sources == ("run-0-0", "run-0-1") and call.options.canvases == 6  # the study has 1 seed
    assert call.settings == {"data.dataset": "mnist"} and call.options.at == "last"
    quick = stage.call(_Lab(profiles.QUICK, runs=2))
    assert quick.sources == ("run-0-0", "run-0-1", "run-1-0", "run-1-1") and quick.options.canvases == 100
    with pytest.raises(ConfigError, match="has 1 finished runs of seed 0, not the plain/residual pair"):
        stage.call(_Lab(EX2, runs=1))
