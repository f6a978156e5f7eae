"""The `reslab analyze` instruments' command lines: one `_add_<name>` (its flags) and one `_run_<name>` (the call
into reslab.analyze) per instrument. `reslab.cli` owns the group, the error handling and the exit codes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

Handler = Callable[[argparse.Namespace], int]


def add_instruments(group: Any) -> None:
    """Add every instrument's subcommand to the `reslab analyze` group; each sets `handler`."""
    for add in INSTRUMENTS:
        add(group)


def _common(p: argparse.ArgumentParser, *, what: str) -> None:
    """The flags every instrument shares."""
    p.add_argument("--data-dir", metavar="D", help="dataset root (default: $RESLAB_DATA, else ./data)")
    p.add_argument("--dataset", metavar="SPEC", help="one dataset for all models (mnist, cifar10, imagefolder:PATH)")
    p.add_argument("--device", metavar="D", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, metavar="S", help=f"seeds {what} (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key of every model, e.g. model.depth=8")
    p.add_argument("--out", metavar="DIR", help="output folder, new or empty (default: RUN/analysis/<kind>-<id> for "
                                                "one run, else analysis/<kind>-<id>)")
    p.add_argument("--svg", action="store_true", help="also write every figure as SVG (beside its PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The shorthand flags as dotted config keys, set on every model after --set."""
    return {key: value for key, value in (("data.dataset", args.dataset), ("data.data_dir", args.data_dir))
            if value is not None}


def common_args(args: argparse.Namespace) -> dict[str, Any]:
    """The `_common` flags as the keyword arguments every `run_<instrument>` takes."""
    return {"overrides": args.set, "settings": settings_of(args), "device": args.device, "seed": args.seed,
            "out": args.out, "svg": args.svg, "progress": not args.quiet}


def _show(out_dir: Path, text: str) -> int:
    """Print an instrument's summary, then its output folder as the last line of stdout."""
    print(text)
    print(out_dir)
    return 0


def _add_shatter(group: Any) -> None:
    p = group.add_parser("shatter", help="shattered gradients: how alike the input gradients of nearby inputs are",
                         description="Balduzzi et al. 2017. The paper's set-up (fully-connected nets on a 1-D input "
                                     "grid at initialisation, plain and residual, without and with batch norm, over "
                                     "depths and seeds: the autocorrelation of d output / d input against lag) and, "
                                     "for each model or run given, the correlation of input gradients at "
                                     "neighbouring points along straight lines between test images. The last line "
                                     "printed on stdout is the output folder.")
    p.add_argument("models", nargs="*", metavar="MODEL_OR_RUN", help="presets, .yaml config files or run folders "
                                                                     "(none: the paper's grid only)")
    p.add_argument("--at", action="append", choices=["init", "best", "last", "every"], default=None,
                   help="init: fresh weights from the config's seed; best/last: a run's checkpoint; every: all "
                        "(repeat to combine; default: init, and last for run folders)")
    p.add_argument("--depths", type=int, nargs="+", metavar="L", help="grid nets' depths in blocks (default "
                                                                      "1 2 4 8 16 32 50)")
    p.add_argument("--forms", nargs="+", metavar="FORM", help="grid nets' forms (default: plain plain-bn resnet "
                                                               "resnet-bn)")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="grid nets per form and depth (default 3)")
    p.add_argument("--width", type=int, default=200, metavar="W", help="grid nets' width (default 200, the paper's)")
    p.add_argument("--grid-points", type=int, default=256, metavar="N", help="1-D inputs in [-2, 2] (default 256)")
    p.add_argument("--max-lag", type=int, default=32, metavar="K", help="largest lag (default 32)")
    p.add_argument("--no-grid", action="store_true", help="skip the paper's grid; measure only the models given")
    p.add_argument("--pairs", type=int, default=4, metavar="N", help="lines between test images per model "
                                                                     "(default 4)")
    p.add_argument("--line-points", type=int, default=128, metavar="N", help="points along each line (default 128)")
    _common(p, what="the grid nets' weights and the test images at the lines' ends")
    p.set_defaults(handler=_run_shatter)


def _run_shatter(args: argparse.Namespace) -> int:
    from reslab.analyze.shatter import DEFAULT_DEPTHS, FORMS, GridSettings
    from reslab.analyze.shatter_output import run_shatter

    grid = None if args.no_grid else GridSettings(
        depths=tuple(args.depths or DEFAULT_DEPTHS), forms=tuple(args.forms or FORMS), seeds=args.seeds,
        width=args.width, points=args.grid_points, max_lag=args.max_lag)
    return _show(*run_shatter(args.models, grid=grid, at=args.at or ["init", "last"], pairs=args.pairs,
                              line_points=args.line_points, **common_args(args)))


