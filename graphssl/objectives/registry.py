"""Objectives by name, with their options checked against the constructor."""

from __future__ import annotations

import inspect
from typing import Any

from graphssl.core.errors import ConfigError
from graphssl.core.registry import Registry
from graphssl.nn.encoder import GraphEncoder
from graphssl.objectives.base import Objective

OBJECTIVES: Registry[type[Objective]] = Registry(
    "objective", hint="Register your own with graphssl.objectives.register_objective(name, cls).")


def register_objective(name: str, cls: type[Objective], *, replace: bool = False) -> type[Objective]:
    """Make ``cls`` (an :class:`Objective` constructed as ``cls(encoder, **options)``) available
    by name; a taken name needs ``replace=True``."""
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ConfigError(f"objective '{name}' must be a subclass of graphssl.objectives.Objective "
                          f"(it provides the hooks the pretraining loop calls), got {cls!r}")
    return OBJECTIVES.register(name, cls, replace=replace)


def objective_options(name: str) -> dict[str, Any]:
    """The options an objective accepts, with their defaults."""
    cls = OBJECTIVES.get(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]
    return {p.name: p.default for p in params}


def build_objective(name: str, encoder: GraphEncoder, options: dict[str, Any] | None = None) -> Objective:
    """Construct the named objective around ``encoder``; unknown options fail by name."""
    cls = OBJECTIVES.get(name)
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
