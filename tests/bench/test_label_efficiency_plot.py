"""Label-efficiency curves and table on hand-made results: one line per method at the mean of its
runs, a band of ± the sample std (ddof = 1), log x axis over the label fractions."""

from __future__ import annotations

import pytest

from graphssl.bench.report import (
    LABEL_EFFICIENCY_PNG,
    label_efficiency_figure,
    label_efficiency_table,
    markdown_table,
    plot_label_efficiency,
    plot_results,
)

PNG = b"\x89PNG\r\n\x1a\n"

# (method, label fraction) -> test scores of seeds 0, 1, 2 on freesolv (rmse)
SCORES = {
    ("scratch", 0.1): [4.0, 5.0, 6.0],
    ("scratch", 1.0): [2.0, 2.5, 3.0],
    ("zoo", 0.1): [3.0, 3.0, 3.0],
    ("zoo", 1.0): [2.0, 2.2, 2.4],
}


def _rows():
    rows = []
    for (method, fraction), scores in SCORES.items():
        for seed, test in enumerate(scores):
            rows.append({"method": method, "task": "freesolv", "label_fraction": fraction, "seed": seed,
                         "test": test, "valid": test, "metric": "rmse", "split": "scaffold", "split_seed": 0,
                         "label_count": None, "train_size": int(round(500 * fraction))})
    # a task at one label setting has no curve and no panel
    rows.append({"method": "scratch", "task": "b3db", "label_fraction": 1.0, "seed": 0, "test": 0.8, "valid": 0.8,
                 "metric": "roc_auc", "split": "scaffold", "split_seed": 0, "label_count": None})
    return rows


def test_one_line_per_method_at_the_mean_with_a_sample_std_band():
    fig = label_efficiency_figure(_rows())
    (ax,) = fig.axes  # b3db has a single label setting: no panel
    assert ax.get_title() == "freesolv" and ax.get_xscale() == "log"
    assert "lower is better" in ax.get_ylabel() and "rmse" in ax.get_ylabel()
    lines = {line.get_label(): line for line in ax.lines}
    assert sorted(lines) == ["scratch", "zoo"]
    assert list(lines["scratch"].get_xdata()) == [0.1, 1.0]
    assert list(lines["scratch"].get_ydata()) == pytest.approx([5.0, 2.5])
    assert list(lines["zoo"].get_ydata()) == pytest.approx([3.0, 2.2])
    # bands: scratch at 0.1 spans 5 ± 1 (ddof = 1 of 4, 5, 6; ddof = 0 would give 0.816)
    bands = [c for c in ax.collections if c.get_paths()]
    assert len(bands) == 2
    scratch_band = bands[0].get_paths()[0].vertices
    assert scratch_band[:, 1].min() == pytest.approx(2.0) and scratch_band[:, 1].max() == pytest.approx(6.0)
    zoo_band = bands[1].get_paths()[0].vertices
    assert zoo_band[:, 1].max() == pytest.approx(3.0)  # three equal scores: no spread at 0.1
    assert "ddof = 1" in fig.get_suptitle()


def test_table_lists_fractions_from_the_fewest_labels_with_counts():
    table = label_efficiency_table(_rows())
    assert "| method | 0.1 (50 labels) | 1 (500 labels) |" in table
    assert f"| scratch | 5.000 ± {1.0:.3f} | 2.500 ± 0.500 |" in table
    assert "| zoo | 3.000 ± 0.000 | 2.200 ± 0.200 |" in table
    assert "b3db" not in table
    assert f"![label efficiency]({LABEL_EFFICIENCY_PNG})" in markdown_table(_rows())


def test_nothing_without_several_label_settings(tmp_path):
    single = [r for r in _rows() if r["label_fraction"] == 1.0]
    assert label_efficiency_figure(single) is None and label_efficiency_table(single) == ""
    assert plot_label_efficiency(single, tmp_path / "curve.png") is None
    plot_results(single, tmp_path / "results.png")
    assert not (tmp_path / LABEL_EFFICIENCY_PNG).exists()
    assert "label efficiency" not in markdown_table(single).lower()


def test_results_plot_writes_the_curves_next_to_it(tmp_path):
    plot_results(_rows(), tmp_path / "results.png")
    data = (tmp_path / LABEL_EFFICIENCY_PNG).read_bytes()
    assert data[:8] == PNG


def test_label_counts_give_a_curve_over_labelled_items():
    rows = [{"method": m, "task": "qm9:gap", "label_fraction": c / 10000, "label_count": c, "seed": s,
             "test": 0.5 / c ** 0.5 + 0.01 * s, "valid": 0.0, "metric": "mae", "split": "random", "split_seed": 0}
            for m in ("scratch", "denoise") for c in (1000, 5000) for s in range(2)]
    (ax,) = label_efficiency_figure(rows).axes
    assert [line.get_label() for line in ax.lines] == ["scratch", "denoise"]
    assert list(ax.lines[0].get_xdata()) == [1000.0, 5000.0]
    assert ax.get_xlabel().startswith("labelled training items")
    assert "| method | 1,000 | 5,000 |" in label_efficiency_table(rows)
