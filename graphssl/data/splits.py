"""Train/valid/test splits by name, and nested label subsets for few-label curves.

``random`` and ``column`` live here; domains register the splits that need their own data
(``scaffold`` in :mod:`graphssl.molecule.scaffold`, ``matbench`` in :mod:`graphssl.atomistic.splits`).

``column`` is the split a file ships with: a column (``finetune.split_column``, CSV/TSV column or
SDF property) whose values (``finetune.split_values``, compared ignoring case) put each record in
train, valid or test. It reads the file the data set was built from, so it works for your own
files (``data.path``) whose input kind can read columns, not for registry data sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from graphssl.core.errors import ConfigError, DataError
from graphssl.core.registry import Registry
from graphssl.data.builder import single_class
from graphssl.data.sources import INPUT_KINDS

__all__ = ["SPLITS", "Split", "column_split", "make_split", "random_split", "subsample_fraction"]

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


def column_split(values: Sequence[str], names: Sequence[str], where: str) -> Split:
    """Positions whose value is ``names[0]`` (train), ``names[1]`` (valid) or ``names[2]`` (test),
    ignoring case and surrounding spaces; any other value is a :class:`DataError` naming
    ``where`` (the column and file) and the values found."""
    if len(names) != 3 or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(f"finetune.split_values needs 3 values (train, valid, test), got {list(names)}")
    keys = [n.strip().lower() for n in names]
    if len(set(keys)) != 3:
        raise ConfigError(f"finetune.split_values must be 3 different values, got {list(names)}")
    parts: list[list[int]] = [[], [], []]
    unknown: dict[str, int] = {}
    for position, value in enumerate(values):
        key = value.strip().lower()
        if key in keys:
            parts[keys.index(key)].append(position)
        else:
            unknown[value] = unknown.get(value, 0) + 1
    if unknown:
        found = ", ".join(f"{v!r} ({n} record{'s' * (n != 1)})" for v, n in list(unknown.items())[:6])
        raise DataError(f"{where} holds {found}, which {'is' if len(unknown) == 1 else 'are'} none of "
                        f"finetune.split_values {list(names)}; set finetune.split_values to the values that "
                        "mean train, valid and test, and give every record one of them")
    return Split(*(np.asarray(p, dtype=np.int64) for p in parts))


@SPLITS.register("column")
def _column(dataset: Any, config: Any) -> Split:
    report = dataset.report
    source = report.input
    kind = INPUT_KINDS.get(source["kind"]) if source.get("kind") in INPUT_KINDS else None
    if kind is None or kind.column is None:
        raise ConfigError(f"finetune.split=column reads a split column of your own file (data.path as a CSV/TSV "
                          f"or SDF file); data set '{dataset.name}' was not built from one: use scaffold or random")
    column = config.split_column
    values = kind.column(source["path"], column, source.get("limit"))
    kept = report.kept_records(len(values))
    if len(kept) != len(dataset):
        raise DataError(f"'{source['path']}' has {len(values)} records now, {len(kept)} of them kept, but data set "
                        f"'{dataset.name}' holds {len(dataset)}: the file changed after it was built; build it again")
    return column_split([values[i] for i in kept], config.split_values, f"split column {column!r} of "
                        f"'{source['path']}'")


def check_scorable(dataset: Any) -> None:
    """Refuse a classification data set none of whose tasks has both classes: no split of it can
    be scored (ROC-AUC needs positive and negative examples), so fine-tuning would only fail
    after training, or report NaN."""
    if getattr(dataset, "task_type", None) != "classification":
        return
    problems = single_class(dataset.labels.float())
    if all(p is not None for p in problems):
        found = "; ".join(f"{t!r}: {p}" for t, p in zip(dataset.task_names, problems))
        raise DataError(f"classification data set '{dataset.name}' cannot be scored: no task has both classes "
                        f"({found}); fine-tuning needs positive and negative examples (more records, a larger "
                        "data.limit, or other label columns)")


def check_parts_scorable(parts: dict[str, Any], split: str) -> None:
    """Refuse a split whose training, validation or test part cannot be scored: no label at all
    in a regression part, or, for classification, no task with both classes. Selection reads the
    validation score and the report reads the test score, so either being NaN would make a run
    that "succeeds" with nothing measured. ``parts`` maps a part's name to its data set view."""
    for part, data in parts.items():
        task_type = getattr(data, "task_type", None)
        if task_type not in ("classification", "regression"):
            continue
        try:
            labels = data.labels.float()
        except AttributeError:
            continue
        if labels.dim() != 2 or labels.shape[0] != len(data):
            continue  # per-node or per-face labels: the task checks those itself
        if task_type == "regression":
            if bool(torch.isnan(labels).all()):
                raise DataError(f"the {part} part of the {split} split of '{data.name}' has {len(data)} records "
                                "and not one label: it cannot be scored; use more data, other "
                                "finetune.split_fractions or another split")
            continue
        problems = single_class(labels)
        if all(p is not None for p in problems):
            counts = []
            for name, column in zip(data.task_names, labels.T):
                known = column[~torch.isnan(column)]
                counts.append(f"{name!r}: {int((known == 0).sum())} of class 0, {int((known == 1).sum())} of class 1")
            raise DataError(f"the {part} part of the {split} split of '{data.name}' ({len(data)} records) cannot be "
                            f"scored: ROC-AUC needs both classes and no task has them ({'; '.join(counts)}); use "
                            "more data, other finetune.split_fractions, or a random or balanced_scaffold split")


def make_split(dataset: Any, config: Any) -> Split:
    """The split named by ``config.split`` (a :class:`~graphssl.core.config.FinetuneConfig`) of ``dataset``,
    after checking that the data set can be scored at all (:func:`check_scorable`)."""
    check_scorable(dataset)
    return SPLITS.get(config.split)(dataset, config)
