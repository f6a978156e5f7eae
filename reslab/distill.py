"""Knowledge distillation (`train.teacher`, `train.distill`): Hinton, Vinyals and Dean 2015.

The loss, per image, with T = train.distill.temperature and alpha = train.distill.alpha:

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, label)

KL(p || q) = sum_k p_k (log p_k - log q_k): the teacher's softened distribution is the target; T^2 keeps the soft
term's gradient on the scale of the hard term's as T changes (Hinton et al., section 2). alpha = 1 is pure
distillation, alpha = 0 plain training. The training loss in metrics.csv is this loss; validation and test losses
stay the cross-entropy, so they compare with undistilled runs.

The teacher's logits are computed once, in eval mode and float32, on the whole training set without augmentation,
and cached beside the data cache (reslab.data.cache_dir()/teacher-logits), keyed by the teacher file's sha256 and
the training images' content; each batch is served its rows by index (the handout's tip: the teacher costs one
forward pass over the data, not one per step). With data.augment on, the cached logits are those of the
un-augmented images: the student sees a crop or flip, the target is the teacher's view of the original. That is
a choice (cheap, and the usual one for cached targets); computing them on the fly would match the augmented view
at the price of a teacher forward pass per step.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from reslab import files
from reslab.config import DistillConfig, RunConfig, from_dict
from reslab.data import ImageData, cache_dir, normalize
from reslab.errors import CheckpointError, ConfigError, first_line
from reslab.models import build_model
from reslab.runs import RunFolder, load_checkpoint
from reslab.transfer import load_backbone, read_weights

CACHE_FOLDER = "teacher-logits"
LOGITS_FORMAT = 1


def distill_loss(student: Tensor, teacher: Tensor, y: Tensor, distill: DistillConfig,
                 label_smoothing: float = 0.0) -> Tensor:
    """Per-image loss (B,): alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)."""
    t = distill.temperature
    log_p_teacher = F.log_softmax(teacher.float() / t, dim=1)
    log_p_student = F.log_softmax(student.float() / t, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1)
    ce = F.cross_entropy(student.float(), y, label_smoothing=label_smoothing, reduction="none")
    return distill.alpha * t * t * kl + (1 - distill.alpha) * ce


@dataclass(frozen=True)
class Teacher:
    """The teacher's logits for every training image (dataset order), on the device, and where they came from."""

    logits: Tensor  # float32 (N_train, K)
    record: dict[str, Any]  # given path, file, sha256, cache file: what summary.json records


def _teacher_config(given: str, file: Path) -> RunConfig:
    """The teacher's architecture: its run folder's config.yaml, or the config a reslab checkpoint holds."""
    folder = Path(given).expanduser()
    values = RunFolder(folder).read_config() if folder.is_dir() else load_checkpoint(file).get("config")
    if not isinstance(values, dict) or not values:
        raise CheckpointError(f"train.teacher {given} names no model (a run folder, or a reslab checkpoint with its "
                              "config)")
    try:
        return from_dict(values)
    except ConfigError as exc:
        raise CheckpointError(f"train.teacher {given} holds a config this version cannot read: {exc}") from None


def _content_hash(data: ImageData) -> str:
    digest = hashlib.sha256(f"{tuple(data.train_x.shape)}{data.mean}{data.std}".encode())
    digest.update(data.train_x.contiguous().numpy().tobytes())
    return digest.hexdigest()


def compute_logits(model: torch.nn.Module, data: ImageData, device: torch.device, batch_size: int) -> Tensor:
    """The model's logits for every training image, un-augmented, eval mode, float32 (no autocast)."""
    model.eval()
    out = []
    with torch.no_grad():
        for first in range(0, len(data.train_x), batch_size):
            x = normalize(data.train_x[first:first + batch_size].to(device), data.mean, data.std)
            out.append(model(x).float())
    return torch.cat(out) if out else torch.zeros(0, data.num_classes, device=device)


def teacher_logits(given: str, data: ImageData, device: torch.device, batch_size: int) -> Teacher:
    """The cached logits of teacher `given` on `data`'s training images, computed and cached on a miss."""
    weights = read_weights(given, "train.teacher")
    key = hashlib.sha256(f"{LOGITS_FORMAT}:{weights.sha256}:{_content_hash(data)}".encode()).hexdigest()[:32]
    path = cache_dir() / CACHE_FOLDER / f"{key}.pt"
    record = {**weights.record(given), "cache": str(path)}
    cached = _read_cache(path, (len(data.train_x), data.num_classes))
    if cached is not None:
        return Teacher(cached.to(device), record)
    cfg = _teacher_config(given, weights.file)
    with torch.random.fork_rng(devices=[]):  # building the teacher leaves the student's random state alone
        model = build_model(cfg.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                            **dict(cfg.model.args)).to(device)
    load_backbone(model, weights, keep_head=True, what="train.teacher")
    logits = compute_logits(model, data, device, batch_size)
    _write_cache(path, logits.cpu())
    return Teacher(logits, record)


def _read_cache(path: Path, shape: tuple[int, int]) -> Tensor | None:
    """The cached logits, or None when missing or damaged (then recomputed: a cache is never trusted blindly)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        logits = saved["logits"]
        if saved.get("format") == LOGITS_FORMAT and tuple(logits.shape) == shape and torch.isfinite(logits).all():
            return logits.float()
    except Exception:  # truncated or foreign: recompute
        pass
    return None


def _write_cache(path: Path, logits: Tensor) -> None:
    """Atomically; a cache that cannot be written is a warning, not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({"format": LOGITS_FORMAT, "logits": logits}, buf)
        files.atomic_write(path, lambda fh: fh.write(buf.getvalue()), mode="wb")
    except OSError as exc:
        warnings.warn(f"cannot cache teacher logits in {path.parent}: {first_line(exc)}", stacklevel=2)
