"""Result tables and plots on hand-made numbers: sample standard deviation, pairing on seed and
split, win/tie/loss verdicts, label counts, and the PNG files."""

from __future__ import annotations

import math

import pytest

from graphssl.bench.report import (
    markdown_table,
    paired_differences,
    paired_table,
    plot_paired,
    plot_results,
    summarise,
    task_differences,
)
from graphssl.bench.stats import paired_difference
from graphssl.core.errors import ConfigError

PNG = b"\x89PNG\r\n\x1a\n"


def row(method, seed, test, task="freesolv", metric="rmse", split="scaffold", split_seed=0, count=None):
    return {"method": method, "task": task, "label_fraction": 1.0, "seed": seed, "test": test, "valid": test,
            "metric": metric, "split": split, "split_seed": split_seed, "label_count": count}


def test_table_std_is_the_sample_std_and_says_so():
    rows = [row("scratch", s, v) for s, v in enumerate([1.0, 2.0, 3.0, 4.0])]
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5: ddof=1 gives sqrt(5/3) = 1.291,
    # ddof=0 would give sqrt(5/4) = 1.118
    stats = summarise(rows)
    (only,) = stats.values()
    assert only["test_std"] == pytest.approx(math.sqrt(5 / 3))
    table = markdown_table(rows)
    assert "2.500 ± 1.291 (n=4)" in table and "1.118" not in table
    assert "sample standard deviation (ddof = 1)" in table
    # one run has no spread: no "±" rather than a made-up 0
    single = markdown_table([row("scratch", 0, 2.0)])
    assert "2.000 (n=1)" in single and "±" not in single.splitlines()[2]


def test_pairs_match_on_seed_and_split_seed():
    rows = []
    for split_seed in (0, 1):
        for seed in (0, 1):
            base = 10.0 * split_seed + seed
            rows.append(row("scratch", seed, base, split="balanced_scaffold", split_seed=split_seed))
            # better by exactly 0.5 on its own (seed, split) pair; pairing on seed alone would mix splits
            rows.append(row("good", seed, base - 0.5, split="balanced_scaffold", split_seed=split_seed))
    rows.append(row("good", 2, 0.0, split="balanced_scaffold", split_seed=0))  # no scratch partner: left out
    (d,) = paired_differences(rows).values()
    assert d.n == 4 and d.mean == pytest.approx(-0.5) and (d.wins, d.ties, d.losses) == (4, 0, 0)
    assert d.low == pytest.approx(-0.5) and d.high == pytest.approx(-0.5)  # no spread in the differences


def test_win_tie_loss_per_pair_and_per_cell_with_tolerance():
    # ROC-AUC (higher is better); differences 0.02, 0.03, 0.001, 0.025
    a, b = [0.82, 0.83, 0.801, 0.825], [0.80, 0.80, 0.80, 0.80]
    exact = paired_difference(a, b, higher_is_better=True)
    assert (exact.wins, exact.ties, exact.losses) == (4, 0, 0)
    loose = paired_difference(a, b, higher_is_better=True, tolerance=0.005)
    assert (loose.wins, loose.ties, loose.losses) == (3, 1, 0)  # 0.001 is within the tolerance
    # mean 0.019, sd 0.01242, t(0.975, 3) = 3.182: interval [-0.0008, +0.0388] includes 0 -> tie
    assert exact.low < 0 < exact.high and exact.verdict == "tie"
    # a clear win, then the same interval judged with a tolerance larger than its mean
    win = paired_difference([0.9, 0.91, 0.92], [0.8, 0.8, 0.81], higher_is_better=True)
    assert win.verdict == "win"
    assert paired_difference([0.9, 0.91, 0.92], [0.8, 0.8, 0.81], True, tolerance=0.2).verdict == "tie"
    # RMSE (lower is better): higher error on every pair is a loss
    loss = paired_difference([2.5, 2.6, 2.7], [2.0, 2.0, 2.1], higher_is_better=False)
    assert loss.verdict == "loss" and (loss.wins, loss.ties, loss.losses) == (0, 0, 3)
    with pytest.raises(ConfigError, match="tolerance"):
        paired_difference(a, b, True, tolerance=-1.0)


