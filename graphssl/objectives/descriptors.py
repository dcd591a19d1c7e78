"""Descriptor prediction (CheMeleon-style): regress whole-graph descriptors from the pooled encoder
output, on molecules (RDKit 2D descriptors) and CAD parts (solid properties).

The graphs carry raw descriptor values (``data.descriptors``, ``[1, d]``, NaN where one failed),
attached when the data is built with ``data.descriptors`` set (``fast`` or ``all`` for
molecules, ``brep`` for parts). The objective scales them robustly per descriptor,
``(value - median) / IQR`` clipped to ``[-clip, clip]``, so that heavy-tailed descriptors (counts,
information contents) cannot dominate the loss. A descriptor whose IQR is 0 (e.g. a rare
functional group) is scaled by its standard deviation instead, or by 1 when that is 0 too.

Where the scaling statistics come from: the first ``fit_graphs`` graphs of the pretraining
data. For a data set held in memory the pretraining loop hands the whole data set to
:attr:`DescriptorPrediction.transform` once before training, and the statistics come from up to
``fit_graphs`` graphs spread evenly over it. For streamed (sharded) data they come from the
first training batches, refitted each time the number of graphs seen doubles, and fixed once
``fit_graphs`` graphs have been seen. They are buffers of the objective, so a resumed run keeps
them; under ``torchrun`` the replicas use rank 0's (DDP broadcasts buffers every step).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.core.errors import ConfigError
from graphssl.nn.encoder import Encoder, GraphEncoder
from graphssl.objectives.base import Objective, unread_edge_embedding
from graphssl.objectives.registry import OBJECTIVES
from graphssl.transforms.base import GraphTransform

__all__ = ["DESCRIPTOR_LOSSES", "DescriptorPrediction", "descriptor_loss", "descriptor_width", "robust_scale",
           "robust_statistics"]

DESCRIPTOR_LOSSES = ("mse", "smooth_l1")

_MISSING = ("graphs carry no descriptors: set data.descriptors (fast or all for molecules, brep for CAD "
            "parts; for a prepared folder, prepare it again with it) to pretrain with objective descriptors")


def descriptor_width(set_name: str, encoder: GraphEncoder | None = None) -> tuple[str, int]:
    """The descriptor set (``auto`` resolved: ``brep`` for a B-rep encoder, else ``fast``) and
    its number of descriptors."""
    if set_name == "auto":
        set_name = "brep" if _reads_parts(encoder) else "fast"
    from graphssl.brep.descriptors import BREP_DESCRIPTORS, BREP_SET  # no OpenCascade needed

    if set_name == BREP_SET:
        return set_name, len(BREP_DESCRIPTORS)
    from graphssl.molecule.descriptors import DESCRIPTOR_SETS  # RDKit: only for molecule sets

    if set_name not in DESCRIPTOR_SETS:
        raise ConfigError(f"unknown descriptor set {set_name!r}; choose auto, {', '.join(DESCRIPTOR_SETS)} "
                          f"(molecules) or {BREP_SET} (CAD parts), the value of data.descriptors")
    return set_name, len(DESCRIPTOR_SETS[set_name])


def _reads_parts(encoder: GraphEncoder | None) -> bool:
    from graphssl.brep.encoders import FaceGridEmbedding  # plain torch, no OpenCascade

    return isinstance(getattr(encoder, "node_embedding", None), FaceGridEmbedding)


def robust_statistics(values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per column of ``values`` ``[N, d]`` (NaN or infinite = missing): the median, the scale
    (IQR; the standard deviation where the IQR is 0; 1 where both are 0) and whether the column
    has any finite value. Columns without one get median 0 and scale 1, so every returned
    value is finite."""
    x = values.detach().double().cpu().numpy()
    x = np.where(np.isfinite(x), x, np.nan)
    with warnings.catch_warnings():  # all-NaN columns: handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        q1, median, q3 = np.nanpercentile(x, [25, 50, 75], axis=0) if len(x) else np.full((3, x.shape[1]), np.nan)
        std = np.nanstd(x, axis=0) if len(x) else np.full(x.shape[1], np.nan)
    valid = np.isfinite(median)
    scale = np.where(q3 - q1 > 0, q3 - q1, np.where(std > 0, std, 1.0))
    scale = np.where(valid & np.isfinite(scale), scale, 1.0)
    median = np.where(valid, median, 0.0)
    return torch.from_numpy(median).float(), torch.from_numpy(scale).float(), torch.from_numpy(valid)


