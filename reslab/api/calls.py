"""`reslab.train`, `reslab.sweep` and `reslab.lab`: what `reslab train`, `reslab sweep` and `reslab lab` call, from
Python, returning the folder as an object (`Run`, `Sweep`, `Lab`) instead of printing it.

Config overrides are keyword arguments whose double underscores stand for the dots of the dotted keys:
`reslab.train("res-mlp8", train__epochs=1, data__subset=512)` is `reslab train res-mlp8 --set train.epochs=1
--set data.subset=512` (values are Python values, not text). Errors a user can cause are `ReslabError`s, never
SystemExit; a stop (Ctrl-C, a kernel interrupt) saves the run's checkpoint and raises `Stopped` (a ReslabError).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from reslab.api.lab import Lab
from reslab.api.run import Run
from reslab.api.sweep import Sweep
from reslab.errors import ConfigError, ReslabError


class Stopped(ReslabError):
    """A stop signal (Ctrl-C, a notebook's kernel interrupt) ended a run, sweep or lab; what was done is saved.
    `path` is its folder: call the same function again (a run: with `resume=path`) to continue."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword overrides as dotted config keys: train__epochs -> train.epochs (a key may also be given dotted)."""
    return {key.replace("__", "."): value for key, value in overrides.items()}


def train(preset_or_cfg: Any = None, *, resume: str | Path | Run | None = None, progress: bool = True,
          observers: Sequence[Any] = (), **overrides: Any) -> Run:
    """Train a preset name, a .yaml config file, a `RunConfig` or a dict of config values; returns the `Run`.

    Overrides: `section__key=value` sets the dotted key `section.key` (e.g. `train__epochs=1`, `model__depth=8`,
    `name="mine"`). `resume`: a run folder (or `Run`) to continue from its last checkpoint, as
    `reslab train --resume`; it takes only `train__epochs`, `train__device`, `data__data_dir` and `track__sinks`.
    `observers`: extra `reslab.protocols.Observer`s. A diverged run is returned (its status says so), not raised.
    """
    from reslab.cli import RESUMABLE_KEYS, run_config
    from reslab.config import RunConfig, to_dict
    from reslab.train import Interrupted, train as train_run

    settings = dotted(overrides)
    if resume is not None:
        resume = resume.path if isinstance(resume, Run) else Path(resume)
        fixed = sorted(set(settings) - set(RESUMABLE_KEYS)) + ["preset_or_cfg"] * (preset_or_cfg is not None)
        if fixed:
            raise ConfigError(f"resume continues a run as configured; it cannot take {', '.join(fixed)} "
                              f"(allowed: {', '.join(k.replace('.', '__') for k in RESUMABLE_KEYS)})")
    source = to_dict(preset_or_cfg) if isinstance(preset_or_cfg, RunConfig) else preset_or_cfg
    if source is not None and not isinstance(source, (str, Path, Mapping)):
        raise ConfigError(f"train takes a preset name, a config file, a RunConfig or a dict, got "
                          f"{type(preset_or_cfg).__name__}")
    cfg = run_config(str(source) if isinstance(source, Path) else source, resume=resume, settings=settings)
    try:
        result = train_run(cfg, observers, resume=resume, progress=progress)
    except Interrupted as exc:
        raise Stopped(f"interrupted; checkpoint saved. Continue with: reslab.train(resume={str(exc.run_dir)!r})",
                      exc.run_dir) from None
    return Run(Path(result.run_dir))


def sweep(file_or_dict: str | Path | Mapping[str, Any], *, jobs: int | None = None, backend: str = "local",
          runs_dir: str | Path | None = None, data_dir: str | None = None, dry_run: bool = False,
          **options: Any) -> Sweep:
    """Run a sweep (a .yaml sweep file, or its values as a dict with a `name`), as `reslab sweep`; returns the
    `Sweep`. Finished runs are never trained twice: calling it again resumes an interrupted sweep.

    `options` are the backend's (`cpus_per_run`, `gpus_per_run`, `ray_address`, `slurm_partition`, ...: the fields
    of `reslab.sweep.BackendOptions`). Runs that fail are listed in `results` (their status), not raised.
    """
    from dataclasses import fields

    from reslab.sweep import BackendOptions, run_sweep, sweep_file, sweep_spec
    from reslab.sweep.folder import SweepFolder

    known = {f.name for f in fields(BackendOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown sweep option {unknown[0]}; valid: jobs, backend, runs_dir, data_dir, dry_run, "
                          f"{', '.join(sorted(known))}")
    opts = BackendOptions(**({"jobs": jobs} if jobs is not None else {}), **options)
    kwargs = dict(backend=backend, runs_dir=runs_dir, data_dir=data_dir, dry=dry_run, options=opts)
    if isinstance(file_or_dict, Mapping):
        if not isinstance(file_or_dict.get("name"), str):
            raise ConfigError("a sweep given as a dict needs a `name` (its folder's name)")
        kept = SweepFolder(Path(runs_dir or "runs") / file_or_dict["name"]).sweep_file
        result = run_sweep(sweep_spec(_as_read_back(file_or_dict), kept), **kwargs)
    else:
        result = sweep_file(file_or_dict, **kwargs)
    if not result.completed:
        raise Stopped(f"sweep stopped; finished runs are kept. Continue with the same reslab.sweep(...) call",
                      result.folder)
    return Sweep(Path(result.folder))


def lab(*, profile: str | None = None, mnist: str = "mnist", cifar: str = "cifar10", data_dir: str | None = None,
        out: str | Path = "lab", jobs: int | None = None, backend: str = "local", device: str = "auto") -> Lab:
    """The whole lab, as `reslab lab`: its sweeps, analyses and report in `out`; returns the `Lab`. Resumable: call
    it again with the same `out` to continue (a finished lab only rebuilds its report).

    `profile`: quick (a 2-core CPU in about 15 minutes) or full (the notebook's settings, for a GPU); None picks
    from the device."""
    from reslab.lab import run_lab

    result = run_lab(profile=profile, mnist=mnist, cifar=cifar, data_dir=data_dir, out=out, jobs=jobs,
                     backend=backend, device=device)
    if not result.completed:
        raise Stopped(f"lab stopped; call reslab.lab(out={str(out)!r}, ...) again to continue", result.folder)
    return Lab(Path(result.folder))


def _as_read_back(values: Mapping[str, Any]) -> dict[str, Any]:
    """A sweep's values as its folder's copy (sweep.yaml) reads back (tuples as lists), so that running the same
    dict again continues the sweep instead of finding a different one."""
    import json

    try:
        return json.loads(json.dumps(dict(values)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"a sweep's values must be plain numbers, strings, lists and dicts ({exc})") from None
