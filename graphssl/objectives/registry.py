"""Objectives by name, with their options checked against the constructor."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from graphssl.nn.encoder import Encoder
from graphssl.core.errors import ConfigError
from graphssl.objectives.attrmask import AttrMask
from graphssl.objectives.denoise import SCD, CoordinateDenoising
from graphssl.objectives.graphmae import GraphMAE
from graphssl.objectives.higmae import HiGMAE

OBJECTIVES: dict[str, type[nn.Module]] = {
    "graphmae": GraphMAE,
    "attrmask": AttrMask,
    "higmae": HiGMAE,
    "denoise": CoordinateDenoising,
    "scd": SCD,
}


def register_objective(name: str, cls: type[nn.Module]) -> None:
    """Make ``cls`` (constructed as ``cls(encoder, **options)``) available by name."""
    OBJECTIVES[name.lower()] = cls


def objective_options(name: str) -> dict[str, Any]:
    """The options an objective accepts, with their defaults."""
    cls = _lookup(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]
    return {p.name: p.default for p in params}


def _lookup(name: str) -> type[nn.Module]:
    key = name.lower()
    if key not in OBJECTIVES:
        raise ConfigError(f"unknown objective '{name}'. Choose one of: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[key]


def build_objective(name: str, encoder: Encoder, options: dict[str, Any] | None = None) -> nn.Module:
    """Construct the named objective around ``encoder``; unknown options fail by name."""
    cls = _lookup(name)
    options = dict(options or {})
    allowed = objective_options(name)
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"objective '{name}' has no option '{key}'. Its options: "
                + ", ".join(f"{k}={v!r}" for k, v in allowed.items())
            )
    try:
        return cls(encoder, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"objective '{name}': {exc}") from None
