"""Gradient flow: `GradientProbe` measures one backward pass; `GradflowRecorder` records it during training.

What a record holds, for every weight layer (Linear/Conv) in the order the forward pass runs them: the
L2 norm of its weight's gradient, of its weight, their ratio, the size of the optimizer's update
||W_after - W_before|| (only where an optimizer step follows), and the standard deviation of the layer's
output (He et al. 2015, Fig. 7 "layer responses", here taken at the Linear/Conv output, before any norm
or activation); plus every named parameter's gradient norm (the lab notebook's view, biases and norm
layers included), the global gradient norm and the loss. Statistics stay on the device until `record`,
which syncs once. Comparing models on the same batches is `reslab.analyze.gradflow`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reslab import files
from reslab.config import RunConfig
from reslab.protocols import Observer
from reslab.runs import RunFolder

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
LAYER_FIELDS = ["depth", "layer", "kind", "grad_norm", "weight_norm", "grad_to_weight", "update_norm",
                "output_std", "global_grad_norm", "loss"]
TRAINING_FIELDS = ["step", "lr", *LAYER_FIELDS]  # gradflow.csv in a run folder: a row per (step, layer)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Linear/Conv with a weight parameter, in registration order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, WEIGHT_LAYERS) and isinstance(getattr(m, "weight", None), nn.Parameter)]


@dataclass(frozen=True, eq=False)
class GradRecord:
    """One measured backward pass, on the host."""

    param_names: tuple[str, ...]  # every named parameter that has a gradient, in registration order
    param_grad_norm: np.ndarray  # (P,) ||grad|| of each
    layer_names: tuple[str, ...]  # weight layers in order of forward execution (input side first)
    layer_kinds: tuple[str, ...]  # Linear, Conv2d, ...
    grad_norm: np.ndarray  # (L,) ||dloss/dW|| of each layer's weight (bias excluded)
    weight_norm: np.ndarray  # (L,) ||W|| at which the gradient was taken
    update_norm: np.ndarray  # (L,) ||W_after - W_before||; NaN where no optimizer step was taken
    output_std: np.ndarray  # (L,) std of the layer's output over the whole batch; NaN without forward hooks
    global_grad_norm: float  # over every parameter, as clip_grad_norm_ computes it
    loss: float  # NaN when not given

    def layer_rows(self, **prefix: Any) -> list[dict[str, Any]]:
        """A CSV row per weight layer (LAYER_FIELDS after `prefix`); NaN is written as an empty cell."""
        grad_to_weight = self.grad_norm / np.where(self.weight_norm > 0, self.weight_norm, np.nan)
        return [{**prefix, "depth": i + 1, "layer": name, "kind": kind, "grad_norm": csv_number(self.grad_norm[i]),
                 "weight_norm": csv_number(self.weight_norm[i]), "grad_to_weight": csv_number(grad_to_weight[i]),
                 "update_norm": csv_number(self.update_norm[i]), "output_std": csv_number(self.output_std[i]),
                 "global_grad_norm": csv_number(self.global_grad_norm), "loss": csv_number(self.loss)}
                for i, (name, kind) in enumerate(zip(self.layer_names, self.layer_kinds))]


def csv_number(value: float) -> str:
    """A number as a CSV cell: 6 significant digits, NaN and inf as an empty cell."""
    return "" if not math.isfinite(float(value)) else f"{float(value):.6g}"


class GradientProbe:
    """Forward hooks on the weight layers while open (removed on close, also after an exception).

    Use: open (or `with`), forward, backward, `capture_gradients()` before anything changes the gradients
    (clipping, the optimizer), then `record()` (after the optimizer step, for update sizes). Without
    `output_std` no hooks are registered (e.g. under torch.compile, where toggling hooks recompiles):
    the layers then keep registration order and their output std is NaN.
    """

    def __init__(self, model: nn.Module, *, output_std: bool = True) -> None:
        self.model = model
        self.output_std = output_std
        self._layers = dict(weight_layers(model))
        self._handles: list[Any] = []
        self._stds: dict[str, torch.Tensor] = {}  # layer name -> device scalar, in execution order
        self._captured: dict[str, Any] | None = None

    def open(self) -> GradientProbe:
        if self.output_std and not self._handles:
            self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self._layers.items()]
        return self

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> GradientProbe:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if name not in self._stds:  # a layer run twice keeps its first output
                self._stds[name] = output.detach().float().std()

        return hook

    def _order(self) -> list[str]:
        """Execution order as seen by the hooks, then layers that did not run, in registration order."""
        return [*self._stds, *(name for name in self._layers if name not in self._stds)]

    @torch.no_grad()
    def capture_gradients(self, *, snapshot_weights: bool = False) -> None:
        """Norms of the current gradients and weights, kept on the device (no sync).

        `snapshot_weights` copies the layers' weights, so that `record` can measure the optimizer's update.
        """
        params = [(name, p) for name, p in self.model.named_parameters() if p.grad is not None]
        if not params:
            raise ValueError("no parameter has a gradient: call backward() before capture_gradients()")
        norms = torch.stack([p.grad.detach().norm().float() for _, p in params])  # (P,)
        position = {id(p): i for i, (_, p) in enumerate(params)}
        order = self._order()
        missing = norms.new_full((), math.nan)  # a layer whose weight got no gradient
        weights = [self._layers[name].weight for name in order]
        self._captured = {
            "param_names": tuple(name for name, _ in params), "param_norms": norms, "order": order,
            "grad_norm": torch.stack([norms[position[id(w)]] if id(w) in position else missing for w in weights]),
            "weight_norm": torch.stack([w.detach().norm().float() for w in weights]),
            "before": [w.detach().clone() for w in weights] if snapshot_weights else None,
        }

    @torch.no_grad()
    def record(self, loss: torch.Tensor | float | None = None) -> GradRecord:
        """Everything captured, plus update sizes and output stds, brought to the host in one sync."""
        c = self._captured
        if c is None:
            raise ValueError("capture_gradients() must come before record()")
        norms, order = c["param_norms"], c["order"]
        nan = norms.new_full((len(order),), math.nan)
        update = nan if c["before"] is None else torch.stack(
            [(self._layers[name].weight.detach() - w).norm().float() for name, w in zip(order, c["before"])])
        stds = torch.stack([self._stds[name].to(norms.device) if name in self._stds else nan[0] for name in order])
        loss_t = loss.detach().float().reshape(1) if torch.is_tensor(loss) else norms.new_full(
            (1,), math.nan if loss is None else float(loss))  # a fill, not a host-to-device copy
        flat = torch.cat([norms, c["grad_norm"], c["weight_norm"], update, stds,
                          norms.square().sum().sqrt().reshape(1), loss_t.to(norms.device)])
        values = flat.cpu().numpy().astype(np.float64)  # the record's one host sync
        p, n = len(norms), len(order)
        parts = np.split(values, np.cumsum([p, n, n, n, n, 1]))
        self._captured, self._stds = None, {}
        return GradRecord(param_names=c["param_names"], param_grad_norm=parts[0], layer_names=tuple(order),
                          layer_kinds=tuple(type(self._layers[name]).__name__ for name in order),
                          grad_norm=parts[1], weight_norm=parts[2], update_norm=parts[3], output_std=parts[4],
                          global_grad_norm=float(parts[5][0]), loss=float(parts[6][0]))


class GradflowRecorder(Observer):
    """Records a `GradientProbe` every `every` steps (steps 1, 1 + every, ...) into the run's gradflow.csv.

    Hooks exist only during a recorded step; rows are appended to the file once per epoch and on close
    (also when interrupted); a resumed run first drops the rows recorded after its checkpoint. At the end
    of a finished run the layer-by-step heatmap is drawn into gradflow.png (unless train.figures is false).
    """

    def __init__(self, every: int, *, output_std: bool = True) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every, self.output_std = every, output_std
        self.path: Path | None = None
        self.figures = True
        self._model: nn.Module | None = None
        self._probe: GradientProbe | None = None
        self._pending: list[dict[str, Any]] = []

    def due(self, step: int) -> bool:
        return (step - 1) % self.every == 0

    def needs_module(self, step: int) -> bool:
        return self.due(step)  # hooks on the run's own layers, and its gradients

    def on_start(self, run_dir: Path, model: nn.Module, cfg: RunConfig, start_step: int) -> None:
        self.path, self._model, self.figures = RunFolder(Path(run_dir)).gradflow, model, cfg.train.figures
        self.output_std = self.output_std and not cfg.train.compile  # hooks would recompile the model
        if self.path.exists():  # a resumed run drops the rows recorded after its checkpoint
            files.truncate_csv(self.path, TRAINING_FIELDS, lambda row: int(row["step"]) <= start_step)

    def on_batch_start(self, step: int) -> None:
        if self._model is not None and self.due(step):
            self._probe = GradientProbe(self._model, output_std=self.output_std).open()

    def on_after_backward(self, step: int, model: nn.Module) -> None:
        if self._probe is not None:
            self._probe.capture_gradients(snapshot_weights=True)

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if self._probe is not None:
            record = self._probe.record(loss)
            self._close_probe()
            self._pending += record.layer_rows(step=step, lr=f"{lr:.6g}")

    def on_epoch(self, row: dict[str, Any]) -> None:
        self.flush()

    def on_end(self, summary: dict[str, Any]) -> None:
        self.flush()
        if self.path is not None and self.figures:  # else drawn later from gradflow.csv (RunFolder.draw_gradflow)
            RunFolder(self.path.parent).draw_gradflow()

    def close(self) -> None:
        self._close_probe()
        self.flush()

    def _close_probe(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    def flush(self) -> None:
        """Append the pending rows (one write per epoch: the CSV grows, it is never rewritten per record)."""
        if self._pending and self.path is not None:
            files.append_csv(self.path, self._pending, TRAINING_FIELDS)
            self._pending = []
