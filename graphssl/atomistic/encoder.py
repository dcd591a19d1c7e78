"""A geometric backbone behind the encoder interface that fine-tuning heads use."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_add_pool, global_mean_pool

from graphssl.atomistic.backbones.base import GeometricBackbone
from graphssl.core.errors import ConfigError

_POOLS = {"sum": global_add_pool, "add": global_add_pool, "mean": global_mean_pool}


class GeometricEncoder(nn.Module):
    """``Data`` -> invariant atom features ``[N, hidden]`` and pooled structure embeddings.

    Args:
        backbone: SchNet, PaiNN, the equivariant transformer or any ``GeometricBackbone``.
        pooling: ``sum`` (extensive properties such as energies) or ``mean`` (intensive ones).
        null_condition: SCD's learned null token; when given, the backbone always runs with it
            (as SCD fine-tunes), and it stays trainable.
    """

    def __init__(self, backbone: GeometricBackbone, pooling: str = "mean", null_condition: Tensor | None = None) -> None:
        super().__init__()
        if pooling not in _POOLS:
            raise ConfigError(f"unknown pooling '{pooling}' for atomistic encoders. Choose one of: {', '.join(_POOLS)}")
        self.backbone = backbone
        self.pooling = pooling
        self.out_channels = backbone.hidden
        self.null_condition = nn.Parameter(null_condition.clone()) if null_condition is not None else None

    def features(self, data: Data) -> tuple[Tensor, Tensor | None]:
        """Scalar and vector atom features."""
        condition = None
        if self.null_condition is not None:
            num_graphs = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
            condition = self.null_condition.unsqueeze(0).expand(num_graphs, -1)
        return self.backbone(data, condition=condition)

    def forward(self, data: Data) -> Tensor:
        return self.features(data)[0]

    def embed_graphs(self, data: Data) -> Tensor:
        s = self(data)
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(s.size(0), dtype=torch.long, device=s.device)
        size = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        return _POOLS[self.pooling](s, batch, size=size)
