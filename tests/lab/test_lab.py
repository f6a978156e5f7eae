"""`reslab lab` on tiny generated data: every stage, the report (files and browser), resuming, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from helpers.browser import check_page
from helpers.fakedata import write_colour_folder, write_mnist
from reslab.cli import main
from reslab.lab import profiles
from reslab.lab.profiles import Profile, Study

SMALL = {"data.val_size": 50, "data.train_size": 150, "data.test_size": 60, "train.threads": 1,
         "data.eval_batch_size": 256}
TINY = Profile(
    name="tiny",
    notebook_mlp=Study("ex1-mlp", "seed-mlp", "mnist", {"data.val_size": 100, "train.threads": 1},
                       {"train.epochs": [2]}, seeds=2),
    notebook_cnn=Study("ex1-cnn", "seed-cnn", "cifar", SMALL, {"train.epochs": [1]}, seeds=2),
    notebook_resnet=Study("ex1-resnet", "seed-resnet", "cifar", SMALL | {"model.channels": 8}, {"train.epochs": [1]},
                          seeds=2),
    mlp_depth=Study("mlp-depth", "plain-mlp8", "mnist",
                    {"model.width": 16, "model.layers_per_block": 2, "model.norm": "none", "data.val_size": 100,
                     "train.epochs": 2, "optim.lr": 3e-3, "train.threads": 1, "train.until": "plateau",
                     "train.patience": 1},
                    {"model.depth": [2, 8], "model.residual": [False, True]}, seeds=2),
    conv_depth=Study("conv-depth", "seed-cnn", "cifar",
                     {"model.name": "convnet", "model.channels": 4, "model.stages": 2, "model.layers_per_block": 2,
                      "model.norm": "batch", **SMALL, "train.epochs": 1},
                     {"model.blocks": [1, 2], "model.residual": [False, True]}, seeds=2),
    depth_key_conv="model.blocks", pair_depth_mlp=8, subset=60, landscape_points=5, landscape_2d=False,
    shatter_depths=(1, 4), shatter_seeds=1, gradflow_batches=2, shortcuts=("Tiny generated data.",))
RUNS = 2 + 2 + 2 + 8 + 8


@pytest.fixture()
def tiny_profile(monkeypatch: pytest.MonkeyPatch) -> Profile:
    monkeypatch.setitem(profiles.PROFILE_TABLE, "tiny", TINY)
    return TINY


@pytest.fixture(scope="module")
def lab_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("labdata")
    write_mnist(root)
    cifar = write_colour_folder(root / "colour", n_train=400, n_test=80)
    return {"data_dir": str(root), "cifar": f"imagefolder:{cifar}"}


def lab(lab_data: dict[str, str], out: Path, *extra: str) -> int:
    return main(["lab", "--profile", "tiny", "--data-dir", lab_data["data_dir"], "--cifar", lab_data["cifar"],
                 "--out", str(out), "--jobs", "1", *extra])


def _run_folders(out: Path) -> dict[str, list[str]]:
    """study -> the run folders its sweep holds (moved-aside ones excluded)."""
    return {p.name: sorted(r.name for r in (p / "runs").iterdir() if r.is_dir()) for p in (out / "sweeps").iterdir()}


@pytest.fixture(scope="module")
def finished_lab(lab_data: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    mp.setitem(profiles.PROFILE_TABLE, "tiny", TINY)
    out = tmp_path_factory.mktemp("lab") / "lab"
    try:
        code = lab(lab_data, out)
    finally:
        mp.undo()
    return {"code": code, "out": out, "md": (out / "report" / "report.md").read_text(),
            "numbers": json.loads((out / "report" / "report.json").read_text())}


@pytest.mark.slow
def test_the_lab_fills_every_section_from_its_runs(finished_lab: dict[str, Any]) -> None:
    out, md = finished_lab["out"], finished_lab["md"]
    assert finished_lab["code"] == 0
    for title in ("1. Exercise 1.1", "2. Exercise 1.2", "3. Plain against residual MLPs over depth",
                  "4. Plain against residual conv nets over depth", "5. Exercise 2: gradient flow",
                  "6. Lesion: deleting and reordering blocks", "7. Shattered gradients", "8. Loss landscapes",
                  "9. Block forms at initialisation", "10. Layer responses (He et al. 2015, Figure 7)"):
        assert f"## {title}" in md
    assert "Tiny generated data." in md and "## The answer" in md
    assert re.search(r"\d+ of 8 finished runs reached such a plateau, \d+ hit the cap of 2 epochs", md)  # mlp-depth
    assert "Over the 2 pairs (seeds): the residual twin's responses are generally smaller in" in md  # 2 seeds' twins
    runs = _run_folders(out)
    assert sum(len(v) for v in runs.values()) == RUNS
    assert "(figures/ex1-mlp-curves.png)" in md  # drawn by the report: the lab's runs draw no figures of their own
    assert not list((out / "sweeps").glob("*/runs/*/*.png"))
    record = json.loads((out / "lab.json").read_text())
    assert all(v["status"] == "done" for v in record["stages"].values()) and len(record["stages"]) >= 15
    sections = {f["section"] for f in finished_lab["numbers"]["findings"]}
    assert {"ex1-mlp", "ex1-cnns", "mlp-depth", "conv-depth", "gradflow-notebook", "gradflow-depth"} <= sections
    for f in finished_lab["numbers"]["findings"]:  # every conclusion printed in the report, beside its table
        assert " ".join(f["sentences"]) in md.replace("\\", "")


@pytest.mark.slow
def test_a_second_run_trains_nothing_and_rebuilds_the_report(finished_lab: dict[str, Any], lab_data: dict[str, str],
                                                             tiny_profile: Profile, capsys: pytest.CaptureFixture,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lab"
    shutil.copytree(finished_lab["out"], out)
    before = _run_folders(out)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # the same data folder, typed as a relative path this time
    assert lab({**lab_data, "data_dir": os.path.relpath(lab_data["data_dir"])}, out) == 0
    captured = capsys.readouterr()
    assert "lab [" not in captured.err  # no stage ran
    assert captured.out.strip().splitlines()[-1] == str(out / "report" / "report.html")
    assert _run_folders(out) == before and (out / "report" / "report.html").is_file()


def test_another_labs_folder_or_a_foreign_one_is_refused(lab_data: dict[str, str], tiny_profile: Profile,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert lab(lab_data, foreign) == 2
    assert "already holds files that are not a reslab lab" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "lab.json").write_text(json.dumps({"format": "reslab-lab-1", "profile": "quick", "mnist": "mnist",
                                               "cifar": "cifar10", "data_dir": None, "stages": {}}))
    assert lab(lab_data, other) == 2
    err = capsys.readouterr().err
    assert "holds a lab made with profile 'quick'" in err and len(err.strip().splitlines()) == 1


def test_missing_data_fails_before_anything_is_written(tiny_profile: Profile, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "lab"
    code = main(["lab", "--profile", "tiny", "--data-dir", str(tmp_path / "nothing"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("reslab: error: --mnist mnist:") and "--mnist SPEC" in err
    assert not out.exists()


def test_an_unknown_profile_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["lab", "--profile", "huge", "--out", str(tmp_path / "lab")]) == 2
    assert "unknown profile 'huge'; valid: quick, full" in capsys.readouterr().err


@pytest.mark.slow
def test_the_lab_report_in_a_browser(finished_lab: dict[str, Any], chromium: str, tmp_path: Path) -> None:
    html = finished_lab["out"] / "report" / "report.html"
    page = check_page(html, tmp_path / "lab.png", chromium)
    assert len(page["images"]) == html.read_text().count("<img ") >= 7
    assert all(img["complete"] and img["width"] > 0 for img in page["images"]), page["images"]
    assert page["errors"] == []
    assert all(url.startswith(("file:", "data:")) for url in page["requests"]), page["requests"]


RUNNER = """
import sys
sys.path[:0] = [{tests!r}, {here!r}]
from test_lab import TINY
from reslab.lab import profiles
profiles.PROFILE_TABLE["tiny"] = TINY
from reslab.cli import main
import pathlib, torch  # noqa: E401  (imported before the marker: a signal is meant for the lab, not for `import`)
pathlib.Path({ready!r}).touch()
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_ctrl_c_at_any_moment_then_rerun_loses_and_repeats_no_run(finished_lab: dict[str, Any],
                                                                  lab_data: dict[str, str], tmp_path: Path) -> None:
    """SIGINT at growing delays after start-up (in sweeps, analyses and the report), rerun each time, until the lab
    finishes. The delays count from a marker the runner writes once its imports are done, so a loaded machine's slow
    `import torch` does not swallow them."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "run_lab.py"
    ready = tmp_path / "ready"
    script.write_text(RUNNER.format(tests=str(Path(__file__).resolve().parents[1]),
                                     here=str(Path(__file__).resolve().parent), ready=str(ready)))
    out = tmp_path / "lab"
    argv = [sys.executable, str(script), "lab", "--profile", "tiny", "--data-dir", lab_data["data_dir"], "--cifar",
            lab_data["cifar"], "--out", str(out), "--jobs", "1"]
    codes = []
    for delay in (1.0, 4.0, 7.0, None):
        ready.unlink(missing_ok=True)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if delay is not None:
            started = time.monotonic()
            while not ready.exists() and proc.poll() is None and time.monotonic() - started < 120:
                time.sleep(0.05)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
        codes.append(proc.returncode)
        assert proc.returncode in (0, 130), stderr[-2000:]
        # Python prints (and swallows) an interrupt that lands in a garbage-collection callback; the lab stops
        # after that stage instead (checked by the codes below); any other traceback is a bug
        kept = re.sub(r"Exception ignored in:.*?KeyboardInterrupt: ?\n", "", stderr, flags=re.S)
        assert "Traceback" not in kept, stderr[-3000:]
        if delay is None or proc.returncode == 0:
            break
    assert codes[-1] == 0 and 130 in codes, codes
    for study, names in _run_folders(out).items():
        kept = [n for n in names if ".incomplete-" not in n and ".failed-" not in n]
        keys = [n.rsplit("-", 3)[0] for n in kept]
        assert len(keys) == len(set(keys)), (study, kept)  # no run twice
    assert sum(len([n for n in v if ".incomplete-" not in n and ".failed-" not in n])
               for v in _run_folders(out).values()) == RUNS  # none lost
    import csv

    for study in ("ex1-mlp", "mlp-depth", "conv-depth"):
        def rows(root: Path) -> dict[str, str]:
            with open(root / "sweeps" / study / "results.csv") as fh:
                return {",".join(r[k] for k in r if k.startswith(("model.", "train.")) or k == "seed"): r["test_acc"]
                        for r in csv.DictReader(fh)}
        assert rows(out) == rows(finished_lab["out"]), study  # the same results as the uninterrupted lab
    assert (out / "report" / "report.html").is_file()
