"""`reslab analyze cam`: class activation maps of trained conv nets, and how faithful they are.

On a seeded draw of test images (the same for every run) each model gives CAM and Grad-CAM (`cam_maps`) for the
true class and for its top predicted class, the mean CAM of each class, and the deletion and insertion curves
(`cam_faith`) of the predicted class ordered by CAM, by Grad-CAM and at random. With `canvas`, the images are
larger canvases each holding one test image at a random place (`fcn_canvas`): a conv net ending in global average
pooling reads any size, and the pointing game (Zhang et al. 2016: does the map's peak for the true class fall
inside the object?) measures whether the map finds it. The numbers and words are `reslab.analyze.cam_summary`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from reslab.analyze import cam_faith
from reslab.analyze.cam_maps import cam, feature_map, grad_cam, has_gap_head, normalise, upsample
from reslab.analyze.registry import Common, bounded, require_work
from reslab.analyze.targets import Target, build, check_seed, resolve_targets, shared_data
from reslab.data import DeviceLoader, ImageData
from reslab.errors import ConfigError
from reslab.evaluate import check_model_takes
from reslab.runtime import select_device

METHODS = ("cam", "gradcam", "random")  # the orders the curves follow; random is the reference


@dataclass(frozen=True)
class CamOptions:
    at: str = "best"  # the checkpoint: best | last
    images: int = 64  # test images the curves are measured on (drawn with the seed)
    show: int = 8  # of them, shown in the grid figures
    steps: int = 16  # steps of the deletion and insertion curves
    baseline: str = "paper"  # cam_faith.BASELINES
    canvas: int | None = None  # pixels: explain canvases this large, each with one test image at a random place

    def __post_init__(self) -> None:
        bounded("--images", self.images, 1, 100_000)
        bounded("--show", self.show, 0, 64)
        bounded("--steps", self.steps, 1, 1024)
        bounded("--canvas", self.canvas, 1, 2048)
        if self.baseline not in cam_faith.BASELINES:
            raise ConfigError(f"--baseline must be one of {', '.join(cam_faith.BASELINES)}, got {self.baseline!r}")


@dataclass(frozen=True, eq=False)
class CamResult:
    """One model's maps and curves on the shared images."""

    target: Target
    exact_cam: bool  # GAP + linear head: CAM is exact (else only Grad-CAM, and the cam columns are Grad-CAM's)
    feature_shape: tuple[int, int, int]  # (K, h, w) of features(x) at the input size
    labels: np.ndarray  # (N,) true classes
    predicted: np.ndarray  # (N,) top predicted classes
    confidence: np.ndarray  # (N,) probability of the predicted class
    shown: Mapping[str, np.ndarray]  # "cam-true", "cam-predicted", "gradcam-..." -> (show, H, W) in [0, 1]
    class_means: np.ndarray  # (classes, H, W): mean normalised CAM of each true class (NaN: no image of it)
    # (method, deletion | insertion) -> (N, steps + 1): the probability of the predicted class along each curve
    curves: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)
    pointing: np.ndarray | None = None  # (N,) bool, with canvases: the true class's CAM peaks inside the image's box


@dataclass(frozen=True, eq=False)
class CamMeasurement:
    results: tuple[CamResult, ...]
    images: np.ndarray  # (show, H, W, C) in [0, 1], for the overlays
    classes: tuple[str, ...]
    dataset: str
    options: CamOptions
    chance: np.ndarray | None = None  # (N,), with canvases: the pointing game's chance (box area / canvas area)


def _check_images(data: ImageData, count: int) -> int:
    """--images within the test set (its size returned): one line otherwise."""
    n = len(data.test_y)
    if not 1 <= count <= n:
        raise ConfigError(f"--images must be in 1..{n} (the test set of {data.name}), got {count}")
    return n


def draw_images(data: ImageData, count: int, seed: int) -> torch.Tensor:
    """`count` test image indices drawn with `seed` (sorted: the test set's order)."""
    n = _check_images(data, count)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].sort().values


