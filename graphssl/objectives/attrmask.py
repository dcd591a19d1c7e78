"""AttrMask (Hu et al. 2020): mask atom attributes and predict the atom type."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.nn.encoder import Encoder
from graphssl.objectives.targets import resolve_target
from graphssl.transforms.masking import incident_edges, sample_node_mask


class AttrMask(nn.Module):
    """Attribute masking: masked nodes (and, optionally, their bonds) get learned mask
    tokens; a linear head on the encoder output predicts the masked nodes' first
    categorical feature (the element) with cross-entropy.

    Args:
        encoder: the encoder being pretrained (categorical node features).
        mask_rate: share of nodes masked per step (Hu et al.: 0.15).
        mask_edges: also mask the attributes of bonds touching a masked atom.
    """

    def __init__(self, encoder: Encoder, mask_rate: float = 0.15, mask_edges: bool = True) -> None:
        super().__init__()
        sample_node_mask(4, mask_rate)  # validates the rate early
        self.encoder = encoder
        self.mask_rate = mask_rate
        self.mask_edges = mask_edges and encoder.edge_embedding is not None
        _, num_classes = resolve_target(encoder, "atom_type")
        self.node_mask_token = nn.Parameter(torch.zeros(1, encoder.embed_channels))
        if self.mask_edges:
            self.edge_mask_token = nn.Parameter(torch.zeros(1, encoder.embed_channels))
        self.head = nn.Linear(encoder.out_channels, num_classes)

    def forward(self, data: Data) -> Tensor:
        h0 = self.encoder.embed_nodes(data)
        mask = sample_node_mask(h0.size(0), self.mask_rate, device=h0.device)
        h0 = h0.clone()
        h0[mask.masked] = self.node_mask_token.to(h0.dtype)
        edge_features = self.encoder.embed_edges(data)
        if self.mask_edges and edge_features is not None and edge_features.size(0):
            hit = incident_edges(data.edge_index, mask.boolean(h0.size(0)))
            edge_features = torch.where(hit.unsqueeze(-1), self.edge_mask_token.to(edge_features.dtype), edge_features)
        h = self.encoder.propagate(h0, data, edge_features)
        logits = self.head(h[mask.masked])
        return F.cross_entropy(logits, data.x[mask.masked, 0].long())
