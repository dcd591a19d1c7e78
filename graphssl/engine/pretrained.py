"""What fine-tuning takes from a pretrained ``encoder.pt``: the model config, the weights and the
state the objective exported with the encoder; and the encoder to fine-tune built from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graphssl.core.config import ModelConfig, from_dict
from graphssl.core.errors import CheckpointError, ConfigError
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.nn import GraphEncoder, build_encoder, degree_histogram, is_geometric
from graphssl.objectives.registry import OBJECTIVES
from graphssl import zoo

# Bump when what encoder.pt holds changes meaning. 2: encoder weights are a GraphEncoder's
# (geometric ones under "backbone."), and objective additions (SCD's conditioning) are
# rebuilt from "objective_state" instead of a stored null token.
ENCODER_FORMAT = "graphssl-encoder/2"


@dataclass
class Pretrained:
    """What fine-tuning needs from a pretrained checkpoint."""

    model: ModelConfig
    weights: dict[str, torch.Tensor]
    deg: torch.Tensor | None = None  # PNA's degree histogram
    objective: str = ""  # the objective that pretrained the encoder
    objective_state: dict[str, Any] = field(default_factory=dict)  # its export_state()


def load_pretrained(path: str | Path) -> Pretrained:
    """Model config, encoder weights and exported objective state of a pretrained ``encoder.pt``,
    or of a zoo entry named ``zoo:NAME`` (weights checked against the card's sha256)."""
    if zoo.is_zoo_name(path):
        entry = zoo.read(str(path))
        return Pretrained(entry.model, entry.weights, entry.deg, entry.objective, entry.objective_state)
    state = load_checkpoint(path)
    if state.get("kind") != "pretrained-encoder":
        raise ConfigError(f"'{path}' is a {state.get('kind')!r} checkpoint; fine-tuning needs a pretrained "
                          "encoder (the encoder.pt that `graphssl pretrain` writes)")
    found = state.get("encoder_format")
    if found != ENCODER_FORMAT:
        raise CheckpointError(
            f"'{path}' holds an encoder in format {found or 'graphssl-encoder/1 (unmarked)'!r}, but this version "
            f"of graphssl reads {ENCODER_FORMAT!r} (encoders and SCD's conditioning are stored differently "
            "since); pretrain again with this version to get a loadable encoder.pt")
    return Pretrained(from_dict(ModelConfig, state["model"]), state["encoder"], state.get("deg"),
                      state["objective_name"], dict(state.get("objective_state") or {}))


def build_finetune_encoder(model_cfg: ModelConfig, dataset, pretrained: Pretrained | None,
                           cutoff: float) -> GraphEncoder:
    """The encoder to fine-tune: pretrained weights when given, else a fresh one of the same kind.

    What the objective added to the encoder in pretraining (SCD's conditioning, which then
    runs with its null condition) is rebuilt before the weights load.
    """
    geometric = is_geometric(model_cfg.backbone)
    deg = pretrained.deg if pretrained is not None else None
    if deg is None and not geometric and model_cfg.backbone.lower() == "pna":
        deg = degree_histogram(dataset)
    encoder = build_encoder(model_cfg, None if geometric else dataset.feature_spec, deg=deg, cutoff=cutoff)
    if pretrained is not None:
        if pretrained.objective_state:
            OBJECTIVES.get(pretrained.objective).restore_encoder(encoder, pretrained.objective_state)
        encoder.load_state_dict(pretrained.weights)
    return encoder
