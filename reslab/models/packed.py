"""Several MLPs of one shape as one packed model: stacked weights, batched matmuls.

A w16 MLP on a CPU is dispatch-bound (a 16x16 matmul costs ~14 us of overhead, far above its FLOPs), so N runs of
one architecture (the seeds of a depth study, and its plain/residual twins: equal parameter shapes, the skip the
only difference) cost about what one does when each op does all N at once. `PackedMLP` mirrors `MLP.forward` and
`Block.forward` op by op on (N, B, F) activations; a per-run 0/1 skip mask makes twins one computation (adding
0 * x leaves a plain block's sum exactly as it was). The runs' own modules stay the record: `write_to` copies the
packed weights and buffers back into them (for evaluation, checkpoints, instruments), `grads_from` takes their
gradients and `buffers_from` their buffers (after a step through their own modules). Batch norm packs as one
`F.batch_norm` whose channels are every run's features side by side: each run's statistics are its own batch's, its
running statistics a view of the stacked buffers; `predict` uses the running statistics (eval mode).
The plain form (the depth study's) packs faster as packed_direct.DirectPackedMLP, gradients without autograd;
`pack_models` chooses.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Block
from .mlp import MLP
from .packed_direct import DirectPackedMLP, direct_packable

PACKED_NORMS = ("none", "layer", "batch")


def packable(name: str, args: Mapping[str, Any]) -> bool:
    """Whether runs of model `name` with `args` can train packed (the MLP, with any of its norms)."""
    return name == "mlp" and args.get("norm", "none") in PACKED_NORMS


def _form(model: nn.Module) -> list[Any]:
    """What must be equal for models to pack: parameter names and shapes, and every block's form but its skip."""
    if not isinstance(model, MLP):
        raise ValueError(f"only MLPs pack, not {type(model).__name__}")
    blocks = [(b.preact, b.relu_inside, b.alpha is None, type(b.shortcut).__name__,
               [type(n).__name__ for n in b.norms]) for b in model.blocks]
    return [[(n, tuple(p.shape), p.dtype) for n, p in model.named_parameters()], blocks, model.final_act,
            type(model.final_norm).__name__, [n for n, _ in model.named_buffers()]]


