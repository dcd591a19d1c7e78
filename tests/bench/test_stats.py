"""Paired differences with hand-computed confidence intervals."""

import math

import pytest

from graphssl.bench.stats import paired_difference


def test_interval_matches_a_hand_computed_t_interval():
    a, b = [1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 2.5, 3.0]  # differences 0.5, 1, 0.5, 1
    d = paired_difference(a, b, higher_is_better=True)
    sd = math.sqrt(sum((x - 0.75) ** 2 for x in (0.5, 1, 0.5, 1)) / 3)  # 0.2887
    half = 3.182446305284263 * sd / 2  # t(0.975, 3) * sd / sqrt(4)
    assert (d.mean, d.n) == (0.75, 4)
    assert d.low == pytest.approx(0.75 - half) and d.high == pytest.approx(0.75 + half)
    assert d.separated and (d.wins, d.ties, d.losses) == (4, 0, 0)
    assert str(d).startswith("+0.750 [")


def test_direction_nans_and_single_pairs():
    d = paired_difference([2.0, 3.0, float("nan")], [2.5, 3.0, 1.0], higher_is_better=False)  # RMSE: lower wins
    assert d.n == 2 and (d.wins, d.ties, d.losses) == (1, 1, 0) and not d.separated
    one = paired_difference([1.0], [0.0], higher_is_better=True)
    assert one.high == math.inf and not one.separated
    with pytest.raises(ValueError, match="equal counts"):
        paired_difference([1.0], [1.0, 2.0], higher_is_better=True)
