"""reslab.models.packed_direct against autograd: each run's logits, loss and every gradient equal a separate run's
(its own module, F.cross_entropy, .backward()) to float tolerance, for every plain form it takes; clipping by each
run's own norm; the optimizer state maps to each run's own and back; other forms pack through autograd (PackedMLP)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reslab.models import build_model
from reslab.models.packed import PackedMLP, pack_models
from reslab.models.packed_direct import DirectPackedMLP, direct_packable

FORMS = [  # depth, layers per block, residual per run, label smoothing
    (3, 2, [False, True, False, True], 0.0),  # twins: the skip by mask
    (2, 1, [True, True, True], 0.1),  # all residual, one layer a block, label smoothing
    (4, 3, [False, False], 0.0),  # all plain
    (0, 2, [False, False], 0.0),  # no blocks: stem and head
]


def _models(depth: int, per_block: int, residual: list[bool], **extra: object) -> list[torch.nn.Module]:
    torch.manual_seed(len(residual) + depth)
    return [build_model("mlp", input_shape=(1, 6, 6), num_classes=5, width=8, depth=depth, residual=r,
                        layers_per_block=per_block, **extra) for r in residual]


def _separate(models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor, smoothing: float) -> list[float]:
    losses = []
    for i, model in enumerate(models):
        model.zero_grad()
        loss = F.cross_entropy(model(x[i]), y[i], label_smoothing=smoothing)
        loss.backward()
        losses.append(float(loss.detach()))
    return losses


def _batch(n: int, b: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(b)
    return torch.randn(n, b, 1, 6, 6, generator=gen), torch.randint(0, 5, (n, b), generator=gen)


@pytest.mark.parametrize("depth, per_block, residual, smoothing", FORMS)
def test_direct_gradients_equal_autograd(depth: int, per_block: int, residual: list[bool], smoothing: float) -> None:
    models = _models(depth, per_block, residual)
    pack = pack_models(models)
    assert isinstance(pack, DirectPackedMLP)
    x, y = _batch(len(models))
    losses, logits = pack.loss_and_grads(x, y, smoothing)
    assert torch.allclose(losses, torch.tensor(_separate(models, x, y, smoothing)), rtol=1e-6)
    params = list(pack.parameters())
    for i, model in enumerate(models):
        assert torch.allclose(logits[i], model(x[i]).detach(), atol=1e-6)
        for (j, take), (name, own) in zip(pack._slots(i), model.named_parameters()):
            assert torch.allclose(take(params[j].grad), own.grad, rtol=1e-5, atol=1e-7), (i, name)


def test_clipping_uses_each_runs_own_norm() -> None:
    models = _models(3, 2, [False, True, True])
    pack, x, y = DirectPackedMLP(models), *_batch(3)
    pack.loss_and_grads(x, y, 0.0)
    _separate(models, x, y, 0.0)
    norms = [float(torch.nn.utils.clip_grad_norm_(m.parameters(), 0.05)) for m in models]
    assert len(set(round(n, 4) for n in norms)) == 3 and min(norms) > 0.05  # every run is clipped, each by its own
    pack.clip_grad_norm_(0.05)
    params = list(pack.parameters())
    for i, model in enumerate(models):
        for (j, take), own in zip(pack._slots(i), model.parameters()):
            assert torch.allclose(take(params[j].grad), own.grad, rtol=1e-5, atol=1e-8)


def test_optimizer_state_maps_to_each_run_and_back() -> None:
    """After two packed Adam steps, run i's state is what its own Adam holds after the same two steps; stacking the
    runs' states gives the packed state back."""
    models = _models(2, 2, [False, True])
    pack, x, y = DirectPackedMLP(models), *_batch(2)
    opt = torch.optim.Adam(pack.parameters(), lr=1e-2)
    own = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in models]
    for _ in range(2):
        pack.loss_and_grads(x, y, 0.0)
        opt.step()
        _separate(models, x, y, 0.0)
        for o in own:
            o.step()
    packed = opt.state_dict()
    for i, o in enumerate(own):
        mine, theirs = pack.optimizer_state_of(packed, i), o.state_dict()
        assert mine["param_groups"][0]["params"] == theirs["param_groups"][0]["params"]
        for k, values in theirs["state"].items():
            for key, v in values.items():
                assert torch.allclose(mine["state"][k][key], v, rtol=1e-5, atol=1e-8), (i, k, key)
                assert mine["state"][k][key].is_contiguous()
    back = pack.stacked_optimizer_state([pack.optimizer_state_of(packed, i) for i in range(2)])
    for j, values in packed["state"].items():
        for key, v in values.items():
            assert torch.equal(back["state"][j][key], v), (j, key)


def test_other_forms_pack_through_autograd() -> None:
    """Layer norm, pre-activation and ReZero's scalar are not the plain form: PackedMLP, whose gradients also equal
    separate runs'."""
    for extra in ({"norm": "layer"}, {"preact": True}, {"rezero": True}):
        models = _models(2, 2, [True, True], **extra)
        assert not direct_packable(models[0])
        pack = pack_models(models)
        assert isinstance(pack, PackedMLP)
        x, y = _batch(2)
        losses, _ = pack.loss_and_grads(x, y, 0.0)
        assert torch.allclose(losses, torch.tensor(_separate(models, x, y, 0.0)), rtol=1e-6)
        for i, model in enumerate(models):
            for stacked, own in zip(pack.stacked, model.parameters()):
                assert torch.allclose(stacked.grad[i], own.grad, rtol=1e-5, atol=1e-7)
    assert isinstance(pack_models(_models(2, 2, [True, False]), direct=False), PackedMLP)  # under autocast


@pytest.mark.parametrize("preact", [False, True])
def test_batch_norm_packs_each_run_with_its_own_statistics(preact: bool) -> None:
    """Batch norm (post-act and pre-act, whose final norm is batch norm too): each run's training forward normalises
    by its own batch and updates its own running statistics, as its module does; predict uses the running
    statistics (eval mode) and leaves them be; write_to hands them back."""
    models = _models(3, 2, [False, True, True], norm="batch", preact=preact)
    for model in models:  # running statistics that differ per run, as after some training
        for name, buf in model.named_buffers():
            if "running" in name:
                buf.uniform_(0.5, 1.5)
    pack = pack_models(models)
    assert isinstance(pack, PackedMLP)
    x, y = _batch(3)
    losses, _ = pack.loss_and_grads(x, y, 0.0)
    assert torch.allclose(losses, torch.tensor(_separate(models, x, y, 0.0)), rtol=1e-5)  # modules in train mode
    for i, model in enumerate(models):
        for stacked, own in zip(pack.stacked, model.parameters()):
            assert torch.allclose(stacked.grad[i], own.grad, rtol=1e-4, atol=1e-6)
        for stacked, (name, own) in zip(pack.stacked_buffers.values(), model.named_buffers()):
            assert torch.allclose(stacked[i].to(own.dtype), own, rtol=1e-5, atol=1e-7), name
    before = [b.clone() for b in pack.stacked_buffers.values()]
    with torch.no_grad():
        logits = pack.predict(x)
        for i, model in enumerate(models):
            assert torch.allclose(logits[i], model.eval()(x[i]), rtol=1e-5, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, pack.stacked_buffers.values())) and pack.training
    fresh = _models(3, 2, [False, True, True], norm="batch", preact=preact)
    pack.write_to(fresh)
    for model, own in zip(fresh, models):
        for (name, a), b in zip(model.named_buffers(), own.buffers()):
            assert torch.equal(a, b), name
