"""GraphCL (You et al. 2020): contrast two augmented views of each graph; and its
negative-free variant after BGRL (Thakoor et al. 2021), ``loss: bgrl``.

Per step, each graph of the batch gets two views (:mod:`graphssl.transforms.augment`); the
encoder and its readout embed each view; then

- ``ntxent``: a 2-layer projection head maps the embeddings, and NT-Xent pulls the two views
  of a graph together against the other ``2B - 2`` views of the batch;
- ``bgrl``: an online branch (encoder, projection head, predictor) predicts what a target
  branch (an exponential moving average of the online encoder and head, no gradient) gives
  for the *other* view; loss ``2 - 2 cos`` summed over both directions. No negatives, so it
  works at any batch size; the EMA rate rises from ``momentum`` to 1 over the epochs.

Both are graph-level (the pooled embedding of each view), so every augmentation, including
those that change the node set, fits. Attribute masking replaces the masked nodes' input
embeddings with a learned token, which works for atom categories and B-rep UV grids alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.nn.encoder import Encoder
from graphssl.objectives.base import (
    MESSAGE_PASSING,
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
from graphssl.transforms.augment import View, augment, check_augmentation

LOSSES = ("ntxent", "bgrl")


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent (SimCLR): rows ``i`` of ``z1`` and ``z2`` are the two views of graph ``i``.

    With ``z`` the ``2B`` l2-normalised rows and ``s_ij = z_i . z_j / temperature``, the loss is
    the mean over all ``2B`` rows of ``-log(exp(s_ip) / sum_{j != i} exp(s_ij))``, ``p`` being
    the other view of the same graph.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"nt_xent needs two views of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b = z1.size(0)
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    sim = (z @ z.t()) / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, positive)


def bgrl_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """``2 - 2 cos(prediction, target)``, averaged over rows (BYOL / BGRL)."""
    return (2.0 - 2.0 * F.cosine_similarity(prediction, target.detach(), dim=-1)).mean()


class MaskToken(nn.Module):
    """A learned vector that replaces the input embeddings of masked nodes."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels))

    def forward(self, h: Tensor, masked: Tensor) -> Tensor:
        # torch.where keeps the token in the graph (zero gradient) when no node is masked
        return torch.where(masked.unsqueeze(-1), self.weight.to(h.dtype), h)


def _mlp(channels: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, out))


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    values = tuple(float(v) for v in value)
    if len(values) != 2:
        raise ValueError(f"{name} takes one value or two (one per view), got {list(value)}")
    return values[0], values[1]


@OBJECTIVES.register("graphcl")
class GraphCL(Objective):
    """Contrastive pretraining with two augmented views per graph, around any :class:`Encoder`.

    Args:
        encoder: the encoder being pretrained (molecules, B-rep parts; any 2D backbone).
        augmentations: the two views' augmentations, from ``drop_nodes``, ``perturb_edges``,
            ``mask_nodes``, ``subgraph``, ``none`` (GraphCL's molecule setting: node dropping
            and subgraph).
        strength: the share of each graph an augmentation changes, one value or one per view.
        temperature: NT-Xent's temperature.
        projection: output width of the projection head (default: the encoder width).
        loss: ``ntxent`` (negatives from the batch) or ``bgrl`` (no negatives: predictor and
            EMA target).
        momentum: ``bgrl``'s initial EMA rate, rising to 1 on a cosine over the epochs.
    """

    def __init__(
        self,
        encoder: Encoder,
        augmentations: Sequence[str] = ("drop_nodes", "subgraph"),
        strength: float | Sequence[float] = 0.2,
        temperature: float = 0.1,
        projection: int | None = None,
        loss: str = "ntxent",
        momentum: float = 0.99,
    ) -> None:
        require_encoder("GraphCL", encoder, Encoder, MESSAGE_PASSING)
        super().__init__(encoder)
        if isinstance(augmentations, str) or len(augmentations) != 2:
            raise ValueError(f"augmentations takes two names (one per view), got {augmentations!r}")
        self.augmentations = tuple(str(a) for a in augmentations)
        self.strength = _pair(strength, "strength")
        for name, value in zip(self.augmentations, self.strength):
            check_augmentation(name, value)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}'. Choose one of: {', '.join(LOSSES)}")
        check_momentum(momentum)
        self.temperature, self.loss, self.base_momentum = temperature, loss, momentum
        self.momentum = momentum  # the current epoch's rate, set by set_epoch
        hidden = encoder.out_channels
        width = projection or hidden
        self.mask_token = MaskToken(encoder.embed_channels) if "mask_nodes" in self.augmentations else None
        self.projector = _mlp(hidden, width)
        self.predictor = _mlp(width, width) if loss == "bgrl" else None
        self.target = self._make_target() if loss == "bgrl" else None
        self.logged = RunningMeans()

    def _online(self) -> dict[str, nn.Module]:
        parts: dict[str, nn.Module] = {"encoder": self.encoder, "projector": self.projector}
        if self.mask_token is not None:
            parts["mask_token"] = self.mask_token
        return parts

    def _make_target(self) -> EMACopy:
        return EMACopy(**self._online())

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        """Set this epoch's EMA rate (``bgrl``) and start the epoch's metrics afresh."""
        self.momentum = ema_momentum(epoch, total_epochs, self.base_momentum)
        self.logged.reset()

    def after_step(self) -> None:
        """Move the target branch towards the online one (``bgrl``)."""
        if self.target is not None:
            self.target.update(self.momentum, **self._online())

    def metrics(self) -> dict[str, float]:
        """``embedding_std``: spread of the graph embeddings (see :func:`embedding_std`)."""
        return self.logged.means()

    def unused_parameters(self) -> list[str]:
        return unread_edge_embedding(self.encoder)

    @staticmethod
    def _embed(encoder: Encoder, mask_token: nn.Module | None, view: View) -> Tensor:
        h0 = encoder.embed_nodes(view.data)
        if view.masked is not None and mask_token is not None:
            h0 = mask_token(h0, view.masked)
        h = encoder.propagate(h0, view.data, encoder.embed_edges(view.data))
        return encoder.pool(h, view.data)

    def views(self, data: Data) -> tuple[View, View]:
        """The two augmented views of a batch."""
        return (augment(data, self.augmentations[0], self.strength[0]),
                augment(data, self.augmentations[1], self.strength[1]))

    def forward(self, data: Data) -> Tensor:
        views = self.views(data)
        graphs = [self._embed(self.encoder, self.mask_token, v) for v in views]
        if self.training and graphs[0].size(0) > 1:
            self.logged.add(graphs[0].size(0), embedding_std=embedding_std(graphs[0]))
        projected = [self.projector(g) for g in graphs]
        if self.loss == "ntxent":
            return nt_xent(projected[0], projected[1], self.temperature)
        predicted = [self.predictor(p) for p in projected]
        with torch.no_grad():
            target = self.target
            targets = [target.projector(self._embed(target.encoder, getattr(target, "mask_token", None), v))
                       for v in views]
        return bgrl_loss(predicted[0], targets[1]) + bgrl_loss(predicted[1], targets[0])
