"""What `reslab lab` runs: the notebook's experiments and their fair, multi-seed versions, in two sizes.

`quick` fits a 2-core CPU in about 10 minutes by training on seeded subsets for fewer epochs; each such
shortcut is written down here, beside the setting, and printed in the report. `full` is the notebook's
settings (and the He et al. 2015 depth study) for a GPU. A profile is data: the stages read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

from reslab.lab.exercise2 import FULL_EXERCISE2, QUICK_EXERCISE2, QUICK_EXERCISE2_SHORTCUT, QUICK_EXERCISE2_WORK
from reslab.lab.study import Study

__all__ = ["FULL", "PROFILE_TABLE", "QUICK", "Profile", "Study", "default_profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    notebook_mlp: Study  # Exercise 1.1
    notebook_cnn: Study  # Exercise 1.2, the plain CNN
    notebook_resnet: Study  # Exercise 1.2, the ResNetCNN
    mlp_depth: Study  # the residual MLP exercise: fair twins over depth on MNIST
    conv_depth: Study  # fair conv twins over depth on CIFAR-10
    depth_key_conv: str  # the conv study's depth axis
    pair_depth_mlp: int  # the MLP depth whose trained pair the instruments explain
    subset: int  # images the lesion and landscape instruments evaluate on
    landscape_points: int
    landscape_2d: bool  # also a 2-D landscape of the conv pair
    shatter_depths: tuple[int, ...]
    shatter_seeds: int
    gradflow_batches: int = 11
    lesion_draws: int = 10  # random draws per k of blocks deleted or pairs swapped
    shortcuts: tuple[str, ...] = field(default_factory=tuple)  # every way this profile departs from the full lab
    # stage -> its predicted work in reference units (runs of reslab.lab.pace's reference workload; measured with
    # bench/lab_pace.py): the progress line's time left is this machine's pace times the units left
    work: Mapping[str, float] = field(default_factory=dict)
    # the instruments as their papers define them (issue 18): a pair where both twins learn, beside the deep pair --
    # depth 8, the notebook's MLP (plain-mlp8): shallow enough that the plain twin trains too (each summary says so
    # when a twin did not learn); its stages run when this depth is in the MLP study and is not pair_depth_mlp
    learned_depth_mlp: int = 8
    landscape_directions: int = 3  # independent 1-D directions of each landscape cut (Li et al.: one is one draw)
    landscape_2d_mlp: bool = True  # also a 2-D landscape of the MLP pair (cheap: an MLP on a subset)
    lesion_path_images: int = 128  # test images for the gradient by path length (Veit et al.'s Figure 6)
    # the pair instruments (lesion, responses) measure the twins of this many seeds (at most the study's), so their
    # summaries give intervals over seeds; the other instruments measure seed 0
    instrument_seeds: int = 2
    # Exercise 2's other options (issue 20): their sweeps run after the depth studies, in this order (a study that
    # names another's run, "lab:NAME", after it); their analyses are the instruments' lab stages
    exercise2: tuple[Study, ...] = ()
    subset_conv: int | None = None  # the conv pair's lesion and landscape images (None: `subset`)

    def studies(self) -> tuple[Study, ...]:
        """Every sweep of the profile, in the order the lab runs them."""
        return (self.notebook_mlp, self.notebook_cnn, self.notebook_resnet, self.mlp_depth, self.conv_depth,
                *self.exercise2)

    def subset_for(self, runs: str) -> int:
        """Images the lesion and landscape of the twins `runs` names ("conv", "mlp", "mlp-learned") evaluate on."""
        return self.subset_conv if runs == "conv" and self.subset_conv is not None else self.subset

    def study(self, name: str) -> Study | None:
        return next((s for s in self.studies() if s.name == name), None)


# no study sets train.threads: each run gets the cores free when its sweep starts, shared among the sweep's jobs
# (reslab/sweep/threads.py): one thread per run in a pool of workers, every free core for a sweep in the lab's process
_NOTEBOOK_MLP = {"data.val_size": 5000}
# batch 32 (the notebook's: 128): on a 2-core CPU with AVX2 kernels only, the ResNetCNN trains faster per image at
# 32 than at 128 (133 against 107 img/s on 2 threads; the conv depth study's nets about as fast: 834 against 869 and
# 2,367 against 2,322; bench/batch_throughput.py at commit eaedd89), and 2 epochs at 32 take 188 steps, not 3 epochs'
# 72 at 128: the ResNetCNN reached 24.2% test accuracy (mean of 2 seeds, eaedd89) against 26.1% (d815195) in 109 s
# against 190 s for the stage
_CIFAR_QUICK = {"data.val_size": 1000, "data.train_size": 3000, "data.test_size": 2000, "data.batch_size": 32}
_MLP_DEPTH = {"model.width": 16, "model.layers_per_block": 2, "data.val_size": 5000,
              "data.batch_size": 128, "optim.name": "adam"}
_MLP_DEPTHS = [2, 4, 8, 16, 32, 64]
# the init x norm x residual grid (issue 18): PyTorch's default init (each ReLU layer keeps ~1/6 of its input's
# variance) against He's; no normalisation against batch norm; the reference cell is the lab's earlier study
_INITS, _NORMS = ["torch-default", "he"], ["none", "batch"]
_REFERENCE = {"model.init": "torch-default", "model.norm": "none"}


def _only_at(depths: list[int], keep: Mapping[tuple[str, str], list[int]]) -> tuple[dict[str, Any], ...]:
    """`cases` that skip every (init, norm) cell's depths but those in `keep` (the reference cell keeps all)."""
    out = []
    for init in _INITS:
        for norm in _NORMS:
            if (init, norm) == (_REFERENCE["model.init"], _REFERENCE["model.norm"]):
                continue
            out += [{"when": {"model.init": init, "model.norm": norm, "model.depth": d}, "skip": True}
                    for d in depths if d not in keep[(init, norm)]]
    return tuple(out)


