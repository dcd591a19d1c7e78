"""Featurisation of one raw record: the step shared by in-memory builds and sharded preparation."""

from __future__ import annotations

import math

from torch_geometric.data import Data

from graphssl.config import DataConfig
from graphssl.data.records import RawRecord
from graphssl.errors import MoleculeError


def record_text(record: RawRecord) -> str:
    """How a record is named in reports and errors: its SMILES, or its position."""
    return record.smiles if record.smiles is not None else f"record {record.index}"


def featurise_record(record: RawRecord, config: DataConfig, labelled: bool) -> tuple[Data | None, str | None]:
    """``(graph, None)`` for a usable record, ``(None, reason)`` for a bad one."""
    from graphssl.adapters.molecule import mol_from_smiles, mol_to_data

    if record.error is not None:
        return None, record.error
    if labelled and all(math.isnan(v) for v in record.labels):
        return None, "no label present"
    try:
        mol = record.mol if record.mol is not None else mol_from_smiles(record.smiles)
        data = mol_to_data(mol, explicit_h=config.explicit_h, conformer=config.conformer, smiles=record.smiles)
    except MoleculeError as exc:
        return None, str(exc)
    return data, None
