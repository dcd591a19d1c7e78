"""Build an encoder from a :class:`ModelConfig` and the data's feature layout."""

from __future__ import annotations

from typing import Any

import torch

from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError
from graphssl.nn.backbones import BACKBONES, GINE, build_backbone, degree_histogram
from graphssl.nn.encoder import Encoder, GraphEncoder
from graphssl.nn.features import FeatureSpec
from graphssl.nn.geometric import GeometricBackbone, GeometricEncoder

__all__ = ["FeatureSpec", "build_encoder", "is_geometric"]  # FeatureSpec lives in graphssl.nn.features


def is_geometric(name: str) -> bool:
    """Whether ``name`` is a registered geometric backbone (reads positions, not node features)."""
    return name in BACKBONES and issubclass(BACKBONES.get(name), GeometricBackbone)


def _same_layout(a: FeatureSpec, b: FeatureSpec) -> bool:
    """Whether two specs describe the same input columns (custom factories compare by presence,
    since each call of a spec function makes new ones)."""
    return (a.node_dims, a.node_channels, a.edge_dims, a.edge_channels,
            a.node_factory is None, a.edge_factory is None) == (
        b.node_dims, b.node_channels, b.edge_dims, b.edge_channels, b.node_factory is None, b.edge_factory is None)


def _describe(spec: FeatureSpec) -> str:
    if spec.node_factory is not None:
        return "custom node embeddings"
    if spec.node_dims is not None:
        return f"{len(spec.node_dims)} categorical node column(s) {tuple(spec.node_dims)}"
    return f"{spec.node_channels} dense node channels"


def _resolve_features(config: ModelConfig, features: Any, dataset: Any) -> FeatureSpec:
    """The feature spec to size the embeddings by: the caller's, else the data set's; the two
    must agree when both are given (a molecule spec on crystal graphs fails here, not at the
    first forward pass)."""
    if features is not None and not isinstance(features, FeatureSpec):
        raise ConfigError(f"build_encoder's features must be a FeatureSpec or a data set, got a "
                          f"{type(features).__name__} beside dataset=")
    data_spec = None
    if dataset is not None:
        data_spec = getattr(dataset, "feature_spec", None)
        if not isinstance(data_spec, FeatureSpec):
            raise ConfigError(f"build_encoder needs a FeatureSpec or a data set with a feature_spec; "
                              f"got a {type(dataset).__name__} without one")
    if features is None and data_spec is None:
        raise ConfigError(
            f"backbone '{config.backbone}' needs the feature layout of the data: pass the data set "
            "(build_encoder(config, dataset)) or its feature_spec")
    if features is not None and data_spec is not None and not _same_layout(features, data_spec):
        raise ConfigError(
            f"the feature spec passed to build_encoder ({_describe(features)}) does not match the data set's "
            f"({_describe(data_spec)}); pass the data set (build_encoder(config, dataset)) to use its own")
    return features if features is not None else data_spec


def build_encoder(
    config: ModelConfig, features: FeatureSpec | Any | None = None, deg: torch.Tensor | None = None,
    cutoff: float = 5.0, *, dataset: Any = None,
) -> GraphEncoder:
    """The encoder named by ``config.backbone``, sized by ``config``.

    A geometric backbone (schnet, painn, et) reads atomic numbers and positions within
    ``cutoff`` and needs no ``features``: a :class:`GeometricEncoder`. A message-passing
    backbone gets input embeddings sized by the data's feature layout in front: an
    :class:`Encoder`. ``features`` is a :class:`FeatureSpec` or the data set itself (anything
    with a ``feature_spec``, as ``load_dataset`` returns); ``dataset=`` supplies it when
    ``features`` is not given and checks it when it is, so a spec that does not fit the data
    (a molecule spec on crystal graphs) fails here rather than at the first forward pass.
    ``deg`` is PNA's degree histogram (computed from the data set when one is given).
    """
    cls = BACKBONES.get(config.backbone)
    if issubclass(cls, GeometricBackbone):
        backbone = cls(hidden=config.hidden, num_layers=config.num_layers, cutoff=cutoff, **config.options)
        return GeometricEncoder(backbone, pooling=config.pooling)
    if features is not None and not isinstance(features, FeatureSpec) and dataset is None:
        dataset = features  # build_encoder(config, dataset): also the source of PNA's degrees
    features = _resolve_features(config, features if features is not dataset else None, dataset)
    if deg is None and dataset is not None and config.backbone.lower() == "pna":
        deg = degree_histogram(dataset)
    edge_embedding = None
    if getattr(cls, "supports_edge_attr", False) or features.edge_factory is not None:
        edge_embedding = features.edge_embedding(config.hidden)
    if issubclass(cls, GINE) and edge_embedding is None:
        # GINE adds an edge vector to every message; without one it fails at the first forward pass
        raise ConfigError(
            f"backbone '{config.backbone}' needs edge features, but the data has none (its feature spec has no "
            "edge layout, as crystal and 3D graphs): set model.backbone to gin, gcn, gat, sage or pna, or to a "
            "geometric backbone (schnet, painn, et)")
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
