"""The encoder interface, and the encoder for message-passing backbones (PyG's model signature).

Every encoder, 2D or geometric, is a :class:`GraphEncoder`: ``encoder(data)`` gives node
features ``[N, out_channels]``, ``encoder.embed_graphs(data)`` one vector per graph.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.nn.models.basic_gnn import BasicGNN

from graphssl.core.errors import ConfigError
from graphssl.core.registry import Registry

# graph readouts: (node features, batch vector, size=number of graphs) -> [B, C]
POOLINGS: Registry[Callable[..., Tensor]] = Registry("pooling")
POOLINGS.register("mean", global_mean_pool)
POOLINGS.register("sum", global_add_pool)
POOLINGS.register("add", global_add_pool)
POOLINGS.register("max", global_max_pool)


class GraphEncoder(nn.Module):
    """Base class of encoders: ``Data`` -> node features ``[N, out_channels]``.

    Subclasses implement :meth:`forward`; :meth:`pool` and :meth:`embed_graphs` turn node
    features into graph embeddings ``[B, out_channels]`` with the chosen readout.

    Args:
        out_channels: width of the node features ``forward`` returns.
        pooling: graph readout, one of ``mean``, ``sum`` (``add``), ``max``.
    """

    def __init__(self, out_channels: int, pooling: str = "mean") -> None:
        super().__init__()
        POOLINGS.get(pooling)  # an unknown name fails here, with the close matches
        self.out_channels = int(out_channels)
        self.pooling = pooling

    def forward(self, data: Data) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(data) -> node features")

    def pool(self, h: Tensor, data: Data) -> Tensor:
        """Graph embeddings ``[B, out_channels]`` from node features with the chosen readout."""
        batch = getattr(data, "batch", None)
        if batch is None:  # a single graph
            return POOLINGS[self.pooling](h, torch.zeros(h.size(0), dtype=torch.long, device=h.device), size=1)
        size = int(data.num_graphs) if hasattr(data, "num_graphs") else None
        return POOLINGS[self.pooling](h, batch, size=size)

    def embed_graphs(self, data: Data) -> Tensor:
        """One vector per graph: ``pool(forward(data))``."""
        return self.pool(self(data), data)


class Encoder(GraphEncoder):
    """Input embeddings in front of a message-passing backbone with PyG's model signature.

    The backbone is called as ``backbone(x, edge_index, edge_attr=..., batch=...)``. What it
    is passed follows the capabilities it declares, never its signature:

    - ``edge_attr`` when ``backbone.supports_edge_attr`` is true (PyG's flag: GAT, PNA and
      GINE set it; default False) and the encoder has an edge embedding;
    - ``batch`` when ``backbone.supports_batch`` is true (default: True for PyG's
      ``BasicGNN`` models, whose ``forward`` takes it, False for other modules).

    So PyG models (GIN, GINE, GCN, GAT, GraphSAGE, PNA) and a user's own ``nn.Module``
    plug in alike; a user module declares the two flags as class attributes.

    Args:
        backbone: the message-passing network; its input width is ``node_embedding``'s output.
        node_embedding: maps ``data.x`` to vectors (e.g. :class:`CategoricalEmbedding`).
        out_channels: width of the node embeddings the backbone returns.
        edge_embedding: maps ``data.edge_attr`` to vectors, or ``None`` to pass no edge features.
        pooling: graph readout, one of ``mean``, ``sum``, ``max``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        node_embedding: nn.Module,
        out_channels: int,
        edge_embedding: nn.Module | None = None,
        pooling: str = "mean",
    ) -> None:
        super().__init__(out_channels, pooling)
        self.backbone = backbone
        self.node_embedding = node_embedding
        self.edge_embedding = edge_embedding
        if edge_embedding is not None and not hasattr(backbone, "supports_edge_attr"):
            # an undeclared module would silently never see the edge features it was given
            raise ConfigError(f"backbone {type(backbone).__name__} gets an edge embedding but does not declare "
                              "whether it reads edge features: set the class attribute supports_edge_attr = True "
                              "(forward takes edge_attr=...) or False, or pass edge_embedding=None")
        self._pass_edge_attr = bool(getattr(backbone, "supports_edge_attr", False)) and edge_embedding is not None
        self._pass_batch = bool(getattr(backbone, "supports_batch", isinstance(backbone, BasicGNN)))

    @property
    def embed_channels(self) -> int:
        """Width of the input embeddings (the backbone's input)."""
        return int(self.node_embedding.out_channels)

    @property
    def reads_edge_features(self) -> bool:
        """Whether the backbone receives the embedded edge features."""
        return self._pass_edge_attr

    def embed_nodes(self, data: Data) -> Tensor:
        """Initial node vectors, before message passing. Objectives mask these.

        Embeddings flagged ``reads_data = True`` (e.g. B-rep face-grid CNNs) get the whole
        ``Data``; the others get ``data.x``.
        """
        if getattr(self.node_embedding, "reads_data", False):
            return self.node_embedding(data)
        return self.node_embedding(data.x)

    def embed_edges(self, data: Data) -> Tensor | None:
        """Initial edge vectors, or None without an edge embedding or edge features."""
        if self.edge_embedding is None:
            return None
        if getattr(self.edge_embedding, "reads_data", False):
            return self.edge_embedding(data)
        if getattr(data, "edge_attr", None) is None:
            return None
        return self.edge_embedding(data.edge_attr)

    def propagate(self, h: Tensor, data: Data, edge_features: Tensor | None = None) -> Tensor:
        """Run the backbone on given node vectors (and optionally given edge vectors)."""
        kwargs = {}
        if self._pass_edge_attr:
            kwargs["edge_attr"] = self.embed_edges(data) if edge_features is None else edge_features
        if self._pass_batch:
            kwargs["batch"] = getattr(data, "batch", None)
        return self.backbone(h, data.edge_index, **kwargs)

    def forward(self, data: Data) -> Tensor:
        return self.propagate(self.embed_nodes(data), data)
