"""The MLP depth sweep, old code vs new code, as a ratio measured in one run on this machine.

"Old" is the package as it was at --old (default 5bf83a1: main before issue 22, so before worker data reuse, the
free-cores thread rule and run packing), extracted with `git archive` into a temporary folder; "new" is this
working tree. Each runs the same copy of sweeps/mlp-depth-mnist.yaml (or --sweep FILE; --depths, --seeds, --epochs,
--train-size make it shorter) with `reslab sweep` in its own process and its own folder; the two alternate over
--repeats rounds so that drift on a shared machine hits both alike. The ratio is old seconds / new seconds for
the whole sweep (start-up included), medians over the rounds; both must finish every run.

Data: --data-dir (default ../shared/data); where it holds no MNIST, generated MNIST-like images (6,000 train /
1,000 test; the output says so), with the sweep's validation split cut to 1,000 to fit.

Usage: python bench/sweep_speedup.py [--old REV] [--jobs N] [--depths 8 64] [--seeds 1] [--epochs 1]
       [--train-size N] [--repeats 3] [--timeout 1800] [--data-dir ../shared/data]
Prints a line per measurement, the ratio in words, and, last, one JSON line.
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
sys.path.insert(0, str(REPO / "bench"))
from sweep_jobs import finished_runs, sweep_copy  # noqa: E402  (the sweep copy both benches make)


def old_tree(rev: str, into: Path) -> Path:
    """The reslab package at `rev`, extracted into `into` (a folder to put on PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "reslab"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run_sweep(code: Path, sweep: Path, data_dir: str, jobs: int | None, timeout: float, scratch: Path
              ) -> tuple[int, float]:
    """(finished runs, wall seconds) of `reslab sweep` with the package in `code`."""
    runs_dir = Path(tempfile.mkdtemp(dir=scratch))
    cmd = [sys.executable, "-m", "reslab.cli", "sweep", str(sweep), "--runs-dir", str(runs_dir), "--data-dir", data_dir,
           *(["--jobs", str(jobs)] if jobs else [])]
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the sweep checkpoints its runs; the finished ones are counted
        proc.wait()
    return finished_runs(runs_dir), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="5bf83a1", help="git revision of the old code (default: main before issue 22)")
    parser.add_argument("--sweep", type=Path, default=REPO / "sweeps" / "mlp-depth-mnist.yaml")
    parser.add_argument("--jobs", type=int, help="--jobs of both sweeps (default: reslab's own default)")
    parser.add_argument("--threads", default="1", help="train.threads of every run (rule: none, each code's default)")
    parser.add_argument("--depths", type=int, nargs="+")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        sweep = scratch / args.sweep.name
        total = sweep_copy(args.sweep, sweep, args)
        data_dir, data = str(args.data_dir.absolute()), f"MNIST in {args.data_dir}"
        if not (args.data_dir / "MNIST").is_dir():
            sys.path.insert(0, str(REPO / "tests"))
            from helpers.fakedata import write_mnist

            data_dir = str(write_mnist(scratch / "data", n_train=6000, n_test=1000))
            data = f"GENERATED MNIST-like data ({args.data_dir} has no MNIST)"
            values = yaml.safe_load(sweep.read_text())
            values["set"]["data.val_size"] = 1000
            sweep.write_text(yaml.safe_dump(values, sort_keys=False))
        codes = {"old": old_tree(args.old, Path(tempfile.mkdtemp(dir=scratch))), "new": REPO}
        print(f"sweep_speedup: {sweep.name}, {total} runs, {data}; old = {args.old}, new = {REPO}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
        seconds: dict[str, list[float]] = {"old": [], "new": []}
        for round_ in range(args.repeats):
            for name in (("old", "new") if round_ % 2 == 0 else ("new", "old")):
                done, took = run_sweep(codes[name], sweep, data_dir, args.jobs, args.timeout, scratch)
                if done != total:
                    sys.exit(f"sweep_speedup: the {name} code finished {done} of {total} runs in {took:.0f} s "
                             f"(timeout {args.timeout:.0f} s); no ratio")
                seconds[name].append(took)
                print(f"round {round_ + 1}: {name} {took:.1f} s for {total} runs", flush=True)
    old, new = statistics.median(seconds["old"]), statistics.median(seconds["new"])
    print(f"sweep_speedup: new code {old / new:.2f}x as fast as old ({new:.1f} s against {old:.1f} s, medians of "
          f"{args.repeats}; {total} runs)")
    print(json.dumps({"data": data, "runs": total, "old": args.old, "jobs": args.jobs, "threads": args.threads,
                      "cpu_count": os.cpu_count(), "seconds": seconds, "median_seconds": {"old": old, "new": new},
                      "speedup_new_vs_old": round(old / new, 3)}))


if __name__ == "__main__":
    main()
