"""Depth studies: expand a sweep file into runs, run them (local pool, Ray, Slurm), aggregate with confidence
intervals.

`spec` reads and expands the sweep file, `folder` owns the sweep folder's files, `backends` names where runs go
(`local`, `ray_backend`, `slurm_backend`; every one trains a run with `local.run_task`), `cost` estimates a
sweep before it runs, `aggregate`, `stats` and `summary` turn the run folders into results; `runner.run_sweep`
is what `reslab sweep` calls.
"""

from reslab.sweep.backends import BACKENDS, BackendOptions
from reslab.sweep.runner import run_sweep
from reslab.sweep.spec import PlannedRun, SweepSpec, expand, load_sweep

__all__ = ["BACKENDS", "BackendOptions", "PlannedRun", "SweepSpec", "expand", "load_sweep", "run_sweep"]
