"""How many local jobs a sweep should run at once: the MLP depth sweep's runs with --jobs 1 and --jobs 2.

Each setting runs the same runs of sweeps/mlp-depth-mnist.yaml (or --sweep FILE) with `reslab sweep` in its own
process, into its own temporary folder, and the wall time gives runs per minute. The sweep file is copied with
the changes asked for (--depths, --seeds, --epochs, --train-size to make the measurement shorter; --threads to
pin train.threads, or `rule` for none: then a run gets the free cores // jobs threads, reslab/sweep/threads.py).
Settings alternate over --repeats rounds, so drift on a shared machine hits them alike; a setting that runs past
--timeout is stopped and counted at its runs so far.

Usage: python bench/sweep_jobs.py [--jobs 1 2] [--threads rule|N] [--depths 8 64] [--seeds 1] [--epochs 1]
       [--train-size N] [--repeats 1] [--timeout 600] [--data-dir ../shared/data]
Prints a line per measurement and, last, one JSON line with runs/minute per setting and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def sweep_copy(source: Path, out: Path, args: argparse.Namespace) -> int:
    """A copy of the sweep file with the bench's changes; returns its number of runs."""
    values = yaml.safe_load(source.read_text())
    values["set"] = dict(values.get("set") or {})
    train = dict(values["set"].pop("train", {}) or {})
    if args.epochs:
        train["epochs"] = args.epochs
    train.pop("threads", None)
    values["set"].pop("train.threads", None)
    if args.threads != "rule":
        train["threads"] = int(args.threads)
    values["set"]["train"] = train
    if args.train_size:
        values["set"]["data.train_size"] = args.train_size
    if args.depths:
        values["grid"]["model.depth"] = args.depths
    if args.seeds:
        values["seeds"] = args.seeds
    out.write_text(yaml.safe_dump(values, sort_keys=False))
    seeds = values.get("seeds", 1)
    runs = len(seeds) if isinstance(seeds, list) else int(seeds)
    for options in values["grid"].values():
        runs *= len(options)
    return runs


def finished_runs(runs_dir: Path) -> int:
    return sum(1 for p in runs_dir.glob("*/runs/*/summary.json"))


def measure(sweep: Path, jobs: int, data_dir: str, timeout: float, scratch: Path) -> tuple[int, float]:
    """(finished runs, wall seconds) of `reslab sweep` with `jobs` jobs."""
    runs_dir = Path(tempfile.mkdtemp(dir=scratch))
    cmd = [sys.executable, "-m", "reslab.cli", "sweep", str(sweep), "--jobs", str(jobs), "--runs-dir", str(runs_dir),
           "--data-dir", data_dir]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the sweep stops its runs (they checkpoint); finished ones are counted
        proc.wait()
    return finished_runs(runs_dir), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=REPO / "sweeps" / "mlp-depth-mnist.yaml")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", default="rule", help="rule (free cores // jobs) or a number for every run")
    parser.add_argument("--depths", type=int, nargs="+")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        sweep = scratch / args.sweep.name
        total = sweep_copy(args.sweep, sweep, args)
        rates: dict[int, list[float]] = {j: [] for j in args.jobs}
        for round_ in range(args.repeats):
            order = args.jobs if round_ % 2 == 0 else list(reversed(args.jobs))
            for jobs in order:
                done, seconds = measure(sweep, jobs, args.data_dir, args.timeout, scratch)
                rates[jobs].append(done / seconds * 60)
                print(f"--jobs {jobs} (threads {args.threads}): {done} of {total} runs in {seconds:.1f} s = "
                      f"{rates[jobs][-1]:.2f} runs/min", flush=True)
    medians = {j: statistics.median(r) for j, r in rates.items()}
    first = args.jobs[0]
    print(json.dumps({"cpu_count": os.cpu_count(), "threads": args.threads, "runs": total,
                      "runs_per_min": {str(j): round(m, 3) for j, m in medians.items()},
                      "ratio_vs_jobs_%d" % first: {str(j): round(m / medians[first], 3) if medians[first] else None
                                                    for j, m in medians.items()}}))


if __name__ == "__main__":
    main()
