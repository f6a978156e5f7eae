"""Model tests: shapes, finite outputs, a gradient for every parameter, fair twins (equal parameter counts
by an independent formula), the skip's wiring, errors, and the seed models against the notebook's own code."""

from __future__ import annotations

from functools import reduce

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reslab.errors import ConfigError
from reslab.models import build_model, count_params, model_args, model_names, register_model
from reslab.models.blocks import Block


# ---- Reference: the lab notebook's classes (seed/000_26072b11497695dd.txt), copied verbatim ----------


class MLP(nn.Module):
    def __init__(self, input_size, hidden_size, hidden_layers, output_size):
        super(MLP, self).__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.hidden_layers = nn.ModuleList([nn.Linear(hidden_size, hidden_size) for _ in range(hidden_layers)])
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        for layer in self.hidden_layers:
            x = F.relu(layer(x))
        x = self.head(x)
        return x


class ConvBlock(nn.Module):
    def __init__(self, num=1, channels=8, size=3):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Conv2d(channels, channels, kernel_size=size, padding=(size-1)//2) 
            for _ in range(num)
        ])
        
    def forward(self, x):
        return reduce(lambda f, g: lambda x: g(F.relu(f(x))), self.layers, lambda x: x)(x)


class CNN(nn.Module):
    def __init__(self, num=2, channels=8, size=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, kernel_size=size, padding=(size-1)//2)
        self.cblock1 = ConvBlock(num=num, channels=channels, size=size)
        self.cblock2 = ConvBlock(num=num, channels=channels, size=2)
        self.cblock3 = ConvBlock(num=num, channels=channels, size=2)
        
        self.adaptive_pool = nn.AdaptiveAvgPool2d(1)
        self.output = nn.Linear(channels, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.cblock1(x)
        x = F.max_pool2d(x, 3, 2)
        x = self.cblock2(x)
        x = F.max_pool2d(x, 3, 2)
        x = self.cblock3(x)
        x = self.adaptive_pool(x)
        x = x.flatten(1)
        x = self.output(x)
        return x


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x):
        identity = x
        x = F.relu(self.conv1(x))
        x = self.conv2(x)
        return F.relu(x + identity)


class ResNetCNN(nn.Module):
    def __init__(self, depth=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, padding=1)
        self.residual_blocks = nn.ModuleList([
            ResidualBlock(64) for _ in range(depth)
        ])
        self.output = nn.Linear(64, 10)
        self.adaptive_pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        for block in self.residual_blocks:
            x = block(x)
        x = F.max_pool2d(x, 2)
        x = self.adaptive_pool(x)
        x = x.flatten(1)
        return self.output(x)


# ---- Every model, several configs: shape, finite, gradients -------------------------------------------

CONFIGS: list[tuple[str, dict]] = [
    ("seed-mlp", {}),
    ("seed-mlp", {"width": 8, "depth": 0}),
    ("seed-cnn", {}),
    ("seed-cnn", {"num": 1, "channels": 8, "size": 5}),
    ("seed-resnet", {"depth": 2, "channels": 8}),
    ("mlp", {"width": 16, "depth": 3}),
    ("mlp", {"width": 16, "depth": 3, "residual": True}),
    ("mlp", {"width": 16, "residual": True, "norm": "batch", "layers_per_block": 2}),
    ("mlp", {"width": 16, "residual": True, "norm": "layer", "preact": True}),
    ("mlp", {"width": 16, "residual": False, "norm": "batch", "preact": True, "layers_per_block": 2}),
    ("mlp", {"width": 16, "residual": True, "norm": "none", "preact": True, "zero_init": True}),
    ("mlp", {"width": 16, "residual": True, "norm": "layer", "zero_init": True}),
    ("mlp", {"width": 16, "residual": True, "rezero": True}),
    ("mlp", {"width": 16, "residual": False, "rezero": True, "norm": "batch"}),
    ("mlp", {"width": 16, "residual": True, "fixup": True, "layers_per_block": 2}),
    ("convnet", {"channels": 8, "blocks": 1}),
    ("convnet", {"channels": 8, "residual": True}),
    ("convnet", {"channels": 8, "residual": True, "norm": "none", "layers_per_block": 1}),
    ("convnet", {"channels": 8, "residual": True, "preact": True, "zero_init": True}),
    ("convnet", {"channels": 8, "preact": True, "norm": "none", "kernel_size": 5, "stages": 2}),
    ("convnet", {"channels": 8, "residual": True, "zero_init": True}),
    ("convnet", {"channels": 8, "residual": True, "norm": "none", "rezero": True, "preact": True}),
    ("convnet", {"channels": 8, "residual": True, "norm": "none", "fixup": True}),
    ("cifar-resnet", {"depth": 8, "width": 4}),
    ("cifar-resnet", {"depth": 8, "width": 4, "residual": False}),
    ("cifar-resnet", {"depth": 8, "width": 4, "preact": True}),
    ("cifar-resnet", {"depth": 8, "width": 4, "zero_init": True}),
    ("cifar-resnet", {"depth": 14, "width": 4, "norm": "none", "preact": True, "zero_init": True}),
    ("cifar-resnet", {"depth": 8, "width": 4, "rezero": True}),
    ("cifar-resnet", {"depth": 8, "width": 4, "norm": "none", "fixup": True}),
    ("cifar-resnet", {}),
    ("torchvision-resnet18", {}),
]
SHAPES = [(1, 28, 28), (3, 32, 32)]


def test_every_registered_model_is_covered() -> None:
    assert set(model_names()) == {name for name, _ in CONFIGS}


@pytest.mark.parametrize("input_shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name,kw", CONFIGS, ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_forward_backward(name: str, kw: dict, input_shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_shape=input_shape, num_classes=7, **kw)
    x = torch.randn(4, *input_shape)  # batch >= 2 so batch norm works in train mode
    y = torch.tensor([0, 3, 6, 2])
    logits = model(x)
    assert logits.shape == (4, 7)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, y).backward()
    for param_name, p in model.named_parameters():
        assert p.grad is not None, param_name
        assert torch.isfinite(p.grad).all(), param_name
        if not any(kw.get(k) for k in ("zero_init", "fixup", "rezero")):  # zeroed branches: zero grads at step 0
            assert p.grad.abs().sum() > 0, param_name


# ---- Twins: the skip is the only difference ------------------------------------------------------------

TWIN_CONFIGS = [
    ("mlp", {"depth": 0}),
    ("mlp", {"depth": 5, "norm": "batch", "layers_per_block": 2}),
    ("mlp", {"depth": 3, "norm": "layer", "preact": True}),
    ("convnet", {"blocks": 1, "channels": 8}),
    ("convnet", {"blocks": 3, "channels": 8, "norm": "none", "preact": True}),
    ("cifar-resnet", {"depth": 8}),
    ("cifar-resnet", {"depth": 20}),
    ("cifar-resnet", {"depth": 56, "preact": True}),
    ("cifar-resnet", {"depth": 8, "rezero": True}),
]


@pytest.mark.parametrize("name,kw", TWIN_CONFIGS)
def test_twins_have_equal_parameters(name: str, kw: dict) -> None:
    residual = build_model(name, input_shape=(3, 32, 32), num_classes=10, residual=True, **kw)
    plain = build_model(name, input_shape=(3, 32, 32), num_classes=10, residual=False, **kw)
    assert count_params(residual) == count_params(plain) > 0
    shapes = lambda m: {k: v.shape for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(residual) == shapes(plain)


def _cifar_resnet_params(n: int, width: int, in_channels: int, num_classes: int) -> int:
    """Hand count: bias-free 3x3 convs, each followed by a BN (2 params per channel), then the fc."""
    conv_bn = lambda cin, cout: 9 * cin * cout + 2 * cout  # noqa: E731
    total = conv_bn(in_channels, width)
    prev = width
    for out in (width, 2 * width, 4 * width):
        for _ in range(n):
            total += conv_bn(prev, out) + conv_bn(out, out)
            prev = out
    return total + 4 * width * num_classes + num_classes


def test_param_counts_by_hand() -> None:
    resnet20 = build_model("cifar-resnet", input_shape=(3, 32, 32), num_classes=10)
    assert count_params(resnet20) == _cifar_resnet_params(3, 16, 3, 10) == 269_722  # "0.27M" in He et al.
    resnet56 = build_model("cifar-resnet", input_shape=(3, 32, 32), num_classes=10, depth=56, residual=False)
    assert count_params(resnet56) == _cifar_resnet_params(9, 16, 3, 10)  # ~0.85M

    w, d, lpb = 16, 3, 2  # mlp with batch norm: blocks' Linear layers have no bias, BN has 2 per feature
    mlp = build_model("mlp", input_shape=(1, 28, 28), num_classes=10, width=w, depth=d, layers_per_block=lpb, norm="batch")
    assert count_params(mlp) == (784 * w + w) + d * lpb * (w * w + 2 * w) + (w * 10 + 10)
    mlp = build_model("mlp", input_shape=(1, 28, 28), num_classes=10, width=w, depth=d)
    assert count_params(mlp) == (784 * w + w) + d * (w * w + w) + (w * 10 + 10)

    c, k, blocks, stages = 8, 3, 2, 3
    net = build_model("convnet", input_shape=(3, 32, 32), num_classes=10, channels=c, blocks=blocks, stages=stages)
    assert count_params(net) == (3 * c * k * k + 2 * c) + stages * blocks * 2 * (c * c * k * k + 2 * c) + (c * 10 + 10)


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_cifar_resnet_depth_counts_weight_layers(depth: int) -> None:
    model = build_model("cifar-resnet", input_shape=(3, 32, 32), num_classes=10, depth=depth)
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == depth
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs][-1] == 64 and sum(m.stride == (2, 2) for m in convs) == 2


def test_cifar_resnet_bad_depth() -> None:
    with pytest.raises(ConfigError, match="6n\\+2"):
        build_model("cifar-resnet", input_shape=(3, 32, 32), num_classes=10, depth=21)


# ---- The skip is wired: zero-init residual blocks are identities (post-act: relu) ----------------------


def _first_blocks(model: nn.Module) -> list[Block]:
    return [m for m in model.modules() if isinstance(m, Block)]


@pytest.mark.parametrize("preact", [False, True])
@pytest.mark.parametrize(
    "name,kw,block_input",
    [
        ("mlp", {"width": 8, "norm": "none"}, (5, 8)),
        ("mlp", {"width": 8, "norm": "batch", "layers_per_block": 2}, (5, 8)),
        ("mlp", {"width": 8, "norm": "layer"}, (5, 8)),
        ("convnet", {"channels": 4, "norm": "batch"}, (2, 4, 6, 6)),
        ("convnet", {"channels": 4, "norm": "none", "layers_per_block": 1}, (2, 4, 6, 6)),
        ("cifar-resnet", {"depth": 8, "width": 4}, (2, 4, 6, 6)),
    ],
)
def test_zero_init_residual_block_is_identity(name: str, kw: dict, block_input: tuple, preact: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(block_input)
    act = (lambda t: t) if preact else F.relu
    residual = build_model(name, input_shape=(1, 8, 8), num_classes=3, residual=True, preact=preact, zero_init=True, **kw)
    plain = build_model(name, input_shape=(1, 8, 8), num_classes=3, residual=False, preact=preact, zero_init=True, **kw)
    untouched = build_model(name, input_shape=(1, 8, 8), num_classes=3, residual=True, preact=preact, **kw)
    block = _first_blocks(residual)[0].eval()
    torch.testing.assert_close(block(x), act(x), rtol=0, atol=0)
    assert torch.equal(_first_blocks(plain)[0].eval()(x), torch.zeros_like(x))  # no skip, nothing through
    assert not torch.allclose(_first_blocks(untouched)[0].eval()(x), act(x))  # the check can fail


def test_zero_init_downsampling_block_is_option_a_shortcut() -> None:
    model = build_model("cifar-resnet", input_shape=(3, 32, 32), num_classes=10, depth=8, width=4, zero_init=True)
    block = model.stages[1][0].eval()  # 4 -> 8 channels, stride 2
    x = torch.randn(2, 4, 6, 6)
    expected = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 4, 3, 3)], dim=1)  # subsample, zero-pad channels
    assert torch.equal(block(x), F.relu(expected))


