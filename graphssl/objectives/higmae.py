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

Only rows whose values can reach the loss are computed: the loss reads the masked level-0
nodes, so the decoder runs its layer on those nodes alone (from all their neighbours), each
level's decoder GNN and skip run on the nodes that feed the level below, the level encoders on
the nodes that feed the level above or a skip, and the transformer's per-token layers on the
visible supernodes and graph tokens without padding. The loss and gradients equal those of
running every module on every node (``tests/objectives/test_higmae_equivalence.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GINConv, GINEConv
from torch_geometric.nn.models import MLP
from torch_geometric.nn.models.basic_gnn import BasicGNN
from torch_geometric.utils import scatter

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


def _with_sources(rows: Tensor, edge_index: Tensor) -> Tensor:
    """``rows`` (boolean per node) plus the sources of the edges into them: what a message
    passing layer reads to compute ``rows``."""
    out = rows.clone()
    out[edge_index[0, rows[edge_index[1]]]] = True
    return out


def _parents(rows: Tensor, cluster: Tensor, num_parents: int) -> Tensor:
    """Boolean per supernode: the parents of ``rows`` (boolean per node of the level below)."""
    out = torch.zeros(num_parents, dtype=torch.bool, device=rows.device)
    out[cluster[rows]] = True
    return out


def _conv_rows(conv: nn.Module, x: Tensor, edge_index: Tensor, rows: Tensor, edge_attr: Tensor | None = None) -> Tensor:
    """``conv(x, edge_index[, edge_attr])[rows]`` for a GIN or GINE layer, computed on the edges
    into ``rows`` only: a GIN row is its MLP applied to its own input plus the sum of its incoming
    messages, so the other rows' MLPs and messages are work the loss never reads."""
    keep = rows[edge_index[1]]
    position = torch.cumsum(rows, 0) - 1  # index of each kept row among the kept rows
    sub = torch.stack([edge_index[0, keep], position[edge_index[1, keep]]])
    pair = (x, x[rows])
    size = (x.size(0), pair[1].size(0))
    if edge_attr is None:
        return conv(pair, sub, size=size)
    return conv(pair, sub, edge_attr=edge_attr[keep], size=size)


def _row_decoder(decoder: FeatureDecoder) -> nn.Module | None:
    """The decoder's one GIN/GINE layer when each output row depends only on that node's input
    and incoming messages (an MLP without normalisation or dropout, no jumping knowledge or
    final linear layer), so rows can be computed on their own; else ``None``."""
    layer = decoder.layer
    if not isinstance(layer, BasicGNN) or layer.num_layers != 1 or hasattr(layer, "lin") \
            or getattr(layer, "jk_mode", None) is not None:
        return None
    conv = layer.convs[0]
    if type(conv) not in (GINConv, GINEConv) or not isinstance(conv.nn, MLP):
        return None
    mlp = conv.nn
    rowwise = all(isinstance(norm, nn.Identity) for norm in mlp.norms) and not any(mlp.dropout)
    return conv if rowwise else None


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
        """Outputs of the visible supernodes; zero rows for the masked ones."""
        index = visible.nonzero().view(-1)
        out = self.packed(h[index], pe[index], batch[index], num_graphs)
        return out.new_zeros(h.size(0), out.size(1)).index_put((index,), out)

    def packed(self, h: Tensor, pe: Tensor, batch: Tensor, num_graphs: int, rows: Tensor | None = None) -> Tensor:
        """The layers of ``nn.TransformerEncoder`` (pre-norm) on the packed tokens of the visible
        supernodes (``batch`` sorted), returning the outputs of the tokens ``rows`` (boolean;
        all when ``None``). The per-token layers run on the tokens alone, and only the attention
        sees them as zero-padded sequences, one per graph, graph token first: padding every
        sequence to the longest graph's would make the per-token layers the main cost. The last
        layer computes queries, attention outputs and the feed-forward block for ``rows`` only;
        every token still serves as key and value."""
        tokens = self.inp(torch.cat([h, pe], dim=-1))
        counts = torch.bincount(batch, minlength=num_graphs)
        starts = torch.cumsum(counts, 0) - counts
        graphs = torch.arange(num_graphs, device=batch.device)
        seq = torch.cat([graphs, batch])  # sequence (graph) of every token, graph tokens first
        pos = torch.cat([torch.zeros_like(graphs), torch.arange(batch.numel(), device=batch.device) - starts[batch] + 1])
        length = int(counts.max()) + 1 if num_graphs else 1
        present = torch.zeros(num_graphs, length, dtype=torch.bool, device=batch.device)
        present[seq, pos] = True
        # as nn.MultiheadAttention turns a key padding mask into an additive one
        additive = torch.zeros(present.shape, dtype=tokens.dtype, device=tokens.device)
        additive = additive.masked_fill(~present, float("-inf")).view(num_graphs, 1, 1, length)
        x = torch.cat([self.graph_token[0].expand(num_graphs, -1).to(tokens.dtype), tokens])
        wanted = torch.cat([torch.zeros_like(graphs, dtype=torch.bool),
                            torch.ones_like(batch, dtype=torch.bool) if rows is None else rows])
        layers = list(self.layers.layers)
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            query = wanted if last else None
            attended = self._attention(layer.self_attn, layer.norm1(x), seq, pos, additive, query)
            x = (x[wanted] if last else x) + layer.dropout1(attended)
            x = x + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(x))))))
        return x

    @staticmethod
    def _attention(attn: nn.MultiheadAttention, x: Tensor, seq: Tensor, pos: Tensor, additive: Tensor,
                   query: Tensor | None) -> Tensor:
        """Multi-head self-attention within each graph's tokens, for the tokens ``query`` (all
        when ``None``), with the weights and arithmetic of ``nn.MultiheadAttention``."""
        num_graphs, length = additive.size(0), additive.size(-1)
        heads, width = attn.num_heads, x.size(1)
        if query is None:
            qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
            dense = qkv.new_zeros(num_graphs, length, 3 * width).index_put((seq, pos), qkv)
        else:
            w, b = attn.in_proj_weight, attn.in_proj_bias
            q = F.linear(x[query], w[:width], None if b is None else b[:width])
            kv = F.linear(x, w[width:], None if b is None else b[width:])
            dense = torch.cat([kv.new_zeros(num_graphs, length, width).index_put((seq[query], pos[query]), q),
                               kv.new_zeros(num_graphs, length, 2 * width).index_put((seq, pos), kv)], dim=-1)
            seq, pos = seq[query], pos[query]
        q, k, v = (t.view(num_graphs, length, heads, width // heads).transpose(1, 2) for t in dense.chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=additive.expand(-1, heads, -1, -1),
                                             dropout_p=attn.dropout if attn.training else 0.0)
        out = out.transpose(1, 2).reshape(num_graphs, length, width)[seq, pos]
        return attn.out_proj(out)


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
        masks = coarse_to_fine_masks(data, self.levels, self.mask_rate, self.recovery if self.training else 0.0)
        recon = self.decode_masked(data, masks)
        target = target_tensor(data, self.target, self.encoder, index=masks[0])
        return reconstruction_loss(recon, target, self.loss, self.alpha)

    def masked_edge_features(self, data: Data, masked: Tensor) -> Tensor | None:
        """The level-0 edge features the encoder and decoder read, given the masked nodes
        (subclasses may hide the edges of masked nodes)."""
        return self.encoder.embed_edges(data)

    def decode_masked(self, data: Data, masks: list[Tensor]) -> Tensor:
        """The decoder's output rows of the masked level-0 nodes (``masks[0]``, in node order),
        for the boolean masks of levels 0..L: the encoder on the visible nodes, pooling up the
        levels, the transformer on the visible coarsest supernodes, unpooling back down."""
        L = self.levels
        num_graphs = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        visible = [~m for m in masks]
        sizes = [data.num_nodes] + [int(data[f"n_{level}"].sum()) if torch.is_tensor(data[f"n_{level}"])
                                    else int(data[f"n_{level}"]) for level in range(1, L + 1)]
        cluster = [None] + [data[f"cluster_{level}"] for level in range(1, L + 1)]
        edges = [data.edge_index] + [data[f"edge_index_{level}"] for level in range(1, L + 1)]

        # Which rows reach the loss, from the loss up. Decoder side: `read[b]` are the level-b
        # rows of z that the level-b layer (decoder GNN, or the final decoder at b = 0) reads,
        # `out[b]` the rows of its output read further down.
        row_decoder = _row_decoder(self.decoder)
        out: list[Tensor] = [masks[0]]
        read: list[Tensor] = []
        for b in range(L):
            if b == 0 and row_decoder is None:
                read.append(torch.ones_like(masks[0]))
            else:
                read.append(_with_sources(out[b], edges[b]))
            out.append(_parents(read[b], cluster[b + 1], sizes[b + 1]))
        # Encoder side: `need[l]` are the level-l features read by the level above (its pooling,
        # at the rows its own level GNN or the transformer reads) or by the level-l skip.
        need: list[Tensor | None] = [None] * (L + 1)
        pooled_read = visible[L]
        for level in range(L - 1, 0, -1):
            need[level] = pooled_read[cluster[level + 1]] | (read[level] & visible[level])
            pooled_read = _with_sources(need[level], edges[level])

        # encoder: level 0 with the user's backbone
        h0 = self.encoder.embed_nodes(data).clone()
        h0[masks[0]] = self.enc_mask_token.to(h0.dtype)
        edge_features = self.masked_edge_features(data, masks[0])
        feats = [self.encoder.propagate(h0, data, edge_features)]
        for level in range(1, L + 1):
            pooled = scatter(feats[-1], cluster[level], dim=0, dim_size=sizes[level], reduce="mean")
            if level < L:
                # rows outside need[level] keep the plain pooled features: nothing the loss depends on reads them
                rows = need[level]
                pooled = pooled.index_put(
                    (rows,), pooled[rows] + _conv_rows(self.level_encoders[level - 1], pooled, edges[level], rows))
            feats.append(pooled)
        visible_top = visible[L].nonzero().view(-1)
        rows = out[L][visible_top]  # the visible supernodes whose outputs the decoder reads
        top = self.transformer.packed(feats[L][visible_top], data[f"rwpe_{L}"][visible_top],
                                      level_batch(data, L)[visible_top], num_graphs, rows)

        # decoder: coarsest to finest; masked supernodes start from zero (re-mask)
        z = top.new_zeros(sizes[L], top.size(1)).index_put((visible_top[rows],), self.encoder_to_decoder(top))
        for level in range(L, 0, -1):
            below = level - 1
            z = z[cluster[level]]  # unpool: children copy their parent
            skip = read[below] & visible[below]
            z = z.index_put((skip,), z[skip] + self.skips[below](feats[below][skip]))
            if below > 0:
                rows = out[below]
                z = z.index_put((rows,), z[rows] + _conv_rows(self.level_decoders[below - 1], z, edges[below], rows))
        if row_decoder is None:
            return self.decoder(z, data, edge_features)[masks[0]]
        return _conv_rows(row_decoder, z, data.edge_index, masks[0],
                          edge_features if self.decoder.reads_edges else None)
