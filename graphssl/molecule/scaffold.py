"""The deterministic Bemis-Murcko scaffold split.

`scaffold_split` reproduces the split of Hu et al. 2020 ("Strategies for Pre-training Graph
Neural Networks", pretrain-gnns), so numbers are comparable with the published tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphssl.core.errors import ConfigError, DataError, MoleculeError
from graphssl.data.splits import SPLITS, Split, check_fractions, fractions_of

__all__ = ["murcko_scaffold", "scaffold_split"]


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
    frac_train, frac_valid, _ = check_fractions(fractions)
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


@SPLITS.register("scaffold")
def _scaffold(dataset: Any, config: Any) -> Split:
    fractions = fractions_of(config)
    if not hasattr(dataset, "smiles"):
        raise ConfigError(f"the scaffold split needs molecules with SMILES; data set '{dataset.name}' has "
                          "none: set finetune.split=random")
    return Split(*scaffold_split(dataset.smiles, fractions))
