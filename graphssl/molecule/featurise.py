"""Featurisation of one molecule record: the step shared by in-memory builds and sharded preparation."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from graphssl.core.config import DataConfig
from graphssl.core.errors import MoleculeError
from graphssl.data.labels import label_problem
from graphssl.data.records import shorten
from graphssl.data.store import GraphFields
from graphssl.molecule.tables import MoleculeRecord

# How molecule graphs are stored (see graphssl.molecule.adapter for the fields).
MOLECULE_FIELDS = GraphFields(
    kind="molecule",
    node=("x", "pos"),
    edge=("edge_attr",),
    graph=("y", "descriptors"),  # y: [1, num_tasks], NaN = missing; descriptors: [1, d], NaN = failed
    strings=("smiles",),
    optional=frozenset({"pos", "descriptors"}),  # with data.conformer, with data.descriptors
    legacy={"graphssl-graph-store/1": "smiles"},
)


def record_text(record: MoleculeRecord) -> str:
    """How a record is named in reports and errors: its SMILES (long ones cut), else the name of
    its molecule (an SDF title line), else its position."""
    if record.smiles is not None:
        return shorten(record.smiles)
    mol = record.mol
    if mol is not None and mol.HasProp("_Name") and mol.GetProp("_Name").strip():
        return shorten(mol.GetProp("_Name").strip())
    return f"record {record.index}"


def _graph_atoms(mol, explicit_h: bool) -> int:
    """Nodes the graph of ``mol`` will have: its atoms, plus its hydrogens with ``explicit_h``."""
    n = mol.GetNumAtoms()
    if explicit_h:
        n += sum(atom.GetTotalNumHs() for atom in mol.GetAtoms())
    return n


def featurise_record(record: MoleculeRecord, config: DataConfig, labelled: bool) -> tuple[Data | None, str | None]:
    """``(graph, None)`` for a usable record (``y`` holds its labels, ``[1, T]``), ``(None, reason)``
    for a bad one."""
    from graphssl.molecule.adapter import mol_from_smiles, mol_to_data  # RDKit, only once a record is built

    if record.error is not None:
        return None, record.error
    problem = label_problem(record.labels, labelled)
    if problem is not None:
        return None, problem
    if record.mol is None and (record.smiles is None or not record.smiles.strip()):
        return None, "empty SMILES"
    try:
        mol = record.mol if record.mol is not None else mol_from_smiles(record.smiles)
        # checked before featurising: conformers and ring perception of huge inputs are slow
        atoms = _graph_atoms(mol, config.explicit_h)
        if config.max_atoms is not None and atoms > config.max_atoms:
            return None, (f"molecule has {atoms} atoms, more than data.max_atoms={config.max_atoms} "
                          "(raise the limit, or set it empty for none, to keep it)")
        data = mol_to_data(mol, explicit_h=config.explicit_h, conformer=config.conformer, smiles=record.smiles,
                           conformer_max_atoms=config.conformer_max_atoms, conformer_timeout=config.conformer_timeout)
    except MoleculeError as exc:
        return None, str(exc)
    data.y = torch.tensor(record.labels, dtype=torch.float32).reshape(1, len(record.labels))
    if config.descriptors is not None:
        from graphssl.molecule.descriptors import DESCRIPTOR_SETS, descriptor_names, descriptor_vector

        names = DESCRIPTOR_SETS.get(config.descriptors) or descriptor_names(config.descriptors)
        # computed after the graph: some descriptors cache charges and contributions on the molecule
        data.descriptors = torch.from_numpy(descriptor_vector(mol, names)).float().reshape(1, -1)
    return data, None


def duplicate_reason(earlier: int, canonical_smiles: str) -> str:
    """Why a molecule is a duplicate: data.smiles is RDKit's canonical SMILES (stereo included),
    so one molecule has one key however its input was written."""
    return (f"duplicate of record {earlier} (same canonical SMILES {shorten(canonical_smiles)!r}); "
            "set data.duplicates=keep to keep duplicates")
