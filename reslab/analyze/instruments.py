"""The built-in instruments' registrations: flags, the typed call made of them, and the lab stages each runs.

Each registration names its measure module's `prepare` and `measure_targets` and its summary module's `summarise`;
the CLI sub-commands and the lab's analysis stages are generated from `BUILTIN` (in this order).
"""

from __future__ import annotations

import argparse
from typing import Any

from reslab.analyze.registry import Call, Instrument, LabSource, LabStage, add_common, steps
from reslab.analyze.instruments_geometry import LANDSCAPE, SHATTER, seed_pair_stage


# ----------------------------------------------------------------------------- gradflow


def _gradflow_arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument("sources", nargs="+", metavar="MODEL_OR_RUN", help="a preset, a .yaml config file or a run folder")
    g.add_argument("--at", action="append", choices=["init", "best", "last", "every"], default=None,
                   help="init: fresh weights from the config's seed (default); best/last: the run's checkpoint; "
                        "every: all checkpoints present (repeat to combine)")
    g.add_argument("--batches", type=int, default=11, metavar="N", help="batches to measure (default 11, as the "
                                                                        "notebook)")
    g.add_argument("--dataset", metavar="SPEC",
                   help="one dataset for all models (mnist, cifar10, imagefolder:PATH, ...)")
    g.add_argument("--data-dir", metavar="D", help="dataset root (default: $RESLAB_DATA, else ./data)")
    g.add_argument("--device", metavar="D", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="which batches are drawn (default 0)")
    g.add_argument("--notebook-kernel", action="store_true",
                   help="build seed-cnn with kernel size 4, as the notebook's Exercise 2 cell did (the preset has 3)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key of "
                                                                                  "every model, e.g. model.size=4")
    g.add_argument("--out", metavar="DIR", help="output folder, new or empty (default: gradflow/gradflow-<id>)")
    g.add_argument("--svg", action="store_true", help="also write every figure as SVG (beside its PNG)")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _gradflow_call(args: argparse.Namespace) -> Call:
    from reslab.analyze import gradflow

    return Call(tuple(args.sources), gradflow.GradflowOptions(at=tuple(args.at or ["init"]), batches=args.batches,
                                                              notebook_kernel=args.notebook_kernel))


def _gradflow_notebook(lab: LabSource) -> Call:
    """The notebook's Exercise 2 as it ran: its CNN (kernel 4, as its cell built it) and ResNetCNN at init."""
    from reslab.analyze import gradflow

    val_size = lab.profile.notebook_cnn.settings.get("data.val_size", 5000)  # batches come from the training split
    return Call(("seed-cnn", "seed-resnet"), gradflow.GradflowOptions(
        at=("init",), batches=lab.profile.gradflow_batches, notebook_kernel=True),
        settings=lab.settings("cifar") | {"data.val_size": val_size})


def _gradflow_depth(lab: LabSource) -> Call:
    """Gradient flow of the fair MLP twins at every depth, at init and after training (seed 0)."""
    from reslab.analyze import gradflow

    return Call(tuple(lab.depth_runs()), gradflow.GradflowOptions(at=("init", "last"),
                                                                 batches=lab.profile.gradflow_batches))


GRADFLOW = Instrument(
    name="gradflow", title="Gradient flow", help="gradient flow of models at init or at a run's checkpoints",
    description="Measure per-parameter and per-layer gradient norms (and layer output stds) of every model on the "
                "same batches; write CSVs, figures and a statistics table into a new folder. The last line printed "
                "on stdout is that folder.",
    add_arguments=_gradflow_arguments, from_args=_gradflow_call, **steps("reslab.analyze.gradflow"),
    lab=(LabStage("gradflow-notebook", "Exercise 2: the notebook's gradient norms", _gradflow_notebook),
         LabStage("gradflow-depth", "Gradient flow over depth", _gradflow_depth)))


# ----------------------------------------------------------------------------- lesion


def _lesion_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="RUN", help="a run folder with checkpoints (a plain/residual pair "
                                                             "side by side)")
    p.add_argument("--at", choices=["best", "last"], default="best", help="which checkpoint (default best)")
    p.add_argument("--subset", type=int, metavar="N", help="evaluate on N test images drawn with --seed (default: "
                                                           "the whole test set)")
    p.add_argument("--draws", type=int, default=10, metavar="N", help="random draws per k (default 10; fewer are "
                                                                      "faster and noisier)")
    p.add_argument("--path-images", type=int, default=128, metavar="N",
                   help="test images on which a residual net's gradient by path length is measured (Veit et al.'s "
                        "Figure 6; default 128, 0: none)")
    add_common(p, what="the test subset and the blocks deleted or swapped")


def _lesion_call(args: argparse.Namespace) -> Call:
    from reslab.analyze import lesion

    return Call(tuple(args.sources), lesion.LesionOptions(at=args.at, subset=args.subset, draws=args.draws,
                                                          path_images=args.path_images))


def _lesion_options(lab: LabSource, runs: str) -> Any:
    from reslab.analyze import lesion

    return lesion.LesionOptions(at="last", subset=lab.profile.subset_for(runs), draws=lab.profile.lesion_draws,
                                path_images=lab.profile.lesion_path_images)


