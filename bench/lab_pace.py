"""The lab's pace on this machine: a lab stage's seconds over the reference workload's, a ratio across machines.

The reference workload is the lab's own (`reslab.lab.pace.reference_workload`: a small MLP and a small conv net
trained for a fixed number of steps on one thread); its seconds are what the lab's progress line multiplies a
stage's work units by before any stage has run. Each of --repeats rounds times the reference (median of 3), then
each --stage (a study of the --profile, trained from scratch into a temporary lab folder, optionally on a
--train-size subset), so that a busy machine slows both alike. Prints every measurement, then per stage the
median ratio stage / reference: that ratio is the stage's work in reference units (the profile's `work`), and
it compares across machines where seconds do not.

Data: --data-dir (default ../shared/data, its MNIST and CIFAR-10 JPEG zip); where it is absent, generated
MNIST-like and CIFAR-sized images (smaller sets: the ratios then describe those, and the output says so).

Usage: python bench/lab_pace.py [--stage ex1-mlp ...] [--profile quick] [--repeats 3] [--train-size N]
       [--data-dir DIR]
Prints a line per measurement and, last, one JSON line with the medians and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def fake_data(root: Path) -> tuple[str, str, Path]:
    """Generated MNIST (6,000 train / 1,000 test) and a CIFAR-sized image folder (4,500 / 2,000): (mnist, cifar,
    data dir); sizes that the quick profile's splits and subsets fit in."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.fakedata import write_colour_folder, write_mnist

    write_mnist(root, n_train=6000, n_test=1000)
    write_colour_folder(root / "cifar", n_train=4500, n_test=2000)
    return "mnist", f"imagefolder:{root / 'cifar'}", root


def time_stage(name: str, profile_name: str, mnist: str, cifar: str, data_dir: str, train_size: int | None,
               scratch: Path) -> float:
    """Seconds to run the study stage `name` from scratch (its sweep, every run) in a new lab folder."""
    from reslab.lab.folder import LabFolder
    from reslab.lab.plan import plan
    from reslab.lab.profiles import get_profile
    from reslab.lab.stages import LabContext, run_study

    profile = get_profile(profile_name)
    study = next((s.study for s in plan(profile) if s.name == name), None)
    if study is None:
        sys.exit(f"lab_pace: {name} is not a study stage of the {profile_name} profile "
                 f"(choose from {', '.join(s.name for s in plan(profile) if s.study)})")
    if train_size:
        study = dataclasses.replace(study, settings={**study.settings, "data.train_size": train_size})
    folder = LabFolder(Path(tempfile.mkdtemp(dir=scratch)))
    ctx = LabContext(folder, profile, mnist, cifar, data_dir, None, "local", "cpu", io.StringIO())
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # the runs' progress bars
        failed = run_study(ctx, study)
    seconds = time.perf_counter() - start
    if failed:
        sys.exit(f"lab_pace: {failed} runs of {name} failed; see {folder.sweep(study.name)}")
    return seconds


def main() -> None:
    from reslab.data import reusing
    from reslab.lab.pace import reference_seconds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", nargs="+", default=["ex1-mlp"], help="study stages of the profile")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-size", type=int, help="train each run on this many images (a shorter stage)")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, reusing():  # as in the lab: each dataset decoded once
        scratch = Path(tmp)
        zip_ = args.data_dir / "CIFAR10-JPEG" / "cifar10-jpeg.zip"
        if (args.data_dir / "MNIST").is_dir() and zip_.is_file():
            mnist, cifar, data_dir = "mnist", f"imagefolder:{zip_}", args.data_dir
            data = f"real data in {args.data_dir}"
        else:
            mnist, cifar, data_dir = fake_data(scratch / "data")
            data = f"GENERATED data ({args.data_dir} has no MNIST + CIFAR-10 zip): ratios of smaller sets"
        print(f"lab_pace: {data}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
        reference: list[float] = []
        stages: dict[str, list[float]] = {name: [] for name in args.stage}
        for round_ in range(1, args.repeats + 1):
            reference.append(reference_seconds())
            print(f"round {round_}: reference workload {reference[-1]:.3f} s", flush=True)
            for name in args.stage:
                stages[name].append(time_stage(name, args.profile, mnist, cifar, str(data_dir), args.train_size,
                                               scratch))
                print(f"round {round_}: {name} {stages[name][-1]:.1f} s = {stages[name][-1] / reference[-1]:.1f} "
                      "reference workloads", flush=True)
    ref = statistics.median(reference)
    ratios = {name: statistics.median(s / r for s, r in zip(times, reference)) for name, times in stages.items()}
    for name, ratio in ratios.items():
        print(f"{name}: median {statistics.median(stages[name]):.1f} s, reference {ref:.3f} s -> {ratio:.1f} "
              f"reference workloads (the profile's work units{', on a subset' if args.train_size else ''})")
    print(json.dumps({"data": data, "cpu_count": os.cpu_count(), "profile": args.profile,
                      "train_size": args.train_size, "reference_seconds": reference,
                      "stage_seconds": stages,
                      "ratio_stage_to_reference": {k: round(v, 2) for k, v in ratios.items()}}))


if __name__ == "__main__":
    main()
