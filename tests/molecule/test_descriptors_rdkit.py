"""RDKit descriptor sets, vectors and matrices, and descriptors attached during featurisation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")

from rdkit import Chem  # noqa: E402
from rdkit.Chem import Descriptors  # noqa: E402

from graphssl.core.config import DataConfig  # noqa: E402
from graphssl.core.errors import ConfigError  # noqa: E402
from graphssl.data.builder import cache_key  # noqa: E402
from graphssl.data.dataset import load_dataset, resolve_source  # noqa: E402
from graphssl.molecule import descriptors as md  # noqa: E402
from graphssl.molecule.dataset import MOLECULE_RECIPE  # noqa: E402
from graphssl.molecule.shards import ShardedDataset, prepare_shards  # noqa: E402

MOLECULES = ["CCO", "OC(=O)c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "c1ccc2[nH]ccc2c1", "[Na+].[Cl-]", "C"]


def test_ethanol_matches_rdkits_own_functions():
    names = ["MolWt", "TPSA", "NumHDonors", "MaxAbsEStateIndex", "MinEStateIndex", "fr_Al_OH"]
    values = md.descriptor_vector(Chem.MolFromSmiles("CCO"), names)
    assert values.dtype == np.float64 and values.shape == (6,)
    assert values[0] == pytest.approx(46.069, abs=1e-3)  # C2H6O
    assert values[1] == pytest.approx(20.23, abs=1e-2)  # one hydroxyl
    assert values[2] == 1 and values[5] == 1
    mol = Chem.MolFromSmiles("CCO")
    assert values[3] == pytest.approx(Descriptors.MaxAbsEStateIndex(mol))
    assert values[4] == pytest.approx(Descriptors.MinEStateIndex(mol))


@pytest.mark.parametrize("smiles", MOLECULES)
def test_every_descriptor_equals_rdkit(smiles):
    names = md.descriptor_names("all")
    ours = md.descriptor_vector(Chem.MolFromSmiles(smiles), names)
    for name, value in zip(names, ours):
        try:
            expected = float(getattr(Descriptors, name, dict(Descriptors._descList)[name])(Chem.MolFromSmiles(smiles)))
        except Exception:  # noqa: BLE001 - a descriptor RDKit cannot compute must be NaN here
            expected = math.nan
        if math.isfinite(expected):
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), name
        else:
            assert math.isnan(value), name


def test_explicit_hydrogens_are_removed_first():
    names = md.descriptor_names("fast")
    plain = md.descriptor_vector(Chem.MolFromSmiles("CC(=O)O"), names)
    with_h = md.descriptor_vector(Chem.AddHs(Chem.MolFromSmiles("CC(=O)O")), names)
    np.testing.assert_allclose(with_h, plain, equal_nan=True)


def test_failing_and_infinite_descriptors_are_nan(monkeypatch):
    def broken(mol):
        raise ValueError("no value")

    monkeypatch.setitem(md._FUNCTIONS, "MolWt", broken)
    monkeypatch.setitem(md._FUNCTIONS, "TPSA", lambda mol: math.inf)
    md._plan.cache_clear()
    try:
        values = md.descriptor_vector(Chem.MolFromSmiles("CCO"), ["MolWt", "TPSA", "NumHDonors"])
    finally:
        md._plan.cache_clear()
    assert math.isnan(values[0]) and math.isnan(values[1]) and values[2] == 1


def test_sets():
    everything, fast = md.descriptor_names("all"), md.descriptor_names("fast")
    assert everything == [name for name, _ in Descriptors._descList]
    assert set(fast) < set(everything) and not set(fast) & set(md.SLOW_DESCRIPTORS)
    assert fast == [n for n in everything if n not in md.SLOW_DESCRIPTORS]  # RDKit's order kept
    assert {"qed", "BCUT2D_MWHI", "Ipc", "Chi1"} <= set(md.SLOW_DESCRIPTORS) and len(fast) >= 180
    assert md.descriptor_names() == fast
    with pytest.raises(ConfigError, match="unknown molecule descriptor set 'fastest'.*all, fast"):
        md.descriptor_names("fastest")
    with pytest.raises(ConfigError, match="MolWeight"):
        md.descriptor_vector(Chem.MolFromSmiles("C"), ["MolWeight"])


def test_matrix_rows_follow_the_smiles_and_a_bad_smiles_is_a_nan_row():
    smiles = ["CCO", "not a smiles", "c1ccccc1", ""]
    matrix = md.descriptor_matrix(smiles, ["MolWt", "RingCount"])
    assert matrix.shape == (4, 2) and matrix.dtype == np.float64
    assert matrix[0, 0] == pytest.approx(46.069, abs=1e-3) and matrix[2, 1] == 1
    assert np.isnan(matrix[1]).all() and np.isnan(matrix[3]).all()
    assert md.descriptor_matrix(["CCO"]).shape == (1, len(md.descriptor_names("fast")))
    assert md.descriptor_matrix([], ["MolWt"]).shape == (0, 1)
    with pytest.raises(ConfigError, match="processes"):
        md.descriptor_matrix(smiles, ["MolWt"], processes=0)


def test_matrix_in_two_processes_equals_one():
    smiles = [*MOLECULES, "xyz"] * 4
    one = md.descriptor_matrix(smiles, processes=1)
    two = md.descriptor_matrix(smiles, processes=2)
    np.testing.assert_array_equal(one, two)


# ------------------------------------------------------------------ featurisation and caching


def _smi(tmp_path: Path, smiles: list[str]) -> Path:
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(smiles) + "\n")
    return path


def test_cache_key_covers_the_descriptor_set(tmp_path):
    path = _smi(tmp_path, MOLECULES)
    keys = {}
    for name in (None, "fast", "all"):
        config = DataConfig(path=str(path), descriptors=name)
        entries = MOLECULE_RECIPE.cache_entries(resolve_source(config), config)
        keys[name] = cache_key(entries)
        assert ("descriptors" in entries) == (name is not None)
        if name is not None:
            assert entries["descriptors"]["set"] == name
            assert entries["descriptors"]["names"] == md.descriptor_names(name)
    assert len(set(keys.values())) == 3
    bad = DataConfig(path=str(path), descriptors="brep")
    with pytest.raises(ConfigError, match="'brep'"):
        MOLECULE_RECIPE.cache_entries(resolve_source(bad), bad)


def test_built_graphs_carry_raw_descriptors(tmp_path):
    path = _smi(tmp_path, MOLECULES)
    plain = load_dataset(DataConfig(path=str(path)), tmp_path / "cache", progress=False, verbose=False)
    assert getattr(plain[0], "descriptors", None) is None
    config = DataConfig(path=str(path), descriptors="all")
    data = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    names = md.descriptor_names("all")
    for i, smiles in enumerate(MOLECULES):
        row = data[i].descriptors
        assert row.dtype == torch.float32 and row.shape == (1, len(names))
        expected = md.descriptor_vector(Chem.MolFromSmiles(smiles), names)
        np.testing.assert_allclose(row[0].numpy(), expected.astype(np.float32), rtol=1e-6, equal_nan=True)
    again = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)  # from the cache
    assert again.report.from_cache and torch.equal(again.store.t["descriptors"].isnan(),
                                                   data.store.t["descriptors"].isnan())


def test_prepared_shards_carry_descriptors_through_workers_and_duplicates(tmp_path):
    smiles = [*MOLECULES, "CCO", "OCC", *MOLECULES[1:3]]  # duplicates, one written differently
    path = _smi(tmp_path, smiles)
    config = DataConfig(path=str(path), descriptors="fast", duplicates="reject", on_error="skip")
    report = prepare_shards(resolve_source(config), config, tmp_path / "shards", workers=2, shard_size=4,
                            progress=False)
    assert report.kept == len(MOLECULES) and report.skipped == 4
    sharded = ShardedDataset(tmp_path / "shards")
    names = md.descriptor_names("fast")
    for i, s in enumerate(MOLECULES):
        row = sharded[i].descriptors
        expected = md.descriptor_vector(Chem.MolFromSmiles(s), names).astype(np.float32)
        np.testing.assert_allclose(row[0].numpy(), expected, rtol=1e-6, equal_nan=True)
