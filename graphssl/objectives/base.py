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
  to the encoder (SCD's conditioning) that fine-tuning must rebuild before loading weights.
"""

from __future__ import annotations

from typing import Any

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
