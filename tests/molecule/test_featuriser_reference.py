"""The featuriser's output, pinned: any change to how SMILES become graphs (a faster code path,
another RDKit) must give the same tensors and canonical SMILES as the reference, or bump
FEATURIZER_VERSION and regenerate the reference on purpose.

The reference (``featuriser_reference.json``) holds, for each SMILES with and without explicit
hydrogens, a digest of ``x``, ``edge_index``, ``edge_attr`` (shapes and values) and ``smiles``.
The SMILES are RDKit's own NCI sample (shipped with RDKit) plus hand-picked edge cases: charges,
radicals, isotopes, stereo, salts, dative bonds, dummy atoms, metals.

The featuriser computes a whole molecule at once (``graph_tensors``, with cached rows); the
tests below hold it equal to the one-atom-one-bond-at-a-time definition (``atom_features``,
``bond_features``) on real SMILES and on atoms and bonds altered at random.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from graphssl.molecule.features import FEATURIZER_VERSION

REFERENCE = Path(__file__).with_name("featuriser_reference.json")
NCI_MOLECULES = 250
EDGE_CASES = [
    "C[N+](C)(C)C", "[O-]C=O", "CC(=O)[O-].[Na+]", "[Na+]", "C", "c1ccncc1", "c1cc[nH]c1", "c1ccsc1",
    "C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O", "F/C=C/F", "F/C=C\\F", "[13CH4]", "[2H]C", "C#N", "[CH3]", "*C",
    "N->[Cu]", "[H][H]", "[H]", "[2H][2H]", "C[Si](C)(C)C", "[Fe+2].[Cl-].[Cl-]", "O=[N+]([O-])c1ccccc1",
    "CN(=O)=O", "C/C=C/C=C\\C", "[C@@H]1(F)CC[C@H](Cl)CC1", "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",
    "[CH2]C", "[C]", "C=[C]=C", "P(=O)(O)(O)O", "B1(O)OC(C)(C)C(C)(C)O1", "C1CC2CCC1C2",
    "c1cc2ccc3cccc4ccc(c1)c2c34", "S=C=S", "F[P-](F)(F)(F)(F)F", "[Pt+2]", "[U]", "[Og]", "C[S@@](=O)c1ccccc1",
    "[13C@H](F)(Cl)Br", "[H-].[Na+]", "C1CCCCCCCCCCC1", "CC(C)(C)[O-].[K+]",
]


def reference_smiles() -> list[str]:
    from rdkit import RDConfig

    nci = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    lines = [line.split()[0] for line in nci.read_text().splitlines() if line.strip()]
    return lines[:NCI_MOLECULES] + EDGE_CASES


def digest(data) -> str:
    h = hashlib.sha256()
    for tensor in (data.x, data.edge_index, data.edge_attr):
        h.update(str(tuple(tensor.shape)).encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.contiguous().numpy().tobytes())
    h.update(data.smiles.encode())
    return h.hexdigest()[:16]


def test_featuriser_output_equals_the_reference():
    from graphssl.molecule.adapter import smiles_to_data

    expected = json.loads(REFERENCE.read_text())
    assert FEATURIZER_VERSION == "1", "a new featuriser version needs a new reference"
    changed = []
    for text in reference_smiles():
        for explicit_h in (False, True):
            key = f"{int(explicit_h)} {text}"
            if digest(smiles_to_data(text, explicit_h=explicit_h)) != expected[key]:
                changed.append(key)
    assert len(expected) == 2 * len(reference_smiles())
    assert not changed, f"{len(changed)} graphs differ from the reference, e.g. {changed[:5]}"


@pytest.mark.parametrize("text", ["CCO", "c1ccccc1O", "C[C@H](N)C(=O)O"])
def test_the_digest_sees_every_part_of_a_graph(text):
    from graphssl.molecule.adapter import smiles_to_data

    base = smiles_to_data(text)
    for change in ("x", "edge_index", "edge_attr", "smiles"):
        other = smiles_to_data(text)
        if change == "smiles":
            other.smiles = other.smiles + "C"
        else:
            other[change] = other[change].clone()
            other[change].view(-1)[0] += 1
        assert digest(other) != digest(base), change


# --------------------------------------------------------------------------- the batched path

def straightforward_graph(mol):
    """(x, edge_index, edge_attr) as nested lists, one RDKit object at a time, with the
    per-object definitions ``atom_features`` / ``bond_features``."""
    from graphssl.molecule.rdkit_features import atom_features, bond_features

    x = [atom_features(mol.GetAtomWithIdx(i)) for i in range(mol.GetNumAtoms())]
    src, dst, attr = [], [], []
    for k in range(mol.GetNumBonds()):
        bond = mol.GetBondWithIdx(k)
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        src += [i, j]
        dst += [j, i]
        attr += [bond_features(bond)] * 2
    return x, [src, dst], attr


def assert_same_graph(mol, label):
    import torch

    from graphssl.molecule.rdkit_features import graph_tensors

    x, edge_index, edge_attr = graph_tensors(mol)
    want_x, want_edges, want_attr = straightforward_graph(mol)
    assert [t.dtype for t in (x, edge_index, edge_attr)] == [torch.long] * 3, label
    assert tuple(x.shape) == (mol.GetNumAtoms(), 9), label
    assert tuple(edge_index.shape) == (2, 2 * mol.GetNumBonds()), label
    assert tuple(edge_attr.shape) == (2 * mol.GetNumBonds(), 3), label
    assert x.tolist() == want_x, label
    assert edge_index.tolist() == want_edges, label
    assert edge_attr.tolist() == want_attr, label


def test_graph_tensors_of_a_small_molecule_by_hand():
    from rdkit import Chem

    from graphssl.molecule.rdkit_features import graph_tensors

    x, edge_index, edge_attr = graph_tensors(Chem.MolFromSmiles("C=CN"))
    # atomic number - 1, chirality, total degree, charge (index 5 = 0), total Hs, radicals,
    # hybridisation (SP2 = 1: the amine N conjugates with C=C), aromatic, in ring
    assert x.tolist() == [[5, 0, 3, 5, 2, 0, 1, 0, 0], [5, 0, 3, 5, 1, 0, 1, 0, 0], [6, 0, 3, 5, 2, 0, 1, 0, 0]]
    assert edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    # bond type (DOUBLE = 1, SINGLE = 0), stereo none, conjugated
    assert edge_attr.tolist() == [[1, 0, 1], [1, 0, 1], [0, 0, 1], [0, 0, 1]]
    x, edge_index, edge_attr = graph_tensors(Chem.MolFromSmiles("C=CC"))
    assert x.tolist() == [[5, 0, 3, 5, 2, 0, 1, 0, 0], [5, 0, 3, 5, 1, 0, 1, 0, 0], [5, 0, 4, 5, 3, 0, 2, 0, 0]]
    assert edge_attr.tolist() == [[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]]
    x, edge_index, edge_attr = graph_tensors(Chem.MolFromSmiles("[Na+]"))
    assert x.tolist() == [[10, 0, 0, 6, 0, 0, 5, 0, 0]]
    assert tuple(edge_index.shape) == (2, 0) and tuple(edge_attr.shape) == (0, 3)


def test_graph_tensors_equal_the_straightforward_path_on_real_and_edge_case_smiles():
    import random

    from rdkit import Chem

    smiles = reference_smiles() + [
        "C[C@H](N)C(=O)[O-].[NH4+]", "[CH2]C(=O)[O]", "[O-][n+]1ccccc1", "C[S+](C)C.[Br-]", "c1ccc2[nH]ccc2c1",
        "F/C=C/C=C\\Cl", "[C@H]1(C)CC[C@@H](C)CC1", "C1=CC=CC=C1[N+](=O)[O-]", "[Cu+2].[O-]S(=O)(=O)[O-]",
    ]
    random.Random(7).shuffle(smiles)  # the row caches fill in another order than the reference test's
    for text in smiles:
        mol = Chem.MolFromSmiles(text)
        assert_same_graph(mol, text)
        assert_same_graph(Chem.AddHs(mol), f"{text} with hydrogens")


def test_graph_tensors_equal_the_straightforward_path_on_randomly_altered_atoms_and_bonds():
    """Chiral tags, charges, radicals, hybridisations, bond types and stereo set at random,
    values outside OGB's lists (misc) included, on top of real molecules."""
    import random

    from rdkit import Chem
    from rdkit.Chem.rdchem import BondStereo, BondType, ChiralType, HybridizationType

    rng = random.Random(0)
    chiral = list(ChiralType.values.values())
    hybrid = list(HybridizationType.values.values())
    bond_types = [t for t in BondType.values.values()]
    stereo = list(BondStereo.values.values())
    base = reference_smiles()[:120]
    for round_ in range(3):
        for text in base:
            mol = Chem.RWMol(Chem.MolFromSmiles(text))
            for atom in mol.GetAtoms():
                if rng.random() < 0.3:
                    atom.SetChiralTag(rng.choice(chiral))
                if rng.random() < 0.2:
                    atom.SetFormalCharge(rng.randint(-7, 7))
                if rng.random() < 0.2:
                    atom.SetNumRadicalElectrons(rng.randint(0, 6))
                if rng.random() < 0.2:
                    atom.SetHybridization(rng.choice(hybrid))
                if rng.random() < 0.1:
                    atom.SetIsAromatic(not atom.GetIsAromatic())
            for bond in mol.GetBonds():
                if rng.random() < 0.2:
                    bond.SetBondType(rng.choice(bond_types))
                if rng.random() < 0.2:
                    value = rng.choice(stereo)
                    if value in (BondStereo.STEREOCIS, BondStereo.STEREOTRANS):
                        # RDKit wants a reference atom on each side first
                        ends = [[n.GetIdx() for n in atom.GetNeighbors() if n.GetIdx() != other.GetIdx()]
                                for atom, other in ((bond.GetBeginAtom(), bond.GetEndAtom()),
                                                    (bond.GetEndAtom(), bond.GetBeginAtom()))]
                        if not all(ends):
                            continue
                        bond.SetStereoAtoms(ends[0][0], ends[1][0])
                    bond.SetStereo(value)
                if rng.random() < 0.1:
                    bond.SetIsConjugated(not bond.GetIsConjugated())
            assert_same_graph(mol, f"round {round_}: altered {text}")
            # the unaltered molecule after the altered one: no cached row may carry over
            assert_same_graph(Chem.MolFromSmiles(text), f"round {round_}: {text}")


