"""Update sizes beside gradient norms (issue 18): the init step is a real optimizer step that leaves the weights as
they were, and 'does not learn' (a relative update below STALL per step) predicts whether a layer's weights move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reslab import files
from reslab.analyze.gradflow import measure
from reslab.analyze.gradflow_updates import STALL, describe_updates, init_rows, stats_columns, training_rows
from reslab.analyze.targets import build, resolve_targets, shared_data
from reslab.cli import main
from reslab.config import OptimConfig
from reslab.gradflow import GradientProbe
from reslab.optim import make_optimizer
from reslab.runs import RunFolder
from reslab.train import train
from conftest import tiny_cfg


def _batches(n: int = 3, features: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(16, features, generator=gen), torch.randint(0, 10, (16,), generator=gen)) for _ in range(n)]


class _Gated(nn.Module):
    """stem -> ReLU -> times `gate` -> head: gate 0 gives the stem exactly no gradient, a small gate a small one."""

    def __init__(self, gate: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem, self.head = nn.Linear(64, 32), nn.Linear(32, 10)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.stem(x)) * self.gate + 0.1)


def test_the_init_step_is_a_real_step_and_puts_the_weights_back() -> None:
    model = _Gated(1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = measure(model, _batches())
    sgd = measure(model, _batches(), OptimConfig(name="sgd", lr=0.5, momentum=0.9))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), "the weights are put back"
    for a, b in zip(plain, sgd):  # the gradient statistics are those of the init weights, step or not
        np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
        assert np.isnan(a.update_norm).all()
        np.testing.assert_allclose(b.update_norm, 0.5 * b.grad_norm, rtol=1e-5)  # SGD's first step: lr * g
    adam = measure(model, _batches(), OptimConfig(name="adam", lr=1e-3))
    assert model.stem.weight.grad is None and model.head.weight.grad is None, "the gradients are cleared"
    sizes = np.array([64 * 32, 32 * 10])  # Adam's first step is lr * sign(g): lr * sqrt(#entries with a gradient)
    for rec in adam:
        np.testing.assert_allclose(rec.update_norm, 1e-3 * np.sqrt(sizes), rtol=0.02)
    rows = init_rows("gated", adam, 1e-3)
    assert [r["layer"] for r in rows] == ["stem", "head"] and all(r["learns"] == "yes" for r in rows)
    assert rows[0]["effective_lr"] == pytest.approx(np.median([r.update_norm[0] / r.grad_norm[0] for r in adam]))
    assert init_rows("gated", plain, float("nan")) == [], "no step, no update rows"


def _train_steps(model: nn.Module, steps: int) -> list[dict]:
    """`steps` Adam steps as the trainer takes them, recorded as gradflow.csv rows are."""
    opt = make_optimizer(model, OptimConfig(name="adam", lr=1e-3), torch.device("cpu"))
    rows = []
    for step, (x, y) in enumerate(_batches(steps), start=1):
        with GradientProbe(model) as probe:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            probe.capture_gradients(snapshot_weights=True)
            opt.step()
            rows += probe.record(loss).layer_rows(step=step, lr="0.001")
    return rows


def test_does_not_learn_predicts_which_layer_stays_put() -> None:
    """A stem with exactly no gradient is said not to learn, and training leaves it where it was; a stem with a
    gradient 1e-4 times smaller (the gradient ratio's 'vanishes') is said to learn, and it moves."""
    adam = OptimConfig(name="adam", lr=1e-3)
    for gate, learns in ((0.0, "no"), (1e-4, "yes")):
        model = _Gated(gate)
        records = measure(model, _batches(), adam)
        predicted = init_rows(f"gate {gate}", records, adam.lr)
        assert predicted[0]["learns"] == learns and predicted[1]["learns"] == "yes"
        start = model.stem.weight.detach().clone()
        recorded = training_rows(f"gate {gate}", [{k: str(v) for k, v in r.items()} for r in _train_steps(model, 20)])
        moved = float((model.stem.weight.detach() - start).norm() / start.norm())
        assert recorded[0]["learns"] == learns, "the training record says the same"
        if learns == "no":
            assert moved == 0.0 and recorded[0]["relative_update"] == 0.0
            stats = {"model": "gated", "batches": 3, "first_layer": "stem", "last_layer": "head", "at": "init",
                     **stats_columns(predicted, recorded)}
            text = " ".join(describe_updates([stats]))
            assert "stem moves by less than 0.0001 of its norm per step (0): by this measure it does not learn" in text
            assert "While run gate 0.0 trained (20 recorded steps, median)" in text
        else:
            ratio = np.mean([r.grad_norm[0] / r.grad_norm[1] for r in records])
            assert ratio < 0.1, "the old definition (first/last gradient ratio below 0.1) would say it vanishes"
            assert moved > 20 * STALL, "yet the stem moves"


@pytest.mark.slow
@pytest.mark.parametrize("depth", [4, 8])
def test_a_plain_mlp_that_learns_is_not_said_to_stall(data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture, depth: int) -> None:
    cfg = tiny_cfg(data_dir, tmp_path / "runs", f"model.depth={depth}", "model.width=64", "train.epochs=2",
                   "gradflow.every=4", preset="plain-mlp8")
    run = train(cfg, progress=False).run_dir
    assert RunFolder(run).read_summary()["test_acc"] > 0.3, "the plain MLP learns (chance: 0.1)"
    out = tmp_path / "out"
    assert main(["gradflow", str(run), "--at", "init", "--at", "last", "--data-dir", str(data_dir), "--set",
                 "data.val_size=100", "--set", "data.batch_size=32", "--batches", "2", "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    init = files.read_csv(out / "gradflow-stats.csv")[0]
    assert float(init["first_update"]) >= STALL and float(init["train_min_update"]) >= STALL
    assert "it does not learn" not in text and text.count(": all learn.") == 2  # the init step, the training record
    updates = files.read_csv(out / "gradflow-updates.csv")
    assert {r["phase"] for r in updates} == {"init step", "training"} and all(r["learns"] == "yes" for r in updates)
    targets = resolve_targets([str(run)], at=("init", "last"))
    data = shared_data(targets)[0]
    (start, _), (end, _) = (build(t, data, torch.device("cpu")) for t in targets)
    w0, w1 = (dict(m.named_parameters())[f"{init['first_layer']}.weight"].detach() for m in (start, end))
    assert float((w1 - w0).norm() / w0.norm()) > 0.05, "and its first layer did move"
    for name in ("gradflow-updates.png", "gradflow-effective-lr.png", "gradflow-updates-training.png"):
        assert (out / name).is_file(), name
