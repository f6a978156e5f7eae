"""Class activation maps on the one model interface (`features -> pool -> head`), for inputs of any size.

- CAM (Zhou et al. 2016, "Learning deep features for discriminative localization"): for a net that ends in global
  average pooling and one linear layer, M_c(x, y) = sum_k w_ck F_k(x, y) on the map `features(x)` the pooling
  reads (after the last norm, ReLU and residual add), without the bias; exact for every reslab conv model, since
  y_c = mean_xy M_c(x, y) + b_c.
- Grad-CAM (Selvaraju et al. 2017): alpha_ck = mean_xy d y_c / d F_k(x, y) with y_c the class score (the logit,
  not the loss, not the softmax), then ReLU(sum_k alpha_ck F_k); for any conv model. For a GAP + linear head
  d y_c / d F_k(x, y) = w_ck / (h w), so Grad-CAM = ReLU(CAM) / (h w) exactly (tests/analyze/test_cam.py).

Maps come at the feature map's resolution; `upsample` (bilinear) brings them to the input's for overlays and
for the deletion/insertion curves, `normalise` scales each to [0, 1] for display (after the paper's ReLU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ConfigError


def feature_map(model: nn.Module, x: torch.Tensor, label: str = "the model") -> torch.Tensor:
    """`model.features(x)`, refused with one line unless it is a spatial map (B, K, h, w): an MLP has none."""
    feats = model.features(x)
    if feats.dim() != 4:
        raise ConfigError(f"{label} has no spatial feature map (its features are {tuple(feats.shape[1:])}, an MLP's "
                          "hidden vector); CAM and Grad-CAM need a conv model")
    return feats


def has_gap_head(model: nn.Module) -> bool:
    """Whether the net ends in global average pooling and one linear layer, where CAM is exact."""
    pool, head = getattr(model, "pool", None), getattr(model, "head", None)
    return isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1)) and isinstance(head, nn.Linear)


def cam(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Zhou et al.'s CAM of class `classes[b]` for image b: (B, h, w), unnormalised, negative values kept."""
    if not has_gap_head(model):
        raise ConfigError("CAM needs a net ending in global average pooling and one linear layer; use Grad-CAM")
    with torch.no_grad():
        feats = feature_map(model, x)  # (B, K, h, w)
        weights = model.head.weight[classes]  # (B, K)
        return torch.einsum("bk,bkhw->bhw", weights.to(feats.dtype), feats)


def grad_cam(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Selvaraju et al.'s Grad-CAM of class `classes[b]` for image b: (B, h, w), after the paper's ReLU.

    The model must be in eval mode: in training mode batch norm would mix the images' gradients.
    """
    with torch.enable_grad():
        feats = feature_map(model, x.detach()).detach().requires_grad_(True)  # the map, as a leaf
        logits = model.head(model.pool(feats).flatten(1))
        score = logits.gather(1, classes[:, None]).sum()  # each image's score depends on its own map only
        grads, = torch.autograd.grad(score, feats)
    alpha = grads.mean(dim=(2, 3))  # (B, K): the gradients' global average
    return torch.relu(torch.einsum("bk,bkhw->bhw", alpha, feats.detach()))


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear (half-pixel centres, as OpenCV's resize)."""
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map shifted and scaled to [0, 1] (min-max, as both papers display them); a constant map becomes 0."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    span = (flat.max(dim=1).values - flat.min(dim=1).values)[:, None, None]
    return torch.where(span > 0, (maps - low) / span.clamp_min(1e-12), torch.zeros_like(maps))
