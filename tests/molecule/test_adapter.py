"""Tests for graphssl.molecule.features and graphssl.molecule.adapter.

Expected feature values are recomputed here straight from RDKit with plain
category lists and ``list.index``, independent of the adapter's look-up dicts.
"""

from __future__ import annotations

import gzip
import shutil
import time

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers
from rdkit.Chem.rdchem import BondStereo, BondType, ChiralType

from graphssl.core.errors import MoleculeError
from graphssl.molecule.adapter import (
    SDFRecord,
    iter_sdf,
    mol_from_smiles,
    mol_to_data,
    smiles_to_data,
)
from graphssl.molecule.features import (
    ATOM_FEATURE_DIMS,
    ATOM_FEATURE_NAMES,
    BOND_FEATURE_DIMS,
    BOND_FEATURE_NAMES,
    FEATURIZER_VERSION,
    NUM_ATOM_TYPES,
)
from graphssl.molecule.rdkit_features import atom_features, bond_features

# ----------------------------------------------------------------- reference

CHIRALITY = ["CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER"]
HYBRIDIZATION = ["SP", "SP2", "SP3", "SP3D", "SP3D2"]
BOND_TYPE = ["SINGLE", "DOUBLE", "TRIPLE", "AROMATIC"]
BOND_STEREO = ["STEREONONE", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS", "STEREOANY"]


def _index(options: list, value, misc: int) -> int:
    return options.index(value) if value in options else misc


def expected_atom(atom: Chem.Atom) -> list[int]:
    """OGB atom features computed the slow, obvious way."""
    return [
        _index(list(range(1, 119)), atom.GetAtomicNum(), 118),
        _index(CHIRALITY, str(atom.GetChiralTag()), 4),
        _index(list(range(11)), atom.GetTotalDegree(), 11),
        _index(list(range(-5, 6)), atom.GetFormalCharge(), 11),
        _index(list(range(9)), atom.GetTotalNumHs(), 9),
        _index(list(range(5)), atom.GetNumRadicalElectrons(), 5),
        _index(HYBRIDIZATION, str(atom.GetHybridization()), 5),
        int(atom.GetIsAromatic()),
        int(atom.IsInRing()),
    ]


def expected_bond(bond: Chem.Bond) -> list[int]:
    """OGB bond features computed the slow, obvious way."""
    return [
        _index(BOND_TYPE, str(bond.GetBondType()), 4),
        _index(BOND_STEREO, str(bond.GetStereo()), 5),
        int(bond.GetIsConjugated()),
    ]


def assert_graph_matches(data, mol: Chem.Mol) -> None:
    """Check shapes, dtypes, edge pairing and every feature of ``data`` against ``mol``."""
    n, m = mol.GetNumAtoms(), mol.GetNumBonds()
    assert data.x.dtype == torch.long and data.x.shape == (n, 9)
    assert data.edge_index.dtype == torch.long and data.edge_index.shape == (2, 2 * m)
    assert data.edge_attr.dtype == torch.long and data.edge_attr.shape == (2 * m, 3)
    assert data.num_nodes == n
    assert data.x.tolist() == [expected_atom(a) for a in mol.GetAtoms()]
    for k, bond in enumerate(mol.GetBonds()):
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        assert data.edge_index[:, 2 * k].tolist() == [i, j]
        assert data.edge_index[:, 2 * k + 1].tolist() == [j, i]
        assert data.edge_attr[2 * k].tolist() == expected_bond(bond)
        assert data.edge_attr[2 * k + 1].tolist() == expected_bond(bond)
    for column, dim in enumerate(ATOM_FEATURE_DIMS):
        assert 0 <= data.x[:, column].min().item() <= data.x[:, column].max().item() < dim
    for column, dim in enumerate(BOND_FEATURE_DIMS):
        if m:
            assert 0 <= data.edge_attr[:, column].min() <= data.edge_attr[:, column].max() < dim


def edge_columns(data, i: int, j: int) -> list[int]:
    """Columns of the directed edges between atoms i and j (either direction)."""
    src, dst = data.edge_index
    hits = ((src == i) & (dst == j)) | ((src == j) & (dst == i))
    return hits.nonzero().flatten().tolist()


def count_components(num_nodes: int, edge_index: torch.Tensor) -> int:
    parent = list(range(num_nodes))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edge_index.t().tolist():
        parent[find(a)] = find(b)
    return len({find(a) for a in range(num_nodes)})


def peg(units: int) -> str:
    return "O" + "CCO" * units


def polyalanine(residues: int) -> str:
    return "N" + "[C@@H](C)C(=O)N" * (residues - 1) + "[C@@H](C)C(=O)O"


TRICKY = [
    "C[N+](C)(C)C",
    "[O-]C=O",
    "CC(=O)[O-].[Na+]",
    "[Na+]",
    "C",
    "c1ccncc1",
    "c1cc[nH]c1",
    "c1ccsc1",
    "C[C@H](N)C(=O)O",
    "C[C@@H](N)C(=O)O",
    "F/C=C/F",
    "F/C=C\\F",
    "[13CH4]",
    "[2H]C",
    "C#N",
    "[CH3]",  # radical
    "*C",  # dummy atom -> misc atomic number
    "N->[Cu]",  # dative bond -> misc bond type
]


# ----------------------------------------------------------------- features module


def test_feature_constants() -> None:
    assert ATOM_FEATURE_DIMS == (119, 5, 12, 12, 10, 6, 6, 2, 2)
    assert BOND_FEATURE_DIMS == (5, 6, 2)
    assert NUM_ATOM_TYPES == 119
    assert len(ATOM_FEATURE_NAMES) == 9 and len(BOND_FEATURE_NAMES) == 3
    assert isinstance(FEATURIZER_VERSION, str) and FEATURIZER_VERSION


def test_out_of_list_values_map_to_misc() -> None:
    mol = Chem.RWMol(Chem.MolFromSmiles("CC=CC"))
    atom = mol.GetAtomWithIdx(0)
    atom.SetChiralTag(ChiralType.CHI_TETRAHEDRAL)  # newer RDKit tag, not in OGB's list
    atom.SetFormalCharge(7)
    feats = atom_features(atom)
    assert feats[1] == 4 and feats[3] == 11
    bond = mol.GetBondWithIdx(1)
    bond.SetStereo(BondStereo.STEREOATROPCW)
    assert bond_features(bond)[1] == 5  # no misc in OGB's stereo list: last entry
    bond.SetBondType(BondType.QUADRUPLE)
    assert bond_features(bond)[0] == 4
    na = Chem.MolFromSmiles("[Na+]").GetAtomWithIdx(0)  # hybridisation S
    assert atom_features(na)[6] == 5


def test_features_agree_on_a_drug_like_set() -> None:
    for smi in ["CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "O=S(=O)(N)c1ccc(Cl)cc1"]:
        mol = Chem.MolFromSmiles(smi)
        assert [atom_features(a) for a in mol.GetAtoms()] == [expected_atom(a) for a in mol.GetAtoms()]
        assert [bond_features(b) for b in mol.GetBonds()] == [expected_bond(b) for b in mol.GetBonds()]


# ----------------------------------------------------------------- SMILES -> graph


@pytest.mark.parametrize("smiles", TRICKY)
def test_tricky_molecules_match_rdkit(smiles: str) -> None:
    data = smiles_to_data(smiles)
    reference = Chem.MolFromSmiles(smiles)
    assert_graph_matches(data, reference)
    assert data.smiles == Chem.MolToSmiles(reference)
    assert "pos" not in data


def test_charged_atoms() -> None:
    x = smiles_to_data("C[N+](C)(C)C").x
    assert x[1].tolist()[:4] == [6, 0, 4, 6]  # N, degree 4, charge +1
    x = smiles_to_data("[O-]C=O").x
    assert x[0, 3].item() == 4  # charge -1


def test_single_atoms_have_empty_edge_tensors() -> None:
    for smiles, z in [("[Na+]", 11), ("C", 6)]:
        data = smiles_to_data(smiles)
        assert data.x.shape == (1, 9) and data.x[0, 0].item() == z - 1
        assert data.edge_index.shape == (2, 0) and data.edge_index.dtype == torch.long
        assert data.edge_attr.shape == (0, 3) and data.edge_attr.dtype == torch.long
    assert smiles_to_data("C").x[0, 4].item() == 4  # four implicit Hs


def test_salt_gives_two_components() -> None:
    data = smiles_to_data("CC(=O)[O-].[Na+]")
    assert count_components(data.num_nodes, data.edge_index) == 2
    assert data.x[4].tolist()[:4] == [10, 0, 0, 6]  # Na+, no neighbours


def test_aromatic_heterocycles() -> None:
    pyridine = smiles_to_data("c1ccncc1").x
    assert pyridine[3].tolist() == [6, 0, 2, 5, 0, 0, 1, 1, 1]
    pyrrole = smiles_to_data("c1cc[nH]c1").x
    assert pyrrole[3].tolist() == [6, 0, 3, 5, 1, 0, 1, 1, 1]
    thiophene = smiles_to_data("c1ccsc1")
    assert thiophene.x[3, 0].item() == 15 and thiophene.x[3, 7].item() == 1
    assert set(thiophene.edge_attr[:, 0].tolist()) == {3}  # all aromatic bonds


def test_enantiomers_differ_in_chirality() -> None:
    left = smiles_to_data("C[C@H](N)C(=O)O").x[1, 1].item()
    right = smiles_to_data("C[C@@H](N)C(=O)O").x[1, 1].item()
    assert {left, right} == {1, 2}
    assert smiles_to_data("CC(N)C(=O)O").x[1, 1].item() == 0


def test_e_and_z_double_bonds_differ() -> None:
    trans = smiles_to_data("F/C=C/F")
    cis = smiles_to_data("F/C=C\\F")
    columns = edge_columns(trans, 1, 2)
    assert columns == edge_columns(cis, 1, 2) and len(columns) == 2
    assert trans.edge_attr[columns, 1].tolist() == [2, 2]  # STEREOE
    assert cis.edge_attr[columns, 1].tolist() == [1, 1]  # STEREOZ
    assert trans.edge_attr[columns, 0].tolist() == [1, 1]  # double


def test_isotopes_keep_atomic_number() -> None:
    assert smiles_to_data("[13CH4]").x[0, 0].item() == 5
    deuterated = smiles_to_data("[2H]C")
    assert deuterated.x[:, 0].tolist() == [0, 5]
    assert deuterated.edge_index.shape == (2, 2)
    assert deuterated.smiles == "[2H]C"


def test_explicit_hydrogens_become_nodes() -> None:
    methane = smiles_to_data("C", explicit_h=True)
    assert methane.x.shape == (5, 9) and methane.edge_index.shape == (2, 8)
    assert methane.x[:, 0].tolist() == [5, 0, 0, 0, 0]
    assert methane.smiles == "C"
    assert_graph_matches(methane, Chem.AddHs(Chem.MolFromSmiles("C")))
    ethanol = smiles_to_data("CCO", explicit_h=True)
    assert ethanol.num_nodes == 9 and ethanol.edge_index.shape == (2, 16)


@pytest.mark.parametrize("smiles", [peg(400), polyalanine(150)])
def test_very_large_molecules(smiles: str) -> None:
    data = smiles_to_data(smiles)
    reference = Chem.MolFromSmiles(smiles)
    assert reference.GetNumAtoms() > 700
    assert_graph_matches(data, reference)
    assert count_components(data.num_nodes, data.edge_index) == 1


def test_polyalanine_keeps_every_stereocentre() -> None:
    x = smiles_to_data(polyalanine(150)).x
    assert int((x[:, 1] != 0).sum()) == 150


# ----------------------------------------------------------------- Mol input


def test_mol_to_data_leaves_input_untouched() -> None:
    mol = Chem.MolFromSmiles("CCO")
    data = mol_to_data(mol, explicit_h=True, conformer=True)
    assert data.num_nodes == 9 and data.pos.shape == (9, 3)
    assert mol.GetNumAtoms() == 3 and mol.GetNumConformers() == 0


def test_mol_to_data_sanitises_a_raw_mol() -> None:
    raw = Chem.MolFromSmiles("F/C=C/F", sanitize=False)
    data = mol_to_data(raw)
    assert_graph_matches(data, Chem.MolFromSmiles("F/C=C/F"))
    assert raw.NeedsUpdatePropertyCache()  # the copy was sanitised, not the input


def test_mol_to_data_rejects_bad_mols() -> None:
    with pytest.raises(MoleculeError, match="no atoms"):
        mol_to_data(Chem.Mol())
    with pytest.raises(MoleculeError, match="str"):
        mol_to_data("CCO")  # type: ignore[arg-type]
    raw = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)
    with pytest.raises(MoleculeError, match="valence"):
        mol_to_data(raw, smiles="my-pentavalent-carbon")
    with pytest.raises(MoleculeError, match="my-pentavalent-carbon"):
        mol_to_data(raw, smiles="my-pentavalent-carbon")


# ----------------------------------------------------------------- conformers


def bond_length(pos: torch.Tensor, i: int, j: int) -> float:
    return float((pos[i] - pos[j]).norm())


def test_conformer_is_finite_deterministic_and_plausible() -> None:
    first = smiles_to_data("CCO", conformer=True, seed=7)
    second = smiles_to_data("CCO", conformer=True, seed=7)
    assert first.pos.dtype == torch.float32 and first.pos.shape == (3, 3)
    assert torch.isfinite(first.pos).all()
    assert torch.equal(first.pos, second.pos)
    assert abs(bond_length(first.pos, 0, 1) - 1.5) < 0.15
    assert abs(bond_length(first.pos, 1, 2) - 1.43) < 0.15  # C-O


def test_conformer_with_explicit_hydrogens() -> None:
    data = smiles_to_data("C", explicit_h=True, conformer=True)
    assert data.pos.shape == (5, 3)
    for h in range(1, 5):
        assert abs(bond_length(data.pos, 0, h) - 1.09) < 0.1


@pytest.mark.parametrize("smiles", ["CC(=O)[O-].[Na+]", "[Na+]", "c1ccncc1.O", "C[Se]C"])
def test_conformer_for_fragments_single_atoms_and_non_mmff(smiles: str) -> None:
    data = smiles_to_data(smiles, conformer=True)
    assert data.pos.shape == (data.num_nodes, 3)
    assert torch.isfinite(data.pos).all()


def test_conformer_falls_back_to_random_coords(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rdDistGeom.EmbedMolecule
    calls: list[bool] = []

    def flaky(mol, params):
        calls.append(params.useRandomCoords)
        return -1 if len(calls) == 1 else real(mol, params)

    monkeypatch.setattr(rdDistGeom, "EmbedMolecule", flaky)
    data = smiles_to_data("CCCC", conformer=True)
    assert calls == [False, True]
    assert torch.isfinite(data.pos).all()


def test_conformer_failure_names_the_smiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rdDistGeom, "EmbedMolecule", lambda mol, params: -1)
    with pytest.raises(MoleculeError, match="CCCC"):
        smiles_to_data("CCCC", conformer=True)


def test_conformer_of_a_long_chain_is_refused_at_once_naming_the_option() -> None:
    # before: a 3,000-carbon chain ran past 150 s at 3.3 GB in ETKDG's set-up
    start = time.perf_counter()
    with pytest.raises(MoleculeError, match=r"9002 atoms with hydrogens, more than data.conformer_max_atoms=500"):
        smiles_to_data("C" * 3000, conformer=True)
    assert time.perf_counter() - start < 10
    with pytest.raises(MoleculeError, match=r"data.conformer_max_atoms=10\b"):
        smiles_to_data("CCCC", conformer=True, conformer_max_atoms=10)  # 14 atoms with hydrogens
    assert smiles_to_data("CCCC", conformer=True, conformer_max_atoms=14).pos.shape == (4, 3)
    assert smiles_to_data("C" * 3000).num_nodes == 3000  # the graph alone is no problem


def test_conformer_embedding_has_a_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    budgets: list[int] = []

    def slow(mol, params):
        budgets.append(params.timeout)
        time.sleep(1.05)
        return -1  # what RDKit returns when its timeout is hit

    monkeypatch.setattr(rdDistGeom, "EmbedMolecule", slow)
    with pytest.raises(MoleculeError, match=r"ran past data.conformer_timeout=1 s"):
        smiles_to_data("CCCC", conformer=True, conformer_timeout=1)
    assert budgets == [1]  # no second, random-coordinates attempt once the budget is spent
    budgets.clear()
    with pytest.raises(MoleculeError, match="also with random starting coordinates"):
        smiles_to_data("CCCC", conformer=True, conformer_timeout=None)
    assert budgets == [0, 0]  # 0: RDKit's "no limit"


def test_conformer_limit_is_a_skip_reason_in_a_build(tmp_path) -> None:
    from graphssl.core.config import DataConfig
    from graphssl.data.dataset import load_dataset

    path = tmp_path / "chain.smi"
    path.write_text(f"CCO\n{'C' * 3000}\nCCN\n")
    dataset = load_dataset(DataConfig(path=str(path), conformer=True, on_error="skip"), tmp_path / "cache",
                           progress=False, verbose=False)
    assert dataset.smiles == ["CCO", "CCN"] and dataset[0].pos.shape == (3, 3)
    [skipped] = dataset.report.skipped
    assert skipped.index == 1 and "data.conformer_max_atoms=500" in skipped.reason


def test_mmff_is_applied_when_parametrised() -> None:
    # Reproduce the pipeline by hand: ETKDGv3 with the same seed, then MMFF.
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCC"))
    assert rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol)
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = 3
    rdDistGeom.EmbedMolecule(mol, params)
    etkdg_only = torch.tensor(mol.GetConformer().GetPositions()[:4], dtype=torch.float32)
    rdForceFieldHelpers.MMFFOptimizeMolecule(mol, maxIters=500)
    minimised = torch.tensor(mol.GetConformer().GetPositions()[:4], dtype=torch.float32)

    data = smiles_to_data("CCCC", conformer=True, seed=3)
    assert torch.allclose(data.pos, minimised, atol=1e-3)
    assert not torch.allclose(data.pos, etkdg_only, atol=1e-3)


