"""Analyses of models and runs (layer 5): each reads configs, checkpoints and run folders, measures, and writes
its own output folder. `gradflow` measures gradient flow, `gradflow_output` turns it into tables, figures and words."""
