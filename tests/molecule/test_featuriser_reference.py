"""The featuriser's output, pinned: any change to how SMILES become graphs (a faster code path,
another RDKit) must give the same tensors and canonical SMILES as the reference, or bump
FEATURIZER_VERSION and regenerate the reference on purpose.

The reference (``featuriser_reference.json``) holds, for each SMILES with and without explicit
hydrogens, a digest of ``x``, ``edge_index``, ``edge_attr`` (shapes and values) and ``smiles``.
The SMILES are RDKit's own NCI sample (shipped with RDKit) plus hand-picked edge cases: charges,
radicals, isotopes, stereo, salts, dative bonds, dummy atoms, metals.
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
