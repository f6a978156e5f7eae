"""The lab's plan: its stages in the order they run, the sweeps that train every model, then the instruments'
analyses (made from their registrations). Its own module, above `stages` and `instruments`, which it joins.
"""

from __future__ import annotations

from reslab.lab.instruments import analysis_stages
from reslab.lab.profiles import Profile
from reslab.lab.stages import Stage


def plan(profile: Profile) -> list[Stage]:
    """Every stage, in the order it runs: the sweeps (a study naming another's run after it), then the instruments'
    analyses."""
    return [
        Stage("ex1-mlp", "Exercise 1.1: the notebook's MLP on MNIST", study=profile.notebook_mlp),
        Stage("ex1-cnn", "Exercise 1.2: the notebook's CNN on CIFAR-10", study=profile.notebook_cnn),
        Stage("ex1-resnet", "Exercise 1.2: the notebook's ResNetCNN on CIFAR-10", study=profile.notebook_resnet),
        Stage("mlp-depth", "Plain vs residual MLPs over depth on MNIST", study=profile.mlp_depth),
        Stage("conv-depth", "Plain vs residual conv nets over depth on CIFAR-10", study=profile.conv_depth),
        *(Stage(s.name, s.title or s.name, study=s) for s in profile.exercise2),  # Exercise 2's other options
        *analysis_stages(profile),  # each instrument's, from its registration (reslab.lab.instruments)
    ]
