"""Geometric backbones behind one interface: ``backbone(data) -> (s, v)``.

Importing this package registers ``schnet``, ``painn`` and ``et`` into
:data:`graphssl.nn.backbones.BACKBONES`, the registry every backbone is built from.
"""

from __future__ import annotations

from typing import Any

from graphssl.atomistic.backbones.base import (
    BesselBasis,
    EdgeGeometry,
    ExpNormalBasis,
    GeometricBackbone,
    cosine_cutoff,
    edge_geometry,
)
from graphssl.atomistic.backbones.equivariant_transformer import EquivariantTransformer
from graphssl.atomistic.backbones.painn import PaiNN
from graphssl.atomistic.backbones.schnet import SchNet
from graphssl.core.errors import ConfigError
from graphssl.nn.backbones import BACKBONES

BACKBONES.register("schnet", SchNet)
BACKBONES.register("painn", PaiNN)
BACKBONES.register("et", EquivariantTransformer)

GEOMETRIC_BACKBONES: tuple[str, ...] = ("schnet", "painn", "et")  # the names this package registers


def build_geometric_backbone(name: str, **kwargs: Any) -> GeometricBackbone:
    """Instantiate a registered geometric backbone, e.g. ``build_geometric_backbone("painn", hidden=64)``."""
    cls = BACKBONES.get(name)
    if not issubclass(cls, GeometricBackbone):
        geometric = [n for n, c in BACKBONES.items() if issubclass(c, GeometricBackbone)]
        raise ConfigError(f"backbone '{name}' is not geometric (it reads node features, not positions). "
                          f"Geometric backbones: {', '.join(geometric)}; or subclass graphssl.nn.GeometricBackbone")
    return cls(**kwargs)


__all__ = [
    "GEOMETRIC_BACKBONES",
    "BesselBasis",
    "EdgeGeometry",
    "EquivariantTransformer",
    "ExpNormalBasis",
    "GeometricBackbone",
    "PaiNN",
    "SchNet",
    "build_geometric_backbone",
    "cosine_cutoff",
    "edge_geometry",
]
