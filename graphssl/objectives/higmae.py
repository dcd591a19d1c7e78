"""Hi-GMAE (Liu et al. 2024): hierarchical masked autoencoding with coarse-to-fine masking.

Data flow for L coarse levels (level 0 = the input graph, see :mod:`graphssl.transforms.coarsen`):

1. Coarse-to-fine masking: a share ``mask_rate`` of the coarsest supernodes is masked and the
   mask is projected down through the assignments, so every descendant of a masked
   supernode is masked (whole substructures, not scattered atoms).
2. CoFi-R: at each finer level a random share ``rho`` of the masked nodes is un-masked
   again, ``rho = recovery_rate * (1 - epoch / T) ** gamma`` for ``epoch < T`` and 0 after.
3. Encoder: the wrapped :class:`Encoder` (any backbone) on level 0, with masked nodes given
   a learned [MASK] token; features are mean-pooled up through the assignments (one GIN
   layer at each intermediate level); at the coarsest level a graph transformer with RW-PE
   attends over the *visible* supernodes only (plus one learned graph token per graph).
4. Decoder: from the coarsest level down, unpool (copy parent to children), add a skip
   connection from the encoder features of visible nodes, one GNN layer per level; the
   level-0 layer reconstructs the masked nodes' features, scored with the scaled cosine error.

All projections are index operations on sparse cluster vectors; memory grows with nodes
and edges.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GINConv
from torch_geometric.nn.models import MLP
from torch_geometric.utils import scatter, to_dense_batch

from graphssl.core.errors import DataError
from graphssl.nn.encoder import Encoder
from graphssl.nn.losses import RECONSTRUCTION_LOSSES, reconstruction_loss
from graphssl.objectives.base import MESSAGE_PASSING, Objective, require_encoder, unread_edge_embedding
from graphssl.objectives.decoder import FeatureDecoder
from graphssl.objectives.registry import OBJECTIVES
from graphssl.objectives.targets import resolve_target, target_tensor
from graphssl.transforms.coarsen import Coarsen, level_batch
from graphssl.transforms.masking import sample_node_mask


def recovery_fraction(epoch: int, recovery_rate: float, recovery_epochs: float, gamma: float) -> float:
    """CoFi-R's share of masked fine nodes to un-mask at ``epoch`` (0-based)."""
    if recovery_rate <= 0 or recovery_epochs <= 0 or epoch >= recovery_epochs:
        return 0.0
    return recovery_rate * (1.0 - epoch / recovery_epochs) ** gamma


def coarse_to_fine_masks(
    data: Data, levels: int, mask_rate: float, recovery: float = 0.0, generator: torch.Generator | None = None
) -> list[Tensor]:
    """Boolean masks for levels 0..L: sampled at level L, projected down, then thinned by
    ``recovery`` (the share of masked nodes un-masked) at each finer level."""
    device = data.edge_index.device
    n_top = int(data[f"n_{levels}"].sum()) if torch.is_tensor(data[f"n_{levels}"]) else int(data[f"n_{levels}"])
    masks: list[Tensor] = [torch.empty(0)] * (levels + 1)
    masks[levels] = sample_node_mask(n_top, mask_rate, device=device, generator=generator).boolean(n_top)
    for level in range(levels, 0, -1):
        child = masks[level][data[f"cluster_{level}"]]
        if recovery > 0:
            draw = torch.rand(child.numel(), device=device, generator=generator)
            child = child & ~(draw < recovery)
        masks[level - 1] = child
    return masks


class _GraphTransformer(nn.Module):
    """Transformer layers over the visible supernodes of each graph, with a graph token."""

    def __init__(self, hidden: int, pe_steps: int, layers: int, heads: int) -> None:
        super().__init__()
        self.inp = nn.Linear(hidden + pe_steps, hidden)
        self.graph_token = nn.Parameter(torch.zeros(1, 1, hidden))
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, h: Tensor, pe: Tensor, batch: Tensor, visible: Tensor, num_graphs: int) -> Tensor:
        tokens = self.inp(torch.cat([h, pe], dim=-1))
        dense, present = to_dense_batch(tokens[visible], batch[visible], batch_size=num_graphs)
        # The graph token keeps every sequence non-empty (a graph may have all supernodes masked).
        dense = torch.cat([self.graph_token.expand(num_graphs, -1, -1), dense], dim=1)
        present = torch.cat([present.new_ones(num_graphs, 1), present], dim=1)
        out = self.layers(dense, src_key_padding_mask=~present)[:, 1:]
        result = torch.zeros_like(tokens)
        result[visible] = out[present[:, 1:]]
        return result


def _gin(hidden: int) -> GINConv:
    return GINConv(MLP([hidden, 2 * hidden, hidden], norm=None), train_eps=True)


