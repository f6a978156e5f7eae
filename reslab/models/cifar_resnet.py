"""He et al. 2015 CIFAR ResNet (depth 6n+2) and, with residual=False, the paper's "plain" twin.

Option-A shortcuts (subsample + zero-pad) have no parameters, so both twins have equal parameter counts.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .init import init_weights
from .blocks import NORMS_2D, branch_alpha, check_forms, form_init, conv_block, init_blocks, make_norm
from .registry import register_model, require, require_choice


class CifarResNet(nn.Module):
    """stem conv3x3+norm+ReLU -> 3 stages of n basic blocks (widths w, 2w, 4w; stride 2 into stages 2, 3)
    -> [pre-act: norm+ReLU] -> global avg pool -> head."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        blocks_per_stage: int,
        width: int,
        residual: bool,
        norm: str,
        preact: bool,
        alpha: float | None = None,
        relu_inside: bool = False,
    ) -> None:
        super().__init__()
        widths = (width, 2 * width, 4 * width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=norm != "batch"),
            make_norm(norm, width, spatial=True),
            nn.ReLU(),
        )
        stages = []
        in_width = width
        for stage, out_width in enumerate(widths):
            blocks = []
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(
                    conv_block(
                        in_width,
                        out_width,
                        layers_per_block=2,
                        kernel_size=3,
                        norm=norm,
                        residual=residual,
                        preact=preact,
                        stride=stride,
                        alpha=alpha,
                        relu_inside=relu_inside,
                    )
                )
                in_width = out_width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_act = preact and norm != "none"
        self.final_norm = make_norm(norm, widths[-1], spatial=True) if self.final_act else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(widths[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> the map the pooling reads
        x = self.stages(self.stem(x))
        if self.final_act:
            x = F.relu(self.final_norm(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.pool(self.features(x)).flatten(1))


@register_model("cifar-resnet")
def cifar_resnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    depth: int = 20,
    residual: bool = True,
    width: int = 16,
    norm: str = "batch",
    preact: bool = False,
    zero_init: bool = False,
    rezero: bool = False,
    fixup: bool = False,
    init: str = "he-fan-out",
    rezero_relu: bool = False,
) -> nn.Module:
    """CIFAR ResNet-`depth` (20, 32, 44, 56, 110, ...): `depth` counts conv and linear layers.

    init: the weights' scheme (models/init.py: torch-default, he, he-fan-out, lecun, xavier).
    rezero: a learnable scalar on each branch, initialised at 0, and (post-act) no ReLU after the sum, as in
    ReZero; rezero_relu: the same scalar with the ReLU kept after the sum (SkipInit-like; reslab's earlier rezero).
    fixup: Fixup's initialisation (He init, scaled branches, zeroed last layers and classifier).
    """
    require(
        depth >= 8 and (depth - 2) % 6 == 0,
        f"model 'cifar-resnet': depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110); got {depth}",
    )
    require(width > 0, f"model 'cifar-resnet': width must be > 0; got {width}")
    require_choice("cifar-resnet", "norm", norm, NORMS_2D)
    check_forms("cifar-resnet", residual=residual, norm=norm, zero_init=zero_init, rezero=rezero, fixup=fixup, init=init,
                rezero_relu=rezero_relu)
    model = CifarResNet(
        input_shape[0],
        num_classes,
        blocks_per_stage=(depth - 2) // 6,
        width=width,
        residual=residual,
        norm=norm,
        preact=preact,
        alpha=branch_alpha(residual=residual, rezero=rezero or rezero_relu, fixup=fixup),
        relu_inside=rezero,
    )
    init_weights(model, form_init(init, fixup=fixup), head=model.head)  # he-fan-out: He et al., torchvision
    init_blocks(model, model.head, zero_init=zero_init, fixup=fixup)
    return model
