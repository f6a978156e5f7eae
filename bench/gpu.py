"""reslab on one GPU, in one table: its training loop against the bare loop, precision, compile, packing, notebook.

Every number comes from one process on one card, so the ratios compare like with like:

- reslab: `train(cfg)` with its real loop (device batches, observers, gradient-flow records every 100 steps as
  by default, validation, checkpoints); samples/s from metrics.csv's epoch rows after the first (warm-up) epoch;
- bare: the same model, batch size, optimizer (fused) and precision, forward + backward + step over batches
  gathered from pre-normalised tensors already on the device; warmed up, clocks read after a device sync
  (the ceiling);
- reslab / bare, with bf16 autocast on and off (TF32 on, as reslab sets it), and with torch.compile on and
  off for seed-mlp and resnet20 (compile time reported apart, never in a throughput);
- seed-mlp's whole 15-epoch recipe (goal: < 2 s of training), resnet20's epoch scaled to 45,000 images
  (goal: < 2 s), 1/2/4/8 `python -m reslab train` processes packed on the card, and one epoch of the lab
  notebook's pipeline (seed_lab1.py: DataLoader, per-sample transforms) as the baseline.

Data: `--data DIR` as bench/make_device_data.py writes it (MNIST/raw, cifar10-sub.zip, seed_lab1.py). The CIFAR
models train on that 10,000-image subset; per-epoch times for 45,000 images are scaled from it (said so).
Configurations that fail (a compile error, say) get "failed: <reason>" in the table; the run goes on.
Progress goes to stderr with timestamps; the table is rewritten to --out after every configuration, so a run
cut off by a timeout still leaves what it measured.

Usage: python bench/gpu.py --data .devdata [--out DIR] [--models ...] [--quick] [--device cuda] [--budget 230]
       CPU dry run (numbers mean nothing): --device cpu --quick --models seed-mlp resnet20 --cifar-per-class 40
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # reslab from this checkout, without installing it

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from reslab.config import resolve  # noqa: E402
from reslab.data import load_dataset  # noqa: E402
from reslab.models import build_model  # noqa: E402
from reslab.train import train  # noqa: E402

MODELS = ("seed-mlp", "seed-cnn", "seed-resnet", "resnet20", "resnet56")
COMPILE_MODELS = ("seed-mlp", "resnet20")
NOTEBOOK = {"seed-mlp": "mlp", "seed-cnn": "cnn", "seed-resnet": "resnet"}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
FULL_CIFAR_TRAIN = 45_000  # He et al.'s 45k/5k split of CIFAR-10's 50,000 training images
COLUMNS = ["measurement", "model", "data", "amp", "compile", "samples/s", "seconds", "bare samples/s",
           "reslab/bare", "notes"]
T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


class OutOfTime(Exception):
    """SIGTERM (from `timeout`) or SIGINT: stop measuring, write what there is."""


class Skipped(Exception):
    """This configuration cannot run on this data; the row says why."""


STOP: dict[str, str | None] = {"reason": None}  # set by the signal handler


# ----------------------------------------------------------------------------- the table


@dataclass
class Table:
    rows: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None

    def add(self, **row: Any) -> dict[str, Any]:
        full = {c: row.pop(c, "") for c in COLUMNS}
        full.update(row)  # extra keys go to the JSON only
        self.rows.append(full)
        self.save()
        return full

    def markdown(self) -> str:
        def cell(v: Any) -> str:
            if isinstance(v, float):
                return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
            return str(v).replace("|", "/")

        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        lines += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in sorted(self.rows, key=row_order)]
        return "\n".join(lines)

    def header(self) -> str:
        m = self.meta
        stopped = f"; {m['stopped']} before the end" if m.get("stopped") else ""
        return (f"reslab GPU benchmark: {m.get('device_name')} ({m.get('device')}), torch {m.get('torch')}, "
                f"CUDA {m.get('cuda')}, {m.get('date')}, {m.get('mode')} mode, {m.get('elapsed_s', 0):.0f} s in all"
                + stopped)

    def save(self) -> None:
        self.meta["elapsed_s"] = time.perf_counter() - T0
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        for name, text in (("gpu-bench.json", json.dumps({"meta": self.meta, "rows": self.rows}, indent=1,
                                                         default=str)),
                           ("gpu-bench.md", f"{self.header()}\n\n{self.markdown()}\n\n{legend()}\n")):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.out / name)


def row_order(row: dict[str, Any]) -> tuple:
    """Rows are measured most-wanted first; they are shown grouped: recipe, throughput by model, notebook, packing."""
    what = str(row["measurement"])
    sections = ("seed-mlp recipe", "resnet20 epoch", "throughput", "throughput, gradflow off", "notebook", "packing",
                "warm-up")
    section = next((i for i, name in reversed(list(enumerate(sections))) if what.startswith(name)), len(sections))
    model = MODELS.index(row["model"]) if row["model"] in MODELS else len(MODELS)
    number = int(what.split(":")[1].split()[0]) if what.startswith("packing:") else 0
    return (section, number, model, row["amp"] != "bf16", row["compile"] == "on")


def legend() -> str:
    return ("samples/s: training samples per second (reslab: metrics.csv epoch rows after the first; bare: timed "
            "steps after warm-up). seconds: one epoch, training + validation, unless the notes say otherwise. "
            "amp bf16 = bf16 autocast; off = float32 with TF32 matmuls/convs (reslab's setting). "
            "reslab runs record gradient flow every 100 steps (the default) unless noted.")


# ----------------------------------------------------------------------------- data


@dataclass
class Data:
    name: str  # mnist | cifar10-sub
    overrides: list[str]  # the data keys that select it
    n_train: int  # training set (before the validation split)
    n_test: int
    spec: str
    data_dir: str


def prepare_data(root: Path, cifar_per_class: int | None, work: Path) -> dict[str, Data]:
    """MNIST (gunzipped in place when only .gz files are there) and the CIFAR-10 subset zip."""
    out: dict[str, Data] = {}
    raw = root / "MNIST" / "raw"
    for name in MNIST_FILES:
        if not (raw / name).is_file() and (raw / f"{name}.gz").is_file():
            with gzip.open(raw / f"{name}.gz", "rb") as fin, open(raw / f".{name}.tmp", "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            os.replace(raw / f".{name}.tmp", raw / name)
            log(f"gunzipped {raw / name}")
    if all((raw / n).is_file() for n in MNIST_FILES):
        d = load_dataset("mnist", root, download=False)
        out["mnist"] = Data("mnist", ["data.dataset=mnist", f"data.data_dir={root}"], len(d.train_y), len(d.test_y),
                            "mnist", str(root))
    zip_path = root / "cifar10-sub.zip"
    if zip_path.is_file():
        if cifar_per_class:
            zip_path = subset_zip(zip_path, work / f"cifar10-sub{cifar_per_class}.zip", cifar_per_class)
        d = load_dataset(f"imagefolder:{zip_path}", root)
        out["cifar"] = Data("cifar10-sub", [f"data.dataset=imagefolder:{zip_path}"], len(d.train_y), len(d.test_y),
                            f"imagefolder:{zip_path}", str(root))
    return out


def subset_zip(src: Path, dst: Path, per_class: int) -> Path:
    """The first `per_class` train images of each class (and a fifth as many test images): for dry runs."""
    counts: dict[tuple[str, str], int] = {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in sorted(zin.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")
            if info.is_dir() or len(parts) != 3:
                continue
            key = (parts[0], parts[1])
            limit = per_class if parts[0] == "train" else max(1, per_class // 5)
            if counts.get(key, 0) < limit:
                counts[key] = counts.get(key, 0) + 1
                zout.writestr(info, zin.read(info))
    return dst


def fixed_shape_split(n: int, n_test: int, batch: int) -> tuple[int, int]:
    """(val_size, eval_batch_size) so every training, validation and test batch has one shape.

    Partial batches cost torch.compile a recompile each; with this split there are two graphs (a training
    step and an evaluation batch). Looks for a validation set of 4-15% of n, the largest evaluation batch.
    """
    divisors = [d for d in range(min(1024, n_test), 0, -1) if n_test % d == 0]
    best: tuple[int, int, int] | None = None
    for val in range(max(1, int(0.04 * n)), int(0.15 * n) + 1):
        if (n - val) % batch:
            continue
        ebs = next((d for d in divisors if val % d == 0), 1)
        score = (ebs, -abs(val - 0.1 * n))
        if best is None or score > best[:2]:
            best = (*score, val)  # type: ignore[assignment]
    if best is None:
        return max(1, n // 10), 1024
    return int(best[2]), int(best[0])


# ----------------------------------------------------------------------------- reslab through train(cfg)


@dataclass
class ReslabResult:
    samples_per_s: float  # steady state: epochs after the first
    epoch_seconds: float  # median epoch (training + validation) after the first
    first_epoch_seconds: float
    train_seconds: float  # all epochs, training only (summary.json)
    wall_seconds: float  # the whole train() call: setup, epochs, test, plots
    n_train: int
    n_val: int
    steps: int
    epochs: int
    test_acc: float
    history: list[dict[str, Any]]

    @property
    def train_epoch_seconds(self) -> float:
        return self.n_train / self.samples_per_s

    @property
    def val_seconds(self) -> float:
        return max(0.0, self.epoch_seconds - self.train_epoch_seconds)


def run_reslab(preset: str, overrides: list[str], runs_dir: Path) -> ReslabResult:
    cfg = resolve(preset, [f"runs_dir={runs_dir}", *overrides])
    t0 = time.perf_counter()
    result = train(cfg, progress=False)
    wall = time.perf_counter() - t0
    hist, s = result.history, result.summary
    n_train = round(s["samples_per_s"] * s["train_seconds"] / s["epochs"])
    steady = hist[1:] or hist
    train_time = sum(n_train / float(r["samples_per_s"]) for r in steady)
    shutil.rmtree(result.run_dir, ignore_errors=True)
    return ReslabResult(samples_per_s=n_train * len(steady) / train_time,
                        epoch_seconds=statistics.median(float(r["seconds"]) for r in steady),
                        first_epoch_seconds=float(hist[0]["seconds"]), train_seconds=s["train_seconds"],
                        wall_seconds=wall, n_train=n_train, n_val=cfg.data.val_size, steps=s["steps"],
                        epochs=s["epochs"], test_acc=s["test_acc"], history=hist)


# ----------------------------------------------------------------------------- the bare loop (the ceiling)


def make_optimizer(params: list[torch.nn.Parameter], optim: Any, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer reslab builds for this config: fused kernels where torch has them, else foreach."""
    if optim.name == "sgd":
        cls, kw = torch.optim.SGD, dict(momentum=optim.momentum, nesterov=optim.nesterov)
    else:
        cls, kw = (torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam), dict(betas=tuple(optim.betas))
    kw.update(lr=optim.lr, weight_decay=optim.weight_decay)
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, foreach=True, **kw)


