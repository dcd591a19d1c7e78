"""Every metric by hand, and the direction each one improves in."""

import math

import numpy as np
import pytest

from graphssl.core.errors import ConfigError
from graphssl.tasks.metrics import (
    HIGHER_IS_BETTER,
    accuracy,
    compute_metric,
    energy_mae,
    force_mae,
    is_better,
    mean_iou,
    stress_mae,
)


def test_label_metrics_hand_computed():
    y = np.array([[1.0, 3.0], [0.0, np.nan], [1.0, 1.0], [0.0, 2.0]])
    p = np.array([[0.9, 2.0], [0.1, 0.0], [0.8, 1.0], [0.7, 4.0]])
    # task 0: positives score 0.9, 0.8; negatives 0.1, 0.7 -> every positive ranks above every negative
    assert compute_metric("roc_auc", y[:, :1], p[:, :1]) == pytest.approx(1.0)
    # task 1: the missing label is skipped
    assert compute_metric("mae", y[:, 1:], p[:, 1:]) == pytest.approx((1 + 0 + 2) / 3)
    assert compute_metric("rmse", y[:, 1:], p[:, 1:]) == pytest.approx(math.sqrt((1 + 0 + 4) / 3))


def test_roc_auc_skips_tasks_without_both_classes():
    y = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, np.nan]])
    p = np.array([[0.2, 0.5], [0.9, 0.1], [0.4, 0.3]])
    assert compute_metric("roc_auc", y, p) == pytest.approx(0.0)  # only task 0 counts
    assert math.isnan(compute_metric("roc_auc", y[:, 1:], p[:, 1:]))


def test_force_energy_and_stress_mae_hand_computed():
    true_f = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    pred_f = np.array([[0.5, 1.0, 1.0], [1.0, 0.0, 1.0]])
    assert force_mae(true_f, pred_f) == pytest.approx((0.5 + 0 + 1 + 0 + 1 + 0) / 6)  # over components
    # per atom, then over structures: |(-10) - (-12)| / 2 = 1 and |-3 - (-3.6)| / 3 = 0.2
    assert energy_mae(np.array([-12.0, -3.6]), np.array([-10.0, -3.0]), np.array([2, 3])) == pytest.approx(0.6)
    assert stress_mae(np.zeros((1, 3, 3)), np.full((1, 3, 3), 0.01)) == pytest.approx(0.01)
    assert math.isnan(force_mae(np.zeros((0, 3)), np.zeros((0, 3))))
    with pytest.raises(ValueError, match="shapes differ"):
        force_mae(true_f, pred_f[:1])


def test_miou_and_accuracy_hand_computed():
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 3])
    assert accuracy(truth, pred) == pytest.approx(4 / 6)
    # class 0: 1/2, class 1: 2/3, class 2: 1/2, class 3 (predicted only): 0/1; class 4: absent
    assert mean_iou(truth, pred) == pytest.approx((1 / 2 + 2 / 3 + 1 / 2 + 0) / 4)
    assert mean_iou(truth, truth) == 1.0 and np.isnan(mean_iou(truth[:0], pred[:0]))
    assert np.isnan(accuracy(truth[:0], pred[:0]))


def test_is_better_follows_each_metric_direction():
    assert set(HIGHER_IS_BETTER) >= {"roc_auc", "rmse", "mae", "force_mae", "energy_mae", "miou", "accuracy"}
    for metric, higher in HIGHER_IS_BETTER.items():
        assert is_better(metric, 0.8, 0.7) is higher and is_better(metric, 0.6, 0.7) is not higher
        assert is_better(metric, 1.0, None) and is_better(metric, 1.0, float("nan"))
        assert not is_better(metric, float("nan"), 1.0)
    assert not is_better("mae", 0.7, 0.7)  # ties keep the earlier epoch


def test_unknown_metrics_are_named():
    with pytest.raises(ConfigError, match="unknown metric 'auc'.*roc_auc"):
        is_better("auc", 1.0, 0.5)
    with pytest.raises(ConfigError, match="not a graph-level label metric"):
        compute_metric("miou", np.zeros((2, 1)), np.zeros((2, 1)))
