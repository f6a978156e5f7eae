"""Distillation (issue 20 §4): the loss against an independent computation, the cached teacher logits against the
teacher's forward pass, the batch's logits served by index, and a sweep over train.teacher with paired seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.training import strict_json, tiny_cfg
from reslab import files
from reslab.config import DistillConfig
from reslab.data import DeviceLoader, load_dataset, normalize
from reslab.distill import distill_loss
from reslab.errors import CheckpointError
from reslab.models import build_model
from reslab.runs import RunFolder
from reslab.train import train

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize(("temperature", "alpha"), [(4.0, 0.9), (1.0, 0.5), (2.5, 0.0), (8.0, 1.0)])
def test_distill_loss_matches_an_independent_computation(temperature: float, alpha: float) -> None:
    rng = np.random.default_rng(0)
    s, t, y = rng.normal(size=(6, 5)) * 3, rng.normal(size=(6, 5)) * 3, rng.integers(0, 5, 6)
    p, q = _softmax(t / temperature), _softmax(s / temperature)
    kl = (p * (np.log(p) - np.log(q))).sum(1)
    ce = -np.log(_softmax(s)[np.arange(6), y])
    expected = alpha * temperature**2 * kl + (1 - alpha) * ce
    got = distill_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), DistillConfig(temperature, alpha))
    assert got.double().numpy() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    same = distill_loss(torch.tensor(s), torch.tensor(s), torch.tensor(y), DistillConfig(temperature, 1.0))
    assert same.abs().max() < 1e-5  # a student equal to its teacher has nothing to learn


def test_the_loader_names_the_dataset_index_of_each_batch() -> None:
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    index = torch.tensor([9, 3, 5, 0, 7])
    loader = DeviceLoader(images[index], torch.zeros(5, dtype=torch.long), batch_size=2, mean=(0.0,),
                          std=(1 / 255,), device="cpu", shuffle=True, index=index)
    for x, _ in loader:
        assert torch.equal(x[:, 0, 0, 0].round().long(), loader.served.long())


@pytest.fixture(scope="module")
def teacher(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tiny_cfg(data_dir, tmp_path_factory.mktemp("teacher"), "model.width=32", "train.epochs=2"),
                 progress=False).run_dir


def test_cached_logits_are_the_teachers_forward(data_dir: Path, tmp_path: Path, teacher: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run = train(tiny_cfg(data_dir, tmp_path, f"train.teacher={teacher}", "train.epochs=1"), progress=False).run_dir
    record = strict_json(RunFolder(run).summary)["teacher"]
    import hashlib

    assert record["sha256"] == hashlib.sha256(RunFolder(teacher).best.read_bytes()).hexdigest()
    cached = torch.load(record["cache"])["logits"]
    data = load_dataset("mnist", data_dir, download=False)
    model = build_model("seed-mlp", input_shape=(1, 28, 28), num_classes=10, width=32, depth=2)
    model.load_state_dict(RunFolder(teacher).load_checkpoint("best")["model"])
    with torch.no_grad():
        expected = model.eval()(normalize(data.train_x, data.mean, data.std))
    assert torch.allclose(cached, expected, atol=1e-5)

    import reslab.distill

    monkeypatch.setattr(reslab.distill, "compute_logits", lambda *a: pytest.fail("the cache was not used"))
    again = train(tiny_cfg(data_dir, tmp_path, f"train.teacher={teacher}", "train.epochs=1"), progress=False).run_dir
    assert files.read_csv(RunFolder(again).metrics)[0]["train_loss"] == \
        files.read_csv(RunFolder(run).metrics)[0]["train_loss"]


def test_alpha_zero_is_plain_training(data_dir: Path, tmp_path: Path, teacher: Path) -> None:
    """With alpha 0 the loss is the cross-entropy: the run equals an undistilled one (the teacher leaves the
    student's random state alone)."""
    plain = train(tiny_cfg(data_dir, tmp_path, "train.epochs=1"), progress=False).run_dir
    zero = train(tiny_cfg(data_dir, tmp_path, f"train.teacher={teacher}", "train.distill.alpha=0", "train.epochs=1"),
                 progress=False).run_dir
    rows = [files.read_csv(RunFolder(r).metrics)[0] for r in (plain, zero)]
    for key in ("train_loss", "val_acc", "val_loss"):
        assert float(rows[0][key]) == pytest.approx(float(rows[1][key]), rel=1e-6)


def test_a_teacher_with_other_classes_is_one_line(data_dir: Path, tmp_path: Path, teacher: Path) -> None:
    with pytest.raises(CheckpointError, match=r"train.teacher .* head.weight has shape \(10, 32\) there, \(5, 32\)"):
        train(tiny_cfg(data_dir, tmp_path, f"train.teacher={teacher}", "data.classes=[0,1,2,3,4]"), progress=False)


def test_a_sweep_over_the_teacher_gives_a_paired_interval(data_dir: Path, tmp_path: Path, teacher: Path) -> None:
    """train.teacher off/on over 3 paired seeds with `pair: train.teacher`: paired.csv holds the distilled minus the
    undistilled student, per seed, and the 95% t interval of that difference, equal to scipy's over results.csv."""
    import yaml
    from scipy import stats

    from reslab.sweep import SweepFolder, load_sweep, run_sweep

    sweep = {"name": "distil", "base": "seed-mlp", "seeds": 3, "pair": "train.teacher",
             "set": {"data.val_size": 100, "data.batch_size": 32, "optim.lr": 3e-3, "gradflow.every": 0,
                     "train": {"epochs": 1, "deterministic": True, "device": "cpu", "threads": 1}},
             "grid": {"train.teacher": [None, str(teacher)]}}
    (tmp_path / "distil.yaml").write_text(yaml.safe_dump(sweep))
    result = run_sweep(load_sweep(tmp_path / "distil.yaml"), jobs=1, runs_dir=tmp_path / "runs",
                       data_dir=str(data_dir), out=open("/dev/null", "w"))
    acc = {(r.values["train.teacher"] is not None, r.seed): r.metric("test_acc") for r in result.runs}
    assert len(acc) == 6 and all(a is not None for a in acc.values())
    diffs = [acc[True, s] - acc[False, s] for s in range(3)]
    mean = sum(diffs) / 3
    low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(diffs))
    (pair,) = result.paired  # read back from paired.csv
    assert pair.pair.key == "train.teacher" and (pair.pair.a, pair.pair.b) == (None, str(teacher))
    assert pair.n == 3 and pair.seeds == (0, 1, 2) and pair.values == {}
    assert pair.diffs["test_acc"] == pytest.approx(diffs, abs=1e-6)  # written with 6 significant digits
    assert pair.stat("test_acc_diff_mean") == pytest.approx(mean, abs=1e-9)
    assert (pair.stat("test_acc_diff_ci_low"), pair.stat("test_acc_diff_ci_high")) == pytest.approx((low, high),
                                                                                                     abs=1e-9)
    summary_txt = SweepFolder(result.folder).summary.read_text()
    assert f"train.teacher={teacher} - train.teacher=null test accuracy" in summary_txt
    for r in result.runs:
        summary = strict_json(RunFolder(r.run_folder).summary)
        assert ("teacher" in summary) == (r.values["train.teacher"] is not None)
