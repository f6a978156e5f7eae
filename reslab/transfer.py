"""Transfer: start a run from another run's weights (`train.init_from`); freeze what should not move (`train.freeze`).

What a user expects, and so what this does:
- the head is always new (freshly initialised by the model's builder, seeded by train.seed) unless
  `train.keep_head: true`, even when the class counts match: a new task's classes are not the old ones, even when
  there are as many; keep_head is for continuing on the same classes.
- stages: stage 0 is the stem, then each model family's own units: an MLP's blocks (mlp) or hidden layers
  (seed-mlp), a convnet's or cifar-resnet's stages, the notebook CNNs' conv blocks or residual blocks, a
  torchvision ResNet's layer1..layer4. `train.freeze: K` fixes stages 0..K; `all-but-head` fixes everything but
  the head. Frozen parts run in eval mode (their batch-norm statistics stay those of the source run; dropout off),
  so a frozen backbone is a fixed function and all-but-head is a linear probe trained by SGD. Anything after the
  last stage (a pre-activation model's final norm) moves unless all-but-head.
- the source's weights are read once, when the run starts; a resumed run continues from its own checkpoint.
"""

from __future__ import annotations

import hashlib
import pickle
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from reslab.errors import CheckpointError, ConfigError, first_line
from reslab.runs import CHECKPOINT_FORMAT, RunFolder


@dataclass(frozen=True)
class Weights:
    """A state_dict read from a run folder or a weights file, and where it came from (what summary.json records)."""

    state: Mapping[str, torch.Tensor]
    file: Path
    sha256: str

    def record(self, given: str) -> dict[str, Any]:
        return {"from": given, "file": str(self.file), "sha256": self.sha256}


def weights_file(given: str | Path, what: str) -> Path:
    """The file behind `given`: a run folder's best.pt (else last.pt), or the file itself; missing: one line."""
    path = Path(given).expanduser()
    if path.is_dir():
        folder = RunFolder(path)
        for candidate in (folder.best, folder.last):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{what} {given} holds no checkpoint ({folder.best.name} or {folder.last.name})")
    if not path.is_file():
        raise CheckpointError(f"{what} {given} does not exist (a run folder or a .pt weights file)")
    return path


def read_weights(given: str | Path, what: str = "train.init_from") -> Weights:
    """A reslab checkpoint's model weights, or a plain state_dict (a torchvision weights file); foreign or corrupt
    files are one CheckpointError line."""
    path = weights_file(given, what)
    data = path.read_bytes()
    try:
        import io

        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{what} {path} holds Python objects that reslab does not load "
                              "(only tensors and plain values are read)") from None
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{what} {path} is corrupt or not a weights file: {type(exc).__name__}: "
                              f"{first_line(exc, 'unreadable')}") from None
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        state = state.get("model")
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} {path} holds no model weights (a reslab checkpoint or a state_dict)")
    return Weights(state=state, file=path, sha256=hashlib.sha256(data).hexdigest())


def head_name(model: nn.Module) -> str:
    """The head's name in the model's state_dict (`head`, the notebook models' `output`, torchvision's `fc`)."""
    head = model.head  # type: ignore[attr-defined]
    return next(name for name, module in model.named_modules() if module is head)


def load_backbone(model: nn.Module, weights: Weights, keep_head: bool, what: str = "train.init_from") -> None:
    """Copy `weights` into `model`, all but the head unless `keep_head`; the first missing, extra or differently
    shaped key is the one line of a mismatch."""
    prefix = head_name(model) + "."
    own = model.state_dict()
    skip = (lambda k: False) if keep_head else (lambda k: k.startswith(prefix))
    for key, tensor in own.items():
        if skip(key):
            continue
        if key not in weights.state:
            raise CheckpointError(f"{what} {weights.file} does not match this model: it lacks {key}")
        if tuple(weights.state[key].shape) != tuple(tensor.shape):
            hint = " (keep_head needs the same class count)" if key.startswith(prefix) else ""
            raise CheckpointError(f"{what} {weights.file} does not match this model: {key} has shape "
                                  f"{tuple(weights.state[key].shape)} there, {tuple(tensor.shape)} here{hint}")
    extra = [k for k in weights.state if k not in own and not skip(k)]
    if extra:
        raise CheckpointError(f"{what} {weights.file} does not match this model: it has {extra[0]}, which this "
                              "model has not")
    with torch.no_grad():
        for key, tensor in own.items():
            if not skip(key):
                tensor.copy_(weights.state[key])


# (stem, stages) attribute names per model family: the first pair the model has is used
_STAGES = (("stem", "stages"), ("stem", "blocks"), ("fc1", "hidden_layers"), ("conv1", "residual_blocks"),
           ("conv1", ("cblock1", "cblock2", "cblock3")), (("conv1", "bn1"), ("layer1", "layer2", "layer3", "layer4")))


def model_stages(model: nn.Module) -> list[list[nn.Module]]:
    """The model's stages, stage 0 the stem: each a list of modules."""
    def get(names: Any) -> list[nn.Module] | None:
        if isinstance(names, str):
            return [getattr(model, names)] if isinstance(getattr(model, names, None), nn.Module) else None
        found = [getattr(model, n, None) for n in names]
        return found if all(isinstance(m, nn.Module) for m in found) else None

    for stem_names, stage_names in _STAGES:
        stem, stages = get(stem_names), get(stage_names)
        if stem is None or stages is None:
            continue
        if isinstance(stage_names, str):  # one container of stages
            stages = [[m] for m in stages[0].children()]
        else:
            stages = [[m] for m in stages]
        return [stem, *stages]
    raise ConfigError(f"train.freeze: reslab does not know the stages of {type(model).__name__}")


def _frozen(module: nn.Module) -> None:
    """Fixed weights, and eval mode that model.train() does not undo."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.train = types.MethodType(lambda self, mode=True: nn.Module.train(self, False), module)  # type: ignore
    module.eval()


def apply_freeze(model: nn.Module, freeze: int | str) -> None:
    """`train.freeze`: none, all-but-head, or K (stages 0..K); an out-of-range K is one line naming the range."""
    if freeze == "none":
        return
    head = model.head  # type: ignore[attr-defined]
    if freeze == "all-but-head":
        for child in model.children():
            if child is not head:
                _frozen(child)
        return
    stages = model_stages(model)
    if not isinstance(freeze, int) or not 0 <= freeze < len(stages):
        raise ConfigError(f"train.freeze must be a stage in 0..{len(stages) - 1} for this model (0: the stem, "
                          f"then {len(stages) - 1} stages), all-but-head or none; got {freeze!r}")
    for stage in stages[:freeze + 1]:
        for module in stage:
            _frozen(module)