# train until the training loss stops improving (train.until: plateau), train.epochs the cap; the quick cap of 3
# with a patience of 2 trains exactly as 3 fixed epochs did (a plateau can only show at the cap) and says which runs
# reached one
_PLATEAU = {"train.until": "plateau", "train.min_delta": 1e-3}
_QUICK_KEEP = {("he", "none"): [4, 16, 32], ("torch-default", "batch"): [4, 16], ("he", "batch"): [4, 16]}
_CONV = {"model.name": "convnet", "model.channels": 16, "model.stages": 3, "model.kernel_size": 3,
         "model.layers_per_block": 2, "model.norm": "batch", "data.batch_size": 128, "optim.name": "adam",
         "optim.lr": 1e-3}

QUICK = Profile(
    name="quick",
    notebook_mlp=Study("ex1-mlp", "seed-mlp", "mnist", _NOTEBOOK_MLP, {"train.epochs": [15]}, seeds=2),
    notebook_cnn=Study("ex1-cnn", "seed-cnn", "cifar", _CIFAR_QUICK, {"train.epochs": [2]}, seeds=2),
    notebook_resnet=Study("ex1-resnet", "seed-resnet", "cifar", _CIFAR_QUICK, {"train.epochs": [2]}, seeds=2),
    mlp_depth=Study("mlp-depth", "plain-mlp8", "mnist",
                    _MLP_DEPTH | _PLATEAU | {"train.epochs": 3, "train.patience": 2, "optim.lr": 1e-3},
                    {"model.depth": _MLP_DEPTHS, "model.init": _INITS, "model.norm": _NORMS,
                     "model.residual": [False, True]}, seeds=3,
                    cases=_only_at(_MLP_DEPTHS, _QUICK_KEEP), reference=_REFERENCE),
    conv_depth=Study("conv-depth", "seed-cnn", "cifar",
                     _CONV | {"data.val_size": 1000, "data.train_size": 3000, "data.test_size": 2000,
                              "data.batch_size": 32, "train.epochs": 2},
                     {"model.blocks": [1, 3], "model.residual": [False, True]}, seeds=3),
    depth_key_conv="model.blocks",
    pair_depth_mlp=32,
    subset=1000,
    subset_conv=500,  # the conv pair's lesion (4 nets x ~60 evaluations) and landscape: half the CIFAR stages' time
    landscape_points=21,
    landscape_2d=False,
    shatter_depths=(1, 2, 4, 8, 16, 32, 50),
    shatter_seeds=3,
    lesion_draws=5,
    lesion_path_images=64,
    exercise2=QUICK_EXERCISE2,
    # work per stage in reference units: its seconds in an idle quick lab (bench/lab_time.sh's settings, commit
    # eaedd89, 2026-12-04: a 2-core Xeon restricted to AVX2 kernels, where the reference workload took 0.21 s) x 4.8,
    # one over the reference's seconds there. After the first stage only their ratios matter.
    work={"ex1-mlp": 43, "ex1-cnn": 35, "ex1-resnet": 524, "mlp-depth": 252, "conv-depth": 353,
          "gradflow-notebook": 71, "gradflow-depth": 100, "lesion-mlp": 26, "lesion-conv": 134,
          "lesion-mlp-learned": 8, "shatter-mlp": 14, "shatter-conv": 10, "shatter-mlp-learned": 1,
          "landscape-mlp": 5, "landscape-conv": 89, "landscape-mlp-2d": 8, "landscape-mlp-learned": 3, "init-mlp": 4,
          "init-conv": 8, "responses-conv": 4, "responses-mlp-learned": 2, "responses-mlp": 3,
          "cam-conv": 38, "cam-mnist-canvas": 43, **QUICK_EXERCISE2_WORK, "fcn-mnist": 17},
    shortcuts=(
        "Exercise 1.2 trains on a seeded subset of 3,000 CIFAR-10 training images for 2 epochs in batches of 32 (the "
        "notebook: 45,000 images, 10 epochs, batches of 128), validates on 1,000 and tests on a fixed subset of 2,000 "
        "test images, 2 seeds.",
        "The MLP depth study trains at most 3 epochs (until the training loss stops improving, patience 2: at this "
        "cap, as 3 fixed epochs) at one learning rate (Adam 1e-3; the full profile: at most 40 epochs, patience 3, 5 "
        "seeds, the learning rate tuned per cell): a run that hit the cap is reported as such. Its init x "
        "norm x residual grid is measured at every depth only for PyTorch's default init without normalisation; He "
        "init without normalisation at depths 4, 16 and 32, and both inits with batch norm at depths 4 and 16.",
        "The conv-net depth study trains on 3,000 CIFAR-10 images for 2 epochs in batches of 32 (the full lab: 128), "
        "at 1 and 3 blocks per stage (8 and 20 weight layers), tests on the same 2,000 test images.",
        "The instruments evaluate on seeded subsets of 1,000 images (the conv nets' lesion and loss landscape: 500); "
        "the conv nets' loss landscape is cut in 1-D only "
        "(the MLPs' in 2-D too), along 3 directions (the full lab: 5); the lesion draws 5 sets of blocks per k (the "
        "full lab: 10) and measures path gradients on 64 test images (the full lab: 128); the lesion and the layer "
        "responses measure the twins of 2 seeds (the full lab: 3), the other instruments seed 0.",
        QUICK_EXERCISE2_SHORTCUT,
    ),
)