# ----------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("C1CC", "ring"),
        ("C(C)(C)(C)(C)C", "valence"),
        ("", "empty"),
        ("   ", "empty"),
        ("xyz", "pars"),
        (None, "None"),
        (42, "int"),
    ],
)
def test_invalid_smiles_raise_molecule_error(bad, reason: str, capfd) -> None:
    with pytest.raises(MoleculeError) as info:
        smiles_to_data(bad)
    message = str(info.value)
    assert str(bad) in message
    assert reason.lower() in message.lower()
    assert isinstance(info.value, ValueError)
    # RDKit writes to C++ stderr; nothing may reach the terminal.
    assert capfd.readouterr().err == ""


def test_mol_from_smiles_returns_sanitised_mol() -> None:
    mol = mol_from_smiles("  c1ccccc1O\n")
    assert mol.GetNumAtoms() == 7 and not mol.NeedsUpdatePropertyCache()


# ----------------------------------------------------------------- SDF


PENTAVALENT_BLOCK = "\n".join(
    [
        "pentavalent",
        "     handmade",
        "",
        "  6  5  0  0  0  0  0  0  0  0999 V2000",
        *[f"{float(i):10.4f}{0.0:10.4f}{0.0:10.4f} C   0  0  0  0  0  0  0  0  0  0  0  0" for i in range(6)],
        *[f"  1{k:3d}  1  0" for k in range(2, 7)],
        "M  END",
        "> <activity>",
        "9.9",
        "",
        "> <source>",
        "hand written",
        "",
        "$$$$",
        "",
    ]
)
GARBAGE_BLOCK = "garbage\n\n\nnot a counts line\nM  END\n> <activity>\n0\n\n$$$$\n"
SDF_SMILES = ["CCO", "c1ccncc1", "C[C@H](N)C(=O)O"]


