"""`reslab analyze responses` (He et al. 2015, Figure 7): layer response stds against answers computed by hand (a
linear net with known weights, batch norm's scale), the pair verdict in both directions, and the folder it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers.cli import fails_one_line
from reslab import files
from reslab.analyze.responses import LayerResponse, ResponsesResult, measure
from reslab.analyze.responses_summary import sentences, tables
from reslab.analyze.targets import resolve_targets
from reslab.cli import main
from reslab.models.blocks import Block


def _net(residual: bool, norm: str = "none", scale: float = 2.0) -> nn.Module:
    """Two post-act blocks of one Linear(2, 2) = scale * I, no bias (with batch norm: its gamma = 3)."""
    blocks = []
    for _ in range(2):
        layer = nn.Linear(2, 2, bias=False)
        nn.init.eye_(layer.weight)
        layer.weight.data.mul_(scale)
        bn = nn.BatchNorm1d(2) if norm == "batch" else nn.Identity()
        if norm == "batch":
            bn.weight.data.fill_(3.0)
        blocks.append(Block([layer], [bn], residual=residual, preact=False))
    return nn.Sequential(*blocks)


def test_a_linear_net_with_known_weights_has_the_responses_computed_by_hand() -> None:
    x = torch.rand(64, 2) + 0.1  # positive: every ReLU passes it unchanged
    s = float(x.std())
    # plain: 2x, then relu(2x) -> 4x; residual: 2x, then relu(2x + x) = 3x -> 6x
    for residual, expected in ((False, [2 * s, 4 * s]), (True, [2 * s, 6 * s])):
        model = _net(residual)
        got = measure(model, [(x, torch.zeros(64, dtype=torch.long))], train_mode=False)
        assert [r.std for r in got] == pytest.approx(expected, rel=1e-6)
        assert [(r.layer, r.block, r.name, r.after) for r in got] == [(1, 1, "0.layers.0", "layer"),
                                                                       (2, 2, "1.layers.0", "layer")]
        assert all(not m._forward_hooks for m in model.modules()) and model.training, "hooks removed, mode restored"


def test_after_batch_norm_the_response_std_is_its_gamma() -> None:
    x = torch.randn(512, 2) * 5 + 1
    got = measure(_net(True, "batch"), [(x, torch.zeros(512, dtype=torch.long))], train_mode=True)
    m = 512 * 2  # elements: batch norm gives variance 1 (biased) per feature, std() is unbiased over all of them
    assert [r.std for r in got] == pytest.approx([3 * (m / (m - 1)) ** 0.5] * 2, rel=1e-3)
    assert {r.after for r in got} == {"bn"} and got[0].name == "0.norms.0"


def _result(target, stds: list[float], after: str = "bn") -> ResponsesResult:
    return ResponsesResult(target, tuple(LayerResponse(i, i, f"b{i}", after, s) for i, s in enumerate(stds, 1)),
                           "eval")


@pytest.mark.parametrize("residual_stds, verdict", [([0.5, 0.6, 1.5], "smaller"), ([1.5, 0.6, 2.5], "not smaller"),
                                                           ([0.5, 0.6, 2.0], "not smaller")])
def test_the_pair_verdict_is_read_from_the_numbers(residual_stds: list[float], verdict: str) -> None:
    plain, residual = resolve_targets(["plain-mlp8", "res-mlp8"])
    t = tables([_result(plain, [1.0, 1.0, 1.0]), _result(residual, residual_stds)])
    (pair,) = t["pairs"]
    assert pair["verdict"] == verdict and pair["layers"] == 3
    assert pair["smaller_layers"] == sum(s < 1.0 for s in residual_stds)
    text = " ".join(sentences(t))
    if verdict == "smaller":
        assert "the ResNet's responses are generally smaller than its plain twin's, as in He et al.'s Figure 7" in text
    else:
        assert "are not generally smaller than its plain twin's, unlike He et al.'s Figure 7" in text
    assert "not the paper's measurement" not in text
    no_bn = " ".join(sentences(tables([_result(plain, [1.0] * 3, "layer"), _result(residual, residual_stds,
                                                                                    "layer")])))
    assert "no batch norm: responses after the layer's linear/conv op" in no_bn
    assert "without batch norm in both twins this is not the paper's measurement" in no_bn


def test_the_instrument_writes_its_folder(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["--data-dir", str(data_dir), "--set", "data.val_size=100", "--set", "data.batch_size=32", "--set",
              "model.width=16", "--set", "model.norm=batch", "--batches", "2", "--device", "cpu", "--quiet"]
    out = tmp_path / "out"
    assert main(["analyze", "responses", "plain-mlp8", "res-mlp8", "--at", "init", "--out", str(out), *common]) == 0
    pairs = files.read_csv(out / "responses-pairs.csv")
    assert [p["pair"] for p in pairs] == ["plain-mlp8 vs res-mlp8"] and int(pairs[0]["layers"]) == 8
    layers = files.read_csv(out / "responses-layers.csv")
    assert len(layers) == 16 and {r["after"] for r in layers} == {"bn"}
    record = json.loads((out / "analysis.json").read_text())
    assert record["kind"] == "responses" and "plain-mlp8 vs res-mlp8.fraction_smaller" in record["findings"]
    assert "He et al.'s Figure 7" in (out / "responses-summary.txt").read_text()
    assert (out / "responses.png").stat().st_size > 0
    fails_one_line(capsys, ["analyze", "responses", "seed-mlp", "--at", "init", "--out", str(tmp_path / "never"),
                            *common[:6], "--device", "cpu", "--quiet"], "has no blocks to measure")
    fails_one_line(capsys, ["analyze", "responses", "plain-mlp8", "--out", str(tmp_path / "never"), *common],
                   "needs a run folder")


def test_several_pairs_give_an_interval_over_seeds() -> None:
    from scipy import stats

    targets = resolve_targets(["plain-mlp8", "res-mlp8", "plain-mlp8", "res-mlp8"])  # two seeds' twins, in order
    t = tables([_result(targets[0], [1.0, 1.0]), _result(targets[1], [0.5, 0.7]),
                _result(targets[2], [2.0, 2.0]), _result(targets[3], [1.8, 1.0])])
    assert [p["pair"] for p in t["pairs"]] == ["plain-mlp8 vs res-mlp8", "plain-mlp8#2 vs res-mlp8#2"]
    ratios = [0.6, 0.7]  # means 0.6 / 1.0 and 1.4 / 2.0
    half = stats.t.ppf(0.975, 1) * stats.tstd(ratios) / 2 ** 0.5
    text = " ".join(sentences(t))
    assert (f"Over the 2 pairs (seeds): the residual twin's responses are generally smaller in 2 of 2; its mean "
            f"response std over the plain twin's is 0.65 on average (95% t interval {0.65 - half:.3g} to "
            f"{0.65 + half:.3g}; below 1: smaller).") in text
