"""Gradient flow: the probe against independent computations, its clean-up, the analysis without data files,
recording during training (with interrupt and resume), and the CLI's one-line errors."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reslab import files, plots
from reslab.analyze.gradflow import GradflowMeasurement, GradflowOptions, ModelResult, measure
from reslab.analyze.targets import resolve_targets
from reslab.analyze.gradflow_summary import sentences, summarise
from reslab.analyze.registry import Common
from reslab.analyze.writer import AnalysisWriter
from reslab.cli import main
from reslab.config import dump_yaml, resolve
from reslab.gradflow import GradientProbe, weight_layers
from reslab.models import build_model
from reslab.train import Interrupted, train
from helpers.cli import fails_one_line
from helpers.figures import assert_png
from helpers.shared import SHARED_DATA, needs_shared_data
from helpers.training import SignalAt

CIFAR_ZIP = SHARED_DATA / "CIFAR10-JPEG" / "cifar10-jpeg.zip"


def _batch(shape: tuple[int, int, int], n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _model(name: str, shape: tuple[int, int, int], **kw: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, input_shape=shape, num_classes=10, **kw)


def _no_hooks(model: nn.Module) -> bool:
    return all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks) for m in model.modules())


MODELS = [("seed-cnn", (3, 32, 32), {}), ("seed-resnet", (3, 16, 16), {"channels": 8}),
          ("cifar-resnet", (3, 16, 16), {"depth": 8}), ("mlp", (1, 8, 8), {"residual": True, "norm": "batch"})]


@pytest.mark.parametrize("name, shape, kw", MODELS)
def test_norms_equal_independent_grad_norms(name: str, shape: tuple[int, int, int], kw: dict) -> None:
    model = _model(name, shape, **kw)
    x, y = _batch(shape)
    with GradientProbe(model) as probe:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        probe.capture_gradients()
        record = probe.record(loss)
    named = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    assert record.param_names == tuple(n for n, _ in named)
    np.testing.assert_allclose(record.param_grad_norm, [p.grad.norm().item() for _, p in named], rtol=1e-6)
    everything = torch.cat([p.grad.flatten() for _, p in named]).double().norm().item()
    assert record.global_grad_norm == pytest.approx(everything, rel=1e-5)
    assert record.loss == pytest.approx(loss.item())
    layers = dict(weight_layers(model))
    assert sorted(record.layer_names) == sorted(layers)
    np.testing.assert_allclose(record.grad_norm, [layers[n].weight.grad.norm().item() for n in record.layer_names],
                               rtol=1e-6)
    np.testing.assert_allclose(record.weight_norm, [layers[n].weight.norm().item() for n in record.layer_names],
                               rtol=1e-6)
    assert np.isnan(record.update_norm).all(), "no optimizer step was taken: no update size"
    assert _no_hooks(model)


class _Backwards(nn.Module):
    """Registers `late` before `early` but runs `early` first: depth must follow execution, not registration."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Linear(16, 10)
        self.early = nn.Linear(12, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.late(torch.relu(self.early(x.flatten(1))))


def test_output_std_and_depth_order_match_a_manual_pass() -> None:
    model = _model("seed-mlp", (1, 6, 6), width=8, depth=3)
    x, y = _batch((1, 6, 6))
    with GradientProbe(model) as probe:
        F.cross_entropy(model(x), y).backward()
        probe.capture_gradients()
        record = probe.record()
    with torch.no_grad():  # the same network by hand: fc1, hidden layers, head, ReLU between
        h, stds = x.flatten(1), []
        for layer in [model.fc1, *model.hidden_layers]:
            h = layer(h)
            stds.append(h.std().item())
            h = torch.relu(h)
        stds.append(model.head(h).std().item())
    assert record.layer_names == ("fc1", "hidden_layers.0", "hidden_layers.1", "hidden_layers.2", "head")
    np.testing.assert_allclose(record.output_std, stds, rtol=1e-5)
    assert np.isnan(record.loss)

    backwards = _Backwards()
    with GradientProbe(backwards) as probe:
        F.cross_entropy(backwards(torch.randn(4, 12)), torch.tensor([0, 1, 2, 3])).backward()
        probe.capture_gradients()
        assert probe.record().layer_names == ("early", "late")


def test_update_size_equals_the_weight_change() -> None:
    model = _model("mlp", (1, 8, 8), depth=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for step in range(2):  # the second step has momentum: the update is not just lr * grad
        x, y = _batch((1, 8, 8), seed=step)
        with GradientProbe(model) as probe:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            probe.capture_gradients(snapshot_weights=True)
            before = {n: m.weight.detach().clone() for n, m in weight_layers(model)}
            opt.step()
            record = probe.record()
    after = dict(weight_layers(model))
    expected = [(after[n].weight.detach() - before[n]).norm().item() for n in record.layer_names]
    np.testing.assert_allclose(record.update_norm, expected, rtol=1e-5)
    assert (record.update_norm > 0).all()


def test_hooks_are_removed_also_after_an_exception() -> None:
    model = _model("cifar-resnet", (3, 16, 16), depth=8)
    with pytest.raises(RuntimeError, match="boom"):
        with GradientProbe(model) as probe:
            model(_batch((3, 16, 16))[0])
            assert not _no_hooks(model)
            raise RuntimeError("boom")
    assert _no_hooks(model)
    with pytest.raises(ValueError, match="capture_gradients"):
        probe.record()


def _synthetic_results(sources: list[str], overrides: list[str], shape: tuple[int, int, int]) -> list[ModelResult]:
    batches = [_batch(shape, seed=s) for s in range(2)]
    results = []
    for target in resolve_targets(sources, overrides=overrides):
        model = _model(target.cfg.model.name, shape, **dict(target.cfg.model.args))
        results.append(ModelResult(target, sum(p.numel() for p in model.parameters()), tuple(measure(model, batches))))
    return results


def write_outputs(results: list[ModelResult], out_dir: Path, svg: bool = False) -> str:
    """The instrument's summary of `results`, written through the analysis writer; returns the summary text."""
    analysis = summarise(GradflowMeasurement(tuple(results), {}), GradflowOptions(), Common())
    AnalysisWriter(out_dir, "gradflow", svg=svg).write(analysis)
    return analysis.text


def test_analysis_on_synthetic_batches_without_data_files(tmp_path: Path) -> None:
    results = _synthetic_results(["plain20", "resnet20", "plain32", "resnet32"], ["model.width=4"], (3, 16, 16))
    text = write_outputs(results, tmp_path)
    for name in ("gradflow-params.csv", "gradflow-layers.csv", "gradflow-stats.csv", "gradflow-summary.txt",
                 "gradflow-boxplots.png", "gradflow-depth.png", "gradflow-output-std.png"):
        assert (tmp_path / name).is_file(), name
    stats = files.read_csv(tmp_path / "gradflow-stats.csv")
    assert [s["model"] for s in stats] == ["plain20", "resnet20", "plain32", "resnet32"]
    plain20 = results[0]
    norms = np.stack([r.param_grad_norm for r in plain20.records])
    first, last = (np.mean([r.grad_norm[i] for r in plain20.records]) for i in (0, -1))
    assert float(stats[0]["mean"]) == pytest.approx(norms.mean()) and float(stats[0]["std"]) == pytest.approx(
        norms.std())
    assert int(stats[0]["batches"]) == 2 and float(stats[0]["first_to_last"]) == pytest.approx(first / last)
    assert stats[0]["pair"] == stats[1]["pair"] == "plain20 vs resnet20" and stats[0]["skip"] == "no"
    assert f"{first / last:.3g}" in text and "With the skip (resnet20)" in text
    assert "going from depth 20 (plain20) to depth 32 (plain32)" in text
    assert len(files.read_csv(tmp_path / "gradflow-layers.csv")) == 2 * (20 + 20 + 32 + 32)
    assert not list(tmp_path.glob("*.svg")), "SVGs only when asked"


def test_every_figure_is_drawn_in_the_one_style(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run curves, the report's figures and the gradient-flow figures: each saved under plots.STYLE
    (rcParams and the axes' own titles and spines), as PNG and, with svg, an SVG beside it."""
    import matplotlib.figure

    saved: list[tuple[str, dict, list[float], list[bool]]] = []
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig: matplotlib.figure.Figure, fname: object, *args: object, **kwargs: object) -> None:
        rc = {key: matplotlib.rcParams[key] for key in plots.STYLE}
        titles = [ax.title.get_fontsize() for ax in fig.axes if ax.get_title()]
        spines = [ax.spines["top"].get_visible() for ax in fig.axes]
        saved.append((Path(str(fname)).suffix, rc, titles, spines))
        real_savefig(fig, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    history = [{"epoch": e, "step": 10 * e, "train_loss": 1 / e, "train_acc": 0.5 + e / 10, "val_loss": 1.2 / e,
                "val_acc": 0.4 + e / 10} for e in (1, 2, 3)]
    plots.plot_curves(history, tmp_path / "curves.png", steps=[{"step": s, "train_loss": 2 / s} for s in (5, 15, 25)],
                      svg=True)
    plots.plot_comparison([("a", history), ("b", history[:2])], tmp_path / "comparison.png", svg=True)
    plots.plot_confusion([[5, 1], [2, 7]], ["cat", "dog"], tmp_path / "confusion.png", svg=True)
    heatmap = [{"step": s, "depth": d, "layer": f"l{d}", "grad_norm": 0.1 * d, "update_norm": 0.01, "weight_norm": 1}
               for s in (1, 6, 11) for d in (1, 2)]
    plots.plot_training_heatmap(heatmap, tmp_path / "heatmap.png", svg=True)
    write_outputs(_synthetic_results(["plain20", "resnet20"], ["model.width=4"], (3, 16, 16)), tmp_path, svg=True)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["comparison.png", "confusion.png", "curves.png", "gradflow-boxplots.png", "gradflow-depth.png",
                    "gradflow-output-std.png", "heatmap.png"]
    assert all((tmp_path / png).with_suffix(".svg").stat().st_size > 1000 for png in pngs)
    assert sorted(suffix for suffix, *_ in saved) == [".png"] * len(pngs) + [".svg"] * len(pngs)
    for suffix, rc, titles, spines in saved:
        assert rc == plots.STYLE
        assert titles and all(size == plots.STYLE["axes.titlesize"] for size in titles)
        assert not any(spines), "no box around the plots"


def test_words_follow_the_numbers() -> None:
    rows = [{"model": "a", "at": "init", "family": "f", "depth": 8, "skip": "no", "pair": "a vs b", "batches": 3,
             "first_layer": "stem", "last_layer": "head", "first_to_last": 0.01, "mean": 0.1, "std": 0.1},
            {"model": "b", "at": "init", "family": "f", "depth": 8, "skip": "yes", "pair": "a vs b", "batches": 3,
             "first_layer": "stem", "last_layer": "head", "first_to_last": 0.5, "mean": 0.2, "std": 0.1}]
    assert "50x larger with the skip" in " ".join(sentences(rows))
    rows[1]["first_to_last"] = 0.002
    assert "5x smaller with the skip" in " ".join(sentences(rows))


def _train_cfg(data_dir: Path, runs_dir: Path, *extra: str):
    return resolve("seed-mlp", [f"data.data_dir={data_dir}", f"runs_dir={runs_dir}", "data.val_size=100",
                                "data.batch_size=32", "train.epochs=3", "train.deterministic=true",
                                "train.device=cpu", "gradflow.every=5", *extra])


def _steps(run: Path) -> list[int]:
    return sorted({int(r["step"]) for r in files.read_csv(run / "gradflow.csv")})


def test_training_records_every_n_steps(data_dir: Path, tmp_path: Path) -> None:
    run = train(_train_cfg(data_dir, tmp_path), progress=False).run_dir
    assert _steps(run) == list(range(1, 49, 5))  # 3 epochs of 16 steps; steps 1, 6, ..., 46
    rows = files.read_csv(run / "gradflow.csv")
    assert {r["layer"] for r in rows} == {"fc1", "hidden_layers.0", "hidden_layers.1", "head"}
    assert all(float(r["update_norm"]) > 0 and float(r["output_std"]) > 0 for r in rows)
    assert_png(run / "gradflow.png")
    off = train(_train_cfg(data_dir, tmp_path, "gradflow.every=0"), progress=False).run_dir
    assert not (off / "gradflow.csv").exists() and not (off / "gradflow.png").exists()


def test_recording_survives_interrupt_and_resume(data_dir: Path, tmp_path: Path) -> None:
    cfg = _train_cfg(data_dir, tmp_path)
    straight = train(cfg, progress=False).run_dir
    with pytest.raises(Interrupted) as info:
        train(cfg, observers=[SignalAt(23, signal.SIGINT)], progress=False)
    run = info.value.run_dir
    assert _steps(run) == [1, 6, 11, 16, 21], "rows recorded before the interrupt are flushed"
    with open(run / "gradflow.csv", "a") as fh:  # as if recorded after the checkpoint, then killed
        fh.write("26,0.001,1,fc1,Linear,9,9,9,9,9,9,9\n27,0.001,1,fc1")
    train(cfg, resume=run, progress=False)
    assert _steps(run) == _steps(straight)
    columns = ("step", "layer", "grad_norm", "update_norm", "output_std", "loss")
    resumed, reference = ([[r[c] for c in columns] for r in files.read_csv(p / "gradflow.csv")] for p in (run, straight))
    assert resumed == reference


# ----------------------------------------------------------------------------- the command line


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bare = tmp_path / "bare-run"
    bare.mkdir()
    (bare / "config.yaml").write_text(dump_yaml(resolve("seed-mlp")))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    fails_one_line(capsys, ["gradflow", "seed-transformer"], "unknown preset 'seed-transformer'")
    fails_one_line(capsys, ["gradflow", str(bare), "--at", "best"], "has no best.pt (checkpoints present: none)")
    fails_one_line(capsys, ["gradflow", str(bare), "--at", "every"], "has no checkpoints")
    fails_one_line(capsys, ["gradflow", str(tmp_path / "full")], "not a reslab run folder")
    fails_one_line(capsys, ["gradflow", "seed-mlp", "--at", "last"], "--at last needs a run folder")
    fails_one_line(capsys, ["gradflow", "seed-mlp", "--batches", "0"], "--batches must be >= 1, got 0")
    fails_one_line(capsys, ["gradflow", "seed-mlp", "--out", str(tmp_path / "full")], "already exists")
    fails_one_line(capsys, ["gradflow", "seed-mlp", "seed-cnn"], "the models name different data")
    fails_one_line(capsys, ["gradflow", "seed-mlp", "--notebook-kernel"], "none was given")


def test_cli_measures_runs_and_presets_on_the_same_batches(data_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    run = train(_train_cfg(data_dir, tmp_path / "runs", "train.epochs=1"), progress=False).run_dir
    out = tmp_path / "out"
    assert main(["gradflow", "seed-mlp", str(run), "--at", "init", "--at", "every", "--data-dir", str(data_dir),
                 "--set", "data.val_size=100", "--set", "data.batch_size=32", "--batches", "2", "--out", str(out),
                 "--quiet", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert Path(printed[-1]) == out
    stats = files.read_csv(out / "gradflow-stats.csv")
    assert [s["model"] for s in stats] == ["seed-mlp", run.name, f"{run.name}@best", f"{run.name}@last"]
    assert stats[0]["mean"] == stats[1]["mean"], "a run at init is its preset at init: same seed, same batches"
    assert stats[3]["mean"] != stats[1]["mean"]
    assert_png(out / f"gradflow-heatmap-{run.name}.png")
    assert any("seed-mlp(width=16, depth=2, init=torch-default)" in line for line in printed), \
        "the output says what model ran, its init included"


def test_cli_svg_writes_an_svg_beside_every_png(data_dir: Path, tmp_path: Path) -> None:
    run = train(_train_cfg(data_dir, tmp_path / "runs", "train.epochs=1"), progress=False).run_dir
    out = tmp_path / "out"
    assert main(["gradflow", "seed-mlp", str(run), "--data-dir", str(data_dir), "--set", "data.val_size=100",
                 "--set", "data.batch_size=32", "--batches", "2", "--out", str(out), "--quiet", "--device", "cpu",
                 "--svg"]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["gradflow-boxplots.png", "gradflow-depth.png", "gradflow-effective-lr.png",
                    f"gradflow-heatmap-{run.name}.png", "gradflow-output-std.png", "gradflow-updates-training.png",
                    "gradflow-updates.png"]  # at init an optimizer step is taken: update sizes and their figures
    assert sorted(p.name for p in out.glob("*.svg")) == [p.replace(".png", ".svg") for p in pngs]
    assert all((out / p).with_suffix(".svg").read_text().lstrip().startswith("<?xml") for p in pngs)


@pytest.mark.realdata
@needs_shared_data("CIFAR10-JPEG", "cifar10-jpeg.zip")
def test_notebook_comparison_on_cifar(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Exercise 2: the ResNet's mean per-parameter gradient norm is far above the plain CNN's (0.115 vs 0.011)."""
    assert main(["gradflow", "seed-cnn", "seed-resnet", "--notebook-kernel", "--dataset", f"imagefolder:{CIFAR_ZIP}",
                 "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"]) == 0
    assert "seed-cnn uses kernel size 4" in capsys.readouterr().out
    cnn, resnet = files.read_csv(tmp_path / "out" / "gradflow-stats.csv")
    assert int(cnn["batches"]) == 11 and 0.005 < float(cnn["mean"]) < 0.03
    assert float(resnet["mean"]) > 5 * float(cnn["mean"])
    assert float(resnet["first_to_last"]) > 10 * float(cnn["first_to_last"])


def test_gradflow_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["gradflow", str(tmp_path / "no-such-run"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gradflow", "seed-mlp", "--seed", "-1", "--quiet", "--device", "cpu"]) == 2
    assert "--seed must be" in capsys.readouterr().err
