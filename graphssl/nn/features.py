"""What a data set's node and edge features look like, so an encoder can be sized for them.

Each data set says it with its ``feature_spec``; the domains provide the specs (for example
``graphssl.molecule.features.molecule_feature_spec()``), so this layer knows no domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from graphssl.core.errors import ConfigError
from graphssl.nn.embeddings import CategoricalEmbedding, DenseEmbedding


@dataclass(frozen=True)
class FeatureSpec:
    """Node and edge feature layout: categorical column sizes, a dense width, or a factory."""

    node_dims: tuple[int, ...] | None = None  # categorical columns of data.x
    node_channels: int | None = None  # dense width of data.x
    edge_dims: tuple[int, ...] | None = None
    edge_channels: int | None = None
    # custom embeddings (e.g. CNNs over B-rep UV grids): out_channels -> module
    node_factory: Callable[[int], nn.Module] | None = None
    edge_factory: Callable[[int], nn.Module] | None = None

    def node_embedding(self, out: int) -> nn.Module:
        """The module that maps a graph's node features to ``out``-wide vectors."""
        if self.node_factory is not None:
            return self.node_factory(out)
        if self.node_dims is not None:
            return CategoricalEmbedding(self.node_dims, out)
        if self.node_channels is None:
            raise ConfigError("FeatureSpec needs node_dims, node_channels or node_factory; all three are None")
        return DenseEmbedding(self.node_channels, out)

    def edge_embedding(self, out: int) -> nn.Module | None:
        """The module for edge features, or None when the graphs carry none."""
        if self.edge_factory is not None:
            return self.edge_factory(out)
        if self.edge_dims is not None:
            return CategoricalEmbedding(self.edge_dims, out)
        if self.edge_channels is not None:
            return DenseEmbedding(self.edge_channels, out)
        return None
