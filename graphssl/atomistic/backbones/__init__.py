"""Geometric backbones behind one interface: ``backbone(data, condition=None) -> (s, v)``."""

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

GEOMETRIC_BACKBONES: dict[str, type[GeometricBackbone]] = {
    "schnet": SchNet,
    "painn": PaiNN,
    "et": EquivariantTransformer,
}


def build_geometric_backbone(name: str, **kwargs: Any) -> GeometricBackbone:
    """Instantiate a registered backbone by name, e.g. ``build_geometric_backbone("painn", hidden=64)``."""
    key = name.lower().replace("-", "_")
    if key not in GEOMETRIC_BACKBONES:
        raise ConfigError(
            f"unknown geometric backbone '{name}'. Choose one of: {', '.join(GEOMETRIC_BACKBONES)}, "
            "or subclass graphssl.atomistic.backbones.GeometricBackbone."
        )
    return GEOMETRIC_BACKBONES[key](**kwargs)


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
