"""How often a two-process torchrun run on the CPU fails: the same tiny run many times, two at once.

Why: a rare abort in one rank's exit (torch's gloo teardown during the interpreter's finalisation) failed
CI once. A unit test runs the command once; this runs it N times and counts, so a fix is judged by a rate.

    python bench/ddp_repeat.py --runs 150 --parallel 2

Prints one line per failed run (its exit code and the last line each rank wrote) and a final count.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = ("data.train_size=199", "train.epochs=2", "train.log_every=3", "train.threads=1", "data.val_size=100",
            "data.batch_size=32", "train.deterministic=true", "optim.lr=3e-3")  # as tests/train/test_distributed.py


def one_run(i: int, data: Path, work: Path) -> tuple[int, str]:
    """(exit code, what the ranks last wrote to stderr) of run i."""
    logs = work / f"logs{i}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--log-dir",
           str(logs), "--tee", "2", "-m", "reslab", "train", "seed-mlp", "--data-dir", str(data), "--runs-dir",
           str(work / f"runs{i}"), "--device", "cpu", "--quiet", *[a for s in SETTINGS for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    last = {p.parent.name: (p.read_text().strip().splitlines() or ["(nothing)"])[0][:120]
            for p in logs.rglob("stderr.log")}
    return proc.returncode, "; ".join(f"rank {r}: {line}" for r, line in sorted(last.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                        help="a folder with MNIST/raw (the tests' generated copy is not imported from here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data_dir
        t0, failed = time.perf_counter(), 0
        with ThreadPoolExecutor(args.parallel) as pool:
            for i, (code, last) in enumerate(pool.map(lambda i: one_run(i, data, work), range(args.runs))):
                if code != 0:
                    failed += 1
                    print(f"run {i + 1}: exit {code}; {last}", flush=True)
    print(f"{failed} of {args.runs} two-process runs failed ({args.parallel} at once, "
          f"{time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
