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
from graphssl.nn import BACKBONES, GraphEncoder, build_encoder, degree_histogram, is_geometric
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
    source: str = ""  # where it was read from, for error messages


def _shape(t: torch.Tensor | tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in (t.shape if isinstance(t, torch.Tensor) else t)) + "]"


def check_pretrained(pretrained: Pretrained) -> Pretrained:
    """Refuse a pretrained encoder whose stored model config is invalid or does not fit the
    tensors it holds, before anything is built from it: a damaged or hand-edited file could
    otherwise ask for an encoder of any size."""
    where = pretrained.source or "the pretrained encoder"
    weights = pretrained.weights
    if not isinstance(weights, dict) or not weights or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise CheckpointError(f"'{where}' holds no encoder weights (a mapping of names to tensors); it is not a "
                              "complete encoder.pt")
    model = pretrained.model
    try:
        model.check("model.")
        BACKBONES.get(model.backbone)
    except ConfigError as exc:
        raise CheckpointError(f"'{where}' stores a model config that cannot be used: {exc}") from None
    dims = {d for t in weights.values() for d in t.shape}
    if model.hidden not in dims:
        raise CheckpointError(f"'{where}' does not fit its own model config: model.hidden={model.hidden}, but no "
                              f"stored tensor has a dimension of that size (largest: {max(dims, default=0)}); the "
                              "file was altered or damaged")
    if model.num_layers > len(weights):
        raise CheckpointError(f"'{where}' does not fit its own model config: model.num_layers={model.num_layers}, "
                              f"but it holds only {len(weights)} tensors; the file was altered or damaged")
    return pretrained


def load_pretrained(path: str | Path) -> Pretrained:
    """Model config, encoder weights and exported objective state of a pretrained ``encoder.pt``,
    or of a zoo entry named ``zoo:NAME`` (weights checked against the card's sha256)."""
    if zoo.is_zoo_name(path):
        entry = zoo.read(str(path))
        return check_pretrained(Pretrained(entry.model, entry.weights, entry.deg, entry.objective,
                                           entry.objective_state, source=str(path)))
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
    missing = [key for key in ("encoder", "model", "objective_name") if key not in state]
    if missing:
        raise CheckpointError(f"'{path}' lacks {', '.join(repr(k) for k in missing)}; it is not a complete encoder.pt "
                              "(pretrain again to get one)")
    if not isinstance(state["model"], dict):
        raise CheckpointError(f"'{path}' stores a model config that is not a mapping: {state['model']!r}")
    try:
        model = from_dict(ModelConfig, state["model"], prefix="model.")
    except ConfigError as exc:
        raise CheckpointError(f"'{path}' stores a model config that cannot be used: {exc}") from None
    objective_state = state.get("objective_state") or {}
    if not isinstance(objective_state, dict):
        raise CheckpointError(f"'{path}' stores an objective state that is not a mapping")
    return check_pretrained(Pretrained(model, state["encoder"], state.get("deg"), str(state["objective_name"]),
                                       dict(objective_state), source=str(path)))


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
    features = None if geometric else dataset.feature_spec
    if pretrained is not None:
        _check_shapes(model_cfg, features, deg, cutoff, pretrained)  # before allocating anything
    encoder = build_encoder(model_cfg, features, deg=deg, cutoff=cutoff)
    if pretrained is not None:
        if pretrained.objective_state:
            OBJECTIVES.get(pretrained.objective).restore_encoder(encoder, pretrained.objective_state)
        try:
            encoder.load_state_dict(pretrained.weights)
        except RuntimeError as exc:  # what the meta-device comparison could not see (PNA, SchNet)
            raise CheckpointError(f"'{pretrained.source or 'the pretrained encoder'}' does not fit the encoder its "
                                  f"model config builds for this data: {_first_problem(exc)}") from None
    return encoder


def _first_problem(exc: Exception) -> str:
    """The first specific line of a ``load_state_dict`` error (its first line only names the class)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)


def _check_shapes(model_cfg: ModelConfig, features: Any, deg: torch.Tensor | None, cutoff: float,
                  pretrained: Pretrained) -> None:
    """Build the encoder on the meta device (no memory, no random numbers) and compare its tensor
    names and shapes with the stored weights; backbones that read tensor values while they are
    built (PNA, SchNet) cannot be built there and are checked when the weights load."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            encoder = build_encoder(model_cfg, features, deg=deg, cutoff=cutoff)
            if pretrained.objective_state:
                OBJECTIVES.get(pretrained.objective).restore_encoder(encoder, pretrained.objective_state)
    except (RuntimeError, NotImplementedError) as exc:
        if "meta" in str(exc):
            return
        raise
    expected = {name: tuple(t.shape) for name, t in encoder.state_dict().items()}
    stored = pretrained.weights
    problems = [f"'{name}' is {_shape(stored[name])} in the file but {_shape(shape)} in the encoder"
                for name, shape in expected.items() if name in stored and tuple(stored[name].shape) != shape]
    missing = [name for name in expected if name not in stored]
    unexpected = [name for name in stored if name not in expected]
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
    if problems:
        raise CheckpointError(
            f"'{pretrained.source or 'the pretrained encoder'}' does not fit the encoder its model config "
            f"(backbone {model_cfg.backbone}, hidden {model_cfg.hidden}, {model_cfg.num_layers} layers) builds for "
            f"this data: {'; '.join(problems[:4])}; it was altered, damaged, or pretrained on data featurised "
            "differently")
