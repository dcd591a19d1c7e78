"""Train/valid/test splits for molecular benchmarks.

`scaffold_split` reproduces the deterministic Bemis-Murcko scaffold split of
Hu et al. 2020 ("Strategies for Pre-training Graph Neural Networks",
pretrain-gnns), so numbers are comparable with the published tables.
`subsample_fraction` draws nested label subsets for few-label curves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from graphssl.core.errors import DataError, MoleculeError

__all__ = ["murcko_scaffold", "scaffold_split", "random_split", "subsample_fraction"]

# Tolerance for "fractions sum to 1": (0.8, 0.1, 0.1) sums to 0.9999999999999999.
_SUM_TOLERANCE = 1e-6


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
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


def murcko_scaffold(smiles: str, include_chirality: bool = True) -> str:
    """Bemis-Murcko scaffold SMILES of a molecule ("" for acyclic molecules).

    Raises DataError if RDKit cannot parse `smiles` or it holds no atoms.
    """
    from rdkit.Chem.Scaffolds import MurckoScaffold

    from graphssl.molecule.adapter import mol_from_smiles

    try:
        mol = mol_from_smiles(smiles)
    except MoleculeError as exc:
        raise DataError(str(exc)) from None
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=include_chirality)


def scaffold_split(
    smiles: Sequence[str],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    include_chirality: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic scaffold split of Hu et al. 2020 (pretrain-gnns).

    Molecules are grouped by Bemis-Murcko scaffold; groups are visited from the
    largest to the smallest (ties: larger first index first) and each whole group
    goes to train if train stays within ``frac_train * n``, else to valid if
    train + valid stays within ``(frac_train + frac_valid) * n``, else to test.
    Returns sorted int64 index arrays (train, valid, test).
    """
    frac_train, frac_valid, _ = _check_fractions(fractions)
    smiles = list(smiles)
    n = len(smiles)

    groups: dict[str, list[int]] = {}
    for i, smi in enumerate(smiles):
        try:
            scaffold = murcko_scaffold(smi, include_chirality=include_chirality)
        except DataError as exc:
            raise DataError(f"molecule at index {i}: {exc}") from None
        groups.setdefault(scaffold, []).append(i)

    # Indices within a group are ascending by construction, so group[0] is its
    # smallest index: the reference's tie-break key.
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[0]), reverse=True)

    # Raw float cutoffs and strict ">" as in the reference implementation, so the
    # assignment matches it exactly, rounding quirks included.
    train_cutoff = frac_train * n
    valid_cutoff = (frac_train + frac_valid) * n
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in ordered:
        if len(train) + len(group) > train_cutoff:
            if len(train) + len(valid) + len(group) > valid_cutoff:
                test.extend(group)
            else:
                valid.extend(group)
        else:
            train.extend(group)

    return tuple(np.sort(np.asarray(part, dtype=np.int64)) for part in (train, valid, test))  # type: ignore[return-value]


def random_split(
    num_items: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random split of ``range(num_items)`` into sorted int64 (train, valid, test).

    Train and valid get ``floor(fraction * num_items)`` items; test gets the rest.
    """
    frac_train, frac_valid, _ = _check_fractions(fractions)
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
