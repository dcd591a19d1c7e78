"""Evaluation metrics over label matrices with missing values (NaN)."""

from __future__ import annotations

import numpy as np

from graphssl.core.errors import ConfigError

HIGHER_IS_BETTER = {
    "roc_auc": True,
    "rmse": False,
    "mae": False,
    "accuracy": True,  # per-face accuracy (B-rep segmentation)
    "miou": True,  # mean intersection over union over classes (B-rep segmentation)
    "force_mae": False,  # eV/A (energies and forces)
    "energy_mae": False,  # eV/atom
}


def _check(metric: str) -> None:
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"unknown metric '{metric}'. Choose one of: {', '.join(HIGHER_IS_BETTER)}")


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC averaged over the tasks that have both classes among the present labels.

    Returns NaN when no task has both classes (the split cannot be scored).
    """
    from sklearn.metrics import roc_auc_score

    values = []
    for t in range(y_true.shape[1]):
        present = ~np.isnan(y_true[:, t])
        labels = y_true[present, t]
        if labels.size and 0 < labels.sum() < labels.size:
            values.append(roc_auc_score(labels, scores[present, t]))
    return float(np.mean(values)) if values else float("nan")


def rmse(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error per task over present labels, averaged over tasks."""
    values = []
    for t in range(y_true.shape[1]):
        present = ~np.isnan(y_true[:, t])
        if present.any():
            values.append(np.sqrt(np.mean((y_true[present, t] - pred[present, t]) ** 2)))
    return float(np.mean(values)) if values else float("nan")


def mae(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error per task over present labels, averaged over tasks."""
    values = []
    for t in range(y_true.shape[1]):
        present = ~np.isnan(y_true[:, t])
        if present.any():
            values.append(np.mean(np.abs(y_true[present, t] - pred[present, t])))
    return float(np.mean(values)) if values else float("nan")


def compute_metric(metric: str, y_true: np.ndarray, pred: np.ndarray) -> float:
    """Graph-level metrics from label and prediction matrices (node-level and force metrics
    are computed by their own training loops)."""
    _check(metric)
    functions = {"roc_auc": roc_auc, "rmse": rmse, "mae": mae}
    if metric not in functions:
        raise ConfigError(f"metric '{metric}' is not a graph-level label metric")
    return functions[metric](y_true, pred)


def is_better(metric: str, new: float, best: float | None) -> bool:
    """Whether ``new`` improves on ``best`` (NaN never does; anything beats ``None``)."""
    _check(metric)
    if np.isnan(new):
        return False
    if best is None or np.isnan(best):
        return True
    return new > best if HIGHER_IS_BETTER[metric] else new < best
