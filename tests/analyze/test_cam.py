"""`reslab analyze cam`: CAM and Grad-CAM against their definitions and the `grad-cam` package, deletion/insertion
curves on a model whose evidence is known, the folder it writes, and one-line errors for models it cannot explain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers.cli import fails_one_line
from helpers.training import tiny_cfg
from reslab import files
from reslab.analyze import cam_faith
from reslab.analyze.cam_maps import cam, grad_cam, normalise, upsample
from reslab.cli import main
from reslab.models import build_model, model_names
from reslab.train import train

CONV = [name for name in model_names() if not name.endswith("mlp")]
SHAPES = {"seed-cnn": (3, 32, 32), "torchvision-resnet18": (3, 96, 96)}  # resnet18: a 3x3 map
SMALL = {"cifar-resnet": {"depth": 8}}  # the fewest blocks: the identity holds at any depth
TWIN = ["train.epochs=1", "train.threads=1", "gradflow.every=0"]
CONV_YAML = ("name: tiny-conv\ndata: {dataset: mnist}\nmodel: {name: convnet, channels: 4, blocks: 1, stages: 2}\n"
             "optim: {name: adam, lr: 3.0e-3}\n")


@pytest.mark.parametrize("name", CONV)
def test_grad_cam_is_relu_cam_over_positions(name: str) -> None:
    """For features F (K, h, w), pool = global average, head = Linear(W, b): y_c = sum_k w_ck mean_xy F_k + b_c, so
    d y_c / d F_k(x, y) = w_ck / (h w) and Grad-CAM_c = ReLU(sum_k w_ck F_k) / (h w) = ReLU(CAM_c) / (h w) exactly
    (float32: rtol 1e-5, atol 1e-7); and CAM is exact: mean_xy CAM_c + b_c = y_c."""
    shape = SHAPES.get(name, (3, 16, 16))
    torch.manual_seed(0)
    model = build_model(name, input_shape=shape, num_classes=5, **SMALL.get(name, {})).eval()
    x = torch.randn(4, *shape)
    classes = torch.tensor([0, 3, 1, 4])
    maps = cam(model, x, classes)
    h, w = maps.shape[-2:]
    assert (maps > 0).any() and (maps < 0).any(), "a CAM without both signs cannot test the ReLU"
    torch.testing.assert_close(grad_cam(model, x, classes), torch.relu(maps) / (h * w), rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        logits = model(x).gather(1, classes[:, None])[:, 0]
    torch.testing.assert_close(maps.mean(dim=(1, 2)) + model.head.bias[classes].detach(), logits, rtol=1e-5,
                               atol=1e-5)


class _Features(nn.Module):
    """The model's `features` as a module, so the grad-cam package can hook the map the pooling reads."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


class _Wrapped(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.body = model, _Features(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.model.pool(self.body(x)).flatten(1))


def test_grad_cam_matches_the_grad_cam_package() -> None:
    """pytorch_grad_cam's GradCAM on the same map: its unscaled map (captured from get_cam_image, then its ReLU) equals
    ours at the feature map's resolution (rtol 1e-4, atol 1e-6); its output (ReLU, min-max at the map's resolution,
    OpenCV's bilinear resize to the input, min-max again when it averages its target layers) equals ours put through
    the same steps (atol 1e-5)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class Capture(GradCAM):
        def get_cam_image(self, *args, **kwargs):  # the weighted sum over channels, before ReLU and scaling
            self.raw = super().get_cam_image(*args, **kwargs)
            return self.raw

    torch.manual_seed(1)
    model = build_model("convnet", input_shape=(3, 20, 20), num_classes=4, channels=6, blocks=1, stages=2,
                        residual=True).eval()
    x, classes = torch.randn(3, 3, 20, 20), [2, 0, 3]
    wrapped = _Wrapped(model).eval()
    with Capture(model=wrapped, target_layers=[wrapped.body]) as package:
        theirs = package(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
        raw = np.maximum(package.raw, 0)
    mine = grad_cam(model, x, torch.tensor(classes))
    assert mine.shape == (3, 10, 10) and (mine > 0).any() and (mine == 0).any()
    np.testing.assert_allclose(mine.numpy(), raw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(normalise(upsample(normalise(mine), (20, 20))).numpy(), theirs, atol=1e-5)


class _OneRegion(nn.Module):
    """A two-class net that looks only at a known square: features = ReLU(x) inside it, 0 outside; class 0's logit
    grows with the square's brightness (GAP + linear, so CAM is exact)."""

    def __init__(self, size: int, region: tuple[slice, slice]) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, size, size)
        mask[..., region[0], region[1]] = 1
        self.register_buffer("mask", mask)
        self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[40.0], [-40.0]]))
            self.head.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.mean(dim=1, keepdim=True)) * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


