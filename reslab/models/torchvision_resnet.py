"""torchvision's ResNet-18 as a reslab model (`torchvision-resnet18`), optionally from a local pretrained weights file:
the handout's Imagenette option (fine-tune an ImageNet ResNet-18).

The module keeps torchvision's state_dict names (conv1, bn1, layer1..layer4, fc), so torchvision's own weights file
(resnet18-f37072fd.pth, downloaded once by the user: reslab never downloads weights) loads as it is; `pool` and
`head` name its avgpool and fc (the one model interface). With `weights`, every layer but the head comes from the
file; the head is new (seeded by train.seed) unless the file's fc has this run's class count. Images are
normalised with the dataset's own mean and std (not ImageNet's); at 32x32 the ImageNet stem leaves a 1x1 map.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..errors import CheckpointError, first_line
from .registry import register_model, require


class TorchvisionResNet18(nn.Module):
    """conv1, bn1, relu, maxpool, layer1..layer4 -> avgpool -> fc, as torchvision.models.resnet18 (and its names)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(num_classes=num_classes)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"):
            setattr(self, name, getattr(net, name))

    @property
    def pool(self) -> nn.Module:
        return self.avgpool

    @property
    def head(self) -> nn.Module:
        return self.fc

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> the map the pooling reads
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def load_pretrained(model: TorchvisionResNet18, path: str) -> None:
    """The file's weights into every layer (and the head where its shape matches); a bad file is one line."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"model.weights {path} does not exist (a torchvision resnet18 weights file, .pth)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or pickled objects
        raise CheckpointError(f"model.weights {path} is not a readable weights file: {first_line(exc)}") from None
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise CheckpointError(f"model.weights {path} holds no state_dict")
    own = model.state_dict()
    if tuple(getattr(state.get("fc.weight"), "shape", ())) != tuple(own["fc.weight"].shape):
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # a new head for a new class count
    for key, tensor in own.items():
        if key.startswith("fc.") and key not in state:
            continue
        if key not in state or tuple(state[key].shape) != tuple(tensor.shape):
            found = tuple(state[key].shape) if key in state else "missing"
            raise CheckpointError(f"model.weights {path} does not match torchvision-resnet18: {key} is {found}, "
                                  f"expected {tuple(tensor.shape)}")
    model.load_state_dict(state, strict=False)


@register_model("torchvision-resnet18")
def torchvision_resnet18(input_shape: tuple[int, int, int], num_classes: int, *, weights: str | None = None
                         ) -> nn.Module:
    """torchvision's ResNet-18; weights: a local pretrained weights file (torchvision's resnet18 .pth)."""
    require(weights is None or input_shape[0] == 3,
            f"model 'torchvision-resnet18': pretrained weights take 3-channel images; this data has {input_shape[0]}")
    model = TorchvisionResNet18(input_shape[0], num_classes)
    if weights is not None and not next(model.parameters()).is_meta:  # sizing on the meta device reads nothing
        load_pretrained(model, weights)
    return model
