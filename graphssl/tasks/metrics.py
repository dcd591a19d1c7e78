"""Evaluation metrics, and which way each one improves.

Graph-level label metrics (``roc_auc``, ``rmse``, ``mae``) take ``[num_graphs, num_tasks]``
label and prediction matrices with missing labels as NaN and average over tasks; the others
take flat arrays: forces ``[num_atoms, 3]`` (eV/A), energies ``[num_structures]`` with atom
counts (eV/atom), stress ``[num_structures, 3, 3]`` (eV/A^3), per-face classes ``[num_faces]``.
"""

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
    "stress_mae": False,  # eV/A^3
}


def check_metric(metric: str) -> str:
    """``metric`` if it is known; a :class:`ConfigError` naming the known ones otherwise."""
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"unknown metric '{metric}'. Choose one of: {', '.join(HIGHER_IS_BETTER)}")
    return metric


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC averaged over the tasks that have both classes among the present labels.

    Returns NaN when no task has both classes (the split cannot be scored).
    """
    from sklearn.metrics import (
        roc_auc_score,  # scikit-learn takes ~1 s to import; only classification needs it
    )

    values = []
    for t in range(y_true.shape[1]):
        present = ~np.isnan(y_true[:, t])
        labels = y_true[present, t]
        if labels.size and 0 < labels.sum() < labels.size:
            values.append(roc_auc_score(labels, scores[present, t]))
    return float(np.mean(values)) if values else float("nan")


def _per_task(y_true: np.ndarray, pred: np.ndarray, error) -> float:
    """``error(truth, prediction)`` of each task over its present labels, averaged over tasks."""
    values = []
    for t in range(y_true.shape[1]):
        present = ~np.isnan(y_true[:, t])
        if present.any():
            values.append(error(y_true[present, t], pred[present, t]))
    return float(np.mean(values)) if values else float("nan")


def rmse(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error per task over present labels, averaged over tasks."""
    return _per_task(y_true, pred, lambda a, b: np.sqrt(np.mean((a - b) ** 2)))


def mae(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error per task over present labels, averaged over tasks."""
    return _per_task(y_true, pred, lambda a, b: np.mean(np.abs(a - b)))


def _mean_abs(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute difference over every component, in float64 (NaN when empty)."""
    y_true, pred = np.asarray(y_true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if y_true.shape != pred.shape:
        raise ValueError(f"shapes differ: truth {y_true.shape} vs prediction {pred.shape}")
    return float(np.abs(pred - y_true).sum() / y_true.size) if y_true.size else float("nan")


def force_mae(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Force MAE (eV/A): mean absolute error over all force components ``[num_atoms, 3]``."""
    return _mean_abs(y_true, pred)


def stress_mae(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Stress MAE (eV/A^3): mean absolute error over all components ``[num_structures, 3, 3]``."""
    return _mean_abs(y_true, pred)


def energy_mae(y_true: np.ndarray, pred: np.ndarray, num_atoms: np.ndarray) -> float:
    """Energy MAE per atom (eV/atom): mean over structures of ``|E_pred - E_true| / n_atoms``."""
    y_true, pred = np.asarray(y_true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if y_true.shape != pred.shape or y_true.shape != np.shape(num_atoms):
        raise ValueError(f"shapes differ: truth {y_true.shape}, prediction {pred.shape}, atom counts "
                         f"{np.shape(num_atoms)}")
    per_atom = np.abs(pred - y_true) / np.asarray(num_atoms, dtype=np.float64)
    return float(per_atom.mean()) if per_atom.size else float("nan")


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of items (faces) whose predicted class is right (NaN without items)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def mean_iou(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over classes of |truth & prediction| / |truth | prediction|.

    Only classes present in the truth or the predictions count: a class absent from both
    has no defined IoU, and counting it as 1 (or 0) would reward (or punish) a split for
    the classes its parts happen to lack.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.union1d(y_true, y_pred)
    if not classes.size:
        return float("nan")
    ious = [np.sum((y_true == c) & (y_pred == c)) / np.sum((y_true == c) | (y_pred == c)) for c in classes]
    return float(np.mean(ious))


_LABEL_METRICS = {"roc_auc": roc_auc, "rmse": rmse, "mae": mae}


def compute_metric(metric: str, y_true: np.ndarray, pred: np.ndarray) -> float:
    """A graph-level label metric (``roc_auc``, ``rmse``, ``mae``) of label and prediction matrices."""
    check_metric(metric)
    if metric not in _LABEL_METRICS:
        raise ConfigError(f"metric '{metric}' is not a graph-level label metric; "
                          f"those are {', '.join(_LABEL_METRICS)}")
    return _LABEL_METRICS[metric](y_true, pred)


def is_better(metric: str, new: float, best: float | None) -> bool:
    """Whether ``new`` improves on ``best`` (NaN never does; anything beats ``None`` or NaN)."""
    check_metric(metric)
    if np.isnan(new):
        return False
    if best is None or np.isnan(best):
        return True
    return new > best if HIGHER_IS_BETTER[metric] else new < best
