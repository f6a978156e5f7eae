"""What recording gradient flow during training costs: the same runs with gradflow off and on, side by side.

For each model, `--repeats` pairs of runs in this process (default: 7 for seed-mlp, 3 for seed-cnn), the
order alternating (off, on), (on, off), ..., so drift and warm-up hit both sides alike; the medians of
- train_seconds: the training loop (summary.json), where the recording happens, and
- wall seconds: the whole `train()` call, including the end-of-run gradflow.png,
are compared; and, steadier, the cost of one recorded step over a plain one, timed in alternating blocks of
training steps on one batch, which gives the expected ratio at the interval: 1 + record / (every x step).
seed-mlp runs on real MNIST and seed-cnn on the CIFAR-10 JPEG copy when ../shared/data has them, else on
tiny generated MNIST-format files (then only the mechanics are measured, not real costs).

Usage: python bench/gradflow_overhead.py [--models mlp cnn] [--repeats N] [--every N ...] [--threads T]
       [--shared ../shared]
Prints a line per run and, last, one JSON line with the medians and ratios (on / off).
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
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from reslab.config import GradflowConfig, resolve  # noqa: E402
from reslab.train import train  # noqa: E402

# model -> (preset, epochs, repeats, image shape): seed-mlp's runs are short and noisy, so it gets more repeats
MODELS = {"mlp": ("seed-mlp", 5, 7, (1, 28, 28)), "cnn": ("seed-cnn", 1, 3, (3, 32, 32))}


def data_overrides(model: str, shared: Path, scratch: Path) -> list[str]:
    """Real data: ../shared/data where it is (offline development machines), else torchvision's download."""
    zip_path = shared / "data" / "CIFAR10-JPEG" / "cifar10-jpeg.zip"
    if model == "mlp" and (shared / "data" / "MNIST" / "raw").is_dir():
        return [f"data.data_dir={shared / 'data'}"]
    if model == "cnn" and zip_path.is_file():
        return [f"data.dataset=imagefolder:{zip_path}"]
    return []  # the presets' own datasets (MNIST, CIFAR-10), downloaded into $RESLAB_DATA or ./data


def timed_run(preset: str, epochs: int, every: int, overrides: list[str], runs_dir: Path) -> tuple[float, float]:
    """(train_seconds, wall seconds) of one run."""
    cfg = resolve(preset, [*overrides, f"train.epochs={epochs}", f"runs_dir={runs_dir}", f"gradflow.every={every}",
                           "train.device=cpu"])
    start = time.perf_counter()
    summary = train(cfg, progress=False).summary
    return summary["train_seconds"], time.perf_counter() - start


def record_cost(model: str, scratch: Path, blocks: int = 7, steps: int = 10) -> tuple[float, float]:
    """(ms per plain step, ms a recorded step costs on top): alternating blocks of steps on one random batch.

    Much less noisy than whole runs, which differ by far more than the recording between two repeats here.
    """
    import torch
    import torch.nn.functional as F

    from reslab.gradflow import GradflowRecorder
    from reslab.models import build_model

    preset, _, _, shape = MODELS[model]
    cfg = resolve(preset, [f"runs_dir={scratch}"])
    net = build_model(cfg.model.name, input_shape=shape, num_classes=10, **dict(cfg.model.args))
    x, y = torch.randn(cfg.data.batch_size, *shape), torch.randint(0, 10, (cfg.data.batch_size,))
    if model == "cnn":  # as train() runs conv nets on the CPU
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    recorder = GradflowRecorder(1)
    (scratch / "cost").mkdir(exist_ok=True)
    recorder.on_start(scratch / "cost", net, cfg, 0)

    def block(record: bool) -> float:
        start = time.perf_counter()
        for step in range(1, steps + 1):
            if record:
                recorder.on_batch_start(step)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if record:
                recorder.on_after_backward(step, net)
            opt.step()
            if record:
                recorder.on_step(step, loss.detach(), 1e-3)
        return (time.perf_counter() - start) / steps * 1e3

    block(False), block(True)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(blocks):
        for record in (False, True):
            times[record].append(block(record))
    recorder.close()
    plain = statistics.median(times[False])
    return plain, statistics.median(times[True]) - plain


def bench_model(model: str, every: int, repeats: int | None, shared: Path, scratch: Path,
                threads: int | None) -> dict[str, float]:
    preset, epochs, default_repeats, _ = MODELS[model]
    repeats = repeats or default_repeats
    overrides = data_overrides(model, shared, scratch) + ([f"train.threads={threads}"] if threads else [])
    if model == "mlp":  # one cheap epoch first: imports, data and allocator warm; a conv epoch is too long to waste
        timed_run(preset, 1, 0, overrides, scratch / "warmup")
    times: dict[int, list[tuple[float, float]]] = {0: [], every: []}
    for i in range(repeats):
        for setting in ((0, every) if i % 2 == 0 else (every, 0)):
            times[setting].append(timed_run(preset, epochs, setting, overrides, scratch / f"runs-{setting}"))
            loop, wall = times[setting][-1]
            print(f"{preset} gradflow.every={setting}: train {loop:.2f} s, wall {wall:.2f} s", flush=True)
    med = {s: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)) for s, ts in times.items()}
    step_ms, record_ms = record_cost(model, scratch)
    return {"model": preset, "epochs": epochs, "every": every, "repeats": repeats, "threads": threads,
            "step_ms": step_ms, "record_ms": record_ms, "estimated_ratio": 1 + record_ms / (every * step_ms),
            "train_s_off": med[0][0], "train_s_on": med[every][0], "train_ratio": med[every][0] / med[0][0],
            "wall_s_off": med[0][1], "wall_s_on": med[every][1], "wall_ratio": med[every][1] / med[0][1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "cnn"])
    parser.add_argument("--repeats", type=int, default=None, help="pairs of runs per model (default: mlp 7, cnn 3)")
    parser.add_argument("--every", type=int, nargs="+", default=[GradflowConfig().every],
                        help="recording intervals to compare with off (default: the config's default)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for every in args.every:
                results.append(bench_model(model, every, args.repeats, args.shared, Path(tmp), args.threads))
                r = results[-1]
                print(f"{r['model']} every {every}: training loop {r['train_s_off']:.2f} -> {r['train_s_on']:.2f} s "
                      f"(x{r['train_ratio']:.3f}), whole run {r['wall_s_off']:.2f} -> {r['wall_s_on']:.2f} s "
                      f"(x{r['wall_ratio']:.3f}), medians of {r['repeats']}; a step {r['step_ms']:.2f} ms, a "
                      f"record {r['record_ms']:+.2f} ms on top -> x{r['estimated_ratio']:.4f} at every {every}",
                      flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
