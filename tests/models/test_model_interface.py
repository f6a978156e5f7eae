"""Issue 20 §0: every model is features -> pool -> head, so CAM, transfer and surgery need no per-model code."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from reslab.models import build_model, model_names

SHAPES = {"mlp": (1, 8, 8), "seed-cnn": (3, 32, 32)}


@pytest.mark.parametrize("name", model_names())
def test_forward_is_head_of_pooled_features(name: str) -> None:
    shape = SHAPES.get(name, (3, 16, 16))
    torch.manual_seed(0)
    model = build_model(name, input_shape=shape, num_classes=7).eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        feats = model.features(x)
        composed = model.head(model.pool(feats).flatten(1))
        direct = model(x)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 7
    assert torch.equal(composed, direct)
    if name.endswith("mlp"):
        assert feats.dim() == 2
    else:  # a conv model's features are its last spatial map (what CAM weighs), before global pooling
        assert feats.dim() == 4 and feats.shape[1] == model.head.in_features and feats.shape[-1] >= 1


def test_notebook_models_keep_the_notebooks_state_dict_names() -> None:
    """`head`/`pool` are views of the notebook's `output`/`adaptive_pool`: no new keys, so notebook weights and
    old checkpoints load."""
    for name in ("seed-cnn", "seed-resnet"):
        model = build_model(name, input_shape=SHAPES.get(name, (3, 16, 16)), num_classes=10)
        keys = set(model.state_dict())
        assert "output.weight" in keys and not any(k.startswith(("head.", "pool.")) for k in keys)
        assert model.head is model.output and model.pool is model.adaptive_pool
    mlp = build_model("seed-mlp", input_shape=(1, 8, 8), num_classes=10)
    assert not any(k.startswith("pool.") for k in mlp.state_dict())


@pytest.mark.parametrize("name", model_names())
def test_every_model_is_a_classifier(name: str) -> None:
    from reslab.models import Classifier

    assert isinstance(build_model(name, input_shape=SHAPES.get(name, (3, 16, 16)), num_classes=3), Classifier)
