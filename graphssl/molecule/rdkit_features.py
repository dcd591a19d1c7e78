"""RDKit atoms and bonds to the categorical indices of :mod:`graphssl.molecule.features`.

:func:`atom_features` and :func:`bond_features` are the definition, one RDKit object at a time;
:func:`graph_tensors` gives the same indices for a whole molecule at once, with fewer calls into
RDKit (see its docstring for how), and is what the featuriser uses.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

import torch
from rdkit.Chem import rdqueries
from rdkit.Chem.rdchem import Atom as _Atom
from rdkit.Chem.rdchem import Bond as _Bond
from rdkit.Chem.rdchem import (
    BondStereo,
    BondType,
    ChiralType,
    CompositeQueryType,
    HybridizationType,
    RWMol,
)

from graphssl.molecule.features import (
    ATOM_FEATURE_NAMES,
    ATOMIC_NUMS,
    BOND_FEATURE_NAMES,
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
    from rdkit.Chem import Atom, Bond, Mol

__all__ = ["atom_features", "bond_features", "graph_tensors"]


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
_NUM_ATOM_FEATURES = len(ATOM_FEATURE_NAMES)
_NUM_BOND_FEATURES = len(BOND_FEATURE_NAMES)


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


# --------------------------------------------------------------------------- whole molecules

# Each call into RDKit costs about 0.25 us, 0.65 us when it returns an enum (chirality,
# hybridisation, bond type, stereo), and getting an atom or bond object about 0.8 us: on a
# drug-like molecule these calls, not the index arithmetic, are most of the featuriser's time.
# So graph_tensors asks RDKit only for what varies from atom to atom, through unbound methods
# mapped over the atoms (no bound-method objects, no bytecode per call), and finds the rare
# atoms that carry a chiral tag, a formal charge or unpaired electrons in one C++ pass.


def _unusual_atoms_query() -> Mol:
    """A one-atom query molecule matching atoms with a chiral tag, a formal charge or radicals.

    A substructure search returns all matching indices from one C++ call, where iterating
    ``GetAtomsMatchingQuery`` would test the atoms one Python step at a time.
    """
    query = rdqueries.HasChiralTagQueryAtom()
    query.ExpandQuery(rdqueries.FormalChargeEqualsQueryAtom(0, True), CompositeQueryType.COMPOSITE_OR)
    query.ExpandQuery(rdqueries.NumRadicalElectronsEqualsQueryAtom(0, True), CompositeQueryType.COMPOSITE_OR)
    mol = RWMol()
    mol.AddAtom(query)
    return mol.GetMol()


_UNUSUAL_ATOMS = _unusual_atoms_query()

# Packed int64 rows by key. An atom outside _UNUSUAL_ATOMS has chirality CHI_UNSPECIFIED, formal
# charge 0 and no radical electrons, so (atomic number, total degree, total Hs, hybridisation,
# aromatic, in ring) fixes all nine of its indices; (type, stereo, conjugated) fixes a bond's
# three, stored twice (both directions). Rows are filled from atom_features / bond_features on
# first sight, so the two paths cannot drift apart. Real molecules give a few hundred keys; the
# cap only bounds memory on adversarial input.
_ATOM_ROWS: dict[tuple[Any, ...], bytes] = {}
_BOND_ROWS: dict[tuple[Any, ...], bytes] = {}
_MAX_ROWS = 1 << 16


def _packed(values: list[int]) -> bytes:
    return array("q", values).tobytes()


def _remember(cache: dict[tuple[Any, ...], bytes], key: tuple[Any, ...], row: bytes) -> bytes:
    if len(cache) < _MAX_ROWS:
        cache[key] = row
    return row


def _long_tensor(buffer: bytearray | array, *shape: int) -> torch.Tensor:
    """View packed int64 values as a tensor of ``shape`` without copying."""
    if not buffer:  # frombuffer rejects empty buffers
        return torch.empty(0, dtype=torch.long).view(*shape)
    return torch.frombuffer(buffer, dtype=torch.long).view(*shape)


def graph_tensors(mol: Mol) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, edge_index, edge_attr)`` long tensors of a sanitised molecule.

    ``x`` [num_atoms, 9] holds :func:`atom_features` of each atom in atom order; bond ``k`` is
    columns ``2k`` (begin -> end) and ``2k + 1`` (end -> begin) of ``edge_index`` [2, 2 * num_bonds]
    and rows ``2k`` and ``2k + 1`` of ``edge_attr`` [2 * num_bonds, 3], both :func:`bond_features`.
    """
    atoms = list(map(mol.GetAtomWithIdx, range(mol.GetNumAtoms())))
    keys = list(zip(map(_Atom.GetAtomicNum, atoms), map(_Atom.GetTotalDegree, atoms),
                    map(_Atom.GetTotalNumHs, atoms), map(_Atom.GetHybridization, atoms),
                    map(_Atom.GetIsAromatic, atoms), map(_Atom.IsInRing, atoms)))
    rows: list[bytes | None] = list(map(_ATOM_ROWS.get, keys))
    # maxMatches: the default (1000) would silently cut off larger molecules
    unusual = [i for (i,) in mol.GetSubstructMatches(_UNUSUAL_ATOMS, uniquify=False, maxMatches=len(atoms))]
    for i in unusual:
        rows[i] = _packed(atom_features(atoms[i]))
    if None in rows:
        for i, row in enumerate(rows):
            if row is None:
                rows[i] = _remember(_ATOM_ROWS, keys[i], _packed(atom_features(atoms[i])))

    bonds = list(map(mol.GetBondWithIdx, range(mol.GetNumBonds())))
    begin = list(map(_Bond.GetBeginAtomIdx, bonds))
    end = list(map(_Bond.GetEndAtomIdx, bonds))
    bond_keys = list(zip(map(_Bond.GetBondType, bonds), map(_Bond.GetStereo, bonds),
                         map(_Bond.GetIsConjugated, bonds)))
    bond_rows: list[bytes | None] = list(map(_BOND_ROWS.get, bond_keys))
    if None in bond_rows:
        for k, row in enumerate(bond_rows):
            if row is None:
                row = _packed(bond_features(bonds[k]))
                bond_rows[k] = _remember(_BOND_ROWS, bond_keys[k], row + row)
    forward = begin + end  # bond k's two directions side by side: b0 e0 b1 e1 ... / e0 b0 e1 b1 ...
    forward[0::2], forward[1::2] = begin, end
    backward = end + begin
    backward[0::2], backward[1::2] = end, begin
    edges = array("q", forward + backward)
    return (
        _long_tensor(bytearray().join(rows), -1, _NUM_ATOM_FEATURES),  # type: ignore[arg-type]
        _long_tensor(edges, 2, -1),
        _long_tensor(bytearray().join(bond_rows), -1, _NUM_BOND_FEATURES),  # type: ignore[arg-type]
    )