def write_sdf(path) -> None:
    writer = Chem.SDWriter(str(path))
    for i, smiles in enumerate(SDF_SMILES):
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", f"mol{i}")
        mol.SetProp("activity", f"{i * 1.5}")
        mol.SetProp("note", f"first line {i}\nsecond line")
        writer.write(mol)
    writer.close()
    with open(path, "a") as handle:
        handle.write(PENTAVALENT_BLOCK + GARBAGE_BLOCK)


def test_sdf_round_trip(tmp_path, capfd) -> None:
    path = tmp_path / "mols.sdf"
    write_sdf(path)
    records = list(iter_sdf(path))
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    assert all(isinstance(r, SDFRecord) for r in records)

    for i, (record, smiles) in enumerate(zip(records[:3], SDF_SMILES)):
        assert record.error is None and record.mol is not None
        assert record.props == {"activity": f"{i * 1.5}", "note": f"first line {i}\nsecond line"}
        assert record.mol.GetProp("_Name") == f"mol{i}"
        assert Chem.MolToSmiles(record.mol) == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
        # Stereo read from the wedge bonds must survive into the features.
        assert mol_to_data(record.mol).x.tolist() == smiles_to_data(smiles).x.tolist()

    broken = records[3]
    assert broken.mol is None
    assert broken.props == {"activity": "9.9", "source": "hand written"}
    assert "record 3" in broken.error and "mols.sdf" in broken.error
    assert "valence" in broken.error.lower()

    garbage = records[4]
    assert garbage.mol is None and garbage.error and "record 4" in garbage.error
    assert garbage.props == {"activity": "0"}
    assert capfd.readouterr().err == ""


def test_sdf_props_match_rdkit_supplier(tmp_path) -> None:
    path = tmp_path / "mols.sdf"
    write_sdf(path)
    supplied = [m for m in Chem.SDMolSupplier(str(path)) if m is not None]
    ours = [r for r in iter_sdf(path) if r.mol is not None]
    assert [r.props for r in ours] == [
        {k: m.GetProp(k) for k in m.GetPropNames()} for m in supplied
    ]


def test_sdf_reads_gzip(tmp_path) -> None:
    plain = tmp_path / "mols.sdf"
    write_sdf(plain)
    packed = tmp_path / "mols.sdf.gz"
    with open(plain, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert [r.props for r in iter_sdf(packed)] == [r.props for r in iter_sdf(plain)]