def test_preact_residual_minus_plain_is_the_input() -> None:
    """Same weights in both twins: for pre-act blocks, residual(x) - plain(x) == shortcut(x) == x."""
    kw = {"input_shape": (3, 16, 16), "num_classes": 10, "channels": 4, "preact": True}
    residual, plain = build_model("convnet", residual=True, **kw), build_model("convnet", residual=False, **kw)
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(2, 4, 8, 8)
    for res_block, plain_block in zip(_first_blocks(residual.eval()), _first_blocks(plain.eval())):
        torch.testing.assert_close(res_block(x) - plain_block(x), x)


# ---- Seed models equal the notebook's code ---------------------------------------------------------


def _same_as_reference(ours: nn.Module, ref: nn.Module, x: torch.Tensor) -> None:
    assert list(ours.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():  # same seed, same construction order -> same weights
        assert torch.equal(ours.state_dict()[key], value), key
    torch.manual_seed(123)
    for p in ref.parameters():  # fresh weights, loaded across: a notebook checkpoint loads
        p.data.normal_(0, 0.2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert torch.equal(ours(x), ref(x))


def test_seed_mlp_matches_notebook() -> None:
    torch.manual_seed(0)
    ref = MLP(28 * 28, 16, 2, 10)
    torch.manual_seed(0)
    ours = build_model("seed-mlp", input_shape=(1, 28, 28), num_classes=10)
    _same_as_reference(ours, ref, torch.randn(3, 1, 28, 28))


@pytest.mark.parametrize("num,channels,size", [(3, 16, 3), (2, 8, 5)])
def test_seed_cnn_matches_notebook(num: int, channels: int, size: int) -> None:
    torch.manual_seed(0)
    ref = CNN(num=num, channels=channels, size=size)
    torch.manual_seed(0)
    ours = build_model("seed-cnn", input_shape=(3, 32, 32), num_classes=10, num=num, channels=channels, size=size)
    _same_as_reference(ours, ref, torch.randn(3, 3, 32, 32))
    quirk = ours.cblock2.layers[0]
    assert quirk.kernel_size == (2, 2) and quirk.padding == (0, 0)


def test_seed_convblock_relu_placement() -> None:
    """The notebook's reduce is l3(relu(l2(relu(l1(relu(x)))))): ReLU before each conv, none after the last."""
    torch.manual_seed(0)
    ref = ConvBlock(num=3, channels=4, size=3)
    ours = build_model("seed-cnn", input_shape=(4, 32, 32), num_classes=10, num=3, channels=4).cblock1
    ours.load_state_dict(ref.state_dict())
    l1, l2, l3 = ref.layers
    x = torch.randn(2, 4, 8, 8)  # has negatives, so the leading ReLU matters
    written_out = l3(F.relu(l2(F.relu(l1(F.relu(x))))))
    assert torch.equal(ref(x), written_out) and torch.equal(ours(x), written_out)
    assert not torch.allclose(written_out, l3(F.relu(l2(F.relu(l1(x))))))
    assert (written_out < 0).any()  # no ReLU after the last conv


def test_seed_resnet_matches_notebook() -> None:
    torch.manual_seed(0)
    ref = ResNetCNN(depth=3)
    torch.manual_seed(0)
    ours = build_model("seed-resnet", input_shape=(3, 32, 32), num_classes=10)
    _same_as_reference(ours, ref, torch.randn(2, 3, 32, 32))


# ---- Speed switches: channels_last and bf16 autocast ----------------------------------------------


@pytest.mark.parametrize("name,kw", [("convnet", {"channels": 8, "residual": True}), ("cifar-resnet", {"depth": 8, "width": 4})])
def test_channels_last_and_bf16(name: str, kw: dict) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_shape=(3, 32, 32), num_classes=10, **kw).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        cl_model = model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(cl_model(x.to(memory_format=torch.channels_last)), expected, rtol=1e-4, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert torch.isfinite(low).all()


# ---- Errors and the registry -------------------------------------------------------------------------


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="cifar-resnet.*convnet.*mlp"):
        build_model("resnet-9000", input_shape=(3, 32, 32), num_classes=10)
    with pytest.raises(ConfigError):
        model_args("resnet-9000")


def test_unknown_kwarg_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="widht.*valid: width, depth, residual, norm"):
        build_model("mlp", input_shape=(3, 32, 32), num_classes=10, widht=8)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("mlp", {"depth": -1}),
        ("mlp", {"width": 0}),
        ("mlp", {"norm": "group"}),
        ("mlp", {"layers_per_block": 0}),
        ("mlp", {"depth": "8"}),
        ("mlp", {"depth": True}),
        ("mlp", {"residual": 1}),
        ("convnet", {"norm": "layer"}),
        ("convnet", {"kernel_size": 4}),
        ("convnet", {"channels": -2}),
        ("convnet", {"stages": 0}),
        ("convnet", {"stages": 6}),  # 32 >> 5 == 1, 28 >> 5 == 0: checked on the 28x28 shape below
        ("cifar-resnet", {"depth": 2}),
        ("cifar-resnet", {"width": 0}),
        ("cifar-resnet", {"norm": "layer"}),
        ("seed-mlp", {"depth": -1}),
        ("seed-cnn", {"num": 6}),  # the kernel-2 blocks shrink a 28x28 input to nothing
        ("seed-cnn", {"channels": 0}),
        ("seed-resnet", {"channels": 0}),
    ],
)
def test_bad_values_are_config_errors(name: str, kw: dict) -> None:
    with pytest.raises(ConfigError) as info:
        build_model(name, input_shape=(1, 28, 28), num_classes=10, **kw)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("input_shape,num_classes", [((3, 32), 10), ((3, 0, 32), 10), ((3, 32, 32), 0)])
