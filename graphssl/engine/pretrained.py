"""What fine-tuning takes from a pretrained ``encoder.pt``: the model config, the weights and the
state objectives export with the encoder; and the encoder to fine-tune built from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from graphssl.atomistic.encoder import GeometricEncoder
from graphssl.core.config import ModelConfig, from_dict
from graphssl.core.errors import ConfigError
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.nn import build_encoder, degree_histogram
from graphssl.nn.factory import is_geometric


@dataclass
class Pretrained:
    """What fine-tuning needs from a pretrained checkpoint."""

    model: ModelConfig
    weights: dict[str, torch.Tensor]
    deg: torch.Tensor | None = None  # PNA's degree histogram
    null_condition: torch.Tensor | None = None  # SCD's null token


def load_pretrained(path: str | Path) -> Pretrained:
    """Model config and encoder weights of a pretrained ``encoder.pt``."""
    state = load_checkpoint(path)
    if state.get("kind") != "pretrained-encoder":
        raise ConfigError(f"'{path}' is a {state.get('kind')!r} checkpoint; fine-tuning needs a pretrained "
                          "encoder (the encoder.pt that `graphssl pretrain` writes)")
    return Pretrained(from_dict(ModelConfig, state["model"]), state["encoder"], state.get("deg"),
                      state.get("null_condition"))


def build_finetune_encoder(model_cfg: ModelConfig, dataset, pretrained: Pretrained | None, cutoff: float) -> torch.nn.Module:
    """The encoder to fine-tune: pretrained weights when given, else a fresh one of the same kind."""
    if is_geometric(model_cfg.backbone):
        backbone = build_encoder(model_cfg, cutoff=cutoff)
        if pretrained is not None:
            backbone.load_state_dict(pretrained.weights)
        return GeometricEncoder(backbone, pooling=model_cfg.pooling,
                                null_condition=pretrained.null_condition if pretrained else None)
    deg = pretrained.deg if pretrained is not None else None
    if deg is None and model_cfg.backbone.lower() == "pna":
        deg = degree_histogram(dataset)
    encoder = build_encoder(model_cfg, dataset.feature_spec, deg=deg)
    if pretrained is not None:
        encoder.load_state_dict(pretrained.weights)
    return encoder
