"""ECFP count fingerprints against environments counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdkit")

from graphssl.core.errors import ConfigError, DataError, MoleculeError
from graphssl.molecule.fingerprints import ecfp_counts, ecfp_matrix


def _nonzero(v: np.ndarray) -> dict[int, int]:
    return {int(i): int(v[i]) for i in np.flatnonzero(v)}


def test_ethanol_has_six_environments_each_once():
    # Heavy atoms C-C-O. Radius 0: CH3, CH2, OH (three atom types). Radius 1: CH3 with its bond,
    # O with its bond, and CH2 with both bonds (the whole molecule). Radius 2: every atom's
    # environment is the whole molecule, already counted from CH2 at radius 1, so RDKit drops it.
    v = ecfp_counts("CCO")
    assert v.shape == (2048,) and v.dtype == np.uint32
    assert sorted(_nonzero(v).values()) == [1] * 6


def test_propane_counts_its_two_methyls_twice():
    # Radius 0: two CH3 (the same invariant) and one CH2; radius 1: the two CH3-C environments
    # (same structure, different bonds) and CH2 with both bonds; radius 2 repeats the whole molecule.
    v = ecfp_counts("CCC")
    assert sorted(_nonzero(v).values()) == [1, 1, 2, 2]
    # Ethane: the two methyls once at radius 0 (count 2); at radius 1 both see the same one bond,
    # which counts once.
    ethane = _nonzero(ecfp_counts("CC"))
    assert sorted(ethane.values()) == [1, 2]
    # a methyl's radius-0 invariant does not depend on the molecule: the same bit in all three
    methyl = next(bit for bit, count in ethane.items() if count == 2)
    assert v[methyl] == 2 and ecfp_counts("CCO")[methyl] == 1


def test_benzene_six_identical_atoms_at_each_radius():
    assert sorted(_nonzero(ecfp_counts("c1ccccc1")).values()) == [6, 6, 6]


def test_radius_and_size_change_the_vector():
    assert sorted(_nonzero(ecfp_counts("CCC", radius=0)).values()) == [1, 2]
    assert ecfp_counts("CCO", bits=64).shape == (64,)
    with pytest.raises(ConfigError, match="radius"):
        ecfp_counts("CCO", radius=-1)
    with pytest.raises(ConfigError, match="bits"):
        ecfp_counts("CCO", bits=0)
    with pytest.raises(MoleculeError):
        ecfp_counts("C1CC(")


def test_matrix_rows_equal_single_vectors_and_saturate_at_255():
    smiles = ["CCO", "CCC", "c1ccccc1", "C" * 300]
    m = ecfp_matrix(smiles)
    assert m.shape == (4, 2048) and m.dtype == np.uint8
    for row, smi in zip(m[:3], smiles[:3]):
        np.testing.assert_array_equal(row, ecfp_counts(smi))
    # 298 CH2 atoms share one radius-0 environment: the uint8 count saturates
    assert ecfp_counts(smiles[3]).max() == 298 and m[3].max() == 255


def test_matrix_names_the_bad_smiles_index():
    with pytest.raises(DataError, match="index 1"):
        ecfp_matrix(["CCO", "C1CC(", "CCN"])
