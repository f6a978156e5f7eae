"""Depth studies: expand a sweep file into runs, run them (local pool), aggregate with confidence intervals.

`spec` reads and expands the sweep file, `folder` owns the sweep folder's files, `local` runs the runs,
`cost` estimates a sweep before it runs, `aggregate`, `stats` and `summary` turn the run folders into
results; `runner.run_sweep` is what `reslab sweep` calls.
"""

from reslab.sweep.runner import BACKENDS, run_sweep
from reslab.sweep.spec import PlannedRun, SweepSpec, expand, load_sweep

__all__ = ["BACKENDS", "PlannedRun", "SweepSpec", "expand", "load_sweep", "run_sweep"]