def test_paired_table_counts_cell_verdicts_and_uses_task_tolerances():
    rows = []
    for seed in range(4):
        rows += [row("scratch", seed, 3.0 + 0.1 * seed), row("m", seed, 2.5 + 0.1 * seed + 0.01 * (seed % 2))]
        rows += [row("scratch", seed, 0.80 + 0.01 * seed, task="b3db", metric="roc_auc"),
                 row("m", seed, 0.80 + 0.01 * (3 - seed), task="b3db", metric="roc_auc")]
    table = paired_table(rows)
    line = next(x for x in table.splitlines() if x.startswith("| m "))
    assert line.endswith("| 1/1/0 |")  # freesolv: a win (lower RMSE on every seed); b3db: a tie
    assert "**-0.495 [" in line and "(4/0/0)**" in line
    assert "Tie tolerances: freesolv 0, b3db 0" in table
    # a tolerance of 1 kcal/mol turns the FreeSolv win into a tie, per pair and per cell
    loose = paired_table(rows, tolerances={"freesolv": 1.0})
    line = next(x for x in loose.splitlines() if x.startswith("| m "))
    assert line.endswith("| 0/2/0 |") and "(0/4/0)" in line and "**" not in line
    assert paired_table([r for r in rows if r["method"] != "scratch"]) == ""


def test_tasks_with_several_splits_also_get_their_pairs_together():
    # scaffold split seed 0 with seeds 0 and 1, balanced scaffold splits 0 and 1 with their own seed:
    # (seed 0, split seed 0) exists on both splits and must stay two pairs, not one
    rows = [row("scratch", 0, 2.0), row("scratch", 1, 2.2),
            row("scratch", 0, 3.0, split="balanced", split_seed=0), row("scratch", 1, 3.4, split="balanced", split_seed=1),
            row("pre", 0, 1.8), row("pre", 1, 2.1),
            row("pre", 0, 2.6, split="balanced", split_seed=0), row("pre", 1, 3.5, split="balanced", split_seed=1),
            row("scratch", 0, 0.5, task="b3db", metric="roc_auc"), row("pre", 0, 0.6, task="b3db", metric="roc_auc")]
    diffs = task_differences(rows)
    pooled = diffs[("pre", "freesolv", ("fraction", 1.0))]
    # differences -0.2, -0.1, -0.4, +0.1: mean -0.15, three wins and a loss
    assert pooled.n == 4 and pooled.mean == pytest.approx(-0.15)
    assert pooled == paired_difference([1.8, 2.1, 2.6, 3.5], [2.0, 2.2, 3.0, 3.4], higher_is_better=False)
    text = paired_table(rows)
    assert "Per task, the pairs of all its splits together" in text
    line = next(x for x in text.splitlines()[text.splitlines().index("| method | freesolv (rmse ↓) | tasks W/T/L |"):]
                if x.startswith("| pre |"))
    assert "(3/0/1)" in line
    assert "b3db (roc_auc" not in text.split("Per task")[1]  # one split: its cell table says it all
    assert "Per task" not in paired_table([r for r in rows if r["split"] == "scaffold"])


def test_label_counts_get_their_own_tables():
    rows = [row(m, s, 1.0 + s + (m == "m"), task="qm9:gap", metric="mae", count=c)
            for m in ("scratch", "m") for s in range(2) for c in (5000, 1000)]
    rows += [row(m, s, 0.5, task="freesolv") for m in ("scratch", "m") for s in range(2)]
    table = markdown_table(rows)
    assert table.index("**Label fraction 1**") < table.index("**5,000 labels**") < table.index("**1,000 labels**")
    thousand = table[table.index("**1,000 labels**"):]
    assert "qm9:gap (mae ↓)" in thousand and "freesolv" not in thousand
    assert "| m | 2.500 ± 0.707 (n=2) |" in thousand
    paired = paired_table(rows)
    assert paired.count("| m |") == 3 and "+1.000 [+1.000, +1.000] (0/0/2)" in paired


def test_plots_are_written(tmp_path):
    rows = []
    for split, split_seeds in (("scaffold", [0]), ("balanced_scaffold", [0, 1])):
        for split_seed in split_seeds:
            for seed in range(3):
                rows += [row("scratch", seed, 2.0 + 0.1 * seed, split=split, split_seed=split_seed),
                         row("ecfp-rf", seed, 1.8 + 0.05 * seed, split=split, split_seed=split_seed),
                         row("scratch", seed, 0.1 * seed, task="qm9:gap", metric="mae", count=1000),
                         row("ecfp-rf", seed, 0.2, task="qm9:gap", metric="mae", count=1000),
                         row("scratch", seed, 0.05 * seed, task="qm9:gap", metric="mae", count=5000),
                         row("ecfp-rf", seed, 0.1, task="qm9:gap", metric="mae", count=5000)]
    paired = plot_paired(rows, tmp_path / "paired.png")
    assert paired == tmp_path / "paired.png" and paired.read_bytes()[:8] == PNG
    results = plot_results(rows, tmp_path / "results.png")
    assert results.read_bytes()[:8] == PNG
    assert plot_paired([r for r in rows if r["method"] == "scratch"], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
