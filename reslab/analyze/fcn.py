"""`reslab analyze fcn`: a trained classifier made fully convolutional (Exercise 2.2 of the 2023/24 lab), and the
digit detector built on it, measured on canvases of test-set digits.

Network surgery: the head (one Linear layer on globally average-pooled features) becomes a 1x1 convolution with
the same weights, applied to `features(x)` without the pooling, so a larger image gives a class map (logits at
every place of the feature map). For global average pooling then a linear layer the mean of that map over the
places equals the classifier's logits exactly (the mean commutes with the affine map): it is checked on the test
digits themselves. Detection and its evaluation are `fcn_detect`, the canvases `fcn_canvas`, the words
`fcn_summary`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reslab.analyze.fcn_canvas import Canvas, CanvasSpec, make_canvases
from reslab.analyze.fcn_detect import Boxes, Level, detect, window_scores
from reslab.analyze.registry import Common, bounded
from reslab.analyze.targets import Target, build, check_seed, resolve_targets, shared_data
from reslab.checks import require
from reslab.data import ImageData, normalize
from reslab.errors import ConfigError
from reslab.runtime import select_device

FLOOR = 0.05  # the lowest window confidence kept as a detection (AP ranks every detection above it)
MAX_DETECTIONS = 100  # per canvas, after non-maximum suppression
SURGERY_IMAGES = 512  # test digits on which the class map's mean is compared with the classifier's logits
CHUNK = 64  # canvases per forward pass


class FullyConvolutional(nn.Module):
    """`model.features`, then its head as a 1x1 convolution (weights copied): (B, C, H, W) -> (B, K, h, w)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        head = model.head
        self.model = model
        self.classifier = nn.Conv2d(head.in_features, head.out_features, 1, bias=head.bias is not None).to(
            head.weight.device, head.weight.dtype)
        with torch.no_grad():
            self.classifier.weight.copy_(head.weight[:, :, None, None])
            if head.bias is not None:
                self.classifier.bias.copy_(head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.model.features(x))


def convolutionalize(model: nn.Module, probe: torch.Tensor, what: str) -> FullyConvolutional:
    """The fully-convolutional twin of a classifier whose head reads globally average-pooled spatial features; a
    one-line ConfigError for any other (an MLP has no spatial map to slide over)."""
    pool, head = getattr(model, "pool", None), getattr(model, "head", None)
    with torch.no_grad():
        spatial = hasattr(model, "features") and model.eval().features(probe[:1]).dim() == 4
    if not spatial:
        raise ConfigError(f"fcn needs a conv model (a spatial feature map before the head); {what} has none")
    average = isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))
    if not (average and isinstance(head, nn.Linear)):
        raise ConfigError(f"fcn needs a model ending in global average pooling and one linear layer; {what} ends in "
                          f"{type(pool).__name__} and {type(head).__name__}")
    return FullyConvolutional(model).eval()


# ----------------------------------------------------------------------------- options and results


@dataclass(frozen=True)
class FcnOptions:
    at: str = "best"  # the checkpoint: best | last
    canvases: int = 200
    size: int = 96  # canvas side, pixels
    digits: tuple[int, int] = (2, 5)  # digits per canvas: at least, at most
    scales: tuple[float, float] = (1.0, 2.0)  # a digit's side over its training size: least, most (log-uniform)
    pyramid: tuple[float, ...] = (1.0, 1.26, 1.59, 2.0)  # the digit scales the detector looks for
    threshold: float = 0.5  # the window confidence at which precision and recall are counted
    iou: float = 0.5  # the IoU a detection needs with a true box to count
    nms_iou: float = 0.3  # detections of one class overlapping more than this with a better one are dropped
    examples: int = 6  # canvases drawn with their boxes

    def __post_init__(self) -> None:
        bounded("--canvases", self.canvases, 1, 100_000)
        bounded("--size", self.size, 8, 4096)
        bounded("--digits", self.digits[0], 1, 100)
        bounded("--digits", self.digits[1], self.digits[0], 100)
        bounded("--scales", self.scales[0], 0.05, 100)
        bounded("--scales", self.scales[1], self.scales[0], 100)
        require(len(self.pyramid) >= 1, "--pyramid needs at least one scale")
        for scale in self.pyramid:
            bounded("--pyramid", scale, 0.05, 100)
        bounded("--threshold", self.threshold, 0, 1)
        bounded("--iou", self.iou, 0.01, 1)
        bounded("--nms-iou", self.nms_iou, 0.01, 1)
        bounded("--examples", self.examples, 0, 64)

    def spec(self, seed: int) -> CanvasSpec:
        return CanvasSpec(count=self.canvases, size=self.size, digits=self.digits, scales=self.scales, seed=seed)


@dataclass(frozen=True, eq=False)
class FcnResult:
    target: Target
    frame: tuple[int, int]  # the training images' (H, W): a window's box at scale 1
    window: tuple[int, int]  # the feature map of a training image, in map cells: the window averaged
    stride: tuple[float, float]  # input pixels per map cell at scale 1 (y, x)
    surgery_diff: float  # max |mean of the class map - logits| over the test digits checked
    digit_acc: float  # the classifier's accuracy on those digits alone
    digits_checked: int
    detections: tuple[Boxes, ...]  # per canvas


@dataclass(frozen=True, eq=False)
class FcnMeasurement:
    results: tuple[FcnResult, ...]
    canvases: tuple[Canvas, ...]
    spec: CanvasSpec
    dataset: str
    classes: tuple[str, ...]
    test_images: int  # the test set the digits were drawn from


