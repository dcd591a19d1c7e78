"""Build an :class:`Encoder` from a :class:`ModelConfig` and the data's feature layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from graphssl.core.config import ModelConfig
from graphssl.nn.backbones import build_backbone, uses_edge_features
from graphssl.nn.embeddings import CategoricalEmbedding, DenseEmbedding
from graphssl.nn.encoder import Encoder


@dataclass(frozen=True)
class FeatureSpec:
    """What node and edge features look like: categorical column sizes or a dense width."""

    node_dims: tuple[int, ...] | None = None  # categorical columns of data.x
    node_channels: int | None = None  # dense width of data.x
    edge_dims: tuple[int, ...] | None = None
    edge_channels: int | None = None
    # custom embeddings (e.g. CNNs over B-rep UV grids): out_channels -> module
    node_factory: Callable[[int], nn.Module] | None = None
    edge_factory: Callable[[int], nn.Module] | None = None

    def node_embedding(self, out: int) -> nn.Module:
        if self.node_factory is not None:
            return self.node_factory(out)
        if self.node_dims is not None:
            return CategoricalEmbedding(self.node_dims, out)
        if self.node_channels is None:
            raise ValueError("FeatureSpec needs node_dims or node_channels")
        return DenseEmbedding(self.node_channels, out)

    def edge_embedding(self, out: int) -> nn.Module | None:
        if self.edge_factory is not None:
            return self.edge_factory(out)
        if self.edge_dims is not None:
            return CategoricalEmbedding(self.edge_dims, out)
        if self.edge_channels is not None:
            return DenseEmbedding(self.edge_channels, out)
        return None


def molecule_feature_spec() -> FeatureSpec:
    from graphssl.molecule.features import ATOM_FEATURE_DIMS, BOND_FEATURE_DIMS

    return FeatureSpec(node_dims=tuple(ATOM_FEATURE_DIMS), edge_dims=tuple(BOND_FEATURE_DIMS))


def is_geometric(name: str) -> bool:
    """Whether ``name`` is a 3D backbone (reads positions, not categorical features)."""
    from graphssl.atomistic.backbones import GEOMETRIC_BACKBONES

    return name.lower().replace("-", "_") in GEOMETRIC_BACKBONES


def build_encoder(
    config: ModelConfig, features: FeatureSpec | None = None, deg: torch.Tensor | None = None,
    cutoff: float = 5.0,
) -> nn.Module:
    """A named backbone sized by ``config``: a 2D backbone with embeddings in front
    (an :class:`Encoder`), or a geometric backbone (schnet, painn, et) that reads atomic
    numbers and positions within ``cutoff``."""
    if is_geometric(config.backbone):
        from graphssl.atomistic.backbones import build_geometric_backbone

        return build_geometric_backbone(config.backbone, hidden=config.hidden, num_layers=config.num_layers,
                                        cutoff=cutoff, **config.options)
    features = features or molecule_feature_spec()
    edge_embedding = None
    if uses_edge_features(config.backbone.lower()) or features.edge_factory is not None:
        edge_embedding = features.edge_embedding(config.hidden)
    backbone = build_backbone(
        config.backbone,
        in_channels=config.hidden,
        hidden=config.hidden,
        num_layers=config.num_layers,
        dropout=config.dropout,
        norm=config.norm,
        jk=config.jk,
        edge_dim=config.hidden if edge_embedding is not None else None,
        deg=deg,
        **config.options,
    )
    return Encoder(
        backbone,
        node_embedding=features.node_embedding(config.hidden),
        out_channels=config.hidden,
        edge_embedding=edge_embedding,
        pooling=config.pooling,
    )
