"""Loss landscapes: filter-normalised directions against the weights' filter norms, twins cut along directions drawn
alike, the loss at the origin against an independent evaluation of the run, the smoothness measures on known
curves, and the command line (2-D, directions saved, one-line errors that write nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reslab import files
from reslab.analyze.landscape import filter_normalised_direction
from reslab.analyze.landscape_summary import convex_share, local_minima
from reslab.cli import main
from reslab.config import load_source
from reslab.data import load_dataset, split_indices
from reslab.models import build_model
from reslab.train import train
from helpers.cli import fails_one_line
from helpers.figures import assert_png
from helpers.training import tiny_cfg


@pytest.mark.parametrize("name, kw", [("cifar-resnet", {"depth": 8, "width": 4}), ("mlp", {"norm": "batch"}),
                                      ("convnet", {"channels": 4, "blocks": 1, "stages": 2, "norm": "none"})])
def test_direction_filter_norms_equal_the_weights(name: str, kw: dict) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_shape=(3, 8, 8), num_classes=10, **kw)
    direction = filter_normalised_direction(model, seed=3, axis=0)
    assert list(direction) == [n for n, _ in model.named_parameters()]
    moved = 0
    for n, p in model.named_parameters():
        d = direction[n]
        assert d.shape == p.shape
        if p.dim() == 1:
            assert torch.count_nonzero(d) == 0, f"{n}: biases and norm layers are not moved"
            continue
        for i in range(p.shape[0]):  # every filter / output row
            assert d[i].norm().item() == pytest.approx(p[i].detach().norm().item(), rel=1e-5), f"{n}[{i}]"
        moved += 1
    assert moved >= 3


def test_twins_are_cut_along_directions_drawn_alike() -> None:
    twins = []
    for residual in (False, True):
        torch.manual_seed(int(residual))  # different weights, the same parameter names
        twins.append(build_model("mlp", input_shape=(1, 4, 4), num_classes=10, depth=3, width=8, residual=residual))
    a, b = (filter_normalised_direction(m, seed=5, axis=0) for m in twins)
    for name, d in a.items():
        if d.dim() > 1:
            unit_a = d / d.flatten(1).norm(dim=1).view(-1, 1)
            unit_b = b[name] / b[name].flatten(1).norm(dim=1).view(-1, 1)
            torch.testing.assert_close(unit_a, unit_b)
    other = filter_normalised_direction(twins[0], seed=5, axis=1)
    assert not torch.allclose(other["head.weight"], a["head.weight"]), "the second axis is another direction"


def test_smoothness_measures_on_known_curves() -> None:
    steps = np.linspace(-1, 1, 21)
    bowl = (steps ** 2)[:, None]
    assert convex_share(bowl) == 1.0 and local_minima(bowl) == 1
    fine = np.linspace(-1, 1, 81)
    wavy = (np.cos(4 * np.pi * fine) + fine ** 2)[:, None]  # minima near -3/4, -1/4, 1/4 and 3/4
    assert local_minima(wavy) == 4 and convex_share(wavy) < 0.7
    second = np.diff(wavy[:, 0], 2)
    assert convex_share(wavy) == pytest.approx(np.mean(second >= 0))
    surface = steps[:, None] ** 2 + steps[None, :] ** 2
    assert convex_share(surface) == 1.0 and local_minima(surface) == 1
    surface[2, 3] = -5  # one pit
    assert local_minima(surface) == 2


@pytest.fixture(scope="module")
def trained_pair(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A plain/residual MLP pair trained for one epoch on the generated MNIST (batch norm, so eval mode matters)."""
    runs = tmp_path_factory.mktemp("runs")
    return [train(tiny_cfg(data_dir, runs, "train.epochs=1", "model.depth=2", "model.width=16",
                           "model.norm=batch", f"model.residual={r}", preset="plain-mlp8"), progress=False).run_dir
            for r in ("false", "true")]


