"""Shared fixtures: small molecule files written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

SMILES = [
    "CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "c1ccncc1C", "CCN(CC)CC", "C1CCCCC1N",
    "c1ccc2ccccc2c1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "OC(=O)c1ccccc1O", "CCOC(=O)C",
    "c1ccc(cc1)C(=O)O", "N#Cc1ccccc1", "C1CCOC1", "CC1=CC(=O)C=CC1=O", "c1cc[nH]c1",
    "c1ccsc1", "CC(C)O", "C1CCNCC1", "c1ccc(Cl)cc1", "CCCCCCCC",
    "c1ccc2[nH]ccc2c1", "O=C1CCCCC1", "CC(N)C(=O)O", "c1cnc2ccccc2n1",
]


@pytest.fixture
def molecule_csv(tmp_path: Path) -> Path:
    """A labelled CSV: a regression column, a classification column with gaps."""
    lines = ["smiles,logp,active"]
    for i, s in enumerate(SMILES):
        active = "" if i % 5 == 4 else str(i % 2)
        lines.append(f"{s},{0.1 * i - 1:.2f},{active}")
    path = tmp_path / "mols.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def smiles_file(tmp_path: Path) -> Path:
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(f"{s} mol{i}" for i, s in enumerate(SMILES * 3)) + "\n")
    return path
