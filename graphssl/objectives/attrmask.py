"""AttrMask (Hu et al. 2020): mask atom attributes and predict the atom type."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.nn.encoder import Encoder
from graphssl.objectives.base import MESSAGE_PASSING, Objective, require_encoder, unread_edge_embedding
from graphssl.objectives.registry import OBJECTIVES
from graphssl.objectives.targets import resolve_target
from graphssl.transforms.masking import incident_edges, sample_node_mask


@OBJECTIVES.register("attrmask")
class AttrMask(Objective):
    """Attribute masking: masked nodes (and, optionally, their bonds) get learned mask
    tokens; a linear head on the encoder output predicts the masked nodes' first
    categorical feature (the element) with cross-entropy.

    Args:
        encoder: the encoder being pretrained (categorical node features).
        mask_rate: share of nodes masked per step (Hu et al.: 0.15).
        mask_edges: also mask the attributes of bonds touching a masked atom (when the
            backbone reads edge features).
    """

    def __init__(self, encoder: Encoder, mask_rate: float = 0.15, mask_edges: bool = True) -> None:
        require_encoder("AttrMask", encoder, Encoder, MESSAGE_PASSING)
        super().__init__(encoder)
        sample_node_mask(4, mask_rate)  # validates the rate early
        self.mask_rate = mask_rate
        # masked bond attributes only matter to a backbone that reads them
        self.mask_edges = mask_edges and encoder.reads_edge_features
        _, num_classes = resolve_target(encoder, "atom_type")
        self.node_mask_token = nn.Parameter(torch.zeros(1, encoder.embed_channels))
        if self.mask_edges:
            self.edge_mask_token = nn.Parameter(torch.zeros(1, encoder.embed_channels))
        self.head = nn.Linear(encoder.out_channels, num_classes)

    def unused_parameters(self) -> list[str]:
        return unread_edge_embedding(self.encoder)

    def forward(self, data: Data) -> Tensor:
        h0 = self.encoder.embed_nodes(data)
        mask = sample_node_mask(h0.size(0), self.mask_rate, device=h0.device)
        h0 = h0.clone()
        h0[mask.masked] = self.node_mask_token.to(h0.dtype)
        edge_features = self.encoder.embed_edges(data) if self.encoder.reads_edge_features else None
        if self.mask_edges and edge_features is not None and edge_features.size(0):
            hit = incident_edges(data.edge_index, mask.boolean(h0.size(0)))
            edge_features = torch.where(hit.unsqueeze(-1), self.edge_mask_token.to(edge_features.dtype), edge_features)
        h = self.encoder.propagate(h0, data, edge_features)
        logits = self.head(h[mask.masked])
        return F.cross_entropy(logits, data.x[mask.masked, 0].long())