def explain(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, baseline: str,
            generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One batch (any image size): predictions, upsampled maps (true and predicted class) and the curves."""
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        probs = torch.softmax(model(x).float(), dim=1)
    confidence, predicted = probs.max(dim=1)
    first = cam if has_gap_head(model) else grad_cam
    out: dict[str, torch.Tensor] = {"predicted": predicted, "confidence": confidence}
    for method, fn in (("cam", first), ("gradcam", grad_cam)):
        for which, classes in (("true", y), ("predicted", predicted)):
            out[f"{method}-{which}"] = upsample(fn(model, x, classes), size)  # (B, H, W)
    for method in METHODS:
        pixels = cam_faith.random_order((len(x), *size), generator, x.device) if method == "random" else \
            cam_faith.order(out[f"{method}-predicted"], generator)
        out[f"{method}-deletion"], out[f"{method}-insertion"] = cam_faith.deletion_insertion(
            model, x, predicted, pixels, steps, baseline)
    return out


def canvases(data: ImageData, count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` canvases of `size` pixels, each one test image at its own scale at a place drawn with `seed`:
    uint8 images (N, C, size, size), labels (N,) and the images' boxes (N, 4: x0, y0, x1, y1)."""
    from reslab.analyze.fcn_canvas import CanvasSpec, make_canvases

    side = max(data.input_shape[1:])
    if size < side:
        raise ConfigError(f"--canvas must be at least the images' side ({side} pixels for {data.name}), got {size}")
    _check_images(data, count)
    made = make_canvases(data.test_x, data.test_y, CanvasSpec(count=count, size=size, digits=(1, 1),
                                                               scales=(1.0, 1.0), seed=seed))
    return (torch.stack([c.image for c in made]), torch.cat([c.truth.labels for c in made]),
            torch.cat([c.truth.boxes for c in made]))


def pointing_game(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps and (N, 4) boxes -> (N,) bool: each map's highest pixel lies inside its box (the first
    highest, in row-major order, on a tie)."""
    peak = maps.flatten(1).argmax(dim=1)
    y, x = (peak // maps.shape[-1]).float(), (peak % maps.shape[-1]).float()
    return (x >= boxes[:, 0]) & (x < boxes[:, 2]) & (y >= boxes[:, 1]) & (y < boxes[:, 3])


def _measure_one(target: Target, model: nn.Module, batches: list, data: ImageData, options: CamOptions,
                 seed: int, boxes: torch.Tensor | None = None) -> CamResult:
    generator = torch.Generator().manual_seed(seed)  # the same random orders for every model
    parts: dict[str, list[torch.Tensor]] = {}
    labels = []
    for x, y in batches:
        for key, value in explain(model, x, y, steps=options.steps, baseline=options.baseline,
                                  generator=generator).items():
            parts.setdefault(key, []).append(value.detach().cpu())
        labels.append(y.cpu())
    got = {key: torch.cat(values) for key, values in parts.items()}
    y_all = torch.cat(labels)
    true_cams = normalise(got["cam-true"])
    class_means = np.full((data.num_classes, *true_cams.shape[1:]), np.nan, dtype=np.float32)
    for c in y_all.unique().tolist():
        class_means[c] = true_cams[y_all == c].mean(dim=0).numpy()
    shown = {f"{m}-{w}": normalise(got[f"{m}-{w}"][:options.show]).numpy()
             for m in ("cam", "gradcam") for w in ("true", "predicted")}
    with torch.no_grad():
        k, h, w = feature_map(model, batches[0][0][:1], target.label).shape[1:]
    pointing = None if boxes is None else pointing_game(got["cam-true"], boxes).numpy()
    return CamResult(target, has_gap_head(model), (int(k), int(h), int(w)), y_all.numpy(), got["predicted"].numpy(),
                     got["confidence"].numpy(), shown, class_means,
                     {(m, c): got[f"{m}-{c}"].numpy() for m in METHODS for c in ("deletion", "insertion")}, pointing)


def analyse(targets: Sequence[Target], options: CamOptions, *, device: str = "auto", seed: int = 0,
            progress: bool = True) -> CamMeasurement:
    """Every target's maps and curves on the same seeded test images; every model is checked before the first is
    measured (an MLP is refused with one line)."""
    check_seed(seed)
    dev = select_device(device)
    data, _, _ = shared_data(targets)
    boxes = None
    if options.canvas:
        images, labels, boxes = canvases(data, options.images, options.canvas, seed)
    else:
        idx = draw_images(data, options.images, seed)
        images, labels = data.test_x[idx], data.test_y[idx]
    batches = list(DeviceLoader(images, labels, batch_size=targets[0].cfg.data.eval_batch_size, mean=data.mean,
                                std=data.std, device=dev))
    models = []
    for target in targets:
        model, _ = build(target, data, dev)
        model.eval()
        check_model_takes(model, data, batches, target.cfg.model.name)
        with torch.no_grad():
            feature_map(model, batches[0][0][:1], f"{target.label} ({target.cfg.model.name})")
        models.append((target, model))
    forwards = options.images * (2 * len(METHODS) * (options.steps + 1) + 6)  # curves, predictions and maps
    h, w = images.shape[-2:]
    params = max(sum(p.numel() for p in model.parameters()) for _, model in models)
    require_work(forwards * params * h * w * len(models), "cam")  # a conv weight is used at most once per pixel
    if progress:
        what = f"canvases of {options.canvas} pixels" if options.canvas else "test images"
        print(f"cam: {len(labels)} {what} of {data.name} drawn with seed {seed}, {options.steps} steps, baseline "
              f"{options.baseline}, device {dev}", file=sys.stderr)
    results = []
    for target, model in models:
        results.append(_measure_one(target, model, batches, data, options, seed, boxes))
        if progress:
            print(f"cam: {target.label}: measured", file=sys.stderr)
    shown = (images[:options.show].float() / 255).permute(0, 2, 3, 1).numpy()
    chance = None if boxes is None else ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (h * w)).numpy()
    return CamMeasurement(tuple(results), shown, data.classes, data.name, options, chance)


# ----------------------------------------------------------------------------- the instrument's call


def prepare(sources: Sequence[str], options: CamOptions, common: Common) -> list[Target]:
    return resolve_targets(sources, at=(options.at,), overrides=common.overrides, settings=common.settings)


def measure_targets(targets: Sequence[Target], options: CamOptions, common: Common) -> CamMeasurement:
    return analyse(targets, options, device=common.device, seed=common.seed, progress=common.progress)
