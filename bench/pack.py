"""Packed training against separate runs: the same N runs of a deep w16 MLP, trained one after another
(`reslab.train.train`) and as one pack (`reslab.train_packed.train_pack`), in this one process.

The runs are the depth study's: width 16, blocks of two Linear layers, no normalisation, Adam 1e-3, batch 128, MNIST
(a seeded subset of --train-size images), gradient-flow records every 100 steps as in every sweep; --seeds N seeds,
and with --twins each seed's plain and residual twin (2N runs). The two ways alternate over --repeats rounds, so
drift on a shared machine hits them alike. Two ratios, each the median over rounds of separate / packed: the wall
clock of the whole runs (setup, evaluation, plots and files included: what a sweep waits for), and the training
loops alone (summary.json's train_seconds: summed over separate runs, one pack's for the pack).

Usage: python bench/pack.py [--depth 32] [--seeds 3] [--twins] [--train-size 4000] [--epochs 1] [--repeats 3]
       [--threads 1] [--device cpu] [--data-dir ../shared/data]
Prints a line per measurement and, last, one JSON line with the medians and their ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def configs(args: argparse.Namespace, runs_dir: Path) -> list:
    from reslab.config import resolve

    twins = ("false", "true") if args.twins else ("false",)
    return [resolve("plain-mlp8", [f"data.data_dir={args.data_dir}", f"runs_dir={runs_dir}", "model.width=16",
                                   f"model.depth={args.depth}", "model.layers_per_block=2", "data.val_size=1000",
                                   f"data.train_size={args.train_size}", "data.test_size=2000",
                                   f"train.epochs={args.epochs}", f"train.threads={args.threads}",
                                   f"train.device={args.device}", f"train.seed={seed}", f"model.residual={residual}",
                                   f"name=s{seed}-{residual}"])
            for seed in range(args.seeds) for residual in twins]


def measure(way: str, cfgs: list) -> tuple[float, float, list[float]]:
    """(wall seconds, training-loop seconds, test accuracies) of training `cfgs` the given way."""
    from reslab.train import RunResult, train
    from reslab.train_packed import train_pack

    start = time.perf_counter()
    if way == "separate":
        results = [train(cfg, progress=False) for cfg in cfgs]
        loops = sum(r.summary["train_seconds"] for r in results)
    else:
        results = train_pack(cfgs)
        bad = [r for r in results if not isinstance(r, RunResult)]
        if bad:
            raise SystemExit(f"the pack failed: {bad[0]!r}")
        loops = max(r.summary["train_seconds"] for r in results)
    return time.perf_counter() - start, loops, [r.summary["test_acc"] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--twins", action="store_true", help="each seed's plain and residual twin")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    from reslab.data import load_dataset

    load_dataset("mnist", args.data_dir)  # the cache filled before anything is timed
    times: dict[str, list[tuple[float, float]]] = {"separate": [], "packed": []}
    accs: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        for way in (("separate", "packed") if repeat % 2 == 0 else ("packed", "separate")):
            with tempfile.TemporaryDirectory() as tmp:
                cfgs = configs(args, Path(tmp))
                wall, loops, accs[way] = measure(way, cfgs)
            times[way].append((wall, loops))
            print(f"repeat {repeat + 1}: {way:8s} {len(cfgs)} runs, wall {wall:7.2f} s, training loops {loops:7.2f} s",
                  flush=True)
    wall = {way: statistics.median(t[0] for t in ts) for way, ts in times.items()}
    loops = {way: statistics.median(t[1] for t in ts) for way, ts in times.items()}
    # each round's two measurements ran back to back: the median of the rounds' ratios is the steadier number
    ratios = [[s[k] / p[k] for s, p in zip(times["separate"], times["packed"])] for k in (0, 1)]
    worst = max(abs(a - b) for a, b in zip(accs["separate"], accs["packed"]))
    print(json.dumps({"runs": len(configs(args, Path("."))), "depth": args.depth, "width": 16, "twins": args.twins,
                      "train_size": args.train_size, "epochs": args.epochs, "threads": args.threads,
                      "device": args.device, "torch": torch.__version__, "wall_s": wall, "loops_s": loops,
                      "wall_ratio": statistics.median(ratios[0]), "loops_ratio": statistics.median(ratios[1]),
                      "max_test_acc_difference": worst}))


if __name__ == "__main__":
    main()
