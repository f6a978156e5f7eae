"""A pack of plain-form MLPs whose training step computes its gradients directly, without autograd.

For the MLP of the depth study (post-activation blocks of Linear layers, no norm, no branch scalar) a packed step
through autograd spends most of its time on small ops: per layer a transpose, an unsqueeze, the batched matmul, the
ReLU and their backward nodes, then an optimizer that walks two tensors per layer. Here the weights live in six
tensors (the stems', the blocks' layers', the heads', weights and biases), so a layer is one `baddbmm` and one
in-place ReLU, and back one `threshold_backward`, the weight and bias gradients (`bmm`, `sum`) and the input's
(`bmm`). The optimizer steps six tensors. Each op is the one autograd runs for a separate run, on the same operands
in the same layout (weights (out, in), passed transposed as F.linear passes them; the logits' gradient by autograd
itself), so each run's numbers equal a separate run's to float tolerance (on the development CPU the gradients
came out bit for bit). The interface is PackedMLP's.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Block
from .mlp import MLP


def direct_packable(model: nn.Module) -> bool:
    """Whether `model` has the plain form this pack computes: post-act blocks of biased Linear layers, identity
    shortcuts, no norm, no branch scalar, no ReLU moved into the branch."""
    if not isinstance(model, MLP) or model.final_act or model.stem.bias is None or model.head.bias is None:
        return False
    return all(isinstance(b, Block) and not b.preact and b.alpha is None and not b.relu_inside
               and isinstance(b.shortcut, nn.Identity) and all(isinstance(n, nn.Identity) for n in b.norms)
               and all(isinstance(layer, nn.Linear) and layer.bias is not None for layer in b.layers)
               for b in model.blocks)


Take = Callable[[torch.Tensor], torch.Tensor]  # a packed tensor (a parameter, its gradient or state) -> a run's view


class DirectPackedMLP(nn.Module):
    """N MLPs of one plain form: `forward` maps (N, B, C, H, W) to (N, B, classes); `loss_and_grads` trains."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models or not all(direct_packable(m) for m in models):
            raise ValueError("DirectPackedMLP packs plain-form MLPs only (direct_packable)")
        first: MLP = models[0]  # type: ignore[assignment]
        shapes = [[tuple(p.shape) for p in m.parameters()] for m in models]
        if any(s != shapes[0] for s in shapes) or len({len(b.layers) for m in models for b in m.blocks}) > 1:
            raise ValueError("packed models must have one form: equal parameters and blocks (the skip aside)")
        self.per_block = len(first.blocks[0].layers) if len(first.blocks) else 1
        layers = [[layer for b in m.blocks for layer in b.layers] for m in models]  # type: ignore[union-attr]

        def stack(tensors: Sequence[torch.Tensor]) -> nn.Parameter:
            return nn.Parameter(torch.stack([t.detach() for t in tensors]).contiguous())

        # registered in the runs' order (stem, blocks, head): the optimizer numbers them so
        self.stem_w = stack([m.stem.weight for m in models])  # (N, width, in)
        self.stem_b = stack([m.stem.bias.unsqueeze(0) for m in models])  # (N, 1, width)
        self.layers = len(layers[0])
        if self.layers:  # (L, N, width, width) and (L, N, 1, width): layer l of every run
            self.block_w = nn.Parameter(torch.stack([torch.stack([ls[l].weight.detach() for ls in layers])
                                                     for l in range(self.layers)]).contiguous())
            self.block_b = nn.Parameter(torch.stack([torch.stack([ls[l].bias.detach().unsqueeze(0) for ls in layers])
                                                     for l in range(self.layers)]).contiguous())
        self.head_w = stack([m.head.weight for m in models])  # (N, classes, width)
        self.head_b = stack([m.head.bias.unsqueeze(0) for m in models])  # (N, 1, classes)
        # per block: False (no run adds the skip), True (every run does) or an (N, 1, 1) 0/1 mask (twins)
        self.skips: list[Any] = []
        for column in zip(*[[b.residual for b in m.blocks] for m in models]):  # type: ignore[union-attr]
            self.skips.append(all(column) if all(column) or not any(column) else
                              torch.tensor(column, dtype=self.stem_w.dtype, device=self.stem_w.device).view(-1, 1, 1))
        self._saved: tuple[torch.Tensor, list[torch.Tensor]] | None = None  # the input, each layer's input

    def __len__(self) -> int:
        return self.stem_w.shape[0]

    @property
    def num_classes(self) -> int:
        return self.head_w.shape[1]

    def _slots(self, i: int) -> list[tuple[int, Take]]:
        """Where run i's parameters (in its module's order) live: (index in self.parameters(), its view)."""
        slots: list[tuple[int, Take]] = [(0, lambda t: t[i]), (1, lambda t: t[i, 0])]
        for l in range(self.layers):
            slots += [(2, lambda t, l=l: t[l, i]), (3, lambda t, l=l: t[l, i, 0])]
        head = 4 if self.layers else 2
        return slots + [(head, lambda t: t[i]), (head + 1, lambda t: t[i, 0])]

    def parameters_in_order(self) -> list[nn.Parameter]:
        """The parameters as `parameters()` gives them (and an optimizer numbers them)."""
        return list(self.parameters())

    def _layer_views(self) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], list[torch.Tensor]]:
        """Each block layer's (N, out, in) weights, (N, 1, out) biases and (N, in, out) transposed weights, made
        once: the optimizer updates the parameters in place, so the views stay theirs (~3 us a view per step saved)."""
        key = (self.block_w.data_ptr(), self.block_b.data_ptr()) if self.layers else None
        if getattr(self, "_views_key", False) != key:
            with torch.no_grad():
                w = self.block_w.unbind(0) if self.layers else ()
                self._views = (w, self.block_b.unbind(0) if self.layers else (), [v.transpose(1, 2) for v in w])
            self._views_key = key
        return self._views

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, B, C, H, W) -> (N, B, classes)
        """The logits of a training step; its activations are kept for `backward`."""
        return self._run(x, keep=True)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The logits, nothing kept (evaluation)."""
        return self._run(x, keep=False)

    @torch.no_grad()
    def _run(self, x: torch.Tensor, keep: bool) -> torch.Tensor:
        _, biases, transposed = self._layer_views()
        flat = x.flatten(2)  # (N, B, in)
        # acts[l]: block layer l's input, acts[L] the head's (a list: out= slices of one buffer were slower here)
        acts = [torch.baddbmm(self.stem_b, flat, self.stem_w.transpose(1, 2)).relu_()]
        for l in range(self.layers):
            out = torch.baddbmm(biases[l], acts[l], transposed[l])
            if (l + 1) % self.per_block == 0:  # a block's last layer: its skip, then the ReLU after the sum
                skip, block_in = self.skips[l // self.per_block], acts[l + 1 - self.per_block]
                if isinstance(skip, torch.Tensor):
                    out.addcmul_(block_in, skip)  # twins: plain runs add 0 * x (x >= 0: exactly +0)
                elif skip:
                    out.add_(block_in)
            acts.append(out.relu_())
        self._saved = (flat, acts) if keep else None
        return torch.baddbmm(self.head_b, acts[-1], self.head_w.transpose(1, 2))

    @torch.no_grad()
    def backward(self, grad_logits: torch.Tensor) -> None:
        """Every parameter's gradient (into .grad) from the logits' gradient, through the activations `forward` kept.
        A ReLU's gradient is the incoming one where its output is > 0 (autograd's threshold_backward)."""
        assert self._saved is not None, "backward needs the activations of a forward"
        flat, acts = self._saved
        self._saved = None
        for p in self.parameters_in_order():
            if p.grad is None or p.grad.shape != p.shape:
                p.grad = torch.empty_like(p)
        weights, _, _ = self._layer_views()
        relu_grad = torch.ops.aten.threshold_backward
        torch.bmm(grad_logits.transpose(1, 2), acts[-1], out=self.head_w.grad)
        torch.sum(grad_logits, 1, keepdim=True, out=self.head_b.grad)
        g = torch.bmm(grad_logits, self.head_w)  # d loss / d acts[L]
        grad_w, grad_b = (self.block_w.grad.unbind(0), self.block_b.grad.unbind(0)) if self.layers else ((), ())
        skip_grad: torch.Tensor | None = None
        for l in reversed(range(self.layers)):
            pre = relu_grad(g, acts[l + 1], 0)  # d loss / d (layer l's output before its ReLU)
            first_of_block, skip = l % self.per_block == 0, self.skips[l // self.per_block]
            if (l + 1) % self.per_block == 0 and skip is not False:  # the sum's gradient flows to the skip too
                skip_grad = pre
            # per layer, small enough to stay in cache (stacking all layers' for one bmm was slower here)
            torch.bmm(pre.transpose(1, 2), acts[l], out=grad_w[l])
            torch.sum(pre, 1, keepdim=True, out=grad_b[l])
            g = torch.bmm(pre, weights[l])
            if first_of_block and isinstance(skip, torch.Tensor):
                g.addcmul_(skip_grad, skip)  # twins: the plain runs' skip passes 0 (in place: ~10x a broadcast mul)
            elif first_of_block and skip:
                g.add_(skip_grad)
        g = relu_grad(g, acts[0], 0)
        torch.bmm(g.transpose(1, 2), flat, out=self.stem_w.grad)
        torch.sum(g, 1, keepdim=True, out=self.stem_b.grad)

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor, label_smoothing: float, amp: Any = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each run's batch-mean loss (N,) and logits (N, B, classes), the gradients of the losses in .grad.
        (`amp`: PackedMLP's signature; a direct pack runs without autocast, pack_models sees to it.)"""
        logits = self(x).requires_grad_()  # the loss's own gradient by autograd: a handful of ops
        n, b = y.shape
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none",
                                 label_smoothing=label_smoothing).view(n, b).mean(1)
        losses.sum().backward()
        self.backward(logits.grad)
        return losses.detach(), logits.detach()

    @torch.no_grad()
    def write_to(self, models: Sequence[nn.Module], runs: Sequence[int] | None = None) -> None:
        """Copy the packed weights into the runs' own modules: models[k] gets run runs[k]'s (default: run k's)."""
        params = self.parameters_in_order()
        for model, i in zip(models, range(len(models)) if runs is None else runs):
            torch._foreach_copy_(list(model.parameters()), [take(params[j]) for j, take in self._slots(i)])

    @torch.no_grad()
    def grads_from(self, models: Sequence[nn.Module | None]) -> None:
        """The packed gradients from the runs' own (None, or a parameter without one: zeros)."""
        params = self.parameters_in_order()
        for p in params:
            p.grad = torch.zeros_like(p)
        for i, model in enumerate(models):
            if model is not None:
                for (j, take), own in zip(self._slots(i), model.parameters()):
                    if own.grad is not None:
                        take(params[j].grad).copy_(own.grad)

    @torch.no_grad()
    def grads_to(self, models: Sequence[nn.Module], runs: Sequence[int] | None = None) -> None:
        """The packed gradients into the runs' own modules' .grad: models[k] gets run runs[k]'s (default: run k's)."""
        params = self.parameters_in_order()
        for model, i in zip(models, range(len(models)) if runs is None else runs):
            for (j, take), own in zip(self._slots(i), model.parameters()):
                own.grad = take(params[j].grad).clone(memory_format=torch.contiguous_format)

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> None:
        """`nn.utils.clip_grad_norm_` of each run's gradients on its own (the norm over all of that run's)."""
        per_param = [(p.grad, 1 if p is getattr(self, "block_w", None) or p is getattr(self, "block_b", None) else 0)
                     for p in self.parameters_in_order() if p.grad is not None]
        norms = [torch.linalg.vector_norm(g, dim=[d for d in range(g.dim()) if d != run]) for g, run in per_param]
        coef = (max_norm / (torch.stack(norms).norm(dim=0) + 1e-6)).clamp(max=1.0)  # (N,)
        for g, run in per_param:
            g.mul_(coef.view([-1 if d == run else 1 for d in range(g.dim())]).to(g.dtype))

    def optimizer_state_of(self, packed: dict[str, Any], i: int) -> dict[str, Any]:
        """Run i's optimizer state_dict (its own parameters' order) from the packed optimizer's; the step count, a
        scalar, is every run's."""
        state: dict[int, Any] = {}
        for k, (j, take) in enumerate(self._slots(i)):
            if j in packed["state"]:
                state[k] = {key: (take(v) if v.dim() else v).clone(memory_format=torch.contiguous_format)
                            if torch.is_tensor(v) else v for key, v in packed["state"][j].items()}
        groups = [{**group, "params": list(range(len(self._slots(i))))} for group in packed["param_groups"]]
        return {"param_groups": groups, "state": state}

    def stacked_optimizer_state(self, states: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The packed optimizer's state_dict from the runs' own (resumed at one step: their scalars are equal)."""
        params = self.parameters_in_order()
        state: dict[int, dict[str, Any]] = {}
        for i, own in enumerate(states):
            for k, (j, take) in enumerate(self._slots(i)):
                for key, v in own["state"].get(k, {}).items():
                    if torch.is_tensor(v) and v.dim():
                        packed = state.setdefault(j, {}).setdefault(key, torch.zeros_like(params[j], dtype=v.dtype))
                        take(packed).copy_(v)
                    else:
                        state.setdefault(j, {})[key] = v
        groups = [{**group, "params": list(range(len(params)))} for group in states[0]["param_groups"]]
        return {"param_groups": groups, "state": state}
