"""OGB-compatible categorical atom and bond features.

The category lists and index semantics match ``ogb.utils.features``, so
embeddings sized by :data:`ATOM_FEATURE_DIMS` / :data:`BOND_FEATURE_DIMS`
are interchangeable with OGB's ``AtomEncoder`` / ``BondEncoder``.  A value
missing from a list maps to that list's last ("misc") index.  Bond stereo
has no "misc" entry in OGB; unknown stereo kinds (e.g. atropisomer labels)
map to its last entry, ``STEREOANY``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rdkit.Chem.rdchem import BondStereo, BondType, ChiralType, HybridizationType

if TYPE_CHECKING:
    from rdkit.Chem import Atom, Bond

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
