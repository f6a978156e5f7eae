"""The registrations of the two instruments that look at the geometry of what a net computes: shattered gradients
(Balduzzi et al. 2017) and the loss landscape (Li et al. 2018). `reslab.analyze.instruments` lists them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from reslab.analyze.registry import Call, Instrument, LabSource, LabStage, add_common, steps
from reslab.errors import ConfigError
from reslab.runs import RunFolder


# ----------------------------------------------------------------------------- the pair where both twins learned


def learned_pair(lab: LabSource, seed: int = 0) -> list[str]:
    """The MLP twins (plain, residual) of one seed at the profile's `learned_depth_mlp`, from the depth study's runs."""
    depth = lab.profile.learned_depth_mlp
    found: dict[bool, str] = {}
    for run in lab.depth_runs(seed):
        model = RunFolder(Path(run)).read_config().get("model") or {}
        if model.get("depth") == depth:
            found[bool(model.get("residual"))] = run
    if set(found) != {False, True}:
        raise ConfigError(f"the MLP depth study has no finished plain/residual pair at depth {depth} (seed {seed})")
    return [found[False], found[True]]


def seed_pairs(lab: LabSource, runs: str) -> list[str]:
    """The twins `runs` names (mlp: the deep MLP pair, mlp-learned: where both learned, conv: the deepest conv pair)
    of each of the first `instrument_seeds` seeds the study trained: plain, residual, plain, residual, ..."""
    study = lab.profile.conv_depth if runs == "conv" else lab.profile.mlp_depth
    out: list[str] = []
    for seed in range(max(1, min(getattr(lab.profile, "instrument_seeds", 1), study.seeds))):
        out += lab.mlp_pair(seed) if runs == "mlp" else learned_pair(lab, seed) if runs == "mlp-learned" else \
            lab.conv_pair(seed)
    return out


def seed_pair_stage(kind: str, runs: str, title: str, options: Callable[[LabSource, str], Any], doc: str) -> LabStage:
    """The lab stage `kind`-`runs` of a pair instrument: the twins `runs` names over the profile's instrument seeds
    (`seed_pairs`: its summary then gives intervals over them), with the options `options(lab, runs)` makes."""

    def call(lab: LabSource) -> Call:
        return Call(tuple(seed_pairs(lab, runs)), options(lab, runs))

    call.__doc__ = doc
    if runs == "mlp-learned":
        return LabStage(f"{kind}-{runs}", title, call, when=has_learned_pair)
    return LabStage(f"{kind}-{runs}", title, call)


def has_learned_pair(profile: Any) -> bool:
    """Whether the profile's learned depth is a depth of its MLP study other than the deep pair's."""
    depth = getattr(profile, "learned_depth_mlp", None)
    return depth is not None and depth != profile.pair_depth_mlp and \
        depth in profile.mlp_depth.grid.get("model.depth", [])


# ----------------------------------------------------------------------------- shatter


def _shatter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="MODEL_OR_RUN", help="presets, .yaml config files or run folders "
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
    add_common(p, what="the grid nets' weights and the test images at the lines' ends")


def _shatter_call(args: argparse.Namespace) -> Call:
    from reslab.analyze import shatter

    grid = None if args.no_grid else shatter.GridSettings(
        depths=tuple(args.depths or shatter.DEFAULT_DEPTHS), forms=tuple(args.forms or shatter.FORMS),
        seeds=args.seeds, width=args.width, points=args.grid_points, max_lag=args.max_lag)
    return Call(tuple(args.sources), shatter.ShatterOptions(grid=grid, at=tuple(args.at or ["init", "last"]),
                                                            pairs=args.pairs, line_points=args.line_points))


def _shatter_mlp(lab: LabSource) -> Call:
    """Balduzzi et al.'s 1-D grid over depth, and the MLP twins along lines between test images (init, trained)."""
    from reslab.analyze import shatter

    grid = shatter.GridSettings(depths=lab.profile.shatter_depths, seeds=lab.profile.shatter_seeds)
    return Call(tuple(lab.mlp_pair()), shatter.ShatterOptions(grid=grid, at=("init", "last")))


def _shatter_learned(lab: LabSource) -> Call:
    """The MLP twins at the depth where both learned, along lines between test images (init, trained)."""
    from reslab.analyze import shatter

    return Call(tuple(learned_pair(lab)), shatter.ShatterOptions(grid=None, at=("init", "last")))


def _shatter_conv(lab: LabSource) -> Call:
    from reslab.analyze import shatter

    return Call(tuple(lab.conv_pair()), shatter.ShatterOptions(grid=None, at=("init", "last")))


