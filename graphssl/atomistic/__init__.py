"""Atomistic structures (crystals and 3D molecules): one graph format, neighbour lists,
adapters, geometric backbones, SCD conditioning and output heads."""

from graphssl.atomistic.adapters import (
    check_structure,
    from_ase,
    from_positions,
    from_pymatgen,
    from_rdkit_conformer,
    read_structures,
)
from graphssl.atomistic.backbones import (
    GEOMETRIC_BACKBONES,
    EquivariantTransformer,
    GeometricBackbone,
    PaiNN,
    SchNet,
    build_geometric_backbone,
)
from graphssl.atomistic.conditioning import AdaptiveNorm, NullCondition
from graphssl.atomistic.graph import AtomisticData, edge_vectors
from graphssl.atomistic.heads import EnergyHead, GraphEmbedding, VectorHead, forces_and_stress, with_strain
from graphssl.atomistic.neighbors import NeighborList, radius_graph

__all__ = [
    "GEOMETRIC_BACKBONES",
    "AdaptiveNorm",
    "AtomisticData",
    "EnergyHead",
    "EquivariantTransformer",
    "GeometricBackbone",
    "GraphEmbedding",
    "NeighborList",
    "NullCondition",
    "PaiNN",
    "SchNet",
    "VectorHead",
    "build_geometric_backbone",
    "check_structure",
    "edge_vectors",
    "forces_and_stress",
    "from_ase",
    "from_positions",
    "from_pymatgen",
    "from_rdkit_conformer",
    "radius_graph",
    "read_structures",
    "with_strain",
]

from graphssl.atomistic import splits  # noqa: E402,F401  (registers the matbench split)