def robust_scale(values: Tensor, center: Tensor, scale: Tensor, clip: float) -> Tensor:
    """``(values - center) / scale`` clipped to ``[-clip, clip]``; NaN where ``values`` is NaN or
    infinite (a missing value stays missing; it is never clipped into a real one)."""
    values = values.float()
    values = torch.where(torch.isfinite(values), values, torch.full_like(values, math.nan))
    return ((values - center) / scale).clamp(-clip, clip)


def descriptor_loss(pred: Tensor, target: Tensor, scored: Tensor, loss: str = "mse") -> Tensor:
    """The mean ``loss`` (``mse`` or ``smooth_l1``) over the entries where ``scored`` is true (and
    the target is finite); zero, with a gradient path, when there are none."""
    scored = scored & torch.isfinite(target)
    if not bool(scored.any()):
        return pred.sum() * 0.0
    p, t = pred[scored], target[scored].to(pred.dtype)
    return F.mse_loss(p, t) if loss == "mse" else F.smooth_l1_loss(p, t, beta=1.0)


def _descriptor_rows(graphs: Sequence[Data], limit: int) -> Tensor:
    """The raw descriptors of up to ``limit`` graphs spread evenly over ``graphs``, ``[n, d]``."""
    n = len(graphs)
    positions = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(np.int64)) if n else np.zeros(0, int)
    store, indices = getattr(graphs, "store", None), getattr(graphs, "indices", None)
    tensors = getattr(store, "t", None)
    if isinstance(tensors, dict) and indices is not None:
        if "descriptors" not in tensors:
            raise ConfigError(f"the pretraining {_MISSING}")
        # the stored rows directly: no graph is rebuilt
        return tensors["descriptors"][torch.as_tensor(np.asarray(indices)[positions])]
    rows = []
    for i in positions:
        value = getattr(graphs[int(i)], "descriptors", None)
        if value is None:
            raise ConfigError(f"the pretraining {_MISSING}")
        rows.append(value.reshape(1, -1))
    return torch.cat(rows) if rows else torch.zeros(0, 0)


class DescriptorScaling(GraphTransform):
    """The objective's hook into the pretraining loop: :meth:`many` fits the scaling statistics on
    the data set (graphs are left as they are, and no copy is made); per graph it does nothing."""

    def __init__(self, fit: Callable[[Tensor], None], limit: int) -> None:
        self._fit, self.limit = fit, limit

    def forward(self, data: Data) -> Data:
        return data

    def many(self, graphs: Sequence[Data], progress: bool = False) -> Sequence[Data]:
        if self._fit is not None:
            self._fit(_descriptor_rows(graphs, self.limit))
        return graphs  # unchanged: the data set itself serves as the "transformed" graphs

    def __getstate__(self) -> dict[str, Any]:
        # data-loader workers only call the per-graph no-op; they need not carry the objective
        return {"_fit": None, "limit": self.limit}

    def __repr__(self) -> str:
        return f"DescriptorScaling(fit_graphs={self.limit})"