def test_chiral_charged_and_radical_atoms_never_take_a_plain_atoms_cached_row():
    from rdkit import Chem

    from graphssl.molecule.rdkit_features import graph_tensors

    def charged(mol):  # the centre of neopentane, +1, its key (C, degree 4, no H, SP3) unchanged
        mol = Chem.RWMol(mol)
        mol.GetAtomWithIdx(1).SetFormalCharge(1)
        return mol

    def radical(mol):
        mol = Chem.RWMol(mol)
        mol.GetAtomWithIdx(1).SetNumRadicalElectrons(1)
        return mol

    # the marked atom has the same key (atomic number, degree, Hs, hybridisation, aromatic, ring)
    # in both molecules of a pair, and differs only in chirality, charge or radicals
    for plain, make_unusual, column, value in [
        ("CC(N)CC", lambda mol: Chem.MolFromSmiles("C[C@H](N)CC"), 1, 2),   # CHI_TETRAHEDRAL_CCW
        ("CC(N)CC", lambda mol: Chem.MolFromSmiles("C[C@@H](N)CC"), 1, 1),  # CHI_TETRAHEDRAL_CW
        ("CC(C)(C)C", charged, 3, 6),                                         # formal charge +1
        ("CC(C)(C)C", radical, 5, 1),                                         # one radical electron
    ]:
        plain_mol = Chem.MolFromSmiles(plain)
        unusual_mol = make_unusual(plain_mol)
        for first, second in ((plain_mol, unusual_mol), (unusual_mol, plain_mol)):
            for mol in (first, second):
                assert_same_graph(mol, plain)
        assert graph_tensors(unusual_mol)[0][1, column].item() == value, plain
        assert graph_tensors(plain_mol)[0][1, column].item() != value, plain


def test_more_than_a_thousand_charged_atoms_all_keep_their_charge():
    from rdkit import Chem

    from graphssl.molecule.rdkit_features import graph_tensors

    # RDKit's substructure search stops at 1,000 matches unless told otherwise; charged methane
    # carbons share their key with plain methane's, whose row is cached by the first call
    plain = Chem.MolFromSmiles(".".join(["C"] * 1200))
    assert graph_tensors(plain)[0][:, 3].tolist() == [5] * 1200  # formal charge 0
    mol = Chem.RWMol(plain)
    for atom in mol.GetAtoms():
        atom.SetFormalCharge(1)
    assert graph_tensors(mol)[0][:, 3].tolist() == [6] * 1200  # formal charge +1
