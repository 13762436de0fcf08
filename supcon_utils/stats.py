"""How sure a number is: mean ± sd over seeds, and a paired difference with its t interval.

A difference between two settings is called only when its 95% interval (Student's t over the
seeds, paired by seed) excludes zero; otherwise the two are "not separated at this budget". With
three seeds the t factor is 4.30, so the interval is wide: that is the honest width, not a flaw.
It imports nothing heavy (NumPy and SciPy only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

NOT_SEPARATED = "not separated at this budget"


class Difference(NamedTuple):
    """``a - b`` paired by seed: its mean, its interval (NaN below two pairs) and the pairs."""

    mean: float
    low: float
    high: float
    n: int


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (NaN for one value)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_sd of no values")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else math.nan


def paired_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> Difference:
    """The mean of ``a[i] - b[i]`` and its two-sided t interval at ``confidence``."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired values need equal, non-zero lengths; got {len(a)} and {len(b)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean = float(d.mean())
    if d.size < 2:
        return Difference(mean, math.nan, math.nan, 1)
    half = stats.t.ppf(0.5 + confidence / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    return Difference(mean, mean - float(half), mean + float(half), int(d.size))


def verdict(diff: Difference, ahead: str, behind: str) -> str:
    """``ahead`` when the interval is above zero, ``behind`` when below, else not separated."""
    if diff.n < 2:
        return f"one seed: {NOT_SEPARATED}"
    if diff.low > 0:
        return ahead
    if diff.high < 0:
        return behind
    return NOT_SEPARATED
