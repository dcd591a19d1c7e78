"""ECFP (Morgan) count fingerprints, the classical input of the supervised baselines.

RDKit's ``rdFingerprintGenerator`` with its default (ECFP-like connectivity) atom invariants,
no chirality, and redundant environments (the same bond set reached from another atom or
radius) counted once, as RDKit does by default. Each entry is how many environments hash
to that bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from graphssl.core.errors import ConfigError, DataError, MoleculeError

__all__ = ["ECFP_BITS", "ECFP_RADIUS", "ecfp_counts", "ecfp_matrix"]

ECFP_RADIUS = 2  # ECFP4: bond diameter 4
ECFP_BITS = 2048

# Counts are stored as uint8 so that a matrix for all of QM9 (130,831 x 2,048) takes 268 MB
# rather than 1 GB as float32; a count above 255 (only in very large molecules) saturates.
_MAX_COUNT = np.iinfo(np.uint8).max


def _generator(radius: int, bits: int):
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ConfigError(f"ECFP radius must be a non-negative integer, got {radius!r}")
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ConfigError(f"ECFP bits must be a positive integer, got {bits!r}")
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)


def _mol(smiles: str | Chem.Mol) -> Chem.Mol:
    if isinstance(smiles, Chem.Mol):
        return smiles
    from graphssl.molecule.adapter import mol_from_smiles

    return mol_from_smiles(smiles)


def ecfp_counts(smiles: str | Chem.Mol, radius: int = ECFP_RADIUS, bits: int = ECFP_BITS) -> np.ndarray:
    """Morgan count fingerprint of one molecule, uint32 ``[bits]``.

    Raises MoleculeError if ``smiles`` cannot be parsed.
    """
    return _generator(radius, bits).GetCountFingerprintAsNumPy(_mol(smiles)).astype(np.uint32)


def ecfp_matrix(smiles: Sequence[str], radius: int = ECFP_RADIUS, bits: int = ECFP_BITS) -> np.ndarray:
    """Morgan count fingerprints of many SMILES, uint8 ``[n, bits]`` (counts saturate at 255).

    Raises DataError naming the index of a SMILES RDKit cannot parse.
    """
    generator = _generator(radius, bits)
    out = np.zeros((len(smiles), bits), dtype=np.uint8)
    for i, smi in enumerate(smiles):
        try:
            mol = _mol(smi)
        except MoleculeError as exc:
            raise DataError(f"molecule at index {i}: {exc}") from None
        counts = generator.GetCountFingerprintAsNumPy(mol)
        out[i] = np.minimum(counts, _MAX_COUNT)
    return out
