"""`reslab analyze probe` (issue 20 §3): frozen features + scikit-learn baselines, beside fine-tuning runs, on a
CIFAR-10-like split of the generated data (train on classes 0-4, probe and fine-tune on 5-9)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.shared import SHARED_DATA
from helpers.training import tiny_cfg
from reslab import files
from reslab.analyze import catalog
from reslab.analyze.probe import top5
from reslab.analyze.registry import Common, run_instrument
from reslab.analyze.probe import ProbeOptions
from reslab.data import load_dataset
from reslab.errors import ReslabError
from reslab.models import build_model
from reslab.runs import RunFolder
from reslab.train import train

SPLIT = "data.classes=[5,6,7,8,9]"


@pytest.fixture(scope="module")
def runs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seed-mlp trained on classes 0-4, and a fine-tuning of it on 5-9 with all but the head frozen."""
    where = tmp_path_factory.mktemp("probe-runs")
    source = train(tiny_cfg(data_dir, where, "data.classes=[0,1,2,3,4]", "train.epochs=2"), progress=False).run_dir
    tuned = train(tiny_cfg(data_dir, where, SPLIT, f"train.init_from={source}", "train.freeze=all-but-head",
                           "train.epochs=1"), progress=False).run_dir
    return source, tuned


def _common(data_dir: Path, out: Path) -> Common:
    return Common(overrides=(SPLIT,), settings={"data.data_dir": str(data_dir)}, device="cpu", out=out,
                  progress=False)


def test_probe_table_and_an_independent_logistic_regression(data_dir: Path, tmp_path: Path,
                                                            runs: tuple[Path, Path]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    source, tuned = runs
    out, _ = run_instrument(catalog.get("probe"), [str(source)], ProbeOptions(finetuned=(str(tuned),)),
                            _common(data_dir, tmp_path / "out"))
    rows = files.read_csv(out / "probe.csv")
    assert [r["method"] for r in rows] == ["logreg", "linear-svm", "knn", "fine-tune"]
    assert rows[0]["converged"] == "True" and all(0 <= float(r["test_acc"]) <= 1 for r in rows)
    assert "freeze all-but-head" in rows[3]["note"]

    # the same numbers from the head's input, by a forward hook on an independently built model
    data = load_dataset("mnist", data_dir, download=False).select_classes([5, 6, 7, 8, 9])
    torch.manual_seed(0)
    model = build_model("seed-mlp", input_shape=(1, 28, 28), num_classes=5, width=16, depth=2)
    weights = RunFolder(source).load_checkpoint("best")["model"]
    model.load_state_dict({k: v for k, v in weights.items() if not k.startswith("head.")}, strict=False)
    seen: list[torch.Tensor] = []
    model.head.register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))

    def feats(x: torch.Tensor) -> np.ndarray:
        seen.clear()
        with torch.no_grad():
            model.eval()(((x.float() / 255) - data.mean[0]) / data.std[0])
        return seen[0].double().numpy()

    x, xt = feats(data.train_x), feats(data.test_x)
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(max_iter=5000).fit(scaler.transform(x), data.train_y.numpy())
    expected = float((clf.predict(scaler.transform(xt)) == data.test_y.numpy()).mean())
    assert float(rows[0]["test_acc"]) == pytest.approx(expected, abs=1e-9)
    assert float(rows[0]["test_acc"]) > 0.5  # features of classes 0-4 carry over to 5-9 on this data


def test_probe_refuses_what_is_not_a_run(data_dir: Path, tmp_path: Path, runs: tuple[Path, Path]) -> None:
    with pytest.raises(ReslabError, match="probe needs trained run folders; seed-mlp is not one"):
        run_instrument(catalog.get("probe"), ["seed-mlp"], ProbeOptions(), _common(data_dir, tmp_path / "o"))
    with pytest.raises(ReslabError, match="--k must be >= 1"):
        run_instrument(catalog.get("probe"), [str(runs[0])], ProbeOptions(k=0), _common(data_dir, tmp_path / "o"))


def test_top5_from_scores() -> None:
    scores = np.eye(12)[[0, 1, 2]] + np.linspace(0, 0.5, 12)  # class i first, then 11, 10, 9, 8
    assert top5(scores, np.arange(12), np.array([0, 11, 5])) == pytest.approx(2 / 3)
    assert top5(scores[:, :10], np.arange(10), np.array([0, 1, 2])) is None


def _online() -> bool:
    try:
        socket.create_connection(("www.cs.toronto.edu", 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_probe_on_real_cifar100(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    """The real path: CIFAR-100 from a copy in ../shared/data, else downloaded (online users)."""
    copy = SHARED_DATA / "cifar-100-python"
    if not copy.is_dir() and not _online():
        pytest.skip(f"no CIFAR-100 copy in {SHARED_DATA} and no network to download it")
    root = SHARED_DATA if copy.is_dir() else tmp_path / "data"
    cfg = tiny_cfg(root, tmp_path / "runs", "data.dataset=cifar100", "train.epochs=1", "data.train_size=512",
                   "data.test_size=500", preset="seed-cnn")
    source = train(cfg, progress=False).run_dir
    out, text = run_instrument(catalog.get("probe"), [str(source)], ProbeOptions(max_train=2000), Common(
        settings={"data.dataset": "cifar100", "data.data_dir": str(root), "data.test_size": 1000}, device="cpu",
        out=tmp_path / "out", progress=False))
    rows = files.read_csv(out / "probe.csv")
    assert len(rows) == 3 and all(r["test_top5"] for r in rows)
