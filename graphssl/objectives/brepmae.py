"""BRepMAE: a masked autoencoder for B-rep parts that reconstructs each masked face's geometry
*and* attributes, on Hi-GMAE's hierarchical encoder.

Masked-face autoencoders for CAD parts mask a large share of the faces (about half or more,
far above the 0.25 of molecules: neighbouring faces of a part are strongly correlated, so a
low rate leaves the task trivial) and decode, per masked face, both its sampled geometry and
its discrete and scalar attributes. Here:

1. Masking, per part: in every part of the batch ``round(mask_rate * n)`` of its ``n``
   coarsest-level supernodes are masked (at least one, and at least one stays visible when
   the part has two or more), and the mask is projected down through the coarsening
   assignments, so whole groups of neighbouring faces are hidden together and no part of a
   batch is left unmasked or masked entirely by chance. ``recovery_rate > 0`` turns on
   Hi-GMAE's CoFi-R (a decaying share of the masked fine nodes is un-masked again); it is off
   by default, so the expected share of masked faces is ``mask_rate``.
2. Encoder: exactly Hi-GMAE's (this class subclasses :class:`HiGMAE` and reuses its modules):
   the wrapped :class:`Encoder` (any backbone) on the face graph with a learned [MASK] face
   token, mean pooling up the coarse levels with one GIN layer per intermediate level, and a
   graph transformer with RW-PE over the visible coarsest supernodes. With ``mask_edges``
   (default) every graph edge with a masked end also gets a learned [MASK] edge token: the
   edge grids sample the boundary curves of the face, which would otherwise give its
   geometry away.
3. Decoder: Hi-GMAE's unpooling, skips and per-level GIN layers down to the face graph, one
   GNN layer there (``gine`` reading the edge embeddings when the encoder has them, else
   ``gin``), then per masked face four linear heads after a GELU:

   - geometry: the face's UV grid of points (xyz) and unit normals, ``[6, g, g]``, in the
     coordinates the data holds them in: the adapter normalises each *part* (its bounding
     box centred at the origin, longest side 1), not each face, so a face's points carry its
     position and size within the part. Squared errors count only at the samples the
     trimming mask (channel 6 of ``face_grid``) marks inside the face: the points of the UV
     box that the boundary trims away are not part of the face. ``points`` and ``normals``
     are separate terms (each a mean over the valid samples of all masked faces and the
     three channels);
   - surface type: cross-entropy over the adapter's 11 surface types;
   - area: squared error on ``log(area + 1e-6)`` of the part-normalised area (the log makes
     small fillet and chamfer faces count as much as the stock's sides; the input embedding
     reads the same quantity);
   - degree: squared error on ``log(1 + d)``, ``d`` the face's number of graph edges (B-rep
     edges it shares with other faces; seam and degenerated edges excluded, as in the graph).
     A regression rather than a classification, since the degree is unbounded and ordered,
     and ``log(1 + d)`` keeps faces with dozens of neighbours (a stock face cut by many
     features) from dominating.

Loss = ``point_weight * points + normal_weight * normals + type_weight * type + area_weight
* area + degree_weight * degree``; :meth:`BRepMAE.metrics` reports each term's epoch mean.

As in :class:`HiGMAE`, only rows that can reach the loss are computed (the decoder's last
GNN layer runs on the masked faces alone when it is a row-wise GIN/GINE layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.brep.encoders import NUM_SURFACE_TYPES, FaceGridEmbedding
from graphssl.core.errors import ConfigError, DataError
from graphssl.nn.encoder import Encoder
from graphssl.objectives.base import MESSAGE_PASSING, RunningMeans, require_encoder
from graphssl.objectives.decoder import FeatureDecoder
from graphssl.objectives.higmae import (
    HiGMAE,
)
from graphssl.objectives.registry import OBJECTIVES
from graphssl.transforms.coarsen import level_batch
from graphssl.transforms.masking import incident_edges

#: the loss terms, in the order of their weights' options
TERMS = ("points", "normals", "type", "area", "degree")
WEIGHT_OPTIONS = ("point_weight", "normal_weight", "type_weight", "area_weight", "degree_weight")
_LOG_EPS = 1e-6  # as the face embedding's log area: sliver faces can have area 0
_BREP_FIELDS = ("x", "face_area", "face_grid", "edge_index")


def per_part_mask(batch: Tensor, num_graphs: int, mask_rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Boolean mask over nodes: in each graph of ``batch`` (graph index per node, sorted)
    ``round(mask_rate * n)`` of its ``n`` nodes chosen uniformly, at least one, and at most
    ``n - 1`` when ``n >= 2``."""
    device = batch.device
    counts = torch.bincount(batch, minlength=num_graphs)
    chosen = torch.round(mask_rate * counts.double()).long()
    chosen = torch.minimum(chosen.clamp(min=1), (counts - 1).clamp(min=1))
    # nodes in random order within each graph: a random permutation, then a stable sort by graph
    order = torch.randperm(batch.numel(), device=device, generator=generator)
    order = order[torch.sort(batch[order], stable=True).indices]
    starts = torch.cumsum(counts, 0) - counts
    graph = batch[order]
    position = torch.arange(batch.numel(), device=device) - starts[graph]
    mask = torch.zeros(batch.numel(), dtype=torch.bool, device=device)
    mask[order] = position < chosen[graph]
    return mask


