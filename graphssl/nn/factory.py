"""Build an encoder from a :class:`ModelConfig` and the data's feature layout."""

from __future__ import annotations

import torch

from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError
from graphssl.nn.backbones import BACKBONES, build_backbone
from graphssl.nn.encoder import Encoder, GraphEncoder
from graphssl.nn.features import FeatureSpec
from graphssl.nn.geometric import GeometricBackbone, GeometricEncoder

__all__ = ["FeatureSpec", "build_encoder", "is_geometric"]  # FeatureSpec lives in graphssl.nn.features


def is_geometric(name: str) -> bool:
    """Whether ``name`` is a registered geometric backbone (reads positions, not node features)."""
    return name in BACKBONES and issubclass(BACKBONES.get(name), GeometricBackbone)


def build_encoder(
    config: ModelConfig, features: FeatureSpec | None = None, deg: torch.Tensor | None = None,
    cutoff: float = 5.0,
) -> GraphEncoder:
    """The encoder named by ``config.backbone``, sized by ``config``.

    A geometric backbone (schnet, painn, et) reads atomic numbers and positions within
    ``cutoff`` and needs no ``features``: a :class:`GeometricEncoder`. A message-passing
    backbone gets input embeddings sized by ``features`` (the data set's ``feature_spec``) in
    front: an :class:`Encoder`. ``deg`` is PNA's degree histogram.
    """
    cls = BACKBONES.get(config.backbone)
    if issubclass(cls, GeometricBackbone):
        backbone = cls(hidden=config.hidden, num_layers=config.num_layers, cutoff=cutoff, **config.options)
        return GeometricEncoder(backbone, pooling=config.pooling)
    if features is None:
        raise ConfigError(
            f"backbone '{config.backbone}' needs the feature layout of the data: pass the data set's "
            "feature_spec (for molecules: graphssl.molecule.features.molecule_feature_spec())")
    edge_embedding = None
    if getattr(cls, "supports_edge_attr", False) or features.edge_factory is not None:
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
