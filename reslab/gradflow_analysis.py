"""`reslab gradflow`: models at initialisation and at checkpoints, measured on the same batches (paired).

Each model runs as in the lab notebook's Exercise 2: train mode, zero_grad, forward, cross-entropy,
backward, one `GradientProbe` record per batch. No optimizer step is taken, so update sizes are left
empty here; they are recorded during training (gradflow.csv). Outputs: CSVs, figures, a statistics table
and sentences computed from the numbers.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reslab import runs
from reslab.config import RunConfig, apply_overrides, from_dict, load_source, set_key
from reslab.data import DeviceLoader, ImageData, load_dataset, split_indices
from reslab.errors import CheckpointError, ConfigError, DataError
from reslab.files import read_csv as read_rows
from reslab.gradflow import LAYER_FIELDS, GradientProbe, GradRecord, csv_number
from reslab.models import build_model, count_params
from reslab.evaluate import check_model_takes
from reslab.runtime import select_device

CHECKPOINTS = ("best", "last")
NOTEBOOK_KERNEL = 4  # the notebook's Exercise 2 cell builds its CNN with size=4, left over from a cell before
PARAM_FIELDS = ["model", "at", "batch", "param", "grad_norm"]
STATS_FIELDS = ["model", "at", "model_spec", "family", "depth", "skip", "pair", "batches", "param_tensors", "mean",
                "std", "median", "min", "max", "layers", "first_layer", "last_layer", "first_grad", "last_grad",
                "first_to_last", "loss"]


@dataclass(frozen=True)
class Target:
    """One model to measure: its resolved config, and the checkpoint to load (None: fresh, seeded by the config)."""

    label: str
    cfg: RunConfig
    at: str  # init | best | last
    checkpoint: Path | None = None
    run_dir: Path | None = None


@dataclass(frozen=True, eq=False)
class ModelResult:
    target: Target
    num_params: int
    records: tuple[GradRecord, ...]  # one per batch


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
        run_dir = _run_dir(source)
        values = load_source(str(run_dir / "config.yaml") if run_dir else source)
        values = apply_overrides(values, list(overrides))
        for key, value in (settings or {}).items():
            set_key(values, key.split("."), value)
        if notebook_kernel and (values.get("model") or {}).get("name") == "seed-cnn":
            set_key(values, ["model", "size"], NOTEBOOK_KERNEL)
        cfg = from_dict(values)
        name = run_dir.name if run_dir else Path(source).stem if source.endswith((".yaml", ".yml")) else source
        for point in _points(source, run_dir, at):
            checkpoint = run_dir / f"{point}.pt" if point != "init" else None  # type: ignore[operator]
            label = name if point == "init" else f"{name}@{point}"
            targets.append(Target(label=label, cfg=cfg, at=point, checkpoint=checkpoint, run_dir=run_dir))
    if notebook_kernel and not any(t.cfg.model.name == "seed-cnn" for t in targets):
        raise ConfigError("--notebook-kernel sets the kernel size of seed-cnn models, and none was given")
    return _unique_labels(targets)


def _run_dir(source: str) -> Path | None:
    path = Path(source)
    if not path.is_dir():
        return None
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"{source} is not a reslab run folder (no config.yaml)")
    return path


def _points(source: str, run_dir: Path | None, at: Sequence[str]) -> list[str]:
    """The measuring points of one source, in the order asked, every = each checkpoint present."""
    points: list[str] = []
    for point in at:
        if point == "init":
            points.append(point)
            continue
        if run_dir is None and "init" in at:
            continue  # a preset or config file has no checkpoints: it is measured at init only
        if run_dir is None:
            raise ConfigError(f"--at {point} needs a run folder, and {source} is a preset or config file "
                              "(it has no checkpoints); use --at init")
        present = [c for c in CHECKPOINTS if (run_dir / f"{c}.pt").is_file()]
        wanted = present if point == "every" else [point]
        if not present or point not in ("every", *present):
            have = ", ".join(f"{c}.pt" for c in present) or "none"
            raise CheckpointError(f"run {source} has no {'checkpoints' if point == 'every' else point + '.pt'} "
                                  f"(checkpoints present: {have})")
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


# ----------------------------------------------------------------------------- measuring


def shared_data(targets: Sequence[Target]) -> tuple[ImageData, int, int]:
    """The one dataset all targets are measured on, with the batch size and validation size to draw by."""
    data_of = {t.label: (t.cfg.data.dataset, t.cfg.data.data_dir, t.cfg.data.image_size, t.cfg.data.batch_size)
               for t in targets}
    if len(set(data_of.values())) > 1:
        listed = "; ".join(f"{label}: {d[0]}" + (f" in {d[1]}" if d[1] else "") + f", batch {d[3]}"
                           + (f", image size {d[2]}" if d[2] else "") for label, d in data_of.items())
        raise ConfigError(f"the models name different data ({listed}); pass --dataset and --data-dir (or --set "
                          "data.batch_size=N) so that every model sees the same batches")
    d = targets[0].cfg.data
    return load_dataset(d.dataset, d.data_dir, download=d.download, image_size=d.image_size), d.batch_size, d.val_size


def draw_batches(data: ImageData, *, batches: int, batch_size: int, val_size: int, seed: int,
                 device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`batches` normalised batches from the training split (not validation), drawn once with `seed`."""
    if batches < 1:
        raise ConfigError(f"--batches must be >= 1, got {batches}")
    train_idx, _ = split_indices(len(data.train_y), val_size, seed)  # already a seeded permutation
    need = batches * batch_size
    if need > len(train_idx):
        raise DataError(f"{batches} batches of {batch_size} need {need} images, but the training split of "
                        f"{data.name} has {len(train_idx)}; ask for fewer --batches")
    idx = train_idx[:need]
    loader = DeviceLoader(data.train_x[idx], data.train_y[idx], batch_size=batch_size, mean=data.mean,
                          std=data.std, device=device)
    return list(loader)


