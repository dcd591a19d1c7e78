"""Pictures of a molecule's Hi-GMAE coarsening hierarchy, drawn with RDKit.

One panel per level: level 0 is the molecule itself (every atom its own supernode), level ``l``
colours the atoms by the level-``l`` supernode they end up in, following the assignments
``cluster_1 .. cluster_l`` of :class:`graphssl.transforms.coarsen.Coarsen` composed from the
atoms upwards. The molecule is featurised by the same adapter as the training data and coarsened
by the same transform as ``objective.name: higmae``, so the picture is the hierarchy its
pretraining sees.
"""

from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from rdkit import Chem
from rdkit.Chem import rdDepictor
from rdkit.Chem.Draw import rdMolDraw2D

from graphssl.core.errors import ConfigError
from graphssl.core.io import atomic_write_bytes
from graphssl.molecule.adapter import mol_from_smiles, mol_to_data
from graphssl.transforms.coarsen import METHODS, Coarsen

__all__ = ["HIGMAE_COARSENING", "LevelHighlights", "draw_hierarchy", "hierarchy_assignments", "level_highlights",
           "supernode_colors"]

# The coarsening options of ``objective.name: higmae`` without options (the defaults of
# graphssl.objectives.higmae.HiGMAE; objectives sit above the domains, so they are restated here
# and a test keeps the two equal).
HIGMAE_COARSENING = {"levels": 2, "ratio": 0.25, "coarsener": "algebraic", "pe_steps": 8}

_GOLDEN = 0.618033988749895  # hue step: consecutive supernodes get far-apart hues, never equal ones


def _parse(molecule: str | Chem.Mol) -> Chem.Mol:
    if isinstance(molecule, Chem.Mol):
        return Chem.Mol(molecule)
    return mol_from_smiles(molecule)


def hierarchy_assignments(
    molecule: str | Chem.Mol,
    levels: int = HIGMAE_COARSENING["levels"],
    ratio: float = HIGMAE_COARSENING["ratio"],
    coarsener: str = HIGMAE_COARSENING["coarsener"],
) -> list[torch.Tensor]:
    """Supernode of every atom at levels ``0..levels``: a list of long tensors ``[num_atoms]``
    (level 0 is ``arange(num_atoms)``; level ``l`` indexes the ``n_l`` supernodes of that level).

    ``molecule`` is a SMILES string or an RDKit ``Mol``; an invalid SMILES raises
    :class:`graphssl.core.errors.MoleculeError` naming it.
    """
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ConfigError(f"levels must be a whole number of coarse levels, at least 1, got {levels!r}")
    if coarsener not in METHODS:
        raise ConfigError(f"unknown coarsener {coarsener!r}; choose one of: {', '.join(METHODS)}")
    mol = _parse(molecule)
    data = mol_to_data(mol, smiles=molecule if isinstance(molecule, str) else None)
    hierarchy = Coarsen(levels=levels, ratio=ratio, method=coarsener,
                        pe_steps=HIGMAE_COARSENING["pe_steps"])(data)
    assignment = torch.arange(data.num_nodes)
    out = [assignment]
    for level in range(1, levels + 1):
        # cluster_l maps level l-1 nodes to level l supernodes; composing walks each atom upwards
        assignment = hierarchy[f"cluster_{level}"][assignment]
        out.append(assignment)
    return out


def supernode_colors(count: int) -> list[tuple[float, float, float]]:
    """``count`` distinct light RGB colours (0..1), one per supernode, by golden-ratio hue steps."""
    colors = []
    for i in range(count):
        hue = (i * _GOLDEN) % 1.0
        lightness = 0.72 if i % 2 == 0 else 0.6  # alternate shades so neighbouring hues still differ
        colors.append(colorsys.hls_to_rgb(hue, lightness, 0.75))
    return colors


@dataclass(frozen=True)
class LevelHighlights:
    """What one panel colours: every atom by its supernode, and the bonds inside a supernode."""

    atom_colors: dict[int, tuple[float, float, float]]
    bond_colors: dict[int, tuple[float, float, float]]
    legend: str


def level_highlights(mol: Chem.Mol, level: int, assignment: torch.Tensor) -> LevelHighlights:
    """The colours of the panel of ``level``, given each atom's supernode ``assignment``."""
    clusters = assignment.tolist()
    if len(clusters) != mol.GetNumAtoms():
        raise ConfigError(f"level {level} assigns {len(clusters)} atoms, the molecule has {mol.GetNumAtoms()}")
    count = max(clusters) + 1 if clusters else 0
    palette = supernode_colors(count)
    atoms = {i: palette[c] for i, c in enumerate(clusters)}
    bonds = {b.GetIdx(): palette[clusters[b.GetBeginAtomIdx()]] for b in mol.GetBonds()
             if clusters[b.GetBeginAtomIdx()] == clusters[b.GetEndAtomIdx()]}
    return LevelHighlights(atoms, bonds, f"level {level}: {count} supernodes")


def draw_hierarchy(
    molecule: str | Chem.Mol,
    levels: int = HIGMAE_COARSENING["levels"],
    out: str | os.PathLike | None = None,
    *,
    ratio: float = HIGMAE_COARSENING["ratio"],
    coarsener: str = HIGMAE_COARSENING["coarsener"],
    panel_size: tuple[int, int] = (400, 340),
) -> bytes | Path:
    """Draw the coarsening hierarchy of ``molecule`` (SMILES or ``Mol``) as one PNG, one panel per
    level with atoms (and the bonds inside a supernode) coloured by supernode and the legend
    ``level k: n supernodes``.

    Returns the PNG bytes, or writes them atomically to ``out`` and returns its path.
    """
    width, height = panel_size
    if width < 50 or height < 50:
        raise ConfigError(f"panel_size must be at least 50 x 50 pixels, got {panel_size}")
    assignments = hierarchy_assignments(molecule, levels, ratio, coarsener)
    mol = _parse(molecule)
    rdDepictor.Compute2DCoords(mol)  # one layout shared by every panel, so levels line up
    highlights = [level_highlights(mol, level, assignment) for level, assignment in enumerate(assignments)]
    panels = len(highlights)
    drawer = rdMolDraw2D.MolDraw2DCairo(width * panels, height, width, height)
    options = drawer.drawOptions()
    options.legendFontSize = 18
    options.fillHighlights = True
    options.highlightRadius = 0.4
    drawer.DrawMolecules([mol] * panels, highlightAtoms=[list(h.atom_colors) for h in highlights],
                         highlightAtomColors=[h.atom_colors for h in highlights],
                         highlightBonds=[list(h.bond_colors) for h in highlights],
                         highlightBondColors=[h.bond_colors for h in highlights],
                         legends=[h.legend for h in highlights])
    drawer.FinishDrawing()
    png = drawer.GetDrawingText()
    if out is None:
        return png
    return atomic_write_bytes(png, Path(out).expanduser())
