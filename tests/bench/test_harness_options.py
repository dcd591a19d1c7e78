"""Per-task harness options (label, splits, label_counts, tie_tolerance, eval_count) and the
standard tier's config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphssl.bench.harness import (
    SplitSpec,
    TaskSpec,
    _fraction_for,
    _recipe_text,
    cap_evaluation,
    parse_methods,
    parse_tasks,
)
from graphssl.core.config import FinetuneConfig, benchmark_task_data, load_config
from graphssl.core.errors import ConfigError
from graphssl.data.splits import Split, subsample_fraction

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_finetune_section():
    (task,) = parse_tasks(["b3db"], FinetuneConfig(split="random", split_seed=3))
    assert task.label == "b3db" and task.splits == [SplitSpec("random", [3])]
    assert task.label_counts is None and task.tie_tolerance == 0.0
    (qm9,) = parse_tasks([{"name": "qm9", "label_columns": ["gap"]}], FinetuneConfig())
    assert qm9.label == "qm9:gap" and qm9.data.label_columns == ["gap"]
    (own,) = parse_tasks([{"path": "x.csv", "label_columns": ["y"]}], FinetuneConfig())
    assert own.label is None  # named after the data set once it is loaded


def test_splits_counts_labels_and_tolerances():
    spec = {"name": "qm9", "label_columns": ["gap"], "label": "gap", "label_counts": [1000, 5000],
            "tie_tolerance": 0.01, "splits": ["scaffold", {"name": "balanced-scaffold", "seeds": [0, 1, 2]},
                                               {"name": "random", "seeds": "finetune"}]}
    (task,) = parse_tasks([spec], FinetuneConfig())
    assert task.label == "gap" and task.label_counts == [1000, 5000] and task.tie_tolerance == 0.01
    assert task.splits == [SplitSpec("scaffold", [0]), SplitSpec("balanced-scaffold", [0, 1, 2]),
                           SplitSpec("random", None)]
    assert benchmark_task_data(spec).label_columns == ["gap"]  # the data section alone


@pytest.mark.parametrize("extra, message", [
    ({"splits": ["scafold"]}, r"'benchmark.tasks\[0\].splits\[0\].name': unknown split 'scafold'. Did you mean"),
    ({"splits": []}, "splits' must be a non-empty list"),
    ({"splits": [{"name": "random", "seed": 1}]}, "unknown option"),
    ({"splits": ["random", {"name": "random", "seeds": [1]}]}, "names a split twice"),
    ({"splits": [{"name": "random", "seeds": [-1]}]}, "integers >= 0"),
    ({"label_counts": [0]}, "label_counts' must be"),
    ({"label_counts": 1000.5}, "label_counts' must be"),
    ({"tie_tolerance": -0.1}, "tie_tolerance' must be"),
    ({"eval_count": 0}, r"option 'benchmark.tasks\[0\].eval_count' must be a positive integer, or empty"),
    ({"eval_count": [100]}, "eval_count' must be a positive integer"),
    ({"splitz": ["random"]}, "unknown option 'benchmark.tasks\\[0\\].splitz'"),
])
def test_bad_task_options_are_named(extra, message):
    with pytest.raises(ConfigError, match=message):
        parse_tasks([{"name": "b3db", **extra}], FinetuneConfig())


def test_eval_count_draws_the_same_validation_and_test_items_for_a_split_seed():
    (task,) = parse_tasks([{"name": "qm9", "label_columns": ["gap"], "eval_count": 2000}], FinetuneConfig())
    assert task.eval_count == 2000
    split = Split(np.arange(0, 800), np.arange(800, 900), np.arange(900, 1000))
    capped = cap_evaluation(split, 30, seed=4)
    assert capped.train is split.train  # the training part (and so every label subset) is untouched
    assert len(capped.valid) == len(capped.test) == 30
    assert set(capped.valid) <= set(split.valid) and set(capped.test) <= set(split.test)
    assert np.all(np.diff(capped.valid) > 0) and np.all(np.diff(capped.test) > 0)  # in order, no repeats
    again = cap_evaluation(split, 30, seed=4)
    assert np.array_equal(again.valid, capped.valid) and np.array_equal(again.test, capped.test)
    other = cap_evaluation(split, 30, seed=5)
    assert not np.array_equal(other.valid, capped.valid)
    whole = cap_evaluation(split, 100, seed=4)  # parts no larger than the cap are kept whole
    assert np.array_equal(whole.valid, split.valid) and np.array_equal(whole.test, split.test)
    assert cap_evaluation(split, None, seed=4) is split


def test_task_labels_must_be_unique():
    with pytest.raises(ConfigError, match="labels must be unique"):
        parse_tasks(["b3db", {"name": "b3db", "on_error": "skip"}], FinetuneConfig())
    tasks = parse_tasks(["b3db", {"name": "b3db", "label": "b3db-2"}], FinetuneConfig())
    assert [t.label for t in tasks] == ["b3db", "b3db-2"]


@pytest.mark.parametrize("n", [7, 100, 999, 1000, 104_665, 104_666])
def test_label_counts_draw_exactly_that_many(n):
    task = TaskSpec("t", benchmark_task_data("b3db"), [], [1, 7, 1000])
    split = Split(np.arange(n), np.arange(0), np.arange(0))
    for count in (1, 7, 1000):
        if count > n:
            with pytest.raises(ConfigError, match=f"asks for {count:,} labelled items"):
                _fraction_for(task, ("count", count), split, "scaffold")
            continue
        fraction = _fraction_for(task, ("count", count), split, "scaffold")
        for seed in (0, 5):
            assert len(subsample_fraction(split.train, fraction, seed=seed)) == count
    assert _fraction_for(task, ("fraction", 0.25), split, "scaffold") == 0.25


def test_standard_tier_config():
    config = load_config(ROOT / "benchmarks" / "standard.yaml")
    bench = config.benchmark
    assert bench.tier == "standard" and len(bench.seeds) >= 10
    methods = parse_methods(bench.methods)
    assert [m.label for m in methods] == ["scratch", "attrmask", "graphmae", "higmae", "ecfp-rf", "rdkit-rf"]
    tasks = {t.label: t for t in parse_tasks(bench.tasks, config.finetune)}
    assert set(tasks) == {"b3db", "freesolv", "rdkit-solubility", "qm9:gap", "qm9:alpha"}
    for task in tasks.values():
        assert task.splits == [SplitSpec("scaffold", [0]), SplitSpec("balanced_scaffold", None)]
    assert tasks["qm9:gap"].label_counts == tasks["qm9:alpha"].label_counts == [1000, 5000]
    assert tasks["b3db"].label_counts is None and bench.label_fractions == [1.0]


def test_the_report_names_every_recipe_option_that_changes_the_fine_tuning():
    plain = _recipe_text(FinetuneConfig(epochs=30, batch_size=32, lr=5e-4, dropout=0.0))
    assert plain == "30 epochs, batch 32, Adam lr 0.0005, dropout 0.0, full fine-tuning"
    text = _recipe_text(FinetuneConfig(epochs=30, noisy_nodes_weight=0.1, noisy_nodes_sigma=0.005, encoder_lr=1e-4,
                                       patience=5, freeze_layers=2, unfreeze_every=3, weight_decay=1e-5,
                                       mode="lp-ft", probe_epochs=2, reestimate_batch_norm=False, head_hidden=64,
                                       pooling="sum"))
    for part in ("encoder lr 0.0001", "weight decay 1e-05", "first 2 encoder layers frozen, one more unfrozen every 3",
                 "early stopping after 5 epochs", "noisy-nodes loss (weight 0.1, sigma 0.005 A)",
                 "batch-norm statistics kept from pretraining", "lp-ft (2 epochs of linear probing first)",
                 "MLP head of width 64", "sum readout"):
        assert part in text, part
    assert "layer-wise" not in text
