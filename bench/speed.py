"""One epoch (training + validation) of the notebook's models: the notebook's pipeline vs reslab vs the bare loop.

Each candidate runs in its own process, `--repeats` times, interleaved, and the medians are compared:
- notebook: ../shared/bench/seed_lab1.py (DataLoader, per-sample transforms, tqdm, wandb.log if installed),
  its `train_seconds` for one epoch;
- reslab: `reslab train PRESET --epochs 1`, the `seconds` column of metrics.csv (training + validation);
- bare: the same model and optimizer over pre-normalised float tensors already in memory: randperm slices,
  forward + backward + step, then a validation forward pass. Nothing else: the ceiling.

Usage: python bench/speed.py [--models mlp cnn] [--repeats 3] [--shared ../shared]
Prints a line per measurement and a JSON summary with the ratios as the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESETS = {"mlp": "seed-mlp", "cnn": "seed-cnn", "resnet": "seed-resnet"}


def run_notebook(model: str, shared: Path) -> float:
    cmd = [sys.executable, str(shared / "bench" / "seed_lab1.py"), model, "--root", str(shared / "data"),
           "--epochs", "1"]
    if model != "mlp":
        cmd += ["--cifar-zip", str(shared / "data" / "CIFAR10-JPEG" / "cifar10-jpeg.zip")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["train_seconds"])


def _dataset_args(model: str, shared: Path) -> list[str]:
    if model == "mlp":
        return ["--data-dir", str(shared / "data")]
    return ["--dataset", f"imagefolder:{shared / 'data' / 'CIFAR10-JPEG' / 'cifar10-jpeg.zip'}"]


def run_reslab(model: str, shared: Path) -> float:
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "-m", "reslab.cli", "train", PRESETS[model], "--epochs", "1", "--quiet",
               "--runs-dir", runs, *_dataset_args(model, shared)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO).stdout
        run_dir = Path(out.strip().splitlines()[-1])
        lines = (run_dir / "metrics.csv").read_text().splitlines()
        header, row = lines[0].split(","), lines[1].split(",")
        return float(row[header.index("seconds")])


def run_bare(model: str, shared: Path) -> float:
    out = subprocess.run([sys.executable, __file__, "--bare", model, "--shared", str(shared)],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    return float(out.strip().splitlines()[-1])


def bare_epoch(model_key: str, shared: Path) -> float:
    """The ceiling: the same work with nothing around it (data already normalised floats in memory)."""
    import torch
    import torch.nn.functional as F

    from reslab.config import resolve
    from reslab.data import load_dataset
    from reslab.models import build_model
    from reslab.runtime import keep_freed_memory

    cfg = resolve(PRESETS[model_key])
    spec = "mnist" if model_key == "mlp" else f"imagefolder:{shared / 'data' / 'CIFAR10-JPEG' / 'cifar10-jpeg.zip'}"
    data = load_dataset(spec, shared / "data", download=False)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x_all = (data.train_x.float() / 255 - mean) / std
    y_all = data.train_y
    n_val = cfg.data.val_size
    x_train, y_train, x_val = x_all[n_val:], y_all[n_val:], x_all[:n_val]
    torch.manual_seed(0)
    model = build_model(cfg.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                        **dict(cfg.model.args))
    if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):  # the layout reslab picks on CPU and CUDA
        model = model.to(memory_format=torch.channels_last)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        x_val = x_val.contiguous(memory_format=torch.channels_last)
    keep_freed_memory()  # the same process settings reslab uses: the ceiling is the loop, not the allocator
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, fused=True)
    bs = cfg.data.batch_size
    t0 = time.perf_counter()
    perm = torch.randperm(len(y_train))
    for i in range(0, len(perm), bs):
        idx = perm[i:i + bs]
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        model.eval()
        for i in range(0, len(x_val), 1024):
            model(x_val[i:i + 1024]).argmax(1)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--bare", choices=sorted(PRESETS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        print(bare_epoch(args.bare, args.shared))
        return
    if not (args.shared / "bench" / "seed_lab1.py").is_file():
        sys.exit(f"bench: {args.shared}/bench/seed_lab1.py not found (pass --shared)")
    results = {}
    for model in args.models:
        times: dict[str, list[float]] = {"notebook": [], "reslab": [], "bare": []}
        run_reslab(model, args.shared)  # warm the decoded-data cache so every repeat measures the same work
        for rep in range(args.repeats):
            for name, fn in (("notebook", run_notebook), ("reslab", run_reslab), ("bare", run_bare)):
                times[name].append(fn(model, args.shared))
                print(f"{model} repeat {rep + 1}: {name:8s} {times[name][-1]:8.2f} s/epoch", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        results[model] = {"median_seconds": med, "runs": times,
                          "speedup_vs_notebook": med["notebook"] / med["reslab"],
                          "fraction_of_ceiling": med["bare"] / med["reslab"]}
        print(f"{model}: reslab {med['reslab']:.2f} s, notebook {med['notebook']:.2f} s, bare {med['bare']:.2f} s "
              f"-> {med['notebook'] / med['reslab']:.1f}x faster than the notebook, "
              f"{100 * med['bare'] / med['reslab']:.0f}% of the bare loop's speed", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
