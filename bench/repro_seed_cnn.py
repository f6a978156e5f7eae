"""Does reslab's seed-cnn (or seed-resnet) train like the notebook's pipeline on the same data? (issue 13)

Trains the model for `--epochs` with several seeds through both pipelines on the CIFAR-10 JPEG copy and
prints the per-epoch validation accuracy of every run, then per pipeline mean +/- std of the final
training loss, final validation accuracy and test accuracy, and the 95% t interval (Welch) of the
difference reslab - notebook. Runs are appended to OUT/results.jsonl as they finish, so an interrupted
study continues where it stopped.

The notebook's pipeline is ../shared/bench/seed_lab1.py run unchanged; a fake `wandb` module records
what it logs (per-step loss, per-epoch validation accuracy) instead of writing W&B files, and its torch
and numpy RNGs are seeded so its runs repeat.

    python bench/repro_seed_cnn.py --model seed-cnn --seeds 0 1 2 --out bench-results/repro-seed-cnn
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXERCISE = {"seed-cnn": "cnn", "seed-resnet": "resnet"}

# run inside a child process: the notebook's script with a recording wandb and seeded RNGs
NOTEBOOK_CHILD = r"""
import json, runpy, sys, types
import numpy as np, torch
seed, script, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
logged = {"val": [], "loss": []}
def log(values, **kw):
    if "Validation_accuracy" in values: logged["val"].append(float(values["Validation_accuracy"]))
    if "Train_loss" in values: logged["loss"].append((int(values["epoch"]), float(values["Train_loss"])))
fake = types.ModuleType("wandb"); fake.init = fake.finish = lambda *a, **k: None; fake.log = log
sys.modules["wandb"] = fake
torch.manual_seed(seed); np.random.seed(seed)
sys.argv = [script, *argv]
runpy.run_path(script, run_name="__main__")
print("RECORDED " + json.dumps(logged))
"""


def run_notebook(model: str, seed: int, epochs: int, zip_path: Path, script: Path, workers: int) -> dict:
    cmd = [sys.executable, "-c", NOTEBOOK_CHILD, str(seed), str(script), EXERCISE[model], "--epochs", str(epochs),
           "--cifar-zip", str(zip_path), "--root", str(zip_path.parent), "--workers", str(workers)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "TQDM_DISABLE": "1"})
    lines = out.stdout.strip().splitlines()
    final = json.loads(next(line for line in lines if line.startswith("{")))
    recorded = json.loads(next(line for line in lines if line.startswith("RECORDED "))[len("RECORDED "):])
    val = recorded["val"][:epochs]  # the last logged accuracy is the test set's
    epoch_loss = [sum(v for e, v in recorded["loss"] if e == k) / max(1, sum(e == k for e, _ in recorded["loss"]))
                  for k in range(epochs)]
    return {"val_acc": val, "train_loss": epoch_loss, "final_train_loss": final["train_loss"],
            "final_val_acc": final["val_acc"], "test_acc": final["test_acc"], "seconds": final["train_seconds"]}


def run_reslab(model: str, seed: int, epochs: int, zip_path: Path, runs_dir: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "reslab.cli", "train", model, "--dataset", f"imagefolder:{zip_path}",
           "--seed", str(seed), "--epochs", str(epochs), "--quiet", "--runs-dir", str(runs_dir),
           "--name", f"{model}-s{seed}", *[a for kv in extra for a in ("--set", kv)]]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    run = Path(out.stdout.strip().splitlines()[-1])
    import csv

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    summary = json.loads((run / "summary.json").read_text())
    return {"val_acc": [float(r["val_acc"]) for r in rows], "train_loss": [float(r["train_loss"]) for r in rows],
            "final_train_loss": summary["final_train_loss"], "final_val_acc": summary["final_val_acc"],
            "test_acc": summary["test_acc"], "seconds": summary["train_seconds"], "run": str(run)}


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its 95% Welch t interval."""
    from scipy import stats

    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    return sum(a) / len(a) - sum(b) / len(b), float(ci.low), float(ci.high)


