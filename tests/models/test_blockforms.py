"""Block forms that train without normalisation: SkipInit/ReZero's zero branch scalar and Fixup's initialisation,
checked against hand computations of the nets they should equal at init."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ConfigError
from reslab.models import build_model, count_params
from reslab.models.blocks import Block


def _build(name: str, shape: tuple[int, int, int] = (1, 8, 8), seed: int = 0, **kw: object) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, input_shape=shape, num_classes=5, **kw).eval()


def _blocks(model: nn.Module) -> list[Block]:
    return [m for m in model.modules() if isinstance(m, Block)]


def _option_a(h: torch.Tensor, out_channels: int) -> torch.Tensor:
    """He et al.'s option-A shortcut by hand: every second pixel, zero channels appended."""
    h = h[:, :, ::2, ::2]
    return torch.cat([h, h.new_zeros(h.shape[0], out_channels - h.shape[1], *h.shape[2:])], dim=1)


def _mlp_without_branches(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h = F.relu(model.stem(x.flatten(1)))  # every block is then the identity on a non-negative input
    if model.final_act:
        h = F.relu(model.final_norm(h))
    return model.head(h)


def _resnet_without_branches(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h = model.stem(x)
    for stage in list(model.stages)[1:]:
        h = _option_a(h, stage[0].layers[0].out_channels)  # only the downsampling shortcuts change anything
    if model.final_act:
        h = F.relu(model.final_norm(h))
    return model.head(h.mean(dim=(2, 3)))


def _convnet_without_branches(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h = model.stem(x)
    for _ in list(model.stages)[1:]:
        h = F.max_pool2d(h, 2)
    if model.final_act:
        h = F.relu(model.final_norm(h))
    return model.head(h.mean(dim=(2, 3)))


REZERO_NETS = [
    ("mlp", {"width": 8, "depth": 3}, _mlp_without_branches),
    ("mlp", {"width": 8, "depth": 3, "layers_per_block": 2, "preact": True, "norm": "layer"}, _mlp_without_branches),
    ("convnet", {"channels": 4, "blocks": 2, "stages": 2, "norm": "none"}, _convnet_without_branches),
    ("cifar-resnet", {"depth": 8, "width": 4}, _resnet_without_branches),
    ("cifar-resnet", {"depth": 8, "width": 4, "preact": True, "norm": "none"}, _resnet_without_branches),
]


@pytest.mark.parametrize("name, kw, by_hand", REZERO_NETS, ids=lambda v: v if isinstance(v, str) else None)
def test_rezero_net_at_init_is_its_shortcut_path(name: str, kw: dict, by_hand) -> None:
    model = _build(name, rezero=True, residual=True, **kw)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), by_hand(model, x))
        assert all(b.alpha.item() == 0.0 for b in _blocks(model))
        for block in _blocks(model):  # the check can fail: a non-zero scalar lets the branches in
            block.alpha.fill_(0.1)
        assert not torch.allclose(model(x), by_hand(model, x))


def test_rezero_scalar_learns_and_the_plain_twin_keeps_it_at_one() -> None:
    residual = _build("mlp", width=8, depth=3, residual=True, rezero=True).train()
    F.cross_entropy(residual(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
    assert all(b.alpha.grad is not None and b.alpha.grad.abs() > 0 for b in _blocks(residual))
    plain = _build("mlp", width=8, depth=3, residual=False, rezero=True)
    bare = _build("mlp", width=8, depth=3, residual=False)
    assert count_params(plain) == count_params(residual) == count_params(bare) + 3
    assert [b.alpha.item() for b in _blocks(plain)] == [1.0, 1.0, 1.0]
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():  # same seed, same weights: a scalar at 1 changes nothing in the plain net
        assert torch.equal(plain(x), bare(x))


@pytest.mark.parametrize("name, kw, branches, layers", [
    ("mlp", {"width": 8, "depth": 4, "layers_per_block": 3}, 4, 3),
    ("convnet", {"channels": 4, "blocks": 2, "stages": 2, "layers_per_block": 2}, 4, 2),
    ("cifar-resnet", {"depth": 14, "width": 4}, 6, 2),
    ("mlp", {"width": 8, "depth": 5, "layers_per_block": 1}, 5, 1),
])
def test_fixup_scales_and_zeros_by_the_formula(name: str, kw: dict, branches: int, layers: int) -> None:
    base = _build(name, residual=True, norm="none", init="he-fan-out" if name == "cifar-resnet" else "he", **kw)
    fixup = _build(name, residual=True, norm="none", fixup=True, **kw)
    scale = branches ** (-1.0 / (2 * layers - 2)) if layers > 1 else None  # L^(-1/(2m-2))
    assert len(_blocks(fixup)) == branches
    for b0, b1 in zip(_blocks(base), _blocks(fixup)):
        assert len(b1.layers) == layers and b1.alpha.item() == 1.0  # Fixup's multiplier, at 1
        for l0, l1 in zip(b0.layers[:-1], b1.layers[:-1]):
            torch.testing.assert_close(l1.weight, l0.weight * scale, rtol=1e-6, atol=0)
            torch.testing.assert_close(l1.bias, l0.bias, rtol=0, atol=0)
        assert not b1.layers[-1].weight.any() and not b1.layers[-1].bias.any()
    assert not fixup.head.weight.any() and not fixup.head.bias.any()
    stem = (lambda m: m.stem) if name == "mlp" else (lambda m: m.stem[0])
    assert torch.equal(stem(base).weight, stem(fixup).weight), "layers outside the branches are left alone"
    with torch.no_grad():
        assert not fixup(torch.randn(2, 1, 8, 8)).any(), "a zero classifier: zero logits at init"


@pytest.mark.parametrize("kw, message", [
    ({"rezero": True, "fixup": True, "norm": "none"}, "choose one"),
    ({"rezero": True, "zero_init": True}, "neither ever gets a gradient"),
    ({"fixup": True, "zero_init": True, "norm": "none"}, "drop zero_init"),
    ({"fixup": True, "norm": "batch"}, "use norm=none"),
    ({"fixup": True, "norm": "none", "residual": False}, "residual twin only"),
])
@pytest.mark.parametrize("name", ["mlp", "convnet", "cifar-resnet"])
def test_forms_that_make_no_sense_are_one_line_errors(name: str, kw: dict, message: str) -> None:
    kw = {"residual": True, **kw}
    with pytest.raises(ConfigError, match=message) as info:
        build_model(name, input_shape=(3, 16, 16), num_classes=10, **kw)
    assert "\n" not in str(info.value)
