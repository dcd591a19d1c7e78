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


def test_paired_table_pairs_by_seed_and_bolds_separated_intervals():
    from graphssl.bench.report import paired_table

    def row(method, seed, test):
        return {"method": method, "task": "freesolv", "label_fraction": 1.0, "seed": seed, "test": test,
                "metric": "rmse"}

    rows = [row("scratch", s, 3.0 + 0.1 * s) for s in range(4)]
    rows += [row("good", s, 2.5 + 0.1 * s + 0.01 * (s % 2)) for s in range(4)]  # better on every seed
    rows += [row("same", s, 3.0 + 0.1 * (3 - s)) for s in range(4)]  # reversed order: no paired gain
    table = paired_table(rows)
    good = next(line for line in table.splitlines() if line.startswith("| good"))
    same = next(line for line in table.splitlines() if line.startswith("| same"))
    assert "**-0.495 [" in good and "(4/0/0)**" in good
    assert "+0.000 [" in same and "**" not in same and "(2/0/2)" in same
    assert paired_table([r for r in rows if r["method"] != "scratch"]) == ""
