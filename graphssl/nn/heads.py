"""Prediction heads for fine-tuning: graph embedding -> one output per task."""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.nn.encoder import GraphEncoder


class PredictionHead(nn.Module):
    """A linear head, or a one-hidden-layer MLP when ``hidden`` is given."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_channels, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_channels)]
        else:
            layers.append(nn.Linear(in_channels, out_channels))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PropertyModel(nn.Module):
    """Encoder, graph pooling and a head: ``Data`` -> ``[num_graphs, num_tasks]`` outputs."""

    def __init__(self, encoder: GraphEncoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, data: Data) -> Tensor:
        return self.head(self.encoder.embed_graphs(data))
