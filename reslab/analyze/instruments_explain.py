"""The registrations of the instruments that explain a trained net's predictions: class activation maps (Zhou et
al. 2016, Selvaraju et al. 2017) and their faithfulness (Petsiuk et al. 2018). `reslab.analyze.catalog` lists
`EXPLAIN` after the built-in instruments."""

from __future__ import annotations

import argparse

from reslab.analyze.instruments_geometry import seed_pairs
from reslab.analyze.lab_studies import MNIST_CONV, has_study
from reslab.analyze.registry import Call, Instrument, LabSource, LabStage, add_common, steps

LAB_IMAGES, LAB_STEPS = 64, 8  # the lab's CAM stage: test images (at most the profile's subset), curve steps
LAB_CANVAS = 56  # pixels: the lab's canvases for the MNIST conv twins (twice a digit's side)


def _cam_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="RUN", help="run folders of conv models (plain/residual twins side "
                                                             "by side, several seeds for a paired comparison)")
    p.add_argument("--at", choices=["best", "last"], default="best", help="which checkpoint (default best)")
    p.add_argument("--images", type=int, default=64, metavar="N", help="test images drawn with --seed for the "
                                                                       "deletion and insertion curves (default 64)")
    p.add_argument("--show", type=int, default=8, metavar="N", help="of them, shown in the grid figures (default 8)")
    p.add_argument("--steps", type=int, default=16, metavar="N", help="steps of each curve (default 16)")
    p.add_argument("--baseline", choices=["paper", "mean", "blur"], default="paper",
                   help="what removed pixels become: paper (deletion: the mean colour, insertion: from a blurred "
                        "copy; Petsiuk et al.), mean or blur for both (default paper)")
    p.add_argument("--canvas", type=int, metavar="PX",
                   help="explain canvases of PX pixels, each holding one test image at a random place (a GAP net "
                        "reads any size), and score the pointing game: does the map peak inside the image?")
    add_common(p, what="the test images and the random pixel orders")


def _cam_call(args: argparse.Namespace) -> Call:
    from reslab.analyze import cam

    return Call(tuple(args.sources), cam.CamOptions(at=args.at, images=args.images, show=args.show, steps=args.steps,
                                                    baseline=args.baseline, canvas=args.canvas))


def _cam_conv(lab: LabSource) -> Call:
    """CAM and Grad-CAM of the deepest trained conv twins of each instrument seed (paired over seeds), with their
    deletion and insertion curves."""
    from reslab.analyze import cam

    options = cam.CamOptions(at="last", images=min(LAB_IMAGES, lab.profile.subset), steps=LAB_STEPS)
    return Call(tuple(seed_pairs(lab, "conv")), options)


def _cam_canvas(lab: LabSource) -> Call:
    """CAM and Grad-CAM of the MNIST conv twins of Exercise 2 (every seed) on canvases twice a digit's side, one
    digit each: the map must find the digit (the pointing game), as the fully-convolutional detector must."""
    from reslab.analyze import cam

    options = cam.CamOptions(at="last", images=min(LAB_IMAGES, lab.profile.subset), steps=LAB_STEPS,
                             canvas=LAB_CANVAS)
    return Call(tuple(lab.runs_of(MNIST_CONV, seed=None)), options, settings=lab.settings("mnist"))


CAM = Instrument(
    name="cam", title="Class activation maps",
    help="class activation maps (CAM, Grad-CAM) of trained conv nets, and how faithful they are",
    description="CAM (Zhou et al. 2016; exact for a net ending in global average pooling and one linear layer) and "
                "Grad-CAM (Selvaraju et al. 2017) on the feature map the pooling reads, for the true and the top "
                "predicted class of seeded test images, the mean map of each class, and the deletion and insertion "
                "curves of Petsiuk et al. 2018 against a random order; twins compared with paired seeds. The last "
                "line printed on stdout is the output folder.",
    add_arguments=_cam_arguments, from_args=_cam_call, **steps("reslab.analyze.cam"),
    lab=(LabStage("cam-conv", "Class activation maps of the conv twins", _cam_conv),
         LabStage("cam-mnist-canvas", "Class activation maps of the MNIST conv twins on larger canvases", _cam_canvas,
                  when=has_study(MNIST_CONV))))

EXPLAIN: tuple[Instrument, ...] = (CAM,)