def _independent_loss(run: Path, data_dir: Path, subset: int, seed: int) -> tuple[float, float]:
    """The run's last.pt evaluated by hand on the first `subset` images of the training split drawn with `seed`."""
    values = load_source(str(run / "config.yaml"))
    data = load_dataset("mnist", str(data_dir))
    model = build_model(values["model"]["name"], input_shape=(1, 28, 28), num_classes=10,
                        **{k: v for k, v in values["model"].items() if k != "name"})
    model.load_state_dict(torch.load(run / "last.pt", weights_only=False)["model"])
    model.eval()
    idx = split_indices(len(data.train_y), values["data"]["val_size"], seed)[0][:subset]
    x = (data.train_x[idx].float() / 255 - data.mean[0]) / data.std[0]
    with torch.no_grad():
        logits = model(x)
    labels = data.train_y[idx]
    return float(F.cross_entropy(logits, labels)), float((logits.argmax(1) == labels).float().mean())


@pytest.mark.slow
def test_loss_at_the_origin_is_the_runs_loss(trained_pair: list[Path], data_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["analyze", "landscape", *map(str, trained_pair), "--subset", "300", "--points", "5", "--seed", "4",
                 "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == out
    stats = files.read_csv(out / "landscape-stats.csv")
    assert [r["pair"] for r in stats] == [f"{trained_pair[0].name}@last vs {trained_pair[1].name}@last"] * 2
    for run, row in zip(trained_pair, stats):
        loss, acc = _independent_loss(run, data_dir, 300, seed=4)
        assert float(row["loss_origin"]) == pytest.approx(loss, rel=1e-5)
        assert float(row["acc_origin"]) == pytest.approx(acc)
        assert float(row["loss_min"]) <= float(row["loss_origin"]) <= float(row["loss_max"])
    surface = [r for r in files.read_csv(out / "landscape.csv") if r["model"] == stats[0]["model"]]
    assert [float(r["a"]) for r in surface] == [-1, -0.5, 0, 0.5, 1]
    record = json.loads((out / "analysis.json").read_text())
    assert record["kind"] == "landscape" and record["figures"] == ["landscape-1d.png"]
    assert record["findings"][f"{stats[1]['model']}.loss_origin"] == pytest.approx(float(stats[1]["loss_origin"]))


def test_2d_saves_the_directions_it_used(trained_pair: list[Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    fails_one_line(capsys, ["analyze", "landscape", str(trained_pair[1]), "--subset", "100000", "--out", str(out)],
           "--subset 100000 is more than the 500 images of the training split")
    assert not out.exists()
    assert main(["analyze", "landscape", str(trained_pair[1]), "--dims", "2", "--points", "3", "--subset", "50",
                 "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    surface = files.read_csv(out / "landscape.csv")
    assert len(surface) == 9 and {(r["a"], r["b"]) for r in surface} >= {("0.0", "0.0"), ("1.0", "-1.0")}
    saved = torch.load(out / "directions.pt", weights_only=False)
    label = f"{trained_pair[1].name}@last"
    assert saved["seed"] == 0 and saved["dims"] == 2 and len(saved["models"][label]) == 2
    weights = torch.load(trained_pair[1] / "last.pt", weights_only=False)["model"]
    d = saved["models"][label][1]["head.weight"]
    torch.testing.assert_close(d.norm(dim=1), weights["head.weight"].norm(dim=1))
    assert_png(out / "landscape-2d.png")


def test_cli_bad_input_is_one_line_and_writes_nothing(data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from reslab.config import dump_yaml, resolve

    bare = tmp_path / "bare-run"  # a run folder whose checkpoints are gone
    bare.mkdir()
    (bare / "config.yaml").write_text(dump_yaml(resolve("seed-mlp", [f"data.data_dir={data_dir}"])))
    out = tmp_path / "out"
    base = ["analyze", "landscape", "--out", str(out), "--device", "cpu"]
    fails_one_line(capsys, base + [str(bare)], "has no last.pt (checkpoints present: none)")
    fails_one_line(capsys, base + [str(bare), "--at", "best"], "has no best.pt")
    fails_one_line(capsys, base + ["seed-mlp"], "--at last needs a run folder")
    for points in ("0", "4"):
        fails_one_line(capsys, base + [str(bare), "--points", points],
               f"--points must be an odd number >= 3 (the grid is centred on the trained weights), got {points}")
    fails_one_line(capsys, base + [str(bare), "--dims", "3"], "--dims must be 1 or 2, got 3")
    fails_one_line(capsys, base + [str(bare), "--subset", "0"], "--subset must be >= 1")
    fails_one_line(capsys, base + [str(bare), "--span", "0"], "--span must be > 0")
    fails_one_line(capsys, base + [str(bare), "--seed", "-2"], "--seed must be in 0..2**63-1, got -2")
    assert not out.exists()