def measure(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[GradRecord]:
    """The notebook's loop: train mode, zero_grad, forward, cross-entropy, backward; a record per batch."""
    model.train()
    records = []
    with GradientProbe(model) as probe:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            probe.capture_gradients()
            records.append(probe.record(loss))
    model.zero_grad(set_to_none=True)
    return records


def build(target: Target, data: ImageData, device: torch.device) -> nn.Module:
    """The target's model: seeded like `train` builds it, then its checkpoint's weights when it has one."""
    cfg = target.cfg
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                        **dict(cfg.model.args)).to(device)
    if target.checkpoint is not None:
        state = runs.load_checkpoint(target.checkpoint)
        try:
            model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{target.checkpoint} does not match {model_spec(cfg)}: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
    return model


def analyse(targets: Sequence[Target], *, batches: int = 11, device: str = "auto", seed: int = 0,
            progress: bool = True) -> list[ModelResult]:
    """Every target on the same `batches` batches; progress lines go to stderr."""
    dev = select_device(device)
    if batches < 1:
        raise ConfigError(f"--batches must be >= 1, got {batches}")
    data, batch_size, val_size = shared_data(targets)
    drawn = draw_batches(data, batches=batches, batch_size=batch_size, val_size=val_size, seed=seed, device=dev)
    if progress:
        print(f"gradflow: {batches} batches of {batch_size} from the training split of {data.name} (seed {seed}), "
              f"device {dev}", file=sys.stderr)
    results = []
    for target in targets:
        model = build(target, data, dev)
        check_model_takes(model, data, drawn, target.cfg.model.name)  # type: ignore[arg-type]
        results.append(ModelResult(target, count_params(model), tuple(measure(model, drawn))))
        if progress:
            print(f"gradflow: {target.label} ({target.at}) measured", file=sys.stderr)
    return results


# ----------------------------------------------------------------------------- numbers and words


def _skip(cfg: RunConfig) -> str:
    residual = cfg.model.args.get("residual")
    return "" if residual is None else "yes" if residual else "no"


def _family(cfg: RunConfig) -> str:
    """The model without its depth and skip: models of one family differ only in those."""
    return model_spec(cfg, leave_out=("depth", "residual"))


def pairs(results: Sequence[ModelResult]) -> dict[str, str]:
    """label -> 'plain vs residual' title, for models whose configs differ only in model.residual."""

    def key(r: ModelResult) -> tuple:
        return _family(r.target.cfg), str(r.target.cfg.model.args.get("depth")), r.target.at

    out: dict[str, str] = {}
    for plain in results:
        for res in results:
            if (_skip(plain.target.cfg), _skip(res.target.cfg)) == ("no", "yes") and key(plain) == key(res) \
                    and plain.target.label not in out and res.target.label not in out:
                out[plain.target.label] = out[res.target.label] = f"{plain.target.label} vs {res.target.label}"
    return out


def stats_rows(results: Sequence[ModelResult]) -> list[dict[str, Any]]:
    """The statistics table: per-parameter gradient norms (every named parameter x every batch, as the notebook
    computes its mean and std) and the first weight layer's gradient norm over the last one's (batch means)."""
    pair_of = pairs(results)
    rows = []
    for r in results:
        per_param = np.stack([rec.param_grad_norm for rec in r.records])  # (B, P)
        per_layer = np.stack([rec.grad_norm for rec in r.records])  # (B, L)
        first, last = float(np.nanmean(per_layer[:, 0])), float(np.nanmean(per_layer[:, -1]))
        names = r.records[0].layer_names
        cfg = r.target.cfg
        rows.append({"model": r.target.label, "at": r.target.at, "model_spec": model_spec(cfg),
                     "family": _family(cfg), "depth": cfg.model.args.get("depth", ""), "skip": _skip(cfg),
                     "pair": pair_of.get(r.target.label, ""),
                     "batches": len(r.records), "param_tensors": per_param.shape[1],
                     "mean": float(per_param.mean()), "std": float(per_param.std()),
                     "median": float(np.median(per_param)), "min": float(per_param.min()),
                     "max": float(per_param.max()), "layers": len(names), "first_layer": names[0],
                     "last_layer": names[-1], "first_grad": first, "last_grad": last,
                     "first_to_last": first / last if last > 0 else float("nan"),
                     "loss": float(np.mean([rec.loss for rec in r.records]))})
    return rows


