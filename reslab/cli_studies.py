"""The command lines of the studies that run many trainings: `reslab sweep` and `reslab lab` (their flags and the
calls into reslab.sweep and reslab.lab, which return typed results). `reslab.cli` owns the parser, the error
handling and the exit codes.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reslab.lab.run import LabResult
    from reslab.sweep.result import SweepResult


def add_sweep_parser(sub: Any) -> None:
    s = sub.add_parser("sweep", help="run a depth study: a grid of runs over seeds, aggregated with CIs",
                       description="Expand a sweep file (base, set, grid, seeds, tune) into runs under "
                                   "<runs-dir>/<sweep name>/runs, train what is not finished yet (resuming interrupted "
                                   "runs), and write results.csv, aggregate.csv, paired.csv, figures and summary.txt. "
                                   "The last line printed on stdout is the sweep folder.")
    s.add_argument("file", metavar="SWEEP_FILE", help="a sweep .yaml file (see sweeps/)")
    s.add_argument("--jobs", type=int, metavar="N", help="runs at a time (local: one per GPU; on a CPU 1, or one per "
                                                         "free core for a big sweep of several packs; ray: tasks in "
                                                         "flight; slurm: the array's parallelism)")
    s.add_argument("--backend", choices=["local", "ray", "slurm"], default="local",
                   help="where runs go: worker processes here, Ray tasks (pip install 'reslab[ray]') or one Slurm "
                        "job array (pip install 'reslab[slurm]')")
    s.add_argument("--cpus-per-run", type=int, metavar="N", help="ray, slurm: CPUs (and torch threads) per run "
                                                                 "(default: the run's train.threads, else 1)")
    s.add_argument("--gpus-per-run", type=float, metavar="G", help="ray: GPUs per run, a fraction packs runs on a "
                                                                   "GPU (default: 1 where the cluster has GPUs); "
                                                                   "slurm: GPUs per task")
    s.add_argument("--ray-address", metavar="ADDR", help="ray: host:port, ray://host:port or auto "
                                                        "(default: $RAY_ADDRESS, else start a local Ray)")
    s.add_argument("--slurm-partition", metavar="P", help="slurm: the partition")
    s.add_argument("--slurm-time", type=int, metavar="MIN",
                   help="slurm: time limit per task in minutes (default: 1440); a task stopped by it resumes when "
                        "the sweep runs again")
    s.add_argument("--slurm-arg", action="append", metavar="KEY=VALUE",
                   help="slurm: another submitit parameter, e.g. account=lab, mem_gb=16, constraint=a100 "
                        "(repeatable)")
    s.add_argument("--slurm-cluster", metavar="C", help="slurm: slurm (default), or local to run the job array as "
                                                        "processes here (submitit's local executor)")
    s.add_argument("--runs-dir", metavar="D", help="where the sweep folder goes (default: runs)")
    s.add_argument("--data-dir", metavar="D", help="dataset root (default: $RESLAB_DATA, else ./data)")
    s.add_argument("--dry-run", action="store_true", help="list every run, its state and its estimated cost; "
                                                          "write nothing")


def add_lab_parser(sub: Any) -> None:
    lab = sub.add_parser("lab", help="the whole lab: every experiment of the notebook and its fair versions, one report",
                         description="Train the notebook's models and the fair plain/residual depth studies, run the "
                                     "gradient-flow and analysis instruments, and write one report whose conclusions "
                                     "are computed from the measured numbers. Resumable: run it again to continue; a "
                                     "finished lab only rebuilds its report. The last line printed on stdout is "
                                     "report.html.")
    lab.add_argument("--profile", metavar="quick|full", help="quick: a 2-core CPU in about 15 minutes "
                                                                  "(subsets, fewer epochs, stated in the report); full: "
                                                                  "the notebook's settings, for a GPU (default: picked "
                                                                  "from the device, and printed)")
    lab.add_argument("--mnist", default="mnist", metavar="SPEC", help="the MNIST-like dataset (default mnist)")
    lab.add_argument("--cifar", default="cifar10", metavar="SPEC",
                     help="the CIFAR-10-like dataset (default cifar10; e.g. imagefolder:PATH/cifar10-jpeg.zip)")
    lab.add_argument("--data-dir", metavar="D", help="dataset root (default: $RESLAB_DATA, else ./data)")
    lab.add_argument("--out", default="lab", metavar="DIR", help="the lab folder (default: lab); run again with the "
                                                                 "same folder to continue")
    lab.add_argument("--jobs", type=int, metavar="N", help="runs at a time in each sweep (default: as `reslab sweep`)")
    lab.add_argument("--backend", choices=["local", "ray", "slurm"], default="local", help="where runs go")
    lab.add_argument("--device", default="auto", metavar="D", help="auto, cpu, cuda, cuda:N or mps")


def cmd_sweep(args: argparse.Namespace) -> SweepResult:
    from reslab.sweep import BackendOptions, sweep_file

    given = dict(jobs=args.jobs, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                 ray_address=args.ray_address, slurm_partition=args.slurm_partition, slurm_time=args.slurm_time,
                 slurm_cluster=args.slurm_cluster, slurm_args=tuple(args.slurm_arg) if args.slurm_arg else None)
    options = BackendOptions(**{name: value for name, value in given.items() if value is not None})
    result = sweep_file(args.file, backend=args.backend, runs_dir=args.runs_dir, data_dir=args.data_dir,
                        dry=args.dry_run, options=options)
    print(result.folder)
    return result


def cmd_lab(args: argparse.Namespace) -> LabResult:
    from reslab.lab import run_lab

    result = run_lab(profile=args.profile, mnist=args.mnist, cifar=args.cifar, data_dir=args.data_dir,
                     out=args.out, jobs=args.jobs, backend=args.backend, device=args.device)
    print(result.path)
    return result
