"""The one block that plain and residual twins share, so the skip is the only difference between them.

Shortcuts are parameter-free (identity, or He et al. 2015 option A), so twins have equal parameter
counts and identical state_dict keys. The block's form (layers per block, norm, pre/post-activation,
zero-init) is passed in, never hard-coded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError

NORMS_1D = ("none", "batch", "layer")  # for (B, F) features
NORMS_2D = ("none", "batch")  # for (B, C, H, W) feature maps


def make_norm(norm: str, num_features: int, *, spatial: bool) -> nn.Module:
    """A normalisation layer by name; "none" is an Identity so every block has the same structure."""
    if norm == "none":
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm2d(num_features) if spatial else nn.BatchNorm1d(num_features)
    if norm == "layer" and not spatial:
        return nn.LayerNorm(num_features)
    raise ConfigError(f"norm must be one of {', '.join(NORMS_2D if spatial else NORMS_1D)}; got {norm!r}")


class PadShortcut(nn.Module):
    """He et al. 2015 option A: subsample by `stride`, zero-pad the extra channels. No parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class Block(nn.Module):
    """`len(layers)` layers, each with a norm; `residual` adds the shortcut, nothing else changes.

    post-act (He 2015): body = layer-norm-relu-...-layer-norm; out = relu(body(x) [+ shortcut(x)])
    pre-act  (He 2016): body = norm-relu-layer-...-norm-relu-layer; out = body(x) [+ shortcut(x)]
    In pre-act, norms[i] normalises the input of layers[i]; in post-act, its output.
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        norms: Sequence[nn.Module],
        *,
        residual: bool,
        preact: bool,
        shortcut: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != len(norms) or not layers:
            raise ValueError("a block needs one norm (or Identity) per layer, and at least one layer")
        self.residual = residual
        self.preact = preact
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.preact:
            for norm, layer in zip(self.norms, self.layers):
                h = layer(F.relu(norm(h)))
            return h + self.shortcut(x) if self.residual else h
        last = len(self.layers) - 1
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms)):
            h = norm(layer(h))
            if i < last:
                h = F.relu(h)
        if self.residual:
            h = h + self.shortcut(x)
        return F.relu(h)

    @torch.no_grad()
    def zero_init_(self) -> None:
        """Zero the body's last op so body(x) == 0 and a residual block starts as the identity.

        post-act: the last norm's weight (its bias is already 0), or the last layer when there is no norm.
        pre-act: the last layer (it is the body's last op; zeroing the norm before it would leave its bias).
        """
        last_norm = self.norms[-1]
        if not self.preact and getattr(last_norm, "weight", None) is not None:
            last_norm.weight.zero_()
            return
        last_layer = self.layers[-1]
        last_layer.weight.zero_()
        if getattr(last_layer, "bias", None) is not None:
            last_layer.bias.zero_()

    def extra_repr(self) -> str:
        return f"residual={self.residual}, preact={self.preact}"


def zero_init_blocks(model: nn.Module) -> None:
    """Apply `Block.zero_init_` to every block; call after any other weight init."""
    for module in model.modules():
        if isinstance(module, Block):
            module.zero_init_()


def linear_block(width: int, *, layers_per_block: int, norm: str, residual: bool, preact: bool) -> Block:
    """A width->width block of Linear layers; no bias where a batch norm follows."""
    layers = [nn.Linear(width, width, bias=norm != "batch") for _ in range(layers_per_block)]
    norms = [make_norm(norm, width, spatial=False) for _ in range(layers_per_block)]
    return Block(layers, norms, residual=residual, preact=preact)


def conv_block(
    in_channels: int,
    out_channels: int,
    *,
    layers_per_block: int,
    kernel_size: int,
    norm: str,
    residual: bool,
    preact: bool,
    stride: int = 1,
) -> Block:
    """A block of 'same'-padded convs (odd kernel); the first may change width and stride.

    When it does, the shortcut is option A (subsample + zero-pad), which has no parameters.
    """
    channels = [in_channels] + [out_channels] * layers_per_block
    layers = [
        nn.Conv2d(
            channels[i],
            channels[i + 1],
            kernel_size,
            stride=stride if i == 0 else 1,
            padding=kernel_size // 2,
            bias=norm != "batch",
        )
        for i in range(layers_per_block)
    ]
    norms = [make_norm(norm, channels[i] if preact else channels[i + 1], spatial=True) for i in range(layers_per_block)]
    shortcut = PadShortcut(in_channels, out_channels, stride) if stride != 1 or in_channels != out_channels else None
    return Block(layers, norms, residual=residual, preact=preact, shortcut=shortcut)
