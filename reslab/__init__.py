"""reslab: how depth and residual connections change what a neural network can learn."""

__version__ = "0.1.0"