@OBJECTIVES.register("descriptors")
class DescriptorPrediction(Objective):
    """Predict robustly scaled whole-graph descriptors from the pooled encoder output.

    Per step a random share ``target_rate`` of the (graph, descriptor) entries is scored; the
    loss is the mean error over the scored entries whose target is finite (missing and failed
    descriptors never count).

    Args:
        encoder: the encoder being pretrained (any backbone; its pooling gives the graph vector).
        descriptors: the descriptor set the data was built with (``data.descriptors``): ``fast``
            or ``all`` (molecules), ``brep`` (CAD parts); ``auto`` is ``brep`` for a B-rep
            encoder and ``fast`` otherwise. It sizes the prediction head.
        target_rate: share of descriptor entries scored per step (0.7: 70 % of the targets).
        loss: ``mse`` or ``smooth_l1`` (Huber with beta 1, in scaled units).
        clip: scaled targets are clipped to ``[-clip, clip]``.
        fit_graphs: graphs the scaling statistics come from (see the module docstring).
        hidden: width of the head's hidden layer (default: the encoder's output width).
    """

    def __init__(self, encoder: GraphEncoder, descriptors: str = "auto", target_rate: float = 0.7,
                 loss: str = "mse", clip: float = 10.0, fit_graphs: int = 20_000, hidden: int | None = None) -> None:
        super().__init__(encoder)
        if not isinstance(target_rate, (int, float)) or not 0.0 < target_rate <= 1.0:
            raise ValueError(f"target_rate must be in (0, 1] (the share of descriptors scored per step), "
                             f"got {target_rate!r}")
        if loss not in DESCRIPTOR_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of: {', '.join(DESCRIPTOR_LOSSES)}")
        if not isinstance(clip, (int, float)) or not clip > 0:
            raise ValueError(f"clip must be a positive number, got {clip!r}")
        if isinstance(fit_graphs, bool) or not isinstance(fit_graphs, int) or fit_graphs < 1:
            raise ValueError(f"fit_graphs must be a positive integer, got {fit_graphs!r}")
        self.descriptors, self.num_descriptors = descriptor_width(descriptors, encoder)
        self.target_rate, self.loss, self.clip, self.fit_graphs = float(target_rate), loss, float(clip), fit_graphs
        width = hidden or encoder.out_channels
        self.head = nn.Sequential(nn.Linear(encoder.out_channels, width), nn.ReLU(),
                                  nn.Linear(width, self.num_descriptors))
        d = self.num_descriptors
        self.register_buffer("center", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        self.register_buffer("valid", torch.zeros(d, dtype=torch.bool))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.long))  # graphs the statistics come from
        self.register_buffer("fit_done", torch.zeros((), dtype=torch.bool))
        self._seen: list[Tensor] = []  # raw rows of the first batches, until the statistics are fixed
        self.transform = DescriptorScaling(self.fit, fit_graphs)

    def unused_parameters(self) -> list[str]:
        return unread_edge_embedding(self.encoder) if isinstance(self.encoder, Encoder) else []

    @torch.no_grad()
    def fit(self, values: Tensor, done: bool = True) -> None:
        """Set the scaling statistics from raw descriptors ``[N, d]``; ``done`` fixes them."""
        self._check_width(values)
        center, scale, valid = robust_statistics(values)
        self.center.copy_(center)
        self.scale.copy_(scale)
        self.valid.copy_(valid)
        self.fitted.fill_(len(values))
        self.fit_done.fill_(done)
        if done:
            self._seen = []

    def _check_width(self, values: Tensor) -> None:
        if values.dim() != 2 or values.size(1) != self.num_descriptors:
            width = values.size(-1) if values.dim() else 0
            raise ConfigError(f"objective descriptors expects {self.num_descriptors} descriptors per graph (set "
                              f"{self.descriptors!r}) but the graphs carry {width}; set objective.descriptors to "
                              "the value of data.descriptors")

    def _fit_from_batch(self, raw: Tensor) -> None:
        """Streamed data: refit on the rows seen so far whenever their number doubles."""
        self._seen.append(raw.detach().cpu())
        seen = sum(len(r) for r in self._seen)
        if seen >= 2 * int(self.fitted) or seen >= self.fit_graphs:
            rows = torch.cat(self._seen)[: self.fit_graphs]
            self.fit(rows, done=len(rows) >= self.fit_graphs)

    def targets(self, data: Data) -> Tensor:
        """The scaled, clipped targets of a batch ``[B, d]`` (NaN where missing)."""
        raw = getattr(data, "descriptors", None)
        if raw is None:
            raise ConfigError(f"the {_MISSING}")
        self._check_width(raw)
        if not bool(self.fit_done) and (self.training or int(self.fitted) == 0):
            self._fit_from_batch(raw)
        return robust_scale(raw, self.center, self.scale, self.clip)

    def forward(self, data: Data) -> Tensor:
        target = self.targets(data)
        keep = torch.rand(target.shape, device=target.device) < self.target_rate
        pred = self.head(self.encoder.embed_graphs(data))
        return descriptor_loss(pred, target, keep & self.valid, self.loss)
