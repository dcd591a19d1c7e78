"""The encoder interface: any PyG backbone behind input embeddings, node embeddings out."""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from graphssl.core.errors import ConfigError

POOLINGS: dict[str, Callable[..., Tensor]] = {
    "mean": global_mean_pool,
    "sum": global_add_pool,
    "add": global_add_pool,
    "max": global_max_pool,
}


def _accepted_arguments(module: nn.Module) -> set[str]:
    params = inspect.signature(module.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {"edge_attr", "batch"}
    return set(params)


class Encoder(nn.Module):
    """``Data`` -> node embeddings, for any backbone with the PyG model signature.

    The backbone is called as ``backbone(x, edge_index, edge_attr=..., batch=...)``, passing
    only the keyword arguments its ``forward`` accepts, so PyG models (GIN, GINE, GCN, GAT,
    GraphSAGE, PNA) and a user's own ``nn.Module`` plug in alike.

    Args:
        backbone: the message-passing network; its input width is ``node_embedding``'s output.
        node_embedding: maps ``data.x`` to vectors (e.g. :class:`CategoricalEmbedding`).
        edge_embedding: maps ``data.edge_attr`` to vectors, or ``None`` to pass no edge features.
        out_channels: width of the node embeddings the backbone returns.
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
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling '{pooling}'. Choose one of: {', '.join(POOLINGS)}")
        self.backbone = backbone
        self.node_embedding = node_embedding
        self.edge_embedding = edge_embedding
        self.out_channels = out_channels
        self.pooling = pooling
        accepted = _accepted_arguments(backbone)
        self._pass_edge_attr = "edge_attr" in accepted and edge_embedding is not None
        self._pass_batch = "batch" in accepted

    @property
    def embed_channels(self) -> int:
        """Width of the input embeddings (the backbone's input)."""
        return int(self.node_embedding.out_channels)

    def embed_nodes(self, data: Data) -> Tensor:
        """Initial node vectors, before message passing. Objectives mask these.

        Embeddings flagged ``reads_data = True`` (e.g. B-rep face-grid CNNs) get the whole
        ``Data``; the others get ``data.x``.
        """
        if getattr(self.node_embedding, "reads_data", False):
            return self.node_embedding(data)
        return self.node_embedding(data.x)

    def embed_edges(self, data: Data) -> Tensor | None:
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

    def pool(self, h: Tensor, data: Data) -> Tensor:
        """Graph embeddings from node embeddings with the chosen readout."""
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(h.size(0), dtype=torch.long, device=h.device)
        size = int(data.num_graphs) if hasattr(data, "num_graphs") else None
        return POOLINGS[self.pooling](h, batch, size=size)

    def embed_graphs(self, data: Data) -> Tensor:
        return self.pool(self(data), data)
