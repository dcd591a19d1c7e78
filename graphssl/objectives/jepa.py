"""Graph JEPA: predict the latent embeddings of hidden substructures from the rest of the graph.

The substructures are the clusters of a coarsening hierarchy (the one Hi-GMAE builds,
:mod:`graphssl.transforms.coarsen`) at a chosen level: groups of bonded atoms, ring
systems and fragments with the ``chemistry`` coarsener, groups of adjacent faces on B-rep
parts. Per step:

1. A share ``mask_rate`` of each graph's clusters is hidden (at least one per graph, and at
   least one cluster stays visible).
2. The context encoder (the encoder being pretrained) sees the graph without the hidden
   clusters' nodes: they and their edges are removed, so nothing of them reaches the context.
3. The target encoder, an exponential moving average of the context encoder with no
   gradient, sees the whole graph. Its node features (of the last ``target_layers`` layers,
   each layer-normalised) are mean-pooled over each hidden cluster: the targets.
4. A predictor (GIN layers on the coarse graph of that level) starts from the context
   embeddings pooled per visible cluster, and from a learned mask token plus the cluster's
   positional code (its random-walk encoding on the coarse graph) at each hidden cluster,
   and predicts the hidden clusters' targets. Loss: smooth L1 or cosine, in latent space.

Collapse (every embedding the same, which an EMA target alone does not prevent) is guarded
by the EMA schedule and, optionally, VICReg's variance and covariance terms on the context
embeddings; :meth:`JEPA.metrics` reports the spread of the embeddings every epoch.

Any encoder works: the context is an induced subgraph, so 2D backbones (molecules, B-rep
parts) and geometric backbones (atomistic structures: the neighbour list keeps each edge's
periodic shift, distances are recomputed from positions) take it alike.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GINConv
from torch_geometric.nn.models import MLP
from torch_geometric.utils import scatter

from graphssl.core.errors import DataError
from graphssl.nn.encoder import Encoder, GraphEncoder
from graphssl.nn.geometric import GeometricEncoder
from graphssl.objectives.base import (
    EMACopy,
    Objective,
    RunningMeans,
    check_momentum,
    ema_momentum,
    embedding_std,
    require_encoder,
    unread_edge_embedding,
)
from graphssl.objectives.registry import OBJECTIVES
from graphssl.transforms.augment import induced_subgraph, num_graphs, rank_within, share_of
from graphssl.transforms.coarsen import Coarsen, level_batch

LOSSES = ("smooth_l1", "cosine")


def hidden_clusters(cluster_graph: Tensor, size: int, mask_rate: float) -> Tensor:
    """Boolean per cluster: ``round(mask_rate * c)`` of each graph's ``c`` clusters, at least one
    and at most ``c - 1`` (a graph with a single cluster hides nothing)."""
    counts = torch.bincount(cluster_graph, minlength=size)
    k = torch.minimum(share_of(counts, mask_rate).clamp(min=1), counts - 1)
    rank = rank_within(cluster_graph, torch.rand(cluster_graph.numel(), device=cluster_graph.device))
    return rank < k[cluster_graph]


def node_clusters(data: Data, level: int) -> Tensor:
    """The level-``level`` cluster of every level-0 node of a hierarchy."""
    cluster = data["cluster_1"]
    for lvl in range(2, level + 1):
        cluster = data[f"cluster_{lvl}"][cluster]
    return cluster


def without_levels(data: Data) -> Data:
    """A shallow copy of ``data`` without the coarse levels (only level 0 is encoded)."""
    out = copy.copy(data)
    for key in list(out.keys()):
        if key.startswith(("cluster_", "edge_index_", "rwpe_", "n_")) and key[-1].isdigit():
            del out[key]
    return out


def vicreg_terms(z: Tensor) -> tuple[Tensor, Tensor]:
    """VICReg's variance term (mean hinge ``max(0, 1 - std)`` per dimension) and covariance term
    (sum of squared off-diagonal covariances over the width) of the rows of ``z``."""
    if z.size(0) < 2:
        zero = z.sum() * 0.0
        return zero, zero
    z = z - z.mean(dim=0)
    std = torch.sqrt(z.var(dim=0) + 1e-4)
    variance = F.relu(1.0 - std).mean()
    cov = (z.t() @ z) / (z.size(0) - 1)
    off = cov - torch.diag(torch.diag(cov))
    return variance, off.pow(2).sum() / z.size(1)


class _LayerTap:
    """Records the node features of the last ``count`` layers of a (target) encoder; the last of
    them is the encoder's output, the others are read by hooks on its layers."""

    def __init__(self, encoder: GraphEncoder, count: int) -> None:
        self.count = count
        self.outputs: dict[int, Tensor] = {}
        if count == 1:
            return
        convs = None
        if isinstance(encoder, GeometricEncoder):
            layers = encoder.backbone.num_layers
        else:
            convs = getattr(getattr(encoder, "backbone", None), "convs", None)
            if convs is None:
                raise ValueError("target_layers > 1 needs a backbone that exposes its layers (a PyG BasicGNN's "
                                 "convs, or a geometric backbone); use target_layers=1")
            layers = len(convs)
        if count > layers:
            raise ValueError(f"target_layers={count} exceeds the encoder's {layers} layers")
        wanted = range(layers - count, layers - 1)
        if convs is None:
            encoder.backbone.set_layer_hook(_Recorder(self.outputs, set(wanted)))
        else:
            for index in wanted:
                convs[index].register_forward_hook(self._hook(index))
        self.first = layers - count

    def _hook(self, index: int):
        def record(module: nn.Module, args, output) -> None:
            self.outputs[index] = output
        return record

    def __call__(self, encoder: GraphEncoder, data: Data) -> list[Tensor]:
        self.outputs.clear()
        last = encoder(data)
        if self.count == 1:
            return [last]
        layers = [self.outputs[i] for i in range(self.first, self.first + self.count - 1)] + [last]
        self.outputs.clear()  # hold no activations between steps
        return layers


