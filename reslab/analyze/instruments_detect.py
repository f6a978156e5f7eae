"""The fully-convolutional digit detector's registration (`reslab analyze fcn`, Exercise 2.2 of the 2023/24 lab):
its flags and the typed call made of them. `catalog` lists it after the built-in instruments of `instruments`.
"""

from __future__ import annotations

import argparse

from reslab.analyze import lab_studies
from reslab.analyze.registry import Call, Instrument, LabSource, LabStage, add_common, steps
from reslab.errors import ConfigError

FCN_STUDY = lab_studies.MNIST_CONV  # the lab's study of MNIST conv twins the detector is made of
LAB_CANVASES = 200  # the lab's canvases at most (the flag's default); a profile measures subset // 10 of them


def _fcn_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="RUN", help="a run folder of a trained conv model (several: measured "
                                                             "on the same canvases)")
    p.add_argument("--at", choices=["best", "last"], default="best", help="which checkpoint (default best)")
    p.add_argument("--canvases", type=int, default=200, metavar="N", help="canvases to detect on (default 200)")
    p.add_argument("--size", type=int, default=96, metavar="PX", help="canvas side in pixels (default 96)")
    p.add_argument("--digits", type=int, nargs=2, default=[2, 5], metavar=("MIN", "MAX"),
                   help="digits per canvas (default 2 5)")
    p.add_argument("--scales", type=float, nargs=2, default=[1.0, 2.0], metavar=("MIN", "MAX"),
                   help="a digit's size over its training size, drawn log-uniform (default 1 2)")
    p.add_argument("--pyramid", type=float, nargs="+", default=[1.0, 1.26, 1.59, 2.0], metavar="S",
                   help="digit scales the detector looks for (default 1 1.26 1.59 2)")
    p.add_argument("--threshold", type=float, default=0.5, metavar="P",
                   help="window confidence at which precision and recall are counted (default 0.5)")
    p.add_argument("--iou", type=float, default=0.5, metavar="T", help="IoU a detection needs with a true box "
                                                                       "(default 0.5)")
    p.add_argument("--nms-iou", type=float, default=0.3, metavar="T",
                   help="non-maximum suppression: drop a detection overlapping a better one of its class by more "
                        "(default 0.3)")
    p.add_argument("--examples", type=int, default=6, metavar="N", help="canvases drawn with boxes (default 6)")
    add_common(p, what="the canvases (digits, places, scales)")


def _fcn_call(args: argparse.Namespace) -> Call:
    from reslab.analyze import fcn

    return Call(tuple(args.sources), fcn.FcnOptions(
        at=args.at, canvases=args.canvases, size=args.size, digits=tuple(args.digits), scales=tuple(args.scales),
        pyramid=tuple(args.pyramid), threshold=args.threshold, iou=args.iou, nms_iou=args.nms_iou,
        examples=args.examples))


has_fcn_study = lab_studies.has_study(FCN_STUDY)  # whether the profile trains the MNIST conv twins


def lab_canvases(subset: int) -> int:
    """The lab's canvases: a tenth of the profile's evaluation subset (quick 100, full 200), at most LAB_CANVASES."""
    return max(1, min(LAB_CANVASES, subset // 10))


def _fcn_mnist(lab: LabSource) -> Call:
    """The MNIST conv twins (plain, residual) of each instrument seed made fully convolutional, as digit detectors
    on the same canvases of test-set digits."""
    from reslab.analyze import fcn

    study = lab.profile.study(FCN_STUDY)
    seeds = max(1, min(getattr(lab.profile, "instrument_seeds", 1), study.seeds))
    sources: list[str] = []
    for seed in range(seeds):
        pair = lab.runs_of(FCN_STUDY, seed)
        if len(pair) != 2:
            raise ConfigError(f"the lab study {FCN_STUDY} has {len(pair)} finished runs of seed {seed}, not the "
                              "plain/residual pair; run the lab again to retrain them")
        sources += pair
    options = fcn.FcnOptions(at="last", canvases=lab_canvases(lab.profile.subset))
    return Call(tuple(sources), options, settings=lab.settings("mnist"))


FCN = Instrument(
    name="fcn", title="A fully-convolutional digit detector",
    help="a trained conv classifier made fully convolutional, as a digit detector on canvases of test digits",
    description="Turn the head of trained conv classifiers into a 1x1 convolution (weights copied) giving a class "
                "map on larger images; paste test-set digits at random places and scales on canvases; detect them "
                "(window confidences, peaks, non-maximum suppression) and report precision, recall and AP per "
                "class, with example canvases. The last line printed on stdout is the output folder.",
    add_arguments=_fcn_arguments, from_args=_fcn_call, **steps("reslab.analyze.fcn"),
    lab=(LabStage("fcn-mnist", "The MNIST conv twins as fully-convolutional digit detectors", _fcn_mnist,
                  when=has_fcn_study),))

DETECT: tuple[Instrument, ...] = (FCN,)
