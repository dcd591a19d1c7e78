"""Bemis-Murcko scaffold splits: the deterministic one and a seeded, balanced one.

`scaffold_split` reproduces the split of Hu et al. 2020 ("Strategies for Pre-training Graph
Neural Networks", pretrain-gnns), so numbers are comparable with the published tables. It
gives one split per data set; `balanced_scaffold_split` gives one per seed (the "balanced
scaffold" split of chemprop, Yang et al. 2019), so that results can be averaged over several
scaffold splits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphssl.core.errors import ConfigError, DataError, MoleculeError
from graphssl.data.splits import SPLITS, Split, check_fractions, fractions_of

__all__ = ["balanced_group_split", "balanced_scaffold_split", "murcko_scaffold", "scaffold_groups", "scaffold_split"]


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


def scaffold_groups(smiles: Sequence[str], include_chirality: bool = True) -> list[tuple[int, ...]]:
    """Indices of the molecules sharing each Bemis-Murcko scaffold, ascending within a group;
    groups in the order of their first molecule.

    Raises DataError naming the index of a SMILES RDKit cannot parse.
    """
    return list(_groups(tuple(smiles), include_chirality))


# Several splits of one data set (the deterministic one and a balanced one per seed) need the
# same groups, and scaffolds cost about 2 ms a molecule on a busy CPU (minutes for all of QM9),
# so the groups of the last few data sets are kept.
@functools.lru_cache(maxsize=4)
def _groups(smiles: tuple[str, ...], include_chirality: bool) -> tuple[tuple[int, ...], ...]:
    groups: dict[str, list[int]] = {}
    for i, smi in enumerate(smiles):
        try:
            scaffold = murcko_scaffold(smi, include_chirality=include_chirality)
        except DataError as exc:
            raise DataError(f"molecule at index {i}: {exc}") from None
        groups.setdefault(scaffold, []).append(i)
    return tuple(tuple(g) for g in groups.values())


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
    frac_train, frac_valid, _ = check_fractions(fractions)
    smiles = list(smiles)
    n = len(smiles)
    groups = scaffold_groups(smiles, include_chirality)

    # Indices within a group are ascending by construction, so group[0] is its
    # smallest index: the reference's tie-break key.
    ordered = sorted(groups, key=lambda g: (len(g), g[0]), reverse=True)

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


def _capacity(fraction: float, n: int) -> int:
    # The epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 from flooring to 28 (as random_split).
    return math.floor(fraction * n + 1e-9)


def balanced_group_split(
    groups: Sequence[Sequence[int]],
    num_items: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split of whole groups of item indices, balanced as chemprop's scaffold split.

    With capacities ``floor(f * num_items)`` for train, valid and test, a group is "big" when
    it holds more than half the valid or half the test capacity. The big groups, in an order
    shuffled by ``seed``, come first, then the other groups, shuffled by ``seed``: big groups
    cannot land in valid or test except when train is full, so those two splits are not
    dominated by one scaffold. Each group in turn goes to train if it fits within train's
    capacity, else to valid if it fits within valid's, else to test (which takes the rest).
    Returns sorted int64 index arrays (train, valid, test).
    """
    frac_train, frac_valid, frac_test = check_fractions(fractions)
    train_cap, valid_cap = _capacity(frac_train, num_items), _capacity(frac_valid, num_items)
    test_cap = _capacity(frac_test, num_items)
    big = [list(g) for g in groups if len(g) > valid_cap / 2 or len(g) > test_cap / 2]
    small = [list(g) for g in groups if not (len(g) > valid_cap / 2 or len(g) > test_cap / 2)]
    rng = np.random.default_rng(seed)
    ordered = [big[i] for i in rng.permutation(len(big))] + [small[i] for i in rng.permutation(len(small))]
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in ordered:
        if len(train) + len(group) <= train_cap:
            train.extend(group)
        elif len(valid) + len(group) <= valid_cap:
            valid.extend(group)
        else:
            test.extend(group)
    return tuple(np.sort(np.asarray(part, dtype=np.int64)) for part in (train, valid, test))  # type: ignore[return-value]


def balanced_scaffold_split(
    smiles: Sequence[str],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    include_chirality: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, balanced Bemis-Murcko scaffold split (see :func:`balanced_group_split`).

    Molecules sharing a scaffold always land in the same split; one seed gives one split, so
    averaging over seeds averages over scaffold splits. Returns sorted int64 index arrays.
    """
    check_fractions(fractions)
    smiles = list(smiles)
    return balanced_group_split(scaffold_groups(smiles, include_chirality), len(smiles), fractions, seed)


def _smiles_of(dataset: Any, split: str) -> list[str]:
    if not hasattr(dataset, "smiles"):
        raise ConfigError(f"the {split} split needs molecules with SMILES; data set '{dataset.name}' has "
                          "none: set finetune.split=random")
    return dataset.smiles


@SPLITS.register("balanced_scaffold")
def _balanced_scaffold(dataset: Any, config: Any) -> Split:
    return Split(*balanced_scaffold_split(_smiles_of(dataset, "balanced_scaffold"), fractions_of(config),
                                          seed=config.split_seed))


@SPLITS.register("scaffold")
def _scaffold(dataset: Any, config: Any) -> Split:
    fractions = fractions_of(config)
    return Split(*scaffold_split(_smiles_of(dataset, "scaffold"), fractions))
