"""`reslab analyze fcn`'s parts on hand-built cases: the surgery (the class map's mean is the classifier's logits,
the 1x1 conv's weights are the head's), the canvases, the detector's boxes, and AP against cases with known answers
and an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.detection import ap_by_hand
from reslab.analyze.fcn import convolutionalize
from reslab.analyze.fcn_canvas import CanvasSpec, make_canvases
from reslab.analyze.fcn_detect import Boxes, Level, average_precision, detect, evaluate, match, mean_ap
from reslab.errors import ConfigError
from reslab.models import build_model

CONV = {"convnet": {"channels": 6, "stages": 2, "blocks": 1}, "cifar-resnet": {"depth": 8, "width": 4},
        "seed-cnn": {"channels": 4}, "seed-resnet": {"channels": 4, "depth": 1}}


# ----------------------------------------------------------------------------- surgery


@pytest.mark.parametrize("name", sorted(CONV))
def test_the_class_maps_mean_is_the_classifiers_logits(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_shape=(1, 28, 28), num_classes=10, **CONV[name]).eval()
    digits = torch.randn(5, 1, 28, 28)
    fcn = convolutionalize(model, digits, name)
    assert torch.equal(fcn.classifier.weight[:, :, 0, 0], model.head.weight)
    assert torch.equal(fcn.classifier.bias, model.head.bias)
    with torch.no_grad():
        maps = fcn(digits)  # exact for global average pooling + linear: mean(W f + b) = W mean(f) + b
        assert maps.shape[:2] == (5, 10)
        torch.testing.assert_close(maps.mean((2, 3)), model(digits), atol=1e-5, rtol=1e-5)
        canvas = fcn(torch.randn(1, 1, 64, 64))
    assert canvas.shape[0] == 1 and canvas.shape[1] == 10 and canvas.shape[2] > maps.shape[2]


@pytest.mark.parametrize("name", ["mlp", "seed-mlp"])
def test_a_model_without_a_spatial_map_is_refused(name: str) -> None:
    model = build_model(name, input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ConfigError, match=f"fcn needs a conv model .*; {name} has none") as info:
        convolutionalize(model, torch.randn(2, 1, 28, 28), name)
    assert "\n" not in str(info.value)


def test_a_model_not_ending_in_average_pooling_is_refused() -> None:
    model = build_model("convnet", input_shape=(1, 28, 28), num_classes=10, channels=4, stages=1, blocks=0)
    model.pool = torch.nn.AdaptiveMaxPool2d(1)
    with pytest.raises(ConfigError, match="ends in AdaptiveMaxPool2d and Linear"):
        convolutionalize(model, torch.randn(1, 1, 28, 28), "maxpooled")


# ----------------------------------------------------------------------------- canvases


def test_canvases_are_seeded_and_made_of_the_given_digits_in_their_boxes() -> None:
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (30, 1, 28, 28), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, 10, (30,), generator=gen)
    spec = CanvasSpec(count=12, size=96, digits=(2, 4), scales=(1.0, 1.5), seed=3)
    canvases = make_canvases(images, labels, spec)
    again = make_canvases(images, labels, spec)
    other = make_canvases(images, labels, CanvasSpec(count=12, size=96, digits=(2, 4), scales=(1.0, 1.5), seed=4))
    assert all(torch.equal(a.image, b.image) and torch.equal(a.truth.boxes, b.truth.boxes)
               for a, b in zip(canvases, again))
    assert any(not torch.equal(a.image, b.image) for a, b in zip(canvases, other))
    assert sum(len(c.truth) for c in canvases) >= 2 * 12 - 2  # rarely a digit finds no place
    for c in canvases:
        assert c.image.shape == (1, 96, 96) and 1 <= len(c.truth) <= 4
        assert torch.equal(c.truth.labels, labels[list(c.sources)])
        inside = torch.zeros(96, 96, dtype=torch.bool)
        for (x0, y0, x1, y1), index in zip(c.truth.boxes.long().tolist(), c.sources):
            side = x1 - x0
            assert y1 - y0 == side and 28 <= side <= 42 and 0 <= x0 and x1 <= 96 and 0 <= y0 and y1 <= 96
            inside[y0:y1, x0:x1] = True
            patch = torch.nn.functional.interpolate(images[index][None].float(), size=(side, side), mode="bilinear",
                                                    align_corners=False, antialias=False)[0].round()
            assert (c.image[:, y0:y1, x0:x1].float() >= patch - 0.5).all()  # composited by the maximum
        assert (c.image[:, ~inside] == 0).all()  # nothing outside the digits' boxes


# ----------------------------------------------------------------------------- the detector's boxes


def test_a_peak_becomes_the_training_frame_at_its_place_and_scale() -> None:
    scores = torch.full((3, 10, 10), 0.01)
    scores[2, 4, 6] = 0.9  # class 2, window with top-left cell (row 4, column 6)
    scores[1, 0, 0] = 0.3
    level1 = Level(1.0, scores, (4.0, 4.0))
    found = detect([level1], (28, 28), floor=0.05, nms_iou=0.3, max_detections=10)
    assert found.labels.tolist() == [2, 1] and found.scores.tolist() == pytest.approx([0.9, 0.3])
    assert found.boxes[0].tolist() == [24.0, 16.0, 52.0, 44.0] and found.boxes[1].tolist() == [0.0, 0.0, 28.0, 28.0]
    level2 = Level(2.0, scores * 0.5, (4.0, 4.0))  # the same peaks at scale 2: boxes twice as large and far
    both = detect([level1, level2], (28, 28), floor=0.05, nms_iou=0.3, max_detections=10)
    assert [48.0, 32.0, 104.0, 88.0] in both.boxes.tolist()  # IoU with the scale-1 box is 0.25 < 0.3: both kept
    same = detect([level1, Level(1.0, scores * 0.5, (4.0, 4.0))], (28, 28), floor=0.05, nms_iou=0.3, max_detections=10)
    assert same.labels.tolist() == [2, 1]  # the duplicates at the same place are suppressed
    assert len(detect([level1], (28, 28), floor=0.95, nms_iou=0.3, max_detections=10)) == 0


# ----------------------------------------------------------------------------- AP


def _boxes(rows: list[tuple], scores: list[float] | None = None) -> Boxes:
    return Boxes(torch.tensor([r[:4] for r in rows], dtype=torch.float32).reshape(-1, 4),
                 torch.tensor([r[4] for r in rows], dtype=torch.long),
                 torch.tensor(scores if scores is not None else [1.0] * len(rows)))


def test_ap_of_cases_with_known_answers() -> None:
    assert average_precision([0.9, 0.8], [True, True], 2) == 1.0  # perfect
    assert average_precision([0.9, 0.8], [False, True], 1) == 0.5  # a false positive ranked first
    assert average_precision([0.9, 0.8, 0.7], [True, True, False], 2) == 1.0  # one ranked last costs nothing
    assert average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([0.9], [True], 2) == 0.5  # half the true boxes never found
    assert average_precision([], [], 3) == 0.0 and np.isnan(average_precision([0.5], [False], 0))
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        tp = list(rng.random(n) < 0.5)
        scores = list(rng.random(n))
        truths = sum(tp) + int(rng.integers(0, 4))
        if truths:
            assert average_precision(scores, tp, truths) == pytest.approx(ap_by_hand(scores, tp, truths))


def test_matching_counts_duplicates_wrong_classes_and_poor_overlaps_as_false() -> None:
    truth = _boxes([(0, 0, 28, 28, 3), (50, 50, 78, 78, 7)])
    pred = _boxes([(0, 0, 28, 28, 3),  # exact: true
                   (1, 1, 29, 29, 3),  # a duplicate of a matched box: false
                   (50, 50, 78, 78, 1),  # the right place, the wrong class: false
                   (60, 60, 88, 88, 7)],  # IoU 18x18 / (2*784 - 324) = 0.26 < 0.5: false
                  [0.9, 0.8, 0.7, 0.6])
    assert match(pred, truth, 0.5).tolist() == [True, False, False, False]
    assert match(pred, truth, 0.25).tolist() == [True, False, False, True]
    perfect, _ = evaluate([truth, truth], [truth, truth], 10, iou_threshold=0.5, threshold=0.5)
    assert mean_ap(perfect) == 1.0 and [c.ap for c in perfect if c.truths] == [1.0, 1.0]
    scores, flags = evaluate([pred], [truth], 10, iou_threshold=0.5, threshold=0.75)
    by_class = {c.label: c for c in scores}
    assert (by_class[3].ap, by_class[7].ap, by_class[3].detections, by_class[3].true_positives) == (1.0, 0.0, 2, 1)
    assert by_class[3].precision == 0.5 and by_class[7].recall == 0.0 and np.isnan(by_class[1].ap)
    assert mean_ap(scores) == 0.5 and flags[0].tolist() == [True, False, False, False]