@dataclass
class BareResult:
    samples_per_s: float
    step_ms: float
    steps: int
    warmup_seconds: float  # the warm-up steps, compile included when compiling
    first_step_seconds: float


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_bare(preset: str, data: Data, device: torch.device, amp: bool, compile_model: bool, steps: int,
             warmup: int, batch_size: int | None = None) -> BareResult:
    cfg = resolve(preset, data.overrides)
    ds = load_dataset(data.spec, data.data_dir, download=False)
    torch.manual_seed(0)
    model = build_model(cfg.model.name, input_shape=ds.input_shape, num_classes=ds.num_classes,
                        **dict(cfg.model.args)).to(device)
    conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    mean = torch.tensor(ds.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(ds.std, device=device).view(1, -1, 1, 1)
    x_all = (ds.train_x.to(device).float() / 255 - mean) / std  # (N, C, H, W) float32, on the device
    y_all = ds.train_y.to(device)
    if conv:  # the layout reslab picks for conv nets on CUDA and CPU
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(list(model.parameters()), cfg.optim, device)
    step_model = torch.compile(model) if compile_model else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    bs = batch_size or cfg.data.batch_size
    n_batches = len(y_all) // bs
    perm = torch.randperm(len(y_all), device=device)

    def step(i: int) -> None:
        idx = perm[(i % n_batches) * bs:(i % n_batches + 1) * bs]
        x, y = x_all[idx], y_all[idx]
        if conv:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = F.cross_entropy(step_model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    sync(device)
    t0 = time.perf_counter()
    step(0)
    sync(device)
    first = time.perf_counter() - t0
    for i in range(1, warmup):
        step(i)
    sync(device)
    warm = time.perf_counter() - t0
    t1 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    sync(device)
    dt = time.perf_counter() - t1
    return BareResult(samples_per_s=steps * bs / dt, step_ms=1000 * dt / steps, steps=steps, warmup_seconds=warm,
                      first_step_seconds=first)


# ----------------------------------------------------------------------------- packing and the notebook


def reslab_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def run_packed(n: int, data: Data, device: str, epochs: int, runs_dir: Path, timeout: float,
               extra: list[str]) -> dict[str, Any]:
    """n `python -m reslab train seed-mlp` processes at once; each run's own samples/s and its training window."""
    procs = []
    t0 = time.time()
    for i in range(n):
        cmd = [sys.executable, "-m", "reslab", "train", "seed-mlp", "--device", device, "--epochs", str(epochs),
               "--seed", str(i), "--runs-dir", str(runs_dir / f"pack{n}"), "--quiet",
               *[a for o in [*data.overrides, *extra] for a in ("--set", o)]]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=reslab_env(), cwd=runs_dir))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, timeout - (time.time() - t0)))
            if p.returncode != 0:
                raise RuntimeError(f"a packed run exited {p.returncode}: {(err.strip().splitlines() or [''])[-1]}")
            results.append(Path(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.time() - t0
    summaries = [json.loads((d / "summary.json").read_text()) for d in results]
    # each run's training window: env.json is written just before its first step, metrics.csv after its last epoch
    windows = [((d / "env.json").stat().st_mtime, (d / "metrics.csv").stat().st_mtime) for d in results]
    overlap = min(e for _, e in windows) - max(s for s, _ in windows)
    samples = sum(s["samples_per_s"] * s["train_seconds"] for s in summaries)
    return {"n": n, "sum_samples_per_s": sum(s["samples_per_s"] for s in summaries),
            "samples_over_wall": samples / wall, "wall_s": wall,
            "per_run_samples_per_s": [s["samples_per_s"] for s in summaries],
            "overlap_fraction": max(0.0, overlap) / statistics.median(e - s for s, e in windows)}


def run_notebook(exercise: str, data_root: Path, cifar_zip: Path | None, work: Path, timeout: float,
                 threads: int | None = None) -> dict:
    """One epoch of ../shared/bench/seed_lab1.py (carried as DATA/seed_lab1.py), in its own process.

    The script caches decoded CIFAR under fixed /tmp names whatever the zip; a copy with the cache in `work`
    keeps another zip's cache from being read. Nothing else changes.
    """
    src = (data_root / "seed_lab1.py").read_text()
    script = work / "seed_lab1.py"
    if 'f"/tmp/cifar10_jpeg_' not in src and exercise != "mlp":
        log("seed_lab1.py: its /tmp cache name changed; running it as it is")
    script.write_text(src.replace('f"/tmp/cifar10_jpeg_', f'f"{work}/cifar10_jpeg_'))
    cmd = [sys.executable, str(script), exercise, "--root", str(data_root), "--epochs", "1"]
    if cifar_zip is not None:
        cmd += ["--cifar-zip", str(cifar_zip)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=work, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"seed_lab1.py {exercise} exited {proc.returncode}: "
                           f"{(proc.stderr.strip().splitlines() or [''])[-1][:200]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the plan


class Bench:
    def __init__(self, args: argparse.Namespace, table: Table, data: dict[str, Data], work: Path) -> None:
        self.args, self.table, self.data, self.work = args, table, data, work
        self.device = torch.device(args.device)
        self.runs = work / "runs"
        self.quick = args.quick
        self.results: dict[tuple[str, str, bool], ReslabResult] = {}  # (model, amp, compile) -> result
        self.bare: dict[tuple[str, str, bool], BareResult] = {}

    # --- helpers

    def data_for(self, model: str) -> Data:
        key = "mnist" if model == "seed-mlp" else "cifar"
        if key not in self.data:
            raise RuntimeError(f"no {'MNIST' if key == 'mnist' else 'cifar10-sub.zip'} in {self.args.data}")
        return self.data[key]

    def split(self, data: Data) -> list[str]:
        val, ebs = fixed_shape_split(data.n_train, data.n_test, 128)
        return [f"data.val_size={val}", f"data.eval_batch_size={ebs}"]

    def device_keys(self) -> list[str]:
        threads = [f"train.threads={self.args.threads}"] if self.args.threads else []
        return [f"train.device={self.args.device}", *threads]

    def common(self, amp: str, compile_model: bool) -> list[str]:
        # quoted: YAML 1.1 reads a bare off as false
        return [*self.device_keys(), f"train.amp='{amp}'", f"train.compile={str(compile_model).lower()}"]

    def job(self, label: str, fn: Callable[[], None], estimate: float, **row: Any) -> None:
        """Run one configuration; a failure or the time budget becomes a table row, never the end of the run.

        `estimate`: seconds it should take on an H100; a job that would end past the budget is skipped.
        """
        if STOP["reason"]:
            raise OutOfTime(STOP["reason"])
        elapsed = time.perf_counter() - T0
        if elapsed + estimate * self.args.estimate_scale > self.args.budget:
            log(f"skip {label}: ~{estimate:.0f} s more would pass the {self.args.budget:.0f} s budget")
            self.table.add(notes=f"skipped: time budget ({self.args.budget:.0f} s; {elapsed:.0f} s used, "
                                 f"~{estimate:.0f} s needed)", **row)
            return
        log(f"start {label} (~{estimate:.0f} s)")
        t0 = time.perf_counter()
        try:
            fn()
        except OutOfTime:
            self.table.add(notes="cut off: the time limit stopped the run here", **row)
            raise
        except Skipped as exc:
            log(f"skipped {label}: {exc}")
            self.table.add(notes=f"skipped: {exc}", **row)
        except BaseException as exc:  # noqa: BLE001 - one configuration's failure is a row, not the end
            # a signal that reslab's own handler took (it checkpoints and raises Interrupted), or one raised inside
            # torch.compile and wrapped there, still means: stop here
            if STOP["reason"] or type(exc).__name__ in ("Interrupted", "KeyboardInterrupt"):
                self.table.add(notes="cut off: the time limit stopped the run here", **row)
                raise OutOfTime(STOP["reason"] or type(exc).__name__) from exc
            if not isinstance(exc, Exception):
                raise
            log(f"FAILED {label}: {first_line(exc)}")
            self.table.add(notes=f"failed: {first_line(exc)}", **row)
        finally:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        log(f"done {label} ({time.perf_counter() - t0:.1f} s)")

    # --- measurements

    def warm_up(self) -> None:
        data = self.data_for("seed-mlp") if "mnist" in self.data else self.data["cifar"]
        preset = "seed-mlp" if data.name == "mnist" else "seed-cnn"
        run_reslab(preset, [*data.overrides, *self.split(data), "train.epochs=1", *self.device_keys()],
                   self.runs)

    def recipe(self) -> None:
        """seed-mlp as its preset says (15 epochs, its split, amp auto): the < 2 s goal; also the bf16 row."""
        data = self.data_for("seed-mlp")
        val = 5000 if data.n_train > 10_000 else data.n_train // 10  # the preset's split where the data allows
        r = run_reslab("seed-mlp", [*data.overrides, f"data.val_size={val}", f"train.epochs={self.args.recipe_epochs}",
                                    *self.device_keys()], self.runs)
        amp = "bf16" if self.device.type == "cuda" else "off"  # amp auto
        self.results[("seed-mlp", amp, False)] = r
        self.table.add(measurement=f"seed-mlp recipe, {r.epochs} epochs (goal < 2 s)", model="seed-mlp",
                       data=f"mnist {r.n_train}/{r.n_val}", amp=f"auto ({amp})", compile="off",
                       **{"samples/s": r.samples_per_s, "seconds": r.train_seconds},
                       notes=f"seconds = training time of all {r.epochs} epochs (summary train_seconds); "
                             f"with validation {sum(float(h['seconds']) for h in r.history):.2f} s; whole train() "
                             f"call {r.wall_seconds:.2f} s (data, test, checkpoints, plots); test_acc "
                             f"{r.test_acc:.4f}; warm process", result=r.__dict__)

    def throughput(self, model: str, amp: str, compile_model: bool) -> None:
        data = self.data_for(model)
        key = (model, amp, compile_model)
        reuse = key in self.results  # seed-mlp bf16 eager: the recipe run already measured it
        if compile_model:
            torch.compiler.reset()  # compile from scratch (inductor's on-disk caches stay)
        if not reuse:
            epochs = self.args.epochs_mnist if model == "seed-mlp" else self.args.epochs_cifar
            self.results[key] = run_reslab(model, [*data.overrides, *self.split(data), f"train.epochs={epochs}",
                                                   *self.common(amp, compile_model)], self.runs)
        r = self.results[key]
        if compile_model:
            torch.compiler.reset()  # compile from scratch (inductor's on-disk caches stay)
        steps = self.args.bare_steps * (2 if model == "seed-mlp" else 1)
        b = run_bare(model, data, self.device, amp == "bf16", compile_model, steps=steps,
                     warmup=self.args.bare_warmup)
        self.bare[key] = b
        notes = [f"{r.epochs - 1} timed epochs of {r.n_train} ({r.steps // r.epochs} steps each)"
                 if r.epochs > 1 else "1 epoch (no warm-up epoch to skip)",
                 f"bare: {b.steps} steps of {b.step_ms:.2f} ms after {self.args.bare_warmup} warm-up"]
        if reuse:
            notes.insert(0, "reslab numbers from the recipe run above")
        if compile_model:
            steady = r.epoch_seconds
            notes.append(f"compile: reslab first epoch {r.first_epoch_seconds:.1f} s vs {steady:.2f} s later "
                         f"(~{r.first_epoch_seconds - steady:.1f} s compiling, train + eval graphs); bare warm-up "
                         f"{b.warmup_seconds:.1f} s (first step {b.first_step_seconds:.1f} s; inductor's cache may "
                         "hold reslab's graph)")
        if model == "resnet20":
            est = FULL_CIFAR_TRAIN / r.samples_per_s
            val = 5000 * r.val_seconds / max(1, r.n_val)
            self.table.add(measurement="resnet20 epoch of 45k images (goal < 2 s)", model=model,
                           data=f"scaled from {data.name} {r.n_train}/{r.n_val}", amp=amp,
                           compile="on" if compile_model else "off",
                           **{"samples/s": r.samples_per_s, "seconds": est + val},
                           notes=f"seconds = 45000 / samples/s = {est:.2f} s training + ~{val:.2f} s validating 5000 "
                                 f"(this run's validation time per image x 5000); batch 128, the preset's recipe "
                                 f"(SGD, augmentation) on the {r.n_train}-image subset")
        self.table.add(measurement="throughput", model=model, data=f"{data.name} {r.n_train}/{r.n_val}", amp=amp,
                       compile="on" if compile_model else "off",
                       **{"samples/s": r.samples_per_s, "seconds": r.epoch_seconds,
                          "bare samples/s": b.samples_per_s, "reslab/bare": r.samples_per_s / b.samples_per_s},
                       notes="; ".join(notes), reslab=r.__dict__, bare=b.__dict__)

    def gradflow_off(self, model: str) -> None:
        data = self.data_for(model)
        amp = "bf16" if self.device.type == "cuda" else "off"
        epochs = self.args.epochs_mnist if model == "seed-mlp" else self.args.epochs_cifar
        r = run_reslab(model, [*data.overrides, *self.split(data), f"train.epochs={epochs}", "gradflow.every=0",
                               *self.common(amp, False)], self.runs)
        b = self.bare.get((model, amp, False))
        with_gf = self.results.get((model, amp, False))
        notes = "gradflow.every=0 (no gradient-flow records)"
        if with_gf is not None:
            notes += f"; with records every 100 steps: {with_gf.samples_per_s:,.0f} samples/s " \
                     f"(x{with_gf.samples_per_s / r.samples_per_s:.3f})"
        self.table.add(measurement="throughput, gradflow off", model=model, data=f"{data.name} {r.n_train}/{r.n_val}",
                       amp=amp, compile="off", **{"samples/s": r.samples_per_s, "seconds": r.epoch_seconds,
                                                  "bare samples/s": b.samples_per_s if b else "",
                                                  "reslab/bare": r.samples_per_s / b.samples_per_s if b else ""},
                       notes=notes, reslab=r.__dict__)

    def notebook(self, model: str) -> None:
        exercise = NOTEBOOK[model]
        data = self.data_for(model)
        if data.n_train <= 5000:
            raise Skipped(f"the notebook holds out 5000 images for validation; {data.name} has {data.n_train}")
        cifar_zip = Path(data.spec.removeprefix("imagefolder:")) if model != "seed-mlp" else None
        nb = run_notebook(exercise, Path(self.args.data), cifar_zip, self.work, timeout=self.args.notebook_timeout,
                          threads=self.args.threads)
        n_train = data.n_train - 5000
        nb_sps = n_train / nb["train_seconds"]
        # reslab on the notebook's split (5000 validation images), one epoch in a fresh train() call, amp auto
        r = run_reslab(model, [*data.overrides, "data.val_size=5000", "train.epochs=1",
                               *self.device_keys()], self.runs)
        self.table.add(measurement="notebook pipeline, 1 epoch", model=model, data=f"{data.name} {n_train}/5000",
                       amp="off (fp32)", compile="off", **{"samples/s": nb_sps, "seconds": nb["train_seconds"]},
                       notes=f"seed_lab1.py {exercise}: DataLoader (4 workers), per-sample transforms, wandb "
                             f"{'on' if nb.get('wandb') else 'absent'}; seconds = its train_seconds (training + "
                             f"validating 5000); process total {nb['seconds']:.1f} s; reslab's first epoch on the "
                             f"same split {r.first_epoch_seconds:.2f} s (amp auto, a fresh train() call) "
                             f"= x{nb['train_seconds'] / r.first_epoch_seconds:.1f} faster",
                       notebook=nb, reslab=r.__dict__)

    def packing(self) -> None:
        data = self.data_for("seed-mlp")
        base = None
        for n in self.args.pack:
            label = f"packing {n}"

            def one(n: int = n) -> None:
                nonlocal base
                p = run_packed(n, data, self.args.device, self.args.pack_epochs, self.runs,
                               timeout=self.args.pack_timeout, extra=self.device_keys()[1:])
                if n == 1:
                    base = p["sum_samples_per_s"]
                speed = f"x{p['sum_samples_per_s'] / base:.2f} vs 1 run; " if base else ""
                self.table.add(measurement=f"packing: {n} runs at once", model="seed-mlp",
                               data=f"{data.name}, {self.args.pack_epochs} epochs each", amp="auto", compile="off",
                               **{"samples/s": p["sum_samples_per_s"], "seconds": p["wall_s"]},
                               notes=f"{speed}samples/s = sum of the runs' own samples/s; all samples / wall "
                                     f"{p['samples_over_wall']:,.0f}/s (wall includes each process's start); training "
                                     f"windows overlap {100 * p['overlap_fraction']:.0f}%; per run "
                                     f"{', '.join(f'{x:,.0f}' for x in p['per_run_samples_per_s'])}", packing=p)

            self.job(label, one, 10 + 1.5 * n, measurement=f"packing: {n} runs at once", model="seed-mlp")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO / ".devdata"), help="folder from bench/make_device_data.py")
    p.add_argument("--out", type=Path, help="write gpu-bench.md and gpu-bench.json here")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch here and in reslab's runs (train.threads); for CPU dry runs on a busy "
                        "machine, where 2 threads can wait on each other for whole scheduler ticks")
    p.add_argument("--quick", action="store_true", help="fewer epochs and steps, fewer packing levels")
    p.add_argument("--skip", nargs="*", default=[], choices=["amp-off", "compile", "gradflow-off", "notebook",
                                                             "packing"], help="leave these parts out")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds after which remaining configurations are skipped (default 230; quick 150)")
    p.add_argument("--estimate-scale", type=float, default=1.0,
                   help="multiply the per-configuration time estimates (H100 guesses) used against the budget")
    p.add_argument("--recipe-epochs", type=int, default=15, help="seed-mlp's recipe (15 epochs)")
    p.add_argument("--cifar-per-class", type=int, default=None,
                   help="train on this many CIFAR images per class of the subset (dry runs)")
    p.add_argument("--pack", type=int, nargs="+", default=None, help="packing levels (default 1 2 4 8; quick 1 4)")
    p.add_argument("--pack-epochs", type=int, default=None, help="epochs of each packed run (default 10; quick 5)")
    p.add_argument("--epochs-mnist", type=int, default=None,
                   help="reslab epochs per MNIST configuration, the first is warm-up (default 3; quick 2)")
    p.add_argument("--epochs-cifar", type=int, default=None,
                   help="reslab epochs per CIFAR configuration, the first is warm-up (default 4; quick 2)")
    p.add_argument("--bare-steps", type=int, default=None, help="timed bare-loop steps (default 200; quick 50; "
                                                                "twice as many for seed-mlp)")
    p.add_argument("--bare-warmup", type=int, default=None, help="bare-loop warm-up steps (default 30; quick 10)")
    args = p.parse_args(argv)
    args.data = str(Path(args.data).resolve())  # subprocesses run elsewhere

    def pick(value: Any, default: Any, quick: Any) -> Any:
        return value if value is not None else (quick if args.quick else default)

    args.budget = pick(args.budget, 230.0, 150.0)
    args.pack = pick(args.pack, [1, 2, 4, 8], [1, 4])
    args.pack_epochs = pick(args.pack_epochs, 10, 5)
    args.epochs_mnist = pick(args.epochs_mnist, 3, 2)  # 429-450 steps each
    args.epochs_cifar = pick(args.epochs_cifar, 4, 2)  # 75 steps each on the 10k subset
    args.bare_steps = pick(args.bare_steps, 200, 50)
    args.bare_warmup = pick(args.bare_warmup, 30, 10)
    args.pack_timeout = 90.0
    args.notebook_timeout = 120.0
    return args


