"""Veit et al. 2016's path view on cases with a known answer: the path-length distribution of an n-block resnet is
binomial, and the gradient of a path through given branches equals the product of their Jacobians on a net that is
linear where it is evaluated; Kendall's tau of swapped orders; swaps stay within a stage."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from torch import nn

from reslab.analyze.lesion import block_infos, plan
from reslab.analyze.lesion_paths import (effective_range, gradient_by_length, kendall_tau, path_counts,
                                         path_gradient)
from reslab.models import build_model
from reslab.models.blocks import Block


def test_path_length_distribution_is_binomial() -> None:
    for n in (1, 3, 6, 10):
        counts = path_counts(n)
        assert sum(counts) == 2 ** n
        assert [c / 2 ** n for c in counts] == pytest.approx([math.comb(n, k) * 0.5 ** n for k in range(n + 1)])


class _Linearish(nn.Module):
    """stem, n pre-act residual blocks of one Linear each, head; non-negative weights and inputs keep every ReLU
    open, so the net is linear where it is evaluated and each path's gradient is a product of matrices."""

    def __init__(self, n: int, width: int = 5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Linear(3, width, bias=False)
        self.blocks = nn.Sequential(*[Block([nn.Linear(width, width, bias=False)], [nn.Identity()], residual=True,
                                            preact=True) for _ in range(n)])
        self.head = nn.Linear(width, 2, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, 0.0, 0.4)
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def _by_hand(model: _Linearish, through: tuple[int, ...]) -> float:
    return float(_vector(model, through).norm())


def test_path_gradients_equal_products_of_jacobians() -> None:
    model = _Linearish(4)
    x = torch.rand(6, 3, dtype=torch.float64)
    y = torch.zeros(6, dtype=torch.long)
    total = lambda out, _: out.sum()  # noqa: E731 (every image's gradient is the same: the net is linear here)
    assert path_gradient(model, x, y, (), total) == pytest.approx(_by_hand(model, ()), rel=1e-12)
    for through in ((2,), (1, 3), (1, 2, 3, 4)):
        assert path_gradient(model, x, y, through, total) == pytest.approx(_by_hand(model, through), rel=1e-12)
    # the paths of all lengths add up to the whole gradient (the binomial expansion of prod (I + W_i))
    x1 = x[:1].clone().requires_grad_(True)
    (whole,) = torch.autograd.grad(model(x1).sum(), x1)
    summed = sum(_vector(model, s) for k in range(5) for s in itertools.combinations(range(1, 5), k))
    torch.testing.assert_close(whole[0], summed)
    by_length = gradient_by_length(model, x, y, draws=10, seed=0, loss_fn=total)
    assert [len(g) for g in by_length] == [1, 4, 6, 4, 1]  # all sets when there are at most `draws`


@torch.no_grad()
def _vector(model: _Linearish, through: tuple[int, ...]) -> torch.Tensor:
    """d sum(output) / d x for the paths through the branches `through`: stem^T J_1^T ... J_n^T head^T 1."""
    g = model.head.weight.T @ torch.ones(2, dtype=torch.float64)
    for i in reversed(range(len(model.blocks))):
        if i + 1 in through:
            g = model.blocks[i].layers[0].weight.T @ g
    return model.stem.weight.T @ g


def test_effective_range_holds_the_middle_of_the_total() -> None:
    assert effective_range([1, 4, 6, 4, 1], [1, 1, 1, 1, 1], share=0.8) == (1, 3)
    assert effective_range([1, 4, 6, 4, 1], [100, 0, 0, 0, 0]) == (0, 0)


def test_kendall_tau_of_swaps() -> None:
    assert kendall_tau(5, ()) == 1.0
    assert kendall_tau(2, ((1, 2),)) == -1.0
    assert kendall_tau(4, ((1, 2),)) == pytest.approx(1 - 4 * 1 / 12)
    assert kendall_tau(4, ((1, 4),)) == pytest.approx(1 - 4 * 5 / 12)


def test_swaps_stay_within_a_stage() -> None:
    model = build_model("convnet", input_shape=(3, 8, 8), num_classes=10, channels=4, stages=3, blocks=3,
                        residual=True)
    blocks = block_infos(model)
    stage = {b.index: b.stage for b in blocks}
    assert len(set(stage.values())) == 3
    swaps = [les for les in plan(blocks, draws=5, seed=0) if les.experiment == "swap"]
    assert swaps and all(stage[a] == stage[b] for les in swaps for a, b in les.swapped)
    assert not any(b.downsamples for les in swaps for pair in les.swapped for b in blocks if b.index in pair)


@pytest.mark.slow
def test_cli_writes_paths_of_the_residual_twin_and_tau(data_dir, tmp_path) -> None:
    from conftest import tiny_cfg
    from reslab import files
    from reslab.cli import main
    from reslab.train import train

    twin = ["model.depth=3", "model.width=8", "train.epochs=1", "train.threads=1", "gradflow.every=0"]
    runs = [train(tiny_cfg(data_dir, tmp_path / "runs", *twin, f"model.residual={r}", preset="res-mlp32"),
                  progress=False).run_dir for r in ("false", "true")]
    out = tmp_path / "out"
    assert main(["analyze", "lesion", *map(str, runs), "--data-dir", str(data_dir), "--set", "data.val_size=100",
                 "--out", str(out), "--quiet", "--device", "cpu", "--draws", "2", "--path-images", "16"]) == 0
    paths = files.read_csv(out / "lesion-paths.csv")
    assert {r["model"] for r in paths} == {f"{runs[1].name}@best"}  # the plain twin has one path: not unravelled
    assert [(int(r["length"]), int(r["paths"])) for r in paths] == [(k, math.comb(3, k)) for k in range(4)]
    lesions = files.read_csv(out / "lesion.csv")
    assert all(float(r["kendall_tau"]) < 1 for r in lesions if r["experiment"] == "swap")
    assert all(r["kendall_tau"] == "" for r in lesions if r["experiment"] in ("single", "delete"))
    record = json.loads((out / "analysis.json").read_text())
    assert {"lesion-paths.png", "lesion-tau.png"} <= set(record["figures"])
    assert "unravelled (Veit et al. 2016): 3 blocks make 2^3 paths" in (out / "lesion-summary.txt").read_text()
