"""The one block that plain and residual twins share, so the skip is the only difference between them.

Shortcuts are parameter-free (identity, or He et al. 2015 option A), so twins have equal parameter
counts and identical state_dict keys. The block's form (layers per block, norm, pre/post-activation,
zero-init, a learnable branch scalar, Fixup's initialisation) is passed in, never hard-coded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import require
from ..errors import ConfigError
from .init import check_init

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
    `relu_inside` (ReZero as in Bachlechner et al. 2020, x + alpha * F(x) with no ReLU after the sum): the post-act
    block's last ReLU moves from after the sum into the branch, out = alpha * relu(body(x)) [+ shortcut(x)].
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        norms: Sequence[nn.Module],
        *,
        residual: bool,
        preact: bool,
        shortcut: nn.Module | None = None,
        alpha: float | None = None,
        relu_inside: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != len(norms) or not layers:
            raise ValueError("a block needs one norm (or Identity) per layer, and at least one layer")
        self.residual = residual
        self.preact = preact
        self.relu_inside = relu_inside and not preact  # a pre-act block has no ReLU after its sum anyway
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        # a learnable scalar on the branch (SkipInit/ReZero at 0, Fixup's multiplier at 1); None: no scalar
        self.alpha = nn.Parameter(torch.tensor(float(alpha))) if alpha is not None else None

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """What the block adds to its shortcut: alpha * body(x), before the sum (and post-act's last ReLU)."""
        h = x
        if self.preact:
            for norm, layer in zip(self.norms, self.layers):
                h = layer(F.relu(norm(h)))
        else:
            last = len(self.layers) - 1
            for i, (layer, norm) in enumerate(zip(self.layers, self.norms)):
                h = norm(layer(h))
                if i < last or self.relu_inside:
                    h = F.relu(h)
        return h if self.alpha is None else self.alpha * h

    def combine(self, branch: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The block's output from its branch and its shortcut's output (the skip is added only if residual)."""
        h = branch + skip if self.residual else branch
        return h if self.preact or self.relu_inside else F.relu(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.branch(x), self.shortcut(x) if self.residual else x)

    def without_branch(self, x: torch.Tensor) -> torch.Tensor:
        """The block with its branch deleted (Veit et al. 2016's lesion): the shortcut, then post-act's ReLU.

        A plain block has no sum, but its shortcut map is defined all the same, so it can be deleted too.
        """
        skip = self.shortcut(x)
        return skip if self.preact or self.relu_inside else F.relu(skip)

    @property
    def downsamples(self) -> bool:
        """Whether the shortcut changes the shape (stride or width): deleting such a block is not a no-op."""
        return not isinstance(self.shortcut, nn.Identity)

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
        _zero_(self.layers[-1])

    def extra_repr(self) -> str:
        return f"residual={self.residual}, preact={self.preact}" + (", relu_inside=True" if self.relu_inside else "")

    @torch.no_grad()
    def fixup_scale_(self, num_branches: int) -> None:
        """Fixup (Zhang et al. 2019): zero the branch's last layer, scale the others by L^(-1/(2m-2)).

        L = `num_branches`, m = layers in this branch; with m = 1 the one layer is zeroed and nothing is scaled.
        """
        m = len(self.layers)
        for layer in self.layers[:-1]:
            layer.weight.mul_(num_branches ** (-1.0 / (2 * m - 2)))
        _zero_(self.layers[-1])


def _zero_(layer: nn.Module) -> None:
    layer.weight.zero_()
    if getattr(layer, "bias", None) is not None:
        layer.bias.zero_()


def check_forms(model: str, *, residual: bool, norm: str, zero_init: bool, rezero: bool, fixup: bool,
                init: str = "torch-default", rezero_relu: bool = False) -> None:
    """Refuse block forms (and inits) that contradict each other, in one line."""
    check_init(model, init)
    require(not (rezero and rezero_relu), f"model {model!r}: rezero and rezero_relu are two forms of one block; "
                                          "choose one")
    rezero = rezero or rezero_relu
    require(not fixup or init in ("torch-default", "he", "he-fan-out"),
            f"model {model!r}: fixup starts from He init (Zhang et al. 2019); use init=he (got {init!r})")
    require(not (rezero and fixup), f"model {model!r}: rezero and fixup are two answers to one problem; choose one")
    require(not (rezero and zero_init), f"model {model!r}: rezero with zero_init zeroes both the branch scalar and "
                                        "the branch's last layer, so neither ever gets a gradient; choose one")
    require(not (fixup and zero_init),
            f"model {model!r}: fixup already zeroes each branch's last layer; drop zero_init")
    require(not fixup or norm == "none", f"model {model!r}: fixup replaces normalisation; use norm=none (got {norm!r})")
    require(not fixup or residual, f"model {model!r}: fixup zeroes each block's last layer, which leaves a plain net "
                                   "(residual=false) with no signal; use it on the residual twin only")


def form_init(init: str, *, fixup: bool) -> str:
    """The scheme the weights are drawn with: Fixup starts from He init (fan_in) where `init` is PyTorch's default."""
    return "he" if fixup and init == "torch-default" else init


def branch_alpha(*, residual: bool, rezero: bool, fixup: bool) -> float | None:
    """The branch scalar's initial value, None for none: ReZero/SkipInit 0, Fixup's multiplier 1.

    A plain twin of a rezero net gets the scalar too (equal parameter counts and state_dict keys), but at 1:
    without a skip, a branch scaled by 0 would pass nothing on.
    """
    if rezero:
        return 0.0 if residual else 1.0
    return 1.0 if fixup else None


def init_blocks(model: nn.Module, head: nn.Linear, *, zero_init: bool, fixup: bool) -> None:
    """`zero_init` (every block's last op) or Fixup (scaled branches, zeroed classifier); after any other init."""
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    for block in blocks:
        if zero_init:
            block.zero_init_()
        if fixup:
            block.fixup_scale_(len(blocks))
    if fixup:
        with torch.no_grad():
            _zero_(head)


def linear_block(width: int, *, layers_per_block: int, norm: str, residual: bool, preact: bool,
                 alpha: float | None = None, relu_inside: bool = False) -> Block:
    """A width->width block of Linear layers; no bias where a batch norm follows."""
    layers = [nn.Linear(width, width, bias=norm != "batch") for _ in range(layers_per_block)]
    norms = [make_norm(norm, width, spatial=False) for _ in range(layers_per_block)]
    return Block(layers, norms, residual=residual, preact=preact, alpha=alpha, relu_inside=relu_inside)


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
    alpha: float | None = None,
    relu_inside: bool = False,
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
    return Block(layers, norms, residual=residual, preact=preact, shortcut=shortcut, alpha=alpha,
                 relu_inside=relu_inside)