def test_bad_shapes_are_config_errors(input_shape: tuple, num_classes: int) -> None:
    with pytest.raises(ConfigError):
        build_model("mlp", input_shape=input_shape, num_classes=num_classes)


def test_model_args_are_typed_defaults() -> None:
    assert model_args("mlp") == {
        "width": (int, 64),
        "depth": (int, 4),
        "residual": (bool, False),
        "norm": (str, "none"),
        "layers_per_block": (int, 1),
        "preact": (bool, False),
        "zero_init": (bool, False),
        "rezero": (bool, False),
        "fixup": (bool, False),
        "init": (str, "torch-default"),
        "rezero_relu": (bool, False),
    }
    assert model_args("cifar-resnet") == {
        "depth": (int, 20),
        "residual": (bool, True),
        "width": (int, 16),
        "norm": (str, "batch"),
        "preact": (bool, False),
        "zero_init": (bool, False),
        "rezero": (bool, False),
        "fixup": (bool, False),
        "init": (str, "he-fan-out"),
        "rezero_relu": (bool, False),
    }
    assert model_args("convnet")["kernel_size"] == (int, 3)
    assert model_args("seed-mlp") == {"width": (int, 16), "depth": (int, 2), "init": (str, "torch-default")}
    assert model_args("seed-cnn") == {"num": (int, 3), "channels": (int, 16), "size": (int, 3),
                                      "init": (str, "torch-default")}
    assert model_args("seed-resnet") == {"depth": (int, 3), "channels": (int, 64), "init": (str, "torch-default")}
    for name in model_names():  # the saved defaults rebuild the same model
        defaults = {key: default for key, (_, default) in model_args(name).items()}
        build_model(name, input_shape=(3, 32, 32), num_classes=10, **defaults)


def test_register_model_rejects_bugs() -> None:
    with pytest.raises(ValueError):
        register_model("mlp")(lambda input_shape, num_classes: nn.Identity())

    def untyped(input_shape, num_classes, *, depth=3):  # no annotation: model_args could not type it
        return nn.Identity()

    with pytest.raises(TypeError):
        register_model("untyped-test-model")(untyped)
    assert "untyped-test-model" not in model_names()
