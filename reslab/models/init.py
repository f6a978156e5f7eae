"""Weight initialisation, a variable of every model (`model.init`), applied by one function.

PyTorch's default (Linear/Conv2d: kaiming_uniform with a=sqrt(5), i.e. weights U(-b, b) with b = 1/sqrt(fan_in),
std 1/sqrt(3 fan_in)) keeps about 1/6 of the input's variance through each ReLU layer: deep plain nets starve and
residual branches start tiny. So the init is named in every config, summary and table. Schemes:

- torch-default: PyTorch's own (weights and biases as nn.Linear/nn.Conv2d make them; nothing is redrawn).
- he: He et al. 2015, kaiming normal, fan_in, ReLU gain: std = sqrt(2 / fan_in); biases 0.
- he-fan-out: the same with fan_out, std = sqrt(2 / fan_out) (torchvision's ResNets, and cifar-resnet's default).
- lecun: LeCun normal, std = sqrt(1 / fan_in); biases 0.
- xavier: Glorot normal, std = sqrt(2 / (fan_in + fan_out)); biases 0.

A scheme redraws the hidden layers (every Linear and Conv2d but the classifier head): He's derivation is for
layers followed by a ReLU, and the head is not; it keeps PyTorch's default under every scheme (as in torchvision
and the earlier cifar-resnet). Norm layers keep weight 1, bias 0. Block forms apply their own rules on top
(blocks.init_blocks): Fixup starts from He init, ReZero adds its zero scalar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from ..checks import require

INITS = ("torch-default", "he", "he-fan-out", "lecun", "xavier")
DEFAULT = "torch-default"


def check_init(model: str, init: str) -> None:
    """A one-line ConfigError unless `init` is a known scheme."""
    require(init in INITS, f"model {model!r}: init must be one of {', '.join(INITS)}; got {init!r}")


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def init_std(scheme: str, weight: torch.Tensor) -> float:
    """The std a scheme draws `weight` with (nan for torch-default, which draws uniformly)."""
    fan_in, fan_out = _fans(weight)
    return {"he": math.sqrt(2 / fan_in), "he-fan-out": math.sqrt(2 / fan_out), "lecun": math.sqrt(1 / fan_in),
            "xavier": math.sqrt(2 / (fan_in + fan_out))}.get(scheme, math.nan)


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str, *, head: nn.Module | None = None) -> None:
    """Redraw every Linear/Conv2d weight but `head`'s with `scheme` (biases to 0), in module order.

    torch-default draws nothing, so a model built with it has exactly the weights PyTorch gave it."""
    if scheme == DEFAULT:
        return
    for module in model.modules():
        if module is head or not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        if scheme in ("he", "he-fan-out"):  # torch's own kaiming_normal_: the same draws as before
            nn.init.kaiming_normal_(module.weight, mode="fan_in" if scheme == "he" else "fan_out",
                                    nonlinearity="relu")
        else:
            module.weight.normal_(0.0, init_std(scheme, module.weight))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def init_label(args: Mapping[str, Any], default: str = DEFAULT) -> str:
    """What a model's weights start from, in words for tables: the scheme, then any block form on top.

    e.g. "torch-default", "he", "he+fixup", "torch-default+rezero"; `args` are the model's arguments (a run's
    config), `default` the model's own default where `init` is missing (a config from before `model.init`)."""
    scheme = str(args.get("init", default))
    forms = [f for f in ("fixup", "rezero", "rezero_relu", "zero_init") if args.get(f)]
    if "fixup" in forms and scheme == DEFAULT:
        scheme = "he"  # Fixup starts from He init
    return "+".join([scheme, *(f.replace("_", "-") for f in forms)])
