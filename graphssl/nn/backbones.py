"""Backbones by name: one registry for every kind.

The message-passing backbones registered here (PyG's BasicGNN family plus a bond-aware GINE)
have the signature ``forward(x, edge_index, edge_attr=None, batch=None)`` and map
``in_channels`` node features to ``out_channels`` node embeddings; whether a backbone reads
``edge_attr`` is its ``supports_edge_attr`` flag. Geometric backbones
(:class:`~graphssl.nn.geometric.GeometricBackbone` subclasses: schnet, painn, et) are
registered into the same registry by :mod:`graphssl.atomistic.backbones`.

Register your own with ``BACKBONES.register("name", cls)`` (or as a decorator).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.nn import GINEConv
from torch_geometric.nn.models import GAT, GCN, GIN, MLP, PNA, GraphSAGE
from torch_geometric.nn.models.basic_gnn import BasicGNN
from torch_geometric.utils import degree

from graphssl.core.errors import ConfigError
from graphssl.core.registry import Registry
from graphssl.nn.geometric import GeometricBackbone

BACKBONES: Registry[type[nn.Module]] = Registry(
    "backbone", hint="Register your own with graphssl.nn.BACKBONES.register(name, cls), "
                     "or pass your own nn.Module to graphssl.nn.Encoder.")


@BACKBONES.register("gine")
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


for _name, _cls in [("gin", GIN), ("gcn", GCN), ("gat", GAT), ("sage", GraphSAGE), ("graphsage", GraphSAGE),
                    ("pna", PNA)]:
    BACKBONES.register(_name, _cls)


def supports_edge_attr(name: str) -> bool:
    """Whether the named backbone reads edge features (its ``supports_edge_attr`` flag)."""
    return bool(getattr(BACKBONES.get(name), "supports_edge_attr", False))


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
    """Build a message-passing backbone from its registry name, with PyG's BasicGNN arguments.

    ``edge_dim`` is passed to the backbones that read edge features; ``deg`` (an
    in-degree histogram) is required by PNA.
    """
    cls = BACKBONES.get(name)
    if issubclass(cls, GeometricBackbone):
        raise ConfigError(f"backbone '{name}' is geometric (it reads atoms and positions, not node features); "
                          "build it with graphssl.nn.build_encoder, or pick a message-passing backbone such as gin")
    kwargs: dict[str, Any] = dict(options)
    if getattr(cls, "supports_edge_attr", False) and edge_dim is not None:
        kwargs["edge_dim"] = edge_dim
    if issubclass(cls, PNA):
        if deg is None:
            raise ConfigError(f"backbone '{name}' needs a degree histogram 'deg' (see graphssl.nn.degree_histogram)")
        kwargs.setdefault("aggregators", ["mean", "min", "max", "std"])
        kwargs.setdefault("scalers", ["identity", "amplification", "attenuation"])
        kwargs["deg"] = deg
    if issubclass(cls, GAT):
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
