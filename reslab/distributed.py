"""One run on several processes (`torchrun --nproc_per_node=N -m reslab train ...`): ranks, devices, collectives.

torchrun starts N processes with WORLD_SIZE, RANK and LOCAL_RANK set. Each joins one process group (NCCL for
CUDA tensors with gloo for CPU ones on GPUs; gloo on the CPU), trains its shard of every global batch with the
model in DistributedDataParallel, and takes part in the few all-reductions the trainer needs: the epoch's
metric sums, the evaluation's sums, the per-step loss the observers see, and the decision to stop. Rank 0
alone writes the run folder. In a plain process `Ranks()` is the identity everywhere, so the trainer has one
code path, and a single process computes exactly what it did before this module existed.
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from reslab.config import RunConfig
from reslab.errors import ConfigError


@dataclass(frozen=True)
class Launch:
    """Where torchrun put this process."""

    rank: int
    local_rank: int  # the process's index on its machine: its GPU
    world_size: int


def launch_from_env(env: dict[str, str] | None = None) -> Launch | None:
    """The torchrun launch this process belongs to; None for a plain process or a world of one."""
    env = dict(os.environ if env is None else env)
    names = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    if not all(name in env for name in names):
        return None
    try:
        rank, local_rank, world = (int(env[name]) for name in names)
    except ValueError:
        raise ConfigError(f"torchrun's RANK, LOCAL_RANK and WORLD_SIZE must be whole numbers, got "
                          f"{', '.join(repr(env[name]) for name in names)}") from None
    if not (0 <= rank < world and local_rank >= 0):
        raise ConfigError(f"RANK {rank} is not in 0..WORLD_SIZE-1 ({world}) or LOCAL_RANK {local_rank} is negative")
    return Launch(rank, local_rank, world) if world > 1 else None


def is_rank0_process() -> bool:
    """Rank 0, or a plain process: the one that prints results."""
    launch = launch_from_env()
    return launch is None or launch.rank == 0


def _rank_device(name: str, local_rank: int) -> torch.device:
    """cuda:LOCAL_RANK (auto or cuda, with CUDA) or the CPU; one named GPU or MPS cannot hold several ranks."""
    if name in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                              "start at most that many processes per node")
        return torch.device("cuda", local_rank)
    if name in ("auto", "cpu"):
        return torch.device("cpu")
    if name == "cuda":
        raise ConfigError("device cuda asked for, but CUDA is not available here (use --device cpu or auto)")
    raise ConfigError(f"train.device {name} cannot take several processes: use auto, cuda (each rank takes "
                      "cuda:LOCAL_RANK) or cpu")


class Flag(Protocol):
    requested: bool


class Ranks:
    """This process's place in a run (rank, world size, device) and the trainer's collectives."""

    def __init__(self, device: torch.device, rank: int = 0, world: int = 1, local_rank: int = 0) -> None:
        self.device, self.rank, self.world, self.local_rank = device, rank, world, local_rank
        self._pending: tuple[Any, Tensor] | None = None  # the stop check in flight: (work, flags)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_rank0(self) -> bool:
        """Rank 0: the one process that writes the run folder, runs the observers and prints."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world size): which part of every global batch this process takes."""
        return self.rank, self.world

    def env_fields(self) -> dict[str, Any]:
        """What env.json adds for a distributed run."""
        return {"world_size": self.world, "backend": dist.get_backend()} if self.distributed else {}

    def prepare(self, model: nn.Module, sync_bn: str) -> nn.Module:
        """Batch norm over the global batch (SyncBatchNorm) where `sync_bn` asks for it; the keys of the
        state_dict stay the same, so checkpoints load into the plain model."""
        if self.distributed and (sync_bn == "on" or (sync_bn == "auto" and self.device.type == "cuda")):
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls: DistributedDataParallel over several processes."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def loss(self, logits: Tensor, y: Tensor, label_smoothing: float, n_global: int) -> tuple[Tensor, Tensor, Tensor]:
        """(the loss to backpropagate, this shard's summed loss, the global batch's mean loss), on the device.

        One process: the batch mean, as ever. Several: DDP averages the ranks' gradients, so each rank
        backpropagates its shard's sum times world / n_global; the gradient is then the global batch mean's
        even where the shards of a short last batch differ in size (or one is empty).
        """
        if not self.distributed:
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            return loss, loss.detach() * len(y), loss.detach()
        loss_sum = F.cross_entropy(logits, y, label_smoothing=label_smoothing, reduction="sum")
        return loss_sum * (self.world / n_global), loss_sum.detach(), self.all_sum(loss_sum.detach()) / n_global

    def summed_loss(self, loss_sum: Tensor, n_local: int, n_global: int) -> tuple[Tensor, Tensor, Tensor]:
        """`loss` for any per-image loss already summed over this shard (distillation): the same three values."""
        if not self.distributed:
            loss = loss_sum / max(1, n_local)
            return loss, loss_sum.detach(), loss.detach()
        return loss_sum * (self.world / n_global), loss_sum.detach(), self.all_sum(loss_sum.detach()) / n_global

    def all_sum(self, values: Tensor) -> Tensor:
        """`values` summed over the ranks (a new tensor; the same one in a single process)."""
        if not self.distributed:
            return values
        total = values.clone()
        dist.all_reduce(total)
        return total

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (batch-norm statistics) on every rank: what its checkpoint holds is what is evaluated."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def from_rank0(self, make: Callable[[], Any]) -> Any:
        """`make()` run on rank 0 alone, its result sent to every rank (a picklable value)."""
        if not self.distributed:
            return make()
        box = [make() if self.is_rank0 else None]
        dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
        return box[0]

    @contextlib.contextmanager
    def rank0_first(self) -> Iterator[None]:
        """Rank 0 runs the block (a download, a cache fill) before the others do."""
        if self.distributed and not self.is_rank0:
            dist.barrier()
        try:
            yield
        finally:
            if self.distributed and self.is_rank0:
                dist.barrier()  # also after an error: the others then meet it themselves, and say the same line

    def agreed(self, flag: Flag) -> Flag:
        """A stop flag every rank reads the same at the same step, so a signal to any rank stops them all at once."""
        return _AgreedStop(self, flag) if self.distributed else flag

    def _stop_check(self, requested: bool) -> bool:
        """Whether any rank had asked to stop at the previous check; starts this one's all-reduce, unwaited."""
        agreed = False
        if self._pending is not None:
            work, flags = self._pending
            work.wait()
            agreed = bool(flags.item())  # a CPU tensor: no device sync
        self._pending = None
        if not agreed:
            flags = torch.tensor([int(requested)], dtype=torch.int32)
            self._pending = (dist.all_reduce(flags, op=dist.ReduceOp.MAX, async_op=True), flags)
        return agreed

    def finish(self) -> None:
        """Wait for the last stop check: every rank started it, so it completes."""
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None


