"""MLP with plain/residual twins: stem, `depth` width->width blocks, head; the skip is the only difference."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .init import init_weights
from .blocks import NORMS_1D, branch_alpha, check_forms, form_init, init_blocks, linear_block, make_norm
from .registry import register_model, require, require_choice


class MLP(nn.Module):
    """stem Linear+ReLU -> blocks -> [pre-act: final norm+ReLU] -> head."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        width: int,
        depth: int,
        residual: bool,
        norm: str,
        layers_per_block: int,
        preact: bool,
        alpha: float | None = None,
        relu_inside: bool = False,
    ) -> None:
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(
            *(
                linear_block(width, layers_per_block=layers_per_block, norm=norm, residual=residual, preact=preact,
                             alpha=alpha, relu_inside=relu_inside)
                for _ in range(depth)
            )
        )
        # Pre-act blocks leave the stream un-normalised; like pre-act ResNets, normalise before the head.
        self.final_act = preact and norm != "none"
        self.final_norm = make_norm(norm, width, spatial=False) if self.final_act else nn.Identity()
        self.pool = nn.Identity()  # no spatial map: the one model interface (features -> pool -> head) still holds
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, width), what the head reads
        x = F.relu(self.stem(x.flatten(1)))
        x = self.blocks(x)
        if self.final_act:
            x = F.relu(self.final_norm(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.pool(self.features(x)).flatten(1))


@register_model("mlp")
def mlp(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    width: int = 64,
    depth: int = 4,
    residual: bool = False,
    norm: str = "none",
    layers_per_block: int = 1,
    preact: bool = False,
    zero_init: bool = False,
    rezero: bool = False,
    fixup: bool = False,
    init: str = "torch-default",
    rezero_relu: bool = False,
) -> nn.Module:
    """Fair plain/residual MLP; `depth` counts blocks, each of `layers_per_block` Linear layers.

    init: the weights' scheme (models/init.py: torch-default, he, he-fan-out, lecun, xavier).
    rezero: a learnable scalar on each branch, initialised at 0, and (post-act) no ReLU after the sum, as in
    ReZero; rezero_relu: the same scalar with the ReLU kept after the sum (SkipInit-like; reslab's earlier rezero).
    fixup: Fixup's initialisation (He init, scaled branches, zeroed last layers and classifier).
    """
    require(width > 0, f"model 'mlp': width must be > 0; got {width}")
    require(depth >= 0, f"model 'mlp': depth must be >= 0; got {depth}")
    require(layers_per_block >= 1, f"model 'mlp': layers_per_block must be >= 1; got {layers_per_block}")
    require_choice("mlp", "norm", norm, NORMS_1D)
    check_forms("mlp", residual=residual, norm=norm, zero_init=zero_init, rezero=rezero, fixup=fixup, init=init,
                rezero_relu=rezero_relu)
    channels, height, width_px = input_shape
    model = MLP(
        channels * height * width_px,
        num_classes,
        width=width,
        depth=depth,
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
