"""The radial pieces the geometric backbones share, and their edges.

A backbone (a :class:`~graphssl.nn.geometric.GeometricBackbone`) reads an
:class:`~graphssl.atomistic.graph.AtomisticData` (or a batch of them) and returns per-atom
invariant features ``s`` ``[N, hidden]`` and equivariant vector features ``v``
``[N, 3, hidden]`` (None for invariant backbones). Geometry always comes from
:func:`~graphssl.atomistic.graph.edge_vectors`, so gradients reach ``pos`` and ``cell``
(forces, stress) and coordinate noise changes every edge.

Edge convention: for an edge ``(i, j) = edge_index[:, e]`` the vector ``r_ij`` points from
atom ``i`` to (the image of) atom ``j``; messages from ``j`` are summed at ``i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.atomistic.graph import edge_vectors
from graphssl.nn.geometric import GeometricBackbone

__all__ = ["BesselBasis", "EdgeGeometry", "ExpNormalBasis", "GeometricBackbone", "cosine_cutoff", "edge_geometry"]


def cosine_cutoff(dist: Tensor, cutoff: float) -> Tensor:
    """``0.5 (cos(pi d / cutoff) + 1)`` inside the cutoff, 0 outside; smooth at the cutoff."""
    return 0.5 * (torch.cos(dist * (math.pi / cutoff)) + 1.0) * (dist < cutoff).to(dist.dtype)


class BesselBasis(nn.Module):
    """``sqrt(2/c) sin(n pi d / c) / d`` for ``n = 1..num_rbf`` (PaiNN, DimeNet)."""

    def __init__(self, num_rbf: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("freq", torch.arange(1, num_rbf + 1, dtype=torch.float) * math.pi / cutoff)

    def forward(self, dist: Tensor) -> Tensor:
        d = dist.unsqueeze(-1)
        return math.sqrt(2.0 / self.cutoff) * torch.sin(self.freq * d) / d.clamp_min(1e-9)

    def extra_repr(self) -> str:
        return f"num_rbf={self.freq.numel()}, cutoff={self.cutoff}"


class ExpNormalBasis(nn.Module):
    """Exponential-normal radial functions (PhysNet, TorchMD-Net's ET), times the cosine cutoff.

    ``exp(-beta (exp(-alpha d) - mu_k)^2)`` with ``mu_k`` spread over ``[exp(-cutoff), 1]``,
    so the functions are dense at short range where the energy changes fastest.
    """

    def __init__(self, num_rbf: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.alpha = 5.0 / cutoff
        start = math.exp(-cutoff)
        self.register_buffer("means", torch.linspace(start, 1.0, num_rbf))
        self.register_buffer("betas", torch.full((num_rbf,), (2.0 / num_rbf * (1.0 - start)) ** -2))

    def forward(self, dist: Tensor) -> Tensor:
        d = dist.unsqueeze(-1)
        return cosine_cutoff(d, self.cutoff) * torch.exp(-self.betas * (torch.exp(-self.alpha * d) - self.means) ** 2)

    def extra_repr(self) -> str:
        return f"num_rbf={self.means.numel()}, cutoff={self.cutoff}"


@dataclass
class EdgeGeometry:
    """The edges inside the cutoff: receiver ``i``, neighbour ``j``, vector, length, unit vector."""

    i: Tensor  # [E] receiving atom
    j: Tensor  # [E] neighbour
    vec: Tensor  # [E, 3] r_ij, from i to the image of j
    dist: Tensor  # [E]
    unit: Tensor  # [E, 3]


def edge_geometry(data: Data, cutoff: float) -> EdgeGeometry:
    """Edge vectors from positions and cell; edges at or beyond ``cutoff`` are dropped, so
    a neighbour list built with a larger radius (a skin) gives the same result."""
    vec = edge_vectors(data)
    i, j = data.edge_index
    dist = vec.norm(dim=-1)
    keep = dist < cutoff
    if not bool(keep.all()):
        i, j, vec, dist = i[keep], j[keep], vec[keep], dist[keep]
    # A zero-length edge (two atoms on top of each other) has no direction; clamping
    # keeps the outputs finite instead of NaN.
    unit = vec / dist.clamp_min(1e-9).unsqueeze(-1)
    return EdgeGeometry(i=i, j=j, vec=vec, dist=dist, unit=unit)
