"""`model.init`: each scheme draws the std its formula says, the defaults are exactly the weights of before, and
the init is a variable with consequences (a deep plain MLP learns under He init and not under PyTorch's default)."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reslab.config import from_dict, to_dict
from reslab.errors import ConfigError
from reslab.models import build_model, init_of, model_args
from reslab.models.blocks import Block
from reslab.models.init import INITS, init_std


def _build(name: str, seed: int = 0, shape: tuple[int, int, int] = (3, 16, 16), **kw: object) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, input_shape=shape, num_classes=10, **kw)


def _digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# state_dict digests of models built at seed 0 by the code before `model.init` existed (commit f3b61b9)
BEFORE = [
    ("mlp", {"depth": 4, "width": 16}, "d4c515ecfcfbc01f"),
    ("mlp", {"depth": 3, "width": 8, "residual": True, "norm": "batch", "layers_per_block": 2}, "de943d38c88df6fa"),
    ("convnet", {"channels": 4, "blocks": 2, "stages": 2}, "dfb5ccb26962b282"),
    ("cifar-resnet", {"depth": 8, "width": 4}, "19bed44f82bca76a"),
    ("cifar-resnet", {"depth": 14, "width": 4, "fixup": True, "norm": "none"}, "240683c1c40304eb"),
    ("seed-mlp", {}, "dc08a2309b06c8c6"),
    ("seed-cnn", {"num": 1}, "3b265fdb8b317702"),
    ("seed-resnet", {"depth": 2, "channels": 8}, "51467e47c486b330"),
]


@pytest.mark.parametrize("name, kw, digest", BEFORE, ids=lambda v: v if isinstance(v, str) and "-" in v else None)
def test_each_models_default_init_gives_the_weights_of_before(name: str, kw: dict, digest: str) -> None:
    assert _digest(_build(name, **kw)) == digest
    assert _digest(_build(name, seed=1, **kw)) != digest  # the check can fail


def test_every_model_has_init_with_a_default_that_keeps_todays_behaviour() -> None:
    defaults = {name: model_args(name)["init"][1] for name in ("mlp", "convnet", "cifar-resnet", "seed-mlp",
                                                                 "seed-cnn", "seed-resnet")}
    assert defaults == {"mlp": "torch-default", "convnet": "torch-default", "cifar-resnet": "he-fan-out",
                        "seed-mlp": "torch-default", "seed-cnn": "torch-default", "seed-resnet": "torch-default"}
    cfg = from_dict({"model": {"name": "mlp", "depth": 2}})  # an old config: no init key; resolved with the default
    assert to_dict(cfg)["model"]["init"] == "torch-default"
    assert to_dict(from_dict({"model": {"name": "mlp", "init": "he"}}))["model"]["init"] == "he"


@pytest.mark.parametrize("scheme", [s for s in INITS if s != "torch-default"])
def test_each_scheme_draws_the_std_of_its_formula(scheme: str) -> None:
    model = _build("mlp", width=256, depth=2, init=scheme, shape=(1, 16, 32))  # stem: fan_in 512, fan_out 256
    for layer, fan_in, fan_out in ((model.stem, 512, 256), (model.blocks[0].layers[0], 256, 256)):
        expected = {"he": math.sqrt(2 / fan_in), "he-fan-out": math.sqrt(2 / fan_out), "lecun": math.sqrt(1 / fan_in),
                    "xavier": math.sqrt(2 / (fan_in + fan_out))}[scheme]
        assert init_std(scheme, layer.weight) == pytest.approx(expected)
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.03)
        assert abs(layer.weight.mean().item()) < 0.05 * expected
        assert not layer.bias.any()
    conv = _build("convnet", channels=64, blocks=1, stages=1, init=scheme, norm="none").stages[0][0].layers[0]
    fan = 64 * 9
    assert conv.weight.std().item() == pytest.approx(init_std(scheme, conv.weight), rel=0.03)
    assert init_std(scheme, conv.weight) == pytest.approx({"he": math.sqrt(2 / fan), "he-fan-out": math.sqrt(2 / fan),
                                                           "lecun": math.sqrt(1 / fan),
                                                           "xavier": math.sqrt(1 / fan)}[scheme])
    default = _build("mlp", width=256, depth=2, shape=(1, 16, 32))
    assert default.stem.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 512), rel=0.03)  # U(+-1/sqrt(fan_in))
    assert torch.equal(model.head.weight, default.head.weight), "the classifier head keeps PyTorch's default"


def test_unknown_init_and_fixup_on_a_non_he_init_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="init must be one of"):
        _build("mlp", init="orthogonal")
    with pytest.raises(ConfigError, match="init must be one of"):
        _build("seed-cnn", num=1, init="he-normal")
    with pytest.raises(ConfigError, match="fixup starts from He init"):
        _build("mlp", residual=True, fixup=True, init="xavier")


def test_fixup_draws_he_weights_before_its_rescaling() -> None:
    fixup = _build("mlp", width=256, depth=2, layers_per_block=2, residual=True, fixup=True, shape=(1, 16, 16))
    he = _build("mlp", width=256, depth=2, layers_per_block=2, residual=True, init="he", shape=(1, 16, 16))
    assert torch.equal(fixup.stem.weight, he.stem.weight)
    scale = 2 ** (-1.0 / 2)  # L=2 branches of m=2 layers: L^(-1/(2m-2))
    torch.testing.assert_close(fixup.blocks[0].layers[0].weight, he.blocks[0].layers[0].weight * scale)
    assert init_of("mlp", {"fixup": True}) == "he+fixup"
    assert init_of("mlp", {"init": "xavier"}) == "xavier"
    assert init_of("cifar-resnet", {}) == "he-fan-out"  # a config from before model.init: the model's own default
    assert init_of("mlp", {"rezero": True}) == "torch-default+rezero"
    assert init_of("no-such-model", {}) == ""


def test_rezero_has_no_relu_after_the_sum_and_rezero_relu_keeps_the_earlier_form() -> None:
    paper = _build("mlp", width=8, depth=2, residual=True, rezero=True)
    old = _build("mlp", width=8, depth=2, residual=True, rezero_relu=True)
    x = torch.randn(4, 8)
    for model in (paper, old):
        for block in model.blocks:
            block.alpha.data.fill_(0.5)
    b_paper, b_old = paper.blocks[0], old.blocks[0]
    h = b_paper.norms[0](b_paper.layers[0](x))
    with torch.no_grad():
        torch.testing.assert_close(b_paper(x), x + 0.5 * F.relu(h))  # x + alpha * F(x), F ending in its ReLU
        torch.testing.assert_close(b_old(x), F.relu(x + 0.5 * h))
        assert (b_paper(-x.abs() - 1) < 0).any(), "no ReLU after the sum: negative outputs pass"
    assert isinstance(b_paper, Block) and b_paper.relu_inside and not b_old.relu_inside
    with pytest.raises(ConfigError, match="choose one"):
        _build("mlp", residual=True, rezero=True, rezero_relu=True)


def _clusters(seed: int, n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten Gaussian clusters in 64 dimensions: easy for a net that trains."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, 64, generator=torch.Generator().manual_seed(99)) * 1.0
    y = torch.randint(0, 10, (n,), generator=g)
    return (centres[y] + 0.8 * torch.randn(n, 64, generator=g)).view(n, 1, 8, 8), y


def _train(init: str, depth: int, steps: int = 150) -> float:
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, width=32, depth=depth, init=init)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = _clusters(0)
    for step in range(steps):
        idx = torch.arange(step * 64, step * 64 + 64) % len(x)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    xt, yt = _clusters(1)
    with torch.no_grad():
        return (model(xt).argmax(1) == yt).float().mean().item()


def test_a_he_init_plain_mlp_of_depth_16_learns_where_the_default_init_does_not() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend on a shared CPU
    try:
        he, default = _train("he", 16), _train("torch-default", 16)
    finally:
        torch.set_num_threads(threads)
    assert he > 0.8, he
    assert default < 0.3, default
