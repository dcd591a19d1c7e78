"""PaiNN, the polarizable atom interaction network (Schütt, Unke and Gastegger 2021).

Written from the paper's equations. Each atom carries scalars ``s`` ``[N, F]`` and vectors
``v`` ``[N, 3, F]``; vectors only ever get scaled by invariants, summed, or contracted in
dot products, which keeps ``v`` equivariant under rotations and reflections (O(3)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.atomistic.backbones.base import (
    BesselBasis,
    EdgeGeometry,
    GeometricBackbone,
    cosine_cutoff,
    edge_geometry,
)


class PaiNNMessage(nn.Module):
    """Message block, paper eqs. 7-8::

        ds_i = sum_j phi_s(s_j) * W_s(d_ij)
        dv_i = sum_j v_j * phi_vv(s_j) * W_vv(d_ij) + phi_vs(s_j) * W_vs(d_ij) * r_ij / d_ij
    """

    def __init__(self, hidden: int, num_rbf: int, cutoff: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.cutoff = cutoff
        self.phi = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))
        self.filter = nn.Linear(num_rbf, 3 * hidden)

    def forward(self, s: Tensor, v: Tensor, rbf: Tensor, geo: EdgeGeometry) -> tuple[Tensor, Tensor]:
        w = self.filter(rbf) * cosine_cutoff(geo.dist, self.cutoff).unsqueeze(-1)
        x = self.phi(s)[geo.j] * w  # [E, 3F]
        ds, dvv, dvs = x.split(self.hidden, dim=-1)
        dv = v[geo.j] * dvv.unsqueeze(1) + dvs.unsqueeze(1) * geo.unit.unsqueeze(-1)  # [E, 3, F]
        ds = torch.zeros_like(s).index_add_(0, geo.i, ds)
        dv = torch.zeros_like(v).index_add_(0, geo.i, dv)
        return ds, dv


class PaiNNUpdate(nn.Module):
    """Update block, paper eqs. 9-10::

        dv_i = a_vv(s_i, |V v_i|) * U v_i
        ds_i = a_sv(s_i, |V v_i|) * <U v_i, V v_i> + a_ss(s_i, |V v_i|)
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        # Linear maps over channels only, with no bias: a bias would add a fixed
        # direction and break equivariance.
        self.lin_u = nn.Linear(hidden, hidden, bias=False)
        self.lin_v = nn.Linear(hidden, hidden, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        uv = self.lin_u(v)
        vv = self.lin_v(v)
        # The epsilon keeps the gradient finite at v = 0 (every atom after the embedding).
        vv_norm = torch.sqrt((vv * vv).sum(dim=1) + 1e-8)
        a = self.mlp(torch.cat([s, vv_norm], dim=-1))
        a_vv, a_sv, a_ss = a.split(self.hidden, dim=-1)
        dv = a_vv.unsqueeze(1) * uv
        ds = a_sv * (uv * vv).sum(dim=1) + a_ss
        return ds, dv


class PaiNN(GeometricBackbone):
    """PaiNN with Bessel radial functions and a cosine cutoff; returns ``(s, v)``."""

    equivariant = True

    def __init__(
        self, hidden: int = 128, num_layers: int = 3, cutoff: float = 5.0, num_rbf: int = 20, max_z: int = 120
    ) -> None:
        super().__init__(hidden, num_layers, cutoff)
        self.embedding = nn.Embedding(max_z, hidden)
        self.rbf = BesselBasis(num_rbf, cutoff)
        self.messages = nn.ModuleList(PaiNNMessage(hidden, num_rbf, cutoff) for _ in range(num_layers))
        self.updates = nn.ModuleList(PaiNNUpdate(hidden) for _ in range(num_layers))

    def forward(self, data: Data) -> tuple[Tensor, Tensor | None]:
        geo = edge_geometry(data, self.cutoff)
        rbf = self.rbf(geo.dist)
        s = self.embedding(data.z)
        v = s.new_zeros(s.size(0), 3, self.hidden)
        for layer, (message, update) in enumerate(zip(self.messages, self.updates)):
            ds, dv = message(s, v, rbf, geo)
            s, v = s + ds, v + dv
            ds, dv = update(s, v)
            s, v = s + ds, v + dv
            s = self.after_layer(layer, s, data)
        return s, v
