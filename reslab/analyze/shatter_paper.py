"""Balduzzi et al. 2017's own statistic of shattering, its decay length, its reference noises, and its laws.

The paper's correlation of gradients at two inputs x_i, x_j is E[g_i g_j] / sqrt(E[g_i^2] E[g_j^2]), the expectation
over the initialisation (at initialisation the mean gradient is zero by symmetry, so this is also the correlation
of the centred gradients). On the paper's 1-D grid `gradient_correlation` estimates it for inputs `k` grid points
apart by sample means over the seeds (independent initialisations) and over the positions i along the grid. A net
that is linear in its input has the same gradient everywhere: 1 at every lag. White noise: ~0 beyond lag 0.
Brown noise (a random walk, the paper's picture of a shallow net's gradient): slowly falling from 1.

The decay length is the first lag (interpolated linearly between grid points) at which the correlation falls below
1/e; None when it never does within the lags measured (censored: at least `max_lag`).

The laws are stated for two forms only: 2^-L for plain (feedforward) rectifier nets without batch norm (Theorem 1),
1/sqrt(L) for resnets with batch norm. For the other forms (plain with batch norm, resnet without it) no law is
compared here: the paper shows their curves but its closed-form rates are for those two.
"""

from __future__ import annotations

import math

import numpy as np

LEVEL = 1 / math.e  # the decay length is where the correlation first falls below this
LAWS = {"plain": "2^-L", "resnet-bn": "1/sqrt(L)"}  # the paper's stated law of each form (others: none)
NO_LAW = "none stated"


def gradient_correlation(gradients: np.ndarray, max_lag: int) -> np.ndarray:
    """C(k), k = 0..max_lag, of (seeds, points) gradients: sum g_i g_(i+k) / sqrt(sum g_i^2 * sum g_(i+k)^2), the
    sums over seeds and positions i (not centred: the paper's expectation of products)."""
    g = np.atleast_2d(np.asarray(gradients, dtype=np.float64))
    out = []
    for k in range(max_lag + 1):
        a, b = g[:, : g.shape[1] - k], g[:, k:]
        denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
        out.append(float((a * b).sum()) / denominator if denominator > 0 else math.nan)
    return np.array(out)


def decay_length(corr: np.ndarray, level: float = LEVEL) -> float | None:
    """The first lag where `corr` is below `level`, interpolated between the lags around it; None if never."""
    below = np.flatnonzero(np.asarray(corr) < level)
    if not len(below):
        return None
    k = int(below[0])
    if k == 0:
        return 0.0
    before, after = float(corr[k - 1]), float(corr[k])
    return k - 1 + (before - level) / (before - after)


def noise(kind: str, seeds: int, points: int, seed: int) -> np.ndarray:
    """(seeds, points) seeded reference signals: white (independent Gaussians) or brown (their running sum)."""
    rng = np.random.default_rng([seed, 0 if kind == "white" else 1])
    white = rng.standard_normal((seeds, points))
    return white if kind == "white" else np.cumsum(white, axis=1)


def law(form: str, depth: int, first_depth: int, first_value: float) -> tuple[str, float]:
    """The paper's law for `form`, scaled to pass through the first depth's value; (NO_LAW, nan) for a form the
    paper states no law for."""
    name = LAWS.get(form, NO_LAW)
    if name == "2^-L":
        return name, first_value * 2.0 ** (first_depth - depth)
    if name == "1/sqrt(L)":
        return name, first_value * math.sqrt(first_depth / depth)
    return name, math.nan
