"""Train/valid/test splits by name, and nested label subsets for few-label curves.

``random`` lives here; domains register the splits that need their own data (``scaffold`` in
:mod:`graphssl.molecule.scaffold`, ``matbench`` in :mod:`graphssl.atomistic.splits`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from graphssl.core.errors import ConfigError, DataError
from graphssl.core.registry import Registry

__all__ = ["SPLITS", "Split", "make_split", "random_split", "subsample_fraction"]

# Tolerance for "fractions sum to 1": (0.8, 0.1, 0.1) sums to 0.9999999999999999.
_SUM_TOLERANCE = 1e-6


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Return the three fractions as floats, or raise DataError naming them."""
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError) as exc:
        raise DataError(f"split fractions must be three numbers, got {fractions!r}") from exc
    if len(values) != 3:
        raise DataError(
            f"split fractions must be (train, valid, test), got {len(values)} values: {fractions!r}"
        )
    if not all(math.isfinite(f) and f > 0 for f in values):
        raise DataError(f"split fractions must all be positive, got {fractions!r}")
    total = sum(values)
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise DataError(f"split fractions must sum to 1, got {fractions!r} (sum {total:g})")
    return values  # type: ignore[return-value]


def random_split(
    num_items: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random split of ``range(num_items)`` into sorted int64 (train, valid, test).

    Train and valid get ``floor(fraction * num_items)`` items; test gets the rest.
    """
    frac_train, frac_valid, _ = check_fractions(fractions)
    if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)) or num_items < 0:
        raise DataError(f"num_items must be a non-negative integer, got {num_items!r}")
    n = int(num_items)
    # The epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 from flooring to 28.
    n_train = math.floor(frac_train * n + 1e-9)
    n_valid = math.floor(frac_valid * n + 1e-9)
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return (
        np.sort(perm[:n_train]),
        np.sort(perm[n_train : n_train + n_valid]),
        np.sort(perm[n_train + n_valid :]),
    )


def subsample_fraction(
    indices: np.ndarray, fraction: float, seed: int = 0, min_count: int = 1
) -> np.ndarray:
    """Seeded subset of `indices` holding ``max(min_count, round(fraction * len))`` items, sorted.

    Subsets are nested: for one seed and one `indices`, the subset for a smaller
    fraction is contained in the subset for a larger one (all are prefixes of the
    same permutation), so few-label curves compare like with like.
    ``fraction == 1.0`` returns a copy of `indices` in its original order.
    """
    try:
        fraction = float(fraction)
    except (TypeError, ValueError) as exc:
        raise DataError(f"fraction must be a number in (0, 1], got {fraction!r}") from exc
    if not (0.0 < fraction <= 1.0):  # also rejects NaN
        raise DataError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 0:
        raise DataError(f"min_count must be a non-negative integer, got {min_count!r}")
    indices = np.asarray(indices)
    if indices.ndim != 1:
        raise DataError(f"indices must be a 1-D array, got shape {indices.shape}")
    if fraction == 1.0:
        return indices.copy()
    n = len(indices)
    count = min(n, max(int(min_count), round(fraction * n)))
    # The permutation depends only on (seed, n), never on fraction: that is what
    # makes the subsets nested.
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(indices[perm[:count]])


@dataclass
class Split:
    """Positions of the training, validation and test items of a data set."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


# name -> split(dataset, finetune_config) -> Split; the config carries split_fractions and split_seed
SPLITS: Registry[Callable[[Any, Any], Split]] = Registry("split")


def fractions_of(config: Any) -> tuple[float, float, float]:
    """The (train, valid, test) shares of a fine-tuning config, checked."""
    fractions = tuple(config.split_fractions)
    if len(fractions) != 3:
        raise ConfigError(f"finetune.split_fractions needs 3 numbers (train, valid, test), got {list(fractions)}")
    return fractions  # type: ignore[return-value]


@SPLITS.register("random")
def _random(dataset: Any, config: Any) -> Split:
    return Split(*random_split(len(dataset), fractions_of(config), seed=config.split_seed))


def make_split(dataset: Any, config: Any) -> Split:
    """The split named by ``config.split`` (a :class:`~graphssl.core.config.FinetuneConfig`) of ``dataset``."""
    return SPLITS.get(config.split)(dataset, config)
