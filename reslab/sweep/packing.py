"""Which of a sweep's runs train together as one pack (reslab.train_packed), and which alone.

Runs pack when their configs are equal but for the seed, the init and the skip (`train_packed.PACK_FREE`), their
model packs (the MLP, batch norm included), and they start from one position: all fresh, or all resumed from
checkpoints of one epoch, batch and step (a pack that was stopped resumes as that pack). Packs are cut to
`MAX_PACK` runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from reslab.config import flatten, from_dict
from reslab.errors import ReslabError
from reslab.runs import RunFolder
from reslab.sweep.backends import Task
from reslab.train_packed import PACK_FREE, pack_problem

# runs per pack: on the busy 2-core CPU the training loops of depth-32 w16 MLPs ran 2.3-2.9x faster packed by 6
# and 3.5x by 12 (bench/pack.py); larger packs grow the stem's 784-wide matmuls towards compute-bound
MAX_PACK = 12


def pack_key(task: Task) -> str | None:
    """What a run must share with the others of its pack (its config but PACK_FREE, and its position); None when
    it trains alone."""
    try:
        cfg = from_dict(task.cfg)
    except ReslabError:
        return None  # the run reports its own error when it trains alone
    if pack_problem([cfg]) is not None:
        return None
    shared = {k: v for k, v in flatten(task.cfg).items() if k not in PACK_FREE}
    return json.dumps([shared, _position(task.resume)], sort_keys=True, default=str)


def _position(resume: str | None) -> Any:
    """(epoch, batch, step) of the checkpoint a run resumes from; None for a fresh run."""
    if resume is None:
        return None
    try:
        state = RunFolder(Path(resume)).load_checkpoint("last")["state"]
        return [state["epoch"], state["batch"], state["step"]]
    except (ReslabError, KeyError, TypeError, OSError):
        return "unreadable: " + resume  # alone: the trainer says what is wrong with it


def units(tasks: Sequence[Task], max_pack: int | None = None) -> list[tuple[Task, ...]]:
    """`tasks` cut into what trains as one: packs of several runs, and single runs, in the tasks' order.

    A pack's numbers do not depend on which other runs share it, but differ from a separate run's in the last
    float digits; so a pack is never cut to feed more workers (`--jobs`): the same sweep packs the same way."""
    max_pack = max_pack or MAX_PACK
    groups: dict[Any, list[Task]] = {}
    for i, task in enumerate(tasks):
        key = pack_key(task)
        groups.setdefault(i if key is None else key, []).append(task)
    cut: list[tuple[Task, ...]] = []
    for group in groups.values():
        size = math.ceil(len(group) / math.ceil(len(group) / max_pack))  # even parts of at most max_pack
        cut += [tuple(group[i:i + size]) for i in range(0, len(group), size)]
    return cut
