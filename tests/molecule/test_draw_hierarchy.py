"""Pictures of a molecule's Hi-GMAE hierarchy: the colours follow the objective's own coarsening."""

from __future__ import annotations

import inspect
import struct

import pytest
import torch

pytest.importorskip("rdkit")

from graphssl.cli import main  # noqa: E402
from graphssl.core.config import ModelConfig  # noqa: E402
from graphssl.core.errors import ConfigError, MoleculeError  # noqa: E402
from graphssl.molecule import draw  # noqa: E402
from graphssl.molecule.adapter import mol_from_smiles, smiles_to_data  # noqa: E402
from graphssl.molecule.features import molecule_feature_spec  # noqa: E402
from graphssl.nn import build_encoder  # noqa: E402
from graphssl.objectives import build_objective  # noqa: E402
from graphssl.objectives.higmae import HiGMAE  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

IBUPROFEN = "CC(C)Cc1ccc(C(C)C(=O)O)cc1"  # 15 heavy atoms


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])  # IHDR: width, height


def test_defaults_are_those_of_the_higmae_objective():
    signature = inspect.signature(HiGMAE).parameters
    assert draw.HIGMAE_COARSENING == {key: signature[key].default for key in draw.HIGMAE_COARSENING}


def test_assignments_are_the_objectives_coarsening_composed_upwards():
    encoder = build_encoder(ModelConfig(backbone="gine", hidden=16, num_layers=1), molecule_feature_spec())
    objective = build_objective("higmae", encoder)  # objective.name: higmae with no options
    hierarchy = objective.transform(smiles_to_data(IBUPROFEN))
    levels = draw.hierarchy_assignments(IBUPROFEN)
    assert len(levels) == 3
    assert levels[0].tolist() == list(range(15))
    assert torch.equal(levels[1], hierarchy.cluster_1)
    assert torch.equal(levels[2], hierarchy.cluster_2[hierarchy.cluster_1])
    # ratio 0.25 removes floor(n / 4) nodes per level: 15 -> 12 -> 9
    assert [int(a.max()) + 1 for a in levels] == [15, 12, 9]
    # a level-1 supernode is one atom or a bonded pair (a matching contracts edges)
    mol = mol_from_smiles(IBUPROFEN)
    for cluster in range(12):
        atoms = (levels[1] == cluster).nonzero().view(-1).tolist()
        assert len(atoms) in (1, 2)
        if len(atoms) == 2:
            assert mol.GetBondBetweenAtoms(*atoms) is not None


def test_colours_follow_the_supernodes_at_every_level():
    mol = mol_from_smiles(IBUPROFEN)
    for level, assignment in enumerate(draw.hierarchy_assignments(IBUPROFEN, levels=3)):
        panel = draw.level_highlights(mol, level, assignment)
        clusters = assignment.tolist()
        assert set(panel.atom_colors) == set(range(15))
        for a in range(15):
            for b in range(15):
                same_colour = panel.atom_colors[a] == panel.atom_colors[b]
                assert same_colour == (clusters[a] == clusters[b])
        assert len(set(panel.atom_colors.values())) == len(set(clusters))
        assert panel.legend == f"level {level}: {len(set(clusters))} supernodes"
        for bond in mol.GetBonds():  # bonds inside a supernode carry its colour, the others none
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            if clusters[i] == clusters[j]:
                assert panel.bond_colors[bond.GetIdx()] == panel.atom_colors[i]
            else:
                assert bond.GetIdx() not in panel.bond_colors
    assert len(set(draw.supernode_colors(200))) == 200


def test_the_drawer_receives_these_colours_and_the_png_is_written(tmp_path, monkeypatch):
    seen = {}
    real = draw.rdMolDraw2D.MolDraw2DCairo

    class Recording:
        def __init__(self, *size):
            self.inner = real(*size)

        def drawOptions(self):
            return self.inner.drawOptions()

        def DrawMolecules(self, mols, **kwargs):
            seen.update(kwargs, count=len(mols))
            self.inner.DrawMolecules(mols, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(draw.rdMolDraw2D, "MolDraw2DCairo", Recording)
    path = draw.draw_hierarchy(IBUPROFEN, out=tmp_path / "h.png", panel_size=(300, 250))
    assert path == tmp_path / "h.png"
    assert _png_size(path.read_bytes()) == (900, 250)  # three panels side by side
    assert seen["count"] == 3 and seen["legends"] == ["level 0: 15 supernodes", "level 1: 12 supernodes",
                                                      "level 2: 9 supernodes"]
    for colours, assignment in zip(seen["highlightAtomColors"], draw.hierarchy_assignments(IBUPROFEN)):
        assert len(set(colours.values())) == int(assignment.max()) + 1
    monkeypatch.undo()
    assert _png_size(draw.draw_hierarchy("c1ccccc1", levels=1)) == (800, 340)  # bytes without out


def test_invalid_smiles_and_options_are_named(tmp_path, capsys):
    with pytest.raises(MoleculeError, match=r"Invalid SMILES 'C1CC\('"):
        draw.draw_hierarchy("C1CC(")
    with pytest.raises(ConfigError, match="levels must be .* at least 1, got 0"):
        draw.hierarchy_assignments("CCO", levels=0)
    with pytest.raises(ConfigError, match="unknown coarsener 'louvain'"):
        draw.hierarchy_assignments("CCO", coarsener="louvain")
    out = tmp_path / "bad.png"
    assert main(["show", "hierarchy", "C1CC(", "--out", str(out)]) == 2
    assert "Invalid SMILES 'C1CC('" in capsys.readouterr().err and not out.exists()


def test_cli_draws_the_hierarchy(tmp_path, capsys):
    out = tmp_path / "hierarchy.png"
    assert main(["show", "hierarchy", IBUPROFEN, "--levels", "3", "--coarsener", "chemistry", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert _png_size(out.read_bytes()) == (1600, 340)  # levels 0..3
