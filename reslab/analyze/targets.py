"""What an instrument measures and on what: targets resolved from presets, config files and run folders, the
words that name a model, plain/residual twins, the shared batches, and a target's model as the trainer built it.

Every instrument (`reslab gradflow`, `reslab analyze ...`) resolves its sources here, so a label, a pair title
and a batch draw mean the same in each.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from reslab.config import RunConfig, apply_overrides, from_dict, load_source, set_key
from reslab.data import DeviceLoader, ImageData, load_dataset, split_indices
from reslab.errors import CheckpointError, ConfigError, DataError
from reslab.runs import RunFolder, load_weights
from reslab.runtime import build_for, select_device

CHECKPOINTS = ("best", "last")
NOTEBOOK_KERNEL = 4  # the notebook's Exercise 2 cell builds its CNN with size=4, left over from a cell before

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]  # (x (B, C, H, W), y (B,)) on the device


@dataclass(frozen=True)
class Target:
    """One model to measure: its resolved config, and the checkpoint to load (None: fresh, seeded by the config)."""

    label: str
    cfg: RunConfig
    at: str  # init | best | last
    checkpoint: Path | None = None
    run_dir: Path | None = None


# ----------------------------------------------------------------------------- what to measure


def resolve_targets(sources: Sequence[str], *, at: Sequence[str] = ("init",), overrides: Sequence[str] = (),
                    settings: Mapping[str, Any] | None = None, notebook_kernel: bool = False) -> list[Target]:
    """Presets, config files or run folders -> targets; `at` may hold init, best, last and every (all checkpoints).

    `overrides` are --set items, `settings` dotted keys set after them (the CLI's shorthand flags).
    """
    if not sources:
        raise ConfigError("give at least one preset, config file or run folder to analyse")
    targets: list[Target] = []
    for source in sources:
        run = _run_folder(source)
        values = load_source(str(run.config) if run else source)
        values = apply_overrides(values, list(overrides))
        for key, value in (settings or {}).items():
            set_key(values, key.split("."), value)
        if notebook_kernel and (values.get("model") or {}).get("name") == "seed-cnn":
            set_key(values, ["model", "size"], NOTEBOOK_KERNEL)
        cfg = from_dict(values)
        name = run.path.name if run else Path(source).stem if source.endswith((".yaml", ".yml")) else source
        for point in _points(source, run, at):
            checkpoint = run.checkpoint(point) if run and point != "init" else None
            label = name if point == "init" else f"{name}@{point}"
            targets.append(Target(label=label, cfg=cfg, at=point, checkpoint=checkpoint,
                                  run_dir=run.path if run else None))
    if notebook_kernel and not any(t.cfg.model.name == "seed-cnn" for t in targets):
        raise ConfigError("--notebook-kernel sets the kernel size of seed-cnn models, and none was given")
    return _unique_labels(targets)


def _run_folder(source: str) -> RunFolder | None:
    """The run folder `source` names; None for a preset or config file."""
    if not Path(source).is_dir():
        return None
    run = RunFolder(Path(source))
    if not run.config.is_file():
        raise CheckpointError(f"{source} is not a reslab run folder (no {run.config.name})")
    return run


def _points(source: str, run: RunFolder | None, at: Sequence[str]) -> list[str]:
    """The measuring points of one source, in the order asked, every = each checkpoint present."""
    points: list[str] = []
    for point in at:
        if point == "init":
            points.append(point)
            continue
        if run is None and "init" in at:
            continue  # a preset or config file has no checkpoints: it is measured at init only
        if run is None:
            raise ConfigError(f"--at {point} needs a run folder, and {source} is a preset or config file "
                              "(it has no checkpoints); use --at init")
        present = [c for c in CHECKPOINTS if run.checkpoint(c).is_file()]
        wanted = present if point == "every" else [point]
        if not present or point not in ("every", *present):
            have = ", ".join(run.checkpoint(c).name for c in present) or "none"
            asked = "checkpoints" if point == "every" else run.checkpoint(point).name
            raise CheckpointError(f"run {source} has no {asked} (checkpoints present: {have})")
        points += wanted
    return list(dict.fromkeys(points))


def _unique_labels(targets: list[Target]) -> list[Target]:
    """The same source given twice gets 'name#2', so rows and figures stay apart."""
    seen: dict[str, int] = {}
    out = []
    for t in targets:
        seen[t.label] = seen.get(t.label, 0) + 1
        out.append(t if seen[t.label] == 1 else dataclasses.replace(t, label=f"{t.label}#{seen[t.label]}"))
    return out


def model_spec(cfg: RunConfig, *, leave_out: Sequence[str] = ()) -> str:
    """'seed-cnn(num=3, channels=16, size=4)': the model with its arguments (but `leave_out`), to say what ran."""
    args = ", ".join(f"{k}={v}" for k, v in cfg.model.args.items() if k not in leave_out)
    return f"{cfg.model.name}({args})"


def skip_of(cfg: RunConfig) -> str:
    """'yes' / 'no' for models with a `residual` switch, '' for the others."""
    residual = cfg.model.args.get("residual")
    return "" if residual is None else "yes" if residual else "no"


def family_of(cfg: RunConfig) -> str:
    """The model without its depth and skip: models of one family differ only in those."""
    return model_spec(cfg, leave_out=("depth", "residual"))


def twin_pairs(targets: Sequence[Target]) -> dict[str, str]:
    """label -> 'plain vs residual' title, for targets whose configs differ only in model.residual."""

    def key(t: Target) -> tuple:
        return family_of(t.cfg), str(t.cfg.model.args.get("depth")), t.at

    out: dict[str, str] = {}
    for plain in targets:
        for res in targets:
            if (skip_of(plain.cfg), skip_of(res.cfg)) == ("no", "yes") and key(plain) == key(res) \
                    and plain.label not in out and res.label not in out:
                out[plain.label] = out[res.label] = f"{plain.label} vs {res.label}"
    return out


# ----------------------------------------------------------------------------- measuring


def shared_data(targets: Sequence[Target]) -> tuple[ImageData, int, int]:
    """The one dataset all targets are measured on, with the batch size and validation size to draw by."""
    data_of = {t.label: (t.cfg.data.dataset, t.cfg.data.data_dir, t.cfg.data.image_size, t.cfg.data.batch_size,
                         t.cfg.data.classes) for t in targets}
    if len(set(data_of.values())) > 1:
        listed = "; ".join(f"{label}: {d[0]}" + (f" in {d[1]}" if d[1] else "") + f", batch {d[3]}"
                           + (f", image size {d[2]}" if d[2] else "") for label, d in data_of.items())
        raise ConfigError(f"the models name different data ({listed}); pass --dataset and --data-dir (or --set "
                          "data.batch_size=N) so that every model sees the same batches")
    d = targets[0].cfg.data
    data = load_dataset(d.dataset, d.data_dir, download=d.download, image_size=d.image_size).select_classes(d.classes)
    return data, d.batch_size, d.val_size


def _check_batches(batches: int) -> None:
    if batches < 1:
        raise ConfigError(f"--batches must be >= 1, got {batches}")


def draw_batches(data: ImageData, *, batches: int, batch_size: int, val_size: int, seed: int,
                 device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`batches` normalised batches from the training split (not validation), drawn once with `seed`."""
    _check_batches(batches)
    train_idx, _ = split_indices(len(data.train_y), val_size, seed)  # already a seeded permutation
    need = batches * batch_size
    if need > len(train_idx):
        raise DataError(f"{batches} batches of {batch_size} need {need} images, but the training split of "
                        f"{data.name} has {len(train_idx)}; ask for fewer --batches")
    idx = train_idx[:need]
    loader = DeviceLoader(data.train_x[idx], data.train_y[idx], batch_size=batch_size, mean=data.mean,
                          std=data.std, device=device)
    return list(loader)


def build(target: Target, data: ImageData, device: torch.device) -> tuple[nn.Module, bool]:
    """The target's model as the trainer builds it (seeded by its config), then its checkpoint's weights.

    Returns the model and whether it takes channels_last inputs (as in training).
    """
    model, channels_last = build_for(target.cfg, data, device)
    if target.checkpoint is not None:
        load_weights(model, target.checkpoint, model_spec(target.cfg))
    return model, channels_last


def in_format(batches: Batches, channels_last: bool) -> Batches:
    """The batches in the memory format the model was trained with (the trainer's loader does the same)."""
    if not channels_last:
        return batches
    return [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]


def check_seed(seed: int) -> None:
    if not 0 <= seed < 2**63:
        raise ConfigError(f"--seed must be in 0..2**63-1, got {seed}")


def shared_batches(targets: Sequence[Target], *, batches: int, device: str, seed: int, what: str,
                   progress: bool) -> tuple[ImageData, torch.device, Batches]:
    """The dataset every target shares, the device, and `batches` training batches drawn with `seed`; a progress
    line names them (prefixed by `what`, the instrument)."""
    dev = select_device(device)
    _check_batches(batches)
    check_seed(seed)
    data, batch_size, val_size = shared_data(targets)
    drawn = draw_batches(data, batches=batches, batch_size=batch_size, val_size=val_size, seed=seed, device=dev)
    if progress:
        print(f"{what}: {batches} batches of {batch_size} from the training split of {data.name} (seed {seed}), "
              f"device {dev}", file=sys.stderr)
    return data, dev, drawn
