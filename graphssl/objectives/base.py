"""The objective base class: an objective wraps an encoder and maps a batch to a scalar loss.

    objective = GraphMAE(encoder)
    loss = objective(batch)

Besides ``forward``, the pretraining loop calls the hooks below; the defaults do nothing, so
an objective overrides only what it needs:

- :attr:`Objective.transform`: deterministic per-graph preprocessing (Hi-GMAE's coarsening),
  applied once to the whole data set before training, never per step;
- :meth:`Objective.set_epoch`: a per-epoch schedule (Hi-GMAE's recovery rate);
- :meth:`Objective.unused_parameters`: parameters that can get no gradient in a step, so the
  distributed wrapper must look for them (it costs a pass over the autograd graph per step);
- :meth:`Objective.export_state` and :meth:`Objective.restore_encoder`: what an objective adds
  to the encoder (SCD's conditioning) that fine-tuning must rebuild before loading weights;
- :meth:`Objective.after_step`: called after every optimiser step (moving an EMA target
  encoder towards the trained one: BGRL, JEPA);
- :meth:`Objective.metrics`: extra numbers for the pretraining history, e.g. the spread of the
  embeddings, so that a collapsed run shows.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.core.errors import ConfigError
from graphssl.nn.encoder import Encoder, GraphEncoder
from graphssl.transforms.base import GraphTransform

# what require_encoder's errors say each kind of objective needs
MESSAGE_PASSING = "a message-passing backbone (gin, gine, gcn, gat, sage, pna)"
GEOMETRIC = "a geometric backbone (schnet, painn, et)"


class Objective(nn.Module):
    """Base class of self-supervised objectives: ``loss = objective(batch)``.

    Args:
        encoder: the encoder being pretrained; ``encoder.pt`` holds its weights.
    """

    #: Preprocessing applied once to every graph of the data set before training, or None.
    transform: GraphTransform | None = None

    def __init__(self, encoder: GraphEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, data: Data) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch) -> scalar loss")

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        """Called at the start of every epoch (0-based ``epoch`` of ``total_epochs``)."""

    def unused_parameters(self) -> list[str]:
        """Names (as in ``named_parameters()``) of the parameters that can get no gradient in a
        training step. The distributed wrapper then searches for them every step; an
        objective whose every parameter always gets a gradient returns none."""
        return []

    def export_state(self) -> dict[str, Any]:
        """What fine-tuning needs besides the encoder's weights, saved into ``encoder.pt``
        (tensors and plain values); :meth:`restore_encoder` reads it back."""
        return {}

    @classmethod
    def restore_encoder(cls, encoder: GraphEncoder, state: dict[str, Any]) -> None:
        """Rebuild on a freshly built ``encoder`` what this objective added to it during
        pretraining (from :meth:`export_state`'s dict), before the pretrained weights load."""

    def after_step(self) -> None:
        """Called after every optimiser step (once per step, whatever the gradient accumulation)."""

    def metrics(self) -> dict[str, float]:
        """Extra numbers for this epoch's entry of the pretraining history (means over the steps
        since the last :meth:`set_epoch`); none by default."""
        return {}


def unread_edge_embedding(encoder: Encoder, read_elsewhere: bool = False) -> list[str]:
    """The names of ``encoder``'s edge-embedding parameters when nothing reads its output: not
    the backbone (e.g. B-rep edge grids under gin) and not the objective (``read_elsewhere``)."""
    if encoder.edge_embedding is None or encoder.reads_edge_features or read_elsewhere:
        return []
    return [f"encoder.edge_embedding.{name}" for name, _ in encoder.edge_embedding.named_parameters()]


def require_encoder(objective: str, encoder: nn.Module, kind: type[GraphEncoder], needs: str) -> None:
    """Raise a :class:`ConfigError` unless ``encoder`` is a ``kind``; ``needs`` says which backbones fit."""
    if not isinstance(encoder, kind):
        raise ConfigError(f"{objective} needs {needs}, got a {type(encoder).__name__}; set model.backbone "
                          "to one of them (build the encoder with graphssl.nn.build_encoder)")


def ema_momentum(epoch: int, total_epochs: int, start: float, end: float = 1.0) -> float:
    """The EMA rate of ``epoch`` (0-based): ``start`` at the first epoch, rising to ``end`` on a
    cosine (BYOL, BGRL, I-JEPA): ``end - (end - start) * (1 + cos(pi * epoch / total)) / 2``."""
    progress = min(max(epoch / max(total_epochs, 1), 0.0), 1.0)
    return end - (end - start) * (1.0 + math.cos(math.pi * progress)) / 2.0


def check_momentum(momentum: float) -> None:
    """Raise ``ValueError`` unless ``momentum`` is a valid EMA rate, in [0, 1]."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1] (the EMA target keeps this share of its weights), got {momentum}")


class EMACopy(nn.Module):
    """Gradient-free copies of some modules that follow them by an exponential moving average.

    ``EMACopy(encoder=encoder)`` holds ``self.encoder``, a deep copy whose parameters need no
    gradient; :meth:`update` sets every parameter to ``m * target + (1 - m) * online`` and
    copies the buffers (batch-norm statistics). The copies are submodules, so the objective's
    ``state_dict`` (and with it the pretraining checkpoint) holds them, and a resumed run
    continues from the same target weights.
    """

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__()
        self.names = tuple(modules)
        for name, module in modules.items():
            self.add_module(name, copy.deepcopy(module).requires_grad_(False))

    @torch.no_grad()
    def update(self, momentum: float, **online: nn.Module) -> None:
        """Move each copy towards the module of the same name in ``online``."""
        for name in self.names:
            target, source = getattr(self, name), online[name]
            targets = [p for p in target.parameters()]
            sources = [p.detach() for p in source.parameters()]
            if targets:
                torch._foreach_mul_(targets, momentum)
                torch._foreach_add_(targets, sources, alpha=1.0 - momentum)
            for mine, theirs in zip(target.buffers(), source.buffers()):
                mine.copy_(theirs)


class RunningMeans:
    """Per-epoch means of a few scalars an objective reports through :meth:`Objective.metrics`,
    each step weighted by ``weight`` (e.g. its number of graphs, so that an epoch's small last
    batch counts for little)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def add(self, weight: float = 1.0, **values: float | Tensor) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + weight * float(value)
            self.counts[name] = self.counts.get(name, 0.0) + weight

    def means(self) -> dict[str, float]:
        return {name: total / self.counts[name] for name, total in self.sums.items()}

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()


@torch.no_grad()
def embedding_std(z: Tensor) -> Tensor:
    """Mean over dimensions of the per-dimension standard deviation of the l2-normalised rows of
    ``z`` (BYOL / SimSiam's collapse check): 0 when every row points the same way, at most
    ``1 / sqrt(dim)`` when the rows spread evenly over the sphere."""
    if z.size(0) < 2:
        return z.new_zeros(())
    return F.normalize(z.float(), dim=-1).std(dim=0).mean()
