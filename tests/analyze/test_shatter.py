"""Shattered gradients: input gradients against finite differences, the correlation statistics against numpy on
known signals, the words against the numbers, and the command line end to end (deterministic, one-line errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reslab import files
from reslab.analyze.shatter import (GridResult, GridSettings, autocorrelation, calibrate_batch_norm, grid_gradient,
                                    grid_net, lagged_correlation, line_gradients)
from reslab.analyze.shatter_summary import grid_sentences, lag1_rows
from reslab.cli import main
from reslab.models import build_model
from helpers.cli import fails_one_line


@pytest.mark.parametrize("form", ["plain", "plain-bn", "resnet", "resnet-bn"])
def test_grid_gradient_matches_finite_differences(form: str) -> None:
    model = grid_net(form, depth=3, width=12, seed=1)
    x = torch.linspace(-2, 2, 64, dtype=torch.float64).view(-1, 1, 1, 1)
    assert calibrate_batch_norm(model, x) == form.endswith("-bn")
    assert not model.training, "per-point gradients need the batch statistics held fixed"
    h = 1e-6
    with torch.no_grad():
        numeric = ((model(x + h) - model(x - h)) / (2 * h)).flatten().numpy()
    np.testing.assert_allclose(grid_gradient(model, x), numeric, rtol=1e-5, atol=1e-8)


def test_line_gradient_matches_a_directional_finite_difference() -> None:
    torch.manual_seed(0)
    model = build_model("cifar-resnet", input_shape=(3, 8, 8), num_classes=10, depth=8, width=4).double().eval()
    start, end = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    grads = line_gradients(model, start, end, cls=3, points=5)
    probe = torch.randn(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h = 1e-6
    for i, t in enumerate(np.linspace(0, 1, 5)):
        x = (1 - t) * start + t * end
        with torch.no_grad():
            numeric = (model((x + h * probe)[None])[0, 3] - model((x - h * probe)[None])[0, 3]) / (2 * h)
        assert float((grads[i] * probe).sum()) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9)


def test_autocorrelation_against_numpy_and_known_signals() -> None:
    rng = np.random.default_rng(0)
    signal = rng.normal(size=300).cumsum()  # brown noise
    centred = signal - signal.mean()
    reference = np.correlate(centred, centred, "full")[len(signal) - 1:] / (centred @ centred)
    np.testing.assert_allclose(autocorrelation(signal, 20), reference[:21], rtol=1e-12)
    white = autocorrelation(rng.normal(size=4000), 10)
    assert white[0] == pytest.approx(1.0) and np.all(np.abs(white[1:]) < 4 / np.sqrt(4000))
    sine = autocorrelation(np.sin(np.linspace(0, 4 * np.pi, 1000)), 5)
    assert sine[1] > 0.999
    assert np.isnan(autocorrelation(np.ones(10), 3)).all()


def test_lagged_correlation_is_the_mean_pearson_correlation() -> None:
    vectors = torch.randn(12, 3, 4, 4, generator=torch.Generator().manual_seed(0)).cumsum(0)
    flat = vectors.flatten(1).numpy()
    reference = [np.mean([np.corrcoef(flat[i], flat[i + k])[0, 1] for i in range(len(flat) - k)]) for k in range(4)]
    np.testing.assert_allclose(lagged_correlation(vectors, 3), reference, rtol=1e-10)


def _grid(form: str, values: dict[int, float]) -> list[GridResult]:
    return [GridResult(form, depth, 0, np.array([1.0, r1]), np.zeros(4)) for depth, r1 in values.items()]


def test_words_follow_the_numbers() -> None:
    settings = GridSettings(depths=(1, 2, 4, 8, 16, 32), seeds=1, points=256, max_lag=1)
    halving = _grid("plain", {d: 0.9 * 2.0 ** (1 - d) for d in (1, 2, 4)}) + _grid("plain", {8: 0.0, 16: 0.0, 32: 0})
    slow = _grid("resnet-bn", {d: 0.9 / d ** 0.5 for d in (1, 2, 4, 8, 16, 32)})
    text = " ".join(grid_sentences(lag1_rows(halving + slow, 256), settings))
    assert "shrinks by a factor 0.5 per block, about as fast as the paper's 2^-L" in text
    assert "inside the white-noise band (|r| < 0.125) from depth 4" in text  # 0.9 / 8 = 0.1125
    assert "r(1) ~ L^-0.50, which decays about as fast as the paper's 1/sqrt(L)" in text
    flat = _grid("plain", {d: 0.95 for d in (1, 2, 4, 8, 16, 32)})
    assert "unlike the paper it is not white noise by depth 32" in " ".join(grid_sentences(lag1_rows(flat, 256),
                                                                                          settings))


def _cli(data_dir: Path, out: Path, *extra: str) -> int:
    return main(["analyze", "shatter", "plain-mlp8", "--set", "model.depth=2", "--set", "model.width=8", "--data-dir",
                 str(data_dir), "--set", "data.val_size=100", "--depths", "1", "3", "--seeds", "2", "--width", "16",
                 "--grid-points", "32", "--max-lag", "4", "--pairs", "2", "--line-points", "9", "--device", "cpu",
                 "--quiet", "--out", str(out), *extra])


@pytest.mark.slow
def test_cli_writes_the_folder_and_is_deterministic(data_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    assert _cli(data_dir, tmp_path / "a") == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert Path(printed[-1]) == tmp_path / "a"
    record = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert record["kind"] == "shatter" and set(record["figures"]) == {
        "shatter-grid-lag1.png", "shatter-grid-autocorr.png", "shatter-grid-gradients.png", "shatter-line.png"}
    assert all((tmp_path / "a" / name).is_file() for name in record["figures"] + record["tables"])
    lag1 = files.read_csv(tmp_path / "a" / "shatter-grid-lag1.csv")
    assert [(r["form"], r["depth"]) for r in lag1] == [(f, d) for f in ("plain", "plain-bn", "resnet", "resnet-bn")
                                                       for d in ("1", "3")]
    assert record["findings"]["grid.plain.depth3.lag1"] == pytest.approx(float(lag1[1]["lag1_mean"]))
    line = files.read_csv(tmp_path / "a" / "shatter-line-lag1.csv")
    assert [r["model"] for r in line] == ["plain-mlp8"] and line[0]["lines"] == "2"
    assert _cli(data_dir, tmp_path / "b") == 0
    for table in record["tables"]:
        assert (tmp_path / "a" / table).read_text() == (tmp_path / "b" / table).read_text(), table


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    base = ["analyze", "shatter", "--out", str(out)]
    fails_one_line(capsys, base + ["--depths", "0"], "--depths must be one or more depths >= 1")
    fails_one_line(capsys, base + ["--forms", "dense"], "unknown --forms dense")
    fails_one_line(capsys, base + ["--seeds", "0"], "--seeds must be >= 1, got 0")
    fails_one_line(capsys, base + ["--max-lag", "200"], "must be below half the 256 grid points")
    fails_one_line(capsys, base + ["--no-grid"], "nothing to measure")
    fails_one_line(capsys, base + ["--seed", "-1"], "--seed must be in 0..2**63-1, got -1")
    fails_one_line(capsys, base + ["seed-mlp", "--at", "best"], "--at best needs a run folder")
    assert not out.exists()