@OBJECTIVES.register("brepmae")
class BRepMAE(HiGMAE):
    """Masked B-rep autoencoder: reconstruct masked faces' UV-grid geometry, surface type, area
    and degree through Hi-GMAE's hierarchical encoder (see the module docstring).

    Args:
        encoder: an :class:`Encoder` built for B-rep parts (face UV-grid embedding), any backbone.
        mask_rate: share of each part's coarsest supernodes masked, so in expectation of its
            faces, in (0, 1) (default 0.6: masked B-rep autoencoders hide half or more of the faces).
        levels, ratio, coarsener, pe_steps: the coarsening hierarchy (as for ``higmae``).
        recovery_rate, recovery_epochs, gamma: Hi-GMAE's CoFi-R (off by default, see above).
        transformer_layers, heads: the coarsest-level graph transformer.
        mask_edges: give the graph edges of masked faces a learned [MASK] edge token too.
        point_weight: weight of the MSE of the UV-grid points over valid (untrimmed) samples.
        normal_weight: weight of the MSE of the UV-grid normals over valid samples.
        type_weight: weight of the surface-type cross-entropy.
        area_weight: weight of the squared error of ``log(area + 1e-6)``.
        degree_weight: weight of the squared error of ``log(1 + degree)``.
    """

    def __init__(
        self,
        encoder: Encoder,
        mask_rate: float = 0.6,
        levels: int = 2,
        ratio: float = 0.25,
        coarsener: str = "algebraic",
        pe_steps: int = 8,
        recovery_rate: float = 0.0,
        recovery_epochs: float | None = None,
        gamma: float = 1.0,
        transformer_layers: int = 1,
        heads: int = 4,
        mask_edges: bool = True,
        point_weight: float = 1.0,
        normal_weight: float = 1.0,
        type_weight: float = 1.0,
        area_weight: float = 1.0,
        degree_weight: float = 1.0,
    ) -> None:
        require_encoder("BRepMAE", encoder, Encoder, MESSAGE_PASSING)
        if not isinstance(encoder.node_embedding, FaceGridEmbedding):
            raise ConfigError(
                "BRepMAE needs an encoder for B-rep parts (a FaceGridEmbedding over face UV grids, what "
                "build_encoder makes from a B-rep data set's feature_spec), got a node embedding "
                f"{type(encoder.node_embedding).__name__}; use a STEP data set "
                "(e.g. data.name: brep-machining-pretrain)")
        if not 0.0 < mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1) (each part keeps a visible face group), got {mask_rate}")
        weights = dict(zip(TERMS, (point_weight, normal_weight, type_weight, area_weight, degree_weight)))
        for option, weight in zip(WEIGHT_OPTIONS, weights.values()):
            if not weight >= 0:  # also refuses NaN
                raise ValueError(f"{option} must be >= 0, got {weight}")
        if not any(weights.values()):
            raise ValueError(f"at least one of {', '.join(WEIGHT_OPTIONS)} must be > 0")
        super().__init__(encoder, mask_rate=mask_rate, levels=levels, ratio=ratio, coarsener=coarsener,
                         pe_steps=pe_steps, recovery_rate=recovery_rate, recovery_epochs=recovery_epochs,
                         gamma=gamma, transformer_layers=transformer_layers, heads=heads,
                         target="embedding", loss="mse")
        self.weights = weights
        self.grid = int(encoder.node_embedding.grid)
        hidden = encoder.out_channels
        # the last GNN layer decodes hidden features, which the heads read (Hi-GMAE's decodes the target)
        self.decoder = FeatureDecoder(encoder, hidden)
        self.mask_edges = bool(mask_edges) and encoder.edge_embedding is not None
        self.edge_mask_token = nn.Parameter(torch.zeros(1, encoder.embed_channels)) if self.mask_edges else None
        self.geometry_head = nn.Linear(hidden, 6 * self.grid * self.grid)
        self.type_head = nn.Linear(hidden, NUM_SURFACE_TYPES)
        self.area_head = nn.Linear(hidden, 1)
        self.degree_head = nn.Linear(hidden, 1)
        self._running = RunningMeans()

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        super().set_epoch(epoch, total_epochs)
        self._running.reset()

    def metrics(self) -> dict[str, float]:
        """Epoch means of the unweighted terms (``brepmae_points``, ...) and the surface-type accuracy."""
        return {f"brepmae_{name}": value for name, value in self._running.means().items()}

    def _check(self, data: Data) -> None:
        missing = [key for key in _BREP_FIELDS if getattr(data, key, None) is None]
        if missing:
            raise DataError(
                f"BRepMAE needs B-rep face graphs (graphssl.brep.adapter.solid_to_data: surface type x, "
                f"face_area, face_grid, edge_index); this batch has no {', '.join(missing)}")
        grid = data.face_grid
        if grid.dim() != 4 or tuple(grid.shape[1:]) != (7, self.grid, self.grid):
            raise DataError(f"face_grid has shape {tuple(grid.shape)}, expected [F, 7, {self.grid}, {self.grid}] "
                            "(points, normals, trimming mask on the encoder's grid)")
        super()._check(data)

    def sample_masks(self, data: Data) -> list[Tensor]:
        """Boolean masks for levels 0..L: sampled per part at level L, projected down, thinned
        at each finer level by the current CoFi-R share (in training)."""
        L = self.levels
        num_graphs = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        masks: list[Tensor] = [torch.empty(0)] * (L + 1)
        masks[L] = per_part_mask(level_batch(data, L), num_graphs, self.mask_rate)
        recovery = self.recovery if self.training else 0.0
        for level in range(L, 0, -1):
            child = masks[level][data[f"cluster_{level}"]]
            if recovery > 0:
                child = child & ~(torch.rand(child.numel(), device=child.device) < recovery)
            masks[level - 1] = child
        return masks

    def forward(self, data: Data) -> Tensor:
        self._check(data)
        masks = self.sample_masks(data)
        return self.loss_terms(data, masks)[0]

    def masked_edge_features(self, data: Data, masked: Tensor) -> Tensor | None:
        """The edge embeddings, with a learned [MASK] token on the edges of masked faces when
        ``mask_edges`` (the edge grids sample a face's boundary curves: its geometry)."""
        edge_features = self.encoder.embed_edges(data)
        if self.mask_edges and edge_features is not None:
            hidden_edges = incident_edges(data.edge_index, masked).unsqueeze(-1)
            # where, not an in-place write: the edge embedding stays in the graph (zero gradient
            # when every edge is masked), so no parameter ever goes without a gradient
            edge_features = torch.where(hidden_edges, self.edge_mask_token.to(edge_features.dtype), edge_features)
        return edge_features

    def predict(self, features: Tensor) -> dict[str, Tensor]:
        """The heads on decoder features ``[M, hidden]``: ``geometry`` ``[M, 6, g, g]``,
        ``type`` logits ``[M, 11]``, ``area`` and ``degree`` ``[M]``."""
        h = F.gelu(features)
        g = self.grid
        return {"geometry": self.geometry_head(h).view(-1, 6, g, g), "type": self.type_head(h),
                "area": self.area_head(h).view(-1), "degree": self.degree_head(h).view(-1)}

    def targets(self, data: Data, masked: Tensor) -> dict[str, Tensor]:
        """What the heads predict for the faces ``masked`` (boolean per face): ``geometry``
        ``[M, 6, g, g]``, ``valid`` (trimming mask) ``[M, g, g]``, ``type`` ``[M]``, ``area``
        ``log(area + 1e-6)`` and ``degree`` ``log(1 + degree)``, ``[M]`` each."""
        grid = data.face_grid[masked].float()
        degree = torch.bincount(data.edge_index[1], minlength=data.num_nodes)[masked]
        return {"geometry": grid[:, :6], "valid": grid[:, 6] > 0.5, "type": data.x[masked].view(-1).long(),
                "area": torch.log(data.face_area[masked].float().view(-1) + _LOG_EPS),
                "degree": torch.log1p(degree.float())}

    def loss_terms(self, data: Data, masks: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted loss and its unweighted terms for the given level masks."""
        predicted = self.predict(self.decode_masked(data, masks))
        target = self.targets(data, masks[0])
        terms = self.compute_terms(predicted, target)
        loss = sum(self.weights[name] * terms[name] for name in TERMS)
        with torch.no_grad():
            accuracy = (predicted["type"].argmax(-1) == target["type"]).float().mean() \
                if target["type"].numel() else torch.zeros(())
        self._running.add(float(target["type"].numel()), **{k: v.detach() for k, v in terms.items()},
                          type_accuracy=accuracy)
        return loss, terms

    @staticmethod
    def compute_terms(predicted: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, Tensor]:
        """The five unweighted terms (see the module docstring) from :meth:`predict`'s and
        :meth:`targets`' dicts; a term with nothing to score is 0 (with a gradient path)."""
        valid = target["valid"].unsqueeze(1)  # [M, 1, g, g]
        # the grid holds the untrimmed surface at trimmed-away samples; selecting the difference
        # (not multiplying by the mask) keeps any value there, even a NaN, out of loss and gradient
        error = torch.where(valid, predicted["geometry"] - target["geometry"], 0.0).pow(2)
        samples = (valid.sum() * 3).clamp(min=1)
        points = error[:, :3].sum() / samples
        normals = error[:, 3:].sum() / samples
        if target["type"].numel():
            kind = F.cross_entropy(predicted["type"], target["type"])
            area = F.mse_loss(predicted["area"], target["area"])
            degree = F.mse_loss(predicted["degree"], target["degree"])
        else:
            kind = area = degree = predicted["type"].sum() * 0.0
        return {"points": points, "normals": normals, "type": kind, "area": area, "degree": degree}