class _AgreedStop:
    """`requested` is whether any rank's flag was set at the previous step (one step late, on every rank)."""

    def __init__(self, ranks: Ranks, flag: Flag) -> None:
        self.ranks, self.flag = ranks, flag

    @property
    def requested(self) -> bool:
        return self.ranks._stop_check(self.flag.requested)


def check_world(cfg: RunConfig, launch: Launch, device: torch.device) -> None:
    """The config errors of a distributed run, found on every rank before any process waits for another."""
    if cfg.data.batch_size % launch.world_size:
        raise ConfigError(f"data.batch_size {cfg.data.batch_size} (the global batch) does not divide among "
                          f"{launch.world_size} processes; use a multiple of {launch.world_size}")
    if cfg.train.sync_bn == "on" and device.type != "cuda":
        raise ConfigError("train.sync_bn=on needs CUDA (torch's SyncBatchNorm runs on GPUs only); on the CPU "
                          "use auto or off: each rank then normalises with its own batch statistics")


@contextlib.contextmanager
def join(cfg: RunConfig, pick_device: Callable[[str], torch.device]) -> Iterator[Ranks]:
    """This process's `Ranks` for one run: under torchrun it joins the process group (and leaves it after,
    also on an error or Ctrl-C); in a plain process it picks the device with `pick_device`.

    A process group the caller already made is used as it is and left to the caller.
    """
    launch = launch_from_env()
    if launch is None:
        yield Ranks(pick_device(cfg.train.device))
        return
    device = _rank_device(cfg.train.device, launch.local_rank)
    check_world(cfg, launch, device)
    owned = not dist.is_initialized()
    if owned:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo",
                                rank=launch.rank, world_size=launch.world_size)
    ranks = Ranks(device, launch.rank, launch.world_size, launch.local_rank)
    try:
        yield ranks
        ranks.finish()
        dist.barrier()  # no rank leaves while another still writes: an early exit can abort torch's gloo teardown
    finally:
        if owned:
            gc.collect()  # DDP's reducer holds the group: free it here, not in the interpreter's finalisation
            with contextlib.suppress(Exception):  # the error that brought us here matters more
                dist.destroy_process_group()