@OBJECTIVES.register("higmae")
class HiGMAE(Objective):
    """Hierarchical graph masked autoencoder around any :class:`Encoder`.

    Args:
        encoder: the level-0 encoder being pretrained (any backbone).
        mask_rate: share of coarsest-level supernodes masked (molecules: 0.25).
        levels: number of coarse levels L (1 to 3).
        ratio: share of nodes removed per coarsening level.
        coarsener: ``algebraic``, ``heavy_edge`` or ``chemistry``.
        pe_steps: random-walk positional-encoding length at the coarse levels.
        recovery_rate: CoFi-R's initial share of masked fine nodes un-masked (0 turns it off).
        recovery_epochs: T, the epoch at which recovery reaches 0; ``None`` sets a quarter of
            the pretraining epochs.
        gamma: exponent of the recovery decay.
        transformer_layers, heads: the coarsest-level graph transformer.
        alpha: SCE exponent.
        target: ``auto``, ``atom_type``, ``features`` or ``embedding``.
        loss: ``sce`` (scaled cosine error) or ``mse`` (for geometric targets such as UV grids).
    """

    def __init__(
        self,
        encoder: Encoder,
        mask_rate: float = 0.25,
        levels: int = 2,
        ratio: float = 0.25,
        coarsener: str = "algebraic",
        pe_steps: int = 8,
        recovery_rate: float = 0.5,
        recovery_epochs: float | None = None,
        gamma: float = 1.0,
        transformer_layers: int = 1,
        heads: int = 4,
        alpha: float = 1.0,
        target: str = "auto",
        loss: str = "sce",
    ) -> None:
        require_encoder("HiGMAE", encoder, Encoder, MESSAGE_PASSING)
        super().__init__(encoder)
        sample_node_mask(4, mask_rate)  # validates the rate early
        if not 0.0 <= recovery_rate < 1.0:
            raise ValueError(f"recovery_rate must be in [0, 1), got {recovery_rate}")
        if alpha < 1:
            raise ValueError(f"alpha must be >= 1, got {alpha}")
        hidden = encoder.out_channels
        if hidden % heads:
            raise ValueError(f"the encoder width {hidden} must be divisible by heads={heads}")
        self.transform = Coarsen(levels=levels, ratio=ratio, method=coarsener, pe_steps=pe_steps)
        self.levels, self.mask_rate, self.alpha = levels, mask_rate, alpha
        self.recovery_rate, self.recovery_epochs, self.gamma = recovery_rate, recovery_epochs, gamma
        self.recovery = recovery_rate  # the current epoch's share, set by set_epoch
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"unknown loss '{loss}'. Choose one of: {', '.join(RECONSTRUCTION_LOSSES)}")
        self.loss = loss
        self.target, out_channels = resolve_target(encoder, target)

        self.enc_mask_token = nn.Parameter(torch.zeros(1, encoder.embed_channels))
        self.level_encoders = nn.ModuleList(_gin(hidden) for _ in range(1, levels))  # levels 1..L-1
        self.transformer = _GraphTransformer(hidden, pe_steps, transformer_layers, heads)
        self.encoder_to_decoder = nn.Linear(hidden, hidden, bias=False)
        self.skips = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(levels))  # levels 0..L-1
        self.level_decoders = nn.ModuleList(_gin(hidden) for _ in range(1, levels))  # levels 1..L-1
        self.decoder = FeatureDecoder(encoder, out_channels)

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        """Update CoFi-R's recovery share for ``epoch`` (0-based) of ``total_epochs``."""
        horizon = self.recovery_epochs if self.recovery_epochs is not None else total_epochs / 4
        self.recovery = recovery_fraction(epoch, self.recovery_rate, horizon, self.gamma)

    def unused_parameters(self) -> list[str]:
        return unread_edge_embedding(self.encoder, read_elsewhere=self.decoder.reads_edges)

    def _check(self, data: Data) -> None:
        if f"cluster_{self.levels}" not in data:
            raise DataError(
                f"HiGMAE needs graphs with {self.levels} coarse levels: apply its transform first, "
                f"e.g. graphs = objective.transform.many(graphs) (the pretraining loop does this)"
            )

    def forward(self, data: Data) -> Tensor:
        self._check(data)
        L = self.levels
        num_graphs = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        masks = coarse_to_fine_masks(data, L, self.mask_rate, self.recovery if self.training else 0.0)

        # encoder: level 0 with the user's backbone
        h0 = self.encoder.embed_nodes(data).clone()
        h0[masks[0]] = self.enc_mask_token.to(h0.dtype)
        edge_features = self.encoder.embed_edges(data)
        feats = [self.encoder.propagate(h0, data, edge_features)]
        sizes = [data.num_nodes]
        for level in range(1, L + 1):
            n = int(data[f"n_{level}"].sum()) if torch.is_tensor(data[f"n_{level}"]) else int(data[f"n_{level}"])
            sizes.append(n)
            pooled = scatter(feats[-1], data[f"cluster_{level}"], dim=0, dim_size=n, reduce="mean")
            if level < L:
                pooled = pooled + self.level_encoders[level - 1](pooled, data[f"edge_index_{level}"])
            feats.append(pooled)
        visible_top = ~masks[L]
        top = self.transformer(feats[L], data[f"rwpe_{L}"], level_batch(data, L), visible_top, num_graphs)

        # decoder: coarsest to finest
        z = self.encoder_to_decoder(top) * visible_top.unsqueeze(-1)  # re-mask
        for level in range(L, 0, -1):
            z = z[data[f"cluster_{level}"]]  # unpool: children copy their parent
            below = level - 1
            z = z + self.skips[below](feats[below]) * (~masks[below]).unsqueeze(-1)
            if below > 0:
                z = z + self.level_decoders[below - 1](z, data[f"edge_index_{below}"])
        recon = self.decoder(z, data, edge_features)
        target = target_tensor(data, self.target, self.encoder, index=masks[0])
        return reconstruction_loss(recon[masks[0]], target, self.loss, self.alpha)
