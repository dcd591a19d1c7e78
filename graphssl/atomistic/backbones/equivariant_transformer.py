"""An equivariant transformer in the style of TorchMD-Net's ET (Thölke and De Fabritiis 2022).

Written from the paper's description. Scalars attend over neighbours with several heads;
keys and values are filtered by radial functions of the distance, and the attention
weights pass through SiLU (not a softmax) and the cosine cutoff. Values also write vector
features: neighbours' vectors scaled by invariants plus the unit edge vector scaled by
invariants, which keeps ``v`` O(3)-equivariant. Unlike the reference, the vector messages
are multiplied by the cutoff too, so energy and forces stay continuous at the cutoff.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.data import Data

from graphssl.atomistic.backbones.base import (
    EdgeGeometry,
    ExpNormalBasis,
    GeometricBackbone,
    cosine_cutoff,
    edge_geometry,
)
from graphssl.core.errors import ConfigError


class NeighborEmbedding(nn.Module):
    """Atom embedding mixed with a distance-weighted sum of the neighbours' embeddings."""

    def __init__(self, hidden: int, num_rbf: int, cutoff: float, max_z: int) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.embedding = nn.Embedding(max_z, hidden)
        self.neighbor_embedding = nn.Embedding(max_z, hidden)
        self.distance_proj = nn.Linear(num_rbf, hidden)
        self.combine = nn.Linear(2 * hidden, hidden)

    def forward(self, z: Tensor, rbf: Tensor, geo: EdgeGeometry) -> Tensor:
        x = self.embedding(z)
        w = self.distance_proj(rbf) * cosine_cutoff(geo.dist, self.cutoff).unsqueeze(-1)
        msg = torch.zeros_like(x).index_add_(0, geo.i, w * self.neighbor_embedding(z)[geo.j])
        return self.combine(torch.cat([x, msg], dim=-1))


class EquivariantAttention(nn.Module):
    """One ET layer: returns the residual updates ``(dx [N, F], dvec [N, 3, F])``."""

    def __init__(self, hidden: int, heads: int, num_rbf: int, cutoff: float) -> None:
        super().__init__()
        self.hidden, self.heads, self.head_dim = hidden, heads, hidden // heads
        self.cutoff = cutoff
        self.norm = nn.LayerNorm(hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, 3 * hidden)
        self.o_proj = nn.Linear(hidden, 3 * hidden)
        self.vec_proj = nn.Linear(hidden, 3 * hidden, bias=False)  # no bias: equivariance
        self.dk_proj = nn.Linear(num_rbf, hidden)
        self.dv_proj = nn.Linear(num_rbf, 3 * hidden)

    def forward(self, x: Tensor, vec: Tensor, rbf: Tensor, geo: EdgeGeometry) -> tuple[Tensor, Tensor]:
        n, h, d = x.size(0), self.heads, self.head_dim
        x = self.norm(x)
        q = self.q_proj(x).view(n, h, d)
        k = self.k_proj(x).view(n, h, d)
        val = self.v_proj(x).view(n, h, 3 * d)
        vec1, vec2, vec3 = self.vec_proj(vec).split(self.hidden, dim=-1)  # [N, 3, F] each
        vec_dot = (vec1 * vec2).sum(dim=1)  # invariant [N, F]

        # Distance filters on keys and values, per edge.
        dk = F.silu(self.dk_proj(rbf)).view(-1, h, d)
        dv = F.silu(self.dv_proj(rbf)).view(-1, h, 3 * d)
        fcut = cosine_cutoff(geo.dist, self.cutoff)
        attn = (q[geo.i] * k[geo.j] * dk).sum(dim=-1)  # [E, H]
        attn = F.silu(attn) * fcut.unsqueeze(-1)

        msg = val[geo.j] * dv
        x_msg, gate_vec, gate_dir = msg.split(d, dim=-1)  # [E, H, d] each
        x_msg = (x_msg * attn.unsqueeze(-1)).reshape(-1, self.hidden)
        # TorchMD-Net leaves the vector messages without a cutoff, so an atom crossing the
        # cutoff makes the energy jump; the cosine cutoff here keeps energy and forces smooth.
        gate_vec = gate_vec.reshape(-1, 1, self.hidden) * fcut.view(-1, 1, 1)
        gate_dir = gate_dir.reshape(-1, 1, self.hidden) * fcut.view(-1, 1, 1)
        vec_msg = vec[geo.j] * gate_vec + gate_dir * geo.unit.unsqueeze(-1)  # [E, 3, F]

        x_agg = torch.zeros_like(x).index_add_(0, geo.i, x_msg)
        vec_agg = torch.zeros_like(vec).index_add_(0, geo.i, vec_msg)

        o1, o2, o3 = self.o_proj(x_agg).split(self.hidden, dim=-1)
        dx = vec_dot * o2 + o3
        dvec = vec3 * o1.unsqueeze(1) + vec_agg
        return dx, dvec


class EquivariantTransformer(GeometricBackbone):
    """TorchMD-Net-style equivariant transformer with exp-normal radial functions; returns ``(s, v)``."""

    equivariant = True

    def __init__(
        self,
        hidden: int = 128,
        num_layers: int = 3,
        heads: int = 8,
        cutoff: float = 5.0,
        num_rbf: int = 32,
        max_z: int = 120,
    ) -> None:
        if hidden % heads:
            raise ConfigError(f"hidden ({hidden}) must be divisible by heads ({heads}); e.g. hidden=128, heads=8")
        super().__init__(hidden, num_layers, cutoff)
        self.heads = heads
        self.rbf = ExpNormalBasis(num_rbf, cutoff)
        self.embedding = NeighborEmbedding(hidden, num_rbf, cutoff, max_z)
        self.layers = nn.ModuleList(EquivariantAttention(hidden, heads, num_rbf, cutoff) for _ in range(num_layers))
        self.out_norm = nn.LayerNorm(hidden)

    def forward(self, data: Data) -> tuple[Tensor, Tensor | None]:
        geo = edge_geometry(data, self.cutoff)
        rbf = self.rbf(geo.dist)
        x = self.embedding(data.z, rbf, geo)
        vec = x.new_zeros(x.size(0), 3, self.hidden)
        for index, layer in enumerate(self.layers):
            dx, dvec = layer(x, vec, rbf, geo)
            x, vec = x + dx, vec + dvec
            x = self.after_layer(index, x, data)
        return self.out_norm(x), vec

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, heads={self.heads}"
