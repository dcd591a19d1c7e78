"""RDKit atoms and bonds to the categorical indices of :mod:`graphssl.molecule.features`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rdkit.Chem.rdchem import BondStereo, BondType, ChiralType, HybridizationType

from graphssl.molecule.features import (
    ATOMIC_NUMS,
    BOND_STEREOS,
    BOND_TYPES,
    CHIRALITIES,
    DEGREES,
    FORMAL_CHARGES,
    HYBRIDIZATIONS,
    NUM_HS,
    NUM_RADICAL_ELECTRONS,
)

if TYPE_CHECKING:
    from rdkit.Chem import Atom, Bond

__all__ = ["atom_features", "bond_features"]


def _index_map(categories: tuple[Any, ...], keys: dict[Any, Any] | None = None) -> dict[Any, int]:
    """Map each non-misc category (or its RDKit enum, via ``keys``) to its index."""
    out: dict[Any, int] = {}
    for i, name in enumerate(categories):
        if name == "misc":
            continue
        out[keys[name] if keys is not None else name] = i
    return out


# RDKit enums subclass int, so these dicts are keyed by the enum values
# themselves and the hot loop needs no str() conversion or list.index().
_CHIRALITY = _index_map(CHIRALITIES, ChiralType.names)
_HYBRIDIZATION = _index_map(HYBRIDIZATIONS, HybridizationType.names)
_BOND_TYPE = _index_map(BOND_TYPES, BondType.names)
_BOND_STEREO = _index_map(BOND_STEREOS, BondStereo.names)
_DEGREE = _index_map(DEGREES)
_CHARGE = _index_map(FORMAL_CHARGES)
_NUM_HS = _index_map(NUM_HS)
_RADICALS = _index_map(NUM_RADICAL_ELECTRONS)

_MISC_ATOMIC_NUM = len(ATOMIC_NUMS) - 1
_MISC_CHIRALITY = len(CHIRALITIES) - 1
_MISC_DEGREE = len(DEGREES) - 1
_MISC_CHARGE = len(FORMAL_CHARGES) - 1
_MISC_NUM_HS = len(NUM_HS) - 1
_MISC_RADICALS = len(NUM_RADICAL_ELECTRONS) - 1
_MISC_HYBRIDIZATION = len(HYBRIDIZATIONS) - 1
_MISC_BOND_TYPE = len(BOND_TYPES) - 1
_MISC_BOND_STEREO = len(BOND_STEREOS) - 1


def atom_features(atom: Atom) -> list[int]:
    """Return the 9 categorical feature indices of an RDKit atom (see ``ATOM_FEATURE_NAMES``)."""
    z = atom.GetAtomicNum()
    return [
        z - 1 if 0 < z < 119 else _MISC_ATOMIC_NUM,
        _CHIRALITY.get(atom.GetChiralTag(), _MISC_CHIRALITY),
        _DEGREE.get(atom.GetTotalDegree(), _MISC_DEGREE),
        _CHARGE.get(atom.GetFormalCharge(), _MISC_CHARGE),
        _NUM_HS.get(atom.GetTotalNumHs(), _MISC_NUM_HS),
        _RADICALS.get(atom.GetNumRadicalElectrons(), _MISC_RADICALS),
        _HYBRIDIZATION.get(atom.GetHybridization(), _MISC_HYBRIDIZATION),
        1 if atom.GetIsAromatic() else 0,
        1 if atom.IsInRing() else 0,
    ]


def bond_features(bond: Bond) -> list[int]:
    """Return the 3 categorical feature indices of an RDKit bond (see ``BOND_FEATURE_NAMES``)."""
    return [
        _BOND_TYPE.get(bond.GetBondType(), _MISC_BOND_TYPE),
        _BOND_STEREO.get(bond.GetStereo(), _MISC_BOND_STEREO),
        1 if bond.GetIsConjugated() else 0,
    ]
