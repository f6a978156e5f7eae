"""Training images per second of the lab's CIFAR models at several batch sizes and thread counts, on this CPU.

Why: the quick lab picks its CIFAR batch size (reslab/lab/profiles.py) by steps bought per second; this prints the
per-image cost of each batch size side by side in one run. The bare step (forward, backward, Adam; channels_last,
as reslab trains conv nets on a CPU) on one fixed random CIFAR-sized batch; each configuration is timed for
--seconds, --repeats times, the median printed. Run it under bench/lab_time.sh's variables to see AVX2 kernels only.

Usage: python bench/batch_throughput.py [--models seed-resnet convnet3] [--batches 32 128] [--threads 1 2]
       [--seconds 3] [--repeats 3]
Prints a line per configuration, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from reslab.models import build_model  # noqa: E402

_CONV = {"channels": 16, "stages": 3, "kernel_size": 3, "layers_per_block": 2, "norm": "batch", "residual": True}
MODELS = {"seed-resnet": ("seed-resnet", {}), "seed-cnn": ("seed-cnn", {}),
          "convnet1": ("convnet", _CONV | {"blocks": 1}), "convnet3": ("convnet", _CONV | {"blocks": 3})}


def images_per_second(model_key: str, batch: int, threads: int, seconds: float, repeats: int) -> float:
    name, kwargs = MODELS[model_key]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(name, input_shape=(3, 32, 32), num_classes=10, **kwargs).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    rates = []
    for _ in range(repeats):
        start, steps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            step()
            steps += 1
        rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["seed-resnet", "convnet3"], choices=sorted(MODELS))
    p.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    p.add_argument("--threads", nargs="+", type=int, default=[2])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if any(b < 1 for b in args.batches) or any(t < 1 for t in args.threads) or args.seconds <= 0 or args.repeats < 1:
        sys.exit("batch_throughput: --batches, --threads and --repeats must be >= 1, --seconds > 0")
    results = []
    for model in args.models:
        for threads in args.threads:
            for batch in args.batches:
                rate = images_per_second(model, batch, threads, args.seconds, args.repeats)
                print(f"{model:12s} batch {batch:4d} threads {threads}: {rate:8.1f} img/s", flush=True)
                results.append({"model": model, "batch": batch, "threads": threads, "img_per_s": round(rate, 1)})
    print(json.dumps({"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "results": results}))


if __name__ == "__main__":
    main()