def device_meta(device: torch.device) -> dict[str, Any]:
    meta: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
                            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0],
                            "cpus": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        meta.update(device_name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count)
    else:
        meta.update(device_name="CPU (dry run: the numbers mean nothing)")
    return meta


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu.py: CUDA is not available here (use --device cpu for a dry run)", file=sys.stderr)
        return 2
    table = Table(out=args.out)
    table.meta = {**device_meta(device), "mode": "quick" if args.quick else "default", "args": vars(args)}

    def stop(signum: int, frame: Any) -> None:
        STOP["reason"] = f"stopped by signal {signum}"
        raise OutOfTime(STOP["reason"])

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"{table.meta['device_name']}, torch {torch.__version__}, budget {args.budget:.0f} s, models "
        f"{' '.join(args.models)}")
    with tempfile.TemporaryDirectory(prefix="reslab-gpu-bench-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("RESLAB_CACHE", str(work / "cache"))  # decoded images: a fresh cache, as on the card
        try:
            data = prepare_data(Path(args.data), args.cifar_per_class, work)
            log(f"data: {', '.join(f'{d.name} {d.n_train}+{d.n_test}' for d in data.values())}")
            bench = Bench(args, table, data, work)
            run_plan(bench, args)
        except OutOfTime as exc:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            log(f"stopped ({exc}); writing what was measured")
            table.meta["stopped"] = str(exc)
        table.save()
    print(table.header())
    print()
    print(table.markdown())
    print()
    print(legend())
    if args.out:
        print(f"\nwritten: {args.out / 'gpu-bench.md'} and {args.out / 'gpu-bench.json'}")
    return 0


def run_plan(bench: Bench, args: argparse.Namespace) -> None:
    """Most wanted first: the goals, the notebook baseline, precision, compile of the MLP, packing, the other
    models, resnet20's compile (slow, least certain); then the rest. A run cut off by the budget keeps the most.

    The estimates are seconds on an H100 (guesses before the first run there; --estimate-scale scales them).
    """
    models, skip = args.models, set(args.skip)
    bf16 = "bf16"  # on a CPU dry run this is bf16 autocast on the CPU
    has = models.__contains__

    def throughput(model: str, amp: str, compile_model: bool, estimate: float) -> None:
        if has(model) and not (amp == "off" and "amp-off" in skip) and not (compile_model and "compile" in skip):
            bench.job(f"{model} amp {amp}{' compiled' if compile_model else ''}",
                      lambda: bench.throughput(model, amp, compile_model), estimate,
                      measurement="throughput", model=model, amp=amp, compile="on" if compile_model else "off")

    def notebook(model: str, estimate: float) -> None:
        if has(model) and "notebook" not in skip:
            bench.job(f"notebook {model}", lambda: bench.notebook(model), estimate,
                      measurement="notebook pipeline, 1 epoch", model=model)

    bench.job("warm-up", bench.warm_up, 8, measurement="warm-up")
    if has("seed-mlp"):
        bench.job("seed-mlp recipe", bench.recipe, 10, measurement="seed-mlp recipe", model="seed-mlp")
    throughput("seed-mlp", bf16, False, 3)
    throughput("resnet20", bf16, False, 12)
    notebook("seed-mlp", 15)
    throughput("seed-mlp", "off", False, 6)
    throughput("resnet20", "off", False, 10)
    throughput("seed-mlp", bf16, True, 35)
    if "packing" not in skip and has("seed-mlp"):
        bench.packing()
    for model in ("seed-cnn", "seed-resnet", "resnet56"):
        throughput(model, bf16, False, 15)
    notebook("seed-cnn", 15)
    notebook("seed-resnet", 15)
    throughput("resnet20", bf16, True, 90)
    for model in ("seed-cnn", "seed-resnet", "resnet56"):
        throughput(model, "off", False, 15)
    if "gradflow-off" not in skip:
        for model in [m for m in ("seed-mlp", "resnet20") if has(m)]:
            bench.job(f"{model} gradflow off", lambda m=model: bench.gradflow_off(m), 6,
                      measurement="throughput, gradflow off", model=model)


if __name__ == "__main__":
    sys.exit(main())
