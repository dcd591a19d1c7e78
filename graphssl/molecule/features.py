"""OGB-compatible categorical atom and bond features.

The category lists and index semantics match ``ogb.utils.features``, so
embeddings sized by :data:`ATOM_FEATURE_DIMS` / :data:`BOND_FEATURE_DIMS`
are interchangeable with OGB's ``AtomEncoder`` / ``BondEncoder``.  A value
missing from a list maps to that list's last ("misc") index.  Bond stereo
has no "misc" entry in OGB; unknown stereo kinds (e.g. atropisomer labels)
map to its last entry, ``STEREOANY``.

This module is the schema only and needs no RDKit; the RDKit side (atom and bond objects to
these indices) is :mod:`graphssl.molecule.rdkit_features`.
"""

from __future__ import annotations

from typing import Any

from graphssl.nn.features import FeatureSpec

# Part of the on-disk cache key: bump whenever any index below changes meaning.
FEATURIZER_VERSION = "1"

ATOM_FEATURE_NAMES: tuple[str, ...] = (
    "atomic_num",
    "chirality",
    "degree",
    "formal_charge",
    "num_hs",
    "num_radical_electrons",
    "hybridization",
    "is_aromatic",
    "is_in_ring",
)
BOND_FEATURE_NAMES: tuple[str, ...] = ("bond_type", "bond_stereo", "is_conjugated")

# Category lists, OGB order; the trailing "misc" entry is the fallback index.
ATOMIC_NUMS: tuple[Any, ...] = (*range(1, 119), "misc")
CHIRALITIES: tuple[str, ...] = (
    "CHI_UNSPECIFIED",
    "CHI_TETRAHEDRAL_CW",
    "CHI_TETRAHEDRAL_CCW",
    "CHI_OTHER",
    "misc",
)
DEGREES: tuple[Any, ...] = (*range(0, 11), "misc")
FORMAL_CHARGES: tuple[Any, ...] = (*range(-5, 6), "misc")
NUM_HS: tuple[Any, ...] = (*range(0, 9), "misc")
NUM_RADICAL_ELECTRONS: tuple[Any, ...] = (*range(0, 5), "misc")
HYBRIDIZATIONS: tuple[str, ...] = ("SP", "SP2", "SP3", "SP3D", "SP3D2", "misc")
BOND_TYPES: tuple[str, ...] = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC", "misc")
BOND_STEREOS: tuple[str, ...] = (
    "STEREONONE",
    "STEREOZ",
    "STEREOE",
    "STEREOCIS",
    "STEREOTRANS",
    "STEREOANY",
)

ATOM_FEATURE_DIMS: tuple[int, ...] = (
    len(ATOMIC_NUMS),
    len(CHIRALITIES),
    len(DEGREES),
    len(FORMAL_CHARGES),
    len(NUM_HS),
    len(NUM_RADICAL_ELECTRONS),
    len(HYBRIDIZATIONS),
    2,
    2,
)
BOND_FEATURE_DIMS: tuple[int, ...] = (len(BOND_TYPES), len(BOND_STEREOS), 2)
NUM_ATOM_TYPES = len(ATOMIC_NUMS)


def molecule_feature_spec() -> FeatureSpec:
    """The categorical layout of atom and bond features, for sizing encoders (no RDKit needed)."""
    return FeatureSpec(node_dims=tuple(ATOM_FEATURE_DIMS), edge_dims=tuple(BOND_FEATURE_DIMS))