@pytest.mark.parametrize("size", [16, 40])
def test_deletion_by_the_true_saliency_beats_a_random_order(size: int) -> None:
    """The evidence is in one known square: CAM finds it, and deleting by CAM drops class 0's probability faster
    (lower AUC) than a random order, inserting by it raises it faster; works at any image size."""
    region = (slice(size // 4, size // 2), slice(size // 2, 3 * size // 4))
    model = _OneRegion(size, region).eval()
    x = torch.rand(6, 3, size, size) + 0.5  # bright everywhere: only the square counts
    classes = torch.zeros(6, dtype=torch.long)
    maps = upsample(cam(model, x, classes), (size, size))
    inside = torch.zeros(size, size, dtype=torch.bool)
    inside[region] = True
    assert maps[:, inside].min() > maps[:, ~inside].max()  # the map is the square
    gen = torch.Generator().manual_seed(0)
    # the mean baseline (0): a blur keeps the square bright, so insertion from a blur would start saturated here
    by_map = cam_faith.deletion_insertion(model, x, classes, cam_faith.order(maps, gen), 8, "mean")
    by_chance = cam_faith.deletion_insertion(model, x, classes, cam_faith.random_order((6, size, size), gen, x.device),
                                             8, "mean")
    deletion, insertion = (cam_faith.auc(c) for c in by_map)
    random_deletion, random_insertion = (cam_faith.auc(c) for c in by_chance)
    assert by_map[0].shape == (6, 9) and torch.allclose(by_map[0][:, 0], by_chance[0][:, 0])  # both start at x
    assert torch.allclose(by_map[0][:, -1], torch.full((6,), 0.5))  # all deleted: the mean image, no evidence
    assert (deletion < random_deletion - 0.2).all() and (insertion > random_insertion + 0.05).all()
    # the square is 1/16 of the image: 2 of 8 steps delete it, after which class 0 is at 0.5 (AUC below 0.5 + 0.1)
    assert (deletion < 0.6).all()


def test_blur_and_order_keep_shapes_and_break_ties_at_random() -> None:
    x = torch.randn(2, 3, 9, 13)
    assert cam_faith.blurred(x).shape == x.shape and cam_faith.blurred(x).std() < x.std()
    flat = torch.zeros(2, 9, 13)
    flat[0, 4, 6] = 1.0
    pixels = cam_faith.order(flat, torch.Generator().manual_seed(0))
    assert pixels.shape == (2, 117) and pixels[0, 0] == 4 * 13 + 6
    assert sorted(pixels[1].tolist()) == list(range(117)) and pixels[1].tolist() != list(range(117))


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def twins(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained plain/residual conv pair on the tiny generated MNIST (one epoch each)."""
    runs = tmp_path_factory.mktemp("runs")
    preset = runs / "tiny-conv.yaml"
    preset.write_text(CONV_YAML)
    plain = train(tiny_cfg(data_dir, runs, *TWIN, "model.residual=false", preset=str(preset)), progress=False)
    residual = train(tiny_cfg(data_dir, runs, *TWIN, "model.residual=true", preset=str(preset)), progress=False)
    return plain.run_dir, residual.run_dir


def test_cam_writes_a_complete_folder(twins: tuple[Path, Path], data_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cam"
    assert main(["analyze", "cam", *map(str, twins), "--data-dir", str(data_dir), "--set", "data.val_size=100",
                 "--images", "8", "--show", "2", "--steps", "3", "--device", "cpu", "--quiet", "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert Path(printed[-1]) == out
    record = json.loads((out / "analysis.json").read_text())
    assert record["kind"] == "cam" and record["settings"]["baseline"] == "paper"
    assert record["figures"] == ["cam-grid.png", "cam-gradcam-grid.png", "cam-classes.png", "cam-curves.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(["analysis.json", "cam-summary.txt", *record["tables"],
                                                            *record["figures"]])
    stats = files.read_csv(out / "cam-stats.csv")
    assert [(r["model"].split("@")[1], r["method"]) for r in stats] == [("best", m) for m in
                                                                       ("cam", "gradcam", "random")] * 2
    assert all(r["images"] == "8" and r["feature_map"] == "4x14x14" for r in stats)
    pairs = files.read_csv(out / "cam-pairs.csv")
    assert len(pairs) == 4 and all(r["over"] == "images" and r["n"] == "8" for r in pairs)
    images = files.read_csv(out / "cam-images.csv")
    one = [r for r in images if r["model"] == stats[0]["model"] and r["method"] == "cam"]
    assert len(one) == 8
    assert float(stats[0]["deletion_auc"]) == pytest.approx(np.mean([float(r["deletion_auc"]) for r in one]))
    text = (out / "cam-summary.txt").read_text()
    assert "baseline: deletion to the dataset's mean colour" in text and "residual minus plain" in text
    assert "One training seed per twin" in text
    assert record["findings"][f"{stats[0]['model']}.cam.deletion_gain"] == pytest.approx(
        float(stats[0]["deletion_gain"]))


def test_cam_refuses_an_mlp_and_a_preset(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = train(tiny_cfg(data_dir, tmp_path / "runs", "train.epochs=1"), progress=False).run_dir
    common = ["--data-dir", str(data_dir), "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")]
    fails_one_line(capsys, ["analyze", "cam", str(run), *common], "has no spatial feature map")
    fails_one_line(capsys, ["analyze", "cam", "seed-cnn", *common], "needs a run folder")
    fails_one_line(capsys, ["analyze", "cam", str(run), "--steps", "0", *common], "--steps must be >= 1")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the summary's numbers and words


def _fake(preset: str, seed: int, deletion_drop: float, n: int = 6) -> "CamResult":
    """A measured model whose CAM deletion curve ends `deletion_drop` below the random order's (insertion equal)."""
    from reslab.analyze.cam import CamResult
    from reslab.analyze.targets import Target
    from reslab.config import resolve

    cfg = resolve(preset, [f"train.seed={seed}"])
    rng = np.random.default_rng(seed)
    flat = np.tile(np.linspace(0.9, 0.5, 5), (n, 1)) + rng.normal(0, 0.01, (n, 5))
    curves = {(m, c): flat.copy() for m in ("cam", "gradcam", "random") for c in ("deletion", "insertion")}
    for m in ("cam", "gradcam"):
        curves[(m, "deletion")] = flat - deletion_drop * np.linspace(0, 1, 5)
    labels = np.arange(n) % 10
    return CamResult(Target(f"{preset}-s{seed}", cfg, "best"), True, (4, 2, 2), labels, labels, np.ones(n), {},
                     np.zeros((10, 4, 4)), curves)


def test_twins_are_paired_by_seed_and_judged_in_words() -> None:
    from reslab.analyze.cam import CamMeasurement, CamOptions
    from reslab.analyze.cam_summary import sentences, tables

    results = (_fake("plain20", 0, 0.0), _fake("resnet20", 0, 0.2), _fake("plain20", 1, 0.0),
               _fake("resnet20", 1, 0.2), _fake("plain20", 2, 0.0), _fake("resnet20", 2, 0.2))
    m = CamMeasurement(results, np.zeros((0, 4, 4, 1)), tuple(map(str, range(10))), "fake", CamOptions(steps=4))
    t = tables(m)
    over_seeds = [p for p in t["pairs"] if p["over"] == "seeds" and p["method"] == "cam"]
    assert [(p["metric"], p["n"]) for p in over_seeds] == [("deletion_gain", 3), ("insertion_gain", 3)]
    # residual deletion curve lower by 0.2 * x, x in [0, 1]: its AUC is lower by 0.1, its gain higher by 0.1
    assert over_seeds[0]["difference"] == pytest.approx(0.1, abs=1e-6)
    per_seed = [p for p in t["pairs"] if p["over"] == "images"]
    assert len(per_seed) == 3 * 4 and {p["seed"] for p in per_seed} == {0, 1, 2}
    words = "\n".join(sentences(m, t))
    assert "over 3 paired seeds: the residual twin's maps are more faithful" in words
    assert "One training seed per twin" not in words
    assert "insertion gain residual minus plain 0.000" in words and "inconclusive" in words
    stats = {(r["model"], r["method"]): r for r in t["stats"]}
    assert stats[("resnet20-s0", "cam")]["deletion_gain"] == pytest.approx(0.1, abs=1e-6)
    assert stats[("plain20-s0", "cam")]["deletion_gain"] == pytest.approx(0.0, abs=1e-9)


def test_a_conv_model_is_explained_on_larger_images_than_it_was_built_for() -> None:
    """Fully-convolutional evaluation: a convnet built for 16x16 gives maps and curves at 40x40 (the GAP takes any
    size), and CAM stays exact there (mean CAM + bias = logit)."""
    from reslab.analyze.cam import explain

    torch.manual_seed(2)
    model = build_model("convnet", input_shape=(1, 16, 16), num_classes=3, channels=4, blocks=1, stages=2).eval()
    x, y = torch.randn(2, 1, 40, 40), torch.tensor([0, 2])
    got = explain(model, x, y, steps=4, baseline="paper", generator=torch.Generator().manual_seed(0))
    assert got["cam-true"].shape == got["gradcam-predicted"].shape == (2, 40, 40)
    assert got["cam-deletion"].shape == got["random-insertion"].shape == (2, 5)
    with torch.no_grad():
        logits = model(x)
    confidence = torch.softmax(logits, 1).gather(1, got["predicted"][:, None])[:, 0]
    torch.testing.assert_close(got["cam-deletion"][:, 0], confidence)  # step 0: the image itself
    raw = cam(model, x, y)
    assert raw.shape == (2, 20, 20)
    torch.testing.assert_close(raw.mean(dim=(1, 2)) + model.head.bias[y].detach(), logits.gather(1, y[:, None])[:, 0],
                               rtol=1e-5, atol=1e-5)


def test_the_pointing_game_counts_a_peak_inside_the_box_only() -> None:
    """Known answers: a map whose peak lies inside its box is a hit, on the box's edge pixels too (x0, y0 inclusive,
    x1, y1 exclusive), and one peaking outside is a miss."""
    from reslab.analyze.cam import pointing_game

    maps = torch.zeros(4, 10, 12)
    for i, (y, x) in enumerate([(3, 4), (2, 2), (5, 9), (9, 11)]):
        maps[i, y, x] = 1.0
    boxes = torch.tensor([[2.0, 2.0, 6.0, 6.0]] * 4)  # x0, y0, x1, y1
    assert pointing_game(maps, boxes).tolist() == [True, True, False, False]
    maps[2, 5, 5] = 2.0  # now its highest pixel is the last one inside the box (x 5 < x1 6)
    assert pointing_game(maps, boxes).tolist() == [True, True, True, False]


def test_cam_on_canvases_places_one_image_each_and_scores_the_pointing_game(
        twins: tuple[Path, Path], data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from reslab.analyze.cam import canvases
    from reslab.data import load_dataset

    data = load_dataset("mnist", str(data_dir))
    side = data.input_shape[-1]
    images, labels, boxes = canvases(data, 5, side + 12, seed=3)
    assert images.shape == (5, 1, side + 12, side + 12) and labels.shape == (5,)
    for image, box, label in zip(images, boxes.long(), labels):  # exactly the pasted test image, nothing else
        x0, y0, x1, y1 = box.tolist()
        assert (x1 - x0, y1 - y0) == (side, side)
        crop = image[:, y0:y1, x0:x1]
        assert int(image.sum()) == int(crop.sum()) > 0
        same = [(data.test_x[i] == crop).all() and data.test_y[i] == label for i in range(len(data.test_y))]
        assert any(bool(s) for s in same)
    out = tmp_path / "cam"
    assert main(["analyze", "cam", *map(str, twins), "--data-dir", str(data_dir), "--set", "data.val_size=100",
                 "--images", "6", "--show", "2", "--steps", "2", "--canvas", str(side + 12), "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    stats = [r for r in files.read_csv(out / "cam-stats.csv") if r["method"] == "cam"]
    chance = side * side / (side + 12) ** 2
    for row in stats:
        assert float(row["pointing_chance"]) == pytest.approx(chance, rel=1e-6)
        hits = float(row["pointing"]) * 6
        assert 0 <= hits <= 6 and hits == pytest.approx(round(hits))
    assert "Pointing game (Zhang et al. 2016)" in (out / "cam-summary.txt").read_text()
    assert json.loads((out / "analysis.json").read_text())["settings"]["canvas"] == side + 12
    capsys.readouterr()
    assert main(["analyze", "cam", str(twins[0]), "--data-dir", str(data_dir), "--canvas", str(side - 1),
                 "--device", "cpu", "--quiet", "--out", str(tmp_path / "small")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--canvas must be at least the images' side" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "small").exists()
