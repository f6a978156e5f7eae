"""Where a sweep's time goes: `reslab sweep` run in this process with timers around its parts (issue 22's profile).

Wraps, for their wall seconds and calls: the packed trainer's parts (a pack's epochs, its training steps, the steps
gradflow records, its batches, its packed evaluation, each run's setup and end), the one-run code it shares
(`end_epoch`, `save_last`, `finish`, `Session.evaluate`, checkpoint writes) and the whole local run. A timer costs
~1 us a call, far below a step. Parts nest (a pack's epochs hold its steps), so the column does not add up; what the
process spends outside `run_local` is start-up, planning and the aggregate (tables, intervals, figures).

Usage: python bench/sweep_split.py [SWEEP] [--data-dir ../shared/data]   (default: sweeps/mlp-depth-mnist.yaml)
"""

from __future__ import annotations

import argparse
import collections
import os
import functools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
seconds: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()


def timed(owner: Any, name: str, label: str) -> None:
    """Replace owner.name with a timed wrapper (functions and methods alike)."""
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[label] += time.perf_counter() - start
            calls[label] += 1

    setattr(owner, name, wrapper)


def timed_batches(owner: Any, label: str) -> None:
    """Time each batch a `batches` generator method serves (the gathering, not the step that uses it)."""
    original = owner.batches

    def batches(self: Any, start: int = 0) -> Iterator[Any]:
        it = original(self, start)
        while True:
            begin = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                seconds[label] += time.perf_counter() - begin
            calls[label] += 1
            yield item

    owner.batches = batches


def instrument() -> None:
    import reslab.packed_steps as steps
    import reslab.runs as runs
    import reslab.session as session
    import reslab.sweep.local as local
    import reslab.train as train
    import reslab.train_packed as packed
    from reslab.data.pack import PackBatches

    for name in ("step_packed", "step_each", "evaluate_pack"):
        timed(steps, name, f"pack: {name}")
        setattr(packed, name, getattr(steps, name))  # train_packed took them by name
    for name in ("_start", "_epoch", "_finish"):
        timed(packed, name, f"pack: {name.lstrip('_')}")
    for name in ("end_epoch", "save_last", "finish"):
        timed(train, name, f"run: {name}")
        setattr(packed, name, getattr(train, name))
    timed(session.Session, "evaluate", "run: Session.evaluate (alone)")
    timed(runs.RunFolder, "save_checkpoint", "run: save_checkpoint")
    timed(local, "run_local", "run_local (every run)")
    timed_batches(PackBatches, "pack: batches")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", nargs="?", type=Path, default=REPO / "sweeps" / "mlp-depth-mnist.yaml")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # this tree's reslab, whichever one is installed
    start = time.perf_counter()
    instrument()
    from reslab.cli import main as reslab_main

    with tempfile.TemporaryDirectory() as runs_dir:
        code = reslab_main(["sweep", str(args.sweep), "--runs-dir", runs_dir, "--data-dir", str(args.data_dir)])
    if code:
        sys.exit(f"sweep_split: reslab sweep exited with {code}")
    print(f"sweep_split: {args.sweep.name}, {time.perf_counter() - start:.1f} s in this process (reslab's imports "
          f"included, the interpreter's start not); load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    for label, total in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"{label:36s} {total:8.2f} s {calls[label]:8d} calls", file=sys.stderr)


if __name__ == "__main__":
    main()
