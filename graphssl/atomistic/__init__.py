"""Atomistic structures (crystals and 3D molecules): one graph format, neighbour lists,
adapters, geometric backbones."""

from graphssl.atomistic.adapters import (
    check_structure,
    from_ase,
    from_positions,
    from_pymatgen,
    from_rdkit_conformer,
    read_structures,
)
from graphssl.atomistic.graph import AtomisticData, edge_vectors
from graphssl.atomistic.neighbors import NeighborList, radius_graph

__all__ = [
    "AtomisticData",
    "NeighborList",
    "check_structure",
    "edge_vectors",
    "from_ase",
    "from_positions",
    "from_pymatgen",
    "from_rdkit_conformer",
    "radius_graph",
    "read_structures",
]
