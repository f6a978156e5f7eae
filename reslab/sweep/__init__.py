"""Depth studies: expand a sweep into runs, run them (local pool, Ray, Slurm), aggregate with confidence intervals.

`spec` reads and checks a sweep (a file, or values built in memory: `sweep_spec`), `expansion` expands it into
runs, `folder` owns the sweep folder's files and reads them back as typed rows (`result`), `backends` names where
runs go (`local`, `ray_backend`, `slurm_backend`; every one trains a run with `local.run_task`), `cost` estimates a
sweep before it runs, `aggregate`, `stats` and `summary` turn the run folders into results; `runner.run_sweep(spec)`
runs one and returns a typed `SweepResult`.
"""

from reslab.sweep.backends import BACKENDS, BackendOptions
from reslab.sweep.expansion import expand
from reslab.sweep.folder import SweepFolder
from reslab.sweep.result import CellRow, Failure, PairRow, RunRow, SweepResult
from reslab.sweep.runner import run_sweep, sweep_file
from reslab.sweep.spec import RESIDUAL, PlannedRun, SweepSpec, load_sweep, sweep_spec

__all__ = ["BACKENDS", "RESIDUAL", "BackendOptions", "CellRow", "Failure", "PairRow", "PlannedRun", "RunRow",
           "SweepFolder", "SweepResult", "SweepSpec", "expand", "load_sweep", "run_sweep", "sweep_file", "sweep_spec"]
