"""The intervals reslab reports: a mean's 95% t interval (a paired difference is the mean of the differences), and
Welch's interval of a difference of independent means. Sweeps and instruments share them."""

from __future__ import annotations

import math
from typing import Sequence

CONFIDENCE = 0.95


def t_interval(xs: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, sample std, CI low, CI high): the 95% t interval of the mean; NaN where n is too small."""
    from scipy import stats

    n = len(xs)
    if n == 0:
        return (math.nan,) * 4
    mean = sum(xs) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(mean(b) - mean(a), CI low, CI high): Welch's 95% t interval of a difference of independent means."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return (sum(b) / len(b) - sum(a) / len(a) if a and b else math.nan), math.nan, math.nan
    (ma, sa, _, _), (mb, sb, _, _) = t_interval(a), t_interval(b)
    va, vb = sa ** 2 / len(a), sb ** 2 / len(b)
    if va + vb == 0:
        return mb - ma, mb - ma, mb - ma
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * math.sqrt(va + vb)
    return mb - ma, mb - ma - half, mb - ma + half
