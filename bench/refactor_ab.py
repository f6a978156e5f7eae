"""Did a code change slow the training loop? reslab at two checkouts, alternating, on the same data.

Runs `reslab train PRESET --epochs E` from checkout A and checkout B in turn (each in its own process,
`PYTHONPATH` pointing at the checkout), `--repeats` times, and prints the medians of metrics.csv's
`seconds` (training + validation, per epoch after the first) and of samples/s, with B / A. Used for the
architecture refactor: A = the commit before it (`git worktree add /tmp/old b53325f`), B = this tree.

    python bench/refactor_ab.py --a /tmp/old --b . --preset seed-mlp --data-dir ../shared/data --repeats 7
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one_run(checkout: Path, preset: str, epochs: int, extra: list[str], runs_dir: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    out = subprocess.run([sys.executable, "-m", "reslab.cli", "train", preset, "--epochs", str(epochs), "--quiet",
                          "--runs-dir", str(runs_dir), *extra], capture_output=True, text=True, env=env,
                         cwd=checkout, check=True)
    rows = list(csv.DictReader(open(Path(out.stdout.strip().splitlines()[-1]) / "metrics.csv")))[1:] or []
    return (statistics.median(float(r["seconds"]) for r in rows),
            statistics.median(float(r["samples_per_s"]) for r in rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=Path, required=True)
    p.add_argument("--b", type=Path, default=Path("."))
    p.add_argument("--preset", default="seed-mlp")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--data-dir")
    p.add_argument("--dataset")
    p.add_argument("--set", action="append", default=[], help="config overrides for both (e.g. train.threads=1)")
    args = p.parse_args()
    extra = (["--data-dir", args.data_dir] if args.data_dir else []) + (["--dataset", args.dataset] if args.dataset else [])
    extra += [a for kv in args.set for a in ("--set", kv)]
    times: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.repeats):
            for name, checkout in (("A", args.a), ("B", args.b)) if i % 2 == 0 else (("B", args.b), ("A", args.a)):
                times[name].append(one_run(checkout, args.preset, args.epochs, extra, Path(scratch) / name))
                print(f"repeat {i + 1} {name}: {times[name][-1][0]:.3f} s/epoch, {times[name][-1][1]:.0f} samples/s",
                      file=sys.stderr, flush=True)
    med = {k: (statistics.median(t for t, _ in v), statistics.median(s for _, s in v)) for k, v in times.items()}
    print(f"{args.preset}: A {med['A'][0]:.3f} s/epoch ({med['A'][1]:.0f} samples/s), B {med['B'][0]:.3f} s/epoch "
          f"({med['B'][1]:.0f} samples/s): B / A time = {med['B'][0] / med['A'][0]:.3f} "
          f"(medians of {args.repeats}, epochs after the first)")


if __name__ == "__main__":
    main()
