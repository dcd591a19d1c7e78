"""Paired comparisons: is method A better than method B on the same seeds and splits, beyond noise?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over paired runs, its 95% confidence interval (Student t) and the counts
    of pairs where ``a`` is better, equal or worse (by the metric's direction)."""

    mean: float
    low: float
    high: float
    n: int
    wins: int
    ties: int
    losses: int

    @property
    def separated(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return (f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] "
                f"({self.wins}/{self.ties}/{self.losses})")


def paired_difference(a: Sequence[float], b: Sequence[float], higher_is_better: bool,
                      confidence: float = 0.95) -> PairedDifference:
    """``a - b`` paired by position (same seed and split); NaN pairs are dropped."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired runs need equal counts, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(d.size)
    if n == 0:
        return PairedDifference(float("nan"), float("nan"), float("nan"), 0, 0, 0, 0)
    mean = float(d.mean())
    if n > 1:
        from scipy import stats  # imported here: half a second that every command would pay at start-up

        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / np.sqrt(n))
    else:
        half = float("inf")
    better = d > 0 if higher_is_better else d < 0
    worse = d < 0 if higher_is_better else d > 0
    return PairedDifference(mean, mean - half, mean + half, n, int(better.sum()), int((d == 0).sum()),
                            int(worse.sum()))
