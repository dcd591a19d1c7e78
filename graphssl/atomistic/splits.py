"""Matbench's cross-validation folds, and the registered split that uses them (``finetune.split=matbench``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from graphssl.core.errors import ConfigError, DataError
from graphssl.data.splits import SPLITS, Split

MATBENCH_SEED = 18012019  # Matbench's KFold random_state
MATBENCH_FOLDS = 5
MATBENCH_VALID_FRACTION = 0.1
MATBENCH_DIELECTRIC_SIZE = 4_764


def matbench_folds(n_items: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Matbench's 5-fold cross-validation: ``KFold(5, shuffle=True, random_state=18012019)``
    over the items in data-set order; returns ``(train_idx, test_idx)`` per fold."""
    from sklearn.model_selection import KFold  # scikit-learn is slow to import; only this split needs it

    folds = KFold(n_splits=MATBENCH_FOLDS, shuffle=True, random_state=MATBENCH_SEED).split(np.arange(n_items))
    return [(train.astype(np.int64), test.astype(np.int64)) for train, test in folds]


def matbench_split(num_items: int, fold: int, valid_fraction: float = MATBENCH_VALID_FRACTION) -> Split:
    """Fold ``fold`` of Matbench's ``KFold(5, shuffle=True, random_state=18012019)`` as the test set;
    ``valid_fraction`` of the fold's training part, drawn with a generator seeded by the fold, is
    the validation set (Matbench leaves model selection to the user; this is ours)."""
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < MATBENCH_FOLDS:
        raise ConfigError(f"the matbench split takes finetune.split_seed as the fold: 0..{MATBENCH_FOLDS - 1}, "
                          f"got {fold!r}")
    if num_items < 2 * MATBENCH_FOLDS:
        raise DataError(f"the matbench split needs at least {2 * MATBENCH_FOLDS} structures, got {num_items}")
    train, test = matbench_folds(num_items)[int(fold)]
    shuffled = np.random.default_rng([MATBENCH_SEED, int(fold)]).permutation(train)
    n_valid = max(1, round(valid_fraction * len(train)))
    return Split(np.sort(shuffled[n_valid:]), np.sort(shuffled[:n_valid]), np.sort(test))


@SPLITS.register("matbench")
def _matbench(dataset: Any, config: Any) -> Split:
    """Fold ``config.split_seed`` of Matbench's 5-fold split."""
    if getattr(dataset, "name", None) == "matbench-dielectric" and len(dataset) != MATBENCH_DIELECTRIC_SIZE:
        warnings.warn(f"matbench-dielectric has {len(dataset)} of its {MATBENCH_DIELECTRIC_SIZE} structures "
                      "(limit, offset or skipped records): the folds are not Matbench's official ones",
                      stacklevel=2)
    return matbench_split(len(dataset), config.split_seed)
