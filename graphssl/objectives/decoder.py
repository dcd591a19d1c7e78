"""The one-layer GNN decoder that masked autoencoders use to reconstruct node features."""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.nn.backbones import build_backbone, supports_edge_attr
from graphssl.nn.encoder import Encoder


class FeatureDecoder(nn.Module):
    """One GNN layer from encoder width to ``out_channels``.

    The default layer is ``gine`` when the encoder reads edge features (it then reuses the
    encoder's edge embeddings), else ``gin``.
    """

    def __init__(self, encoder: Encoder, out_channels: int, name: str | None = None) -> None:
        super().__init__()
        edge_aware = encoder.edge_embedding is not None
        name = name or ("gine" if edge_aware else "gin")
        self.reads_edges = edge_aware and supports_edge_attr(name)
        hidden = encoder.out_channels
        self.layer = build_backbone(name, in_channels=hidden, hidden=hidden, num_layers=1,
                                    out_channels=out_channels, norm=None,
                                    edge_dim=encoder.embed_channels if self.reads_edges else None)

    def forward(self, z: Tensor, data: Data, edge_features: Tensor | None) -> Tensor:
        if self.reads_edges:
            return self.layer(z, data.edge_index, edge_attr=edge_features)
        return self.layer(z, data.edge_index)
