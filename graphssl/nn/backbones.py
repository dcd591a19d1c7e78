"""Backbones by name: PyG's BasicGNN family plus a bond-aware GINE.

Every backbone here has the signature ``forward(x, edge_index, edge_attr=None, batch=None)``
and maps ``in_channels`` node features to ``out_channels`` node embeddings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.nn import GINEConv
from torch_geometric.nn.models import GAT, GCN, GIN, PNA, GraphSAGE
from torch_geometric.nn.models.basic_gnn import BasicGNN
from torch_geometric.nn.models import MLP

from graphssl.core.errors import ConfigError


class GINE(BasicGNN):
    """GIN with bond features added to every message (Hu et al. 2020's pretraining GIN).

    ``edge_dim`` is the width of the (already embedded) edge features.
    """

    supports_edge_weight = False
    supports_edge_attr = True

    def init_conv(self, in_channels: int, out_channels: int, **kwargs: Any) -> nn.Module:
        edge_dim = kwargs.pop("edge_dim", None)
        mlp = MLP([in_channels, 2 * out_channels, out_channels], act=self.act, norm=None)
        return GINEConv(mlp, edge_dim=edge_dim, **kwargs)


# name -> (class, whether edge features are consumed)
BACKBONES: dict[str, type[BasicGNN]] = {
    "gin": GIN,
    "gine": GINE,
    "gcn": GCN,
    "gat": GAT,
    "sage": GraphSAGE,
    "graphsage": GraphSAGE,
    "pna": PNA,
}


def uses_edge_features(name: str) -> bool:
    """Whether the named backbone reads ``edge_attr``."""
    return name in ("gine", "gat", "pna")


def build_backbone(
    name: str,
    in_channels: int,
    hidden: int,
    num_layers: int,
    out_channels: int | None = None,
    *,
    dropout: float = 0.0,
    norm: str | None = "batch_norm",
    jk: str | None = None,
    edge_dim: int | None = None,
    deg: torch.Tensor | None = None,
    **options: Any,
) -> nn.Module:
    """Build a backbone from its registry name.

    ``edge_dim`` is passed to the backbones that read edge features; ``deg`` (an
    in-degree histogram) is required by PNA.
    """
    key = name.lower()
    if key not in BACKBONES:
        raise ConfigError(
            f"unknown backbone '{name}'. Choose one of: {', '.join(sorted(BACKBONES))}, "
            "or pass your own nn.Module to graphssl.Encoder."
        )
    cls = BACKBONES[key]
    kwargs: dict[str, Any] = dict(options)
    if uses_edge_features(key) and edge_dim is not None:
        kwargs["edge_dim"] = edge_dim
    if key == "pna":
        if deg is None:
            raise ConfigError("backbone 'pna' needs a degree histogram 'deg' (see graphssl.nn.degree_histogram)")
        kwargs.setdefault("aggregators", ["mean", "min", "max", "std"])
        kwargs.setdefault("scalers", ["identity", "amplification", "attenuation"])
        kwargs["deg"] = deg
    if key == "gat":
        kwargs.setdefault("heads", 4)
        kwargs.setdefault("concat", False)  # keep the width at `hidden` for every layer
    return cls(
        in_channels=in_channels,
        hidden_channels=hidden,
        num_layers=num_layers,
        out_channels=out_channels,
        dropout=dropout,
        norm=norm,
        jk=jk,
        **kwargs,
    )


def degree_histogram(dataset: Any, max_graphs: int | None = 5000) -> torch.Tensor:
    """In-degree histogram over (a prefix of) a data set, as PNA's scalers need."""
    from torch_geometric.utils import degree

    counts: torch.Tensor = torch.zeros(1, dtype=torch.long)
    n = len(dataset) if max_graphs is None else min(len(dataset), max_graphs)
    for i in range(n):
        data = dataset[i]
        d = degree(data.edge_index[1], num_nodes=data.num_nodes, dtype=torch.long)
        hist = torch.bincount(d, minlength=counts.numel())
        if hist.numel() > counts.numel():
            counts = torch.cat([counts, counts.new_zeros(hist.numel() - counts.numel())])
        counts += hist
    return counts