FULL = Profile(
    name="full",
    notebook_mlp=Study("ex1-mlp", "seed-mlp", "mnist", _NOTEBOOK_MLP, {"train.epochs": [15]}, seeds=3),
    notebook_cnn=Study("ex1-cnn", "seed-cnn", "cifar", {"data.val_size": 5000}, {"train.epochs": [10]}, seeds=3),
    notebook_resnet=Study("ex1-resnet", "seed-resnet", "cifar", {"data.val_size": 5000}, {"train.epochs": [10]},
                          seeds=3),
    mlp_depth=Study("mlp-depth", "plain-mlp8", "mnist",
                    _MLP_DEPTH | _PLATEAU | {"train.epochs": 40, "train.patience": 3},
                    {"model.depth": _MLP_DEPTHS, "model.init": _INITS, "model.norm": _NORMS,
                     "model.residual": [False, True]}, seeds=5,
                    tune={"key": "optim.lr", "values": [3e-4, 1e-3, 3e-3], "by": "best_val_acc"},
                    reference=_REFERENCE),
    conv_depth=Study("conv-depth", "plain20", "cifar",
                     {"data.val_size": 5000, "data.batch_size": 128, "data.augment": True, "train.epochs": 182},
                     {"model.depth": [20, 32, 44, 56], "model.residual": [False, True]}, seeds=3),
    depth_key_conv="model.depth",
    pair_depth_mlp=32,
    subset=5000,
    landscape_points=51,
    landscape_2d=True,
    shatter_depths=(1, 2, 4, 8, 16, 32, 50, 100),
    shatter_seeds=10,
    landscape_directions=5,
    instrument_seeds=3,
    exercise2=FULL_EXERCISE2,
    shortcuts=("The conv-net depth study keeps one init, the He init (fan_out) of He et al.'s CIFAR ResNets: the "
               "init x norm grid is run for the MLPs only.",),
)


PROFILE_TABLE: dict[str, Profile] = {"quick": QUICK, "full": FULL}  # tests add a tiny one


def get_profile(name: str) -> Profile:
    return PROFILE_TABLE[name]


def default_profile(device: torch.device) -> str:
    """`full` where a GPU trains it in hours; `quick` on a CPU (or Apple's mps), where `full` would take days."""
    return "full" if device.type == "cuda" else "quick"