def report(results: list[dict], model: str) -> None:
    import statistics

    print(f"\n{model}: per-epoch validation accuracy")
    for r in results:
        print(f"  {r['pipeline']:<8} seed {r['seed']}: " + " ".join(f"{v:.3f}" for v in r["val_acc"]))
    by = {p: [r for r in results if r["pipeline"] == p] for p in ("reslab", "notebook")}
    print(f"\n| metric | reslab (n={len(by['reslab'])}) | notebook (n={len(by['notebook'])}) "
          "| reslab - notebook [95% CI] |\n| --- | --- | --- | --- |")
    for key in ("final_train_loss", "final_val_acc", "test_acc", "seconds"):
        cols = []
        for p in ("reslab", "notebook"):
            v = [r[key] for r in by[p]]
            cols.append(f"{statistics.mean(v):.4f} +/- {statistics.stdev(v):.4f}" if len(v) > 1 else
                        (f"{v[0]:.4f}" if v else "-"))
        a, b = [r[key] for r in by["reslab"]], [r[key] for r in by["notebook"]]
        diff = "n < 2" if min(len(a), len(b)) < 2 else "{:+.4f} [{:+.4f}, {:+.4f}]".format(*welch(a, b))
        print(f"| {key} | {cols[0]} | {cols[1]} | {diff} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(EXERCISE), default="seed-cnn")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--zip", type=Path, default=SHARED / "data" / "CIFAR10-JPEG" / "cifar10-jpeg.zip")
    p.add_argument("--notebook", type=Path, default=SHARED / "bench" / "seed_lab1.py")
    p.add_argument("--out", type=Path, default=Path("bench-results") / "repro")
    p.add_argument("--pipelines", nargs="+", default=["reslab", "notebook"])
    p.add_argument("--set", action="append", default=[], help="config overrides for the reslab runs")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--notebook-workers", type=int, default=4,
                   help="the notebook's DataLoader workers (its own: 4). The batches and their order come from the "
                        "main process's sampler either way; 0 only saves process overhead on a small machine")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "results.jsonl"
    done = [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []
    key = lambda r: (r["model"], r["pipeline"], r["seed"], r["epochs"], tuple(r.get("set", [])))  # noqa: E731
    have = {key(r) for r in done}
    for seed in ([] if args.report_only else args.seeds):
        for pipeline in args.pipelines:
            want = {"model": args.model, "pipeline": pipeline, "seed": seed, "epochs": args.epochs,
                    "set": args.set if pipeline == "reslab" else []}
            if key(want) in have:
                continue
            t0 = time.time()
            print(f"[{time.strftime('%H:%M:%S')}] {args.model} {pipeline} seed {seed} ...", file=sys.stderr, flush=True)
            res = (run_reslab(args.model, seed, args.epochs, args.zip, args.out / "runs", args.set)
                   if pipeline == "reslab" else run_notebook(args.model, seed, args.epochs, args.zip, args.notebook,
                                                             args.notebook_workers))
            record = {**want, **res, "wall": time.time() - t0,
                      **({"workers": args.notebook_workers} if pipeline == "notebook" else {})}
            with open(store, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            done.append(record)
            print(f"  final val {res['final_val_acc']:.4f} test {res['test_acc']:.4f} "
                  f"loss {res['final_train_loss']:.4f} ({record['wall']:.0f} s)", file=sys.stderr, flush=True)
    report([r for r in done if r["model"] == args.model and r["epochs"] == args.epochs
            and r.get("set", []) == (args.set if True else [])] if not args.set else
           [r for r in done if r["model"] == args.model and r["epochs"] == args.epochs
            and (r["pipeline"] == "notebook" or r.get("set", []) == args.set)], args.model)


if __name__ == "__main__":
    main()
