"""`reslab analyze fcn` end to end on a tiny conv net trained on the generated MNIST: the folder it writes, the
canvases it says it drew (test-set digits, seeded), its numbers recomputed from its own CSVs, the sentences, and
one-line errors for input it cannot measure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from helpers.cli import fails_one_line
from helpers.detection import ap_by_hand
from helpers.fakedata import learnable_images
from helpers.training import tiny_cfg
from reslab import files
from reslab.analyze.fcn import FcnOptions
from reslab.analyze.fcn_canvas import CanvasSpec, make_canvases
from reslab.analyze.fcn_summary import verdict
from reslab.cli import main
from reslab.config import dump_yaml, resolve
from reslab.train import train

CONV = "model: {name: convnet, channels: 8, stages: 2, blocks: 1}\ndata: {dataset: mnist}\nname: tiny-conv\n"


@pytest.fixture(scope="module")
def conv_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny conv net (GAP + linear head) trained one epoch on the generated MNIST."""
    folder = tmp_path_factory.mktemp("fcn")
    (folder / "tiny-conv.yaml").write_text(CONV)
    cfg = tiny_cfg(data_dir, folder / "runs", "train.epochs=1", "train.threads=1", "gradflow.every=0",
                   preset=str(folder / "tiny-conv.yaml"))
    return train(cfg, progress=False).run_dir


def test_fcn_writes_a_complete_folder_whose_numbers_follow_from_its_csvs(conv_run: Path, data_dir: Path,
                                                                         tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["analyze", "fcn", str(conv_run), "--canvases", "6", "--size", "64", "--digits", "1", "3",
                 "--scales", "1", "1.5", "--pyramid", "1", "1.5", "--examples", "2", "--seed", "5", "--data-dir",
                 str(data_dir), "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1] == str(out)
    assert "TEST SET of mnist only" in printed and "By the rule (mAP >= 0.7" in printed
    record = json.loads((out / "analysis.json").read_text())
    assert record["kind"] == "fcn" and record["figures"] == ["fcn-ap.png", "fcn-examples.png"]
    assert record["tables"] == ["fcn-stats.csv", "fcn-classes.csv", "fcn-detections.csv", "fcn-truth.csv"]
    assert record["settings"]["digits_from"] == "mnist test set only" and record["settings"]["seed"] == 5
    assert sorted(p.name for p in out.iterdir()) == sorted([*record["figures"], *record["tables"], "analysis.json",
                                                            "fcn-summary.txt"])
    # the canvases are the seeded ones of the generated test set (seed 1 in the fake-data writer)
    images, labels = learnable_images(200, seed=1)
    canvases = make_canvases(torch.from_numpy(images), torch.from_numpy(labels).long(),
                             CanvasSpec(count=6, size=64, digits=(1, 3), scales=(1.0, 1.5), seed=5))
    truth = files.read_csv(out / "fcn-truth.csv")
    assert [int(r["test_index"]) for r in truth] == [i for c in canvases for i in c.sources]
    assert [int(r["class"]) for r in truth] == [int(labels[i]) for c in canvases for i in c.sources]
    stats, = files.read_csv(out / "fcn-stats.csv")
    assert float(stats["surgery_diff"]) < 1e-4 and int(stats["truths"]) == len(truth)
    boxes = files.read_csv(out / "fcn-detections.csv")
    classes = files.read_csv(out / "fcn-classes.csv")
    assert {"yes", "no"} <= {b["true_positive"] for b in boxes}, "hits and misses both, or AP cannot be checked"
    aps = []
    for c in classes:
        mine = [b for b in boxes if b["class"] == c["class"]]
        truths = sum(r["class"] == c["class"] for r in truth)
        assert int(c["truths"]) == truths
        if truths:
            aps.append(ap_by_hand([float(b["score"]) for b in mine], [b["true_positive"] == "yes" for b in mine],
                                  truths))
            assert float(c["ap"]) == pytest.approx(aps[-1], abs=1e-5)
            assert record["findings"][f"{conv_run.name}@best.ap_{c['class']}"] == float(c["ap"])
        above = [b for b in mine if float(b["score"]) >= 0.5]
        assert int(c["detections"]) == len(above)
        assert int(c["true_positives"]) == sum(b["true_positive"] == "yes" for b in above)
    assert record["findings"][f"{conv_run.name}@best.map"] == pytest.approx(np.mean(aps), abs=1e-5)
    assert all(0 <= float(b["x0"]) < float(b["x1"]) for b in boxes)


def test_the_verdict_is_honest() -> None:
    options = FcnOptions()
    good = {"map": 0.85, "digit_acc": 0.98, "precision": 0.9, "recall": 0.8, "stride": "4x4"}
    assert "works as a detector here." in verdict(good, options)
    poor = {**good, "map": 0.1, "precision": 0.2, "recall": 0.3}
    words = verdict(poor, options)
    assert "is a poor detector here" in words and "no background class" in words and "many digits are missed" in words
    assert "weak on the same digits" in verdict({**poor, "digit_acc": 0.5}, options)
    assert "about no window at all" in verdict({**poor, "precision": ""}, options)
    assert "some digits" in verdict({**good, "map": 0.5}, options)


def test_bad_input_is_one_line_and_writes_nothing(conv_run: Path, data_dir: Path, tmp_path: Path,
                                                  straight_run: Callable[..., Path],
                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "never"
    common = ["--data-dir", str(data_dir), "--out", str(out), "--device", "cpu", "--quiet"]
    fails_one_line(capsys, ["analyze", "fcn", str(straight_run()), *common], "fcn needs a conv model")
    fails_one_line(capsys, ["analyze", "fcn", "res-mlp8", *common], "--at best needs a run folder")
    fails_one_line(capsys, ["analyze", "fcn", str(conv_run), "--scales", "1", "4", *common],
                   "--scales up to 4 makes digits of 112 pixels, larger than the --size 96 canvas")
    fails_one_line(capsys, ["analyze", "fcn", str(conv_run), "--digits", "5", "2", *common], "--digits must be >= 5")
    fails_one_line(capsys, ["analyze", "fcn", str(conv_run), "--threshold", "2", *common], "--threshold must be")
    fails_one_line(capsys, ["analyze", "fcn", str(conv_run), "--size", "40", "--scales", "1", "1", "--pyramid", "2",
                            *common], "smaller than the 14x14 of one digit")
    bare = tmp_path / "bare-run"
    bare.mkdir()
    (bare / "config.yaml").write_text(dump_yaml(resolve("seed-mlp")))
    fails_one_line(capsys, ["analyze", "fcn", str(bare), *common], "has no best.pt")
    assert not out.exists()