SHATTER = Instrument(
    name="shatter", title="Shattered gradients",
    help="shattered gradients: how alike the input gradients of nearby inputs are",
    description="Balduzzi et al. 2017. The paper's set-up (fully-connected nets on a 1-D input grid at "
                "initialisation, plain and residual, without and with batch norm, over depths and seeds: the "
                "autocorrelation of d output / d input against lag) and, for each model or run given, the "
                "correlation of input gradients at neighbouring points along straight lines between test images. "
                "The last line printed on stdout is the output folder.",
    add_arguments=_shatter_arguments, from_args=_shatter_call, **steps("reslab.analyze.shatter"),
    lab=(LabStage("shatter-mlp", "Shattered gradients: the paper's grid and the MLP twins", _shatter_mlp),
         LabStage("shatter-conv", "Shattered gradients: the conv twins", _shatter_conv),
         LabStage("shatter-mlp-learned", "Shattered gradients: the MLP twins where both learned", _shatter_learned,
                  when=has_learned_pair)))


# ----------------------------------------------------------------------------- landscape


def _landscape_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="RUN", help="run folders (with a best.pt or last.pt)")
    p.add_argument("--at", choices=["best", "last"], default="last", help="the checkpoint to cut (default last)")
    p.add_argument("--dims", type=int, default=1, metavar="1|2", help="1: curves, 2: contour maps (default 1)")
    p.add_argument("--points", type=int, metavar="N", help="odd number of points per direction (default 21 for 1-D, "
                                                           "11 for 2-D)")
    p.add_argument("--subset", type=int, default=1000, metavar="N", help="training images evaluated (default 1000)")
    p.add_argument("--span", type=float, default=1.0, metavar="S", help="steps from -S to S along each direction "
                                                                        "(default 1)")
    p.add_argument("--directions", type=int, default=1, metavar="N",
                   help="1-D only: cut along N independent random directions and judge from all of them (default 1)")
    add_common(p, what="the directions and the training subset")


def _landscape_call(args: argparse.Namespace) -> Call:
    from reslab.analyze import landscape

    cut = landscape.LandscapeSettings(dims=args.dims, points=args.points, subset=args.subset, span=args.span,
                                      directions=args.directions)
    return Call(tuple(args.sources), landscape.LandscapeOptions(cut=cut, at=args.at))


def _landscape_of(runs: str, dims: int, title: str) -> LabStage:
    """Li et al.'s filter-normalised cut through trained twins, along directions of the same seed: 1-D along the
    profile's several directions, or one 2-D surface."""

    def call(lab: LabSource) -> Call:
        from reslab.analyze import landscape

        points = lab.profile.landscape_points if dims == 1 else None
        cut = landscape.LandscapeSettings(dims=dims, points=points, subset=lab.profile.subset_for(runs),
                                          directions=lab.profile.landscape_directions if dims == 1 else 1)
        pair = lab.mlp_pair() if runs == "mlp" else learned_pair(lab) if runs == "mlp-learned" else lab.conv_pair()
        return Call(tuple(pair), landscape.LandscapeOptions(cut=cut))

    name = f"landscape-{runs}" + ("-2d" if dims == 2 else "")
    if runs == "mlp-learned":
        return LabStage(name, title, call, when=has_learned_pair)
    if dims == 1:
        return LabStage(name, title, call)
    flag = "landscape_2d" if runs == "conv" else "landscape_2d_mlp"
    return LabStage(name, title, call, when=lambda profile: bool(getattr(profile, flag, False)))


LANDSCAPE = Instrument(
    name="landscape", title="Loss landscape",
    help="loss landscape of trained runs along random filter-normalised directions",
    description="Li et al. 2018: the loss and accuracy of each trained run along one or two random directions, each "
                "filter rescaled to the norm of the trained filter (biases and norm layers not moved), batch norm in "
                "eval mode, on a fixed seeded subset of the training split. Runs given together are cut along "
                "directions drawn from the same seed (saved in the output folder). The last line printed on stdout "
                "is the output folder.",
    add_arguments=_landscape_arguments, from_args=_landscape_call,
    **steps("reslab.analyze.landscape"),
    lab=(_landscape_of("mlp", 1, "Loss landscape of the MLP twins"),
         _landscape_of("conv", 1, "Loss landscape of the conv twins"),
         _landscape_of("conv", 2, "2-D loss landscape of the conv twins"),
         _landscape_of("mlp", 2, "2-D loss landscape of the MLP twins"),
         _landscape_of("mlp-learned", 1, "Loss landscape of the MLP twins where both learned")))
