"""Paired comparisons: is method A better than method B on the same seeds and splits, beyond noise?

Two verdicts, both from the metric's direction and a tolerance ``tol`` in the metric's units
(0: exact equality):

- per pair (one seed on one split): a win when ``a`` is better than ``b`` by more than ``tol``,
  a loss when worse by more than ``tol``, a tie otherwise;
- per comparison (:attr:`PairedDifference.verdict`): a win when the 95% confidence interval of
  the mean difference lies wholly on the better side of zero and the mean is better by more
  than ``tol``; a loss in the mirror case; a tie otherwise (the interval includes zero, or the
  mean difference is within the tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from graphssl.core.errors import ConfigError


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over paired runs, its 95% confidence interval (Student t) and the counts
    of pairs where ``a`` is better, tied or worse (by the metric's direction and the tolerance)."""

    mean: float
    low: float
    high: float
    n: int
    wins: int
    ties: int
    losses: int
    higher_is_better: bool = True
    tolerance: float = 0.0

    @property
    def separated(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0

    @property
    def verdict(self) -> str:
        """``win``, ``tie`` or ``loss`` of ``a`` against ``b`` (see the module docstring)."""
        if not self.separated:
            return "tie"
        better = self.low > 0 if self.higher_is_better else self.high < 0
        if abs(self.mean) <= self.tolerance:
            return "tie"
        return "win" if better else "loss"

    def __str__(self) -> str:
        return (f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] "
                f"({self.wins}/{self.ties}/{self.losses})")


def paired_difference(a: Sequence[float], b: Sequence[float], higher_is_better: bool,
                      confidence: float = 0.95, tolerance: float = 0.0) -> PairedDifference:
    """``a - b`` paired by position (same seed and split); NaN pairs are dropped. A pair whose
    difference is at most ``tolerance`` (metric units) in size counts as a tie."""
    if not (tolerance >= 0 and np.isfinite(tolerance)):
        raise ConfigError(f"tie tolerance must be a finite number >= 0, got {tolerance!r}")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired runs need equal counts, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(d.size)
    if n == 0:
        return PairedDifference(float("nan"), float("nan"), float("nan"), 0, 0, 0, 0, higher_is_better, tolerance)
    mean = float(d.mean())
    if n > 1:
        from scipy import stats  # imported here: half a second that every command would pay at start-up

        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / np.sqrt(n))
    else:
        half = float("inf")
    gain = d if higher_is_better else -d  # > 0: a is better
    better, worse = gain > tolerance, gain < -tolerance
    return PairedDifference(mean, mean - half, mean + half, n, int(better.sum()), int(n - better.sum() - worse.sum()),
                            int(worse.sum()), higher_is_better, tolerance)