class _Recorder(nn.Module):
    """A geometric backbone's layer hook that records the scalars of some layers, unchanged."""

    def __init__(self, outputs: dict[int, Tensor], layers: set[int]) -> None:
        super().__init__()
        self.outputs, self.layers = outputs, layers

    def forward(self, layer: int, s: Tensor, data: Data) -> Tensor:
        if layer in self.layers:
            self.outputs[layer] = s
        return s


class _Predictor(nn.Module):
    """Context per visible cluster and a mask token plus positional code per hidden cluster,
    through residual GIN layers on the coarse graph, to one prediction per hidden cluster."""

    def __init__(self, in_channels: int, width: int, out_channels: int, pe_steps: int, layers: int) -> None:
        super().__init__()
        self.inp = nn.Linear(in_channels, width)
        self.pe = nn.Linear(pe_steps, width) if pe_steps else None
        self.mask_token = nn.Parameter(torch.zeros(1, width))
        self.layers = nn.ModuleList(GINConv(MLP([width, 2 * width, width], norm=None), train_eps=True)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out_channels)

    def forward(self, context: Tensor, hidden: Tensor, pe: Tensor, edge_index: Tensor) -> Tensor:
        h = torch.where(hidden.unsqueeze(-1), self.mask_token.to(context.dtype), self.inp(context))
        if self.pe is not None:
            h = h + self.pe(pe.to(h.dtype))
        for layer in self.layers:
            h = h + layer(h, edge_index)
        return self.out(self.norm(h[hidden]))