# ----------------------------------------------------------------------------- outputs


def check_output_dir(out: str | Path | None) -> None:
    """Fail before measuring when --out already holds something: nothing of the user's is overwritten."""
    path = Path(out) if out is not None else None
    if path is not None and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"--out {out} already exists and is not an empty folder; choose a new one")


def make_output_dir(out: str | Path | None) -> Path:
    """--out (created), or a new gradflow/gradflow-<date>-<time>-<id> folder."""
    if out is None:
        return runs.new_run_dir("gradflow", "gradflow")
    check_output_dir(out)
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    return Path(out)


def _kernel_notes(results: Sequence[ModelResult]) -> list[str]:
    """Which kernel size each seed-cnn used: the preset has 3, the notebook's Exercise 2 cell built it with 4."""
    notes = []
    for r in results:
        if r.target.cfg.model.name == "seed-cnn":
            size = r.target.cfg.model.args.get("size")
            why = ("as the notebook's Exercise 2 cell, where size=4 was left over from the cell before" if
                   size == NOTEBOOK_KERNEL else f"the notebook's Exercise 2 cell used {NOTEBOOK_KERNEL}: "
                   "--notebook-kernel builds it so")
            notes.append(f"{r.target.label} uses kernel size {size}; {why}.")
    return notes


def summary_text(results: Sequence[ModelResult], stats: Sequence[Mapping[str, Any]]) -> str:
    from reslab.report.gradflow_text import describe, format_table

    width = max(len(r.target.label) for r in results)
    lines = [f"{r.target.label:<{width}}  {r.target.at:<4}  {model_spec(r.target.cfg)}, {r.num_params:,} parameters"
             for r in results]
    lines += _kernel_notes(results)
    lines += ["", "Gradient L2 norm of every named parameter (biases and norm layers included) over every batch, as "
              "the notebook computes its mean and std;", "first/last: the first weight layer's gradient norm over "
              "the last one's (means over the batches).", format_table(stats), ""]
    return "\n".join(lines + describe(stats))


def write_outputs(results: Sequence[ModelResult], out_dir: Path) -> str:
    """CSVs, figures and gradflow-summary.txt into `out_dir`; returns the summary text."""
    from reslab.report.gradflow_figures import plot_depth, plot_param_boxplots, plot_training_heatmap

    param_rows = [{"model": r.target.label, "at": r.target.at, "batch": b + 1, "param": name,
                   "grad_norm": csv_number(v)} for r in results for b, rec in enumerate(r.records)
                  for name, v in zip(rec.param_names, rec.param_grad_norm)]
    layer_rows = [row for r in results for b, rec in enumerate(r.records)
                  for row in rec.layer_rows(model=r.target.label, at=r.target.at, batch=b + 1)]
    stats = stats_rows(results)
    runs.write_csv(out_dir / "gradflow-params.csv", param_rows, PARAM_FIELDS)
    runs.write_csv(out_dir / "gradflow-layers.csv", layer_rows, ["model", "at", "batch", *LAYER_FIELDS])
    runs.write_csv(out_dir / "gradflow-stats.csv", stats, STATS_FIELDS)
    plot_param_boxplots(param_rows, out_dir / "gradflow-boxplots.png")
    plot_depth(layer_rows, stats, out_dir / "gradflow-depth.png", metric="grad_norm",
               ylabel="gradient L2 norm of the layer's weight", title="Gradient norm by depth (mean over batches, "
               "band: min to max)")
    plot_depth(layer_rows, stats, out_dir / "gradflow-output-std.png", metric="output_std",
               ylabel="std of the layer's output", title="Layer responses by depth (std of each Linear/Conv output, "
               "before norm and activation)")
    for run_dir in dict.fromkeys(r.target.run_dir for r in results if r.target.run_dir is not None):
        if (run_dir / "gradflow.csv").is_file():
            plot_training_heatmap(read_rows(run_dir / "gradflow.csv"), out_dir / f"gradflow-heatmap-{run_dir.name}.png")
    text = summary_text(results, stats)
    runs.write_text(out_dir / "gradflow-summary.txt", text + "\n")
    return text


def run_gradflow(sources: Sequence[str], *, at: Sequence[str] = ("init",), overrides: Sequence[str] = (),
                 settings: Mapping[str, Any] | None = None, notebook_kernel: bool = False, batches: int = 11,
                 device: str = "auto", seed: int = 0, out: str | Path | None = None,
                 progress: bool = True) -> tuple[Path, str]:
    """The whole `reslab gradflow`: resolve, measure on shared batches, write; returns (output folder, summary)."""
    targets = resolve_targets(sources, at=at, overrides=overrides, settings=settings, notebook_kernel=notebook_kernel)
    check_output_dir(out)
    results = analyse(targets, batches=batches, device=device, seed=seed, progress=progress)
    out_dir = make_output_dir(out)
    return out_dir, write_outputs(results, out_dir)