def _add_lesion(group: Any) -> None:
    p = group.add_parser("lesion", help="test error of trained nets after deleting or swapping blocks (Veit et al. "
                                        "2016)",
                         description="Delete each block alone (a block becomes its shortcut), k random blocks "
                                     "(k = 1..n) and swap k pairs of same-shape blocks of trained nets; write the test "
                                     "errors, figures and a summary beside Veit et al. 2016's expectation. The last "
                                     "line printed on stdout is the output folder.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run folder with checkpoints (a plain/residual pair "
                                                          "side by side)")
    p.add_argument("--at", choices=["best", "last"], default="best", help="which checkpoint (default best)")
    p.add_argument("--subset", type=int, metavar="N", help="evaluate on N test images drawn with --seed (default: "
                                                           "the whole test set)")
    p.add_argument("--draws", type=int, default=10, metavar="N", help="random draws per k (default 10; fewer are "
                                                                      "faster and noisier)")
    _common(p, what="the test subset and the blocks deleted or swapped")
    p.set_defaults(handler=_run_lesion)


def _run_lesion(args: argparse.Namespace) -> int:
    from reslab.analyze.lesion_output import run_lesion

    return _show(*run_lesion(args.runs, at=args.at, subset=args.subset, draws=args.draws, **common_args(args)))


def _add_init(group: Any) -> None:
    p = group.add_parser("init", help="activation std block by block at initialisation, per block form (plain, "
                                      "batch norm, plain sum, ReZero, Fixup)",
                         description="At initialisation, measure the std of each block's output and the ratio of its "
                                     "branch to its skip. Given one model, compare the block forms at its depth; "
                                     "given several, measure them as given. The last line printed on stdout is the "
                                     "output folder.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="a preset, a .yaml config file or a run folder (at init)")
    p.add_argument("--forms", metavar="LIST", help="comma-separated block forms to build each model in: plain, "
                                                   "plain-bn, residual-bn, residual, rezero, fixup, or 'given' "
                                                   "(default: plain,residual-bn,residual,rezero,fixup for one model, "
                                                   "given for several)")
    p.add_argument("--batches", type=int, default=4, metavar="N", help="training batches to average over (default 4)")
    _common(p, what="the batches drawn (the weights are seeded by each config's train.seed)")
    p.set_defaults(handler=_run_init)


def _run_init(args: argparse.Namespace) -> int:
    from reslab.analyze.init_output import run_init

    return _show(*run_init(args.models, forms=args.forms, batches=args.batches, **common_args(args)))


def _add_landscape(group: Any) -> None:
    p = group.add_parser("landscape", help="loss landscape of trained runs along random filter-normalised directions",
                         description="Li et al. 2018: the loss and accuracy of each trained run along one or two "
                                     "random directions, each filter rescaled to the norm of the trained filter "
                                     "(biases and norm layers not moved), batch norm in eval mode, on a fixed seeded "
                                     "subset of the training split. Runs given together are cut along directions drawn "
                                     "from the same seed (saved in directions.pt). The last line printed on stdout is "
                                     "the output folder.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (with a best.pt or last.pt)")
    p.add_argument("--at", choices=["best", "last"], default="last", help="the checkpoint to cut (default last)")
    p.add_argument("--dims", type=int, default=1, metavar="1|2", help="1: curves, 2: contour maps (default 1)")
    p.add_argument("--points", type=int, metavar="N", help="odd number of points per direction (default 21 for 1-D, "
                                                           "11 for 2-D)")
    p.add_argument("--subset", type=int, default=1000, metavar="N", help="training images evaluated (default 1000)")
    p.add_argument("--span", type=float, default=1.0, metavar="S", help="steps from -S to S along each direction "
                                                                        "(default 1)")
    _common(p, what="the directions and the training subset")
    p.set_defaults(handler=_run_landscape)


def _run_landscape(args: argparse.Namespace) -> int:
    from reslab.analyze.landscape import LandscapeSettings
    from reslab.analyze.landscape_output import run_landscape

    settings = LandscapeSettings(dims=args.dims, points=args.points, subset=args.subset, span=args.span)
    return _show(*run_landscape(args.runs, settings, at=args.at, overrides=args.set, extra=settings_of(args),
                                device=args.device, seed=args.seed, out=args.out, svg=args.svg,
                                progress=not args.quiet))


# each instrument appends its `_add_<name>` here (lesion, shatter, landscape, init)
INSTRUMENTS: tuple[Callable[[Any], None], ...] = (_add_lesion, _add_shatter, _add_landscape, _add_init)