def _lesion_of(runs: str, title: str) -> LabStage:
    return seed_pair_stage("lesion", runs, title, _lesion_options, "Veit et al.'s lesion of trained twins: each block "
                           "deleted, k random blocks, k swapped pairs, paths by length.")


LESION = Instrument(
    name="lesion", title="Lesion and reordering",
    help="test error of trained nets after deleting or swapping blocks (Veit et al. 2016)",
    description="Delete each block alone (a block becomes its shortcut), k random blocks (k = 1..n) and swap k pairs "
                "of same-shape blocks of trained nets; write the test errors, figures and a summary beside Veit et "
                "al. 2016's expectation. The last line printed on stdout is the output folder.",
    add_arguments=_lesion_arguments, from_args=_lesion_call, **steps("reslab.analyze.lesion"),
    lab=(_lesion_of("mlp", "Lesion: deleting and swapping blocks of the MLP twins"),
         _lesion_of("conv", "Lesion: deleting and swapping blocks of the conv twins"),
         _lesion_of("mlp-learned", "Lesion: the MLP twins where both learned")))


# ----------------------------------------------------------------------------- init


def _init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="MODEL", help="a preset, a .yaml config file or a run folder (at "
                                                               "init)")
    p.add_argument("--forms", metavar="LIST", help="comma-separated block forms to build each model in: plain, "
                                                   "plain-bn, residual-bn, residual, rezero, fixup, or 'given' "
                                                   "(default: plain,residual-bn,residual,rezero,fixup for one model, "
                                                   "given for several)")
    p.add_argument("--batches", type=int, default=4, metavar="N", help="training batches to average over (default 4)")
    add_common(p, what="the batches drawn (the weights are seeded by each config's train.seed)")


def _init_call(args: argparse.Namespace) -> Call:
    from reslab.analyze import init

    return Call(tuple(args.sources), init.InitOptions(forms=args.forms, batches=args.batches))


def _init_mlp(lab: LabSource) -> Call:
    """The residual twin's depth in every block form at initialisation: plain, batch norm, plain sum, ReZero, Fixup."""
    from reslab.analyze import init

    return Call(tuple(lab.mlp_pair()[1:]), init.InitOptions(batches=lab.profile.gradflow_batches))


def _init_conv(lab: LabSource) -> Call:
    from reslab.analyze import init

    return Call(tuple(lab.conv_pair()[1:]), init.InitOptions(batches=lab.profile.gradflow_batches))


INIT = Instrument(
    name="init", title="Activation scale at initialisation, by block form",
    help="activation std block by block at initialisation, per block form (plain, batch norm, plain sum, ReZero, "
         "Fixup)",
    description="At initialisation, measure the std of each block's output and the ratio of its branch to its skip. "
                "Given one model, compare the block forms at its depth; given several, measure them as given. The "
                "last line printed on stdout is the output folder.",
    add_arguments=_init_arguments, from_args=_init_call, **steps("reslab.analyze.init"),
    lab=(LabStage("init-mlp", "Block forms at initialisation, at the MLP twins' depth", _init_mlp),
         LabStage("init-conv", "Block forms at initialisation, at the conv twins' depth", _init_conv)))



# ----------------------------------------------------------------------------- responses


def _responses_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="MODEL_OR_RUN", help="run folders (a plain/residual pair side by "
                                                                      "side), or presets and config files at init")
    p.add_argument("--at", choices=["init", "best", "last"], default="last",
                   help="last/best: the run's checkpoint, in eval mode (default last); init: fresh weights, train mode")
    p.add_argument("--batches", type=int, default=4, metavar="N", help="training batches to average over (default 4)")
    add_common(p, what="the batches drawn")


def _responses_call(args: argparse.Namespace) -> Call:
    from reslab.analyze import responses

    return Call(tuple(args.sources), responses.ResponsesOptions(at=args.at, batches=args.batches))


def _responses_options(lab: LabSource, runs: str) -> Any:
    from reslab.analyze import responses

    return responses.ResponsesOptions(at="last", batches=lab.profile.gradflow_batches)


def _responses_of(runs: str, title: str) -> LabStage:
    return seed_pair_stage("responses", runs, title, _responses_options, "He et al.'s Figure 7 on trained twins: the "
                           "std of every block layer's response, plain against residual.")


RESPONSES = Instrument(
    name="responses", title="Layer responses (He et al. 2015, Figure 7)",
    help="std of each layer's response after batch norm, before the nonlinearity, plain against residual twins",
    description="Measure the std of every block layer's response (after its norm and before the ReLU and the "
                "addition; without a norm, after the layer's linear/conv op) on the same batches, and compare "
                "plain/residual twins layer by layer with He et al. 2015's Figure 7. The last line printed on stdout "
                "is the output folder.",
    add_arguments=_responses_arguments, from_args=_responses_call,
    **steps("reslab.analyze.responses"),
    lab=(_responses_of("conv", "Layer responses of the conv twins (batch norm)"),
         _responses_of("mlp-learned", "Layer responses of the MLP twins where both learned"),
         _responses_of("mlp", "Layer responses of the deep MLP twins")))

BUILTIN: tuple[Instrument, ...] = (GRADFLOW, LESION, SHATTER, LANDSCAPE, INIT, RESPONSES)
