"""Every reslab figure, in one style (`STYLE`, applied by `figure`); layer 0: matplotlib and numpy only.

Figures are drawn from plain rows as read from CSV files, so the trainer, the gradient-flow recorder,
`reslab gradflow` and `reslab report` all draw the same figure from the same files.
"""

from reslab.plots.gradflow import depth_panels, plot_depth, plot_param_boxplots, plot_training_heatmap
from reslab.plots.runs import plot_comparison, plot_confusion, plot_curves, steps_per_epoch
from reslab.plots.style import MARKERS, STYLE, Rows, figure

__all__ = ["MARKERS", "STYLE", "Rows", "depth_panels", "figure", "plot_comparison", "plot_confusion",
           "plot_curves", "plot_depth", "plot_param_boxplots", "plot_training_heatmap", "steps_per_epoch"]