class PackedMLP(nn.Module):
    """N MLPs of one form: `forward` maps (N, B, C, H, W) to (N, B, classes), run i with model i's weights."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models or any(_form(m) != _form(models[0]) for m in models):
            raise ValueError("packed models must have one form: equal parameters and blocks (the skip aside)")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and not (m.track_running_stats and m.affine)
               for m in models[0].modules()):
            raise ValueError("batch norm packs with running statistics and affine weights only")
        self.template = [models[0]]  # in a list: its modules describe the form, its weights are not ours
        self.names = [n for n, _ in models[0].named_parameters()]
        own = [dict(m.named_parameters()) for m in models]
        self.stacked = nn.ParameterList(
            [nn.Parameter(torch.stack([params[n].detach() for params in own])) for n in self.names])
        self._by_name = dict(zip(self.names, self.stacked))
        # the runs' buffers (batch norm's running statistics and batch counts) by name, stacked: (N, ...) each
        buffers = [dict(m.named_buffers()) for m in models]
        self.stacked_buffers = {n: torch.stack([b[n].detach() for b in buffers]) for n in buffers[0]}
        skips = [[b.residual for b in m.blocks] for m in models]
        # per block: None (no run adds the skip), True (every run does) or an (N, 1, 1) 0/1 mask (twins)
        self.skips: list[Any] = []
        for column in zip(*skips):
            if all(column) or not any(column):
                self.skips.append(all(column))
            else:
                self.skips.append(torch.tensor(column, dtype=torch.float32,
                                               device=self.stacked[0].device).view(-1, 1, 1))

    def __len__(self) -> int:
        return self.stacked[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, B, C, H, W) -> (N, B, classes)
        model: MLP = self.template[0]
        h = F.relu(self._linear("stem", x.flatten(2)))
        for i, (block, skip) in enumerate(zip(model.blocks, self.skips)):
            h = self._block(f"blocks.{i}", block, skip, h)
        if model.final_act:
            h = F.relu(self._norm("final_norm", model.final_norm, h))
        return self._linear("head", h)

    def _linear(self, prefix: str, h: torch.Tensor) -> torch.Tensor:
        weight, bias = self._by_name[f"{prefix}.weight"], self._by_name.get(f"{prefix}.bias")
        if bias is None:
            return torch.bmm(h, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))

    def _norm(self, prefix: str, norm: nn.Module, h: torch.Tensor) -> torch.Tensor:
        if isinstance(norm, nn.Identity):
            return h
        if isinstance(norm, nn.BatchNorm1d):
            return self._batch_norm(prefix, norm, h)
        assert isinstance(norm, nn.LayerNorm)
        h = F.layer_norm(h, norm.normalized_shape, eps=norm.eps)
        weight, bias = self._by_name.get(f"{prefix}.weight"), self._by_name.get(f"{prefix}.bias")
        if weight is not None:
            h = h * weight.unsqueeze(1)
        return h + bias.unsqueeze(1) if bias is not None else h

    def _batch_norm(self, prefix: str, norm: nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
        """nn.BatchNorm1d of every run at once: (N, B, F) as (B, N * F) channels, so each run's features are
        normalised by its own batch's statistics (training) or its own running ones (eval), which update in place."""
        n, b, f = h.shape
        factor = 0.0
        if self.training:
            count = self.stacked_buffers[f"{prefix}.num_batches_tracked"]
            count.add_(1)
            factor = norm.momentum if norm.momentum is not None else 1.0 / float(count[0])
        out = F.batch_norm(h.transpose(0, 1).reshape(b, n * f), self.stacked_buffers[f"{prefix}.running_mean"].view(-1),
                           self.stacked_buffers[f"{prefix}.running_var"].view(-1),
                           self._by_name[f"{prefix}.weight"].reshape(-1), self._by_name[f"{prefix}.bias"].reshape(-1),
                           self.training, factor, norm.eps)
        return out.view(b, n, f).transpose(0, 1)

    def _block(self, prefix: str, block: Block, skip: Any, x: torch.Tensor) -> torch.Tensor:
        """Block.branch then Block.combine, for all runs at once."""
        h, last = x, len(block.layers) - 1
        for j in range(len(block.layers)):
            layer, norm = f"{prefix}.layers.{j}", f"{prefix}.norms.{j}"
            if block.preact:
                h = self._linear(layer, F.relu(self._norm(norm, block.norms[j], h)))
            else:
                h = self._norm(norm, block.norms[j], self._linear(layer, h))
                if j < last or block.relu_inside:
                    h = F.relu(h)
        if block.alpha is not None:
            h = self._by_name[f"{prefix}.alpha"].view(-1, 1, 1) * h
        if isinstance(skip, torch.Tensor):
            h = torch.addcmul(h, x, skip.to(h.dtype))  # twins: plain runs add 0 * x (exactly h)
        elif skip:
            h = h + x
        return h if block.preact or block.relu_inside else F.relu(h)

    @property
    def num_classes(self) -> int:
        return self._by_name["head.weight"].shape[1]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The logits in eval mode (batch norm's running statistics, left as they are); the caller holds no_grad."""
        was = self.training
        self.train(False)
        try:
            return self(x)
        finally:
            self.train(was)

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor, label_smoothing: float,
                       amp: contextlib.AbstractContextManager | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each run's batch-mean loss (N,) and logits (N, B, classes), detached; the losses' gradients in .grad."""
        with amp or contextlib.nullcontext():
            logits = self(x)
        n, b = y.shape
        losses = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none",
                                 label_smoothing=label_smoothing).view(n, b).mean(1)
        for p in self.stacked:
            p.grad = None
        losses.sum().backward()
        return losses.detach(), logits.detach()

    def optimizer_state_of(self, packed: dict[str, Any], i: int) -> dict[str, Any]:
        return optimizer_state_of(packed, i)

    def stacked_optimizer_state(self, states: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return stacked_optimizer_state(states)

    @torch.no_grad()
    def write_to(self, models: Sequence[nn.Module], runs: Sequence[int] | None = None) -> None:
        """Copy the packed weights into the runs' own modules: models[k] gets run runs[k]'s (default: run k's)."""
        for model, i in zip(models, range(len(models)) if runs is None else runs):
            torch._foreach_copy_(list(model.parameters()), [stacked[i] for stacked in self.stacked])
            for own, stacked in zip(model.buffers(), self.stacked_buffers.values()):
                own.copy_(stacked[i])

    @torch.no_grad()
    def buffers_from(self, models: Sequence[nn.Module], runs: Sequence[int]) -> None:
        """The runs' own buffers (after a step through their own modules) into the pack: run runs[k]'s from
        models[k]."""
        for model, i in zip(models, runs):
            for own, stacked in zip(model.buffers(), self.stacked_buffers.values()):
                stacked[i].copy_(own)

    @torch.no_grad()
    def grads_from(self, models: Sequence[nn.Module | None]) -> None:
        """The packed gradients from the runs' own (None, or a parameter without one: zeros)."""
        grads = [[None] * len(self.names) if m is None else [p.grad for p in m.parameters()] for m in models]
        for j, stacked in enumerate(self.stacked):
            stacked.grad = torch.stack([torch.zeros_like(stacked[0]) if g[j] is None else g[j] for g in grads])

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> None:
        """`nn.utils.clip_grad_norm_` of each run's gradients on its own (the norm over all of that run's)."""
        grads = [p.grad for p in self.stacked if p.grad is not None]
        if not grads:
            return
        total = torch.stack([g.reshape(len(g), -1).norm(dim=1) for g in grads]).norm(dim=0)  # (N,)
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))


def optimizer_state_of(packed: dict[str, Any], i: int) -> dict[str, Any]:
    """Run i's optimizer state_dict from the packed optimizer's (its slice of every per-parameter tensor; the step
    count, a scalar, is every run's)."""
    return {"param_groups": packed["param_groups"], "state": {
        j: {k: (v[i] if v.dim() else v).clone() if torch.is_tensor(v) else v for k, v in values.items()}
        for j, values in packed["state"].items()}}


def stacked_optimizer_state(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The packed optimizer's state_dict from the runs' own (resumed at one step: their scalars are equal)."""
    return {"param_groups": states[0]["param_groups"], "state": {
        j: {k: torch.stack([s["state"][j][k] for s in states]) if torch.is_tensor(v) and v.dim() else v
            for k, v in values.items()} for j, values in states[0]["state"].items()}}


def pack_models(models: Sequence[nn.Module], direct: bool = True) -> PackedMLP | DirectPackedMLP:
    """The pack of these runs' models: DirectPackedMLP (gradients without autograd) for the plain form unless
    `direct` is False (under autocast), else PackedMLP."""
    if direct and all(direct_packable(m) for m in models):
        return DirectPackedMLP(models)
    return PackedMLP(models)
