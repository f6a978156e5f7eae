"""Balduzzi et al. 2017's statistic on cases with a known answer: a net linear in its input (the same gradient
everywhere: C = 1 at every lag), white noise (C ~ 0 beyond lag 0), the decay length, and each form's own law."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from reslab.analyze.shatter import GridResult, GridSettings, grid_gradient
from reslab.analyze.shatter_paper import NO_LAW, decay_length, gradient_correlation, law, noise
from reslab.analyze.shatter_summary import correlation_rows, decay_sentences, grid_sentences, lag1_rows


def _linear_net(depth: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), *[nn.Linear(1 if i == 0 else 16, 16) for i in range(depth)],
                         nn.Linear(16, 1)).double().eval()


def test_a_linear_net_has_correlation_one_at_every_lag() -> None:
    x = torch.linspace(-2, 2, 64, dtype=torch.float64).view(-1, 1, 1, 1)
    gradients = np.stack([grid_gradient(_linear_net(6, s), x) for s in range(3)])
    np.testing.assert_allclose(gradients, gradients[:, :1].repeat(64, 1), rtol=1e-9)  # constant along the grid
    np.testing.assert_allclose(gradient_correlation(gradients, 20), np.ones(21), rtol=1e-12)
    assert decay_length(gradient_correlation(gradients, 20)) is None  # never below 1/e: censored


def test_white_noise_is_uncorrelated_beyond_lag_zero_and_brown_noise_is_not() -> None:
    white = gradient_correlation(noise("white", 8, 2000, seed=0), 10)
    assert white[0] == pytest.approx(1.0) and np.all(np.abs(white[1:]) < 4 / math.sqrt(8 * 2000))
    assert decay_length(white) == pytest.approx((1 - 1 / math.e) / (1 - white[1]), rel=1e-9)  # inside lag 0..1
    brown = gradient_correlation(noise("brown", 8, 2000, seed=0), 10)
    assert brown[10] > 0.9


def test_the_statistic_against_a_direct_sum() -> None:
    g = np.random.default_rng(1).normal(size=(2, 30))
    k = 3
    a, b = g[:, :-k].ravel(), g[:, k:].ravel()
    assert gradient_correlation(g, 5)[k] == pytest.approx(a @ b / math.sqrt((a @ a) * (b @ b)))


def test_decay_length_interpolates_and_is_none_when_censored() -> None:
    assert decay_length(np.array([1.0, 0.5, 0.2])) == pytest.approx(1 + (0.5 - 1 / math.e) / 0.3)
    assert decay_length(np.array([1.0, 0.9, 0.8])) is None


def test_each_form_is_compared_only_with_its_own_law() -> None:
    assert law("plain", 3, 1, 0.8) == ("2^-L", pytest.approx(0.2))
    assert law("resnet-bn", 4, 1, 0.8) == ("1/sqrt(L)", pytest.approx(0.4))
    for form in ("resnet", "plain-bn"):
        name, curve = law(form, 4, 1, 0.8)
        assert name == NO_LAW and math.isnan(curve)
    grid = [GridResult(form, d, 0, np.array([1.0, 0.9 / d]), np.ones(32)) for form in ("resnet", "plain")
            for d in (1, 2, 4)]
    settings = GridSettings(depths=(1, 2, 4), forms=("resnet", "plain"), seeds=1, points=32, max_lag=4)
    lag1 = lag1_rows(grid, 32)
    assert {r["form"]: r["reference"] for r in lag1} == {"resnet": NO_LAW, "plain": "2^-L"}
    assert all(r["reference_curve"] == "" for r in lag1 if r["form"] == "resnet")
    text = " ".join(grid_sentences(lag1, settings))
    assert "1/sqrt(L)" not in text.split("resnet:")[1].split("plain:")[0].replace(
        "its 1/sqrt(L) for resnets with batch norm", "")
    corr, decay = correlation_rows(grid, settings, seed=0)
    assert [r["form"] for r in decay][:2] == ["white noise", "brown noise"]
    assert all(r["corr_lag1"] == pytest.approx(1.0) for r in decay if r["depth"])  # constant gradients: 1
    words = " ".join(decay_sentences(decay))
    assert "resnet: C(1) 1 at depth 1" in words and "so it is not compared with one" in words
    assert "Its own law, 2^-L through the first depth" in words
