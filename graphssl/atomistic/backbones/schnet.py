"""SchNet (Schütt et al. 2017) from PyG's blocks, fed graphssl's edges.

PyG's ``SchNet.forward`` builds its own graph with ``radius_graph`` (which needs pyg-lib)
and ignores periodic images; here only its ``InteractionBlock`` (continuous-filter
convolution), ``GaussianSmearing`` and ``ShiftedSoftplus`` are reused, on distances from
:func:`~graphssl.atomistic.graph.edge_vectors`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.models.schnet import GaussianSmearing, InteractionBlock

from graphssl.atomistic.backbones.base import GeometricBackbone, edge_geometry


class SchNet(GeometricBackbone):
    """Invariant continuous-filter convolutions; returns ``(s, None)``.

    Vector outputs (coordinate noise) come from an edge-vector readout such as
    :class:`~graphssl.atomistic.heads.VectorHead` with ``equivariant=False``.
    """

    equivariant = False

    def __init__(
        self, hidden: int = 128, num_layers: int = 3, cutoff: float = 5.0, num_rbf: int = 50, max_z: int = 120
    ) -> None:
        super().__init__(hidden, num_layers, cutoff)
        self.embedding = nn.Embedding(max_z, hidden)
        self.rbf = GaussianSmearing(0.0, cutoff, num_rbf)
        self.interactions = nn.ModuleList(
            InteractionBlock(hidden, num_rbf, hidden, cutoff) for _ in range(num_layers)
        )

    def forward(self, data: Data) -> tuple[Tensor, Tensor | None]:
        geo = edge_geometry(data, self.cutoff)
        # CFConv sends messages along edge_index[0] -> edge_index[1]: put neighbours first.
        # It applies its own cosine cutoff to ``dist``; every kept edge is inside the cutoff.
        edge_index = torch.stack([geo.j, geo.i])
        rbf = self.rbf(geo.dist)
        s = self.embedding(data.z)
        for layer, interaction in enumerate(self.interactions):
            s = s + interaction(s, edge_index, geo.dist, rbf)
            s = self.after_layer(layer, s, data)
        return s, None