# ----------------------------------------------------------------------------- measuring


def class_maps(fcn: FullyConvolutional, canvases: torch.Tensor, data: ImageData, scale: float,
               channels_last: bool) -> torch.Tensor:
    """uint8 (B, C, S, S) canvases, resized by 1/scale, normalised as in training -> (B, K, h, w) class maps."""
    side = round(canvases.shape[-1] / scale)
    x = normalize(canvases, data.mean, data.std)
    if side != canvases.shape[-1]:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=scale > 1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        return fcn(x).float()


def check_surgery(model: nn.Module, fcn: FullyConvolutional, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(max |mean over places of the class map - the classifier's logits|, the classifier's accuracy) on x."""
    with torch.no_grad():
        logits = model(x).float()
        mean_map = fcn(x).float().mean((2, 3))
    return float((mean_map - logits).abs().max()), float((logits.argmax(1) == y).float().mean())


def check_pyramid(fcn: FullyConvolutional, data: ImageData, options: FcnOptions, device: torch.device) -> None:
    """Refuse, before measuring, a pyramid level whose resized canvas gives a class map smaller than one digit's."""
    c, h, w = data.input_shape
    scale = max(options.pyramid)
    with torch.no_grad():
        window = fcn(torch.zeros(1, c, h, w, device=device)).shape[-2:]
        blank = torch.zeros(1, c, options.size, options.size, dtype=torch.uint8, device=device)
        got = class_maps(fcn, blank, data, scale, False).shape[-2:]
    if got[0] < window[0] or got[1] < window[1]:
        raise ConfigError(f"a {options.size}-pixel canvas at pyramid scale {scale:g} gives a {got[0]}x{got[1]} class "
                          f"map, smaller than the {window[0]}x{window[1]} of one digit; lower --pyramid or raise "
                          "--size")


def measure_one(target: Target, model: nn.Module, channels_last: bool, data: ImageData,
                canvases: Sequence[Canvas], options: FcnOptions, device: torch.device) -> FcnResult:
    frame = data.input_shape[1:]
    digits = torch.arange(min(SURGERY_IMAGES, len(data.test_y)))
    x = normalize(data.test_x[digits].to(device), data.mean, data.std)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fcn = convolutionalize(model, x, f"{target.label} ({target.cfg.model.name})")
    diff, acc = check_surgery(model, fcn, x, data.test_y[digits].to(device))
    with torch.no_grad():
        window = tuple(fcn(x[:1]).shape[-2:])
    found: list[Boxes] = []
    for start in range(0, len(canvases), CHUNK):  # a chunk's score maps at every scale, then its detections
        images = torch.stack([c.image for c in canvases[start:start + CHUNK]]).to(device)
        levels: list[list[Level]] = [[] for _ in images]
        for scale in options.pyramid:
            maps = class_maps(fcn, images, data, scale, channels_last)
            h, w = maps.shape[-2:]
            side = round(options.size / scale)
            for n, scores in enumerate(window_scores(maps, window).cpu()):
                levels[n].append(Level(scale, scores, (side / h, side / w)))
        found += [detect(lv, frame, floor=FLOOR, nms_iou=options.nms_iou, max_detections=MAX_DETECTIONS)
                  for lv in levels]
    stride = frame[0] / window[0], frame[1] / window[1]
    return FcnResult(target, frame, window, stride, diff, acc, len(digits), tuple(found))


def measure(targets: Sequence[Target], options: FcnOptions, *, device: str = "auto", seed: int = 0,
            progress: bool = True) -> FcnMeasurement:
    """Every target's detections on the same canvases of test-set digits drawn with `seed`."""
    check_seed(seed)
    dev = select_device(device)
    data, _, _ = shared_data(targets)
    require(len(data.test_y) > 0, f"{data.name} has no test images to paste on canvases")
    largest = round(options.scales[1] * max(data.input_shape[1:]))
    require(largest <= options.size, f"--scales up to {options.scales[1]:g} makes digits of {largest} pixels, larger "
                                     f"than the --size {options.size} canvas")
    models = []
    for target in targets:  # every model is checked before the first is measured
        model, channels_last = build(target, data, dev)
        probe = normalize(data.test_x[:1].to(dev), data.mean, data.std)
        check_pyramid(convolutionalize(model, probe, f"{target.label} ({target.cfg.model.name})"), data, options, dev)
        models.append((target, model.eval(), channels_last))
    canvases = make_canvases(data.test_x, data.test_y, options.spec(seed))
    if progress:
        n = sum(len(c.truth) for c in canvases)
        print(f"fcn: {len(canvases)} canvases of {options.size}x{options.size} with {n} test-set digits of "
              f"{data.name} (seed {seed}), device {dev}", file=sys.stderr)
    results = []
    for target, model, channels_last in models:
        results.append(measure_one(target, model, channels_last, data, canvases, options, dev))
        if progress:
            print(f"fcn: {target.label}: {sum(len(d) for d in results[-1].detections)} detections", file=sys.stderr)
    return FcnMeasurement(tuple(results), tuple(canvases), options.spec(seed), data.name, data.classes,
                          len(data.test_y))


# ----------------------------------------------------------------------------- the instrument's call


def prepare(sources: Sequence[str], options: FcnOptions, common: Common) -> list[Target]:
    return resolve_targets(sources, at=(options.at,), overrides=common.overrides, settings=common.settings)


def measure_targets(targets: Sequence[Target], options: FcnOptions, common: Common) -> FcnMeasurement:
    return measure(targets, options, device=common.device, seed=common.seed, progress=common.progress)
