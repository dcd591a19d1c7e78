"""GraphMAE (Hou et al. 2022): masked feature reconstruction with re-mask decoding and SCE."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.nn.encoder import Encoder
from graphssl.nn.losses import RECONSTRUCTION_LOSSES, reconstruction_loss
from graphssl.objectives.base import MESSAGE_PASSING, Objective, require_encoder, unread_edge_embedding
from graphssl.objectives.decoder import FeatureDecoder
from graphssl.objectives.registry import OBJECTIVES
from graphssl.objectives.targets import resolve_target, target_tensor
from graphssl.transforms.masking import NodeMask, sample_node_mask


@OBJECTIVES.register("graphmae")
class GraphMAE(Objective):
    """Masked autoencoder on node features for any :class:`Encoder`.

    A share ``mask_rate`` of nodes is masked; of those, ``replace_rate`` get a random node's
    input, ``keep_rate`` keep their input and the rest get a learned [MASK] token (in the
    input-embedding space). The encoder output is projected, the masked nodes are zeroed
    again (re-mask), and a one-layer GNN decoder reconstructs the masked nodes' features,
    scored with the scaled cosine error.

    Args:
        encoder: the encoder being pretrained.
        mask_rate: share of nodes masked per step (molecules: 0.25).
        replace_rate: share of masked nodes given a random node's input.
        keep_rate: share of masked nodes left unchanged.
        alpha: SCE exponent (>= 1).
        decoder: backbone name of the one-layer decoder (default: ``gine`` when the encoder
            reads edge features, else ``gin``).
        target: ``auto``, ``atom_type``, ``features`` or ``embedding`` (see
            :mod:`graphssl.objectives.targets`).
        loss: ``sce`` (scaled cosine error) or ``mse`` (for geometric targets such as UV grids).
    """

    def __init__(
        self,
        encoder: Encoder,
        mask_rate: float = 0.25,
        replace_rate: float = 0.1,
        keep_rate: float = 0.1,
        alpha: float = 1.0,
        decoder: str | None = None,
        target: str = "auto",
        loss: str = "sce",
    ) -> None:
        require_encoder("GraphMAE", encoder, Encoder, MESSAGE_PASSING)
        super().__init__(encoder)
        sample_node_mask(4, mask_rate, replace_rate, keep_rate)  # validates the rates early
        if alpha < 1:
            raise ValueError(f"GraphMAE alpha must be >= 1, got {alpha}")
        self.mask_rate, self.replace_rate, self.keep_rate, self.alpha = mask_rate, replace_rate, keep_rate, alpha
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"unknown loss '{loss}'. Choose one of: {', '.join(RECONSTRUCTION_LOSSES)}")
        self.loss = loss
        self.target, out_channels = resolve_target(encoder, target)
        hidden = encoder.out_channels
        self.enc_mask_token = nn.Parameter(torch.zeros(1, encoder.embed_channels))
        self.encoder_to_decoder = nn.Linear(hidden, hidden, bias=False)
        self.decoder = FeatureDecoder(encoder, out_channels, decoder)

    def unused_parameters(self) -> list[str]:
        return unread_edge_embedding(self.encoder, read_elsewhere=self.decoder.reads_edges)

    def mask_inputs(self, h: Tensor, mask: NodeMask) -> Tensor:
        h = h.clone()
        if mask.random.numel():
            h[mask.random] = h[mask.random_source].detach()
        h[mask.token] = self.enc_mask_token.to(h.dtype)
        return h

    def forward(self, data: Data) -> Tensor:
        h0 = self.encoder.embed_nodes(data)
        mask = sample_node_mask(
            h0.size(0), self.mask_rate, self.replace_rate, self.keep_rate, device=h0.device
        )
        edge_features = self.encoder.embed_edges(data)
        h = self.encoder.propagate(self.mask_inputs(h0, mask), data, edge_features)
        # re-mask: the decoder must infer masked nodes from neighbours
        z = self.encoder_to_decoder(h).index_fill(0, mask.masked, 0.0)
        recon = self.decoder(z, data, edge_features)
        target = target_tensor(data, self.target, self.encoder, index=mask.masked)
        return reconstruction_loss(recon[mask.masked], target, self.loss, self.alpha)
