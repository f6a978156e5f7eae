"""The fair version of the notebook's CNNs: constant-width stages of shared blocks, parameter-free pooling
between stages, so the plain and residual twins differ only by the identity skip."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .init import init_weights
from .blocks import NORMS_2D, branch_alpha, check_forms, form_init, conv_block, init_blocks, make_norm
from .registry import register_model, require, require_choice


class ConvNet(nn.Module):
    """stem conv+norm+ReLU -> stages of blocks with max_pool2d(2) between -> [pre-act: norm+ReLU] -> pool -> head."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        channels: int,
        blocks: int,
        stages: int,
        kernel_size: int,
        residual: bool,
        norm: str,
        layers_per_block: int,
        preact: bool,
        alpha: float | None = None,
        relu_inside: bool = False,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2, bias=norm != "batch"),
            make_norm(norm, channels, spatial=True),
            nn.ReLU(),
        )
        self.stages = nn.ModuleList(
            nn.Sequential(
                *(
                    conv_block(
                        channels,
                        channels,
                        layers_per_block=layers_per_block,
                        kernel_size=kernel_size,
                        norm=norm,
                        residual=residual,
                        preact=preact,
                        alpha=alpha,
                        relu_inside=relu_inside,
                    )
                    for _ in range(blocks)
                )
            )
            for _ in range(stages)
        )
        self.final_act = preact and norm != "none"
        self.final_norm = make_norm(norm, channels, spatial=True) if self.final_act else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> the map the pooling reads
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = stage(x)
        if self.final_act:
            x = F.relu(self.final_norm(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.pool(self.features(x)).flatten(1))


@register_model("convnet")
def convnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    channels: int = 32,
    blocks: int = 2,
    stages: int = 3,
    kernel_size: int = 3,
    residual: bool = False,
    norm: str = "batch",
    layers_per_block: int = 2,
    preact: bool = False,
    zero_init: bool = False,
    rezero: bool = False,
    fixup: bool = False,
    init: str = "torch-default",
    rezero_relu: bool = False,
) -> nn.Module:
    """Fair plain/residual CNN; `blocks` per stage, `stages` stages at constant `channels`.

    init: the weights' scheme (models/init.py: torch-default, he, he-fan-out, lecun, xavier).
    rezero: a learnable scalar on each branch, initialised at 0, and (post-act) no ReLU after the sum, as in
    ReZero; rezero_relu: the same scalar with the ReLU kept after the sum (SkipInit-like; reslab's earlier rezero).
    fixup: Fixup's initialisation (He init, scaled branches, zeroed last layers and classifier).
    """
    require(channels > 0, f"model 'convnet': channels must be > 0; got {channels}")
    require(blocks >= 0, f"model 'convnet': blocks must be >= 0; got {blocks}")
    require(stages >= 1, f"model 'convnet': stages must be >= 1; got {stages}")
    require(
        kernel_size >= 1 and kernel_size % 2 == 1,
        f"model 'convnet': kernel_size must be odd and >= 1 (so the identity skip keeps its shape); got {kernel_size}",
    )
    require(layers_per_block >= 1, f"model 'convnet': layers_per_block must be >= 1; got {layers_per_block}")
    require_choice("convnet", "norm", norm, NORMS_2D)
    check_forms("convnet", residual=residual, norm=norm, zero_init=zero_init, rezero=rezero, fixup=fixup, init=init,
                rezero_relu=rezero_relu)
    in_channels, height, width = input_shape
    require(
        min(height, width) >> (stages - 1) >= 1,
        f"model 'convnet': a {height}x{width} input is too small for {stages} stages ({stages - 1} 2x2 max-pools)",
    )
    model = ConvNet(
        in_channels,
        num_classes,
        channels=channels,
        blocks=blocks,
        stages=stages,
        kernel_size=kernel_size,
        residual=residual,
        norm=norm,
        layers_per_block=layers_per_block,
        preact=preact,
        alpha=branch_alpha(residual=residual, rezero=rezero or rezero_relu, fixup=fixup),
        relu_inside=rezero,
    )
    init_weights(model, form_init(init, fixup=fixup), head=model.head)
    init_blocks(model, model.head, zero_init=zero_init, fixup=fixup)
    return model
