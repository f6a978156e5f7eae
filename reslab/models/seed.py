"""The lab notebook's three models, exactly (seed/000_26072b11497695dd.txt), quirks included.

Attribute names and construction order match the notebook, so a notebook state_dict loads and the
same seed gives the same weights. Only the hard-coded 3 input channels / 10 classes / 64 channels
became arguments; the notebook's values are what you get for CIFAR-10 with the defaults.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .init import check_init, init_weights
from .registry import register_model, require


_IDENTITY = nn.Identity()


class _NotebookHead:
    """The one model interface (`features`, `pool`, `head`) over the notebook's names `adaptive_pool` and `output`,
    which stay the registered submodules so a notebook state_dict (and every old checkpoint) still loads."""

    @property
    def pool(self) -> nn.Module:
        return self.adaptive_pool  # type: ignore[attr-defined]

    @property
    def head(self) -> nn.Module:
        return self.output  # type: ignore[attr-defined]


class SeedMLP(nn.Module):
    """Notebook `MLP`: fc1, `hidden_layers` Linear(width, width), head; ReLU after every hidden layer."""

    def __init__(self, input_size: int, hidden_size: int, hidden_layers: int, output_size: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.hidden_layers = nn.ModuleList([nn.Linear(hidden_size, hidden_size) for _ in range(hidden_layers)])
        self.head = nn.Linear(hidden_size, output_size)

    @property
    def pool(self) -> nn.Module:
        """No spatial map: an identity, so features -> pool -> head holds (not a submodule: the state_dict is
        the notebook's)."""
        return _IDENTITY

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, width)
        x = F.relu(self.fc1(x.flatten(1)))
        for layer in self.hidden_layers:
            x = F.relu(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SeedConvBlock(nn.Module):
    """Notebook `ConvBlock`. Its `reduce(lambda f, g: lambda x: g(relu(f(x))), layers, id)` expands to
    l_n(relu(... l_2(relu(l_1(relu(x)))))): a ReLU *before* every conv, none after the last one."""

    def __init__(self, num: int = 1, channels: int = 8, size: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Conv2d(channels, channels, kernel_size=size, padding=(size - 1) // 2) for _ in range(num)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(F.relu(x))
        return x


class SeedCNN(_NotebookHead, nn.Module):
    """Notebook `CNN`. Quirk kept: cblock2/cblock3 use kernel 2 with padding 0, shrinking each map by 1."""

    def __init__(self, in_channels: int, num_classes: int, num: int = 2, channels: int = 8, size: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=size, padding=(size - 1) // 2)
        self.cblock1 = SeedConvBlock(num=num, channels=channels, size=size)
        self.cblock2 = SeedConvBlock(num=num, channels=channels, size=2)
        self.cblock3 = SeedConvBlock(num=num, channels=channels, size=2)
        self.adaptive_pool = nn.AdaptiveAvgPool2d(1)
        self.output = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # the map the pooling reads
        x = F.relu(self.conv1(x))
        x = self.cblock1(x)
        x = F.max_pool2d(x, 3, 2)
        x = self.cblock2(x)
        x = F.max_pool2d(x, 3, 2)
        return self.cblock3(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.adaptive_pool(self.features(x)).flatten(1))


class SeedResidualBlock(nn.Module):
    """Notebook `ResidualBlock`: relu(conv2(relu(conv1(x))) + x), 3x3 convs with bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class SeedResNetCNN(_NotebookHead, nn.Module):
    """Notebook `ResNetCNN`: conv1, `depth` residual blocks at full resolution, max-pool, avg-pool, linear."""

    def __init__(self, in_channels: int, num_classes: int, depth: int = 2, channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
        self.residual_blocks = nn.ModuleList([SeedResidualBlock(channels) for _ in range(depth)])
        self.output = nn.Linear(channels, num_classes)
        self.adaptive_pool = nn.AdaptiveAvgPool2d(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # the map the pooling reads (after the max-pool)
        x = F.relu(self.conv1(x))
        for block in self.residual_blocks:
            x = block(x)
        return F.max_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.adaptive_pool(self.features(x)).flatten(1))


@register_model("seed-mlp")
def seed_mlp(input_shape: tuple[int, int, int], num_classes: int, *, width: int = 16, depth: int = 2,
             init: str = "torch-default") -> nn.Module:
    """Notebook exercise 1.1 MLP (width 16, 2 hidden layers); init: models/init.py (the notebook: torch-default)."""
    check_init("seed-mlp", init)
    require(width > 0, f"model 'seed-mlp': width must be > 0; got {width}")
    require(depth >= 0, f"model 'seed-mlp': depth must be >= 0; got {depth}")
    channels, height, width_px = input_shape
    model = SeedMLP(channels * height * width_px, width, depth, num_classes)
    init_weights(model, init, head=model.head)
    return model


def _seed_cnn_out_size(size: int, num: int, kernel: int) -> int:
    """Spatial size after conv1, the three conv blocks and two 3/2 max-pools (-1 when it collapses)."""

    def convs(s: int, k: int, n: int) -> int:
        return s + n * (2 * ((k - 1) // 2) - k + 1)

    size = convs(size, kernel, 1 + num)  # conv1 + cblock1
    for _ in range(2):  # max_pool2d(3, 2), then a kernel-2 block
        if size < 3:
            return -1
        size = convs((size - 3) // 2 + 1, 2, num)
    return size


@register_model("seed-cnn")
def seed_cnn(
    input_shape: tuple[int, int, int], num_classes: int, *, num: int = 3, channels: int = 16, size: int = 3,
    init: str = "torch-default",
) -> nn.Module:
    """Notebook exercise 1.2 plain CNN (3 convs per block, 16 channels, kernel 3); init: models/init.py."""
    check_init("seed-cnn", init)
    require(num >= 0, f"model 'seed-cnn': num must be >= 0; got {num}")
    require(channels > 0, f"model 'seed-cnn': channels must be > 0; got {channels}")
    require(size >= 1, f"model 'seed-cnn': size must be >= 1; got {size}")
    in_channels, height, width = input_shape
    out = min(_seed_cnn_out_size(height, num, size), _seed_cnn_out_size(width, num, size))
    require(out >= 1, f"model 'seed-cnn': a {height}x{width} input shrinks to nothing with num={num}, size={size}")
    model = SeedCNN(in_channels, num_classes, num=num, channels=channels, size=size)
    init_weights(model, init, head=model.output)
    return model


@register_model("seed-resnet")
def seed_resnet(
    input_shape: tuple[int, int, int], num_classes: int, *, depth: int = 3, channels: int = 64,
    init: str = "torch-default",
) -> nn.Module:
    """Notebook exercise 1.2 ResNetCNN (3 residual blocks, 64 channels); init: models/init.py."""
    check_init("seed-resnet", init)
    require(depth >= 0, f"model 'seed-resnet': depth must be >= 0; got {depth}")
    require(channels > 0, f"model 'seed-resnet': channels must be > 0; got {channels}")
    in_channels, height, width = input_shape
    require(min(height, width) >= 2, f"model 'seed-resnet': input must be at least 2x2; got {height}x{width}")
    model = SeedResNetCNN(in_channels, num_classes, depth=depth, channels=channels)
    init_weights(model, init, head=model.output)
    return model