@OBJECTIVES.register("jepa")
class JEPA(Objective):
    """Joint-embedding predictive pretraining on coarsening clusters, around any encoder.

    Args:
        encoder: the (context) encoder being pretrained: any 2D or geometric backbone.
        mask_rate: share of each graph's clusters hidden per step.
        levels, ratio, coarsener, pe_steps: the coarsening hierarchy (as for ``higmae``).
        level: the hierarchy level whose clusters are the substructures (default: the coarsest).
        predictor_layers: GIN layers of the predictor on the coarse graph.
        predictor_width: the predictor's width (default: the encoder width).
        target_layers: predict the target encoder's last this many layers (each layer-normalised,
            concatenated): hidden-layer self-distillation; 1 = the output layer only.
        loss: ``smooth_l1`` or ``cosine`` (per layer, averaged).
        momentum: initial EMA rate of the target encoder, rising to 1 on a cosine over the epochs.
        var_weight, cov_weight: weights of VICReg's variance and covariance terms on the context
            embeddings of the visible clusters (0 turns them off).
    """

    def __init__(
        self,
        encoder: GraphEncoder,
        mask_rate: float = 0.3,
        levels: int = 2,
        ratio: float = 0.5,
        coarsener: str = "algebraic",
        pe_steps: int = 8,
        level: int | None = None,
        predictor_layers: int = 2,
        predictor_width: int | None = None,
        target_layers: int = 1,
        loss: str = "smooth_l1",
        momentum: float = 0.996,
        var_weight: float = 0.0,
        cov_weight: float = 0.0,
    ) -> None:
        require_encoder("JEPA", encoder, GraphEncoder, "an encoder from graphssl.nn.build_encoder (any backbone)")
        super().__init__(encoder)
        if not 0.0 < mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1), got {mask_rate}")
        level = levels if level is None else level
        if not 1 <= level <= levels:
            raise ValueError(f"level must be between 1 and levels={levels}, got {level}")
        if predictor_layers < 0 or target_layers < 1:
            raise ValueError(f"predictor_layers must be >= 0 and target_layers >= 1, "
                             f"got {predictor_layers} and {target_layers}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}'. Choose one of: {', '.join(LOSSES)}")
        check_momentum(momentum)
        if var_weight < 0 or cov_weight < 0:
            raise ValueError(f"var_weight and cov_weight must be >= 0, got {var_weight} and {cov_weight}")
        self.transform = Coarsen(levels=levels, ratio=ratio, method=coarsener, pe_steps=pe_steps)
        self.levels, self.level, self.mask_rate = levels, level, mask_rate
        self.loss, self.base_momentum = loss, momentum
        self.momentum = momentum  # the current epoch's rate, set by set_epoch
        self.var_weight, self.cov_weight = var_weight, cov_weight
        self.target_layers = target_layers
        hidden = encoder.out_channels
        self.predictor = _Predictor(hidden, predictor_width or hidden, hidden * target_layers, pe_steps,
                                    predictor_layers)
        self.target = EMACopy(encoder=encoder)
        self._tap = _LayerTap(self.target.encoder, target_layers)
        self.logged = RunningMeans()

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        """Set this epoch's EMA rate and start the epoch's metrics afresh."""
        self.momentum = ema_momentum(epoch, total_epochs, self.base_momentum)
        self.logged.reset()

    def after_step(self) -> None:
        """Move the target encoder towards the context encoder."""
        self.target.update(self.momentum, encoder=self.encoder)

    def metrics(self) -> dict[str, float]:
        """``embedding_std`` (context graph embeddings) and ``target_std`` (target graph
        embeddings), see :func:`embedding_std`: near 0 means collapse."""
        return self.logged.means()

    def unused_parameters(self) -> list[str]:
        return unread_edge_embedding(self.encoder) if isinstance(self.encoder, Encoder) else []

    def _check(self, data: Data) -> None:
        if f"cluster_{self.levels}" not in data:
            raise DataError(
                f"JEPA needs graphs with {self.levels} coarse levels: apply its transform first, "
                f"e.g. graphs = objective.transform.many(graphs) (the pretraining loop does this)"
            )

    def _targets(self, plain: Data, cluster: Tensor, size: int) -> Tensor:
        """The target encoder's layer-normalised node features, mean-pooled per cluster."""
        layers = self._tap(self.target.encoder, plain)
        if self.training and num_graphs(plain) > 1:
            self.logged.add(num_graphs(plain), target_std=embedding_std(self.target.encoder.pool(layers[-1], plain)))
        pooled = [scatter(F.layer_norm(h, h.shape[-1:]), cluster, dim=0, dim_size=size, reduce="mean")
                  for h in layers]
        return torch.cat(pooled, dim=-1)

    def _latent_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.size(0) == 0:
            return pred.sum() * 0.0
        if self.loss == "smooth_l1":
            return F.smooth_l1_loss(pred, target)
        chunks = zip(pred.chunk(self.target_layers, dim=-1), target.chunk(self.target_layers, dim=-1))
        return torch.stack([(1.0 - F.cosine_similarity(p, t, dim=-1)).mean() for p, t in chunks]).mean()

    def forward(self, data: Data) -> Tensor:
        self._check(data)
        size = num_graphs(data)
        counts = data[f"n_{self.level}"]  # clusters per graph (an int for a single graph)
        n_clusters = int(counts.sum()) if torch.is_tensor(counts) else int(counts)
        cluster = node_clusters(data, self.level)
        hidden = hidden_clusters(level_batch(data, self.level), size, self.mask_rate)
        visible_nodes = ~hidden[cluster]

        plain = without_levels(data)
        context = induced_subgraph(plain, visible_nodes)
        h = self.encoder(context)
        if self.training and size > 1:
            self.logged.add(size, embedding_std=embedding_std(self.encoder.pool(h, context)))
        context_clusters = scatter(h, cluster[visible_nodes], dim=0, dim_size=n_clusters, reduce="mean")
        pred = self.predictor(context_clusters, hidden, data[f"rwpe_{self.level}"],
                              data[f"edge_index_{self.level}"])
        with torch.no_grad():
            target = self._targets(plain, cluster, n_clusters)[hidden]
        loss = self._latent_loss(pred, target)
        if self.var_weight or self.cov_weight:
            variance, covariance = vicreg_terms(context_clusters[~hidden])
            loss = loss + self.var_weight * variance + self.cov_weight * covariance
        return loss
