"""Atomistic structures (crystals and 3D molecules): one graph format, neighbour lists,
adapters, data sources, geometric backbones, conditioning layers and output heads.

Importing this package registers the atomistic data sets and input kind, the geometric
backbones and the Matbench split.
It imports neither vesin, ASE nor pymatgen: the modules that use them import them when they
run. The model-side names below are loaded on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from graphssl.atomistic import backbones, sources, splits  # noqa: F401  (registration)
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

# name -> module that defines it, imported on first access (keeps `import graphssl` light)
_LAZY = {
    "GEOMETRIC_BACKBONES": "backbones",
    "EquivariantTransformer": "backbones",
    "GeometricBackbone": "backbones",
    "PaiNN": "backbones",
    "SchNet": "backbones",
    "build_geometric_backbone": "backbones",
    "AdaptiveNorm": "conditioning",
    "NullCondition": "conditioning",
    "EnergyHead": "heads",
    "GraphEmbedding": "heads",
    "VectorHead": "heads",
    "forces_and_stress": "heads",
    "with_strain": "heads",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"graphssl.atomistic.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'graphssl.atomistic' has no attribute {name!r}")


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
    *_LAZY,
]
